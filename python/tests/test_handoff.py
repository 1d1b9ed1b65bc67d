"""wsnotify.handoff(): a front in this process accepts a connection, reads
its request head and gives the socket to the engine (option
handoff_socket); the client, which only ever spoke to the front's port, is
served by the engine with its real address (C: tests/test_handoff.c)."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from typing import List

import pytest

import wsnotify

from conftest import TIMEOUT, expect_envelope, ws_connect


class Front:
    """Accepts `count` connections, hands each over, closes its copy."""

    def __init__(self, path: str, count: int) -> None:
        self.path = path
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.errors: List[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(count,), daemon=True)
        self.thread.start()

    def _run(self, count: int) -> None:
        for _ in range(count):
            conn, _ = self.listener.accept()
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                head += chunk
            try:
                wsnotify.handoff(self.path, conn, head)
            except BaseException as e:  # reported by join()
                self.errors.append(e)
            conn.close()

    def join(self) -> None:
        self.thread.join(TIMEOUT)
        self.listener.close()
        assert not self.thread.is_alive()
        assert not self.errors, self.errors


def _from(addr: str, port: int) -> socket.socket:
    s = socket.socket()
    s.bind((addr, 0))
    s.connect(("127.0.0.1", port))
    return s


def test_handed_client_served_with_its_real_address(make_harness):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "handoff.sock")
        h = make_harness(handoff_socket=path)
        front = Front(path, 1)
        # From 127.0.0.2: a proxy would show the front's 127.0.0.1.
        ws = ws_connect(f"ws://127.0.0.1:{front.port}/ws", sock=_from("127.0.0.2", front.port))
        client = h.connects.get(timeout=TIMEOUT)
        front.join()
        assert client.remote_address == "127.0.0.2"
        h.server.subscribe(client, "news")
        h.server.publish("news", {"n": 1})
        expect_envelope(ws, '{"channel":"news","type":"json","time":"T","message":{"n":1}}')
        ws.send('{"channel":"news","message":"hi"}')
        c, msg = h.next_message()
        assert c.id == client.id and msg.message == "hi"
        ws.close()
        h.wait_disconnect(client.id)


def test_errors():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "handoff.sock")
        a, b = socket.socketpair()
        with a, b:
            with pytest.raises(wsnotify.ServerClosedError):
                wsnotify.handoff(path, a, b"GET /ws HTTP/1.1\r\n\r\n")
            with pytest.raises(wsnotify.LimitError):
                wsnotify.handoff(path, a, b"x" * 16385)
            with pytest.raises(wsnotify.InvalidArgumentError):
                wsnotify.handoff(path, a, b"")
            with pytest.raises(TypeError):
                wsnotify.handoff(path, a, 12)
            with pytest.raises(TypeError):
                wsnotify.handoff(b"/x", a, b"GET")


def test_a_burst_of_handoffs_all_served(make_harness):
    """More upgrades at once than the engine's datagram queue holds
    (net.unix.max_dgram_qlen, 10 here): a front that retries on
    NoRoomError gets every one served, none twice."""
    n = 60
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "handoff.sock")
        h = make_harness(handoff_socket=path)
        listener = socket.create_server(("127.0.0.1", 0), backlog=n)
        port = listener.getsockname()[1]
        heads = []
        # The front reads every head first, then hands them all over at
        # once, as several nginx workers would in a burst.
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        for c in clients:
            c.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        accepted = []
        for _ in range(n):
            conn, _ = listener.accept()
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            accepted.append((conn, head))
        for conn, head in accepted:
            while True:
                try:
                    wsnotify.handoff(path, conn, head)
                    break
                except wsnotify.NoRoomError:
                    threading.Event().wait(0.001)  # the engine drains its queue meanwhile
            conn.close()
        ids = {h.connects.get(timeout=TIMEOUT).id for _ in range(n)}
        assert len(ids) == n
        for c in clients:
            c.settimeout(TIMEOUT)
            assert c.recv(12) == b"HTTP/1.1 101"
            c.close()
        listener.close()
