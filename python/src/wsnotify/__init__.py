"""wsnotify: a real-time WebSocket notification engine (Python binding).

A thin cffi binding of the wsnotify C core: channel pub/sub, batching,
backpressure, graceful shutdown and per-client metadata. Handlers run on a
Python thread you control (:meth:`Server.serve_forever`, ``await
server.serve()``), never on the core's threads.

    from wsnotify import Server

    server = Server(port=8080)

    @server.on_message
    def on_message(client, msg):
        if msg.message.get("action") == "subscribe":
            server.subscribe(client, msg.message["channel"])

    server.serve_forever()
"""

from ._core import (C_VERSION, C_VERSION_INFO, C_VERSION_NUMBER,
                    HEADER_VERSION, SUPPORTED_MAJOR)
from ._errors import (BackpressureError, ClientGoneError, InvalidArgumentError,
                      LimitError, ListenError, NoRoomError, NotFoundError,
                      ServerClosedError, StateError, UnsupportedError, BrokerError,
                      WsnotifyError,
                      WsnotifyMemoryError, WsnotifyTimeoutError,
                      WsnotifyTypeError, error_name, strerror)
from ._types import (Channel, Duration, IncomingMessage, LogLevel, MessageType,
                     RawJSON)
from ._client import Client, ClientMetadata
from ._upgrade import Accept, Reject, UpgradeRequest
from ._json import json_get_string
from ._handoff import handoff
from ._server import Server, default_options, option_names

#: The package version: the version of wsnotify.h it was built from.
__version__ = "%d.%d.%d" % HEADER_VERSION

#: The version of the C library actually loaded ("MAJOR.MINOR.PATCH").
c_version = C_VERSION
#: The same as a tuple of ints.
c_version_info = C_VERSION_INFO

__all__ = [
    "__version__", "c_version", "c_version_info",
    "Server", "Client", "ClientMetadata", "IncomingMessage", "MessageType",
    "RawJSON", "json_get_string", "handoff", "Accept", "Reject", "UpgradeRequest",
    "LogLevel", "Channel", "Duration", "default_options", "option_names",
    "WsnotifyError", "InvalidArgumentError", "ServerClosedError",
    "ClientGoneError", "BackpressureError", "WsnotifyTimeoutError",
    "LimitError", "StateError", "ListenError", "NoRoomError", "WsnotifyTypeError",
    "NotFoundError", "WsnotifyMemoryError", "UnsupportedError", "BrokerError",
    "strerror",
    "error_name",
    "C_VERSION_NUMBER", "HEADER_VERSION", "SUPPORTED_MAJOR",
]
