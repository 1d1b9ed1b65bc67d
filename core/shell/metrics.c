/* The metrics snapshot (wsn_server_metrics): the counters every layer
 * bumps (engine/counters.h), the registry's gauges, and what the shell's
 * queues and the broker report. Nothing here waits for the I/O thread:
 * each value is read on its own. */
#include "shell/metrics.h"

#include "engine/batch.h"
#include "shell/cluster.h"

#include <string.h>

/* The public enums are the counters' own, in the same order. */
#define SAME(a, b) static_assert((int)(a) == (int)(b), #a " is " #b)
SAME(WSNI_REFUSED_SHUTDOWN, WSN_REFUSED_SHUTDOWN);
SAME(WSNI_REFUSED_MAX_CLIENTS, WSN_REFUSED_MAX_CLIENTS);
SAME(WSNI_REFUSED_PER_ADDRESS, WSN_REFUSED_PER_ADDRESS);
SAME(WSNI_REFUSED_DESCRIPTORS, WSN_REFUSED_DESCRIPTORS);
SAME(WSNI_REFUSED_ORIGIN, WSN_REFUSED_ORIGIN);
SAME(WSNI_REFUSED_BAD_REQUEST, WSN_REFUSED_BAD_REQUEST);
SAME(WSNI_REFUSED_AUTH, WSN_REFUSED_AUTH);
SAME(WSNI_REFUSED_AUTH_TIMEOUT, WSN_REFUSED_AUTH_TIMEOUT);
SAME(WSNI_REFUSED_AUTH_QUEUE, WSN_REFUSED_AUTH_QUEUE);
SAME(WSNI_REFUSED_TLS, WSN_REFUSED_TLS);
SAME(WSNI_CLOSED_SLOW, WSN_CLOSED_SLOW);
SAME(WSNI_CLOSED_RATE, WSN_CLOSED_RATE);
SAME(WSNI_CLOSED_EXPIRED, WSN_CLOSED_EXPIRED);
SAME(WSNI_CLOSED_TOO_BIG, WSN_CLOSED_TOO_BIG);
SAME(WSNI_CLOSED_PONG, WSN_CLOSED_PONG);
SAME(WSNI_CLOSED_QUEUE_FULL, WSN_CLOSED_QUEUE_FULL);
SAME(WSNI_CLOSED_BUSY, WSN_CLOSED_BUSY);
static_assert(WSNI_REFUSAL_COUNT <= 16 && WSNI_CLOSING_COUNT <= 16,
              "wsn_metrics has 16 slots per reason array");

static const char *const refusal_names[WSNI_REFUSAL_COUNT] = {
    [WSNI_REFUSED_SHUTDOWN] = "shutdown",
    [WSNI_REFUSED_MAX_CLIENTS] = "max_clients",
    [WSNI_REFUSED_PER_ADDRESS] = "per_address",
    [WSNI_REFUSED_DESCRIPTORS] = "descriptors",
    [WSNI_REFUSED_ORIGIN] = "origin",
    [WSNI_REFUSED_BAD_REQUEST] = "bad_request",
    [WSNI_REFUSED_AUTH] = "auth",
    [WSNI_REFUSED_AUTH_TIMEOUT] = "auth_timeout",
    [WSNI_REFUSED_AUTH_QUEUE] = "auth_queue",
    [WSNI_REFUSED_TLS] = "tls",
};

static const char *const closing_names[WSNI_CLOSING_COUNT] = {
    [WSNI_CLOSED_SLOW] = "slow",           [WSNI_CLOSED_RATE] = "rate",
    [WSNI_CLOSED_EXPIRED] = "expired",     [WSNI_CLOSED_TOO_BIG] = "too_big",
    [WSNI_CLOSED_PONG] = "pong_timeout",   [WSNI_CLOSED_QUEUE_FULL] = "queue_full",
    [WSNI_CLOSED_BUSY] = "busy",
};

WSN_API const char *wsn_refusal_name(int reason)
{
    return reason >= 0 && reason < WSNI_REFUSAL_COUNT ? refusal_names[reason] : NULL;
}

WSN_API const char *wsn_close_reason_name(int reason)
{
    return reason >= 0 && reason < WSNI_CLOSING_COUNT ? closing_names[reason] : NULL;
}

