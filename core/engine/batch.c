#include "engine/batch.h"

#include "engine/codec_json.h"
#include "engine/codec_msgpack.h"
#include "shell/commands.h"
#include "util/base64.h"
#include "util/text.h"

#include <stdlib.h>
#include <string.h>

typedef struct batch_entry {
    char *canonical; /* the de-duplication key; also the hash key */
    char *value;     /* what goes on the wire: JSON value or raw text */
    size_t value_len;
    struct batch_entry *next; /* arrival order */
    UT_hash_handle hh;
} batch_entry;

struct batch {
    char *key; /* channel NUL ident(8 bytes) */
    size_t key_len;
    char *channel;
    char *name;
    wsn_message_type type;
    uint64_t generation;
    batch_entry *seen; /* hash of entries by canonical text */
    batch_entry *first, *last;
    size_t count, bytes;
    UT_hash_handle hh;
};

struct batch_timer {
    wsni_timer timer;
    wsn_server *srv;
    char *key;
    size_t key_len;
    uint64_t generation;
    struct batch_timer *prev, *next;
};

void wsni_batch_free(struct batch *b)
{
    if (!b)
        return;
    HASH_CLEAR(hh, b->seen); /* the table first: its head is an entry */
    batch_entry *e = b->first;
    while (e) {
        batch_entry *next = e->next;
        free(e->canonical);
        free(e->value);
        free(e);
        e = next;
    }
    free(b->key);
    free(b->channel);
    free(b->name);
    free(b);
}

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
    if ((rc = prepare_value(type, data, len, &e->value, &e->value_len, &e->canonical))) {
        free(e);
        return rc;
    }
    size_t key_len;
    char *key = make_key(channel, ident, &key_len);
    if (!key) {
        free(e->value);
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
        if (b->last)
            b->last->next = e;
        else
            b->first = e;
        b->last = e;
        b->count++;
        b->bytes += e->value_len;
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
        free(e->value);
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

typedef struct batch_out {
    outgoing base;
    struct batch *batch; /* owned */
    char time[40];
} batch_out;

/* name "\n\n" messages joined by "\n": the text batch's payload. */
static void joined_text(const struct batch *b, strbuf *text)
{
    wsni_strbuf_append_str(text, b->name);
    wsni_strbuf_append(text, "\n\n", 2);
    for (const batch_entry *e = b->first; e; e = e->next) {
        if (e != b->first)
            wsni_strbuf_append_char(text, '\n');
        wsni_strbuf_append(text, e->value, e->value_len);
    }
}

static wsn_frame *encode_batch_msgpack(const struct batch *b, const char *time)
{
    strbuf sb;
    msgpack_packer pk;
    wsni_strbuf_init(&sb);
    wsni_msgpack_packer_to_strbuf(&pk, &sb);
    msgpack_pack_map(&pk, 4);
    wsni_msgpack_pack_cstr(&pk, "channel", 7);
    wsni_msgpack_pack_cstr(&pk, b->channel, strlen(b->channel));
    wsni_msgpack_pack_cstr(&pk, "type", 4);
    const char *type = b->type == WSN_TYPE_TEXT ? "text" : "json";
    wsni_msgpack_pack_cstr(&pk, type, strlen(type));
    wsni_msgpack_pack_cstr(&pk, "time", 4);
    wsni_msgpack_pack_cstr(&pk, time, strlen(time));
    wsni_msgpack_pack_cstr(&pk, "message", 7);
    if (b->type == WSN_TYPE_TEXT) {
        strbuf text;
        wsni_strbuf_init(&text);
        joined_text(b, &text);
        wsni_msgpack_pack_cstr(&pk, text.data ? text.data : "", text.len);
        if (text.failed)
            sb.failed = 1;
        wsni_strbuf_free(&text);
    } else {
        msgpack_pack_map(&pk, 2);
        wsni_msgpack_pack_cstr(&pk, "messages", 8);
        msgpack_pack_array(&pk, b->count);
        for (const batch_entry *e = b->first; e; e = e->next) {
            if (b->type == WSN_TYPE_JSON) {
                if (wsni_msgpack_pack_json_text(&pk, e->value, e->value_len))
                    sb.failed = 1;
                continue;
            }
            /* Binary entries hold "base64" for JSON; MessagePack gets bin. */
            size_t b64len = e->value_len - 2;
            char *raw = malloc(b64len + 1);
            int n = raw && b64len < INT32_MAX
                        ? (int)wsni_base64_decode(e->value + 1, b64len, raw)
                        : -1;
            if (n < 0) {
                sb.failed = 1;
                n = 0;
            }
            msgpack_pack_bin(&pk, (size_t)n);
            msgpack_pack_bin_body(&pk, raw, (size_t)n);
            free(raw);
        }
        wsni_msgpack_pack_cstr(&pk, "name", 4);
        wsni_msgpack_pack_cstr(&pk, b->name, strlen(b->name));
    }
    wsn_frame *f = sb.failed ? NULL : wsni_frame_from(sb.data, sb.len, 1);
    wsni_strbuf_free(&sb);
    return f;
}

static wsn_frame *encode_batch_json(const struct batch *b, const char *time)
{
    strbuf msg, env;
    wsni_strbuf_init(&msg);
    wsni_strbuf_init(&env);
    wsn_message_type wire_type = WSN_TYPE_JSON;
    if (b->type == WSN_TYPE_TEXT) {
        strbuf text;
        wsni_strbuf_init(&text);
        joined_text(b, &text);
        wsni_json_append_string(&msg, text.data ? text.data : "", text.len);
        if (text.failed)
            msg.failed = 1;
        wsni_strbuf_free(&text);
        wire_type = WSN_TYPE_TEXT;
    } else {
        wsni_strbuf_append_str(&msg, "{\"messages\":[");
        for (const batch_entry *e = b->first; e; e = e->next) {
            if (e != b->first)
                wsni_strbuf_append_char(&msg, ',');
            wsni_strbuf_append(&msg, e->value, e->value_len);
        }
        wsni_strbuf_append_str(&msg, "],\"name\":");
        wsni_json_append_string(&msg, b->name, strlen(b->name));
        wsni_strbuf_append_char(&msg, '}');
    }
    wsni_json_envelope(&env, b->channel, wire_type, time, msg.data ? msg.data : "null", msg.len, NULL,
                  NULL);
    wsn_frame *f = NULL;
    if (!msg.failed && !env.failed)
        f = wsni_frame_from(env.data, env.len, 0);
    wsni_strbuf_free(&msg);
    wsni_strbuf_free(&env);
    return f;
}

static wsn_frame *batch_encode(outgoing *o, enum wire_format fmt)
{
    batch_out *bo = (batch_out *)o;
    return fmt == FORMAT_MSGPACK ? encode_batch_msgpack(bo->batch, bo->time)
                                 : encode_batch_json(bo->batch, bo->time);
}

static void batch_out_destroy(outgoing *o)
{
    batch_out *bo = (batch_out *)o;
    wsni_batch_free(bo->batch);
    free(bo);
}

int wsni_batch_deliver(wsn_server *srv, struct batch *b)
{
    if (!b)
        return WSN_OK;
    batch_out *bo = calloc(1, sizeof(*bo));
    if (!bo) {
        wsni_log(srv, WSN_LOG_ERROR, "batch for channel %s lost: out of memory", b->channel);
        wsni_batch_free(b);
        return WSN_ENOMEM;
    }
    bo->base.encode = batch_encode;
    bo->base.destroy = batch_out_destroy;
    bo->batch = b;
    wsni_time_rfc3339nano(bo->time);
    int rc = wsni_deliver_to_channel(srv, b->channel, &bo->base, 1);
    wsni_outgoing_free(&bo->base);
    return rc;
}

static void timer_unlink(wsn_server *srv, struct batch_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        srv->batch_timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t->key);
    free(t);
}

