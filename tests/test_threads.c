/* Threads: publishers, a subscriber flapper and connection churn at once,
 * with exact accounting; meant to be clean under TSan. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define S 4   /* stable clients */
#define M 400 /* messages per publisher */
#define K 40  /* churn connections */

typedef struct world {
    wsn_server *srv;
    int port;
    wsn_client *stable[S];
    wsc *stable_ws[S];
    pthread_mutex_t mu;
    /* counted by the handlers (main thread) */
    int churn_connects, churn_disconnects, churn_messages;
    /* T4's accepted direct messages per stable client */
    int direct_ok[S];
    int workers_done;
} world;

static int is_stable(world *w, const char *id)
{
    int i;
    for (i = 0; i < S; i++)
        if (strcmp(wsn_client_id(w->stable[i]), id) == 0)
            return 1;
    return 0;
}

static void on_connect(void *user, wsn_server *srv, const wsn_event *ev)
{
    world *w = user;
    CHECK_OK(wsn_server_subscribe(srv, wsn_event_client(ev), "churn"));
    pthread_mutex_lock(&w->mu);
    w->churn_connects++;
    pthread_mutex_unlock(&w->mu);
}

static void on_message(void *user, wsn_server *srv, const wsn_event *ev)
{
    world *w = user;
    size_t len;
    const char *p = wsn_event_payload(ev, &len);
    int rc = wsn_server_publish_to_client(srv, wsn_event_client(ev), "ack",
                                          WSN_TYPE_JSON, p, len, NULL,
                                          wsn_event_message_id(ev));
    CHECK_MSG(rc == 0 || rc == WSN_EGONE, "ack: %s", wsn_err_name(rc));
    pthread_mutex_lock(&w->mu);
    w->churn_messages++;
    pthread_mutex_unlock(&w->mu);
}

static void on_disconnect(void *user, wsn_server *srv, const wsn_event *ev)
{
    world *w = user;
    (void)srv;
    CHECK_MSG(!is_stable(w, wsn_event_client_id(ev)), "stable client %s dropped",
              wsn_event_client_id(ev));
    pthread_mutex_lock(&w->mu);
    w->churn_disconnects++;
    pthread_mutex_unlock(&w->mu);
}

typedef struct pub_arg {
    world *w;
    int p;
} pub_arg;

static void *publisher(void *arg)
{
    pub_arg *a = arg;
    int i;
    for (i = 0; i < M; i++) {
        char msg[64];
        snprintf(msg, sizeof msg, "{\"p\":%d,\"i\":%d}", a->p, i);
        CHECK_OK(wsn_server_publish(a->w->srv, "stable", msg));
        CHECK_OK(wsn_server_publish(a->w->srv, "churn", msg));
    }
    pthread_mutex_lock(&a->w->mu);
    a->w->workers_done++;
    pthread_mutex_unlock(&a->w->mu);
    return NULL;
}

