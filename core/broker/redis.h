/* The Redis broker (issue 19): a second implementation of
 * engine/broker.h that spreads every publish over the servers of a
 * cluster through Redis pub/sub (PUBLISH/SUBSCRIBE, or SPUBLISH/
 * SSUBSCRIBE with broker_sharded). docs/scale-out.md says what it
 * guarantees.
 *
 * A thread of its own owns two hiredis connections per Redis master (one
 * publishes, pipelined; one is subscribed): one master, or with
 * broker_sharded against a Redis Cluster each master, a channel's publish
 * and subscription going to the master of its key slot. It talks to the I/O thread through two
 * queues under its lock: publishes out, and what arrives in, which the
 * I/O thread takes in drain() after the shell's wake-up. Nothing here
 * blocks the I/O thread or a publisher: a queue that is full drops and
 * counts.
 *
 * Delivery: a publish is delivered to this server's subscribers at once
 * (so local delivery goes on while Redis is down) and sent to Redis;
 * when it comes back, its origin is this server and it is skipped.
 *
 * Owns: the broker thread, its connections and both queues. */
#ifndef WSN_BROKER_REDIS_H
#define WSN_BROKER_REDIS_H

#include "engine/objects.h"

/* What the broker asks of the shell. */
typedef struct wsni_redis_hooks {
    /* Any thread: have the I/O thread call the broker's drain soon. */
    void (*wake)(wsn_server *srv);
    /* io: the state changed (wsn_broker_state); reason "" when up. */
    void (*state_changed)(wsn_server *srv, int state, const char *reason);
    /* io: o to this server's client with this id, if it is connected
     * (the id table is the shell's). */
    void (*deliver_to_id)(wsn_server *srv, const char *client_id, outgoing *o);
} wsni_redis_hooks;

/* Makes the broker for url and installs it on srv (srv->broker,
 * srv->broker_impl, srv->cluster_id). 0, or WSN_EINVAL (bad url, why
 * set) or WSN_ENOMEM. Before start. */
int wsni_redis_new(wsn_server *srv, const char *url, int sharded, const wsni_redis_hooks *hooks,
                   char *why, size_t why_len);
/* Starts the broker thread (it connects, then keeps reconnecting). */
int wsni_redis_start(wsn_server *srv);
/* Stops the thread and frees everything (the I/O thread has ended). */
void wsni_redis_free(wsn_server *srv);
/* wsn_server_broker_state for a server with this broker (any thread). */
int wsni_redis_state(wsn_server *srv, wsn_broker_info *info);
/* The state alone, cheaply (any thread). */
int wsni_redis_state_now(wsn_server *srv);
/* Messages of other servers that never arrived here (any thread). */
uint64_t wsni_redis_lost(wsn_server *srv);
/* "up", "down", "connecting" or "none". */
const char *wsni_redis_state_name(int state);

#endif
