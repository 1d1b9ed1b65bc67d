/*
 * wsnotify: a real-time WebSocket notification engine.
 *
 * This header is the whole public C API. It is written to be read by FFI
 * parsers too (cffi cdef, LuaJIT ffi.cdef): values are enums, there are no
 * inline functions, no bitfields, no varargs and one public struct layout,
 * wsn_event_info, which only grows at its end and says its size.
 *
 * Sections, in order: export macros, version, error codes, opaque types,
 * lifecycle, options, pub/sub, clients and metadata, events and callbacks,
 * utilities.
 *
 * Threads: unless a block says otherwise, every function may be called from
 * any thread, including from inside a handler running on the I/O thread.
 * Callbacks and where they run: event handlers on the thread that calls
 * wsn_server_dispatch() (or on the I/O thread with
 * WSN_OPT_EVENTS_ON_IO_THREAD); the logger on whichever thread logs,
 * mostly the I/O thread; the origin check on the I/O thread. A host that
 * wants none of its code on the core's threads pulls events and log lines
 * (WSN_OPT_LOG_QUEUE) and uses WSN_OPT_ALLOWED_ORIGINS.
 */
#ifndef WSNOTIFY_H
#define WSNOTIFY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ==== Export and deprecation macros ==================================== */

#ifndef WSN_API
#if defined(__GNUC__) && __GNUC__ >= 4
#define WSN_API __attribute__((visibility("default")))
#else
#define WSN_API
#endif
#endif

#ifndef WSN_DEPRECATED
#if defined(__GNUC__)
#define WSN_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define WSN_DEPRECATED(msg)
#endif
#endif

/* ==== Version ========================================================== */

#define WSN_VERSION_MAJOR 0
#define WSN_VERSION_MINOR 3
#define WSN_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH */
#define WSN_VERSION_NUMBER                                                    \
    (WSN_VERSION_MAJOR * 10000 + WSN_VERSION_MINOR * 100 + WSN_VERSION_PATCH)

/* The version of the library actually loaded, as WSN_VERSION_NUMBER.
 * Bindings refuse a library whose major version (result / 10000) differs
 * from the one they were written for. Since 0.1. */
WSN_API int wsn_version(void);

/* The same as a static "MAJOR.MINOR.PATCH" string. Since 0.1. */
WSN_API const char *wsn_version_string(void);

/* ==== Error codes ====================================================== */

/* Every fallible call returns 0 or one of these negative codes. Codes are
 * never renumbered; a retired code keeps its number. */
typedef enum wsn_status {
    WSN_OK = 0,
    WSN_EINVAL = -1,        /* an argument is invalid (NULL, empty, bad UTF-8) */
    WSN_ENOMEM = -2,        /* out of memory */
    WSN_ESTATE = -3,        /* wrong state: start twice, free while running */
    WSN_ECLOSED = -4,       /* the server is shutting down or stopped */
    WSN_EGONE = -5,         /* the client has disconnected */
    WSN_EBACKPRESSURE = -6, /* a client's send queue is full */
    WSN_ETIMEDOUT = -7,     /* waited the configured time, gave up */
    WSN_ENOTFOUND = -8,     /* no such metadata key or option name */
    WSN_ETYPE = -9,         /* value has another type than asked for */
    WSN_ERANGE = -10,       /* option value out of its allowed range */
    WSN_EJSON = -11,        /* text is not valid JSON */
    WSN_ELIMIT = -12,       /* a configured size limit would be exceeded */
    WSN_EIO = -13,          /* listening failed (address in use, ...) */
    WSN_ENOSPC = -14,       /* caller's buffer too small; size reported */
    WSN_EAGAIN = -15,       /* nothing available now; try again later */
    WSN_EUNSUPPORTED = -16, /* not supported by this build or the
                               libwebsockets it runs on (since 0.2) */
    WSN_EBROKER = -17       /* the broker (WSN_OPT_BROKER) is down: the
                               publish reached this server's subscribers
                               only (since 0.3) */
} wsn_status;

/* Static English text for a code; never NULL. Since 0.1. */
WSN_API const char *wsn_strerror(int code);

/* The enum name of a code ("WSN_EINVAL"); never NULL. Since 0.1. */
WSN_API const char *wsn_err_name(int code);

/* ==== Opaque types ===================================================== */

typedef struct wsn_options wsn_options; /* configuration, copied by new() */
typedef struct wsn_server wsn_server;   /* one listening engine */
typedef struct wsn_client wsn_client;   /* one WebSocket connection */
typedef struct wsn_event wsn_event;     /* connect / message / disconnect */
typedef struct wsn_strlist wsn_strlist; /* a snapshot list of strings */

/* What a payload is. The numbers are the wire protocol's "type" strings. */
typedef enum wsn_message_type {
    WSN_TYPE_JSON = 0,  /* "json": the payload is JSON text */
    WSN_TYPE_TEXT = 1,  /* "text": the payload is UTF-8 text */
    WSN_TYPE_BINARY = 2 /* "binary": the payload is raw bytes */
} wsn_message_type;

/* ==== Options ========================================================== */