static uint64_t get(const wsni_counter *c) { return wsni_counter_read(c); }

/* Messages out from four counters the delivery path keeps anyway: frames
 * waiting now = queued (offered - missed) - written - discarded. Read
 * what left before what was queued, so that a snapshot taken while the
 * I/O thread works may count a frame as waiting that has just left, never
 * fall below zero; each value is read once, so the fields agree. */
static void messages_out(const wsni_counters *k, wsn_metrics *m)
{
    uint64_t sent = get(&k->sent), discarded = get(&k->discarded);
    uint64_t missed = get(&k->missed), offered = get(&k->offered);
    m->messages_sent = sent;
    m->bytes_sent = get(&k->sent_bytes);
    m->messages_dropped = missed + discarded;
    m->deliveries = offered >= missed ? offered - missed : 0;
    m->queued = m->deliveries >= sent + discarded ? m->deliveries - sent - discarded : 0;
    m->queue_max = m->queued ? get(&k->queue_max) : 0;
}

/* The 0.3 struct ends here; later fields are filled when the caller's
 * size says they exist. */
#define METRICS_0_3_SIZE (offsetof(wsn_metrics, broker_reconnects) + sizeof(uint64_t))

WSN_API int wsn_server_metrics(wsn_server *srv, wsn_metrics *out)
{
    if (!srv || !out || out->size < METRICS_0_3_SIZE)
        return WSN_EINVAL;
    /* Filled in a full struct of ours, then copied as far as the caller's
     * size goes: an older caller's smaller struct is never overrun. */
    wsn_metrics m;
    memset(&m, 0, sizeof(m));
    const wsni_counters *k = &srv->counters;

    pthread_mutex_lock(&srv->lock);
    m.connections = srv->connected > 0 ? (uint64_t)srv->connected : 0;
    m.stalled_clients = srv->stalled_clients > 0 ? (uint64_t)srv->stalled_clients : 0;
    pthread_mutex_unlock(&srv->lock);

    m.connections_accepted = get(&k->accepted);
    for (int i = 0; i < WSNI_REFUSAL_COUNT; i++)
        m.connections_refused[i] = get(&k->refused[i]);
    for (int i = 0; i < WSNI_CLOSING_COUNT; i++)
        m.connections_closed[i] = get(&k->closed[i]);
    m.connections_ended = get(&k->ended);
    m.subscriptions = get(&srv->reg.membership_count);
    m.channels = get(&srv->reg.channel_count);
    for (int t = 0; t < 3; t++) {
        m.messages_received[t] = get(&k->received[t]);
        m.bytes_received[t] = get(&k->received_bytes[t]);
    }
    m.messages_invalid = get(&k->invalid);
    messages_out(k, &m);
    m.publish_refused_limit = get(&k->publish_refused[WSNI_PUBLISH_LIMIT]);
    m.publish_refused_again = get(&k->publish_refused[WSNI_PUBLISH_AGAIN]);
    m.publish_refused_timeout = get(&k->publish_refused[WSNI_PUBLISH_TIMEOUT]);
    m.publish_refused_backpressure = get(&k->publish_refused[WSNI_PUBLISH_BACKPRESSURE]);
    m.pending_batches = wsni_batch_pending(srv);

    wsni_event_queue_stats q;
    wsni_event_queue_stats_get(srv->events, &q);
    m.events_queued = q.messages;
    m.events_queued_bytes = q.bytes;
    m.clients_paused = q.paused_clients;
    m.reads_paused = q.paused != 0;
    m.logs_dropped = wsn_server_logs_dropped(srv);

    wsn_broker_info b = {.size = sizeof(b)};
    m.broker_state = (uint64_t)wsn_server_broker_state(srv, &b);
    m.broker_sent = b.sent;
    m.broker_refused = b.refused;
    m.broker_unconfirmed = b.unconfirmed;
    m.broker_received = b.received;
    m.broker_ignored = b.ignored;
    m.broker_dropped = b.dropped;
    m.broker_reconnects = b.reconnects;
    m.broker_lost = wsni_cluster_lost(srv);

    size_t size = out->size < sizeof(m) ? out->size : sizeof(m);
    memcpy((char *)out + sizeof(out->size), (char *)&m + sizeof(m.size), size - sizeof(m.size));
    return WSN_OK;
}
