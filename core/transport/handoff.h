/* The handoff socket (WSN_OPT_HANDOFF_SOCKET): connections accepted by a
 * front in another process (nginx workers) arrive as unix datagrams, each
 * a socket (SCM_RIGHTS) and the bytes the front read from it, and are
 * admitted as if our listener had accepted them (listener.c), the bytes
 * served first. A datagram queue rather than a stream: one message is one
 * whole handoff, and the sender neither connects nor waits (wsn_handoff,
 * shell/handoff_send.c).
 *
 * Owns: the socket, bound before the context exists (as the listener's),
 * and what a datagram must hold to be admitted. Thread: the I/O thread. */
#ifndef WSN_TRANSPORT_HANDOFF_H
#define WSN_TRANSPORT_HANDOFF_H

#include "engine/objects.h"

#include <libwebsockets.h>

/* Binds the path of the option if set. 0, or -1 with srv's error set
 * and logged. */
int wsni_handoff_open(wsn_server *srv);
/* The socket joins lws's poll set. 0, or -1 (logged; closed). */
int wsni_handoff_adopt(wsn_server *srv);
/* Whether wsi is lws's wsi of the handoff socket. */
int wsni_handoff_is(wsn_server *srv, struct lws *wsi);
/* The socket is readable: takes one datagram and admits its connection.
 * Returns 1 while datagrams may wait (*emit gets an UPGRADE event for the
 * loop to emit, or NULL), 0 when none is left. */
int wsni_handoff_take(wsn_server *srv, wsn_event **emit);
/* lws closed the wsi (and the socket). */
void wsni_handoff_closed(wsn_server *srv);
/* Closes the socket if lws does not own it, and unlinks the path. */
void wsni_handoff_close(wsn_server *srv);

#endif
