#!/usr/bin/env python3
"""How fast the OpenResty example's engine loop wakes, and what it costs idle.

Starts examples/openresty/run.sh (or the run.sh given) on free loopback
ports with two workers, subscribes one client and then, for --rounds
rounds, waits --idle seconds and times one broadcast's round trip: once
through nginx (port of the page) and once straight to the engine's port
(no proxy hop: engine read, event, the Lua handler in worker 0, publish,
engine write). Back-to-back round trips give the same path without a
wake-up. Last, the CPU time of every nginx worker over --cpu-seconds with
one idle client connected. Prints one line of JSON.

  python3 bench/openresty_wake.py [--run examples/openresty/run.sh]
      [--rounds 20] [--idle 1] [--cpu-seconds 30]

A measurement for docs/benchmarks-bindings.md, not a test (no bounds).
Needs Python's websockets (scripts/setup.sh) and the Lua module built
(bindings/lua/setup.sh --nginx); WSN_LUA_CPATH as run.sh takes it.
"""
import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from chat_harness import ChatServer  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "examples", "openresty"))
from nginx_procs import cpu_ticks, stop, workers_of  # noqa: E402

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # older websockets
    from websockets import connect  # type: ignore


async def subscribe(ws, channel):
    await ws.send(json.dumps({"type": "json", "channel": channel, "message":
                              {"action": "subscribe", "channel": channel}}))
    await asyncio.wait_for(ws.recv(), 5)


async def round_trip(ws, channel, n):
    t0 = time.perf_counter()
    await ws.send(json.dumps({"type": "json", "channel": channel, "message":
                              {"action": "broadcast", "n": n}}))
    while True:
        env = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if isinstance(env.get("message"), dict) and env["message"].get("n") == n:
            return (time.perf_counter() - t0) * 1000


def summary(ms):
    ms = sorted(ms)
    return {"median_ms": round(statistics.median(ms), 2), "max_ms": round(ms[-1], 2),
            "n": len(ms)}


async def measure(srv, engine_port, args):
    master = int(re.search(r"nginx pid (\d+)", "".join(srv.lines)).group(1))
    out = {}
    for name, port in (("through_nginx", srv.port), ("engine_port", engine_port)):
        # Host as the page's: the engine's same-origin check passes.
        ws = await connect(f"ws://127.0.0.1:{port}/ws")
        await subscribe(ws, "wake")
        idle, busy = [], []
        for i in range(args.rounds):
            await asyncio.sleep(args.idle)
            idle.append(await round_trip(ws, "wake", i))
        for i in range(args.rounds * 5):
            busy.append(await round_trip(ws, "wake", 10_000 + i))
        out[name] = {"after_idle": summary(idle), "back_to_back": summary(busy)}
        if name == "engine_port":
            pids = workers_of(master)
            t0 = {p: cpu_ticks(p) for p in pids}
            await asyncio.sleep(args.cpu_seconds)
            ticks = sum(cpu_ticks(p) - t0[p] for p in pids)
            hz = os.sysconf("SC_CLK_TCK")
            out["idle_cpu"] = {"workers": len(pids), "seconds": args.cpu_seconds,
                               "cpu_ms": round(ticks / hz * 1000),
                               "percent_of_a_core": round(ticks / hz / args.cpu_seconds * 100, 3)}
        await ws.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=os.path.join(ROOT, "examples", "openresty", "run.sh"))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--idle", type=float, default=1.0, help="seconds idle before each round")
    ap.add_argument("--cpu-seconds", type=float, default=30.0)
    args = ap.parse_args()
    srv = ChatServer(args.run, extra_args=["--workers", "2"])
    result = {"run": args.run, "load_before": os.getloadavg()[0]}
    try:
        engine_port = int(re.search(r"engine on 127\.0\.0\.1:(\d+)", "".join(srv.lines)).group(1))
        result.update(asyncio.run(measure(srv, engine_port, args)))
    finally:
        stop(srv.proc)
    result["load_after"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
