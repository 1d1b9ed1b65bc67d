#!/usr/bin/env python3
"""Issue 16 item 9: the server at its file-descriptor limit.

The server runs with RLIMIT_NOFILE = --nofile (default 64). Connections
are opened (WebSocket handshake, then held) until one is not answered
within --handshake-timeout: the kernel still queues it on the listener,
but the server cannot accept it. With that one waiting, the server's CPU
time (utime + stime of all threads, /proc/PID/stat) is read over --window
seconds, with what it logged meanwhile. Then --release served connections
close, and the script times whether the waiting connection and a fresh one
are served.

  python3 conformance/hostile/fd_exhaustion.py [--nofile 64] \\
      -- build/examples/wsnotify-chat --port 0

Prints one JSON line. "cpu_at_limit" is CPU seconds per wall second (1.0 =
one core busy). With --strace (strace installed) the accept() calls and
their failures in the window are counted too."""

import argparse
import re
import shutil
import subprocess
import sys
import time

from hostile_lib import Client, Server, emit, server_args


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


def main():
    own, cmd = server_args(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nofile", type=int, default=64)
    ap.add_argument("--max-conns", type=int, default=1000, help="bound on connections opened")
    ap.add_argument("--handshake-timeout", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=2.0, help="CPU measured over, s")
    ap.add_argument("--release", type=int, default=5, help="served connections then closed")
    ap.add_argument("--strace", action="store_true", help="also count accept() calls (strace -c)")
    args = ap.parse_args(own)
    if not cmd:
        ap.error("give the chat server command after --")

    srv = Server(cmd, nofile=args.nofile)
    result = {"item": 9, "test": "fd_exhaustion", "server": " ".join(cmd), "nofile": args.nofile}
    held, waiting = [], None
    try:
        time.sleep(0.5)
        idle0, t0 = srv.cpu_s(), time.monotonic()
        time.sleep(args.window)
        result["cpu_idle"] = round((srv.cpu_s() - idle0) / (time.monotonic() - t0), 3)

        for _ in range(args.max_conns):
            try:
                c = Client(srv.port, timeout=args.handshake_timeout)
            except TimeoutError:
                break
            except (ConnectionError, OSError) as e:
                result["open_error"] = f"{type(e).__name__}: {e}"
                break
            held.append(c)
        result["served_before_limit"] = len(held)
        # The one the server could not accept, queued by the kernel: its
        # handshake request is sent; its answer is read later.
        waiting = Client(srv.port, timeout=args.handshake_timeout, protocol=None)
        waiting.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             b"Sec-WebSocket-Protocol: wsnotify.json\r\n\r\n")
        lines0 = len(srv.lines)
        cpu0, t0 = srv.cpu_s(), time.monotonic()
        time.sleep(args.window)
        wall = time.monotonic() - t0
        result["cpu_at_limit"] = round((srv.cpu_s() - cpu0) / wall, 3)
        result["window_s"] = round(wall, 2)
        logged = srv.lines[lines0:]
        result["log_lines_at_limit"] = len(logged)
        result["log_sample"] = [line.strip()[:160] for line in logged[:3]]
        if args.strace:
            result["strace"] = count_accepts(srv.pid, args.window)

        # Seats freed: is the waiting one served, and a new one?
        for c in held[:args.release]:
            c.close()
        held = held[args.release:]
        t1 = time.monotonic()
        waiting.sock.settimeout(10.0)
        try:
            answer = waiting.sock.recv(4096)
            result["waiting_served"] = answer.startswith(b"HTTP/1.1 101")
            result["waiting_served_after_s"] = round(time.monotonic() - t1, 3)
        except (TimeoutError, OSError) as e:
            result["waiting_served"] = False
            result["waiting_error"] = f"{type(e).__name__}: {e}"
        try:
            t2 = time.monotonic()
            fresh = Client(srv.port, timeout=10.0)
            fresh.subscribe("after")
            result["new_client_served"] = True
            result["new_client_s"] = round(time.monotonic() - t2, 3)
            fresh.close()
        except (ConnectionError, OSError) as e:
            result["new_client_served"] = False
            result["new_client_error"] = f"{type(e).__name__}: {e}"
        cpu1, t3 = srv.cpu_s(), time.monotonic()
        time.sleep(args.window)
        result["cpu_after_release"] = round((srv.cpu_s() - cpu1) / (time.monotonic() - t3), 3)
    finally:
        for c in held:
            c.close()
        if waiting:
            waiting.close()
        result["server_exit"] = srv.stop()
    emit(result)


if __name__ == "__main__":
    main()
