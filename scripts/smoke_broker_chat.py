#!/usr/bin/env python3
"""The scale-out "done" check (issue 19) on a chat example: three servers
with --broker on one redis-server (started here on a free loopback port,
ended by PID), one browser-like client on each:
  - /healthz is 200 on all three once Redis is up;
  - a broadcast from each client reaches all three, once;
  - Redis killed: /healthz 503 with the reason; a broadcast still reaches
    its own server's members (here: the sender) and no one else;
  - Redis restarted: /healthz 200 again, and the same three clients (no
    reconnect) chat across the servers again;
  - SIGTERM: every server exits 0.

Usage: python3 scripts/smoke_broker_chat.py path/to/chat-example [second third]
  with three programs, server i runs program i (chat examples of different
  bindings in one cluster, e.g. examples/openresty/run.sh twice and the C
  chat).
Exits 0 when every check passed; prints "N passed, N failed" last.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # older websockets
    from websockets import connect  # type: ignore

from chat_harness import ChatServer, Tally

TIMEOUT = 10.0
tally = Tally()
check = tally.check


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="wsn-smoke-redis-")
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [os.environ.get("WSN_REDIS_SERVER") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", self.dir,
             "--logfile", "redis.log"])
        deadline = time.monotonic() + TIMEOUT
        while True:  # until it accepts: bounded
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.01)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)
        self.proc = None

    def end(self):
        if self.proc:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def healthz(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def wait_health(ports, want):
    """Polls every server's /healthz (one request each per round, bounded)
    until all answer want; returns the last bodies."""
    deadline = time.monotonic() + 30
    while True:
        got = [healthz(p) for p in ports]
        if all(code == want for code, _ in got) or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.02)


async def recv_json(ws, timeout=TIMEOUT):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def say(ws, text):
    await ws.send(json.dumps({"type": "json", "channel": "room",
                              "message": {"action": "broadcast", "text": text}}))


async def texts_until(ws, last, timeout=TIMEOUT):
    """The broadcast texts ws gets up to and including last."""
    out = []
    while True:
        m = (await recv_json(ws, timeout)).get("message", {})
        if "text" in m:
            out.append(m["text"])
            if m["text"] == last:
                return out


async def main(programs):
    redis = Redis()
    redis.start()
    url = f"redis://127.0.0.1:{redis.port}"
    servers = []
    try:
        # Inside the try: one that fails to start leaves none running.
        for program in programs:
            servers.append(ChatServer(program, extra_args=["--broker", url]))
        ports = [s.port for s in servers]
        got = await wait_health(ports, 200)
        check(all(c == 200 for c, _ in got), f"/healthz 200 on the three servers ({got})")
        wss = [await connect(f"ws://127.0.0.1:{p}/ws") for p in ports]
        for i, ws in enumerate(wss):
            await ws.send(json.dumps({"type": "json", "channel": "room", "message_id": f"s{i}",
                                      "message": {"action": "subscribe", "channel": "room"}}))
            reply = await recv_json(ws)
            check(reply.get("message", {}).get("status") == "subscribed",
                  f"client {i} subscribed")
        # Probes until every server's subscription is live in Redis.
        for k in range(500):
            for i, ws in enumerate(wss):
                await say(ws, f"probe {k} {i}")
            seen = [set() for _ in wss]
            try:
                for j, ws in enumerate(wss):
                    for text in await texts_until(ws, f"probe {k} 2", 0.2):
                        seen[j].add(text.split()[-1])
            except asyncio.TimeoutError:
                pass
            if all(s >= {"0", "1", "2"} for s in seen):
                break
        for j, ws in enumerate(wss):  # read away the probes still coming
            await say(wss[j], f"flush {j}")
        for j, ws in enumerate(wss):
            pending = {f"flush {i}" for i in range(3)}
            while pending:
                m = (await recv_json(ws)).get("message", {})
                pending.discard(m.get("text"))

        for i, ws in enumerate(wss):
            await say(ws, f"hello from {i}")
        for j, ws in enumerate(wss):
            heard = set()
            while len(heard) < 3:
                heard.add((await recv_json(ws))["message"]["text"])
            check(heard == {f"hello from {i}" for i in range(3)},
                  f"client {j} heard every server's client once")

        redis.kill()
        got = await wait_health(ports, 503)
        check(all(c == 503 and b.startswith("broker down: ") for c, b in got),
              f"/healthz 503 with the reason while Redis is down ({got[0]})")
        await say(wss[0], "alone")
        check(await texts_until(wss[0], "alone") == ["alone"],
              "Redis down: the sender's own server still delivers")

        redis.start()
        got = await wait_health(ports, 200)
        check(all(c == 200 for c, _ in got), "/healthz 200 again after the restart")
        for i, ws in enumerate(wss):
            await say(ws, f"again from {i}")
        for j, ws in enumerate(wss):
            heard = []
            while len(heard) < 3:
                heard.append((await recv_json(ws))["message"]["text"])
            check(sorted(heard) == [f"again from {i}" for i in range(3)],
                  f"client {j}, never reconnected, heard the three after the restart "
                  f"(and not the message sent while Redis was down)")
        for ws in wss:
            await ws.close()
    finally:
        for s in servers:
            rc = s.stop(signal.SIGTERM)
            check(rc == 0, f"server on {s.port} exits 0 on SIGTERM (got {rc})")
        redis.end()


if __name__ == "__main__":
    if len(sys.argv) not in (2, 4):
        print(__doc__)
        sys.exit(2)
    try:
        asyncio.run(main(sys.argv[1:] * 3 if len(sys.argv) == 2 else sys.argv[1:]))
    except Exception as e:  # a broken step fails the run, with why
        tally.check(False, f"{type(e).__name__}: {e}")
    print(f"broker: {tally.passed} passed, {tally.failed} failed")
    sys.exit(1 if tally.failed else 0)
