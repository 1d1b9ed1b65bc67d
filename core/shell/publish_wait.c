/* The caller side of batched publishing (wsn_server_publish_wait and
 * friends): validation, the wire value and de-duplication key of a
 * message, and the commands that arm a batch's ttl or flush it. The table
 * of pending batches, the batch, its encoding and delivery are
 * engine/batch.c. */
#include "engine/batch.h"
#include "engine/codec_json.h"
#include "shell/commands.h"
#include "shell/metrics.h"
#include "util/text.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static char *make_key(const char *channel, uint64_t ident, size_t *len)
{
    size_t cl = strlen(channel);
    char *key = malloc(cl + 1 + sizeof(ident));
    if (!key)
        return NULL;
    memcpy(key, channel, cl + 1);
    memcpy(key + cl + 1, &ident, sizeof(ident));
    *len = cl + 1 + sizeof(ident);
    return key;
}

/* Caller thread: the wire value and the de-duplication key of a message. */
static int prepare_value(wsn_message_type type, const void *data, size_t len, char **value,
                         size_t *value_len, char **canonical)
{
    strbuf sb;
    wsni_strbuf_init(&sb);
    *canonical = NULL;
    if (type == WSN_TYPE_TEXT) {
        if (!data || !wsni_utf8_valid(data, len))
            return WSN_EINVAL;
        wsni_strbuf_append(&sb, data, len);
        if (!len)
            wsni_strbuf_reserve(&sb, 0);
    } else {
        int rc = wsni_json_message_value(type, data, len, &sb);
        if (rc) {
            wsni_strbuf_free(&sb);
            return rc;
        }
    }
    *value = wsni_strbuf_take(&sb, value_len);
    if (!*value)
        return WSN_ENOMEM;
    if (type == WSN_TYPE_JSON)
        *canonical = wsni_json_canonical(*value, *value_len);
    else
        *canonical = strndup(*value, *value_len);
    if (!*canonical) {
        free(*value);
        return WSN_ENOMEM;
    }
    return WSN_OK;
}

static int check_channel(wsn_server *srv, const char *channel)
{
    if (!channel || !*channel || !wsni_utf8_valid_str(channel))
        return WSN_EINVAL;
    if (strlen(channel) > srv->max_channel_name)
        return WSN_ELIMIT;
    return WSN_OK;
}

static int add_to_batch(wsn_server *srv, const char *channel, wsn_message_type type,
                        const void *data, size_t len, uint64_t ident, const char *name,
                        int64_t ttl_ms, int flags)
{
    if (!srv || !name || !wsni_utf8_valid_str(name) || ttl_ms < 0 || (int)type < 0 || (int)type > 2 ||
        (flags & ~WSN_PUBLISH_NONBLOCK))
        return WSN_EINVAL;
    int rc = check_channel(srv, channel);
    if (rc)
        return rc;
    /* Refused before the message joins a batch: a batch holds other
     * callers' messages too, so once added it cannot be handed back. */
    if ((rc = wsni_command_publish_admission(srv, flags)))
        return rc;
    batch_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return WSN_ENOMEM;
    if ((rc = prepare_value(type, data, len, &e->v.value, &e->v.value_len, &e->canonical))) {
        free(e);
        return rc;
    }
    size_t key_len;
    char *key = make_key(channel, ident, &key_len);
    if (!key) {
        free(e->v.value);
        free(e->canonical);
        free(e);
        return WSN_ENOMEM;
    }

    /* Both commands exist before the message joins the table: once in, a
     * batch that cannot be armed or flushed would wait forever or be lost
     * with other callers' messages in it. */
    command *arm = wsni_command_new(CMD_BATCH_ARM);
    command *flush = wsni_command_new(CMD_BATCH_FLUSH);
    wsni_batch_added added;
    if (!arm || !flush)
        rc = WSN_ENOMEM;
    else
        rc = wsni_batch_add(srv, key, key_len, channel, name, type, e, 1, &added);
    if (rc) {
        free(key);
        free(e->v.value);
        free(e->canonical);
        free(e);
        wsni_command_free(arm);
        wsni_command_free(flush);
        return rc;
    }
    flush->batch = added.full;
    if (added.started) {
        arm->batch_key = key;
        arm->batch_key_len = key_len;
        arm->batch_generation = added.started;
        arm->arg = ttl_ms;
        /* A batch flushed at once still gets its (now harmless) timer; the
         * timer finds another generation and stops. */
        if ((rc = wsni_command_submit(srv, arm, 0))) {
            wsni_command_free(flush);
            return rc;
        }
    } else {
        free(key);
        wsni_command_free(arm);
    }
    if (!added.full) {
        wsni_command_free(flush);
        return WSN_OK;
    }
    /* Non-blocking: room was there a moment ago; a flush that finds none
     * now is queued all the same (batches are bounded by the batch
     * limits), rather than losing the batch or waiting. */
    return wsni_command_submit(srv, flush, (flags & WSN_PUBLISH_NONBLOCK) ? SUBMIT_NO_ROOM_CHECK : 0);
}

static int publish_wait(wsn_server *srv, const char *channel, wsn_message_type type,
                        const void *data, size_t len, uint64_t ident, const char *name,
                        int64_t ttl_ms, int flags)
{
    return wsni_publish_result(srv,
                               add_to_batch(srv, channel, type, data, len, ident, name, ttl_ms, flags));
}

WSN_API int wsn_server_publish_wait(wsn_server *srv, const char *channel, const char *json,
                                    uint64_t ident, const char *name, int64_t ttl_ms)
{
    if (!json)
        return WSN_EINVAL;
    return publish_wait(srv, channel, WSN_TYPE_JSON, json, strlen(json), ident, name, ttl_ms, 0);
}

WSN_API int wsn_server_publish_wait_with_type(wsn_server *srv, const char *channel,
                                              wsn_message_type type, const void *data,
                                              size_t len, uint64_t ident, const char *name,
                                              int64_t ttl_ms)
{
    return publish_wait(srv, channel, type, data, len, ident, name, ttl_ms, 0);
}

WSN_API int wsn_server_publish_wait_ex(wsn_server *srv, const char *channel,
                                       wsn_message_type type, const void *data, size_t len,
                                       uint64_t ident, const char *name, int64_t ttl_ms,
                                       int flags)
{
    return publish_wait(srv, channel, type, data, len, ident, name, ttl_ms, flags);
}

WSN_API int wsn_server_publish_wait_string(wsn_server *srv, const char *channel, const char *text,
                                           uint64_t ident, const char *name, int64_t ttl_ms)
{
    if (!text)
        return WSN_EINVAL;
    return publish_wait(srv, channel, WSN_TYPE_TEXT, text, strlen(text), ident, name, ttl_ms, 0);
}

WSN_API int wsn_server_cancel_pending_messages(wsn_server *srv, const char *channel,
                                               uint64_t ident)
{
    if (!srv)
        return WSN_EINVAL;
    int rc = check_channel(srv, channel);
    if (rc)
        return rc;
    size_t key_len;
    char *key = make_key(channel, ident, &key_len);
    if (!key)
        return WSN_ENOMEM;
    struct batch *b = wsni_batch_take(srv, key, key_len, 0);
    free(key);
    wsni_batch_free(b);
    return WSN_OK;
}

WSN_API int wsn_server_pending_batches(wsn_server *srv)
{
    if (!srv)
        return WSN_EINVAL;
    size_t n = wsni_batch_pending(srv);
    return n > INT_MAX ? INT_MAX : (int)n;
}

/* --- the I/O thread's side -------------------------------------------- */
