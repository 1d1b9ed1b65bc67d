/* Shutdown: nothing accepted is lost, 1001 "server shutdown", every call
 * afterwards is refused, several servers per process. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct pub_state {
    wsn_server *srv;
    pthread_mutex_t mu;
    int accepted; /* publishes that returned 0: seqs 0..accepted-1 */
    int final_rc;
} pub_state;

static int pub_accepted(pub_state *p)
{
    int n;
    pthread_mutex_lock(&p->mu);
    n = p->accepted;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void *publisher(void *arg)
{
    pub_state *p = arg;
    int i;
    for (i = 0; i < 10000000; i++) {
        char msg[48];
        int rc;
        snprintf(msg, sizeof msg, "{\"i\":%d}", i);
        rc = wsn_server_publish(p->srv, "c", msg);
        if (rc != 0) {
            p->final_rc = rc;
            return NULL;
        }
        pthread_mutex_lock(&p->mu);
        p->accepted = i + 1;
        pthread_mutex_unlock(&p->mu);
    }
    p->final_rc = 1;
    return NULL;
}

typedef struct reader {
    pthread_t th;
    wsc *w;
    int n;          /* messages 0..n-1 received in order */
    int close_code; /* 0 when none */
    char reason[128];
    int rc;
} reader;

static void *reader_main(void *arg)
{
    reader *r = arg;
    int i;
    for (i = 0; i < 10000000; i++) {
        wsc_msg m;
        const char *q;
        int rc = wsc_recv_msg(r->w, &m, 30000);
        if (rc != WSC_OK) {
            r->rc = rc;
            return NULL;
        }
        if (m.opcode == WSC_OP_CLOSE) {
            r->close_code = m.close_code;
            snprintf(r->reason, sizeof r->reason, "%s", m.close_reason);
            wsc_msg_clear(&m);
            r->rc = wsc_wait_eof(r->w, 30000, NULL) == WSC_EOF ? WSC_OK : WSC_EPROTO;
            return NULL;
        }
        q = strstr((const char *)m.data, "\"message\":{\"i\":");
        CHECK_MSG(q != NULL, "unexpected %s", (const char *)m.data);
        CHECK_MSG(atoi(q + 15) == r->n, "got seq %d, want %d", atoi(q + 15), r->n);
        r->n++;
        wsc_msg_clear(&m);
    }
    r->rc = WSC_EPROTO;
    return NULL;
}

static void test_shutdown_while_publishing(void)
{
    wsn_server *srv = tu_server(NULL);
    pub_state p;
    pthread_t pth;
    reader r;
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.mu, NULL);
    p.srv = srv;
    memset(&r, 0, sizeof r);
    r.w = w;
    CHECK(pthread_create(&r.th, NULL, reader_main, &r) == 0);
    CHECK(pthread_create(&pth, NULL, publisher, &p) == 0);
    TU_WAIT_FOR(pub_accepted(&p) >= 500, TU_TIMEOUT);
    CHECK_OK(wsn_server_shutdown(srv, 10000));
    CHECK(pthread_join(pth, NULL) == 0);
    CHECK_RC(p.final_rc, WSN_ECLOSED);
    CHECK(pthread_join(r.th, NULL) == 0);
    CHECK_MSG(r.rc == WSC_OK, "reader: %s after %d messages", wsc_strerror(r.rc), r.n);
    tu_note("%d publishes accepted before shutdown", p.accepted);
    CHECK_MSG(r.n == p.accepted, "client received %d of %d accepted messages", r.n,
              p.accepted);
    CHECK_EQ(r.close_code, 1001);
    CHECK_STR(r.reason, "server shutdown");
    wsc_free(w);
    wsn_client_release(c);
    wsn_server_free(srv);
    pthread_mutex_destroy(&p.mu);
}

