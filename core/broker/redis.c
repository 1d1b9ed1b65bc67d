#include "broker/redis.h"

#include "broker/envelope.h"
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
/* What the hiredis output buffer may hold before the thread stops taking
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

typedef struct chan_entry {
    UT_hash_handle hh;
    wsni_list_node dirty_node;
    int in_dirty;
    int wanted;     /* the I/O thread has members for it */
    int subscribed; /* the subscribed connection has asked for it */
    char name[];
} chan_entry;

typedef struct out_item {
    wsni_list_node node;
    unsigned msgs; /* publishes in it (a run has several) */
    char *chan;    /* the Redis channel */
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

/* Replies a connection still owes, in order: 0 for a command whose reply
 * only matters if it is an error (AUTH, PING), else the number of
 * publishes a PUBLISH carried. */
typedef struct reply_ring {
    unsigned char *v;
    size_t head, len, cap;
} reply_ring;

typedef struct conn {
    redisContext *ctx;
    int connecting;
    reply_ring due;
    int64_t ping_sent; /* ms; 0 = no ping outstanding */
} conn;

typedef struct redis_broker {
    wsn_server *srv; /* not a reference: the shell frees us first */
    wsni_redis_hooks hooks;
    wsni_broker_addr addr;
    int sharded;
    uint64_t origin;
    char chan_prefix[32]; /* "wsn:<db>:c:" */
    char inbox[64];       /* "wsn:<db>:i:<id>" */
    size_t chan_prefix_len;
    uint64_t seq;           /* io */
    int64_t full_logged_at; /* io */
    int efd;      /* const: wakes the broker thread */
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
    atomic_uint_least64_t sent, refused, unconfirmed, received, ignored, dropped, reconnects;

    /* broker thread only */
    conn pub, sub;
    size_t confirm_due; /* subscribe confirmations before up */
    int ever_up;
    int backoff_ms;
    int64_t retry_at, connect_deadline, next_ping;
    uint64_t rng;
    int64_t ignored_logged_at;
    uint64_t ignored_unlogged;
    char why[128];
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

static int ring_push(reply_ring *r, unsigned char v)
{
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        unsigned char *nv = malloc(cap);
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

static int ring_pop(reply_ring *r, unsigned char *v)
{
    if (!r->len)
        return -1;
    *v = r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    r->len--;
    return 0;
}

static size_t ring_sum(const reply_ring *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len; i++)
        n += r->v[(r->head + i) % r->cap];
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
    free(c->due.v);
    c->due = (reply_ring){0};
}

/* Both connections end; what was in flight is counted, the state goes to
 * down (or stays connecting before the first up), a retry is scheduled
 * with backoff and jitter. */
static void session_fail(redis_broker *rb, const char *what)
{
    size_t unacked = 0;
    if (rb->pub.ctx) {
        unacked = ring_sum(&rb->pub.due);
    }
    conn_close(&rb->pub);
    conn_close(&rb->sub);
    rb->confirm_due = 0;

    char reason[128];
    if (rb->addr.path[0])
        snprintf(reason, sizeof(reason), "redis unix:%.40s: %.70s", rb->addr.path, what);
    else
        snprintf(reason, sizeof(reason), "redis %.40s:%d: %.70s", rb->addr.host, rb->addr.port,
                 what);
    pthread_mutex_lock(&rb->lock);
    size_t refused = 0;
    out_item *it;
    while ((it = wsni_list_first(&rb->outq, out_item, node))) {
        wsni_list_remove(&rb->outq, &it->node);
        refused += it->msgs;
        out_free(it);
    }
    rb->out_len = rb->out_bytes = 0;
    /* Every channel must be asked for again on the next connection. */
    chan_entry *e, *tmp;
    HASH_ITER(hh, rb->chans, e, tmp) { e->subscribed = 0; }
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

static int conn_open(redis_broker *rb, conn *c)
{
    c->ctx = rb->addr.path[0] ? redisConnectUnixNonBlock(rb->addr.path)
                              : redisConnectNonBlock(rb->addr.host, rb->addr.port);
    if (!c->ctx)
        return -1;
    if (c->ctx->err)
        return -1;
    c->connecting = 1;
    return 0;
}

static int send_cmd(conn *c, int argc, const char **argv, const size_t *lens, unsigned char due)
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
    return send_cmd(c, 2, argv, lens, 0);
}

/* Subscribe confirmations are counted only on the subscribed connection,
 * which never owes plain replies once subscribed except to AUTH (sent
 * first) and PING (answered as a "pong" push). */
static int send_channels(redis_broker *rb, int subscribe, const char **names, size_t n)
{
    const char *argv[SUBSCRIBE_CHUNK + 1];
    size_t lens[SUBSCRIBE_CHUNK + 1];
    argv[0] = subscribe ? (rb->sharded ? "SSUBSCRIBE" : "SUBSCRIBE")
                        : (rb->sharded ? "SUNSUBSCRIBE" : "UNSUBSCRIBE");
    lens[0] = strlen(argv[0]);
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = names[i];
        lens[i + 1] = strlen(names[i]);
    }
    return redisAppendCommandArgv(rb->sub.ctx, (int)n + 1, argv, lens) == REDIS_OK ? 0 : -1;
}

/* Sends the (un)subscriptions that changed since the last call; with all
 * set, every wanted channel (a new connection). Returns the channels
 * subscribed, or -1. */
static long sync_channels(redis_broker *rb, int all)
{
    const char *subs[SUBSCRIBE_CHUNK], *unsubs[SUBSCRIBE_CHUNK];
    char *owned[2 * SUBSCRIBE_CHUNK];
    size_t ns = 0, nu = 0, no = 0;
    long total = 0;
    int rc = 0;
    for (;;) {
        /* Names are copied out under the lock, sent without it. */
        pthread_mutex_lock(&rb->lock);
        chan_entry *e, *tmp;
        if (all) {
            HASH_ITER(hh, rb->chans, e, tmp)
            {
                if (ns == SUBSCRIBE_CHUNK)
                    break;
                if (e->wanted && !e->subscribed) {
                    e->subscribed = 1;
                    subs[ns++] = owned[no++] = strdup(e->name);
                }
            }
            if (ns < SUBSCRIBE_CHUNK) {
                /* Nothing older than this connection is dirty any more. */
                while ((e = wsni_list_first(&rb->dirty, chan_entry, dirty_node))) {
                    wsni_list_remove(&rb->dirty, &e->dirty_node);
                    e->in_dirty = 0;
                    if (!e->wanted && !e->subscribed) {
                        HASH_DEL(rb->chans, e);
                        free(e);
                    }
                }
            }
        } else {
            while (ns < SUBSCRIBE_CHUNK && nu < SUBSCRIBE_CHUNK &&
                   (e = wsni_list_first(&rb->dirty, chan_entry, dirty_node))) {
                wsni_list_remove(&rb->dirty, &e->dirty_node);
                e->in_dirty = 0;
                if (e->wanted && !e->subscribed) {
                    e->subscribed = 1;
                    subs[ns++] = owned[no++] = strdup(e->name);
                } else if (!e->wanted && e->subscribed) {
                    e->subscribed = 0;
                    unsubs[nu++] = owned[no++] = strdup(e->name);
                }
                if (!e->wanted && !e->subscribed) {
                    HASH_DEL(rb->chans, e);
                    free(e);
                }
            }
        }
        pthread_mutex_unlock(&rb->lock);
        for (size_t i = 0; i < no; i++)
            if (!owned[i])
                rc = -1;
        if (!rc && ns)
            rc = send_channels(rb, 1, subs, ns);
        if (!rc && nu)
            rc = send_channels(rb, 0, unsubs, nu);
        total += (long)ns;
        for (size_t i = 0; i < no; i++)
            free(owned[i]);
        int more = ns == SUBSCRIBE_CHUNK || nu == SUBSCRIBE_CHUNK;
        ns = nu = no = 0;
        if (rc)
            return -1;
        if (!more)
            return total;
    }
}

/* A connection finished its TCP (or unix) connect. */
static int conn_ready(redis_broker *rb, conn *c)
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
    if (c == &rb->sub) {
        const char *inbox = rb->inbox;
        if (send_channels(rb, 1, &inbox, 1))
            return -1;
        long n = sync_channels(rb, 1);
        if (n < 0)
            return -1;
        rb->confirm_due = (size_t)n + 1;
    }
    return 0;
}

