#include "broker/redis.h"

#include "broker/envelope.h"
#include "broker/seq.h"
#include "broker/slotmap.h"
#include "broker/url.h"
#include "engine/broker.h"
#include "util/hash.h"
#include "util/thread.h"

#include <hiredis/hiredis.h>

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Publishes waiting for the broker thread, at most (count and bytes):
 * beyond, a publish is refused (counted) rather than grow memory while
 * Redis is slow. */
#define OUT_QUEUE_MAX 65536
#define OUT_QUEUE_BYTES ((size_t)64 << 20)
/* What a hiredis output buffer may hold before the thread stops taking
 * from the queue (Redis is not keeping up; the queue's bound then acts). */
#define PIPE_BYTES ((size_t)4 << 20)
/* Messages from other servers waiting for the I/O thread, at most. */
#define IN_QUEUE_MAX 65536
/* Channels per SUBSCRIBE / UNSUBSCRIBE command. */
#define SUBSCRIBE_CHUNK 512
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MS 3000
/* Both connections are pinged this often while up; a ping unanswered for
 * REPLY_TIMEOUT_MS ends them (a peer that vanished sends no RST). */
#define PING_EVERY_MS 1000
#define REPLY_TIMEOUT_MS 5000
/* Redis Cluster: the masters a broker talks to, at most; how long the
 * slot map may take to come (the thread waits for it); how often a
 * publish is sent again after -MOVED / -ASK / -TRYAGAIN before it is
 * refused (counted). */
#define MAX_SHARDS SLOT_MAP_MASTERS
#define DISCOVER_TIMEOUT_MS 1000
#define MAX_TRIES 5
/* Loss accounting: origins not heard from on a stream for this long are
 * forgotten (servers that left), checked this often. */
#define ORIGIN_IDLE_MS (10 * 60 * 1000)
#define SWEEP_EVERY_MS 10000

enum { NO_SHARD = SLOT_MAP_NONE };

typedef struct chan_entry {
    UT_hash_handle hh;
    wsni_list_node dirty_node;
    int in_dirty;
    int wanted;     /* the I/O thread has members for it */
    int subscribed; /* a subscribed connection has asked for it */
    int fresh;      /* wanted anew: loss is counted from its subscription */
    int shard;      /* where it is subscribed (sharded: its slot's master) */
    unsigned slot;
    char name[];
} chan_entry;

typedef struct out_item {
    wsni_list_node node;
    unsigned msgs;  /* publishes in it (a run has several) */
    unsigned tries; /* sent again after a redirection */
    unsigned slot;
    char *chan; /* the Redis channel */
    unsigned char *data;
    size_t len;
} out_item;

enum { IN_STATE = 0 }; /* an in_item's kind besides ENVELOPE_CHANNEL / _CLIENT */

typedef struct in_item {
    wsni_list_node node;
    int kind;
    int state;  /* IN_STATE */
    char *name; /* channel, client id, or the state's reason; owned */
    size_t count;
    outgoing *outs[];
} in_item;

/* Replies a connection still owes, in order: NULL for a command whose
 * reply only matters if it is an error (AUTH, PING, ASKING), else the
 * publish it answers (owned here until then, so that a redirection can
 * send it again). */
typedef struct reply_ring {
    out_item **v;
    size_t head, len, cap;
} reply_ring;

typedef struct conn {
    redisContext *ctx;
    int connecting;
    reply_ring due;
    int64_t ping_sent; /* ms; 0 = no ping outstanding */
} conn;

/* One master (or the one Redis of the URL): a connection that publishes,
 * pipelined, and one subscribed to the channels of its slots. */
typedef struct shard {
    char host[256]; /* "" = the URL's address (unix socket or host) */
    int port;
    conn pub, sub;
    size_t confirm_due; /* subscribe confirmations before up */
} shard;

typedef struct redis_broker {
    wsn_server *srv; /* not a reference: the shell frees us first */
    wsni_redis_hooks hooks;
    wsni_broker_addr addr;
    int sharded;
    uint64_t origin;
    char chan_prefix[32]; /* "wsn:<db>:c:" */
    char inbox[64];       /* "wsn:<db>:i:<id>" */
    size_t chan_prefix_len;
    wsni_seq_out *seq_out;  /* io */
    int64_t full_logged_at; /* io */
    int efd;                /* const: wakes the broker thread */
    pthread_t tid;
    int started;

    pthread_mutex_t lock;
    int stop;          /* lock */
    atomic_int state;  /* written under lock; read anywhere */
    char reason[128];  /* lock */
    wsni_list outq;    /* lock: of out_item */
    size_t out_len, out_bytes;
    chan_entry *chans; /* lock */
    wsni_list dirty;   /* lock: of chan_entry whose wanted changed */
    wsni_list inq;     /* lock: of in_item, for the I/O thread */
    size_t in_len;
    atomic_uint_least64_t sent, refused, unconfirmed, received, ignored, dropped, reconnects, lost;

    /* broker thread only */
    int active;  /* a session runs (connecting or up) */
    int cluster; /* the URL's Redis is a cluster node (sharded only) */
    shard shards[MAX_SHARDS];
    int nshards;
    unsigned char owner[CLUSTER_SLOTS]; /* slot -> shard (cluster) */
    int refresh_due;                    /* the slot map changed: read it again */
    wsni_list retry;                    /* of out_item redirected, sent after the refresh */
    wsni_seq_in *seq_in;
    int64_t next_sweep;
    int ever_up;
    int backoff_ms;
    int64_t retry_at, connect_deadline, next_ping;
    uint64_t rng;
    int64_t ignored_logged_at, late_logged_at;
    uint64_t ignored_unlogged, late_unlogged;
    char why[160];
} redis_broker;

static redis_broker *rb_of(wsn_server *srv) { return srv->broker_impl; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *state_name(int state)
{
    switch (state) {
    case WSN_BROKER_UP:
        return "up";
    case WSN_BROKER_DOWN:
        return "down";
    case WSN_BROKER_CONNECTING:
        return "connecting";
    default:
        return "none";
    }
}

static void poke(int fd)
{
    uint64_t one = 1;
    /* EAGAIN: the counter is already nonzero, so the thread wakes anyway. */
    if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return;
}

/* The master of a slot: always the one Redis unless it is a cluster. */
static int shard_of(const redis_broker *rb, unsigned slot)
{
    return rb->cluster ? rb->owner[slot] : 0;
}

static unsigned slot_of(const char *name) { return wsni_key_slot(name, strlen(name)); }

/* --- queues ------------------------------------------------------------- */

static void out_free(out_item *it)
{
    free(it->chan);
    free(it->data);
    free(it);
}

static void in_free(in_item *it)
{
    for (size_t i = 0; i < it->count; i++)
        wsni_outgoing_free(it->outs[i]);
    free(it->name);
    free(it);
}

/* Lock held. Appends for the I/O thread and wakes it when the queue was
 * empty (it takes all at once). */
static void in_push_locked(redis_broker *rb, in_item *it)
{
    int was_empty = rb->inq.head == NULL;
    wsni_list_append(&rb->inq, &it->node);
    rb->in_len++;
    if (was_empty)
        rb->hooks.wake(rb->srv);
}

/* Lock held. The state and its reason; an event for the host when the
 * state itself changed, and a log line. */
static void set_state_locked(redis_broker *rb, int state, const char *reason)
{
    int old = atomic_load(&rb->state);
    snprintf(rb->reason, sizeof(rb->reason), "%s", reason);
    if (old == state)
        return;
    atomic_store(&rb->state, state);
    in_item *it = calloc(1, sizeof(*it));
    if (it && (it->name = strdup(reason))) {
        it->kind = IN_STATE;
        it->state = state;
        in_push_locked(rb, it);
    } else
        free(it);
}

/* --- reply bookkeeping ------------------------------------------------- */

static int ring_push(reply_ring *r, out_item *v)
{
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        out_item **nv = malloc(cap * sizeof(*nv));
        if (!nv)
            return -1;
        for (size_t i = 0; i < r->len; i++)
            nv[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        r->v = nv;
        r->head = 0;
        r->cap = cap;
    }
    r->v[(r->head + r->len++) % r->cap] = v;
    return 0;
}

static int ring_pop(reply_ring *r, out_item **v)
{
    if (!r->len)
        return -1;
    *v = r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    r->len--;
    return 0;
}

/* Publishes still owed a reply. */
static size_t ring_msgs(const reply_ring *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len; i++) {
        const out_item *it = r->v[(r->head + i) % r->cap];
        n += it ? it->msgs : 0;
    }
    return n;
}

