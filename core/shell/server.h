/* The shell's own calls on the server and client objects (defined in
 * engine/objects.h): lifetime, the I/O thread's identity, client objects,
 * the last error.
 *
 * Owns (declarations): lifetime.c, client.c, errors in log.c. */
#ifndef WSN_SHELL_SERVER_H
#define WSN_SHELL_SERVER_H

#include "engine/objects.h"
#include "shell/events.h"
#include "shell/options.h"

/* lifetime.c */
void wsni_server_ref(wsn_server *srv);
/* Drops a reference; the last one frees the server (any thread). */
void wsni_server_unref(wsn_server *srv);
int wsni_server_on_io_thread(const wsn_server *srv);
/* The transport's reports on the server's life (its I/O thread; each
 * takes srv->lock and wakes the threads waiting on srv->cond). */
void wsni_server_started(wsn_server *srv, int port); /* running: wake() may be called */
void wsni_server_start_failed(wsn_server *srv);
void wsni_server_ctx_closing(wsn_server *srv);       /* wake() may no longer be called */
void wsni_server_note_clients_cut(wsn_server *srv);  /* shutdown had to drop clients */
void wsni_server_io_ended(wsn_server *srv);

/* log.c */
void wsni_set_error(wsn_server *srv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The log sink of every server: the host's logger, else the pulled queue. */
void wsni_log_sink(wsn_server *srv, wsn_log_level level, const char *msg);

/* publish.c: a channel name the host gives, checked (sets the error). */
int wsni_check_channel(wsn_server *srv, const char *channel, int allow_empty);

/* upgrade.c: applies an accepted upgrade's answer to the client it became
 * (io, at connect, before the CONNECT event). */
struct wsni_upgrade_answer;
void wsni_upgrade_answer_apply(wsn_client *c, const struct wsni_upgrade_answer *a);


/* client.c */
wsn_client *wsni_client_new(wsn_server *srv);
/* Puts the client into the id table and the count (io, at connect). */
void wsni_client_register(wsn_client *c);
/* Takes the client out of the id table (io, at disconnect). */
void wsni_client_forget(wsn_client *c);
/* The connected (or still registered) client with this id, retained
 * (wsn_client_release), or NULL. Any thread. */
wsn_client *wsni_client_find(wsn_server *srv, const char *id);

#endif
