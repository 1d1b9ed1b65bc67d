#!/usr/bin/env python3
"""Runs the wsnotify benchmark matrix and writes docs/benchmarks.md.

A server under test is "a command that listens on a port and speaks the chat
protocol" (see SERVERS below). Each run starts one server pinned to one core
(taskset), waits for it to answer a WebSocket handshake, runs bench's load
generator pinned to the other core, records its JSON lines, and stops the
server by its PID.

  bench/run.sh                 # the whole matrix (about an hour on 2 cores)
  bench/run.sh --smoke         # ~5 s: C servers only, tiny loads, checks only
  bench/run.py --quick         # one run of each, shorter phases
  bench/run.py --only wsn-chat-bench,c-epoll-ref --modes fanout
  bench/run.py --report-only bench/results/latest.jsonl
  bench/run.py --modes formats # JSON vs MessagePack only: updates that
                               # section of docs/benchmarks.md in place

Every load is bounded in count and time; loopback only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs"
IMG = DOCS / "img"
HOST = "127.0.0.1"

# ---------------------------------------------------------------------------
# servers


def build_dir() -> Path:
    return Path(os.environ.get("WSN_BUILD_DIR", ROOT / "build")).resolve()


def find_chat_binary(b: Path) -> Path | None:
    for p in (b / "examples" / "wsnotify-chat", b / "examples" / "chat" / "wsnotify-chat",
              b / "examples" / "chat" / "chat"):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def help_text(cmd: list[str]) -> str:
    try:
        r = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=20)
        return r.stdout + r.stderr
    except Exception:
        return ""


def python_exe() -> str:
    if os.environ.get("PYTHON"):
        return os.environ["PYTHON"]
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class Server:
    def __init__(self, name, desc, cmd, *, cwd=None, env=None, compression_flag=None,
                 version=None, available=None):
        self.name = name
        self.desc = desc
        self.cmd = cmd  # list, "{port}" replaced
        self.cwd = cwd
        self.env = env or {}
        self.compression_flag = compression_flag
        self.version = version or (lambda: "")
        self.available = available or (lambda: (True, ""))


def servers() -> dict[str, Server]:
    b = build_dir()
    py = python_exe()
    out: dict[str, Server] = {}

    chat = find_chat_binary(b)
    # The load generator's publisher sends thousands of broadcasts a
    # second: the chat examples run without their inbound rate limit
    # (client_rate, issue 20; docs/production.md), as wsn-chat-bench does.
    no_rate = ["--client-rate", "0"]
    chat_cmd = [str(chat) if chat else "wsnotify-chat", "--port", "{port}"] + no_rate
    chat_help = help_text([str(chat)]) if chat else ""
    out["wsnotify-chat"] = Server(
        "wsnotify-chat", "examples/chat (C): the chat example as shipped (default flags: "
        "startup and failures logged, nothing per message; drop_on_backpressure)",
        chat_cmd,
        compression_flag="--compression" if "--compression" in chat_help else None,
        available=lambda: (chat is not None, f"no chat binary under {b}/examples"))

    # No compression_flag for wsnotify's servers: the engine refuses
    # permessage-deflate (docs/api.md, "Compression"), so the compression
    # rows measure the peers only.
    wcb = b / "bench" / "wsn-chat-bench"
    out["wsn-chat-bench"] = Server(
        "wsn-chat-bench", "bench/wsn-chat-bench.c: the chat protocol on libwsnotify, no "
        "logging, handlers on the main thread (queued events)",
        [str(wcb), "--port", "{port}"],
        available=lambda: (wcb.exists(), f"{wcb} not built (-DWSN_BUILD_BENCH=ON)"))
    out["wsn-chat-bench-io"] = Server(
        "wsn-chat-bench-io", "bench/wsn-chat-bench.c --io-thread: handlers on the engine's "
        "I/O thread (WSN_OPT_EVENTS_ON_IO_THREAD=1)",
        [str(wcb), "--port", "{port}", "--io-thread"],
        available=lambda: (wcb.exists(), f"{wcb} not built (-DWSN_BUILD_BENCH=ON)"))
    # wsn-chat-bench with a smaller WSN_OPT_READ_BUFFER than the 64 KiB default:
    # what a small per-pass read costs fan-out (idle memory is the same at any
    # size since receive buffers got slots of their own; 128 was dropped then)
    small = {
        1024: "1 KiB read per client per loop pass instead of the default 64 KiB, "
              "which was the lean setting until idle receive buffers cost no memory "
              "at any size",
    }
    for size, why in small.items():
        name = f"wsn-chat-bench-rb{'1k' if size == 1024 else size}"
        out[name] = Server(
            name, f"bench/wsn-chat-bench.c --read-buffer {size} (WSN_OPT_READ_BUFFER): {why}",
            [str(wcb), "--port", "{port}", "--read-buffer", str(size)],
            available=lambda: (wcb.exists(), f"{wcb} not built (-DWSN_BUILD_BENCH=ON)"))

    ref = b / "bench" / "c-epoll-ref"
    out["c-epoll-ref"] = Server(
        "c-epoll-ref", "bench/peers/c-epoll-ref.c: epoll, one write() per subscriber per "
        "message (the one-write ceiling)",
        [str(ref), "--port", "{port}"],
        available=lambda: (ref.exists(), f"{ref} not built (-DWSN_BUILD_BENCH=ON)"))

    pychat = ROOT / "examples" / "python" / "chat.py"

    def pychat_ok():
        if not pychat.exists():
            return False, "examples/python/chat.py does not exist yet"
        r = subprocess.run([py, "-c", "import wsnotify"], capture_output=True, text=True,
                           timeout=60)
        return r.returncode == 0, "the wsnotify Python package is not importable " \
                                  "(pip install ./python)"
    out["py-chat"] = Server(
        "py-chat", "examples/python/chat.py: the chat example on the wsnotify Python "
        "binding (default flags: nothing logged per message; drop_on_backpressure)",
        [py, str(pychat), "--port", "{port}"] + no_rate, available=pychat_ok,
        compression_flag="--compression" if pychat.exists() and "--compression" in
        pychat.read_text() else None,
        version=lambda: py_version(py, "wsnotify"))

    # The Lua chats find the module in build-lua/ (bindings/lua/setup.sh
    # --nginx builds it and installs LuaJIT and nginx's Lua module).
    luachat = ROOT / "examples" / "lua" / "chat.lua"
    luabuild = Path(os.environ.get("WSN_LUA_BUILD_DIR", ROOT / "build-lua"))

    def lua_ok():
        if not (luabuild / "lua" / "5.1" / "wsnotify" / "core.so").exists():
            return False, f"no Lua module in {luabuild} (bash bindings/lua/setup.sh --nginx)"
        return shutil.which("luajit") is not None, "luajit missing"
    out["lua-chat"] = Server(
        "lua-chat", "examples/lua/chat.lua: the chat example on the wsnotify Lua binding, "
        "LuaJIT (nothing logged per message)",
        ["luajit", str(luachat), "--port", "{port}"] + no_rate, available=lua_ok)
    orun = ROOT / "examples" / "openresty" / "run.sh"

    def openresty_ok():
        ok, why = lua_ok()
        if not ok:
            return ok, why
        return (Path("/usr/lib/nginx/modules/ngx_http_lua_module.so").exists(),
                "nginx's Lua module missing (bash bindings/lua/setup.sh --nginx)")
    out["openresty-chat"] = Server(
        "openresty-chat", "examples/openresty: the Lua chat inside one nginx worker, "
        "each client's socket handed by nginx to the engine in that worker "
        "(handoff_socket): no frame crosses nginx",
        ["bash", str(orun), "--port", "{port}", "--workers", "1"] + no_rate,
        available=openresty_ok)
    out["openresty-proxy"] = Server(
        "openresty-proxy", "examples/openresty --ws-proxy: the same, clients through "
        "nginx's proxy to the engine (what a deployment where nginx terminates TLS keeps)",
        ["bash", str(orun), "--port", "{port}", "--workers", "1", "--ws-proxy"] + no_rate,
        available=openresty_ok)

    node = shutil.which("node") or "node"
    nodechat = ROOT / "examples" / "node" / "chat.js"
    addon = ROOT / "bindings" / "node" / "build" / "wsnotify.node"
    out["node-chat"] = Server(
        "node-chat", "examples/node/chat.js: the chat example on the wsnotify Node "
        "binding (default flags: nothing logged per message; drop_on_backpressure)",
        [node, str(nodechat), "--port", "{port}"] + no_rate,
        available=lambda: (addon.exists() and shutil.which("node"),
                           "node or bindings/node/build/wsnotify.node missing "
                           "(bash bindings/node/test.sh)"),
        version=lambda: node_chat_version(node))

    nodews = HERE / "peers" / "node-ws"
    out["node-ws"] = Server(
        "node-ws", "bench/peers/node-ws: Node `ws`, JSON.stringify once, send() per "
        "subscriber",
        [node, str(nodews / "server.js"), "--port", "{port}"], cwd=str(nodews),
        compression_flag="--compression",
        available=lambda: ((nodews / "node_modules" / "ws").exists() and shutil.which("node"),
                           "node or bench/peers/node-ws/node_modules missing (npm ci)"),
        version=lambda: node_versions(node, nodews))

    pyws = HERE / "peers" / "py-websockets" / "server.py"

    def pyws_ok():
        r = subprocess.run([py, "-c", "import websockets"], capture_output=True, timeout=60)
        return r.returncode == 0, "Python package websockets missing (pip install websockets)"
    out["py-websockets"] = Server(
        "py-websockets", "bench/peers/py-websockets: Python `websockets` (asyncio), "
        "websockets.broadcast()",
        [py, str(pyws), "--port", "{port}"], compression_flag="--compression",
        available=pyws_ok, version=lambda: py_version(py, "websockets"))

    gobin = b / "bench-go-original"
    out["go-original"] = Server(
        "go-original", "bench/peers/go-original: the Go original's chat example "
        "(github.com/abiiranathan/wsnotify)",
        [str(gobin), "--port", "{port}"],
        available=lambda: go_original_build(gobin))
    return out


_go_state: dict = {}


def go_original_build(out: Path):
    """Builds the Go original's own chat example (package example/ of the
    module) when the Go module proxy serves the module; see
    bench/peers/go-original/README.md."""
    if "ok" in _go_state:
        return _go_state["ok"], _go_state["why"]
    go = shutil.which("go")
    ok, why = False, ""
    if not go:
        why = "no `go` on PATH"
    else:
        work = out.parent / "bench-go-original-src"
        work.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GOFLAGS="-mod=mod")
        steps = [[go, "mod", "init", "wsnotify-bench-go-original"],
                 [go, "get", "github.com/abiiranathan/wsnotify@latest"],
                 [go, "build", "-o", str(out), "github.com/abiiranathan/wsnotify/example"]]
        if (work / "go.mod").exists():
            steps = steps[1:]
        for st in steps:
            try:
                r = subprocess.run(st, cwd=work, env=env, capture_output=True, text=True,
                                   timeout=600)
            except subprocess.TimeoutExpired:
                why = f"`{' '.join(st[1:])}` timed out"
                break
            if r.returncode != 0:
                why = f"`go {' '.join(st[1:])}` failed: " + " ".join(
                    (r.stderr or r.stdout).strip().splitlines()[-2:])[:300]
                break
        else:
            ok = True
    _go_state.update(ok=ok, why=why)
    return ok, why


def py_version(py: str, mod: str) -> str:
    try:
        r = subprocess.run([py, "-c", f"import importlib.metadata as m, sys; "
                            f"print(m.version('{mod}'), sys.version.split()[0])"],
                           capture_output=True, text=True, timeout=60)
        v = r.stdout.split()
        return f"{mod} {v[0]}, Python {v[1]}" if len(v) == 2 else ""
    except Exception:
        return ""


def node_versions(node: str, d: Path) -> str:
    try:
        nv = subprocess.run([node, "--version"], capture_output=True, text=True,
                            timeout=20).stdout.strip()
        wv = json.loads((d / "node_modules" / "ws" / "package.json").read_text())["version"]
        return f"ws {wv}, Node {nv}"
    except Exception:
        return ""


def node_chat_version(node: str) -> str:
    try:
        nv = subprocess.run([node, "--version"], capture_output=True, text=True,
                            timeout=20).stdout.strip()
        pkg = ROOT / "bindings" / "node" / "package.json"
        return f"wsnotify {json.loads(pkg.read_text())['version']} (Node binding), Node {nv}"
    except Exception:
        return ""


# ---------------------------------------------------------------------------
# running one measurement


def free_port() -> int:
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ws_ready(port: int, timeout: float) -> bool:
    end = time.time() + timeout
    req = (f"GET /ws HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    while time.time() < end:
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(req)
                data = s.recv(64)
                if data.startswith(b"HTTP/1.1 101"):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def raise_nofile(n: int):
    def pre():
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = max(soft, n)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        except (ValueError, OSError):
            pass
    return pre


def can_raise_nofile(n: int) -> bool:
    r = subprocess.run([sys.executable, "-c",
                        "import resource as r; r.setrlimit(r.RLIMIT_NOFILE, "
                        f"({n}, max({n}, r.getrlimit(r.RLIMIT_NOFILE)[1])))"],
                       capture_output=True)
    return r.returncode == 0


class Running:
    """One server process, started pinned to a core, stopped by its PID."""

    def __init__(self, srv: Server, args, logdir: Path, tag: str, compression=False,
                 nofile=262144):
        self.port = free_port()
        cmd = [c.replace("{port}", str(self.port)) for c in srv.cmd]
        if compression:
            cmd.append(srv.compression_flag)
        self.cmd = ["taskset", "-c", str(args.server_cpu)] + cmd
        self.log = logdir / f"{tag}.server.log"
        env = dict(os.environ, **srv.env)
        self.logf = open(self.log, "wb")
        self.proc = subprocess.Popen(self.cmd, cwd=srv.cwd, env=env, stdout=self.logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=raise_nofile(nofile))
        self.pid = self.proc.pid  # taskset execs the command: same PID
        if not ws_ready(self.port, 30):
            self.stop()
            raise RuntimeError(f"{srv.name} did not answer a handshake on port {self.port}"
                               f" (log: {self.log})")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # this PID only
                self.proc.wait(timeout=10)
        self.logf.close()


def loadgen_cmd(args, port, pid, mode, extra):
    lg = build_dir() / "bench" / "wsn-loadgen"
    return (["taskset", "-c", str(args.loadgen_cpu), str(lg), "--mode", mode, "--host", HOST,
             "--port", str(port), "--server-pid", str(pid)] + extra)


def run_loadgen(cmd, timeout, logpath: Path) -> list[dict]:
    with open(logpath, "ab") as lf:
        lf.write((" ".join(cmd) + "\n").encode())
        lf.flush()
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=lf, timeout=timeout,
                               preexec_fn=raise_nofile(262144))
        except subprocess.TimeoutExpired:
            return [{"error": f"loadgen timed out after {timeout} s"}]
    rows = []
    for line in r.stdout.decode().splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    if r.returncode != 0:
        rows.append({"error": f"loadgen exited {r.returncode} (see {logpath})"})
    return rows


# ---------------------------------------------------------------------------
# the matrix


def matrix(args) -> list[dict]:
    """Jobs: one server process + one loadgen invocation each."""
    jobs = []
    P = args.phase_s
    if args.smoke:
        short = ["--warmup", "0.1", "--duration", "0.3", "--drain", "2"]
        jobs.append(dict(server="wsn-chat-bench", mode="fanout", subs=10, runs=1, timeout=20,
                         extra=["--phase", "64:20", "--phase", "1024:5"] + short))
        for s in ("c-epoll-ref", "wsnotify-chat"):
            jobs.append(dict(server=s, mode="fanout", subs=10, runs=1, timeout=20,
                             extra=["--phase", "64:20"] + short))
        jobs.append(dict(server="wsn-chat-bench", mode="latency", subs=10, runs=1,
                         extra=["--rate", "50", "--warmup", "0.1", "--duration", "0.4",
                                "--drain", "1"], timeout=20))
        jobs.append(dict(server="wsn-chat-bench", mode="idle", subs=50, runs=1,
                         extra=["--hold", "0.2"], timeout=20))
        return jobs
    modes = set(args.modes.split(","))
    phases = []
    for size in (64, 1024):
        for w in (20, 100):
            phases += ["--phase", f"{size}:{w}"]
    timing = ["--warmup", str(args.warmup), "--duration", str(P), "--drain", "5",
              "--drain-max", "120"]
    all_servers = ["wsnotify-chat", "wsn-chat-bench", "c-epoll-ref", "py-chat", "node-chat",
                   "lua-chat", "openresty-chat", "openresty-proxy", "node-ws", "py-websockets",
                   "go-original"]
    if "fanout" in modes:
        for subs in (1, 100, 1000, 10000):
            # At one subscriber every delivery is one message through the
            # handler: wsn-chat-bench-io there is the "host handler" row set's
            # handler on the I/O thread (report: "Host handler").
            extra_servers = {1: ["wsn-chat-bench-io"],
                             1000: ["wsn-chat-bench-io", "wsn-chat-bench-rb1k"]}
            for s in all_servers + extra_servers.get(subs, []):
                jobs.append(dict(server=s, mode="fanout", subs=subs, runs=args.runs,
                                 extra=phases + timing, timeout=900))
    if "compression" in modes:
        for s in ("wsnotify-chat", "wsn-chat-bench", "py-chat", "node-chat", "node-ws",
                  "py-websockets"):
            jobs.append(dict(server=s, mode="fanout", subs=1000, runs=args.runs,
                             compression=True,
                             extra=["--compress", "--phase", "64:20", "--phase", "1024:20"]
                             + timing, timeout=600))
    if "latency" in modes:
        for s in all_servers + ["wsn-chat-bench-io", "wsn-chat-bench-rb1k"]:
            jobs.append(dict(server=s, mode="latency", subs=1000, runs=args.runs,
                             extra=["--rate", "20", "--size", "64", "--warmup", "1",
                                    "--duration", str(args.latency_s), "--drain", "10"],
                             timeout=300))
    if "idle" in modes:
        for conns, runs in ((10000, args.runs), (100000, args.idle_big_runs)):
            for s in all_servers + (["wsn-chat-bench-rb1k"] if conns == 10000 else []):
                jobs.append(dict(server=s, mode="idle", subs=conns, runs=runs,
                                 extra=["--hold", str(args.hold), "--connect-timeout", "400"],
                                 timeout=900))
    if "formats" in modes:
        # JSON vs MessagePack clients (issue 5): the same messages, 1,000
        # subscribers, every format in turn within each run index so that
        # drift in the machine's load spreads over all of them.
        for s in args.formats_servers.split(","):
            for run in range(args.runs):
                for fmt in FORMATS:
                    jobs.append(dict(server=s, mode="fanout", subs=1000, runs=1, run0=run,
                                     section="formats", format=fmt,
                                     extra=["--format", fmt, "--phase", "64:20",
                                            "--phase", "1024:20"] + timing,
                                     timeout=600))
    if args.only:
        keep = set(args.only.split(","))
        jobs = [j for j in jobs if j["server"] in keep]
    if args.subs:
        counts = {int(x) for x in args.subs.split(",")}
        jobs = [j for j in jobs if j["subs"] in counts]
    return jobs


FORMATS = ("json", "msgpack", "mixed")


def execute(args, outdir: Path) -> Path:
    srvs = servers()
    results = outdir / "results.jsonl"
    skipped: dict[str, str] = {}
    jobs = matrix(args)
    total = sum(j["runs"] for j in jobs)
    done = 0
    t0 = time.time()
    with open(results, "a") as out:
        for j in jobs:
            srv = srvs[j["server"]]
            if srv.name in skipped:
                done += j["runs"]
                continue
            ok, why = srv.available()
            if not ok:
                skipped[srv.name] = why
                out.write(json.dumps({"skipped": srv.name, "why": why}) + "\n")
                print(f"[bench] skip {srv.name}: {why}", file=sys.stderr)
                done += j["runs"]
                continue
            if j.get("compression") and not srv.compression_flag:
                out.write(json.dumps({"skipped": srv.name, "mode": "compression",
                                      "why": "no compression flag"}) + "\n")
                done += j["runs"]
                continue
            need = j["subs"] + 256
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            if hard != resource.RLIM_INFINITY and hard < need and not can_raise_nofile(need):
                why = (f"{j['subs']:,} connections need {need:,} file descriptors per process; "
                       f"RLIMIT_NOFILE's hard limit here is {hard:,} and cannot be raised "
                       "(no CAP_SYS_RESOURCE)")
                out.write(json.dumps({"skipped": srv.name, "mode": j["mode"],
                                      "subs": j["subs"], "why": why}) + "\n")
                print(f"[bench] skip {j['mode']} {srv.name} {j['subs']}: {why}",
                      file=sys.stderr)
                done += j["runs"]
                continue
            for run in range(j.get("run0", 0), j.get("run0", 0) + j["runs"]):
                done += 1
                tag = (f"{j['mode']}{'-z' if j.get('compression') else ''}"
                       f"{'-' + j['format'] if j.get('section') == 'formats' else ''}-"
                       f"{srv.name}-{j['subs']}-r{run}")
                print(f"[bench] {done}/{total} {tag} ({time.time() - t0:.0f} s)",
                      file=sys.stderr, flush=True)
                meta = dict(server=srv.name, run=run, job_mode=j["mode"], subs=j["subs"],
                            compression=bool(j.get("compression")),
                            loadavg1=float(Path("/proc/loadavg").read_text().split()[0]))
                if j.get("section"):
                    meta.update(section=j["section"], format=j["format"])
                try:
                    r = Running(srv, args, outdir, tag, compression=bool(j.get("compression")))
                except Exception as e:  # noqa: BLE001 - recorded, the matrix goes on
                    out.write(json.dumps(dict(meta, error=str(e))) + "\n")
                    out.flush()
                    print(f"[bench]   {e}", file=sys.stderr)
                    continue
                try:
                    cmd = loadgen_cmd(args, r.port, r.pid, j["mode"],
                                      ["--subs", str(j["subs"]), "--label", tag] + j["extra"])
                    rows = run_loadgen(cmd, j["timeout"], outdir / f"{tag}.loadgen.log")
                    alive = r.alive()
                finally:
                    r.stop()
                for row in rows:
                    row.update(meta)
                    row["server_cmd"] = " ".join(r.cmd)
                    row["loadgen_cmd"] = " ".join(cmd)
                    if not alive:
                        row["server_died"] = True
                    out.write(json.dumps(row) + "\n")
                out.flush()
                for row in rows:
                    if "error" in row:
                        print(f"[bench]   ERROR {row['error']}", file=sys.stderr)
    print(f"[bench] matrix done in {time.time() - t0:.0f} s", file=sys.stderr)
    return results


# ---------------------------------------------------------------------------
# report


def sh(cmd) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                              shell=isinstance(cmd, str)).stdout.strip()
    except Exception:
        return ""


def machine_facts() -> dict:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    osr = ""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osr = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    srvs = servers()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(int(mem) / 1048576, 1),
        "kernel": platform.release(), "os": osr,
        "gcc": sh(["gcc", "-dumpfullversion"]),
        "libwebsockets": sh(["pkg-config", "--modversion", "libwebsockets"]),
        "jansson": sh(["pkg-config", "--modversion", "jansson"]),
        "wsnotify": sh("grep -E '^#define WSN_VERSION_(MAJOR|MINOR|PATCH) ' "
                       f"{ROOT}/include/wsnotify.h | awk '{{print $3}}' | paste -sd.")
        or "?",
        "git": sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "node-ws": srvs["node-ws"].version(),
        "py-websockets": srvs["py-websockets"].version(),
        "py-chat": srvs["py-chat"].version(),
        "node-chat": srvs["node-chat"].version(),
        "go": sh(["go", "version"]),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
    }


def med(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), min(vals), max(vals)


def fmt_rate(v):
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e3:
        return f"{v / 1e3:.0f} k"
    return f"{v:.0f}"


def cell_rate(vals):
    m, lo, hi = med(vals)
    if m is None:
        return "–"
    if len(vals) == 1:
        return fmt_rate(m)
    return f"{fmt_rate(m)} ({fmt_rate(lo)}–{fmt_rate(hi)})"


def fmt_ms(v):
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


LOADGEN_BUSY = 90  # % of one core: above it the load generator may be the limit

SERVER_ORDER = ["wsnotify-chat", "wsn-chat-bench", "wsn-chat-bench-io", "wsn-chat-bench-rb1k",
                "c-epoll-ref", "py-chat", "node-chat", "lua-chat", "openresty-chat",
                "openresty-proxy", "node-ws",
                "py-websockets", "go-original"]


def load(path: Path):
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


HOST_HANDLER_ROWS = [
    ("wsn-chat-bench-io", "C, on the I/O thread (no hop)"),
    ("wsn-chat-bench", "C, on the host thread"),
    ("wsnotify-chat", "C chat example, host thread"),
    ("py-chat", "Python"),
    ("node-chat", "Node.js"),
    ("lua-chat", "Lua"),
    ("openresty-chat", "OpenResty"),
    ("node-ws", "Node's ws (a peer, not the engine)"),
]


def host_handler_section(fan: list) -> list:
    """The "host handler" row set (issue 21): at one subscriber every
    delivery is one message through the handler, so server CPU per delivery
    is what one message costs with the handler in each place; the
    difference between two rows is the cost of that hop."""
    def us(s, size, w):
        v = [r["server_cpu_pct"] / 100.0 / r["deliveries_per_s"] * 1e6 for r in fan
             if r["server"] == s and r["subs"] == 1 and r["size"] == size and
             r["window"] == w and r["deliveries_per_s"] > 0 and r["server_cpu_pct"] >= 0]
        return med(v)[0]
    cells = [(64, 20), (64, 100), (1024, 20), (1024, 100)]
    rows = [(s, label, [us(s, *c) for c in cells]) for s, label in HOST_HANDLER_ROWS]
    rows = [r for r in rows if any(v is not None for v in r[2])]
    if not rows:
        return []
    base = next((r[2] for r in rows if r[0] == "wsn-chat-bench-io"), None)
    L = ["### Host handler: what one message costs where the handler runs", "",
         "One subscriber, the chat protocol, server CPU µs per delivery (medians); in "
         "parentheses the difference from the handler on the I/O thread: the hop to the "
         "host and back plus the host's own per-message work, less what the host's "
         "batching saves the I/O thread.", "",
         "| handler | " + " | ".join(f"{z} B W {w}" for z, w in cells) + " |",
         "|---|" + "---:|" * len(cells)]
    for s, label, vals in rows:
        out = []
        for i, v in enumerate(vals):
            if v is None:
                out.append("–")
            elif base and base[i] is not None and s not in ("wsn-chat-bench-io", "node-ws"):
                out.append(f"{v:.2f} ({v - base[i]:+.2f})")
            else:
                out.append(f"{v:.2f}")
        L.append(f"| {label} (`{s}`) | " + " | ".join(out) + " |")
    L.append("")
    return L


def report(results: Path, args, facts: dict, started: str, elapsed: float, cmdline: str,
           idle_note: str):
    rows = load(results)
    # the JSON-vs-MessagePack runs have a section of their own
    fmt_rows = [r for r in rows if r.get("section") == "formats"]
    fmt_cmd, fmt_note = cmdline, ""
    rows = [r for r in rows if r.get("section") != "formats"]
    if not fmt_rows and FORMATS_RESULTS.exists():
        # measured on their own (bench/run.py --modes formats)
        fmt_rows = load(FORMATS_RESULTS)
        fmt_meta = FORMATS_RESULTS.with_suffix(".meta.json")
        fm = json.loads(fmt_meta.read_text()) if fmt_meta.exists() else {}
        fmt_cmd = fm.get("cmdline", "?")
        fmt_note = fm.get("machine_note", "")
    ok = [r for r in rows if "error" not in r and "skipped" not in r]
    errors = [r for r in rows if "error" in r]
    skipped = {}
    for r in rows:
        if "skipped" in r:
            skipped.setdefault(r["skipped"], r["why"])
    present = [s for s in SERVER_ORDER if any(r["server"] == s for r in ok)]
    srvs = servers()

    def sel(**kw):
        return [r for r in ok if all(r.get(k) == v for k, v in kw.items())]

    L = []
    L.append("# Benchmarks")
    L.append("")
    L.append("Generated by `bench/run.py` (via `bench/run.sh`); do not edit by hand: rerun "
             "it. Raw results: `bench/results/latest.jsonl` (one JSON object per measured "
             "phase, with the exact server and load-generator command lines).")
    L.append("")
    L.append("## How it was run")
    L.append("")
    L.append(f"- Started {started}, took {elapsed / 60:.0f} min. Command: `{cmdline}`.")
    la = [r["loadavg1"] for r in ok if "loadavg1" in r]
    la_txt = (f"{'' if idle_note.endswith('.') else '.'} The 1-minute load average at the start of each measurement ranged "
              f"{min(la):.2f}–{max(la):.2f} (median {statistics.median(la):.2f}); the "
              f"benchmark itself accounts for up to about 2." if la else "")
    L.append(f"- **Machine state:** {idle_note}{la_txt}")
    L.append(f"- Machine: {facts['cpu']}, {facts['cores']} cores, {facts['mem_gib']} GiB, "
             f"{facts['os']}, Linux {facts['kernel']}; load average before the run "
             f"{' '.join(facts['loadavg_before'])}.")
    L.append(f"- wsnotify {facts['wsnotify']} (git {facts['git']}), libwebsockets "
             f"{facts['libwebsockets']}, jansson {facts['jansson']}, gcc {facts['gcc']} "
             f"(CMake RelWithDebInfo: -O2 -g).")
    L.append(f"- Peers: {facts['node-ws'] or 'node-ws n/a'}; "
             f"{facts['py-websockets'] or 'py-websockets n/a'}; "
             f"py-chat: {facts['py-chat'] or 'n/a'}; node-chat: {facts.get('node-chat') or 'n/a'}; "
             f"{facts['go'] or 'no go'}.")
    L.append(f"- Server pinned to CPU {args.server_cpu}, load generator to CPU "
             f"{args.loadgen_cpu} (`taskset`); both over loopback (127.0.0.1; the load "
             "generator spreads large connection counts over 127.0.0.2–127.0.0.x source "
             "addresses). Each number is the median of "
             f"{args.runs} runs (fresh server process and fresh connections per run), "
             "min–max in parentheses.")
    L.append(f"- Fan-out phases: {args.warmup} s warm-up then {args.phase_s} s measured, "
             "then the publisher stops and the harness waits for every broadcast to "
             "arrive (until nothing arrived for 5 s, at most 120 s), to count lost "
             "deliveries. Latency: "
             f"{args.latency_s} s measured. Idle: {args.hold} s held.")
    L.append("")
    L.append("Servers (each is a command that listens on a port and speaks the chat "
             "protocol):")
    L.append("")
    for s in present:
        L.append(f"- **{s}**: {srvs[s].desc}.")
    for s, why in skipped.items():
        if s in srvs and s not in present:
            L.append(f"- **{s}**: not run: {why}.")
    L.append("")

    # ---- targets first
    L.append("## Targets (issue 8)")
    L.append("")
    L.append("Medians; † = the load generator was saturated in a run of that cell, so "
             "wsnotify's number is a lower bound.")
    L.append("")
    L += targets_table(sel, present, rows)
    L.append("")

    analysis = HERE / "analysis.md"
    if analysis.exists():
        L.append(analysis.read_text().rstrip())
        L.append("")

    # ---- fan-out
    fan = [r for r in ok if r.get("mode") == "fanout" and not r.get("compression")]
    if fan:
        L.append("## Fan-out: deliveries per second")
        L.append("")
        L.append("N subscribers on one channel, one publisher connection keeping W "
                 "broadcasts outstanding (a broadcast is complete when every subscriber "
                 "has it). Message size is the size of the published `message` object; "
                 "the frame a subscriber receives adds the envelope (~85 bytes).")
        L.append("")
        L.append(f"† the load generator used ≥{LOADGEN_BUSY}% of its core in at least one "
                 "run of this cell: the server may be faster than shown.")
        L.append("")
        L.append("| subs | size | W | " + " | ".join(present) + " |")
        L.append("|---:|---:|---:|" + "---:|" * len(present))
        for subs in (1, 100, 1000, 10000):
            for size in (64, 1024):
                for w in (20, 100):
                    cells = []
                    any_ = False
                    for s in present:
                        rs = [r for r in fan if r["server"] == s and r["subs"] == subs and
                              r["size"] == size and r["window"] == w]
                        v = [r["deliveries_per_s"] for r in rs]
                        any_ |= bool(v)
                        lg_bound = any(r["loadgen_cpu_pct"] >= LOADGEN_BUSY for r in rs)
                        cells.append(cell_rate(v) + (" †" if lg_bound else ""))
                    if any_:
                        L.append(f"| {subs:,} | {size} | {w} | " + " | ".join(cells) + " |")
        L.append("")
        # ratios vs ref
        if "c-epoll-ref" in present:
            L.append("Ratio to the one-write ceiling (c-epoll-ref), medians:")
            L.append("")
            others = [s for s in present if s != "c-epoll-ref"]
            L.append("| subs | size | W | " + " | ".join(others) + " |")
            L.append("|---:|---:|---:|" + "---:|" * len(others))
            for subs in (1, 100, 1000, 10000):
                for size in (64, 1024):
                    for w in (20, 100):
                        ref = med([r["deliveries_per_s"] for r in fan
                                   if r["server"] == "c-epoll-ref" and r["subs"] == subs
                                   and r["size"] == size and r["window"] == w])[0]
                        if not ref:
                            continue
                        cells = []
                        for s in others:
                            m = med([r["deliveries_per_s"] for r in fan if r["server"] == s
                                     and r["subs"] == subs and r["size"] == size
                                     and r["window"] == w])[0]
                            cells.append(f"{m / ref:.2f}×" if m else "–")
                        L.append(f"| {subs:,} | {size} | {w} | " + " | ".join(cells) + " |")
            L.append("")
        # health: lost, loadgen cpu
        L.append("Health of these runs (all fan-out phases): lost deliveries, server "
                 "closes, and the load generator's own CPU (one core = 100%; above ~90% "
                 "it may be the bottleneck):")
        L.append("")
        L.append("| server | lost (sum) | closed by server | loadgen CPU max | server CPU "
                 "median |")
        L.append("|---|---:|---:|---:|---:|")
        for s in present:
            rs = [r for r in fan if r["server"] == s]
            if not rs:
                continue
            lost = sum(r["lost"] for r in rs)
            closes = sum(r["closes_by_server"] for r in rs)
            lg = max(r["loadgen_cpu_pct"] for r in rs)
            sc = med([r["server_cpu_pct"] for r in rs])[0]
            L.append(f"| {s} | {lost:,} | {closes} | {lg:.0f}% | {sc:.0f}% |")
        L.append("")
        L.append("Server CPU time per delivery (µs, median; server CPU seconds in the "
                 "measured window ÷ deliveries). Less sensitive than deliveries/s to other "
                 "load on the machine, so it is the better number for comparing efficiency:")
        L.append("")
        L.append("| subs | size | W | " + " | ".join(present) + " |")
        L.append("|---:|---:|---:|" + "---:|" * len(present))
        for subs in (1, 100, 1000, 10000):
            for size in (64, 1024):
                for w in (20, 100):
                    cells = []
                    any_ = False
                    for s in present:
                        v = [r["server_cpu_pct"] / 100.0 / r["deliveries_per_s"] * 1e6
                             for r in fan if r["server"] == s and r["subs"] == subs and
                             r["size"] == size and r["window"] == w and
                             r["deliveries_per_s"] > 0 and r["server_cpu_pct"] >= 0]
                        any_ |= bool(v)
                        m = med(v)[0]
                        cells.append(f"{m:.2f}" if m is not None else "–")
                    if any_:
                        L.append(f"| {subs:,} | {size} | {w} | " + " | ".join(cells) + " |")
        L.append("")
        L.append("![deliveries/s vs subscribers](img/bench-fanout.png)")
        L.append("")
        L += host_handler_section(fan)
        # latency under saturation
        L.append("Publish→receive latency under this saturating load (p50 / p99 ms, "
                 "1,000 subscribers, medians): queueing, not the idle latency.")
        L.append("")
        L.append("| size | W | " + " | ".join(present) + " |")
        L.append("|---:|---:|" + "---|" * len(present))
        for size in (64, 1024):
            for w in (20, 100):
                cells = []
                for s in present:
                    rs = [r for r in fan if r["server"] == s and r["subs"] == 1000 and
                          r["size"] == size and r["window"] == w]
                    p50 = med([r["latency"]["p50_ms"] for r in rs])[0]
                    p99 = med([r["latency"]["p99_ms"] for r in rs])[0]
                    cells.append(f"{fmt_ms(p50)} / {fmt_ms(p99)}" if rs else "–")
                L.append(f"| {size} | {w} | " + " | ".join(cells) + " |")
        L.append("")

    comp = [r for r in ok if r.get("mode") == "fanout" and r.get("compression")]
    if comp or any(r.get("mode") == "compression" for r in rows if "skipped" in r):
        L.append("## Compression (permessage-deflate), 1,000 subscribers, W = 20")
        L.append("")
        L.append("The load generator offers `permessage-deflate; client_max_window_bits` "
                 "like a browser and inflates every message (context takeover). The "
                 "padding is random letters, so deflate saves little: this is the "
                 "compressor's worst case, not a typical JSON payload.")
        L.append("")
        cs = [s for s in present if any(r["server"] == s for r in comp)]
        L.append("| size | " + " | ".join(f"{s} off" + " | " + f"{s} on" for s in cs) + " |")
        L.append("|---:|" + "---:|" * (2 * len(cs)))
        for size in (64, 1024):
            cells = []
            for s in cs:
                off = [r["deliveries_per_s"] for r in fan if r["server"] == s and
                       r["subs"] == 1000 and r["size"] == size and r["window"] == 20]
                on = [r["deliveries_per_s"] for r in comp if r["server"] == s and
                      r["size"] == size and r["window"] == 20]
                cells += [cell_rate(off), cell_rate(on)]
            L.append(f"| {size} | " + " | ".join(cells) + " |")
        L.append("")
        # payload_bytes_per_delivery: frame payloads only (older results
        # called that wire_bytes_per_delivery, which now includes headers)
        wb = {s: med([r.get("payload_bytes_per_delivery", r["wire_bytes_per_delivery"])
                      for r in comp if r["server"] == s and r["size"] == 1024])[0]
              for s in cs}
        L.append("Payload bytes on the wire per 1 KiB delivery with compression: " + ", ".join(
            f"{s} {v:.0f}" for s, v in wb.items() if v) + ".")
        for r in rows:
            if r.get("mode") == "compression" and "skipped" in r:
                L.append(f"- {r['skipped']}: not measured with compression: it has no "
                         "compression switch.")
        L.append("")

    lat = [r for r in ok if r.get("mode") == "latency"]
    if lat:
        L.append("## Latency: 1,000 subscribers, 20 broadcasts/s, 64 B")
        L.append("")
        L.append("Publish→receive time of every delivery (the publisher's send() to the "
                 "subscriber's read, same clock), medians over runs, milliseconds. "
                 "\"last\" is when the last of the 1,000 subscribers had it. The load "
                 "generator reads 1,000 sockets in turn, so a few hundred µs of the tail is "
                 "its own. p1 is the first subscribers of each broadcast: the time before "
                 "the server's first write; p50 − p1 is how fast its fan-out runs.")
        L.append("")
        L.append("| server | p1 | p50 | p99 | p99.9 | max | last p50 | last p99 | lost |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in present:
            rs = [r for r in lat if r["server"] == s]
            if not rs:
                continue
            g = lambda k, h="latency": med([r[h][k] for r in rs])[0]  # noqa: E731
            p99s = [r["latency"]["p99_ms"] for r in rs]
            # Runs before the load generator reported p1 have none.
            p1s = [r["latency"]["p1_ms"] for r in rs if "p1_ms" in r["latency"]]
            p1 = fmt_ms(med(p1s)[0]) if p1s else "–"
            L.append(f"| {s} | {p1} | {fmt_ms(g('p50_ms'))} | {fmt_ms(g('p99_ms'))} "
                     f"({fmt_ms(min(p99s))}–{fmt_ms(max(p99s))}) | {fmt_ms(g('p999_ms'))} | "
                     f"{fmt_ms(g('max_ms'))} | {fmt_ms(g('p50_ms', 'completion'))} | "
                     f"{fmt_ms(g('p99_ms', 'completion'))} | {sum(r['lost'] for r in rs)} |")
        L.append("")
        L.append("![latency percentiles](img/bench-latency.png)")
        L.append("")

    idle = [r for r in ok if r.get("mode") == "idle"]
    if idle:
        L.append("## Idle connections")
        L.append("")
        L.append("N WebSocket connections, each subscribed to one channel, held open; "
                 "server RSS growth (VmRSS from /proc/PID/status, after minus before "
                 "connecting) per connection, and the server's CPU while they are held.")
        L.append("")
        L.append("| server | conns | RSS / conn | RSS total | CPU while held | connect time |")
        L.append("|---|---:|---:|---:|---:|---:|")
        for conns in (10000, 100000):
            for s in present:
                rs = [r for r in idle if r["server"] == s and r["conns"] == conns]
                if not rs:
                    continue
                per = med([r["rss_bytes_per_conn"] for r in rs])
                tot = med([r["rss_end_kib"] for r in rs])[0]
                cpu = med([r["server_cpu_pct"] for r in rs])[0]
                cs = med([r["connect_s"] for r in rs])[0]
                held = min(r["held"] for r in rs)
                rng = f" ({per[1]:.0f}–{per[2]:.0f})" if len(rs) > 1 else ""
                L.append(f"| {s} | {held:,} | {per[0]:,.0f} B{rng} | {tot / 1024:,.0f} MiB | "
                         f"{cpu:.2f}% | {cs:.1f} s |")
        L.append("")
        L.append("Runs per row: " + ", ".join(
            f"{c:,} conns: {max(len([r for r in idle if r['server'] == s and r['conns'] == c]) for s in present)}"
            for c in (10000, 100000)) + ".")
        L.append("")

    if fmt_rows:
        L += formats_section(fmt_rows, fmt_cmd, fmt_note)

    mode_skips = [r for r in rows if "skipped" in r and r.get("subs")]
    bindings_doc = DOCS / "benchmarks-bindings.md"
    if mode_skips or bindings_doc.exists():
        L.append("## Not measured")
        L.append("")
        if bindings_doc.exists():
            # kept by hand until the bindings' chats join the matrix
            L.append("- the bindings' chat examples (node-chat, lua-chat, openresty-chat, "
                     "openresty-proxy) "
                     "in the full matrix: their fan-out at 1,000 subscribers beside the C "
                     "chat (three runs on the idle machine) is in "
                     "docs/benchmarks-bindings.md.")
            L.append("")
        seen = set()
        for r in mode_skips:
            key = (r["mode"], r["subs"], r["why"])
            if key in seen:
                continue
            seen.add(key)
            names = sorted({x["skipped"] for x in mode_skips
                            if (x["mode"], x["subs"], x["why"]) == key})
            L.append(f"- {r['mode']} with {r['subs']:,} connections ({', '.join(names)}): "
                     f"{r['why']}.")
        L.append("")

    if errors:
        L.append("## Errors during the run")
        L.append("")
        for e in errors[:30]:
            L.append(f"- {e.get('server')} {e.get('job_mode')} subs={e.get('subs')} "
                     f"run {e.get('run')}: {e['error']}")
        L.append("")

    L.append("## Reproducing")
    L.append("")
    L.append("```sh")
    L.append("bench/run.sh                      # builds, installs the peers, runs all, "
             "rewrites this file")
    L.append("bench/run.sh --smoke              # 5-second check (C servers, tiny loads)")
    L.append("bench/run.py --only wsn-chat-bench,c-epoll-ref --modes fanout --runs 1")
    L.append("bench/run.py --report-only bench/results/latest.jsonl")
    L.append("bench/run.py --modes formats          # JSON vs MessagePack: that section only")
    L.append("```")
    L.append("")
    L.append("One load-generator run by hand (server on CPU 0, load on CPU 1):")
    L.append("")
    L.append("```sh")
    L.append("taskset -c 0 build/bench/wsn-chat-bench --port 9000 &")
    L.append("taskset -c 1 build/bench/wsn-loadgen --mode fanout --port 9000 --subs 1000 \\")
    L.append("    --phase 64:20 --phase 1024:100 --duration 5 --server-pid $!")
    L.append("taskset -c 1 build/bench/wsn-loadgen --mode latency --port 9000 --subs 1000 "
             "--rate 20")
    L.append("taskset -c 1 build/bench/wsn-loadgen --mode idle --port 9000 --subs 10000 "
             "--hold 10 --server-pid $!")
    L.append("```")
    L.append("")
    L += method_notes()
    (DOCS / "benchmarks.md").write_text("\n".join(L) + "\n")
    plots(ok, present)


def targets_table(sel, present, rows):
    L = ["| target | server | measured | met? |", "|---|---|---|---|"]

    def dps(server, **kw):
        return med([r["deliveries_per_s"] for r in sel(server=server, mode="fanout",
                                                       compression=False, **kw)])[0]

    def busy(server, **kw):
        return any(r["loadgen_cpu_pct"] >= LOADGEN_BUSY for r in sel(
            server=server, mode="fanout", compression=False, **kw))

    ours = [s for s in ("wsnotify-chat", "wsn-chat-bench") if s in present]
    for s in ours:
        for size, w, want in ((64, 20, 10), (1024, 20, 6), (64, 100, 5), (1024, 100, 5)):
            a, ref = dps(s, subs=1000, size=size, window=w), dps("c-epoll-ref", subs=1000,
                                                                  size=size, window=w)
            if a and ref:
                note = " †" if busy(s, subs=1000, size=size, window=w) else ""
                L.append(f"| fan-out 1,000 subs, {size} B, W {w}: ≥{want}× one-write ceiling "
                         f"| {s} | {a / ref:.2f}× ({fmt_rate(a)} vs {fmt_rate(ref)}){note} | "
                         f"{'yes' if a / ref >= want else '**no**'} |")
        worst = None
        for size in (64, 1024):
            for w in (20, 100):
                a, ref = dps(s, subs=1, size=size, window=w), dps("c-epoll-ref", subs=1,
                                                                   size=size, window=w)
                if a and ref and (worst is None or a / ref < worst[0]):
                    worst = (a / ref, size, w)
        if worst:
            L.append(f"| fan-out 1 subscriber ≥1× (worst of 4 phases) | {s} | {worst[0]:.2f}× "
                     f"({worst[1]} B, W {worst[2]}) | {'yes' if worst[0] >= 1 else '**no**'} |")
        spread = None
        for size in (64, 1024):
            for w in (20, 100):
                vals = [dps(s, subs=n, size=size, window=w) for n in (100, 1000, 10000)]
                if all(vals):
                    ratio = min(vals) / max(vals)
                    if spread is None or ratio < spread[0]:
                        spread = (ratio, size, w, vals)
        if spread:
            L.append(f"| deliveries/s within 20% from 100 to 10,000 subs (worst phase) | {s} | "
                     f"min/max {spread[0]:.2f} at {spread[1]} B W {spread[2]} "
                     f"({', '.join(fmt_rate(v) for v in spread[3])}) | "
                     f"{'yes' if spread[0] >= 0.8 else '**no**'} |")
        lat = sel(server=s, mode="latency")
        if lat:
            p99 = med([r["latency"]["p99_ms"] for r in lat])[0]
            L.append(f"| latency p99 ≤ 12 ms at 1,000 subs × 20/s | {s} | {p99:.2f} ms | "
                     f"{'yes' if p99 <= 12 else '**no**'} |")
        idle10 = [r for r in sel(server=s, mode="idle") if r["conns"] == 10000]
        if idle10:
            per = med([r["rss_bytes_per_conn"] for r in idle10])[0]
            L.append(f"| idle ≤ 2 KiB RSS per connection at 10,000 | {s} | {per:,.0f} B | "
                     f"{'yes' if per <= 2048 else '**no**'} |")
        idle100 = [r for r in sel(server=s, mode="idle") if r["conns"] == 100000]
        skip100 = [r for r in rows if r.get("skipped") == s and r.get("subs") == 100000]
        if not idle100 and skip100:
            L.append(f"| 100,000 idle held with < 1% CPU | {s} | not measurable here: "
                     f"{skip100[0]['why']} | – |")
        if idle100:
            cpu = med([r["server_cpu_pct"] for r in idle100])[0]
            held = min(r["held"] for r in idle100)
            L.append(f"| 100,000 idle held with < 1% CPU | {s} | {held:,} held, {cpu:.2f}% | "
                     f"{'yes' if held == 100000 and cpu < 1 else '**no**'} |")
    for name, what in (("py-chat", "Python chat"), ("lua-chat", "Lua chat"),
                       ("openresty-chat", "OpenResty chat"),
                       ("openresty-proxy", "OpenResty chat through nginx's proxy")):
        if name in present and "wsnotify-chat" in present:
            worst = None
            for size in (64, 1024):
                for w in (20, 100):
                    p, c = dps(name, subs=1000, size=size, window=w), dps(
                        "wsnotify-chat", subs=1000, size=size, window=w)
                    if p and c and (worst is None or p / c < worst[0]):
                        worst = (p / c, size, w)
            if worst:
                L.append(f"| {what} ≥ 80% of C chat at 1,000 subs (worst phase) | {name} | "
                         f"{100 * worst[0]:.0f}% ({worst[1]} B, W {worst[2]}) | "
                         f"{'yes' if worst[0] >= 0.8 else '**no**'} |")
        elif "wsnotify-chat" in present:
            L.append(f"| {what} ≥ 80% of C chat at 1,000 subs | {name} | not run | – |")
    return L


FORMATS_RESULTS = HERE / "results" / "formats-latest.jsonl"
FORMATS_HEADING = "## JSON vs MessagePack"


def num(v, spec):
    return "–" if v is None else format(v, spec)


def formats_section(rows, cmdline: str, note: str = "") -> list[str]:
    """The JSON-vs-MessagePack table: the same broadcasts to 1,000 subscribers
    that are all JSON, all MessagePack, or half and half."""
    ok = [r for r in rows if "error" not in r and "skipped" not in r]
    L = [FORMATS_HEADING, ""]
    L.append("1,000 subscribers of one channel on `wsn-chat-bench`, one publisher keeping "
             "W = 20 broadcasts outstanding; the same message in every format (its size is "
             "the size of its JSON text). **json**: no subprotocol, JSON text frames, as a "
             "browser. **msgpack**: `Sec-WebSocket-Protocol: wsnotify.msgpack`, the "
             "publisher and the subscribers send and receive MessagePack in binary frames "
             "(the load generator hand-encodes its envelopes and finds the sequence number "
             "by a byte scan, as in JSON). **mixed**: even subscribers JSON, odd ones "
             "MessagePack, JSON publisher: a publish is encoded once per format, so its "
             "cost per delivery should lie between the two, not above both.")
    L.append("")
    L.append("Wire bytes per delivery = WebSocket frame header + payload of every frame "
             "of the message, as the subscriber reads it (server→client frames are "
             "unmasked). Deliveries/s: median of the runs, min–max in parentheses. "
             "Server µs/delivery = server CPU seconds in the measured window ÷ "
             "deliveries (median).")
    L.append("")
    if cmdline:
        L.append(f"Command: `{cmdline}`." + (f" Machine state: {note}" if note else ""))
        la = [r["loadavg1"] for r in ok if "loadavg1" in r]
        if la:
            L.append(f"1-minute load average at the start of each run: {min(la):.2f}–"
                     f"{max(la):.2f} (2 cores; the benchmark itself accounts for up to "
                     "about 2).")
        L.append("")
    L.append("| server | clients | size | deliveries/s | server µs/delivery | wire B/delivery "
             "JSON | wire B/delivery MessagePack | lost | runs |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    servers_ = sorted({r["server"] for r in ok}, key=lambda s: (
        SERVER_ORDER.index(s) if s in SERVER_ORDER else 99, s))
    busy = False
    for s in servers_:
        for fmt in FORMATS:
            for size in (64, 1024):
                rs = [r for r in ok if r["server"] == s and r.get("format") == fmt
                      and r.get("mode") == "fanout" and r["size"] == size]
                if not rs:
                    continue
                lg = any(r["loadgen_cpu_pct"] >= LOADGEN_BUSY for r in rs)
                busy |= lg
                us = med([r["server_cpu_pct"] / 100.0 / r["deliveries_per_s"] * 1e6
                          for r in rs if r["deliveries_per_s"] > 0
                          and r["server_cpu_pct"] >= 0])[0]
                wb = {}
                for f in ("json", "msgpack"):
                    wb[f] = med([r["formats"][f]["wire_bytes_per_delivery"] for r in rs
                                 if f in r.get("formats", {})])[0]
                label = {"json": "all JSON", "msgpack": "all MessagePack",
                         "mixed": "½ JSON + ½ MessagePack"}[fmt]
                rate = cell_rate([r["deliveries_per_s"] for r in rs]) + (" †" if lg else "")
                L.append(f"| {s} | {label} | {size} | {rate} | {num(us, '.2f')} | "
                         f"{num(wb['json'], '.1f')} | {num(wb['msgpack'], '.1f')} | "
                         f"{sum(r['lost'] for r in rs):,} | {len(rs)} |")
    L.append("")
    if busy:
        L.append(f"† the load generator used ≥{LOADGEN_BUSY}% of its core in at least one "
                 "run of this row: the server may be faster than shown.")
        L.append("")
    errs = [r for r in rows if "error" in r]
    for e in errs[:10]:
        L.append(f"- error: {e.get('server')} {e.get('format')} run {e.get('run')}: "
                 f"{e['error']}")
    if errs:
        L.append("")
    return L


def splice_formats_section(lines: list[str]):
    """Replaces (or adds) the JSON-vs-MessagePack section of
    docs/benchmarks.md, leaving the rest of the report as it is."""
    path = DOCS / "benchmarks.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    tail = text[len(text.rstrip("\n")):]  # the file's own trailing newlines
    doc = text.rstrip("\n").split("\n")
    block = lines[:]
    while block and block[-1] == "":
        block.pop()
    if FORMATS_HEADING in doc:
        a = doc.index(FORMATS_HEADING)
        b = next((i for i in range(a + 1, len(doc)) if doc[i].startswith("## ")), len(doc))
        doc[a:b] = block + [""]
    else:
        at = next((i for i, line in enumerate(doc) if line in (
            "## Not measured", "## Errors during the run", "## Reproducing",
            "## Method and caveats")), len(doc))
        doc[at:at] = block + [""]
    path.write_text("\n".join(doc) + (tail or "\n"))


def method_notes():
    return [
        "## Method and caveats",
        "",
        "- **Load generator** (`bench/loadgen.c`, `wsn-loadgen`): one thread, epoll, a "
        "minimal RFC 6455 client (masked frames, 7/16/64-bit lengths, fragmented messages, "
        "pings answered, permessage-deflate on request). Each broadcast carries "
        "`{\"action\":\"broadcast\",\"q\":SEQ,\"t\":NS,\"p\":\"…\"}`; a subscriber finds `\"q\":` "
        "and `\"t\":` with a scan of the first 192 bytes (no JSON parser). It reports its own "
        "CPU (getrusage) and the server's CPU and RSS (/proc/PID) over the measured window. "
        "With `--format msgpack` (or `mixed`) it offers `wsnotify.msgpack` and sends the same "
        "envelopes hand-encoded in MessagePack; wire bytes per delivery count every frame "
        "header and payload byte of the message, per format.",
        "- **Lost deliveries** = broadcasts sent in a phase × subscribers − deliveries "
        "received by the end of the drain. A subscriber that the server closes stops "
        "counting towards completion (so the window cannot wedge), and its missing "
        "deliveries count as lost.",
        "- **The one-write ceiling** (`bench/peers/c-epoll-ref.c`) is a plain epoll server "
        "that builds each broadcast frame once and then calls write() once per subscriber "
        "per message; a full socket queues frames that are later flushed still one write() "
        "per frame. It shows what one syscall per delivery costs on this machine; the "
        "design target for wsnotify is to beat it by coalescing several queued frames into "
        "one send (DESIGN.md, LWS-NOTES.md §11). It is a throughput reference only: its "
        "memory (a lazily touched 64 KiB input buffer per connection) is not tuned.",
        "- Window W bounds outstanding broadcasts, so a server that writes more frames per "
        "syscall only gains when several broadcasts are queued per subscriber: with W = 20 "
        "at most 20 frames can be coalesced per send.",
        "- The chat examples run with their default flags: they log startup and failures "
        "only (`--verbose` would add a line per message). `wsn-chat-bench` is the same "
        "protocol without the examples' parsing of subscribe replies.",
        "- Times are from CLOCK_MONOTONIC on one machine; the publisher stamps the message "
        "just before send() and a receiver takes the time once per recv() call. The load generator's single thread reads subscribers one "
        "after another, so part of every latency is its own reading time; it is the same "
        "for every server.",
        "- The peers are written the idiomatic way for their library (no tuning beyond "
        "turning compression off, which is the default of wsnotify; `websockets` would "
        "otherwise negotiate deflate).",
        "",
    ]


def plots(ok, present):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[bench] matplotlib missing: no plots", file=sys.stderr)
        return
    IMG.mkdir(parents=True, exist_ok=True)
    fan = [r for r in ok if r.get("mode") == "fanout" and not r.get("compression")]
    if fan:
        fig, axes = plt.subplots(2, 2, figsize=(12, 8.5), sharex=True)
        for ax, (size, w) in zip(axes.flat, ((64, 20), (64, 100), (1024, 20), (1024, 100))):
            for s in present:
                xs, ys, lo, hi = [], [], [], []
                for subs in (1, 100, 1000, 10000):
                    v = [r["deliveries_per_s"] for r in fan if r["server"] == s and
                         r["subs"] == subs and r["size"] == size and r["window"] == w]
                    if v:
                        m, a, b = med(v)
                        xs.append(subs)
                        ys.append(m)
                        lo.append(m - a)
                        hi.append(b - m)
                if xs:
                    ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=s)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{size} B messages, window {w}")
            ax.set_xlabel("subscribers")
            ax.set_ylabel("deliveries / s")
            ax.grid(True, which="both", alpha=0.3)
        axes.flat[0].legend(fontsize=8)
        fig.suptitle("Fan-out throughput (median of runs; bars: min–max)")
        fig.tight_layout()
        fig.savefig(IMG / "bench-fanout.png", dpi=90)
        plt.close(fig)
    lat = [r for r in ok if r.get("mode") == "latency"]
    if lat:
        fig, ax = plt.subplots(figsize=(10, 5))
        keys = [("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max")]
        ss = [s for s in present if any(r["server"] == s for r in lat)]
        width = 0.8 / len(keys)
        for i, (k, lab) in enumerate(keys):
            vals = [med([r["latency"][k] for r in lat if r["server"] == s])[0] for s in ss]
            ax.bar([x + i * width for x in range(len(ss))], vals, width, label=lab)
        ax.axhline(12, color="red", linestyle="--", linewidth=1, label="p99 target 12 ms")
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(ss))])
        ax.set_xticklabels(ss, rotation=20, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("ms (log)")
        ax.set_title("Publish→receive latency, 1,000 subscribers, 20 broadcasts/s, 64 B")
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.tight_layout()
        fig.savefig(IMG / "bench-latency.png", dpi=90)
        plt.close(fig)


# ---------------------------------------------------------------------------


def smoke_check(results: Path) -> int:
    rows = load(results)
    passed = failed = 0
    for r in rows:
        if "skipped" in r:
            print(f"smoke: skipped {r['skipped']}: {r['why']}")
            continue
        name = f"{r.get('server')} {r.get('mode', r.get('job_mode'))}"
        bad = None
        if "error" in r:
            bad = r["error"]
        elif r["mode"] in ("fanout", "latency") and (r["deliveries"] <= 0 or r["lost"] != 0):
            bad = f"deliveries {r['deliveries']} lost {r['lost']}"
        elif r["mode"] == "idle" and r["held"] != r["conns"]:
            bad = f"held {r['held']} of {r['conns']}"
        if bad:
            failed += 1
            print(f"smoke: FAIL {name}: {bad}")
        else:
            passed += 1
            extra = (f"{r['deliveries_per_s']:.0f} deliveries/s" if r["mode"] == "fanout" else
                     f"p99 {r['latency']['p99_ms']:.2f} ms" if r["mode"] == "latency" else
                     f"{r['rss_bytes_per_conn']:.0f} B/conn")
            print(f"smoke: ok   {name} subs={r['subs']} {extra}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="5-second check, no report")
    p.add_argument("--quick", action="store_true", help="1 run, short phases")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--idle-big-runs", type=int, default=None,
                   help="runs of the 100,000-connection idle test (default: --runs)")
    p.add_argument("--modes", default="fanout,compression,latency,idle,formats",
                   help="comma-separated; formats = JSON vs MessagePack clients (alone, it "
                        "rewrites only that section of docs/benchmarks.md)")
    p.add_argument("--formats-servers", default="wsn-chat-bench",
                   help="servers of the formats section (comma-separated)")
    p.add_argument("--only", default="", help="comma-separated server names")
    p.add_argument("--subs", default="", help="comma-separated subscriber/connection counts")
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--phase-s", type=float, default=3.0, help="measured seconds per phase")
    p.add_argument("--latency-s", type=float, default=10.0)
    p.add_argument("--hold", type=float, default=10.0)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--loadgen-cpu", type=int, default=1)
    p.add_argument("--out", default="", help="results folder (default: build/bench-results/STAMP)")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--report-only", default="", help="rewrite docs from a results.jsonl")
    p.add_argument("--machine-note", default="",
                   help="how busy the machine was (written into the report)")
    args = p.parse_args()
    if args.quick:
        args.runs = 1
        args.phase_s = min(args.phase_s, 2.0)
        args.latency_s = min(args.latency_s, 5.0)
        args.hold = min(args.hold, 5.0)
    if args.idle_big_runs is None:
        args.idle_big_runs = args.runs
    if os.cpu_count() and max(args.server_cpu, args.loadgen_cpu) >= os.cpu_count():
        print("[bench] --server-cpu/--loadgen-cpu beyond this machine's CPUs", file=sys.stderr)
        return 2
    note = args.machine_note or ("not stated (pass --machine-note): other work may have "
                                 "been running")
    prefix = os.environ.get("WSN_BENCH_PREFIX", "bench/run.py")
    cmdline = " ".join([prefix] + [shlex.quote(a) for a in sys.argv[1:]])
    if args.report_only:
        facts = machine_facts()
        meta_path = Path(args.report_only).with_suffix(".meta.json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        for k in ("runs", "warmup", "phase_s", "latency_s", "hold", "server_cpu",
                  "loadgen_cpu"):
            if k in meta:
                setattr(args, k, meta[k])
        facts.update(meta.get("facts", {}))
        report(Path(args.report_only), args, facts, meta.get("started", "?"),
               meta.get("elapsed", 0), meta.get("cmdline", cmdline),
               meta.get("machine_note", note))
        print(f"[bench] wrote {DOCS / 'benchmarks.md'}", file=sys.stderr)
        return 0

    lg = build_dir() / "bench" / "wsn-loadgen"
    if not lg.exists():
        print(f"[bench] {lg} missing: build with -DWSN_BUILD_BENCH=ON (bench/run.sh does)",
              file=sys.stderr)
        return 2
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = Path(args.out) if args.out else build_dir() / "bench-results" / (
        ("smoke-" if args.smoke else "") + stamp)
    outdir.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    started = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    t0 = time.time()
    print(f"[bench] results in {outdir}", file=sys.stderr)
    results = execute(args, outdir)
    elapsed = time.time() - t0
    if args.smoke:
        return smoke_check(results)
    if set(args.modes.split(",")) == {"formats"} and not args.no_report:
        # only the JSON-vs-MessagePack section: kept apart from latest.jsonl
        FORMATS_RESULTS.parent.mkdir(exist_ok=True)
        shutil.copy(results, FORMATS_RESULTS)
        FORMATS_RESULTS.with_suffix(".meta.json").write_text(json.dumps(dict(
            runs=args.runs, warmup=args.warmup, phase_s=args.phase_s, facts=facts,
            started=started, elapsed=elapsed, cmdline=cmdline, machine_note=note), indent=1))
        splice_formats_section(formats_section(load(results), cmdline,
                                               args.machine_note))
        print(f"[bench] wrote the JSON vs MessagePack section of {DOCS / 'benchmarks.md'}",
              file=sys.stderr)
        return 0
    meta = dict(runs=args.runs, warmup=args.warmup, phase_s=args.phase_s,
                latency_s=args.latency_s, hold=args.hold, server_cpu=args.server_cpu,
                loadgen_cpu=args.loadgen_cpu, facts=facts, started=started, elapsed=elapsed,
                cmdline=cmdline, machine_note=note)
    (outdir / "results.meta.json").write_text(json.dumps(meta, indent=1))
    if not args.no_report:
        dest = HERE / "results"
        dest.mkdir(exist_ok=True)
        shutil.copy(results, dest / "latest.jsonl")
        (dest / "latest.meta.json").write_text(json.dumps(meta, indent=1))
        report(results, args, facts, started, elapsed, cmdline, note)
        print(f"[bench] wrote {DOCS / 'benchmarks.md'} and {IMG}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
