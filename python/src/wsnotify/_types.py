"""Plain value types shared by the server and client wrappers."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NewType, Union

from ._core import lib

#: A channel name; any non-empty str (the Go original's ``Channel``).
Channel = NewType("Channel", str)

#: A duration: seconds as int/float, or a timedelta.
Duration = Union[int, float, timedelta]


class MessageType(str, enum.Enum):
    """What a payload is; the value is the wire protocol's ``type``."""

    JSON = "json"
    TEXT = "text"
    BINARY = "binary"

    def __str__(self) -> str:
        return self.value

    @property
    def c_value(self) -> int:
        return _TO_C[self]

    @classmethod
    def from_c(cls, value: int) -> "MessageType":
        return _FROM_C[value]


_TO_C = {
    MessageType.JSON: lib.WSN_TYPE_JSON,
    MessageType.TEXT: lib.WSN_TYPE_TEXT,
    MessageType.BINARY: lib.WSN_TYPE_BINARY,
}
_FROM_C = {v: k for k, v in _TO_C.items()}


class LogLevel(enum.IntEnum):
    """Values of the ``log_level`` option."""

    NONE = lib.WSN_LOG_NONE
    ERROR = lib.WSN_LOG_ERROR
    WARN = lib.WSN_LOG_WARN
    INFO = lib.WSN_LOG_INFO
    DEBUG = lib.WSN_LOG_DEBUG


class RawJSON(bytes):
    """JSON text that is already encoded, published as it is.

    Wherever a JSON message value is accepted (``publish``,
    ``publish_with_type``/``publish_to_client`` with ``MessageType.JSON``,
    ``publish_wait``), a ``RawJSON`` is sent as the JSON text it holds
    instead of being serialised with :func:`json.dumps`, like Go's
    ``json.RawMessage``. The core still checks that it is one valid JSON
    value (``InvalidArgumentError`` otherwise) and minifies it.

    ``IncomingMessage.raw`` of a JSON message is a ``RawJSON``, so a handler
    forwards what a client sent without decoding and encoding it again::

        server.publish(msg.channel, msg.raw)

    ``RawJSON(text)`` takes a str (encoded as UTF-8) or a bytes-like object.
    It is a ``bytes`` subclass: it compares equal to the same bytes.
    """

    __slots__ = ()

    def __new__(cls, text: Union[str, bytes, bytearray, memoryview]
                ) -> "RawJSON":
        if isinstance(text, str):
            return super().__new__(cls, text.encode("utf-8"))
        if isinstance(text, (bytes, bytearray, memoryview)):
            return super().__new__(cls, text)
        raise TypeError("RawJSON takes JSON text as a str or bytes-like "
                        f"object, not {type(text).__name__}")

    def __repr__(self) -> str:
        return f"RawJSON({bytes.__repr__(self)})"


@dataclass(frozen=True)
class IncomingMessage:
    """A message a client sent.

    ``message`` is the decoded JSON value for ``MessageType.JSON``, a str for
    ``TEXT`` and bytes for ``BINARY`` (a binary WebSocket frame).
    ``raw`` is the payload as received: for ``JSON`` the message's JSON text
    as a :class:`RawJSON` (the client's text without whitespace: numbers and
    string escapes as the client wrote them; publish it to forward the
    message without re-encoding), UTF-8 text for ``TEXT``, the
    bytes for ``BINARY``.
    """

    type: MessageType
    channel: str
    message: Any
    message_id: str = ""
    reply_to_id: str = ""
    client_id: str = ""
    raw: bytes = field(default=b"", repr=False, compare=False)


def duration_ms(value: Any, what: str) -> int:
    """Seconds (int/float) or a timedelta as whole milliseconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{what} must be a number of seconds or a datetime.timedelta, "
            f"not {type(value).__name__}")
    else:
        seconds = float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return int(round(seconds * 1000.0))
