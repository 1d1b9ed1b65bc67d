/* Two copies of the core in one process, both running servers: this
 * program links the static library (as a bundled extension or an
 * application would) and loads libwsnotify.so with dlopen(RTLD_LOCAL) (as
 * ctypes, a Node addon or LuaJIT would). Both share the one lws, whose
 * allocator hook is process-wide. The program is linked -rdynamic, so the
 * static copy's wsn_* symbols are in its dynamic table too: the shared
 * copy must still call its own functions, never the program's.
 *
 * Each server: 20 clients each send a 200 KB message and a ping (the ping
 * payload lands in the receive buffer lws allocated through the hook).
 * The clients then close in the crossing order: the first copy's clients
 * while the second copy's server runs, then the first copy's server stops
 * before the second's. Before the allocators chained, the second copy's
 * hook freed the first copy's receive-buffer slots with free(): SIGSEGV. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "testutil.h"

#ifndef WSN_SHARED_LIBRARY
#error "WSN_SHARED_LIBRARY: the path of libwsnotify.so"
#endif

enum { CLIENTS = 20, BIG = 200 * 1024 };

/* The calls this test makes, from one copy or the other. */
typedef struct api {
    const char *name;
    wsn_options *(*options_new)(void);
    void (*options_free)(wsn_options *);
    int (*options_set_int)(wsn_options *, wsn_option, int64_t);
    int (*options_set_string)(wsn_options *, wsn_option, const char *);
    int (*options_set_logger)(wsn_options *, wsn_log_fn, void *);
    int (*server_new)(const wsn_options *, wsn_server **, char *, size_t);
    int (*server_start)(wsn_server *);
    int (*server_port)(const wsn_server *);
    int (*server_shutdown)(wsn_server *, int64_t);
    void (*server_free)(wsn_server *);
    int (*server_next_event)(wsn_server *, wsn_event **);
    int (*server_event_fd)(wsn_server *);
    wsn_event_type (*event_kind)(const wsn_event *);
    const void *(*event_payload)(const wsn_event *, size_t *);
    void (*event_free)(wsn_event *);
    int (*version)(void);
} api;

static api static_api(void)
{
    api a = {"static", wsn_options_new, wsn_options_free, wsn_options_set_int,
             wsn_options_set_string, wsn_options_set_logger, wsn_server_new,
             wsn_server_start, wsn_server_port, wsn_server_shutdown, wsn_server_free,
             wsn_server_next_event, wsn_server_event_fd, wsn_event_kind, wsn_event_payload,
             wsn_event_free, wsn_version};
    return a;
}

static void *sym(void *lib, const char *name)
{
    void *p = dlsym(lib, name);
    CHECK_MSG(p != NULL, "dlsym %s: %s", name, dlerror());
    return p;
}

#define LOAD(field, name) memcpy(&a.field, &(void *){sym(lib, name)}, sizeof(void *))

static api shared_api(void *lib)
{
    api a;
    memset(&a, 0, sizeof a);
    a.name = "shared";
    LOAD(options_new, "wsn_options_new");
    LOAD(options_free, "wsn_options_free");
    LOAD(options_set_int, "wsn_options_set_int");
    LOAD(options_set_string, "wsn_options_set_string");
    LOAD(options_set_logger, "wsn_options_set_logger");
    LOAD(server_new, "wsn_server_new");
    LOAD(server_start, "wsn_server_start");
    LOAD(server_port, "wsn_server_port");
    LOAD(server_shutdown, "wsn_server_shutdown");
    LOAD(server_free, "wsn_server_free");
    LOAD(server_next_event, "wsn_server_next_event");
    LOAD(server_event_fd, "wsn_server_event_fd");
    LOAD(event_kind, "wsn_event_kind");
    LOAD(event_payload, "wsn_event_payload");
    LOAD(event_free, "wsn_event_free");
    LOAD(version, "wsn_version");
    return a;
}

/* Log lines of one server: the pool must be in use, never given up. */
typedef struct log_seen {
    pthread_mutex_t mu;
    int pool_on, pool_given_up;
} log_seen;

static void record_log(void *user, wsn_log_level level, const char *msg)
{
    log_seen *s = user;
    (void)level;
    pthread_mutex_lock(&s->mu);
    if (strstr(msg, "receive buffers in page slots"))
        s->pool_on = 1;
    if (strstr(msg, "receive buffers come from malloc"))
        s->pool_given_up = 1;
    pthread_mutex_unlock(&s->mu);
}

typedef struct running {
    const api *a;
    wsn_server *srv;
    wsc *clients[CLIENTS];
    log_seen log;
} running;