/* Stable option ids. New options get new numbers; none is ever reused. */
typedef enum wsn_option {
    WSN_OPT_HOST = 1,                 /* string, listen address, "127.0.0.1" */
    WSN_OPT_PORT = 2,                 /* int 0..65535, 8080; 0 = any free port */
    WSN_OPT_PATH = 3,                 /* string, WebSocket path, "/ws" */
    WSN_OPT_STATIC_DIR = 4,           /* string, files served at /, "" = none */
    WSN_OPT_WRITE_WAIT = 5,           /* duration ms, 10000: a publisher's
                                         wait for room (block mode), and the
                                         most a queued message may wait to
                                         be written before its client is
                                         closed (1001, both modes) */
    WSN_OPT_PONG_WAIT = 6,            /* duration ms, 60000 */
    WSN_OPT_PING_PERIOD = 7,          /* duration ms, 54000; < pong_wait */
    WSN_OPT_READ_LIMIT = 8,           /* int bytes, 1 MiB; largest message in */
    WSN_OPT_COMPRESSION = 9,          /* bool, 0: permessage-deflate. Refused:
                                         wsn_server_new() returns
                                         WSN_EUNSUPPORTED for 1, because
                                         libwebsockets' permessage-deflate
                                         lets one client crash the server
                                         or read another's data
                                         (docs/api.md, "Compression") */
    WSN_OPT_SEND_BUFFER = 10,         /* int messages, 256; queue per client */
    WSN_OPT_DROP_ON_BACKPRESSURE = 11, /* bool, 0 = block the publisher */
    WSN_OPT_BACKPRESSURE_REASON = 12, /* string, "going away: backpressure" */
    WSN_OPT_CLOSE_GRACE = 13,         /* duration ms, 200 */
    WSN_OPT_ALLOWED_ORIGINS = 14,     /* string, "" = same-origin; "*" = any;
                                         else comma-separated exact origins */
    WSN_OPT_EVENTS_ON_IO_THREAD = 15, /* bool, 0: handlers run on I/O thread */
    WSN_OPT_EVENT_QUEUE_LIMIT = 16,   /* int, 4096 queued message events
                                         before reading from clients pauses */
    WSN_OPT_MAX_CHANNEL_NAME = 17,    /* int bytes, 256 */
    WSN_OPT_MAX_METADATA_BYTES = 18,  /* int bytes per client, 65536 */
    WSN_OPT_MAX_CLIENTS = 19,         /* int, 0: upgrades beyond it get
                                         503. 0 = derived at start from the
                                         soft RLIMIT_NOFILE, minus a reserve
                                         (docs/api.md); before 0.3, 0 meant
                                         no bound */
    WSN_OPT_MAX_PENDING_BATCHES = 20, /* int, 10000 (batching) */
    WSN_OPT_MAX_BATCH_MESSAGES = 21,  /* int, 10000 per batch (batching) */
    WSN_OPT_MAX_BATCH_BYTES = 22,     /* int, 1 MiB per batch (batching) */
    WSN_OPT_LOG_LEVEL = 23,           /* int 0..4, 2: none..debug (wsn_log_level) */
    WSN_OPT_RAW_INCOMING = 24,        /* bool, 0: text frames reach the handler
                                         as raw WSN_TYPE_TEXT, not parsed as
                                         envelopes (own protocols, echo tests) */
    WSN_OPT_COALESCE_WINDOW = 25,     /* duration ms, 0: while the server is
                                         busy writing, write requests wait up
                                         to this long for one flush, so frames
                                         of several publishes share a send
                                         (big fan-outs gain; small ones lose:
                                         docs/benchmarks.md); 0 = never wait */
    WSN_OPT_READ_BUFFER = 26,         /* int bytes 128..65536, 65536: read
                                         from one client per loop pass, and
                                         the receive buffer each connection
                                         reserves (in pages of its own that
                                         go back to the system while the
                                         client is quiet, so its size costs
                                         no idle memory); bigger takes a
                                         busy publishing client's messages
                                         in fewer passes, so more fan-out
                                         shares a send */
    WSN_OPT_LOG_QUEUE = 27,           /* int lines 0..1000000, 0: with no
                                         logger set, > 0 queues log lines
                                         (at most this many) for the host to
                                         take with wsn_server_next_log();
                                         0 = lines are discarded. Since 0.2 */
    WSN_OPT_RX_BUFFER_POOL = 28,      /* bool, 1: receive buffers in page
                                         slots whose pages go back to the
                                         system while a client is quiet; it
                                         hooks lws's process-wide allocator
                                         (docs/architecture.md). 0 = lws's
                                         own buffers from malloc (measured:
                                         +4 KiB resident per idle client at
                                         the default read_buffer). Since 0.2 */
    WSN_OPT_MALLOC_TRIM = 29,         /* bool, 1: once clients have left,
                                         the I/O thread hands free heap
                                         pages back to the system
                                         (malloc_trim: process-wide, about
                                         a millisecond). 0 = never; the
                                         heap stays at its peak. Since 0.2 */
    WSN_OPT_SEND_BUFFER_BYTES = 30,   /* int bytes 0..2^40, 1 MiB: a
                                         client's queue is also full when
                                         the frames in it reach this many
                                         bytes (one bigger frame still goes
                                         to an empty queue); 0 = counted in
                                         messages only. Since 0.3 */
    WSN_OPT_MAX_SUBSCRIPTIONS = 31,   /* int 0..10000000, 1024: channels
                                         one client may be in;
                                         wsn_server_subscribe() beyond it
                                         returns WSN_ELIMIT. 0 = no bound.
                                         Since 0.3 */
    WSN_OPT_EVENT_QUEUE_BYTES = 32,   /* int bytes 0..2^40, 16 MiB: reading
                                         from clients also pauses while
                                         the queued message events hold
                                         this many bytes (resumes at half);
                                         0 = counted in events only.
                                         Since 0.3 */
    WSN_OPT_MAX_PARTIAL_BYTES = 33,   /* int bytes 0..2^40, 64 MiB: what
                                         all clients' messages still being
                                         reassembled may hold together; a
                                         client whose message would go
                                         beyond is closed with 1013 (try
                                         again later). 0 = no bound.
                                         Since 0.3 */
    WSN_OPT_CLIENT_EVENT_QUEUE = 34,  /* int 1..2^24, 64: message events of
                                         one client waiting for the host
                                         before reading from that client
                                         alone pauses (resumes at half), so
                                         one fast sender cannot hold the
                                         queue ahead of everyone else.
                                         Since 0.3 */
    WSN_OPT_CLIENT_EVENT_QUEUE_BYTES = 35, /* int bytes 0..2^40, 1 MiB: the
                                         same share counted in bytes;
                                         0 = counted in events only.
                                         Since 0.3 */
    WSN_OPT_BROKER = 36,              /* string, "": where publishes meet
                                         the other servers of a cluster:
                                         redis://[:password@]host[:port][/db]
                                         or unix:/path/to/redis.sock
                                         (docs/scale-out.md). "" = this
                                         process only. Since 0.3 */
    WSN_OPT_BROKER_SHARDED = 37,      /* bool, 0: SPUBLISH/SSUBSCRIBE
                                         (Redis 7 sharded pub/sub) instead
                                         of PUBLISH/SUBSCRIBE. Since 0.3 */
    WSN_OPT_AUTH_TIMEOUT = 38,        /* duration ms 1..3600000, 10000: with
                                         WSN_OPT_AUTHENTICATE, the most a
                                         connection may take to send its
                                         request and the host to answer it;
                                         then 408 (request unfinished) or
                                         503 (host silent). Since 0.3 */
    WSN_OPT_AUTH_QUEUE = 39,          /* int 1..1000000, 1024: upgrades
                                         waiting for the host's answer at
                                         once; beyond, 503 at once.
                                         Since 0.3 */
    WSN_OPT_MAX_CLIENTS_PER_ADDRESS = 40, /* int 0..1000000, 0: connections
                                         (WebSocket or HTTP) one remote
                                         address may hold; beyond, closed
                                         at accept. 0 = no bound (behind a
                                         proxy every client has its
                                         address). Since 0.3 */
    WSN_OPT_AUTHENTICATE = 41,        /* bool, 0: every upgrade waits for
                                         the host's answer to a
                                         WSN_EVENT_UPGRADE
                                         (wsn_server_accept_upgrade /
                                         wsn_server_reject_upgrade).
                                         Since 0.3 */
    WSN_OPT_TLS_KEY = 42,             /* string, "": PEM private key file of
                                         WSN_OPT_TLS_CERT. Since 0.3 */
    WSN_OPT_TLS_CA = 43,              /* string, "": PEM file of the CAs
                                         whose client certificates are
                                         accepted (WSN_OPT_TLS_CLIENT_CERT).
                                         Since 0.3 */
    WSN_OPT_TLS_CLIENT_CERT = 44,     /* int 0..2, 0: client certificates:
                                         0 = not asked for, 1 = requested
                                         (a client without one is let in,
                                         one with a certificate not from
                                         WSN_OPT_TLS_CA is refused),
                                         2 = required. 1 and 2 need
                                         WSN_OPT_TLS_CA. Since 0.3 */
    WSN_OPT_CLIENT_RATE = 45,         /* int messages/s 0..1000000, 100: the
                                         messages one client may send per
                                         second, sustained (token bucket);
                                         beyond it the client is closed
                                         with 1008 "message rate exceeded".
                                         0 = no limit. Since 0.3 */
    WSN_OPT_CLIENT_BURST = 46,        /* int messages 1..1000000, 200: the
                                         bucket's size: what a client that
                                         was quiet may send at once.
                                         Since 0.3 */
    WSN_OPT_METRICS = 47,             /* bool, 0: serve GET /metrics, the
                                         Prometheus text of
                                         wsn_server_metrics_text().
                                         Since 0.3 */
    WSN_OPT_METRICS_TOKEN = 48,       /* string, "": when set, GET /metrics
                                         without "Authorization: Bearer
                                         <token>" gets 401. "" = open to
                                         whoever reaches the port.
                                         Since 0.3 */
    WSN_OPT_TLS_CERT = 49,            /* string, "": PEM certificate (chain)
                                         file; with WSN_OPT_TLS_KEY the
                                         server speaks only TLS (wss://,
                                         https://). Both or neither. (41,
                                         planned for it, went to
                                         WSN_OPT_AUTHENTICATE.) Since 0.3 */
    WSN_OPT_EVENT_SOCKET = 50,        /* string, "": a unix socket path the
                                         server listens on while it runs;
                                         each connection gets one byte
                                         whenever wsn_server_event_fd()
                                         turns readable, for hosts that
                                         cannot wait on an fd but can on
                                         a socket (nginx cosockets).
                                         See "Event socket". Since 0.3 */
    WSN_OPT_HANDOFF_SOCKET = 51       /* string, "": a unix datagram socket
                                         path the server listens on while
                                         it runs, taking connections that
                                         another process accepted and
                                         read the request head of
                                         (wsn_handoff()). See "Handoff".
                                         Since 0.3 */
} wsn_option;

/* How an option's value is given. Durations are integer milliseconds;
 * bindings convert seconds or timedelta with this type in hand. */
typedef enum wsn_option_type {
    WSN_OPTTYPE_INT = 1,
    WSN_OPTTYPE_BOOL = 2,
    WSN_OPTTYPE_STRING = 3,
    WSN_OPTTYPE_DURATION_MS = 4
} wsn_option_type;

typedef enum wsn_log_level {
    WSN_LOG_NONE = 0,
    WSN_LOG_ERROR = 1,
    WSN_LOG_WARN = 2,
    WSN_LOG_INFO = 3,
    WSN_LOG_DEBUG = 4
} wsn_log_level;

/* A fresh options object holding every default. NULL only when out of
 * memory. Owned by the caller: wsn_options_free(). Not thread-safe: use one
 * object from one thread at a time. Since 0.1. */
WSN_API wsn_options *wsn_options_new(void);

/* Frees an options object; NULL is fine. Since 0.1. */
WSN_API void wsn_options_free(wsn_options *opts);

/* Looks an option up by its snake_case name ("write_wait", "port"), so that
 * bindings map keyword arguments without a table of their own. Either out
 * pointer may be NULL. Returns 0 or WSN_ENOTFOUND. Since 0.1. */
WSN_API int wsn_option_by_name(const char *name, wsn_option *id,
                               wsn_option_type *type);

