#!/usr/bin/env python3
"""End-to-end check of the C chat example (examples/chat).

Starts the built binary on a free port, then, over real sockets:
  - GET / serves the page;
  - two clients subscribe to one channel and get their confirmation, as a
    reply to their message id, sent to them alone;
  - a broadcast from one reaches both, and not a client of another channel;
  - a subscribe to an invalid channel gets an error reply;
  - a frame that is not JSON gets the error envelope;
  - a client that stops reading while it broadcasts to itself is closed
    for backpressure, and the others are still served;
  - SIGTERM (then, in a second run, SIGINT) stops the server with exit
    status 0 and every client sees close 1001 "server shutdown";
  - GET /metrics is 404 in those runs; a third run with --metrics
    --metrics-token T answers 401 without the token and, with it, the
    Prometheus text whose counts follow a client's connect and subscribe.

Usage: python3 scripts/smoke_chat.py [path/to/wsnotify-chat]
Exits 0 when every check passed; prints "N passed, N failed" last.
"""

import asyncio
import base64
import json
import os
import re
import signal
import socket
import struct
import sys
import time
import urllib.error
import urllib.request

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # older websockets
    from websockets import connect  # type: ignore

from websockets.exceptions import ConnectionClosed

from chat_harness import ROOT, Tally, run_scenario

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


def slow_reader(port, max_sends=2000, payload=16384):
    """A raw client with a small receive window subscribes to a channel of
    its own and broadcasts 16 KiB messages to it without reading, until a
    send fails or max_sends; then reads until the connection ends. It keeps
    within the engine's default inbound rate (client_rate 100/s, burst
    200): 150 at once, then 90 a second, so that what closes it is its full
    queue, not its rate (behind OpenResty's proxy that takes some 450).
    Returns
    (sends, how it ended: "1001 <reason>", another code, or "eof"); None
    when the connection did not end (bounded: 10 s of reading)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1024)
    s.settimeout(TIMEOUT)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())

    def frame(obj):
        data = json.dumps(obj).encode()  # masked with a zero key: as is
        n = len(data)
        head = (struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else
                struct.pack("!BBH", 0x81, 0x80 | 126, n))
        return head + b"\0\0\0\0" + data

    s.sendall(frame({"type": "json", "channel": "slow",
                     "message": {"action": "subscribe", "channel": "slow"}}))
    wire = frame({"type": "json", "channel": "slow",
                  "message": {"action": "broadcast", "text": "x" * payload}})
    sends = 0
    start = time.monotonic()
    try:
        for sends in range(1, max_sends + 1):
            if sends > 150:
                time.sleep(max(0.0, start + (sends - 150) / 90 - time.monotonic()))
            s.sendall(wire)
    except OSError:
        pass  # the server closed it: what follows reads how
    buf = b""
    in_header = True  # the 101 response comes first
    deadline = time.monotonic() + 10
    s.settimeout(1.0)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 20)
        except TimeoutError:
            continue
        except OSError:
            return sends, "eof"
        if not chunk:
            return sends, "eof"
        buf += chunk
        if in_header:
            if b"\r\n\r\n" not in buf:
                continue
            buf = buf.split(b"\r\n\r\n", 1)[1]
            in_header = False
        while len(buf) >= 2:  # skip data frames, stop at a close frame
            n, off = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, off = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, off = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < off + n:
                break
            if buf[0] & 0x0F == 0x8:
                body = buf[off:off + n]
                return sends, f"{struct.unpack('!H', body[:2])[0]} {body[2:].decode()}"
            buf = buf[off + n:]
    return sends, None


async def logged(srv, text, timeout=TIMEOUT):
    """Whether the server printed a line holding text within timeout (its
    output is read by another thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in srv.lines):
            return True
        await asyncio.sleep(0.05)
    return False


async def broadcast(sender, receivers, text):
    """sender broadcasts text to "room"; [(name, the envelope each of
    receivers, {name: ws}, gets next)]."""
    await sender.send(json.dumps({
        "type": "json", "channel": "room",
        "message": {"action": "broadcast", "text": text}}))
    return [(name, await recv_json(ws)) for name, ws in receivers.items()]


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

    for name, env in await broadcast(a, {"a": a, "b": b}, "hello from a"):
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

    # A client that stops reading is closed, and nobody waits for it. It
    # sees the close frame if it reads within close_grace, else the cut.
    sends, ended = await asyncio.to_thread(slow_reader, srv.port)
    check(ended in ("1001 going away: backpressure", "eof"),
          f"a client that stops reading is closed ({ended!r} after {sends} broadcasts)")
    check(await logged(srv, "send queue full, closing (going away: backpressure)"),
          "the server logged why it closed the slow client")
    for name, env in await broadcast(a, {"a": a, "b": b}, "after the slow one"):
        check(env.get("message") == {"action": "broadcast",
                                     "text": "after the slow one"},
              f"client {name} is still served: {env}")

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


def http_get(url, headers=None):
    """(status, body) of a GET, errors included."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}),
                         timeout=TIMEOUT) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sample(text, name):
    """The value of the sample line `name value` (labels included in name)."""
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


async def metrics_scenario(srv, token):
    url = f"http://127.0.0.1:{srv.port}/metrics"
    status, _ = await asyncio.to_thread(http_get, url)
    check(status == 401, f"--metrics-token: GET /metrics without it is 401 (got {status})")
    auth = {"Authorization": f"Bearer {token}"}
    status, text = await asyncio.to_thread(http_get, url, auth)
    check(status == 200 and sample(text, "wsnotify_connections") == 0,
          f"with the token: 200 and no connection yet ({status})")
    ws = await connect(f"ws://127.0.0.1:{srv.port}/ws")
    await ws.send(json.dumps({
        "type": "json", "channel": "room",
        "message": {"action": "subscribe", "channel": "room"}, "message_id": "s"}))
    await recv_json(ws)
    status, text = await asyncio.to_thread(http_get, url, auth)
    want = {"wsnotify_connections": 1, "wsnotify_connections_accepted_total": 1,
            'wsnotify_messages_received_total{type="json"}': 1,
            "wsnotify_subscriptions": 1, "wsnotify_channels": 1}
    got = {k: sample(text, k) for k in want}
    check(status == 200 and got == want, f"the counts follow the client: {got}")
    await ws.close()
    rc = await asyncio.to_thread(srv.stop, signal.SIGTERM)
    check(rc == 0, f"SIGTERM with --metrics: exit status 0 (got {rc})")


async def without_metrics(srv, sig):
    status = (await asyncio.to_thread(http_get, f"http://127.0.0.1:{srv.port}/metrics"))[0]
    check(status == 404, f"no --metrics: GET /metrics is 404 (got {status})")
    await scenario(srv, sig)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        ROOT, "build", "examples", "wsnotify-chat")
    for sig in (signal.SIGTERM, signal.SIGINT):
        run_scenario(tally, binary, f"chat smoke run, stopping with {signal.Signals(sig).name}",
                     lambda srv, sig=sig: without_metrics(srv, sig))
    run_scenario(tally, binary, "chat smoke run with --metrics --metrics-token",
                 lambda srv: metrics_scenario(srv, "smoke-t0ken"),
                 ("--metrics", "--metrics-token", "smoke-t0ken"))
    print(f"chat: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
