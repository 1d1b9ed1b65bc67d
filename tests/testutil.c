/* testutil: helpers for the wsnotify C tests. */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>

void tu_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    fflush(stdout);
    _exit(1);
}

void tu_note(const char *fmt, ...)
{
    va_list ap;
    fputs("  note: ", stdout);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int tu_main(const tu_test *tests, int argc, char **argv)
{
    const tu_test *t;
    int ran = 0;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (t = tests; t->name; t++)
            printf("%s\n", t->name);
        return 0;
    }
    for (t = tests; t->name; t++) {
        if (argc > 1 && strcmp(argv[1], t->name) != 0)
            continue;
        printf("== %s\n", t->name);
        t->fn();
        printf("ok %s\n", t->name);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "no test named '%s'\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    return 0;
}

void tu_raise_nofile(long n)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if ((long)rl.rlim_cur >= n)
        return;
    CHECK_MSG(rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= n,
              "RLIMIT_NOFILE hard limit %ld < %ld", (long)rl.rlim_max, n);
    rl.rlim_cur = (rlim_t)n;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
}

/* ---- servers ---- */

static void stderr_logger(void *user, wsn_log_level level, const char *msg)
{
    (void)user;
    fprintf(stderr, "  [wsn %d] %s\n", (int)level, msg);
}

void tu_set_int(wsn_options *o, wsn_option id, int64_t v)
{
    int rc = wsn_options_set_int(o, id, v);
    CHECK_MSG(rc == 0, "set option %s = %lld: %s", wsn_option_name(id),
              (long long)v, wsn_err_name(rc));
}

void tu_set_str(wsn_options *o, wsn_option id, const char *v)
{
    int rc = wsn_options_set_string(o, id, v);
    CHECK_MSG(rc == 0, "set option %s = '%s': %s", wsn_option_name(id), v,
              wsn_err_name(rc));
}

wsn_options *tu_opts(void)
{
    wsn_options *o = wsn_options_new();
    CHECK(o != NULL);
    tu_set_str(o, WSN_OPT_HOST, "127.0.0.1");
    tu_set_int(o, WSN_OPT_PORT, 0);
    tu_set_int(o, WSN_OPT_LOG_LEVEL, getenv("WSN_TEST_DEBUG") ? WSN_LOG_DEBUG : WSN_LOG_WARN);
    CHECK_OK(wsn_options_set_logger(o, stderr_logger, NULL));
    return o;
}

wsn_server *tu_server(const wsn_options *opts)
{
    wsn_options *own = NULL;
    wsn_server *srv = NULL;
    char err[256] = "";
    int rc;
    if (!opts)
        opts = own = tu_opts();
    rc = wsn_server_new(opts, &srv, err, sizeof err);
    CHECK_MSG(rc == 0 && srv, "wsn_server_new: %s: %s", wsn_err_name(rc), err);
    rc = wsn_server_start(srv);
    if (rc != 0) {
        wsn_server_last_error(srv, err, sizeof err);
        tu_fail(__FILE__, __LINE__, "wsn_server_start: %s: %s",
                wsn_err_name(rc), err);
    }
    CHECK_MSG(wsn_server_port(srv) > 0, "port %d after start",
              wsn_server_port(srv));
    wsn_options_free(own);
    return srv;
}

/* ---- clients ---- */

wsc *tu_connect_opts(const wsc_opts *o)
{
    wsc *c = NULL;
    int status = 0;
    int rc = wsc_connect(o, &c, &status);
    CHECK_MSG(rc == WSC_OK, "connect to %s:%d%s: %s (HTTP status %d)",
              o->addr ? o->addr : "127.0.0.1", o->port,
              o->path ? o->path : "/ws", wsc_strerror(rc), status);
    return c;
}

wsc *tu_connect_path(int port, const char *path)
{
    wsc_opts o;
    memset(&o, 0, sizeof o);
    o.port = port;
    o.path = path;
    return tu_connect_opts(&o);
}

