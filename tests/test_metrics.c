/* The metrics snapshot (wsn_server_metrics), its Prometheus text and the
 * GET /metrics route, after known sequences with real clients: every
 * count is checked exactly. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

static wsn_metrics snap(wsn_server *srv)
{
    wsn_metrics m;
    memset(&m, 0xab, sizeof m);
    m.size = sizeof m;
    CHECK_OK(wsn_server_metrics(srv, &m));
    return m;
}

/* Wire bytes of a server frame with this payload (unmasked header). */
static uint64_t wire(size_t len)
{
    return len + (len < 126 ? 2 : len < 65536 ? 4 : 10);
}

/* Receives one text message and adds its wire bytes to *bytes. */
static void recv_text(wsc *c, uint64_t *bytes)
{
    wsc_msg m;
    tu_recv(c, &m, TU_TIMEOUT);
    CHECK_EQ(m.opcode, WSC_OP_TEXT);
    *bytes += wire(m.len);
    wsc_msg_clear(&m);
}

/* The I/O-thread handler: records every event; a "flood" message makes it
 * publish three messages to "slow" at once, before any can be written. */
static void handler(void *user, wsn_server *srv, const wsn_event *ev)
{
    tu_recorder_handler(user, srv, ev);
    if (wsn_event_kind(ev) == WSN_EVENT_MESSAGE &&
        !strcmp(wsn_event_payload(ev, NULL), "\"flood\""))
        for (int i = 0; i < 3; i++)
            CHECK_OK(wsn_server_publish(srv, "slow", "{\"flood\":1}"));
}

static wsn_client *client_of(tu_recorder *r, int connect_index)
{
    int seen = 0;
    for (int i = 0; i < tu_recorder_total(r); i++) {
        tu_rec_event e = tu_recorder_get(r, i);
        if (e.kind == WSN_EVENT_CONNECT && seen++ == connect_index)
            return e.client;
    }
    tu_fail(__FILE__, __LINE__, "no CONNECT number %d", connect_index);
}

/* Three clients, two messages of each type from one of them and one that is
 * not an envelope, a refused Origin and a wrong path, three publishes to
 * everyone, a publish over max_channel_name, a batch waiting, and a client
 * dropped in drop mode because three publishes made on the I/O thread
 * found its queue (send_buffer 2) full. */