/* --- connections ------------------------------------------------------- */

static void conn_close(conn *c)
{
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
    c->connecting = 0;
    c->ping_sent = 0;
    out_item *it;
    while (!ring_pop(&c->due, &it))
        if (it)
            out_free(it);
    free(c->due.v);
    c->due = (reply_ring){0};
}

static void shards_close(redis_broker *rb)
{
    for (int i = 0; i < rb->nshards; i++) {
        conn_close(&rb->shards[i].pub);
        conn_close(&rb->shards[i].sub);
        rb->shards[i].confirm_due = 0;
    }
}

/* "host:port" of a shard for the log and the reason. */
static void shard_name(const redis_broker *rb, const shard *s, char *out, size_t cap)
{
    if (s->host[0])
        snprintf(out, cap, "%.60s:%d", s->host, s->port);
    else if (rb->addr.path[0])
        snprintf(out, cap, "unix:%.60s", rb->addr.path);
    else
        snprintf(out, cap, "%.60s:%d", rb->addr.host, rb->addr.port);
}

/* Every connection ends; what was in flight is counted, the state goes to
 * down (or stays connecting before the first up), a retry is scheduled
 * with backoff and jitter. where: the master that failed, or NULL. */
static void session_fail_at(redis_broker *rb, const shard *where, const char *what)
{
    size_t unacked = 0;
    for (int i = 0; i < rb->nshards; i++)
        unacked += ring_msgs(&rb->shards[i].pub.due);
    static const shard url_shard;
    char place[96];
    /* Without a master to blame, the URL's address. */
    shard_name(rb, where ? where : &url_shard, place, sizeof(place));
    shards_close(rb);
    rb->active = 0;
    size_t refused = 0;
    out_item *it;
    while ((it = wsni_list_first(&rb->retry, out_item, node))) {
        wsni_list_remove(&rb->retry, &it->node);
        refused += it->msgs;
        out_free(it);
    }
    rb->refresh_due = 0;

    char reason[sizeof(((redis_broker *)0)->reason)];
    snprintf(reason, sizeof(reason), "redis %.50s: %.60s", place, what);
    pthread_mutex_lock(&rb->lock);
    while ((it = wsni_list_first(&rb->outq, out_item, node))) {
        wsni_list_remove(&rb->outq, &it->node);
        refused += it->msgs;
        out_free(it);
    }
    rb->out_len = rb->out_bytes = 0;
    /* Every channel must be asked for again on the next connection. */
    chan_entry *e, *tmp;
    HASH_ITER(hh, rb->chans, e, tmp)
    {
        e->subscribed = 0;
        e->shard = NO_SHARD;
    }
    int was = atomic_load(&rb->state);
    /* A reason that repeats (Redis still refusing) is logged once. */
    int news = strcmp(rb->reason, reason) != 0;
    set_state_locked(rb, rb->ever_up ? WSN_BROKER_DOWN : WSN_BROKER_CONNECTING, reason);
    pthread_mutex_unlock(&rb->lock);
    atomic_fetch_add(&rb->refused, refused);
    atomic_fetch_add(&rb->unconfirmed, unacked);
    if (was == WSN_BROKER_UP || unacked || refused || news)
        wsni_log(rb->srv, WSN_LOG_WARN,
                 "broker %s: %s (%zu publishes unconfirmed, %zu not sent); reconnecting",
                 state_name(atomic_load(&rb->state)), reason, unacked, refused);
    else
        wsni_log(rb->srv, WSN_LOG_DEBUG, "broker: %s; retrying", reason);

    int64_t delay = rb->backoff_ms;
    rb->rng = rb->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    /* Full jitter over the upper half: servers that lost Redis together do
     * not all come back in the same millisecond. */
    delay = delay / 2 + (int64_t)((rb->rng >> 33) % (uint64_t)(delay / 2 + 1));
    rb->retry_at = now_ms() + delay;
    rb->backoff_ms = rb->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rb->backoff_ms * 2;
}

static void session_fail(redis_broker *rb, const char *what) { session_fail_at(rb, NULL, what); }

static int conn_open(redis_broker *rb, const shard *s, conn *c)
{
    if (s->host[0])
        c->ctx = redisConnectNonBlock(s->host, s->port);
    else
        c->ctx = rb->addr.path[0] ? redisConnectUnixNonBlock(rb->addr.path)
                                  : redisConnectNonBlock(rb->addr.host, rb->addr.port);
    if (!c->ctx)
        return -1;
    if (c->ctx->err)
        return -1;
    c->connecting = 1;
    return 0;
}

static int send_cmd(conn *c, int argc, const char **argv, const size_t *lens, out_item *due)
{
    if (redisAppendCommandArgv(c->ctx, argc, argv, lens) != REDIS_OK)
        return -1;
    return ring_push(&c->due, due);
}

static int send_auth(redis_broker *rb, conn *c)
{
    if (!rb->addr.password[0])
        return 0;
    const char *argv[] = {"AUTH", rb->addr.password};
    size_t lens[] = {4, strlen(rb->addr.password)};
    return send_cmd(c, 2, argv, lens, NULL);
}

/* --- the slot map (Redis Cluster) --------------------------------------- */

/* The slot map, from the URL's Redis or else any master known from
 * before (the URL's may be the one that is down). */
static int discover(redis_broker *rb, wsni_slot_map *m, char *why, size_t why_len)
{
    if (!rb->sharded) {
        m->cluster = 0;
        m->n = 1;
        m->masters[0].host[0] = 0;
        return 0;
    }
    if (!wsni_slot_map_read(&rb->addr, NULL, 0, DISCOVER_TIMEOUT_MS, m, why, why_len))
        return 0;
    for (int i = 0; i < rb->nshards; i++)
        if (rb->shards[i].host[0] &&
            !wsni_slot_map_read(&rb->addr, rb->shards[i].host, rb->shards[i].port,
                                DISCOVER_TIMEOUT_MS, m, why, why_len))
            return 0;
    return -1;
}

