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