static void test_close_1001(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w1, *w2;
    wsn_client *c1 = tu_accept(srv, &w1), *c2 = tu_accept(srv, &w2);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    tu_expect_close(w1, 1001, "server shutdown");
    tu_expect_close(w2, 1001, "server shutdown");
    CHECK_EQ(wsc_wait_eof(w1, TU_TIMEOUT, NULL), WSC_EOF);
    CHECK_EQ(wsc_wait_eof(w2, TU_TIMEOUT, NULL), WSC_EOF);
    CHECK_EQ(wsn_client_is_connected(c1), 0);
    CHECK_EQ(wsn_client_is_connected(c2), 0);
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    wsc_free(w1);
    wsc_free(w2);
    wsn_client_release(c1);
    wsn_client_release(c2);
    wsn_server_free(srv);
}

static int soft_failures;
#define SOFT_RC(expr, want)                                                   \
    do {                                                                      \
        int _r = (int)(expr);                                                 \
        if (_r != (want)) {                                                   \
            fprintf(stderr, "MISMATCH %s:%d: %s returned %s, want %s\n",      \
                    __FILE__, __LINE__, #expr, wsn_err_name(_r),              \
                    wsn_err_name(want));                                      \
            soft_failures++;                                                  \
        }                                                                     \
    } while (0)

static void test_calls_after_shutdown(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    wsn_strlist *l = NULL;
    int64_t v;
    CHECK_OK(wsn_client_set_int(c, "uid", 7));
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    /* every mismatch is printed before failing */
    SOFT_RC(wsn_server_publish(srv, "c", "1"), WSN_ECLOSED);
    SOFT_RC(wsn_server_publish_with_type(srv, "c", WSN_TYPE_TEXT, "x", 1, NULL, NULL),
             WSN_ECLOSED);
    SOFT_RC(wsn_server_subscribe(srv, c, "c"), WSN_ECLOSED);
    SOFT_RC(wsn_server_publish_to_client(srv, c, "c", WSN_TYPE_JSON, "1", 1, NULL,
                                          NULL),
             WSN_ECLOSED);
    SOFT_RC(wsn_server_send_raw(srv, c, WSN_TYPE_TEXT, "x", 1), WSN_ECLOSED);
    SOFT_RC(wsn_server_publish_wait(srv, "c", "1", 1, "n", 100), WSN_ECLOSED);
    SOFT_RC(wsn_server_publish_wait_string(srv, "c", "x", 1, "n", 100), WSN_ECLOSED);
    SOFT_RC(wsn_server_publish_wait_with_type(srv, "c", WSN_TYPE_BINARY, "x", 1, 1,
                                               "n", 100),
             WSN_ECLOSED);
    {
        int rc = wsn_server_unsubscribe(srv, c, "c");
        CHECK_MSG(rc == WSN_ECLOSED || rc == WSN_OK, "unsubscribe: %s",
                  wsn_err_name(rc));
    }
    CHECK_EQ(soft_failures, 0);
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    CHECK_EQ(wsn_server_pending_batches(srv), 0);
    {
        int rc = wsn_server_client_list(srv, &l);
        if (rc == 0) {
            CHECK_EQ(wsn_strlist_count(l), 0);
            wsn_strlist_free(l);
        } else {
            CHECK_RC(rc, WSN_ECLOSED);
        }
    }
    /* The retained client: gone, metadata still readable. */
    CHECK_EQ(wsn_client_is_connected(c), 0);
    CHECK_OK(wsn_client_get_int(c, "uid", &v));
    CHECK_EQ(v, 7);
    CHECK_RC(wsn_server_shutdown(srv, 100), WSN_OK); /* again: fine */
    wsc_free(w);
    wsn_client_release(c);
    wsn_server_free(srv);
}

static void test_refuse_after_shutdown(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc_opts co;
    wsc *w = NULL;
    int status = 0, rc;
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.timeout_ms = 3000;
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    rc = wsc_connect(&co, &w, &status);
    CHECK_MSG(rc != WSC_OK, "upgrade accepted after shutdown");
    CHECK_MSG(rc == WSC_ECONN || rc == WSC_EOF || rc == WSC_EHTTP,
              "after shutdown: %s", wsc_strerror(rc));
    if (rc == WSC_EHTTP)
        CHECK(status != 101);
    tu_note("connect after shutdown: %s (status %d)", wsc_strerror(rc), status);
    wsn_server_free(srv);
}

