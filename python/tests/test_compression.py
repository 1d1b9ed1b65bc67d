"""permessage-deflate (C: test_compression)."""

from __future__ import annotations

import json

from conftest import TIMEOUT, expect_envelope


def test_deflate_off_not_negotiated(harness):
    ws, c = harness.connect(compression="deflate")
    assert ws.protocol.extensions == []


def test_deflate_send_and_receive(make_harness):
    h = make_harness(compression=True)
    ws, c = h.connect(compression="deflate")
    assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
    h.server.subscribe(c, "c")
    text = "compressible " * 1000
    h.server.publish("c", {"t": text})
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T","message":'
                        + json.dumps({"t": text}, separators=(",", ":")) + "}")
    ws.send(json.dumps({"type": "json", "channel": "c", "message": text}))
    _, msg = h.next_message()
    assert msg.message == text
    for i in range(200):
        h.server.publish("c", i)
    for i in range(200):
        assert json.loads(ws.recv(timeout=TIMEOUT))["message"] == i


def test_deflate_client_without_it(make_harness):
    h = make_harness(compression=True)
    ws, c = h.connect(compression=None)
    h.server.subscribe(c, "c")
    h.server.publish("c", 1)
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T","message":1}')
