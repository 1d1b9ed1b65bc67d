/*
 * testutil: assertions, server/client helpers and bounded wait helpers for
 * the wsnotify C tests.
 *
 * Every check prints file:line and the values involved, then ends the
 * process with status 1. Every wait is bounded by a deadline; a deadline
 * that passes is a failure, never a silent continue.
 */
#ifndef WSN_TEST_TESTUTIL_H
#define WSN_TEST_TESTUTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "wsclient.h"
#include "wsnotify.h"

/* Upper bound for waits that should be quick; sanitizer builds are slow. */
#define TU_TIMEOUT 10000

#if defined(__GNUC__)
#define TU_NORETURN __attribute__((noreturn))
#define TU_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TU_NORETURN
#define TU_PRINTF(a, b)
#endif

TU_NORETURN TU_PRINTF(3, 4) void tu_fail(const char *file, int line,
                                         const char *fmt, ...);
void tu_note(const char *fmt, ...) TU_PRINTF(1, 2);

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond))                                                          \
            tu_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                  \
    } while (0)

#define CHECK_MSG(cond, ...)                                                  \
    do {                                                                      \
        if (!(cond))                                                          \
            tu_fail(__FILE__, __LINE__, __VA_ARGS__);                         \
    } while (0)

#define CHECK_EQ(a, b)                                                        \
    do {                                                                      \
        long long _a = (long long)(a), _b = (long long)(b);                   \
        if (_a != _b)                                                         \
            tu_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, _a, \
                    _b);                                                      \
    } while (0)

