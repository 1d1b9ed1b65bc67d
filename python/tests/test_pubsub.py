"""Pub/sub through the Python API: envelopes byte for byte, subscribe /
unsubscribe, publish_to_client, errors (C: test_pubsub)."""

from __future__ import annotations

import base64
import json
import socket

import pytest

from wsnotify import (ClientGoneError, InvalidArgumentError, LimitError,
                      MessageType)

from conftest import TIMEOUT, expect_envelope, normalize, ws_connect


def env(channel, mtype, message, mid=None, rid=None):
    s = (f'{{"channel":{json.dumps(channel, ensure_ascii=False)},'
         f'"type":"{mtype}","time":"T","message":{message}')
    if mid:
        s += f',"message_id":{json.dumps(mid)}'
    if rid:
        s += f',"reply_to_id":{json.dumps(rid)}'
    return s + "}"


def test_envelope_json(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    s.publish("c", {"a": 1})
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T",'
                        '"message":{"a":1}}')
    s.publish_with_type("c", {"a": 1})
    expect_envelope(ws, env("c", "json", '{"a":1}'))
    s.publish_with_type("c", {"a": 1}, MessageType.JSON, "", "")
    expect_envelope(ws, env("c", "json", '{"a":1}'))


def test_envelope_ids(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    s.publish_with_type("c", {"a": 1}, MessageType.JSON, "m1", "r1")
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T","message":'
                        '{"a":1},"message_id":"m1","reply_to_id":"r1"}')
    s.publish_with_type("c", 2, message_id="m2")
    expect_envelope(ws, env("c", "json", "2", mid="m2"))
    s.publish_with_type("c", 3, reply_to_id="r3")
    expect_envelope(ws, env("c", "json", "3", rid="r3"))
    s.publish_with_type("c", 4, MessageType.JSON, 'a"b', "c\\d")
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T","message":4,'
                        '"message_id":"a\\"b","reply_to_id":"c\\\\d"}')


