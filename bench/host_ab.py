#!/usr/bin/env python3
"""Interleaved A/B runs of the 1-subscriber "host handler" cells: what one
incoming message costs a server whose handler runs in a host language.

With one subscriber every delivery is one message through the host's
handler (receive, event, handler, publish, send), so server CPU per
delivery is the host's cost per incoming message. On a machine shared with
other work, throughput alone misleads; this script runs the servers round
robin (A, B, C, A, B, C, ...) so that each sees the same background, and
reports medians of server CPU time per delivery (the number
docs/benchmarks.md compares) with the context switches per delivery of the
server's threads.

  bench/host_ab.py --rounds 5 \\
      --server 'py-before=/tmp/venv-old/bin/python old/examples/python/chat.py --port {port}' \\
      --server 'py-after=.venv/bin/python examples/python/chat.py --port {port}' \\
      --server 'c-chat=build/examples/wsnotify-chat --port {port}' \\
      --server 'node-ws=node bench/peers/node-ws/server.js --port {port}'

Each run: a fresh server pinned to --server-cpu, wsn-loadgen (fanout, one
subscriber; one invocation per --phase) pinned to --loadgen-cpu,
the server stopped by its PID. Raw rows go to --out (JSON lines).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (bench/run.py: Running, loadgen_cmd, ...)


def threads(pid: int) -> dict:
    """Per thread of pid ("comm/tid"): nanoseconds on a CPU (schedstat) and
    context switches (voluntary + involuntary)."""
    out = {}
    try:
        for t in Path(f"/proc/{pid}/task").iterdir():
            comm = (t / "comm").read_text().strip()
            ns = int((t / "schedstat").read_text().split()[0])
            n = 0
            for line in (t / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches",
                                    "nonvoluntary_ctxt_switches")):
                    n += int(line.split()[1])
            out[f"{comm}/{t.name}"] = (ns, n)
    except OSError:
        pass
    return out


def one_phase(args, srv, r, rnd, ph, load, logdir, out) -> list:
    """One loadgen invocation (one phase, fresh connections) against the
    running server r; returns its row."""
    extra = ["--subs", "1", "--warmup", str(args.warmup), "--duration",
             str(args.duration), "--drain", "2", "--phase", ph]
    cmd = bench.loadgen_cmd(args, r.port, r.pid, "fanout", extra)
    before = threads(r.pid)
    res = bench.run_loadgen(cmd, 120, logdir / f"hostab-{srv.name}.log")
    after = threads(r.pid)
    rows = []
    for x in res:
        if "error" in x:
            print(f"[host_ab] {srv.name} round {rnd}: {x['error']}", file=sys.stderr)
            continue
        got = x["received"]  # warm-up and drain included, like the threads' times
        per_thread = {}
        for key, (ns, sw) in after.items():
            ns0, sw0 = before.get(key, (0, 0))
            comm = key.split("/")[0]
            t = per_thread.setdefault(comm, [0.0, 0.0])
            t[0] += (ns - ns0) / 1000 / got
            t[1] += (sw - sw0) / got
        row = dict(server=srv.name, round=rnd, size=x["size"], window=x["window"],
                   deliveries_per_s=x["deliveries_per_s"],
                   server_cpu_pct=x["server_cpu_pct"],
                   us_per_delivery=x["server_cpu_pct"] / 100 / x["deliveries_per_s"] * 1e6,
                   threads={k: dict(us_per_delivery=round(v[0], 3),
                                    switches_per_delivery=round(v[1], 3))
                            for k, v in per_thread.items()},
                   loadavg1=load, cmd=" ".join(r.cmd), loadgen_cmd=" ".join(cmd))
        rows.append(row)
        if out:
            out.write(json.dumps(row) + "\n")
            out.flush()
        split = ", ".join(f"{k} {v['us_per_delivery']:.2f} µs {v['switches_per_delivery']:.2f} sw"
                          for k, v in row["threads"].items())
        print(f"[host_ab] r{rnd} {srv.name:>12} {x['size']:>5} B W {x['window']:>3}: "
              f"{row['us_per_delivery']:6.2f} µs/delivery "
              f"{x['deliveries_per_s'] / 1000:7.1f} k/s (load {load:.2f}; {split})",
              file=sys.stderr, flush=True)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", action="append", required=True,
                   help="NAME=COMMAND with {port}; repeatable")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--phase", action="append", default=[],
                   help="SIZE:W (default 64:20 64:100 1024:20 1024:100)")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--duration", type=float, default=2.5)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--loadgen-cpu", type=int, default=1)
    p.add_argument("--out", default="", help="JSON lines of every run")
    args = p.parse_args()
    phases = args.phase or ["64:20", "64:100", "1024:20", "1024:100"]
    servers = []
    for spec in args.server:
        name, _, cmd = spec.partition("=")
        servers.append(bench.Server(name, name, shlex.split(cmd)))
    logdir = Path(args.out).parent if args.out else Path("/tmp")
    out = open(args.out, "a") if args.out else None
    rows = []
    for rnd in range(args.rounds):
        for srv in servers:
            load = float(Path("/proc/loadavg").read_text().split()[0])
            r = bench.Running(srv, args, logdir, f"hostab-{srv.name}-{rnd}")
            time.sleep(0.3)  # past the interpreter's start-up
            try:
                for ph in phases:
                    rows += one_phase(args, srv, r, rnd, ph, load, logdir, out)
            finally:
                r.stop()
    # medians
    print("\n| server | size | W | µs/delivery (median) | min–max | k deliveries/s "
          "(median) | per thread: µs, switches per delivery (medians) | runs |")
    print("|---|---:|---:|---:|---|---:|---|---:|")
    for srv in servers:
        for ph in phases:
            size, w = (int(v) for v in ph.split(":"))
            sel = [x for x in rows if x["server"] == srv.name and x["size"] == size
                   and x["window"] == w]
            if not sel:
                continue
            us = [x["us_per_delivery"] for x in sel]
            rate = statistics.median(x["deliveries_per_s"] for x in sel) / 1000
            comms = sorted({k for x in sel for k in x["threads"]})
            split = "; ".join(
                f"{c} {statistics.median(x['threads'].get(c, {}).get('us_per_delivery', 0) for x in sel):.2f}"
                f", {statistics.median(x['threads'].get(c, {}).get('switches_per_delivery', 0) for x in sel):.2f}"
                for c in comms)
            print(f"| {srv.name} | {size} | {w} | {statistics.median(us):.2f} | "
                  f"{min(us):.2f}–{max(us):.2f} | {rate:.1f} | {split} | {len(sel)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
