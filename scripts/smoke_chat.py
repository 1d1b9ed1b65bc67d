#!/usr/bin/env python3
"""End-to-end check of the C chat example (examples/chat).

Starts the built binary on a free port, then, over real sockets:
  - GET / serves the page;
  - two clients subscribe to one channel and get their confirmation, as a
    reply to their message id, sent to them alone;
  - a broadcast from one reaches both, and not a client of another channel;
  - a subscribe to an invalid channel gets an error reply;
  - a frame that is not JSON gets the error envelope;
  - SIGTERM (then, in a second run, SIGINT) stops the server with exit
    status 0 and every client sees close 1001 "server shutdown".

Usage: python3 scripts/smoke_chat.py [path/to/wsnotify-chat]
Exits 0 when every check passed; prints "N passed, N failed" last.
"""

import asyncio
import json
import os
import re
import signal
import sys
import urllib.request

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # older websockets
    from websockets import connect  # type: ignore

from websockets.exceptions import ConnectionClosed

from chat_harness import ROOT, ChatServer, Tally

TIMEOUT = 5.0

tally = Tally()
check = tally.check


async def recv_json(ws, timeout=TIMEOUT):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def nothing_within(ws, seconds):
    try:
        msg = await asyncio.wait_for(ws.recv(), seconds)
        return msg
    except asyncio.TimeoutError:
        return None


async def scenario(srv, sig):
    base = f"http://127.0.0.1:{srv.port}"
    url = f"ws://127.0.0.1:{srv.port}/ws"

    page = await asyncio.to_thread(
        lambda: urllib.request.urlopen(base + "/", timeout=TIMEOUT).read())
    check(b'id="log"' in page and b"/ws" in page, "GET / serves index.html")

    a = await connect(url)
    b = await connect(url)
    other = await connect(url)

    for name, ws in (("a", a), ("b", b)):
        await ws.send(json.dumps({
            "type": "json", "channel": "room",
            "message": {"action": "subscribe", "channel": "room"},
            "message_id": f"sub-{name}"}))
        env = await recv_json(ws)
        check(env.get("message") == {"status": "subscribed", "channel": "room"}
              and env.get("reply_to_id") == f"sub-{name}"
              and env.get("channel") == "room" and env.get("type") == "json",
              f"client {name} gets its subscribe confirmation: {env}")
        keys = [k for k in env if k in
                ("channel", "type", "time", "message", "message_id",
                 "reply_to_id")]
        check(list(env) == keys and keys[:4] == ["channel", "type", "time",
                                                  "message"],
              f"envelope keys in protocol order: {list(env)}")
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z",
                           env.get("time", "")) is not None,
              f"time is RFC 3339 UTC: {env.get('time')}")

    await other.send(json.dumps({
        "type": "json", "channel": "elsewhere",
        "message": {"action": "subscribe", "channel": "elsewhere"},
        "message_id": "sub-o"}))
    env = await recv_json(other)
    check(env.get("message", {}).get("status") == "subscribed",
          "third client subscribes to another channel")

    # b must not have seen a's confirmation
    check(await nothing_within(b, 0.3) is None,
          "a subscribe confirmation goes to the sender alone")

    await a.send(json.dumps({
        "type": "json", "channel": "room",
        "message": {"action": "broadcast", "text": "hello from a"}}))
    for name, ws in (("a", a), ("b", b)):
        env = await recv_json(ws)
        check(env.get("channel") == "room" and env.get("type") == "json"
              and env.get("message") == {"action": "broadcast",
                                         "text": "hello from a"}
              and "reply_to_id" not in env and "message_id" not in env,
              f"client {name} receives the broadcast: {env}")
    check(await nothing_within(other, 0.3) is None,
          "a client of another channel does not")

    await b.send(json.dumps({
        "type": "json",
        "message": {"action": "subscribe", "channel": ""},
        "message_id": "sub-empty"}))
    env = await recv_json(b)
    check(env.get("message", {}).get("status") == "error"
          and env.get("reply_to_id") == "sub-empty",
          f"subscribing to an empty channel gets an error reply: {env}")

    await b.send("this is not json")
    env = await recv_json(b)
    check(env.get("type") == "error"
          and env.get("error") == "invalid JSON format"
          and str(env.get("client_id", "")).startswith("c_"),
          f"bad JSON gets the error envelope: {env}")

    # Unknown action and broadcast without an envelope channel: ignored.
    await b.send(json.dumps({"type": "json",
                             "message": {"action": "broadcast", "text": "x"}}))
    await b.send(json.dumps({"type": "json", "channel": "room",
                             "message": {"action": "dance"}}))
    check(await nothing_within(a, 0.3) is None,
          "broadcast without channel / unknown action are ignored")

    # Graceful stop.
    rc = await asyncio.to_thread(srv.stop, sig)
    check(rc == 0, f"{signal.Signals(sig).name}: exit status 0 (got {rc})")
    for name, ws in (("a", a), ("b", b), ("other", other)):
        try:
            while True:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
        except ConnectionClosed:
            pass
        except asyncio.TimeoutError:
            pass
        check(ws.close_code == 1001 and ws.close_reason == "server shutdown",
              f"client {name} sees close {ws.close_code} "
              f"{ws.close_reason!r}")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "build", "examples", "wsnotify-chat")
    for sig in (signal.SIGTERM, signal.SIGINT):
        print(f"chat smoke run, stopping with {signal.Signals(sig).name}")
        srv = ChatServer(binary)
        try:
            asyncio.run(asyncio.wait_for(scenario(srv, sig), 60))
        except Exception as e:  # report, don't hide
            check(False, f"scenario raised {type(e).__name__}: {e}")
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()
        if tally.failed:
            print("server output:\n" + "".join(srv.lines))
    print(f"chat: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
