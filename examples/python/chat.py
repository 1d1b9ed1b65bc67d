#!/usr/bin/env python3
"""wsnotify chat example in Python: the same page, protocol and options as
the C example (examples/chat/).

Serves examples/chat/index.html at "/" and WebSockets at "/ws". Clients
send envelopes like

  {"type":"json","channel":"room","message":{"action":"subscribe",
   "channel":"room"},"message_id":"m1"}
  {"type":"json","channel":"room","message":{"action":"broadcast",
   "text":"hi"}}

"subscribe" adds the sender to message.channel and answers the sender alone
with {"status":"subscribed","channel":...} (reply_to_id = the request's
message_id); "broadcast" publishes the message object to every subscriber
of the envelope's channel.

No client can make the handlers wait for another (docs/api.md, "Slow
clients and handlers"): a browser that stops reading is closed once its
queue is full (drop_on_backpressure; close 1001 "going away:
backpressure"), and publishes never wait for room (nonblocking=True): one
the engine refuses (then only when the server as a whole is behind) is not
retried, the sender gets {"status":"error",...} and may send again.

Handlers run on the main thread (server.serve_forever()); SIGINT/SIGTERM
shut the server down gracefully (every client gets close 1001) and the
program exits 0.

  python examples/python/chat.py [--host ADDR] [--port N]
                                 [--static-dir DIR] [--verbose]
                                 [--broker URL] [--auth-token T]
                                 [--metrics] [--metrics-token T]

The port defaults to $WSN_PORT, else 8080 (0 = any free port). Startup,
shutdown and failures are logged at info level; one line per connection
and per message only with --verbose (debug level), so that a busy server
does not spend its time writing its log. There is no --compression: the
engine refuses permessage-deflate (docs/api.md, "Compression").
--metrics serves the engine's counters at GET /metrics in the Prometheus
text format (docs/production.md); with --metrics-token T (or
$WSN_METRICS_TOKEN) only to "Authorization: Bearer T".
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Optional, Union

import wsnotify
from wsnotify import (Accept, Client, IncomingMessage, LogLevel, MessageType,
                      Reject, Server, UpgradeRequest)

log = logging.getLogger("chat")

# Read once: an Enum member looked up on its class (MessageType.JSON) costs
# about as much as the rest of the type check, in a handler that runs for
# every message.
JSON = MessageType.JSON

# examples/python/chat.py -> examples/chat/index.html
DEFAULT_STATIC_DIR = Path(__file__).resolve().parent.parent / "chat"
SHUTDOWN_TIMEOUT = 10.0


def parse_port(text: str) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad port '{text}'") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"bad port '{text}'")
    return port


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    env_port = os.environ.get("WSN_PORT", "")
    default_port = 8080
    if env_port:
        try:
            default_port = parse_port(env_port)
        except argparse.ArgumentTypeError:
            print(f"chat.py: bad WSN_PORT '{env_port}'", file=sys.stderr)
            sys.exit(2)
    p = argparse.ArgumentParser(description="wsnotify chat example (Python)")
    p.add_argument("--host", default="127.0.0.1",
                   help="listen address (default 127.0.0.1; 0.0.0.0 for "
                        "every interface)")
    p.add_argument("--port", "-p", type=parse_port, default=default_port,
                   help="TCP port (default $WSN_PORT, else 8080; 0 = any "
                        "free port)")
    p.add_argument("--static-dir", type=Path, default=None,
                   help=f"folder holding index.html (default "
                        f"{DEFAULT_STATIC_DIR})")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="log at debug level: also one line per connection "
                        "and per message")
    p.add_argument("--broker", default=os.environ.get("WSN_BROKER", ""),
                   help="share rooms with other chat servers through Redis: "
                        "redis://127.0.0.1:6379 (default $WSN_BROKER, else "
                        "none)")
    p.add_argument("--auth-token", default=os.environ.get("WSN_AUTH_TOKEN") or None,
                   help="clients must send ?token=T or 'Authorization: Bearer "
                        "T'; others get 401 (default $WSN_AUTH_TOKEN, else no "
                        "check; open the page as /?token=T)")
    p.add_argument("--metrics", action="store_true",
                   help="serve GET /metrics (Prometheus text format)")
    p.add_argument("--metrics-token",
                   default=os.environ.get("WSN_METRICS_TOKEN", ""),
                   help="with --metrics: answer only requests with "
                        "'Authorization: Bearer T' (default "
                        "$WSN_METRICS_TOKEN, else open)")
    p.add_argument("--tls-cert", default="",
                   help="PEM certificate (chain): serve https:// and wss:// "
                        "only; SIGHUP reloads it")
    p.add_argument("--tls-key", default="", help="its PEM private key")
    p.add_argument("--client-rate", type=int, default=None,
                   help="messages a client may send per second before it is "
                        "closed with 1008 (default the engine's, 100; 0 = no "
                        "limit)")
    p.add_argument("--client-burst", type=int, default=None,
                   help="what a quiet client may send at once (200)")
    args = p.parse_args(argv)
    if args.auth_token == "":
        p.error("--auth-token needs a non-empty token")
    return args


def make_server(host: str, port: int, static_dir: Path,
                verbose: bool = False, broker: str = "",
                auth_token: Optional[str] = None,
                metrics: bool = False, metrics_token: str = "",
                tls_cert: str = "", tls_key: str = "",
                client_rate: Optional[int] = None,
                client_burst: Optional[int] = None) -> Server:
    # Browsers are not trusted to read: one that stops is closed when its
    # queue is full (block mode would make every publish wait for it), and
    # no publish waits for room.
    limits = {k: v for k, v in (("client_rate", client_rate),
                                ("client_burst", client_burst)) if v is not None}
    server = Server(host=host, port=port, path="/ws", **limits,
                    static_dir=str(static_dir),
                    drop_on_backpressure=True, nonblocking=True, broker=broker,
                    authenticate=auth_token is not None,
                    metrics=metrics, metrics_token=metrics_token,
                    tls_cert=tls_cert, tls_key=tls_key,
                    log_level=LogLevel.DEBUG if verbose else LogLevel.INFO)

    if auth_token is not None:
        @server.on_upgrade
        def on_upgrade(req: UpgradeRequest) -> Union[Accept, Reject]:
            # A real server would verify a JWT or look a session up here
            # (an async def works too, under asyncio).
            given = req.query_arg("token") or req.bearer_token or ""
            if hmac.compare_digest(given.encode(), auth_token.encode()):
                return Accept()
            log.debug("upgrade from %s refused: bad or missing token", req.peer)
            return Reject(401, "bad or missing token")

    @server.on_broker
    def on_broker(state: str, why: str) -> None:
        log.info("broker %s%s", state, ": " + why if why else "")

    @server.on_connect
    def on_connect(client: Client) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("client connected: %s from %s (%d connected)",
                      client.id, client.remote_address,
                      server.get_connected_clients())

    @server.on_disconnect
    def on_disconnect(client: Client) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("client disconnected: %s (%d connected)", client.id,
                      server.get_connected_clients())

    @server.on_message
    def on_message(client: Client, msg: IncomingMessage) -> None:
        if verbose:
            log.debug("message from %s: type=%s, channel=%s", client.id,
                      msg.type, msg.channel)
        # The chat protocol is JSON objects with a string "action". Only
        # that member is read here, without decoding the message (as the C
        # example does): a broadcast is forwarded as received (msg.raw), so
        # msg.message is never built for it. Anything else is ignored.
        if msg.type is not JSON:
            return
        try:
            action = wsnotify.json_get_string(msg.raw, "action")
        except wsnotify.WsnotifyError:
            return  # not an object, no "action", or not a string
        if action == "subscribe":
            handle_subscribe(server, client, msg)
        elif action == "broadcast":
            handle_broadcast(server, client, msg)

    return server


def handle_subscribe(server: Server, client: Client,
                     msg: IncomingMessage) -> None:
    channel = msg.message.get("channel")
    if not isinstance(channel, str):
        return  # no channel string: ignored, as in the Go original
    try:
        server.subscribe(client, channel)
    except (ValueError, wsnotify.WsnotifyError) as e:
        log.info("subscription failed for %s to '%s': %s", client.id,
                 channel, e)
        # Unlike the Go original, tell the client why (the channel name
        # itself may be what was wrong, so it is not the envelope's).
        reply(server, client, "", {"status": "error", "channel": channel,
                                   "error": reason(e)}, msg.message_id)
        return
    log.debug("client %s subscribed to '%s'", client.id, channel)
    reply(server, client, channel, {"status": "subscribed",
                                    "channel": channel}, msg.message_id)


def reason(e: Exception) -> str:
    """The core's short text for the error, as the C example sends."""
    if isinstance(e, wsnotify.WsnotifyError) and e.code:
        return wsnotify.strerror(e.code)
    return str(e)


