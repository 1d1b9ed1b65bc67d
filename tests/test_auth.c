/* Authentication at the upgrade (WSN_OPT_AUTHENTICATE): the request as the
 * host sees it, accept with metadata, channels and expiry, reject with a
 * status and body, the timeout and the queue bound, expiry (4001) and its
 * refresh, and the cap of connections per address. Over plain ws://; the
 * TLS path is tested with TLS (test_tls). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static wsn_server *auth_server(int64_t timeout_ms, int64_t queue)
{
    wsn_options *o = tu_opts();
    tu_set_int(o, WSN_OPT_AUTHENTICATE, 1);
    if (timeout_ms)
        tu_set_int(o, WSN_OPT_AUTH_TIMEOUT, timeout_ms);
    if (queue)
        tu_set_int(o, WSN_OPT_AUTH_QUEUE, queue);
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

static void done(wsn_server *srv)
{
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A client connecting on its own thread: the upgrade waits for the host. */
typedef struct pending_connect {
    pthread_t thread;
    wsc_opts opts;
    wsc *client;
    int rc, status;
} pending_connect;

static void *connect_main(void *arg)
{
    pending_connect *p = arg;
    p->rc = wsc_connect(&p->opts, &p->client, &p->status);
    return NULL;
}

static void connect_start(pending_connect *p, int port, const char *path, const char *headers)
{
    memset(p, 0, sizeof(*p));
    p->opts.port = port;
    p->opts.path = path;
    p->opts.extra_headers = headers;
    p->opts.timeout_ms = TU_TIMEOUT;
    CHECK(pthread_create(&p->thread, NULL, connect_main, p) == 0);
}

static void connect_join(pending_connect *p) { pthread_join(p->thread, NULL); }

static char *header_of(const wsn_event *ev, const char *name)
{
    static char buf[256];
    size_t len;
    int rc = wsn_event_upgrade_header(ev, name, buf, sizeof(buf), &len);
    return rc == WSN_OK ? buf : NULL;
}

static void test_request_seen(void)
{
    wsn_server *srv = auth_server(0, 0);
    pending_connect p;
    connect_start(&p, wsn_server_port(srv), "/ws?token=abc%20d+e&x=1&token=second",
                  "Authorization: Bearer T1\r\nCookie: a=1\r\nX-Thing: one\r\nx-thing: two\r\n");
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    uint64_t id = wsn_event_upgrade_id(ev);
    CHECK(id > 0);
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%llu", (unsigned long long)id);
    CHECK_STR(wsn_event_message_id(ev), idtext);
    CHECK_STR(wsn_event_channel(ev), "/ws");
    CHECK_STR(wsn_event_upgrade_query(ev), "token=abc%20d+e&x=1&token=second");
    CHECK_STR(wsn_event_reply_to_id(ev), "127.0.0.1");
    CHECK(wsn_event_client(ev) == NULL);
    char buf[64];
    size_t len;
    CHECK_OK(wsn_event_upgrade_query_arg(ev, "token", buf, sizeof buf, &len));
    CHECK_STR(buf, "abc d e");
    CHECK_EQ(len, 7);
    CHECK_RC(wsn_event_upgrade_query_arg(ev, "token", buf, 7, &len), WSN_ENOSPC);
    CHECK_EQ(len, 7);
    CHECK_RC(wsn_event_upgrade_query_arg(ev, "nope", buf, sizeof buf, &len), WSN_ENOTFOUND);
    CHECK_STR(header_of(ev, "authorization"), "Bearer T1");
    CHECK_STR(header_of(ev, "COOKIE"), "a=1");
    CHECK_STR(header_of(ev, "x-thing"), "one, two");
    CHECK(header_of(ev, "x-none") == NULL);
    CHECK(header_of(ev, "upgrade") != NULL);
    /* the batched record carries the same fields */
    wsn_event_info info = {.size = sizeof info};
    CHECK_OK(wsn_event_get_info(ev, &info));
    CHECK_EQ(info.kind, WSN_EVENT_UPGRADE);
    CHECK_STR(info.channel, "/ws");
    wsn_event_free(ev);
    CHECK_OK(wsn_server_accept_upgrade(srv, id, NULL, NULL, 0, 0));
    CHECK_RC(wsn_server_accept_upgrade(srv, id, NULL, NULL, 0, 0), WSN_EGONE);
    wsn_event *conn = tu_expect_event(srv, WSN_EVENT_CONNECT, TU_TIMEOUT);
    wsn_event_free(conn);
    connect_join(&p);
    CHECK_WSC(p.rc);
    wsc_free(p.client);
    done(srv);
}

