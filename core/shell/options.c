/* Options: one table describes every option (name, type, default, bounds)
 * so that setters, getters, name lookup and bounds queries stay in step. */
#include "shell/options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct option_spec {
    const char *name;
    wsn_option_type type;
    int64_t def;
    int64_t min;
    int64_t max;
    const char *def_str;
};

#define DAY_MS (24LL * 3600 * 1000)

static const struct option_spec option_specs[WSN_OPTION_COUNT + 1] = {
    [WSN_OPT_HOST] = {"host", WSN_OPTTYPE_STRING, 0, 0, 0, "127.0.0.1"},
    [WSN_OPT_PORT] = {"port", WSN_OPTTYPE_INT, 8080, 0, 65535, NULL},
    [WSN_OPT_PATH] = {"path", WSN_OPTTYPE_STRING, 0, 0, 0, "/ws"},
    [WSN_OPT_STATIC_DIR] = {"static_dir", WSN_OPTTYPE_STRING, 0, 0, 0, ""},
    [WSN_OPT_WRITE_WAIT] = {"write_wait", WSN_OPTTYPE_DURATION_MS, 10000, 1, DAY_MS, NULL},
    [WSN_OPT_PONG_WAIT] = {"pong_wait", WSN_OPTTYPE_DURATION_MS, 60000, 2, DAY_MS, NULL},
    [WSN_OPT_PING_PERIOD] = {"ping_period", WSN_OPTTYPE_DURATION_MS, 54000, 1, DAY_MS, NULL},
    [WSN_OPT_READ_LIMIT] = {"read_limit", WSN_OPTTYPE_INT, 1 << 20, 1, 1LL << 30, NULL},
    [WSN_OPT_COMPRESSION] = {"compression", WSN_OPTTYPE_BOOL, 0, 0, 1, NULL},
    [WSN_OPT_SEND_BUFFER] = {"send_buffer", WSN_OPTTYPE_INT, 256, 1, 1 << 20, NULL},
    [WSN_OPT_DROP_ON_BACKPRESSURE] = {"drop_on_backpressure", WSN_OPTTYPE_BOOL, 0, 0, 1, NULL},
    [WSN_OPT_BACKPRESSURE_REASON] = {"backpressure_reason", WSN_OPTTYPE_STRING, 0, 0, 0,
                                     "going away: backpressure"},
    [WSN_OPT_CLOSE_GRACE] = {"close_grace", WSN_OPTTYPE_DURATION_MS, 200, 0, 60000, NULL},
    [WSN_OPT_ALLOWED_ORIGINS] = {"allowed_origins", WSN_OPTTYPE_STRING, 0, 0, 0, ""},
    [WSN_OPT_EVENTS_ON_IO_THREAD] = {"events_on_io_thread", WSN_OPTTYPE_BOOL, 0, 0, 1, NULL},
    [WSN_OPT_EVENT_QUEUE_LIMIT] = {"event_queue_limit", WSN_OPTTYPE_INT, 4096, 1, 1 << 24, NULL},
    [WSN_OPT_MAX_CHANNEL_NAME] = {"max_channel_name", WSN_OPTTYPE_INT, 256, 1, 65536, NULL},
    [WSN_OPT_MAX_METADATA_BYTES] = {"max_metadata_bytes", WSN_OPTTYPE_INT, 65536, 0, 1LL << 30, NULL},
    [WSN_OPT_MAX_CLIENTS] = {"max_clients", WSN_OPTTYPE_INT, 0, 0, 10000000, NULL},
    [WSN_OPT_MAX_PENDING_BATCHES] = {"max_pending_batches", WSN_OPTTYPE_INT, 10000, 1, 10000000, NULL},
    [WSN_OPT_MAX_BATCH_MESSAGES] = {"max_batch_messages", WSN_OPTTYPE_INT, 10000, 1, 10000000, NULL},
    [WSN_OPT_MAX_BATCH_BYTES] = {"max_batch_bytes", WSN_OPTTYPE_INT, 1 << 20, 64, 1LL << 30, NULL},
    [WSN_OPT_LOG_LEVEL] = {"log_level", WSN_OPTTYPE_INT, WSN_LOG_WARN, WSN_LOG_NONE, WSN_LOG_DEBUG, NULL},
    [WSN_OPT_RAW_INCOMING] = {"raw_incoming", WSN_OPTTYPE_BOOL, 0, 0, 1, NULL},
    [WSN_OPT_COALESCE_WINDOW] = {"coalesce_window", WSN_OPTTYPE_DURATION_MS, 0, 0, 1000, NULL},
    [WSN_OPT_READ_BUFFER] = {"read_buffer", WSN_OPTTYPE_INT, 65536, 128, 65536, NULL},
    [WSN_OPT_LOG_QUEUE] = {"log_queue", WSN_OPTTYPE_INT, 0, 0, 1000000, NULL},
    [WSN_OPT_RX_BUFFER_POOL] = {"rx_buffer_pool", WSN_OPTTYPE_BOOL, 1, 0, 1, NULL},
    [WSN_OPT_MALLOC_TRIM] = {"malloc_trim", WSN_OPTTYPE_BOOL, 1, 0, 1, NULL},
    [WSN_OPT_SEND_BUFFER_BYTES] = {"send_buffer_bytes", WSN_OPTTYPE_INT, 1 << 20, 0, 1LL << 40, NULL},
    [WSN_OPT_MAX_SUBSCRIPTIONS] = {"max_subscriptions", WSN_OPTTYPE_INT, 1024, 0, 10000000, NULL},
    [WSN_OPT_EVENT_QUEUE_BYTES] = {"event_queue_bytes", WSN_OPTTYPE_INT, 16 << 20, 0, 1LL << 40, NULL},
    [WSN_OPT_MAX_PARTIAL_BYTES] = {"max_partial_bytes", WSN_OPTTYPE_INT, 64 << 20, 0, 1LL << 40, NULL},
    [WSN_OPT_CLIENT_EVENT_QUEUE] = {"client_event_queue", WSN_OPTTYPE_INT, 64, 1, 1 << 24, NULL},
    [WSN_OPT_CLIENT_EVENT_QUEUE_BYTES] = {"client_event_queue_bytes", WSN_OPTTYPE_INT, 1 << 20, 0, 1LL << 40, NULL},
    [WSN_OPT_BROKER] = {"broker", WSN_OPTTYPE_STRING, 0, 0, 0, ""},
    [WSN_OPT_BROKER_SHARDED] = {"broker_sharded", WSN_OPTTYPE_BOOL, 0, 0, 1, NULL},
    [WSN_OPT_AUTH_TIMEOUT] = {"auth_timeout", WSN_OPTTYPE_DURATION_MS, 10000, 1, 3600000, NULL},
    [WSN_OPT_AUTH_QUEUE] = {"auth_queue", WSN_OPTTYPE_INT, 1024, 1, 1000000, NULL},
    [WSN_OPT_MAX_CLIENTS_PER_ADDRESS] = {"max_clients_per_address", WSN_OPTTYPE_INT, 0, 0, 1000000, NULL},
    [WSN_OPT_AUTHENTICATE] = {"authenticate", WSN_OPTTYPE_BOOL, 0, 0, 1, NULL},
    [WSN_OPT_METRICS] = {"metrics", WSN_OPTTYPE_BOOL, 0, 0, 1, NULL},
    [WSN_OPT_METRICS_TOKEN] = {"metrics_token", WSN_OPTTYPE_STRING, 0, 0, 0, ""},
    [WSN_OPT_TLS_CERT] = {"tls_cert", WSN_OPTTYPE_STRING, 0, 0, 0, ""},
    [WSN_OPT_EVENT_SOCKET] = {"event_socket", WSN_OPTTYPE_STRING, 0, 0, 0, ""},
    [WSN_OPT_HANDOFF_SOCKET] = {"handoff_socket", WSN_OPTTYPE_STRING, 0, 0, 0, ""},
    [WSN_OPT_TLS_KEY] = {"tls_key", WSN_OPTTYPE_STRING, 0, 0, 0, ""},
    [WSN_OPT_TLS_CA] = {"tls_ca", WSN_OPTTYPE_STRING, 0, 0, 0, ""},
    [WSN_OPT_TLS_CLIENT_CERT] = {"tls_client_cert", WSN_OPTTYPE_INT, 0, 0, 2, NULL},
    /* docs/production.md, "Inbound rate limit", says why these. */
    [WSN_OPT_CLIENT_RATE] = {"client_rate", WSN_OPTTYPE_INT, 100, 0, 1000000, NULL},
    [WSN_OPT_CLIENT_BURST] = {"client_burst", WSN_OPTTYPE_INT, 200, 1, 1000000, NULL},
};

