/* The event socket (WSN_OPT_EVENT_SOCKET): a byte per turn of the event
 * fd to every connection, the take-first protocol, the STOPPED
 * announcement and EOF at shutdown, and every way the path can be wrong. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "testutil.h"

static char dir[64];
static char path[128];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/wsn-evsock-XXXXXX");
    CHECK(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/events.sock", dir);
}

static void remove_dir(void)
{
    unlink(path);
    CHECK_EQ(rmdir(dir), 0);
}

static wsn_options *socket_opts(const char *p)
{
    wsn_options *o = tu_opts();
    tu_set_str(o, WSN_OPT_EVENT_SOCKET, p);
    return o;
}

static int unix_connect(const char *p)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    CHECK(strlen(p) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, p, strlen(p) + 1);
    CHECK_MSG(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect %s: %s", p,
              strerror(errno));
    return fd;
}

/* 1 when a byte (or EOF) is there within timeout_ms. */
static int readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    CHECK(n >= 0);
    return n == 1;
}

/* Reads what is there: the number of bytes, 0 for EOF. */
static ssize_t read_all(int fd)
{
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    CHECK_MSG(n >= 0, "recv: %s", strerror(errno));
    return n;
}

/* Takes every queued event, returns how many, frees them. */
static int take_all(wsn_server *srv, wsn_event_type *last)
{
    int n = 0;
    wsn_event *ev;
    while (wsn_server_next_event(srv, &ev) == WSN_OK) {
        if (last)
            *last = wsn_event_kind(ev);
        wsn_event_free(ev);
        n++;
    }
    return n;
}

static void test_announces(void)
{
    make_dir();
    wsn_options *o = socket_opts(path);
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK(S_ISSOCK(st.st_mode));

    int host = unix_connect(path);
    int other = unix_connect(path);
    CHECK_EQ(take_all(srv, NULL), 0); /* take first: nothing yet */
    CHECK(!readable(host, 0));

    wsc *ws = tu_connect(wsn_server_port(srv));
    CHECK(readable(host, TU_TIMEOUT)); /* the CONNECT turned the fd */
    CHECK(readable(other, TU_TIMEOUT));
    CHECK_EQ(read_all(host), 1);
    CHECK_EQ(read_all(other), 1);
    wsn_event_type kind = WSN_EVENT_STOPPED;
    CHECK_EQ(take_all(srv, &kind), 1);
    CHECK_EQ(kind, WSN_EVENT_CONNECT);
    CHECK(!readable(host, 0)); /* nothing new: nothing said */

    /* The other host goes away; the next announcement still reaches the
     * first, and the server is unharmed by the closed peer. */
    close(other);
    CHECK_WSC(wsc_send_text(ws, "{\"type\":\"json\",\"channel\":\"c\",\"message\":1}"));
    CHECK(readable(host, TU_TIMEOUT));
    CHECK_EQ(read_all(host), 1);
    CHECK_EQ(take_all(srv, &kind), 1);
    CHECK_EQ(kind, WSN_EVENT_MESSAGE);

    /* Events taken while the byte was in flight: the byte is harmless,
     * and what is queued later is announced again. */
    CHECK_WSC(wsc_send_text(ws, "{\"type\":\"json\",\"channel\":\"c\",\"message\":2}"));
    wsn_event_free(tu_expect_event(srv, WSN_EVENT_MESSAGE, TU_TIMEOUT));
    CHECK(readable(host, TU_TIMEOUT));
    CHECK_EQ(read_all(host), 1);
    CHECK_EQ(take_all(srv, NULL), 0);
    CHECK_WSC(wsc_send_text(ws, "{\"type\":\"json\",\"channel\":\"c\",\"message\":3}"));
    CHECK(readable(host, TU_TIMEOUT));
    CHECK_EQ(read_all(host), 1);
    CHECK_EQ(take_all(srv, NULL), 1);

    /* Shutdown: the DISCONNECT and STOPPED are announced, then EOF, and
     * the path is gone. */
    wsc_free(ws);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    CHECK(readable(host, TU_TIMEOUT));
    ssize_t n;
    int bytes = 0;
    while ((n = read_all(host)) > 0)
        bytes += (int)n;
    CHECK(bytes >= 1);
    CHECK_EQ(n, 0);
    int taken = take_all(srv, &kind);
    CHECK(taken >= 1);
    CHECK_EQ(kind, WSN_EVENT_STOPPED);
    CHECK(stat(path, &st) != 0 && errno == ENOENT);
    close(host);
    wsn_server_free(srv);
    remove_dir();
}

/* Beyond 16 connections the newcomer is closed when it would be told. */
static void test_connection_bound(void)
{
    make_dir();
    wsn_options *o = socket_opts(path);
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    int fds[17];
    for (int i = 0; i < 17; i++)
        fds[i] = unix_connect(path);
    wsc *ws = tu_connect(wsn_server_port(srv));
    for (int i = 0; i < 17; i++) {
        CHECK(readable(fds[i], TU_TIMEOUT));
        CHECK_EQ(read_all(fds[i]), i < 16 ? 1 : 0);
        close(fds[i]);
    }
    CHECK_EQ(take_all(srv, NULL), 1);
    wsc_free(ws);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    wsn_server_free(srv);
    remove_dir();
}

static void expect_start_fails(const char *p, const char *why)
{
    wsn_options *o = socket_opts(p);
    wsn_server *srv = NULL;
    char err[256] = "";
    CHECK_OK(wsn_server_new(o, &srv, err, sizeof(err)));
    wsn_options_free(o);
    CHECK_RC(wsn_server_start(srv), WSN_EIO);
    wsn_server_last_error(srv, err, sizeof(err));
    CHECK_MSG(strstr(err, why), "error '%s' lacks '%s'", err, why);
    wsn_server_free(srv);
}

static void test_bad_paths(void)
{
    make_dir();
    /* A live listener keeps its path. */
    int live = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    CHECK(strlen(path) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, path, strlen(path) + 1);
    CHECK_EQ(bind(live, (struct sockaddr *)&addr, sizeof(addr)), 0);
    CHECK_EQ(listen(live, 4), 0);
    expect_start_fails(path, "Address already in use");
    /* Once it is dead, its file is stale and replaced. */
    close(live);
    wsn_options *o = socket_opts(path);
    wsn_server *srv = tu_server(o);
    wsn_options_free(o);
    int host = unix_connect(path);
    CHECK_OK(wsn_server_shutdown(srv, 5000));
    CHECK(readable(host, TU_TIMEOUT));
    close(host);
    wsn_server_free(srv);

    /* A regular file is never replaced. */
    FILE *f = fopen(path, "w");
    CHECK(f);
    fclose(f);
    expect_start_fails(path, "Address already in use");
    unlink(path);

    char missing[160];
    snprintf(missing, sizeof(missing), "%s/no/such/dir/s", dir);
    expect_start_fails(missing, "No such file or directory");
    char longer[200];
    memset(longer, 'x', sizeof(longer) - 1);
    longer[0] = '/';
    longer[sizeof(longer) - 1] = '\0';
    expect_start_fails(longer, "a unix socket path takes 107");
    remove_dir();
}

static const tu_test tests[] = {
    {"announces", test_announces},
    {"connection_bound", test_connection_bound},
    {"bad_paths", test_bad_paths},
    {NULL, NULL},
};

int main(int argc, char **argv) { return tu_main(tests, argc, argv); }