def test_envelope_text(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    s.publish_with_type("c", 'héllo "w"\n\t\\', MessageType.TEXT, "m1", "r1")
    expect_envelope(ws, '{"channel":"c","type":"text","time":"T","message":'
                        '"héllo \\"w\\"\\n\\t\\\\","message_id":"m1",'
                        '"reply_to_id":"r1"}')
    s.publish_with_type("c", "{}", "text")  # looks like JSON: stays a string
    expect_envelope(ws, env("c", "text", '"{}"'))
    s.publish_with_type("c", "", MessageType.TEXT)
    expect_envelope(ws, env("c", "text", '""'))
    with pytest.raises(InvalidArgumentError, match="invalid argument"):
        s.publish_with_type("c", b"a\xff", MessageType.TEXT)
    with pytest.raises(UnicodeEncodeError):
        s.publish_with_type("c", "\udcff", MessageType.TEXT)


def test_envelope_binary(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    s.publish_with_type("c", bytes([0x00, 0xfb, 0xff, 0xbf, 0x10]),
                        MessageType.BINARY, "m1")
    expect_envelope(ws, '{"channel":"c","type":"binary","time":"T",'
                        '"message":"APv/vxA=","message_id":"m1"}')
    s.publish_with_type("c", bytearray([0xfb, 0xef]), MessageType.BINARY)
    expect_envelope(ws, env("c", "binary", '"++8="'))
    s.publish_with_type("c", b"", MessageType.BINARY)
    expect_envelope(ws, env("c", "binary", '""'))
    big = bytes((i * 7 + 3) & 0xFF for i in range(3001))
    s.publish_with_type("c", memoryview(big), MessageType.BINARY)
    expect_envelope(ws, env("c", "binary",
                            '"' + base64.b64encode(big).decode() + '"'))


@pytest.mark.parametrize("value,text", [
    (1, "1"), (-2.5, "-2.5"), ("s", '"s"'), ([1, 2], "[1,2]"),
    (None, "null"), (True, "true"), (False, "false"), ({}, "{}"), ([], "[]"),
    ({"a": {"b": [1, {"c": None}]}}, '{"a":{"b":[1,{"c":null}]}}'),
    ("é\u2028\U0001F600", '"é\u2028\U0001F600"'),
    # Valid JSON beyond int64 (Go's encoding/json publishes uint64 max).
    (2 ** 64 - 1, "18446744073709551615"),
])
def test_envelope_json_values(harness, value, text):
    ws, c = harness.connect()
    harness.server.subscribe(c, "c")
    harness.server.publish("c", value)
    raw = ws.recv(timeout=TIMEOUT)
    assert json.loads(raw)["message"] == value
    if "\u2028" not in text:  # the core may escape U+2028; the value holds
        assert normalize(raw) == env("c", "json", text)


def test_subscribe_idempotent(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    s.subscribe(c, "c")
    s.publish("c", 1)
    s.publish("c", 2)
    expect_envelope(ws, env("c", "json", "1"))
    expect_envelope(ws, env("c", "json", "2"))
    s.unsubscribe(c, "c")  # one unsubscribe undoes the single membership
    s.subscribe(c, "end")
    s.publish("c", 3)
    s.publish("end", 4)
    expect_envelope(ws, env("end", "json", "4"))


def test_unsubscribe_non_member(harness):
    ws, c = harness.connect()
    s = harness.server
    s.unsubscribe(c, "never")
    s.subscribe(c, "c")
    s.unsubscribe(c, "other")
    s.publish("c", 1)
    expect_envelope(ws, env("c", "json", "1"))
    with pytest.raises(ValueError, match="non-empty"):
        s.unsubscribe(c, "")


def test_unsubscribe_stops(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "a")
    s.subscribe(c, "b")
    s.publish("a", 1)
    expect_envelope(ws, env("a", "json", "1"))
    s.unsubscribe(c, "a")
    s.publish("a", 2)
    s.publish("b", 3)
    expect_envelope(ws, env("b", "json", "3"))


def test_publish_to_client(harness):
    w1, c1 = harness.connect()
    w2, c2 = harness.connect()
    s = harness.server
    s.subscribe(c1, "c")
    s.subscribe(c2, "c")
    s.publish_to_client(c1, "c", {"only": 1}, MessageType.JSON, "m1", "r1")
    s.publish_to_client(c2.id, "", "hi", MessageType.TEXT)  # by id
    s.unsubscribe(c1, "c")  # a client need not be subscribed
    s.publish_to_client(c1, "x", 5)
    s.publish("c", "end")
    expect_envelope(w1, env("c", "json", '{"only":1}', "m1", "r1"))
    expect_envelope(w1, env("x", "json", "5"))
    expect_envelope(w2, env("", "text", '"hi"'))
    expect_envelope(w2, env("c", "json", '"end"'))
    with pytest.raises(ClientGoneError, match="no connected client 'c_0'"):
        s.publish_to_client("c_0", "c", 1)
    with pytest.raises(TypeError, match="client must be a Client"):
        s.publish_to_client(42, "c", 1)


def test_publish_errors(harness):
    ws, c = harness.connect()
    s = harness.server
    with pytest.raises(ValueError):
        s.publish("", 1)
    with pytest.raises(ValueError):
        s.subscribe(c, "")
    with pytest.raises(InvalidArgumentError, match="invalid argument"):
        s.publish_to_client(c, "c", b"\xc3", MessageType.TEXT)
    with pytest.raises(ValueError, match="NUL"):
        s.publish("a\0b", 1)
    with pytest.raises(UnicodeEncodeError):
        s.publish_with_type("c", 1, message_id="\udcff")
    s.subscribe(c, "c")
    s.publish("c", "end")  # nothing from the refused calls reached it
    expect_envelope(ws, env("c", "json", '"end"'))


def test_nobody_subscribed(harness):
    harness.server.publish("nobody", {"a": 1})
    harness.server.publish_with_type("nobody", "x", MessageType.TEXT)


def test_channel_limits(make_harness):
    h = make_harness(max_channel_name=16)
    ws, c = h.connect()
    s = h.server
    name = "n" * 16
    s.subscribe(c, name)
    s.publish(name, 1)
    with pytest.raises(LimitError, match="configured size limit exceeded"):
        s.subscribe(c, name + "n")
    with pytest.raises(LimitError):
        s.publish(name + "n", 1)
    # Channel names are escaped in the envelope.
    s.subscribe(c, 'q"é')
    s.publish('q"é', 2)
    expect_envelope(ws, env(name, "json", "1"))
    expect_envelope(ws, '{"channel":"q\\"é","type":"json","time":"T",'
                        '"message":2}')


def test_multiple_channels(harness):
    ws, c = harness.connect()
    s = harness.server
    for i in range(5):
        s.subscribe(c, f"ch{i}")
    for i in reversed(range(5)):
        s.publish(f"ch{i}", i)
    for i in reversed(range(5)):
        expect_envelope(ws, env(f"ch{i}", "json", str(i)))


def test_order_preserved(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    for i in range(1000):
        if i % 3 == 0:
            s.publish("c", {"i": i})
        else:
            s.publish_to_client(c, "c", {"i": i})
    for i in range(1000):
        expect_envelope(ws, env("c", "json", f'{{"i":{i}}}'))


def test_coalesce_window_delivers(make_harness):
    """With the write-coalescing window on, a lone publish and a burst both
    arrive whole and in order."""
    h = make_harness(coalesce_window=0.05)
    ws, c = h.connect()
    s = h.server
    s.subscribe(c, "c")
    s.publish("c", "lone")
    expect_envelope(ws, env("c", "json", '"lone"'))
    for i in range(500):
        s.publish("c", {"i": i})
    for i in range(500):
        expect_envelope(ws, env("c", "json", f'{{"i":{i}}}'))


def test_client_list_and_count(harness):
    s = harness.server
    assert s.get_connected_clients() == 0
    assert s.get_client_list() == []
    conns = [harness.connect() for _ in range(3)]
    ids = [c.id for _, c in conns]
    assert s.get_connected_clients() == 3
    assert sorted(s.get_client_list()) == sorted(ids)
    assert all(s.get_client(i) is c for i, (_, c) in zip(ids, conns))
    conns[1][0].close()
    gone = harness.wait_disconnect(ids[1])
    assert gone is conns[1][1]  # the same Client object in every handler
    assert s.get_connected_clients() == 2
    assert sorted(s.get_client_list()) == sorted([ids[0], ids[2]])
    assert s.get_client(ids[1]) is None
    harness.stop()
    assert s.get_connected_clients() == 0
    assert s.get_client_list() == []


def _have_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as sk:
            sk.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6(), reason="no IPv6 loopback here")
def test_ipv6(make_harness):
    h = make_harness(host="::1")
    assert h.url == f"ws://[::1]:{h.server.port}/ws"
    ws, c = h.connect()
    assert c.remote_address == "::1"
    h.server.subscribe(c, "v6")
    h.server.publish("v6", 6)
    expect_envelope(ws, env("v6", "json", "6"))
    # same-origin with a bracketed host
    ws2 = ws_connect(h.url, origin=f"http://[::1]:{h.server.port}")
    ws2.close()


def test_subprotocol_json(harness):
    ws, c = harness.connect(subprotocols=["wsnotify.json"])
    assert ws.subprotocol == "wsnotify.json"
    assert c.subprotocol == "wsnotify.json"
    harness.server.subscribe(c, "c")
    harness.server.publish("c", 1)
    expect_envelope(ws, env("c", "json", "1"))
    ws2, c2 = harness.connect()
    assert ws2.subprotocol is None
    assert c2.subprotocol == ""


def test_subscription_cap(make_harness):
    """max_subscriptions (0.3) through the binding: the third channel is
    refused at once with LimitError, a channel already joined counts, and
    the two joined still get their publishes."""
    h = make_harness(max_subscriptions=2)
    ws, c = h.connect()
    s = h.server
    s.subscribe(c, "a")
    s.subscribe(c, "b")
    with pytest.raises(LimitError, match="configured size limit exceeded"):
        s.subscribe(c, "c")
    s.publish("c", 0)
    s.publish("a", 1)
    s.publish("b", 2)
    expect_envelope(ws, env("a", "json", "1"))
    expect_envelope(ws, env("b", "json", "2"))
