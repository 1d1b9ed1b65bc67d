#!/usr/bin/env python3
"""The OpenResty chat example (examples/openresty/run.sh) under test:
nginx with two workers on a free loopback port, under a temp prefix of its
own, started and stopped by its PID.

  - a chat through nginx (subscribe, broadcast reaches both clients);
  - POST /publish taken by either worker reaches the subscriber, each
    message exactly once (both workers seen, so one was not the engine's);
  - measured and printed, not asserted (no timing thresholds in tests):
    the wake-up latency of the engine's loop after an idle second, and the
    CPU time the idle workers spend in 5 s;
  - nginx -s reload: clients get 1001 "server shutdown", reconnect to the
    new workers' engine and chat again;
  - nginx -s quit: clients get 1001, nginx exits 0.

Usage: python3 examples/openresty/test.py
Prints "openresty: N passed, N failed" last; exits 0 when all passed.
"""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from chat_harness import ChatServer, Tally  # noqa: E402
from nginx_procs import cpu_ticks, stop, workers_of  # noqa: E402

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # older websockets
    from websockets import connect  # type: ignore
from websockets.exceptions import ConnectionClosed  # noqa: E402

TIMEOUT = 5.0
tally = Tally()
check = tally.check


def nginx_pids(srv):
    """(master pid, prefix) from run.sh's address line."""
    m = re.search(r"nginx pid (\d+), prefix (\S+),", "".join(srv.lines))
    return int(m.group(1)), m.group(2)


def nginx_cmd(prefix, *args):
    return ["nginx", "-p", prefix, "-c", os.path.join(prefix, "conf",
                                                       "nginx.conf"), *args]


async def recv_json(ws, timeout=TIMEOUT):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def subscribe(ws, channel, mid="s1"):
    await ws.send(json.dumps({"type": "json", "channel": channel,
                              "message": {"action": "subscribe",
                                          "channel": channel},
                              "message_id": mid}))
    return await recv_json(ws)


async def broadcast(ws, channel, text):
    await ws.send(json.dumps({"type": "json", "channel": channel,
                              "message": {"action": "broadcast",
                                          "text": text}}))


