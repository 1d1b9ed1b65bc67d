#!/usr/bin/env python3
"""The OpenResty chat example (examples/openresty/run.sh) under test:
nginx with two workers on a free loopback port, under a temp prefix of its
own, started and stopped by its PID. /ws is handed to the engine
(run.sh's default: the engine's handoff_socket), so every connection
below is one that nginx accepted and gave away:

  - a chat through nginx (subscribe, broadcast reaches both clients);
  - what the engine refuses or closes, as a direct client sees it: a
    foreign Origin 403, a plain GET /ws 404, a frame over read_limit
    1009, invalid UTF-8 1007; a frame sent in one write with the head
    (which nginx read with it) reaches the engine;
  - 20 handed connections, open and then closed, leave no registration
    in the nginx workers' epoll sets (/proc/PID/fdinfo: wsn_handoff takes
    the socket out of them, as nginx relies on close() to do);
  - POST /publish taken by either worker reaches the subscriber, each
    message exactly once (both workers seen, so one was not the engine's);
  - measured and printed, not asserted (no timing thresholds in tests):
    the wake-up latency of the engine's loop after an idle second, and the
    CPU time the idle workers spend in 5 s;
  - nginx -s reload: clients get 1001 "server shutdown", reconnect to the
    new workers' engine and chat again;
  - nginx -s quit: clients get 1001, nginx exits 0;
  - a second, short run (--verbose, one worker): a client connecting from
    127.0.0.2 is seen by the engine as 127.0.0.2 (through the proxy it
    would be nginx's 127.0.0.1): the socket is the client's own.
The chat acceptance through the proxy (run.sh --ws-proxy) is
scripts/smoke_chat.py with WSN_WS_PROXY=1 (bindings/lua/test.sh).

Usage: python3 examples/openresty/test.py
Prints "openresty: N passed, N failed" last; exits 0 when all passed.
"""

import asyncio
import base64
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

sys.path.insert(0, os.path.join(ROOT, "conformance", "hostile"))
from chat_harness import ChatServer, Tally  # noqa: E402
from hostile_lib import frame  # noqa: E402
from nginx_procs import cpu_ticks, stop, workers_of  # noqa: E402

try:  # websockets >= 13
    from websockets.asyncio.client import connect
except ImportError:  # older websockets
    from websockets import connect  # type: ignore
from websockets.exceptions import ConnectionClosed  # noqa: E402

TIMEOUT = 5.0
tally = Tally()
check = tally.check


def nginx_pids(srv):
    """(master pid, prefix) from run.sh's address line."""
    m = re.search(r"nginx pid (\d+), prefix (\S+),", "".join(srv.lines))
    return int(m.group(1)), m.group(2)


def nginx_cmd(prefix, *args):
    return ["nginx", "-p", prefix, "-c", os.path.join(prefix, "conf",
                                                       "nginx.conf"), *args]


async def recv_json(ws, timeout=TIMEOUT):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def subscribe(ws, channel, mid="s1"):
    await ws.send(json.dumps({"type": "json", "channel": channel,
                              "message": {"action": "subscribe",
                                          "channel": channel},
                              "message_id": mid}))
    return await recv_json(ws)


async def broadcast(ws, channel, text):
    await ws.send(json.dumps({"type": "json", "channel": channel,
                              "message": {"action": "broadcast",
                                          "text": text}}))


