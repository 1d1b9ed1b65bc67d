/* Publishing that never waits (WSN_PUBLISH_NONBLOCK) and the room fd,
 * against a block-mode subscriber that stops reading. write_wait is a day
 * in these tests, so a call that waited instead of refusing would hang the
 * test into its ctest timeout rather than pass. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define DAY_MS (24LL * 3600 * 1000)
#define BIG 65536

static int fd_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    CHECK(n >= 0);
    return n == 1 && (p.revents & POLLIN);
}

/* {"i":N,"pad":"xxx"} with pad bytes of padding. */
static char *seq_json(int t, int i, size_t pad)
{
    char *s = malloc(pad + 64);
    int n;
    CHECK(s != NULL);
    n = snprintf(s, 64, "{\"t\":%d,\"i\":%d,\"pad\":\"", t, i);
    memset(s + n, 'x', pad);
    strcpy(s + n + pad, "\"}");
    return s;
}

/* (t, i) of an envelope made from seq_json; t = -1 for the "end" marker. */
static void seq_of(const wsc_msg *m, int *t, int *i)
{
    const char *p;
    CHECK_MSG(m->opcode == WSC_OP_TEXT, "opcode %d (close %d '%s')", m->opcode,
              m->close_code, m->close_reason);
    if (strstr((const char *)m->data, "\"message\":\"end\"")) {
        *t = -1;
        *i = -1;
        return;
    }
    p = strstr((const char *)m->data, "\"message\":{\"t\":");
    CHECK_MSG(p != NULL, "not a seq message: %.120s", (const char *)m->data);
    *t = atoi(p + 15);
    p = strstr(p, "\"i\":");
    CHECK(p != NULL);
    *i = atoi(p + 4);
}

/* A block-mode server with one subscriber of "c" that does not read (a
 * small receive buffer) and one client that subscribes to nothing. */
typedef struct stalled_setup {
    wsn_server *srv;
    wsc *slow, *other;
    wsn_client *cs, *co;
    int accepted; /* seq_json(0, 0..accepted-1) were accepted */
} stalled_setup;

static void stall(stalled_setup *s)
{
    wsn_options *o = tu_opts();
    wsc_opts co;
    int i, rc = WSN_OK, refusals = 0;
    memset(s, 0, sizeof *s);
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 4);
    tu_set_int(o, WSN_OPT_WRITE_WAIT, DAY_MS);
    s->srv = tu_server(o);
    wsn_options_free(o);
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(s->srv);
    co.rcvbuf = 4096;
    s->cs = tu_accept_opts(s->srv, &co, &s->slow);
    co.rcvbuf = 0;
    s->co = tu_accept_opts(s->srv, &co, &s->other);
    CHECK_OK(wsn_server_subscribe(s->srv, s->cs, "c"));
    CHECK(fd_readable(wsn_server_room_fd(s->srv), 0));
    /* The kernel's buffers and 4 queue slots take a few hundred KiB; the
     * message after those finds no room. Room may still come back a few
     * times (the I/O thread sees the stall once it applied what was
     * accepted, and lws and the kernel take some more as they can), so
     * publish again whenever it does, until it stays away: a second of no
     * room is taken as the client being full for good (a shorter stall
     * only makes the checks that follow fail, never pass wrongly). */
    for (i = 0; i < 1000; i++) {
        char *msg = seq_json(0, s->accepted, BIG);
        rc = wsn_server_publish_ex(s->srv, NULL, "c", WSN_TYPE_JSON, msg, strlen(msg), NULL,
                                   NULL, WSN_PUBLISH_NONBLOCK);
        free(msg);
        if (rc == WSN_OK) {
            s->accepted++;
            continue;
        }
        CHECK_RC(rc, WSN_EAGAIN);
        refusals++;
        if (!fd_readable(wsn_server_room_fd(s->srv), 1000))
            break;
    }
    CHECK_RC(rc, WSN_EAGAIN);
    tu_note("%d messages accepted, %d refused before room stayed away", s->accepted, refusals);
}

static void unstall_teardown(stalled_setup *s)
{
    wsn_client_release(s->cs);
    wsn_client_release(s->co);
    wsc_free(s->slow);
    wsc_free(s->other);
    /* The refusal test leaves a stalled client, cut at shutdown. */
    int rc = wsn_server_shutdown(s->srv, 5000);
    CHECK_MSG(rc == WSN_OK || rc == WSN_ETIMEDOUT, "shutdown: %s", wsn_err_name(rc));
    wsn_server_free(s->srv);
}