static void start(running *r, const api *a)
{
    wsn_options *o = a->options_new();
    char err[256] = "";
    int rc;
    memset(r, 0, sizeof *r);
    r->a = a;
    pthread_mutex_init(&r->log.mu, NULL);
    CHECK(o != NULL);
    CHECK_OK(a->options_set_string(o, WSN_OPT_HOST, "127.0.0.1"));
    CHECK_OK(a->options_set_int(o, WSN_OPT_PORT, 0));
    CHECK_OK(a->options_set_int(o, WSN_OPT_LOG_LEVEL, WSN_LOG_DEBUG));
    /* The 200 KB messages are plain text, not envelopes. */
    CHECK_OK(a->options_set_int(o, WSN_OPT_RAW_INCOMING, 1));
    CHECK_OK(a->options_set_logger(o, record_log, &r->log));
    rc = a->server_new(o, &r->srv, err, sizeof err);
    CHECK_MSG(rc == 0, "%s copy: server_new: %s %s", a->name, wsn_err_name(rc), err);
    a->options_free(o);
    CHECK_OK(a->server_start(r->srv));
}

/* Takes queued events until `count` of `kind` were seen. */
static void take_events(running *r, wsn_event_type kind, int count)
{
    int seen = 0;
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    while (seen < count) {
        wsn_event *ev;
        int rc = r->a->server_next_event(r->srv, &ev);
        if (rc == WSN_EAGAIN) {
            CHECK_MSG(tu_now_ms() < deadline, "%s copy: %d of %d events of kind %d",
                      r->a->name, seen, count, kind);
            tu_sleep_ms(1); /* polling the queue; no handler thread here */
            continue;
        }
        CHECK_OK(rc);
        if (r->a->event_kind(ev) == kind) {
            seen++;
            if (kind == WSN_EVENT_MESSAGE) {
                size_t len;
                r->a->event_payload(ev, &len);
                CHECK_EQ(len, BIG);
            }
        }
        r->a->event_free(ev);
    }
}

static void load(running *r)
{
    int port = r->a->server_port(r->srv), i;
    char *big = malloc(BIG + 1);
    CHECK(big != NULL);
    memset(big, 'x', BIG);
    big[BIG] = '\0';
    for (i = 0; i < CLIENTS; i++)
        r->clients[i] = tu_connect(port);
    take_events(r, WSN_EVENT_CONNECT, CLIENTS);
    for (i = 0; i < CLIENTS; i++) {
        CHECK_WSC(wsc_send_textn(r->clients[i], big, BIG));
        CHECK_WSC(wsc_send_ping(r->clients[i], "p", 1));
    }
    for (i = 0; i < CLIENTS; i++) {
        wsc_msg m;
        CHECK_WSC(wsc_recv_frame(r->clients[i], &m, TU_TIMEOUT));
        CHECK_MSG(m.opcode == WSC_OP_PONG, "%s copy: opcode %d, want a pong", r->a->name,
                  m.opcode);
        CHECK_MEM(m.data, m.len, "p", 1);
        wsc_msg_clear(&m);
    }
    take_events(r, WSN_EVENT_MESSAGE, CLIENTS);
    free(big);
}

static void close_clients(running *r)
{
    int i;
    for (i = 0; i < CLIENTS; i++)
        wsc_free(r->clients[i]);
    take_events(r, WSN_EVENT_DISCONNECT, CLIENTS);
}

static void stop(running *r)
{
    CHECK_OK(r->a->server_shutdown(r->srv, 5000));
    r->a->server_free(r->srv);
    CHECK_MSG(r->log.pool_on && !r->log.pool_given_up,
              "%s copy: receive-buffer pool %s", r->a->name,
              r->log.pool_given_up ? "given up" : "not in use");
    pthread_mutex_destroy(&r->log.mu);
}

