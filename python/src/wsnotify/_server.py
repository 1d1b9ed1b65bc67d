"""Server: the Python face of one wsnotify engine (wsn_server)."""

from __future__ import annotations

import asyncio
import atexit
import inspect
import json
import logging
import struct
import threading
import weakref
from datetime import timedelta
from typing import (Any, Awaitable, Callable, Dict, Iterable, List, Mapping,
                    Optional, Set, Tuple, TypeVar, Union)

from ._client import Client, take_strlist
from ._core import ffi, lib
from ._errors import (ClientGoneError, InvalidArgumentError, ServerClosedError,
                      WsnotifyError,
                      check, make_error, strerror)
from ._types import (_JSON, _TEXT, _UNDECODED, Duration, IncomingMessage,
                     MessageType, _CoreJSON, RawJSON, duration_ms)
from ._upgrade import (Accept, Reject, UpgradeRequest, When, metadata_json,
                       unix_ms)

__all__ = ["Server", "default_options", "option_names"]

log = logging.getLogger("wsnotify")
core_log = logging.getLogger("wsnotify.core")

MessageHandler = Callable[[Client, IncomingMessage], Any]
ClientHandler = Callable[[Client], Any]
F = TypeVar("F", bound=Callable[..., Any])
OriginCheck = Callable[[Optional[str], Optional[str]], bool]

_INT64_MIN = -(2 ** 63)
_INT64_MAX = 2 ** 63 - 1
_UINT64_MAX = 2 ** 64 - 1
_WAIT_SLICE_MS = 200      # serve_forever wakes this often (Ctrl-C)
_DRAIN_BATCH = 256        # events per add_reader callback, for fairness
_LOG_LINE_MAX = 512       # the core's lines are at most 511 bytes
_LOG_QUEUE_LINES = 1000   # log_queue unless the caller sets it
_ERRBUF = 512

_LOG_LEVELS = {
    lib.WSN_LOG_ERROR: logging.ERROR,
    lib.WSN_LOG_WARN: logging.WARNING,
    lib.WSN_LOG_INFO: logging.INFO,
    lib.WSN_LOG_DEBUG: logging.DEBUG,
}


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

def _all_option_ids() -> List[int]:
    # Ids may have gaps: the header says to stop after 32 unknown in a row.
    ids = []
    i, unknown = 1, 0
    t = ffi.new("wsn_option_type *")
    while unknown < 32:
        if lib.wsn_option_type_of(i, t) == 0:
            ids.append(i)
            unknown = 0
        else:
            unknown += 1
        i += 1
    return ids


def option_names() -> List[str]:
    """Every option the C core knows, as accepted by ``Server(**options)``."""
    return [ffi.string(lib.wsn_option_name(i)).decode("ascii")
            for i in _all_option_ids()]


def _read_options(opts: Any) -> Dict[str, Any]:
    res: Dict[str, Any] = {}
    t = ffi.new("wsn_option_type *")
    iv = ffi.new("int64_t *")
    sv = ffi.new("const char **")
    for i in _all_option_ids():
        name = ffi.string(lib.wsn_option_name(i)).decode("ascii")
        lib.wsn_option_type_of(i, t)
        if t[0] == lib.WSN_OPTTYPE_STRING:
            check(lib.wsn_options_get_string(opts, i, sv), f"option {name}")
            res[name] = ffi.string(sv[0]).decode("utf-8", "replace")
        else:
            check(lib.wsn_options_get_int(opts, i, iv), f"option {name}")
            v = int(iv[0])
            if t[0] == lib.WSN_OPTTYPE_BOOL:
                res[name] = bool(v)
            elif t[0] == lib.WSN_OPTTYPE_DURATION_MS:
                res[name] = timedelta(milliseconds=v)
            else:
                res[name] = v
    return res


def default_options() -> Dict[str, Any]:
    """The options a ``Server()`` gets when not given (durations as
    timedelta): the C core's defaults, except ``log_queue``, which the
    binding sets so that the core's log lines reach Python."""
    opts = lib.wsn_options_new()
    if opts == ffi.NULL:
        raise MemoryError("wsn_options_new")
    try:
        res = _read_options(opts)
    finally:
        lib.wsn_options_free(opts)
    res["log_queue"] = _LOG_QUEUE_LINES
    return res


def _range_error(name: str, value: Any, oid: int, otype: int) -> ValueError:
    lo = ffi.new("int64_t *")
    hi = ffi.new("int64_t *")
    if lib.wsn_option_bounds(oid, lo, hi) == 0:
        if otype == lib.WSN_OPTTYPE_DURATION_MS:
            bounds = f"{lo[0] / 1000:g} s to {hi[0] / 1000:g} s"
        else:
            bounds = f"{lo[0]} to {hi[0]}"
        return ValueError(f"option {name}={value!r} is out of range ({bounds})")
    return ValueError(f"option {name}={value!r} is out of range")


def _apply_option(opts: Any, name: str, value: Any) -> None:
    if not isinstance(name, str):
        raise TypeError("option names must be str")
    oid_p = ffi.new("wsn_option *")
    type_p = ffi.new("wsn_option_type *")
    if lib.wsn_option_by_name(name.encode("ascii", "replace"), oid_p,
                              type_p) != 0:
        raise TypeError(f"Server() got an unexpected keyword argument {name!r}"
                        f" (options: {', '.join(option_names())})")
    oid, otype = oid_p[0], type_p[0]
    if otype == lib.WSN_OPTTYPE_STRING:
        if isinstance(value, str):
            text = value
        elif isinstance(value, (list, tuple, set, frozenset)) and all(
                isinstance(v, str) for v in value):
            text = ",".join(value)  # e.g. allowed_origins=["https://a", ...]
        else:
            raise TypeError(f"option {name} must be a str, not "
                            f"{type(value).__name__}")
        if "\0" in text:
            raise ValueError(f"option {name} must not contain NUL characters")
        rc = lib.wsn_options_set_string(opts, oid, text.encode("utf-8"))
    else:
        if otype == lib.WSN_OPTTYPE_DURATION_MS:
            iv = duration_ms(value, f"option {name}")
        elif otype == lib.WSN_OPTTYPE_BOOL:
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                raise TypeError(f"option {name} must be a bool, not "
                                f"{value!r}")
            iv = 1 if value else 0
        else:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"option {name} must be an int, not "
                                f"{type(value).__name__}")
            iv = int(value)
        if not _INT64_MIN <= iv <= _INT64_MAX:
            raise _range_error(name, value, oid, otype)
        rc = lib.wsn_options_set_int(opts, oid, iv)
    if rc == lib.WSN_ERANGE:
        raise _range_error(name, value, oid, otype)
    if rc == lib.WSN_EINVAL:
        raise ValueError(f"option {name}={value!r} is invalid")
    check(rc, f"option {name}")


# ---------------------------------------------------------------------------
# Origin check callback (runs on the core's I/O thread: see Server docs)
# ---------------------------------------------------------------------------

class _OriginCheck:
    __slots__ = ("fn",)

    def __init__(self, fn: OriginCheck) -> None:
        self.fn = fn


@ffi.def_extern()
def _wsnpy_origin_cb(user: Any, origin: Any, host: Any) -> int:
    try:
        holder = ffi.from_handle(user)
        o = None if origin == ffi.NULL else ffi.string(origin).decode(
            "utf-8", "replace")
        h = None if host == ffi.NULL else ffi.string(host).decode(
            "utf-8", "replace")
        return 1 if holder.fn(o, h) else 0
    except BaseException:  # never let an exception reach C; deny instead
        log.exception("wsnotify: check_origin raised; upgrade refused")
        return 0


# ---------------------------------------------------------------------------
# C resources, freed by a finalizer that holds no reference to the Server
# ---------------------------------------------------------------------------

