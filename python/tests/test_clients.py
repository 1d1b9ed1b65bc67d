"""Clients and metadata: every value type, the mapping view, limits, gone
clients (C: test_clients)."""

from __future__ import annotations

import pytest

from wsnotify import ClientGoneError, LimitError

from conftest import ws_connect

INT64_MAX = 2 ** 63 - 1
INT64_MIN = -(2 ** 63)


@pytest.mark.parametrize("value", [
    "alice", "", "é\U0001F600", 0, 123, -7, INT64_MAX, INT64_MIN, 1.5,
    -0.25, 1e300, float("inf"), True, False, b"", b"\x00\xff\x00",
    bytearray(b"ab"), None, {"a": [1, 2, {"b": None}]}, [1, "x"],
])
def test_metadata_types(harness, value):
    ws, c = harness.connect()
    c.set_metadata("k", value)
    got = c.get_metadata("k", "missing")
    want = bytes(value) if isinstance(value, bytearray) else value
    assert got == want
    assert type(got) is type(want)
    assert c.metadata["k"] == want


def test_metadata_nan(harness):
    ws, c = harness.connect()
    c.set_metadata("n", float("nan"))
    v = c.get_metadata("n")
    assert isinstance(v, float) and v != v


def test_metadata_replace_any_type(harness):
    ws, c = harness.connect()
    c.set_metadata("k", 1)
    c.set_metadata("k", "one")
    assert c.get_metadata("k") == "one"
    c.set_metadata("k", {"one": 1})
    assert c.get_metadata("k") == {"one": 1}
    c.set_metadata("k", True)
    assert c.get_metadata("k") is True


def test_metadata_mapping_view(harness):
    ws, c = harness.connect()
    md = c.metadata
    assert len(md) == 0 and list(md) == [] and "a" not in md
    md["a"] = 1
    md["b"] = "two"
    c.set_metadata("c", b"3")
    assert sorted(md) == ["a", "b", "c"]
    assert sorted(c.metadata_keys()) == ["a", "b", "c"]
    assert len(md) == 3
    assert "a" in md and "z" not in md and "" not in md
    assert dict(md) == {"a": 1, "b": "two", "c": b"3"}
    del md["a"]
    assert "a" not in md
    with pytest.raises(KeyError):
        del md["a"]
    with pytest.raises(KeyError):
        md["nope"]
    assert md.get("nope", 5) == 5
    assert c.delete_metadata("b") is True
    assert c.delete_metadata("b") is False
    md.update(x=1, y=2)
    assert md["y"] == 2


def test_metadata_errors(harness):
    ws, c = harness.connect()
    with pytest.raises(ValueError, match="must not be empty"):
        c.set_metadata("", 1)
    with pytest.raises(TypeError, match="key must be a str"):
        c.set_metadata(1, 1)
    with pytest.raises(ValueError, match="NUL"):
        c.set_metadata("k", "a\0b")
    with pytest.raises(TypeError, match="not JSON serializable"):
        c.set_metadata("k", object())
    with pytest.raises(UnicodeEncodeError):
        c.set_metadata("k", "\udcff")
    with pytest.raises(ValueError, match="fit in 64 bits"):
        c.set_metadata("k", 2 ** 63)
    with pytest.raises(ValueError, match="Out of range float"):
        c.set_metadata("k", [float("nan")])
    assert c.get_metadata("never") is None
    c.set_metadata("k", b"a\0b")  # bytes may hold NUL
    assert c.get_metadata("k") == b"a\0b"


def test_metadata_large_values(harness):
    ws, c = harness.connect()
    big = "x" * 5000  # larger than the first read buffer
    c.set_metadata("s", big)
    c.set_metadata("b", big.encode())
    c.set_metadata("j", [big])
    assert c.get_metadata("s") == big
    assert c.get_metadata("b") == big.encode()
    assert c.get_metadata("j") == [big]


def test_metadata_limit(make_harness):
    h = make_harness(max_metadata_bytes=100)
    ws, c = h.connect()
    c.set_metadata("k", "x" * 50)
    with pytest.raises(LimitError, match="configured size limit exceeded"):
        c.set_metadata("k2", "x" * 200)
    assert c.get_metadata("k") == "x" * 50
    assert c.get_metadata("k2") is None


def test_metadata_in_disconnect_handler(harness):
    seen = []
    harness.disconnect_hook = lambda cl: seen.append(
        (cl.get_metadata("user"), cl.connected))
    ws, c = harness.connect()
    c.set_metadata("user", 42)
    ws.close()
    harness.wait_disconnect(c.id)
    assert seen == [(42, False)]


def test_gone_client(harness):
    ws, c = harness.connect()
    c.set_metadata("user", "alice")
    s = harness.server
    ws.close()
    harness.wait_disconnect(c.id)
    assert not c.connected
    assert repr(c) == f"<wsnotify.Client {c.id} gone>"
    with pytest.raises(ClientGoneError, match="client has disconnected"):
        s.publish_to_client(c, "c", 1)
    with pytest.raises(ClientGoneError):
        s.subscribe(c, "c")
    with pytest.raises(ClientGoneError):
        c.set_metadata("k", 1)
    with pytest.raises(ClientGoneError):
        s.send_raw(c, "x")
    # metadata stays readable
    assert c.get_metadata("user") == "alice"
    assert dict(c.metadata) == {"user": "alice"}


def test_max_clients(make_harness):
    h = make_harness(max_clients=2)
    h.connect()
    h.connect()
    with pytest.raises(Exception):
        ws_connect(h.url, open_timeout=5)
    assert h.server.get_connected_clients() == 2
