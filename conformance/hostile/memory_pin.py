#!/usr/bin/env python3
"""Issue 16 item 6: memory pinned by clients that don't read.

--conns connections (default 4), each with a small receive window,
subscribe to a channel of their own and send themselves --count broadcasts
(default 240) of about 1 MB, never reading; every --pong-every seconds each
sends an unsolicited pong, which is all the keepalive asks of it. Fewer
than send_buffer (256) frames queue per client, so a bound in frames alone
never closes them. An innocent client stays connected throughout, so that
"the last client left" cannot be what gives memory back. The server's RSS
(VmRSS) is sampled all along.

  python3 conformance/hostile/memory_pin.py [--duration S] [--count N] \\
      -- build/examples/wsnotify-chat --port 0

The bounds (exit 1 when one breaks; the attack stops as soon as the first
does, so a failing run costs little memory):

* RSS never grows more than --max-growth-mib (64) over the baseline: a
  per-client queue bound of about 1 MiB in bytes keeps each attacker to a
  couple of MiB, and the event queue's byte bound (item 7) the rest;
* every attacker is closed by the server within --duration (30 s; the
  write deadline, write_wait 10 s, runs from the oldest queued frame, and
  drop mode closes at once);
* once the attackers are gone, RSS falls back to within
  --max-residual-mib (16) of the baseline within --settle seconds (5),
  although a client is still connected.

--no-rss keeps only the closing bound (sanitizer builds, whose allocators
keep freed memory on purpose). --expect-fail: see hostile_lib.run_check.
Prints one JSON line."""

import argparse
import sys
import threading
import time

from hostile_lib import (Client, Server, emit, envelope, frame, parse_and_run, server_args,
                         verdict)


def pinner(port, idx, count, msg_bytes, rcvbuf, pong_every, stop, stats):
    c = None
    try:
        c = Client(port, rcvbuf=rcvbuf, timeout=15.0, mss=1024)
        chan = f"pin-{idx}"
        c.subscribe(chan)
        stats["clients"][idx] = c
        wire = frame(0x1, envelope(chan, {"action": "broadcast", "text": "x" * msg_bytes}))
        pong = frame(0xA, b"keepalive")
        c.sock.settimeout(0.2)
        last_pong = time.monotonic()
        for _ in range(count):
            if not c.send_until(wire, stop):
                return
            stats["sent"][idx] += 1
            if time.monotonic() - last_pong > pong_every:
                c.send_until(pong, stop)
                last_pong = time.monotonic()
        # done sending: keep the keepalive happy, read nothing
        while not stop.wait(pong_every):
            c.send_until(pong, stop)
    except (ConnectionError, OSError) as e:
        # The server closed it (a send fails with EPIPE or a reset).
        stats["closed_at"][idx] = time.monotonic()
        stats["errors"][idx] = f"{type(e).__name__}: {e}"


def main(argv):
    own, cmd = server_args(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--count", type=int, default=240, help="broadcasts per connection")
    ap.add_argument("--msg-bytes", type=int, default=1_000_000)
    ap.add_argument("--rcvbuf", type=int, default=4096)
    ap.add_argument("--pong-every", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=30.0,
                    help="attack time, s; every attacker must be closed within it")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="s for RSS to come back once the attackers are gone")
    ap.add_argument("--max-growth-mib", type=float, default=64.0)
    ap.add_argument("--max-residual-mib", type=float, default=16.0)
    ap.add_argument("--no-rss", action="store_true", help="no RSS bounds (sanitizer builds)")
    return parse_and_run(ap, own, cmd, check)


def check(args, cmd):
    srv = Server(cmd)
    result = {"item": 6, "test": "memory_pin", "server": " ".join(cmd)}
    stop = threading.Event()
    n = args.conns
    stats = {"clients": [None] * n, "sent": [0] * n, "errors": [None] * n,
             "closed_at": [None] * n}
    threads = []
    failures = []
    innocent = None
    try:
        innocent = Client(srv.port, timeout=15.0)
        innocent.subscribe("innocent")
        time.sleep(0.5)  # startup allocations settle (not synchronisation)
        base = srv.rss_mib()
        t0 = time.monotonic()
        for i in range(n):
            th = threading.Thread(target=pinner, daemon=True,
                                  args=(srv.port, i, args.count, args.msg_bytes, args.rcvbuf,
                                        args.pong_every, stop, stats))
            th.start()
            threads.append(th)
        peak, peak_t, over = base, 0.0, False
        while time.monotonic() - t0 < args.duration and srv.alive():
            rss = srv.rss_mib()
            if rss > peak:
                peak, peak_t = rss, time.monotonic() - t0
            if not args.no_rss and peak - base > args.max_growth_mib:
                over = True  # the bound is broken: no need to pin a GiB
                break
            if all(stats["closed_at"]):
                break
            time.sleep(0.1)
        attack_s = time.monotonic() - t0
        closed = sum(1 for t in stats["closed_at"] if t)
        stop.set()
        for th in threads:
            th.join(10)
        for c in stats["clients"]:
            if c:
                c.close()
        # The innocent client is still there: is the memory given back?
        settle = srv.rss_samples(args.settle, 0.25)
        residual = min(r for _, r in settle) if settle else None
        innocent_ok = True
        try:
            innocent.subscribe("innocent-after")  # still served, still connected
        except (ConnectionError, OSError):
            innocent_ok = False
        result.update({
            "conns": n,
            "broadcasts_sent": sum(stats["sent"]),
            "msg_bytes": args.msg_bytes,
            "baseline_rss_mib": round(base, 1),
            "peak_rss_mib": round(peak, 1),
            "peak_at_s": round(peak_t, 1),
            "attack_s": round(attack_s, 1),
            "stopped_early_over_bound": over,
            "attackers_closed": closed,
            "closed_after_s": [round(t - t0, 1) if t else None for t in stats["closed_at"]],
            "rss_after_settle_mib": round(residual, 1) if residual is not None else None,
            "innocent_still_served": innocent_ok,
        })
        if not args.no_rss:
            if peak - base > args.max_growth_mib:
                failures.append(f"RSS grew {peak - base:.0f} MiB > {args.max_growth_mib:.0f} MiB")
            if residual is None or residual - base > args.max_residual_mib:
                failures.append(f"RSS {residual:.0f} MiB {args.settle:.0f} s after the attackers "
                                f"left, > baseline {base:.0f} + {args.max_residual_mib:.0f} MiB")
        if not over and closed < n:
            failures.append(f"{n - closed} of {n} attackers still connected after "
                            f"{attack_s:.0f} s")
        if not innocent_ok:
            failures.append("the innocent client was not served after the attack")
        status = verdict(result, failures)
    finally:
        stop.set()
        if innocent:
            innocent.close()
        result["server_exit"] = srv.stop()
    emit(result)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
