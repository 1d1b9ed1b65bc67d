/* Backpressure: drop mode, block mode, publishing on the I/O thread, and a
 * slow reader that keeps up. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define BIG 65536 /* payload bytes per message */
#define REASON "slow: bye"

/* {"i":N,"pad":"xxxx..."} of about BIG bytes. */
static char *big_json(int i)
{
    char *s = malloc(BIG + 64);
    int n;
    CHECK(s != NULL);
    n = snprintf(s, 64, "{\"i\":%d,\"pad\":\"", i);
    memset(s + n, 'x', BIG);
    strcpy(s + n + BIG, "\"}");
    return s;
}

/* The seq number of an envelope carrying big_json(i) (or {"i":N}); -1 for
 * the "end" marker. */
static int seq_of(const wsc_msg *m)
{
    const char *p;
    CHECK_MSG(m->opcode == WSC_OP_TEXT, "opcode %d (close %d '%s')", m->opcode,
              m->close_code, m->close_reason);
    if (strstr((const char *)m->data, "\"message\":\"end\""))
        return -1;
    p = strstr((const char *)m->data, "\"message\":{\"i\":");
    CHECK_MSG(p != NULL, "not a seq message: %.120s", (const char *)m->data);
    return atoi(p + 15);
}

/* A reader thread for the fast client: reads until "end", records seqs. */
typedef struct reader {
    pthread_t th;
    pthread_mutex_t mu; /* guards n for reader_count() */
    wsc *w;
    int *seqs;
    int n, cap;
    int rc; /* WSC result that ended it; WSC_OK on "end" */
    int sleep_every; /* >0: sleep 1 ms every this many messages */
} reader;

static void *reader_main(void *arg)
{
    reader *r = arg;
    int i;
    for (i = 0; i < 1000000; i++) {
        wsc_msg m;
        int s, rc = wsc_recv_msg(r->w, &m, 30000);
        if (rc != WSC_OK) {
            r->rc = rc;
            return NULL;
        }
        if (m.opcode != WSC_OP_TEXT) {
            r->rc = WSC_EPROTO;
            wsc_msg_clear(&m);
            return NULL;
        }
        s = seq_of(&m);
        wsc_msg_clear(&m);
        if (s < 0) {
            r->rc = WSC_OK;
            return NULL;
        }
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 256;
            r->seqs = realloc(r->seqs, (size_t)r->cap * sizeof(int));
            CHECK(r->seqs != NULL);
        }
        pthread_mutex_lock(&r->mu);
        r->seqs[r->n++] = s;
        pthread_mutex_unlock(&r->mu);
        if (r->sleep_every > 0 && r->n % r->sleep_every == 0)
            tu_sleep_ms(1); /* a slow consumer, not synchronisation */
    }
    r->rc = WSC_EPROTO;
    return NULL;
}

static int reader_count(reader *r)
{
    int n;
    pthread_mutex_lock(&r->mu);
    n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void reader_start(reader *r, wsc *w, int sleep_every)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->w = w;
    r->sleep_every = sleep_every;
    CHECK(pthread_create(&r->th, NULL, reader_main, r) == 0);
}

static void reader_join(reader *r)
{
    CHECK(pthread_join(r->th, NULL) == 0);
    pthread_mutex_destroy(&r->mu);
    CHECK_MSG(r->rc == WSC_OK, "reader ended with %s after %d messages",
              wsc_strerror(r->rc), r->n);
}

/* Reads the slow client's backlog: messages 0..k-1 in order, then the
 * close frame. Returns k. */
static int drain_slow(wsc *w, int max, const char *reason)
{
    int k = 0, i;
    for (i = 0; i <= max + 1; i++) {
        wsc_msg m;
        int rc = wsc_recv_msg(w, &m, TU_TIMEOUT);
        CHECK_MSG(rc == WSC_OK,
                  "slow client after %d messages: %s (want a close frame 1001 "
                  "'%s')",
                  k, wsc_strerror(rc), reason);
        if (m.opcode == WSC_OP_CLOSE) {
            CHECK_MSG(m.close_code == 1001 && strcmp(m.close_reason, reason) == 0,
                      "slow client closed with %d '%s', want 1001 '%s'",
                      m.close_code, m.close_reason, reason);
            wsc_msg_clear(&m);
            return k;
        }
        CHECK_EQ(seq_of(&m), k);
        k++;
        wsc_msg_clear(&m);
    }
    tu_fail(__FILE__, __LINE__, "slow client never closed");
}

