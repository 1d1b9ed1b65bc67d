"""Exceptions: one class per wsnotify error code, all under WsnotifyError."""

from __future__ import annotations

from typing import Dict, Optional, Type

from ._core import ffi, lib


class WsnotifyError(Exception):
    """Base class of every error the C core reports.

    ``code`` is the negative ``WSN_E*`` number, ``name`` its enum name
    (``"WSN_ECLOSED"``).
    """

    code: int
    name: str

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.name = error_name(code) if code else ""


class InvalidArgumentError(WsnotifyError, ValueError):
    """An argument was refused: empty or too long channel, bad UTF-8,
    invalid JSON, an option out of range (WSN_EINVAL, WSN_EJSON,
    WSN_ERANGE)."""


class ServerClosedError(WsnotifyError):
    """The server is shutting down or has stopped (WSN_ECLOSED)."""


class ClientGoneError(WsnotifyError):
    """The client has disconnected (WSN_EGONE)."""


class BackpressureError(WsnotifyError):
    """A subscriber's send queue was full (WSN_EBACKPRESSURE)."""


class NoRoomError(WsnotifyError):
    """A publish of a ``Server(nonblocking=True)`` found no room
    (WSN_EAGAIN): a client it would reach is stalled (block mode) or the
    core's command queue is full. Nothing was queued; the caller still
    owns the message and may retry once ``room_fileno()`` is readable."""


class WsnotifyTimeoutError(WsnotifyError, TimeoutError):
    """Waited the configured time and gave up (WSN_ETIMEDOUT)."""


class LimitError(WsnotifyError):
    """A configured size limit would be exceeded (WSN_ELIMIT)."""


class StateError(WsnotifyError):
    """Not allowed in the server's current state, e.g. start twice
    (WSN_ESTATE)."""


class ListenError(WsnotifyError, OSError):
    """The server could not listen on its address, or read its TLS files
    (WSN_EIO)."""


class WsnotifyTypeError(WsnotifyError, TypeError):
    """A value has another type than asked for (WSN_ETYPE)."""


class NotFoundError(WsnotifyError, KeyError):
    """No such metadata key or option (WSN_ENOTFOUND)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class WsnotifyMemoryError(WsnotifyError, MemoryError):
    """The C core ran out of memory (WSN_ENOMEM)."""


class UnsupportedError(WsnotifyError):
    """Not supported by this build or the libwebsockets it runs on, e.g.
    ``compression=True`` (WSN_EUNSUPPORTED)."""


class BrokerError(WsnotifyError):
    """The broker (``broker=``) is down: the publish reached this server's
    subscribers only, not the other servers' (WSN_EBROKER)."""


_BY_CODE: Dict[int, Type[WsnotifyError]] = {
    lib.WSN_EINVAL: InvalidArgumentError,
    lib.WSN_ENOMEM: WsnotifyMemoryError,
    lib.WSN_ESTATE: StateError,
    lib.WSN_ECLOSED: ServerClosedError,
    lib.WSN_EGONE: ClientGoneError,
    lib.WSN_EBACKPRESSURE: BackpressureError,
    lib.WSN_EAGAIN: NoRoomError,
    lib.WSN_ETIMEDOUT: WsnotifyTimeoutError,
    lib.WSN_ENOTFOUND: NotFoundError,
    lib.WSN_ETYPE: WsnotifyTypeError,
    lib.WSN_ERANGE: InvalidArgumentError,
    lib.WSN_EJSON: InvalidArgumentError,
    lib.WSN_ELIMIT: LimitError,
    lib.WSN_EIO: ListenError,
    lib.WSN_EUNSUPPORTED: UnsupportedError,
    lib.WSN_EBROKER: BrokerError,
}


def strerror(code: int) -> str:
    """The core's English text for an error code."""
    return ffi.string(lib.wsn_strerror(code)).decode("utf-8", "replace")


def error_name(code: int) -> str:
    """The enum name of an error code (``"WSN_EINVAL"``)."""
    return ffi.string(lib.wsn_err_name(code)).decode("utf-8", "replace")


def make_error(code: int, what: str, detail: Optional[str] = None) -> WsnotifyError:
    cls = _BY_CODE.get(code, WsnotifyError)
    text = f"{what}: {strerror(code)}"
    if detail:
        text += f" ({detail})"
    text += f" [{error_name(code)}]"
    if cls is ListenError:
        err = cls(text, code)
        return err
    return cls(text, code)


def check(rc: int, what: str, detail: Optional[str] = None) -> int:
    """Returns rc when it is not an error, else raises the matching class."""
    if rc < 0:
        raise make_error(rc, what, detail)
    return rc
