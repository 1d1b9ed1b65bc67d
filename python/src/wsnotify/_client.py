"""Client: one WebSocket connection, with its metadata."""

from __future__ import annotations

import json
from typing import Any, Iterator, List, MutableMapping, Optional

from ._core import ffi, lib
from ._errors import check, make_error

_INT64_MIN = -(2 ** 63)
_INT64_MAX = 2 ** 63 - 1
_MISSING: Any = object()
_RETRIES = 8  # a value replaced by another thread while we read it


def c_key(key: Any) -> bytes:
    if not isinstance(key, str):
        raise TypeError(f"metadata key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("metadata key must not be empty")
    if "\0" in key:
        raise ValueError("metadata key must not contain NUL characters")
    return key.encode("utf-8")


def take_strlist(out: Any) -> List[str]:
    """Copies and frees a wsn_strlist** filled by the core."""
    lst = out[0]
    try:
        n = lib.wsn_strlist_count(lst)
        return [ffi.string(lib.wsn_strlist_get(lst, i)).decode("utf-8", "replace")
                for i in range(n)]
    finally:
        lib.wsn_strlist_free(lst)


class Client:
    """A connected (or gone) WebSocket client.

    The server hands the same Client object to every handler call for one
    connection. It keeps the C handle alive (retain/release), so metadata
    stays readable after the client has gone; calls that need the
    connection then raise :class:`ClientGoneError`.
    """

    __slots__ = ("_ptr", "_id", "_metadata", "__weakref__")

    def __init__(self, borrowed: Any) -> None:
        if borrowed == ffi.NULL:
            raise ValueError("NULL client handle")
        ptr = lib.wsn_client_retain(borrowed)
        self._ptr = ffi.gc(ptr, lib.wsn_client_release)
        self._id: str = ffi.string(lib.wsn_client_id(ptr)).decode("utf-8")
        self._metadata = ClientMetadata(self)

    # -- identity -------------------------------------------------------

    @property
    def id(self) -> str:
        """The client id (``"c_<n>"``), unique for the life of the process."""
        return self._id

    @property
    def connected(self) -> bool:
        """True while the connection is open."""
        return bool(lib.wsn_client_is_connected(self._ptr))

    @property
    def remote_address(self) -> str:
        """The peer's address as text ("127.0.0.1")."""
        p = lib.wsn_client_remote_address(self._ptr)
        return "" if p == ffi.NULL else ffi.string(p).decode("utf-8", "replace")

    @property
    def subprotocol(self) -> str:
        """The negotiated WebSocket subprotocol ("" when none)."""
        p = lib.wsn_client_subprotocol(self._ptr)
        return "" if p == ffi.NULL else ffi.string(p).decode("utf-8", "replace")

    @property
    def metadata(self) -> "ClientMetadata":
        """A live mutable mapping view of the client's metadata."""
        return self._metadata

    def __repr__(self) -> str:
        state = "connected" if self.connected else "gone"
        return f"<wsnotify.Client {self._id} {state}>"

    # -- metadata ---------------------------------------------------------

    def set_expiry(self, expires_at: Any) -> None:
        """Moves the time at which the client is closed with 4001
        "authorization expired" (a datetime or Unix seconds; None clears
        it): for a client that refreshed its credentials in band."""
        from ._upgrade import unix_ms
        check(lib.wsn_client_set_expiry(self._ptr, unix_ms(expires_at)),
              "set_expiry()")

    def set_metadata(self, key: str, value: Any) -> None:
        """Stores a value under key, replacing any earlier value.

        str, int (64-bit), float, bool and bytes are stored with their own
        type; anything else JSON can hold (None, dict, list, ...) is stored
        as JSON and comes back as the decoded value.
        """
        k = c_key(key)
        p = self._ptr
        what = f"set_metadata({key!r})"
        if isinstance(value, bool):
            rc = lib.wsn_client_set_bool(p, k, 1 if value else 0)
        elif isinstance(value, int):
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise ValueError(f"{what}: int values must fit in 64 bits "
                                 "(store larger ones as str)")
            rc = lib.wsn_client_set_int(p, k, value)
        elif isinstance(value, float):
            rc = lib.wsn_client_set_double(p, k, value)
        elif isinstance(value, str):
            if "\0" in value:
                raise ValueError(f"{what}: string values must not contain NUL "
                                 "characters (store bytes instead)")
            rc = lib.wsn_client_set_string(p, k, value.encode("utf-8"))
        elif isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
            rc = lib.wsn_client_set_bytes(p, k, data, len(data))
        else:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False)
            rc = lib.wsn_client_set_json(p, k, text.encode("utf-8"))
        check(rc, what)

    def get_metadata(self, key: str, default: Any = None) -> Any:
        """The value stored under key, or default when there is none."""
        k = c_key(key)
        for _ in range(_RETRIES):
            value = self._get(k, key)
            if value is not _RETRY:
                return default if value is _MISSING else value
        raise make_error(lib.WSN_ETYPE, f"get_metadata({key!r})",
                         "the value kept changing type while being read")

    def delete_metadata(self, key: str) -> bool:
        """Removes key; True if it was there."""
        rc = lib.wsn_client_delete(self._ptr, c_key(key))
        if rc == lib.WSN_ENOTFOUND:
            return False
        check(rc, f"delete_metadata({key!r})")
        return True

    def metadata_keys(self) -> List[str]:
        """A snapshot of the metadata keys."""
        out = ffi.new("wsn_strlist **")
        check(lib.wsn_client_metadata_keys(self._ptr, out), "metadata_keys()")
        return take_strlist(out)

    def _get(self, k: bytes, key: str) -> Any:
        p = self._ptr
        what = f"get_metadata({key!r})"
        t = ffi.new("wsn_value_type *")
        rc = lib.wsn_client_get_type(p, k, t)
        if rc == lib.WSN_ENOTFOUND:
            return _MISSING
        check(rc, what)
        vt = t[0]
        if vt == lib.WSN_VALUE_INT:
            out = ffi.new("int64_t *")
            rc = lib.wsn_client_get_int(p, k, out)
            conv: Any = lambda: int(out[0])  # noqa: E731
        elif vt == lib.WSN_VALUE_DOUBLE:
            out = ffi.new("double *")
            rc = lib.wsn_client_get_double(p, k, out)
            conv = lambda: float(out[0])  # noqa: E731
        elif vt == lib.WSN_VALUE_BOOL:
            out = ffi.new("int *")
            rc = lib.wsn_client_get_bool(p, k, out)
            conv = lambda: bool(out[0])  # noqa: E731
        elif vt in (lib.WSN_VALUE_STRING, lib.WSN_VALUE_BYTES,
                    lib.WSN_VALUE_JSON):
            return self._get_buffer(k, vt, what)
        elif vt == lib.WSN_VALUE_NONE:
            return None
        else:
            raise make_error(lib.WSN_ETYPE, what, f"unknown value type {vt}")
        if rc == lib.WSN_ENOTFOUND:
            return _MISSING
        if rc == lib.WSN_ETYPE:
            return _RETRY
        check(rc, what)
        return conv()

    def _get_buffer(self, k: bytes, vt: int, what: str) -> Any:
        fn = {lib.WSN_VALUE_STRING: lib.wsn_client_get_string,
              lib.WSN_VALUE_BYTES: lib.wsn_client_get_bytes,
              lib.WSN_VALUE_JSON: lib.wsn_client_get_json}[vt]
        n = ffi.new("size_t *")
        cap = 256
        for _ in range(_RETRIES):
            buf = ffi.new("char[]", cap)
            rc = fn(self._ptr, k, buf, cap, n)
            if rc == lib.WSN_ENOSPC:
                cap = int(n[0]) + 1
                continue
            if rc == lib.WSN_ENOTFOUND:
                return _MISSING
            if rc == lib.WSN_ETYPE:
                return _RETRY
            check(rc, what)
            data = ffi.buffer(buf, int(n[0]))[:]
            if vt == lib.WSN_VALUE_BYTES:
                return data
            text = data.decode("utf-8", "replace")
            if vt == lib.WSN_VALUE_JSON:
                return json.loads(text)
            return text
        return _RETRY


_RETRY: Any = object()


class ClientMetadata(MutableMapping[str, Any]):
    """``client.metadata``: a live dict-like view of one client's metadata.

    Reads go to the C core each time; iteration works on a snapshot of the
    keys.
    """

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    def __getitem__(self, key: str) -> Any:
        value = self._client.get_metadata(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._client.set_metadata(key, value)

    def __delitem__(self, key: str) -> None:
        if not self._client.delete_metadata(key):
            raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._client.metadata_keys())

    def __len__(self) -> int:
        return len(self._client.metadata_keys())

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not key:
            return False
        return self._client.get_metadata(key, _MISSING) is not _MISSING

    def __repr__(self) -> str:
        return f"<wsnotify.ClientMetadata of {self._client.id} {dict(self)!r}>"


def optional_str(p: Any) -> Optional[str]:
    return None if p == ffi.NULL else ffi.string(p).decode("utf-8", "replace")
