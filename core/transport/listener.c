#include "transport/listener.h"

#include "shell/options.h"
#include "shell/server.h"
#include "transport/gate.h"
#include "transport/lws_state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections taken per readable event: others' turn comes in between. */
#define ACCEPTS_PER_PASS 64
/* How long the listener stays out of the poll set when even the spare
 * descriptor is gone (a host holding every descriptor). */
#define LISTEN_PAUSE_US (100 * 1000)

/* The bounds that keep our own clients off EMFILE, from the soft
 * descriptor limit: sockets numbered within the last max(8, limit/64) are
 * closed at accept (the kernel hands out the lowest free number, so a high
 * one means few are left), and unless max_clients says otherwise, clients
 * take at most what the limit leaves after a reserve of max(32, limit/16)
 * for the host's own files and connections that never upgrade. */
static void fd_bounds(wsn_server *srv)
{
    struct rlimit rl;
    srv->lws->client_cap = srv->max_clients;
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT_MAX)
        return;
    int limit = (int)rl.rlim_cur;
    int edge = limit / 64 > 8 ? limit / 64 : 8;
    int reserve = limit / 16 > 32 ? limit / 16 : 32;
    srv->lws->fd_refuse_at = limit > edge ? limit - edge : 0;
    if (!srv->max_clients && limit > reserve)
        srv->lws->client_cap = limit - reserve;
}

/* The address lws 4.1 would have bound for the host option: "" and
 * "0.0.0.0" any IPv4 address, "::" any address of both families, else a
 * numeric address of its family or an interface's IPv4 address. */
static int host_address(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(host, ':')) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*a6);
        return inet_pton(AF_INET6, host, &a6->sin6_addr) == 1 ? 0 : EADDRNOTAVAIL;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof(*a4);
    if (!*host)
        return 0;
    return inet_pton(AF_INET, host, &a4->sin_addr) == 1 ? 0 : EADDRNOTAVAIL;
}

static int listen_socket(const char *host, int port, int *fd_out)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int err = host_address(host, port, &ss, &len);
    if (err)
        return err;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, SOMAXCONN) < 0) {
        err = errno;
        close(fd);
        return err;
    }
    *fd_out = fd;
    return 0;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int wsni_listener_open(wsn_server *srv, int *port)
{
    const char *host = opt_str(srv->opts, WSN_OPT_HOST);
    int want = (int)opt_int(srv->opts, WSN_OPT_PORT);
    srv->lws->listen_fd = -1;
    srv->lws->spare_fd = -1;
    fd_bounds(srv);
    int err = listen_socket(host, want, &srv->lws->listen_fd);
    if (err) {
        wsni_set_error(srv, "cannot listen on %s:%d: %s", host, want, strerror(err));
        wsni_log(srv, WSN_LOG_ERROR, "cannot listen on %s:%d: %s", host, want, strerror(err));
        return -1;
    }
    /* Taken now, while descriptors are plenty; without it (the host
     * already used them up) EMFILE pauses the listener instead. */
    srv->lws->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    *port = bound_port(srv->lws->listen_fd);
    return 0;
}

int wsni_listener_adopt(wsn_server *srv)
{
    lws_sock_file_fd_type fd = {.filefd = srv->lws->listen_fd};
    /* On failure lws has closed the socket. */
    srv->lws->listen_wsi = lws_adopt_descriptor_vhost(srv->lws->vhost, LWS_ADOPT_RAW_FILE_DESC,
                                                      fd, "wsnotify.json", NULL);
    if (!srv->lws->listen_wsi) {
        srv->lws->listen_fd = -1;
        wsni_set_error(srv, "lws could not poll the listening socket");
        wsni_log(srv, WSN_LOG_ERROR, "lws could not poll the listening socket");
        return -1;
    }
    return 0;
}

void wsni_listener_close(wsn_server *srv)
{
    if (!srv->lws->listen_wsi && srv->lws->listen_fd >= 0)
        close(srv->lws->listen_fd);
    srv->lws->listen_fd = -1;
    if (srv->lws->spare_fd >= 0)
        close(srv->lws->spare_fd);
    srv->lws->spare_fd = -1;
}

static void listen_resume(wsni_timer *tm)
{
    wsn_server *srv = wsni_container_of(tm, struct wsni_lws, listen_timer)->srv;
    if (srv->lws->listen_wsi)
        lws_rx_flow_control(srv->lws->listen_wsi, 1);
}

static void note_exhausted(wsn_server *srv)
{
    unsigned n = wsni_ratelog_due(&srv->lws->fds_log);
    if (n)
        wsni_log(srv, WSN_LOG_WARN,
                 "file descriptors exhausted (RLIMIT_NOFILE): %u connections closed at accept",
                 n);
}

/* EMFILE or ENFILE: the waiting connection is taken with the spare
 * descriptor and closed, so the peer hears at once and the socket stops
 * being readable for it. Returns whether to go on accepting. */
static int shed_one(wsn_server *srv)
{
    note_exhausted(srv);
    if (srv->lws->spare_fd >= 0) {
        close(srv->lws->spare_fd);
        int fd = accept4(srv->lws->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            wsni_count_io(&srv->counters.refused[WSNI_REFUSED_DESCRIPTORS], 1);
        }
        srv->lws->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            return 1;
    }
    /* No spare (the host took it back): stop polling the socket for a
     * while rather than spin; connections wait in the backlog. */
    lws_rx_flow_control(srv->lws->listen_wsi, 0);
    wsni_timer_arm(srv, &srv->lws->listen_timer, listen_resume, LISTEN_PAUSE_US);
    return 0;
}

wsn_event *wsni_listener_admit(wsn_server *srv, int fd, const struct sockaddr_storage *ss,
                               const void *head, size_t head_len)
{
    if (srv->lws->draining) {
        close(fd);
        wsni_count_io(&srv->counters.refused[WSNI_REFUSED_SHUTDOWN], 1);
        return NULL;
    }
    if (srv->lws->fd_refuse_at && fd >= srv->lws->fd_refuse_at) {
        close(fd);
        wsni_count_io(&srv->counters.refused[WSNI_REFUSED_DESCRIPTORS], 1);
        note_exhausted(srv);
        return NULL;
    }
    /* lws sets this on the sockets it accepts itself, not on the ones it
     * adopts: without it Nagle held a small write behind an unacknowledged
     * one until the client's delayed ACK, 40 ms (one subscriber at window
     * 20: 10 k deliveries/s instead of 150 k). The engine coalesces frames
     * into one send itself. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char addr[INET6_ADDRSTRLEN] = "";
    if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, addr, sizeof(addr));
    else if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, addr, sizeof(addr));
    return wsni_gate_admit(srv, fd, addr, head, head_len);
}

void wsni_listener_ready(wsn_server *srv)
{
    for (int i = 0; i < ACCEPTS_PER_PASS; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(srv->lws->listen_fd, (struct sockaddr *)&ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            wsni_listener_admit(srv, fd, &ss, NULL, 0); /* no head read: no event */
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if ((errno == EMFILE || errno == ENFILE) && shed_one(srv))
            continue;
        return; /* EAGAIN: nothing waits; else lws polls us again */
    }
}