/* A new session's masters: the map as it is (every connection is closed). */
static void map_install(redis_broker *rb, const wsni_slot_map *m)
{
    rb->cluster = m->cluster;
    rb->nshards = m->n;
    for (int i = 0; i < m->n; i++) {
        rb->shards[i] = (shard){.port = m->masters[i].port};
        snprintf(rb->shards[i].host, sizeof(rb->shards[i].host), "%s", m->masters[i].host);
    }
    memcpy(rb->owner, m->owner, sizeof(rb->owner));
}

/* --- subscriptions ----------------------------------------------------- */

typedef struct chan_op {
    char *name;
    unsigned slot;
    int shard;
    int sub; /* 1 subscribe, 0 unsubscribe */
} chan_op;

typedef struct op_list {
    chan_op *v;
    size_t n, cap;
    int oom;
} op_list;

static void ops_add(op_list *l, const char *name, unsigned slot, int shard_idx, int sub)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        chan_op *nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv) {
            l->oom = 1;
            return;
        }
        l->v = nv;
        l->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) {
        l->oom = 1;
        return;
    }
    l->v[l->n++] = (chan_op){copy, slot, shard_idx, sub};
}

static void ops_free(op_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
}

static int op_cmp(const void *a, const void *b)
{
    const chan_op *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    if (x->sub != y->sub)
        return x->sub < y->sub ? -1 : 1;
    return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* One command per run of one master, one kind and (in a cluster, which
 * refuses channels of several slots in one command) one slot, of at most
 * SUBSCRIBE_CHUNK channels: batched, never a round trip per channel. */
static int send_ops(redis_broker *rb, op_list *l)
{
    if (l->oom)
        return -1;
    if (!l->n)
        return 0;
    qsort(l->v, l->n, sizeof(*l->v), op_cmp);
    const char *argv[SUBSCRIBE_CHUNK + 1];
    size_t lens[SUBSCRIBE_CHUNK + 1];
    for (size_t i = 0; i < l->n;) {
        const chan_op *first = &l->v[i];
        shard *s = &rb->shards[first->shard];
        argv[0] = first->sub ? (rb->sharded ? "SSUBSCRIBE" : "SUBSCRIBE")
                             : (rb->sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE");
        lens[0] = strlen(argv[0]);
        int argc = 1;
        while (i < l->n && argc <= SUBSCRIBE_CHUNK && l->v[i].shard == first->shard &&
               l->v[i].sub == first->sub && (!rb->cluster || l->v[i].slot == first->slot)) {
            argv[argc] = l->v[i].name;
            lens[argc++] = strlen(l->v[i].name);
            i++;
        }
        if (!s->sub.ctx || redisAppendCommandArgv(s->sub.ctx, argc, argv, lens) != REDIS_OK)
            return -1;
    }
    return 0;
}

/* A master's subscribed connection is new: every wanted channel of its
 * slots. Returns how many, or -1. */
static long subscribe_all(redis_broker *rb, int idx)
{
    op_list l = {0};
    pthread_mutex_lock(&rb->lock);
    chan_entry *e, *tmp;
    HASH_ITER(hh, rb->chans, e, tmp)
    {
        if (e->wanted && !e->subscribed && shard_of(rb, e->slot) == idx) {
            e->subscribed = 1;
            e->shard = idx;
            ops_add(&l, e->name, e->slot, idx, 1);
        }
    }
    pthread_mutex_unlock(&rb->lock);
    long n = send_ops(rb, &l) ? -1 : (long)l.n;
    ops_free(&l);
    return n;
}

/* The (un)subscriptions that changed since the last call. Up only: every
 * master is connected and the slot map is current. */
static int sync_dirty(redis_broker *rb)
{
    op_list l = {0};
    pthread_mutex_lock(&rb->lock);
    chan_entry *e;
    while ((e = wsni_list_first(&rb->dirty, chan_entry, dirty_node))) {
        wsni_list_remove(&rb->dirty, &e->dirty_node);
        e->in_dirty = 0;
        if (e->wanted && !e->subscribed) {
            e->subscribed = 1;
            e->shard = shard_of(rb, e->slot);
            ops_add(&l, e->name, e->slot, e->shard, 1);
        } else if (!e->wanted && e->subscribed) {
            ops_add(&l, e->name, e->slot, e->shard, 0);
            e->subscribed = 0;
            e->shard = NO_SHARD;
        }
        if (!e->wanted && !e->subscribed) {
            HASH_DEL(rb->chans, e);
            free(e);
        }
    }
    pthread_mutex_unlock(&rb->lock);
    int rc = send_ops(rb, &l);
    ops_free(&l);
    return rc;
}

/* Lock held. e must be subscribed again (its slot moved). */
static void mark_dirty_locked(redis_broker *rb, chan_entry *e)
{
    e->subscribed = 0;
    e->shard = NO_SHARD;
    if (!e->in_dirty) {
        wsni_list_append(&rb->dirty, &e->dirty_node);
        e->in_dirty = 1;
    }
}

/* A connection finished its TCP (or unix) connect. */
static int conn_ready(redis_broker *rb, int idx, conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->ctx->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
        errno = err;
        return -1;
    }
    c->connecting = 0;
    if (send_auth(rb, c))
        return -1;
    shard *s = &rb->shards[idx];
    if (c == &s->sub) {
        long n = subscribe_all(rb, idx);
        if (n < 0)
            return -1;
        s->confirm_due = (size_t)n;
    }
    return 0;
}

static void maybe_up(redis_broker *rb)
{
    if (atomic_load(&rb->state) == WSN_BROKER_UP || !rb->nshards)
        return;
    for (int i = 0; i < rb->nshards; i++) {
        const shard *s = &rb->shards[i];
        if (!s->pub.ctx || s->pub.connecting || !s->sub.ctx || s->sub.connecting ||
            s->confirm_due || s->pub.due.len)
            return;
    }
    pthread_mutex_lock(&rb->lock);
    set_state_locked(rb, WSN_BROKER_UP, "");
    pthread_mutex_unlock(&rb->lock);
    if (rb->ever_up)
        atomic_fetch_add(&rb->reconnects, 1);
    rb->ever_up = 1;
    rb->backoff_ms = BACKOFF_MIN_MS;
    rb->next_ping = now_ms() + PING_EVERY_MS;
    if (rb->cluster)
        wsni_log(rb->srv, WSN_LOG_INFO,
                 "broker up: server %s, Redis Cluster of %d masters, every channel subscribed",
                 rb->srv->cluster_id, rb->nshards);
    else
        wsni_log(rb->srv, WSN_LOG_INFO, "broker up: server %s, every channel subscribed",
                 rb->srv->cluster_id);
}

/* The slot map changed while up (a redirection, a slot's channels
 * unsubscribed by Redis): read it again. Called with no publish in
 * flight, so what is sent after goes where the map now says, in order.
 * The same masters: channels whose slot moved are subscribed where it
 * lives now. Other masters: the session starts again. */
static int refresh_map(redis_broker *rb, char *why, size_t why_len)
{
    wsni_slot_map *m = malloc(sizeof(*m));
    if (!m) {
        snprintf(why, why_len, "out of memory");
        return -1;
    }
    int rc = discover(rb, m, why, why_len);
    if (!rc && (!m->cluster || m->n != rb->nshards)) {
        snprintf(why, why_len, "the cluster's masters changed");
        rc = -1;
    }
    int to_old[MAX_SHARDS];
    for (int i = 0; !rc && i < m->n; i++) {
        to_old[i] = -1;
        for (int j = 0; j < rb->nshards; j++)
            if (m->masters[i].port == rb->shards[j].port &&
                !strcmp(m->masters[i].host, rb->shards[j].host))
                to_old[i] = j;
        if (to_old[i] < 0) {
            snprintf(why, why_len, "the cluster's masters changed");
            rc = -1;
        }
    }
    if (!rc) {
        for (unsigned slot = 0; slot < CLUSTER_SLOTS; slot++)
            rb->owner[slot] = (unsigned char)to_old[m->owner[slot]];
        int moved = 0;
        pthread_mutex_lock(&rb->lock);
        chan_entry *e, *tmp;
        HASH_ITER(hh, rb->chans, e, tmp)
        {
            if (e->wanted && e->subscribed && e->shard != shard_of(rb, e->slot)) {
                mark_dirty_locked(rb, e);
                moved++;
            }
        }
        /* What was redirected goes first, in the order it was published. */
        out_item *r;
        wsni_list_node *at = NULL;
        while ((r = wsni_list_first(&rb->retry, out_item, node))) {
            wsni_list_remove(&rb->retry, &r->node);
            wsni_list_insert_after(&rb->outq, at, &r->node);
            at = &r->node;
            rb->out_len++;
            rb->out_bytes += r->len;
        }
        pthread_mutex_unlock(&rb->lock);
        wsni_log(rb->srv, WSN_LOG_INFO,
                 "broker: Redis Cluster slot map read again: %d channel(s) now on another master",
                 moved);
    }
    free(m);
    return rc;
}

/* --- messages in ------------------------------------------------------- */

static void note_ignored(redis_broker *rb, const char *chan, const char *why)
{
    atomic_fetch_add(&rb->ignored, 1);
    rb->ignored_unlogged++;
    int64_t now = now_ms();
    if (now - rb->ignored_logged_at < 1000)
        return;
    wsni_log(rb->srv, WSN_LOG_WARN,
             "broker: %llu message(s) ignored (not written by a wsnotify server of this "
             "version): last on %.100s: %s",
             (unsigned long long)rb->ignored_unlogged, chan, why);
    rb->ignored_logged_at = now;
    rb->ignored_unlogged = 0;
}

/* Loss accounting: 0 to deliver, -1 to drop (older than what was seen). */
static int account_seq(redis_broker *rb, const char *chan, const wsni_envelope *env)
{
    int64_t now = now_ms();
    int64_t gap = wsni_seq_in_check(rb->seq_in, chan, env->origin, env->epoch, env->seq,
                                    env->count, now);
    if (gap > 0) {
        atomic_fetch_add(&rb->lost, (uint64_t)gap);
        wsni_log(rb->srv, WSN_LOG_WARN,
                 "broker: %lld message(s) from server %010llx on %.100s never arrived here "
                 "(sequence %llu, expected %llu)",
                 (long long)gap, (unsigned long long)env->origin, chan,
                 (unsigned long long)env->seq, (unsigned long long)(env->seq - (uint64_t)gap));
    } else if (gap < 0) {
        /* Only a slot that moved while the message was on its way can
         * bring it after a later one (two connections): it was counted as
         * lost, and delivering it now would break the publisher's order. */
        rb->late_unlogged++;
        if (now - rb->late_logged_at >= 1000) {
            wsni_log(rb->srv, WSN_LOG_WARN,
                     "broker: %llu message(s) arrived after later ones of their server "
                     "(last on %.100s): dropped, counted as lost",
                     (unsigned long long)rb->late_unlogged, chan);
            rb->late_logged_at = now;
            rb->late_unlogged = 0;
        }
        return -1;
    }
    return 0;
}

static void on_message(redis_broker *rb, const char *chan, const char *data, size_t len)
{
    uint64_t origin;
    if (!wsni_envelope_origin(data, len, &origin) && origin == rb->origin)
        return; /* our own, delivered here when it was published */
    wsni_envelope env;
    int rc = wsni_envelope_decode(data, len, &env);
    if (rc == -2) {
        atomic_fetch_add(&rb->dropped, 1);
        wsni_log(rb->srv, WSN_LOG_ERROR, "broker: out of memory: a message was dropped");
        return;
    }
    if (rc) {
        note_ignored(rb, chan, "not an envelope");
        return;
    }
    const char *name;
    if (env.kind == ENVELOPE_CLIENT) {
        if (strcmp(chan, rb->inbox)) {
            wsni_envelope_clear(&env);
            note_ignored(rb, chan, "a client message outside this server's inbox");
            return;
        }
        name = env.target;
    } else {
        if (strncmp(chan, rb->chan_prefix, rb->chan_prefix_len)) {
            wsni_envelope_clear(&env);
            note_ignored(rb, chan, "a channel message outside the channel prefix");
            return;
        }
        name = chan + rb->chan_prefix_len;
    }
    if (account_seq(rb, chan, &env)) {
        wsni_envelope_clear(&env);
        return;
    }
    in_item *it = calloc(1, sizeof(*it) + env.count * sizeof(outgoing *));
    if (!it || !(it->name = strdup(name))) {
        free(it);
        wsni_envelope_clear(&env);
        atomic_fetch_add(&rb->dropped, 1);
        return;
    }
    it->kind = env.kind;
    it->count = env.count;
    memcpy(it->outs, env.outs, env.count * sizeof(outgoing *));
    pthread_mutex_lock(&rb->lock);
    if (rb->in_len >= IN_QUEUE_MAX) {
        pthread_mutex_unlock(&rb->lock);
        atomic_fetch_add(&rb->dropped, it->count);
        in_free(it);
        return;
    }
    in_push_locked(rb, it);
    pthread_mutex_unlock(&rb->lock);
}

static int is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

/* Why a connection ends, kept by the thread (the reply it quotes is freed
 * before the session ends). */
static const char *refused_why(redis_broker *rb, const char *what, const redisReply *r)
{
    snprintf(rb->why, sizeof(rb->why), "%s: %.80s", what, r->str ? r->str : "");
    return rb->why;
}

/* A channel's subscription was confirmed, or ended (ours, or Redis's when
 * its slot moved to another master). */
static void sub_changed(redis_broker *rb, int idx, const char *chan, int subscribed)
{
    pthread_mutex_lock(&rb->lock);
    chan_entry *e;
    HASH_FIND(hh, rb->chans, chan, strlen(chan), e);
    int forget = 0, moved = 0;
    if (subscribed) {
        /* Loss is counted from a channel's first subscription, not across
         * one that ended because nobody here wanted it. */
        forget = e && e->fresh;
        if (e)
            e->fresh = 0;
    } else if (e && e->wanted && e->subscribed && e->shard == idx) {
        mark_dirty_locked(rb, e);
        moved = 1;
    } else
        forget = !e || !e->wanted;
    pthread_mutex_unlock(&rb->lock);
    if (forget)
        wsni_seq_in_forget(rb->seq_in, chan);
    if (moved) {
        rb->refresh_due = 1;
        wsni_log(rb->srv, WSN_LOG_INFO,
                 "broker: Redis ended the subscription to %.100s (its slot moved): "
                 "subscribing where it lives now",
                 chan);
    }
}

/* One reply on a subscribed connection: 0, or -1 with why. */
static int sub_reply(redis_broker *rb, int idx, redisReply *r, const char **why)
{
    shard *s = &rb->shards[idx];
    if (r->type == REDIS_REPLY_ERROR) {
        if (rb->cluster && !strncmp(r->str, "MOVED ", 6) &&
            atomic_load(&rb->state) == WSN_BROKER_UP) {
            /* A SSUBSCRIBE sent by a map that was already old: every
             * channel of that slot is asked for again after a refresh. */
            unsigned slot = (unsigned)strtoul(r->str + 6, NULL, 10) & (CLUSTER_SLOTS - 1);
            pthread_mutex_lock(&rb->lock);
            chan_entry *e, *tmp;
            HASH_ITER(hh, rb->chans, e, tmp)
            {
                if (e->wanted && e->slot == slot && e->shard == idx)
                    mark_dirty_locked(rb, e);
            }
            pthread_mutex_unlock(&rb->lock);
            rb->refresh_due = 1;
            return 0;
        }
        *why = refused_why(rb, s->sub.due.len ? "AUTH refused" : "SUBSCRIBE refused", r);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !is_str(r->element[0])) {
        /* A plain reply: AUTH's, or PING's on a connection subscribed to
         * nothing (a master whose slots have no channel of ours is not in
         * subscribed mode, and answers as any connection). */
        out_item *due;
        if (!ring_pop(&s->sub.due, &due))
            return 0;
        if (r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG")) {
            s->sub.ping_sent = 0;
            return 0;
        }
        *why = "unexpected reply";
        return -1;
    }
    const char *kind = r->element[0]->str;
    if ((!strcmp(kind, "message") || !strcmp(kind, "smessage")) && r->elements == 3 &&
        is_str(r->element[1]) && r->element[2]->type == REDIS_REPLY_STRING)
        on_message(rb, r->element[1]->str, r->element[2]->str, r->element[2]->len);
    else if (!strcmp(kind, "subscribe") || !strcmp(kind, "ssubscribe")) {
        if (s->confirm_due)
            s->confirm_due--;
        if (is_str(r->element[1]))
            sub_changed(rb, idx, r->element[1]->str, 1);
    } else if (!strcmp(kind, "unsubscribe") || !strcmp(kind, "sunsubscribe")) {
        if (is_str(r->element[1]))
            sub_changed(rb, idx, r->element[1]->str, 0);
    } else if (!strcmp(kind, "pong"))
        s->sub.ping_sent = 0;
    return 0;
}

static int find_shard(const redis_broker *rb, const char *hostport)
{
    const char *colon = strrchr(hostport, ':');
    if (!colon)
        return -1;
    int port = atoi(colon + 1);
    size_t hl = (size_t)(colon - hostport);
    for (int i = 0; i < rb->nshards; i++)
        if (rb->shards[i].port == port && strlen(rb->shards[i].host) == hl &&
            !memcmp(rb->shards[i].host, hostport, hl))
            return i;
    return -1;
}

static int send_publish(redis_broker *rb, int idx, out_item *it, int asking);

/* A publish Redis Cluster sent elsewhere: it was not published, so it is
 * sent again where the new map says (MOVED), to the node named once
 * (ASK), or after a while (TRYAGAIN); never dropped without being
 * counted. */
static int redirect(redis_broker *rb, out_item *it, const char *err)
{
    if (++it->tries > MAX_TRIES) {
        atomic_fetch_add(&rb->refused, it->msgs);
        wsni_log(rb->srv, WSN_LOG_WARN,
                 "broker: a publish to %.100s redirected %d times (%.80s): not sent (counted as "
                 "refused)",
                 it->chan, MAX_TRIES, err);
        out_free(it);
        return 0;
    }
    if (!strncmp(err, "ASK ", 4)) {
        const char *node = strchr(err + 4, ' ');
        int idx = node ? find_shard(rb, node + 1) : -1;
        if (idx >= 0)
            return send_publish(rb, idx, it, 1);
    }
    wsni_list_append(&rb->retry, &it->node);
    rb->refresh_due = 1;
    return 0;
}

static int pub_reply(redis_broker *rb, int idx, redisReply *r, const char **why)
{
    shard *s = &rb->shards[idx];
    out_item *it;
    if (ring_pop(&s->pub.due, &it)) {
        *why = "unexpected reply";
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (it && rb->cluster &&
            (!strncmp(r->str, "MOVED ", 6) || !strncmp(r->str, "ASK ", 4) ||
             !strncmp(r->str, "TRYAGAIN", 8))) {
            if (redirect(rb, it, r->str)) {
                *why = "out of memory";
                return -1;
            }
            return 0;
        }
        /* The message was not published. */
        if (it)
            atomic_fetch_add(&rb->refused, it->msgs);
        /* Before up, the only plain command is AUTH. */
        *why = refused_why(rb,
                           it                                           ? "PUBLISH refused"
                           : atomic_load(&rb->state) != WSN_BROKER_UP ? "AUTH refused"
                                                                        : "refused",
                           r);
        if (it)
            out_free(it);
        return -1;
    }
    if (it) {
        atomic_fetch_add(&rb->sent, it->msgs);
        out_free(it);
    } else if (r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG"))
        s->pub.ping_sent = 0;
    return 0;
}

/* Reads what the socket has and handles every whole reply. */
static int conn_read(redis_broker *rb, int idx, conn *c, const char **why)
{
    if (redisBufferRead(c->ctx) != REDIS_OK) {
        *why = c->ctx->errstr[0] ? c->ctx->errstr : "read failed";
        return -1;
    }
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(c->ctx, &reply) != REDIS_OK) {
            *why = "protocol error";
            return -1;
        }
        if (!reply)
            return 0;
        int rc = c == &rb->shards[idx].pub ? pub_reply(rb, idx, reply, why)
                                           : sub_reply(rb, idx, reply, why);
        freeReplyObject(reply);
        if (rc)
            return -1;
    }
}

