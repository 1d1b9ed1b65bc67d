/* The caller side of batched publishing (wsn_server_publish_wait and
 * friends): validation, adding to the pending batch under
 * srv->batch_lock, and the commands that arm a batch's ttl or flush it.
 * The batch itself, its encoding and delivery are engine/batch.c. */
#include "engine/batch.h"
#include "engine/codec_json.h"
#include "shell/commands.h"
#include "util/text.h"

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

static int publish_wait(wsn_server *srv, const char *channel, wsn_message_type type,
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

    command *arm = NULL, *flush = NULL;
    pthread_mutex_lock(&srv->batch_lock);
    struct batch *b = NULL;
    HASH_FIND(hh, srv->batches, key, key_len, b);
    if (!b) {
        if (HASH_COUNT(srv->batches) >= srv->max_pending_batches) {
            rc = WSN_ELIMIT;
            goto out_locked;
        }
        b = calloc(1, sizeof(*b));
        arm = wsni_command_new(CMD_BATCH_ARM);
        if (!b || !arm || !(b->channel = strdup(channel)) || !(b->name = strdup(name)) ||
            !(arm->batch_key = malloc(key_len))) {
            rc = WSN_ENOMEM;
            wsni_batch_free(b);
            goto out_locked;
        }
        b->key = key;
        b->key_len = key_len;
        key = NULL;
        b->type = type;
        b->generation = ++srv->batch_generation;
        memcpy(arm->batch_key, b->key, key_len);
        arm->batch_key_len = key_len;
        arm->batch_generation = b->generation;
        arm->arg = ttl_ms;
        HASH_ADD_KEYPTR(hh, srv->batches, b->key, b->key_len, b);
    } else if (b->type != type) {
        /* The first call fixed the type: a message of another type would
         * not fit the delivered shape. */
        rc = WSN_ETYPE;
        goto out_locked;
    }
    batch_entry *dup = NULL;
    HASH_FIND_STR(b->seen, e->canonical, dup);
    if (!dup) {
        HASH_ADD_KEYPTR(hh, b->seen, e->canonical, strlen(e->canonical), e);
        wsni_list_append(&b->values, &e->v.node);
        b->count++;
        b->bytes += e->v.value_len;
        e = NULL;
        if (b->count >= srv->max_batch_messages || b->bytes >= srv->max_batch_bytes) {
            flush = wsni_command_new(CMD_BATCH_FLUSH);
            if (flush) {
                HASH_DELETE(hh, srv->batches, b);
                flush->batch = b;
            }
        }
    }
out_locked:
    pthread_mutex_unlock(&srv->batch_lock);
    free(key);
    if (e) {
        free(e->v.value);
        free(e->canonical);
        free(e);
    }
    if (rc) {
        wsni_command_free(arm);
        return rc;
    }
    /* A batch flushed at once still gets its (now harmless) timer command
     * only if it was new; the timer finds another generation and stops. */
    if (arm && (rc = wsni_command_submit(srv, arm, 0)))
        return rc;
    /* Non-blocking: room was there a moment ago; a flush that finds none
     * now is queued all the same (batches are bounded by the batch
     * limits), rather than losing the batch or waiting. */
    if (flush)
        return wsni_command_submit(srv, flush,
                              (flags & WSN_PUBLISH_NONBLOCK) ? SUBMIT_NO_ROOM_CHECK : 0);
    return WSN_OK;
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
    pthread_mutex_lock(&srv->batch_lock);
    struct batch *b = NULL;
    HASH_FIND(hh, srv->batches, key, key_len, b);
    if (b)
        HASH_DELETE(hh, srv->batches, b);
    pthread_mutex_unlock(&srv->batch_lock);
    free(key);
    wsni_batch_free(b);
    return WSN_OK;
}

WSN_API int wsn_server_pending_batches(wsn_server *srv)
{
    if (!srv)
        return WSN_EINVAL;
    pthread_mutex_lock(&srv->batch_lock);
    unsigned n = HASH_COUNT(srv->batches);
    pthread_mutex_unlock(&srv->batch_lock);
    return (int)n;
}

/* --- the I/O thread's side -------------------------------------------- */
