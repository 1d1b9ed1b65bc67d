"""What the issue-16 reproductions share: the chat server under attack as a
child process, a raw WebSocket client that can misbehave (small receive
window, partial frames, never reading), and readings of the server's RSS
and CPU time from /proc.

Loopback only. Every process started here is stopped by its PID."""

import base64
import json
import multiprocessing
import os
import queue
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from chat_harness import read_startup_port  # noqa: E402
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- the server under attack -------------------------------------------

class Server:
    """Runs the chat command given on the command line, on a free loopback
    port unless the command names one, and reads the port from its
    "chat server on http://HOST:PORT/" line. Its output is kept (the
    scripts count what it logged during the attack)."""

    def __init__(self, cmd, nofile=None, start_timeout=120):
        cmd = list(cmd)
        if cmd and cmd[0].endswith(".py"):
            cmd = [sys.executable] + cmd
        if not any(a in ("--port", "-p") or a.startswith("--port=") for a in cmd):
            cmd += ["--port", "0"]
        self.cmd = cmd
        preexec = None
        if nofile is not None:
            def preexec():
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        # Its own process group, so that a wrapper script (run-chat.sh)
        # and what it execs are one PID to stop.
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     errors="replace", preexec_fn=preexec,
                                     start_new_session=True)
        self.lines = []
        self.port = read_startup_port(self.proc, self.lines, start_timeout,
                                      r"chat server on http://[^ ]*:(\d+)/")
        if self.port is None:
            self.stop()
            raise RuntimeError("server did not start: " + " ".join(cmd) + "\n"
                               + "".join(self.lines[-20:]))
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def pid(self):
        return self.proc.pid

    def rss_mib(self):
        """RSS of the server: of every process of its session (a wrapper
        such as run-chat.sh or examples/openresty/run.sh and the nginx it
        runs are one server)."""
        return sum(rss_mib(p) for p in session_pids(self.pid))

    def cpu_s(self):
        """CPU seconds of every process of its session so far (those that
        have exited no longer count)."""
        return sum(cpu_seconds(p) for p in session_pids(self.pid))

    def alive(self):
        return self.proc.poll() is None

    def rss_samples(self, seconds, interval=0.25):
        """[(t, RSS MiB)] every interval for seconds, or until it exits."""
        samples = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds and self.alive():
            samples.append((time.monotonic() - t0, self.rss_mib()))
            time.sleep(interval)
        return samples

    def stop(self):
        """SIGTERM (graceful: clients get 1001), SIGKILL after 15 s;
        returns the exit status (None when it had to be killed)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
            rc = None
        if getattr(self, "reader", None):
            self.reader.join(5)
        return rc


def session_pids(sid):
    """The processes of session sid (the server's own first)."""
    pids = [sid]
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == sid:
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[3]) == sid:  # field 6: session id
            pids.append(int(name))
    return pids


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass  # gone meanwhile
    return 0.0


def cpu_seconds(pid):
    """utime + stime of every thread of pid, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone meanwhile
    # fields[0] is field 3 (state): utime is field 14, stime 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def server_args(argv):
    """The command after "--" (or every argument when there is none)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return [], argv


def emit(result):
    print(json.dumps(result, sort_keys=False))


def verdict(result, failures):
    """Records a check's outcome in result and returns the exit status:
    0 when failures (what broke a bound, as text) is empty, else 1."""
    result["pass"] = not failures
    if failures:
        result["failures"] = failures
    return 0 if not failures else 1


def run_check(main, expect_fail=False):
    """Runs a check's main() and returns the exit status: 0 pass, 1 a bound
    broken, 2 could not measure (an exception: the server did not start,
    a bug here), so that 1 always means what the check is about.

    expect_fail (--expect-fail): for a check whose fix has not landed yet,
    so that CI stays green until it does and then notices: a broken bound
    exits 0 (an expected failure), a pass exits 1 ("unexpected pass":
    drop --expect-fail with the fix)."""
    try:
        status = main()
    except Exception:  # noqa: BLE001 - reported, and the status says so
        traceback.print_exc()
        return 2
    if expect_fail and status in (0, 1):
        print("expected failure (known defect, --expect-fail)" if status == 1 else
              "UNEXPECTED PASS: the bound holds now; remove --expect-fail", file=sys.stderr)
        return 1 - status
    return status