class _Resources:
    __slots__ = ("srv", "opts", "origin_handle", "logs", "batch")

    def __init__(self) -> None:
        self.srv: Any = ffi.NULL
        self.opts: Any = ffi.NULL
        self.origin_handle: Any = None
        self.logs: Optional[_CoreLog] = None
        self.batch = _Batch()

    def free(self) -> None:
        # Safe here: no Python reference to the server is left, so no
        # thread can be inside a call on it. The shutdown comes first so
        # that its log lines are forwarded before the queue goes.
        self.batch.release()  # events taken but never handled
        if self.srv != ffi.NULL:
            if self.logs is not None:
                lib.wsn_server_shutdown(self.srv, self.logs.write_wait_ms)
                self.logs.drain(self.srv)
            lib.wsn_server_free(self.srv)
            self.srv = ffi.NULL
        if self.opts != ffi.NULL:
            lib.wsn_options_free(self.opts)
            self.opts = ffi.NULL
        self.origin_handle = None


class _CoreLog:
    """Forwards the core's queued log lines (option log_queue) to a Python
    logger, on whichever thread drains events: the core never runs Python
    code for them."""

    __slots__ = ("logger", "write_wait_ms", "lock", "dropped_seen", "level",
                 "line", "len")

    def __init__(self, logger: logging.Logger, write_wait_ms: int) -> None:
        self.logger = logger
        self.write_wait_ms = write_wait_ms
        self.lock = threading.Lock()  # one drainer at a time: shared buffers
        self.dropped_seen = 0
        self.level = ffi.new("wsn_log_level *")
        self.line = ffi.new("char[]", _LOG_LINE_MAX)
        self.len = ffi.new("size_t *")

    def drain(self, srv: Any) -> None:
        with self.lock:
            while True:
                rc = lib.wsn_server_next_log(srv, self.level, self.line,
                                             len(self.line), self.len)
                if rc == lib.WSN_ENOSPC:  # longer than the core promises
                    self.line = ffi.new("char[]", int(self.len[0]) + 1)
                    continue
                if rc != 0:
                    break
                text = ffi.buffer(self.line, int(self.len[0]))[:].decode(
                    "utf-8", "replace")
                self.logger.log(_LOG_LEVELS.get(self.level[0], logging.INFO),
                                "%s", text)
            dropped = int(lib.wsn_server_logs_dropped(srv))
            if dropped != self.dropped_seen:
                self.logger.warning("wsnotify: %d core log lines were dropped "
                                    "(log_queue was full)",
                                    dropped - self.dropped_seen)
                self.dropped_seen = dropped


# Servers still alive when the interpreter exits are shut down gracefully
# (clients get 1001) but not freed: daemon threads may still be inside a
# call on them. Garbage collection frees the others.
_live: "weakref.WeakSet[Server]" = weakref.WeakSet()


@atexit.register
def _shutdown_at_exit() -> None:
    for server in list(_live):
        srv = server._res.srv
        if srv != ffi.NULL:
            wait = server._option_values.get("write_wait")
            ms = int(wait.total_seconds() * 1000) if wait else 10000
            lib.wsn_server_shutdown(srv, ms)


# ---------------------------------------------------------------------------
# Payload helpers
# ---------------------------------------------------------------------------

# What json.dumps (allow_nan=False, then UTF-8) makes is JSON the core need
# not validate or minify again.
_TRUSTED_JSON = lib.WSN_PUBLISH_TRUSTED_JSON


def _dumps(value: Any) -> bytes:
    if isinstance(value, RawJSON):
        # Already JSON text: the core validates (and minifies) it. A NUL
        # would end the text early where the core takes a C string.
        if b"\0" in value:
            raise InvalidArgumentError("JSON text must not contain NUL bytes "
                                       "[WSN_EJSON]", lib.WSN_EJSON)
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


# Channel names publish() has already checked and encoded: one dict lookup
# instead of three checks and an encode per call (a handler publishes per
# message). Bounded: cleared when full.
_CHANNELS: Dict[str, bytes] = {}
_CHANNELS_MAX = 4096


def _channel_fast(channel: Any) -> bytes:
    ch = _channel(channel)
    if type(channel) is str:
        if len(_CHANNELS) >= _CHANNELS_MAX:
            _CHANNELS.clear()
        _CHANNELS[channel] = ch
    return ch


def _channel(channel: Any, allow_empty: bool = False) -> bytes:
    if not isinstance(channel, str):
        raise TypeError(f"channel must be a str, not {type(channel).__name__}")
    if not channel and not allow_empty:
        raise InvalidArgumentError("channel must be a non-empty string "
                                   "[WSN_EINVAL]", lib.WSN_EINVAL)
    if "\0" in channel:
        raise InvalidArgumentError("channel must not contain NUL characters "
                                   "[WSN_EINVAL]", lib.WSN_EINVAL)
    return channel.encode("utf-8")


def _message_type(t: Any) -> MessageType:
    if t.__class__ is MessageType:
        return t  # MessageType(t) costs an Enum lookup
    try:
        return MessageType(t)
    except ValueError:
        raise ValueError(f"unknown message type {t!r} (use MessageType.JSON, "
                         "MessageType.TEXT or MessageType.BINARY)") from None


def _payload(message: Any, mtype: MessageType) -> bytes:
    if mtype is _JSON:
        return _dumps(message)
    if mtype is _TEXT:
        if isinstance(message, str):
            return message.encode("utf-8")
        if isinstance(message, (bytes, bytearray, memoryview)):
            return bytes(message)  # the core checks it is UTF-8
        raise TypeError("a TEXT message must be a str, not "
                        f"{type(message).__name__}")
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message)
    raise TypeError("a BINARY message must be bytes-like, not "
                    f"{type(message).__name__}")


def _opt_id(value: Optional[str], what: str) -> Any:
    if not value:
        return ffi.NULL
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value.encode("utf-8")


def _ident(ident: Any) -> int:
    if isinstance(ident, bool) or not isinstance(ident, int):
        raise TypeError(f"ident must be an int, not {type(ident).__name__}")
    if not 0 <= ident <= _UINT64_MAX:
        raise ValueError(f"ident must be between 0 and 2**64-1, got {ident}")
    return ident


def _cstr(value: Any, what: str) -> bytes:
    """A str the core takes as a C string (no NUL), as UTF-8."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value.encode("utf-8")


def _ttl_ms(ttl: Any) -> int:
    ms = duration_ms(ttl, "ttl")
    if ms < 0:
        raise ValueError(f"ttl must not be negative, got {ttl!r}")
    return ms


# The message types by their C values (wsn_message_type: 0, 1, 2).
_MTYPES = tuple(MessageType.from_c(i) for i in range(3))
_BINARY = MessageType.BINARY
_EV_MESSAGE = lib.WSN_EVENT_MESSAGE
_BROKER_STATES = {lib.WSN_BROKER_NONE: "none", lib.WSN_BROKER_CONNECTING: "connecting",
                  lib.WSN_BROKER_UP: "up", lib.WSN_BROKER_DOWN: "down"}
_new_rawjson = bytes.__new__


def _label_names(fn: Callable[[int], Any]) -> Tuple[str, ...]:
    names = []
    while True:
        p = fn(len(names))
        if p == ffi.NULL:
            return tuple(names)
        names.append(ffi.string(p).decode("ascii"))


# The label of each element of the snapshot's arrays (the core names them;
# the Prometheus text uses the same names).
_METRIC_LABELS = {
    "connections_refused": _label_names(lib.wsn_refusal_name),
    "connections_closed": _label_names(lib.wsn_close_reason_name),
    "messages_received": tuple(t.value for t in _MTYPES),
    "bytes_received": tuple(t.value for t in _MTYPES),
}
_METRIC_FIELDS = tuple(name for name, _ in ffi.typeof("wsn_metrics").fields
                       if name != "size")


def _message_from_info(info: Any, cid: str) -> IncomingMessage:
    """The IncomingMessage of a MESSAGE event read through wsn_event_info:
    the way for a message that did not fit in the batch's arena."""
    mt = MessageType.from_c(info.type)
    n = info.payload_len
    raw = ffi.unpack(ffi.cast("char *", info.payload), n) if n else b""
    if mt is _JSON:
        raw = _new_rawjson(_CoreJSON, raw)
    return IncomingMessage(mt, _s1(info.channel),
                           raw if mt is _BINARY else _UNDECODED,
                           _s1(info.message_id), _s1(info.reply_to_id), cid,
                           raw)