static int conn_flush(conn *c, const char **why)
{
    int done = 0;
    if (redisBufferWrite(c->ctx, &done) != REDIS_OK) {
        *why = c->ctx->errstr[0] ? c->ctx->errstr : "write failed";
        return -1;
    }
    return 0;
}

/* --- messages out ------------------------------------------------------ */

/* it on master idx's publishing connection (owned by its ring after). */
static int send_publish(redis_broker *rb, int idx, out_item *it, int asking)
{
    conn *c = &rb->shards[idx].pub;
    const char *cmd = rb->sharded ? "SPUBLISH" : "PUBLISH";
    if (asking) {
        const char *av[] = {"ASKING"};
        size_t al[] = {6};
        if (send_cmd(c, 1, av, al, NULL))
            goto fail;
    }
    const char *argv[] = {cmd, it->chan, (const char *)it->data};
    size_t lens[] = {strlen(cmd), strlen(it->chan), it->len};
    if (send_cmd(c, 3, argv, lens, it))
        goto fail;
    return 0;
fail:
    atomic_fetch_add(&rb->refused, it->msgs);
    out_free(it);
    return -1;
}

/* Moves queued publishes into the pipelines while they have room. */
static int pump_out(redis_broker *rb)
{
    for (;;) {
        pthread_mutex_lock(&rb->lock);
        out_item *it = wsni_list_first(&rb->outq, out_item, node);
        int idx = it ? shard_of(rb, it->slot) : 0;
        if (it && sdslen(rb->shards[idx].pub.ctx->obuf) >= PIPE_BYTES)
            it = NULL;
        if (it) {
            wsni_list_remove(&rb->outq, &it->node);
            rb->out_len--;
            rb->out_bytes -= it->len;
        }
        pthread_mutex_unlock(&rb->lock);
        if (!it)
            return 0;
        if (send_publish(rb, idx, it, 0))
            return -1;
    }
}

