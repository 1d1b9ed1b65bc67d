"""RawJSON: publishing JSON text as it is, and forwarding what a client sent
(IncomingMessage.raw) without decoding and encoding it again."""

from __future__ import annotations

import json
import queue

import pytest

import wsnotify
from wsnotify import InvalidArgumentError, MessageType, RawJSON

from conftest import TIMEOUT, expect_envelope


def test_rawjson_type():
    assert RawJSON('{"a":"é"}') == '{"a":"é"}'.encode("utf-8")
    assert RawJSON(b"[1]") == b"[1]"
    assert RawJSON(bytearray(b"[2]")) == b"[2]"
    assert RawJSON(memoryview(b"[3]")) == b"[3]"
    r = RawJSON("1")
    assert isinstance(r, bytes) and type(r) is RawJSON
    assert repr(r) == "RawJSON(b'1')"
    assert wsnotify.RawJSON is RawJSON and "RawJSON" in wsnotify.__all__
    for bad in (5, None, [1], {"a": 1}):
        with pytest.raises(TypeError, match="RawJSON takes JSON text"):
            RawJSON(bad)


def test_incoming_json_raw_is_compact_rawjson(harness):
    ws, c = harness.connect()
    ws.send('{"type": "json", "channel": "c", "message": '
            '{ "b" : [1, 2.5, "x"], "a": {"z": null} }}')
    _, msg = harness.next_message()
    assert isinstance(msg.raw, RawJSON)
    assert msg.raw == b'{"b":[1,2.5,"x"],"a":{"z":null}}'
    assert msg.message == {"b": [1, 2.5, "x"], "a": {"z": None}}
    assert list(msg.message) == ["b", "a"]  # key order kept
    ws.send('{"type":"json","channel":"c"}')  # no message: null
    _, msg = harness.next_message()
    assert msg.message is None and msg.raw == b"null"
    assert isinstance(msg.raw, RawJSON)


def test_incoming_text_and_binary_raw_are_plain_bytes(harness):
    ws, c = harness.connect()
    ws.send('{"type":"text","channel":"c","message":"hi"}')
    _, msg = harness.next_message()
    assert type(msg.raw) is bytes and msg.raw == b"hi" and msg.message == "hi"
    ws.send(b"\x00\x01")
    _, msg = harness.next_message()
    assert type(msg.raw) is bytes and msg.raw == b"\x00\x01"
    assert msg.message == b"\x00\x01"


def test_forward_raw_from_handler(harness):
    s = harness.server
    sub, sc = harness.connect()
    pub, pc = harness.connect()
    s.subscribe(sc, "room")

    def forward(client, msg):
        if msg.message.get("action") == "broadcast":
            s.publish(msg.channel, msg.raw)

    harness.message_hook = forward
    text = {"action": "broadcast", "text": "héllo \"q\"", "n": [1, 2]}
    pub.send(json.dumps({"type": "json", "channel": "room", "message": text}))
    # json.dumps escapes é as \u00e9: the sender's text goes out as written
    # (minified), not re-encoded.
    expect_envelope(sub, '{"channel":"room","type":"json","time":"T",'
                         '"message":{"action":"broadcast","text":"h\\u00e9llo '
                         '\\"q\\"","n":[1,2]}}')


def test_forwarded_raw_skips_the_check_a_user_rawjson_gets(harness):
    """msg.raw is text the core made, published again without a second
    check; a RawJSON the application made (or a subclass of it) is still
    validated."""
    s = harness.server
    ws, c = harness.connect()
    s.subscribe(c, "c")
    ws.send('{"type":"json","channel":"c","message":{"x" : [1, 2]}}')
    _, msg = harness.next_message()
    s.publish("c", msg.raw)
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T",'
                        '"message":{"x":[1,2]}}')

    class Mine(RawJSON):
        __slots__ = ()

    for bad in (RawJSON('{"x":'), Mine('{"x":'), RawJSON(b'1\x00')):
        with pytest.raises(wsnotify.InvalidArgumentError):
            s.publish("c", bad)
    s.publish("c", Mine('{ "y" : 2 }'))
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T",'
                        '"message":{"y":2}}')


def test_publish_rawjson_everywhere(harness):
    s = harness.server
    ws, c = harness.connect()
    s.subscribe(c, "c")
    s.publish("c", RawJSON(' { "a" : [ 1 , true ] } '))
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T",'
                        '"message":{"a":[1,true]}}')
    s.publish("c", RawJSON(b'"a string"'))
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T",'
                        '"message":"a string"}')
    s.publish_with_type("c", RawJSON("[1]"), MessageType.JSON, "m1", "r1")
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T","message":'
                        '[1],"message_id":"m1","reply_to_id":"r1"}')
    s.publish_to_client(c, "", RawJSON('{"x":1}'), reply_to_id="r2")
    expect_envelope(ws, '{"channel":"","type":"json","time":"T","message":'
                        '{"x":1},"reply_to_id":"r2"}')
    # A TEXT publish of a RawJSON is the text itself (it is bytes).
    s.publish_with_type("c", RawJSON("[2]"), MessageType.TEXT)
    expect_envelope(ws, '{"channel":"c","type":"text","time":"T",'
                        '"message":"[2]"}')


def test_publish_wait_rawjson(harness):
    s = harness.server
    ws, c = harness.connect()
    s.subscribe(c, "c")
    s.publish_wait("c", RawJSON('{"k": 1}'), 7, "batch", 0.05)
    s.publish_wait("c", {"k": 1}, 7, "batch", 0.05)  # the same: kept once
    s.publish_wait("c", RawJSON("2"), 7, "batch", 0.05)
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T","message":'
                        '{"messages":[{"k":1},2],"name":"batch"}}')


