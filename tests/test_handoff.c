/* The handoff socket (WSN_OPT_HANDOFF_SOCKET) and wsn_handoff(): a front
 * in this process (a thread with its own listening socket, as an nginx
 * worker would be) accepts, reads the request head and hands the socket
 * over; the client, which only ever spoke to the front's port, must get
 * exactly what a direct client gets. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

static char dir[64];
static char path[128];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/wsn-handoff-XXXXXX");
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/handoff.sock", dir);
}

static void remove_dir(void)
{
    unlink(path);
    CHECK_EQ(rmdir(dir), 0);
}

static wsn_options *handoff_opts(void)
{
    wsn_options *o = tu_opts();
    tu_set_str(o, WSN_OPT_HANDOFF_SOCKET, path);
    return o;
}

/* A fresh directory and a started server handing at its path. */
static wsn_server *handoff_server(void)
{
    make_dir();
    wsn_options *o = handoff_opts();
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    return srv;
}

/* The front: accepts `count` connections on its own port, reads each
 * request head and hands the socket to the engine, then closes its
 * descriptor as nginx does. */
typedef struct front {
    int listen_fd, port, count;
    int rc[8];
    pthread_t thread;
} front;

static size_t read_head(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        if (memmem(buf, len, "\r\n\r\n", 4))
            return len;
    }
    return 0;
}

static void *front_main(void *arg)
{
    front *f = arg;
    for (int i = 0; i < f->count; i++) {
        int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            f->rc[i] = -1000;
            continue;
        }
        char head[4096];
        size_t len = read_head(fd, head, sizeof(head));
        f->rc[i] = len ? wsn_handoff(path, fd, head, len) : -1001;
        close(fd);
    }
    return NULL;
}

