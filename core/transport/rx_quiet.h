/* Gives back the receive buffer pages of clients that have gone quiet: an
 * idle subscriber's pong to each keepalive ping writes the first page of
 * its buffer, which would otherwise stay resident until it leaves. One
 * timer per server, and only clients that answered a ping since their
 * buffer was last released are visited (I/O thread only). */
#ifndef WSN_RX_QUIET_H
#define WSN_RX_QUIET_H

#include "wsnotify.h"

/* The client's receive buffer was just written. lws 4.1 hands data frames
 * over from its per-thread read buffer and writes this one only with
 * control frames, and of those only a pong reaches us (pings are answered
 * inside lws; a close ends the connection): call on RECEIVE_PONG. */
void wsni_rx_quiet_note(wsn_server *srv, wsn_client *c);
/* The client is leaving; safe to call twice. */
void wsni_rx_quiet_remove(wsn_server *srv, wsn_client *c);
/* Before the lws context goes away. */
void wsni_rx_quiet_stop(wsn_server *srv);

#endif