static void run_slow_client_dropped(int drop_mode)
{
    enum { N = 300 };
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *fast, *slow;
    wsn_client *cf, *cs;
    wsc_opts co;
    reader r;
    int i, k, accepted[N], n_acc = 0, n_timeout = 0, j;
    tu_set_int(o, WSN_OPT_DROP_ON_BACKPRESSURE, drop_mode);
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 8);
    tu_set_int(o, WSN_OPT_WRITE_WAIT, 500);
    tu_set_str(o, WSN_OPT_BACKPRESSURE_REASON, REASON);
    /* Long enough for the test to drain the backlog and read the close
     * frame (close_grace bounds how long a close frame may take). */
    tu_set_int(o, WSN_OPT_CLOSE_GRACE, 30000);
    srv = tu_server(o);
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    cf = tu_accept_opts(srv, &co, &fast);
    co.rcvbuf = 4096;
    cs = tu_accept_opts(srv, &co, &slow);
    CHECK_OK(wsn_server_subscribe(srv, cf, "c"));
    CHECK_OK(wsn_server_subscribe(srv, cs, "c"));
    reader_start(&r, fast, 0);
    for (i = 0; i < N; i++) {
        char *msg;
        int rc;
        /* Keep the fast client within 4 messages of the publisher so that
         * only the slow one can fill its queue, however slow the build. */
        TU_WAIT_FOR(reader_count(&r) >= n_acc - 4, TU_TIMEOUT);
        msg = big_json(i);
        rc = wsn_server_publish(srv, "c", msg);
        free(msg);
        if (rc == 0)
            accepted[n_acc++] = i;
        else if (rc == WSN_ETIMEDOUT && !drop_mode)
            n_timeout++;
        else
            tu_fail(__FILE__, __LINE__, "publish %d: %s", i, wsn_err_name(rc));
    }
    CHECK_OK(wsn_server_publish(srv, "c", "\"end\""));
    reader_join(&r);
    if (n_timeout)
        tu_note("%d publish calls returned WSN_ETIMEDOUT", n_timeout);
    CHECK_MSG(n_timeout <= 1, "%d publishes timed out; only the one that "
              "found the slow client full should", n_timeout);
    /* The fast client got every accepted message, in order. */
    for (i = 0, j = 0; i < r.n; i++) {
        if (j < n_acc && r.seqs[i] == accepted[j])
            j++;
        else
            CHECK_MSG(i == 0 || r.seqs[i] > r.seqs[i - 1],
                      "fast client: seq %d after %d", r.seqs[i], r.seqs[i - 1]);
    }
    CHECK_MSG(j == n_acc, "fast client got %d of %d accepted messages", j, n_acc);
    if (drop_mode)
        CHECK_EQ(r.n, N);
    /* The slow client: a prefix, then 1001 with the reason. */
    k = drain_slow(slow, N, REASON);
    CHECK_MSG(k < N, "slow client got all %d messages: never dropped", k);
    tu_note("slow client received %d of %d before being dropped", k, N);
    tu_expect_disconnect_of(srv, wsn_client_id(cs), TU_TIMEOUT);
    CHECK_EQ(wsn_client_is_connected(cs), 0);
    CHECK_EQ(wsn_client_is_connected(cf), 1);
    CHECK_EQ(wsn_server_connected_clients(srv), 1);
    free(r.seqs);
    wsc_free(fast);
    wsc_free(slow);
    wsn_client_release(cf);
    wsn_client_release(cs);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
}

static void test_drop_mode(void) { run_slow_client_dropped(1); }
static void test_block_mode_drop(void) { run_slow_client_dropped(0); }

/* ---- publishing from a handler on the I/O thread ---- */

#define FLOOD 30

typedef struct flood_state {
    pthread_mutex_t mu;
    int subs;
    int done;
    int rc[FLOOD];
} flood_state;

static void flood_handler(void *user, wsn_server *srv, const wsn_event *ev)
{
    flood_state *st = user;
    const char *p = wsn_event_payload(ev, NULL);
    if (strcmp(p, "\"sub\"") == 0) {
        int rc = wsn_server_subscribe(srv, wsn_event_client(ev), "c");
        pthread_mutex_lock(&st->mu);
        st->subs += rc == 0;
        pthread_mutex_unlock(&st->mu);
    } else if (strcmp(p, "\"flood\"") == 0) {
        int rcs[FLOOD], i;
        for (i = 0; i < FLOOD; i++) {
            char *msg = big_json(i);
            rcs[i] = wsn_server_publish(srv, "c", msg);
            free(msg);
        }
        pthread_mutex_lock(&st->mu);
        memcpy(st->rc, rcs, sizeof rcs);
        st->done = 1;
        pthread_mutex_unlock(&st->mu);
    }
}

static int flood_get(flood_state *st, int what)
{
    int v;
    pthread_mutex_lock(&st->mu);
    v = what ? st->done : st->subs;
    pthread_mutex_unlock(&st->mu);
    return v;
}