static void front_start(front *f, int count)
{
    memset(f, 0, sizeof(*f));
    f->count = count;
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(f->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    CHECK_EQ(listen(f->listen_fd, 16), 0);
    socklen_t al = sizeof(a);
    CHECK_EQ(getsockname(f->listen_fd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    CHECK(pthread_create(&f->thread, NULL, front_main, f) == 0);
}

static void front_join(front *f)
{
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

static uint64_t refused(wsn_server *srv, int why)
{
    wsn_metrics m = {.size = sizeof(m)};
    CHECK_OK(wsn_server_metrics(srv, &m));
    return m.connections_refused[why];
}

/* A handed connection is a client like any other: its events, its
 * messages both ways, its real peer address; the front never wrote. */
static void test_serves(void)
{
    wsn_server *srv = handoff_server();
    front f;
    front_start(&f, 1);
    wsc *c;
    wsc_opts via_front = {.port = f.port, .timeout_ms = TU_TIMEOUT};
    wsn_client *cl = tu_accept_opts(srv, &via_front, &c);
    front_join(&f);
    CHECK_OK(f.rc[0]);
    CHECK_STR(wsn_client_remote_address(cl), "127.0.0.1");
    CHECK_OK(wsn_server_subscribe(srv, cl, "news"));
    CHECK_OK(wsn_server_publish(srv, "news", "{\"n\":1}"));
    tu_expect_envelope(c, "{\"channel\":\"news\",\"type\":\"json\",\"time\":\"T\",\"message\":{\"n\":1}}");
    CHECK_WSC(wsc_send_text(c, "{\"channel\":\"news\",\"message\":\"hi\"}"));
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT);
    size_t len;
    CHECK_STR((const char *)wsn_event_payload(ev, &len), "\"hi\"");
    wsn_event_free(ev);
    wsn_client_release(cl);
    wsc_free(c);
    wsn_server_free(srv);
    /* The path goes with the server. */
    struct stat st;
    CHECK(lstat(path, &st) != 0 && errno == ENOENT);
    remove_dir();
}

/* What the engine refuses of a handed request is what it refuses of its
 * own: a wrong path gets 404 from the engine, over the handed socket. */
static void test_refusals_as_direct(void)
{
    wsn_server *srv = handoff_server();
    front f;
    front_start(&f, 3);
    wsc_opts wo = {.port = f.port, .path = "/elsewhere", .timeout_ms = TU_TIMEOUT};
    CHECK_EQ(tu_connect_refused(&wo), 404);
    wsc_opts bad_origin = {.port = f.port, .origin = "http://evil.example", .timeout_ms = TU_TIMEOUT};
    CHECK_EQ(tu_connect_refused(&bad_origin), 403);
    /* The answer can reach the client before the I/O thread counts it:
     * a client it serves afterwards is the sign it did. */
    wsc *c;
    wsc_opts via_front = {.port = f.port, .timeout_ms = TU_TIMEOUT};
    wsn_client *cl = tu_accept_opts(srv, &via_front, &c);
    front_join(&f);
    CHECK_OK(f.rc[0]);
    CHECK_OK(f.rc[1]);
    CHECK_OK(f.rc[2]);
    CHECK_EQ(refused(srv, WSN_REFUSED_ORIGIN), 1);
    wsn_client_release(cl);
    wsc_free(c);
    wsn_server_free(srv);
    remove_dir();
}

typedef struct pending_connect {
    wsc_opts opts;
    wsc *client;
    int rc, status;
    pthread_t thread;
} pending_connect;

static void *connect_main(void *arg)
{
    pending_connect *p = arg;
    p->rc = wsc_connect(&p->opts, &p->client, &p->status);
    return NULL;
}

/* With authenticate on, a handed head is the host's question at once, with
 * the query and headers the client sent to the front. */
static void test_authenticated(void)
{
    make_dir();
    wsn_options *o = handoff_opts();
    tu_set_int(o, WSN_OPT_AUTHENTICATE, 1);
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    front f;
    front_start(&f, 1);
    pending_connect p = {.opts = {.port = f.port, .path = "/ws?token=t1",
                                  .extra_headers = "Authorization: Bearer B\r\n",
                                  .timeout_ms = TU_TIMEOUT}};
    CHECK(pthread_create(&p.thread, NULL, connect_main, &p) == 0);
    wsn_event *ev = tu_expect_event(srv, WSN_EVENT_UPGRADE, TU_TIMEOUT);
    CHECK_STR(wsn_event_upgrade_query(ev), "token=t1");
    CHECK_STR(wsn_event_reply_to_id(ev), "127.0.0.1");
    char buf[64];
    size_t len;
    CHECK_OK(wsn_event_upgrade_header(ev, "authorization", buf, sizeof(buf), &len));
    CHECK_STR(buf, "Bearer B");
    uint64_t id = wsn_event_upgrade_id(ev);
    wsn_event_free(ev);
    CHECK_OK(wsn_server_accept_upgrade(srv, id, "{\"user\":\"u1\"}", NULL, 0, 0));
    wsn_event *conn = tu_expect_event(srv, WSN_EVENT_CONNECT, TU_TIMEOUT);
    wsn_event_free(conn);
    pthread_join(p.thread, NULL);
    CHECK_WSC(p.rc);
    front_join(&f);
    CHECK_OK(f.rc[0]);
    wsc_free(p.client);
    wsn_server_free(srv);
    remove_dir();
}

/* After a handoff the socket is in no epoll set of the front's process:
 * nginx closes its descriptor trusting close() to remove it, which the
 * engine's copy prevents. */
static void test_epoll_forgotten(void)
{
    make_dir();
    int ep = epoll_create1(EPOLL_CLOEXEC); /* before the first handoff */
    wsn_options *o = handoff_opts();
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = sv[0]};
    CHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &e), 0);
    char head[] = "GET /ws HTTP/1.1\r\n\r\n";
    CHECK_OK(wsn_handoff(path, sv[0], head, strlen(head)));
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, sv[0], NULL) < 0 && errno == ENOENT);
    close(sv[0]);
    close(sv[1]);
    close(ep);
    wsn_server_free(srv);
    remove_dir();
}

