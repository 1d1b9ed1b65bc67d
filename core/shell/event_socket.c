/* Nothing here runs a thread or polls: connections are accepted when
 * there is something to say to them, which is the only time a connection
 * matters. A host that connected before that has nothing to miss, since
 * it takes what is queued before it waits (the protocol in wsnotify.h). */
#include "shell/event_socket.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* A socket file left by a server that died is replaced; one that still
 * answers belongs to a running server and is not taken from it. */
static int stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) || !S_ISSOCK(st.st_mode))
        return 0;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int answered = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return !answered;
}

event_socket *wsni_event_socket_open(const char *path, char *why, size_t why_len)
{
    size_t len = strlen(path);
    event_socket *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(why, why_len, "event_socket: out of memory");
        return NULL;
    }
    if (len >= sizeof(s->path)) {
        snprintf(why, why_len, "event_socket path is %zu bytes, a unix socket path takes %zu", len,
                 sizeof(s->path) - 1);
        free(s);
        return NULL;
    }
    memcpy(s->path, path, len + 1);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, path, len + 1);
    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = s->listen_fd < 0 ? -1 : bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
    if (rc && errno == EADDRINUSE && stale(path) && !unlink(path))
        rc = bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
    if (rc || listen(s->listen_fd, EVENT_SOCKET_MAX_CONNECTIONS)) {
        snprintf(why, why_len, "event_socket: cannot listen on %s: %s", path, strerror(errno));
        if (s->listen_fd >= 0)
            close(s->listen_fd);
        free(s);
        return NULL;
    }
    return s;
}

static void drop(event_socket *s, int i)
{
    close(s->connections[i]);
    s->connections[i] = s->connections[--s->count];
}

void wsni_event_socket_notify(event_socket *s)
{
    int fd;
    while ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        if (s->count == EVENT_SOCKET_MAX_CONNECTIONS)
            close(fd);
        else
            s->connections[s->count++] = fd;
    }
    for (int i = s->count - 1; i >= 0; i--) {
        ssize_t n;
        do
            n = send(s->connections[i], "!", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        /* A full socket already holds bytes the host has not read: it will
         * wake. Any other failure is a host that went away. */
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            drop(s, i);
    }
}

void wsni_event_socket_close(event_socket *s)
{
    if (!s)
        return;
    while (s->count)
        drop(s, s->count - 1);
    close(s->listen_fd);
    unlink(s->path);
    free(s);
}