static void test_accept_applies(void)
{
    wsn_server *srv = auth_server(0, 0);
    pending_connect p;
    connect_start(&p, wsn_server_port(srv), "/ws", NULL);
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    uint64_t id = wsn_event_upgrade_id(ev);
    wsn_event_free(ev);
    const char *channels[] = {"news", "sport"};
    CHECK_RC(wsn_server_accept_upgrade(srv, id, "[1]", NULL, 0, 0), WSN_EJSON);
    CHECK_RC(wsn_server_accept_upgrade(srv, id, "{", NULL, 0, 0), WSN_EJSON);
    CHECK_RC(wsn_server_accept_upgrade(srv, id, NULL, NULL, 1, 0), WSN_EINVAL);
    const char *bad[] = {""};
    CHECK_RC(wsn_server_accept_upgrade(srv, id, NULL, bad, 1, 0), WSN_EINVAL);
    CHECK_RC(wsn_server_accept_upgrade(srv, id, NULL, NULL, 0, -1), WSN_EINVAL);
    CHECK_RC(wsn_server_accept_upgrade(srv, 0, NULL, NULL, 0, 0), WSN_EINVAL);
    CHECK_OK(wsn_server_accept_upgrade(
        srv, id, "{\"user\":\"ann\\u00e9\",\"n\":5,\"ratio\":0.5,\"admin\":true,\"tags\":[1,2]}",
        channels, 2, 0));
    wsn_event *conn = tu_expect_event(srv, WSN_EVENT_CONNECT, TU_TIMEOUT);
    wsn_client *c = wsn_event_client(conn);
    char s[32];
    size_t len;
    int64_t n;
    double d;
    int b;
    CHECK_OK(wsn_client_get_string(c, "user", s, sizeof s, &len));
    CHECK_STR(s, "ann\xc3\xa9");
    CHECK_OK(wsn_client_get_int(c, "n", &n));
    CHECK_EQ(n, 5);
    CHECK_OK(wsn_client_get_double(c, "ratio", &d));
    CHECK(d == 0.5);
    CHECK_OK(wsn_client_get_bool(c, "admin", &b));
    CHECK_EQ(b, 1);
    CHECK_OK(wsn_client_get_json(c, "tags", s, sizeof s, &len));
    CHECK_STR(s, "[1,2]");
    wsn_event_free(conn);
    connect_join(&p);
    CHECK_WSC(p.rc);
    /* subscribed before CONNECT: a publish to each channel arrives */
    CHECK_OK(wsn_server_publish(srv, "sport", "1"));
    CHECK_OK(wsn_server_publish(srv, "news", "2"));
    tu_expect_envelope(p.client, "{\"channel\":\"sport\",\"type\":\"json\",\"time\":\"T\",\"message\":1}");
    tu_expect_envelope(p.client, "{\"channel\":\"news\",\"type\":\"json\",\"time\":\"T\",\"message\":2}");
    wsc_free(p.client);
    done(srv);
}

static void expect_http(int port, const char *request, int want_status, const char *want_body)
{
    int status = 0;
    char *body = NULL;
    size_t body_len = 0;
    CHECK_WSC(wsc_http_raw("127.0.0.1", port, request, TU_TIMEOUT, &status, &body, &body_len));
    CHECK_EQ(status, want_status);
    if (want_body)
        CHECK_STR(body, want_body);
    free(body);
}

/* Into a buffer of the caller's: a request may be on its way on another
 * thread while the next is made. */
typedef struct request_text {
    char text[512];
} request_text;