/* The name and type of an id: returns NULL for an unknown id. Ids may
 * have gaps (numbers given out to options that a build does not have yet):
 * to list them all, iterate from 1 and stop after 32 unknown ids in a row.
 * Since 0.1. */
WSN_API const char *wsn_option_name(wsn_option id);
WSN_API int wsn_option_type_of(wsn_option id, wsn_option_type *type);

/* Inclusive bounds of an int, bool or duration option. Since 0.1. */
WSN_API int wsn_option_bounds(wsn_option id, int64_t *min, int64_t *max);

/* Typed setters. set_int serves int, bool (0/1) and duration (ms) options;
 * set_string copies the string. Returns 0, WSN_EINVAL (NULL or an id of
 * another type: WSN_ETYPE), WSN_ERANGE (out of bounds), WSN_ENOTFOUND
 * (unknown id). Relations between options (ping_period < pong_wait) are
 * checked by wsn_server_new(). Since 0.1. */
WSN_API int wsn_options_set_int(wsn_options *opts, wsn_option id,
                                int64_t value);
WSN_API int wsn_options_set_string(wsn_options *opts, wsn_option id,
                                   const char *value);

/* Typed getters; get_string returns a pointer owned by opts, valid until
 * it is changed or freed. Since 0.1. */
WSN_API int wsn_options_get_int(const wsn_options *opts, wsn_option id,
                                int64_t *value);
WSN_API int wsn_options_get_string(const wsn_options *opts, wsn_option id,
                                   const char **value);

/* Log lines. Called on whichever thread logs: mostly the I/O thread, and
 * any thread calling into the server; never concurrently for one server.
 * msg is valid during the call only. A host that must not run code on the
 * core's threads sets WSN_OPT_LOG_QUEUE instead and takes the lines with
 * wsn_server_next_log(). */
typedef void (*wsn_log_fn)(void *user, wsn_log_level level, const char *msg);

/* Routes the server's log lines (at or above WSN_OPT_LOG_LEVEL) to fn.
 * Without a logger nothing is printed (and, with WSN_OPT_LOG_QUEUE > 0,
 * lines are queued instead). A logger takes precedence over the queue.
 * Since 0.1. */
WSN_API int wsn_options_set_logger(wsn_options *opts, wsn_log_fn fn,
                                   void *user);

/* Decides whether a WebSocket upgrade from `origin` may proceed; `origin`
 * is NULL when the request has none, `host` is the Host header (may be
 * NULL). Return nonzero to allow. Runs on the I/O thread during the
 * handshake: it must be quick and must not call back into the server.
 * Replaces the default same-origin check and WSN_OPT_ALLOWED_ORIGINS.
 * Since 0.1. */
typedef int (*wsn_origin_fn)(void *user, const char *origin,
                             const char *host);
WSN_API int wsn_options_set_origin_check(wsn_options *opts, wsn_origin_fn fn,
                                         void *user);

/* ==== Lifecycle ======================================================== */

/* Creates a server from a copy of opts (NULL = all defaults). Validates the
 * options together (ping_period must be below pong_wait). On failure returns
 * the code, sets *out to NULL and writes the reason into errbuf (may be
 * NULL). Nothing listens before wsn_server_start(). Since 0.1. */
WSN_API int wsn_server_new(const wsn_options *opts, wsn_server **out,
                           char *errbuf, size_t errbuf_len);

/* Binds and starts the I/O thread; returns once listening (0) or once
 * listening failed (WSN_EIO, see wsn_server_last_error). A server starts
 * once: later calls return WSN_ESTATE. Since 0.1. */
WSN_API int wsn_server_start(wsn_server *srv);

/* The port actually bound (useful with port 0); -1 before start. */
WSN_API int wsn_server_port(const wsn_server *srv);

/* Graceful shutdown: stops accepting upgrades, delivers what was accepted
 * (queued messages, pending batches), closes every client with 1001
 * "server shutdown", and stops the I/O thread. Waits at most timeout_ms,
 * then closes whatever is left without a close frame. Returns 0, or
 * WSN_ETIMEDOUT when clients had to be cut. Every later call that needs a
 * running server returns WSN_ECLOSED. Called from the I/O thread (from a
 * handler) it only begins the shutdown and returns 0. Calling it again, or
 * on a server never started, is fine. Since 0.1. */
WSN_API int wsn_server_shutdown(wsn_server *srv, int64_t timeout_ms);

/* Shuts down (with the write_wait timeout) if still running, then drops
 * the caller's reference. Client handles retained by the host stay valid
 * until released. NULL is fine. Must not be called from a handler running
 * on the I/O thread. Since 0.1. */
WSN_API void wsn_server_free(wsn_server *srv);

/* Copies the detail of the latest failure on this server that had more to
 * say than wsn_strerror() (cannot listen and why, which limit a channel
 * name or id broke, invalid JSON, ...) into buf (always NUL-terminated,
 * truncated to cap). Failures fully described by their code (WSN_EGONE,
 * WSN_ECLOSED, ...) leave it unchanged, so read it right after a failing
 * call. One text per server, last writer wins: with several threads
 * failing at once it may be another thread's. Returns the full length of
 * the text. Since 0.1. */
WSN_API size_t wsn_server_last_error(wsn_server *srv, char *buf, size_t cap);

/* Reads WSN_OPT_TLS_CERT and WSN_OPT_TLS_KEY again (the same paths) and
 * serves the new certificate to connections made from now on; open
 * connections keep theirs and stay open. The files are checked first (a
 * certificate, a key that matches it): when they are not right, nothing
 * changes and the call says why. Waits until the I/O thread has switched.
 * Returns 0, WSN_EINVAL (the server has no TLS), WSN_EIO (a file cannot be
 * read or is not right: wsn_server_last_error names the option, the path
 * and the reason), WSN_ECLOSED (not running), WSN_EUNSUPPORTED (the
 * libwebsockets linked cannot reload). Any thread, the I/O thread too
 * (a handler with WSN_OPT_EVENTS_ON_IO_THREAD: it runs there at once);
 * from any other it waits for the I/O thread (a file read and a key
 * check, milliseconds), so an event-loop host calls it off its loop's
 * thread (the Python and Node bindings do). Since 0.3. */
WSN_API int wsn_server_reload_tls(wsn_server *srv);

/* ==== Pub/sub ========================================================== */

/* Adds the client to a channel. Subscribing twice is a no-op. Returns 0,
 * WSN_EINVAL (empty or not UTF-8 channel), WSN_ELIMIT (longer than
 * WSN_OPT_MAX_CHANNEL_NAME, or the client is in WSN_OPT_MAX_SUBSCRIPTIONS
 * channels already, counting subscribes not yet applied; at that bound a
 * second subscribe to one of its channels is refused too), WSN_EGONE,
 * WSN_ECLOSED (checked first). Takes effect before any publish made after it returns, from
 * any thread. Since 0.1. */
WSN_API int wsn_server_subscribe(wsn_server *srv, wsn_client *client,
                                 const char *channel);

/* Removes the client from a channel; a non-member is a no-op. Since 0.1. */
WSN_API int wsn_server_unsubscribe(wsn_server *srv, wsn_client *client,
                                   const char *channel);

/* Publishes JSON text (validated, any JSON value) to every subscriber of a
 * channel with type "json" and no ids. With WSN_OPT_BROKER, every channel
 * publish reaches the subscribers of every server of the cluster, or, while
 * the broker is not up, returns WSN_EBROKER having reached this server's
 * subscribers only (docs/scale-out.md). Since 0.1. */
WSN_API int wsn_server_publish(wsn_server *srv, const char *channel,
                               const char *json);

/* Publishes a payload of the given type. data/len: JSON text for
 * WSN_TYPE_JSON, UTF-8 for WSN_TYPE_TEXT, any bytes for WSN_TYPE_BINARY.
 * message_id and reply_to_id may be NULL or "" (then omitted on the wire).
 * The payload is copied and encoded once, in the caller's thread.
 *
 * Backpressure: in drop mode a subscriber whose queue is full is closed
 * with 1001 and the configured reason. In block mode the call waits up to
 * write_wait while a subscriber has no room; a subscriber still full after
 * write_wait is closed the same way. On the I/O thread the call never
 * waits: subscribers without room miss the message and the call returns
 * WSN_EBACKPRESSURE.
 *
 * Returns 0 (accepted for delivery), WSN_EINVAL, WSN_EJSON, WSN_ELIMIT,
 * WSN_ECLOSED, WSN_ETIMEDOUT (not accepted), WSN_EBACKPRESSURE.
 * Since 0.1. */
WSN_API int wsn_server_publish_with_type(wsn_server *srv, const char *channel,
                                         wsn_message_type type,
                                         const void *data, size_t len,
                                         const char *message_id,
                                         const char *reply_to_id);

