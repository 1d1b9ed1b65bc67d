"""The Redis broker through the binding: the option by name, the state
call, the BROKER event, BrokerError, publish_to_client_id across servers.
Two servers in this process and a redis-server of the test's own (the
C suite, tests/test_broker.c, runs three servers in separate processes)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from wsnotify import BrokerError

from conftest import TIMEOUT, Harness

REDIS = os.environ.get("WSN_REDIS_SERVER") or shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None,
                                reason="redis-server not installed (scripts/setup.sh)")


class Redis:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="wsnr-")
        self.sock = os.path.join(self.dir, "r.sock")
        self.url = "unix:" + self.sock
        self.proc: Any = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS, "--port", "0", "--unixsocket", self.sock, "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--logfile", "redis.log"])
        deadline = time.monotonic() + TIMEOUT
        while True:  # until it accepts: a bounded poll, not a sleep
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.sock)
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
            finally:
                s.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)
        self.proc = None
        os.unlink(self.sock)

    def end(self) -> None:
        if self.proc:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis() -> Iterator[Redis]:
    r = Redis()
    r.start()
    yield r
    r.end()


def broker_harness(url: str, events: "queue.Queue[tuple]") -> Harness:
    h = Harness(broker=url)
    h.server.on_broker(lambda state, reason: events.put((state, reason)))
    return h.start()


def expect_state(events: "queue.Queue[tuple]", want: str) -> str:
    state, reason = events.get(timeout=TIMEOUT)
    assert state == want, (state, reason)
    return reason


def recv_json(ws: Any) -> Any:
    return json.loads(ws.recv(timeout=TIMEOUT))


def await_route(src: Harness, ws: Any, channel: str) -> None:
    """Probes from src until ws (on another server) gets one: that server's
    subscription is live in Redis. Leftover probes are read away after."""
    for i in range(1000):
        src.server.publish(channel, {"probe": i})
        try:
            while True:
                if "probe" in json.loads(ws.recv(timeout=0.05))["message"]:
                    break
            break
        except TimeoutError:
            continue
    src.server.publish(channel, {"probe": "end"})
    while recv_json(ws)["message"] != {"probe": "end"}:
        pass


def test_two_servers_state_event_failover(redis: Redis) -> None:
    ea: "queue.Queue[tuple]" = queue.Queue()
    eb: "queue.Queue[tuple]" = queue.Queue()
    a, b = broker_harness(redis.url, ea), broker_harness(redis.url, eb)
    try:
        expect_state(ea, "up")
        expect_state(eb, "up")
        st = a.server.broker_state()
        assert st["state"] == "up" and st["reason"] == "" and len(st["server_id"]) == 10
        assert a.server.options["broker"] == redis.url
        ws_a, ca = a.connect()
        ws_b, cb = b.connect()
        assert cb.id.startswith("c_" + b.server.broker_state()["server_id"] + "_")
        a.server.subscribe(ca, "room")
        b.server.subscribe(cb, "room")
        await_route(a, ws_b, "room")
        while recv_json(ws_a)["message"] != {"probe": "end"}:
            pass

        a.server.publish("room", {"n": 1})
        assert recv_json(ws_b)["message"] == {"n": 1}
        assert recv_json(ws_a)["message"] == {"n": 1}
        a.server.publish_to_client_id(cb.id, "dm", {"to": "b"})
        env = recv_json(ws_b)
        assert (env["channel"], env["message"]) == ("dm", {"to": "b"})

        redis.kill()
        assert expect_state(ea, "down").startswith("redis unix:")
        expect_state(eb, "down")
        with pytest.raises(BrokerError):
            a.server.publish("room", {"n": 2})
        assert recv_json(ws_a)["message"] == {"n": 2}  # this server's clients
        with pytest.raises(BrokerError):
            a.server.publish_to_client_id(cb.id, "dm", {"to": "b"})
        assert a.server.broker_state()["refused"] >= 1

        redis.start()
        expect_state(ea, "up")
        expect_state(eb, "up")
        a.server.publish("room", {"n": 3})
        # ws_b never saw n=2 and still has its connection: n=3 is next.
        assert recv_json(ws_b)["message"] == {"n": 3}
        assert b.server.broker_state()["reconnects"] == 1
    finally:
        a.stop()
        b.stop()


def test_no_broker_state() -> None:
    h = Harness().start()
    try:
        st = h.server.broker_state()
        assert st["state"] == "none" and st["server_id"] == ""
        ws, c = h.connect()
        assert c.id.startswith("c_") and c.id[2:].isdigit()
        h.server.publish_to_client_id(c.id, "dm", {"x": 1})
        assert recv_json(ws)["message"] == {"x": 1}
    finally:
        h.stop()


def test_bad_broker_url() -> None:
    with pytest.raises(ValueError, match="broker"):
        Harness(broker="http://nowhere")
