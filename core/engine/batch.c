#include "engine/batch.h"

#include "engine/broker.h"
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
    wsni_list_node *n;
    while ((n = b->values.head)) {
        wsni_list_remove(&b->values, n);
        batch_entry *e = wsni_container_of(n, batch_entry, v.node);
        free(e->canonical);
        free(e->v.value);
        free(e);
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

static wsn_frame *batch_encode(outgoing *o, enum wire_format fmt)
{
    batch_out *bo = (batch_out *)o;
    const struct batch *bt = bo->batch;
    wsni_batch_wire wire = {
        .channel = bt->channel,
        .name = bt->name,
        .type = bt->type,
        .count = bt->count,
        .values = &bt->values,
    };
    return wsni_codec_of(fmt)->batch(&wire, bo->time);
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
    outgoing *o = &bo->base;
    int rc = wsni_broker_publish(srv, b->channel, &o, 1, 1);
    wsni_outgoing_free(&bo->base);
    return rc;
}

static void timer_unlink(wsn_server *srv, struct batch_timer *t)
{
    wsni_list_remove(&srv->batch_timers, &t->node);
    free(t->key);
    free(t);
}

/* A timer must never deliver a batch started after a cancel or an early
 * flush of its predecessor: hence the generation. */
struct batch *wsni_batch_take(wsn_server *srv, const char *key, size_t key_len,
                              uint64_t generation)
{
    pthread_mutex_lock(&srv->batch_lock);
    struct batch *b = NULL;
    HASH_FIND(hh, srv->batches, key, key_len, b);
    if (b && (!generation || b->generation == generation))
        HASH_DELETE(hh, srv->batches, b);
    else
        b = NULL;
    pthread_mutex_unlock(&srv->batch_lock);
    return b;
}

size_t wsni_batch_pending(wsn_server *srv)
{
    pthread_mutex_lock(&srv->batch_lock);
    size_t n = HASH_COUNT(srv->batches);
    pthread_mutex_unlock(&srv->batch_lock);
    return n;
}

static struct batch *batch_start(wsn_server *srv, const char *key, size_t key_len,
                                 const char *channel, const char *name, wsn_message_type type)
{
    struct batch *b = calloc(1, sizeof(*b));
    if (!b || !(b->key = malloc(key_len)) || !(b->channel = strdup(channel)) ||
        !(b->name = strdup(name))) {
        wsni_batch_free(b);
        return NULL;
    }
    memcpy(b->key, key, key_len);
    b->key_len = key_len;
    b->type = type;
    b->generation = ++srv->batch_generation;
    HASH_ADD_KEYPTR(hh, srv->batches, b->key, b->key_len, b);
    return b;
}

int wsni_batch_add(wsn_server *srv, const char *key, size_t key_len, const char *channel,
                   const char *name, wsn_message_type type, batch_entry *e, int may_take_full,
                   wsni_batch_added *added)
{
    int rc = WSN_OK;
    added->started = 0;
    added->full = NULL;
    pthread_mutex_lock(&srv->batch_lock);
    struct batch *b = NULL;
    HASH_FIND(hh, srv->batches, key, key_len, b);
    if (!b) {
        if (HASH_COUNT(srv->batches) >= srv->max_pending_batches)
            rc = WSN_ELIMIT;
        else if (!(b = batch_start(srv, key, key_len, channel, name, type)))
            rc = WSN_ENOMEM;
        else
            added->started = b->generation;
    } else if (b->type != type) {
        /* The first call fixed the type: a message of another type would
         * not fit the delivered shape. */
        rc = WSN_ETYPE;
    }
    if (rc) {
        pthread_mutex_unlock(&srv->batch_lock);
        return rc;
    }
    batch_entry *dup = NULL;
    HASH_FIND_STR(b->seen, e->canonical, dup);
    if (dup) {
        pthread_mutex_unlock(&srv->batch_lock);
        free(e->v.value);
        free(e->canonical);
        free(e);
        return WSN_OK;
    }
    HASH_ADD_KEYPTR(hh, b->seen, e->canonical, strlen(e->canonical), e);
    wsni_list_append(&b->values, &e->v.node);
    b->count++;
    b->bytes += e->v.value_len;
    if (may_take_full &&
        (b->count >= srv->max_batch_messages || b->bytes >= srv->max_batch_bytes)) {
        HASH_DELETE(hh, srv->batches, b);
        added->full = b;
    }
    pthread_mutex_unlock(&srv->batch_lock);
    return WSN_OK;
}

static void ttl_expired(wsni_timer *tm)
{
    struct batch_timer *t = wsni_container_of(tm, struct batch_timer, timer);
    wsn_server *srv = t->srv;
    struct batch *b = wsni_batch_take(srv, t->key, t->key_len, t->generation);
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
        return wsni_batch_deliver(srv, wsni_batch_take(srv, key, key_len, generation));
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