static const char *upgrade_request(request_text *req, int port, const char *path)
{
    snprintf(req->text, sizeof req->text,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             path, port);
    return req->text;
}

/* The raw request runs on a thread; the host answers on this one. */
typedef struct raw_request {
    pthread_t thread;
    int port;
    const char *request;
    int status;
    char *body;
} raw_request;

static void *raw_main(void *arg)
{
    raw_request *r = arg;
    size_t n;
    if (wsc_http_raw("127.0.0.1", r->port, r->request, TU_TIMEOUT, &r->status, &r->body, &n))
        r->status = -1;
    return NULL;
}

static void test_reject_status(void)
{
    wsn_server *srv = auth_server(0, 0);
    int port = wsn_server_port(srv);
    raw_request r = {.port = port, .request = upgrade_request(&(request_text){{0}}, port, "/ws?token=wrong")};
    CHECK(pthread_create(&r.thread, NULL, raw_main, &r) == 0);
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    uint64_t id = wsn_event_upgrade_id(ev);
    wsn_event_free(ev);
    CHECK_RC(wsn_server_reject_upgrade(srv, id, 200, NULL), WSN_EINVAL);
    CHECK_RC(wsn_server_reject_upgrade(srv, id, 600, NULL), WSN_EINVAL);
    CHECK_RC(wsn_server_reject_upgrade(srv, id, 401, "\xff"), WSN_EINVAL);
    CHECK_OK(wsn_server_reject_upgrade(srv, id, 401, "bad token"));
    pthread_join(r.thread, NULL);
    CHECK_EQ(r.status, 401);
    CHECK_STR(r.body, "bad token");
    free(r.body);
    CHECK_RC(wsn_server_reject_upgrade(srv, id, 401, NULL), WSN_EGONE);
    /* a real WebSocket client sees the status */
    pending_connect p;
    connect_start(&p, port, "/ws", NULL);
    ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    CHECK_OK(wsn_server_reject_upgrade(srv, wsn_event_upgrade_id(ev), 403, NULL));
    wsn_event_free(ev);
    connect_join(&p);
    CHECK(p.rc != WSC_OK);
    CHECK_EQ(p.status, 403);
    done(srv);
}

static void test_timeout(void)
{
    wsn_server *srv = auth_server(300, 0);
    int port = wsn_server_port(srv);
    raw_request r = {.port = port, .request = upgrade_request(&(request_text){{0}}, port, "/ws")};
    CHECK(pthread_create(&r.thread, NULL, raw_main, &r) == 0);
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    uint64_t id = wsn_event_upgrade_id(ev);
    wsn_event_free(ev);
    pthread_join(r.thread, NULL); /* never answered: the server gives up */
    CHECK_EQ(r.status, 503);
    CHECK_STR(r.body, "no answer from the host in time");
    free(r.body);
    CHECK_RC(wsn_server_accept_upgrade(srv, id, NULL, NULL, 0, 0), WSN_EGONE);
    done(srv);
}

