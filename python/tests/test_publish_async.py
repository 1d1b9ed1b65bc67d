"""Publishing from asyncio without blocking the loop: publish_async and the
other *_async kinds use WSN_PUBLISH_NONBLOCK and await the room fd (C:
test_publish_nonblock, test_event_loop)."""

from __future__ import annotations

import asyncio
import json
import select

import pytest
from websockets.asyncio.client import connect

from wsnotify import ClientGoneError, MessageType, Server, ServerClosedError

from conftest import OP_BINARY, OP_TEXT, TIMEOUT, RawClient, normalize

PAYLOAD = "x" * 16384
# More than the kernel buffers a never-reading client absorbs (see
# test_backpressure): the block-mode subscriber below must stall.
TOTAL = 600


def aconnect(url):
    return connect(url, proxy=None, ping_interval=None, compression=None,
                   max_size=None)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def room_open(server: Server) -> bool:
    """The room fd, polled without waiting (it is level-triggered)."""
    readable, _, _ = select.select([server.room_fileno()], [], [], 0)
    return bool(readable)


def spy_refusals(server: Server) -> "asyncio.Queue[asyncio.Task]":
    """A queue that gets the current task each time one of its *_async
    publishes was refused for room and starts waiting for it (the
    binding's one waiting point)."""
    refused: "asyncio.Queue[asyncio.Task]" = asyncio.Queue()
    wait_room = server._room

    async def spy() -> None:
        refused.put_nowait(asyncio.current_task())
        await wait_room()

    server._room = spy  # type: ignore[method-assign]
    return refused


async def refused_or_done(refused: "asyncio.Queue[asyncio.Task]",
                          task: asyncio.Task) -> bool:
    """True once `task` was refused for room (it now waits), False if it
    finished first (accepted). Refusals of other tasks are skipped."""
    while not task.done():
        getter = asyncio.ensure_future(refused.get())
        await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
        elif getter.result() is task:
            return True
    return False


def test_stalled_reader_loop_keeps_serving():
    """A block-mode subscriber stops reading; publish_async is refused and
    waits for room while the same loop keeps serving three other clients
    (round trips answered by publish_to_client_async). A publish cancelled
    while it waits is never delivered. Once the stalled client reads again,
    every accepted message reaches it exactly once, in order."""
    async def main():
        server = Server(port=0, send_buffer=2, write_wait=60)
        connects: "asyncio.Queue" = asyncio.Queue()
        server.on_connect(connects.put_nowait)

        @server.on_message
        async def echo(client, msg):
            await server.publish_to_client_async(client, "",
                                                 {"echo": msg.message})

        refused = spy_refusals(server)
        loop = asyncio.get_running_loop()
        async with server:
            slow = await loop.run_in_executor(
                None, lambda: RawClient(server.host, server.port,
                                        rcvbuf=4096))
            try:
                await stalled(server, slow, connects, refused)
            finally:
                slow.close()  # else shutdown would wait write_wait for it

    run(main())


async def round_trip(ws, tag) -> None:
    await ws.send(json.dumps({"type": "json", "message": tag}))
    got = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert got["message"] == {"echo": tag}


async def stalled(server, slow, connects, refused) -> None:
    loop = asyncio.get_running_loop()
    assert slow.status == 101
    slow_client = await asyncio.wait_for(connects.get(), TIMEOUT)
    server.subscribe(slow_client, "c")
    assert room_open(server)
    accepted = []

    async def publisher():
        for i in range(TOTAL):
            await server.publish_async("c", {"i": i, "p": PAYLOAD})
            accepted.append(i)

    pub = asyncio.create_task(publisher())
    assert await asyncio.wait_for(refused.get(), TIMEOUT) is pub
    assert 0 < len(accepted) < TOTAL

    # A second publish is refused too; cancelled while it waits (the spy's
    # item wakes this task before any room callback could wake it), it
    # queues nothing. Room can open for a moment while the kernel still
    # takes bytes for the stalled client: a probe accepted then is a
    # message like any other (delivered, in order), so probe again until
    # one is refused.
    probes = []
    while True:
        lost = asyncio.create_task(
            server.publish_async("c", {"i": "probe%d" % len(probes)}))
        if await refused_or_done(refused, lost):
            break
        probes.append("probe%d" % len(probes))
    lost.cancel()
    with pytest.raises(asyncio.CancelledError):
        await lost

    async def chat(n):
        async with aconnect(server.url) as ws:
            for k in range(10):
                await round_trip(ws, [n, k])
        return n

    assert sorted(await asyncio.gather(*(chat(n) for n in range(3)))) \
        == [0, 1, 2]
    # 30 round trips later the publisher has not got through: it is waiting
    # for room (its only suspension point), the stalled client still
    # unread. (The core may let a few more in as the kernel takes bytes.)
    assert not pub.done() and len(accepted) < TOTAL

    def read_all():
        got = []
        while len(got) < TOTAL + len(probes):
            op, data, _ = slow.recv_frame()
            assert op == OP_TEXT
            got.append(json.loads(data)["message"]["i"])
        return got

    got = await loop.run_in_executor(None, read_all)
    await asyncio.wait_for(pub, TIMEOUT)
    assert accepted == list(range(TOTAL))
    # once each, in order; the cancelled probe never
    assert [i for i in got if isinstance(i, int)] == list(range(TOTAL))
    assert [i for i in got if isinstance(i, str)] == probes
    assert slow_client.connected
    assert room_open(server)
    assert server._room_waiters == {}  # no reader left behind


