"""permessage-deflate is refused (C: test_compression): libwebsockets'
extension lets one client crash the server or read another's data
(docs/api.md, "Compression")."""

from __future__ import annotations

import json

import pytest

import wsnotify
from conftest import expect_envelope


def test_compression_option_refused():
    with pytest.raises(wsnotify.UnsupportedError) as info:
        wsnotify.Server(port=0, compression=True)
    err = info.value
    assert err.code == -16
    assert err.name == "WSN_EUNSUPPORTED"
    assert "permessage-deflate" in str(err)
    assert "crash" in str(err)
    assert "proxy" in str(err)


def test_compression_off_is_fine():
    server = wsnotify.Server(port=0, compression=False)
    server.close()


def test_deflate_offer_declined(harness):
    ws, c = harness.connect(compression="deflate")
    assert ws.protocol.extensions == []
    harness.server.subscribe(c, "c")
    text = "compressible " * 1000
    harness.server.publish("c", {"t": text})
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T","message":'
                        + json.dumps({"t": text}, separators=(",", ":")) + "}")
    ws.send(json.dumps({"type": "json", "channel": "c", "message": text}))
    _, msg = harness.next_message()
    assert msg.message == text