static const struct option_spec *spec_of(wsn_option id)
{
    if ((int)id < 1 || (int)id > WSN_OPTION_COUNT || !option_specs[id].name)
        return NULL;
    return &option_specs[id];
}

WSN_API wsn_options *wsn_options_new(void)
{
    wsn_options *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    for (int id = 1; id <= WSN_OPTION_COUNT; id++) {
        const struct option_spec *s = &option_specs[id];
        if (s->type == WSN_OPTTYPE_STRING) {
            o->strings[id] = strdup(s->def_str);
            if (!o->strings[id]) {
                wsn_options_free(o);
                return NULL;
            }
        } else {
            o->ints[id] = s->def;
        }
    }
    return o;
}

WSN_API void wsn_options_free(wsn_options *o)
{
    if (!o)
        return;
    for (int id = 0; id <= WSN_OPTION_COUNT; id++)
        free(o->strings[id]);
    free(o);
}

wsn_options *wsni_options_clone(const wsn_options *src)
{
    wsn_options *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    *o = *src;
    for (int id = 0; id <= WSN_OPTION_COUNT; id++) {
        o->strings[id] = NULL;
        if (src->strings[id] && !(o->strings[id] = strdup(src->strings[id]))) {
            wsn_options_free(o);
            return NULL;
        }
    }
    return o;
}