static void test_two_servers(void)
{
    wsn_server *s1 = tu_server(NULL), *s2 = tu_server(NULL);
    wsc *w1, *w2;
    wsn_client *c1 = tu_accept(s1, &w1), *c2 = tu_accept(s2, &w2);
    CHECK(wsn_server_port(s1) != wsn_server_port(s2));
    CHECK_OK(wsn_server_subscribe(s1, c1, "c"));
    CHECK_OK(wsn_server_subscribe(s2, c2, "c"));
    CHECK_OK(wsn_server_publish(s1, "c", "1"));
    CHECK_OK(wsn_server_publish(s2, "c", "2"));
    tu_expect_envelope(w1, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":1}");
    tu_expect_envelope(w2, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":2}");
    /* A client of one server is not a client of the other. */
    {
        int rc = wsn_server_subscribe(s2, c1, "c");
        CHECK_MSG(rc < 0, "subscribing another server's client: %s",
                  wsn_err_name(rc));
    }
    CHECK_EQ(wsn_server_connected_clients(s1), 1);
    CHECK_EQ(wsn_server_connected_clients(s2), 1);
    CHECK_OK(wsn_server_shutdown(s1, 5000));
    tu_expect_close(w1, 1001, "server shutdown");
    CHECK_OK(wsn_server_publish(s2, "c", "3"));
    tu_expect_envelope(w2, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":3}");
    wsn_server_free(s1);
    CHECK_OK(wsn_server_publish(s2, "c", "4"));
    tu_expect_envelope(w2, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":4}");
    CHECK_OK(wsn_server_shutdown(s2, 5000));
    tu_expect_close(w2, 1001, "server shutdown");
    wsc_free(w1);
    wsc_free(w2);
    wsn_client_release(c1);
    wsn_client_release(c2);
    wsn_server_free(s2);
}

typedef struct sd_state {
    pthread_mutex_t mu;
    int rc, calls, stopped;
} sd_state;

static void sd_message(void *user, wsn_server *srv, const wsn_event *ev)
{
    sd_state *st = user;
    int rc;
    (void)ev;
    rc = wsn_server_shutdown(srv, 5000);
    pthread_mutex_lock(&st->mu);
    st->rc = rc;
    st->calls++;
    pthread_mutex_unlock(&st->mu);
}

static void sd_stopped(void *user, wsn_server *srv, const wsn_event *ev)
{
    sd_state *st = user;
    (void)srv;
    (void)ev;
    pthread_mutex_lock(&st->mu);
    st->stopped++;
    pthread_mutex_unlock(&st->mu);
}

static int sd_get(sd_state *st, int *p)
{
    int v;
    pthread_mutex_lock(&st->mu);
    v = *p;
    pthread_mutex_unlock(&st->mu);
    return v;
}

static void test_shutdown_from_handler(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv = NULL;
    sd_state st;
    wsc *w;
    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.mu, NULL);
    tu_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, 1);
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_MESSAGE, sd_message, &st));
    CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_STOPPED, sd_stopped, &st));
    CHECK_OK(wsn_server_start(srv));
    w = tu_connect(wsn_server_port(srv));
    CHECK_WSC(wsc_send_text(w, "{\"type\":\"json\",\"message\":\"stop\"}"));
    tu_expect_close(w, 1001, "server shutdown");
    TU_WAIT_FOR(sd_get(&st, &st.stopped) == 1, TU_TIMEOUT);
    CHECK_EQ(sd_get(&st, &st.calls), 1);
    CHECK_RC(sd_get(&st, &st.rc), WSN_OK);
    CHECK_RC(wsn_server_publish(srv, "c", "1"), WSN_ECLOSED);
    wsc_free(w);
    wsn_server_free(srv);
    CHECK_EQ(st.stopped, 1);
    pthread_mutex_destroy(&st.mu);
    wsn_options_free(o);
}

static void test_shutdown_idle(void)
{
    wsn_server *srv = tu_server(NULL);
    wsn_event *ev;
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    ev = tu_expect_event(srv, WSN_EVENT_STOPPED, TU_TIMEOUT);
    wsn_event_free(ev);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    CHECK_RC(wsn_server_next_event(srv, &ev), WSN_ECLOSED);
    wsn_server_free(srv);
}

