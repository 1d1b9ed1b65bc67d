"""Events and handlers: connect / message / disconnect / stopped, incoming
envelopes, the error reply, ordering, handler exceptions, where handlers
run (C: test_events)."""

from __future__ import annotations

import json
import logging
import select
import threading

import pytest

from wsnotify import IncomingMessage, MessageType, Server

from conftest import TIMEOUT, expect_envelope, ws_connect


def test_handlers_run_on_serving_thread(harness):
    ws, c = harness.connect()
    ws.send('{"type":"json","message":1}')
    harness.next_message()
    ws.close()
    harness.wait_disconnect(c.id)
    assert harness.handler_threads == {harness.thread.ident}


def test_same_client_object_everywhere(harness):
    seen = []
    harness.message_hook = lambda client, msg: seen.append(client)
    ws, c = harness.connect()
    ws.send('{"type":"json","message":1}')
    harness.next_message()
    ws.close()
    gone = harness.wait_disconnect(c.id)
    assert seen == [c] and seen[0] is c and gone is c
    assert c.id.startswith("c_")
    assert not c.connected


@pytest.mark.parametrize("text,channel,message,mid,rid", [
    ('{"type":"json","channel":"c","message":{"a":1},"message_id":"m1"}',
     "c", {"a": 1}, "m1", ""),
    ('{"type":"json","message":[1,2]}', "", [1, 2], "", ""),
    ('{"type":"json","channel":"x","message":"s","reply_to_id":"r9"}',
     "x", "s", "", "r9"),
    ('{"message_id":"m2","message":null,"channel":"k","type":"json"}',
     "k", None, "m2", ""),
    ('{"type":"json","channel":"\\u00e9","message":true}', "é", True, "", ""),
])
def test_incoming_envelope(harness, text, channel, message, mid, rid):
    ws, c = harness.connect()
    ws.send(text)
    client, msg = harness.next_message()
    assert client is c
    assert msg == IncomingMessage(type=MessageType.JSON, channel=channel,
                                  message=message, message_id=mid,
                                  reply_to_id=rid, client_id=c.id)
    assert json.loads(msg.raw) == message


def test_incoming_text_type(harness):
    ws, c = harness.connect()
    ws.send('{"type":"text","channel":"c","message":"h\\u00e9 \\"q\\""}')
    _, msg = harness.next_message()
    assert msg.type is MessageType.TEXT
    assert msg.message == 'hé "q"'
    assert msg.channel == "c"
    assert msg.raw == 'hé "q"'.encode()


def test_incoming_binary(harness):
    ws, c = harness.connect()
    data = bytes([0, 1, 2, 0xff, 0, 0x80, ord("{")])
    ws.send(data)
    _, msg = harness.next_message()
    assert msg == IncomingMessage(type=MessageType.BINARY, channel="",
                                  message=data, client_id=c.id)
    big = bytes((i ^ (i >> 8)) & 0xFF for i in range(70000))
    ws.send([big[i:i + 1000] for i in range(0, len(big), 1000)])  # fragments
    _, msg = harness.next_message()
    assert msg.type is MessageType.BINARY and msg.message == big
    ws.send(b"")
    _, msg = harness.next_message()
    assert msg.type is MessageType.BINARY and msg.message == b""


def test_invalid_json_error(harness):
    ws, c = harness.connect()
    want = ('{"client_id":"%s","error":"invalid JSON format","reply_to":"",'
            '"time":"T","type":"error"}' % c.id)
    for bad in ["not json", '{"type":', "", '{"a":1}}']:
        ws.send(bad)
        expect_envelope(ws, want)
    assert c.connected
    ws.send('{"type":"json","message":"after"}')
    _, msg = harness.next_message()
    assert msg.message == "after"  # the bad frames produced no event
    harness.server.subscribe(c, "c")
    harness.server.publish("c", 1)
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T",'
                        '"message":1}')


def test_disconnect_after_last_message(harness):
    order = []
    harness.message_hook = lambda cl, m: order.append(("m", cl.id, m.message))
    harness.disconnect_hook = lambda cl: order.append(("d", cl.id))
    ws, c = harness.connect()
    for i in range(50):
        ws.send(json.dumps({"type": "json", "message": i}))
    ws.close()
    harness.wait_disconnect(c.id)
    assert order == [("m", c.id, i) for i in range(50)] + [("d", c.id)]