/* Sends one message to one client, with the same envelope as a channel
 * publish (channel may be "" here). Returns WSN_EGONE for a client that
 * has gone. Since 0.1. */
WSN_API int wsn_server_publish_to_client(wsn_server *srv, wsn_client *client,
                                         const char *channel,
                                         wsn_message_type type,
                                         const void *data, size_t len,
                                         const char *message_id,
                                         const char *reply_to_id);

/* Flags of the _ex publish calls; combine with |. Since 0.2. */
typedef enum wsn_publish_flags {
    WSN_PUBLISH_NONBLOCK = 1, /* return WSN_EAGAIN instead of waiting for room */
    /* Since 0.3, wsn_server_publish_ex only (elsewhere WSN_EINVAL): the
     * data of a WSN_TYPE_JSON publish is one JSON value the caller
     * vouches for, text wsn_json_writer_text() made or an event's payload
     * passed on unchanged, so the core skips its validation and minify
     * passes (about 2 us per KiB). Text that is not JSON is not caught
     * then: JSON clients receive it as it is inside the envelope (their
     * parse fails), a MessagePack frame made of it fails (WSN_EJSON when
     * it is made at the call, otherwise the message is lost for that
     * client with a log line); memory stays safe either way. Ignored for
     * text and binary. */
    WSN_PUBLISH_TRUSTED_JSON = 2
} wsn_publish_flags;

/* One call for every immediate publish: client NULL publishes to every
 * subscriber of channel (as publish_with_type), client set sends to that
 * one client (as publish_to_client; channel may be ""). flags 0: exactly
 * the 0.1 calls, which are these with flags 0.
 *
 * Room. A publish made off the I/O thread waits for room (up to
 * write_wait, then WSN_ETIMEDOUT) while either holds:
 *  - block mode: a client it would reach is stalled, i.e. its send queue
 *    (WSN_OPT_SEND_BUFFER) is full and it holds messages that wait for it.
 *    A channel publish (and a batch) counts every client of the server as
 *    one it might reach, subscriber or not: any stalled client holds up
 *    every channel publish, so that memory stays bounded and publish order
 *    holds. A message to one client (client set, send_raw) waits only while
 *    that client is stalled (since 0.2; 0.1 waited for any);
 *  - either mode: the server's command queue holds 16,384 publishes the
 *    I/O thread has not taken yet (a publisher faster than the I/O thread).
 * With WSN_PUBLISH_NONBLOCK such a call returns WSN_EAGAIN at once instead
 * and nothing of the message was queued: the caller still owns it and
 * retries it (typically once wsn_server_room_fd() is readable). Every
 * other check (arguments, JSON, limits, WSN_ECLOSED, WSN_EGONE) comes
 * first and answers as without the flag. Fairness: none is promised; when
 * room returns, blocked publishers and NONBLOCK retries race for it, and a
 * retry may be refused again (then wait again). Order holds among the
 * publishes one thread gets accepted. Room is as the I/O thread last saw
 * it: publishes accepted before it applies them join a client that has
 * just filled up behind its queue (bounded by the 16,384) and are
 * delivered in order once it reads, or dropped with it after write_wait.
 * On the I/O thread (from a handler)
 * no call ever waits, flag or not: see publish_with_type.
 *
 * Returns as publish_with_type / publish_to_client, plus WSN_EAGAIN (only
 * with the flag) and WSN_EINVAL for an unknown flag. Since 0.2. */
WSN_API int wsn_server_publish_ex(wsn_server *srv, wsn_client *client,
                                  const char *channel, wsn_message_type type,
                                  const void *data, size_t len,
                                  const char *message_id,
                                  const char *reply_to_id, int flags);

/* A file descriptor that is readable (level-triggered) while a NONBLOCK
 * publish would not be refused for lack of room, i.e. while no client is
 * stalled in block mode and the command queue has room (a message to one
 * client that is not stalled may be accepted even while it is not
 * readable: try it, and wait on this fd after WSN_EAGAIN); also readable
 * before start and after the server stopped (calls then fail otherwise,
 * not for room). Made readable only when room returns and unreadable only
 * when it goes, so a host polling it does not spin. For epoll (level
 * mode), uv_poll, asyncio add_reader, ngx/OpenResty. Readable means "try
 * now", not a reservation: another thread may take the room first. Owned
 * by the server, valid until wsn_server_free(); do not read or close it.
 * Since 0.2. */
WSN_API int wsn_server_room_fd(wsn_server *srv);

/* ==== Batched publishing ============================================== */

/* Collects messages for the key (channel, ident) and delivers them to the
 * channel as one message, ttl_ms after the first message of the batch.
 * The first call for a key fixes the batch's name, type and ttl; later
 * calls only add messages (their name/ttl are ignored). Identical messages
 * within a batch are kept once (JSON compared canonically: key order does
 * not matter), in first-seen order.
 *  - json: the delivered message is {"messages":[...],"name":name}.
 *  - text: the delivered message is type text: name "\n\n" messages
 *    joined by "\n".
 *  - binary: like json, each message a base64 string (bin in MessagePack).
 * ttl_ms 0 collects only the calls made before the I/O thread's next turn.
 * Bounds: WSN_OPT_MAX_PENDING_BATCHES (a new key beyond it: WSN_ELIMIT),
 * WSN_OPT_MAX_BATCH_MESSAGES and WSN_OPT_MAX_BATCH_BYTES (a batch that
 * reaches either is delivered at once and the key starts afresh).
 * Shutdown delivers pending batches before closing clients. Since 0.1. */
WSN_API int wsn_server_publish_wait(wsn_server *srv, const char *channel,
                                    const char *json, uint64_t ident,
                                    const char *name, int64_t ttl_ms);
WSN_API int wsn_server_publish_wait_with_type(wsn_server *srv,
                                              const char *channel,
                                              wsn_message_type type,
                                              const void *data, size_t len,
                                              uint64_t ident, const char *name,
                                              int64_t ttl_ms);
WSN_API int wsn_server_publish_wait_string(wsn_server *srv,
                                           const char *channel,
                                           const char *text, uint64_t ident,
                                           const char *name, int64_t ttl_ms);

/* publish_wait_with_type with flags (publish_wait and publish_wait_string
 * are this with WSN_TYPE_JSON / WSN_TYPE_TEXT and flags 0). Without flags
 * a call waits for room only when its message fills a batch to a bound
 * and so delivers it now. With WSN_PUBLISH_NONBLOCK the call returns
 * WSN_EAGAIN while there is no room (exactly while wsn_server_room_fd()
 * is not readable), whether or not it would fill its batch, and the
 * message was added to no batch; a batch it does fill is queued for
 * delivery without waiting. Since 0.2. */
WSN_API int wsn_server_publish_wait_ex(wsn_server *srv, const char *channel,
                                       wsn_message_type type, const void *data,
                                       size_t len, uint64_t ident,
                                       const char *name, int64_t ttl_ms,
                                       int flags);

/* Drops the pending batch of (channel, ident) undelivered; no batch is a
 * no-op (0). Since 0.1. */
WSN_API int wsn_server_cancel_pending_messages(wsn_server *srv,
                                               const char *channel,
                                               uint64_t ident);

/* The number of batches waiting for their ttl. Since 0.1. */
WSN_API int wsn_server_pending_batches(wsn_server *srv);

/* Sends one frame to one client as it is, without the envelope: for hosts
 * with their own protocol (with WSN_OPT_RAW_INCOMING) and for conformance
 * echo servers. type is WSN_TYPE_TEXT (data must be UTF-8) or
 * WSN_TYPE_BINARY. Backpressure as for publish_to_client. Since 0.1. */
WSN_API int wsn_server_send_raw(wsn_server *srv, wsn_client *client,
                                wsn_message_type type, const void *data,
                                size_t len);

/* send_raw with flags (WSN_PUBLISH_NONBLOCK: WSN_EAGAIN instead of waiting
 * for room, nothing queued; see wsn_server_publish_ex). Since 0.2. */
WSN_API int wsn_server_send_raw_ex(wsn_server *srv, wsn_client *client,
                                   wsn_message_type type, const void *data,
                                   size_t len, int flags);

/* ==== Server monitoring ================================================ */

/* Number of connected WebSocket clients (0 when stopped). Since 0.1. */
WSN_API int wsn_server_connected_clients(wsn_server *srv);

/* A snapshot of connected client ids; free with wsn_strlist_free().
 * Since 0.1. */
WSN_API int wsn_server_client_list(wsn_server *srv, wsn_strlist **out);

WSN_API size_t wsn_strlist_count(const wsn_strlist *list);
/* Borrowed from the list; NULL past the end. */
WSN_API const char *wsn_strlist_get(const wsn_strlist *list, size_t index);
WSN_API void wsn_strlist_free(wsn_strlist *list);

