/*
 * metrics(): wsn_server_metrics as a JS object with camelCase keys, the
 * by-reason and by-type arrays as objects keyed by their label (the names
 * the core gives them, as in the Prometheus text); metricsText().
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* The plain counters and gauges, by JS name. */
static const struct {
    const char *name;
    size_t offset;
} scalars[] = {
#define F(js, c) {js, offsetof(wsn_metrics, c)}
    F("connections", connections),
    F("connectionsAccepted", connections_accepted),
    F("connectionsEnded", connections_ended),
    F("subscriptions", subscriptions),
    F("channels", channels),
    F("messagesInvalid", messages_invalid),
    F("deliveries", deliveries),
    F("messagesSent", messages_sent),
    F("bytesSent", bytes_sent),
    F("messagesDropped", messages_dropped),
    F("queued", queued),
    F("queueMax", queue_max),
    F("stalledClients", stalled_clients),
    F("publishRefusedLimit", publish_refused_limit),
    F("publishRefusedAgain", publish_refused_again),
    F("publishRefusedTimeout", publish_refused_timeout),
    F("publishRefusedBackpressure", publish_refused_backpressure),
    F("pendingBatches", pending_batches),
    F("eventsQueued", events_queued),
    F("eventsQueuedBytes", events_queued_bytes),
    F("clientsPaused", clients_paused),
    F("logsDropped", logs_dropped),
    F("brokerSent", broker_sent),
    F("brokerRefused", broker_refused),
    F("brokerUnconfirmed", broker_unconfirmed),
    F("brokerReceived", broker_received),
    F("brokerIgnored", broker_ignored),
    F("brokerDropped", broker_dropped),
    F("brokerReconnects", broker_reconnects),
    F("brokerLost", broker_lost),
#undef F
};

static const char *type_name(int i) { return i < 3 ? wsn_message_type_name((wsn_message_type)i) : NULL; }

static bool set_number(napi_env env, napi_value obj, const char *key, uint64_t v) {
    napi_value n;
    return nw_check(env, napi_create_double(env, (double)v, &n)) &&
           nw_check(env, napi_set_named_property(env, obj, key, n));
}

/* {label: value} for an array whose element i is named by name_of(i). */
static bool set_labelled(napi_env env, napi_value obj, const char *key, const uint64_t *values,
                         const char *(*name_of)(int)) {
    napi_value sub;
    if (!nw_check(env, napi_create_object(env, &sub)))
        return false;
    const char *label;
    for (int i = 0; (label = name_of(i)); i++)
        if (!set_number(env, sub, label, values[i]))
            return false;
    return nw_check(env, napi_set_named_property(env, obj, key, sub));
}

napi_value nw_metrics_object(napi_env env, wsn_server *srv, int *rc) {
    static const char *const states[] = {"none", "connecting", "up", "down"};
    wsn_metrics m;
    memset(&m, 0, sizeof m);
    m.size = sizeof m;
    *rc = wsn_server_metrics(srv, &m);
    if (*rc)
        return NULL;
    napi_value obj, b, state;
    NW_CALL(env, napi_create_object(env, &obj));
    for (size_t i = 0; i < sizeof scalars / sizeof scalars[0]; i++)
        if (!set_number(env, obj, scalars[i].name,
                        *(const uint64_t *)(const void *)((const char *)&m + scalars[i].offset)))
            return NULL;
    if (!set_labelled(env, obj, "connectionsRefused", m.connections_refused, wsn_refusal_name) ||
        !set_labelled(env, obj, "connectionsClosed", m.connections_closed,
                      wsn_close_reason_name) ||
        !set_labelled(env, obj, "messagesReceived", m.messages_received, type_name) ||
        !set_labelled(env, obj, "bytesReceived", m.bytes_received, type_name))
        return NULL;
    NW_CALL(env, napi_get_boolean(env, m.reads_paused != 0, &b));
    NW_CALL(env, napi_set_named_property(env, obj, "readsPaused", b));
    NW_CALL(env, napi_create_string_utf8(env, m.broker_state < 4 ? states[m.broker_state]
                                                                 : "unknown",
                                         NAPI_AUTO_LENGTH, &state));
    NW_CALL(env, napi_set_named_property(env, obj, "brokerState", state));
    return obj;
}

napi_value nw_metrics_text(napi_env env, wsn_server *srv, int *rc) {
    size_t cap = 16384, len = 0;
    for (;;) {
        char *buf = malloc(cap);
        if (!buf) {
            *rc = WSN_ENOMEM;
            return NULL;
        }
        *rc = wsn_server_metrics_text(srv, buf, cap, &len);
        if (*rc == WSN_OK) {
            napi_value s;
            napi_status st = napi_create_string_utf8(env, buf, len, &s);
            free(buf);
            return nw_check(env, st) ? s : NULL;
        }
        free(buf);
        if (*rc != WSN_ENOSPC)
            return NULL;
        cap = len + 1024;
    }
}
