"""Shutdown: 1001 "server shutdown", nothing accepted is lost, calls after
shutdown, context managers, garbage collection of a running server,
Ctrl-C in serve_forever (C: test_shutdown)."""

from __future__ import annotations

import gc
import json
import os
import signal
import threading
import weakref

import pytest
from websockets.exceptions import InvalidHandshake

from wsnotify import ClientGoneError, MessageType, Server, ServerClosedError

from conftest import TIMEOUT, expect_close, ws_connect


def test_close_1001(harness):
    ws, c = harness.connect()
    w2, c2 = harness.connect()
    assert harness.server.shutdown(5) is True
    assert expect_close(ws) == ([], 1001, "server shutdown")
    assert expect_close(w2) == ([], 1001, "server shutdown")
    gone = {harness.disconnects.get(timeout=TIMEOUT).id for _ in range(2)}
    assert gone == {c.id, c2.id}
    harness.thread.join(TIMEOUT)
    assert not harness.thread.is_alive()  # STOPPED ended serve_forever
    assert harness.server.stopped


def test_shutdown_nothing_lost(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    for i in range(500):
        s.publish("c", {"i": i})
    s.publish_wait("c", {"b": 1}, 7, "batch", 3600)  # flushed by shutdown
    s.publish_to_client(c, "", "last", MessageType.TEXT)
    s.shutdown(5)
    msgs, code, reason = expect_close(ws)
    assert (code, reason) == (1001, "server shutdown")
    got = [json.loads(m) for m in msgs]
    assert [m["message"] for m in got[:500]] == [{"i": i} for i in range(500)]
    tail = {json.dumps(m["message"], sort_keys=True) for m in got[500:]}
    assert tail == {'{"messages": [{"b": 1}], "name": "batch"}', '"last"'}
    assert len(got) == 502


def test_shutdown_while_publishing(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    accepted = []
    errors = []

    def publisher():
        for i in range(100000):
            try:
                s.publish("c", i)
            except ServerClosedError:
                return
            except Exception as e:  # pragma: no cover
                errors.append(e)
                return
            accepted.append(i)

    t = threading.Thread(target=publisher)
    t.start()
    first = ws.recv(timeout=TIMEOUT)  # publishing is under way
    s.shutdown(5)
    t.join(TIMEOUT)
    assert not t.is_alive() and errors == []
    msgs, code, reason = expect_close(ws)
    assert (code, reason) == (1001, "server shutdown")
    got = [json.loads(first)["message"]] + [json.loads(m)["message"]
                                             for m in msgs]
    assert got == accepted  # every accepted publish arrived, in order


def test_calls_after_shutdown(harness):
    ws, c = harness.connect()
    s = harness.server
    s.shutdown(5)
    harness.wait_disconnect(c.id)
    with pytest.raises(ServerClosedError, match="server is shutting down or "
                                                "stopped"):
        s.publish("c", 1)
    with pytest.raises(ServerClosedError):
        s.publish_with_type("c", b"x", MessageType.BINARY)
    with pytest.raises(ServerClosedError):
        s.publish_wait("c", 1, 1, "n", 1)
    with pytest.raises((ServerClosedError, ClientGoneError)):
        s.subscribe(c, "c")
    with pytest.raises((ServerClosedError, ClientGoneError)):
        s.publish_to_client(c, "c", 1)
    assert s.get_connected_clients() == 0
    assert s.get_client_list() == []
    assert s.shutdown(1) is True  # again: fine
    assert c.get_metadata("x") is None  # handles stay usable


def test_refuse_after_shutdown(harness):
    port = harness.server.port
    harness.server.shutdown(5)
    with pytest.raises((OSError, InvalidHandshake)):
        ws_connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5)


def test_shutdown_from_handler(harness):
    s = harness.server
    result = []
    harness.message_hook = lambda cl, m: result.append(s.shutdown(5))
    ws, c = harness.connect()
    ws.send('{"type":"json","message":"stop"}')
    assert expect_close(ws)[1:] == (1001, "server shutdown")
    harness.thread.join(TIMEOUT)
    assert not harness.thread.is_alive()
    assert result == [True]
    assert harness.wait_disconnect(c.id) is c  # the loop still ran it


def test_two_servers_independent(make_harness):
    a = make_harness()
    b = make_harness()
    wa, ca = a.connect()
    wb, cb = b.connect()
    a.server.shutdown(5)
    assert expect_close(wa)[1] == 1001
    b.server.subscribe(cb, "c")
    b.server.publish("c", 1)
    assert wb.recv(timeout=TIMEOUT).endswith('"message":1}')


def test_context_manager():
    with Server(port=0) as s:
        ws = ws_connect(s.url)
    assert s.stopped
    assert expect_close(ws)[1:] == (1001, "server shutdown")


def test_gc_of_running_server():
    s = Server(port=0)
    s.on_message(lambda c, m: s.publish("x", 1))  # a reference cycle
    s.start()
    ws = ws_connect(s.url)
    ref = weakref.ref(s)
    del s
    gc.collect()
    assert ref() is None
    # The finalizer shut it down cleanly.
    assert expect_close(ws) == ([], 1001, "server shutdown")


def test_serve_forever_ctrl_c():
    """SIGINT while serve_forever runs on the main thread: graceful shutdown
    (1001 to every client), remaining handlers run, serve_forever returns."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals need the main thread")
    s = Server(port=0)
    events = []
    ready = threading.Event()

    @s.on_connect
    def on_connect(client):
        events.append("connect")
        ready.set()

    s.on_disconnect(lambda client: events.append("disconnect"))
    s.start()
    box = {}

    def client():
        ws = ws_connect(s.url)
        ready.wait(TIMEOUT)
        os.kill(os.getpid(), signal.SIGINT)
        box["close"] = expect_close(ws)

    t = threading.Thread(target=client)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        t.start()
        s.serve_forever()  # returns after the graceful shutdown
    finally:
        signal.signal(signal.SIGINT, old)
    t.join(TIMEOUT)
    assert s.stopped
    assert box["close"] == ([], 1001, "server shutdown")
    assert events == ["connect", "disconnect"]


def test_shutdown_timeout_cuts_stuck_client(make_harness):
    """A client that reads nothing cannot take what was queued for it:
    shutdown gives up after its timeout, cuts it and says so."""
    # No byte bound on its queue: all 4.8 MiB wait for shutdown to meet.
    h = make_harness(send_buffer=1024, send_buffer_bytes=0)
    s = h.server
    stuck, sc = h.raw_connected(rcvbuf=4096)
    s.subscribe(sc, "c")
    for i in range(300):  # ~4.8 MiB: more than the kernel buffers hold
        s.publish("c", {"i": i, "p": "x" * 16384})
    assert s.shutdown(0.3) is False
    assert h.wait_disconnect(sc.id) is sc
    assert s.get_connected_clients() == 0
    msgs, code, _ = stuck.read_until_close()
    assert len(msgs) < 300
    h.thread.join(TIMEOUT)
    assert not h.thread.is_alive()
