#!/usr/bin/env python3
"""Soak test: churning clients against a publishing server, with exact
delivery accounting, RSS and sanitizer/valgrind checks. Loopback only;
every phase is bounded in time.

    run_soak.py --server BUILD/conformance/wsnotify-soak-server \
                --client BUILD/conformance/wsnotify-soak-client \
                [--mode block|drop|both] [--waves 2] [--duration 120]
                [--clients 2000] [--valgrind] [--no-rss] [--rss-strict]

For each mode it starts the server (4 publisher threads, optionally under
valgrind) and runs --waves waves of the client driver, each --duration
seconds: 2,000 clients churning (connect, subscribe to random channels,
some reading slowly, some vanishing without a close or with an RST, a few
going silent), then every client leaves. After each wave it waits until
the server has no connection left, reads its RSS, asks it to call
malloc_trim(0) (SIGUSR1) and reads the RSS again.

The run fails when a wave's delivery accounting fails (see
soak_client.c), a connection stays open, the RSS after a later wave is
more than --rss-slack (10%) above the RSS after wave 1 (both trimmed: the
server does not grow with churn), with --rss-strict when the RSS is more
than 10% above the RSS before any client, when the server does not exit
0 after SIGTERM, or when its stderr holds a sanitizer report (valgrind:
any error, or definitely/indirectly lost bytes). The last line is
"soak: N passed, M failed" (one per mode).
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


def run_mode(args, mode, workdir):
    port_file = os.path.join(workdir, "port-%s" % mode)
    server_cmd = [args.server, "--autostart", "--port", "0", "--port-file", port_file,
                  "--rate", str(args.rate), "--channels", str(args.channels),
                  "--publishers", "4", "--write-wait", str(args.write_wait)]
    if mode == "drop":
        server_cmd += ["--drop", "--send-buffer", str(args.drop_send_buffer),
                       "--pad", str(args.drop_pad)]
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
        pre = rss_kb(proc.pid)
        peak = pre
        rss_after = []  # (raw, trimmed) after each wave
        for wave in range(1, args.waves + 1):
            report_path = os.path.join(workdir, "report-%s-%d.json" % (mode, wave))
            client_cmd = [args.client, "--port", str(port), "--clients", str(args.clients),
                          "--duration", str(args.duration), "--channels", str(args.channels),
                          "--seed", str(args.seed + wave), "--report", report_path,
                          "--min-life", str(args.min_life), "--max-life", str(args.max_life)]
            if mode == "drop":
                client_cmd += ["--drop", "--slow-pause-ms", str(args.drop_slow_pause_ms)]
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
            drain_deadline = time.time() + 30
            while established(port) and time.time() < drain_deadline:
                time.sleep(0.2)
            if established(port):
                problems.append("wave %d: %d connections still open on the server 30 s after "
                                "the clients left" % (wave, established(port)))
            time.sleep(args.settle)
            raw = rss_kb(proc.pid)
            proc.send_signal(signal.SIGUSR1)  # the server calls malloc_trim(0)
            time.sleep(1)
            rss_after.append((raw, rss_kb(proc.pid)))
        parts = ["RSS before any client %d kB, peak %d kB" % (pre, peak)]
        for i, (raw, trimmed) in enumerate(rss_after, 1):
            parts.append("after wave %d: %d kB (%+.0f%%), %d kB after malloc_trim (%+.1f%%)" % (
                i, raw, 100.0 * (raw - pre) / pre, trimmed, 100.0 * (trimmed - pre) / pre))
        rss_line = "; ".join(parts)
        if args.rss and len(rss_after) >= 2:
            base = rss_after[0][1]
            for i, (raw, trimmed) in enumerate(rss_after[1:], 2):
                growth = (trimmed - base) / base
                if growth > args.rss_slack:
                    problems.append("RSS after wave %d is %+.1f%% over the baseline after wave 1 "
                                    "(both after malloc_trim; limit %+.0f%%)"
                                    % (i, 100 * growth, 100 * args.rss_slack))
        if args.rss and args.rss_strict:
            trimmed = rss_after[-1][1]
            if (trimmed - pre) / pre > args.rss_slack:
                problems.append("RSS after the last wave (after malloc_trim) is %+.1f%% over the "
                                "RSS before any client (limit %+.0f%%)"
                                % (100.0 * (trimmed - pre) / pre, 100 * args.rss_slack))
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
    print("--- %s mode" % mode)
    keys = ["connections", "stayers", "leaves", "vanish_close", "vanish_rst", "silent", "messages",
            "closed_1001", "closed_1001_stalled", "missing_for_stayers", "missing_for_1001_clients",
            "gaps", "duplicates", "start_late", "missing_acks", "closed_other", "eof_unexpected",
            "handshake_failures", "protocol_errors", "drained_incomplete", "cut_slow",
            "missing_for_cut_clients", "close_codes"]
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
    ap.add_argument("--drop-send-buffer", type=int, default=64)
    ap.add_argument("--drop-slow-pause-ms", type=int, default=6000)
    ap.add_argument("--drop-pad", type=int, default=0,
                    help="padding bytes per message in drop mode (bigger messages fill a "
                         "pausing reader's socket sooner)")
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
    ap.add_argument("--server-opt", action="append", default=[],
                    help="NAME=INT passed to the server as --opt (any int/bool/ms option)")
    ap.add_argument("--waves", type=int, default=2,
                    help="client waves per mode; RSS after wave 1 is the baseline for the rest")
    ap.add_argument("--rss-strict", action="store_true",
                    help="also compare with the RSS before any client connected")
    ap.add_argument("--settle", type=float, default=3, help="seconds before the final RSS reading")
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