static void maybe_up(redis_broker *rb)
{
    if (!rb->pub.ctx || rb->pub.connecting || !rb->sub.ctx || rb->sub.connecting ||
        rb->confirm_due || rb->pub.due.len || atomic_load(&rb->state) == WSN_BROKER_UP)
        return;
    pthread_mutex_lock(&rb->lock);
    set_state_locked(rb, WSN_BROKER_UP, "");
    pthread_mutex_unlock(&rb->lock);
    if (rb->ever_up)
        atomic_fetch_add(&rb->reconnects, 1);
    rb->ever_up = 1;
    rb->backoff_ms = BACKOFF_MIN_MS;
    rb->next_ping = now_ms() + PING_EVERY_MS;
    wsni_log(rb->srv, WSN_LOG_INFO, "broker up: server %s, every channel subscribed",
             rb->srv->cluster_id);
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

/* One reply on the subscribed connection: 0, or -1 with why. */
/* Why a connection ends, kept by the thread (the reply it quotes is freed
 * before the session ends). */
static const char *refused_why(redis_broker *rb, const char *what, const redisReply *r)
{
    snprintf(rb->why, sizeof(rb->why), "%s: %.80s", what, r->str ? r->str : "");
    return rb->why;
}

static int sub_reply(redis_broker *rb, redisReply *r, const char **why)
{
    if (r->type == REDIS_REPLY_ERROR) {
        *why = refused_why(rb, rb->sub.due.len ? "AUTH refused" : "SUBSCRIBE refused", r);
        return -1;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !is_str(r->element[0])) {
        /* A plain reply: AUTH's. */
        unsigned char due;
        if (ring_pop(&rb->sub.due, &due)) {
            *why = "unexpected reply";
            return -1;
        }
        return 0;
    }
    const char *kind = r->element[0]->str;
    if ((!strcmp(kind, "message") || !strcmp(kind, "smessage")) && r->elements == 3 &&
        is_str(r->element[1]) && r->element[2]->type == REDIS_REPLY_STRING)
        on_message(rb, r->element[1]->str, r->element[2]->str, r->element[2]->len);
    else if (!strcmp(kind, "subscribe") || !strcmp(kind, "ssubscribe")) {
        if (rb->confirm_due)
            rb->confirm_due--;
    } else if (!strcmp(kind, "pong"))
        rb->sub.ping_sent = 0;
    return 0;
}

static int pub_reply(redis_broker *rb, redisReply *r, const char **why)
{
    unsigned char due;
    if (ring_pop(&rb->pub.due, &due)) {
        *why = "unexpected reply";
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* The message was not published. */
        atomic_fetch_add(&rb->refused, due);
        *why = refused_why(rb, due ? "PUBLISH refused" : "AUTH refused", r);
        return -1;
    }
    if (due)
        atomic_fetch_add(&rb->sent, due);
    else if (r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG"))
        rb->pub.ping_sent = 0;
    return 0;
}

/* Reads what the socket has and handles every whole reply. */
static int conn_read(redis_broker *rb, conn *c, const char **why)
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
        int rc = c == &rb->pub ? pub_reply(rb, reply, why) : sub_reply(rb, reply, why);
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

/* Moves queued publishes into the pipeline while it has room. */
static int pump_out(redis_broker *rb)
{
    const char *cmd = rb->sharded ? "SPUBLISH" : "PUBLISH";
    size_t cmd_len = strlen(cmd);
    while (sdslen(rb->pub.ctx->obuf) < PIPE_BYTES) {
        pthread_mutex_lock(&rb->lock);
        out_item *it = wsni_list_first(&rb->outq, out_item, node);
        if (it) {
            wsni_list_remove(&rb->outq, &it->node);
            rb->out_len--;
            rb->out_bytes -= it->len;
        }
        pthread_mutex_unlock(&rb->lock);
        if (!it)
            return 0;
        const char *argv[] = {cmd, it->chan, (const char *)it->data};
        size_t lens[] = {cmd_len, strlen(it->chan), it->len};
        int rc = send_cmd(&rb->pub, 3, argv, lens, (unsigned char)it->msgs);
        if (rc)
            atomic_fetch_add(&rb->refused, it->msgs);
        out_free(it);
        if (rc)
            return -1;
    }
    return 0;
}

static void maybe_ping(redis_broker *rb, int64_t now)
{
    if (atomic_load(&rb->state) != WSN_BROKER_UP || now < rb->next_ping)
        return;
    rb->next_ping = now + PING_EVERY_MS;
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    if (!rb->pub.ping_sent && !send_cmd(&rb->pub, 1, argv, lens, 0))
        rb->pub.ping_sent = now;
    if (!rb->sub.ping_sent && redisAppendCommandArgv(rb->sub.ctx, 1, argv, lens) == REDIS_OK)
        rb->sub.ping_sent = now;
}

/* --- the thread -------------------------------------------------------- */

static void session_start(redis_broker *rb)
{
    if (conn_open(rb, &rb->pub) || conn_open(rb, &rb->sub)) {
        const char *why = rb->pub.ctx && rb->pub.ctx->err   ? rb->pub.ctx->errstr
                          : rb->sub.ctx && rb->sub.ctx->err ? rb->sub.ctx->errstr
                                                            : "cannot connect";
        char copy[128];
        snprintf(copy, sizeof(copy), "%s", why);
        session_fail(rb, copy);
        return;
    }
    rb->connect_deadline = now_ms() + CONNECT_TIMEOUT_MS;
}

static short wanted_events(const conn *c)
{
    if (c->connecting)
        return POLLOUT;
    return (short)(POLLIN | (sdslen(c->ctx->obuf) ? POLLOUT : 0));
}

static int serve(redis_broker *rb, conn *c, short revents, const char **why)
{
    if (c->connecting) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
            return 0;
        if (conn_ready(rb, c)) {
            *why = errno ? strerror(errno) : "connect failed";
            return -1;
        }
        return 0;
    }
    if ((revents & (POLLIN | POLLERR | POLLHUP)) && conn_read(rb, c, why))
        return -1;
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
        if (!rb->pub.ctx && now >= rb->retry_at)
            session_start(rb);

        int active = rb->pub.ctx != NULL;
        int64_t timeout = 1000;
        if (!active)
            timeout = rb->retry_at - now;
        else if (rb->pub.connecting || rb->sub.connecting || rb->confirm_due)
            timeout = rb->connect_deadline - now;
        else if (atomic_load(&rb->state) == WSN_BROKER_UP)
            timeout = rb->next_ping - now;
        if (timeout < 0)
            timeout = 0;

        struct pollfd pfd[3] = {{.fd = rb->efd, .events = POLLIN}};
        if (active) {
            pfd[1] = (struct pollfd){.fd = rb->pub.ctx->fd, .events = wanted_events(&rb->pub)};
            pfd[2] = (struct pollfd){.fd = rb->sub.ctx->fd, .events = wanted_events(&rb->sub)};
        }
        if (poll(pfd, active ? 3 : 1, (int)timeout) < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN) {
            uint64_t n;
            if (read(rb->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                break;
        }
        if (!active || !rb->pub.ctx)
            continue;

        const char *why = NULL;
        now = now_ms();
        int up = atomic_load(&rb->state) == WSN_BROKER_UP;
        if (serve(rb, &rb->pub, pfd[1].revents, &why) || serve(rb, &rb->sub, pfd[2].revents, &why))
            ;
        else if ((rb->pub.connecting || rb->sub.connecting || rb->confirm_due || rb->pub.due.len) &&
                 !up && now >= rb->connect_deadline)
            why = "no answer in time";
        else if ((rb->pub.ping_sent && now - rb->pub.ping_sent > REPLY_TIMEOUT_MS) ||
                 (rb->sub.ping_sent && now - rb->sub.ping_sent > REPLY_TIMEOUT_MS))
            why = "no answer to PING";
        if (!why) {
            maybe_up(rb);
            if (atomic_load(&rb->state) == WSN_BROKER_UP) {
                if (sync_channels(rb, 0) < 0 || pump_out(rb))
                    why = "out of memory";
                else
                    maybe_ping(rb, now);
            }
        }
        if (!why && !rb->pub.connecting && conn_flush(&rb->pub, &why) == 0 && !rb->sub.connecting)
            conn_flush(&rb->sub, &why);
        if (why) {
            char copy[128];
            snprintf(copy, sizeof(copy), "%s", why);
            session_fail(rb, copy);
        }
    }
    conn_close(&rb->pub);
    conn_close(&rb->sub);
    return NULL;
}

/* --- the broker table (I/O thread) -------------------------------------- */

static void enqueue(redis_broker *rb, int kind, const char *chan, const char *target,
                    outgoing *const *outs, size_t count)
{
    if (atomic_load(&rb->state) != WSN_BROKER_UP) {
        atomic_fetch_add(&rb->refused, count);
        return;
    }
    out_item *it = calloc(1, sizeof(*it));
    if (it) {
        it->msgs = (unsigned)count;
        it->chan = strdup(chan);
        it->data = wsni_envelope_encode(kind, rb->origin, rb->seq++, target, outs, count, &it->len);
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

static int redis_publish_to_remote(wsn_server *srv, const char *client_id, outgoing *o)
{
    redis_broker *rb = rb_of(srv);
    char sid[16], chan[96];
    if (server_of(client_id, sid, sizeof(sid)))
        return WSN_EINVAL;
    snprintf(chan, sizeof(chan), "wsn:%d:i:%s", rb->addr.db, sid);
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
            HASH_ADD(hh, rb->chans, name[0], len, e);
        }
    }
    int poke_due = 0;
    if (e) {
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

static void redis_kept_local(wsn_server *srv, size_t count)
{
    atomic_fetch_add(&rb_of(srv)->refused, count);
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
};

/* --- life --------------------------------------------------------------- */

int wsni_redis_new(wsn_server *srv, const char *url, int sharded, const wsni_redis_hooks *hooks,
                   char *why, size_t why_len)
{
    redis_broker *rb = calloc(1, sizeof(*rb));
    if (!rb)
        return WSN_ENOMEM;
    if (wsni_broker_url_parse(url, &rb->addr, why, why_len)) {
        free(rb);
        return WSN_EINVAL;
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
    snprintf(rb->inbox, sizeof(rb->inbox), "wsn:%d:i:%s", rb->addr.db, srv->cluster_id);
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
    chan_entry *e, *tmp;
    HASH_ITER(hh, rb->chans, e, tmp)
    {
        HASH_DEL(rb->chans, e);
        free(e);
    }
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

const char *wsni_redis_state_name(int state) { return state_name(state); }
