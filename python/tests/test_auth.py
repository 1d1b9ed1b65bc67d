"""Authentication at the upgrade (authenticate=True): the on_upgrade
handler sees the request and accepts (metadata, channels, expiry) or
rejects with an HTTP status; later answers from any thread; a coroutine
handler; expiry closes with 4001 unless the client refreshed
(C: test_auth)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time

import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wsnotify import (Accept, ClientGoneError, InvalidArgumentError, Reject,
                      Server, UpgradeRequest)

from conftest import TIMEOUT, Harness, expect_close, expect_envelope, ws_connect


@pytest.fixture
def auth_harness():
    made = []

    def make(handler, **options):
        options.setdefault("authenticate", True)
        h = Harness(**options)
        h.server.set_upgrade_handler(handler)
        h.start()
        made.append(h)
        return h

    yield make
    for h in made:
        h.stop()


def refused(url, **kw):
    with pytest.raises(InvalidStatus) as e:
        ws_connect(url, **kw)
    return e.value.response.status_code, e.value.response.body.decode()


def token_check(req: UpgradeRequest):
    if req.query_arg("token") == "T" or req.bearer_token == "T":
        return Accept(metadata={"user": "ann", "level": 3, "vip": True},
                      channels=["news"])
    return Reject(401, "bad or missing token")


def test_accept_and_reject(auth_harness):
    h = auth_harness(token_check)
    ws, client = h.connect(additional_headers={"Authorization": "Bearer T"})
    assert client.metadata["user"] == "ann"
    assert client.metadata["level"] == 3
    assert client.metadata["vip"] is True
    h.server.publish("news", "hi")  # joined before on_connect
    expect_envelope(ws, '{"channel":"news","type":"json","time":"T","message":"hi"}')
    ws2 = ws_connect(h.url + "?token=T")
    h.sockets.append(ws2)
    assert h.connects.get(timeout=TIMEOUT).metadata["user"] == "ann"
    assert refused(h.url + "?token=nope") == (401, "bad or missing token")
    assert refused(h.url) == (401, "bad or missing token")
    assert h.server.get_connected_clients() == 2


def test_request_fields(auth_harness):
    seen: "queue.Queue[UpgradeRequest]" = queue.Queue()

    def handler(req):
        seen.put(req)
        return True

    h = auth_harness(handler)
    ws = ws_connect(h.url + "?a=1&b=x%20y", additional_headers={"X-Team": "a", "Cookie": "s=1"})
    h.sockets.append(ws)
    req = seen.get(timeout=TIMEOUT)
    assert req.path == "/ws"
    assert req.query == "a=1&b=x%20y"
    assert req.query_arg("b") == "x y"
    assert req.query_arg("zz") is None
    assert req.peer == "127.0.0.1"
    assert req.header("x-team") == "a"
    assert req.headers["cookie"] == "s=1"
    assert req.id > 0
    with pytest.raises(ClientGoneError):  # answered already
        h.server.accept_upgrade(req.id)


def test_answer_later_from_another_thread(auth_harness):
    waiting: "queue.Queue[UpgradeRequest]" = queue.Queue()
    h = auth_harness(waiting.put)  # returns None: answered later
    results: "queue.Queue" = queue.Queue()

    def dial(path):
        try:
            ws = ws_connect(h.url + path)
            h.sockets.append(ws)
            results.put(("open", path))
        except InvalidStatus as e:
            results.put((e.response.status_code, path))

    threading.Thread(target=dial, args=("?n=1",), daemon=True).start()
    req = waiting.get(timeout=TIMEOUT)
    req.reject(403, "not today")
    assert results.get(timeout=TIMEOUT) == (403, "?n=1")
    threading.Thread(target=dial, args=("?n=2",), daemon=True).start()
    req = waiting.get(timeout=TIMEOUT)
    req.accept(channels=["a", "b"])
    assert results.get(timeout=TIMEOUT) == ("open", "?n=2")
    with pytest.raises(InvalidArgumentError):
        h.server.reject_upgrade(req.id, 200)


def test_handler_raises_is_500(auth_harness, caplog):
    def handler(req):
        raise RuntimeError("db down")

    h = auth_harness(handler)
    caplog.set_level("CRITICAL", logger="wsnotify")
    assert refused(h.url) == (500, "authentication failed")


def test_timeout_503(auth_harness):
    h = auth_harness(lambda req: None, auth_timeout=0.2)
    assert refused(h.url) == (503, "no answer from the host in time")


def test_needs_a_handler():
    s = Server(port=0, authenticate=True)
    with pytest.raises(InvalidArgumentError, match="on_upgrade"):
        s.start()


def test_expiry_and_refresh(auth_harness):
    def handler(req):
        return Accept(expires_at=time.time() + (0.3 if req.query_arg("n") == "1" else 0.6))

    h = auth_harness(handler)
    ws1 = ws_connect(h.url + "?n=1")
    c1 = h.connects.get(timeout=TIMEOUT)
    c1.set_expiry(None)  # refreshed in band: no expiry now
    ws2 = ws_connect(h.url + "?n=2")
    h.sockets += [ws1, ws2]
    h.connects.get(timeout=TIMEOUT)
    _, code, reason = expect_close(ws2)
    assert (code, reason) == (4001, "authorization expired")
    assert c1.connected  # its old time (0.3 s) passed before ws2's (0.6 s)
    c1.set_expiry(time.time() - 1)
    _, code, reason = expect_close(ws1)
    assert (code, reason) == (4001, "authorization expired")


def test_coroutine_handler():
    async def main():
        server = Server(port=0, authenticate=True)

        @server.on_upgrade
        async def check(req):
            await asyncio.sleep(0)  # a database look-up would await here
            return req.query_arg("token") == "ok"

        async with server:
            async with aconnect(server.url + "?token=ok", proxy=None) as ws:
                await ws.send('{"message":1}')
            with pytest.raises(InvalidStatus) as e:
                async with aconnect(server.url + "?token=no", proxy=None):
                    pass
            assert e.value.response.status_code == 401

    asyncio.run(asyncio.wait_for(main(), 60))