static void maybe_ping(redis_broker *rb, int64_t now)
{
    if (atomic_load(&rb->state) != WSN_BROKER_UP || now < rb->next_ping)
        return;
    rb->next_ping = now + PING_EVERY_MS;
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    for (int i = 0; i < rb->nshards; i++) {
        shard *s = &rb->shards[i];
        if (!s->pub.ping_sent && !send_cmd(&s->pub, 1, argv, lens, NULL))
            s->pub.ping_sent = now;
        if (!s->sub.ping_sent && redisAppendCommandArgv(s->sub.ctx, 1, argv, lens) == REDIS_OK)
            s->sub.ping_sent = now;
    }
}

/* --- the thread -------------------------------------------------------- */

static void session_start(redis_broker *rb)
{
    wsni_slot_map *m = malloc(sizeof(*m));
    char why[128];
    if (!m) {
        session_fail(rb, "out of memory");
        return;
    }
    if (discover(rb, m, why, sizeof(why))) {
        free(m);
        session_fail(rb, why);
        return;
    }
    map_install(rb, m);
    free(m);
    rb->active = 1;
    for (int i = 0; i < rb->nshards; i++) {
        shard *s = &rb->shards[i];
        if (conn_open(rb, s, &s->pub) || conn_open(rb, s, &s->sub)) {
            const char *w = s->pub.ctx && s->pub.ctx->err   ? s->pub.ctx->errstr
                            : s->sub.ctx && s->sub.ctx->err ? s->sub.ctx->errstr
                                                            : "cannot connect";
            snprintf(why, sizeof(why), "%s", w);
            session_fail_at(rb, s, why);
            return;
        }
    }
    rb->connect_deadline = now_ms() + CONNECT_TIMEOUT_MS;
}

