#!/usr/bin/env python3
"""The wsnotify chat protocol on Python's `websockets` (PyPI), asyncio API,
written the idiomatic way: a set of connections per channel and
websockets.broadcast() with the envelope serialised once.

  python server.py [--host A] [--port N] [--compression]

websockets negotiates permessage-deflate by default; here it is off unless
--compression is given, to match wsnotify's default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from datetime import datetime, timezone

import websockets
from websockets.asyncio.server import broadcast, serve

channels: dict[str, set] = {}


def now() -> str:
    # microseconds: Python's datetime has no nanoseconds
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def envelope(channel: str, message: object, reply_to: str = "") -> str:
    env = {"channel": channel, "type": "json", "time": now(), "message": message}
    if reply_to:
        env["reply_to_id"] = reply_to
    return json.dumps(env, separators=(",", ":"))


async def handler(ws) -> None:
    if ws.request.path != "/ws":
        await ws.close(1008, "not found")
        return
    mine: set[str] = set()
    try:
        async for data in ws:
            if not isinstance(data, str):
                continue
            try:
                env = json.loads(data)
            except ValueError:
                continue
            msg = env.get("message") if isinstance(env, dict) else None
            if not isinstance(msg, dict):
                continue
            action = msg.get("action")
            if action == "subscribe":
                name = msg.get("channel")
                if not isinstance(name, str) or not name:
                    continue
                channels.setdefault(name, set()).add(ws)
                mine.add(name)
                await ws.send(envelope(name, {"status": "subscribed", "channel": name},
                                       env.get("message_id") or ""))
            elif action == "broadcast":
                name = env.get("channel")
                if isinstance(name, str) and name in channels:
                    broadcast(channels[name], envelope(name, msg))
    except websockets.ConnectionClosed:
        pass
    finally:
        for name in mine:
            channels.get(name, set()).discard(ws)


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--compression", action="store_true")
    args = p.parse_args()
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(handler, args.host, args.port,
                     compression="deflate" if args.compression else None,
                     max_size=1 << 20, backlog=4096):
        print(f"py-websockets: listening on {args.host}:{args.port} (websockets "
              f"{websockets.__version__}, Python {sys.version.split()[0]}"
              f"{', compression' if args.compression else ''})", file=sys.stderr,
              flush=True)
        await stop
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
