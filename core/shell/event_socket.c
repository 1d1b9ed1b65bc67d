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
#include <unistd.h>

event_socket *wsni_event_socket_open(const char *path, char *why, size_t why_len)
{
    event_socket *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(why, why_len, "event_socket: out of memory");
        return NULL;
    }
    s->listen_fd = wsni_unix_bind("event_socket", path, SOCK_STREAM, &s->bound, why, why_len);
    if (s->listen_fd >= 0 && listen(s->listen_fd, EVENT_SOCKET_MAX_CONNECTIONS)) {
        snprintf(why, why_len, "event_socket: cannot listen on %s: %s", path, strerror(errno));
        close(s->listen_fd);
        wsni_unix_unlink(&s->bound);
        s->listen_fd = -1;
    }
    if (s->listen_fd < 0) {
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
    wsni_unix_unlink(&s->bound);
    free(s);
}
