/* Client handles after disconnect, per-client metadata, max_clients, the
 * descriptor limit. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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
    return f;
}

static void teardown(fixture *f)
{
    wsc_free(f->ws);
    wsn_client_release(f->cl);
    CHECK_OK(wsn_server_shutdown(f->srv, 5000));
    wsn_server_free(f->srv);
}

static void test_gone_client(void)
{
    fixture f = setup(NULL);
    wsn_client *c = f.cl;
    wsn_client *again;
    char buf[32];
    size_t len;
    char id[64];
    snprintf(id, sizeof id, "%s", wsn_client_id(c));
    CHECK_OK(wsn_server_subscribe(f.srv, c, "c"));
    CHECK_OK(wsn_client_set_string(c, "user", "bob"));
    /* a second retain of the same handle */
    again = wsn_client_retain(c);
    CHECK(again == c);
    wsc_free(f.ws);
    f.ws = NULL;
    tu_expect_disconnect_of(f.srv, id, TU_TIMEOUT);
    CHECK_EQ(wsn_client_is_connected(c), 0);
    CHECK_RC(wsn_server_subscribe(f.srv, c, "d"), WSN_EGONE);
    CHECK_RC(wsn_server_publish_to_client(f.srv, c, "c", WSN_TYPE_JSON, "1", 1,
                                          NULL, NULL),
             WSN_EGONE);
    CHECK_RC(wsn_server_send_raw(f.srv, c, WSN_TYPE_TEXT, "x", 1), WSN_EGONE);
    {
        int rc = wsn_server_unsubscribe(f.srv, c, "c");
        CHECK_MSG(rc == WSN_OK || rc == WSN_EGONE, "unsubscribe gone: %s",
                  wsn_err_name(rc));
    }
    CHECK_STR(wsn_client_id(c), id);
    CHECK_STR(wsn_client_remote_address(c), "127.0.0.1");
    CHECK_OK(wsn_client_get_string(c, "user", buf, sizeof buf, &len));
    CHECK_STR(buf, "bob");
    CHECK_EQ(len, 3);
    CHECK_RC(wsn_client_set_string(c, "user", "eve"), WSN_EGONE);
    CHECK_OK(wsn_client_get_string(c, "user", buf, sizeof buf, &len));
    CHECK_STR(buf, "bob");
    /* publishing to its old channel is fine */
    CHECK_OK(wsn_server_publish(f.srv, "c", "1"));
    CHECK_EQ(wsn_server_connected_clients(f.srv), 0);
    wsn_client_release(again);
    /* still valid: one reference left (released by teardown) */
    CHECK_STR(wsn_client_id(c), id);
    teardown(&f);
}

