"""Metrics: Server.metrics(), metrics_text() and GET /metrics, read with
prometheus_client's own parser of the text format, after known sequences
with real clients (C: test_metrics)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import TIMEOUT

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with _opener.open(req, timeout=TIMEOUT) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def parse(text):
    """{sample name: {labels as a sorted tuple: value}} and {family: type}."""
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        assert fam.documentation, f"{fam.name} has no HELP"
        for s in fam.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples, types


def one(samples, name, **labels):
    return samples[name][tuple(sorted(labels.items()))]


def wait_for(cond, what):
    """Polls a condition with a deadline (the I/O thread counts a frame right
    after writing it, so a client may read it a moment before)."""
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


JSON_MSG = '{"type":"json","channel":"room","message":{"n":1}}'
TEXT_MSG = '{"type":"text","channel":"room","message":"hello"}'
BIN_MSG = b"\x00\x01\x02\xff"


def test_route_after_a_known_sequence(make_harness):
    N, M, K = 2, 2, 3
    h = make_harness(metrics=True)
    s = h.server
    clients = [h.connect() for _ in range(N)]
    refused = h.raw(origin="http://elsewhere.example")
    assert refused.status == 403
    for _, c in clients:
        s.subscribe(c, "room")
    ws0 = clients[0][0]
    for _ in range(M):
        ws0.send(JSON_MSG)
        ws0.send(TEXT_MSG)
        ws0.send(BIN_MSG)
    ws0.send("not json")
    assert '"error":"invalid JSON format"' in ws0.recv(timeout=TIMEOUT)
    for _ in range(3 * M):
        h.next_message()
    for _ in range(K):
        s.publish("room", {"k": 1})
    for ws, _ in clients:
        for _ in range(K):
            ws.recv(timeout=TIMEOUT)
    wait_for(lambda: s.metrics()["messages_sent"] == 1 + N * K, "the frames counted")

    code, body, headers = get(f"http://127.0.0.1:{s.port}/metrics")
    assert code == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples, types = parse(body)
    assert set(types.values()) == {"counter", "gauge"}
    assert types["wsnotify_connections"] == "gauge"
    assert types["wsnotify_connections_accepted"] == "counter"  # _total is the sample's
    assert types["wsnotify_deliveries"] == "counter"
    assert types["wsnotify_queued_messages"] == "gauge"
    assert one(samples, "wsnotify_connections") == N
    assert one(samples, "wsnotify_connections_accepted_total") == N
    assert one(samples, "wsnotify_connections_refused_total", reason="origin") == 1
    assert one(samples, "wsnotify_connections_refused_total", reason="max_clients") == 0
    assert one(samples, "wsnotify_connections_ended_total") == 0
    assert one(samples, "wsnotify_subscriptions") == N
    assert one(samples, "wsnotify_channels") == 1
    for t in ("json", "text", "binary"):
        assert one(samples, "wsnotify_messages_received_total", type=t) == M
    assert one(samples, "wsnotify_received_bytes_total", type="json") == M * len(JSON_MSG)
    assert one(samples, "wsnotify_received_bytes_total", type="text") == M * len(TEXT_MSG)
    assert one(samples, "wsnotify_received_bytes_total", type="binary") == M * len(BIN_MSG)
    assert one(samples, "wsnotify_messages_invalid_total") == 1
    assert one(samples, "wsnotify_deliveries_total") == 1 + N * K
    assert one(samples, "wsnotify_messages_sent_total") == 1 + N * K
    assert one(samples, "wsnotify_messages_dropped_total") == 0
    assert one(samples, "wsnotify_queued_messages") == 0
    assert one(samples, "wsnotify_queue_depth_max") == 0
    assert one(samples, "wsnotify_host_events_queued") == 0
    for reason in ("limit", "again", "timeout", "backpressure"):
        assert one(samples, "wsnotify_publish_refused_total", reason=reason) == 0
    assert "wsnotify_broker_state" not in samples
    (version,) = samples["wsnotify_build_info"]
    assert dict(version)["version"] == s.metrics_text().split('version="')[1].split('"')[0]

    # The dict agrees with the text.
    m = s.metrics()
    assert m["connections"] == N and m["connections_accepted"] == N
    assert m["connections_refused"]["origin"] == 1
    assert m["messages_received"] == {"json": M, "text": M, "binary": M}
    assert m["bytes_sent"] == one(samples, "wsnotify_sent_bytes_total")
    assert m["reads_paused"] is False and m["broker_state"] == "none"


def test_slow_client_dropped(make_harness):
    """Drop mode: a client that never reads is closed with 1001; the
    snapshot counts the close, what it never got, and the end."""
    h = make_harness(drop_on_backpressure=True, send_buffer=4, metrics=True)
    s = h.server
    slow, c = h.raw_connected(rcvbuf=4096)
    s.subscribe(c, "c")
    big = {"pad": "x" * 16000}
    for _ in range(2000):
        if not c.connected:
            break
        s.publish("c", big)
    h.wait_disconnect(c.id)
    m = s.metrics()
    assert m["connections_closed"]["queue_full"] == 1
    assert m["connections_closed"]["slow"] == 0
    assert m["connections_ended"] == 1 and m["connections"] == 0
    assert m["messages_dropped"] >= 1
    # Nothing waits any more: every delivery was written or dropped.
    assert m["deliveries"] <= m["messages_sent"] + m["messages_dropped"]
    assert m["queued"] == 0 and m["subscriptions"] == 0 and m["channels"] == 0
    samples, _ = parse(get(f"http://127.0.0.1:{s.port}/metrics")[1])
    assert one(samples, "wsnotify_connections_closed_total", reason="queue_full") == 1
    assert one(samples, "wsnotify_messages_dropped_total") == m["messages_dropped"]


def test_token(make_harness):
    h = make_harness(metrics=True, metrics_token="t0ken")
    url = f"http://127.0.0.1:{h.server.port}/metrics"
    code, body, headers = get(url)
    assert code == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert "wsnotify_" not in body
    assert get(url, {"Authorization": "Bearer wrong"})[0] == 401
    code, body, _ = get(url, {"Authorization": "Bearer t0ken"})
    assert code == 200
    samples, _ = parse(body)
    assert one(samples, "wsnotify_connections") == 0
    assert get(f"http://127.0.0.1:{h.server.port}/healthz")[0] == 200


def test_off_by_default(harness):
    assert get(f"http://127.0.0.1:{harness.server.port}/metrics")[0] == 404
    # The snapshot is there all the same.
    samples, _ = parse(harness.server.metrics_text())
    assert one(samples, "wsnotify_connections") == 0


def test_bad_token_option():
    from wsnotify import Server
    with pytest.raises(ValueError):
        Server(port=0, metrics_token="has space")


def test_publish_refusals(make_harness):
    h = make_harness(max_channel_name=4)
    with pytest.raises(Exception):
        h.server.publish("toolong", 1)
    assert h.server.metrics()["publish_refused_limit"] == 1
