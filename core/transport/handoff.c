#include "transport/handoff.h"

#include "shell/options.h"
#include "shell/server.h"
#include "transport/listener.h"
#include "transport/lws_state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int wsni_handoff_open(wsn_server *srv)
{
    srv->lws->handoff_fd = -1;
    const char *path = opt_str(srv->opts, WSN_OPT_HANDOFF_SOCKET);
    if (!path || !*path)
        return 0;
    char why[256];
    if (srv->lws->tls) {
        wsni_set_error(srv, "handoff_socket with TLS: a front hands over a request it read in "
                            "clear text, which the TLS listener cannot take");
        wsni_log(srv, WSN_LOG_ERROR, "handoff_socket cannot be combined with tls_cert");
        return -1;
    }
    if (!(srv->lws->handoff_buf = malloc(WSN_HANDOFF_MAX_HEAD + 1))) {
        wsni_set_error(srv, "handoff_socket: out of memory");
        return -1;
    }
    srv->lws->handoff_fd =
        wsni_unix_bind("handoff_socket", path, SOCK_DGRAM, &srv->lws->handoff_bound, why, sizeof(why));
    if (srv->lws->handoff_fd < 0) {
        free(srv->lws->handoff_buf);
        srv->lws->handoff_buf = NULL;
        wsni_set_error(srv, "%s", why);
        wsni_log(srv, WSN_LOG_ERROR, "%s", why);
        return -1;
    }
    return 0;
}

int wsni_handoff_adopt(wsn_server *srv)
{
    if (srv->lws->handoff_fd < 0)
        return 0;
    lws_sock_file_fd_type fd = {.filefd = srv->lws->handoff_fd};
    /* On failure lws has closed the socket. */
    srv->lws->handoff_wsi = lws_adopt_descriptor_vhost(srv->lws->vhost, LWS_ADOPT_RAW_FILE_DESC,
                                                       fd, "wsnotify.json", NULL);
    if (!srv->lws->handoff_wsi) {
        srv->lws->handoff_fd = -1;
        wsni_set_error(srv, "lws could not poll the handoff socket");
        wsni_log(srv, WSN_LOG_ERROR, "lws could not poll the handoff socket");
        return -1;
    }
    return 0;
}

int wsni_handoff_is(wsn_server *srv, struct lws *wsi)
{
    return wsi && wsi == srv->lws->handoff_wsi;
}

static void refused(wsn_server *srv, const char *why)
{
    wsni_count_io(&srv->counters.refused[WSNI_REFUSED_BAD_REQUEST], 1);
    unsigned n = wsni_ratelog_due(&srv->lws->handoff_log);
    if (n)
        wsni_log(srv, WSN_LOG_WARN, "handoff_socket: %u handed connections refused: %s", n, why);
}

/* Every descriptor a datagram carried, and how many. */
static int carried(struct msghdr *msg, int *fds, int max)
{
    int n = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (n < max)
                fds[n] = fd;
            else
                close(fd);
            n++;
        }
    }
    return n;
}

int wsni_handoff_take(wsn_server *srv, wsn_event **emit)
{
    *emit = NULL;
    /* Room for a few descriptors, so that a sender giving more than one
     * has them all closed rather than leaked into our table. */
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {srv->lws->handoff_buf, WSN_HANDOFF_MAX_HEAD + 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof(control.buf)};
    ssize_t n = recvmsg(srv->lws->handoff_fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return errno == EINTR;
    int fds[4];
    int count = carried(&msg, fds, 4);
    for (int i = 1; i < count && i < 4; i++)
        close(fds[i]);
    if (!count && (msg.msg_flags & MSG_CTRUNC)) {
        /* The kernel had no descriptor left for ours and closed the
         * socket: counted as a connection closed at accept would be. */
        wsni_count_io(&srv->counters.refused[WSNI_REFUSED_DESCRIPTORS], 1);
        wsni_log(srv, WSN_LOG_WARN, "handoff_socket: a handed socket lost: no descriptor left");
        return 1;
    }
    if (count != 1 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n == 0 ||
        n > WSN_HANDOFF_MAX_HEAD) {
        if (count >= 1)
            close(fds[0]);
        refused(srv, count != 1 ? "a datagram must carry exactly one socket"
                                : "a datagram must carry 1 to 16384 bytes of request");
        return 1;
    }
    int fd = fds[0];
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int type = 0;
    socklen_t tl = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_STREAM ||
        getpeername(fd, (struct sockaddr *)&ss, &sl) ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        close(fd);
        refused(srv, "not a connected TCP socket");
        return 1;
    }
    /* The front's descriptor shares the file status flags; nginx's is
     * non-blocking already, another front's may not be. */
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0 && !(flags & O_NONBLOCK))
        (void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    *emit = wsni_listener_admit(srv, fd, &ss, srv->lws->handoff_buf, (size_t)n);
    return 1;
}

void wsni_handoff_closed(wsn_server *srv)
{
    srv->lws->handoff_wsi = NULL;
    srv->lws->handoff_fd = -1;
}

void wsni_handoff_close(wsn_server *srv)
{
    if (!srv->lws->handoff_wsi && srv->lws->handoff_fd >= 0)
        close(srv->lws->handoff_fd);
    if (srv->lws->handoff_buf) {
        /* Datagrams still queued close their sockets with the file. */
        wsni_unix_unlink(&srv->lws->handoff_bound);
        free(srv->lws->handoff_buf);
        srv->lws->handoff_buf = NULL;
    }
    srv->lws->handoff_fd = -1;
}
