#!/usr/bin/env python3
"""Soak test: churning clients against a publishing server, with exact
delivery accounting, RSS and sanitizer/valgrind checks. Loopback only;
every phase is bounded in time.

    run_soak.py --server BUILD/conformance/wsnotify-soak-server \
                --client BUILD/conformance/wsnotify-soak-client \
                [--mode block|drop|both] [--waves 2] [--duration 120]
                [--clients 2000] [--valgrind] [--no-rss] [--min-drops 1]

For each mode it starts the server (4 publisher threads, optionally under
valgrind) and runs --waves waves of the client driver, each --duration
seconds: 2,000 clients churning (connect, subscribe to random channels,
some reading slowly, some vanishing without a close or with an RST, a few
going silent), then every client leaves.

RSS baseline: the server is started, one client connects, subscribes,
receives, leaves, and the server has had --settle seconds with no
connection (the idle server that has served a client: its code is paged
in, its I/O thread's arena exists). After each wave, the RSS is read the
same way: no connection left, --settle seconds of idle. Nothing is done to
the server in between (no malloc_trim from the test): giving memory back
is the engine's job. The idle RSS after every wave must be within
--rss-slack (10%) of the baseline or --rss-floor-kb (1,024) of it,
whichever is more (10% of a 5.5 MB baseline is 550 kB, which malloc's
own bookkeeping after 10,000 connections crossed once on a loaded
machine: +616 kB after wave 1, +396 kB after wave 2), and the peak during
the waves must be at least 1.5 times the baseline (the clients really
used memory: the peak is 12 MB above the baseline, so the floor still
proves the memory was given back).

Drop mode: slow readers stall (--stall, a small TCP MSS and receive
buffer: soak_client.c), subscribe to one of a few heavily padded channels,
and the server has a small send_buffer, so stalled readers really fill
their queue and get dropped; at least --min-drops clients (over all waves)
must have received a 1001 close frame.

The run fails when a wave's delivery accounting fails (see
soak_client.c), a connection stays open, the RSS check fails, drop mode
saw fewer than --min-drops 1001 closes, the server does not exit 0 after
SIGTERM, or its stderr holds a sanitizer report (valgrind: any error, or
definitely/indirectly lost bytes). The last line is "soak: N passed, M
failed" (one per mode).
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:")


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def established(port):
    """Established TCP connections to the server's port (server side)."""
    n = 0
    hexport = ":%04X" % port
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[1].endswith(hexport) and parts[3] == "01":
                        n += 1
        except OSError:
            pass
    return n


def server_clients(status_file):
    """Clients connected per the server itself (--status-file), or -1."""
    try:
        with open(status_file) as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def idle_rss(proc, port, status_file, settle):
    """Waits (at most 30 s) until the server has no TCP connection and
    counts no client (its disconnect handler ran for every one), then
    settle seconds more. False if that did not happen."""
    deadline = time.time() + 30
    while ((established(port) or server_clients(status_file) != 0)
           and time.time() < deadline and proc.poll() is None):
        time.sleep(0.2)
    if established(port) or server_clients(status_file) != 0:
        return False
    time.sleep(settle)
    return True