wsc *tu_connect(int port) { return tu_connect_path(port, NULL); }

int tu_connect_refused(const wsc_opts *o)
{
    wsc *c = NULL;
    int status = 0;
    int rc = wsc_connect(o, &c, &status);
    if (rc == WSC_OK) {
        wsc_free(c);
        tu_fail(__FILE__, __LINE__,
                "upgrade with origin '%s' path '%s' succeeded, expected a "
                "refusal",
                o->origin ? o->origin : "(none)", o->path ? o->path : "/ws");
    }
    CHECK_MSG(rc == WSC_EHTTP || rc == WSC_EOF || rc == WSC_ECONN,
              "refused upgrade: unexpected %s", wsc_strerror(rc));
    return rc == WSC_EHTTP ? status : 0;
}

void tu_recv(wsc *c, wsc_msg *m, int timeout_ms)
{
    int rc = wsc_recv_msg(c, m, timeout_ms);
    CHECK_MSG(rc == WSC_OK, "receiving a message: %s", wsc_strerror(rc));
}

void tu_expect_text(wsc *c, const char *exact)
{
    wsc_msg m;
    tu_recv(c, &m, TU_TIMEOUT);
    CHECK_MSG(m.opcode == WSC_OP_TEXT, "opcode %d (close %d '%s'), want text '%s'",
              m.opcode, m.close_code, m.close_reason, exact);
    CHECK_STR((const char *)m.data, exact);
    CHECK_EQ(m.len, strlen(exact));
    wsc_msg_clear(&m);
}

void tu_expect_envelope(wsc *c, const char *exact)
{
    wsc_msg m;
    char *s;
    tu_recv(c, &m, TU_TIMEOUT);
    CHECK_MSG(m.opcode == WSC_OP_TEXT,
              "opcode %d (close %d '%s'), want text envelope %s", m.opcode,
              m.close_code, m.close_reason, exact);
    CHECK_EQ(m.len, strlen((const char *)m.data));
    s = tu_strip_time((const char *)m.data);
    CHECK_STR(s, exact);
    free(s);
    wsc_msg_clear(&m);
}

void tu_expect_close(wsc *c, int code, const char *reason)
{
    wsc_msg m;
    tu_recv(c, &m, TU_TIMEOUT);
    CHECK_MSG(m.opcode == WSC_OP_CLOSE,
              "want close %d, got opcode %d: %.200s", code, m.opcode,
              m.data ? (const char *)m.data : "");
    CHECK_EQ(m.close_code, code);
    if (reason)
        CHECK_STR(m.close_reason, reason);
    wsc_msg_clear(&m);
}

int tu_is_rfc3339nano(const char *s)
{
    static const char *re =
        "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3])"
        ":[0-5][0-9]:[0-5][0-9](\\.[0-9]{0,8}[1-9])?Z$";
    regex_t rx;
    int ok;
    CHECK(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB) == 0);
    ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    return ok;
}

char *tu_strip_time(const char *json)
{
    const char *k = strstr(json, "\"time\":\"");
    const char *v, *e;
    char tbuf[64];
    char *out;
    size_t vl;
    CHECK_MSG(k != NULL, "no \"time\" in %s", json);
    v = k + 8;
    e = strchr(v, '"');
    CHECK_MSG(e != NULL, "unterminated time in %s", json);
    vl = (size_t)(e - v);
    CHECK_MSG(vl < sizeof tbuf, "time too long in %s", json);
    memcpy(tbuf, v, vl);
    tbuf[vl] = '\0';
    CHECK_MSG(tu_is_rfc3339nano(tbuf), "time '%s' is not RFC 3339 UTC nano (trimmed)",
              tbuf);
    out = malloc(strlen(json) + 2);
    CHECK(out != NULL);
    memcpy(out, json, (size_t)(v - json));
    out[v - json] = 'T';
    strcpy(out + (v - json) + 1, e);
    return out;
}

