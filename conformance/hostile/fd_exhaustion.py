#!/usr/bin/env python3
"""Issue 16 item 9: the server at its file-descriptor limit.

The server runs with RLIMIT_NOFILE = --nofile (default 64).

1. WebSocket connections are opened (handshake, then held) until one is
   refused (HTTP 503, or closed) or not answered within
   --handshake-timeout: before the fix the kernel queues it on a listener
   the server cannot accept from, and it waits unanswered.
2. --raw more plain TCP connections are opened (each would take a file
   descriptor once accepted) and one more handshake is sent; the server's
   CPU time (utime + stime of all threads, /proc/PID/stat) is read over
   --window seconds, with what it logged meanwhile.
3. --release WebSocket connections and every raw one close; a new client
   must be served.

  python3 conformance/hostile/fd_exhaustion.py [--nofile 64] \\
      -- build/examples/wsnotify-chat --port 0

The bounds (exit 1 when one breaks):

* the connection over the limit in step 1 is answered (a refusal: 503 or
  a close), not left waiting: a max_clients default derived from
  RLIMIT_NOFILE refuses the upgrade before descriptors run out;
* no spin at the limit: at most --max-cpu (0.1) cores over the window
  (before: 1.0, accept() failing with EMFILE in a loop);
* the limit is logged: at least one line from the first plain connection
  to the end of the window and at most --max-log-lines (10), i.e.
  rate-limited;
* after step 3 a new client is served within 10 s.

"cpu_at_limit" is CPU seconds per wall second (1.0 = one core busy). With
--strace (strace installed) the accept() calls and their failures in the
window are counted too. --expect-fail: see hostile_lib.run_check. Prints
one JSON line."""

import argparse
import re
import shutil
import subprocess
import sys
import time

from hostile_lib import Client, Server, emit, parse_and_run, server_args, verdict


def count_accepts(pid, seconds):
    """accept/accept4 calls and errors over seconds, from strace -c."""
    if not shutil.which("strace"):
        return None
    p = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=accept,accept4", "-p", str(pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(seconds)
    p.send_signal(2)  # SIGINT: strace detaches and prints its table
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return None
    calls = errors = 0
    for line in err.splitlines():
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d*)\s*(accept4?)$", line)
        if m:
            calls += int(m.group(1))
            errors += int(m.group(2) or 0)
    return {"accept_calls": calls, "accept_errors": errors, "strace_s": seconds}


HANDSHAKE = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             b"Sec-WebSocket-Protocol: wsnotify.json\r\n\r\n")


