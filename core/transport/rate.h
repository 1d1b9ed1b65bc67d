/* The per-client inbound message rate (client_rate, client_burst): every
 * complete message a client sends takes a token from its bucket; one that
 * finds none closes the client with 1008 "message rate exceeded"
 * (WSNI_CLOSED_RATE), logged at most once a second. Without it a client
 * could broadcast as fast as its link allows, and every subscriber would
 * pay for it.
 *
 * Owns: wsni_conn's rate_tat and wsni_lws's rate_* fields. Thread: the
 * I/O thread. */
#ifndef WSN_TRANSPORT_RATE_H
#define WSN_TRANSPORT_RATE_H

#include "engine/objects.h"

/* At start: the bucket's shape from the options. */
void wsni_rate_setup(wsn_server *srv);
/* A complete message from c arrived: 1 to take it, 0 to drop it (c was
 * over its rate: it is being closed, and nothing it sends from then on
 * reaches the host: transport/refuse.h). */
int wsni_rate_admit(wsn_server *srv, wsn_client *c);

#endif
