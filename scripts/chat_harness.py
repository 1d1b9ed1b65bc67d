"""What the chat-example smoke tests share: the pass/fail tally and the
example server as a child process (C binary or chat.py) on a free port."""

import os
import re
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print(f"  ok   {what}")
        else:
            self.failed += 1
            print(f"  FAIL {what}")
        return cond


def read_startup_port(proc, lines, start_timeout, pattern=r"https?://[^:]+:(\d+)/"):
    """Reads proc's output (kept in lines) until its startup line names the
    port it listens on; returns the port, or None if the process ended or
    start_timeout passed first."""
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(pattern, line)
        if m:
            return int(m.group(1))
    return None


class ChatServer:
    """Starts the example with --port 0 and reads the port it chose from its
    startup line; its output is drained meanwhile so a full pipe never
    blocks it."""

    def __init__(self, program, start_timeout=20, extra_args=()):
        cmd = [sys.executable, program] if program.endswith(".py") else [program]
        self.proc = subprocess.Popen(
            cmd + ["--port", "0", "--host", "127.0.0.1",
                   "--static-dir", os.path.join(ROOT, "examples", "chat")]
            + list(extra_args),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.port = read_startup_port(self.proc, self.lines, start_timeout)
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.lines)
                               + self.proc.stdout.read())
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def stop(self, sig):
        """Sends sig and returns the exit status (None if it had to be
        killed after 15 s)."""
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = None
        self.reader.join(5)
        return rc


def run_scenario(tally, program, title, scenario_of, extra_args=(), limit=60):
    """Starts the example, runs the coroutine scenario_of(srv) against it
    (at most limit seconds), kills what is left and prints the server's
    output once a check has failed."""
    import asyncio  # the harness itself is synchronous
    print(title)
    srv = ChatServer(program, extra_args=extra_args)
    try:
        asyncio.run(asyncio.wait_for(scenario_of(srv), limit))
    except Exception as e:  # report, don't hide
        tally.check(False, f"scenario raised {type(e).__name__}: {e}")
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
    if tally.failed:
        print("server output:\n" + "".join(srv.lines))