static void test_refused_at_once(void)
{
    stalled_setup s;
    int k;
    stall(&s);
    CHECK(!fd_readable(wsn_server_room_fd(s.srv), 0));
    for (k = 0; k < 3; k++) {
        char *msg = seq_json(0, s.accepted, BIG);
        CHECK_RC(wsn_server_publish_ex(s.srv, NULL, "c", WSN_TYPE_JSON, msg, strlen(msg), NULL,
                                       NULL, WSN_PUBLISH_NONBLOCK),
                 WSN_EAGAIN);
        free(msg);
    }
    /* Every kind of publish is refused the same way. */
    CHECK_RC(wsn_server_publish_wait_ex(s.srv, "c", WSN_TYPE_JSON, "1", 1, 7, "n", 1000,
                                        WSN_PUBLISH_NONBLOCK),
             WSN_EAGAIN);
    CHECK_EQ(wsn_server_pending_batches(s.srv), 0);
    CHECK_RC(wsn_server_send_raw_ex(s.srv, s.cs, WSN_TYPE_TEXT, "raw", 3, WSN_PUBLISH_NONBLOCK),
             WSN_EAGAIN);
    CHECK_RC(wsn_server_publish_ex(s.srv, s.cs, "", WSN_TYPE_TEXT, "hi", 2, NULL, NULL,
                                   WSN_PUBLISH_NONBLOCK),
             WSN_EAGAIN);
    /* Other checks answer first, flag or not. */
    CHECK_RC(wsn_server_publish_ex(s.srv, NULL, "c", WSN_TYPE_JSON, "{", 1, NULL, NULL,
                                   WSN_PUBLISH_NONBLOCK),
             WSN_EJSON);
    CHECK_RC(wsn_server_publish_ex(s.srv, NULL, "c", WSN_TYPE_JSON, "1", 1, NULL, NULL, 4),
             WSN_EINVAL); /* an unknown flag */
    CHECK_RC(wsn_server_publish_ex(NULL, NULL, "c", WSN_TYPE_JSON, "1", 1, NULL, NULL, 0),
             WSN_EINVAL);
    /* A message to a client that is not stalled goes through, in either
     * mode: it adds nothing to the stalled one's backlog. */
    CHECK_OK(wsn_server_publish_ex(s.srv, s.co, "", WSN_TYPE_TEXT, "to you", 6, NULL, NULL,
                                   WSN_PUBLISH_NONBLOCK));
    CHECK_OK(wsn_server_send_raw(s.srv, s.co, WSN_TYPE_TEXT, "raw", 3));
    tu_expect_envelope(s.other, "{\"channel\":\"\",\"type\":\"text\",\"time\":\"T\",\"message\":\"to you\"}");
    tu_expect_text(s.other, "raw");
    CHECK(!fd_readable(wsn_server_room_fd(s.srv), 0));
    /* After shutdown the fd is readable: calls fail otherwise now. */
    k = wsn_server_shutdown(s.srv, 100);
    CHECK_MSG(k == WSN_OK || k == WSN_ETIMEDOUT, "shutdown: %s", wsn_err_name(k));
    CHECK(fd_readable(wsn_server_room_fd(s.srv), 0));
    CHECK_RC(wsn_server_publish_ex(s.srv, NULL, "c", WSN_TYPE_JSON, "1", 1, NULL, NULL,
                                   WSN_PUBLISH_NONBLOCK),
             WSN_ECLOSED);
    unstall_teardown(&s);
}