def handle_broadcast(server: Server, client: Client,
                     msg: IncomingMessage) -> None:
    channel = msg.channel
    if not channel:
        return  # the envelope names the channel; none: nothing to do
    try:
        # msg.raw is the message's JSON text as received (a RawJSON):
        # publishing it forwards the message as it is, without encoding
        # msg.message back to JSON.
        server.publish(channel, msg.raw)
    except wsnotify.BrokerError:
        pass  # Redis is down: this server's members got it (on_broker said)
    except (ValueError, wsnotify.WsnotifyError) as e:
        log_failure(e, "broadcast from %s to '%s' failed: %s", client.id,
                    msg.channel, e)
        # It was not accepted: the sender is told, as the C example does.
        reply(server, client, "", {"status": "error", "channel": msg.channel,
                                   "error": reason(e)}, msg.message_id)


def log_failure(e: Exception, fmt: str, *args: object) -> None:
    """Refusals for room come many at once when the server is behind: a
    line for each would flood the log, so they are debug lines."""
    level = logging.DEBUG if isinstance(e, wsnotify.NoRoomError) else logging.INFO
    log.log(level, fmt, *args)


def reply(server: Server, client: Client, channel: str, value: object,
          reply_to: str) -> None:
    try:
        server.publish_to_client(client, channel, value, JSON,
                                 reply_to_id=reply_to)
    except (ValueError, wsnotify.WsnotifyError) as e:
        log_failure(e, "reply to %s failed: %s", client.id, e)


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s: "
               "%(message)s",
        datefmt="%Y-%m-%d %H:%M:%S")

    static_dir = args.static_dir or DEFAULT_STATIC_DIR
    if not (static_dir / "index.html").is_file():
        print(f"chat.py: no index.html in {static_dir}; pass --static-dir "
              "path/to/examples/chat", file=sys.stderr)
        return 2

    try:
        server = make_server(args.host, args.port, static_dir, args.verbose,
                             args.broker, args.auth_token, args.metrics,
                             args.metrics_token, args.tls_cert, args.tls_key,
                             args.client_rate, args.client_burst)
        server.start()
    except (ValueError, wsnotify.WsnotifyError) as e:
        print(f"chat.py: {e}", file=sys.stderr)
        return 1

    # SIGINT/SIGTERM: the first one shuts the server down gracefully (in
    # serve_forever: every client gets 1001, the remaining disconnect
    # handlers run); a second one kills the process the usual way.
    got = {"signal": None}

    def on_signal(signum: int, frame: object) -> None:
        got["signal"] = signum
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    # SIGHUP: the certificate files again, after a renewal; nobody is
    # dropped.
    def on_hangup(signum: int, frame: object) -> None:
        try:
            server.reload_tls()
            log.info("SIGHUP: TLS certificate reloaded")
        except wsnotify.WsnotifyError as e:
            log.error("SIGHUP: TLS reload: %s", e)

    signal.signal(signal.SIGHUP, on_hangup)

    try:
        scheme = "https" if args.tls_cert else "http"
        log.info("chat server on %s://%s:%d/ (WebSocket /ws, page from %s)",
                 scheme, args.host, server.port, static_dir)
        if args.metrics:
            log.info("metrics at %s://%s:%d/metrics%s", scheme, args.host,
                     server.port,
                     " (bearer token required)" if args.metrics_token else "")
        log.info("open it in two browser tabs; Ctrl-C to stop")
        server.serve_forever()
    except KeyboardInterrupt:  # a signal before serve_forever took over
        server.shutdown(SHUTDOWN_TIMEOUT)
    if got["signal"] is None:
        log.info("server stopped unexpectedly")
        return 1
    name = "SIGINT" if got["signal"] == signal.SIGINT else "SIGTERM"
    log.info("got %s, server gracefully stopped", name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
