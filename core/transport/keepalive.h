/* Pings every client each ping_period and drops those silent for pong_wait,
 * with one timer per server (I/O thread only). */
#ifndef WSN_KEEPALIVE_H
#define WSN_KEEPALIVE_H

#include "wsnotify.h"

/* A client that completed its handshake: its clock starts now. */
void wsni_keepalive_add(wsn_server *srv, wsn_client *c);
/* The client answered a ping. */
void wsni_keepalive_pong(wsn_server *srv, wsn_client *c);
/* The client is leaving; safe to call twice. */
void wsni_keepalive_remove(wsn_server *srv, wsn_client *c);
/* Before the lws context goes away. */
void wsni_keepalive_stop(wsn_server *srv);

#endif
