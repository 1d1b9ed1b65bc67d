#!/usr/bin/env python3
"""Runs Autobahn|Testsuite's fuzzingclient against wsnotify-echo-server --echo.

    run_autobahn.py --server BUILD/conformance/wsnotify-echo-server \
        --wstest PATH/TO/wstest --cases 1-10 [--compression] [--outdir DIR]

Starts the echo server on a free loopback port, writes the fuzzingclient
spec, runs `wstest -m fuzzingclient -s spec.json`, reads the report's
index.json and prints one line per case that is not OK. Then stops the
server with SIGTERM and checks that it exited 0 with no sanitizer report.

Exit status 0 only when every case's behaviour is OK, NON-STRICT or
INFORMATIONAL, except for the cases listed in known_failures.json (each
with the reason, and only while it still fails: a known failure that passes
is reported so the list can shrink), and the server stopped cleanly. The
last line is "autobahn: N passed, M failed".
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

HERE = os.path.dirname(os.path.abspath(__file__))
GOOD = {"OK", "NON-STRICT", "INFORMATIONAL"}
SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|WARNING: ThreadSanitizer|runtime error:")


def case_key(case_id):
    return [int(x) for x in case_id.split(".")]


def section_patterns(spec):
    """'1-10' -> ['1.*', ..., '10.*'] (no section 8 exists); '12,13' too."""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            out += ["%d.*" % n for n in range(int(a), int(b) + 1) if n != 8]
        elif part:
            out.append(part if "." in part else part + ".*")
    return out


def start_server(binary, compression, workdir, extra):
    port_file = os.path.join(workdir, "port")
    cmd = [binary, "--echo", "--port", "0", "--port-file", port_file] + extra
    if compression:
        cmd.append("--compression")
    err = open(os.path.join(workdir, "server.stderr"), "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        if os.path.exists(port_file):
            with open(port_file) as f:
                return proc, int(f.read().strip())
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    sys.exit("echo server did not start: see %s" % err.name)


def stop_server(proc, workdir):
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False, "the echo server did not stop within 60 s of SIGTERM"
    with open(os.path.join(workdir, "server.stderr"), errors="replace") as f:
        text = f.read()
    problems = []
    if rc != 0:
        problems.append("the echo server exited with status %d" % rc)
    if SANITIZER_RE.search(text):
        problems.append("sanitizer report in the echo server's stderr")
    if problems:
        tail = "\n".join(text.splitlines()[-60:])
        return False, "; ".join(problems) + ":\n" + tail
    return True, text.strip().splitlines()[-1] if text.strip() else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--server", required=True, help="path of wsnotify-echo-server")
    ap.add_argument("--wstest", default="auto",
                    help="path of wstest; 'auto' (default) runs setup.sh, which installs it "
                         "once into a cache folder")
    ap.add_argument("--cases", default="1-10", help="sections, e.g. 1-10 or 12,13 (default 1-10)")
    ap.add_argument("--compression", action="store_true", help="server offers permessage-deflate "
                    "(refused by wsnotify today: the server will not start)")
    ap.add_argument("--expect-unimplemented", action="store_true",
                    help="every case must be UNIMPLEMENTED: the server declines the extension "
                         "the section tests (sections 12-13 while compression is refused)")
    ap.add_argument("--outdir", help="report folder (default: a temporary one)")
    ap.add_argument("--known", default=os.path.join(HERE, "known_failures.json"),
                    help="known failures with reasons (default: known_failures.json)")
    ap.add_argument("--timeout", type=int, default=1800, help="limit for wstest, seconds")
    ap.add_argument("--server-arg", action="append", default=[], help="extra server argument")
    ap.add_argument("--exclude", default="", help="comma-separated case ids or patterns to skip "
                    "(for diagnosis only; CI excludes nothing)")
    args = ap.parse_args()

    if args.wstest == "auto":
        r = subprocess.run(["bash", os.path.join(HERE, "setup.sh")], stdout=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, universal_newlines=True, timeout=900)
        lines = r.stdout.strip().splitlines()
        if r.returncode != 0 or not lines:
            print("setup.sh failed (status %d): Autobahn|Testsuite is not available" % r.returncode)
            print("autobahn: 0 passed, 1 failed")
            return 1
        args.wstest = lines[-1]
    workdir = tempfile.mkdtemp(prefix="wsn-autobahn-")
    outdir = os.path.abspath(args.outdir or os.path.join(workdir, "reports"))
    known = {}
    if args.known and os.path.exists(args.known):
        with open(args.known) as f:
            known = {k: v for k, v in json.load(f).items() if not k.startswith("_")}

    proc, port = start_server(os.path.abspath(args.server), args.compression, workdir,
                              args.server_arg)
    spec = {
        "options": {"failByDrop": False},
        "outdir": outdir,
        "servers": [{"agent": "wsnotify", "url": "ws://127.0.0.1:%d/ws" % port}],
        "cases": section_patterns(args.cases),
        "exclude-cases": [c.strip() for c in args.exclude.split(",") if c.strip()],
        "exclude-agent-cases": {},
    }
    spec_path = os.path.join(workdir, "fuzzingclient.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=2)
    cmd = [args.wstest, "-m", "fuzzingclient", "-s", spec_path]
    print("$ " + " ".join(cmd), flush=True)
    print("  (server: %s --echo --port %d%s)" % (args.server, port,
                                                  " --compression" if args.compression else ""),
          flush=True)
    t0 = time.time()
    log_path = os.path.join(workdir, "wstest.log")
    with open(log_path, "w") as log:
        try:
            wrc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                                 stdin=subprocess.DEVNULL, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            wrc = "timeout"
    secs = time.time() - t0
    clean, server_note = stop_server(proc, workdir)

    index_path = os.path.join(outdir, "index.json")
    if wrc != 0 or not os.path.exists(index_path):
        with open(log_path, errors="replace") as f:
            print("".join(f.readlines()[-40:]))
        print("wstest failed (status %s) or wrote no report" % wrc)
        print("autobahn: 0 passed, 1 failed")
        return 1
    with open(index_path) as f:
        index = json.load(f)
    cases = index.get("wsnotify", {})
    counts = {}
    failed, known_seen, known_passing = [], [], []
    for cid in sorted(cases, key=case_key):
        r = cases[cid]
        b = r["behavior"]
        counts[b] = counts.get(b, 0) + 1
        bad = b != "UNIMPLEMENTED" if args.expect_unimplemented else b not in GOOD
        if bad:
            if cid in known:
                known_seen.append((cid, b, r))
            else:
                failed.append((cid, b, r))
        elif cid in known:
            known_passing.append(cid)
    print("wstest: %d cases in %.0f s, report %s" % (len(cases), secs, os.path.join(outdir, "index.html")))
    print("behaviour counts: " + ", ".join("%s %d" % kv for kv in sorted(counts.items())))
    for cid, b, r in failed:
        print("  FAILED %-8s %s (close: %s, remote code %s)" % (cid, b, r["behaviorClose"],
                                                             r.get("remoteCloseCode")))
    for cid, b, r in known_seen:
        print("  known  %-8s %s: %s" % (cid, b, known[cid]))
    for cid in known_passing:
        print("  note: known failure %s passed this time (%s)" % (cid, args.known))
    if not clean:
        print("server: " + server_note)
    elif server_note:
        print("server: " + server_note)
    expected = len(section_patterns(args.cases))
    if not cases or expected == 0:
        failed.append(("(none)", "no cases ran", {}))
    n_bad = len(failed) + (0 if clean else 1)
    if known_seen:
        print("%d known failure(s), not counted: see %s" % (len(known_seen), args.known))
    print("autobahn: %d passed, %d failed" % (len(cases) - len(failed) - len(known_seen), n_bad))
    return 0 if n_bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