WSN_API int wsn_option_by_name(const char *name, wsn_option *id, wsn_option_type *type)
{
    if (!name)
        return WSN_EINVAL;
    for (int i = 1; i <= WSN_OPTION_COUNT; i++) {
        if (option_specs[i].name && !strcmp(option_specs[i].name, name)) {
            if (id)
                *id = (wsn_option)i;
            if (type)
                *type = option_specs[i].type;
            return WSN_OK;
        }
    }
    return WSN_ENOTFOUND;
}

WSN_API const char *wsn_option_name(wsn_option id)
{
    const struct option_spec *s = spec_of(id);
    return s ? s->name : NULL;
}

WSN_API int wsn_option_type_of(wsn_option id, wsn_option_type *type)
{
    const struct option_spec *s = spec_of(id);
    if (!s)
        return WSN_ENOTFOUND;
    if (type)
        *type = s->type;
    return WSN_OK;
}

WSN_API int wsn_option_bounds(wsn_option id, int64_t *min, int64_t *max)
{
    const struct option_spec *s = spec_of(id);
    if (!s)
        return WSN_ENOTFOUND;
    if (s->type == WSN_OPTTYPE_STRING)
        return WSN_ETYPE;
    if (min)
        *min = s->min;
    if (max)
        *max = s->max;
    return WSN_OK;
}

WSN_API int wsn_options_set_int(wsn_options *o, wsn_option id, int64_t value)
{
    const struct option_spec *s = spec_of(id);
    if (!o)
        return WSN_EINVAL;
    if (!s)
        return WSN_ENOTFOUND;
    if (s->type == WSN_OPTTYPE_STRING)
        return WSN_ETYPE;
    if (value < s->min || value > s->max)
        return WSN_ERANGE;
    o->ints[id] = value;
    return WSN_OK;
}

static int valid_path(const char *p) { return p[0] == '/' && !strpbrk(p, "?# \t\r\n"); }

WSN_API int wsn_options_set_string(wsn_options *o, wsn_option id, const char *value)
{
    const struct option_spec *s = spec_of(id);
    if (!o || !value)
        return WSN_EINVAL;
    if (!s)
        return WSN_ENOTFOUND;
    if (s->type != WSN_OPTTYPE_STRING)
        return WSN_ETYPE;
    if (id == WSN_OPT_PATH && !valid_path(value))
        return WSN_EINVAL;
    /* A close reason must fit a control frame: 125 bytes minus the code. */
    if (id == WSN_OPT_BACKPRESSURE_REASON && strlen(value) > 123)
        return WSN_ERANGE;
    /* Compared with what follows "Bearer " in a header: visible ASCII. */
    if (id == WSN_OPT_METRICS_TOKEN)
        for (const char *p = value; *p; p++)
            if (*p <= ' ' || *p > '~')
                return WSN_EINVAL;
    char *copy = strdup(value);
    if (!copy)
        return WSN_ENOMEM;
    free(o->strings[id]);
    o->strings[id] = copy;
    return WSN_OK;
}

WSN_API int wsn_options_get_int(const wsn_options *o, wsn_option id, int64_t *value)
{
    const struct option_spec *s = spec_of(id);
    if (!o || !value)
        return WSN_EINVAL;
    if (!s)
        return WSN_ENOTFOUND;
    if (s->type == WSN_OPTTYPE_STRING)
        return WSN_ETYPE;
    *value = o->ints[id];
    return WSN_OK;
}