/* ---- events ---- */

wsn_event *tu_event(wsn_server *srv, int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        wsn_event *ev = NULL;
        int rc = wsn_server_next_event(srv, &ev);
        int left;
        if (rc == 0) {
            CHECK(ev != NULL);
            return ev;
        }
        CHECK_MSG(rc == WSN_EAGAIN, "wsn_server_next_event: %s",
                  wsn_err_name(rc));
        left = (int)(deadline - tu_now_ms());
        CHECK_MSG(left > 0, "no event within %d ms", timeout_ms);
        rc = wsn_server_wait(srv, left);
        CHECK_MSG(rc == 0 || rc == 1, "wsn_server_wait: %s", wsn_err_name(rc));
    }
}

static const char *kind_name(int k)
{
    switch (k) {
    case WSN_EVENT_CONNECT: return "CONNECT";
    case WSN_EVENT_MESSAGE: return "MESSAGE";
    case WSN_EVENT_DISCONNECT: return "DISCONNECT";
    case WSN_EVENT_STOPPED: return "STOPPED";
    }
    return "?";
}

wsn_event *tu_expect_event(wsn_server *srv, wsn_event_type kind,
                           int timeout_ms)
{
    wsn_event *ev = tu_event(srv, timeout_ms);
    CHECK_MSG(wsn_event_kind(ev) == kind, "event %s (client %s), want %s",
              kind_name(wsn_event_kind(ev)), wsn_event_client_id(ev),
              kind_name(kind));
    return ev;
}

wsn_client *tu_accept_opts(wsn_server *srv, const wsc_opts *o, wsc **out)
{
    wsn_event *ev;
    wsn_client *cl;
    *out = tu_connect_opts(o);
    ev = tu_expect_event(srv, WSN_EVENT_CONNECT, TU_TIMEOUT);
    cl = wsn_event_client(ev);
    CHECK(cl != NULL);
    cl = wsn_client_retain(cl);
    CHECK(cl != NULL);
    CHECK_STR(wsn_client_id(cl), wsn_event_client_id(ev));
    wsn_event_free(ev);
    return cl;
}

wsn_client *tu_accept(wsn_server *srv, wsc **out)
{
    wsc_opts o;
    memset(&o, 0, sizeof o);
    o.port = wsn_server_port(srv);
    return tu_accept_opts(srv, &o, out);
}

void tu_expect_disconnect_of(wsn_server *srv, const char *client_id,
                             int timeout_ms)
{
    int64_t deadline = tu_now_ms() + timeout_ms;
    int i;
    for (i = 0; i < 100000; i++) {
        int left = (int)(deadline - tu_now_ms());
        wsn_event *ev;
        CHECK_MSG(left > 0, "no DISCONNECT of %s within %d ms", client_id,
                  timeout_ms);
        ev = tu_event(srv, left);
        if (wsn_event_kind(ev) == WSN_EVENT_DISCONNECT &&
            strcmp(wsn_event_client_id(ev), client_id) == 0) {
            wsn_event_free(ev);
            return;
        }
        CHECK_MSG(wsn_event_kind(ev) != WSN_EVENT_STOPPED,
                  "STOPPED before DISCONNECT of %s", client_id);
        wsn_event_free(ev);
    }
    tu_fail(__FILE__, __LINE__, "too many events before DISCONNECT");
}

/* ---- recorder ---- */

