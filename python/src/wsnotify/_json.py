"""JSON helpers of the C core that Python code can use too."""

from __future__ import annotations

import threading
from typing import Any, Dict, Union

from ._core import ffi, lib
from ._errors import check

_Text = Union[str, bytes, bytearray, memoryview]


def json_get_string(text: _Text, key: str) -> str:
    """One string member at the top level of a JSON object, decoded, read
    without decoding the whole document (``wsn_json_get_string``): for a
    handler that dispatches on a small field of a large message, such as
    ``json_get_string(msg.raw, "action")``. Where a key repeats, the last
    one counts.

    Raises ``InvalidArgumentError`` (code ``WSN_EJSON``) if ``text`` is not a
    JSON object, ``NotFoundError`` if it has no member ``key``, and
    ``WsnotifyTypeError`` if that member is not a string.
    """
    if isinstance(text, bytes):
        data = text  # bytes and RawJSON (msg.raw) go in as they are
    elif isinstance(text, str):
        data = text.encode("utf-8")
    elif isinstance(text, (bytearray, memoryview)):
        data = bytes(text)
    else:
        raise TypeError("text must be str or bytes-like, not "
                        f"{type(text).__name__}")
    try:
        k = _KEYS.get(key) or _key(key)
    except TypeError:  # unhashable
        k = _key(key)
    # A handler dispatching on "action" calls this once per message: in a
    # text of up to 4 KiB the value is sliced out of data where it stands
    # (no escapes), which is what it nearly always is; only else is it
    # decoded into a buffer.
    rc = _span(data, len(data), k)
    if rc >= 0:
        off = rc >> 32
        return data[off:off + (rc & 0xFFFFFFFF)].decode("utf-8")
    if rc != _SPAN_NONE:
        check(int(rc), f"json_get_string({key!r})")
    return _decoded(data, k, key)


def _decoded(data: bytes, k: bytes, key: str) -> str:
    """json_get_string's value decoded into a buffer: decoding never
    lengthens a string, so the text's size is always enough. The buffer is
    the calling thread's own, kept between calls."""
    n = len(data)
    out = getattr(_tls, "buf", None)
    if out is None or len(out) <= n:
        out = ffi.new("char[]", max(n + 1, 256))
        if n < 65536:  # a bigger one is not kept
            _tls.buf = out
    rc = _get_string(data, n, k, out, len(out))
    if rc < 0:
        check(int(rc), f"json_get_string({key!r})")
    return _unpack(out, rc).decode("utf-8")


_tls = threading.local()
_get_string = lib.wsnpy_json_get_string
_span = lib.wsnpy_json_string_span
_SPAN_NONE = -(2 ** 63)  # WSNPY_SPAN_NONE
_unpack = ffi.unpack
_KEYS: Dict[str, bytes] = {}


def _key(key: Any) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    if "\0" in key:
        raise ValueError("key must not contain NUL")
    k = key.encode("utf-8")
    if type(key) is str and len(_KEYS) < 256:
        _KEYS[key] = k
    return k
