"""Plain value types shared by the server and client wrappers."""

from __future__ import annotations

import enum
import json
import math
from datetime import timedelta
from operator import attrgetter
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
# The members as module constants: looking one up on the Enum class costs
# about 0.13 us (CPython 3.11), on paths that run per message.
_JSON = MessageType.JSON
_TEXT = MessageType.TEXT


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

    ``msg.raw`` is text the core made, so publishing it is not checked
    again.

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


class _CoreJSON(RawJSON):
    """The ``raw`` of a JSON message: text the core validated and made
    compact itself, so publishing it again skips that second pass
    (WSN_PUBLISH_TRUSTED_JSON). Only the binding makes these; bytes are
    immutable, so the text cannot change after."""

    __slots__ = ()


class IncomingMessage:
    """A message a client sent.

    ``message`` is the decoded JSON value for ``MessageType.JSON``, a str for
    ``TEXT`` and bytes for ``BINARY`` (a binary WebSocket frame).
    ``raw`` is the payload as received: for ``JSON`` the message's JSON text
    as a :class:`RawJSON` (the client's text without whitespace: numbers and
    string escapes as the client wrote them; publish it to forward the
    message without re-encoding), UTF-8 text for ``TEXT``, the
    bytes for ``BINARY``.

    ``message`` is decoded from ``raw`` on first access and kept: a handler
    that forwards ``raw`` or reads one field with :func:`json_get_string`
    never pays for decoding. The message owns its ``raw`` bytes (a copy,
    not a view of the core's memory), so a message kept after its handler
    returned (stored, or read by a coroutine later) stays valid and still
    decodes.

    Read-only, compared by value (``raw`` does not take part), like the
    frozen dataclass it was before 0.2: ``IncomingMessage(type, channel,
    message, message_id="", reply_to_id="", client_id="", raw=b"")``.
    """

    __slots__ = ("_type", "_channel", "_message", "_message_id",
                 "_reply_to_id", "_client_id", "_raw")

    def __init__(self, type: MessageType, channel: str, message: Any,
                 message_id: str = "", reply_to_id: str = "",
                 client_id: str = "", raw: bytes = b"") -> None:
        self._type = type
        self._channel = channel
        self._message = message
        self._message_id = message_id
        self._reply_to_id = reply_to_id
        self._client_id = client_id
        self._raw = raw

    # Properties without setters: assigning raises AttributeError.
    type = property(attrgetter("_type"))
    channel = property(attrgetter("_channel"))
    message_id = property(attrgetter("_message_id"))
    reply_to_id = property(attrgetter("_reply_to_id"))
    client_id = property(attrgetter("_client_id"))
    raw = property(attrgetter("_raw"))

    @property
    def message(self) -> Any:
        m = self._message
        if m is _UNDECODED:
            m = self._message = decode_payload(self._type, self._raw)
        return m

    def _fields(self) -> tuple:
        return (self._type, self._channel, self.message, self._message_id,
                self._reply_to_id, self._client_id)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"IncomingMessage(type={self._type!r}, "
                f"channel={self._channel!r}, message={self.message!r}, "
                f"message_id={self._message_id!r}, "
                f"reply_to_id={self._reply_to_id!r}, "
                f"client_id={self._client_id!r})")


class _Undecoded:
    """The value of IncomingMessage._message until message is read."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<undecoded>"

    def __reduce__(self) -> str:
        return "_UNDECODED"  # one object, also through pickle and copy


_UNDECODED: Any = _Undecoded()

# The core hands compact JSON (the client's text without whitespace), so
# raw_decode skips json.loads' whitespace scans.
_json_decode = json.JSONDecoder().raw_decode


def decode_payload(mtype: MessageType, raw: bytes) -> Any:
    """IncomingMessage.message from its raw payload."""
    if mtype is _JSON:
        if not raw:
            return None
        text = raw.decode("utf-8", "replace")
        try:
            value, end = _json_decode(text)
            if end == len(text):
                return value
            return json.loads(text)
        except ValueError:
            try:
                return json.loads(text)
            except ValueError:  # the core validates it; keep the text
                return text
    if mtype is _TEXT:
        return raw.decode("utf-8", "replace")
    return raw


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
