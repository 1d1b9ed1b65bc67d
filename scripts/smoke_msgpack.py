#!/usr/bin/env python3
"""A MessagePack client and a JSON (browser-like) client chat in one channel
through a chat example (issue 5), whose handlers know nothing of formats.

Runs against either example, unchanged:

  python3 scripts/smoke_msgpack.py build/examples/wsnotify-chat
  python3 scripts/smoke_msgpack.py examples/python/chat.py

Over real sockets, with client A offering `wsnotify.msgpack` and client B
offering nothing (as a browser does):
  - A's negotiated subprotocol is wsnotify.msgpack, B's is none;
  - both subscribe to "room" (A in MessagePack); each gets its confirmation,
    A as a binary frame holding exactly the MessagePack map, B as JSON text;
  - A broadcasts a MessagePack message with strings, integers of every
    MessagePack width, floats, booleans, nil, nested maps and arrays: B
    receives exactly the expected JSON text, A exactly the expected
    MessagePack bytes, both with the same time stamp;
  - B broadcasts JSON: A receives exactly the expected MessagePack bytes;
  - A may also send a JSON text frame: B gets JSON, A gets MessagePack;
  - the chat protocol is JSON objects only, so a `binary`-type message (a
    MessagePack bin from A, base64 from B) is handed to the handler and
    ignored by it: the next broadcast is the next thing either client sees;
  - malformed input from A gets the error map in MessagePack, in a binary
    frame: not MessagePack, MessagePack that is not a map, a field of the
    wrong type, an unknown type, and bad JSON in a text frame;
  - SIGTERM: exit status 0, both clients see close 1001.

No sleeps: every check awaits a frame (timeouts are failure bounds only);
"nothing else arrived" is shown by the next expected frame being next.
Exits 0 when every check passed; prints "msgpack: N passed, N failed" last.
"""

import asyncio
import base64
import json
import os
import re
import signal
import sys

import msgpack

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # older websockets
    from websockets import connect  # type: ignore

from websockets.exceptions import ConnectionClosed

from chat_harness import ROOT, Tally, run_scenario

TIMEOUT = 5.0
TIME_RE = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"

tally = Tally()
check = tally.check


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack_pairs(data):
    """The map as a list of (key, value) pairs, nested maps too, so that
    key order is part of every comparison."""
    return msgpack.unpackb(data, raw=False, object_pairs_hook=list,
                           strict_map_key=False)


