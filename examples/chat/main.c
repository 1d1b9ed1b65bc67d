/*
 * wsnotify chat example: the C port of the Go original's example/main.go.
 *
 * Serves examples/chat/index.html at "/" and WebSockets at "/ws". Clients
 * send envelopes like
 *
 *   {"type":"json","channel":"room","message":{"action":"subscribe",
 *    "channel":"room"},"message_id":"m1"}
 *   {"type":"json","channel":"room","message":{"action":"broadcast",
 *    "text":"hi"}}
 *
 * "subscribe" adds the sender to message.channel and answers the sender
 * alone with {"status":"subscribed","channel":...} (reply_to_id = the
 * request's message_id); "broadcast" publishes the message object to every
 * subscriber of the envelope's channel.
 *
 * No client can make the handler wait for another (docs/api.md, "Slow
 * clients and handlers"): a browser that stops reading is closed once its
 * queue is full (drop_on_backpressure; close 1001 "going away:
 * backpressure"), and every publish is WSN_PUBLISH_NONBLOCK. One the
 * engine refuses for room (then only when the server as a whole is
 * behind) is not retried: the sender gets {"status":"error",...} and may
 * send again.
 *
 * Handlers run on this program's main thread (the default queued-event
 * mode): main() waits on the server's event queue with a bounded timeout
 * and dispatches; SIGINT/SIGTERM set a flag that the loop checks, then the
 * server shuts down gracefully (every client gets close 1001) and the
 * program exits 0.
 *
 *   wsnotify-chat [--host ADDR] [--port N] [--static-dir DIR] [--verbose]
 *                 [--broker URL] [--auth-token T] [--metrics]
 *                 [--metrics-token T] [--tls-cert FILE --tls-key FILE]
 *                 [--client-rate N] [--client-burst N]
 *
 * The port defaults to $WSN_PORT, else 8080. With --broker (or
 * $WSN_BROKER) redis://host:port, several chat servers share their rooms
 * through Redis (docs/scale-out.md). With --auth-token T, only clients
 * that send ?token=T or "Authorization: Bearer T" connect (others get
 * 401: docs/production.md). Startup, shutdown and
 * failures are logged at info level; one line per connection and per
 * message only with --verbose (debug level), so that a busy server does
 * not spend its time writing its log. There is no --compression: the
 * engine refuses permessage-deflate (docs/api.md, "Compression").
 * --metrics serves the engine's counters at GET /metrics in the Prometheus
 * text format (docs/production.md); with --metrics-token T (or
 * $WSN_METRICS_TOKEN) only to "Authorization: Bearer T".
 * With --tls-cert and --tls-key the page and the WebSocket are served over
 * https:// and wss:// only; SIGHUP reads the two files again (after a
 * certificate renewal) without dropping anyone.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wsnotify.h"

#ifndef WSN_CHAT_STATIC_DIR
#define WSN_CHAT_STATIC_DIR ""
#endif

#define SHUTDOWN_TIMEOUT_MS 10000
#define WAIT_SLICE_MS 250

/* The one piece of process-wide state: a signal handler has nowhere else
 * to put what it saw. Atomic, not volatile sig_atomic_t: the kernel may
 * run the handler on the engine's I/O thread while main reads it. */
static atomic_int stop_signal;
static atomic_int reload_signal;

static void on_signal(int sig) { atomic_store(&stop_signal, sig); }
static void on_hangup(int sig) { atomic_store(&reload_signal, sig); }

/* ---- logging ----------------------------------------------------------- */

static void log_line(const char *who, const char *level, const char *fmt,
                     va_list ap) {
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);

    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* Channel names and ids come from clients: keep control characters
     * out of the terminal. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "%s.%03ld %-5s %s: %s\n", stamp, ts.tv_nsec / 1000000L,
            level, who, msg);
}

static void chat_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void chat_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line("chat", "INFO", fmt, ap);
    va_end(ap);
}

/* What the handlers need from the command line (owned by main(), handed to
 * every handler as its user pointer; read-only once the server runs). */
