"""JSON helpers of the C core that Python code can use too."""

from __future__ import annotations

from typing import Union

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
    if isinstance(text, str):
        data = text.encode("utf-8")
    elif isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
    else:
        raise TypeError("text must be str or bytes-like, not "
                        f"{type(text).__name__}")
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    if "\0" in key:
        raise ValueError("key must not contain NUL")
    # Decoding never lengthens a string: the text's size is always enough.
    cap = len(data) + 1
    out = ffi.new("char[]", cap)
    n = ffi.new("size_t *")
    check(lib.wsn_json_get_string(data, len(data), key.encode("utf-8"), out,
                                  cap, n), f"json_get_string({key!r})")
    return ffi.buffer(out, int(n[0]))[:].decode("utf-8")