static void test_room_fd_fires(void)
{
    stalled_setup s;
    int k, t, i, retry_seq;
    char *msg;
    stall(&s);
    retry_seq = s.accepted;
    CHECK(!fd_readable(wsn_server_room_fd(s.srv), 0));
    /* The reader catches up: everything accepted arrives once, in order,
     * and room returns while it reads. */
    for (k = 0; k < s.accepted; k++) {
        wsc_msg m;
        tu_recv(s.slow, &m, TU_TIMEOUT);
        seq_of(&m, &t, &i);
        CHECK_EQ(t, 0);
        CHECK_EQ(i, k);
        wsc_msg_clear(&m);
    }
    CHECK(fd_readable(wsn_server_room_fd(s.srv), TU_TIMEOUT));
    /* The refused message, retried, is delivered exactly once. */
    msg = seq_json(0, retry_seq, BIG);
    CHECK_OK(wsn_server_publish_ex(s.srv, NULL, "c", WSN_TYPE_JSON, msg, strlen(msg), NULL, NULL,
                                   WSN_PUBLISH_NONBLOCK));
    free(msg);
    CHECK_OK(wsn_server_publish(s.srv, "c", "\"end\""));
    {
        wsc_msg m;
        tu_recv(s.slow, &m, TU_TIMEOUT);
        seq_of(&m, &t, &i);
        CHECK_EQ(i, retry_seq);
        wsc_msg_clear(&m);
        tu_recv(s.slow, &m, TU_TIMEOUT);
        seq_of(&m, &t, &i);
        CHECK_EQ(t, -1);
        wsc_msg_clear(&m);
    }
    CHECK(fd_readable(wsn_server_room_fd(s.srv), 0));
    unstall_teardown(&s);
}

/* With room, publish_wait_ex NONBLOCK batches as publish_wait does: a batch
 * that reaches max_batch_messages leaves at once, the rest at its ttl. */