def _s1(p: Any) -> str:
    """An event's string, which is mostly "" (no decode then)."""
    if p == ffi.NULL or p[0] == b"\0":
        return ""
    return ffi.string(p).decode("utf-8", "replace")


# Events are taken up to _BATCH_MAX at a time by wsn_server_take_events:
# one C call per batch, each event described by one record of 64-bit fields
# (read here as integers in one unpack), its strings and payload in one
# arena that Python copies once and slices.
_BATCH_MAX = 256
_ARENA_BYTES = 256 * 1024
_REC_FIELDS = 11
_REC = struct.Struct(f"{_REC_FIELDS}q")
if ffi.sizeof("wsn_event_record") != _REC.size:  # pragma: no cover - 32-bit
    # Records are read as 11 int64; python -O would drop an assert.
    raise ImportError("wsnotify: wsn_event_record is %d bytes, not 11 int64 "
                      "(a 64-bit platform is needed)" % ffi.sizeof("wsn_event_record"))
_rec_unpack = _REC.unpack_from
_REC_BYTES = _REC.size


class _Batch:
    """The events of one wsn_server_take_events call: taken, not yet freed.
    Handlers may dispatch again (nested drains): the position lives here,
    so a nested drain goes on where the outer one stopped."""

    __slots__ = ("evs", "rec", "recbuf", "arena", "used", "count", "pos",
                 "blob")

    def __init__(self) -> None:
        self.evs = ffi.new("wsn_event *[]", _BATCH_MAX)
        self.rec = ffi.new("wsn_event_record[]", _BATCH_MAX)
        self.recbuf = ffi.buffer(self.rec)
        self.arena = ffi.new("char[]", _ARENA_BYTES)
        self.used = ffi.new("size_t *")
        self.count = 0  # events taken
        self.pos = 0    # the next one to handle
        self.blob = b""

    def release(self) -> None:
        """Frees the events (they hold their clients' references)."""
        if self.count:
            lib.wsn_events_free(self.evs, self.count)
            self.count = self.pos = 0
            self.blob = b""


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------

