/* The listening socket, ours rather than lws's: lws 4.1 retries a failed
 * accept() on every poll, so once the process has used up its descriptors
 * (the host's files count too) it spins at 100% CPU and serves nobody
 * (issue 16 item 9). Owning the socket lets us meet EMFILE the way nginx
 * and libuv do: a spare descriptor is given up to accept the waiting
 * connection and close it at once, and when even that fails the listener
 * is left out of the poll set for a moment.
 *
 * Owns: the socket (bound before the context exists, so a bind failure is
 * our own errno), the spare descriptor, the descriptor bounds taken from
 * RLIMIT_NOFILE, and the admission of an accepted socket (shutdown, bounds)
 * before lws adopts it. Thread: the I/O thread. */
#ifndef WSN_TRANSPORT_LISTENER_H
#define WSN_TRANSPORT_LISTENER_H

#include "engine/objects.h"

#include <stddef.h>
#include <sys/socket.h>

/* Binds and listens on the host and port options; sets the bounds from
 * RLIMIT_NOFILE. 0 with *port, or -1 with srv's error set and logged. */
int wsni_listener_open(wsn_server *srv, int *port);
/* The socket joins lws's poll set (after the context and vhost exist).
 * 0, or -1 (then the socket is closed). */
int wsni_listener_adopt(wsn_server *srv);
/* lws says the socket is readable: accepts what waits. */
void wsni_listener_ready(wsn_server *srv);
/* A connection accepted from ss, by us or by a front (handoff.c, with
 * the head_len bytes it read): goes on to the gate unless the server is
 * shutting down or the socket's number says descriptors are nearly gone
 * (then it is closed). Returns an UPGRADE event for the loop to emit
 * (only when a whole head came with it and the host is asked), or NULL. */
wsn_event *wsni_listener_admit(wsn_server *srv, int fd, const struct sockaddr_storage *ss,
                               const void *head, size_t head_len);
/* Closes the socket if lws does not own it yet, and the spare. */
void wsni_listener_close(wsn_server *srv);

#endif