static short wanted_events(const conn *c)
{
    if (c->connecting)
        return POLLOUT;
    return (short)(POLLIN | (sdslen(c->ctx->obuf) ? POLLOUT : 0));
}

static int serve(redis_broker *rb, int idx, conn *c, short revents, const char **why)
{
    if (c->connecting) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return 0;
        if (conn_ready(rb, idx, c)) {
            *why = errno ? strerror(errno) : "connect failed";
            return -1;
        }
        return 0;
    }
    if ((revents & (POLLIN | POLLERR | POLLHUP)) && conn_read(rb, idx, c, why))
        return -1;
    return 0;
}

/* Whether any master still owes an answer (before up), or a PING. */
static int waiting(const redis_broker *rb, int64_t now, const char **why)
{
    int setup = 0;
    for (int i = 0; i < rb->nshards; i++) {
        const shard *s = &rb->shards[i];
        setup |= s->pub.connecting || s->sub.connecting || s->confirm_due || s->pub.due.len;
        if ((s->pub.ping_sent && now - s->pub.ping_sent > REPLY_TIMEOUT_MS) ||
            (s->sub.ping_sent && now - s->sub.ping_sent > REPLY_TIMEOUT_MS)) {
            *why = "no answer to PING";
            return i;
        }
    }
    if (setup && atomic_load(&rb->state) != WSN_BROKER_UP && now >= rb->connect_deadline) {
        *why = "no answer in time";
        return -2;
    }
    return -1;
}

static int publishes_in_flight(const redis_broker *rb)
{
    for (int i = 0; i < rb->nshards; i++)
        if (rb->shards[i].pub.due.len)
            return 1;
    return 0;
}

