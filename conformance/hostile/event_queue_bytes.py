#!/usr/bin/env python3
"""Issue 16 item 7: memory bounded by counts, not bytes.

Two attacks, both by default (--mode partial|queue|both):

partial: --conns connections (default 300) each send a frame header
  declaring --declared bytes (default 1,000,000, under read_limit) and
  half of it, then hold the connection; the server keeps every partial
  message. RSS is read once all are sent and after --hold seconds.

queue: item 5's slow reader blocks the chat's handler thread (block mode),
  (--slow-count 16 KiB broadcasts per connection, enough to fill its
  send_buffer, so that its own messages leave the event queue to the
  others), while --flooders connections send ~1 MB broadcasts as fast as the server
  reads them, up to --queue-mb in all: the event queue is bounded at 4,096
  events, not bytes. RSS is sampled for --duration seconds, then the
  attackers leave and RSS is sampled for --after seconds more (whether the
  memory is given back).

  python3 conformance/hostile/event_queue_bytes.py [--mode both] \\
      -- build/examples/wsnotify-chat --port 0

Prints one JSON line."""

import argparse
import sys
import threading
import time

from hostile_lib import Client, Server, emit, envelope, frame, server_args
from slow_reader_freeze import attacker as slow_reader


def partial_attack(srv, args):
    base = srv.rss_mib()
    half = args.declared // 2
    head = envelope("p", {"action": "broadcast", "text": ""})[:-4]  # an envelope's start
    body = head + b"x" * (half - len(head))
    wire = frame(0x1, body, declared_len=args.declared)
    clients, errors = [], []
    t0 = time.monotonic()
    for _ in range(args.conns):
        try:
            c = Client(srv.port, timeout=10.0)
            c.send_raw(wire)
            clients.append(c)
        except (ConnectionError, OSError) as e:
            errors.append(f"{type(e).__name__}: {e}")
            if len(errors) > 10:
                break
    sent_s = time.monotonic() - t0
    time.sleep(1.0)  # the server reads what is in its socket buffers
    at_sent = srv.rss_mib()
    time.sleep(max(0.0, args.hold - 1.0))
    at_hold = srv.rss_mib()
    for c in clients:
        c.close()
    time.sleep(args.after)
    return {
        "partial_conns": len(clients),
        "partial_declared_bytes": args.declared,
        "partial_sent_bytes_each": len(wire),
        "partial_send_s": round(sent_s, 1),
        "partial_baseline_rss_mib": round(base, 1),
        "partial_rss_all_sent_mib": round(at_sent, 1),
        "partial_rss_after_hold_mib": round(at_hold, 1),
        "partial_hold_s": args.hold,
        "partial_rss_after_close_mib": round(srv.rss_mib(), 1),
        "partial_errors": errors[:3],
    }


def flooder(port, idx, msg_bytes, budget, stop, stats):
    c = None
    try:
        c = Client(port, timeout=15.0)
        wire = frame(0x1, envelope(f"flood-{idx}", {"action": "broadcast", "text": "x" * msg_bytes}))
        c.sock.settimeout(0.2)
        while not stop.is_set():
            with stats["lock"]:
                if stats["bytes"] + len(wire) > budget:
                    break
                stats["bytes"] += len(wire)
            if not c.send_until(wire, stop):
                break
            stats["sent"] += 1
        stop.wait()  # hold the connection until the measurement ends
    except (ConnectionError, OSError) as e:
        stats["errors"].append(f"{type(e).__name__}: {e}")
    finally:
        if c:
            c.close()


def queue_attack(srv, args):
    base = srv.rss_mib()
    stop = threading.Event()
    slow = {"connections": 0, "sent": 0, "dropped": 0}
    threads = [threading.Thread(target=slow_reader, daemon=True,
                                args=(srv.port, stop, slow, 16384, 4096, args.slow_count))]
    threads[0].start()
    time.sleep(args.lead)  # give the slow reader time to fill its queue
    stats = {"bytes": 0, "sent": 0, "errors": [], "lock": threading.Lock()}
    budget = args.queue_mb * 1024 * 1024
    for i in range(args.flooders):
        th = threading.Thread(target=flooder, daemon=True,
                              args=(srv.port, i, args.msg_bytes, budget, stop, stats))
        th.start()
        threads.append(th)
    samples = srv.rss_samples(args.duration)
    stop.set()
    for th in threads:
        th.join(10)
    after = [r for _, r in srv.rss_samples(args.after)]
    peak_t, peak = max(samples, key=lambda s: s[1])
    return {
        "queue_flooders": args.flooders,
        "queue_broadcasts_sent": stats["sent"],
        "queue_mib_sent": round(stats["bytes"] / 1048576, 1),
        "queue_baseline_rss_mib": round(base, 1),
        "queue_peak_rss_mib": round(peak, 1),
        "queue_peak_at_s": round(peak_t, 1),
        "queue_attack_s": args.duration,
        "queue_rss_after_leave_mib": round(after[-1], 1) if after else None,
        "queue_after_s": args.after,
        "queue_slow_reader_connections": slow["connections"],
        "queue_errors": stats["errors"][:3],
        "queue_rss_timeline_mib": [round(r) for t, r in samples[::4]],
    }


def main():
    own, cmd = server_args(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["partial", "queue", "both"], default="both")
    ap.add_argument("--conns", type=int, default=300, help="partial: connections")
    ap.add_argument("--declared", type=int, default=1_000_000, help="partial: declared frame length")
    ap.add_argument("--hold", type=float, default=10.0, help="partial: seconds held")
    ap.add_argument("--flooders", type=int, default=8, help="queue: flooding connections")
    ap.add_argument("--msg-bytes", type=int, default=1_000_000, help="queue: broadcast size")
    ap.add_argument("--queue-mb", type=int, default=1200, help="queue: MiB sent in all, at most")
    ap.add_argument("--slow-count", type=int, default=400,
                    help="queue: broadcasts per slow-reader connection: enough to block the "
                         "handler, few enough to leave the event queue to the flooders")
    ap.add_argument("--lead", type=float, default=1.0, help="queue: slow reader alone first, s")
    ap.add_argument("--duration", type=float, default=10.0, help="queue: attack time, s")
    ap.add_argument("--after", type=float, default=5.0, help="RSS watched after the attackers leave, s")
    args = ap.parse_args(own)
    if not cmd:
        ap.error("give the chat server command after --")

    result = {"item": 7, "test": "event_queue_bytes", "server": " ".join(cmd)}
    # A fresh server per attack: the second would otherwise start from the
    # first one's heap.
    for mode, fn in (("partial", partial_attack), ("queue", queue_attack)):
        if args.mode not in (mode, "both"):
            continue
        srv = Server(cmd)
        try:
            time.sleep(0.5)  # startup allocations settle (not synchronisation)
            result.update(fn(srv, args))
        finally:
            result[f"{mode}_server_exit"] = srv.stop()
    emit(result)


if __name__ == "__main__":
    main()
