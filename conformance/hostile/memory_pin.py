#!/usr/bin/env python3
"""Issue 16 item 6: memory pinned by clients that don't read.

--conns connections (default 4), each with a small receive window,
subscribe to a channel of their own and send themselves --count broadcasts
(default 240) of about 1 MB, never reading; every few seconds each sends an
unsolicited pong, which is all the keepalive asks of it. Fewer than
send_buffer (256) frames queue per client, so write_wait never starts. The
server's RSS (VmRSS) is sampled throughout; after --duration seconds the
clients close and the RSS is read again.

  python3 conformance/hostile/memory_pin.py [--duration S] [--count N] \\
      -- build/examples/wsnotify-chat --port 0

Prints one JSON line: RSS before, at its peak, at the end of the attack and
after the clients left; "pinned_s" is how long RSS stayed above half the
way from the baseline to the peak; "still_connected" whether every attacker
was still connected when the time was up."""

import argparse
import sys
import threading
import time

from hostile_lib import Client, Server, emit, envelope, frame, server_args


def pinner(port, idx, count, msg_bytes, rcvbuf, pong_every, stop, stats):
    c = None
    try:
        c = Client(port, rcvbuf=rcvbuf, timeout=15.0, mss=1024)
        chan = f"pin-{idx}"
        c.subscribe(chan)
        stats["clients"].append(c)
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
        stats["errors"][idx] = f"{type(e).__name__}: {e}"


def main():
    own, cmd = server_args(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--count", type=int, default=240, help="broadcasts per connection")
    ap.add_argument("--msg-bytes", type=int, default=1_000_000)
    ap.add_argument("--rcvbuf", type=int, default=4096)
    ap.add_argument("--pong-every", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=30.0, help="attack time, s")
    ap.add_argument("--after", type=float, default=5.0, help="RSS watched after the clients close, s")
    args = ap.parse_args(own)
    if not cmd:
        ap.error("give the chat server command after --")

    srv = Server(cmd)
    result = {"item": 6, "test": "memory_pin", "server": " ".join(cmd)}
    stop = threading.Event()
    stats = {"clients": [], "sent": [0] * args.conns, "errors": [None] * args.conns}
    threads = []
    try:
        time.sleep(0.5)  # startup allocations settle (not synchronisation)
        base = srv.rss_mib()
        for i in range(args.conns):
            th = threading.Thread(target=pinner, daemon=True,
                                  args=(srv.port, i, args.count, args.msg_bytes, args.rcvbuf,
                                        args.pong_every, stop, stats))
            th.start()
            threads.append(th)
        samples = srv.rss_samples(args.duration)
        end_rss = srv.rss_mib()
        stop.set()
        for th in threads:
            th.join(10)
        still = all(e is None for e in stats["errors"]) and len(stats["clients"]) == args.conns
        peak_t, peak = max(samples, key=lambda s: s[1])
        half = base + (peak - base) / 2
        above = [t for t, r in samples if r > half]
        for c in stats["clients"]:
            c.close()
        after = [r for _, r in srv.rss_samples(args.after)]
        result.update({
            "conns": args.conns,
            "broadcasts_sent": sum(stats["sent"]),
            "msg_bytes": args.msg_bytes,
            "baseline_rss_mib": round(base, 1),
            "peak_rss_mib": round(peak, 1),
            "peak_at_s": round(peak_t, 1),
            "rss_at_end_mib": round(end_rss, 1),
            "pinned_s": round(above[-1] - above[0], 1) if above else 0.0,
            "attack_s": args.duration,
            "still_connected": still,
            "client_errors": [e for e in stats["errors"] if e],
            "rss_after_close_mib": round(after[-1], 1) if after else None,
            "rss_timeline_mib": [round(r) for t, r in samples[::8]],
        })
    finally:
        stop.set()
        result["server_exit"] = srv.stop()
    emit(result)


if __name__ == "__main__":
    main()