static void test_metadata_types(void)
{
    fixture f = setup(NULL);
    wsn_client *c = f.cl;
    int64_t i64;
    double d;
    int b;
    char buf[64];
    unsigned char bytes[8];
    size_t len;
    wsn_value_type t;
    static const unsigned char raw[] = {0, 1, 0xff, 0};

    CHECK_OK(wsn_client_set_string(c, "s", "h\xc3\xa9llo"));
    CHECK_OK(wsn_client_set_int(c, "i", INT64_MIN));
    CHECK_OK(wsn_client_set_double(c, "d", 2.5));
    CHECK_OK(wsn_client_set_bool(c, "b", 1));
    CHECK_OK(wsn_client_set_bytes(c, "y", raw, sizeof raw));
    CHECK_OK(wsn_client_set_json(c, "j", "{\"a\":[1,2]}"));

    CHECK_OK(wsn_client_get_type(c, "s", &t));
    CHECK_EQ(t, WSN_VALUE_STRING);
    CHECK_OK(wsn_client_get_type(c, "i", &t));
    CHECK_EQ(t, WSN_VALUE_INT);
    CHECK_OK(wsn_client_get_type(c, "d", &t));
    CHECK_EQ(t, WSN_VALUE_DOUBLE);
    CHECK_OK(wsn_client_get_type(c, "b", &t));
    CHECK_EQ(t, WSN_VALUE_BOOL);
    CHECK_OK(wsn_client_get_type(c, "y", &t));
    CHECK_EQ(t, WSN_VALUE_BYTES);
    CHECK_OK(wsn_client_get_type(c, "j", &t));
    CHECK_EQ(t, WSN_VALUE_JSON);

    CHECK_OK(wsn_client_get_string(c, "s", buf, sizeof buf, &len));
    CHECK_STR(buf, "h\xc3\xa9llo");
    CHECK_EQ(len, 6);
    CHECK_OK(wsn_client_get_int(c, "i", &i64));
    CHECK(i64 == INT64_MIN);
    CHECK_OK(wsn_client_get_double(c, "d", &d));
    CHECK(d == 2.5);
    CHECK_OK(wsn_client_get_bool(c, "b", &b));
    CHECK_EQ(b, 1);
    CHECK_OK(wsn_client_get_bytes(c, "y", bytes, sizeof bytes, &len));
    CHECK_MEM(bytes, len, raw, sizeof raw);
    CHECK_OK(wsn_client_get_json(c, "j", buf, sizeof buf, &len));
    CHECK_STR(buf, "{\"a\":[1,2]}");
    CHECK_EQ(len, 11);

    /* bool normalised */
    CHECK_OK(wsn_client_set_bool(c, "b", 0));
    CHECK_OK(wsn_client_get_bool(c, "b", &b));
    CHECK_EQ(b, 0);
    /* replacing changes the type */
    CHECK_OK(wsn_client_set_int(c, "s", 42));
    CHECK_OK(wsn_client_get_type(c, "s", &t));
    CHECK_EQ(t, WSN_VALUE_INT);
    CHECK_OK(wsn_client_get_int(c, "s", &i64));
    CHECK_EQ(i64, 42);
    /* empty values */
    CHECK_OK(wsn_client_set_string(c, "e", ""));
    CHECK_OK(wsn_client_get_string(c, "e", buf, sizeof buf, &len));
    CHECK_EQ(len, 0);
    CHECK_STR(buf, "");
    CHECK_OK(wsn_client_set_bytes(c, "eb", NULL, 0));
    CHECK_OK(wsn_client_get_bytes(c, "eb", bytes, sizeof bytes, &len));
    CHECK_EQ(len, 0);
    teardown(&f);
}

static void test_metadata_errors(void)
{
    fixture f = setup(NULL);
    wsn_client *c = f.cl;
    int64_t i64;
    double d;
    int b;
    char buf[16];
    size_t len;
    wsn_value_type t;
    CHECK_RC(wsn_client_get_int(c, "missing", &i64), WSN_ENOTFOUND);
    CHECK_RC(wsn_client_get_double(c, "missing", &d), WSN_ENOTFOUND);
    CHECK_RC(wsn_client_get_bool(c, "missing", &b), WSN_ENOTFOUND);
    CHECK_RC(wsn_client_get_string(c, "missing", buf, sizeof buf, &len), WSN_ENOTFOUND);
    CHECK_RC(wsn_client_get_bytes(c, "missing", buf, sizeof buf, &len), WSN_ENOTFOUND);
    CHECK_RC(wsn_client_get_json(c, "missing", buf, sizeof buf, &len), WSN_ENOTFOUND);
    CHECK_RC(wsn_client_get_type(c, "missing", &t), WSN_ENOTFOUND);
    CHECK_RC(wsn_client_delete(c, "missing"), WSN_ENOTFOUND);

    CHECK_OK(wsn_client_set_string(c, "s", "x"));
    CHECK_OK(wsn_client_set_int(c, "i", 1));
    CHECK_OK(wsn_client_set_json(c, "j", "1"));
    CHECK_OK(wsn_client_set_bytes(c, "y", "x", 1));
    CHECK_RC(wsn_client_get_int(c, "s", &i64), WSN_ETYPE);
    CHECK_RC(wsn_client_get_double(c, "i", &d), WSN_ETYPE); /* no conversions */
    CHECK_RC(wsn_client_get_bool(c, "i", &b), WSN_ETYPE);
    CHECK_RC(wsn_client_get_string(c, "i", buf, sizeof buf, &len), WSN_ETYPE);
    CHECK_RC(wsn_client_get_string(c, "j", buf, sizeof buf, &len), WSN_ETYPE);
    CHECK_RC(wsn_client_get_string(c, "y", buf, sizeof buf, &len), WSN_ETYPE);
    CHECK_RC(wsn_client_get_json(c, "s", buf, sizeof buf, &len), WSN_ETYPE);
    CHECK_RC(wsn_client_get_bytes(c, "s", buf, sizeof buf, &len), WSN_ETYPE);

    /* keys: non-empty UTF-8 */
    CHECK_RC(wsn_client_set_int(c, "", 1), WSN_EINVAL);
    CHECK_RC(wsn_client_set_int(c, NULL, 1), WSN_EINVAL);
    CHECK_RC(wsn_client_set_int(c, "\xff", 1), WSN_EINVAL);
    CHECK_RC(wsn_client_set_string(c, "k", NULL), WSN_EINVAL);
    CHECK_RC(wsn_client_set_string(c, "k", "\xc3"), WSN_EINVAL);
    CHECK_RC(wsn_client_set_bytes(c, "k", NULL, 3), WSN_EINVAL);
    CHECK_RC(wsn_client_get_int(c, "i", NULL), WSN_EINVAL);
    teardown(&f);
}