static void test_snapshot_counts(void)
{
    enum { N = 3, M = 2, K = 3 };
    static const char *const json_msg =
        "{\"type\":\"json\",\"channel\":\"room\",\"message\":{\"n\":1}}";
    static const char *const text_msg =
        "{\"type\":\"text\",\"channel\":\"room\",\"message\":\"hello\"}";
    static const unsigned char bin_msg[] = {0, 1, 2, 3, 255};
    wsn_options *o = tu_opts();
    tu_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, 1);
    tu_set_int(o, WSN_OPT_DROP_ON_BACKPRESSURE, 1);
    tu_set_int(o, WSN_OPT_SEND_BUFFER, 2);
    tu_set_int(o, WSN_OPT_MAX_CHANNEL_NAME, 8);
    wsn_server *srv = NULL;
    tu_recorder r;
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    tu_recorder_init(&r);
    for (int kind = WSN_EVENT_CONNECT; kind <= WSN_EVENT_STOPPED; kind++)
        CHECK_OK(wsn_server_set_handler(srv, (wsn_event_type)kind, handler, &r));

    /* Before start: all zero, the broker none. */
    wsn_metrics m = snap(srv);
    CHECK_EQ(m.connections_accepted, 0);
    CHECK_EQ(m.deliveries, 0);
    CHECK_EQ(m.broker_state, WSN_BROKER_NONE);
    CHECK_EQ(m.connections_refused[15], 0);
    CHECK_OK(wsn_server_start(srv));
    int port = wsn_server_port(srv);

    wsc *w[N];
    for (int i = 0; i < N; i++)
        w[i] = tu_connect(port);
    TU_WAIT_FOR(tu_recorder_count(&r, WSN_EVENT_CONNECT) == N, TU_TIMEOUT);
    wsc_opts bad = {.port = port, .origin = "http://elsewhere.example"};
    CHECK_EQ(tu_connect_refused(&bad), 403);
    wsc_opts wrong = {.port = port, .path = "/nope"};
    CHECK_EQ(tu_connect_refused(&wrong), 404);

    wsn_client *a = client_of(&r, 0), *b = client_of(&r, 1), *c = client_of(&r, 2);
    CHECK_OK(wsn_server_subscribe(srv, a, "room"));
    CHECK_OK(wsn_server_subscribe(srv, b, "room"));
    CHECK_OK(wsn_server_subscribe(srv, c, "room"));
    CHECK_OK(wsn_server_subscribe(srv, c, "slow"));
    TU_WAIT_FOR(snap(srv).subscriptions == 4, TU_TIMEOUT);
    m = snap(srv);
    CHECK_EQ(m.connections, N);
    CHECK_EQ(m.connections_accepted, N);
    CHECK_EQ(m.connections_refused[WSN_REFUSED_ORIGIN], 1);
    CHECK_EQ(m.connections_refused[WSN_REFUSED_BAD_REQUEST], 1);
    CHECK_EQ(m.connections_refused[WSN_REFUSED_MAX_CLIENTS], 0);
    CHECK_EQ(m.channels, 2);

    /* In: M of each type, and one that is not JSON (an error reply). */
    for (int i = 0; i < M; i++) {
        CHECK_WSC(wsc_send_text(w[0], json_msg));
        CHECK_WSC(wsc_send_text(w[0], text_msg));
        CHECK_WSC(wsc_send_binary(w[0], bin_msg, sizeof bin_msg));
    }
    CHECK_WSC(wsc_send_text(w[0], "not json"));
    uint64_t sent_bytes = 0;
    recv_text(w[0], &sent_bytes); /* the error reply */
    TU_WAIT_FOR(tu_recorder_count(&r, WSN_EVENT_MESSAGE) == 3 * M, TU_TIMEOUT);

    /* Out: K publishes to the three members of "room". */
    for (int k = 0; k < K; k++) {
        /* One at a time: three at once would fill the queues of two. */
        CHECK_OK(wsn_server_publish(srv, "room", "{\"k\":1}"));
        for (int i = 0; i < N; i++)
            recv_text(w[i], &sent_bytes);
    }

    /* Refused publishes and a pending batch. */
    CHECK_RC(wsn_server_publish(srv, "far-too-long", "1"), WSN_ELIMIT);
    CHECK_RC(wsn_server_send_raw(srv, NULL, WSN_TYPE_TEXT, "x", 1), WSN_EINVAL);
    CHECK_OK(wsn_server_publish_wait(srv, "room", "1", 7, "b", 60000));

    TU_WAIT_FOR(snap(srv).messages_sent == 1 + N * K, TU_TIMEOUT);
    m = snap(srv);
    CHECK_EQ(m.messages_received[WSN_TYPE_JSON], M);
    CHECK_EQ(m.messages_received[WSN_TYPE_TEXT], M);
    CHECK_EQ(m.messages_received[WSN_TYPE_BINARY], M);
    CHECK_EQ(m.bytes_received[WSN_TYPE_JSON], M * strlen(json_msg));
    CHECK_EQ(m.bytes_received[WSN_TYPE_TEXT], M * strlen(text_msg));
    CHECK_EQ(m.bytes_received[WSN_TYPE_BINARY], M * sizeof bin_msg);
    CHECK_EQ(m.messages_invalid, 1);
    CHECK_EQ(m.deliveries, 1 + N * K);
    CHECK_EQ(m.bytes_sent, sent_bytes);
    CHECK_EQ(m.messages_dropped, 0);
    CHECK_EQ(m.queued, 0);
    CHECK_EQ(m.queue_max, 0);
    CHECK_EQ(m.publish_refused_limit, 1);
    CHECK_EQ(m.publish_refused_again, 0);
    CHECK_EQ(m.publish_refused_timeout, 0);
    CHECK_EQ(m.publish_refused_backpressure, 0);
    CHECK_EQ(m.pending_batches, 1);
    CHECK_EQ(m.events_queued, 0); /* handlers on the I/O thread: nothing queued */
    CHECK_OK(wsn_server_cancel_pending_messages(srv, "room", 7));

    /* The slow client: three publishes on the I/O thread, queue of two. */
    CHECK_WSC(wsc_send_text(w[0], "{\"type\":\"json\",\"message\":\"flood\"}"));
    tu_expect_close(w[2], 1001, "going away: backpressure");
    TU_WAIT_FOR(tu_recorder_count(&r, WSN_EVENT_DISCONNECT) == 1, TU_TIMEOUT);
    m = snap(srv);
    CHECK_EQ(m.connections, N - 1);
    CHECK_EQ(m.connections_ended, 1);
    CHECK_EQ(m.connections_closed[WSN_CLOSED_QUEUE_FULL], 1);
    CHECK_EQ(m.connections_closed[WSN_CLOSED_SLOW], 0);
    CHECK_EQ(m.messages_received[WSN_TYPE_JSON], M + 1);
    CHECK_EQ(m.deliveries, 1 + N * K + 2);  /* two queued, then the third found it full */
    CHECK_EQ(m.messages_dropped, 3);        /* the third, and the two cleared with the drop */
    CHECK_EQ(m.messages_sent, 1 + N * K);   /* none of the three was written */
    CHECK_EQ(m.queued, 0);
    CHECK_EQ(m.subscriptions, 2);
    CHECK_EQ(m.channels, 1);

    for (int i = 0; i < N; i++)
        wsc_free(w[i]);
    TU_WAIT_FOR(tu_recorder_count(&r, WSN_EVENT_DISCONNECT) == N, TU_TIMEOUT);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    m = snap(srv);
    CHECK_EQ(m.connections, 0);
    CHECK_EQ(m.connections_ended, N);
    CHECK_EQ(m.connections_accepted, N);
    CHECK_EQ(m.subscriptions, 0);
    CHECK_EQ(m.channels, 0);
    wsn_server_free(srv);
    tu_recorder_free(&r);
    wsn_options_free(o);
}