def run_mode(args, mode, workdir):
    port_file = os.path.join(workdir, "port-%s" % mode)
    status_file = os.path.join(workdir, "status-%s" % mode)
    server_cmd = [args.server, "--autostart", "--port", "0", "--port-file", port_file,
                  "--status-file", status_file,
                  "--rate", str(args.rate), "--channels", str(args.channels),
                  "--publishers", "4", "--write-wait", str(args.write_wait)]
    if mode == "drop":
        # close_grace longer than a stall: the 1001 frame waits in the
        # stalled socket until the reader reads again.
        server_cmd += ["--drop", "--send-buffer", str(args.drop_send_buffer),
                       "--pad", str(args.drop_pad),
                       "--fat-channels", str(args.drop_fat_channels),
                       "--fat-pad", str(args.drop_fat_pad),
                       "--fat-burst", str(args.drop_fat_burst),
                       "--opt", "close_grace=%d" % (args.drop_slow_pause_ms + 3000)]
    for o in args.server_opt:
        server_cmd += ["--opt", o]
    vg_log = os.path.join(workdir, "valgrind-%s.log" % mode)
    if args.valgrind:
        server_cmd = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                      "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
                      "--track-fds=no", "--log-file=" + vg_log] + server_cmd
    err_path = os.path.join(workdir, "server-%s.stderr" % mode)
    err = open(err_path, "w")
    print("$ " + " ".join(server_cmd), flush=True)
    proc = subprocess.Popen(server_cmd, stdout=subprocess.DEVNULL, stderr=err,
                            stdin=subprocess.DEVNULL)
    problems = []
    reports = []
    rss_line = ""
    try:
        deadline = time.time() + (120 if args.valgrind else 30)
        port = None
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    port = int(f.read())
                break
            time.sleep(0.05)
        if port is None:
            raise RuntimeError("the soak server did not start")
        time.sleep(2 if args.valgrind else 1)
        pre_start = rss_kb(proc.pid)
        # Warm-up: one client connects, subscribes, receives and leaves.
        warm_cmd = [args.client, "--port", str(port), "--clients", "1", "--duration", "1",
                    "--channels", str(args.channels), "--min-life", "0.5", "--max-life", "0.5",
                    "--seed", str(args.seed), "--report", os.path.join(workdir, "warmup-%s.json" % mode)]
        if subprocess.call(warm_cmd, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                           timeout=120) != 0:
            problems.append("the warm-up client failed")
        if not idle_rss(proc, port, status_file, args.settle):
            problems.append("the warm-up client's connection did not go away")
        pre = rss_kb(proc.pid)
        peak = pre
        rss_after = []  # idle RSS after each wave
        for wave in range(1, args.waves + 1):
            report_path = os.path.join(workdir, "report-%s-%d.json" % (mode, wave))
            client_cmd = [args.client, "--port", str(port), "--clients", str(args.clients),
                          "--duration", str(args.duration), "--channels", str(args.channels),
                          "--seed", str(args.seed + wave), "--report", report_path,
                          "--min-life", str(args.min_life), "--max-life", str(args.max_life)]
            if mode == "drop":
                client_cmd += ["--drop", "--stall", "--slow-pause-ms", str(args.drop_slow_pause_ms),
                               "--stall-read-ms", str(args.drop_stall_read_ms),
                               "--fat-channels", str(args.drop_fat_channels)]
            elif args.block_slow_pause_ms is not None:
                client_cmd += ["--slow-pause-ms", str(args.block_slow_pause_ms)]
            print("$ " + " ".join(client_cmd), flush=True)
            cproc = subprocess.Popen(client_cmd, stdout=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
            limit = time.time() + args.duration + 150
            while cproc.poll() is None:
                if time.time() > limit:
                    cproc.kill()
                    problems.append("wave %d: the client driver did not finish in time" % wave)
                    break
                peak = max(peak, rss_kb(proc.pid))
                time.sleep(0.5)
            crc = cproc.wait()
            report = {}
            if os.path.exists(report_path):
                with open(report_path) as f:
                    report = json.load(f)
            reports.append(report)
            if crc != 0:
                problems.append("wave %d: delivery accounting failed (driver status %d)"
                                % (wave, crc))
            # every client has left: the server's connections drain to 0
            if not idle_rss(proc, port, status_file, args.settle):
                problems.append("wave %d: %d TCP connections, %d clients still on the server "
                                "30 s after the clients left"
                                % (wave, established(port), server_clients(status_file)))
            rss_after.append(rss_kb(proc.pid))
            proc.send_signal(signal.SIGUSR2)  # a "heap:" line (mallinfo2) in its stderr
        parts = ["RSS at start %d kB, baseline (idle after one client) %d kB, peak %d kB"
                 % (pre_start, pre, peak)]
        for i, idle in enumerate(rss_after, 1):
            parts.append("idle after wave %d: %d kB (%+.1f%%)" % (i, idle, 100.0 * (idle - pre) / pre))
        rss_line = "; ".join(parts)
        if args.rss:
            for i, idle in enumerate(rss_after, 1):
                limit_kb = max(args.rss_slack * pre, args.rss_floor_kb)
                if idle - pre > limit_kb:
                    problems.append("RSS idle after wave %d is %+.1f%% (%+d kB) over the "
                                    "baseline (limit %+.0f%% or %d kB, whichever is more)"
                                    % (i, 100.0 * (idle - pre) / pre, idle - pre,
                                       100 * args.rss_slack, args.rss_floor_kb))
            if peak < 1.5 * pre:
                problems.append("peak RSS %d kB is under 1.5 times the baseline %d kB: the "
                                "clients did not load the server, the RSS check proves nothing"
                                % (peak, pre))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            src = proc.wait(timeout=120 if args.valgrind else 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            src = proc.wait()
            problems.append("the server did not stop within the limit after SIGTERM")
        err.close()
    with open(err_path, errors="replace") as f:
        stderr_text = f.read()
    if src != 0:
        problems.append("the server exited with status %d" % src)
    if SANITIZER_RE.search(stderr_text):
        problems.append("sanitizer report in the server's stderr (%s)" % err_path)
    vg_summary = ""
    if args.valgrind and os.path.exists(vg_log):
        with open(vg_log, errors="replace") as f:
            vg = f.read()
        m = re.search(r"ERROR SUMMARY: (\d+) errors", vg)
        lost = re.findall(r"(definitely|indirectly) lost: ([\d,]+) bytes", vg)
        vg_summary = "valgrind: %s errors; %s" % (
            m.group(1) if m else "?",
            "all heap blocks freed, no leaks possible" if "All heap blocks were freed" in vg
            else ", ".join("%s lost %s bytes" % l for l in lost))
        if any(l[1] != "0" for l in lost):
            problems.append("valgrind found lost memory (%s)" % vg_log)
        if not m or m.group(1) != "0":
            problems.append("valgrind reported errors (%s)" % vg_log)
    if mode == "drop" and reports:
        got = sum((r.get("closed_1001") or 0) + (r.get("closed_1001_stalled") or 0)
                  for r in reports)
        if got < args.min_drops:
            problems.append("drop mode: %d clients closed with 1001, at least %d expected (the "
                            "slow readers did not stall the server's queues)"
                            % (got, args.min_drops))
    print("--- %s mode" % mode)
    keys = ["connections", "stayers", "leaves", "vanish_close", "vanish_rst", "silent", "messages",
            "closed_1001", "closed_1001_stalled", "missing_for_stayers", "missing_for_1001_clients",
            "gaps", "duplicates", "start_late", "missing_acks", "closed_other", "eof_unexpected",
            "handshake_failures", "protocol_errors", "drained_incomplete", "cut_slow",
            "missing_for_cut_clients", "missing_for_dropped_midway",
            "dropped_midway_subscriptions", "close_codes"]
    for i, report in enumerate(reports, 1):
        print("  wave %d: " % i + ", ".join("%s=%s" % (k, report.get(k)) for k in keys))
        for e in report.get("examples", [])[:10]:
            print("  example: " + e)
    print("  " + rss_line)
    print("  server: " + (stderr_text.strip().splitlines()[-1] if stderr_text.strip() else ""))
    if vg_summary:
        print("  " + vg_summary)
    for p in problems:
        print("  FAIL: " + p)
    return not problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--duration", type=float, default=120, help="churn seconds per wave")
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=100, help="publishes/s per publisher thread")
    ap.add_argument("--write-wait", type=int, default=2000, help="server write_wait, ms")
    ap.add_argument("--drop-send-buffer", type=int, default=32,
                    help="the server's send_buffer (messages per client) in drop mode")
    ap.add_argument("--drop-slow-pause-ms", type=int, default=4000,
                    help="longest stall of a slow reader in drop mode (shortest: half)")
    ap.add_argument("--drop-stall-read-ms", type=int, default=500,
                    help="how long a slow reader reads at full speed between stalls")
    ap.add_argument("--drop-pad", type=int, default=0,
                    help="padding bytes per message on ordinary channels in drop mode")
    ap.add_argument("--drop-fat-channels", type=int, default=4,
                    help="channels (ch0, ch4, ...: all published by thread 0) that carry "
                         "--drop-fat-pad; only slow readers subscribe to them (one each)")
    ap.add_argument("--drop-fat-pad", type=int, default=2048,
                    help="padding bytes per message on the fat channels (send_buffer such "
                         "frames, the largest raw write, stay under glibc's 128 KiB mmap "
                         "threshold)")
    ap.add_argument("--drop-fat-burst", type=int, default=8,
                    help="publishes per turn on a fat channel")
    ap.add_argument("--min-drops", type=int, default=1,
                    help="drop mode fails with fewer 1001 closes than this (all waves)")
    ap.add_argument("--block-slow-pause-ms", type=int, default=None,
                    help="longest pause of a slow reader in block mode (client default 800)")
    ap.add_argument("--min-life", type=float, default=3)
    ap.add_argument("--max-life", type=float, default=30)
    ap.add_argument("--mode", choices=["block", "drop", "both"], default="both")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--valgrind", action="store_true", help="run the server under valgrind memcheck")
    ap.add_argument("--no-rss", dest="rss", action="store_false",
                    help="do not check RSS (sanitizer builds: their allocators keep memory)")
    ap.add_argument("--rss-slack", type=float, default=0.10)
    ap.add_argument("--rss-floor-kb", type=int, default=1024)
    ap.add_argument("--server-opt", action="append", default=[],
                    help="NAME=INT passed to the server as --opt (any int/bool/ms option)")
    ap.add_argument("--waves", type=int, default=2, help="client waves per mode")
    ap.add_argument("--settle", type=float, default=3,
                    help="seconds of idle (no connection) before an RSS reading")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="wsn-soak-")
    print("soak: logs and reports in " + workdir, flush=True)
    modes = ["block", "drop"] if args.mode == "both" else [args.mode]
    passed = failed = 0
    for mode in modes:
        try:
            ok = run_mode(args, mode, workdir)
        except Exception as e:  # the run itself broke: a failure, with the reason
            print("  FAIL: %s mode: %s" % (mode, e))
            ok = False
        passed += ok
        failed += not ok
    print("soak: %d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
