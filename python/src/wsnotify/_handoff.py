"""The front's side of the handoff socket (``wsn_handoff``)."""

from __future__ import annotations

from typing import Any, Union

from ._core import lib
from ._errors import check

_Head = Union[bytes, bytearray, memoryview, str]


def handoff(path: str, sock: Any, head: _Head) -> None:
    """Gives a connection this process accepted, and the request head read
    from it, to the engine whose ``handoff_socket`` option is ``path``. The
    engine then serves it exactly as a connection it accepted itself, with
    the real peer address. ``sock`` is a socket object or a descriptor.

    On return the engine holds the socket: close your own object or
    descriptor without writing to it or shutting it down (``socket.close()``
    is right; ``shutdown()`` would end the engine's connection too). The
    call never waits. Raises ``ServerClosedError`` when no engine listens
    at ``path``, ``NoRoomError`` when the engine's queue of handed sockets
    is full (retry soon, or answer 503), ``LimitError`` for a head over
    16,384 bytes, ``InvalidArgumentError`` for an empty path or head.
    """
    if not isinstance(path, str):
        raise TypeError(f"path must be str, not {type(path).__name__}")
    fd = sock if isinstance(sock, int) else sock.fileno()
    if isinstance(head, str):
        data = head.encode("latin-1")
    elif isinstance(head, (bytes, bytearray, memoryview)):
        data = bytes(head)
    else:
        raise TypeError(f"head must be bytes or str, not {type(head).__name__}")
    check(lib.wsn_handoff(path.encode("utf-8"), fd, data, len(data)), "handoff")