struct chat {
    int verbose;            /* --verbose: log every connection and message */
    const char *auth_token; /* --auth-token: NULL = anyone may connect */
};

/* A line per connection or message: only with --verbose. */
static void chat_debug(const struct chat *app, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void chat_debug(const struct chat *app, const char *fmt, ...) {
    if (!app->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line("chat", "DEBUG", fmt, ap);
    va_end(ap);
}

static void log_pass(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_pass(const char *level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_line("wsnotify", level, fmt, ap);
    va_end(ap);
}

/* The server's log lines (any of its threads, never two at once). */
static void on_server_log(void *user, wsn_log_level level, const char *msg) {
    (void)user;
    static const char *const names[] = {"NONE", "ERROR", "WARN", "INFO",
                                        "DEBUG"};
    const char *name =
        (level >= WSN_LOG_NONE && level <= WSN_LOG_DEBUG) ? names[level] : "?";
    log_pass(name, "%s", msg);
}

/* ---- handlers (all on the main thread, from wsn_server_dispatch) ------- */

static void on_connect(void *user, wsn_server *srv, const wsn_event *ev) {
    const struct chat *app = user;
    if (!app->verbose)
        return;
    wsn_client *c = wsn_event_client(ev);
    const char *addr = c ? wsn_client_remote_address(c) : NULL;
    chat_debug(app, "client connected: %s from %s (%d connected)",
               wsn_event_client_id(ev), addr ? addr : "?",
               wsn_server_connected_clients(srv));
}

/* The broker's state changes: up, down (with why), connecting. */
static void on_broker(void *user, wsn_server *srv, const wsn_event *ev) {
    (void)user;
    (void)srv;
    size_t len = 0;
    const char *reason = wsn_event_payload(ev, &len);
    chat_log("broker %s%s%s", wsn_event_channel(ev), len ? ": " : "", reason);
}

/* Compares in time that does not depend on where they differ. */
static int same_secret(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

/* With --auth-token: an upgrade carries the token as ?token=T or as
 * "Authorization: Bearer T", else it is refused with 401. A real server
 * would check a JWT or look a session up here, and may answer later from
 * another thread. */
static void on_upgrade(void *user, wsn_server *srv, const wsn_event *ev) {
    const struct chat *app = user;
    uint64_t id = wsn_event_upgrade_id(ev);
    char given[512] = "", auth[sizeof given + 7];
    size_t len = 0;
    if (wsn_event_upgrade_query_arg(ev, "token", given, sizeof given, &len) != WSN_OK &&
        wsn_event_upgrade_header(ev, "authorization", auth, sizeof auth, &len) == WSN_OK &&
        strncasecmp(auth, "Bearer ", 7) == 0)
        memcpy(given, auth + 7, len - 7 + 1); /* len < sizeof auth: it fits */
    int rc;
    if (*given && same_secret(given, app->auth_token)) {
        rc = wsn_server_accept_upgrade(srv, id, NULL, NULL, 0, 0);
    } else {
        chat_debug(app, "upgrade from %s refused: bad or missing token",
                   wsn_event_reply_to_id(ev));
        rc = wsn_server_reject_upgrade(srv, id, 401, "bad or missing token");
    }
    if (rc != WSN_OK)
        chat_log("answering upgrade %llu: %s", (unsigned long long)id, wsn_strerror(rc));
}

static void on_disconnect(void *user, wsn_server *srv, const wsn_event *ev) {
    const struct chat *app = user;
    chat_debug(app, "client disconnected: %s (%d connected)",
               wsn_event_client_id(ev), wsn_server_connected_clients(srv));
}

/* A publish refused for room is the server being behind, many at once:
 * a line for each would flood the log, so they are debug lines. */
static void log_failure(const struct chat *app, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_failure(const struct chat *app, int rc, const char *fmt, ...) {
    if (rc == WSN_EAGAIN && !app->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_line("chat", rc == WSN_EAGAIN ? "DEBUG" : "INFO", fmt, ap);
    va_end(ap);
}

/* Sends one JSON value to one client, never waiting for room; logs a
 * failure. */
static void reply(const struct chat *app, wsn_server *srv, wsn_client *client,
                  const char *channel, json_t *value, const char *reply_to) {
    char *text = json_dumps(value, JSON_COMPACT);
    if (!text) {
        chat_log("out of memory encoding a reply");
        return;
    }
    /* jansson's output is JSON: the core need not check it again. */
    int rc = wsn_server_publish_ex(srv, client, channel, WSN_TYPE_JSON, text,
                                   strlen(text), NULL, reply_to,
                                   WSN_PUBLISH_NONBLOCK |
                                       WSN_PUBLISH_TRUSTED_JSON);
    if (rc != WSN_OK)
        log_failure(app, rc, "reply to %s failed: %s", wsn_client_id(client),
                    wsn_strerror(rc));
    free(text);
}

/* Unlike the Go original, which only logs, tells the client why its
 * request failed: {"status":"error","channel":...,"error":...}. The
 * envelope's channel is "": the channel name may be what was wrong. */
static void reply_error(const struct chat *app, wsn_server *srv,
                        wsn_client *client, const char *channel, int rc,
                        const char *reply_to) {
    json_t *err = json_pack("{s:s, s:s, s:s}", "status", "error", "channel",
                            channel, "error", wsn_strerror(rc));
    if (!err) {
        chat_log("out of memory building an error reply");
        return;
    }
    reply(app, srv, client, "", err, reply_to);
    json_decref(err);
}

/* A top-level string member of a JSON object (NULL when absent or not a
 * string); the caller frees it. */
static char *string_member(const char *json, size_t len, const char *key) {
    char small[64];
    size_t need = 0;
    int rc = wsn_json_get_string(json, len, key, small, sizeof small, &need);
    if (rc == WSN_OK)
        return strdup(small);
    if (rc != WSN_ENOSPC)
        return NULL;
    char *s = malloc(need + 1);
    if (s && wsn_json_get_string(json, len, key, s, need + 1, NULL) != WSN_OK) {
        free(s);
        s = NULL;
    }
    return s;
}

static void handle_subscribe(const struct chat *app, wsn_server *srv,
                             wsn_client *client, const wsn_event *ev,
                             const char *payload, size_t len) {
    char *channel = string_member(payload, len, "channel");
    const char *msg_id = wsn_event_message_id(ev);
    if (!channel)
        return; /* no channel string: ignored, as in the Go original */

    int rc = wsn_server_subscribe(srv, client, channel);
    if (rc != WSN_OK) {
        chat_log("subscription failed for %s to '%s': %s",
                 wsn_client_id(client), channel, wsn_strerror(rc));
        reply_error(app, srv, client, channel, rc, msg_id);
        free(channel);
        return;
    }
    chat_debug(app, "client %s subscribed to '%s'", wsn_client_id(client),
               channel);

    json_t *ok = json_pack("{s:s, s:s}", "status", "subscribed", "channel",
                           channel);
    if (ok)
        reply(app, srv, client, channel, ok, msg_id);
    else
        chat_log("out of memory building a reply");
    json_decref(ok);
    free(channel);
}

/* Forwards the message as the client sent it: the engine has validated
 * it (and made it compact), so it goes back trusted, and re-encoding it
 * here would lose what jansson cannot hold (integers beyond 64 bits) and
 * cost a parse and a dump per broadcast. Never waits for room: a refused
 * broadcast was not accepted, and the sender is told. */
static void handle_broadcast(const struct chat *app, wsn_server *srv,
                             wsn_client *client, const wsn_event *ev,
                             const char *payload, size_t len) {
    const char *channel = wsn_event_channel(ev);
    if (!channel || !*channel)
        return; /* the envelope names the channel; none: nothing to do */

    /* WSN_EBROKER: Redis is down; this server's members got it, and the
     * broker event has already said so. */
    int rc = wsn_server_publish_ex(srv, NULL, channel, WSN_TYPE_JSON, payload,
                                   len, NULL, NULL,
                                   WSN_PUBLISH_NONBLOCK |
                                       WSN_PUBLISH_TRUSTED_JSON);
    if (rc != WSN_OK && rc != WSN_EBROKER) {
        log_failure(app, rc, "broadcast from %s to '%s' failed: %s",
                    wsn_client_id(client), channel, wsn_strerror(rc));
        reply_error(app, srv, client, channel, rc, wsn_event_message_id(ev));
    }
}

static void on_message(void *user, wsn_server *srv, const wsn_event *ev) {
    const struct chat *app = user;
    wsn_client *client = wsn_event_client(ev);
    wsn_message_type type = wsn_event_message_type(ev);
    if (app->verbose) {
        const char *type_name = wsn_message_type_name(type);
        chat_debug(app, "message from %s: type=%s, channel=%s",
                   wsn_event_client_id(ev), type_name ? type_name : "?",
                   wsn_event_channel(ev));
    }

    /* The chat protocol is JSON objects with an "action". */
    if (!client || type != WSN_TYPE_JSON)
        return;
    size_t len = 0;
    const char *payload = wsn_event_payload(ev, &len);
    if (!payload)
        return;

    /* Only "action" is read here (and "channel" to subscribe), so the
     * message is not parsed into a tree: a broadcast of any size costs one
     * scan. Anything but an object with a string action is ignored. */
    char action[16];
    if (wsn_json_get_string(payload, len, "action", action, sizeof action,
                            NULL) != WSN_OK)
        return;
    if (strcmp(action, "subscribe") == 0)
        handle_subscribe(app, srv, client, ev, payload, len);
    else if (strcmp(action, "broadcast") == 0)
        handle_broadcast(app, srv, client, ev, payload, len);
}

/* ---- command line ------------------------------------------------------ */

struct config {
    const char *host;
    int port;
    const char *static_dir;
    int verbose;
    const char *broker; /* "" = this process only */
    const char *auth_token; /* NULL = no authentication */
    int metrics;               /* --metrics: serve GET /metrics */
    const char *metrics_token; /* "" = /metrics open */
    const char *tls_cert, *tls_key; /* "" = plain http:// and ws:// */
    long client_rate, client_burst;  /* -1 = the engine's default */
};

static void usage(FILE *out, const char *argv0) {
    fprintf(out,
            "usage: %s [--host ADDR] [--port N] [--static-dir DIR] "
            "[--verbose] [--broker URL] [--auth-token T]\n"
            "       [--metrics] [--metrics-token T]\n"
            "       [--tls-cert FILE --tls-key FILE]\n"
            "       [--client-rate N] [--client-burst N]\n"
            "\n"
            "  --host ADDR        listen address (default 127.0.0.1;\n"
            "                     0.0.0.0 for every interface)\n"
            "  --port N           TCP port (default $WSN_PORT, else 8080;\n"
            "                     0 = any free port)\n"
            "  --static-dir DIR   folder holding index.html (default: the\n"
            "                     source folder this binary was built from)\n"
            "  --verbose          log at debug level: also one line per\n"
            "                     connection and per message\n"
            "  --broker URL       share rooms with other chat servers through\n"
            "                     Redis: redis://127.0.0.1:6379 (default\n"
            "                     $WSN_BROKER, else none)\n"
            "  --auth-token T     clients must send ?token=T or\n"
            "                     \"Authorization: Bearer T\"; others get 401\n"
            "                     (default $WSN_AUTH_TOKEN, else no check;\n"
            "                     open the page as /?token=T)\n"
            "  --metrics          serve GET /metrics (Prometheus text format)\n"
            "  --metrics-token T  with --metrics: answer only requests with\n"
            "                     'Authorization: Bearer T' (default\n"
            "                     $WSN_METRICS_TOKEN, else open)\n"
            "  --tls-cert FILE    PEM certificate (chain): serve https:// and\n"
            "                     wss:// only; SIGHUP reloads it\n"
            "  --tls-key FILE     its PEM private key\n"
            "  --client-rate N    messages a client may send per second before\n"
            "                     it is closed with 1008 (default the engine's,\n"
            "                     100; 0 = no limit)\n"
            "  --client-burst N   what a quiet client may send at once (200)\n",
            argv0);
}

static int parse_port(const char *s, int *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_count(const char *s, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

static int is_dir_with_index(const char *dir) {
    char path[PATH_MAX];
    struct stat st;
    if (!dir || !*dir)
        return 0;
    if (snprintf(path, sizeof path, "%s/index.html", dir) >= (int)sizeof path)
        return 0;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The page's folder: --static-dir, else the source folder compiled in,
 * else the folder holding this executable. buf receives the fallback. */
static const char *find_static_dir(const char *given, char *buf, size_t cap) {
    if (given)
        return is_dir_with_index(given) ? given : NULL;
    if (is_dir_with_index(WSN_CHAT_STATIC_DIR))
        return WSN_CHAT_STATIC_DIR;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n > 0) {
        buf[n] = '\0';
        char *slash = strrchr(buf, '/');
        if (slash) {
            *slash = '\0';
            if (is_dir_with_index(buf))
                return buf;
        }
    }
    return NULL;
}

static int parse_args(int argc, char **argv, struct config *cfg) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        size_t alen = strlen(a);
        /* accept both "--opt value" and "--opt=value" */
        const char *eq = strchr(a, '=');
        if (eq && strncmp(a, "--", 2) == 0) {
            alen = (size_t)(eq - a);
            val = eq + 1;
        }
#define IS(name) (alen == strlen(name) && strncmp(a, name, alen) == 0)
#define NEED_VALUE()                                                           \
    do {                                                                       \
        if (!val) {                                                            \
            if (i + 1 >= argc) {                                               \
                fprintf(stderr, "%s: %s needs a value\n", argv[0], a);         \
                return -1;                                                     \
            }                                                                  \
            val = argv[++i];                                                   \
        }                                                                      \
    } while (0)
        if (IS("-h") || IS("--help")) {
            usage(stdout, argv[0]);
            exit(0);
        } else if (IS("--host")) {
            NEED_VALUE();
            cfg->host = val;
        } else if (IS("--port") || IS("-p")) {
            NEED_VALUE();
            if (parse_port(val, &cfg->port) != 0) {
                fprintf(stderr, "%s: bad port '%s'\n", argv[0], val);
                return -1;
            }
        } else if (IS("--static-dir")) {
            NEED_VALUE();
            cfg->static_dir = val;
        } else if (IS("--broker")) {
            NEED_VALUE();
            cfg->broker = val;
        } else if (IS("--auth-token")) {
            NEED_VALUE();
            if (!*val) {
                fprintf(stderr, "%s: --auth-token needs a non-empty token\n", argv[0]);
                return -1;
            }
            cfg->auth_token = val;
        } else if (IS("--metrics")) {
            cfg->metrics = 1;
        } else if (IS("--metrics-token")) {
            NEED_VALUE();
            cfg->metrics_token = val;
        } else if (IS("--tls-cert")) {
            NEED_VALUE();
            cfg->tls_cert = val;
        } else if (IS("--tls-key")) {
            NEED_VALUE();
            cfg->tls_key = val;
        } else if (IS("--client-rate") || IS("--client-burst")) {
            long *to = IS("--client-rate") ? &cfg->client_rate : &cfg->client_burst;
            NEED_VALUE();
            if (parse_count(val, to) != 0) {
                fprintf(stderr, "%s: bad count '%s'\n", argv[0], val);
                return -1;
            }
        } else if (IS("--verbose") || IS("-v")) {
            cfg->verbose = 1;
        } else {
            fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], a);
            return -1;
        }
#undef IS
#undef NEED_VALUE
    }
    return 0;
}

/* ---- main -------------------------------------------------------------- */

static int set_int(wsn_options *o, wsn_option id, int64_t v) {
    int rc = wsn_options_set_int(o, id, v);
    if (rc != WSN_OK)
        fprintf(stderr, "option %s: %s\n", wsn_option_name(id),
                wsn_strerror(rc));
    return rc;
}

static int set_str(wsn_options *o, wsn_option id, const char *v) {
    int rc = wsn_options_set_string(o, id, v);
    if (rc != WSN_OK)
        fprintf(stderr, "option %s: %s\n", wsn_option_name(id),
                wsn_strerror(rc));
    return rc;
}

int main(int argc, char **argv) {
    struct config cfg = {"127.0.0.1", 8080, NULL, 0, "", NULL, 0, "", "", "", -1, -1};
    if (getenv("WSN_AUTH_TOKEN") && *getenv("WSN_AUTH_TOKEN"))
        cfg.auth_token = getenv("WSN_AUTH_TOKEN");
    if (getenv("WSN_BROKER"))
        cfg.broker = getenv("WSN_BROKER");
    if (getenv("WSN_METRICS_TOKEN"))
        cfg.metrics_token = getenv("WSN_METRICS_TOKEN");
    const char *env_port = getenv("WSN_PORT");
    if (env_port && *env_port && parse_port(env_port, &cfg.port) != 0) {
        fprintf(stderr, "%s: bad WSN_PORT '%s'\n", argv[0], env_port);
        return 2;
    }
    if (parse_args(argc, argv, &cfg) != 0) {
        usage(stderr, argv[0]);
        return 2;
    }

    char exe_dir[PATH_MAX];
    const char *static_dir =
        find_static_dir(cfg.static_dir, exe_dir, sizeof exe_dir);
    if (!static_dir) {
        fprintf(stderr,
                "%s: no index.html in %s; pass --static-dir "
                "path/to/examples/chat\n",
                argv[0],
                cfg.static_dir ? cfg.static_dir
                               : (*WSN_CHAT_STATIC_DIR ? WSN_CHAT_STATIC_DIR
                                                       : "(no default)"));
        return 2;
    }

    /* Signals: a flag checked by the event loop between bounded waits. No
     * SA_RESTART, so a blocked wait returns early on EINTR. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hangup;
    sigaction(SIGHUP, &sa, NULL);

    wsn_options *opts = wsn_options_new();
    if (!opts) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    int rc = 0;
    rc |= set_str(opts, WSN_OPT_HOST, cfg.host);
    rc |= set_int(opts, WSN_OPT_PORT, cfg.port);
    rc |= set_str(opts, WSN_OPT_PATH, "/ws");
    /* Browsers are not trusted to read: one that stops is closed when its
     * queue is full. Block mode would make every publish wait for it. */
    rc |= set_int(opts, WSN_OPT_DROP_ON_BACKPRESSURE, 1);
    rc |= set_str(opts, WSN_OPT_STATIC_DIR, static_dir);
    rc |= set_str(opts, WSN_OPT_BROKER, cfg.broker);
    rc |= set_int(opts, WSN_OPT_AUTHENTICATE, cfg.auth_token != NULL);
    rc |= set_int(opts, WSN_OPT_METRICS, cfg.metrics);
    rc |= set_str(opts, WSN_OPT_METRICS_TOKEN, cfg.metrics_token);
    rc |= set_str(opts, WSN_OPT_TLS_CERT, cfg.tls_cert);
    rc |= set_str(opts, WSN_OPT_TLS_KEY, cfg.tls_key);
    if (cfg.client_rate >= 0)
        rc |= set_int(opts, WSN_OPT_CLIENT_RATE, cfg.client_rate);
    if (cfg.client_burst >= 0)
        rc |= set_int(opts, WSN_OPT_CLIENT_BURST, cfg.client_burst);
    rc |= set_int(opts, WSN_OPT_LOG_LEVEL,
                  cfg.verbose ? WSN_LOG_DEBUG : WSN_LOG_INFO);
    if (rc == 0)
        rc = wsn_options_set_logger(opts, on_server_log, NULL);
    if (rc != 0) {
        wsn_options_free(opts);
        return 2;
    }

    wsn_server *srv = NULL;
    char err[256] = "";
    rc = wsn_server_new(opts, &srv, err, sizeof err);
    wsn_options_free(opts);
    if (rc != WSN_OK) {
        fprintf(stderr, "wsn_server_new: %s: %s\n", wsn_strerror(rc), err);
        return 1;
    }

    struct chat app = {cfg.verbose, cfg.auth_token};
    wsn_server_set_handler(srv, WSN_EVENT_CONNECT, on_connect, &app);
    wsn_server_set_handler(srv, WSN_EVENT_MESSAGE, on_message, &app);
    wsn_server_set_handler(srv, WSN_EVENT_DISCONNECT, on_disconnect, &app);
    wsn_server_set_handler(srv, WSN_EVENT_BROKER, on_broker, &app);
    if (cfg.auth_token)
        wsn_server_set_handler(srv, WSN_EVENT_UPGRADE, on_upgrade, &app);

    rc = wsn_server_start(srv);
    if (rc != WSN_OK) {
        if (wsn_server_last_error(srv, err, sizeof err) == 0)
            snprintf(err, sizeof err, "cannot listen on %s:%d: %s", cfg.host,
                     cfg.port, wsn_strerror(rc));
        fprintf(stderr, "%s: %s\n", argv[0], err);
        wsn_server_free(srv);
        return 1;
    }
    chat_log("chat server on %s://%s:%d/ (WebSocket /ws, page from %s)",
             *cfg.tls_cert ? "https" : "http", cfg.host, wsn_server_port(srv), static_dir);
    if (cfg.metrics)
        chat_log("metrics at %s://%s:%d/metrics%s", *cfg.tls_cert ? "https" : "http", cfg.host,
                 wsn_server_port(srv), *cfg.metrics_token ? " (bearer token required)" : "");
    chat_log("open it in two browser tabs; Ctrl-C to stop");

    /* The event loop: handlers run here, on the main thread. */
    int stopped = 0;
    while (!atomic_load(&stop_signal)) {
        if (atomic_exchange(&reload_signal, 0)) {
            rc = wsn_server_reload_tls(srv);
            if (rc == WSN_OK)
                chat_log("SIGHUP: TLS certificate reloaded");
            else if ((rc == WSN_EIO || rc == WSN_EINVAL) &&
                     wsn_server_last_error(srv, err, sizeof err))
                chat_log("SIGHUP: TLS reload: %s: %s", wsn_strerror(rc), err);
            else
                chat_log("SIGHUP: TLS reload: %s", wsn_strerror(rc));
        }
        int w = wsn_server_wait(srv, WAIT_SLICE_MS);
        if (w == WSN_ECLOSED) {
            stopped = 1; /* the server stopped on its own */
            break;
        }
        if (w > 0 && wsn_server_dispatch(srv, 0) == WSN_ECLOSED) {
            stopped = 1;
            break;
        }
    }

    int exit_code = 0;
    if (stopped) {
        chat_log("server stopped unexpectedly");
        exit_code = 1;
    } else {
        chat_log("got %s, shutting down",
                 atomic_load(&stop_signal) == SIGINT ? "SIGINT" : "SIGTERM");
        /* A second Ctrl-C during shutdown kills the process the usual way. */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        rc = wsn_server_shutdown(srv, SHUTDOWN_TIMEOUT_MS);
        if (rc == WSN_ETIMEDOUT)
            chat_log("shutdown timed out: some clients were cut");
        else if (rc != WSN_OK)
            chat_log("shutdown: %s", wsn_strerror(rc));
        /* Run the disconnect handlers still queued, up to STOPPED. */
        for (;;) {
            int w = wsn_server_wait(srv, WAIT_SLICE_MS);
            if (w == WSN_ECLOSED)
                break;
            if (w == 0)
                break; /* nothing more within a slice: stop waiting */
            if (w > 0 && wsn_server_dispatch(srv, 0) == WSN_ECLOSED)
                break;
            if (w < 0)
                break;
        }
        chat_log("server gracefully stopped");
    }
    wsn_server_free(srv);
    return exit_code;
}
