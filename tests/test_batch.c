/* Batched publishing: publish_wait / _string / _with_type, de-duplication,
 * first call fixes the batch, cancel, limits. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef struct fixture {
    wsn_server *srv;
    wsc *ws;
    wsn_client *cl;
} fixture;

static fixture setup(const wsn_options *o)
{
    fixture f;
    f.srv = tu_server(o);
    f.cl = tu_accept(f.srv, &f.ws);
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "c"));
    return f;
}

static void teardown(fixture *f)
{
    wsc_free(f->ws);
    wsn_client_release(f->cl);
    CHECK_OK(wsn_server_shutdown(f->srv, 5000));
    wsn_server_free(f->srv);
}

static void test_batch_json(void)
{
    fixture f = setup(NULL);
    CHECK_EQ(wsn_server_pending_batches(f.srv), 0);
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "{\"user\":\"A\",\"x\":10}", 12345,
                                     "cursor-updates", 100));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "{\"insert\":\"h\",\"user\":\"B\"}",
                                     12345, "cursor-updates", 100));
    CHECK_EQ(wsn_server_pending_batches(f.srv), 1);
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[{\"user\":\"A\",\"x\":10},"
                             "{\"insert\":\"h\",\"user\":\"B\"}],\"name\":"
                             "\"cursor-updates\"}}");
    TU_WAIT_FOR(wsn_server_pending_batches(f.srv) == 0, TU_TIMEOUT);
    /* the key starts afresh after delivery */
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "3", 12345, "again", 50));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[3],\"name\":\"again\"}}");
    teardown(&f);
}

static void test_batch_dedup(void)
{
    fixture f = setup(NULL);
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "{\"a\":1,\"b\":2}", 1, "d", 100));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "{\"b\":2,\"a\":1}", 1, "d", 100));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "{\"a\":1}", 1, "d", 100));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "{ \"a\" : 1 }", 1, "d", 100));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "{\"a\":1,\"b\":2}", 1, "d", 100));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "[1,2]", 1, "d", 100));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "[2,1]", 1, "d", 100));
    /* another ident: its own batch, no de-dup across batches */
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "{\"a\":1}", 2, "e", 300));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[{\"a\":1,\"b\":2},{\"a\":1},"
                             "[1,2],[2,1]],\"name\":\"d\"}}");
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[{\"a\":1}],\"name\":\"e\"}}");
    teardown(&f);
}

static void test_batch_text(void)
{
    fixture f = setup(NULL);
    CHECK_OK(wsn_server_publish_wait_string(f.srv, "c", "INFO: User logged in", 1,
                                            "Server-1 Logs", 100));
    CHECK_OK(wsn_server_publish_wait_string(f.srv, "c", "WARN: High CPU", 1,
                                            "Server-1 Logs", 100));
    CHECK_OK(wsn_server_publish_wait_string(f.srv, "c", "INFO: User logged in", 1,
                                            "Server-1 Logs", 100));
    CHECK_OK(wsn_server_publish_wait_string(f.srv, "c", "\"q\"", 1, "Server-1 Logs",
                                            100));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"text\",\"time\":\"T\","
                             "\"message\":\"Server-1 Logs\\n\\nINFO: User logged in"
                             "\\nWARN: High CPU\\n\\\"q\\\"\"}");
    /* the _with_type spelling of the same */
    CHECK_OK(wsn_server_publish_wait_with_type(f.srv, "c", WSN_TYPE_TEXT, "one", 3, 2,
                                               "T2", 50));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"text\",\"time\":\"T\","
                             "\"message\":\"T2\\n\\none\"}");
    CHECK_RC(wsn_server_publish_wait_string(f.srv, "c", "\xff", 3, "x", 50), WSN_EINVAL);
    teardown(&f);
}

static void test_batch_binary(void)
{
    fixture f = setup(NULL);
    wsc_msg m;
    char *s;
    CHECK_OK(wsn_server_publish_wait_with_type(f.srv, "c", WSN_TYPE_BINARY, "\x00\x01",
                                               2, 1, "bin", 100));
    CHECK_OK(wsn_server_publish_wait_with_type(f.srv, "c", WSN_TYPE_BINARY, "\xff", 1,
                                               1, "bin", 100));
    CHECK_OK(wsn_server_publish_wait_with_type(f.srv, "c", WSN_TYPE_BINARY, "\x00\x01",
                                               2, 1, "bin", 100));
    tu_recv(f.ws, &m, TU_TIMEOUT);
    CHECK_EQ(m.opcode, WSC_OP_TEXT);
    s = tu_strip_time((const char *)m.data);
    tu_note("binary batch: %s", s);
    CHECK_MSG(strcmp(s, "{\"channel\":\"c\",\"type\":\"binary\",\"time\":\"T\","
                        "\"message\":{\"messages\":[\"AAE=\",\"/w==\"],\"name\":"
                        "\"bin\"}}") == 0 ||
                  strcmp(s, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                            "\"message\":{\"messages\":[\"AAE=\",\"/w==\"],\"name\":"
                            "\"bin\"}}") == 0,
              "binary batch envelope: %s", s);
    free(s);
    wsc_msg_clear(&m);
    teardown(&f);
}

