/* The seam between a publish and its delivery: publish -> broker ->
 * deliver. Every publish kind (publish, typed publish, a publish_wait
 * batch's flush, publish_to_client) reaches the engine's local delivery
 * through the server's broker, with its message already encoded (the
 * outgoing's frames, built in the publisher's thread).
 *
 * The in-process broker (broker.c) is the default: it delivers at once.
 * A broker that spreads messages over several servers (the Redis one,
 * core/broker/redis.c) implements
 * the same table: it sends the encoded frames out (taking references with
 * wsni_frame_ref, since the outgoing is freed when publish returns), and
 * hands what arrives from other servers, and its own messages when they
 * come back, to wsni_deliver_* (objects.h) on the I/O thread; it learns
 * which channels have local members from channel_first / channel_last
 * (to SUBSCRIBE / UNSUBSCRIBE), and asks the transport for timers like
 * the rest of the engine.
 *
 * Owns: the interface and the in-process broker. Every call is made on
 * the I/O thread. */
#ifndef WSN_ENGINE_BROKER_H
#define WSN_ENGINE_BROKER_H

#include "engine/objects.h"

struct wsni_broker {
    /* count messages to channel, in publish order. may_wait: the
     * publisher can be made to wait (block mode overflow allowed). Returns
     * what the publisher sees when it published on the I/O thread. */
    int (*publish)(wsn_server *srv, const char *channel, outgoing *const *outs, size_t count,
                   int may_wait);
    /* A message to one client of this server. */
    int (*publish_to_client)(wsn_server *srv, wsn_client *c, outgoing *o, int may_wait);
    /* channel got its first local member / lost its last one. NULL when
     * the broker does not care (the in-process one). */
    void (*channel_first)(wsn_server *srv, const char *channel);
    void (*channel_last)(wsn_server *srv, const char *channel);
    /* Delivers what arrived from other servers; called whenever the I/O
     * thread takes its commands (before them). NULL: nothing arrives. */
    void (*drain)(wsn_server *srv);
    /* A message to a client of another server, named by its id (o has
     * every format encoded). NULL: there are no other servers. */
    int (*publish_to_remote)(wsn_server *srv, const char *client_id, outgoing *o);
    /* count publishes to channel were kept on this server (the publisher
     * was told the broker was down): counted, not sent (and numbered, so
     * that the other servers count them as lost). */
    void (*kept_local)(wsn_server *srv, const char *channel, size_t count);
    /* A message to client_id of another server was refused (the publisher
     * was told the broker was down): counted and numbered, not sent, so
     * that the target server counts it as lost. */
    void (*kept_remote)(wsn_server *srv, const char *client_id);
};

extern const wsni_broker wsni_local_broker;

/* Installs b on srv (before start; the shell installs the local one). */
void wsni_broker_use(wsn_server *srv, const wsni_broker *b);

/* A publish made while the broker was down: this server's subscribers
 * only, whatever the broker's state is by now, as the publisher was told. */
static inline int wsni_broker_publish_here(wsn_server *srv, const char *channel,
                                           outgoing *const *outs, size_t count, int may_wait)
{
    if (srv->broker->kept_local)
        srv->broker->kept_local(srv, channel, count);
    return count == 1 ? wsni_deliver_to_channel(srv, channel, outs[0], may_wait)
                      : wsni_deliver_run_to_channel(srv, channel, outs, count, may_wait);
}

static inline void wsni_broker_drain(wsn_server *srv)
{
    if (srv->broker->drain)
        srv->broker->drain(srv);
}

/* The in-process broker is called directly: no indirect call on the
 * default path. */
static inline int wsni_broker_publish(wsn_server *srv, const char *channel, outgoing *const *outs,
                                      size_t count, int may_wait)
{
    if (srv->broker == &wsni_local_broker)
        return count == 1 ? wsni_deliver_to_channel(srv, channel, outs[0], may_wait)
                          : wsni_deliver_run_to_channel(srv, channel, outs, count, may_wait);
    return srv->broker->publish(srv, channel, outs, count, may_wait);
}

static inline int wsni_broker_publish_to_client(wsn_server *srv, wsn_client *c, outgoing *o,
                                                int may_wait)
{
    if (srv->broker == &wsni_local_broker)
        return wsni_deliver_to_client(srv, c, o, may_wait);
    return srv->broker->publish_to_client(srv, c, o, may_wait);
}

#endif
