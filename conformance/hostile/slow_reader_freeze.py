#!/usr/bin/env python3
"""Issue 16 item 5: one client that stops reading must not freeze the others.

The attacker shrinks its receive window (SO_RCVBUF 4 KiB and an MSS of
1,024 bytes, set before connect),
subscribes to a channel of its own and broadcasts to it without ever
reading; when the server drops it, it reconnects and does it again. It
runs in a process of its own. An innocent client on another channel
broadcasts to itself and waits for the echo, over and over, and measures
each round trip. A baseline of the same round trips is taken first, with
no attacker.

  python3 conformance/hostile/slow_reader_freeze.py [--duration S] [--bound-ms MS] \\
      -- build/examples/wsnotify-chat --port 0

Prints one JSON line and exits 1 when the innocent client's slowest round
trip during the attack exceeded --bound-ms (200: the issue's generous
bound), or it lost its connection; 0 otherwise. A benchmark-style check:
it measures time on a shared machine, so it is not a ctest test.
"waited_fraction" is the share of the attack's time the innocent client
spent in round trips longer than the bound."""

import argparse
import statistics
import sys
import time

from hostile_lib import (ChildAttack, Client, Server, emit, envelope, frame, percentile,
                         run_check, server_args, verdict)


def attacker(port, stop, stats, msg_bytes, rcvbuf, count=None):
    """count: broadcasts per connection (None: until dropped), then it
    only holds the connection, still reading nothing."""
    text = "x" * msg_bytes
    while not stop.is_set():
        c = None
        try:
            c = Client(port, rcvbuf=rcvbuf, timeout=15.0, mss=1024)
            chan = f"slow-{stats['connections']}"
            c.subscribe(chan)
            stats["connections"] += 1
            data = envelope(chan, {"action": "broadcast", "text": text})
            wire = frame(0x1, data)
            c.sock.settimeout(0.2)
            sent = 0
            while (count is None or sent < count) and c.send_until(wire, stop):
                stats["sent"] += 1
                sent += 1
            # A bounded attacker holds on; the server's drop shows up as an
            # error on the next send only, so it gets a pong now and then.
            while not stop.wait(0.5):
                c.send_until(frame(0xA, b""), stop)
        except (ConnectionError, OSError):
            stats["dropped"] += 1
            time.sleep(0.05)
        finally:
            if c:
                c.close()


def round_trips(client, chan, seconds, rtts, timeout_s, stop=None):
    """Broadcasts to chan, waits for the echo; returns after seconds."""
    end = time.monotonic() + seconds
    seq = len(rtts)
    while time.monotonic() < end and not (stop and stop.is_set()):
        seq += 1
        t0 = time.monotonic()
        client.send_text(envelope(chan, {"action": "broadcast", "seq": seq}))
        while True:
            client.sock.settimeout(max(0.1, timeout_s - (time.monotonic() - t0)))
            m = client.recv_json()
            if m is None:
                raise ConnectionError("innocent client closed by the server")
            msg = m.get("message")
            if isinstance(msg, dict) and msg.get("seq") == seq:
                break
        rtts.append(time.monotonic() - t0)


def main():
    own, cmd = server_args(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=30.0, help="attack time, s")
    ap.add_argument("--baseline", type=float, default=3.0, help="round trips alone first, s")
    ap.add_argument("--msg-bytes", type=int, default=16384, help="attacker's broadcast size")
    ap.add_argument("--rcvbuf", type=int, default=4096, help="attacker's SO_RCVBUF")
    ap.add_argument("--bound-ms", type=float, default=200.0)
    args = ap.parse_args(own)
    if not cmd:
        ap.error("give the chat server command after --")

    # The innocent client sends as fast as its echoes come back, and the
    # attacker as fast as it can: the per-client rate limit (client_rate,
    # issue 20) would close both with 1008 before the freeze is measured.
    if "--client-rate" not in cmd:
        cmd = cmd + ["--client-rate", "0"]
    srv = Server(cmd)
    result = {"item": 5, "test": "slow_reader_freeze", "server": " ".join(cmd)}
    att = None
    status = 2  # could not measure
    try:
        inn = Client(srv.port, timeout=15.0)
        inn.subscribe("innocent")
        base = []
        round_trips(inn, "innocent", args.baseline, base, 15.0)
        base.sort()

        att = ChildAttack(attacker, srv.port, {"connections": 0, "sent": 0, "dropped": 0},
                          args.msg_bytes, args.rcvbuf)
        rtts = []
        t0 = time.monotonic()
        error = None
        try:
            # A round trip may still be waiting when the time is up: it
            # counts, it is what the innocent client saw.
            round_trips(inn, "innocent", args.duration, rtts, args.duration + 15.0)
        except (ConnectionError, OSError) as e:
            error = f"{type(e).__name__}: {e}"
        elapsed = time.monotonic() - t0
        stats = att.stop() or {"connections": None, "sent": None, "dropped": None}
        att = None
        srt = sorted(rtts)
        bound = args.bound_ms / 1000.0
        waited = sum(r for r in rtts if r > bound)
        result.update({
            "baseline_round_trips": len(base),
            "baseline_median_ms": round(statistics.median(base) * 1000, 2) if base else None,
            "baseline_max_ms": round(base[-1] * 1000, 2) if base else None,
            "attack_s": round(elapsed, 1),
            "round_trips": len(rtts),
            "median_ms": round(statistics.median(srt) * 1000, 2) if srt else None,
            "p99_ms": round(percentile(srt, 99) * 1000, 2) if srt else None,
            "max_ms": round(srt[-1] * 1000, 2) if srt else None,
            "over_bound": sum(1 for r in rtts if r > bound),
            "bound_ms": args.bound_ms,
            "waited_s": round(waited, 2),
            "waited_fraction": round(waited / elapsed, 3) if elapsed else None,
            "attacker_connections": stats["connections"],
            "attacker_drops": stats["dropped"],
            "attacker_broadcasts_sent": stats["sent"],
            "innocent_error": error,
        })
        inn.close()
        failures = []
        if error:
            failures.append("the innocent client lost its connection: " + error)
        if srt and srt[-1] > bound:
            failures.append(f"slowest round trip {srt[-1] * 1000:.0f} ms > {args.bound_ms:.0f} ms")
        if not srt:
            failures.append("no round trip completed")
        status = verdict(result, failures)
    finally:
        if att:
            att.stop()
        rc = srv.stop()
        result["server_exit"] = rc
    emit(result)
    return status


if __name__ == "__main__":
    sys.exit(run_check(main))