def answer_of(sock, timeout):
    """What a sent handshake got: "101", "503" (any status), "eof" or
    "unanswered"."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return "unanswered"
    except OSError:
        return "eof"
    if not data:
        return "eof"
    parts = data.split(b" ", 2)
    return parts[1].decode(errors="replace") if len(parts) > 1 else "eof"


def main(argv):
    own, cmd = server_args(argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nofile", type=int, default=64)
    ap.add_argument("--max-conns", type=int, default=1000, help="bound on connections opened")
    ap.add_argument("--raw", type=int, default=64, help="plain TCP connections in step 2")
    ap.add_argument("--handshake-timeout", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=2.0, help="CPU measured over, s")
    ap.add_argument("--release", type=int, default=5, help="served connections then closed")
    ap.add_argument("--max-cpu", type=float, default=0.1, help="cores at the limit, at most")
    ap.add_argument("--max-log-lines", type=int, default=10, help="lines in the window, at most")
    ap.add_argument("--strace", action="store_true", help="also count accept() calls (strace -c)")
    return parse_and_run(ap, own, cmd, check)


def check(args, cmd):
    srv = Server(cmd, nofile=args.nofile)
    result = {"item": 9, "test": "fd_exhaustion", "server": " ".join(cmd), "nofile": args.nofile}
    failures = []
    held, raw, socks = [], [], []
    try:
        time.sleep(0.5)
        idle0, t0 = srv.cpu_s(), time.monotonic()
        time.sleep(args.window)
        result["cpu_idle"] = round((srv.cpu_s() - idle0) / (time.monotonic() - t0), 3)

        # 1. WebSocket clients up to the limit; how the one over it is met.
        over = None
        for _ in range(args.max_conns):
            c = Client(srv.port, timeout=args.handshake_timeout, protocol=None)
            socks.append(c)
            c.sock.sendall(HANDSHAKE)
            over = answer_of(c.sock, args.handshake_timeout)
            if over != "101":
                break
            held.append(c)
        result["served_before_limit"] = len(held)
        result["over_limit_answer"] = over
        if over == "unanswered":
            failures.append(f"the connection after {len(held)} clients was left unanswered for "
                            f"{args.handshake_timeout:g} s (no refusal)")

        # 2. Plain connections beyond it, one more handshake, and the
        # server watched meanwhile. Its log is read from the first plain
        # connection on: a server that refuses them says so as they come,
        # which may be before the CPU window starts.
        lines0 = len(srv.lines)
        for _ in range(args.raw):
            try:
                r = Client(srv.port, timeout=args.handshake_timeout, protocol=None)
            except OSError as e:
                result["raw_error"] = f"{type(e).__name__}: {e}"
                break
            raw.append(r)
        waiting = Client(srv.port, timeout=args.handshake_timeout, protocol=None)
        socks.append(waiting)
        waiting.sock.sendall(HANDSHAKE)
        cpu0, t0 = srv.cpu_s(), time.monotonic()
        time.sleep(args.window)
        wall = time.monotonic() - t0
        cpu = (srv.cpu_s() - cpu0) / wall
        logged = srv.lines[lines0:]
        result.update({
            "raw_opened": len(raw),
            "cpu_at_limit": round(cpu, 3),
            "window_s": round(wall, 2),
            "log_lines_at_limit": len(logged),
            "log_sample": [line.strip()[:160] for line in logged[:3]],
        })
        if args.strace:
            result["strace"] = count_accepts(srv.pid, args.window)
        result["waiting_answer"] = answer_of(waiting.sock, 0.01)
        if cpu > args.max_cpu:
            failures.append(f"{cpu:.2f} cores busy at the limit (> {args.max_cpu:g}): a spin")
        if not logged:
            failures.append("nothing logged at the limit")
        elif len(logged) > args.max_log_lines:
            failures.append(f"{len(logged)} log lines in {wall:.0f} s at the limit "
                            f"(> {args.max_log_lines}): not rate-limited")

        # 3. Seats freed: is a new client served?
        for c in held[:args.release] + raw:
            c.close()
        held, raw = held[args.release:], []
        # The server learns of the closes on its own loop: until it has,
        # its descriptors are still near the limit and it closes a new
        # socket at accept (a reset). No event tells a client when that is
        # over, so retry for up to 10 s and count the resets.
        t2 = time.monotonic()
        resets = 0
        while True:
            try:
                fresh = Client(srv.port, timeout=10.0)
                socks.append(fresh)
                fresh.subscribe("after")
                result["new_client_served"] = True
                result["new_client_s"] = round(time.monotonic() - t2, 3)
                break
            except (ConnectionError, OSError) as e:
                resets += 1
                if time.monotonic() - t2 < 10.0:
                    time.sleep(0.1)
                    continue
                result["new_client_served"] = False
                result["new_client_error"] = f"{type(e).__name__}: {e}"
                failures.append("no new client served within 10 s after connections "
                                "closed: " + result["new_client_error"])
                break
        result["new_client_resets"] = resets
        cpu1, t3 = srv.cpu_s(), time.monotonic()
        time.sleep(args.window)
        result["cpu_after_release"] = round((srv.cpu_s() - cpu1) / (time.monotonic() - t3), 3)
        status = verdict(result, failures)
    finally:
        for c in held + raw + socks:
            c.close()
        result["server_exit"] = srv.stop()
    emit(result)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