/* ==== Clients and metadata ============================================= */

/* Client handles given to handlers and in events are borrowed for the
 * duration of the call or the event. retain() keeps one alive beyond that;
 * each retain needs one release(). A handle outlives its connection: calls
 * that need the connection then return WSN_EGONE; metadata stays readable
 * (a disconnect handler can still read the user id it stored). */
WSN_API wsn_client *wsn_client_retain(wsn_client *client);
WSN_API void wsn_client_release(wsn_client *client); /* NULL is fine */

/* "c_<n>", unique for the life of the process; owned by the handle. */
WSN_API const char *wsn_client_id(const wsn_client *client);

/* 1 while connected, 0 once gone. */
WSN_API int wsn_client_is_connected(const wsn_client *client);

/* The peer's address as text ("127.0.0.1"); owned by the handle. */
WSN_API const char *wsn_client_remote_address(const wsn_client *client);

/* The negotiated WebSocket subprotocol ("" when none). */
WSN_API const char *wsn_client_subprotocol(const wsn_client *client);

typedef enum wsn_value_type {
    WSN_VALUE_NONE = 0,
    WSN_VALUE_STRING = 1,
    WSN_VALUE_INT = 2,
    WSN_VALUE_DOUBLE = 3,
    WSN_VALUE_BOOL = 4,
    WSN_VALUE_BYTES = 5,
    WSN_VALUE_JSON = 6
} wsn_value_type;

/* Setters replace any earlier value of the key, whatever its type. Keys are
 * non-empty UTF-8. Values are copied. JSON is validated (WSN_EJSON).
 * Returns WSN_ELIMIT when the client's metadata would exceed
 * WSN_OPT_MAX_METADATA_BYTES, WSN_EGONE once the client has gone.
 * Since 0.1. */
WSN_API int wsn_client_set_string(wsn_client *c, const char *key,
                                  const char *value);
WSN_API int wsn_client_set_int(wsn_client *c, const char *key, int64_t value);
WSN_API int wsn_client_set_double(wsn_client *c, const char *key,
                                  double value);
WSN_API int wsn_client_set_bool(wsn_client *c, const char *key, int value);
WSN_API int wsn_client_set_bytes(wsn_client *c, const char *key,
                                 const void *data, size_t len);
WSN_API int wsn_client_set_json(wsn_client *c, const char *key,
                                const char *json);

/* Removes a key: 0, or WSN_ENOTFOUND. */
WSN_API int wsn_client_delete(wsn_client *c, const char *key);

/* The type of a key's value: 0 and *type, or WSN_ENOTFOUND. */
WSN_API int wsn_client_get_type(wsn_client *c, const char *key,
                                wsn_value_type *type);

/* Scalar getters: WSN_ENOTFOUND, or WSN_ETYPE when the value has another
 * type (no conversions). */
WSN_API int wsn_client_get_int(wsn_client *c, const char *key,
                               int64_t *value);
WSN_API int wsn_client_get_double(wsn_client *c, const char *key,
                                  double *value);
WSN_API int wsn_client_get_bool(wsn_client *c, const char *key, int *value);

/* Copies a string, bytes or JSON value into buf (strings and JSON get a
 * terminating NUL that *len does not count). *len always receives the
 * value's length; with buf too small (or NULL) the call returns
 * WSN_ENOSPC and copies nothing. The type must match (string getter for
 * strings, and so on) else WSN_ETYPE. */
WSN_API int wsn_client_get_string(wsn_client *c, const char *key, char *buf,
                                  size_t cap, size_t *len);
WSN_API int wsn_client_get_bytes(wsn_client *c, const char *key, void *buf,
                                 size_t cap, size_t *len);
WSN_API int wsn_client_get_json(wsn_client *c, const char *key, char *buf,
                                size_t cap, size_t *len);

/* A snapshot of the client's metadata keys. */
WSN_API int wsn_client_metadata_keys(wsn_client *c, wsn_strlist **out);

/* ==== Events and callbacks ============================================= */

typedef enum wsn_event_type {
    WSN_EVENT_CONNECT = 1,    /* a client completed the upgrade */
    WSN_EVENT_MESSAGE = 2,    /* a client sent a message */
    WSN_EVENT_DISCONNECT = 3, /* a client is gone (after its last message) */
    WSN_EVENT_STOPPED = 4,    /* the server stopped: the last event */
    WSN_EVENT_BROKER = 5,     /* the broker's state changed (since 0.3):
                                 no client; wsn_event_channel() is the new
                                 state's name ("up", "down", "connecting")
                                 and the payload the reason ("" when up) */
    WSN_EVENT_UPGRADE = 6     /* with WSN_OPT_AUTHENTICATE, a WebSocket
                                 upgrade waits for the host's answer
                                 (since 0.3): no client;
                                 wsn_event_upgrade_id() names it,
                                 wsn_event_channel() is the path,
                                 wsn_event_payload() the request's header
                                 lines, wsn_event_message_id() the id in
                                 decimal and wsn_event_reply_to_id() the
                                 peer's address (so batched records carry
                                 them all); see "Authentication" below */
} wsn_event_type;

/* A handler. ev and the client in it are borrowed for the call. */
typedef void (*wsn_event_fn)(void *user, wsn_server *srv, const wsn_event *ev);

/* Registers the handler for one event type (NULL removes it). Register
 * before wsn_server_start(). Where handlers run:
 *  - WSN_OPT_EVENTS_ON_IO_THREAD = 1: on the I/O thread, as events happen.
 *    A handler must not block; publishing from it never waits.
 *  - otherwise (default): events are queued; the host runs handlers on its
 *    own thread with wsn_server_dispatch(), or pulls raw events with
 *    wsn_server_next_event(). Since 0.1. */
WSN_API int wsn_server_set_handler(wsn_server *srv, wsn_event_type type,
                                   wsn_event_fn fn, void *user);

/* A file descriptor that is readable while events are queued (and, with
 * WSN_OPT_LOG_QUEUE, while log lines are queued); for epoll/asyncio
 * add_reader/uv_poll. Level-triggered: drain with next_event/dispatch and
 * next_log until WSN_EAGAIN. Owned by the server; valid until
 * wsn_server_free(). Do not read it yourself. Since 0.1. */
WSN_API int wsn_server_event_fd(wsn_server *srv);

/* Event socket (WSN_OPT_EVENT_SOCKET, since 0.3): for hosts that can wait
 * on a socket but not on an fd, such as an nginx worker (a cosocket
 * connects to "unix:<path>"). wsn_server_start() listens on the path (a
 * stale socket file there is replaced; a path that cannot be bound, or
 * longer than 107 bytes, fails the start with WSN_EIO and the reason in
 * wsn_server_last_error()). Every connection then receives one byte each
 * time the event fd turns readable, i.e. when an event or log line is
 * queued while none was. A host: connects; takes events (and log lines)
 * until none is left; reads a byte, which waits; repeats. A byte read
 * after the events it announced were taken is harmless; an event queued
 * before the connection was accepted is announced only by the next one,
 * hence the take-first. At most 16 connections are told (more are
 * closed at once). When the server stops, the STOPPED event is announced
 * and then every connection is closed (EOF) and the path unlinked. */

/* Handoff (WSN_OPT_HANDOFF_SOCKET, since 0.3): a front server that
 * accepted a plain (not TLS) HTTP connection and read its request head
 * (nginx in front of an engine in one of its workers) gives the socket
 * to the engine instead of proxying every frame. wsn_server_start()
 * binds the path as a unix datagram socket (a stale socket file there is
 * replaced; a path in use by a running server, or longer than 107 bytes,
 * fails the start with WSN_EIO). Each datagram carries one socket
 * (SCM_RIGHTS) and the bytes read from it so far, at least the whole
 * request head. The engine serves the connection exactly as one it
 * accepted itself: path, Origin, authentication, per-address limits and
 * remote address (the real peer, from the socket) all apply.
 *
 * wsn_handoff() is the front's side, and needs no server in the calling
 * process. It sends fd and the head_len bytes at head to the engine at
 * path without waiting. On WSN_OK the engine holds the socket: the caller
 * then closes its own descriptor without writing to or shutting down the
 * socket. Because an epoll set forgets a socket only when every
 * descriptor of it is closed, which the engine's copy now prevents, the
 * call first removes fd from each epoll set of the calling process (hosts
 * such as nginx rely on close() to do that). Errors, with nothing sent
 * and fd still the caller's: WSN_EINVAL (NULL or empty path, a path over
 * 107 bytes, fd < 0, head NULL or head_len 0), WSN_ELIMIT (head_len over
 * WSN_HANDOFF_MAX_HEAD), WSN_ECLOSED (no engine listens at path: it
 * stopped, or never started), WSN_EAGAIN (the engine's queue of handed
 * sockets is full: answer 503), WSN_EIO (any other failure). The epoll
 * sets are those the process had at its first wsn_handoff(). Any thread,
 * with or without a server in the process. Since 0.3. */
