"""Backpressure: drop mode closes a slow client with 1001 + reason; block
mode makes the publisher wait (without holding the GIL) and loses nothing
(C: test_backpressure)."""

from __future__ import annotations

import json
import sys
import threading

import pytest

from wsnotify import WsnotifyTimeoutError

from conftest import TIMEOUT

PAYLOAD = "x" * 16384
# 600 x 16 KiB is more than the kernel buffers a never-reading client can
# absorb (tcp_wmem max 4 MiB + its tiny receive buffer), so its send queue
# must fill and it must be closed.
FLOOD = 600


def flood(server, fast_ws, timeouts_allowed=0):
    """Publishes FLOOD messages to channel c; the fast subscriber reads each
    one before the next publish (lockstep), so it is never behind and must
    never be dropped. The slow one reads nothing meanwhile. (Whether the
    slow client already counts as gone right after the flood depends on
    whether its close frame could be written yet: close_grace.)

    In block mode the publish that meets the stall waits write_wait, and so
    does the I/O thread before it closes the stalled client: whichever
    deadline is served first decides whether that publish is accepted or
    gives up with WSN_ETIMEDOUT, as the header allows (a refused message
    reaches nobody). timeouts_allowed bounds how often that may happen."""
    refused = 0
    for n in range(FLOOD):
        try:
            server.publish("c", {"i": n, "p": PAYLOAD})
        except WsnotifyTimeoutError:
            refused += 1
            assert refused <= timeouts_allowed
            continue
        got = json.loads(fast_ws.recv(timeout=TIMEOUT))["message"]
        assert got["i"] == n
    return FLOOD


@pytest.mark.parametrize("reason", [None, "too slow, bye"])
def test_drop_mode(make_harness, reason):
    opts = dict(drop_on_backpressure=True, send_buffer=4, close_grace=5)
    if reason:
        opts["backpressure_reason"] = reason
    h = make_harness(**opts)
    s = h.server
    slow, sc = h.raw_connected(rcvbuf=4096)  # never reads while we publish
    s.subscribe(sc, "c")
    ws, fc = h.connect()
    s.subscribe(fc, "c")
    n = flood(s, ws)
    msgs, code, why = slow.read_until_close()
    assert h.wait_disconnect(sc.id) is sc
    assert code == 1001
    assert why == (reason or "going away: backpressure")
    assert len(msgs) < n  # it missed what came after its queue filled
    got = [json.loads(m)["message"]["i"] for m in msgs]
    assert got == list(range(len(got)))  # what it got was a prefix
    # The fast subscriber is unaffected.
    s.publish("c", "end")
    assert json.loads(ws.recv(timeout=TIMEOUT))["message"] == "end"
    assert fc.connected
    assert s.get_client_list() == [fc.id]


def test_block_mode_drops_after_write_wait(make_harness):
    h = make_harness(send_buffer=2, write_wait=0.3, close_grace=5)
    s = h.server
    slow, sc = h.raw_connected(rcvbuf=4096)
    s.subscribe(sc, "c")
    ws, fc = h.connect()
    s.subscribe(fc, "c")
    n = flood(s, ws, timeouts_allowed=1)  # a full-queue publish waits, then
    msgs, code, why = slow.read_until_close()  # the slow one is closed
    assert (code, why) == (1001, "going away: backpressure")
    got = [json.loads(m)["message"]["i"] for m in msgs]
    assert got == list(range(len(got))) and len(got) < n
    assert h.wait_disconnect(sc.id) is sc
    s.publish("c", "end")
    assert json.loads(ws.recv(timeout=TIMEOUT))["message"] == "end"
    assert fc.connected


def test_block_slow_reader_keeps_up_without_gil(make_harness):
    """A publisher blocked on a full client must not hold the GIL: with the
    switch interval made huge, Python threads only switch when one blocks
    in C with the GIL released. If publish held it while waiting, the
    reader below could never run and the client would be dropped after
    write_wait."""
    h = make_harness(send_buffer=2, write_wait=TIMEOUT)
    s = h.server
    slow, sc = h.raw_connected(rcvbuf=4096)
    s.subscribe(sc, "c")
    total = 300
    errors = []

    def publisher():
        try:
            for i in range(total):
                s.publish("c", {"i": i, "p": PAYLOAD})
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        t = threading.Thread(target=publisher)
        t.start()
        got = []
        while len(got) < total:
            op, data, _ = slow.recv_frame()
            got.append(json.loads(data)["message"]["i"])
        t.join(TIMEOUT)
    finally:
        sys.setswitchinterval(old)
    assert not t.is_alive() and errors == []
    assert got == list(range(total))  # nothing lost, in order
    assert sc.connected
