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


@dataclass(frozen=True)
class IncomingMessage:
    """A message a client sent.

    ``message`` is the decoded JSON value for ``MessageType.JSON``, a str for
    ``TEXT`` and bytes for ``BINARY`` (a binary WebSocket frame).
    ``raw`` is the payload as received (JSON text, UTF-8 text or bytes).
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
