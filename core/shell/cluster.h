/* The shell's side of a scale-out broker (cluster.c). */
#ifndef WSN_SHELL_CLUSTER_H
#define WSN_SHELL_CLUSTER_H

#include "shell/server.h"

/* wsn_server_new: makes the broker the options ask for (none: nothing).
 * 0, or a WSN_E* code with why. */
int wsni_cluster_setup(wsn_server *srv, char *why, size_t why_len);
/* wsn_server_start, once the I/O thread runs: the broker starts too. */
int wsni_cluster_start(wsn_server *srv);
/* wsn_server_free, once the I/O thread has ended: the broker stops. */
void wsni_cluster_end(wsn_server *srv);
/* Any thread: 1 when the server can serve the whole cluster (no broker,
 * or the broker is up), else 0 with why (GET /healthz's 503 body). */
int wsni_cluster_healthy(wsn_server *srv, char *why, size_t cap);
/* Any thread, after a publish was queued: WSN_EBROKER when the broker is
 * not up (the message reaches this server's subscribers only). */
int wsni_cluster_publish_check(wsn_server *srv);
/* Any thread: messages of other servers that never arrived (0 without a
 * broker). */
uint64_t wsni_cluster_lost(wsn_server *srv);

#endif
