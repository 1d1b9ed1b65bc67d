#!/usr/bin/env python3
"""Issue 16 item 7: memory bounded by counts, not bytes.

Two attacks, both by default (--mode partial|queue|both), each on a fresh
server with an innocent client connected throughout (so that "the last
client left" cannot be what gives memory back):

partial: --conns connections (default 300) each send a frame header
  declaring --declared bytes (default 1,000,000, under read_limit) and
  half of it, then hold the connection --hold seconds; the server keeps
  every partial message.

queue: item 5's slow reader, while --flooders connections send ~1 MB
  broadcasts as fast as the server reads them, up to --queue-mb in all:
  the handler is slower than the I/O thread at 1 MB a message, and the
  event queue is bounded at 4,096 events, not bytes. The flood lasts
  --duration seconds.

  python3 conformance/hostile/event_queue_bytes.py [--mode both] \\
      -- build/examples/wsnotify-chat --port 0

The bounds (exit 1 when one breaks; an attack stops as soon as RSS breaks
its bound, so a failing run costs little memory):

* RSS never grows more than --max-growth-mib over the baseline: 96 for
  partial (a 64 MiB bound on the bytes held in partial messages, per
  server, and the rest), 64 for queue (a bound of 16 MiB on the bytes of
  events queued for the host, and per-client queues of about 1 MiB);
* once the attackers are gone, RSS falls back to within
  --max-residual-mib (16) of the baseline within --settle seconds (5),
  although a client is still connected (memory given back after a spike).

partial also reports how the held connections ended (close codes, EOF,
still open): the code for "no room for your message now" is the core's to
choose. --no-rss measures without the RSS bounds (sanitizer builds: then
nothing is asserted). --expect-fail: see hostile_lib.run_check. Prints one
JSON line."""

import argparse
import sys
import threading
import time

from hostile_lib import (Client, Server, emit, envelope, frame, parse_and_run, server_args,
                         verdict)
from slow_reader_freeze import attacker as slow_reader

GROWTH_DEFAULT = {"partial": 96.0, "queue": 64.0}


class Watch:
    """RSS against a growth bound, sampled by whoever drives the attack."""

    def __init__(self, srv, bound_mib):
        self.srv = srv
        self.base = srv.rss_mib()
        self.peak = self.base
        self.bound = bound_mib  # None: no bound (--no-rss)

    def over(self):
        self.peak = max(self.peak, self.srv.rss_mib())
        return self.bound is not None and self.peak - self.base > self.bound


def how_it_ended(c):
    """"open", "eof", or the close code the server sent (the client never
    read: whatever came before the close frame is skipped)."""
    c.sock.settimeout(0.05)
    try:
        while True:
            op, payload = c.recv_frame()
            if op == 0x8:
                return str(int.from_bytes(payload[:2], "big")) if len(payload) >= 2 else "1005"
    except TimeoutError:
        return "open"
    except (ConnectionError, OSError):
        return "eof"


