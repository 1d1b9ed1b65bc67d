#include "engine/batch.h"

#include "engine/codec_json.h"
#include "engine/codec_msgpack.h"
#include "util/base64.h"
#include "util/text.h"

#include <stdlib.h>
#include <string.h>

struct batch_timer {
    wsni_timer timer;
    wsn_server *srv;
    char *key;
    size_t key_len;
    uint64_t generation;
    wsni_list_node node; /* in srv->batch_timers */
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
    wsni_list_remove(&srv->batch_timers, &t->node);
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
    wsni_list_append(&srv->batch_timers, &t->node);
    wsni_timer_arm(srv, &t->timer, ttl_expired, ttl_ms * 1000);
    return WSN_OK;
}

void wsni_batch_timers_clear(wsn_server *srv)
{
    struct batch_timer *t;
    while ((t = wsni_list_first(&srv->batch_timers, struct batch_timer, node))) {
        wsni_timer_cancel(srv, &t->timer);
        timer_unlink(srv, t);
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
