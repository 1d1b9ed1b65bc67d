"""Ping/pong with small durations (C: test_keepalive)."""

from __future__ import annotations

from conftest import OP_PING, OP_PONG, TIMEOUT

OPTS = dict(pong_wait=0.6, ping_period=0.2)


def test_server_pings(make_harness):
    h = make_harness(**OPTS)
    raw, c = h.raw_connected()
    op, data, fin = raw.recv_frame()  # the first thing the server sends
    assert op == OP_PING and fin
    raw.send_frame(OP_PONG, data)
    op2, _, _ = raw.recv_frame()
    assert op2 == OP_PING  # ping_period later, another one
    assert c.connected


def test_no_pong_dropped_pong_keeps_alive(make_harness):
    h = make_harness(**OPTS)
    ws, alive = h.connect()          # websockets answers every ping
    silent, gone = h.raw_connected()  # never reads, never answers
    assert h.wait_disconnect(gone.id) is gone  # dropped after pong_wait
    assert not gone.connected
    # The answering client saw pings all that time and is still here.
    assert alive.connected
    assert h.server.get_client_list() == [alive.id]
    h.server.subscribe(alive, "c")
    h.server.publish("c", "still here")
    assert ws.recv(timeout=TIMEOUT).endswith('"message":"still here"}')
    # What the silent client gets: pings, then a close frame or nothing.
    _, code, _ = silent.read_until_close()
    assert code in (None, 1001, 1006, 1011)


def test_data_is_not_keepalive(make_harness):
    """A client that answers pings with data instead of pongs is dropped."""
    h = make_harness(**OPTS)
    raw, c = h.raw_connected()
    dropped = False
    for _ in range(1000):
        try:
            op, data, _ = raw.recv_frame()
        except (EOFError, ConnectionResetError):
            dropped = True
            break
        if op == 8:  # close
            dropped = True
            break
        if op == OP_PING:
            raw.send_text('{"type":"json","message":0}')
    assert dropped
    assert h.wait_disconnect(c.id) is c


def test_nonempty_pong_keeps_alive(make_harness):
    """Diagnosis aid for test_no_pong_dropped_pong_keeps_alive: a client
    that answers every ping with a pong carrying a payload stays."""
    h = make_harness(**OPTS)
    raw, c = h.raw_connected()
    pings = 0
    while pings < 6:  # six pings at 0.2 s span two pong_waits
        op, data, _ = raw.recv_frame()
        assert op == OP_PING
        pings += 1
        raw.send_frame(OP_PONG, data or b"x")
    assert c.connected


def test_pong_keeps_alive(make_harness):
    """The same with pongs that echo the ping's payload, as RFC 6455 asks
    and as browsers and the websockets package do."""
    h = make_harness(**OPTS)
    raw, c = h.raw_connected()
    pings = 0
    while pings < 6:
        op, data, _ = raw.recv_frame()
        assert op == OP_PING, f"dropped after {pings} answered pings"
        pings += 1
        raw.send_frame(OP_PONG, data)
    assert c.connected
