"""How the binding hands incoming messages to handlers cheaply (issue 21):
events taken in batches, msg.raw copied once, msg.message decoded only when
read, and what that means for a message kept after its handler returned."""

from __future__ import annotations

import json
import queue
import threading

import pytest

from wsnotify import IncomingMessage, MessageType, RawJSON, Server

from conftest import TIMEOUT, ws_connect


def test_raw_exact_when_message_never_read(harness):
    # The handler reads msg.raw only; msg.message is decoded later, outside
    # it, from the message's own copy of the payload.
    raws = []
    harness.message_hook = lambda client, msg: raws.append(msg.raw)
    ws, c = harness.connect()
    ws.send('{"type":"json","channel":"c","message": {"n": 1.50e3, '
            '"big": 123456789012345678901234567890, "s": "\\u00e9\\n"} }')
    _, msg = harness.next_message()
    assert raws == [b'{"n":1.50e3,"big":123456789012345678901234567890,'
                    b'"s":"\\u00e9\\n"}']
    assert isinstance(raws[0], RawJSON)
    assert msg.message == {"n": 1500.0,
                           "big": 123456789012345678901234567890,
                           "s": "é\n"}


def test_message_read_after_handler_returned(harness):
    # Messages kept past their handler (and past the batch they came in,
    # whose events are freed) still give raw and decode message.
    kept = []
    harness.message_hook = lambda client, msg: kept.append(msg)
    ws, c = harness.connect()
    ws.send('{"type":"json","channel":"a","message":{"k":[1,2]},'
            '"message_id":"m1","reply_to_id":"r1"}')
    ws.send('{"type":"text","channel":"b","message":"h\\u00e9"}')
    ws.send(b"\x00\xffbin")
    for _ in range(3):
        harness.next_message()
    # more traffic, so the first batch is long gone
    for i in range(50):
        ws.send(json.dumps({"type": "json", "message": i}))
    for _ in range(50):
        harness.next_message()
    j, t, b = kept[:3]
    assert j == IncomingMessage(MessageType.JSON, "a", {"k": [1, 2]}, "m1",
                                "r1", c.id)
    assert j.raw == b'{"k":[1,2]}'
    assert (t.type, t.channel, t.message, t.raw) == (MessageType.TEXT, "b",
                                                     "hé", "hé".encode())
    assert (b.type, b.message, b.raw) == (MessageType.BINARY, b"\x00\xffbin",
                                          b"\x00\xffbin")
    assert [m.message for m in kept[3:]] == list(range(50))


def test_undecoded_message_survives_pickle_and_copy(harness):
    import copy
    import pickle
    kept = []
    harness.message_hook = lambda client, msg: kept.append(msg)
    ws, c = harness.connect()
    ws.send('{"type":"json","channel":"c","message":{"a":[1,"x"]}}')
    harness.next_message()
    for m in (pickle.loads(pickle.dumps(kept[0])), copy.deepcopy(kept[0]),
              copy.copy(kept[0])):
        assert m.message == {"a": [1, "x"]}
        assert m.raw == b'{"a":[1,"x"]}' and isinstance(m.raw, RawJSON)
        assert m == kept[0]


def test_message_is_read_only_and_compares_by_value():
    m = IncomingMessage(MessageType.JSON, "c", {"a": 1}, "m", "", "c_1",
                        RawJSON(b'{"a":1}'))
    with pytest.raises(AttributeError):
        m.channel = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        m.message = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        m.other = 1  # type: ignore[attr-defined]
    # raw takes no part in equality, as in the dataclass it replaces
    assert m == IncomingMessage(MessageType.JSON, "c", {"a": 1}, "m", "",
                                "c_1")
    assert m != IncomingMessage(MessageType.JSON, "c", {"a": 2}, "m", "",
                                "c_1")
    h = IncomingMessage(MessageType.TEXT, "c", "x")
    assert hash(h) == hash(IncomingMessage(MessageType.TEXT, "c", "x"))
    assert "message='x'" in repr(h)


def test_burst_in_order_with_a_message_bigger_than_a_batch(make_harness):
    # Hundreds of messages queue up while the handler is slow, so they are
    # taken many per call; one of them is bigger than the batch's arena
    # (256 KiB) and goes through the event itself. Order and bytes hold.
    # 600 messages at once: no inbound rate limit.
    harness = make_harness(client_rate=0)
    gate = threading.Event()
    first = []

    def hook(client, msg):
        if not first:
            first.append(msg)
            gate.wait(TIMEOUT)  # the rest queue up meanwhile

    harness.message_hook = hook
    ws, c = harness.connect(max_size=None)
    big = "y" * (300 * 1024)
    sent = []
    for i in range(600):
        text = big if i == 300 else "x" * (i % 200)
        sent.append(text)
        ws.send(json.dumps({"type": "text", "channel": f"ch{i % 7}",
                            "message": text, "message_id": f"m{i}"}))
    gate.set()
    got = [harness.next_message()[1] for _ in range(600)]
    assert [m.message for m in got] == sent
    assert [m.raw for m in got] == [s.encode() for s in sent]
    assert [m.message_id for m in got] == [f"m{i}" for i in range(600)]
    assert [m.channel for m in got] == [f"ch{i % 7}" for i in range(600)]


class _Stop(BaseException):
    """Not an Exception: it leaves the serving loop, as Ctrl-C does."""


def test_events_of_a_batch_survive_a_handler_leaving_the_loop():
    # A BaseException from a handler ends serve_forever() in the middle of
    # a batch. The events already taken but not handled no longer show on
    # the event fd; serving again handles them at once, in order, none lost
    # or repeated, without waiting for new traffic.
    server = Server(port=0)
    seen: "queue.Queue" = queue.Queue()

    @server.on_message
    def on_message(client, msg):
        seen.put(msg.message)
        if msg.message == 3:
            raise _Stop()

    server.start()
    try:
        ws = ws_connect(server.url)
        # one frame holding every message, so that they are queued together
        ws.socket.sendall(b"".join(
            _masked_text(json.dumps({"type": "json", "message": m}))
            for m in list(range(10)) + ["last"]))
        with pytest.raises(_Stop):
            server.serve_forever()
        got = [seen.get(timeout=TIMEOUT) for _ in range(4)]
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        got += [seen.get(timeout=TIMEOUT) for _ in range(7)]
        assert got == list(range(10)) + ["last"]
        assert seen.empty()
        ws.close()
    finally:
        server.shutdown(5)
    t.join(TIMEOUT)
    assert not t.is_alive()


def _masked_text(text: str) -> bytes:
    """A masked text frame (mask 0: the payload goes as it is)."""
    data = text.encode()
    assert len(data) < 126
    return bytes([0x81, 0x80 | len(data), 0, 0, 0, 0]) + data


def test_handler_may_dispatch_again(harness_unserved):
    # A handler that serves events itself (dispatch_events) goes on with
    # the batch its caller was in: every message handled once, in order.
    server = harness_unserved
    seen = []

    @server.on_message
    def on_message(client, msg):
        seen.append(msg.message)
        if msg.message == 0:
            server.dispatch_events(0)

    ws = ws_connect(server.url)
    for i in range(20):
        ws.send(json.dumps({"type": "json", "message": i}))
    for _ in range(1000):
        if len(seen) >= 20:
            break
        server.dispatch_events(TIMEOUT)
    assert seen == list(range(20))
    ws.close()


@pytest.fixture
def harness_unserved():
    server = Server(port=0)
    server.start()
    yield server
    server.shutdown(5)
