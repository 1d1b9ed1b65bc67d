/* Closing a client for what it sent (a message over read_limit, one that
 * would take partial-message memory beyond max_partial_bytes, a message
 * rate over client_rate): the close goes the engine's way, never as a -1
 * from lws's RECEIVE.
 *
 * Why: a -1 from RECEIVE makes lws 4.1 drop the rest of the buffer it is
 * parsing, the next read starts mid-frame ("illegal opcode"), and the
 * connection is cut before the close frame leaves, so the client saw 1006
 * instead of the code (test_rate.defaults_bound_a_flood, 1 run in 10).
 * Instead the close frame goes on the client's next WRITEABLE and the
 * socket is cut close_grace later at most. Reading goes on meanwhile and
 * what comes is dropped: a client still sending when its socket is closed
 * under it meets a reset, and a WebSocket library then reports that, not
 * the close frame waiting in its buffer (Python's websockets, Node's ws).
 *
 * Owns: wsni_conn's input_refused. Thread: the I/O thread. */
#ifndef WSN_TRANSPORT_REFUSE_H
#define WSN_TRANSPORT_REFUSE_H

#include "engine/objects.h"

#include <stdint.h>

/* Begins c's close with code and reason (a static string), its queued
 * messages discarded; from now on nothing it sends reaches the host. */
void wsni_input_refuse(wsn_client *c, uint16_t code, const char *reason);

/* Whether c's input is refused: drop what it sends. */
int wsni_input_refused(wsn_client *c);

#endif