static void test_metadata_enospc(void)
{
    fixture f = setup(NULL);
    wsn_client *c = f.cl;
    char buf[8];
    size_t len = 0;
    CHECK_OK(wsn_client_set_string(c, "s", "12345678"));
    memset(buf, 'z', sizeof buf);
    /* 8 chars + NUL need 9 */
    CHECK_RC(wsn_client_get_string(c, "s", buf, sizeof buf, &len), WSN_ENOSPC);
    CHECK_EQ(len, 8);
    CHECK_EQ(buf[0], 'z'); /* nothing copied */
    len = 0;
    CHECK_RC(wsn_client_get_string(c, "s", NULL, 0, &len), WSN_ENOSPC);
    CHECK_EQ(len, 8);
    {
        char ok[9];
        CHECK_OK(wsn_client_get_string(c, "s", ok, sizeof ok, &len));
        CHECK_STR(ok, "12345678");
    }
    CHECK_OK(wsn_client_set_bytes(c, "y", "abcdefgh", 8));
    CHECK_OK(wsn_client_get_bytes(c, "y", buf, 8, &len)); /* no NUL for bytes */
    CHECK_MEM(buf, len, "abcdefgh", 8);
    CHECK_RC(wsn_client_get_bytes(c, "y", buf, 7, &len), WSN_ENOSPC);
    CHECK_EQ(len, 8);
    CHECK_OK(wsn_client_set_json(c, "j", "[1,2,3,4]"));
    CHECK_RC(wsn_client_get_json(c, "j", buf, sizeof buf, &len), WSN_ENOSPC);
    CHECK_EQ(len, 9);
    teardown(&f);
}

static void test_metadata_json(void)
{
    fixture f = setup(NULL);
    wsn_client *c = f.cl;
    char buf[64];
    size_t len;
    CHECK_RC(wsn_client_set_json(c, "j", "{"), WSN_EJSON);
    CHECK_RC(wsn_client_set_json(c, "j", ""), WSN_EJSON);
    CHECK_RC(wsn_client_set_json(c, "j", "{\"a\":1} 2"), WSN_EJSON);
    CHECK_RC(wsn_client_get_json(c, "j", buf, sizeof buf, &len), WSN_ENOTFOUND);
    CHECK_OK(wsn_client_set_json(c, "j", "\"str\""));
    CHECK_OK(wsn_client_get_json(c, "j", buf, sizeof buf, &len));
    CHECK_STR(buf, "\"str\"");
    CHECK_OK(wsn_client_set_json(c, "j", "null"));
    CHECK_OK(wsn_client_get_json(c, "j", buf, sizeof buf, &len));
    CHECK_STR(buf, "null");
    /* a refused set keeps the old value */
    CHECK_RC(wsn_client_set_json(c, "j", "[1,"), WSN_EJSON);
    CHECK_OK(wsn_client_get_json(c, "j", buf, sizeof buf, &len));
    CHECK_STR(buf, "null");
    teardown(&f);
}

