"""The core's event socket (option event_socket) through the Python
binding: a byte per turn of the event fd on a unix socket, EOF and the path
gone at shutdown, a path that cannot be bound refused at start (C:
tests/test_event_socket.c)."""

from __future__ import annotations

import os
import select
import socket
import tempfile

import pytest

import wsnotify
from wsnotify import Server

from conftest import TIMEOUT, ws_connect


def test_a_byte_when_events_wait_then_eof_at_shutdown():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "events.sock")
        s = Server(port=0, event_socket=path)
        s.start()
        try:
            host = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            host.connect(path)
            # Nothing queued yet: nothing said.
            assert select.select([host], [], [], 0)[0] == []
            ws = ws_connect(s.url)
            assert select.select([host], [], [], TIMEOUT)[0] == [host]
            assert host.recv(16) == b"!"
            # The host takes what is queued; the next event turns the fd
            # again and is announced again.
            assert s.dispatch_events(0) == 1
            assert select.select([host], [], [], 0)[0] == []
            ws.close()
        finally:
            s.shutdown(5)
        # DISCONNECT and STOPPED were announced (one turn: nothing took
        # the first before the second), then the connection ends and the
        # path is unlinked.
        assert select.select([host], [], [], TIMEOUT)[0] == [host]
        got = b""
        while True:
            chunk = host.recv(16)
            if not chunk:
                break
            got += chunk
        assert got and set(got) == {ord("!")}
        assert not os.path.exists(path)
        host.close()


def test_a_path_that_cannot_be_bound_fails_start():
    with tempfile.TemporaryDirectory() as d:
        s = Server(port=0, event_socket=os.path.join(d, "no", "such", "dir", "s"))
        with pytest.raises(wsnotify.WsnotifyError, match="event_socket: cannot listen on"):
            s.start()