/* A wsn_* call expected to return `want` (a wsn_status). */
#define CHECK_RC(expr, want)                                                  \
    do {                                                                      \
        int _r = (int)(expr), _w = (int)(want);                               \
        if (_r != _w)                                                         \
            tu_fail(__FILE__, __LINE__, "%s returned %d (%s), want %d (%s)",  \
                    #expr, _r, wsn_err_name(_r), _w, wsn_err_name(_w));       \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, WSN_OK)

/* A wsc_* call expected to return WSC_OK. */
#define CHECK_WSC(expr)                                                       \
    do {                                                                      \
        int _r = (expr);                                                      \
        if (_r != WSC_OK)                                                     \
            tu_fail(__FILE__, __LINE__, "%s returned %s", #expr,              \
                    wsc_strerror(_r));                                        \
    } while (0)

#define CHECK_STR(a, b)                                                       \
    do {                                                                      \
        const char *_a = (a), *_b = (b);                                      \
        if (!_a || !_b || strcmp(_a, _b) != 0)                                \
            tu_fail(__FILE__, __LINE__, "%s == %s:\n  got  '%s'\n  want '%s'", \
                    #a, #b, _a ? _a : "(null)", _b ? _b : "(null)");          \
    } while (0)

#define CHECK_MEM(a, alen, b, blen)                                           \
    do {                                                                      \
        size_t _al = (alen), _bl = (blen);                                    \
        if (_al != _bl || (_al && memcmp((a), (b), _al) != 0))                \
            tu_fail(__FILE__, __LINE__,                                       \
                    "%s (%zu bytes) differs from %s (%zu bytes)", #a, _al,    \
                    #b, _bl);                                                 \
    } while (0)

/* Polls cond every 2 ms until it holds; fails after timeout_ms. */
#define TU_WAIT_FOR(cond, timeout_ms)                                         \
    do {                                                                      \
        int64_t _dl = tu_now_ms() + (timeout_ms);                             \
        while (!(cond)) {                                                     \
            if (tu_now_ms() > _dl)                                            \
                tu_fail(__FILE__, __LINE__, "timed out after %d ms: %s",      \
                        (int)(timeout_ms), #cond);                            \
            tu_sleep_ms(2);                                                   \
        }                                                                     \
    } while (0)

int64_t tu_now_ms(void);
/* Only for simulating a slow peer, never as synchronisation. */
void tu_sleep_ms(int ms);

/* ---- test programs ---- */

typedef struct tu_test {
    const char *name;
    void (*fn)(void);
} tu_test;

/* Runs the test named by argv[1], or all of them. Table ends with NULL. */
int tu_main(const tu_test *tests, int argc, char **argv);

/* Raises RLIMIT_NOFILE's soft limit to at least n (fails if impossible). */
void tu_raise_nofile(long n);

/* ---- servers ---- */

/* Options for a test server: 127.0.0.1, port 0, a stderr logger at WARN. */
wsn_options *tu_opts(void);
/* wsn_server_new + start; fails the test on error. opts may be NULL
 * (tu_opts() is used then). Does not free opts. */
wsn_server *tu_server(const wsn_options *opts);
void tu_set_int(wsn_options *o, wsn_option id, int64_t v);
void tu_set_str(wsn_options *o, wsn_option id, const char *v);

/* ---- clients ---- */

wsc *tu_connect(int port);
wsc *tu_connect_path(int port, const char *path);
wsc *tu_connect_opts(const wsc_opts *o);
/* Status of an upgrade attempt that is expected not to be upgraded:
 * returns the HTTP status (0 when the server answered nothing). Fails if it
 * was upgraded. */
int tu_connect_refused(const wsc_opts *o);

/* The next message; fails unless it arrives within timeout_ms. */
void tu_recv(wsc *c, wsc_msg *m, int timeout_ms);
/* The next message must be a text frame with exactly these bytes. */
void tu_expect_text(wsc *c, const char *exact);
/* The next message must be a text envelope equal to `exact` once its time
 * value (checked to be RFC 3339 UTC nanoseconds trimmed) is replaced by
 * "T". */
void tu_expect_envelope(wsc *c, const char *exact);
/* The next message must be a close frame with this code and reason
 * (reason NULL: not checked). */
void tu_expect_close(wsc *c, int code, const char *reason);

/* Checks the "time" value of an envelope and returns a malloc'ed copy with
 * the value replaced by "T". Fails when there is no valid time. */
char *tu_strip_time(const char *json);
/* 1 when s is RFC 3339 UTC with 0-9 fraction digits, no trailing zeros. */
int tu_is_rfc3339nano(const char *s);

/* ---- events (queued mode) ---- */

/* Waits (wsn_server_wait) for the next event and takes it. */
wsn_event *tu_event(wsn_server *srv, int timeout_ms);
/* The same, and checks its kind. */
wsn_event *tu_expect_event(wsn_server *srv, wsn_event_type kind,
                           int timeout_ms);
/* Connects a client and takes its CONNECT event; returns the client handle
 * retained (release it) and the wsc in *out. Queued-event servers only. */
wsn_client *tu_accept(wsn_server *srv, wsc **out);
wsn_client *tu_accept_opts(wsn_server *srv, const wsc_opts *o, wsc **out);
/* Takes events until a DISCONNECT for `client_id`; other events are
 * skipped (freed). */
void tu_expect_disconnect_of(wsn_server *srv, const char *client_id,
                             int timeout_ms);

/* ---- an event recorder usable as handler (any thread) ---- */

typedef struct tu_rec_event {
    int kind;
    char client_id[64];
    int msg_type;
    char *channel, *payload, *message_id, *reply_to_id;
    size_t len;
    pthread_t thread;
    wsn_client *client; /* retained; released by tu_recorder_free */
} tu_rec_event;

typedef struct tu_recorder {
    pthread_mutex_t mu;
    tu_rec_event *ev;
    int n, cap;
} tu_recorder;

void tu_recorder_init(tu_recorder *r);
/* Registers the recorder for all four event types. */
void tu_recorder_attach(tu_recorder *r, wsn_server *srv);
void tu_recorder_free(tu_recorder *r);
int tu_recorder_count(tu_recorder *r, int kind);
int tu_recorder_total(tu_recorder *r);
/* A copy of event i (payload pointers stay owned by the recorder). */
tu_rec_event tu_recorder_get(tu_recorder *r, int i);
/* The handler itself (user = tu_recorder *). */
void tu_recorder_handler(void *user, wsn_server *srv, const wsn_event *ev);

/* ---- misc ---- */

/* Base64 (standard, padded) via libwebsockets; malloc'ed. */
char *tu_b64(const void *data, size_t len);
/* A malloc'ed sprintf. */
char *tu_strdupf(const char *fmt, ...) TU_PRINTF(1, 2);
/* A temporary directory (mkdtemp), malloc'ed path. */
char *tu_tempdir(void);
void tu_write_file(const char *path, const char *content);

#endif