#define WSN_HANDOFF_MAX_HEAD 16384
WSN_API int wsn_handoff(const char *path, int fd, const void *head, size_t head_len);

/* Waits until an event (or, with WSN_OPT_LOG_QUEUE, a log line) is queued
 * or timeout_ms passes (-1 = forever). Returns 1 (events or lines ready: a
 * host that queues log lines must take them too, or this returns at once
 * again), 0 (timeout), WSN_ECLOSED once the STOPPED event was taken and
 * nothing is left. Since 0.1. */
WSN_API int wsn_server_wait(wsn_server *srv, int timeout_ms);

/* Takes the oldest queued event: 0 and *out (free with wsn_event_free()),
 * WSN_EAGAIN when none is queued, WSN_ECLOSED after STOPPED was taken. */
WSN_API int wsn_server_next_event(wsn_server *srv, wsn_event **out);

/* Takes up to max queued events (max <= 0: all queued now) and runs the
 * registered handlers on the calling thread. Returns the number of events
 * taken, or WSN_ECLOSED after STOPPED was taken. Since 0.1. */
WSN_API int wsn_server_dispatch(wsn_server *srv, int max);

WSN_API void wsn_event_free(wsn_event *ev); /* NULL is fine */
WSN_API wsn_event_type wsn_event_kind(const wsn_event *ev);
/* The client (borrowed from the event; NULL for STOPPED). */
WSN_API wsn_client *wsn_event_client(const wsn_event *ev);
/* The client's id as text; "" for STOPPED. */
WSN_API const char *wsn_event_client_id(const wsn_event *ev);

/* MESSAGE events: the type, the channel ("" when absent), the payload
 * (JSON text for json, the string for text, raw bytes for binary; *len
 * gets its length, the buffer is NUL-terminated), the ids ("" when absent).
 * Pointers are owned by the event. */
WSN_API wsn_message_type wsn_event_message_type(const wsn_event *ev);
WSN_API const char *wsn_event_channel(const wsn_event *ev);
WSN_API const void *wsn_event_payload(const wsn_event *ev, size_t *len);
WSN_API const char *wsn_event_message_id(const wsn_event *ev);
WSN_API const char *wsn_event_reply_to_id(const wsn_event *ev);

/* Every field of an event in one call, for FFIs where each call costs.
 * The caller sets size to sizeof(wsn_event_info) of the header it was
 * built with; the library fills the fields that fit in that size and
 * leaves the rest alone, so the struct may grow at its end in later
 * versions without breaking older callers. Pointers are borrowed from the
 * event (valid until wsn_event_free); strings are never NULL. Fields that
 * do not apply to the kind are zero or "". Since 0.2. */
typedef struct wsn_event_info {
    size_t size;             /* set by the caller: sizeof(wsn_event_info) */
    wsn_event_type kind;
    wsn_client *client;      /* borrowed; NULL for STOPPED */
    const char *client_id;   /* "" for STOPPED */
    wsn_message_type type;   /* MESSAGE only (else WSN_TYPE_JSON) */
    const char *channel;     /* "" when absent */
    const void *payload;     /* NUL-terminated; "" when none */
    size_t payload_len;
    const char *message_id;  /* "" when absent */
    const char *reply_to_id; /* "" when absent */
} wsn_event_info;            /* grows only at the end */

/* Fills info (see above). Returns 0, or WSN_EINVAL for NULL or a size
 * smaller than the 0.2 struct. Any thread that holds the event.
 * Since 0.2. */
WSN_API int wsn_event_get_info(const wsn_event *ev, wsn_event_info *info);

/* Events in batches, for hosts where each call across the FFI costs more
 * than the work behind it (Python's cffi, LuaJIT, N-API): one call takes
 * up to max events and describes each in a record of 64-bit fields, with
 * the strings and payload of every MESSAGE copied back to back into one
 * buffer of the caller's, so the host copies that buffer once and slices
 * it. docs/architecture.md, "How a binding consumes events".
 *
 * Every field is 8 bytes (the client is a pointer: 8 bytes on the 64-bit
 * platforms we build for), so a binding may read the records as one array
 * of int64. Offsets index the arena; strings there are not NUL-terminated.
 * Fields that do not apply to the kind are 0. Since 0.3. */
typedef struct wsn_event_record {
    int64_t kind;               /* wsn_event_type */
    int64_t type;               /* wsn_message_type: MESSAGE only, else WSN_TYPE_JSON */
    wsn_client *client;         /* borrowed from events[i]; NULL for STOPPED */
    int64_t channel_offset, channel_len;
    /* -1: this message did not fit in what was left of the arena; it ends
     * the batch and is read with wsn_event_get_info(events[i]). */
    int64_t payload_offset, payload_len;
    int64_t message_id_offset, message_id_len;
    int64_t reply_to_id_offset, reply_to_id_len;
} wsn_event_record; /* grows only at the end */

/* Takes up to max queued events: events[i] gets each (free them with
 * wsn_events_free or one by one with wsn_event_free), records[i] its
 * description. record_size is sizeof(wsn_event_record) of the caller's
 * header: records are written at that stride, so the struct may grow at its
 * end without breaking older callers. A batch ends early after STOPPED and
 * after a message that did not fit in the arena. *arena_used gets the bytes
 * written to arena. Returns the number of events taken (0: none queued),
 * WSN_ECLOSED once STOPPED was taken earlier and nothing is left, WSN_EINVAL
 * for NULL srv, events, records or arena_used, NULL arena with a non-zero
 * arena_cap, max < 1, or a record_size smaller than the 0.3 struct or not a
 * multiple of 8. Any thread, like wsn_server_next_event: two threads taking
 * at once each get a disjoint share of the queue, in queue order within
 * each batch. Since 0.3. */
WSN_API int wsn_server_take_events(wsn_server *srv, wsn_event **events,
                                   wsn_event_record *records, size_t record_size, int max,
                                   void *arena, size_t arena_cap, size_t *arena_used);

/* Frees count events taken by wsn_server_take_events and sets each slot to
 * NULL (NULL slots and a NULL array are skipped). Any thread that holds the
 * events. Since 0.3. */
WSN_API void wsn_events_free(wsn_event **events, int count);

/* Takes the oldest queued log line (WSN_OPT_LOG_QUEUE > 0 and no logger):
 * 0 with the line NUL-terminated in buf, *len its length and *level its
 * level; WSN_EAGAIN when none is queued; WSN_ENOSPC when cap is too small
 * (*len = the length needed, without the NUL; the line stays queued);
 * WSN_EINVAL for NULL srv, level or len. Lines are at most 511 bytes.
 * Drain it where events are drained: the event fd is readable while lines
 * are queued. Any thread; lines come out in the order they were logged.
 * Since 0.2. */
WSN_API int wsn_server_next_log(wsn_server *srv, wsn_log_level *level,
                                char *buf, size_t cap, size_t *len);

/* Lines dropped because the log queue was full (the newest are dropped:
 * the queue keeps the oldest), since the server was made. Since 0.2. */
WSN_API uint64_t wsn_server_logs_dropped(wsn_server *srv);

/* ==== Scale-out broker (WSN_OPT_BROKER, docs/scale-out.md) ============ */

typedef enum wsn_broker_state {
    WSN_BROKER_NONE = 0,       /* no broker configured: this process only */
    WSN_BROKER_CONNECTING = 1, /* not yet up since start (or restart) */
    WSN_BROKER_UP = 2,         /* connected and every channel subscribed */
    WSN_BROKER_DOWN = 3        /* lost; reconnecting with backoff */
} wsn_broker_state;

/* What wsn_server_broker_state() reports. Counters count since start.
 * The caller sets size to sizeof(wsn_broker_info); fields beyond it are
 * left alone, so the struct may grow at its end. */
typedef struct wsn_broker_info {
    size_t size;          /* set by the caller */
    int state;            /* wsn_broker_state */
    char reason[128];     /* why not up ("" when up) */
    char server_id[24];   /* this server's id in the cluster (hex) */
    uint64_t sent;        /* publishes Redis acknowledged */
    uint64_t refused;     /* publishes not sent because the broker was
                             down (delivered on this server only) */
    uint64_t unconfirmed; /* publishes written when the connection broke,
                             before Redis acknowledged them: each reached
                             the other servers or not */
    uint64_t received;    /* messages from other servers delivered here */
    uint64_t ignored;     /* broker messages not written by a wsnotify
                             server (or too new a version): dropped */
    uint64_t dropped;     /* arrived while this server's I/O thread was
                             that far behind (bounded queue): dropped */
    uint64_t reconnects;  /* times the broker came up again after down */
} wsn_broker_info;

