"""Authentication at the upgrade (``authenticate=True``): the request a
handler decides on, and the answers it may give."""

from __future__ import annotations

import json
import datetime as _dt
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qsl

#: A moment: a timezone-aware datetime, or Unix time in seconds.
When = Union[_dt.datetime, float, int]


def unix_ms(when: Optional[When]) -> int:
    """Unix milliseconds for the core (0 = never)."""
    if when is None:
        return 0
    if isinstance(when, _dt.datetime):
        if when.tzinfo is None:
            raise ValueError("expiry datetime must be timezone-aware")
        return max(1, int(when.timestamp() * 1000))
    if isinstance(when, bool) or not isinstance(when, (int, float)) or when < 0:
        raise ValueError("expiry is a datetime or Unix seconds >= 0")
    return max(1, int(when * 1000))


class Accept:
    """Let the upgrade proceed: ``metadata`` (a dict) becomes the client's
    metadata, it joins ``channels`` before ``on_connect``, and at
    ``expires_at`` it is closed with 4001 unless :meth:`Client.set_expiry`
    moves it."""

    __slots__ = ("metadata", "channels", "expires_at")

    def __init__(self, metadata: Optional[Mapping[str, Any]] = None,
                 channels: Iterable[str] = (),
                 expires_at: Optional[When] = None) -> None:
        self.metadata = dict(metadata) if metadata is not None else None
        self.channels = list(channels)
        self.expires_at = expires_at


class Reject:
    """Refuse the upgrade with an HTTP ``status`` (400..599) and ``body``
    (over TLS: close code 4000 + status, the body as its reason)."""

    __slots__ = ("status", "body")

    def __init__(self, status: int = 401, body: str = "") -> None:
        self.status = status
        self.body = body


class UpgradeRequest:
    """A WebSocket upgrade waiting for the host's answer.

    ``path``, ``query`` (the raw query string), ``peer`` (remote address),
    ``headers`` (names lower-cased; repeats joined with ", "), and
    :meth:`query_arg` / :meth:`header` to read one. Answer by returning an
    :class:`Accept` or :class:`Reject` (or True / False) from the
    ``on_upgrade`` handler, or by calling :meth:`accept` / :meth:`reject`
    (from any thread, later: within ``auth_timeout``)."""

    __slots__ = ("id", "path", "query", "peer", "headers", "_server",
                 "_answered", "__weakref__")

    def __init__(self, server: Any, upgrade_id: int, path: str, query: str,
                 peer: str, header_lines: str) -> None:
        self.id = upgrade_id
        self.path = path
        self.query = query
        self.peer = peer
        headers: Dict[str, str] = {}
        for line in header_lines.split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            value = value.strip()
            headers[key] = headers[key] + ", " + value if key in headers else value
        self.headers = headers
        self._server = server
        self._answered = False

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.headers.get(name.lower(), default)

    def query_arg(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of a query argument, percent-decoded."""
        for k, v in parse_qsl(self.query, keep_blank_values=True):
            if k == name:
                return v
        return default

    @property
    def bearer_token(self) -> Optional[str]:
        """The token of an ``Authorization: Bearer`` header, if any."""
        auth = self.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    @property
    def answered(self) -> bool:
        return self._answered

    def accept(self, metadata: Optional[Mapping[str, Any]] = None,
               channels: Iterable[str] = (),
               expires_at: Optional[When] = None) -> None:
        self._answered = True
        self._server.accept_upgrade(self.id, metadata, channels, expires_at)

    def reject(self, status: int = 401, body: str = "") -> None:
        self._answered = True
        self._server.reject_upgrade(self.id, status, body)

    def answer(self, result: Any) -> None:
        """Applies a handler's result (once; later ones are ignored)."""
        if self._answered:
            return
        if isinstance(result, Accept):
            self.accept(result.metadata, result.channels, result.expires_at)
        elif isinstance(result, Reject):
            self.reject(result.status, result.body)
        elif result is True:
            self.accept()
        elif result is False:
            self.reject(401, "unauthorized")
        else:
            raise TypeError(
                "an on_upgrade handler returns Accept, Reject, True or False "
                f"(or answers with request.accept()/reject()); got {result!r}")

    def __repr__(self) -> str:
        return f"<UpgradeRequest {self.id} {self.path!r} from {self.peer}>"


def metadata_json(metadata: Optional[Mapping[str, Any]]) -> Optional[bytes]:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise TypeError("metadata is a mapping of str keys")
    return json.dumps(dict(metadata), ensure_ascii=False,
                      separators=(",", ":")).encode("utf-8")
