"""TLS (wss://, https://) with certificates made at test time by
tests/tls/make_certs.sh (Debian's openssl), Python's ssl module and the
websockets client (C: test_tls)."""

from __future__ import annotations

import hashlib
import logging
import pathlib
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from conftest import TIMEOUT, expect_envelope, ws_connect
from wsnotify import InvalidArgumentError, ListenError, Server

MAKE_CERTS = (pathlib.Path(__file__).resolve().parents[2] / "tests" / "tls"
              / "make_certs.sh")
FAILED = "TLS handshake(s) failed or stalled"


@pytest.fixture
def certs(tmp_path):
    subprocess.run(["bash", str(MAKE_CERTS), str(tmp_path)], check=True)
    return tmp_path


def client_ctx(certs, ca="ca.pem", cert=None):
    ctx = ssl.create_default_context(cafile=str(certs / ca))
    if cert:
        ctx.load_cert_chain(str(certs / f"{cert}.pem"), str(certs / f"{cert}.key"))
    return ctx


@pytest.fixture
def tls_harness(make_harness, certs):
    def make(**options):
        options.setdefault("tls_cert", str(certs / "server.pem"))
        options.setdefault("tls_key", str(certs / "server.key"))
        options.setdefault("log_level", 3)  # info: refusals are logged there
        return make_harness(**options)
    return make


def wait_log(caplog, text):
    """The first core log line holding text (bounded wait for it)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for r in caplog.records:
            if r.name == "wsnotify.core" and text in r.getMessage():
                return r.getMessage()
        time.sleep(0.01)
    raise AssertionError(f"no log line with {text!r}")


def refused(url, ctx):
    # TLS 1.3: a client certificate is judged after the client finished its
    # handshake, so the refusal may come while it reads the HTTP answer.
    with pytest.raises((ssl.SSLError, ConnectionError, EOFError, OSError,
                        InvalidHandshake, ConnectionClosed)):
        ws_connect(url, ssl=ctx).close()


def fingerprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def test_wss_publish_and_message(tls_harness, certs):
    h = tls_harness()
    assert h.url.startswith("wss://127.0.0.1:")
    ws, client = h.connect(ssl=client_ctx(certs))
    h.server.subscribe(client, "news")
    h.server.publish("news", {"title": "hello over wss"})
    expect_envelope(ws, '{"channel":"news","type":"json","time":"T",'
                        '"message":{"title":"hello over wss"}}')
    ws.send('{"type":"json","channel":"news","message":[1,2]}')
    sender, msg = h.next_message()
    assert sender.id == client.id
    assert (msg.channel, msg.message) == ("news", [1, 2])


def test_wrong_ca_refused_by_client(tls_harness, certs, caplog):
    caplog.set_level(logging.INFO, logger="wsnotify")
    h = tls_harness()
    with pytest.raises(ssl.SSLCertVerificationError):
        ws_connect(h.url, ssl=client_ctx(certs, ca="other.pem"))
    assert "alert received: unknown CA" in wait_log(caplog, FAILED)
    assert h.server.get_connected_clients() == 0


def test_plain_client_gets_no_websocket(tls_harness, certs, caplog):
    caplog.set_level(logging.INFO, logger="wsnotify")
    h = tls_harness()
    refused(h.url.replace("wss://", "ws://"), None)
    wait_log(caplog, FAILED)
    assert h.server.get_connected_clients() == 0


def test_client_certificate_required(tls_harness, certs, caplog):
    caplog.set_level(logging.INFO, logger="wsnotify")
    h = tls_harness(tls_ca=str(certs / "ca.pem"), tls_client_cert=2)
    refused(h.url, client_ctx(certs))
    assert "certificate required" in wait_log(caplog, FAILED)
    refused(h.url, client_ctx(certs, cert="other"))
    ws, client = h.connect(ssl=client_ctx(certs, cert="client"))
    h.server.subscribe(client, "c")
    h.server.publish("c", 1)
    expect_envelope(ws, '{"channel":"c","type":"json","time":"T","message":1}')
    assert h.server.get_connected_clients() == 1


def test_client_certificate_requested(tls_harness, certs):
    h = tls_harness(tls_ca=str(certs / "ca.pem"), tls_client_cert=1)
    h.connect(ssl=client_ctx(certs))
    h.connect(ssl=client_ctx(certs, cert="client"))
    refused(h.url, client_ctx(certs, cert="other"))
    assert h.server.get_connected_clients() == 2


def test_stalled_handshake_closed(tls_harness, certs, caplog):
    caplog.set_level(logging.INFO, logger="wsnotify")
    h = tls_harness()
    with socket.create_connection(("127.0.0.1", h.server.port)) as s:
        # lws drops it after 10 s idle; 30 s leaves a slow build room.
        s.settimeout(30)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
    assert "no alert sent" in wait_log(caplog, FAILED)


def test_reload_keeps_connections(tls_harness, certs):
    shutil.copy(certs / "server.pem", certs / "live.pem")
    shutil.copy(certs / "server.key", certs / "live.key")
    h = tls_harness(tls_cert=str(certs / "live.pem"), tls_key=str(certs / "live.key"))
    ws, client = h.connect(ssl=client_ctx(certs))
    h.server.subscribe(client, "news")
    first = ssl.PEM_cert_to_DER_cert((certs / "server.pem").read_text())
    second = ssl.PEM_cert_to_DER_cert((certs / "server2.pem").read_text())
    assert fingerprint(ws.socket.getpeercert(binary_form=True)) == fingerprint(first)

    shutil.copy(certs / "server2.pem", certs / "live.pem")
    shutil.copy(certs / "server2.key", certs / "live.key")
    h.server.reload_tls()
    fresh, _ = h.connect(ssl=client_ctx(certs))
    assert fingerprint(fresh.socket.getpeercert(binary_form=True)) == fingerprint(second)
    h.server.publish("news", "after the reload")
    expect_envelope(ws, '{"channel":"news","type":"json","time":"T",'
                        '"message":"after the reload"}')

    shutil.copy(certs / "server.key", certs / "live.key")
    with pytest.raises(ListenError, match="is not the key of tls_cert"):
        h.server.reload_tls()
    again, _ = h.connect(ssl=client_ctx(certs))
    assert fingerprint(again.socket.getpeercert(binary_form=True)) == fingerprint(second)


def test_reload_without_tls(harness):
    with pytest.raises(InvalidArgumentError, match="tls_cert"):
        harness.server.reload_tls()


def test_https_healthz_and_alpn(tls_harness, certs):
    h = tls_harness()
    ctx = client_ctx(certs)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=ctx))
    with opener.open(f"https://127.0.0.1:{h.server.port}/healthz", timeout=TIMEOUT) as r:
        assert (r.status, r.read()) == (200, b"ok")
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", h.server.port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "http/1.1"


def test_options_named(certs):
    with pytest.raises(ValueError, match="tls_cert is set but tls_key is not"):
        Server(port=0, tls_cert=str(certs / "server.pem"))
    s = Server(port=0, tls_cert=str(certs / "missing.pem"), tls_key=str(certs / "server.key"))
    with pytest.raises(ListenError, match=r"tls_cert .*missing\.pem: No such file"):
        s.start()
    s.shutdown()