static char *big_json(int i)
{
    char *s = malloc(20000);
    int n = snprintf(s, 20000, "{\"i\":%d,\"pad\":\"", i);
    memset(s + n, 'x', 16000);
    strcpy(s + n + 16000, "\"}");
    return s;
}

/* Block mode: a client that does not read fills its queue; NONBLOCK
 * publishes then get WSN_EAGAIN. The snapshot says that a client is
 * stalled, how full its queue is (send_buffer), and that what was queued
 * and not written is dropped once it leaves. The kernel and lws take
 * several megabytes before the queue stays full, so the test keeps
 * publishing (waiting on the room fd after each WSN_EAGAIN) until the
 * once-a-second walk has seen it full. */
static void test_stalled_queue(void)
{
    enum { SEND_BUFFER = 8, MAX_PUBLISHES = 4000 };
    wsn_options *o = tu_opts();
    tu_set_int(o, WSN_OPT_SEND_BUFFER, SEND_BUFFER);
    tu_set_int(o, WSN_OPT_WRITE_WAIT, 120000);
    wsn_server *srv = tu_server(o);
    wsc_opts co = {.port = wsn_server_port(srv), .rcvbuf = 4096};
    wsc *slow;
    wsn_client *cs = tu_accept_opts(srv, &co, &slow);
    CHECK_OK(wsn_server_subscribe(srv, cs, "c"));
    int accepted = 0, again = 0;
    int64_t deadline = tu_now_ms() + 4 * TU_TIMEOUT;
    wsn_metrics m;
    for (;;) {
        CHECK_MSG(accepted < MAX_PUBLISHES && tu_now_ms() < deadline,
                  "%d publishes, %d refused: the queue never stayed full", accepted, again);
        char *msg = big_json(accepted);
        int rc = wsn_server_publish_ex(srv, NULL, "c", WSN_TYPE_JSON, msg, strlen(msg), NULL,
                                       NULL, WSN_PUBLISH_NONBLOCK);
        free(msg);
        if (rc == WSN_OK) {
            accepted++;
            continue;
        }
        CHECK_RC(rc, WSN_EAGAIN);
        again++;
        m = snap(srv);
        if (m.queue_max == SEND_BUFFER && m.stalled_clients == 1)
            break;
        struct pollfd pfd = {.fd = wsn_server_room_fd(srv), .events = POLLIN};
        CHECK(poll(&pfd, 1, 100) >= 0);
    }
    /* Publishes accepted before the one refused may still wait in the
     * command queue. */
    TU_WAIT_FOR(snap(srv).deliveries == (uint64_t)accepted, TU_TIMEOUT);
    m = snap(srv);
    CHECK_EQ(m.publish_refused_again, again);
    CHECK_EQ(m.queued, accepted - m.messages_sent);
    CHECK_MSG(m.queued > SEND_BUFFER, "queued %llu: the overflow waits behind the queue",
              (unsigned long long)m.queued);
    CHECK_EQ(m.messages_dropped, 0);
    /* The client leaves: what it never read is dropped. */
    wsc_free(slow);
    tu_expect_disconnect_of(srv, wsn_client_id(cs), TU_TIMEOUT);
    m = snap(srv);
    CHECK_EQ(m.stalled_clients, 0);
    CHECK_EQ(m.queued, 0);
    CHECK_EQ(m.queue_max, 0);
    CHECK_EQ(m.messages_dropped, accepted - m.messages_sent);
    CHECK_EQ(m.connections_ended, 1);
    wsn_client_release(cs);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
}