def test_every_async_kind_delivers():
    """Each *_async twin delivers what its blocking call delivers."""
    async def main():
        server = Server(port=0)
        connects: "asyncio.Queue" = asyncio.Queue()
        gone: "asyncio.Queue" = asyncio.Queue()
        server.on_connect(connects.put_nowait)
        server.on_disconnect(gone.put_nowait)
        async with server:
            async with aconnect(server.url) as ws:
                c = await asyncio.wait_for(connects.get(), TIMEOUT)
                server.subscribe(c, "c")

                async def envelope():
                    return normalize(await asyncio.wait_for(ws.recv(), TIMEOUT))

                await server.publish_async("c", {"a": 1})
                assert await envelope() == (
                    '{"channel":"c","type":"json","time":"T","message":{"a":1}}')
                await server.publish_with_type_async("c", "hi", MessageType.TEXT,
                                                     "m1", "r1")
                assert await envelope() == (
                    '{"channel":"c","type":"text","time":"T","message":"hi",'
                    '"message_id":"m1","reply_to_id":"r1"}')
                await server.publish_to_client_async(c, "", [1, 2])
                assert await envelope() == (
                    '{"channel":"","type":"json","time":"T","message":[1,2]}')
                await server.send_raw_async(c, "raw text")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "raw text"
                await server.send_raw_async(c, b"\x00\xff")
                assert await asyncio.wait_for(ws.recv(), TIMEOUT) == b"\x00\xff"
                await server.publish_wait_async("c", {"n": 1}, 7, "batch", 0.2)
                await server.publish_wait_async("c", {"n": 2}, 7, "batch", 0.2)
                assert await envelope() == (
                    '{"channel":"c","type":"json","time":"T","message":'
                    '{"messages":[{"n":1},{"n":2}],"name":"batch"}}')
                await server.publish_wait_string_async("c", "a", 8, "T1", 0)
                assert await envelope() == (
                    '{"channel":"c","type":"text","time":"T","message":'
                    '"T1\\n\\na"}')
                await server.publish_wait_with_type_async(
                    "c", "b", MessageType.TEXT, 9, "T2", 0)
                assert await envelope() == (
                    '{"channel":"c","type":"text","time":"T","message":'
                    '"T2\\n\\nb"}')
            assert await asyncio.wait_for(gone.get(), TIMEOUT) is c
            with pytest.raises(ClientGoneError):
                await server.send_raw_async(c, "gone?")
            with pytest.raises(ClientGoneError):
                await server.publish_to_client_async(c, "", 1)
        with pytest.raises(ServerClosedError):
            await server.publish_async("c", 1)
        with pytest.raises(ServerClosedError):
            await server.publish_wait_async("c", 1, 1, "n", 0)

    run(main())


def test_async_argument_errors_raise_before_waiting():
    async def main():
        server = Server(port=0)
        async with server:
            with pytest.raises(TypeError):
                await server.publish_with_type_async("c", 1, MessageType.BINARY)
            with pytest.raises(ValueError):
                await server.publish_async("", 1)
            with pytest.raises(ValueError):
                await server.send_raw_async("c_0", "x", MessageType.JSON)
            with pytest.raises(ClientGoneError):
                await server.publish_to_client_async("c_nobody", "", 1)
            with pytest.raises(ValueError):
                await server.publish_wait_string_async("c", "a\0b", 1, "n", 0)

    run(main())


def test_raw_frame_types():
    """send_raw_async with an explicit type, read by a raw client."""
    async def main():
        server = Server(port=0, raw_incoming=True)
        connects: "asyncio.Queue" = asyncio.Queue()
        server.on_connect(connects.put_nowait)
        loop = asyncio.get_running_loop()
        async with server:
            raw = await loop.run_in_executor(
                None, lambda: RawClient(server.host, server.port))
            c = await asyncio.wait_for(connects.get(), TIMEOUT)
            await server.send_raw_async(c, b"text bytes", MessageType.TEXT)
            await server.send_raw_async(c, b"bin", MessageType.BINARY)
            frames = await loop.run_in_executor(
                None, lambda: [raw.recv_frame()[:2] for _ in range(2)])
            assert frames == [(OP_TEXT, b"text bytes"), (OP_BINARY, b"bin")]
            raw.close()

    run(main())