def test_disconnect_handler_runs_once_after_unsubscribe(harness):
    calls = []

    def on_disconnect(client):
        # every subscription is gone before the handler runs
        calls.append((client.id, harness.server.get_client_list()))

    harness.disconnect_hook = on_disconnect
    ws, c = harness.connect()
    w2, c2 = harness.connect()
    harness.server.subscribe(c, "c")
    harness.server.subscribe(c2, "c")
    ws.close()
    harness.wait_disconnect(c.id)
    harness.server.publish("c", "still")
    expect_envelope(w2, '{"channel":"c","type":"json","time":"T",'
                        '"message":"still"}')
    assert calls == [(c.id, [c2.id])]


def test_client_ids_unique(harness):
    ids = set()
    for _ in range(20):
        ws, c = harness.connect()
        ids.add(c.id)
        ws.close()
        harness.wait_disconnect(c.id)
    assert len(ids) == 20
    assert all(i.startswith("c_") for i in ids)


def test_remote_address(harness):
    ws, c = harness.connect()
    assert c.remote_address == "127.0.0.1"
    assert repr(c) == f"<wsnotify.Client {c.id} connected>"


def test_handler_publish_reply(harness):
    s = harness.server

    def reply(client, msg):
        s.publish_to_client(client, msg.channel, {"echo": msg.message},
                            reply_to_id=msg.message_id)

    harness.message_hook = reply
    ws, c = harness.connect()
    ws.send('{"type":"json","channel":"r","message":"ping","message_id":"q1"}')
    expect_envelope(ws, '{"channel":"r","type":"json","time":"T","message":'
                        '{"echo":"ping"},"reply_to_id":"q1"}')


def test_setters_and_decorators():
    s = Server(port=0)
    got = []

    def h1(client, msg):
        got.append(1)

    assert s.on_message(h1) is h1
    s.set_message_handler(None)
    s.set_connect_handler(lambda c: got.append("c"))
    with s:
        ws = ws_connect(s.url)
        assert s.dispatch_events(TIMEOUT) >= 1
        assert got == ["c"]
        ws.send('{"type":"json","message":1}')
        n = s.dispatch_events(TIMEOUT)  # no message handler: nothing runs
        assert n == 1 and got == ["c"]
        ws.close()


@pytest.mark.handler_errors
def test_handler_exception_logged_server_survives(harness, caplog):
    def boom(client, msg):
        if msg.message == "boom":
            raise RuntimeError("handler failed on purpose")

    harness.message_hook = boom
    ws, c = harness.connect()
    with caplog.at_level(logging.ERROR, logger="wsnotify"):
        ws.send('{"type":"json","message":"boom"}')
        ws.send('{"type":"json","message":"fine"}')
        _, msg = harness.next_message()
    assert msg.message == "fine"
    recs = [r for r in caplog.records if r.name == "wsnotify"]
    assert len(recs) == 1
    assert "message handler" in recs[0].getMessage()
    assert recs[0].exc_info[0] is RuntimeError
    assert "handler failed on purpose" in caplog.text
    assert "Traceback" in caplog.text
    # still serving
    harness.server.subscribe(c, "c")
    harness.server.publish("c", 1)
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T","message":1}')


@pytest.mark.handler_errors
def test_connect_and_disconnect_handler_exceptions(make_harness, caplog):
    h = make_harness()
    first = []

    def bad(client):
        if not first or first[0] == client.id:
            first.append(client.id)
            raise ValueError("nope")

    h.connect_hook = bad
    h.disconnect_hook = bad
    with caplog.at_level(logging.ERROR, logger="wsnotify"):
        ws = ws_connect(h.url)
        ws.send('{"type":"json","message":1}')
        client, _ = h.next_message()  # served although connect raised
        ws.close()
        # a marker handled after the disconnect event (same thread, in order)
        ws2, c2 = h.connect()
    assert first == [client.id, client.id]
    assert h.server.get_client(client.id) is None  # forgotten all the same
    msgs = [r.getMessage() for r in caplog.records if r.name == "wsnotify"]
    assert len(msgs) == 2
    assert "connect handler" in msgs[0]
    assert "disconnect handler" in msgs[1]