/* Takes the batch of key out of the table if it is still the same batch
 * (generation): a timer must never deliver a batch started after a cancel
 * or an early flush of its predecessor. */
static struct batch *take_batch(wsn_server *srv, const char *key, size_t key_len,
                                uint64_t generation)
{
    pthread_mutex_lock(&srv->batch_lock);
    struct batch *b = NULL;
    HASH_FIND(hh, srv->batches, key, key_len, b);
    if (b && b->generation == generation)
        HASH_DELETE(hh, srv->batches, b);
    else
        b = NULL;
    pthread_mutex_unlock(&srv->batch_lock);
    return b;
}

static void ttl_expired(wsni_timer *tm)
{
    struct batch_timer *t = wsni_container_of(tm, struct batch_timer, timer);
    wsn_server *srv = t->srv;
    struct batch *b = take_batch(srv, t->key, t->key_len, t->generation);
    timer_unlink(srv, t);
    wsni_batch_deliver(srv, b);
}

int wsni_batch_arm(wsn_server *srv, const char *key, size_t key_len, uint64_t generation,
              int64_t ttl_ms)
{
    struct batch_timer *t = calloc(1, sizeof(*t));
    if (!t || !(t->key = malloc(key_len))) {
        free(t);
        /* Without a timer the batch would wait forever: deliver it now. */
        return wsni_batch_deliver(srv, take_batch(srv, key, key_len, generation));
    }
    memcpy(t->key, key, key_len);
    t->key_len = key_len;
    t->generation = generation;
    t->srv = srv;
    t->next = srv->batch_timers;
    if (t->next)
        t->next->prev = t;
    srv->batch_timers = t;
    wsni_timer_arm(srv, &t->timer, ttl_expired, ttl_ms * 1000);
    return WSN_OK;
}

void wsni_batch_timers_clear(wsn_server *srv)
{
    while (srv->batch_timers) {
        wsni_timer_cancel(srv, &srv->batch_timers->timer);
        timer_unlink(srv, srv->batch_timers);
    }
}

void wsni_batch_flush_all(wsn_server *srv)
{
    pthread_mutex_lock(&srv->batch_lock);
    struct batch *all = srv->batches;
    srv->batches = NULL;
    pthread_mutex_unlock(&srv->batch_lock);
    wsni_batch_timers_clear(srv);
    struct batch *b, *tmp;
    HASH_ITER(hh, all, b, tmp)
    {
        HASH_DELETE(hh, all, b);
        wsni_batch_deliver(srv, b);
    }
}

void wsni_batch_table_clear(wsn_server *srv)
{
    pthread_mutex_lock(&srv->batch_lock);
    struct batch *b, *tmp;
    HASH_ITER(hh, srv->batches, b, tmp)
    {
        HASH_DELETE(hh, srv->batches, b);
        wsni_batch_free(b);
    }
    pthread_mutex_unlock(&srv->batch_lock);
}