static void test_batch_first_fixes(void)
{
    fixture f = setup(NULL);
    /* The first call's ttl (100 ms) holds, not the later 10 minutes; and
     * its name. */
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "1", 7, "first", 100));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "2", 7, "second", 600000));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[1,2],\"name\":\"first\"}}");
    /* Same ident on another channel is another key. */
    CHECK_OK(wsn_server_subscribe(f.srv, f.cl, "d"));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "3", 8, "on-c", 100));
    CHECK_OK(wsn_server_publish_wait(f.srv, "d", "4", 8, "on-d", 100));
    CHECK_EQ(wsn_server_pending_batches(f.srv), 2);
    {
        int i, got_c = 0, got_d = 0;
        for (i = 0; i < 2; i++) {
            wsc_msg m;
            char *s;
            tu_recv(f.ws, &m, TU_TIMEOUT);
            s = tu_strip_time((const char *)m.data);
            if (strcmp(s, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                          "\"message\":{\"messages\":[3],\"name\":\"on-c\"}}") == 0)
                got_c++;
            else if (strcmp(s, "{\"channel\":\"d\",\"type\":\"json\",\"time\":\"T\","
                               "\"message\":{\"messages\":[4],\"name\":\"on-d\"}}") == 0)
                got_d++;
            else
                tu_fail(__FILE__, __LINE__, "unexpected %s", s);
            free(s);
            wsc_msg_clear(&m);
        }
        CHECK(got_c == 1 && got_d == 1);
    }
    teardown(&f);
}

static void test_batch_cancel(void)
{
    fixture f = setup(NULL);
    CHECK_OK(wsn_server_cancel_pending_messages(f.srv, "c", 99)); /* none: no-op */
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "\"cancelled\"", 1, "gone", 50));
    CHECK_EQ(wsn_server_pending_batches(f.srv), 1);
    CHECK_OK(wsn_server_cancel_pending_messages(f.srv, "c", 1));
    CHECK_EQ(wsn_server_pending_batches(f.srv), 0);
    /* A later batch with a longer ttl: it must be the first thing to arrive,
     * proving the cancelled one (due earlier) never left. */
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "\"kept\"", 2, "kept", 200));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[\"kept\"],\"name\":\"kept\"}}");
    /* After cancel, the key starts afresh with a new name. */
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "1", 1, "old", 600000));
    CHECK_OK(wsn_server_cancel_pending_messages(f.srv, "c", 1));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "2", 1, "new", 50));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[2],\"name\":\"new\"}}");
    teardown(&f);
}

static void test_batch_pending_limit(void)
{
    wsn_options *o = tu_opts();
    fixture f;
    tu_set_int(o, WSN_OPT_MAX_PENDING_BATCHES, 2);
    f = setup(o);
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "1", 1, "a", 600000));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "2", 2, "b", 600000));
    CHECK_RC(wsn_server_publish_wait(f.srv, "c", "3", 3, "c", 600000), WSN_ELIMIT);
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "4", 1, "a", 600000)); /* existing */
    CHECK_EQ(wsn_server_pending_batches(f.srv), 2);
    CHECK_OK(wsn_server_cancel_pending_messages(f.srv, "c", 2));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "5", 3, "c", 50)); /* room again */
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[5],\"name\":\"c\"}}");
    CHECK_OK(wsn_server_cancel_pending_messages(f.srv, "c", 1));
    teardown(&f);
    wsn_options_free(o);
}