static void test_static_and_dlopen(void)
{
    void *lib = dlopen(WSN_SHARED_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    api sa = static_api(), da;
    running first, second, third;
    CHECK_MSG(lib != NULL, "dlopen: %s", dlerror());
    da = shared_api(lib);
    CHECK_EQ(da.version(), sa.version());

    start(&first, &sa);
    load(&first);
    start(&second, &da);
    load(&second);
    /* Crossing order: the first copy's slots go back while the second
     * copy's hook is the one lws calls. */
    close_clients(&first);
    /* The first copy serves again, under the second copy's hook. */
    start(&third, &sa);
    load(&third);
    stop(&first);
    close_clients(&second);
    close_clients(&third);
    stop(&second);
    stop(&third);
    /* The shared copy pinned itself: lws may still call its hook. */
    dlclose(lib);
    start(&first, &sa);
    load(&first);
    close_clients(&first);
    stop(&first);
}

/* ---- a host with its own lws allocator ------------------------------- */

/* Every block it hands out carries a tag; freeing anything else (a slot
 * of ours, say) fails the test before free() could crash. */
#define TAG 0x5753484fu
static atomic_int host_calls;

static void *host_allocator(void *ptr, size_t size, const char *reason)
{
    unsigned char *block = ptr ? (unsigned char *)ptr - 16 : NULL;
    uint32_t tag;
    (void)reason;
    atomic_fetch_add(&host_calls, 1);
    if (block) {
        memcpy(&tag, block, sizeof tag);
        CHECK_MSG(tag == TAG, "the host's allocator got a block it never made (%s)",
                  reason ? reason : "?");
    }
    if (!size) {
        free(block);
        return NULL;
    }
    block = realloc(block, size + 16);
    if (!block)
        return NULL;
    tag = TAG;
    memcpy(block, &tag, sizeof tag);
    return block + 16;
}

static void serve_once(running *r, const api *a)
{
    start(r, a);
    load(r);
    close_clients(r);
    CHECK_OK(r->a->server_shutdown(r->srv, 5000));
    r->a->server_free(r->srv);
    pthread_mutex_destroy(&r->log.mu);
}

static void test_host_allocator_kept(void)
{
    api sa = static_api();
    running r;
    int before;
    lws_set_allocator(host_allocator);
    /* Ours goes in front and passes everything but its slots on. */
    before = atomic_load(&host_calls);
    serve_once(&r, &sa);
    CHECK(r.log.pool_on && !r.log.pool_given_up);
    CHECK_MSG(atomic_load(&host_calls) > before, "lws never reached the host's allocator");
    /* The host installs its own again, over ours: a new server sees that
     * its slots could reach the host's free and does without them. */
    lws_set_allocator(host_allocator);
    before = atomic_load(&host_calls);
    serve_once(&r, &sa);
    CHECK(!r.log.pool_on && r.log.pool_given_up);
    CHECK(atomic_load(&host_calls) > before);
}

/* rx_buffer_pool=0: the core never touches lws's allocator. */
static void test_pool_off_leaves_allocator(void)
{
    api sa = static_api();
    running r;
    wsn_options *o;
    wsc *w;
    char err[256];
    lws_set_allocator(host_allocator);
    o = tu_opts();
    tu_set_int(o, WSN_OPT_RX_BUFFER_POOL, 0);
    tu_set_int(o, WSN_OPT_MALLOC_TRIM, 0);
    memset(&r, 0, sizeof r);
    r.a = &sa;
    CHECK_OK(wsn_server_new(o, &r.srv, err, sizeof err));
    wsn_options_free(o);
    CHECK_OK(wsn_server_start(r.srv));
    w = tu_connect(wsn_server_port(r.srv));
    CHECK_WSC(wsc_send_ping(w, "p", 1));
    {
        wsc_msg m;
        CHECK_WSC(wsc_recv_frame(w, &m, TU_TIMEOUT));
        CHECK_EQ(m.opcode, WSC_OP_PONG);
        wsc_msg_clear(&m);
    }
    wsc_free(w);
    CHECK_OK(wsn_server_shutdown(r.srv, 5000));
    wsn_server_free(r.srv);
    CHECK(atomic_load(&host_calls) > 0);
    /* No copy of the core answers: the host's allocator is still first. */
    CHECK(lws_realloc(NULL, 0, "wsnotify lws allocator probe 1") == NULL);
}

/* The version gate, from the static library's internals (the only way to
 * hand it an lws version other than the one loaded). */
int wsni_rx_lws_version_supported(const char *version, char *why, size_t why_len);

static void test_lws_version_gate(void)
{
    char why[512] = "";
    CHECK(wsni_rx_lws_version_supported(lws_get_library_version(), why, sizeof why));
    CHECK(wsni_rx_lws_version_supported("4.1.6-", why, sizeof why));
    CHECK(wsni_rx_lws_version_supported("4.1.7-v4.1.7", why, sizeof why));
    CHECK(!wsni_rx_lws_version_supported("4.3.2", why, sizeof why));
    CHECK_MSG(strstr(why, "libwebsockets 4.3.2") && strstr(why, "rx_buffer_pool=0"), "%s", why);
    CHECK(!wsni_rx_lws_version_supported("4.10.0", why, sizeof why));
    CHECK(!wsni_rx_lws_version_supported("3.2.0", why, sizeof why));
    CHECK(!wsni_rx_lws_version_supported("", why, sizeof why));
    CHECK(!wsni_rx_lws_version_supported(NULL, why, sizeof why));
}

static const tu_test tests[] = {
    {"lws_version_gate", test_lws_version_gate},
    {"static_and_dlopen", test_static_and_dlopen},
    {"host_allocator_kept", test_host_allocator_kept},
    {"pool_off_leaves_allocator", test_pool_off_leaves_allocator},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