def parse_and_run(ap, own, cmd, check):
    """The end of every check's main(): --expect-fail, the chat server
    command after --, and check(args, cmd) under run_check."""
    ap.add_argument("--expect-fail", action="store_true")
    args = ap.parse_args(own)
    if not cmd:
        ap.error("give the chat server command after --")
    return run_check(lambda: check(args, cmd), args.expect_fail)


# ---- an attack in a process of its own -------------------------------------

def _attack_main(target, port, stop, out, stats, args):
    try:
        target(port, stop, stats, *args)
    finally:
        out.put(stats)


class ChildAttack:
    """Runs target(port, stop, stats, *args) in a child process. With the
    attacker and the measuring client in one Python process, the client's
    round trips included waits for the attacker's thread to give up the
    GIL: the numbers measured the script, not the server. stop() sets the
    stop event and returns the child's stats dict."""

    def __init__(self, target, port, stats, *args):
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._out = ctx.Queue()
        self.proc = ctx.Process(target=_attack_main, daemon=True,
                                args=(target, port, self._stop, self._out, stats, args))
        self.proc.start()

    def stop(self, timeout=20.0):
        self._stop.set()
        try:
            stats = self._out.get(timeout=timeout)
        except queue.Empty:
            stats = None
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        return stats


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


# ---- a raw WebSocket client ----------------------------------------------

def frame(opcode, payload, fin=True, declared_len=None, mask=b"\x11\x22\x33\x44"):
    """One masked client frame. declared_len lets the header promise more
    bytes than payload holds."""
    n = len(payload) if declared_len is None else declared_len
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + xor_mask(payload, mask)


def xor_mask(data, mask):
    if not data:
        return b""
    reps = (len(data) + 3) // 4
    key = int.from_bytes((mask * reps)[:len(data)], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(len(data), "big")


def envelope(channel, message, message_id=None):
    env = {"type": "json", "channel": channel, "message": message}
    if message_id is not None:
        env["message_id"] = message_id
    return json.dumps(env, separators=(",", ":")).encode()


class Client:
    """A blocking WebSocket client over loopback. rcvbuf (bytes) and mss
    are set before connect, so the window it advertises stays small (on
    loopback the MSS is 64 KiB, and one segment would hold many frames)."""

    def __init__(self, port, rcvbuf=None, timeout=10.0, protocol="wsnotify.json", mss=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        self.sock = s
        self.buf = b""
        if protocol is not None:
            self.handshake(protocol)

    def handshake(self, protocol):
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               f"Sec-WebSocket-Key: {key}\r\n")
        if protocol:
            req += f"Sec-WebSocket-Protocol: {protocol}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError("handshake refused: " + head.split(b"\r\n")[0].decode(errors="replace"))

    def send_text(self, data):
        self.sock.sendall(frame(0x1, data))

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_until(self, data, stop):
        """Sends all of data unless stop is set first; a server that stops
        reading only makes this wait (the socket's timeout is the poll
        interval). Returns False when stopped with data left."""
        view = memoryview(data)
        while view:
            if stop.is_set():
                return False
            try:
                n = self.sock.send(view)
            except TimeoutError:
                continue
            view = view[n:]
        return True

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def recv_frame(self):
        """(opcode, payload) of the next frame; pings are answered."""
        while True:
            self._need(2)
            b0, b1 = self.buf[0], self.buf[1]
            n = b1 & 0x7F
            off = 2
            if n == 126:
                self._need(4)
                n = struct.unpack("!H", self.buf[2:4])[0]
                off = 4
            elif n == 127:
                self._need(10)
                n = struct.unpack("!Q", self.buf[2:10])[0]
                off = 10
            self._need(off + n)
            payload = self.buf[off:off + n]
            self.buf = self.buf[off + n:]
            op = b0 & 0x0F
            if op == 0x9:
                self.sock.sendall(frame(0xA, payload))
                continue
            return op, payload

    def recv_json(self):
        """The next data message as a dict (None for a close frame)."""
        while True:
            op, payload = self.recv_frame()
            if op == 0x8:
                return None
            if op in (0x1, 0x2):
                return json.loads(payload)

    def subscribe(self, channel):
        self.send_text(envelope(channel, {"action": "subscribe", "channel": channel}, "sub"))
        while True:
            m = self.recv_json()
            if m is None:
                raise ConnectionError("closed while subscribing")
            msg = m.get("message")
            if isinstance(msg, dict) and msg.get("status") == "subscribed":
                return
            if isinstance(msg, dict) and msg.get("status") == "error":
                raise ConnectionError("subscribe refused: " + json.dumps(msg))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
