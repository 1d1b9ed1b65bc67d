/* The metrics snapshot in the Prometheus text exposition format (0.0.4),
 * written by the core so that every binding and host serves the same
 * names: GET /metrics with WSN_OPT_METRICS, or the host's own route with
 * wsn_server_metrics_text(). docs/production.md lists every metric. */
#include "shell/metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* How a family's samples are labelled: one value, or an array of the
 * snapshot read with one label value per element. */
enum labels { ONE, BY_REFUSAL, BY_CLOSE, BY_TYPE, BY_PUBLISH_REFUSAL, BY_BROKER_STATE };

typedef struct family {
    const char *name;
    const char *type; /* "counter" or "gauge" */
    const char *help;
    size_t field;     /* offset in wsn_metrics of the value (or first element) */
    enum labels labels;
    int broker;       /* only with a broker */
} family;

#define AT(f) offsetof(wsn_metrics, f)

/* The four publish refusals are read as one array. */
static_assert(AT(publish_refused_again) == AT(publish_refused_limit) + 8 &&
                  AT(publish_refused_timeout) == AT(publish_refused_limit) + 16 &&
                  AT(publish_refused_backpressure) == AT(publish_refused_limit) + 24,
              "publish refusals side by side");

static const family families[] = {
    {"wsnotify_connections", "gauge", "WebSocket clients connected now.", AT(connections), ONE, 0},
    {"wsnotify_connections_accepted_total", "counter", "WebSocket upgrades that became clients.",
     AT(connections_accepted), ONE, 0},
    {"wsnotify_connections_refused_total", "counter",
     "Connections refused before they became clients, by reason.", AT(connections_refused),
     BY_REFUSAL, 0},
    {"wsnotify_connections_closed_total", "counter", "Clients the server closed, by reason.",
     AT(connections_closed), BY_CLOSE, 0},
    {"wsnotify_connections_ended_total", "counter",
     "Client connections that ended, whoever closed them.", AT(connections_ended), ONE, 0},
    {"wsnotify_subscriptions", "gauge", "Memberships of clients in channels now.",
     AT(subscriptions), ONE, 0},
    {"wsnotify_channels", "gauge", "Channels with at least one member now.", AT(channels), ONE, 0},
    {"wsnotify_messages_received_total", "counter",
     "Messages from clients handed to the host, by type.", AT(messages_received), BY_TYPE, 0},
    {"wsnotify_received_bytes_total", "counter",
     "Payload bytes of the messages from clients, by type.", AT(bytes_received), BY_TYPE, 0},
    {"wsnotify_messages_invalid_total", "counter",
     "Messages from clients answered with an error reply (not an envelope).",
     AT(messages_invalid), ONE, 0},
    {"wsnotify_deliveries_total", "counter",
     "Messages queued for a client, one per subscriber a publish reached.", AT(deliveries), ONE,
     0},
    {"wsnotify_messages_sent_total", "counter", "Frames written to clients.", AT(messages_sent),
     ONE, 0},
    {"wsnotify_sent_bytes_total", "counter", "Wire bytes of the frames written to clients.",
     AT(bytes_sent), ONE, 0},
    {"wsnotify_messages_dropped_total", "counter",
     "Messages for a client that will never be written to it (queue full, client closing, "
     "dropped or gone).",
     AT(messages_dropped), ONE, 0},
    {"wsnotify_queued_messages", "gauge", "Frames waiting in every client's queue now.",
     AT(queued), ONE, 0},
    {"wsnotify_queue_depth_max", "gauge",
     "Frames in the fullest client's send queue (at most a second old).", AT(queue_max), ONE, 0},
    {"wsnotify_stalled_clients", "gauge",
     "Clients whose send queue is full with messages waiting behind it (block mode).",
     AT(stalled_clients), ONE, 0},
    {"wsnotify_publish_refused_total", "counter",
     "Publish calls refused, by reason (limit: WSN_ELIMIT, again: WSN_EAGAIN, timeout: "
     "WSN_ETIMEDOUT, backpressure: WSN_EBACKPRESSURE).",
     AT(publish_refused_limit), BY_PUBLISH_REFUSAL, 0},
    {"wsnotify_pending_batches", "gauge", "publish_wait batches waiting for their ttl.",
     AT(pending_batches), ONE, 0},
    {"wsnotify_host_events_queued", "gauge", "Message events waiting for the host.",
     AT(events_queued), ONE, 0},
    {"wsnotify_host_events_queued_bytes", "gauge",
     "Bytes held by the message events waiting for the host.", AT(events_queued_bytes), ONE, 0},
    {"wsnotify_host_paused_clients", "gauge",
     "Clients not read because their share of the host's event queue is full.",
     AT(clients_paused), ONE, 0},
    {"wsnotify_host_reads_paused", "gauge",
     "1 while reading from every client is paused for the host (event_queue_limit).",
     AT(reads_paused), ONE, 0},
    {"wsnotify_logs_dropped_total", "counter", "Log lines dropped: the log queue was full.",
     AT(logs_dropped), ONE, 0},
    {"wsnotify_broker_state", "gauge", "The broker's state: 1 for the current one.",
     AT(broker_state), BY_BROKER_STATE, 1},
    {"wsnotify_broker_published_total", "counter", "Publishes the broker acknowledged.",
     AT(broker_sent), ONE, 1},
    {"wsnotify_broker_refused_total", "counter",
     "Publishes not sent because the broker was down (delivered on this server only).",
     AT(broker_refused), ONE, 1},
    {"wsnotify_broker_unconfirmed_total", "counter",
     "Publishes written when the broker connection broke, before it acknowledged them.",
     AT(broker_unconfirmed), ONE, 1},
    {"wsnotify_broker_received_total", "counter", "Messages from other servers delivered here.",
     AT(broker_received), ONE, 1},
    {"wsnotify_broker_ignored_total", "counter",
     "Broker messages not written by a wsnotify server: dropped.", AT(broker_ignored), ONE, 1},
    {"wsnotify_broker_dropped_total", "counter",
     "Broker messages dropped: this server's I/O thread was too far behind.",
     AT(broker_dropped), ONE, 1},
    {"wsnotify_broker_reconnects_total", "counter",
     "Times the broker came up again after it was down.", AT(broker_reconnects), ONE, 1},
    {"wsnotify_broker_lost_messages_total", "counter",
     "Messages of other servers that never arrived here (gaps in their sequence numbers).",
     AT(broker_lost), ONE, 1},
};

