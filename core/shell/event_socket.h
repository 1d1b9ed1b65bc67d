/* The event socket (WSN_OPT_EVENT_SOCKET): a unix socket whose
 * connections get one byte each time the event fd turns readable, for
 * hosts that can wait on a socket but not on an fd (nginx cosockets). */
#ifndef WSN_EVENT_SOCKET_H
#define WSN_EVENT_SOCKET_H

#include "util/unix_path.h"

#include <stddef.h>

#define EVENT_SOCKET_MAX_CONNECTIONS 16

typedef struct event_socket {
    int listen_fd;
    int connections[EVENT_SOCKET_MAX_CONNECTIONS];
    int count;
    wsni_unix_path bound;
} event_socket;

/* Listens on path; NULL with why filled when it cannot. */
event_socket *wsni_event_socket_open(const char *path, char *why, size_t why_len);
/* Accepts who connected since, and sends each connection a byte. The
 * caller serialises calls (the event queue's lock). */
void wsni_event_socket_notify(event_socket *s);
/* Closes every connection and the listener, and unlinks the path (if
 * still ours). */
void wsni_event_socket_close(event_socket *s);

#endif