static void test_metadata_delete_keys(void)
{
    fixture f = setup(NULL);
    wsn_client *c = f.cl;
    wsn_strlist *l = NULL;
    int64_t v;
    size_t i;
    int seen_a = 0, seen_b = 0, seen_c = 0;
    CHECK_OK(wsn_client_metadata_keys(c, &l));
    CHECK_EQ(wsn_strlist_count(l), 0);
    wsn_strlist_free(l);
    CHECK_OK(wsn_client_set_int(c, "a", 1));
    CHECK_OK(wsn_client_set_string(c, "b", "2"));
    CHECK_OK(wsn_client_set_bool(c, "c", 1));
    CHECK_OK(wsn_client_metadata_keys(c, &l));
    CHECK_EQ(wsn_strlist_count(l), 3);
    for (i = 0; i < 3; i++) {
        const char *k = wsn_strlist_get(l, i);
        seen_a += strcmp(k, "a") == 0;
        seen_b += strcmp(k, "b") == 0;
        seen_c += strcmp(k, "c") == 0;
    }
    CHECK(seen_a == 1 && seen_b == 1 && seen_c == 1);
    CHECK_OK(wsn_client_delete(c, "b"));
    CHECK_RC(wsn_client_delete(c, "b"), WSN_ENOTFOUND);
    /* the snapshot did not change */
    CHECK_EQ(wsn_strlist_count(l), 3);
    wsn_strlist_free(l);
    CHECK_OK(wsn_client_metadata_keys(c, &l));
    CHECK_EQ(wsn_strlist_count(l), 2);
    wsn_strlist_free(l);
    CHECK_OK(wsn_client_get_int(c, "a", &v));
    CHECK_EQ(v, 1);
    {
        wsn_value_type t;
        CHECK_RC(wsn_client_get_type(c, "b", &t), WSN_ENOTFOUND);
    }
    /* set after delete */
    CHECK_OK(wsn_client_set_int(c, "b", 5));
    CHECK_OK(wsn_client_get_int(c, "b", &v));
    CHECK_EQ(v, 5);
    teardown(&f);
}

static void test_metadata_limit(void)
{
    wsn_options *o = tu_opts();
    fixture f;
    wsn_client *c;
    char *big = malloc(2000);
    int64_t v;
    int i, rc = 0;
    tu_set_int(o, WSN_OPT_MAX_METADATA_BYTES, 1024);
    f = setup(o);
    c = f.cl;
    memset(big, 'v', 1999);
    big[1999] = '\0';
    CHECK_RC(wsn_client_set_string(c, "big", big), WSN_ELIMIT);
    {
        wsn_value_type t;
        CHECK_RC(wsn_client_get_type(c, "big", &t), WSN_ENOTFOUND);
    }
    big[500] = '\0';
    CHECK_OK(wsn_client_set_string(c, "half", big));
    /* many small keys eventually reach the limit */
    for (i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        rc = wsn_client_set_int(c, k, i);
        if (rc != 0)
            break;
    }
    CHECK_RC(rc, WSN_ELIMIT);
    CHECK(i > 0);
    /* replacing a value with a smaller one is still allowed */
    CHECK_OK(wsn_client_set_string(c, "half", "small"));
    CHECK_OK(wsn_client_set_int(c, "after", 1));
    CHECK_OK(wsn_client_get_int(c, "after", &v));
    free(big);
    teardown(&f);
    wsn_options_free(o);
}

/* The disconnect handler can still read what the host stored. */
typedef struct disc_state {
    pthread_mutex_t mu;
    int done, rc, connected;
    int64_t uid;
} disc_state;

static void on_connect(void *user, wsn_server *srv, const wsn_event *ev)
{
    (void)user;
    (void)srv;
    CHECK_OK(wsn_client_set_int(wsn_event_client(ev), "uid", 1234));
}

