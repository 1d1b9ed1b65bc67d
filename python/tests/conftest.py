"""Test support: a served wsnotify Server plus real WebSocket peers over
loopback (the `websockets` package, and a raw-socket client for what a
well-behaved client library will not do: never reading, never answering
pings, sending broken frames)."""

from __future__ import annotations

import base64
import inspect
import os
import queue
import re
import socket
import struct
import threading
from typing import Any, Callable, List, Optional, Tuple

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from wsnotify import Client, IncomingMessage, Server

#: Upper bound of every wait in the suite (never a synchronisation sleep:
#: tests wait for an event, and this only bounds a hang).
TIMEOUT = 10.0

TIME_RE = re.compile(
    r'"time":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{0,8}[1-9])?Z)"')


def normalize(raw: str) -> str:
    """Replaces the envelope's time with T after checking its format
    (RFC 3339, nanoseconds with trailing zeros trimmed, UTC)."""
    m = TIME_RE.search(raw)
    assert m, f"no RFC 3339 time in {raw!r}"
    return raw[:m.start()] + '"time":"T"' + raw[m.end():]


_HAS_LEGACY = "legacy" in inspect.signature(connect).parameters


def ws_connect(url: str, **kw: Any) -> ClientConnection:
    kw.setdefault("proxy", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", TIMEOUT)
    kw.setdefault("close_timeout", TIMEOUT)
    kw.setdefault("compression", None)
    kw.setdefault("max_size", None)
    if _HAS_LEGACY:  # websockets >= 17: a plain connection, no warning
        kw.setdefault("legacy", True)
    return connect(url, **kw)


def expect_envelope(ws: ClientConnection, want: str) -> None:
    raw = ws.recv(timeout=TIMEOUT)
    assert isinstance(raw, str), f"expected a text frame, got {raw!r}"
    assert normalize(raw) == want


def expect_close(ws: ClientConnection,
                 max_messages: int = 100000) -> Tuple[List[Any], int, str]:
    """Reads until the server closes; returns (messages, code, reason)."""
    msgs: List[Any] = []
    for _ in range(max_messages):
        try:
            msgs.append(ws.recv(timeout=TIMEOUT))
        except ConnectionClosed as e:
            assert e.rcvd is not None, f"closed without a close frame: {e!r}"
            return msgs, e.rcvd.code, e.rcvd.reason
    raise AssertionError("no close after max_messages")


class Harness:
    """A started Server served by serve_forever() on a background thread;
    handler calls are recorded in queues."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("port", 0)
        self.server = Server(**options)
        self.connects: "queue.Queue[Client]" = queue.Queue()
        self.messages: "queue.Queue[Tuple[Client, IncomingMessage]]" = queue.Queue()
        self.disconnects: "queue.Queue[Client]" = queue.Queue()
        self.handler_threads: set = set()
        self.message_hook: Optional[Callable[[Client, IncomingMessage], Any]] = None
        self.connect_hook: Optional[Callable[[Client], Any]] = None
        self.disconnect_hook: Optional[Callable[[Client], Any]] = None
        self.sockets: List[Any] = []
        s = self.server

        @s.on_connect
        def _c(client: Client) -> None:
            self.handler_threads.add(threading.get_ident())
            if self.connect_hook:
                self.connect_hook(client)
            self.connects.put(client)

        @s.on_message
        def _m(client: Client, msg: IncomingMessage) -> None:
            self.handler_threads.add(threading.get_ident())
            if self.message_hook:
                self.message_hook(client, msg)
            self.messages.put((client, msg))

        @s.on_disconnect
        def _d(client: Client) -> None:
            self.handler_threads.add(threading.get_ident())
            if self.disconnect_hook:
                self.disconnect_hook(client)
            self.disconnects.put(client)

        self.thread = threading.Thread(target=s.serve_forever,
                                       name="serve_forever", daemon=True)

    def start(self) -> "Harness":
        self.server.start()
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def connect(self, **kw: Any) -> Tuple[ClientConnection, Client]:
        """Connects a websockets client and waits for its connect event."""
        ws = ws_connect(self.url, **kw)
        self.sockets.append(ws)
        client = self.connects.get(timeout=TIMEOUT)
        return ws, client

    def raw(self, **kw: Any) -> "RawClient":
        rc = RawClient(self.server.host, self.server.port,
                       path=self.server.path, **kw)
        self.sockets.append(rc)
        return rc

    def raw_connected(self, **kw: Any) -> Tuple["RawClient", Client]:
        rc = self.raw(**kw)
        assert rc.status == 101, rc.response
        return rc, self.connects.get(timeout=TIMEOUT)

    def next_message(self) -> Tuple[Client, IncomingMessage]:
        return self.messages.get(timeout=TIMEOUT)

    def wait_disconnect(self, client_id: str) -> Client:
        for _ in range(1000):
            c = self.disconnects.get(timeout=TIMEOUT)
            if c.id == client_id:
                return c
        raise AssertionError(f"no disconnect of {client_id}")

    def stop(self) -> None:
        try:
            self.server.shutdown(5)
        finally:
            self.thread.join(TIMEOUT) if self.thread.is_alive() else None
            for s in self.sockets:
                try:
                    s.close()
                except Exception:
                    pass
        assert not self.thread.is_alive(), "serve_forever did not return"


@pytest.fixture
def make_harness():
    made: List[Harness] = []

    def make(**options: Any) -> Harness:
        h = Harness(**options).start()
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


@pytest.fixture
def harness(make_harness) -> Harness:
    return make_harness()


# ---------------------------------------------------------------------------
# A raw RFC 6455 client: full control over what is (not) sent and read.
# ---------------------------------------------------------------------------

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class RawClient:
    def __init__(self, host: str, port: int, path: str = "/ws",
                 origin: Optional[str] = None, host_header: Optional[str] = None,
                 rcvbuf: Optional[int] = None,
                 protocol: Optional[str] = None) -> None:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(TIMEOUT)
        s.connect((host, port))
        self.sock = s
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        hh = host_header or (f"[{host}]:{port}" if ":" in host
                             else f"{host}:{port}")
        lines = [f"GET {path} HTTP/1.1", f"Host: {hh}",
                 "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        if protocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        header, _, rest = head.partition(b"\r\n\r\n")
        self.response = header.decode("latin-1")
        parts = self.response.split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 else 0
        self.buf = rest

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send_frame(self, opcode: int, payload: bytes, fin: bool = True,
                   rsv: int = 0, mask: bool = True) -> None:
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode())

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by the server")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self) -> Tuple[int, bytes, bool]:
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        if b1 & 0x80:
            key = self._read(4)
            data = bytes(b ^ key[i % 4] for i, b in enumerate(self._read(n)))
        else:
            data = self._read(n)
        return b0 & 0x0F, data, bool(b0 & 0x80)

    def read_until_close(self, max_frames: int = 1000000, echo: bool = True
                         ) -> Tuple[List[bytes], Optional[int], str]:
        """Reads data frames until a close frame: (payloads, code, reason),
        answering it with a close frame (as RFC 6455 asks) unless echo is
        False. code is None when the connection ended without one."""
        msgs: List[bytes] = []
        for _ in range(max_frames):
            try:
                op, data, _ = self.recv_frame()
            except (EOFError, ConnectionResetError):
                return msgs, None, ""
            if op == OP_CLOSE:
                if echo:
                    try:
                        self.send_frame(OP_CLOSE, data[:2])
                    except OSError:
                        pass
                if len(data) >= 2:
                    code = struct.unpack("!H", data[:2])[0]
                    return msgs, code, data[2:].decode("utf-8", "replace")
                return msgs, 1005, ""
            if op in (OP_TEXT, OP_BINARY, OP_CONT):
                msgs.append(data)
        raise AssertionError("no close frame")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "handler_errors: the test expects errors logged by "
        "wsnotify (handler exceptions); others fail when one is logged")


@pytest.fixture(autouse=True)
def _no_handler_errors(request, caplog):
    """Handler exceptions are logged, not raised (an assertion failing in a
    handler would otherwise go unnoticed): fail the test when wsnotify
    logged an error, unless it is marked handler_errors."""
    yield
    if request.node.get_closest_marker("handler_errors"):
        return
    records = caplog.get_records("call") + caplog.get_records("teardown")
    errors = [r for r in records if r.name == "wsnotify" and r.levelno >= 40]
    assert not errors, "wsnotify logged errors:\n" + "\n".join(
        r.getMessage() + ("\n" + caplog.handler.format(r) if r.exc_info else "")
        for r in errors)