static void *broker_main(void *arg)
{
    redis_broker *rb = arg;
    pthread_setname_np(pthread_self(), "wsnotify-broker");
    for (;;) {
        pthread_mutex_lock(&rb->lock);
        int stop = rb->stop;
        pthread_mutex_unlock(&rb->lock);
        if (stop)
            break;
        int64_t now = now_ms();
        if (!rb->active && now >= rb->retry_at)
            session_start(rb);
        if (now >= rb->next_sweep) {
            wsni_seq_in_sweep(rb->seq_in, now, ORIGIN_IDLE_MS);
            rb->next_sweep = now + SWEEP_EVERY_MS;
        }

        int active = rb->active;
        int up = atomic_load(&rb->state) == WSN_BROKER_UP;
        int64_t timeout = 1000;
        if (!active)
            timeout = rb->retry_at - now;
        else if (!up)
            timeout = rb->connect_deadline - now;
        else
            timeout = rb->next_ping - now;
        if (timeout < 0)
            timeout = 0;

        struct pollfd pfd[1 + 2 * MAX_SHARDS] = {{.fd = rb->efd, .events = POLLIN}};
        int nfds = 1;
        for (int i = 0; active && i < rb->nshards; i++) {
            pfd[nfds++] = (struct pollfd){.fd = rb->shards[i].pub.ctx->fd,
                                          .events = wanted_events(&rb->shards[i].pub)};
            pfd[nfds++] = (struct pollfd){.fd = rb->shards[i].sub.ctx->fd,
                                          .events = wanted_events(&rb->shards[i].sub)};
        }
        if (poll(pfd, (nfds_t)nfds, (int)timeout) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN) {
            uint64_t n;
            if (read(rb->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                break;
        }
        if (!active)
            continue;

        const char *why = NULL;
        int where = -1;
        now = now_ms();
        for (int i = 0; i < rb->nshards && !why; i++) {
            shard *s = &rb->shards[i];
            if (serve(rb, i, &s->pub, pfd[1 + 2 * i].revents, &why) ||
                serve(rb, i, &s->sub, pfd[2 + 2 * i].revents, &why))
                where = i;
        }
        if (!why)
            where = waiting(rb, now, &why);
        if (!why) {
            maybe_up(rb);
            if (atomic_load(&rb->state) == WSN_BROKER_UP) {
                if (rb->refresh_due && !publishes_in_flight(rb)) {
                    rb->refresh_due = 0;
                    if (refresh_map(rb, rb->why, sizeof(rb->why)))
                        why = rb->why;
                }
                if (why || rb->refresh_due)
                    ;
                else if (sync_dirty(rb) < 0 || pump_out(rb))
                    why = "out of memory";
                else
                    maybe_ping(rb, now);
            }
        }
        for (int i = 0; i < rb->nshards && !why; i++) {
            shard *s = &rb->shards[i];
            if ((!s->pub.connecting && conn_flush(&s->pub, &why)) ||
                (!s->sub.connecting && conn_flush(&s->sub, &why)))
                where = i;
        }
        if (why) {
            char copy[160];
            snprintf(copy, sizeof(copy), "%s", why);
            session_fail_at(rb, where >= 0 ? &rb->shards[where] : NULL, copy);
        }
    }
    shards_close(rb);
    return NULL;
}

/* --- the broker table (I/O thread) -------------------------------------- */

static void enqueue(redis_broker *rb, int kind, const char *chan, const char *target,
                    outgoing *const *outs, size_t count)
{
    /* Numbered even when not sent: the other servers count it as lost
     * when the next one comes. */
    uint32_t epoch;
    uint64_t seq;
    if (wsni_seq_out_take(rb->seq_out, chan, count, now_ms(), &epoch, &seq)) {
        atomic_fetch_add(&rb->refused, count);
        wsni_log(rb->srv, WSN_LOG_ERROR, "broker: out of memory: a publish was not sent");
        return;
    }
    if (atomic_load(&rb->state) != WSN_BROKER_UP) {
        atomic_fetch_add(&rb->refused, count);
        return;
    }
    out_item *it = calloc(1, sizeof(*it));
    if (it) {
        it->msgs = (unsigned)count;
        it->slot = slot_of(chan);
        it->chan = strdup(chan);
        it->data = wsni_envelope_encode(kind, rb->origin, epoch, seq, target, outs, count,
                                        &it->len);
    }
    if (!it || !it->chan || !it->data) {
        if (it)
            out_free(it);
        atomic_fetch_add(&rb->refused, count);
        wsni_log(rb->srv, WSN_LOG_ERROR, "broker: out of memory: a publish was not sent");
        return;
    }
    pthread_mutex_lock(&rb->lock);
    /* The state is checked again: a failure in between has emptied the
     * queue and counted it, and must not find this one after. */
    if (atomic_load(&rb->state) != WSN_BROKER_UP || rb->out_len >= OUT_QUEUE_MAX ||
        rb->out_bytes + it->len > OUT_QUEUE_BYTES) {
        int full = atomic_load(&rb->state) == WSN_BROKER_UP;
        pthread_mutex_unlock(&rb->lock);
        atomic_fetch_add(&rb->refused, count);
        /* At most a line a second: a Redis that stalls meets every publish
         * here. */
        if (full && now_ms() - rb->full_logged_at >= 1000) {
            rb->full_logged_at = now_ms();
            wsni_log(rb->srv, WSN_LOG_WARN,
                     "broker: send queue full (Redis is not keeping up): publishes are not "
                     "sent to the other servers (counted as refused)");
        }
        out_free(it);
        return;
    }
    int was_empty = rb->outq.head == NULL;
    wsni_list_append(&rb->outq, &it->node);
    rb->out_len++;
    rb->out_bytes += it->len;
    pthread_mutex_unlock(&rb->lock);
    if (was_empty)
        poke(rb->efd);
}

static int redis_publish(wsn_server *srv, const char *channel, outgoing *const *outs, size_t count,
                         int may_wait)
{
    redis_broker *rb = rb_of(srv);
    int rc = count == 1 ? wsni_deliver_to_channel(srv, channel, outs[0], may_wait)
                        : wsni_deliver_run_to_channel(srv, channel, outs, count, may_wait);
    char chan[320];
    if (snprintf(chan, sizeof(chan), "%s%s", rb->chan_prefix, channel) >= (int)sizeof(chan)) {
        char *big = malloc(rb->chan_prefix_len + strlen(channel) + 1);
        if (!big) {
            atomic_fetch_add(&rb->refused, count);
            return rc;
        }
        strcpy(big, rb->chan_prefix);
        strcat(big, channel);
        enqueue(rb, ENVELOPE_CHANNEL, big, NULL, outs, count);
        free(big);
        return rc;
    }
    enqueue(rb, ENVELOPE_CHANNEL, chan, NULL, outs, count);
    return rc;
}

/* A client id of a cluster is c_<server id>_<number>. */
static int server_of(const char *client_id, char *out, size_t cap)
{
    if (strncmp(client_id, "c_", 2))
        return -1;
    const char *end = strchr(client_id + 2, '_');
    size_t n = end ? (size_t)(end - client_id - 2) : 0;
    if (!n || n >= cap)
        return -1;
    memcpy(out, client_id + 2, n);
    out[n] = 0;
    return 0;
}

/* The Redis channel of server sid's inbox (publish_to_client_id). */
static void inbox_channel(const redis_broker *rb, const char *sid, char *out, size_t size)
{
    snprintf(out, size, "wsn:%d:i:%s", rb->addr.db, sid);
}

static int redis_publish_to_remote(wsn_server *srv, const char *client_id, outgoing *o)
{
    redis_broker *rb = rb_of(srv);
    char sid[16], chan[96];
    if (server_of(client_id, sid, sizeof(sid)))
        return WSN_EINVAL;
    inbox_channel(rb, sid, chan, sizeof(chan));
    uint64_t refused = atomic_load(&rb->refused);
    enqueue(rb, ENVELOPE_CLIENT, chan, client_id, &o, 1);
    return atomic_load(&rb->refused) != refused ? WSN_EBROKER : WSN_OK;
}

static void want_channel(wsn_server *srv, const char *channel, int wanted)
{
    redis_broker *rb = rb_of(srv);
    char *name = malloc(rb->chan_prefix_len + strlen(channel) + 1);
    if (!name) {
        wsni_log(srv, WSN_LOG_ERROR, "broker: out of memory: channel %s not (un)subscribed",
                 channel);
        return;
    }
    strcpy(name, rb->chan_prefix);
    strcat(name, channel);
    size_t len = strlen(name);
    pthread_mutex_lock(&rb->lock);
    chan_entry *e;
    HASH_FIND(hh, rb->chans, name, len, e);
    if (!e && wanted) {
        e = calloc(1, sizeof(*e) + len + 1);
        if (e) {
            memcpy(e->name, name, len + 1);
            e->slot = slot_of(name);
            e->shard = NO_SHARD;
            HASH_ADD(hh, rb->chans, name[0], len, e);
        }
    }
    int poke_due = 0;
    if (e) {
        if (wanted && !e->wanted)
            e->fresh = 1;
        e->wanted = wanted;
        if (!e->in_dirty) {
            poke_due = rb->dirty.head == NULL;
            wsni_list_append(&rb->dirty, &e->dirty_node);
            e->in_dirty = 1;
        }
    }
    pthread_mutex_unlock(&rb->lock);
    free(name);
    if (poke_due)
        poke(rb->efd);
}

static void redis_channel_first(wsn_server *srv, const char *channel)
{
    want_channel(srv, channel, 1);
}

static void redis_channel_last(wsn_server *srv, const char *channel)
{
    want_channel(srv, channel, 0);
}

static void redis_drain(wsn_server *srv)
{
    redis_broker *rb = rb_of(srv);
    pthread_mutex_lock(&rb->lock);
    wsni_list list = rb->inq;
    rb->inq = (wsni_list){0};
    rb->in_len = 0;
    pthread_mutex_unlock(&rb->lock);
    in_item *it;
    while ((it = wsni_list_first(&list, in_item, node))) {
        wsni_list_remove(&list, &it->node);
        if (it->kind == IN_STATE) {
            rb->hooks.state_changed(srv, it->state, it->name);
        } else if (it->kind == ENVELOPE_CLIENT) {
            rb->hooks.deliver_to_id(srv, it->name, it->outs[0]);
            atomic_fetch_add(&rb->received, 1);
        } else {
            if (it->count == 1)
                wsni_deliver_to_channel(srv, it->name, it->outs[0], 1);
            else
                wsni_deliver_run_to_channel(srv, it->name, it->outs, it->count, 1);
            atomic_fetch_add(&rb->received, it->count);
        }
        in_free(it);
    }
}

static void redis_kept_local(wsn_server *srv, const char *channel, size_t count)
{
    redis_broker *rb = rb_of(srv);
    atomic_fetch_add(&rb->refused, count);
    /* The numbers they would have had are skipped: a gap for the others. */
    char *chan = malloc(rb->chan_prefix_len + strlen(channel) + 1);
    uint32_t epoch;
    uint64_t seq;
    if (chan) {
        strcpy(chan, rb->chan_prefix);
        strcat(chan, channel);
        wsni_seq_out_take(rb->seq_out, chan, count, now_ms(), &epoch, &seq);
        free(chan);
    }
}

static void redis_kept_remote(wsn_server *srv, const char *client_id)
{
    redis_broker *rb = rb_of(srv);
    char sid[16], chan[96];
    atomic_fetch_add(&rb->refused, 1);
    if (server_of(client_id, sid, sizeof(sid)))
        return;
    inbox_channel(rb, sid, chan, sizeof(chan));
    uint32_t epoch;
    uint64_t seq;
    wsni_seq_out_take(rb->seq_out, chan, 1, now_ms(), &epoch, &seq);
}

static const wsni_broker redis_broker_table = {
    .publish = redis_publish,
    /* A client handle is of this server: nothing to send anywhere. */
    .publish_to_client = wsni_deliver_to_client,
    .channel_first = redis_channel_first,
    .channel_last = redis_channel_last,
    .drain = redis_drain,
    .publish_to_remote = redis_publish_to_remote,
    .kept_local = redis_kept_local,
    .kept_remote = redis_kept_remote,
};

/* --- life --------------------------------------------------------------- */

int wsni_redis_new(wsn_server *srv, const char *url, int sharded, const wsni_redis_hooks *hooks,
                   char *why, size_t why_len)
{
    redis_broker *rb = calloc(1, sizeof(*rb));
    if (!rb)
        return WSN_ENOMEM;
    int bad = wsni_broker_url_parse(url, &rb->addr, why, why_len);
    if (bad) {
        free(rb);
        return bad == -2 ? WSN_EUNSUPPORTED : WSN_EINVAL;
    }
    rb->seq_out = wsni_seq_out_new();
    rb->seq_in = wsni_seq_in_new();
    if (!rb->seq_out || !rb->seq_in) {
        wsni_seq_out_free(rb->seq_out);
        wsni_seq_in_free(rb->seq_in);
        free(rb);
        return WSN_ENOMEM;
    }
    /* 40 random bits name the server: with a few hundred servers a
     * collision is a chance in ten million. */
    unsigned char rnd[16];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        snprintf(why, why_len, "broker: no random bytes for the server id");
        free(rb);
        return WSN_ENOMEM;
    }
    for (int i = 0; i < 5; i++)
        rb->origin = rb->origin << 8 | rnd[i];
    memcpy(&rb->rng, rnd + 8, sizeof(rb->rng));
    rb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rb->efd < 0 || pthread_mutex_init(&rb->lock, NULL)) {
        if (rb->efd >= 0)
            close(rb->efd);
        wsni_seq_out_free(rb->seq_out);
        wsni_seq_in_free(rb->seq_in);
        free(rb);
        snprintf(why, why_len, "broker: cannot create an eventfd");
        return WSN_ENOMEM;
    }
    rb->srv = srv;
    rb->hooks = *hooks;
    rb->sharded = sharded;
    snprintf(srv->cluster_id, sizeof(srv->cluster_id), "%010llx", (unsigned long long)rb->origin);
    snprintf(rb->chan_prefix, sizeof(rb->chan_prefix), "wsn:%d:c:", rb->addr.db);
    rb->chan_prefix_len = strlen(rb->chan_prefix);
    inbox_channel(rb, srv->cluster_id, rb->inbox, sizeof(rb->inbox));
    /* The inbox is one more channel, wanted for good: subscribed on its
     * slot's master, again when that slot moves. */
    size_t ilen = strlen(rb->inbox);
    chan_entry *inbox = calloc(1, sizeof(*inbox) + ilen + 1);
    if (!inbox) {
        close(rb->efd);
        pthread_mutex_destroy(&rb->lock);
        wsni_seq_out_free(rb->seq_out);
        wsni_seq_in_free(rb->seq_in);
        free(rb);
        return WSN_ENOMEM;
    }
    memcpy(inbox->name, rb->inbox, ilen + 1);
    inbox->wanted = inbox->fresh = 1;
    inbox->slot = slot_of(rb->inbox);
    inbox->shard = NO_SHARD;
    HASH_ADD(hh, rb->chans, name[0], ilen, inbox);
    atomic_init(&rb->state, WSN_BROKER_CONNECTING);
    snprintf(rb->reason, sizeof(rb->reason), "not connected yet");
    rb->backoff_ms = BACKOFF_MIN_MS;
    srv->broker_impl = rb;
    wsni_broker_use(srv, &redis_broker_table);
    return WSN_OK;
}