static void test_batch_max_messages(void)
{
    wsn_options *o = tu_opts();
    fixture f;
    tu_set_int(o, WSN_OPT_MAX_BATCH_MESSAGES, 3);
    f = setup(o);
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "1", 1, "full", 600000));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "2", 1, "full", 600000));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "3", 1, "full", 600000));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[1,2,3],\"name\":\"full\"}}");
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "4", 1, "fresh", 50));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[4],\"name\":\"fresh\"}}");
    teardown(&f);
    wsn_options_free(o);
    /* max_batch_bytes: a batch reaching it leaves at once. */
    o = tu_opts();
    tu_set_int(o, WSN_OPT_MAX_BATCH_BYTES, 64);
    f = setup(o);
    {
        int i;
        for (i = 0; i < 4; i++) {
            char msg[64];
            snprintf(msg, sizeof msg, "\"%d-padding-padding-padding\"", i);
            CHECK_OK(wsn_server_publish_wait(f.srv, "c", msg, 1, "bytes", 600000));
        }
    }
    {
        wsc_msg m;
        tu_recv(f.ws, &m, TU_TIMEOUT);
        CHECK_MSG(strstr((const char *)m.data, "\"0-padding-padding-padding\"") != NULL,
                  "first byte-limited batch: %s", (const char *)m.data);
        tu_note("byte-limited batch: %s", (const char *)m.data);
        wsc_msg_clear(&m);
    }
    CHECK_OK(wsn_server_cancel_pending_messages(f.srv, "c", 1));
    teardown(&f);
    wsn_options_free(o);
}

static void test_batch_ttl_zero(void)
{
    fixture f = setup(NULL);
    int got = 0, i;
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "1", 5, "z", 0));
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "2", 5, "z", 0));
    /* one or two batches; together exactly [1,2] in order */
    for (i = 0; i < 2 && got < 2; i++) {
        wsc_msg m;
        char *s;
        tu_recv(f.ws, &m, TU_TIMEOUT);
        s = tu_strip_time((const char *)m.data);
        if (got == 0 &&
            strcmp(s, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\",\"message\":"
                      "{\"messages\":[1,2],\"name\":\"z\"}}") == 0)
            got = 2;
        else if (got == 0 &&
                 strcmp(s, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":{\"messages\":[1],\"name\":\"z\"}}") == 0)
            got = 1;
        else if (got == 1 &&
                 strcmp(s, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                           "\"message\":{\"messages\":[2],\"name\":\"z\"}}") == 0)
            got = 2;
        else
            tu_fail(__FILE__, __LINE__, "unexpected batch %s", s);
        free(s);
        wsc_msg_clear(&m);
    }
    CHECK_EQ(got, 2);
    TU_WAIT_FOR(wsn_server_pending_batches(f.srv) == 0, TU_TIMEOUT);
    teardown(&f);
}

static void test_batch_errors(void)
{
    fixture f = setup(NULL);
    CHECK_RC(wsn_server_publish_wait(f.srv, "", "1", 1, "n", 10), WSN_EINVAL);
    CHECK_RC(wsn_server_publish_wait(f.srv, "c", "{", 1, "n", 10), WSN_EJSON);
    CHECK_RC(wsn_server_publish_wait(f.srv, NULL, "1", 1, "n", 10), WSN_EINVAL);
    CHECK_RC(wsn_server_publish_wait(f.srv, "c", NULL, 1, "n", 10), WSN_EINVAL);
    {
        int rc = wsn_server_publish_wait(f.srv, "c", "1", 1, "n", -1);
        CHECK_MSG(rc == WSN_EINVAL || rc == WSN_ERANGE, "negative ttl: %s",
                  wsn_err_name(rc));
    }
    CHECK_RC(wsn_server_publish_wait(f.srv, "c", "1", 1, "\xff", 10), WSN_EINVAL);
    CHECK_RC(wsn_server_cancel_pending_messages(f.srv, "", 1), WSN_EINVAL);
    CHECK_EQ(wsn_server_pending_batches(f.srv), 0);
    /* nothing from the refused calls arrives */
    CHECK_OK(wsn_server_publish(f.srv, "c", "\"end\""));
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":\"end\"}");
    teardown(&f);
}


/* Counts how many messages (each holds "i":) a batch frame carries. */
static int count_items(const wsc_msg *m)
{
    int n = 0;
    for (const char *p = (const char *)m->data; (p = strstr(p, "\"i\":")); p += 4)
        n++;
    return n;
}

#define BATCH_THREADS 4
#define BATCH_KEYS 100
#define BATCH_PER_KEY 5

struct batch_worker {
    wsn_server *srv;
    int thread;
    int failures;
};

static void *batch_worker_main(void *arg)
{
    struct batch_worker *w = arg;
    char msg[64];
    for (int round = 0; round < BATCH_PER_KEY; round++)
        for (int key = 0; key < BATCH_KEYS; key++) {
            snprintf(msg, sizeof msg, "{\"t\":%d,\"k\":%d,\"i\":%d}", w->thread, key, round);
            if (wsn_server_publish_wait(w->srv, "c", msg, (uint64_t)key, "k", 50))
                w->failures++;
        }
    return NULL;
}

