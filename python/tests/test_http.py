"""Plain HTTP beside the WebSocket endpoint: static files, /healthz,
wrong paths (C: test_http)."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from conftest import TIMEOUT, ws_connect

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url):
    try:
        with _opener.open(url, timeout=TIMEOUT) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


@pytest.fixture
def site(tmp_path):
    (tmp_path / "index.html").write_text("<h1>hi</h1>\n")
    (tmp_path / "app.js").write_text("console.log(1)\n")
    return tmp_path


def test_static_index_and_file(make_harness, site):
    h = make_harness(static_dir=str(site))
    base = f"http://127.0.0.1:{h.server.port}"
    code, body, ctype = get(base + "/")
    assert (code, body) == (200, b"<h1>hi</h1>\n")
    assert ctype.startswith("text/html")
    code, body, _ = get(base + "/app.js")
    assert (code, body) == (200, b"console.log(1)\n")
    assert get(base + "/missing.html")[0] == 404
    # the WebSocket endpoint still works next to the files
    ws, c = h.connect()
    assert c.connected


def test_healthz(harness):
    code, body, _ = get(f"http://127.0.0.1:{harness.server.port}/healthz")
    assert code == 200 and body.strip() == b"ok"


def test_no_static_dir(harness):
    assert get(f"http://127.0.0.1:{harness.server.port}/")[0] == 404


def test_wrong_ws_path(harness):
    with pytest.raises(Exception):
        ws_connect(f"ws://127.0.0.1:{harness.server.port}/other",
                   open_timeout=5)
    assert harness.server.get_connected_clients() == 0


def test_custom_ws_path(make_harness):
    h = make_harness(path="/events")
    assert h.url.endswith("/events")
    ws, c = h.connect()
    assert c.connected