class Server:
    """A WebSocket notification server: channels, pub/sub, batching.

    ``Server(host="127.0.0.1", port=8080, **options)`` takes every option of
    the C core by its snake_case name with the Go original's defaults
    (see :func:`option_names` and :func:`default_options`). Durations
    (``write_wait``, ``pong_wait``, ``ping_period``, ``close_grace``) are
    seconds (int/float) or a ``timedelta``. ``port=0`` picks a free port;
    :attr:`port` tells which once started. Unknown options raise TypeError,
    bad values ValueError.

    Python-only keyword arguments:

    * ``check_origin(origin, host) -> bool`` replaces the same-origin check
      (and ``allowed_origins``). It runs on the core's I/O thread during the
      handshake, so it must be quick, must not block and must not call the
      server; an exception refuses the upgrade. Prefer ``allowed_origins``.
    * ``logger``: where the core's log lines go (default the
      ``wsnotify.core`` logger). The core queues them (option ``log_queue``,
      1000 lines here unless given; lines beyond are dropped and counted)
      and they are forwarded on the thread that serves events, never on the
      core's threads.
    * ``nonblocking=True``: the publish calls (``publish``,
      ``publish_with_type``, ``publish_to_client``, ``send_raw``,
      ``publish_wait*``) never wait for room: where they would wait (a
      stalled client in block mode, a full command queue) they raise
      :class:`NoRoomError` at once with nothing queued. For handlers that
      must never wait on another client (the chat examples); on asyncio
      use the ``*_async`` calls instead.

    Handlers (``on_message``, ``on_connect``, ``on_disconnect``) run on the
    thread that serves events: :meth:`serve_forever`, :meth:`serve` (asyncio)
    or :meth:`dispatch_events`. They never run on the core's threads. An
    exception in a handler is logged with its traceback on the ``wsnotify``
    logger and does not stop the server.

    Every method may be called from any thread. C calls release the GIL.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, *,
                 check_origin: Optional[OriginCheck] = None,
                 logger: Optional[logging.Logger] = None,
                 **options: Any) -> None:
        self._res = _Resources()
        self._finalizer = weakref.finalize(self, _Resources.free, self._res)
        self._finalizer.atexit = False  # see _shutdown_at_exit
        self._logger = logger if logger is not None else core_log
        res = self._res
        res.opts = lib.wsn_options_new()
        if res.opts == ffi.NULL:
            raise MemoryError("wsn_options_new")
        options = dict(options, host=host, port=port)
        nonblocking = options.pop("nonblocking", False)
        if not isinstance(nonblocking, bool):
            raise TypeError("nonblocking must be a bool")
        # The flags of every synchronous publish call.
        self._flags = lib.WSN_PUBLISH_NONBLOCK if nonblocking else 0
        self._flags_trusted = self._flags | _TRUSTED_JSON
        options.setdefault("log_queue", _LOG_QUEUE_LINES)
        if options.get("events_on_io_thread"):
            raise ValueError(
                "events_on_io_thread=True is not supported by the Python "
                "binding: handlers run on a Python thread (serve_forever, "
                "serve, dispatch_events), never on the core's I/O thread")
        for name, value in options.items():
            _apply_option(res.opts, name, value)
        if check_origin is not None:
            if not callable(check_origin):
                raise TypeError("check_origin must be callable")
            res.origin_handle = ffi.new_handle(_OriginCheck(check_origin))
            check(lib.wsn_options_set_origin_check(
                res.opts, lib._wsnpy_origin_cb, res.origin_handle),
                "check_origin")
        out = ffi.new("wsn_server **")
        err = ffi.new("char[]", _ERRBUF)
        rc = lib.wsn_server_new(res.opts, out, err, _ERRBUF)
        if rc != 0:
            detail = ffi.string(err).decode("utf-8", "replace")
            if rc in (lib.WSN_EINVAL, lib.WSN_ERANGE):
                raise ValueError(f"invalid server options: {detail or strerror(rc)}")
            raise make_error(rc, "Server()", detail)
        res.srv = out[0]
        # The handle itself for the hot paths: it is freed only by the
        # finalizer, once no reference to this Server is left.
        self._srvp = res.srv
        self._option_values = _read_options(res.opts)
        res.logs = _CoreLog(self._logger, int(
            self._option_values["write_wait"].total_seconds() * 1000))
        _live.add(self)

        self._on_message: Optional[MessageHandler] = None
        self._on_connect: Optional[ClientHandler] = None
        self._on_disconnect: Optional[ClientHandler] = None
        self._on_broker: Optional[Callable[[str, str], Any]] = None
        self._on_upgrade: Optional[Callable[[UpgradeRequest], Any]] = None
        self._clients: Dict[str, Client] = {}
        # The same Client objects by their handle's address, for the
        # batched events (a Client retains its handle: no address reuse).
        self._by_ptr: Dict[int, Client] = {}
        self._dispatch_lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._started = False
        self._stopped = threading.Event()   # STOPPED event taken
        self._drainer: Optional[int] = None  # thread serving events
        # asyncio state (one loop at a time)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop_future: Optional["asyncio.Future[None]"] = None
        self._tasks: Set["asyncio.Task[Any]"] = set()
        self._fd = lib.wsn_server_event_fd(res.srv)
        self._room_fd = lib.wsn_server_room_fd(res.srv)
        # NONBLOCK publishes waiting for room, per event loop: one
        # add_reader on the room fd (a loop keeps one per fd) wakes them all.
        self._room_waiters: Dict[asyncio.AbstractEventLoop,
                                 List["asyncio.Future[None]"]] = {}
        # Filled by wsn_event_get_info; used under _dispatch_lock only, and
        # read completely before a handler runs (handlers may dispatch).
        self._ev_info = ffi.new("wsn_event_info *")
        self._ev_info.size = ffi.sizeof("wsn_event_info")

    # -- properties ---------------------------------------------------------

    @property
    def _srv(self) -> Any:
        srv = self._res.srv
        if srv == ffi.NULL:  # pragma: no cover - only after finalization
            raise ServerClosedError("the server has been freed")
        return srv

    @property
    def host(self) -> str:
        return str(self._option_values["host"])

    @property
    def port(self) -> int:
        """The bound port once started (useful with port=0), else the
        configured one."""
        p = lib.wsn_server_port(self._srv)
        return p if p >= 0 else int(self._option_values["port"])

    @property
    def path(self) -> str:
        return str(self._option_values["path"])

    @property
    def url(self) -> str:
        """``ws://host:port/path`` of the WebSocket endpoint (``wss://``
        with ``tls_cert``)."""
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "wss" if self._option_values.get("tls_cert") else "ws"
        return f"{scheme}://{host}:{self.port}{self.path}"

    @property
    def options(self) -> Mapping[str, Any]:
        """The options this server was created with (durations as
        timedelta)."""
        return dict(self._option_values)

    @property
    def started(self) -> bool:
        return self._started

    @property
    def stopped(self) -> bool:
        """True once the server has stopped and its last event was taken."""
        return self._stopped.is_set()

    def fileno(self) -> int:
        """The event fd: readable while events (or log lines) are queued,
        for selectors. Do not read it; call :meth:`dispatch_events` when it
        is readable."""
        return int(self._fd)

    def room_fileno(self) -> int:
        """The room fd: readable (level-triggered) while a publish would not
        be refused for lack of room, i.e. while no client is stalled in
        block mode (see :meth:`publish_async`). For custom loops; do not
        read it."""
        return int(self._room_fd)

    @property
    def logs_dropped(self) -> int:
        """Core log lines dropped because ``log_queue`` was full, since the
        server was made."""
        return int(lib.wsn_server_logs_dropped(self._srv))

    def __repr__(self) -> str:
        state = ("stopped" if self.stopped else
                 "running" if self._started else "new")
        return f"<wsnotify.Server {self.host}:{self.port} {state}>"

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> "Server":
        """Binds and starts the I/O thread; returns once listening.

        Raises :class:`ListenError` (an OSError) when the address cannot be
        bound or a TLS file (``tls_cert``, ``tls_key``, ``tls_ca``) cannot
        be read or is not right, :class:`StateError` when already
        started."""
        if self._option_values.get("authenticate") and self._on_upgrade is None:
            raise make_error(lib.WSN_EINVAL, "start()",
                             "authenticate=True needs an on_upgrade handler "
                             "(set it before start())")
        rc = lib.wsn_server_start(self._srv)
        if rc != 0:
            detail = self._last_error()
            if rc == lib.WSN_EIO and not detail.startswith("tls_"):
                raise make_error(rc, f"cannot listen on {self.host}:"
                                 f"{self._option_values['port']}", detail)
            raise make_error(rc, "start()", detail)
        self._started = True
        return self

    def shutdown(self, timeout: Optional[Duration] = None) -> bool:
        """Graceful shutdown: stops accepting, delivers what was accepted
        (queued messages, pending batches), closes every client with 1001
        "server shutdown" and stops.

        Waits at most ``timeout`` (seconds or timedelta; default the
        ``write_wait`` option), then cuts whatever is left. Returns True
        when every client closed in time, False when some had to be cut.
        Calling it again, or before start(), is fine. When no thread is
        serving events, the disconnect handlers still queued run on the
        calling thread before it returns."""
        clean = self._shutdown_core(timeout)
        if self._started and self._drainer is None:
            self._drain_until_stopped()
        self._drain_logs()
        return clean

    def reload_tls(self) -> None:
        """Reads the ``tls_cert`` and ``tls_key`` files again and serves the
        new certificate to connections made from now on; open connections
        keep theirs and stay open. Returns once the server switched.

        Raises :class:`ListenError` (WSN_EIO) naming the file and why when
        the files cannot be read or do not hold a certificate and its key
        (the previous certificate stays), :class:`InvalidArgumentError`
        without TLS, :class:`ServerClosedError` when not running. The files
        are read on the server's I/O thread; this thread waits for it
        (:meth:`reload_tls_async` waits off the event loop)."""
        rc = lib.wsn_server_reload_tls(self._srv)
        check(rc, "reload_tls()", self._last_error() if rc in (
            lib.WSN_EINVAL, lib.WSN_EIO, lib.WSN_EUNSUPPORTED) else None)

    def _shutdown_core(self, timeout: Optional[Duration]) -> bool:
        if timeout is None:
            ms = int(self._option_values["write_wait"].total_seconds() * 1000)
        else:
            ms = duration_ms(timeout, "timeout")
            if ms < 0:
                raise ValueError("timeout must not be negative")
        rc = lib.wsn_server_shutdown(self._srv, ms)
        if rc == lib.WSN_ETIMEDOUT:
            log.warning("wsnotify: shutdown timed out; remaining clients "
                        "were cut")
            return False
        check(rc, "shutdown()")
        return True

    def close(self, timeout: Optional[Duration] = None) -> bool:
        """Same as :meth:`shutdown`."""
        return self.shutdown(timeout)

    def __enter__(self) -> "Server":
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    # -- handlers -------------------------------------------------------------

    def set_message_handler(self, fn: Optional[MessageHandler]) -> None:
        """``fn(client, message)`` for every message a client sends."""
        self._on_message = fn

    def set_connect_handler(self, fn: Optional[ClientHandler]) -> None:
        """``fn(client)`` once per connection, after the upgrade."""
        self._on_connect = fn

    def set_disconnect_handler(self, fn: Optional[ClientHandler]) -> None:
        """``fn(client)`` once per connection, after its last message and
        after it has left every channel."""
        self._on_disconnect = fn

    def set_broker_handler(self, fn: Optional[Callable[[str, str], Any]]) -> None:
        """``fn(state, reason)`` each time the broker's state changes
        (``"up"``, ``"down"``, ``"connecting"``; reason ``""`` when up).
        Only servers with ``broker=`` have one."""
        self._on_broker = fn

    def on_broker(self, fn: F) -> F:
        """Decorator form of :meth:`set_broker_handler`."""
        self.set_broker_handler(fn)
        return fn

    def set_upgrade_handler(self, fn: Optional[Callable[[UpgradeRequest], Any]]) -> None:
        """``fn(request)`` for every WebSocket upgrade, with
        ``authenticate=True``: it returns :class:`Accept`, :class:`Reject`,
        True or False, or an awaitable of one (served by asyncio), or
        returns None and answers with ``request.accept()`` /
        ``request.reject()`` later, from any thread. A handler that raises rejects with 500. Unanswered
        within ``auth_timeout``, the upgrade gets 503."""
        self._on_upgrade = fn

    def on_upgrade(self, fn: F) -> F:
        """Decorator form of :meth:`set_upgrade_handler`."""
        self.set_upgrade_handler(fn)
        return fn

    def accept_upgrade(self, upgrade_id: int,
                       metadata: Optional[Mapping[str, Any]] = None,
                       channels: Iterable[str] = (),
                       expires_at: Optional[When] = None) -> None:
        """Lets a waiting upgrade proceed (see :class:`Accept`). Raises
        ClientGoneError when it waits no more (answered or timed out)."""
        if isinstance(channels, str):
            raise TypeError("channels is an iterable of names, not one str")
        # cffi keeps each string alive as long as the list holds it
        names = [ffi.new("char[]", _channel(ch)) for ch in channels]
        arr = ffi.new("char *[]", names) if names else ffi.NULL
        rc = lib.wsn_server_accept_upgrade(
            self._srv, upgrade_id, metadata_json(metadata) or ffi.NULL,
            ffi.cast("const char *const *", arr), len(names), unix_ms(expires_at))
        check(rc, "accept_upgrade()", self._last_error())

    def reject_upgrade(self, upgrade_id: int, status: int = 401, body: str = "") -> None:
        """Refuses a waiting upgrade with an HTTP status (400..599) and a
        body (over TLS: close code 4000 + status)."""
        rc = lib.wsn_server_reject_upgrade(self._srv, upgrade_id, status,
                                           body.encode("utf-8") if body else ffi.NULL)
        check(rc, "reject_upgrade()", self._last_error())

    def broker_state(self) -> Dict[str, Any]:
        """The broker's state: ``state`` ("none" without a broker, "up",
        "down", "connecting"), ``reason``, ``server_id`` and the counters
        ``sent``, ``refused``, ``unconfirmed``, ``received``, ``ignored``,
        ``dropped``, ``reconnects`` (docs/scale-out.md)."""
        info = ffi.new("wsn_broker_info *")
        info.size = ffi.sizeof("wsn_broker_info")
        rc = lib.wsn_server_broker_state(self._srv, info)
        if rc < 0:
            check(rc, "broker_state()")
        out: Dict[str, Any] = {
            "state": _BROKER_STATES.get(info.state, str(info.state)),
            "reason": ffi.string(info.reason).decode("utf-8", "replace"),
            "server_id": ffi.string(info.server_id).decode("utf-8", "replace"),
        }
        for k in ("sent", "refused", "unconfirmed", "received", "ignored",
                  "dropped", "reconnects"):
            out[k] = int(getattr(info, k))
        return out

    def metrics(self) -> Dict[str, Any]:
        """A snapshot of the server's counters and gauges
        (docs/production.md, "Metrics"): one key per field of the C
        ``wsn_metrics`` (``connections``, ``connections_accepted``,
        ``deliveries``, ``queued``, ``publish_refused_again``, ...), ints;
        the by-reason and by-type arrays as dicts keyed by their label
        (``connections_refused["origin"]``,
        ``messages_received["binary"]``), ``reads_paused`` a bool and
        ``broker_state`` a name as in :meth:`broker_state`. Any thread;
        never waits for the I/O thread."""
        m = ffi.new("wsn_metrics *")
        m.size = ffi.sizeof("wsn_metrics")
        check(lib.wsn_server_metrics(self._srv, m), "metrics()")
        out: Dict[str, Any] = {}
        for name in _METRIC_FIELDS:
            value = getattr(m, name)
            labels = _METRIC_LABELS.get(name)
            if labels is not None:
                out[name] = {k: int(value[i]) for i, k in enumerate(labels)}
            else:
                out[name] = int(value)
        out["reads_paused"] = bool(out["reads_paused"])
        out["broker_state"] = _BROKER_STATES.get(out["broker_state"],
                                                 str(out["broker_state"]))
        return out

    def metrics_text(self) -> str:
        """The same snapshot in the Prometheus text exposition format, as
        ``GET /metrics`` serves it (``metrics=True``): for a host that
        serves it on a route of its own."""
        cap = 16384
        n = ffi.new("size_t *")
        while True:
            buf = ffi.new("char[]", cap)
            rc = lib.wsn_server_metrics_text(self._srv, buf, cap, n)
            if rc == 0:
                return ffi.unpack(buf, n[0]).decode("utf-8")
            if rc != lib.WSN_ENOSPC:
                check(rc, "metrics_text()")
            cap = n[0] + 1024

    def on_message(self, fn: F) -> F:
        """Decorator form of :meth:`set_message_handler`."""
        self.set_message_handler(fn)
        return fn

    def on_connect(self, fn: F) -> F:
        """Decorator form of :meth:`set_connect_handler`."""
        self.set_connect_handler(fn)
        return fn

    def on_disconnect(self, fn: F) -> F:
        """Decorator form of :meth:`set_disconnect_handler`."""
        self.set_disconnect_handler(fn)
        return fn

    # -- pub/sub ----------------------------------------------------------------

    def _client_ptr(self, client: Union[Client, str], what: str) -> Any:
        if isinstance(client, Client):
            return client._ptr
        if isinstance(client, str):
            c = self._clients.get(client)
            if c is None:
                raise ClientGoneError(f"{what}: no connected client {client!r}"
                                      " [WSN_EGONE]", lib.WSN_EGONE)
            return c._ptr
        raise TypeError("client must be a Client or a client id, not "
                        f"{type(client).__name__}")

    def subscribe(self, client: Union[Client, str], channel: str) -> None:
        """Adds the client to a channel (twice is a no-op)."""
        what = f"subscribe({channel!r})"
        ch = _channel(channel)
        check(lib.wsn_server_subscribe(self._srv, self._client_ptr(client, what),
                                       ch), what)

    def unsubscribe(self, client: Union[Client, str], channel: str) -> None:
        """Removes the client from a channel (a non-member is a no-op)."""
        what = f"unsubscribe({channel!r})"
        ch = _channel(channel)
        check(lib.wsn_server_unsubscribe(self._srv,
                                         self._client_ptr(client, what), ch),
              what)

    def publish(self, channel: str, message: Any) -> None:
        """Publishes any JSON-serialisable value to the channel's
        subscribers (type json).

        In block mode (the default) a publish waits while a client is
        stalled (its send queue full), up to ``write_wait``, without holding
        the GIL; on an asyncio loop use :meth:`publish_async`, which never
        waits on the loop's thread. With ``nonblocking=True`` it raises
        :class:`NoRoomError` instead of waiting."""
        try:
            ch = _CHANNELS.get(channel) or _channel_fast(channel)
        except TypeError:  # unhashable: _channel() says what is wrong
            ch = _channel(channel)
        # msg.raw forwarded and json.dumps's compact output are JSON the
        # core need not check again; any other RawJSON it validates (with
        # its length given, a NUL is refused as invalid JSON).
        t = type(message)
        if t is _CoreJSON:
            data, flags = message, self._flags_trusted
        elif t is RawJSON or isinstance(message, RawJSON):
            data, flags = message, self._flags
        else:
            data, flags = _dumps(message), self._flags_trusted
        rc = lib.wsnpy_publish(self._srvp, ch, data, len(data), flags)
        if rc:
            check(rc, f"publish({channel!r})")

    def publish_with_type(self, channel: str, message: Any,
                          message_type: Union[MessageType, str] = MessageType.JSON,
                          message_id: str = "", reply_to_id: str = "") -> None:
        """Publishes with an explicit type: JSON (any JSON-serialisable
        value), TEXT (str) or BINARY (bytes-like), and optional ids."""
        what = f"publish_with_type({channel!r})"
        check(lib.wsn_server_publish_ex(*self._publish_args(
            what, None, channel, message, message_type, message_id,
            reply_to_id), self._flags), what)

    def publish_to_client(self, client: Union[Client, str], channel: str,
                          message: Any,
                          message_type: Union[MessageType, str] = MessageType.JSON,
                          message_id: str = "", reply_to_id: str = "") -> None:
        """Sends one message to one client (channel may be "" here).
        Raises ClientGoneError once the client has gone."""
        what = f"publish_to_client({channel!r})"
        check(lib.wsn_server_publish_ex(*self._publish_args(
            what, client, channel, message, message_type, message_id,
            reply_to_id), self._flags), what)

    def publish_to_client_id(self, client_id: str, channel: str, message: Any,
                             message_type: Union[MessageType, str] = MessageType.JSON,
                             message_id: str = "", reply_to_id: str = "") -> None:
        """Sends one message to the client with this id on any server of the
        cluster (with ``broker=``; else on this server). Raises
        ClientGoneError for a gone client of this server, BrokerError when
        the id is another server's and the broker is down."""
        what = f"publish_to_client_id({client_id!r})"
        if not isinstance(client_id, str) or not client_id:
            raise InvalidArgumentError(f"{what}: a client id is a non-empty str")
        ch = _channel(channel, allow_empty=True)
        mt = _message_type(message_type)
        data = _payload(message, mt)
        check(lib.wsn_server_publish_to_client_id(
            self._srv, client_id.encode("utf-8"), ch, mt.c_value,
            ffi.from_buffer(data), len(data), _opt_id(message_id, "message_id"),
            _opt_id(reply_to_id, "reply_to_id")), what)

    def send_raw(self, client: Union[Client, str],
                 data: Union[str, bytes, bytearray, memoryview],
                 message_type: Union[MessageType, str, None] = None) -> None:
        """Sends one frame to one client as it is, without the envelope
        (for own protocols with ``raw_incoming=True``): a str goes as a text
        frame, bytes as a binary frame, unless message_type says otherwise
        (TEXT or BINARY)."""
        what = "send_raw()"
        check(lib.wsn_server_send_raw_ex(
            *self._raw_args(what, client, data, message_type), self._flags),
            what)

    def _publish_args(self, what: str, client: Union[Client, str, None],
                      channel: str, message: Any,
                      message_type: Union[MessageType, str],
                      message_id: str, reply_to_id: str) -> tuple:
        """The arguments of wsn_server_publish_ex but its flags (client None:
        to the channel). They hold the payload alive while a publish_async
        waits for room."""
        ch = _channel(channel, allow_empty=client is not None)
        mt = _message_type(message_type)
        data = _payload(message, mt)
        cp = ffi.NULL if client is None else self._client_ptr(client, what)
        return (self._srv, cp, ch, mt.c_value, ffi.from_buffer(data),
                len(data), _opt_id(message_id, "message_id"),
                _opt_id(reply_to_id, "reply_to_id"))

    def _raw_args(self, what: str, client: Union[Client, str],
                  data: Union[str, bytes, bytearray, memoryview],
                  message_type: Union[MessageType, str, None]) -> tuple:
        if message_type is None:
            mt = MessageType.TEXT if isinstance(data, str) else MessageType.BINARY
        else:
            mt = _message_type(message_type)
        if mt is MessageType.JSON:
            raise ValueError("send_raw sends TEXT or BINARY frames, not JSON")
        payload = _payload(data, mt)
        cp = self._client_ptr(client, what)
        return (self._srv, cp, mt.c_value, ffi.from_buffer(payload),
                len(payload))

    # -- batching ---------------------------------------------------------------

    def publish_wait(self, channel: str, message: Any, ident: int, name: str,
                     ttl: Duration) -> None:
        """Adds a JSON value to the batch of (channel, ident). ttl after the
        batch's first message the channel gets one message
        ``{"messages": [...], "name": name}`` (duplicates kept once). The
        first call for a key fixes its name, type and ttl."""
        what = f"publish_wait({channel!r}, ident={ident!r})"
        check(lib.wsn_server_publish_wait_ex(*self._batch_args(
            channel, _dumps(message), MessageType.JSON, ident, name, ttl),
            self._flags), what)

    def publish_wait_with_type(self, channel: str, message: Any,
                               message_type: Union[MessageType, str],
                               ident: int, name: str, ttl: Duration) -> None:
        """publish_wait with an explicit type (BINARY messages are base64
        strings in the batch's JSON)."""
        what = f"publish_wait_with_type({channel!r}, ident={ident!r})"
        mt = _message_type(message_type)
        check(lib.wsn_server_publish_wait_ex(*self._batch_args(
            channel, _payload(message, mt), mt, ident, name, ttl),
            self._flags), what)

    def publish_wait_string(self, channel: str, text: str, ident: int,
                            name: str, ttl: Duration) -> None:
        """Batches text: the channel gets one text message
        ``name + "\\n\\n" + "\\n".join(texts)``."""
        what = f"publish_wait_string({channel!r}, ident={ident!r})"
        check(lib.wsn_server_publish_wait_ex(*self._batch_args(
            channel, _cstr(text, "text"), MessageType.TEXT, ident, name, ttl),
            self._flags), what)

    def _batch_args(self, channel: str, data: bytes, mt: MessageType,
                    ident: int, name: str, ttl: Duration) -> tuple:
        """The arguments of wsn_server_publish_wait_ex but its flags."""
        ch = _channel(channel)
        return (self._srv, ch, mt.c_value, ffi.from_buffer(data), len(data),
                _ident(ident), _cstr(name, "name"), _ttl_ms(ttl))

    # -- publishing from asyncio ------------------------------------------------
    #
    # Each publish kind has an async twin that never waits on the loop's
    # thread: the C call is made with WSN_PUBLISH_NONBLOCK, and where it
    # would have waited for room (block mode, a stalled client) it returns
    # WSN_EAGAIN with nothing queued; the coroutine then awaits the room fd
    # (add_reader) and tries again. Meanwhile the loop serves everything
    # else. Results and errors are those of the blocking call.

    async def publish_async(self, channel: str, message: Any) -> None:
        """:meth:`publish` for asyncio: returns once the message is accepted
        for delivery, waiting for room without blocking the loop."""
        what = f"publish_async({channel!r})"
        data = _dumps(message)
        ch = _channel(channel)
        await self._nonblock(what, lib.wsn_server_publish_ex, self._srv,
                             ffi.NULL, ch, lib.WSN_TYPE_JSON,
                             ffi.from_buffer(data), len(data), ffi.NULL,
                             ffi.NULL)

    async def publish_with_type_async(
            self, channel: str, message: Any,
            message_type: Union[MessageType, str] = MessageType.JSON,
            message_id: str = "", reply_to_id: str = "") -> None:
        """:meth:`publish_with_type` for asyncio (see :meth:`publish_async`)."""
        what = f"publish_with_type_async({channel!r})"
        await self._nonblock(what, lib.wsn_server_publish_ex,
                             *self._publish_args(what, None, channel, message,
                                                 message_type, message_id,
                                                 reply_to_id))

    async def publish_to_client_async(
            self, client: Union[Client, str], channel: str, message: Any,
            message_type: Union[MessageType, str] = MessageType.JSON,
            message_id: str = "", reply_to_id: str = "") -> None:
        """:meth:`publish_to_client` for asyncio: waits only while that
        client is stalled."""
        what = f"publish_to_client_async({channel!r})"
        await self._nonblock(what, lib.wsn_server_publish_ex,
                             *self._publish_args(what, client, channel,
                                                 message, message_type,
                                                 message_id, reply_to_id))

    async def send_raw_async(
            self, client: Union[Client, str],
            data: Union[str, bytes, bytearray, memoryview],
            message_type: Union[MessageType, str, None] = None) -> None:
        """:meth:`send_raw` for asyncio: waits only while that client is
        stalled."""
        what = "send_raw_async()"
        await self._nonblock(what, lib.wsn_server_send_raw_ex,
                             *self._raw_args(what, client, data, message_type))

    async def publish_wait_async(self, channel: str, message: Any,
                                 ident: int, name: str, ttl: Duration) -> None:
        """:meth:`publish_wait` for asyncio: while a client is stalled the
        message joins no batch until there is room again."""
        what = f"publish_wait_async({channel!r}, ident={ident!r})"
        await self._nonblock(what, lib.wsn_server_publish_wait_ex,
                             *self._batch_args(channel, _dumps(message),
                                               MessageType.JSON, ident, name,
                                               ttl))

    async def publish_wait_with_type_async(
            self, channel: str, message: Any,
            message_type: Union[MessageType, str], ident: int, name: str,
            ttl: Duration) -> None:
        """:meth:`publish_wait_with_type` for asyncio."""
        what = f"publish_wait_with_type_async({channel!r}, ident={ident!r})"
        mt = _message_type(message_type)
        await self._nonblock(what, lib.wsn_server_publish_wait_ex,
                             *self._batch_args(channel, _payload(message, mt),
                                               mt, ident, name, ttl))

    async def publish_wait_string_async(self, channel: str, text: str,
                                        ident: int, name: str,
                                        ttl: Duration) -> None:
        """:meth:`publish_wait_string` for asyncio."""
        what = f"publish_wait_string_async({channel!r}, ident={ident!r})"
        await self._nonblock(what, lib.wsn_server_publish_wait_ex,
                             *self._batch_args(channel, _cstr(text, "text"),
                                               MessageType.TEXT, ident, name,
                                               ttl))

    async def _nonblock(self, what: str, fn: Callable[..., int],
                        *args: Any) -> None:
        """Calls fn(*args, WSN_PUBLISH_NONBLOCK) until it is not refused for
        room, awaiting the room fd in between."""
        while True:
            rc = fn(*args, lib.WSN_PUBLISH_NONBLOCK)
            if rc != lib.WSN_EAGAIN:
                if rc:
                    check(rc, what)
                return
            await self._room()

    async def _room(self) -> None:
        """Returns once the room fd is readable: room for a publish now
        (a readable fd is no reservation: the caller may be refused again).
        The server's stop makes it readable too (the retry then fails)."""
        loop = asyncio.get_running_loop()
        waiters = self._room_waiters.get(loop)
        if waiters is None:
            waiters = self._room_waiters[loop] = []
            loop.add_reader(self._room_fd, self._on_room, loop)
        fut: "asyncio.Future[None]" = loop.create_future()
        waiters.append(fut)
        try:
            await fut
        finally:
            if not fut.done() or fut.cancelled():
                if fut in waiters:
                    waiters.remove(fut)
                if not waiters and self._room_waiters.get(loop) is waiters:
                    del self._room_waiters[loop]
                    loop.remove_reader(self._room_fd)

    def _on_room(self, loop: asyncio.AbstractEventLoop) -> None:
        # Wakes every waiter in the order they came (level-triggered: those
        # refused again register anew).
        loop.remove_reader(self._room_fd)
        for fut in self._room_waiters.pop(loop, []):
            if not fut.done():
                fut.set_result(None)

    def cancel_pending_messages(self, channel: str, ident: int) -> None:
        """Drops the pending batch of (channel, ident) undelivered."""
        what = f"cancel_pending_messages({channel!r}, ident={ident!r})"
        ch = _channel(channel)
        check(lib.wsn_server_cancel_pending_messages(self._srv, ch,
                                                     _ident(ident)), what)

    def pending_batches(self) -> int:
        """The number of batches waiting for their ttl."""
        return check(lib.wsn_server_pending_batches(self._srv),
                     "pending_batches()")

    # -- monitoring -------------------------------------------------------------

    def get_connected_clients(self) -> int:
        """The number of connected WebSocket clients."""
        return check(lib.wsn_server_connected_clients(self._srv),
                     "get_connected_clients()")

    def get_client_list(self) -> List[str]:
        """A snapshot of the connected client ids."""
        out = ffi.new("wsn_strlist **")
        check(lib.wsn_server_client_list(self._srv, out), "get_client_list()")
        return take_strlist(out)

    def get_client(self, client_id: str) -> Optional[Client]:
        """The Client object of a connected client whose connect event was
        served, else None."""
        return self._clients.get(client_id)

    # -- events -------------------------------------------------------------------

    def dispatch_events(self, timeout: Optional[Duration] = 0) -> int:
        """Waits up to timeout (None: forever) for events, then runs the
        handlers of every queued event on the calling thread. Returns how
        many events were handled. For custom loops; see also fileno()."""
        if timeout is None:
            ms = -1
        else:
            ms = max(0, duration_ms(timeout, "timeout"))
        if self._stopped.is_set():
            return 0
        rc = self._wait(ms)
        if rc < 0 and rc != lib.WSN_ECLOSED:
            check(rc, "dispatch_events()")
        n = self._drain()
        self._drain_logs()
        return n

    def serve_forever(self) -> None:
        """Serves events on the calling thread until the server stops.

        Starts the server if needed. Ctrl-C (KeyboardInterrupt) shuts down
        gracefully, runs the remaining disconnect handlers and returns; a
        second Ctrl-C during that interrupts it."""
        if not self._started:
            self.start()
        self._enter_drainer()
        interrupted = False
        try:
            while not self._stopped.is_set():
                try:
                    rc = self._wait(_WAIT_SLICE_MS)
                    if rc == lib.WSN_ECLOSED:
                        self._stopped.set()
                        break
                    check(rc, "serve_forever()")
                    if rc > 0:
                        self._drain()
                    self._drain_logs()
                except KeyboardInterrupt:
                    if interrupted:
                        raise
                    interrupted = True
                    log.info("wsnotify: interrupted, shutting down")
                    self.shutdown()
        finally:
            self._exit_drainer()
            self._drain_logs()

    # asyncio ----------------------------------------------------------------

    async def serve(self) -> None:
        """Serves events on the running asyncio loop until the server stops
        (``add_reader`` on the event fd). Starts the server if needed.
        Cancelling it shuts the server down gracefully, then re-raises."""
        self._attach(asyncio.get_running_loop())
        fut = self._stop_future
        assert fut is not None
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            await self.shutdown_async()
            raise
        finally:
            await self._detach()

    async def reload_tls_async(self) -> None:
        """:meth:`reload_tls` for asyncio: waits for the core off the loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.reload_tls)

    async def shutdown_async(self, timeout: Optional[Duration] = None) -> bool:
        """:meth:`shutdown` for asyncio: waits for the core off the loop,
        runs the remaining handlers on the loop, and returns once the last
        event was handled."""
        loop = asyncio.get_running_loop()
        clean = await loop.run_in_executor(None, self._shutdown_core, timeout)
        fut = self._stop_future
        if fut is not None and self._loop is loop:
            try:
                await asyncio.wait_for(asyncio.shield(fut), 30.0)
            except asyncio.TimeoutError:  # pragma: no cover - core bug
                log.error("wsnotify: no STOPPED event after shutdown")
        elif self._started and self._drainer is None:
            self._drain_until_stopped()  # nobody serves: run them here
        self._drain_logs()
        return bool(clean)

    async def __aenter__(self) -> "Server":
        self._attach(asyncio.get_running_loop())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.shutdown_async()
        finally:
            await self._detach()

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        if self._loop is not None:
            raise RuntimeError("the server is already served by another "
                               "event loop")
        if not self._started:
            self.start()
        self._enter_drainer()
        self._loop = loop
        self._stop_future = loop.create_future()
        if self._stopped.is_set():
            self._stop_future.set_result(None)
        else:
            loop.add_reader(self._fd, self._on_readable)
            self._on_readable()  # events queued before we attached

    async def _detach(self) -> None:
        loop = self._loop
        if loop is None:
            return
        loop.remove_reader(self._fd)
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=10.0)
            for t in pending:
                t.cancel()
        self._loop = None
        self._stop_future = None
        self._exit_drainer()
        self._drain_logs()

    def _on_readable(self) -> None:
        try:
            self._drain(_DRAIN_BATCH)
        finally:
            # events a raising handler left in the batch: the fd does not
            # show them
            b = self._res.batch
            if b.pos < b.count and self._loop is not None:
                self._loop.call_soon(self._on_readable)
        self._drain_logs()

    # -- internals ------------------------------------------------------------

    def _enter_drainer(self) -> None:
        me = threading.get_ident()
        with self._state_lock:
            if self._drainer is not None and self._drainer != me:
                raise RuntimeError("events of this server are already served "
                                   "by another thread")
            self._drainer = me

    def _exit_drainer(self) -> None:
        with self._state_lock:
            if self._drainer == threading.get_ident():
                self._drainer = None

    def _last_error(self) -> str:
        buf = ffi.new("char[]", _ERRBUF)
        lib.wsn_server_last_error(self._srv, buf, _ERRBUF)
        return ffi.string(buf).decode("utf-8", "replace")

    def _drain_logs(self) -> None:
        res = self._res
        if res.logs is not None and res.srv != ffi.NULL:
            res.logs.drain(res.srv)

    def _drain_until_stopped(self) -> None:
        # After shutdown() nobody serves events: run what is queued, up to
        # STOPPED. Bounded: stop when a slice passes without an event.
        while not self._stopped.is_set():
            rc = self._wait(1000)
            if rc == lib.WSN_ECLOSED:
                self._stopped.set()
                break
            if rc <= 0:
                break
            self._drain()
            self._drain_logs()  # else wait() reports the lines at once again

    def _wait(self, ms: int) -> int:
        """wsn_server_wait, where events already taken but not handled (a
        handler raised through the loop mid-batch) count as ready: the
        event fd no longer shows them."""
        b = self._res.batch
        if b.pos < b.count:
            return 1
        return lib.wsn_server_wait(self._srvp, ms)

    def _drain(self, limit: int = 0) -> int:
        """Takes queued events (all, or up to limit) and runs handlers.

        The per-message path is inlined here (it runs for every message a
        client sends): one record unpacked, slices of the batch's blob, one
        IncomingMessage, the handler. A handler may dispatch again: the
        batch's position lives in the batch, so a nested drain goes on
        where this one stopped, and this one re-reads it."""
        n = 0
        b = self._res.batch
        recbuf = b.recbuf
        by_ptr = self._by_ptr
        with self._dispatch_lock:
            try:
                while not limit or n < limit:
                    i = b.pos
                    if i >= b.count:
                        if not self._take(b, min(limit - n, _BATCH_MAX)
                                          if limit else _BATCH_MAX):
                            break
                        i = 0
                    b.pos = i + 1
                    n += 1
                    (kind, mtype, cptr, choff, chlen, poff, plen, moff, mlen,
                     roff, rlen) = _rec_unpack(recbuf, i * _REC_BYTES)
                    client = by_ptr.get(cptr) if kind == _EV_MESSAGE else None
                    if client is None or poff < 0:
                        # connect, disconnect, stopped; a message too big
                        # for the arena
                        if self._handle_event(b.evs[i], cptr):
                            break
                        continue
                    blob = b.blob
                    mt = _MTYPES[mtype]
                    raw = blob[poff:poff + plen]
                    if mt is _JSON:
                        # From bytes, not from a memoryview of the blob: the
                        # buffer protocol costs more than the second copy
                        # (0.16 against 0.37 us at 64 B, 0.47 / 0.52 at 1 KiB).
                        raw = _new_rawjson(_CoreJSON, raw)
                    msg = IncomingMessage(
                        mt, blob[choff:choff + chlen].decode("utf-8", "replace")
                        if chlen else "", raw if mt is _BINARY else _UNDECODED,
                        blob[moff:moff + mlen].decode("utf-8", "replace")
                        if mlen else "",
                        blob[roff:roff + rlen].decode("utf-8", "replace")
                        if rlen else "", client._id, raw)
                    fn = self._on_message
                    if fn is None:
                        continue
                    try:
                        res = fn(client, msg)
                        if res is not None and inspect.isawaitable(res):
                            self._schedule("message", res)
                    except Exception:
                        log.exception("wsnotify: %s handler %r raised",
                                      "message", fn)
            finally:
                if b.pos >= b.count:
                    b.release()
        return n

    def _take(self, b: _Batch, max_events: int) -> int:
        """Fills b with up to max_events queued events; 0 when none."""
        b.release()
        rc = lib.wsn_server_take_events(self._srvp, b.evs, b.rec, _REC_BYTES,
                                        max_events, b.arena, _ARENA_BYTES,
                                        b.used)
        if rc > 0:
            used = b.used[0]
            b.blob = ffi.unpack(b.arena, used) if used else b""
            b.count = rc
            b.pos = 0
            return rc
        if rc == lib.WSN_ECLOSED:
            self._on_stopped()
        elif rc:
            check(rc, "next_event")
        return 0

    def _handle_event(self, ev: Any, cptr: int) -> bool:
        """Converts one event through wsn_event_get_info (the batch frees
        it later), then runs its handler. Returns True for STOPPED."""
        info = self._ev_info
        check(lib.wsn_event_get_info(ev, info), "event_get_info")
        client: Optional[Client] = None
        msg: Optional[IncomingMessage] = None
        cid = ""
        kind = info.kind
        if kind != lib.WSN_EVENT_STOPPED:
            cid = ffi.string(info.client_id).decode("utf-8", "replace")
            client = self._clients.get(cid)
            if client is None:
                cp = info.client
                if cp != ffi.NULL:
                    client = Client(cp)
                    if kind != lib.WSN_EVENT_DISCONNECT:
                        self._clients[cid] = client
                        self._by_ptr[cptr] = client
            if kind == lib.WSN_EVENT_MESSAGE:
                msg = _message_from_info(info, cid)

        if kind == lib.WSN_EVENT_MESSAGE:
            if client is not None:
                self._run("message", self._on_message, client, msg)
                return False
        elif kind == lib.WSN_EVENT_STOPPED:
            self._on_stopped()
            return True
        elif kind == lib.WSN_EVENT_UPGRADE:
            self._upgrade(ev, info)
            return False
        elif kind == lib.WSN_EVENT_BROKER:
            self._run("broker", self._on_broker,
                      ffi.string(info.channel).decode("utf-8", "replace"),
                      ffi.unpack(ffi.cast("char *", info.payload),
                                 info.payload_len).decode("utf-8", "replace"))
            return False
        if client is None:  # pragma: no cover - the core always gives one
            log.error("wsnotify: event %d without a client", kind)
            return False
        if kind == lib.WSN_EVENT_CONNECT:
            self._run("connect", self._on_connect, client)
        elif kind == lib.WSN_EVENT_DISCONNECT:
            try:
                self._run("disconnect", self._on_disconnect, client)
            finally:
                self._clients.pop(cid, None)
                self._by_ptr.pop(cptr, None)
        return False

    def _upgrade(self, ev: Any, info: Any) -> None:
        req = UpgradeRequest(
            self, int(lib.wsn_event_upgrade_id(ev)),
            ffi.string(info.channel).decode("utf-8", "replace"),
            ffi.string(lib.wsn_event_upgrade_query(ev)).decode("utf-8", "replace"),
            ffi.string(info.reply_to_id).decode("utf-8", "replace"),
            ffi.unpack(ffi.cast("char *", info.payload),
                       info.payload_len).decode("utf-8", "replace"))
        fn = self._on_upgrade
        if fn is None:
            log.error("wsnotify: authenticate=True but no on_upgrade handler: "
                      "upgrade %d refused with 503", req.id)
            self._answer_quietly(req, Reject(503, "no upgrade handler"))
            return
        try:
            res = fn(req)
        except Exception:
            log.exception("wsnotify: upgrade handler %r raised", fn)
            self._answer_quietly(req, Reject(500, "authentication failed"))
            return
        if res is not None and inspect.isawaitable(res):
            async def settle(aw: Awaitable[Any]) -> None:
                try:
                    result = await aw
                except Exception:
                    log.exception("wsnotify: upgrade handler %r raised", fn)
                    result = Reject(500, "authentication failed")
                if result is not None:
                    self._answer_quietly(req, result)
            self._schedule("upgrade", settle(res))
        elif res is not None:  # None: the handler answers later itself
            self._answer_quietly(req, res)

    def _answer_quietly(self, req: UpgradeRequest, result: Any) -> None:
        """A handler's answer; an upgrade that stopped waiting meanwhile
        (its peer left, the timeout) is no error of the handler's."""
        try:
            req.answer(result)
        except ClientGoneError:
            log.debug("wsnotify: upgrade %d stopped waiting before its answer", req.id)
        except (TypeError, ValueError, WsnotifyError) as e:
            log.error("wsnotify: upgrade %d: %s: refused with 500", req.id, e)
            try:
                self.reject_upgrade(req.id, 500, "authentication failed")
            except WsnotifyError:
                pass

    def _run(self, what: str, fn: Optional[Callable[..., Any]],
             *args: Any) -> None:
        if fn is None:
            return
        try:
            res = fn(*args)
            if res is not None and inspect.isawaitable(res):
                self._schedule(what, res)
        except Exception:
            log.exception("wsnotify: %s handler %r raised", what, fn)

    def _schedule(self, what: str, aw: Awaitable[Any]) -> None:
        loop = self._loop
        if loop is None:
            if inspect.iscoroutine(aw):
                aw.close()
            log.error("wsnotify: %s handler returned an awaitable, but the "
                      "server is not served by asyncio (use `await "
                      "server.serve()`); it was not run", what)
            return
        task = asyncio.ensure_future(aw, loop=loop)
        self._tasks.add(task)

        def done(t: "asyncio.Task[Any]") -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                exc = t.exception()
                log.error("wsnotify: %s handler raised", what,
                          exc_info=(type(exc), exc, exc.__traceback__))

        task.add_done_callback(done)

    def _on_stopped(self) -> None:
        self._stopped.set()
        self._clients.clear()
        self._by_ptr.clear()
        fut = self._stop_future
        if fut is not None and not fut.done():
            fut.set_result(None)
        loop = self._loop
        if loop is not None:
            loop.remove_reader(self._fd)
