"""Batched publishing: publish_wait, publish_wait_with_type,
publish_wait_string, cancel_pending_messages, limits (C: test_batch)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from wsnotify import LimitError, MessageType

from conftest import TIMEOUT, expect_close, expect_envelope, normalize

TTL = 0.2


@pytest.fixture
def sub(harness):
    ws, c = harness.connect()
    harness.server.subscribe(c, "c")
    return harness.server, ws, c


def batch_env(name, messages, channel="c"):
    return ('{"channel":"%s","type":"json","time":"T","message":'
            '{"messages":%s,"name":%s}}'
            % (channel, json.dumps(messages, separators=(",", ":")),
               json.dumps(name)))


def test_batch_json(sub):
    s, ws, c = sub
    s.publish_wait("c", {"user": "A", "x": 10, "y": 45}, 12345,
                   "cursor-updates", TTL)
    s.publish_wait("c", {"user": "B", "insert": "h", "pos": 82}, 12345,
                   "cursor-updates", timedelta(seconds=TTL))
    expect_envelope(ws, batch_env("cursor-updates", [
        {"user": "A", "x": 10, "y": 45},
        {"user": "B", "insert": "h", "pos": 82}]))


def test_batch_dedup(sub):
    s, ws, c = sub
    for m in [{"a": 1, "b": 2}, 3, {"b": 2, "a": 1}, "s", 3, "s", [1]]:
        s.publish_wait("c", m, 1, "d", TTL)
    raw = ws.recv(timeout=TIMEOUT)
    got = json.loads(raw)["message"]
    assert got["name"] == "d"
    assert got["messages"] == [{"a": 1, "b": 2}, 3, "s", [1]]  # first seen


def test_batch_text(sub):
    s, ws, c = sub
    s.publish_wait_string("c", "INFO: User logged in", 1, "Server-1 Logs", TTL)
    s.publish_wait_string("c", "WARN: High CPU usage detected", 1,
                          "Server-1 Logs", TTL)
    s.publish_wait_string("c", "INFO: User logged in", 1, "Server-1 Logs",
                          TTL)  # duplicate: kept once
    expect_envelope(ws, '{"channel":"c","type":"text","time":"T","message":'
                        + json.dumps("Server-1 Logs\n\nINFO: User logged in\n"
                                     "WARN: High CPU usage detected") + "}")


def test_batch_binary(sub):
    s, ws, c = sub
    s.publish_wait_with_type("c", b"\x00\xfb", MessageType.BINARY, 5, "bin",
                             TTL)
    s.publish_wait_with_type("c", bytearray(b"\xff"), MessageType.BINARY, 5,
                             "bin", TTL)
    expect_envelope(ws, batch_env("bin", [base64.b64encode(b"\x00\xfb")
                                          .decode(), "/w=="]))


def test_batch_with_type_json_and_text(sub):
    s, ws, c = sub
    s.publish_wait_with_type("c", {"k": 1}, MessageType.JSON, 6, "j", TTL)
    expect_envelope(ws, batch_env("j", [{"k": 1}]))
    s.publish_wait_with_type("c", "line", MessageType.TEXT, 7, "t", TTL)
    expect_envelope(ws, '{"channel":"c","type":"text","time":"T","message":'
                        '"t\\n\\nline"}')


def test_batch_first_fixes(sub):
    s, ws, c = sub
    s.publish_wait("c", 1, 9, "first", TTL)
    s.publish_wait("c", 2, 9, "second", 3600)  # name and ttl ignored
    expect_envelope(ws, batch_env("first", [1, 2]))


def test_batch_keys_are_channel_and_ident(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    s.subscribe(c, "d")
    s.publish_wait("c", "c1", 1, "n", TTL)
    s.publish_wait("c", "c2", 2, "n", TTL)
    s.publish_wait("d", "d1", 1, "n", TTL)
    got = sorted(normalize(ws.recv(timeout=TIMEOUT)) for _ in range(3))
    assert got == sorted([batch_env("n", ["c1"]), batch_env("n", ["c2"]),
                          batch_env("n", ["d1"], channel="d")])


def test_batch_cancel(sub):
    s, ws, c = sub
    s.publish_wait("c", "dropped", 1, "cancelled", 0.05)
    assert s.pending_batches() == 1
    s.cancel_pending_messages("c", 1)
    assert s.pending_batches() == 0
    s.cancel_pending_messages("c", 1)  # no batch: a no-op
    s.cancel_pending_messages("c", 999)
    # A later batch with a longer ttl arrives first and alone: the
    # cancelled one (due earlier) was never sent.
    s.publish_wait("c", "marker", 2, "kept", 0.3)
    expect_envelope(ws, batch_env("kept", ["marker"]))
    s.publish("c", "end")
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T",'
                        '"message":"end"}')


def test_batch_pending_limit(make_harness):
    h = make_harness(max_pending_batches=2)
    ws, c = h.connect()
    s = h.server
    s.subscribe(c, "c")
    s.publish_wait("c", 1, 1, "a", 3600)
    s.publish_wait("c", 2, 2, "b", 3600)
    s.publish_wait("c", 3, 1, "a", 3600)  # an existing key: fine
    with pytest.raises(LimitError, match=r"publish_wait\('c', ident=3\)"):
        s.publish_wait("c", 4, 3, "c", 3600)
    assert s.pending_batches() == 2
    s.cancel_pending_messages("c", 2)
    s.publish_wait("c", 4, 3, "c", TTL)  # room again
    expect_envelope(ws, batch_env("c", [4]))


def test_batch_max_messages(make_harness):
    h = make_harness(max_batch_messages=2)
    ws, c = h.connect()
    s = h.server
    s.subscribe(c, "c")
    for i in range(5):
        s.publish_wait("c", i, 1, "m", 3600)
    # full batches go at once; the key then starts afresh
    expect_envelope(ws, batch_env("m", [0, 1]))
    expect_envelope(ws, batch_env("m", [2, 3]))
    assert s.pending_batches() == 1
    s.cancel_pending_messages("c", 1)


def test_batch_ttl_zero(sub):
    s, ws, c = sub
    s.publish_wait("c", "now", 1, "zero", 0)
    expect_envelope(ws, batch_env("zero", ["now"]))


def test_batch_errors(sub):
    s, ws, c = sub
    with pytest.raises(ValueError):
        s.publish_wait("", 1, 1, "n", TTL)
    with pytest.raises(ValueError):
        s.publish_wait_string("", "x", 1, "n", TTL)
    with pytest.raises(ValueError):
        s.cancel_pending_messages("", 1)
    with pytest.raises(ValueError, match="ttl must not be negative"):
        s.publish_wait("c", 1, 1, "n", timedelta(seconds=-1))
    with pytest.raises(TypeError, match="text must be a str"):
        s.publish_wait_string("c", b"x", 1, "n", TTL)
    with pytest.raises(TypeError, match="ttl must be a number"):
        s.publish_wait("c", 1, 1, "n", "1s")
    s.publish_wait("c", 1, 2 ** 64 - 1, "big ident", TTL)
    expect_envelope(ws, batch_env("big ident", [1]))


def test_shutdown_flushes_batches(harness):
    ws, c = harness.connect()
    s = harness.server
    s.subscribe(c, "c")
    s.publish_wait("c", 1, 1, "a", 3600)
    s.publish_wait_string("c", "x", 2, "b", 3600)
    s.shutdown(5)
    msgs, code, reason = expect_close(ws)
    assert (code, reason) == (1001, "server shutdown")
    assert sorted(normalize(m) for m in msgs) == sorted([
        batch_env("a", [1]),
        '{"channel":"c","type":"text","time":"T","message":"b\\n\\nx"}'])