static void test_publish_wait_nonblock(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsn_client *c;
    wsc *w;
    tu_set_int(o, WSN_OPT_MAX_BATCH_MESSAGES, 2);
    srv = tu_server(o);
    wsn_options_free(o);
    c = tu_accept(srv, &w);
    CHECK_OK(wsn_server_subscribe(srv, c, "c"));
    CHECK_OK(wsn_server_publish_wait_ex(srv, "c", WSN_TYPE_JSON, "1", 1, 9, "full", 600000,
                                        WSN_PUBLISH_NONBLOCK));
    CHECK_EQ(wsn_server_pending_batches(srv), 1);
    CHECK_OK(wsn_server_publish_wait_ex(srv, "c", WSN_TYPE_JSON, "2", 1, 9, "full", 600000,
                                        WSN_PUBLISH_NONBLOCK));
    tu_expect_envelope(w, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":{\"messages\":[1,2],\"name\":\"full\"}}");
    CHECK_OK(wsn_server_publish_wait_ex(srv, "c", WSN_TYPE_TEXT, "t", 1, 9, "ttl", 20,
                                        WSN_PUBLISH_NONBLOCK));
    tu_expect_envelope(w, "{\"channel\":\"c\",\"type\":\"text\",\"time\":\"T\","
                          "\"message\":\"ttl\\n\\nt\"}");
    CHECK_RC(wsn_server_publish_wait_ex(srv, "c", WSN_TYPE_JSON, "1", 1, 9, "x", 20, 4),
             WSN_EINVAL);
    wsn_client_release(c);
    wsc_free(w);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* ---- 4 publishers, refused and retried, counted exactly ---------------- */

enum { THREADS = 4, PER_THREAD = 150, PAD = 8192 };

typedef struct shared {
    wsn_server *srv;
    atomic_int refusals;
} shared;

typedef struct publisher {
    pthread_t th;
    shared *sh;
    int t;
    int refused;
} publisher;

static void *publisher_main(void *arg)
{
    publisher *p = arg;
    int i;
    for (i = 0; i < PER_THREAD; i++) {
        char *msg = seq_json(p->t, i, PAD);
        int tries;
        for (tries = 0;; tries++) {
            int rc = wsn_server_publish_ex(p->sh->srv, NULL, "c", WSN_TYPE_JSON, msg,
                                           strlen(msg), NULL, NULL, WSN_PUBLISH_NONBLOCK);
            if (rc == WSN_OK)
                break;
            CHECK_RC(rc, WSN_EAGAIN);
            CHECK_MSG(tries < 100000, "thread %d message %d refused %d times", p->t, i, tries);
            p->refused++;
            atomic_fetch_add(&p->sh->refusals, 1);
            /* Readable may already be stale (another thread took the
             * room); the retry then is refused again, which is fine. */
            CHECK_MSG(fd_readable(wsn_server_room_fd(p->sh->srv), TU_TIMEOUT),
                      "thread %d: no room within %d ms", p->t, TU_TIMEOUT);
        }
        free(msg);
    }
    return NULL;
}

typedef struct counter {
    pthread_t th;
    wsc *w;
    shared *sh;
    int wait_for_refusal; /* start reading only once a publish was refused */
    int sleep_every;
    int next[THREADS]; /* next i expected from each thread */
    int total;
} counter;

static void *counter_main(void *arg)
{
    counter *c = arg;
    int n;
    if (c->wait_for_refusal)
        TU_WAIT_FOR(atomic_load(&c->sh->refusals) > 0, TU_TIMEOUT);
    for (n = 0; n <= THREADS * PER_THREAD; n++) {
        wsc_msg m;
        int t, i;
        tu_recv(c->w, &m, TU_TIMEOUT);
        seq_of(&m, &t, &i);
        wsc_msg_clear(&m);
        if (t < 0)
            return NULL;
        CHECK_MSG(t >= 0 && t < THREADS, "thread %d", t);
        /* Exactly once and in each thread's order: a lost message shows
         * as a gap, a duplicate as a repeat. */
        CHECK_MSG(i == c->next[t], "from thread %d got %d, want %d", t, i, c->next[t]);
        c->next[t]++;
        c->total++;
        if (c->sleep_every && c->total % c->sleep_every == 0)
            tu_sleep_ms(1); /* a slow reader, not synchronisation */
    }
    tu_fail(__FILE__, __LINE__, "no end marker");
}

static void test_retry_accounting_4_threads(void)
{
    wsn_options *o = tu_opts();
    wsc_opts co;
    shared sh;
    publisher pubs[THREADS];
    counter slow, fast;
    wsn_client *cs, *cf;
    int t, refused = 0;
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 8);
    tu_set_int(o, WSN_OPT_WRITE_WAIT, DAY_MS);
    memset(&sh, 0, sizeof sh);
    sh.srv = tu_server(o);
    wsn_options_free(o);
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(sh.srv);
    co.rcvbuf = 8192;
    memset(&slow, 0, sizeof slow);
    memset(&fast, 0, sizeof fast);
    cs = tu_accept_opts(sh.srv, &co, &slow.w);
    co.rcvbuf = 0;
    cf = tu_accept_opts(sh.srv, &co, &fast.w);
    CHECK_OK(wsn_server_subscribe(sh.srv, cs, "c"));
    CHECK_OK(wsn_server_subscribe(sh.srv, cf, "c"));
    slow.sh = fast.sh = &sh;
    slow.wait_for_refusal = 1;
    slow.sleep_every = 25;
    CHECK(pthread_create(&slow.th, NULL, counter_main, &slow) == 0);
    CHECK(pthread_create(&fast.th, NULL, counter_main, &fast) == 0);
    for (t = 0; t < THREADS; t++) {
        pubs[t].sh = &sh;
        pubs[t].t = t;
        pubs[t].refused = 0;
        CHECK(pthread_create(&pubs[t].th, NULL, publisher_main, &pubs[t]) == 0);
    }
    for (t = 0; t < THREADS; t++) {
        CHECK(pthread_join(pubs[t].th, NULL) == 0);
        refused += pubs[t].refused;
    }
    CHECK_OK(wsn_server_publish(sh.srv, "c", "\"end\""));
    CHECK(pthread_join(slow.th, NULL) == 0);
    CHECK(pthread_join(fast.th, NULL) == 0);
    tu_note("%d refusals, all retried", refused);
    CHECK_MSG(refused > 0, "no publish was refused: the test proved nothing");
    for (t = 0; t < THREADS; t++) {
        CHECK_EQ(slow.next[t], PER_THREAD);
        CHECK_EQ(fast.next[t], PER_THREAD);
    }
    CHECK_EQ(slow.total, THREADS * PER_THREAD);
    CHECK_EQ(fast.total, THREADS * PER_THREAD);
    wsn_client_release(cs);
    wsn_client_release(cf);
    wsc_free(slow.w);
    wsc_free(fast.w);
    CHECK_OK(wsn_server_shutdown(sh.srv, 5000));
    wsn_server_free(sh.srv);
}

static const tu_test tests[] = {
    {"refused_at_once", test_refused_at_once},
    {"room_fd_fires", test_room_fd_fires},
    {"publish_wait_nonblock", test_publish_wait_nonblock},
    {"retry_accounting_4_threads", test_retry_accounting_4_threads},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