async def connect_retry(url, seconds=15):
    """A new connection once the (new) engine takes them."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await connect(url, open_timeout=TIMEOUT)
        except (OSError, Exception):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def expect_close(ws):
    try:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    except (ConnectionClosed, asyncio.TimeoutError):
        pass
    return ws.close_code, ws.close_reason


def upgrade_raw(port, origin=None, path="/ws", src="127.0.0.1", behind=b""):
    """A raw client's upgrade, with the bytes behind sent in the same write
    as the head: (socket, status line, what followed)."""
    s = socket.socket()
    s.settimeout(TIMEOUT)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               + (f"Origin: {origin}\r\n" if origin else "")
               + "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
              .encode() + behind)
    head, _, rest = recv_until(s, b"\r\n\r\n").partition(b"\r\n\r\n")
    return s, head.split(b"\r\n")[0].decode(errors="replace"), rest


def recv_until(s, marker):
    """What s gave until marker came (or EOF)."""
    data = b""
    while marker not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def http_status(port, path, headers=""):
    """The status line of a plain GET (HTTP/1.1, no upgrade)."""
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
                  f"Connection: close\r\n\r\n".encode())
        return recv_until(s, b"\r\n").split(b"\r\n")[0].decode(errors="replace")


def next_frame(s, buf):
    """(opcode, payload, rest of buf) of the next server frame; None at
    EOF."""
    while True:
        op, ln, off = (buf[0] & 0x0F, buf[1] & 0x7F, 2) if len(buf) >= 2 else (0, 0, 2)
        if ln == 126:
            ln, off = (struct.unpack("!H", buf[2:4])[0], 4) if len(buf) >= 4 else (0, 4)
        elif ln == 127:
            ln, off = (struct.unpack("!Q", buf[2:10])[0], 10) if len(buf) >= 10 else (0, 10)
        if len(buf) >= off + ln:
            return op, buf[off:off + ln], buf[off + ln:]
        try:
            chunk = s.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk


def close_code_after(port, opcode, payload):
    """Sends one frame on a raw upgraded connection; the close code the
    server answers with (None: none came)."""
    s, status, buf = upgrade_raw(port)
    with s:
        if " 101 " not in status:
            return status
        try:
            s.sendall(frame(opcode, payload))
        except OSError:
            pass  # closed while sending: its close frame is read below
        while True:
            got = next_frame(s, buf)
            if got is None:
                return None
            op, body, buf = got
            if op == 8:
                return struct.unpack("!H", body[:2])[0] if len(body) >= 2 else None


def reply_to_early_frame(port):
    """The subscribe frame is sent with the head, before the 101 (as a
    client should not, but may): the reply to it (JSON)."""
    sub = json.dumps({"type": "json", "channel": "early", "message_id": "e1",
                      "message": {"action": "subscribe", "channel": "early"}})
    s, status, buf = upgrade_raw(port, behind=frame(1, sub.encode()))
    with s:
        if " 101 " not in status:
            return status
        got = next_frame(s, buf)
        return json.loads(got[1]) if got and got[0] == 1 else got


def epoll_registrations(pids):
    """Registrations in the epoll sets of the processes pids (the nginx
    workers: lws polls with poll(), so each has nginx's set only)."""
    n = 0
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:[eventpoll]":
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    n += sum(1 for line in f if line.startswith("tfd:"))
            except OSError:
                continue
    return n


def post(port, channel, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/publish?channel={channel}",
        data=body.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
        return r.status, r.headers.get("X-Worker")


async def scenario(srv):
    port = srv.port
    url = f"ws://127.0.0.1:{port}/ws"
    master, prefix = nginx_pids(srv)

    a = await connect(url)
    b = await connect(url)
    for ws in (a, b):
        env = await subscribe(ws, "room")
        check(env["message"] == {"status": "subscribed", "channel": "room"},
              f"subscribed through nginx: {env['message']}")
    await broadcast(a, "room", "hi")
    for ws in (a, b):
        env = await recv_json(ws)
        check(env["message"] == {"action": "broadcast", "text": "hi"},
              "a broadcast through nginx reaches both clients")

    # What the engine refuses or closes, over handed sockets.
    s, status, _ = await asyncio.to_thread(upgrade_raw, port, "http://evil.example")
    s.close()
    check(" 403 " in status, f"handoff: a foreign Origin is refused: {status}")
    status = await asyncio.to_thread(http_status, port, "/ws")
    check(" 404 " in status, f"handoff: a plain GET /ws is the engine's 404: {status}")
    status = await asyncio.to_thread(http_status, port, "/nope")
    check(" 404 " in status, f"a page that is not there is nginx's 404: {status}")
    code = await asyncio.to_thread(close_code_after, port, 1, b"x" * ((1 << 20) + 1))
    check(code == 1009, f"handoff: a frame over read_limit is closed with 1009 (got {code})")
    code = await asyncio.to_thread(close_code_after, port, 1, b"\xff\xfe")
    check(code == 1007, f"handoff: invalid UTF-8 is closed with 1007 (got {code})")
    env = await asyncio.to_thread(reply_to_early_frame, port)
    check(isinstance(env, dict) and env.get("reply_to_id") == "e1" and
          env["message"] == {"status": "subscribed", "channel": "early"},
          f"handoff: a frame sent with the head (nginx read it) reaches the engine: {env}")

    # Handed connections leave nothing in nginx's epoll sets: nginx
    # closes them trusting close() to drop the registration, which the
    # engine's copy of the socket would prevent.
    pids = workers_of(master)
    n = 20
    before = epoll_registrations(pids)
    many = [await connect(url) for _ in range(n)]
    for i, ws in enumerate(many):
        await subscribe(ws, "epoll", f"e{i}")
    await broadcast(many[0], "epoll", "all")
    got = [(await recv_json(ws))["message"] for ws in many]
    check(got == [{"action": "broadcast", "text": "all"}] * n,
          f"{n} handed connections chat ({len(got)} got the broadcast)")
    held = epoll_registrations(pids)
    for ws in many:
        await ws.close()
    closed = epoll_registrations(pids)
    check(held - before < n and closed - before < n,
          f"{n} handed connections left no registration in the nginx workers' "
          f"epoll sets: {before} before, {held} while open, {closed} after")

    # Publishing from either worker.
    workers = set()
    got = []
    for i in range(40):
        status, pid = await asyncio.to_thread(post, port, "room",
                                              json.dumps({"n": i}))
        workers.add(pid)
        if status != 202:
            break
        got.append((await recv_json(a))["message"])
    check(got == [{"n": i} for i in range(40)],
          f"40 POST /publish reach the subscriber once each, in order "
          f"({len(got)} arrived)")
    check(len(workers) == 2, f"both workers took publishes: {sorted(workers)}")
    env = await recv_json(b)
    check(env["message"] == {"n": 0}, "the other subscriber gets them too")
    for _ in range(39):
        await recv_json(b)

    # Wake-up latency after an idle second, and busy.
    idle, busy = [], []
    for i in range(10):
        await asyncio.sleep(1.0)
        t0 = time.perf_counter()
        await broadcast(a, "room", f"idle {i}")
        await recv_json(a)
        idle.append((time.perf_counter() - t0) * 1000)
        await recv_json(b)
    for i in range(50):
        t0 = time.perf_counter()
        await broadcast(a, "room", f"busy {i}")
        await recv_json(a)
        busy.append((time.perf_counter() - t0) * 1000)
        await recv_json(b)
    idle.sort()
    busy.sort()
    print(f"  measured: round trip after 1 s idle: median {idle[5]:.2f} ms, "
          f"max {idle[-1]:.2f} ms; back to back: median {busy[25]:.2f} ms, "
          f"max {busy[-1]:.2f} ms")
    pids = workers_of(master)
    t0 = {p: cpu_ticks(p) for p in pids}
    await asyncio.sleep(5)
    ticks = sum(cpu_ticks(p) - t0[p] for p in pids)
    hz = os.sysconf("SC_CLK_TCK")
    print(f"  measured: idle CPU of {len(pids)} workers over 5 s: "
          f"{ticks / hz * 1000:.0f} ms ({ticks / hz / 5 * 100:.2f}% of a core)")

    # Reload: 1001, reconnect, chat again.
    rc = subprocess.run(nginx_cmd(prefix, "-s", "reload"),
                        capture_output=True, text=True)
    check(rc.returncode == 0, f"nginx -s reload exits 0 {rc.stderr.strip()}")
    for name, ws in (("a", a), ("b", b)):
        code, reason = await expect_close(ws)
        check((code, reason) == (1001, "server shutdown"),
              f"reload: client {name} gets close {code} {reason!r}")
    a = await connect_retry(url)
    b = await connect_retry(url)
    for ws in (a, b):
        env = await subscribe(ws, "room")
        check(env["message"]["status"] == "subscribed",
              "after the reload a new connection subscribes")
    await broadcast(b, "room", "after reload")
    for ws in (a, b):
        env = await recv_json(ws)
        check(env["message"] == {"action": "broadcast",
                                 "text": "after reload"},
              "after the reload broadcasts reach both clients")
    status, _ = await asyncio.to_thread(post, port, "room", '"posted"')
    env = await recv_json(a)
    check(status == 202 and env["message"] == "posted",
          "after the reload POST /publish works")
    await recv_json(b)

    # Quit: 1001, nginx exits.
    rc = subprocess.run(nginx_cmd(prefix, "-s", "quit"),
                        capture_output=True, text=True)
    check(rc.returncode == 0, f"nginx -s quit exits 0 {rc.stderr.strip()}")
    for name, ws in (("a", a), ("b", b)):
        code, reason = await expect_close(ws)
        check((code, reason) == (1001, "server shutdown"),
              f"quit: client {name} gets close {code} {reason!r}")
    try:
        status = await asyncio.to_thread(srv.proc.wait, 15)
    except subprocess.TimeoutExpired:
        status = None
    check(status == 0, f"run.sh exits 0 after nginx -s quit (got {status})")
    check(not os.path.exists(f"/proc/{master}"), "the nginx master is gone")


async def peer_address(srv):
    """A client from 127.0.0.2: the engine's connect line names it."""
    s, status, _ = await asyncio.to_thread(upgrade_raw, srv.port, None, "/ws",
                                           "127.0.0.2")
    with s:
        check(" 101 " in status, f"a client from 127.0.0.2 is upgraded: {status}")
        deadline = time.monotonic() + TIMEOUT
        seen = None
        while seen is None and time.monotonic() < deadline:
            seen = next((m.group(1) for m in (re.search(
                r"client connected: c_\d+ from (\S+) ", line)
                for line in list(srv.lines)) if m), None)
            if seen is None:
                await asyncio.sleep(0.05)  # polls the log, bounded
        check(seen == "127.0.0.2",
              f"the engine sees the client's own address 127.0.0.2 (saw {seen})")


def run(title, scenario_of, extra_args=(), limit=180):
    print(title)
    srv = ChatServer(os.path.join(HERE, "run.sh"), extra_args=extra_args)
    master = None
    failed = tally.failed
    try:
        master, _ = nginx_pids(srv)
        asyncio.run(asyncio.wait_for(scenario_of(srv), limit))
    except Exception as e:  # report, don't hide
        check(False, f"scenario raised {type(e).__name__}: {e}")
    finally:
        # Whatever happened, nothing of ours is left running.
        stop(srv.proc)
        if master and os.path.exists(f"/proc/{master}"):
            os.kill(master, signal.SIGKILL)
    if tally.failed > failed:
        print("server output:\n" + "".join(srv.lines[-60:]))


def main():
    run("OpenResty chat, /ws handed to the engine, 2 workers", scenario)
    run("OpenResty chat, --verbose, 1 worker: the peer's address", peer_address,
        ("--verbose", "--workers", "1"), 30)
    print(f"openresty: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