static void test_unfinished_request(void)
{
    wsn_server *srv = auth_server(300, 0);
    int port = wsn_server_port(srv);
    /* A head that never ends: 408 once auth_timeout passes. */
    expect_http(port, "GET /ws HTTP/1.1\r\nHost: x\r\n", 408, "request not received in time");
    /* A head over 8 KiB: 431 at once. */
    size_t big = 9000;
    char *req = malloc(big + 64);
    int n = snprintf(req, 64, "GET /ws HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\r\n\r\n");
    expect_http(port, req, 431, NULL);
    free(req);
    /* A NUL in the head: 400, never asked about (nor cut short). */
    static const char nul_req[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                  "X-A: a\0b\r\n\r\n";
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(send(fd, nul_req, sizeof nul_req - 1, 0) == (ssize_t)(sizeof nul_req - 1));
    char got[512] = "";
    size_t have = 0;
    for (ssize_t k; have < sizeof got - 1 &&
                    (k = recv(fd, got + have, sizeof got - 1 - have, 0)) > 0;)
        have += (size_t)k;
    close(fd);
    CHECK_MSG(strstr(got, "HTTP/1.1 400") && strstr(got, "NUL byte in the request"), "got: %s",
              got);
    done(srv);
}

static void test_queue_bound(void)
{
    wsn_server *srv = auth_server(0, 1);
    int port = wsn_server_port(srv);
    raw_request first = {.port = port, .request = upgrade_request(&(request_text){{0}}, port, "/ws")};
    CHECK(pthread_create(&first.thread, NULL, raw_main, &first) == 0);
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    /* one waits: the next is refused at once, without an event */
    expect_http(port, upgrade_request(&(request_text){{0}}, port, "/ws"), 503, "too many upgrades waiting");
    CHECK_OK(wsn_server_reject_upgrade(srv, wsn_event_upgrade_id(ev), 401, NULL));
    wsn_event_free(ev);
    pthread_join(first.thread, NULL);
    CHECK_EQ(first.status, 401);
    free(first.body);
    done(srv);
}

static void test_other_requests_pass(void)
{
    wsn_server *srv = auth_server(0, 0);
    int port = wsn_server_port(srv);
    expect_http(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "ok");
    expect_http(port, upgrade_request(&(request_text){{0}}, port, "/other"), 404, NULL);
    /* an upgrade after another request on one connection skips no check */
    char req[1024];
    snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n%s",
             upgrade_request(&(request_text){{0}}, port, "/ws"));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
    char got[4096];
    size_t have = 0;
    int64_t deadline = tu_now_ms() + TU_TIMEOUT;
    while (!strstr(got, "the upgrade must be") && tu_now_ms() < deadline) {
        ssize_t k = recv(fd, got + have, sizeof(got) - 1 - have, 0);
        if (k <= 0)
            break;
        have += (size_t)k;
        got[have] = 0;
    }
    close(fd);
    CHECK_MSG(strstr(got, "HTTP/1.1 400") != NULL, "second answer: %s", got);
    done(srv);
}

static void test_expiry_and_refresh(void)
{
    wsn_server *srv = auth_server(0, 0);
    int port = wsn_server_port(srv);
    pending_connect a, b;
    connect_start(&a, port, "/ws", NULL);
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    /* a expires in 300 ms but refreshes (cleared) right after connecting */
    CHECK_OK(wsn_server_accept_upgrade(srv, wsn_event_upgrade_id(ev), NULL, NULL, 0,
                                       unix_ms() + 300));
    wsn_event_free(ev);
    wsn_event *conn = tu_expect_event(srv, WSN_EVENT_CONNECT, TU_TIMEOUT);
    wsn_client *ca = wsn_client_retain(wsn_event_client(conn));
    wsn_event_free(conn);
    CHECK_RC(wsn_client_set_expiry(ca, -1), WSN_EINVAL);
    CHECK_OK(wsn_client_set_expiry(ca, 0));
    connect_join(&a);
    CHECK_WSC(a.rc);
    /* b expires 600 ms from now: when it is closed, a's old time has passed */
    connect_start(&b, port, "/ws", NULL);
    ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    CHECK_OK(wsn_server_accept_upgrade(srv, wsn_event_upgrade_id(ev), NULL, NULL, 0,
                                       unix_ms() + 600));
    wsn_event_free(ev);
    wsn_event_free(tu_expect_event(srv, WSN_EVENT_CONNECT, TU_TIMEOUT));
    connect_join(&b);
    CHECK_WSC(b.rc);
    tu_expect_close(b.client, 4001, "authorization expired");
    CHECK(wsn_client_is_connected(ca));
    CHECK_OK(wsn_server_publish_to_client(srv, ca, "c", WSN_TYPE_JSON, "1", 1, NULL, NULL));
    tu_expect_envelope(a.client, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\",\"message\":1}");
    /* a time centuries away is never, in practice (no overflow on the
     * way to the timer: UBSan in the ASan build) */
    CHECK_OK(wsn_client_set_expiry(ca, INT64_MAX));
    CHECK_OK(wsn_server_publish_to_client(srv, ca, "c", WSN_TYPE_JSON, "2", 1, NULL, NULL));
    tu_expect_envelope(a.client, "{\"channel\":\"c\",\"type\":\"json\",\"time\":\"T\",\"message\":2}");
    CHECK(wsn_client_is_connected(ca));
    /* a time already past closes at once */
    CHECK_OK(wsn_client_set_expiry(ca, unix_ms() - 1));
    tu_expect_close(a.client, 4001, "authorization expired");
    wsn_client_release(ca);
    wsc_free(a.client);
    wsc_free(b.client);
    done(srv);
}