WSN_API int wsn_options_get_string(const wsn_options *o, wsn_option id, const char **value)
{
    const struct option_spec *s = spec_of(id);
    if (!o || !value)
        return WSN_EINVAL;
    if (!s)
        return WSN_ENOTFOUND;
    if (s->type != WSN_OPTTYPE_STRING)
        return WSN_ETYPE;
    *value = o->strings[id];
    return WSN_OK;
}

WSN_API int wsn_options_set_logger(wsn_options *o, wsn_log_fn fn, void *user)
{
    if (!o)
        return WSN_EINVAL;
    o->log_fn = fn;
    o->log_user = user;
    return WSN_OK;
}

WSN_API int wsn_options_set_origin_check(wsn_options *o, wsn_origin_fn fn, void *user)
{
    if (!o)
        return WSN_EINVAL;
    o->origin_fn = fn;
    o->origin_user = user;
    return WSN_OK;
}

/* The TLS options come as a set: what is missing is named, so that a
 * typo does not leave a server on plain ws:// (the files themselves are
 * read at start, transport/tls.c). */
static int tls_options_validate(const wsn_options *o, char *err, size_t err_len)
{
    int cert = *o->strings[WSN_OPT_TLS_CERT] != 0, key = *o->strings[WSN_OPT_TLS_KEY] != 0;
    int ca = *o->strings[WSN_OPT_TLS_CA] != 0;
    if (cert != key) {
        snprintf(err, err_len, "%s is set but %s is not: TLS needs both (or neither)",
                 cert ? "tls_cert" : "tls_key", cert ? "tls_key" : "tls_cert");
        return WSN_EINVAL;
    }
    if (!cert && (ca || o->ints[WSN_OPT_TLS_CLIENT_CERT])) {
        snprintf(err, err_len, "%s needs tls_cert and tls_key",
                 ca ? "tls_ca" : "tls_client_cert");
        return WSN_EINVAL;
    }
    /* A CA file with client certificates off would check nothing, which
     * its author did not mean. */
    if (ca && !o->ints[WSN_OPT_TLS_CLIENT_CERT]) {
        snprintf(err, err_len, "tls_ca is set but tls_client_cert is 0: set it to 1 (request a "
                               "client certificate) or 2 (require one)");
        return WSN_EINVAL;
    }
    if (o->ints[WSN_OPT_TLS_CLIENT_CERT] && !ca) {
        snprintf(err, err_len, "tls_client_cert %lld needs tls_ca (the CAs whose client "
                               "certificates are accepted)",
                 (long long)o->ints[WSN_OPT_TLS_CLIENT_CERT]);
        return WSN_EINVAL;
    }
    return WSN_OK;
}

int wsni_options_validate(const wsn_options *o, char *err, size_t err_len)
{
    int rc;
    if (o->ints[WSN_OPT_PING_PERIOD] >= o->ints[WSN_OPT_PONG_WAIT]) {
        snprintf(err, err_len,
                 "ping_period (%lld ms) must be less than pong_wait (%lld ms)",
                 (long long)o->ints[WSN_OPT_PING_PERIOD], (long long)o->ints[WSN_OPT_PONG_WAIT]);
        return WSN_EINVAL;
    }
    /* Unset numeric values cannot exist (setters bound them), but an options
     * object from a newer header could carry an id we do not know: the table
     * bounds every id we read, so nothing else to check here. */
    /* lws's permessage-deflate extension (4.1.6, and upstream's code as of
     * this writing) aborts on a 25-byte frame, inflates a client's message
     * from the shared read buffer after another client's read overwrote it,
     * inflates bombs past read_limit and can spin on its drain list. None of
     * it is reachable from our callback, so the only safe answer is no. */
    if (o->ints[WSN_OPT_COMPRESSION]) {
        snprintf(err, err_len,
                 "compression is refused: libwebsockets' permessage-deflate lets one client "
                 "crash the server (assert in lws_extension_callback_pm_deflate) or read "
                 "another client's data; compress at a proxy instead");
        return WSN_EUNSUPPORTED;
    }
    if ((rc = tls_options_validate(o, err, err_len)))
        return rc;
    if (!valid_path(o->strings[WSN_OPT_PATH])) {
        snprintf(err, err_len, "path must start with '/' and hold no query");
        return WSN_EINVAL;
    }
    return WSN_OK;
}