/* wsn_server_free on a running server shuts it down; retained client
 * handles outlive the server. */
static void test_free_running_server(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    char id[64];
    char buf[16];
    size_t len;
    snprintf(id, sizeof id, "%s", wsn_client_id(c));
    CHECK_OK(wsn_client_set_string(c, "name", "alice"));
    wsn_server_free(srv);
    tu_expect_close(w, 1001, "server shutdown");
    CHECK_STR(wsn_client_id(c), id);
    CHECK_EQ(wsn_client_is_connected(c), 0);
    CHECK_OK(wsn_client_get_string(c, "name", buf, sizeof buf, &len));
    CHECK_STR(buf, "alice");
    CHECK_RC(wsn_client_set_int(c, "x", 1), WSN_EGONE);
    wsc_free(w);
    wsn_client_release(c);
}

static void test_shutdown_flushes_batches(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    int i;
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    for (i = 0; i < 50; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "{\"i\":%d}", i);
        CHECK_OK(wsn_server_publish(srv, "c", msg));
    }
    CHECK_OK(wsn_server_publish_wait(srv, "c", "{\"b\":1}", 9, "late", 600000));
    CHECK_OK(wsn_server_publish_wait(srv, "c", "{\"b\":2}", 9, "late", 600000));
    CHECK_EQ(wsn_server_pending_batches(srv), 1);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    for (i = 0; i < 50; i++) {
        char *want = tu_strdupf("{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                                "\"message\":{\"i\":%d}}",
                                i);
        tu_expect_envelope(w, want);
        free(want);
    }
    tu_expect_envelope(w, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":{\"messages\":[{\"b\":1},{\"b\":2}],"
                          "\"name\":\"late\"}}");
    tu_expect_close(w, 1001, "server shutdown");
    wsc_free(w);
    wsn_client_release(c);
    wsn_server_free(srv);
}

/* A client that cannot take what is queued for it is cut when the
 * shutdown timeout passes: shutdown returns WSN_ETIMEDOUT, not later. */
static void test_shutdown_timeout_cuts(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *w;
    wsn_client *c;
    wsc_opts co;
    char *pad = malloc(65536 + 1);
    int i, rc;
    CHECK(pad != NULL);
    memset(pad, 'p', 65536);
    pad[65536] = '\0';
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 1024);
    /* All 13 MB queued at once (no byte bound), so that shutdown, not
     * backpressure, is what meets them. */
    tu_set_int(o, WSN_OPT_SEND_BUFFER_BYTES, 0);
    srv = tu_server(o);
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.rcvbuf = 4096;
    c = tu_accept_opts(srv, &co, &w);
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    for (i = 0; i < 200; i++) { /* ~13 MB: more than the kernel buffers */
        char *msg = tu_strdupf("\"%d%s\"", i, pad);
        CHECK_OK(wsn_server_publish(srv, "c", msg));
        free(msg);
    }
    rc = wsn_server_shutdown(srv, 300);
    CHECK_RC(rc, WSN_ETIMEDOUT);
    CHECK_EQ(wsn_client_is_connected(c), 0);
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    rc = wsc_wait_eof(w, 30000, NULL);
    CHECK_MSG(rc == WSC_EOF, "cut client: %s", wsc_strerror(rc));
    wsc_free(w);
    wsn_client_release(c);
    wsn_server_free(srv);
    wsn_options_free(o);
    free(pad);
}

static const tu_test tests[] = {
    {"shutdown_while_publishing", test_shutdown_while_publishing},
    {"close_1001", test_close_1001},
    {"calls_after_shutdown", test_calls_after_shutdown},
    {"refuse_after_shutdown", test_refuse_after_shutdown},
    {"two_servers", test_two_servers},
    {"shutdown_from_handler", test_shutdown_from_handler},
    {"shutdown_idle", test_shutdown_idle},
    {"free_running_server", test_free_running_server},
    {"shutdown_flushes_batches", test_shutdown_flushes_batches},
    {"shutdown_timeout_cuts", test_shutdown_timeout_cuts},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
