"""Version, errors, options, lifecycle edge cases (C: test_api)."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

import wsnotify
from wsnotify import (InvalidArgumentError, ListenError, Server, StateError,
                      WsnotifyError)
from wsnotify._core import check_version, lib


def test_version():
    assert wsnotify.__version__ == "%d.%d.%d" % wsnotify.HEADER_VERSION
    assert wsnotify.c_version == wsnotify.__version__
    major, minor, patch = wsnotify.c_version_info
    assert wsnotify.C_VERSION_NUMBER == major * 10000 + minor * 100 + patch
    assert major == wsnotify.SUPPORTED_MAJOR


def test_version_mismatch_refused():
    check_version(1 * 10000 + 2, 1, supported_major=1)  # same major: fine
    with pytest.raises(ImportError, match=r"version 1.0.0 \(major 1\)"):
        check_version(1 * 10000, 0, supported_major=0)  # library is 1.x
    with pytest.raises(ImportError, match="supports major version 0"):
        check_version(2 * 10000, 2, supported_major=0)  # built from 2.x


def test_errors():
    codes = {
        lib.WSN_EINVAL: wsnotify.InvalidArgumentError,
        lib.WSN_ECLOSED: wsnotify.ServerClosedError,
        lib.WSN_EGONE: wsnotify.ClientGoneError,
        lib.WSN_EBACKPRESSURE: wsnotify.BackpressureError,
        lib.WSN_ETIMEDOUT: wsnotify.WsnotifyTimeoutError,
        lib.WSN_ELIMIT: wsnotify.LimitError,
        lib.WSN_ESTATE: wsnotify.StateError,
        lib.WSN_EIO: wsnotify.ListenError,
        lib.WSN_EJSON: wsnotify.InvalidArgumentError,
        lib.WSN_ERANGE: wsnotify.InvalidArgumentError,
        lib.WSN_EUNSUPPORTED: wsnotify.UnsupportedError,
    }
    from wsnotify._errors import make_error
    for code, cls in codes.items():
        e = make_error(code, "op")
        assert type(e) is cls
        assert isinstance(e, WsnotifyError)
        assert e.code == code
        assert e.name == wsnotify.error_name(code)
        assert str(e) == f"op: {wsnotify.strerror(code)} [{e.name}]"
    assert wsnotify.error_name(lib.WSN_EINVAL) == "WSN_EINVAL"
    assert wsnotify.strerror(-999)  # never empty / NULL
    assert issubclass(wsnotify.InvalidArgumentError, ValueError)
    assert issubclass(wsnotify.ListenError, OSError)
    assert issubclass(wsnotify.WsnotifyTimeoutError, TimeoutError)


def test_option_defaults():
    d = wsnotify.default_options()
    assert d["host"] == "127.0.0.1"
    assert d["port"] == 8080
    assert d["path"] == "/ws"
    assert d["static_dir"] == ""
    assert d["write_wait"] == timedelta(seconds=10)
    assert d["pong_wait"] == timedelta(seconds=60)
    assert d["ping_period"] == timedelta(seconds=54)
    assert d["read_limit"] == 1 << 20
    assert d["compression"] is False
    assert d["send_buffer"] == 256
    assert d["drop_on_backpressure"] is False
    assert d["backpressure_reason"] == "going away: backpressure"
    assert d["close_grace"] == timedelta(milliseconds=200)
    assert d["allowed_origins"] == ""
    assert d["event_queue_limit"] == 4096
    assert d["max_channel_name"] == 256
    assert d["max_metadata_bytes"] == 65536
    assert d["max_clients"] == 0
    assert d["max_pending_batches"] == 10000
    assert d["max_batch_messages"] == 10000
    assert d["max_batch_bytes"] == 1 << 20
    assert d["log_level"] == wsnotify.LogLevel.WARN
    assert d["raw_incoming"] is False
    assert d["coalesce_window"] == timedelta(0)
    assert d["read_buffer"] == 65536
    # 0.2: the binding queues the core's log lines (the core's default is
    # 0, no queue); the process-wide tricks are on unless turned off.
    assert d["log_queue"] == 1000
    assert d["rx_buffer_pool"] is True
    assert d["malloc_trim"] is True
    s = Server()
    assert s.options == d
    assert s.port == 8080 and s.host == "127.0.0.1" and s.path == "/ws"


def test_option_names():
    names = wsnotify.option_names()
    assert names[:4] == ["host", "port", "path", "static_dir"]
    assert "write_wait" in names and "log_level" in names
    assert len(names) == len(set(names))


def test_durations_seconds_and_timedelta():
    s = Server(write_wait=2.5, pong_wait=timedelta(seconds=3),
               ping_period=1, close_grace=timedelta(milliseconds=50))
    o = s.options
    assert o["write_wait"] == timedelta(milliseconds=2500)
    assert o["pong_wait"] == timedelta(seconds=3)
    assert o["ping_period"] == timedelta(seconds=1)
    assert o["close_grace"] == timedelta(milliseconds=50)


def test_option_types():
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        Server(nope=1)
    with pytest.raises(TypeError, match="port must be an int"):
        Server(port="8080")
    with pytest.raises(TypeError, match="port must be an int"):
        Server(port=True)
    with pytest.raises(TypeError, match="compression must be a bool"):
        Server(compression="yes")
    with pytest.raises(TypeError, match="write_wait must be a number of "
                                        "seconds or a datetime.timedelta"):
        Server(write_wait="10s")
    with pytest.raises(TypeError, match="host must be a str"):
        Server(host=127)
    with pytest.raises(TypeError, match="check_origin must be callable"):
        Server(check_origin=1)


def test_option_ranges():
    with pytest.raises(ValueError, match=r"port=70000 is out of range "
                                         r"\(0 to 65535\)"):
        Server(port=70000)
    with pytest.raises(ValueError, match=r"port=-1 is out of range"):
        Server(port=-1)
    with pytest.raises(ValueError, match=r"write_wait=-1 is out of range "
                                         r"\(0.001 s to 86400 s\)"):
        Server(write_wait=-1)
    with pytest.raises(ValueError, match="send_buffer=0 is out of range"):
        Server(send_buffer=0)
    with pytest.raises(ValueError, match=r"read_buffer=127 is out of range "
                                         r"\(128 to 65536\)"):
        Server(read_buffer=127)
    with pytest.raises(ValueError, match=r"coalesce_window=2 is out of range "
                                         r"\(0 s to 1 s\)"):
        Server(coalesce_window=2)
    with pytest.raises(ValueError, match="read_limit=.* is out of range"):
        Server(read_limit=2 ** 70)
    with pytest.raises(ValueError, match="log_level=5 is out of range"):
        Server(log_level=5)
    with pytest.raises(ValueError, match="backpressure_reason=.* out of "
                                         "range"):
        Server(backpressure_reason="x" * 124)
    with pytest.raises(ValueError, match="path='ws' is invalid"):
        Server(path="ws")
    with pytest.raises(ValueError, match="must be finite"):
        Server(pong_wait=float("inf"))


def test_option_relations():
    with pytest.raises(ValueError, match=r"ping_period \(60000 ms\) must be "
                                         r"less than pong_wait \(60000 ms\)"):
        Server(ping_period=60)
    with pytest.raises(ValueError, match="ping_period"):
        Server(pong_wait=1, ping_period=2)
    Server(pong_wait=1, ping_period=0.5)  # fine


def test_allowed_origins_list():
    s = Server(allowed_origins=["http://a.example", "http://b.example:81"])
    assert s.options["allowed_origins"] == "http://a.example,http://b.example:81"


def test_events_on_io_thread_refused():
    with pytest.raises(ValueError, match="events_on_io_thread"):
        Server(events_on_io_thread=True)
    Server(events_on_io_thread=False)


def test_port_zero():
    s = Server(port=0)
    assert s.port == 0
    s.start()
    try:
        assert 0 < s.port < 65536
        assert s.url == f"ws://127.0.0.1:{s.port}/ws"
        with socket.create_connection(("127.0.0.1", s.port), timeout=5):
            pass
    finally:
        s.shutdown(5)


def test_port_in_use():
    a = Server(port=0).start()
    try:
        b = Server(port=a.port)
        with pytest.raises(ListenError) as ei:
            b.start()
        assert isinstance(ei.value, OSError)
        assert f"cannot listen on 127.0.0.1:{a.port}" in str(ei.value)
        assert ei.value.code == lib.WSN_EIO
    finally:
        a.shutdown(5)


def test_start_twice():
    s = Server(port=0).start()
    try:
        with pytest.raises(StateError):
            s.start()
    finally:
        s.shutdown(5)


def test_never_started():
    s = Server(port=0)
    assert s.shutdown(1) is True  # fine on a server never started
    assert s.get_connected_clients() == 0
    del s


def test_start_returns_self_and_context_manager():
    with Server(port=0) as s:
        assert s.started
        assert s.get_connected_clients() == 0
    assert s.stopped


def test_message_type():
    assert wsnotify.MessageType("json") is wsnotify.MessageType.JSON
    assert str(wsnotify.MessageType.BINARY) == "binary"
    assert wsnotify.MessageType.TEXT == "text"


def test_publish_argument_errors():
    s = Server(port=0)
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        s.publish("", 1)
    with pytest.raises(ValueError):
        s.publish("", 1)
    with pytest.raises(TypeError, match="channel must be a str"):
        s.publish(b"c", 1)
    with pytest.raises(TypeError, match="not JSON serializable"):
        s.publish("c", object())
    with pytest.raises(ValueError, match="Out of range float"):
        s.publish("c", float("nan"))
    with pytest.raises(TypeError, match="BINARY message must be bytes"):
        s.publish_with_type("c", "text", wsnotify.MessageType.BINARY)
    with pytest.raises(TypeError, match="TEXT message must be a str"):
        s.publish_with_type("c", 1, wsnotify.MessageType.TEXT)
    with pytest.raises(ValueError, match="unknown message type 'xml'"):
        s.publish_with_type("c", 1, "xml")
    with pytest.raises(ValueError, match="ident must be between"):
        s.publish_wait("c", 1, -1, "n", 1)
    with pytest.raises(TypeError, match="ident must be an int"):
        s.publish_wait("c", 1, "1", "n", 1)
    with pytest.raises(ValueError, match="ttl must not be negative"):
        s.publish_wait("c", 1, 1, "n", -1)