/* 4 threads × 100 keys: every message arrives in exactly one batch. */
static void test_batch_threads(void)
{
    wsn_options *o = tu_opts();
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 100000);
    fixture f = setup(o);
    wsn_options_free(o);
    pthread_t tids[BATCH_THREADS];
    struct batch_worker workers[BATCH_THREADS];
    for (int t = 0; t < BATCH_THREADS; t++) {
        workers[t] = (struct batch_worker){f.srv, t, 0};
        CHECK(pthread_create(&tids[t], NULL, batch_worker_main, &workers[t]) == 0);
    }
    for (int t = 0; t < BATCH_THREADS; t++) {
        CHECK(pthread_join(tids[t], NULL) == 0);
        CHECK_EQ(workers[t].failures, 0);
    }
    const int want = BATCH_THREADS * BATCH_KEYS * BATCH_PER_KEY;
    int got = 0;
    while (got < want) {
        wsc_msg m;
        tu_recv(f.ws, &m, TU_TIMEOUT);
        CHECK(strstr((const char *)m.data, "\"name\":\"k\"") != NULL);
        got += count_items(&m);
        wsc_msg_clear(&m);
    }
    CHECK_EQ(got, want);
    TU_WAIT_FOR(wsn_server_pending_batches(f.srv) == 0, TU_TIMEOUT);
    teardown(&f);
}

static void *shutdown_main(void *arg)
{
    wsn_server *srv = arg;
    wsn_server_shutdown(srv, 30000);
    return NULL;
}

/* 10,000 keys pending at once, one more refused, and shutdown delivers
 * every pending batch before the close. */
static void test_batch_many_keys_shutdown_flush(void)
{
    wsn_options *o = tu_opts();
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 20000);
    tu_set_int(o, WSN_OPT_MAX_PENDING_BATCHES, 10000);
    fixture f = setup(o);
    wsn_options_free(o);
    char msg[32];
    for (int key = 0; key < 10000; key++) {
        snprintf(msg, sizeof msg, "{\"i\":%d}", key);
        CHECK_OK(wsn_server_publish_wait(f.srv, "c", msg, (uint64_t)key, "m", 600000));
    }
    CHECK_EQ(wsn_server_pending_batches(f.srv), 10000);
    CHECK_RC(wsn_server_publish_wait(f.srv, "c", "1", 10000, "m", 600000), WSN_ELIMIT);
    pthread_t tid;
    CHECK(pthread_create(&tid, NULL, shutdown_main, f.srv) == 0);
    int got = 0;
    for (;;) {
        wsc_msg m;
        tu_recv(f.ws, &m, TU_TIMEOUT);
        if (m.opcode == WSC_OP_CLOSE) {
            CHECK_EQ(m.close_code, 1001);
            CHECK_STR(m.close_reason, "server shutdown");
            wsc_msg_clear(&m);
            break;
        }
        got += count_items(&m);
        wsc_msg_clear(&m);
    }
    CHECK_EQ(got, 10000);
    CHECK(pthread_join(tid, NULL) == 0);
    wsc_free(f.ws);
    wsn_client_release(f.cl);
    wsn_server_free(f.srv);
}

/* Nothing leaves before the ttl (a negative check bounded well below it). */
static void test_batch_waits_for_ttl(void)
{
    fixture f = setup(NULL);
    CHECK_OK(wsn_server_publish_wait(f.srv, "c", "{\"i\":1}", 9, "late", 1500));
    wsc_msg m;
    CHECK_EQ(wsc_recv_msg(f.ws, &m, 300), WSC_TIMEOUT);
    CHECK_EQ(wsn_server_pending_batches(f.srv), 1);
    tu_expect_envelope(f.ws, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\","
                             "\"message\":{\"messages\":[{\"i\":1}],\"name\":\"late\"}}");
    teardown(&f);
}

static const tu_test tests[] = {
    {"batch_json", test_batch_json},
    {"batch_dedup", test_batch_dedup},
    {"batch_text", test_batch_text},
    {"batch_binary", test_batch_binary},
    {"batch_first_fixes", test_batch_first_fixes},
    {"batch_cancel", test_batch_cancel},
    {"batch_pending_limit", test_batch_pending_limit},
    {"batch_max_messages", test_batch_max_messages},
    {"batch_ttl_zero", test_batch_ttl_zero},
    {"batch_errors", test_batch_errors},
    {"batch_threads", test_batch_threads},
    {"batch_many_keys_shutdown_flush", test_batch_many_keys_shutdown_flush},
    {"batch_waits_for_ttl", test_batch_waits_for_ttl},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
