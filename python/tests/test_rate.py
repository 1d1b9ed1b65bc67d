"""The per-client inbound message rate (client_rate, client_burst): a
flood is closed with 1008 "message rate exceeded", what was within the
bucket reaches the handler in order and nothing after (C: test_rate)."""

from __future__ import annotations

import queue
import time

from conftest import TIMEOUT, expect_close
from wsnotify import default_options


def handler_messages(h, client_id):
    """The payloads the handler got from client_id up to its disconnect."""
    got = []
    while True:
        h.wait_disconnect(client_id)
        while True:
            try:
                sender, msg = h.messages.get_nowait()
            except queue.Empty:
                return got
            assert sender.id == client_id
            got.append(msg.message)


def flood(h, count):
    ws, client = h.connect()
    start = time.monotonic()
    for i in range(count):
        try:
            ws.send('{"type":"json","message":%d}' % i)
        except Exception:  # closed by the server meanwhile
            break
    _, code, reason = expect_close(ws)
    got = handler_messages(h, client.id)
    return code, reason, got, time.monotonic() - start


def test_flood_closed_1008(make_harness):
    h = make_harness(client_rate=1, client_burst=5)
    code, reason, got, secs = flood(h, 40)
    assert (code, reason) == (1008, "message rate exceeded")
    # burst, plus what refilled at 1/s while the flood was read
    assert list(range(5)) == got[:5] and 5 <= len(got) <= 5 + int(secs + 1)
    assert got == list(range(len(got)))


def test_defaults_bound_a_flood(make_harness):
    d = default_options()
    assert (d["client_rate"], d["client_burst"]) == (100, 200)
    h = make_harness()
    code, reason, got, secs = flood(h, 2000)
    assert (code, reason) == (1008, "message rate exceeded")
    assert 200 <= len(got) <= 200 + int(100 * (secs + 0.01))
    assert got == list(range(len(got)))


def test_within_rate_never_closed(make_harness):
    h = make_harness(client_rate=50, client_burst=25)
    ws, client = h.connect()
    start = time.monotonic()
    for i in range(50):  # 25 a second: the pace of the simulated client
        time.sleep(max(0.0, start + i * 0.04 - time.monotonic()))
        ws.send('{"type":"json","message":%d}' % i)
    for i in range(50):
        sender, msg = h.messages.get(timeout=TIMEOUT)
        assert msg.message == i
    assert client.connected
    h.server.subscribe(client, "c")
    h.server.publish("c", 1)
    assert '"message":1' in ws.recv(timeout=TIMEOUT)


def test_rate_zero_disables(make_harness):
    h = make_harness(client_rate=0)
    ws, client = h.connect()
    for i in range(2000):
        ws.send('{"type":"json","message":%d}' % i)
    for i in range(2000):
        assert h.messages.get(timeout=TIMEOUT)[1].message == i
    assert client.connected
