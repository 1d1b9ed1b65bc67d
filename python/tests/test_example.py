"""examples/python/chat.py: the chat protocol, the page, --port/WSN_PORT,
graceful SIGINT/SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from conftest import TIMEOUT, expect_close, expect_envelope, ws_connect

REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / "examples" / "python" / "chat.py"
PAGE = REPO / "examples" / "chat" / "index.html"

pytestmark = pytest.mark.skipif(
    not CHAT.is_file(), reason="not in a repository checkout (no "
    "examples/python/chat.py next to the tests)")


class Chat:
    def __init__(self, *args, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, str(CHAT), *args], stderr=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=e)
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.log = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)
        self.lines.put("")

    def wait_line(self, pattern):
        for _ in range(10000):
            line = self.lines.get(timeout=TIMEOUT)
            if line == "":
                raise AssertionError("chat.py ended:\n" + "".join(self.log))
            m = re.search(pattern, line)
            if m:
                return m
        raise AssertionError(f"no line matching {pattern}")

    def port(self):
        return int(self.wait_line(r"chat server on http://[^:]+:(\d+)/")
                   .group(1))

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(TIMEOUT)


@pytest.fixture
def chat():
    made = []

    def start(*args, env=None):
        c = Chat(*args, env=env)
        made.append(c)
        return c

    yield start
    for c in made:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


@pytest.mark.skipif(not PAGE.is_file(), reason="no examples/chat/index.html")
@pytest.mark.parametrize("sig,verbose", [(signal.SIGTERM, False),
                                         (signal.SIGINT, True)])
def test_chat_protocol_and_graceful_stop(chat, sig, verbose):
    c = chat("--port", "0", *(["--verbose"] if verbose else []))
    port = c.port()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/", timeout=TIMEOUT) as r:
        assert r.read() == PAGE.read_bytes()
    url = f"ws://127.0.0.1:{port}/ws"
    a = ws_connect(url, origin=f"http://127.0.0.1:{port}")  # as the page
    b = ws_connect(url)
    for ws, mid in ((a, "m1"), (b, "m2")):
        ws.send(json.dumps({"type": "json", "channel": "room", "message": {
            "action": "subscribe", "channel": "room"}, "message_id": mid}))
        expect_envelope(ws, '{"channel":"room","type":"json","time":"T",'
                            '"message":{"status":"subscribed","channel":'
                            '"room"},"reply_to_id":"%s"}' % mid)
    a.send(json.dumps({"type": "json", "channel": "room", "message": {
        "action": "broadcast", "text": "hi", "user": "alice"}}))
    for ws in (a, b):
        expect_envelope(ws, '{"channel":"room","type":"json","time":"T",'
                            '"message":{"action":"broadcast","text":"hi",'
                            '"user":"alice"}}')
    # a bad channel name gets an error reply, not silence
    a.send(json.dumps({"type": "json", "message": {
        "action": "subscribe", "channel": ""}, "message_id": "m3"}))
    expect_envelope(a, '{"channel":"","type":"json","time":"T","message":'
                       '{"status":"error","channel":"","error":"invalid '
                       'argument"},"reply_to_id":"m3"}')
    assert c.stop(sig) == 0
    assert expect_close(a)[1:] == (1001, "server shutdown")
    assert expect_close(b)[1:] == (1001, "server shutdown")
    log = "".join(c.log)
    assert "gracefully stopped" in log
    # One line per connection and per message only with --verbose.
    if verbose:
        assert log.count("client disconnected") == 2
        assert log.count("client connected") == 2
        assert log.count("message from") == 4
        assert log.count("subscribed to 'room'") == 2
    else:
        for line in ("client connected", "client disconnected",
                     "message from", "subscribed to"):
            assert line not in log
    # a failure stays at info level
    assert log.count("subscription failed") == 1


@pytest.mark.skipif(not PAGE.is_file(), reason="no examples/chat/index.html")
def test_chat_declines_deflate(chat):
    """The chat example has no --compression since the core refuses
    permessage-deflate: a client offering it chats without it."""
    c = chat("--port", "0")
    port = c.port()
    url = f"ws://127.0.0.1:{port}/ws"
    ws = ws_connect(url, compression="deflate")
    assert ws.protocol.extensions == []
    ws.send(json.dumps({"type": "json", "channel": "room", "message": {
        "action": "subscribe", "channel": "room"}, "message_id": "m1"}))
    expect_envelope(ws, '{"channel":"room","type":"json","time":"T",'
                        '"message":{"status":"subscribed","channel":'
                        '"room"},"reply_to_id":"m1"}')
    text = "compressible " * 200
    ws.send(json.dumps({"type": "json", "channel": "room", "message": {
        "action": "broadcast", "text": text}}))
    expect_envelope(ws, '{"channel":"room","type":"json","time":"T",'
                        '"message":{"action":"broadcast","text":"%s"}}'
                    % text)
    assert c.stop() == 0
    assert expect_close(ws)[1:] == (1001, "server shutdown")


def test_chat_help_lists_flags(chat):
    c = chat("--help")
    out = c.proc.stdout.read()
    assert c.proc.wait(TIMEOUT) == 0
    assert "--verbose" in out and "--compression" not in out


@pytest.mark.skipif(not PAGE.is_file(), reason="no examples/chat/index.html")
def test_chat_port_from_env(chat):
    c = chat(env={"WSN_PORT": "0"})
    assert c.port() > 0
    assert c.stop() == 0


def test_chat_bad_port(chat):
    c = chat("--port", "70000")
    assert c.proc.wait(TIMEOUT) == 2
    c2 = chat(env={"WSN_PORT": "x"})
    assert c2.proc.wait(TIMEOUT) == 2


def test_chat_missing_page(chat, tmp_path):
    c = chat("--static-dir", str(tmp_path))
    assert c.proc.wait(TIMEOUT) == 2
