"""The wsnotify.msgpack subprotocol through the Python API: MessagePack maps
with the envelope's keys in binary frames, both ways; JSON clients on the
same channel keep getting JSON (C: test_msgpack)."""

from __future__ import annotations

import pytest

from wsnotify import IncomingMessage, MessageType

from conftest import TIME_RE, TIMEOUT, expect_envelope, ws_connect

msgpack = pytest.importorskip("msgpack")

MP = "wsnotify.msgpack"


def recv_map(ws):
    data = ws.recv(timeout=TIMEOUT)
    assert isinstance(data, bytes), f"msgpack client got text: {data!r}"
    return msgpack.unpackb(data, raw=False)


def check_time(value):
    assert TIME_RE.fullmatch(f'"time":"{value}"'), value


def test_negotiated(harness):
    ws, c = harness.connect(subprotocols=[MP])
    assert ws.subprotocol == MP
    assert c.subprotocol == MP
    ws2, c2 = harness.connect(subprotocols=["foo", "wsnotify.json"])
    assert ws2.subprotocol == "wsnotify.json"
    with pytest.raises(Exception):  # an unknown subprotocol alone: refused
        ws_connect(harness.url, subprotocols=["foo"], open_timeout=5)


def test_envelope_json(harness):
    ws, c = harness.connect(subprotocols=[MP])
    s = harness.server
    s.subscribe(c, "c")
    s.publish_with_type("c", {"a": 1, "b": [True, None, "s", -2, 1.5]},
                        MessageType.JSON, "m1", "r1")
    m = recv_map(ws)
    assert list(m) == ["channel", "type", "time", "message", "message_id",
                       "reply_to_id"]
    check_time(m.pop("time"))
    assert m == {"channel": "c", "type": "json", "message_id": "m1",
                 "reply_to_id": "r1",
                 "message": {"a": 1, "b": [True, None, "s", -2, 1.5]}}


def test_envelope_binary_text(harness):
    ws, c = harness.connect(subprotocols=[MP])
    s = harness.server
    s.subscribe(c, "c")
    s.publish_with_type("c", b"\x00\xff\x01\x80", MessageType.BINARY)
    s.publish_with_type("c", "hé", MessageType.TEXT, "", "")
    m = recv_map(ws)
    assert list(m) == ["channel", "type", "time", "message"]
    assert m["type"] == "binary" and m["message"] == b"\x00\xff\x01\x80"
    m = recv_map(ws)
    assert m["type"] == "text" and m["message"] == "hé"


def test_incoming(harness):
    ws, c = harness.connect(subprotocols=[MP])
    ws.send(msgpack.packb({"type": "json", "channel": "c",
                           "message": {"x": 1}, "message_id": "m1"}))
    ws.send(msgpack.packb({"type": "binary", "message": b"\x00\x01\x02"}))
    _, m1 = harness.next_message()
    _, m2 = harness.next_message()
    assert m1 == IncomingMessage(type=MessageType.JSON, channel="c",
                                 message={"x": 1}, message_id="m1",
                                 client_id=c.id)
    assert m2 == IncomingMessage(type=MessageType.BINARY, channel="",
                                 message=b"\x00\x01\x02", client_id=c.id)


def test_mixed_subscribers(harness):
    wm, cm = harness.connect(subprotocols=[MP])
    wj, cj = harness.connect()
    s = harness.server
    s.subscribe(cm, "c")
    s.subscribe(cj, "c")
    for i in range(20):
        s.publish("c", i)
    for i in range(20):
        assert recv_map(wm)["message"] == i
        expect_envelope(wj, '{"channel":"c","type":"json","time":"T",'
                            '"message":%d}' % i)


def test_batch_to_msgpack(harness):
    ws, c = harness.connect(subprotocols=[MP])
    s = harness.server
    s.subscribe(c, "c")
    s.publish_wait_with_type("c", b"\x01", MessageType.BINARY, 1, "bin", 0)
    m = recv_map(ws)
    assert m["message"] == {"messages": [b"\x01"], "name": "bin"}