static void on_disconnect(void *user, wsn_server *srv, const wsn_event *ev)
{
    disc_state *st = user;
    int64_t v = 0;
    int rc = wsn_client_get_int(wsn_event_client(ev), "uid", &v);
    (void)srv;
    pthread_mutex_lock(&st->mu);
    st->rc = rc;
    st->uid = v;
    st->connected = wsn_client_is_connected(wsn_event_client(ev));
    st->done = 1;
    pthread_mutex_unlock(&st->mu);
}

static int disc_done(disc_state *st)
{
    int d;
    pthread_mutex_lock(&st->mu);
    d = st->done;
    pthread_mutex_unlock(&st->mu);
    return d;
}

static void test_metadata_in_disconnect_handler(void)
{
    int io;
    for (io = 0; io < 2; io++) {
        wsn_options *o = tu_opts();
        wsn_server *srv = NULL;
        disc_state st;
        wsc *w;
        memset(&st, 0, sizeof st);
        pthread_mutex_init(&st.mu, NULL);
        tu_set_int(o, WSN_OPT_EVENTS_ON_IO_THREAD, io);
        CHECK_OK(wsn_server_new(o, &srv, NULL, 0));
        CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_CONNECT, on_connect, NULL));
        CHECK_OK(wsn_server_set_handler(srv, WSN_EVENT_DISCONNECT, on_disconnect, &st));
        CHECK_OK(wsn_server_start(srv));
        w = tu_connect(wsn_server_port(srv));
        if (!io) {
            /* run the CONNECT handler before the client leaves */
            int64_t dl = tu_now_ms() + TU_TIMEOUT;
            int n = 0;
            while (n < 1 && tu_now_ms() < dl) {
                wsn_server_wait(srv, 100);
                n += wsn_server_dispatch(srv, 0);
            }
            CHECK_EQ(n, 1);
        }
        wsc_free(w);
        {
            int64_t dl = tu_now_ms() + TU_TIMEOUT;
            while (!disc_done(&st)) {
                CHECK_MSG(tu_now_ms() < dl, "no disconnect handler call");
                if (!io) {
                    wsn_server_wait(srv, 100);
                    wsn_server_dispatch(srv, 0);
                } else {
                    tu_sleep_ms(2);
                }
            }
        }
        pthread_mutex_lock(&st.mu);
        CHECK_RC(st.rc, WSN_OK);
        CHECK_EQ(st.uid, 1234);
        CHECK_EQ(st.connected, 0);
        pthread_mutex_unlock(&st.mu);
        CHECK_OK(wsn_server_shutdown(srv, 5000));
        wsn_server_free(srv);
        pthread_mutex_destroy(&st.mu);
        wsn_options_free(o);
    }
}

static void test_max_clients(void)
{
    wsn_options *o = tu_opts();
    wsn_server *srv;
    wsc *w1, *w2;
    wsn_client *c1, *c2;
    wsc_opts co;
    int status;
    tu_set_int(o, WSN_OPT_MAX_CLIENTS, 1);
    srv = tu_server(o);
    c1 = tu_accept(srv, &w1);
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    status = tu_connect_refused(&co);
    tu_note("second client over max_clients: HTTP %d", status);
    CHECK_EQ(status, 503);
    CHECK_EQ(wsn_server_connected_clients(srv), 1);
    /* once the first leaves, there is room again */
    wsc_free(w1);
    tu_expect_disconnect_of(srv, wsn_client_id(c1), TU_TIMEOUT);
    c2 = tu_accept(srv, &w2);
    CHECK_EQ(wsn_server_connected_clients(srv), 1);
    wsc_free(w2);
    wsn_client_release(c1);
    wsn_client_release(c2);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
}

/* A host that has used up every descriptor (issue 16 item 9): lws 4.1
 * alone retried accept() on every poll, spinning, and the client waited
 * unanswered. Now the waiting connection is taken with the spare
 * descriptor and closed at once, with a log line; once the host gives
 * descriptors back, clients are served again. */