static const char *const type_names[] = {"json", "text", "binary", NULL};
static const char *const publish_refusal_names[] = {"limit", "again", "timeout", "backpressure",
                                                    NULL};
/* wsn_broker_state from WSN_BROKER_CONNECTING on. */
static const char *const broker_state_names[] = {"connecting", "up", "down", NULL};

/* The label's name and value for element i, or NULL past the last. */
static const char *label_of(enum labels labels, int i, const char **label)
{
    switch (labels) {
    case BY_REFUSAL:
        *label = "reason";
        return wsn_refusal_name(i);
    case BY_CLOSE:
        *label = "reason";
        return wsn_close_reason_name(i);
    case BY_TYPE:
        *label = "type";
        return type_names[i];
    case BY_PUBLISH_REFUSAL:
        *label = "reason";
        return publish_refusal_names[i];
    case BY_BROKER_STATE:
        *label = "state";
        return broker_state_names[i];
    case ONE:
        break;
    }
    return NULL;
}

/* Writes into the caller's buffer as far as it goes and counts the rest,
 * so that a buffer too small learns the length it needs. */
typedef struct writer {
    char *buf;
    size_t cap; /* bytes of buf, the NUL included */
    size_t len; /* the text's length so far, also past cap */
} writer;

static void put(writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(writer *w, const char *fmt, ...)
{
    char *at = w->len < w->cap ? w->buf + w->len : NULL;
    size_t room = w->len < w->cap ? w->cap - w->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(at, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->len += (size_t)n;
}

static void write_family(writer *w, const family *f, const wsn_metrics *m)
{
    const uint64_t *v = (const uint64_t *)(const void *)((const char *)m + f->field);
    put(w, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
    if (f->labels == ONE) {
        put(w, "%s %llu\n", f->name, (unsigned long long)*v);
        return;
    }
    const char *label, *value;
    for (int i = 0; (value = label_of(f->labels, i, &label)); i++) {
        /* The broker's state is one value: 1 on the line of that state. */
        uint64_t x = f->labels == BY_BROKER_STATE ? *v == (uint64_t)(WSN_BROKER_CONNECTING + i)
                                                  : v[i];
        put(w, "%s{%s=\"%s\"} %llu\n", f->name, label, value, (unsigned long long)x);
    }
}

WSN_API int wsn_server_metrics_text(wsn_server *srv, char *buf, size_t cap, size_t *len)
{
    if (!srv || !len || (!buf && cap))
        return WSN_EINVAL;
    wsn_metrics m = {.size = sizeof(m)};
    int rc = wsn_server_metrics(srv, &m);
    if (rc)
        return rc;
    writer w = {.buf = buf, .cap = cap, .len = 0};
    put(&w,
        "# HELP wsnotify_build_info Always 1: the version of wsnotify serving.\n"
        "# TYPE wsnotify_build_info gauge\n"
        "wsnotify_build_info{version=\"%s\"} 1\n",
        wsn_version_string());
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
        if (!families[i].broker || m.broker_state != WSN_BROKER_NONE)
            write_family(&w, &families[i], &m);
    *len = w.len;
    return w.len < cap ? WSN_OK : WSN_ENOSPC;
}