static void test_io_thread_ebackpressure(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv = NULL;
    flood_state st;
    wsc *slow, *trig;
    wsc_opts co;
    int i, ok = 0, first_bp = -1, k;
    memset(&st, 0, sizeof st);
    pthread_mutex_init(&st.mu, NULL);
    tu_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, 1);
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 8);
    tu_set_int(o, WSN_OPT_WRITE_WAIT, 60000); /* blocking would hang */
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_MESSAGE, flood_handler, &st));
    CHECK_OK(wsn_server_start(srv));
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.rcvbuf = 4096;
    slow = tu_connect_opts(&co);
    co.rcvbuf = 0;
    trig = tu_connect_opts(&co);
    CHECK_WSC(wsc_send_text(slow, "{\"type\":\"json\",\"message\":\"sub\"}"));
    TU_WAIT_FOR(flood_get(&st, 0) == 1, TU_TIMEOUT);
    CHECK_WSC(wsc_send_text(trig, "{\"type\":\"json\",\"message\":\"flood\"}"));
    TU_WAIT_FOR(flood_get(&st, 1) == 1, TU_TIMEOUT);
    pthread_mutex_lock(&st.mu);
    for (i = 0; i < FLOOD; i++) {
        if (st.rc[i] == 0) {
            CHECK_MSG(first_bp < 0, "publish %d accepted after publish %d got "
                      "WSN_EBACKPRESSURE", i, first_bp);
            ok++;
        } else {
            CHECK_MSG(st.rc[i] == WSN_EBACKPRESSURE, "publish %d on I/O thread: %s",
                      i, wsn_err_name(st.rc[i]));
            if (first_bp < 0)
                first_bp = i;
        }
    }
    pthread_mutex_unlock(&st.mu);
    CHECK_MSG(first_bp >= 0, "no WSN_EBACKPRESSURE in %d publishes of 64 KiB "
              "with send_buffer 8", FLOOD);
    CHECK(ok >= 1);
    tu_note("%d accepted before WSN_EBACKPRESSURE", ok);
    /* The slow client was not dropped; it gets exactly the accepted ones. */
    CHECK_OK(wsn_server_publish(srv, "c", "\"end\""));
    for (k = 0; k <= ok; k++) {
        wsc_msg m;
        tu_recv(slow, &m, TU_TIMEOUT);
        CHECK_EQ(seq_of(&m), k < ok ? k : -1);
        wsc_msg_clear(&m);
    }
    CHECK_EQ(wsn_server_connected_clients(srv), 2);
    wsc_free(slow);
    wsc_free(trig);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    pthread_mutex_destroy(&st.mu);
    wsn_options_free(o);
}

static void test_block_slow_reader_keeps_up(void)
{
    enum { N = 500 };
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *w;
    wsn_client *c;
    wsc_opts co;
    reader r;
    int i;
    char *pad = malloc(8200);
    CHECK(pad != NULL);
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 4);
    srv = tu_server(o);
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.rcvbuf = 4096;
    c = tu_accept_opts(srv, &co, &w);
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    reader_start(&r, w, 10);
    memset(pad, 'y', 8192);
    pad[8192] = '\0';
    for (i = 0; i < N; i++) {
        char *msg = tu_strdupf("{\"i\":%d,\"pad\":\"%s\"}", i, pad);
        CHECK_OK(wsn_server_publish(srv, "c", msg));
        free(msg);
    }
    CHECK_OK(wsn_server_publish(srv, "c", "\"end\""));
    reader_join(&r);
    CHECK_EQ(r.n, N);
    for (i = 0; i < N; i++)
        CHECK_EQ(r.seqs[i], i);
    CHECK_EQ(wsn_client_is_connected(c), 1);
    free(r.seqs);
    free(pad);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
}

/* A dropped client that never reads is cut once close_grace has passed:
 * the server does not keep it forever. */
static void test_stuck_client_cut(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *slow;
    wsn_client *cs;
    wsc_opts co;
    int i;
    tu_set_int(o, WSN_OPT_DROP_ON_BACKPRESSURE, 1);
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 8);
    tu_set_int(o, WSN_OPT_CLOSE_GRACE, 100);
    srv = tu_server(o);
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    co.rcvbuf = 4096;
    cs = tu_accept_opts(srv, &co, &slow);
    CHECK_OK(wsn_server_subscribe(srv, cs, "c"));
    for (i = 0; i < 300 && wsn_client_is_connected(cs); i++) {
        char *msg = big_json(i);
        CHECK_OK(wsn_server_publish(srv, "c", msg));
        free(msg);
    }
    tu_expect_disconnect_of(srv, wsn_client_id(cs), TU_TIMEOUT);
    CHECK_EQ(wsn_server_connected_clients(srv), 0);
    wsc_free(slow);
    wsn_client_release(cs);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
}

static const tu_test tests[] = {
    {"drop_mode", test_drop_mode},
    {"block_mode_drop", test_block_mode_drop},
    {"io_thread_ebackpressure", test_io_thread_ebackpressure},
    {"block_slow_reader_keeps_up", test_block_slow_reader_keeps_up},
    {"stuck_client_cut", test_stuck_client_cut},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
