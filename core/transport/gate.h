/* Authentication at the upgrade (WSN_OPT_AUTHENTICATE) and the cap of
 * connections per remote address, where connections come in.
 *
 * On plain ws:// the gate reads a new connection's request itself, before
 * libwebsockets sees it: a WebSocket upgrade on the server's path becomes
 * a WSN_EVENT_UPGRADE and waits, unread and untimed by lws, for the host's
 * answer; an accept hands the socket and the bytes read to lws as if just
 * accepted, a rejection answers with the HTTP status. Anything else (GET
 * /healthz, static files) goes to lws at once. Over TLS lws must read the
 * request, and lws 4.1 cannot hold a request it has parsed: the handshake
 * completes, the connection waits with reads paused and no client made,
 * and a rejection is a close with 4000 + status.
 *
 * Every connection handed to lws carries a tag (lws's opaque user data):
 * its address's count and, once accepted, the host's answer, applied when
 * the client is made. Owns: gate.c. I/O thread only. */
#ifndef WSN_TRANSPORT_GATE_H
#define WSN_TRANSPORT_GATE_H

#include "engine/objects.h"
#include "engine/upgrade_answer.h"

#include <libwebsockets.h>

/* A socket just accepted from addr (its text form), with the head_len
 * bytes a front already read from it (handoff): to lws, to the gate, or
 * closed (over the address cap). Returns an UPGRADE event for the loop to
 * emit when the head given was whole and the host is asked, else NULL. */
wsn_event *wsni_gate_admit(wsn_server *srv, int fd, const char *addr, const void *head,
                           size_t head_len);
/* lws: a raw file wsi of the gate's is readable: returns what the
 * callback returns, and in *emit an UPGRADE event for the loop to emit
 * (or NULL). */
int wsni_gate_readable(wsn_server *srv, struct lws *wsi, wsn_event **emit);
/* lws is closing a raw file wsi of the gate's. */
void wsni_gate_closing(wsn_server *srv, struct lws *wsi);
/* lws made wsi for a socket the gate is handing it (its tag goes on). */
void wsni_gate_adopted(wsn_server *srv, struct lws *wsi);
/* lws is freeing wsi: its tag (if any) goes, and its address's count. */
void wsni_gate_forget(wsn_server *srv, struct lws *wsi);

/* The answer an accepted connection carries, taken (the caller applies
 * and frees it), or NULL. */
wsni_upgrade_answer *wsni_gate_take_answer(struct lws *wsi);
/* confirm_upgrade on a connection that did not come through the gate
 * while WSN_OPT_AUTHENTICATE is on: whether it must wait (TLS) rather
 * than be refused (a plain connection's later request). */
int wsni_gate_unanswered(struct lws *wsi);

/* TLS: keeps wsi's request (call while lws still has its headers, at
 * HTTP_CONFIRM_UPGRADE) so that it waits for the host once upgraded.
 * Returns 0, or -1 (out of memory: refuse it). */
int wsni_gate_hold(wsn_server *srv, struct lws *wsi);
/* Whether wsi is held: waiting for the host, or refused by it. */
int wsni_gate_is_held(struct lws *wsi);
/* At ESTABLISHED of a held wsi: reads pause, the wait starts; returns the
 * UPGRADE event for the loop to emit (or NULL: refused at once). */
wsn_event *wsni_gate_held_connected(wsn_server *srv, struct lws *wsi);
/* A held connection's close code and reason once refused (else 0). */
int wsni_gate_held_close(struct lws *wsi, const char **reason);

/* The engine's transport call: the host's answer arrives. */
int wsni_gate_answer(wsn_server *srv, wsni_upgrade_answer *a);
/* Shutdown: every waiting upgrade is refused with 503. */
void wsni_gate_refuse_all(wsn_server *srv);

#endif