async def connect_retry(url, seconds=15):
    """A new connection once the (new) engine takes them."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await connect(url, open_timeout=TIMEOUT)
        except (OSError, Exception):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def expect_close(ws):
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except (ConnectionClosed, asyncio.TimeoutError):
        pass
    return ws.close_code, ws.close_reason


def post(port, channel, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/publish?channel={channel}",
        data=body.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        return r.status, r.headers.get("X-Worker")


async def scenario(srv):
    port = srv.port
    url = f"ws://127.0.0.1:{port}/ws"
    master, prefix = nginx_pids(srv)

    a = await connect(url)
    b = await connect(url)
    for ws in (a, b):
        env = await subscribe(ws, "room")
        check(env["message"] == {"status": "subscribed", "channel": "room"},
              f"subscribed through nginx: {env['message']}")
    await broadcast(a, "room", "hi")
    for ws in (a, b):
        env = await recv_json(ws)
        check(env["message"] == {"action": "broadcast", "text": "hi"},
              "a broadcast through nginx reaches both clients")

    # Publishing from either worker.
    workers = set()
    got = []
    for i in range(40):
        status, pid = await asyncio.to_thread(post, port, "room",
                                              json.dumps({"n": i}))
        workers.add(pid)
        if status != 202:
            break
        got.append((await recv_json(a))["message"])
    check(got == [{"n": i} for i in range(40)],
          f"40 POST /publish reach the subscriber once each, in order "
          f"({len(got)} arrived)")
    check(len(workers) == 2, f"both workers took publishes: {sorted(workers)}")
    env = await recv_json(b)
    check(env["message"] == {"n": 0}, "the other subscriber gets them too")
    for _ in range(39):
        await recv_json(b)

    # Wake-up latency after an idle second, and busy.
    idle, busy = [], []
    for i in range(10):
        await asyncio.sleep(1.0)
        t0 = time.perf_counter()
        await broadcast(a, "room", f"idle {i}")
        await recv_json(a)
        idle.append((time.perf_counter() - t0) * 1000)
        await recv_json(b)
    for i in range(50):
        t0 = time.perf_counter()
        await broadcast(a, "room", f"busy {i}")
        await recv_json(a)
        busy.append((time.perf_counter() - t0) * 1000)
        await recv_json(b)
    idle.sort()
    busy.sort()
    print(f"  measured: round trip after 1 s idle: median {idle[5]:.2f} ms, "
          f"max {idle[-1]:.2f} ms; back to back: median {busy[25]:.2f} ms, "
          f"max {busy[-1]:.2f} ms")
    pids = workers_of(master)
    t0 = {p: cpu_ticks(p) for p in pids}
    await asyncio.sleep(5)
    ticks = sum(cpu_ticks(p) - t0[p] for p in pids)
    hz = os.sysconf("SC_CLK_TCK")
    print(f"  measured: idle CPU of {len(pids)} workers over 5 s: "
          f"{ticks / hz * 1000:.0f} ms ({ticks / hz / 5 * 100:.2f}% of a core)")

    # Reload: 1001, reconnect, chat again.
    rc = subprocess.run(nginx_cmd(prefix, "-s", "reload"),
                        capture_output=True, text=True)
    check(rc.returncode == 0, f"nginx -s reload exits 0 {rc.stderr.strip()}")
    for name, ws in (("a", a), ("b", b)):
        code, reason = await expect_close(ws)
        check((code, reason) == (1001, "server shutdown"),
              f"reload: client {name} gets close {code} {reason!r}")
    a = await connect_retry(url)
    b = await connect_retry(url)
    for ws in (a, b):
        env = await subscribe(ws, "room")
        check(env["message"]["status"] == "subscribed",
              "after the reload a new connection subscribes")
    await broadcast(b, "room", "after reload")
    for ws in (a, b):
        env = await recv_json(ws)
        check(env["message"] == {"action": "broadcast",
                                 "text": "after reload"},
              "after the reload broadcasts reach both clients")
    status, _ = await asyncio.to_thread(post, port, "room", '"posted"')
    env = await recv_json(a)
    check(status == 202 and env["message"] == "posted",
          "after the reload POST /publish works")
    await recv_json(b)

    # Quit: 1001, nginx exits.
    rc = subprocess.run(nginx_cmd(prefix, "-s", "quit"),
                        capture_output=True, text=True)
    check(rc.returncode == 0, f"nginx -s quit exits 0 {rc.stderr.strip()}")
    for name, ws in (("a", a), ("b", b)):
        code, reason = await expect_close(ws)
        check((code, reason) == (1001, "server shutdown"),
              f"quit: client {name} gets close {code} {reason!r}")
    try:
        status = await asyncio.to_thread(srv.proc.wait, 15)
    except subprocess.TimeoutExpired:
        status = None
    check(status == 0, f"run.sh exits 0 after nginx -s quit (got {status})")
    check(not os.path.exists(f"/proc/{master}"), "the nginx master is gone")


def main():
    srv = ChatServer(os.path.join(HERE, "run.sh"))
    master = None
    try:
        master, _ = nginx_pids(srv)
        asyncio.run(asyncio.wait_for(scenario(srv), 180))
    except Exception as e:  # report, don't hide
        check(False, f"scenario raised {type(e).__name__}: {e}")
    finally:
        # Whatever happened, nothing of ours is left running.
        stop(srv.proc)
        if master and os.path.exists(f"/proc/{master}"):
            os.kill(master, signal.SIGKILL)
    if tally.failed:
        print("server output:\n" + "".join(srv.lines[-60:]))
    print(f"openresty: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