def test_dispatch_events_manual_loop_and_fileno():
    with Server(port=0) as s:
        got = []
        s.on_connect(lambda c: got.append(c.id))
        ws = ws_connect(s.url)
        r, _, _ = select.select([s.fileno()], [], [], TIMEOUT)
        assert r == [s.fileno()]  # readable while events are queued
        assert s.dispatch_events(0) == 1
        assert len(got) == 1
        assert s.dispatch_events(0) == 0
        r, _, _ = select.select([s.fileno()], [], [], 0)
        assert r == []
        ws.close()
        assert s.dispatch_events(TIMEOUT) == 1


def test_stopped_ends_serve_forever():
    s = Server(port=0)
    s.start()
    t = threading.Thread(target=s.serve_forever)
    t.start()
    assert s.shutdown(5) is True
    t.join(TIMEOUT)
    assert not t.is_alive()
    assert s.stopped
    s.serve_forever()  # returns at once on a stopped server


def test_shutdown_without_loop_runs_disconnect_handlers():
    s = Server(port=0)
    gone = []
    s.on_disconnect(lambda c: gone.append(c.id))
    s.start()
    ws = ws_connect(s.url)
    s.shutdown(5)
    assert len(gone) == 1 and gone[0].startswith("c_")
    assert s.stopped
    ws.close()


@pytest.mark.handler_errors
def test_coroutine_handler_without_asyncio_is_logged(harness, caplog):
    async def coro_handler(client, msg):
        pass

    harness.server.set_message_handler(coro_handler)
    ws, c = harness.connect()
    with caplog.at_level(logging.ERROR, logger="wsnotify"):
        ws.send('{"type":"json","message":1}')
        harness.server.set_connect_handler(
            lambda cl: harness.connects.put(cl))
        ws2 = ws_connect(harness.url)  # a marker: handled after the message
        harness.sockets.append(ws2)
        harness.connects.get(timeout=TIMEOUT)
    assert "not served by asyncio" in caplog.text


def test_read_buffer_small_reassembles(make_harness):
    """With the smallest read buffer (128 bytes per pass), a message many
    times its size and the messages right behind it arrive whole, in
    order."""
    h = make_harness(read_buffer=128)
    ws, _ = h.connect()
    big = "x" * 5000
    ws.send(json.dumps({"channel": "c", "message": big}))
    ws.send('{"channel":"c","message":1}')
    ws.send('{"channel":"c","message":2}')
    _, msg = h.next_message()
    assert msg.channel == "c" and msg.message == big
    assert [h.next_message()[1].message for _ in range(2)] == [1, 2]


def test_raw_incoming_and_send_raw(make_harness):
    h = make_harness(raw_incoming=True)
    s = h.server

    def echo(client, msg):
        s.send_raw(client, msg.message)

    h.message_hook = echo
    ws, c = h.connect()
    ws.send('{"type":"json","message":1}')
    _, msg = h.next_message()
    assert msg.type is MessageType.TEXT
    assert msg.message == '{"type":"json","message":1}'
    assert ws.recv(timeout=TIMEOUT) == '{"type":"json","message":1}'
    ws.send(b"\x00\x01")
    h.next_message()
    assert ws.recv(timeout=TIMEOUT) == b"\x00\x01"
    s.send_raw(c, b"abc", MessageType.TEXT)
    assert ws.recv(timeout=TIMEOUT) == "abc"
    with pytest.raises(ValueError, match="not JSON"):
        s.send_raw(c, "x", MessageType.JSON)


def test_event_queue_limit_pauses_reading_loses_nothing():
    """Nobody serves events for a while: reading from the client pauses at
    event_queue_limit instead of queueing without bound; once served,
    every message arrives, in order."""
    with Server(port=0, event_queue_limit=4) as s:
        got = []
        s.on_message(lambda c, m: got.append(m.message))
        ws = ws_connect(s.url)
        for i in range(200):
            ws.send(json.dumps({"type": "json", "message": i}))
        for _ in range(10000):
            if len(got) == 200:
                break
            s.dispatch_events(TIMEOUT)
        assert got == list(range(200))
        ws.close()


def test_stopped_is_last():
    s = Server(port=0)
    kinds = []
    s.on_connect(lambda c: kinds.append("connect"))
    s.on_disconnect(lambda c: kinds.append("disconnect"))
    s.start()
    ws = ws_connect(s.url)
    assert s.dispatch_events(TIMEOUT) == 1
    s.shutdown(5)  # nobody serves: shutdown runs what is left, then STOPPED
    assert kinds == ["connect", "disconnect"]
    assert s.stopped
    assert s.dispatch_events(0) == 0
    ws.close()