void tu_recorder_init(tu_recorder *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    CHECK(d != NULL);
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void tu_recorder_handler(void *user, wsn_server *srv, const wsn_event *ev)
{
    tu_recorder *r = user;
    tu_rec_event e;
    (void)srv;
    memset(&e, 0, sizeof e);
    e.kind = (int)wsn_event_kind(ev);
    e.thread = pthread_self();
    snprintf(e.client_id, sizeof e.client_id, "%s", wsn_event_client_id(ev));
    if (e.kind != WSN_EVENT_STOPPED) {
        e.client = wsn_event_client(ev);
        CHECK_MSG(e.client != NULL, "event without client");
        e.client = wsn_client_retain(e.client);
    }
    if (e.kind == WSN_EVENT_MESSAGE) {
        const void *p = wsn_event_payload(ev, &e.len);
        e.msg_type = (int)wsn_event_message_type(ev);
        e.payload = dupn(p, e.len);
        e.channel = dupn(wsn_event_channel(ev), strlen(wsn_event_channel(ev)));
        e.message_id = dupn(wsn_event_message_id(ev),
                            strlen(wsn_event_message_id(ev)));
        e.reply_to_id = dupn(wsn_event_reply_to_id(ev),
                             strlen(wsn_event_reply_to_id(ev)));
    }
    pthread_mutex_lock(&r->mu);
    if (r->n == r->cap) {
        int ncap = r->cap ? r->cap * 2 : 64;
        tu_rec_event *nev = realloc(r->ev, (size_t)ncap * sizeof *nev);
        CHECK(nev != NULL);
        r->ev = nev;
        r->cap = ncap;
    }
    r->ev[r->n++] = e;
    pthread_mutex_unlock(&r->mu);
}

void tu_recorder_attach(tu_recorder *r, wsn_server *srv)
{
    CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_CONNECT, tu_recorder_handler, r));
    CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_MESSAGE, tu_recorder_handler, r));
    CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_DISCONNECT, tu_recorder_handler, r));
    CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_STOPPED, tu_recorder_handler, r));
}

void tu_recorder_free(tu_recorder *r)
{
    int i;
    for (i = 0; i < r->n; i++) {
        wsn_client_release(r->ev[i].client);
        free(r->ev[i].channel);
        free(r->ev[i].payload);
        free(r->ev[i].message_id);
        free(r->ev[i].reply_to_id);
    }
    free(r->ev);
    pthread_mutex_destroy(&r->mu);
    memset(r, 0, sizeof *r);
}

int tu_recorder_count(tu_recorder *r, int kind)
{
    int i, n = 0;
    pthread_mutex_lock(&r->mu);
    for (i = 0; i < r->n; i++)
        if (r->ev[i].kind == kind)
            n++;
    pthread_mutex_unlock(&r->mu);
    return n;
}

int tu_recorder_total(tu_recorder *r)
{
    int n;
    pthread_mutex_lock(&r->mu);
    n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

tu_rec_event tu_recorder_get(tu_recorder *r, int i)
{
    tu_rec_event e;
    pthread_mutex_lock(&r->mu);
    CHECK_MSG(i >= 0 && i < r->n, "recorder index %d of %d", i, r->n);
    e = r->ev[i];
    pthread_mutex_unlock(&r->mu);
    return e;
}

/* ---- misc ---- */

char *tu_b64(const void *data, size_t len)
{
    size_t cap = (len + 2) / 3 * 4 + 8;
    char *out = malloc(cap);
    int n;
    CHECK(out != NULL);
    n = lws_b64_encode_string(data, (int)len, out, (int)cap);
    CHECK_MSG(n >= 0, "lws_b64_encode_string failed");
    out[n] = '\0';
    return out;
}

char *tu_strdupf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;
    va_start(ap, fmt);
    n = vasprintf(&s, fmt, ap);
    va_end(ap);
    CHECK(n >= 0 && s);
    return s;
}

char *tu_tempdir(void)
{
    char *t = strdup("/tmp/wsn-test-XXXXXX");
    CHECK(t != NULL);
    CHECK(mkdtemp(t) != NULL);
    return t;
}

void tu_write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    CHECK_MSG(f != NULL, "open %s", path);
    CHECK(fwrite(content, 1, strlen(content), f) == strlen(content));
    CHECK(fclose(f) == 0);
}