static void test_tls_refused(void)
{
    make_dir();
    char *certs = tu_tempdir();
    char *cmd = tu_strdupf("bash '%s' '%s'", WSN_MAKE_CERTS, certs);
    CHECK_MSG(system(cmd) == 0, "%s failed", cmd);
    free(cmd);
    char *pem = tu_strdupf("%s/server.pem", certs), *key = tu_strdupf("%s/server.key", certs);
    wsn_options *o = handoff_opts();
    tu_set_str(o, WSN_OPT_TLS_CERT, pem);
    tu_set_str(o, WSN_OPT_TLS_KEY, key);
    free(pem);
    free(key);
    cmd = tu_strdupf("rm -rf '%s'", certs);
    wsn_server *srv;
    CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
    wsn_options_free(o);
    CHECK_RC(wsn_server_start(srv), WSN_EIO);
    char why[256];
    wsn_server_last_error(srv, why, sizeof(why));
    CHECK_MSG(strstr(why, "handoff_socket with TLS"), "%s", why);
    wsn_server_free(srv);
    CHECK(system(cmd) == 0);
    free(cmd);
    free(certs);
    struct stat st;
    CHECK(lstat(path, &st) != 0);
    remove_dir();
}

static void test_bad_calls(void)
{
    make_dir();
    char head[] = "GET /ws HTTP/1.1\r\n\r\n";
    /* No engine at the path yet. */
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_RC(wsn_handoff(path, sv[0], head, strlen(head)), WSN_ECLOSED);
    CHECK_RC(wsn_handoff(NULL, sv[0], head, strlen(head)), WSN_EINVAL);
    CHECK_RC(wsn_handoff("", sv[0], head, strlen(head)), WSN_EINVAL);
    CHECK_RC(wsn_handoff(path, -1, head, strlen(head)), WSN_EINVAL);
    CHECK_RC(wsn_handoff(path, sv[0], NULL, 4), WSN_EINVAL);
    CHECK_RC(wsn_handoff(path, sv[0], head, 0), WSN_EINVAL);
    char *big = calloc(1, WSN_HANDOFF_MAX_HEAD + 1);
    CHECK_RC(wsn_handoff(path, sv[0], big, WSN_HANDOFF_MAX_HEAD + 1), WSN_ELIMIT);
    free(big);
    char longpath[200];
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = 0;
    CHECK_RC(wsn_handoff(longpath, sv[0], head, strlen(head)), WSN_EINVAL);

    wsn_options *o = handoff_opts();
    wsn_server *srv = tu_server(o);
    /* A second server cannot take a path a running one serves. */
    wsn_server *second;
    CHECK_OK(wsn_server_new(o, &second, NULL, 0));
    CHECK_RC(wsn_server_start(second), WSN_EIO);
    char why[256];
    wsn_server_last_error(second, why, sizeof(why));
    CHECK_MSG(strstr(why, "handoff_socket: cannot listen on"), "%s", why);
    wsn_server_free(second);
    wsn_options_free(o);
    /* What is not a connected TCP socket is refused and counted; the
     * server goes on serving. */
    uint64_t before = refused(srv, WSN_REFUSED_BAD_REQUEST);
    CHECK_OK(wsn_handoff(path, sv[0], head, strlen(head)));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, path, strlen(path) + 1);
    CHECK_EQ(sendto(fd, head, strlen(head), 0, (struct sockaddr *)&a, sizeof(a)),
             (ssize_t)strlen(head));
    close(fd);
    /* Datagrams are taken in order: once a good handoff connects, both
     * bad ones were dealt with. */
    wsc *c;
    front f;
    front_start(&f, 1);
    wsc_opts via_front = {.port = f.port, .timeout_ms = TU_TIMEOUT};
    wsn_client *cl = tu_accept_opts(srv, &via_front, &c);
    front_join(&f);
    CHECK_OK(f.rc[0]);
    CHECK_EQ(refused(srv, WSN_REFUSED_BAD_REQUEST), before + 2);
    /* The engine closed its copy of the unix socket: with ours closed
     * too, the other end reads EOF. */
    close(sv[0]);
    char x;
    CHECK_EQ(read(sv[1], &x, 1), 0);
    close(sv[1]);
    wsn_client_release(cl);
    wsc_free(c);
    wsn_server_free(srv);
    remove_dir();
}

int main(int argc, char **argv)
{
    static const tu_test tests[] = {
        {"serves", test_serves},
        {"refusals_as_direct", test_refusals_as_direct},
        {"authenticated", test_authenticated},
        {"epoll_forgotten", test_epoll_forgotten},
        {"tls_refused", test_tls_refused},
        {"bad_calls", test_bad_calls},
        {NULL, NULL},
    };
    return tu_main(tests, argc, argv);
}