@pytest.mark.parametrize("bad", ['{"a":', "", "nope", "[1] [2]", '{"a":1}\0',
                                 b"\xff"])
def test_publish_invalid_rawjson(harness, bad):
    s = harness.server
    ws, c = harness.connect()
    s.subscribe(c, "c")
    with pytest.raises(InvalidArgumentError) as ei:
        s.publish("c", RawJSON(bad))
    assert ei.value.code == wsnotify._core.lib.WSN_EJSON
    with pytest.raises(InvalidArgumentError):
        s.publish_to_client(c, "c", RawJSON(bad))
    # nothing of the refused ones went out: the next frame is this one
    s.publish("c", 1)
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T",'
                        '"message":1}')


def test_many_queued_events_in_order(make_harness):
    """Events queued while the handler is slow are all dispatched, in order,
    with their own fields (one wsn_event_info reused per event)."""
    h = make_harness(client_rate=0)  # hundreds of messages at once
    gate = queue.Queue()
    first = []

    def slow_first(client, msg):
        if not first:
            first.append(msg)
            gate.get(timeout=TIMEOUT)  # hold the serving thread

    h.message_hook = slow_first
    ws, c = h.connect()
    n = 300
    for i in range(n):
        ws.send(json.dumps({"type": "json", "channel": f"ch{i}",
                            "message": {"i": i}, "message_id": f"m{i}",
                            "reply_to_id": "" if i % 2 else f"r{i}"}))
    gate.put(None)
    for i in range(n):
        _, msg = h.next_message()
        assert (msg.channel, msg.message, msg.message_id, msg.reply_to_id,
                msg.raw, msg.client_id) == (
            f"ch{i}", {"i": i}, f"m{i}", "" if i % 2 else f"r{i}",
            ('{"i":%d}' % i).encode(), c.id)


def test_json_get_string():
    from wsnotify import NotFoundError, WsnotifyTypeError, json_get_string
    doc = (' {"action" : "broadcast", "n": 1, "o": {"action": "inner"},'
           ' "e": "a\\"b\\u00e9\\ud83d\\ude00", "k": "1", "k": "2"} ')
    assert json_get_string(doc, "action") == "broadcast"
    assert json_get_string(doc.encode(), "e") == 'a"bé\U0001f600'
    assert json_get_string(RawJSON(doc), "k") == "2"  # the last one counts
    assert json_get_string(bytearray(b'{"s":""}'), "s") == ""
    with pytest.raises(NotFoundError):
        json_get_string(doc, "inner")  # only the top level
    with pytest.raises(WsnotifyTypeError):
        json_get_string(doc, "n")
    for bad in ('["action"]', '{"action":"x"', "", '{"a":"\x00"}'):
        with pytest.raises(InvalidArgumentError) as e:
            json_get_string(bad, "action")
        assert e.value.code == wsnotify._core.lib.WSN_EJSON
    with pytest.raises(TypeError):
        json_get_string(5, "action")
    with pytest.raises(TypeError):
        json_get_string("{}", 5)
    with pytest.raises(ValueError):
        json_get_string("{}", "a\0b")
    assert "json_get_string" in wsnotify.__all__


def test_json_get_string_slices_or_decodes():
    # In a text of up to 4 KiB the value is sliced out where it stands,
    # and decoded into a buffer when it is not there as it is (escapes),
    # is too long for the shim's stack buffer, or the text is bigger:
    # every way gives the decoded value.
    from wsnotify import json_get_string
    cases = [
        (r'{"a":"x","k":"plain"}', "plain"),
        (r'{"k":"\u00e9\u20ac\ud83d\ude00"}', "é€\U0001f600"),
        ('{"k":"é€\U0001f600"}', "é€\U0001f600"),
        # escaped, and the same bytes stand earlier in the text
        (r'{"x":"ab","k":"a\u0062"}', "ab"),
        (r'{"k":"a\nb"}', "a\nb"),
        (r'{"k":""}', ""),
        ('{"k":"' + "y" * 255 + '"}', "y" * 255),
        ('{"k":"' + "y" * 256 + '"}', "y" * 256),
        ('{"k":"' + r"\u00e9" * 300 + '"}', "é" * 300),
        (r'{"k":"first","k":"second"}', "second"),
        (r'{"k":"kk","k":"k"}', "k"),
        # over 4 KiB: always the buffer
        ('{"p":"' + "x" * 5000 + '","k":"v"}', "v"),
    ]
    for text, want in cases:
        for arg in (text, text.encode(), RawJSON(text), bytearray(text.encode()),
                    memoryview(text.encode())):
            assert json_get_string(arg, "k") == want, (text, type(arg))


def test_dispatch_on_action_from_handler(harness):
    # A handler that reads only "action" and forwards the rest untouched,
    # as the C chat example does; a 100 KB message goes through whole.
    from wsnotify import json_get_string
    s = harness.server
    sub, sc = harness.connect()
    pub, pc = harness.connect()
    s.subscribe(sc, "room")
    seen = queue.Queue()

    def dispatch(client, msg):
        action = json_get_string(msg.raw, "action")
        seen.put(action)
        if action == "broadcast":
            s.publish(msg.channel, msg.raw)

    harness.message_hook = dispatch
    big = "x" * 100_000
    pub.send('{"channel":"room","message":{"text":"%s","action":"broadcast"}}'
             % big)
    pub.send('{"channel":"room","message":{"action":"noop"}}')
    expect_envelope(sub, '{"channel":"room","type":"json","time":"T",'
                         '"message":{"text":"%s","action":"broadcast"}}' % big)
    assert seen.get(timeout=TIMEOUT) == "broadcast"
    assert seen.get(timeout=TIMEOUT) == "noop"