static void test_invalid_arguments(void)
{
    wsn_server *srv = NULL;
    CHECK_OK(wsn_server_new(NULL, &srv, NULL, 0));
    wsn_metrics m = {.size = sizeof m};
    CHECK_RC(wsn_server_metrics(NULL, &m), WSN_EINVAL);
    CHECK_RC(wsn_server_metrics(srv, NULL), WSN_EINVAL);
    /* smaller than the 0.3 struct (which ends at broker_reconnects) */
    m.size = offsetof(wsn_metrics, broker_reconnects);
    CHECK_RC(wsn_server_metrics(srv, &m), WSN_EINVAL);
    /* The 0.3 struct: filled up to its end, broker_lost (after it) left. */
    memset(&m, 0x5a, sizeof m);
    m.size = offsetof(wsn_metrics, broker_lost);
    CHECK_OK(wsn_server_metrics(srv, &m));
    CHECK_EQ(m.broker_reconnects, 0);
    CHECK_EQ(m.broker_lost, 0x5a5a5a5a5a5a5a5aULL);
    /* A caller built with a bigger (later) struct: only ours is written. */
    struct {
        wsn_metrics m;
        uint64_t later;
    } big;
    memset(&big, 0x5a, sizeof big);
    big.m.size = sizeof big;
    CHECK_OK(wsn_server_metrics(srv, &big.m));
    CHECK_EQ(big.m.connections, 0);
    CHECK_EQ(big.later, 0x5a5a5a5a5a5a5a5aULL);
    size_t len = 0;
    CHECK_RC(wsn_server_metrics_text(NULL, NULL, 0, &len), WSN_EINVAL);
    CHECK_RC(wsn_server_metrics_text(srv, NULL, 10, &len), WSN_EINVAL);
    CHECK_RC(wsn_server_metrics_text(srv, NULL, 0, NULL), WSN_EINVAL);
    CHECK_STR(wsn_refusal_name(WSN_REFUSED_ORIGIN), "origin");
    CHECK_STR(wsn_refusal_name(WSN_REFUSED_TLS), "tls");
    CHECK(wsn_refusal_name(WSN_REFUSED_TLS + 1) == NULL);
    CHECK(wsn_refusal_name(-1) == NULL);
    CHECK_STR(wsn_close_reason_name(WSN_CLOSED_QUEUE_FULL), "queue_full");
    CHECK(wsn_close_reason_name(WSN_CLOSED_BUSY + 1) == NULL);
    wsn_server_free(srv);
}