static void *churner(void *arg)
{
    world *w = arg;
    int i;
    for (i = 0; i < K; i++) {
        wsc_opts co;
        wsc *c;
        char msg[80], mid[16];
        int j, acked = 0;
        memset(&co, 0, sizeof co);
        co.port = w->port;
        c = tu_connect_opts(&co);
        snprintf(mid, sizeof mid, "k%d", i);
        snprintf(msg, sizeof msg,
                 "{\"type\":\"json\",\"message\":{\"k\":%d},\"message_id\":\"%s\"}",
                 i, mid);
        CHECK_WSC(wsc_send_text(c, msg));
        for (j = 0; j < 100000 && !acked; j++) {
            wsc_msg m;
            tu_recv(c, &m, TU_TIMEOUT);
            CHECK_EQ(m.opcode, WSC_OP_TEXT);
            if (strstr((const char *)m.data, "\"channel\":\"ack\"")) {
                char want[32];
                snprintf(want, sizeof want, "\"reply_to_id\":\"%s\"", mid);
                CHECK_MSG(strstr((const char *)m.data, want) != NULL,
                          "ack for another message: %s", (const char *)m.data);
                acked = 1;
            }
            wsc_msg_clear(&m);
        }
        CHECK(acked);
        if (i % 2)
            CHECK_WSC(wsc_send_close(c, 1000, "done"));
        wsc_free(c);
    }
    pthread_mutex_lock(&w->mu);
    w->workers_done++;
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static void *flapper(void *arg)
{
    world *w = arg;
    int i;
    for (i = 0; i < 300; i++) {
        int j = i % S, rc;
        char msg[32];
        wsn_client *c = w->stable[j];
        if (i % 3 == 0)
            CHECK_OK(wsn_server_subscribe(w->srv, c, "flap"));
        else if (i % 3 == 1)
            CHECK_OK(wsn_server_unsubscribe(w->srv, c, "flap"));
        CHECK_OK(wsn_server_publish(w->srv, "flap", "0"));
        snprintf(msg, sizeof msg, "{\"d\":%d}", i);
        rc = wsn_server_publish_to_client(w->srv, c, "direct", WSN_TYPE_JSON,
                                          msg, strlen(msg), NULL, NULL);
        CHECK_OK(rc);
        pthread_mutex_lock(&w->mu);
        w->direct_ok[j]++;
        pthread_mutex_unlock(&w->mu);
        CHECK_OK(wsn_client_set_int(c, "n", i));
        {
            int64_t v;
            CHECK_OK(wsn_client_get_int(c, "n", &v));
        }
    }
    pthread_mutex_lock(&w->mu);
    w->workers_done++;
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Reads one stable client until "end"; checks order per source. */
typedef struct stable_reader {
    pthread_t th;
    wsc *ws;
    int next_p[2], next_d, flaps;
    int rc;
} stable_reader;

static void *stable_read(void *arg)
{
    stable_reader *r = arg;
    int i;
    for (i = 0; i < 100000; i++) {
        wsc_msg m;
        const char *s, *q;
        int rc = wsc_recv_msg(r->ws, &m, 30000);
        if (rc != WSC_OK) {
            r->rc = rc;
            return NULL;
        }
        CHECK_EQ(m.opcode, WSC_OP_TEXT);
        s = (const char *)m.data;
        if (strstr(s, "\"message\":\"end\"")) {
            wsc_msg_clear(&m);
            r->rc = WSC_OK;
            return NULL;
        }
        if ((q = strstr(s, "\"message\":{\"p\":")) != NULL) {
            int p = atoi(q + 15), seq;
            const char *qi = strstr(q, "\"i\":");
            CHECK(p == 0 || p == 1);
            CHECK(qi != NULL);
            seq = atoi(qi + 4);
            CHECK_MSG(seq == r->next_p[p], "publisher %d: got %d, want %d", p, seq,
                      r->next_p[p]);
            r->next_p[p]++;
        } else if ((q = strstr(s, "\"message\":{\"d\":")) != NULL) {
            r->next_d++;
        } else if (strstr(s, "\"channel\":\"flap\"")) {
            r->flaps++;
        } else {
            tu_fail(__FILE__, __LINE__, "unexpected message %s", s);
        }
        wsc_msg_clear(&m);
    }
    r->rc = WSC_EPROTO;
    return NULL;
}

static int get_int(world *w, int *p)
{
    int v;
    pthread_mutex_lock(&w->mu);
    v = *p;
    pthread_mutex_unlock(&w->mu);
    return v;
}

static void test_concurrent_pubsub_churn(void)
{
    world w;
    pthread_t th[4];
    pub_arg pa[2];
    stable_reader rd[S];
    int i;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    {
        wsn_options *o = tu_opts();
        CHECK_OK(wsn_server_new(o, &w.srv, NULL, 0));
        wsn_options_free(o);
    }
    /* Handlers run only through dispatch(); the stable clients' CONNECT
     * events are taken raw by tu_accept below. */
    CHECK_OK(wsn_server_set_handler(w.srv, WSN_EVENT_CONNECT, on_connect, &w));
    CHECK_OK(wsn_server_set_handler(w.srv, WSN_EVENT_MESSAGE, on_message, &w));
    CHECK_OK(wsn_server_set_handler(w.srv, WSN_EVENT_DISCONNECT, on_disconnect, &w));
    CHECK_OK(wsn_server_start(w.srv));
    w.port = wsn_server_port(w.srv);
    for (i = 0; i < S; i++) {
        w.stable[i] = tu_accept(w.srv, &w.stable_ws[i]);
        CHECK_OK(wsn_server_subscribe(w.srv, w.stable[i], "stable"));
    }
    for (i = 0; i < S; i++) {
        memset(&rd[i], 0, sizeof rd[i]);
        rd[i].ws = w.stable_ws[i];
        CHECK(pthread_create(&rd[i].th, NULL, stable_read, &rd[i]) == 0);
    }
    for (i = 0; i < 2; i++) {
        pa[i].w = &w;
        pa[i].p = i;
        CHECK(pthread_create(&th[i], NULL, publisher, &pa[i]) == 0);
    }
    CHECK(pthread_create(&th[2], NULL, churner, &w) == 0);
    CHECK(pthread_create(&th[3], NULL, flapper, &w) == 0);
    {
        int64_t deadline = tu_now_ms() + 120000;
        while (get_int(&w, &w.workers_done) < 4 ||
               get_int(&w, &w.churn_disconnects) < K) {
            int rc;
            CHECK_MSG(tu_now_ms() < deadline,
                      "stuck: workers %d, churn connects %d disconnects %d",
                      get_int(&w, &w.workers_done), get_int(&w, &w.churn_connects),
                      get_int(&w, &w.churn_disconnects));
            rc = wsn_server_wait(w.srv, 100);
            CHECK(rc == 0 || rc == 1);
            CHECK(wsn_server_dispatch(w.srv, 0) >= 0);
        }
    }
    for (i = 0; i < 4; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    CHECK_OK(wsn_server_publish(w.srv, "stable", "\"end\""));
    for (i = 0; i < S; i++) {
        CHECK(pthread_join(rd[i].th, NULL) == 0);
        CHECK_MSG(rd[i].rc == WSC_OK, "stable reader %d: %s", i,
                  wsc_strerror(rd[i].rc));
        CHECK_EQ(rd[i].next_p[0], M);
        CHECK_EQ(rd[i].next_p[1], M);
        CHECK_EQ(rd[i].next_d, w.direct_ok[i]);
    }
    tu_note("stable[0]: %d+%d published, %d direct, %d flap messages", rd[0].next_p[0],
            rd[0].next_p[1], rd[0].next_d, rd[0].flaps);
    CHECK_EQ(w.churn_connects, K);
    CHECK_EQ(w.churn_messages, K);
    CHECK_EQ(w.churn_disconnects, K);
    CHECK_EQ(wsn_server_connected_clients(w.srv), S);
    CHECK_EQ(wsn_server_dispatch(w.srv, 0), 0);
    for (i = 0; i < S; i++) {
        wsc_free(w.stable_ws[i]);
        wsn_client_release(w.stable[i]);
    }
    CHECK_OK(wsn_server_shutdown(w.srv, 5000));
    wsn_server_free(w.srv);
    pthread_mutex_destroy(&w.mu);
}

/* Metadata of one client from several threads. */
typedef struct meta_arg {
    wsn_client *c;
    int t;
} meta_arg;

static void *meta_worker(void *arg)
{
    meta_arg *a = arg;
    int i;
    char key[16], buf[64];
    snprintf(key, sizeof key, "k%d", a->t);
    for (i = 0; i < 2000; i++) {
        int64_t v;
        size_t len;
        CHECK_OK(wsn_client_set_int(a->c, key, i));
        CHECK_OK(wsn_client_get_int(a->c, key, &v));
        CHECK_EQ(v, i);
        /* a shared key of changing type */
        if (i % 2)
            CHECK_OK(wsn_client_set_string(a->c, "shared", "str"));
        else
            CHECK_OK(wsn_client_set_int(a->c, "shared", i));
        {
            int rc = wsn_client_get_string(a->c, "shared", buf, sizeof buf, &len);
            CHECK_MSG(rc == 0 || rc == WSN_ETYPE, "%s", wsn_err_name(rc));
            if (rc == 0)
                CHECK_STR(buf, "str");
        }
        {
            wsn_strlist *l = NULL;
            CHECK_OK(wsn_client_metadata_keys(a->c, &l));
            CHECK(wsn_strlist_count(l) >= 1);
            wsn_strlist_free(l);
        }
    }
    return NULL;
}

static void test_concurrent_metadata(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    pthread_t th[4];
    meta_arg a[4];
    int i;
    for (i = 0; i < 4; i++) {
        a[i].c = c;
        a[i].t = i;
        CHECK(pthread_create(&th[i], NULL, meta_worker, &a[i]) == 0);
    }
    for (i = 0; i < 4; i++)
        CHECK(pthread_join(th[i], NULL) == 0);
    for (i = 0; i < 4; i++) {
        char key[16];
        int64_t v;
        snprintf(key, sizeof key, "k%d", i);
        CHECK_OK(wsn_client_get_int(c, key, &v));
        CHECK_EQ(v, 1999);
    }
    wsc_free(w);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"concurrent_pubsub_churn", test_concurrent_pubsub_churn},
    {"concurrent_metadata", test_concurrent_metadata},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