async def recv_frame(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def recv_mp(ws, what):
    """A's next frame: must be binary; returns (raw bytes, pairs)."""
    f = await recv_frame(ws)
    if not check(isinstance(f, bytes), f"{what}: arrives in a binary frame"):
        return b"", []
    return f, unpack_pairs(f)


async def recv_js(ws, what):
    """B's next frame: must be text; returns (text, pairs)."""
    f = await recv_frame(ws)
    if not check(isinstance(f, str), f"{what}: arrives in a text frame"):
        return "", []
    return f, json.loads(f, object_pairs_hook=list)


def field(pairs, key):
    for k, v in pairs:
        if k == key:
            return v
    return None


# One message with every MessagePack integer width (fixint, uint8/16/32/64,
# negative fixint, int8/16/32/64), floats, nil, booleans, unicode, nested
# containers (empty ones too). The C example re-serialises with jansson and
# the Python one with json: both keep key order, as the protocol requires.
RICH = {
    "action": "broadcast",
    "text": "héllo, wörld ✓ \"quoted\" \\ tab\t",
    "ints": [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32,
             2 ** 40, 2 ** 63 - 1, -1, -32, -33, -128, -129, -32768, -32769,
             -2 ** 31, -2 ** 31 - 1, -2 ** 63],
    "floats": [0.5, -1.25, 123456.75, -0.0078125],
    "flags": [True, False, None],
    "nested": {"k": {"deep": ["x", {"y": []}]}, "empty": {}},
    "ключ": "значение",
}
RICH_JSON = json.dumps(RICH, ensure_ascii=False, separators=(",", ":"))

FROM_B = {"action": "broadcast", "from": "b", "n": 42, "neg": -7,
          "pi": 3.25, "list": ["a", 1, None, True], "map": {"z": 1, "a": 2}}
# what B types: whitespace and all; the server drops the whitespace
FROM_B_TEXT = json.dumps({"type": "json", "channel": "room",
                          "message": FROM_B, "message_id": "b-1"}, indent=1)


def expected_mp(channel, time_, message, message_id=None, reply_to_id=None):
    env = {"channel": channel, "type": "json", "time": time_,
           "message": message}
    if message_id:
        env["message_id"] = message_id
    if reply_to_id:
        env["reply_to_id"] = reply_to_id
    return pack(env)


def expected_js(channel, time_, message_json, message_id=None,
                reply_to_id=None):
    s = (f'{{"channel":{json.dumps(channel)},"type":"json",'
         f'"time":"{time_}","message":{message_json}')
    if message_id:
        s += f',"message_id":{json.dumps(message_id)}'
    if reply_to_id:
        s += f',"reply_to_id":{json.dumps(reply_to_id)}'
    return s + "}"


async def expect_error(a, frame, error, what):
    await a.send(frame)
    raw, pairs = await recv_mp(a, what)
    if not raw:
        return
    cid = field(pairs, "client_id")
    t = field(pairs, "time")
    ok = (isinstance(cid, str) and re.fullmatch(r"c_\d+", cid) is not None
          and isinstance(t, str) and re.fullmatch(TIME_RE, t) is not None)
    exp = pack({"client_id": cid, "error": error, "reply_to": "", "time": t,
                "type": "error"}) if ok else None
    check(ok and raw == exp,
          f"{what}: exactly the MessagePack error map with error={error!r}"
          f" (got {pairs})")


async def broadcast_seen_by_both(a, b, message, what):
    """B sends a JSON broadcast; both see exactly it next. Proves that
    nothing else was queued before it for either client."""
    await b.send(json.dumps({"type": "json", "channel": "room",
                             "message": message}))
    text = json.dumps(message, separators=(",", ":"))
    raw, pairs = await recv_mp(a, f"{what} (A)")
    t = field(pairs, "time") if raw else None
    check(raw and raw == expected_mp("room", t, message),
          f"{what}: A's next frame is exactly this broadcast ({pairs})")
    js, _ = await recv_js(b, f"{what} (B)")
    check(js == expected_js("room", t, text),
          f"{what}: B's next frame is exactly this broadcast ({js})")


async def scenario(srv):
    url = f"ws://127.0.0.1:{srv.port}/ws"

    a = await connect(url, subprotocols=["wsnotify.msgpack"])
    b = await connect(url)  # browser-like: no subprotocol offered
    check(a.subprotocol == "wsnotify.msgpack",
          f"A negotiated wsnotify.msgpack (got {a.subprotocol!r})")
    check(b.subprotocol is None,
          f"B negotiated no subprotocol (got {b.subprotocol!r})")

    # -- subscribe: A in MessagePack, B in JSON --------------------------
    await a.send(pack({"type": "json", "channel": "room",
                       "message": {"action": "subscribe", "channel": "room"},
                       "message_id": "sub-a"}))
    raw, pairs = await recv_mp(a, "A's subscribe confirmation")
    t = field(pairs, "time")
    check(isinstance(t, str) and re.fullmatch(TIME_RE, t) is not None,
          f"A's confirmation has an RFC 3339 time: {t!r}")
    check(raw == expected_mp("room", t, {"status": "subscribed",
                                         "channel": "room"},
                             reply_to_id="sub-a"),
          f"A's confirmation is exactly the MessagePack map: {pairs}")

    await b.send(json.dumps({"type": "json", "channel": "room",
                             "message": {"action": "subscribe",
                                         "channel": "room"},
                             "message_id": "sub-b"}))
    js, pairs = await recv_js(b, "B's subscribe confirmation")
    t = field(pairs, "time")
    check(isinstance(t, str) and re.fullmatch(TIME_RE, t) is not None
          and js == expected_js("room", t,
                                '{"status":"subscribed","channel":"room"}',
                                reply_to_id="sub-b"),
          f"B's confirmation is exactly the JSON envelope: {js}")

    # -- A (MessagePack) -> both -----------------------------------------
    await a.send(pack({"type": "json", "channel": "room", "message": RICH,
                       "message_id": "a-1"}))
    js, jp = await recv_js(b, "A's broadcast at B")
    t = field(jp, "time")
    check(isinstance(t, str) and re.fullmatch(TIME_RE, t) is not None
          and js == expected_js("room", t, RICH_JSON),
          "B receives A's MessagePack broadcast as exactly the expected JSON"
          + ("" if js == expected_js("room", t, RICH_JSON) else
             f"\n       got      {js}\n       expected "
             f"{expected_js('room', t, RICH_JSON)}"))
    raw, pairs = await recv_mp(a, "A's broadcast back at A")
    check(raw == expected_mp("room", t, RICH),
          "A receives its broadcast as exactly the expected MessagePack, "
          "same time stamp as B's" + ("" if raw == expected_mp("room", t, RICH)
                                      else f"\n       got {pairs}"))
    check(unpack_pairs(raw) == unpack_pairs(pack(
        {"channel": "room", "type": "json", "time": t, "message": RICH}))
          if raw else False,
          "... decoded: the same values in the same key order")

    # -- a float whose shortest text is not its %.17g text ---------------
    # A float64 from MessagePack becomes JSON text for the handler; B may
    # see 1.0000000000000001e-5 rather than 1e-05: the same double.
    # Compared by value here; A's bytes stay exact.
    odd = {"action": "broadcast", "f": [1e-05, 0.1, 1 / 3]}
    await a.send(pack({"type": "json", "channel": "room", "message": odd}))
    js, jp = await recv_js(b, "A's float broadcast at B")
    t = field(jp, "time")
    got = json.loads(js) if js else None
    check(got == {"channel": "room", "type": "json", "time": t,
                  "message": odd} and [k for k, _ in jp] ==
          ["channel", "type", "time", "message"],
          f"B receives floats with their exact double values: {js}")
    raw, pairs = await recv_mp(a, "A's float broadcast at A")
    check(raw == expected_mp("room", t, odd),
          f"A receives the floats as exactly these float64s: {pairs}")

    # -- the largest uint64 ------------------------------------------------
    # Valid MessagePack and valid JSON, but beyond jansson's int64: a
    # handler that parses and re-encodes it could drop the broadcast. B
    # gets the exact digits; A gets it as a float64 (docs/differences.md).
    big = {"action": "broadcast", "u": 2**64 - 1}
    await a.send(pack({"type": "json", "channel": "room", "message": big}))
    js, jp = await recv_js(b, "A's uint64 broadcast at B")
    t = field(jp, "time")
    check(js == expected_js("room", t,
                            '{"action":"broadcast","u":18446744073709551615}'),
          f"B receives 2^64-1 with its exact digits: {js}")
    raw, pairs = await recv_mp(a, "A's uint64 broadcast at A")
    msg = dict(field(pairs, "message") or []) if raw else {}
    check(msg.get("u") == float(2**64 - 1) and isinstance(msg.get("u"), float),
          f"A receives 2^64-1 as the float64 {float(2**64 - 1)!r}: {pairs}")

    # -- B (JSON) -> both -------------------------------------------------
    await b.send(FROM_B_TEXT)
    raw, pairs = await recv_mp(a, "B's broadcast at A")
    t = field(pairs, "time") if raw else None
    check(raw == expected_mp("room", t, FROM_B),
          f"A receives B's JSON broadcast as exactly the expected "
          f"MessagePack map: {pairs}")
    js, _ = await recv_js(b, "B's broadcast back at B")
    check(js == expected_js("room", t,
                            json.dumps(FROM_B, separators=(",", ":"))),
          f"B receives its broadcast as exactly the expected JSON: {js}")

    # -- the MessagePack client may send a JSON text frame ---------------
    await a.send(json.dumps({"type": "json", "channel": "room",
                             "message": {"action": "broadcast",
                                         "via": "text frame from A"}}))
    msg = {"action": "broadcast", "via": "text frame from A"}
    raw, pairs = await recv_mp(a, "A's JSON text broadcast at A")
    t = field(pairs, "time") if raw else None
    check(raw == expected_mp("room", t, msg),
          f"A's JSON text frame: A still gets MessagePack: {pairs}")
    js, _ = await recv_js(b, "A's JSON text broadcast at B")
    check(js == expected_js("room", t, json.dumps(msg, separators=(",", ":"))),
          f"A's JSON text frame: B gets JSON: {js}")

    # -- binary-type messages: the handler sees them and ignores them ----
    await a.send(pack({"type": "binary", "channel": "room",
                       "message": b"\x00\x01\xfe\xff bytes"}))
    await b.send(json.dumps({"type": "binary", "channel": "room",
                             "message": base64.b64encode(
                                 b"\x00\x01\xfe\xff bytes").decode()}))
    await broadcast_seen_by_both(
        a, b, {"action": "broadcast", "after": "binary"},
        "binary-type messages are not relayed by the chat protocol")

    # -- malformed input from A: the error map in MessagePack ------------
    await expect_error(a, b"\xc1\x00\x01", "invalid MessagePack format",
                       "bytes that are not MessagePack")
    await expect_error(a, pack(["type", "json"]), "invalid MessagePack format",
                       "MessagePack that is not a map")
    await expect_error(a, pack({"type": "json"})[:-2],
                       "invalid MessagePack format", "a truncated map")
    await expect_error(a, pack({"type": "json", "channel": 7,
                                "message": {"action": "broadcast"}}),
                       "invalid message format", "a non-string channel")
    await expect_error(a, pack({"type": "json", "channel": "room",
                                "message": {"action": "broadcast",
                                            "b": b"\x00"}}),
                       "invalid message format", "a bin inside a json message")
    await expect_error(a, pack({"type": "dance", "channel": "room",
                                "message": {}}),
                       "unknown message type", "an unknown type")
    await expect_error(a, "{not json", "invalid JSON format",
                       "bad JSON in a text frame")
    # B, the JSON client, gets its errors as JSON
    await b.send(b"\xc1 binary from a JSON client is a binary message")
    await b.send("not json either")
    js, jp = await recv_js(b, "B's bad JSON")
    cid = field(jp, "client_id")
    t = field(jp, "time")
    check(isinstance(cid, str) and re.fullmatch(r"c_\d+", cid) is not None
          and isinstance(t, str)
          and js == (f'{{"client_id":"{cid}","error":"invalid JSON format",'
                     f'"reply_to":"","time":"{t}","type":"error"}}'),
          f"B's bad JSON gets exactly the JSON error envelope: {js}")
    # none of that reached the channel, and both are still connected
    await broadcast_seen_by_both(
        a, b, {"action": "broadcast", "after": "errors"},
        "errors went to the sender only; both clients still chat")

    # -- graceful stop ----------------------------------------------------
    rc = await asyncio.to_thread(srv.stop, signal.SIGTERM)
    check(rc == 0, f"SIGTERM: exit status 0 (got {rc})")
    for name, ws in (("A", a), ("B", b)):
        extra = []
        try:
            while True:
                extra.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
        except (ConnectionClosed, asyncio.TimeoutError):
            pass
        check(not extra and ws.close_code == 1001
              and ws.close_reason == "server shutdown",
              f"client {name} sees close {ws.close_code} {ws.close_reason!r}"
              f" and no other frame ({extra})")


def main():
    program = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "build", "examples", "wsnotify-chat")
    run_scenario(tally, program, f"msgpack + JSON chat through {program}", scenario)
    print(f"msgpack: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