/* The value of one sample line ("name{labels} value") in the text. */
static long long sample(const char *text, const char *line_start)
{
    size_t n = strlen(line_start);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, line_start, n) && p[n] == ' ')
            return atoll(p + n + 1);
    tu_fail(__FILE__, __LINE__, "no sample %s in:\n%s", line_start, text);
}

static void test_text_format(void)
{
    wsn_server *srv = tu_server(NULL);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    size_t len = 0;
    CHECK_RC(wsn_server_metrics_text(srv, NULL, 0, &len), WSN_ENOSPC);
    CHECK_MSG(len > 1000, "text of %zu bytes", len);
    char *small = malloc(len);
    size_t len2 = 0;
    CHECK_RC(wsn_server_metrics_text(srv, small, len, &len2), WSN_ENOSPC);
    CHECK_EQ(len2, len);
    char *text = malloc(len + 1);
    CHECK_OK(wsn_server_metrics_text(srv, text, len + 1, &len2));
    CHECK_EQ(len2, len);
    CHECK_EQ(strlen(text), len);
    CHECK_EQ(sample(text, "wsnotify_connections"), 1);
    CHECK_EQ(sample(text, "wsnotify_connections_accepted_total"), 1);
    CHECK_EQ(sample(text, "wsnotify_connections_refused_total{reason=\"origin\"}"), 0);
    CHECK_EQ(sample(text, "wsnotify_messages_received_total{type=\"binary\"}"), 0);
    CHECK(strstr(text, "# TYPE wsnotify_connections gauge\n") != NULL);
    CHECK(strstr(text, "# TYPE wsnotify_connections_accepted_total counter\n") != NULL);
    CHECK(strstr(text, "# HELP wsnotify_deliveries_total ") != NULL);
    CHECK(strstr(text, "wsnotify_build_info{version=\"") != NULL);
    /* No broker: no broker lines. */
    CHECK(strstr(text, "wsnotify_broker") == NULL);
    CHECK(text[len - 1] == '\n');
    free(small);
    free(text);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

/* With a broker the snapshot carries its state and the text its lines:
 * here one that cannot connect (nothing listens on its port). */
static void test_broker_lines(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
          getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
    char *url = tu_strdupf("redis://127.0.0.1:%d", ntohs(a.sin_port));
    close(fd);
    wsn_options *o = tu_opts();
    tu_set_str(o, WSN_OPT_BROKER, url);
    tu_set_int(o, WSN_OPT_LOG_LEVEL, WSN_LOG_NONE);
    wsn_server *srv = tu_server(o);
    wsn_metrics m = snap(srv);
    CHECK_MSG(m.broker_state == WSN_BROKER_CONNECTING || m.broker_state == WSN_BROKER_DOWN,
              "broker state %llu", (unsigned long long)m.broker_state);
    /* A publish while it is not up reaches this server only: refused by
     * the broker, not a publish refusal. */
    CHECK_RC(wsn_server_publish(srv, "c", "1"), WSN_EBROKER);
    TU_WAIT_FOR(snap(srv).broker_refused == 1, TU_TIMEOUT); /* counted as it is applied */
    char text[16384];
    size_t len;
    CHECK_OK(wsn_server_metrics_text(srv, text, sizeof text, &len));
    long long connecting = sample(text, "wsnotify_broker_state{state=\"connecting\"}");
    long long down = sample(text, "wsnotify_broker_state{state=\"down\"}");
    CHECK_EQ(sample(text, "wsnotify_broker_state{state=\"up\"}"), 0);
    CHECK_EQ(connecting + down, 1);
    CHECK_EQ(sample(text, "wsnotify_broker_refused_total"), 1);
    CHECK_EQ(sample(text, "wsnotify_publish_refused_total{reason=\"limit\"}"), 0);
    CHECK(strstr(text, "# TYPE wsnotify_broker_reconnects_total counter\n") != NULL);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
    free(url);
}

static wsn_server *route_server(int on, const char *token)
{
    wsn_options *o = tu_opts();
    tu_set_int(o, WSN_OPT_METRICS, on);
    if (token)
        tu_set_str(o, WSN_OPT_METRICS_TOKEN, token);
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

static int http_get(int port, const char *path, const char *headers, char **body)
{
    int status = 0;
    size_t len = 0;
    CHECK_WSC(wsc_http_get(NULL, port, path, headers, TU_TIMEOUT, &status, body, &len));
    return status;
}

/* GET /metrics serves the same text (more than one write: it is longer
 * than a writable turn's part), and nothing changes elsewhere. */
static void test_route(void)
{
    wsn_server *srv = route_server(1, NULL);
    int port = wsn_server_port(srv);
    wsc *w;
    wsn_client *c = tu_accept(srv, &w);
    char *body = NULL;
    CHECK_EQ(http_get(port, "/metrics", NULL, &body), 200);
    CHECK_MSG(strlen(body) > 4096, "body of %zu bytes", strlen(body));
    CHECK_EQ(sample(body, "wsnotify_connections"), 1);
    CHECK_EQ(sample(body, "wsnotify_connections_accepted_total"), 1);
    CHECK(strstr(body, "# TYPE wsnotify_sent_bytes_total counter\n") != NULL);
    free(body);
    /* Twice on one server, and the other routes as before. */
    CHECK_EQ(http_get(port, "/metrics", NULL, &body), 200);
    free(body);
    CHECK_EQ(http_get(port, "/metrics/x", NULL, &body), 404);
    free(body);
    CHECK_EQ(http_get(port, "/healthz", NULL, &body), 200);
    CHECK_STR(body, "ok");
    free(body);
    /* A client connects to /metrics: not a WebSocket path. */
    wsc_opts wrong = {.port = port, .path = "/metrics"};
    CHECK_EQ(tu_connect_refused(&wrong), 404);
    wsc_free(w);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_route_off(void)
{
    wsn_server *srv = route_server(0, NULL);
    char *body = NULL;
    CHECK_EQ(http_get(wsn_server_port(srv), "/metrics", NULL, &body), 404);
    free(body);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static void test_route_token(void)
{
    wsn_options *o = wsn_options_new();
    CHECK_RC(wsn_options_set_string(o, WSN_OPT_METRICS_TOKEN, "two words"), WSN_EINVAL);
    CHECK_RC(wsn_options_set_string(o, WSN_OPT_METRICS_TOKEN, "tab\there"), WSN_EINVAL);
    wsn_options_free(o);
    wsn_server *srv = route_server(1, "s3cret-token");
    int port = wsn_server_port(srv);
    char *body = NULL;
    CHECK_EQ(http_get(port, "/metrics", NULL, &body), 401);
    CHECK(strstr(body, "wsnotify_") == NULL);
    free(body);
    CHECK_EQ(http_get(port, "/metrics", "Authorization: Bearer wrong-token!\r\n", &body), 401);
    free(body);
    CHECK_EQ(http_get(port, "/metrics", "Authorization: Bearer s3cret-toke\r\n", &body), 401);
    free(body);
    CHECK_EQ(http_get(port, "/metrics", "Authorization: Basic s3cret-token\r\n", &body), 401);
    free(body);
    CHECK_EQ(http_get(port, "/metrics", "Authorization: Bearer s3cret-token\r\n", &body), 200);
    CHECK_EQ(sample(body, "wsnotify_connections"), 0);
    free(body);
    CHECK_EQ(http_get(port, "/metrics", "Authorization: bearer s3cret-token\r\n", &body), 200);
    free(body);
    /* /healthz stays open. */
    CHECK_EQ(http_get(port, "/healthz", NULL, &body), 200);
    free(body);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"snapshot_counts", test_snapshot_counts},
    {"stalled_queue", test_stalled_queue},
    {"invalid_arguments", test_invalid_arguments},
    {"text_format", test_text_format},
    {"broker_lines", test_broker_lines},
    {"route", test_route},
    {"route_off", test_route_off},
    {"route_token", test_route_token},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
