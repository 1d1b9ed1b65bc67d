#!/usr/bin/env python3
"""The authentication check (issue 20) on a chat example started with
--auth-token: a client with ?token= and one with "Authorization: Bearer"
chat; a client without the token, and one with a wrong token, get 401 with
the example's body; /healthz and the page need no token; SIGTERM exits 0.

Usage: python3 scripts/smoke_auth_chat.py path/to/chat-example
Exits 0 when every check passed; prints "N passed, N failed" last.
"""

import asyncio
import json
import signal
import sys
import urllib.request

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # older websockets
    from websockets import connect  # type: ignore
from websockets.exceptions import InvalidStatus

from chat_harness import ChatServer, Tally

TIMEOUT = 10.0
TOKEN = "s3cr3t-token"
tally = Tally()
check = tally.check


def aconnect(url, headers=None):
    kw = {"open_timeout": TIMEOUT, "ping_interval": None}
    if headers:
        try:
            return connect(url, additional_headers=headers, proxy=None, **kw)
        except TypeError:  # older websockets: extra_headers, no proxy
            return connect(url, extra_headers=headers, **kw)
    try:
        return connect(url, proxy=None, **kw)
    except TypeError:
        return connect(url, **kw)


async def subscribe_and_chat(ws, name):
    await ws.send(json.dumps({"type": "json", "channel": "room", "message_id": name,
                              "message": {"action": "subscribe", "channel": "room"}}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return reply.get("message") == {"status": "subscribed", "channel": "room"}


async def refused(url, headers=None):
    try:
        async with aconnect(url, headers):
            return None, None
    except InvalidStatus as e:
        body = e.response.body
        return e.response.status_code, bytes(body).decode() if body else ""


async def scenario(srv):
    base = f"ws://127.0.0.1:{srv.port}/ws"
    http = f"http://127.0.0.1:{srv.port}"
    status = urllib.request.urlopen(f"{http}/healthz", timeout=TIMEOUT).status
    check(status == 200, f"/healthz needs no token ({status})")
    status = urllib.request.urlopen(f"{http}/", timeout=TIMEOUT).status
    check(status == 200, f"the page needs no token ({status})")
    async with aconnect(f"{base}?token={TOKEN}") as a, \
            aconnect(base, {"Authorization": f"Bearer {TOKEN}"}) as b:
        check(await subscribe_and_chat(a, "a"), "?token= client subscribes")
        check(await subscribe_and_chat(b, "b"), "Bearer client subscribes")
        await a.send(json.dumps({"type": "json", "channel": "room",
                                 "message": {"action": "broadcast", "text": "hi"}}))
        got = [json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["message"]
               for ws in (a, b)]
        check(got == [{"action": "broadcast", "text": "hi"}] * 2,
              f"the broadcast reaches both ({got})")
    for what, url, headers in [("no token", base, None),
                               ("a wrong token", f"{base}?token=nope", None),
                               ("a wrong bearer", base, {"Authorization": "Bearer nope"})]:
        code, body = await refused(url, headers)
        check((code, body) == (401, "bad or missing token"),
              f"{what}: 401 'bad or missing token' ({code} {body!r})")


def main():
    program = sys.argv[1]
    srv = ChatServer(program, extra_args=["--auth-token", TOKEN])
    try:
        asyncio.run(asyncio.wait_for(scenario(srv), 60))
    except Exception as e:  # report, don't hide
        check(False, f"scenario raised {type(e).__name__}: {e}")
    finally:
        rc = srv.stop(signal.SIGTERM)
        check(rc == 0, f"SIGTERM: exit status {rc}")
    if tally.failed:
        print("server output:\n" + "".join(srv.lines))
    print(f"auth: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