def partial_attack(srv, args, watch):
    half = args.declared // 2
    head = envelope("p", {"action": "broadcast", "text": ""})[:-4]  # an envelope's start
    body = head + b"x" * (half - len(head))
    wire = frame(0x1, body, declared_len=args.declared)
    clients, errors = [], []
    t0 = time.monotonic()
    for _ in range(args.conns):
        if watch.over():
            break
        try:
            c = Client(srv.port, timeout=10.0)
            c.send_raw(wire)
            clients.append(c)
        except (ConnectionError, OSError) as e:
            errors.append(f"{type(e).__name__}: {e}")
            if len(errors) > 10:
                break
    sent_s = time.monotonic() - t0
    # Held: the server reads what is in its socket buffers meanwhile.
    end = time.monotonic() + args.hold
    while time.monotonic() < end and not watch.over():
        time.sleep(0.1)
    ended = {}
    for c in clients:
        k = how_it_ended(c)
        ended[k] = ended.get(k, 0) + 1
    for c in clients:
        c.close()
    return {
        "partial_conns": len(clients),
        "partial_declared_bytes": args.declared,
        "partial_sent_bytes_each": len(wire),
        "partial_send_s": round(sent_s, 1),
        "partial_ended": ended,
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


def queue_attack(srv, args, watch):
    stop = threading.Event()
    slow = {"connections": 0, "sent": 0, "dropped": 0}
    threads = [threading.Thread(target=slow_reader, daemon=True,
                                args=(srv.port, stop, slow, 16384, 4096, args.slow_count))]
    threads[0].start()
    time.sleep(args.lead)  # the slow reader fills its queue first (not synchronisation)
    stats = {"bytes": 0, "sent": 0, "errors": [], "lock": threading.Lock()}
    budget = args.queue_mb * 1024 * 1024
    for i in range(args.flooders):
        th = threading.Thread(target=flooder, daemon=True,
                              args=(srv.port, i, args.msg_bytes, budget, stop, stats))
        th.start()
        threads.append(th)
    t0 = time.monotonic()
    while time.monotonic() - t0 < args.duration and srv.alive() and not watch.over():
        time.sleep(0.1)
    attack_s = time.monotonic() - t0
    stop.set()
    for th in threads:
        th.join(10)
    return {
        "queue_flooders": args.flooders,
        "queue_broadcasts_sent": stats["sent"],
        "queue_mib_sent": round(stats["bytes"] / 1048576, 1),
        "queue_attack_s": round(attack_s, 1),
        "queue_slow_reader_connections": slow["connections"],
        "queue_errors": stats["errors"][:3],
    }


def one_attack(cmd, mode, fn, args, failures):
    srv = Server(cmd)
    out = {}
    innocent = None
    try:
        innocent = Client(srv.port, timeout=15.0)
        innocent.subscribe("innocent")
        time.sleep(0.5)  # startup allocations settle (not synchronisation)
        bound = None if args.no_rss else (args.max_growth_mib or GROWTH_DEFAULT[mode])
        watch = Watch(srv, bound)
        out.update(fn(srv, args, watch))
        watch.over()
        settle = srv.rss_samples(args.settle, 0.25)
        residual = min(r for _, r in settle) if settle else None
        try:
            innocent.subscribe("innocent-after")
            served = True
        except (ConnectionError, OSError):
            served = False
        out.update({
            f"{mode}_baseline_rss_mib": round(watch.base, 1),
            f"{mode}_peak_rss_mib": round(watch.peak, 1),
            f"{mode}_rss_after_settle_mib": round(residual, 1) if residual is not None else None,
            f"{mode}_innocent_still_served": served,
        })
        if bound is not None:
            if watch.peak - watch.base > bound:
                failures.append(f"{mode}: RSS grew {watch.peak - watch.base:.0f} MiB > {bound:.0f} MiB")
            if residual is None or residual - watch.base > args.max_residual_mib:
                failures.append(f"{mode}: RSS {residual:.0f} MiB {args.settle:.0f} s after the "
                                f"attackers left, > baseline {watch.base:.0f} + "
                                f"{args.max_residual_mib:.0f} MiB")
        if not served:
            failures.append(f"{mode}: the innocent client was not served after the attack")
    finally:
        if innocent:
            innocent.close()
        out[f"{mode}_server_exit"] = srv.stop()
    return out


def main(argv):
    own, cmd = server_args(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["partial", "queue", "both"], default="both")
    ap.add_argument("--conns", type=int, default=300, help="partial: connections")
    ap.add_argument("--declared", type=int, default=1_000_000, help="partial: declared frame length")
    ap.add_argument("--hold", type=float, default=10.0, help="partial: seconds held")
    ap.add_argument("--flooders", type=int, default=8, help="queue: flooding connections")
    ap.add_argument("--msg-bytes", type=int, default=1_000_000, help="queue: broadcast size")
    ap.add_argument("--queue-mb", type=int, default=1200, help="queue: MiB sent in all, at most")
    ap.add_argument("--slow-count", type=int, default=400,
                    help="queue: broadcasts per slow-reader connection: enough to block a "
                         "block-mode handler, few enough to leave the event queue to the flooders")
    ap.add_argument("--lead", type=float, default=1.0, help="queue: slow reader alone first, s")
    ap.add_argument("--duration", type=float, default=10.0, help="queue: attack time, s")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="s for RSS to come back once the attackers are gone")
    ap.add_argument("--max-growth-mib", type=float, default=None,
                    help="RSS growth bound (default: 96 partial, 64 queue)")
    ap.add_argument("--max-residual-mib", type=float, default=16.0)
    ap.add_argument("--no-rss", action="store_true", help="no RSS bounds (sanitizer builds)")
    return parse_and_run(ap, own, cmd, check)


def check(args, cmd):
    result = {"item": 7, "test": "event_queue_bytes", "server": " ".join(cmd)}
    failures = []
    for mode, fn in (("partial", partial_attack), ("queue", queue_attack)):
        if args.mode in (mode, "both"):
            result.update(one_attack(cmd, mode, fn, args, failures))
    status = verdict(result, failures)
    emit(result)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
