"""Server(nonblocking=True): the synchronous publish calls never wait for
room; where they would (a stalled block-mode client) they raise NoRoomError
with nothing queued (C: tests/test_nonblock.c)."""

from __future__ import annotations

import json
import select

import pytest

from wsnotify import NoRoomError, Server, WsnotifyError

from conftest import OP_TEXT, TIMEOUT

PAYLOAD = "x" * 16384
# More than the kernel buffers a never-reading client absorbs (see
# test_backpressure): the subscriber below must stall before this.
TOTAL = 600


def test_nonblocking_must_be_bool():
    with pytest.raises(TypeError):
        Server(port=0, nonblocking=1)


def test_refused_not_waited_then_accepted_in_order(make_harness):
    """A block-mode subscriber stops reading. With write_wait at 60 s a
    waiting publish would take a minute: every kind is refused at once
    instead (NoRoomError, code WSN_EAGAIN), and a message to a client that
    is not stalled still goes. Once the subscriber reads, publishing works
    again, and it gets every accepted message exactly once, in order."""
    h = make_harness(send_buffer=2, write_wait=60, nonblocking=True)
    s = h.server
    slow, slow_client = h.raw_connected(rcvbuf=4096)
    other_ws, other = h.connect()
    s.subscribe(slow_client, "c")

    # The first refusal comes when the client's queue is full at that
    # moment; the kernel may still take more from it afterwards, and the
    # room fd says so. Publish until the room stays shut (the kernel's
    # buffers are full too), so the refusals below are not a race.
    accepted = 0
    refusal = None
    while accepted < TOTAL:
        try:
            s.publish("c", {"i": accepted, "p": PAYLOAD})
            accepted += 1
            continue
        except NoRoomError as e:
            refusal = e
        readable, _, _ = select.select([s.room_fileno()], [], [], 0.5)
        if not readable:
            break
    assert refusal is not None and refusal.name == "WSN_EAGAIN"
    assert 0 < accepted < TOTAL

    for call in (lambda: s.publish_with_type("c", {"i": -1}),
                 lambda: s.publish_to_client(slow_client, "c", {"i": -1}),
                 lambda: s.send_raw(slow_client, "raw"),
                 lambda: s.publish_wait("c", {"i": -1}, 1, "batch", 0.01)):
        with pytest.raises(NoRoomError):
            call()
    assert s.pending_batches() == 0  # the refused batch message joined none

    # Room in one client is all a message to that client needs.
    s.publish_to_client(other, "", {"to": "other"})
    assert json.loads(other_ws.recv(timeout=10))["message"] == {"to": "other"}

    got = []
    while len(got) < accepted:
        op, data, _ = slow.recv_frame()
        assert op == OP_TEXT
        got.append(json.loads(data)["message"]["i"])
    assert got == list(range(accepted))

    # Reading gave the room back (the room fd says when the I/O thread has
    # seen it): the next publish is accepted and arrives right after the
    # others, so nothing refused was queued.
    readable, _, _ = select.select([s.room_fileno()], [], [], TIMEOUT)
    assert readable
    s.publish("c", {"i": accepted})
    op, data, _ = slow.recv_frame()
    assert json.loads(data)["message"]["i"] == accepted


def test_blocking_default_unchanged(make_harness):
    """Without the option nothing raises NoRoomError: the calls are the
    blocking ones (a refused one would be a WsnotifyError of another
    kind)."""
    h = make_harness()
    ws, client = h.connect()
    h.server.subscribe(client, "c")
    try:
        h.server.publish("c", {"n": 1})
    except WsnotifyError as e:  # pragma: no cover - would be a bug
        raise AssertionError(e)
    assert json.loads(ws.recv(timeout=10))["message"] == {"n": 1}
