"""asyncio mode: `async with server`, `await server.serve()`, handlers on
the loop's thread (add_reader on the event fd), coroutine handlers."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wsnotify import Client, IncomingMessage, Server

T = 10.0


def aconnect(url, **kw):
    kw.setdefault("proxy", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)
    return connect(url, **kw)


async def close_of(ws):
    try:
        while True:
            await asyncio.wait_for(ws.recv(), T)
    except ConnectionClosed as e:
        return e.rcvd.code, e.rcvd.reason


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_async_with_handlers_on_loop_thread():
    async def main():
        server = Server(port=0)
        threads = set()
        got: "asyncio.Queue" = asyncio.Queue()

        @server.on_connect
        def on_connect(client: Client):
            threads.add(threading.get_ident())

        @server.on_message
        def on_message(client: Client, msg: IncomingMessage):
            threads.add(threading.get_ident())
            server.subscribe(client, msg.message["channel"])
            server.publish_to_client(client, msg.message["channel"],
                                     {"status": "subscribed"},
                                     reply_to_id=msg.message_id)
            got.put_nowait(msg)

        @server.on_disconnect
        def on_disconnect(client: Client):
            threads.add(threading.get_ident())
            got.put_nowait(("gone", client.id))

        async with server:
            async with aconnect(server.url) as ws:
                await ws.send(json.dumps({"type": "json", "message": {
                    "channel": "room"}, "message_id": "m1"}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), T))
                assert reply["message"] == {"status": "subscribed"}
                assert reply["reply_to_id"] == "m1"
                msg = await asyncio.wait_for(got.get(), T)
                assert msg.message_id == "m1"
                server.publish("room", "hello")
                assert json.loads(await asyncio.wait_for(ws.recv(), T))[
                    "message"] == "hello"
            assert (await asyncio.wait_for(got.get(), T))[0] == "gone"
            async with aconnect(server.url) as ws2:
                pass  # closed by the client before shutdown
            async with aconnect(server.url) as ws3:
                shutdown = asyncio.ensure_future(server.shutdown_async(5))
                assert await close_of(ws3) == (1001, "server shutdown")
                assert await shutdown is True
        assert server.stopped
        assert threads == {threading.get_ident()}

    run(main())


def test_serve_until_cancelled():
    async def main():
        server = Server(port=0)
        connected = asyncio.Event()
        server.on_connect(lambda c: connected.set())
        task = asyncio.create_task(server.serve())
        await asyncio.sleep(0)  # let serve() start the server
        async with aconnect(server.url) as ws:
            await asyncio.wait_for(connected.wait(), T)
            task.cancel()  # graceful shutdown, then CancelledError
            assert await close_of(ws) == (1001, "server shutdown")
        with pytest.raises(asyncio.CancelledError):
            await task
        assert server.stopped

    run(main())


def test_serve_returns_when_stopped_elsewhere():
    async def main():
        server = Server(port=0)
        server.start()
        task = asyncio.create_task(server.serve())
        async with aconnect(server.url) as ws:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, server.shutdown, 5)
            assert await close_of(ws) == (1001, "server shutdown")
        await asyncio.wait_for(task, T)  # STOPPED ends serve()
        assert server.stopped

    run(main())


def test_coroutine_handlers():
    async def main():
        server = Server(port=0)
        done = asyncio.Event()
        order = []

        @server.on_message
        async def on_message(client, msg):
            await asyncio.sleep(0)
            server.publish_to_client(client, "", {"echo": msg.message})
            order.append(msg.message)
            if msg.message == 2:
                done.set()

        async with server:
            async with aconnect(server.url) as ws:
                await ws.send('{"type":"json","message":1}')
                await ws.send('{"type":"json","message":2}')
                got = [json.loads(await asyncio.wait_for(ws.recv(), T))
                       ["message"] for _ in range(2)]
                await asyncio.wait_for(done.wait(), T)
        assert sorted(order) == [1, 2]
        assert sorted(g["echo"] for g in got) == [1, 2]

    run(main())


@pytest.mark.handler_errors
def test_handler_exceptions_in_asyncio(caplog):
    async def main():
        server = Server(port=0)
        seen = asyncio.Queue()

        @server.on_message
        async def on_message(client, msg):
            if msg.message == "boom":
                raise RuntimeError("async boom")
            seen.put_nowait(msg.message)

        with caplog.at_level(logging.ERROR, logger="wsnotify"):
            async with server:
                async with aconnect(server.url) as ws:
                    await ws.send('{"type":"json","message":"boom"}')
                    await ws.send('{"type":"json","message":"ok"}')
                    assert await asyncio.wait_for(seen.get(), T) == "ok"
        assert "async boom" in caplog.text
        assert "message handler raised" in caplog.text

    run(main())


def test_serve_twice_on_two_loops_refused():
    server = Server(port=0)

    async def first():
        async with server:
            def other():
                async def second():
                    async with server:
                        pass
                with pytest.raises(RuntimeError, match="another"):
                    asyncio.run(second())
            t = threading.Thread(target=other)
            t.start()
            await asyncio.get_running_loop().run_in_executor(None, t.join)

    run(first())


def test_shutdown_async_unattached_runs_handlers_on_loop():
    async def main():
        server = Server(port=0)
        where = []
        server.on_disconnect(lambda c: where.append(threading.get_ident()))
        server.start()
        async with aconnect(server.url) as ws:
            assert await server.shutdown_async(5) is True
            assert await close_of(ws) == (1001, "server shutdown")
        assert where == [threading.get_ident()]  # the loop's thread
        assert server.stopped

    run(main())