/* The broker's state (wsn_broker_state, >= 0), and with info non-NULL its
 * details. WSN_EINVAL for NULL srv or a size smaller than this struct.
 * Any thread. Since 0.3. */
WSN_API int wsn_server_broker_state(wsn_server *srv, wsn_broker_info *info);

/* Sends one message to the client with this id, on this server or, with a
 * broker, on any server of the cluster (the id names its server). Returns
 * WSN_EGONE when the id is of this server and the client has gone;
 * WSN_EBROKER when it is another server's and the broker is down; a client
 * on another server that has gone is not reported (nothing comes back).
 * WSN_EINVAL for NULL srv, a NULL or empty id, and what
 * wsn_server_publish_to_client refuses (channel, type, data, ids);
 * WSN_ELIMIT for a channel name over WSN_OPT_MAX_CHANNEL_NAME; WSN_ECLOSED
 * when the server is not running. A client of this server is sent to as
 * wsn_server_publish_to_client does (in block mode it may wait for room,
 * up to write_wait); a message for another server is queued for the
 * broker without waiting. Any thread. Since 0.3. */
WSN_API int wsn_server_publish_to_client_id(wsn_server *srv, const char *client_id,
                                            const char *channel,
                                            wsn_message_type type,
                                            const void *data, size_t len,
                                            const char *message_id,
                                            const char *reply_to_id);

/* ==== Authentication at the upgrade (WSN_OPT_AUTHENTICATE) ============ */

/* With WSN_OPT_AUTHENTICATE, every WebSocket upgrade on the server's path
 * becomes a WSN_EVENT_UPGRADE; the connection waits, without a client and
 * without reading further, until the host answers with one of the two
 * calls below, from any thread, at any time within WSN_OPT_AUTH_TIMEOUT
 * (then 503). At most WSN_OPT_AUTH_QUEUE wait at once (beyond, 503 at
 * once). After an accept the server's own checks still apply (origin,
 * subprotocol, max_clients), then the client connects (a CONNECT event).
 *
 * On plain ws:// the answer comes before the handshake: a rejection is
 * the HTTP status with the body. Over TLS that wsnotify terminates
 * (WSN_OPT_TLS_CERT), libwebsockets 4.1 cannot hold a request it has
 * parsed, so the handshake completes first and a rejection closes the
 * connection with code 4000 + status (4401 for 401) and the body as the
 * reason (docs/production.md). */

/* The four readers of an UPGRADE event below: any thread that holds the
 * event (they only read it); other kinds and NULL get 0, "" or
 * WSN_EINVAL. Since 0.3. */

/* UPGRADE events: the request's id (0 for other kinds). */
WSN_API uint64_t wsn_event_upgrade_id(const wsn_event *ev);
/* The query string without the '?', "" when none (borrowed). */
WSN_API const char *wsn_event_upgrade_query(const wsn_event *ev);
/* One header's value, by name in any case; repeats are joined with ", ".
 * 0 and the value NUL-terminated in buf; WSN_ENOTFOUND; WSN_ENOSPC (buf
 * too small or NULL: *len gets the length needed, without the NUL);
 * WSN_EINVAL for NULL ev, name or len, or an event of another kind. */
WSN_API int wsn_event_upgrade_header(const wsn_event *ev, const char *name, char *buf,
                                     size_t cap, size_t *len);
/* One query argument's value, percent-decoded ('+' is a space), the
 * first where the name repeats; returns as wsn_event_upgrade_header. The
 * decoded bytes are the client's: not checked as UTF-8, and a %00 makes a
 * NUL inside (*len counts every byte). */
WSN_API int wsn_event_upgrade_query_arg(const wsn_event *ev, const char *name, char *buf,
                                        size_t cap, size_t *len);

/* Lets the upgrade proceed. metadata_json (NULL for none) is a JSON
 * object whose members become the client's metadata (strings, integers,
 * other numbers as doubles, booleans; other values as JSON); channels
 * (count of them) are subscribed before the CONNECT event;
 * expires_at_ms (Unix time in milliseconds, 0 = never) closes the client
 * with 4001 "authorization expired" at that time unless
 * wsn_client_set_expiry() moves it. Returns 0; WSN_EGONE when the id is
 * unknown (never issued, already answered, or timed out);
 * WSN_EJSON for metadata that is not a JSON object; WSN_ELIMIT for
 * metadata over WSN_OPT_MAX_METADATA_BYTES, more channels than
 * WSN_OPT_MAX_SUBSCRIPTIONS or a name over WSN_OPT_MAX_CHANNEL_NAME;
 * WSN_EINVAL for NULL srv, id 0, NULL channels with a count, an empty or
 * invalid channel name, or a negative expiry; WSN_ECLOSED when the server
 * is not running. Any thread; never waits. Since 0.3. */
WSN_API int wsn_server_accept_upgrade(wsn_server *srv, uint64_t id, const char *metadata_json,
                                      const char *const *channels, size_t count,
                                      int64_t expires_at_ms);
/* Refuses the upgrade with an HTTP status 400..599 and a body (NULL for
 * none; UTF-8, at most 1024 bytes; over TLS its first 123 bytes are the
 * close reason). Returns 0, WSN_EGONE as above, WSN_EINVAL (status, body),
 * WSN_ECLOSED. Any thread; never waits. Since 0.3. */
WSN_API int wsn_server_reject_upgrade(wsn_server *srv, uint64_t id, int status,
                                      const char *body);

/* Moves (or with 0 clears) the time at which the client is closed with
 * 4001 "authorization expired": for a client that refreshed its
 * credentials in band (docs/production.md). Unix time in milliseconds; a
 * time already past closes it now. 0, WSN_EGONE, WSN_EINVAL (NULL, < 0),
 * WSN_ECLOSED. Any thread. Since 0.3. */
WSN_API int wsn_client_set_expiry(wsn_client *c, int64_t expires_at_ms);

/* ==== Metrics (docs/production.md, "Metrics") ========================= */

/* Why a connection was refused before it became a client: the index of
 * wsn_metrics.connections_refused. Never renumbered. Since 0.3. */
typedef enum wsn_refusal {
    WSN_REFUSED_SHUTDOWN = 0,     /* the server is shutting down (503, or
                                     closed at accept) */
    WSN_REFUSED_MAX_CLIENTS = 1,  /* max_clients, or what RLIMIT_NOFILE
                                     leaves (503) */
    WSN_REFUSED_PER_ADDRESS = 2,  /* max_clients_per_address */
    WSN_REFUSED_DESCRIPTORS = 3,  /* descriptors nearly gone: closed at
                                     accept */
    WSN_REFUSED_ORIGIN = 4,       /* Origin not allowed (403) */
    WSN_REFUSED_BAD_REQUEST = 5,  /* wrong path (404) or method (405), an
                                     unknown subprotocol or a header we
                                     refuse (400); with
                                     WSN_OPT_AUTHENTICATE a request too
                                     slow (408) or too big (431) */
    WSN_REFUSED_AUTH = 6,         /* the host's upgrade check said no */
    WSN_REFUSED_AUTH_TIMEOUT = 7, /* the host did not answer in time */
    WSN_REFUSED_AUTH_QUEUE = 8,   /* too many upgrades waiting for the host */
    WSN_REFUSED_TLS = 9           /* the TLS handshake failed */
} wsn_refusal;

/* Why the server closed a client: the index of
 * wsn_metrics.connections_closed. Never renumbered. Since 0.3. */
typedef enum wsn_close_reason {
    WSN_CLOSED_SLOW = 0,       /* its oldest queued message waited
                                  write_wait (1001) */
    WSN_CLOSED_RATE = 1,       /* over its inbound message rate (1008) */
    WSN_CLOSED_EXPIRED = 2,    /* its authorisation expired (4001) */
    WSN_CLOSED_TOO_BIG = 3,    /* a message over read_limit (1009) */
    WSN_CLOSED_PONG = 4,       /* no pong within pong_wait */
    WSN_CLOSED_QUEUE_FULL = 5, /* drop mode: its send queue was full (1001) */
    WSN_CLOSED_BUSY = 6        /* partial messages over max_partial_bytes
                                  (1013) */
} wsn_close_reason;

/* The label of a reason ("origin", "queue_full"), as the Prometheus text
 * names it; NULL for an index no reason has (iterate from 0 until NULL).
 * Since 0.3. */
WSN_API const char *wsn_refusal_name(int reason);
WSN_API const char *wsn_close_reason_name(int reason);

/* A snapshot of the server's counters (since wsn_server_new; they never go
 * down) and gauges (now). The caller sets size to sizeof(wsn_metrics); the
 * library fills what fits and leaves the rest alone, so the struct may
 * grow at its end. Each value is read on its own, without stopping the
 * I/O thread: two values may be a few messages apart. Since 0.3. */