int wsni_redis_start(wsn_server *srv)
{
    redis_broker *rb = rb_of(srv);
    if (wsni_thread_create(&rb->tid, broker_main, rb))
        return WSN_ENOMEM;
    rb->started = 1;
    return WSN_OK;
}

void wsni_redis_free(wsn_server *srv)
{
    redis_broker *rb = rb_of(srv);
    if (!rb)
        return;
    if (rb->started) {
        pthread_mutex_lock(&rb->lock);
        rb->stop = 1;
        pthread_mutex_unlock(&rb->lock);
        poke(rb->efd);
        pthread_join(rb->tid, NULL);
    }
    out_item *o;
    while ((o = wsni_list_first(&rb->outq, out_item, node))) {
        wsni_list_remove(&rb->outq, &o->node);
        out_free(o);
    }
    in_item *i;
    while ((i = wsni_list_first(&rb->inq, in_item, node))) {
        wsni_list_remove(&rb->inq, &i->node);
        in_free(i);
    }
    while ((o = wsni_list_first(&rb->retry, out_item, node))) {
        wsni_list_remove(&rb->retry, &o->node);
        out_free(o);
    }
    chan_entry *e, *tmp;
    HASH_ITER(hh, rb->chans, e, tmp)
    {
        HASH_DEL(rb->chans, e);
        free(e);
    }
    wsni_seq_out_free(rb->seq_out);
    wsni_seq_in_free(rb->seq_in);
    close(rb->efd);
    pthread_mutex_destroy(&rb->lock);
    free(rb);
    srv->broker_impl = NULL;
}

int wsni_redis_state_now(wsn_server *srv) { return atomic_load(&rb_of(srv)->state); }

int wsni_redis_state(wsn_server *srv, wsn_broker_info *info)
{
    redis_broker *rb = rb_of(srv);
    int state = atomic_load(&rb->state);
    if (!info)
        return state;
    pthread_mutex_lock(&rb->lock);
    state = atomic_load(&rb->state);
    info->state = state;
    snprintf(info->reason, sizeof(info->reason), "%s", state == WSN_BROKER_UP ? "" : rb->reason);
    pthread_mutex_unlock(&rb->lock);
    snprintf(info->server_id, sizeof(info->server_id), "%s", srv->cluster_id);
    info->sent = atomic_load(&rb->sent);
    info->refused = atomic_load(&rb->refused);
    info->unconfirmed = atomic_load(&rb->unconfirmed);
    info->received = atomic_load(&rb->received);
    info->ignored = atomic_load(&rb->ignored);
    info->dropped = atomic_load(&rb->dropped);
    info->reconnects = atomic_load(&rb->reconnects);
    return state;
}

uint64_t wsni_redis_lost(wsn_server *srv) { return atomic_load(&rb_of(srv)->lost); }

const char *wsni_redis_state_name(int state) { return state_name(state); }
