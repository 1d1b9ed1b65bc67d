"""Origin checks: same-origin by default (exact host[:port], not the Go
original's substring test), allowed_origins, a Python check_origin
(C: test_origin)."""

from __future__ import annotations

import logging

import pytest


def status(h, **kw):
    rc = h.raw(**kw)
    return rc.status


def test_no_origin(harness):
    assert status(harness) == 101


def test_same_origin(harness):
    p = harness.server.port
    assert status(harness, origin=f"http://127.0.0.1:{p}") == 101
    assert status(harness, origin=f"https://127.0.0.1:{p}") == 101


@pytest.mark.parametrize("origin", [
    "http://evil.example",
    "http://127.0.0.1",            # port differs
    "http://127.0.0.1:{p}.evil.example",  # the Go substring hole
    "http://evil.example/127.0.0.1:{p}",
    "null",
])
def test_other_origin_refused(harness, origin):
    p = harness.server.port
    assert status(harness, origin=origin.format(p=p)) == 403
    assert harness.server.get_connected_clients() == 0


def test_host_mismatch(harness):
    p = harness.server.port
    assert status(harness, origin=f"http://127.0.0.1:{p}",
                  host_header=f"localhost:{p}") == 403


def test_allow_any(make_harness):
    h = make_harness(allowed_origins="*")
    assert status(h, origin="http://evil.example") == 101


def test_allow_list(make_harness):
    h = make_harness(allowed_origins=["http://a.example",
                                      "https://b.example:8443"])
    assert status(h, origin="http://a.example") == 101
    assert status(h, origin="https://b.example:8443") == 101
    assert status(h, origin="http://b.example:8443") == 403
    assert status(h, origin="http://a.example.evil") == 403
    assert status(h) == 101  # no Origin: not a browser


def test_custom_check(make_harness):
    calls = []

    def check(origin, host):
        calls.append((origin, host))
        return origin in (None, "http://friend.example")

    h = make_harness(check_origin=check)
    p = h.server.port
    assert status(h, origin="http://friend.example") == 101
    assert status(h, origin=f"http://127.0.0.1:{p}") == 403  # replaced
    assert status(h) == 101
    assert calls == [("http://friend.example", f"127.0.0.1:{p}"),
                     (f"http://127.0.0.1:{p}", f"127.0.0.1:{p}"),
                     (None, f"127.0.0.1:{p}")]


@pytest.mark.handler_errors
def test_custom_check_raising_refuses(make_harness, caplog):
    def check(origin, host):
        raise RuntimeError("check failed")

    h = make_harness(check_origin=check)
    with caplog.at_level(logging.ERROR, logger="wsnotify"):
        assert status(h, origin="http://x.example") == 403
    assert "check_origin raised; upgrade refused" in caplog.text
    assert "check failed" in caplog.text