static void answer_inline(void *user, wsn_server *srv, const wsn_event *ev)
{
    (void)user;
    char token[32];
    size_t len;
    if (wsn_event_upgrade_query_arg(ev, "token", token, sizeof token, &len) == WSN_OK &&
        !strcmp(token, "good"))
        CHECK_OK(wsn_server_accept_upgrade(srv, wsn_event_upgrade_id(ev), "{\"who\":\"x\"}",
                                           NULL, 0, 0));
    else
        CHECK_OK(wsn_server_reject_upgrade(srv, wsn_event_upgrade_id(ev), 401, "no"));
}

/* Handlers on the I/O thread answer from inside the event. */
static void test_answer_on_io_thread(void)
{
    wsn_options *o = tu_opts();
    tu_set_int(o, WSN_OPT_AUTHENTICATE, 1);
    tu_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, 1);
    wsn_server *srv = NULL;
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    wsn_options_free(o);
    CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_UPGRADE, answer_inline, NULL));
    CHECK_OK(wsn_server_start(srv));
    int port = wsn_server_port(srv);
    wsc_opts co = {.port = port, .path = "/ws?token=good"};
    wsc *w = tu_connect_opts(&co);
    wsc_free(w);
    co.path = "/ws?token=bad";
    CHECK_EQ(tu_connect_refused(&co), 401);
    done(srv);
}

static void test_per_address_cap(void)
{
    wsn_options *o = tu_opts();
    tu_set_int(o, WSN_OPT_MAX_CLIENTS_PER_ADDRESS, 2);
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    wsc *w1, *w2;
    wsn_client *c1 = tu_accept(srv, &w1);
    wsn_client *c2 = tu_accept(srv, &w2);
    wsc_opts co = {.port = wsn_server_port(srv)};
    CHECK_EQ(tu_connect_refused(&co), 0); /* closed at accept: no answer */
    char id[64];
    snprintf(id, sizeof id, "%s", wsn_client_id(c1));
    wsc_free(w1);
    tu_expect_disconnect_of(srv, id, TU_TIMEOUT);
    wsc *w3;
    wsn_client *c3 = tu_accept(srv, &w3);
    wsn_client_release(c1);
    wsn_client_release(c2);
    wsn_client_release(c3);
    wsc_free(w2);
    wsc_free(w3);
    done(srv);
}

static void test_shutdown_refuses_waiting(void)
{
    wsn_server *srv = auth_server(0, 0);
    int port = wsn_server_port(srv);
    raw_request r = {.port = port, .request = upgrade_request(&(request_text){{0}}, port, "/ws")};
    CHECK(pthread_create(&r.thread, NULL, raw_main, &r) == 0);
    wsn_event_free(tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT));
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    pthread_join(r.thread, NULL);
    CHECK_EQ(r.status, 503);
    CHECK_STR(r.body, "server shutting down");
    free(r.body);
    wsn_server_free(srv);
}

int main(int argc, char **argv)
{
    static const tu_test tests[] = {
        {"request_seen", test_request_seen},
        {"accept_applies", test_accept_applies},
        {"reject_status", test_reject_status},
        {"timeout", test_timeout},
        {"unfinished_request", test_unfinished_request},
        {"queue_bound", test_queue_bound},
        {"other_requests_pass", test_other_requests_pass},
        {"expiry_and_refresh", test_expiry_and_refresh},
        {"answer_on_io_thread", test_answer_on_io_thread},
        {"per_address_cap", test_per_address_cap},
        {"shutdown_refuses_waiting", test_shutdown_refuses_waiting},
        {NULL, NULL},
    };
    return tu_main(tests, argc, argv);
}
