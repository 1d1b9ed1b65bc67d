/* The lws transport as the shell sees it: start the I/O thread, wake it,
 * shut it down, pause reading, hand events out. No lws type here.
 *
 * Owns: the I/O thread, the lws context and callback, the write path
 * (transport/loop.c), and the lws implementation of the engine's
 * transport interface (transport/lws_transport.c). */
#ifndef WSN_TRANSPORT_LOOP_H
#define WSN_TRANSPORT_LOOP_H

#include "engine/transport.h"
#include "shell/server.h"

/* The lws transport: a new server's srv->transport. */
extern const wsni_transport wsni_lws_transport;

/* Starts the I/O thread; returns when it serves or failed to (any thread). */
int wsni_loop_start(wsn_server *srv);
/* Lock held: wakes the I/O thread to take the command queue. */
void wsni_loop_wake(wsn_server *srv);
/* io: refuses new clients, flushes, closes everyone, ends the loop. */
void wsni_loop_begin_shutdown(wsn_server *srv, int64_t timeout_ms);
/* io: stops (1) or resumes (0) reading from every client. */
void wsni_loop_pause_rx(wsn_server *srv, int pause);
void wsni_loop_resume_client_rx(wsn_client *c);
/* io: gives ev to the host (its handler on this thread, or the queue). */
void wsni_loop_emit(wsn_server *srv, wsn_event *ev);
/* Whether the lws linked in allows the receive-buffer pool; else 0 with
 * the reason in why (any thread). */
int wsni_loop_rx_pool_supported(char *why, size_t why_len);

#endif