static atomic_int exhausted_lines;

static void count_exhausted(void *user, wsn_log_level level, const char *msg)
{
    (void)user;
    (void)level;
    if (strstr(msg, "file descriptors exhausted"))
        atomic_fetch_add(&exhausted_lines, 1);
}

static void test_host_fds_exhausted(void)
{
    enum { LIMIT = 256 };
    struct rlimit saved, rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    rl = saved;
    rl.rlim_cur = LIMIT;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    wsn_options *o = tu_opts();
    CHECK_OK(wsn_options_set_logger(o, count_exhausted, NULL));
    wsn_server *srv = tu_server(o);
    int held[LIMIT], n = 0, fd;
    while (n < LIMIT && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        held[n++] = fd;
    CHECK_MSG(n < LIMIT && errno == EMFILE, "took %d descriptors, errno %d", n, errno);
    /* One back, for the client's own socket: the server has none. */
    close(held[--n]);
    wsc_opts co;
    memset(&co, 0, sizeof co);
    co.port = wsn_server_port(srv);
    wsc *w = NULL;
    int status = 0;
    int rc = wsc_connect(&co, &w, &status);
    tu_note("connect with no descriptor left: %s", wsc_strerror(rc));
    CHECK_MSG(rc == WSC_EOF || rc == WSC_EIO, "connect: %s (the connection should be closed "
              "at accept, not left waiting)", wsc_strerror(rc));
    wsc_free(w);
    CHECK(atomic_load(&exhausted_lines) >= 1);
    while (n)
        close(held[--n]);
    wsc *w2;
    wsn_client *c = tu_accept(srv, &w2);
    wsc_free(w2);
    tu_expect_disconnect_of(srv, wsn_client_id(c), TU_TIMEOUT);
    wsn_client_release(c);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    wsn_options_free(o);
    CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
}

/* The server's side of every accepted connection has TCP_NODELAY: the
 * engine coalesces frames itself, and with Nagle a small write waited for
 * the client's delayed ACK (40 ms) behind an unacknowledged one. The
 * server runs in this process, so its sockets are among our fds: those
 * whose local port is the server's and that have a peer. */
static void test_accepted_sockets_nodelay(void)
{
    wsn_server *srv = tu_server(NULL);
    int port = wsn_server_port(srv);
    wsc *w[2];
    wsn_client *c[2];
    for (int i = 0; i < 2; i++)
        c[i] = tu_accept(srv, &w[i]);
    int found = 0;
    DIR *d = opendir("/proc/self/fd");
    CHECK(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        struct sockaddr_storage local, peer;
        socklen_t ll = sizeof(local), pl = sizeof(peer);
        if (e->d_name[0] == '.' || getsockname(fd, (struct sockaddr *)&local, &ll) ||
            local.ss_family != AF_INET || getpeername(fd, (struct sockaddr *)&peer, &pl) ||
            ntohs(((struct sockaddr_in *)&local)->sin_port) != port)
            continue;
        int on = 0;
        socklen_t ol = sizeof(on);
        CHECK_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &ol), 0);
        CHECK_MSG(on, "accepted socket fd %d has Nagle on", fd);
        found++;
    }
    closedir(d);
    CHECK_EQ(found, 2);
    for (int i = 0; i < 2; i++) {
        wsc_free(w[i]);
        wsn_client_release(c[i]);
    }
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
}

static const tu_test tests[] = {
    {"accepted_sockets_nodelay", test_accepted_sockets_nodelay},
    {"gone_client", test_gone_client},
    {"metadata_types", test_metadata_types},
    {"metadata_errors", test_metadata_errors},
    {"metadata_enospc", test_metadata_enospc},
    {"metadata_json", test_metadata_json},
    {"metadata_delete_keys", test_metadata_delete_keys},
    {"metadata_limit", test_metadata_limit},
    {"metadata_in_disconnect_handler", test_metadata_in_disconnect_handler},
    {"max_clients", test_max_clients},
    {"host_fds_exhausted", test_host_fds_exhausted},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