typedef struct wsn_metrics {
    size_t size;                       /* set by the caller */
    /* connections */
    uint64_t connections;              /* gauge: clients connected */
    uint64_t connections_accepted;     /* upgrades that became clients */
    uint64_t connections_refused[16];  /* by wsn_refusal; unused slots 0 */
    uint64_t connections_closed[16];   /* closed by the server, by
                                          wsn_close_reason; unused slots 0 */
    uint64_t connections_ended;        /* connections that ended, whoever
                                          closed them */
    /* channels */
    uint64_t subscriptions;            /* gauge: memberships of clients in
                                          channels */
    uint64_t channels;                 /* gauge: channels with a member */
    /* from clients, by wsn_message_type */
    uint64_t messages_received[3];     /* messages handed to the host */
    uint64_t bytes_received[3];        /* their WebSocket payload bytes */
    uint64_t messages_invalid;         /* answered with an error reply
                                          (not an envelope) */
    /* to clients */
    uint64_t deliveries;               /* messages queued for a client (one
                                          per subscriber a publish reached) */
    uint64_t messages_sent;            /* frames written to sockets */
    uint64_t bytes_sent;               /* their wire bytes */
    uint64_t messages_dropped;         /* messages for a client that will
                                          never be written to it: its queue
                                          was full (drop mode, or a publish
                                          on the I/O thread), it was closing,
                                          or it was dropped or left with them
                                          queued */
    uint64_t queued;                   /* gauge: frames waiting in every
                                          client's queue */
    uint64_t queue_max;                /* gauge: frames in the fullest
                                          client's send queue (at most
                                          send_buffer); walked by the I/O
                                          thread, at most a second old while
                                          queues are in use, 0 when none is */
    uint64_t stalled_clients;          /* gauge: block mode, clients whose
                                          queue is full with messages
                                          waiting behind it */
    /* publishers */
    uint64_t publish_refused_limit;    /* publish calls that returned
                                          WSN_ELIMIT */
    uint64_t publish_refused_again;    /* WSN_EAGAIN (NONBLOCK, no room) */
    uint64_t publish_refused_timeout;  /* WSN_ETIMEDOUT (waited write_wait) */
    uint64_t publish_refused_backpressure; /* WSN_EBACKPRESSURE (on the I/O
                                          thread, a subscriber full) */
    uint64_t pending_batches;          /* gauge: publish_wait batches */
    /* events for the host */
    uint64_t events_queued;            /* gauge: message events waiting */
    uint64_t events_queued_bytes;      /* gauge: what they hold */
    uint64_t clients_paused;           /* gauge: clients not read for their
                                          share of the queue */
    uint64_t reads_paused;             /* gauge, 0 or 1: reading from every
                                          client is paused (event_queue_limit
                                          or event_queue_bytes) */
    uint64_t logs_dropped;             /* as wsn_server_logs_dropped() */
    /* the broker (WSN_OPT_BROKER), as wsn_server_broker_state() reports
     * it; WSN_BROKER_NONE and zeros without one */
    uint64_t broker_state;             /* wsn_broker_state */
    uint64_t broker_sent;
    uint64_t broker_refused;
    uint64_t broker_unconfirmed;
    uint64_t broker_received;
    uint64_t broker_ignored;
    uint64_t broker_dropped;
    uint64_t broker_reconnects;
    uint64_t broker_lost;              /* messages of other servers that never
                                          arrived here: gaps in their sequence
                                          per channel (docs/scale-out.md) */
} wsn_metrics; /* grows only at the end */

/* Fills m (see above). Returns 0, or WSN_EINVAL for NULL or a size that
 * does not reach broker_reconnects (the struct as 0.3 first had it);
 * broker_lost and any later field are filled only when size covers them.
 * Any thread, before start and after stop too (the
 * gauges are then 0). It takes the server's locks only as long as a
 * publish does, never waits for the I/O thread, and costs the delivery
 * path nothing per message beyond a few counters kept per write and per
 * channel walk (docs/benchmarks.md). Since 0.3. */
WSN_API int wsn_server_metrics(wsn_server *srv, wsn_metrics *m);

/* The same snapshot in the Prometheus text exposition format (version
 * 0.0.4: # HELP and # TYPE lines, wsnotify_* names, counters end in
 * _total), what GET /metrics serves with WSN_OPT_METRICS; docs/production.md
 * lists every metric. 0 with the text NUL-terminated in buf and *len its
 * length; WSN_ENOSPC when cap is too small (*len = the length needed
 * without the NUL; call again with more: the next snapshot may be a few
 * bytes longer); WSN_EINVAL for NULL srv or len, or NULL buf with cap > 0.
 * Any thread. Since 0.3. */
WSN_API int wsn_server_metrics_text(wsn_server *srv, char *buf, size_t cap, size_t *len);

/* ==== Utilities ======================================================== */

/* The wire name of a type ("json", "text", "binary"); NULL if unknown. */
WSN_API const char *wsn_message_type_name(wsn_message_type type);

/* Checks JSON text the way publish does: 0 or WSN_EJSON. */
WSN_API int wsn_json_validate(const char *json, size_t len);

/* Reads one string member at the top level of a JSON object without
 * building the document: for a handler that dispatches on a small field
 * ("action") of a message that may be large. The value is decoded
 * (escapes resolved) into out, NUL-terminated; where a key repeats, the
 * last one counts. Returns 0; WSN_EJSON if json is not a valid JSON
 * object; WSN_ENOTFOUND if the object has no such member; WSN_ETYPE if
 * the member's value is not a string; WSN_ENOSPC if out_size is too small
 * (out is untouched); WSN_EINVAL for NULL json or key. *out_len (if not
 * NULL) receives the decoded length, also with WSN_ENOSPC. A pure
 * function: any thread, no server needed. */
WSN_API int wsn_json_get_string(const char *json, size_t len, const char *key, char *out,
                                size_t out_size, size_t *out_len);

/* ==== JSON writer ===================================================== */

/* Builds JSON text value by value, escaped and checked by the core, for
 * hosts whose values are not JSON already (Lua tables, C structs). The
 * output is compact and publishable with WSN_PUBLISH_TRUSTED_JSON. A
 * writer is used by one thread at a time; reset it to reuse its memory.
 * Every call returns 0 or an error, and the first error sticks: later
 * calls return it and wsn_json_writer_text() returns NULL until
 * wsn_json_writer_reset(). Errors: WSN_EINVAL for a value where a key is
 * due, a key outside an object, an end that does not match, a second
 * top-level value, a key or string that is not UTF-8 (NUL bytes are
 * fine: written as \u0000), a NaN or infinite number, raw text that is
 * not one JSON value, a NULL argument; WSN_ELIMIT for nesting deeper than
 * WSN_JSON_MAX_DEPTH; WSN_ENOMEM. Since 0.3. */
#define WSN_JSON_MAX_DEPTH 1000
typedef struct wsn_json_writer wsn_json_writer;

/* NULL when out of memory. */
WSN_API wsn_json_writer *wsn_json_writer_new(void);
WSN_API void wsn_json_writer_free(wsn_json_writer *w);
/* Empty again and its error cleared; keeps its memory. */
WSN_API void wsn_json_writer_reset(wsn_json_writer *w);
WSN_API int wsn_json_begin_object(wsn_json_writer *w);
WSN_API int wsn_json_end_object(wsn_json_writer *w);
WSN_API int wsn_json_begin_array(wsn_json_writer *w);
WSN_API int wsn_json_end_array(wsn_json_writer *w);
/* The next member's key, inside an object, before each value. */
WSN_API int wsn_json_key(wsn_json_writer *w, const char *key, size_t len);
WSN_API int wsn_json_string(wsn_json_writer *w, const char *s, size_t len);
WSN_API int wsn_json_integer(wsn_json_writer *w, int64_t v);
/* The shortest decimal that reads back as v; integral values get ".0"
 * (write integers with wsn_json_integer). */
WSN_API int wsn_json_number(wsn_json_writer *w, double v);
WSN_API int wsn_json_bool(wsn_json_writer *w, int v);
WSN_API int wsn_json_null(wsn_json_writer *w);
/* One JSON value given as text, checked as publish checks it and copied
 * compact (its number text unchanged). */
WSN_API int wsn_json_raw(wsn_json_writer *w, const char *json, size_t len);
/* The text once one whole value is written (NUL-terminated, *len without
 * the NUL; len may be NULL), NULL before that or after an error. Valid
 * until the next call on w. */
WSN_API const char *wsn_json_writer_text(const wsn_json_writer *w, size_t *len);
/* 0, or the first error since new/reset. */
WSN_API int wsn_json_writer_error(const wsn_json_writer *w);

#ifdef __cplusplus
}
#endif

#endif /* WSNOTIFY_H */
