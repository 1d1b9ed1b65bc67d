/* The two central objects, wsn_server and wsn_client, and the engine's
 * calls on them. Each field says which thread owns it: "lock" =
 * srv->lock, "io" = the I/O thread only, "const" = set before other
 * threads can see the object. The fields here are the engine's and the
 * shell's (the lock, state, command and event queues, errors); the
 * transport's part is its own struct, a pointer in wsn_server (struct
 * wsni_lws) and an opaque transport_part in wsn_client (struct
 * wsni_conn), both in transport/lws_state.h. A layer changes another's
 * fields only through that layer's calls (docs/architecture.md, "Layers").
 *
 * Owns (declarations): delivery.c, room.c, log.c, metadata.c. */
#ifndef WSN_ENGINE_OBJECTS_H
#define WSN_ENGINE_OBJECTS_H

#include "engine/counters.h"
#include "engine/frame.h"
#include "engine/outgoing.h"
#include "engine/registry.h"
#include "engine/transport.h"
#include "wsnotify.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdatomic.h>
#include "util/hash.h"

/* The transport's per-server state, seen here only as a pointer. */
struct wsni_lws;
/* The shell's event queue (shell/events.h). */
struct event_queue;

enum server_state { SRV_NEW, SRV_RUNNING, SRV_DRAINING, SRV_STOPPED };

typedef struct frame_node {
    wsni_list_node node; /* in the client's overflow */
    wsn_frame *frame;
    int64_t queued_at; /* transport clock, us: when its publish was applied */
} frame_node;

/* A slot of a client's send queue: the frame and when it was queued, so
 * write_wait measures the age of the oldest frame still waiting. */
typedef struct ring_slot {
    wsn_frame *frame;
    int64_t queued_at;
} ring_slot;

/* What deadline_timer is armed for (delivery.c). */
enum client_deadline { DEADLINE_NONE, DEADLINE_AGE, DEADLINE_GRACE };

struct meta_entry;
struct batch;
struct batch_timer;

/* Laid out without holes: 10,000 idle clients are 10,000 of these. */
struct wsn_client {
    atomic_int refs;
    enum wire_format format; /* const */
    wsn_server *srv;       /* const; holds a server reference */
    char id[24];           /* const */
    char remote[48];       /* const: INET6_ADDRSTRLEN fits */
    const char *subprotocol; /* const: "" or a name in srv->protocols */

    pthread_mutex_t meta_lock;
    struct meta_entry *meta; /* meta_lock */
    size_t meta_bytes;       /* meta_lock */

    UT_hash_handle hh; /* srv->clients_by_id, lock */

    /* io: the outgoing queue (delivery.c) */
    ring_slot *ring; /* grows on demand up to send_buffer slots */
    unsigned ring_head, ring_len, ring_cap;
    int flush_slot;       /* index in srv->flush_list + 1, 0 when not there */
    size_t ring_bytes;    /* wire bytes of the frames in ring (send_buffer_bytes) */
    wsni_list overflow; /* of frame_node; block mode: waits for room */
    membership *subs;
    /* One timer for two deadlines that never overlap: write_wait for the
     * oldest queued frame (checked lazily: armed when the queue stops
     * being empty, re-armed for the next oldest when it fires), then
     * close_grace once dropped (dropping empties the queue) or once the
     * close frame left (the queue is empty by then). */
    wsni_timer deadline_timer;
    char *close_reason;   /* set with closing */
    struct wsni_expiry *expiry; /* io: NULL unless the host set one (engine/expiry.c) */
    size_t host_bytes;    /* see host_messages */
    atomic_int connected; /* written by io, read anywhere */
    /* Memberships plus subscribes accepted and not yet applied: the
     * shell's count against max_subscriptions (shell/publish.c takes a
     * slot, shell/commands.c gives it back when applying adds nothing). */
    atomic_uint sub_slots;
    /* The shell's event queue: this client's MESSAGE events waiting for
     * the host (with host_bytes), under that queue's lock
     * (shell/events.c). At its share (client_event_queue, _bytes) reads
     * from this client alone pause (host_paused). */
    uint32_t host_messages;
    uint16_t close_code;
    bool stalled;         /* written by io under srv->lock; publishers read it
                             under the lock */
    bool attached;        /* io: between wsni_client_attach and _detach */
    bool write_requested; /* io: the transport was asked and has not served it */
    bool closing;         /* close frame pending: write what remains, then close */
    unsigned char deadline; /* io: enum client_deadline */
    bool host_paused;       /* see host_messages */
    /* The transport's part of the connection (its socket, reassembly,
     * keepalive links, ...): its own struct, which only it reads, kept
     * here so that an idle client stays one allocation. */
    alignas(WSNI_CONN_IMPL_ALIGN) unsigned char transport_part[WSNI_CONN_IMPL_SIZE];
};

typedef struct handler {
    wsn_event_fn fn;
    void *user;
} handler;

typedef struct command command;
typedef struct wsni_broker wsni_broker;

struct wsn_server {
    atomic_int refs; /* the host's, plus one per client object alive */
    const wsni_transport *transport; /* const: what the engine calls the network through */
    const wsni_broker *broker; /* const: where publishes go (engine/broker.h) */
    void *broker_impl;         /* const pointer: the broker's own state (core/broker/) */
    int encode_all_formats;    /* const: publishers encode every wire format */
    char cluster_id[12];       /* const: "" or, with a broker, this server's id
                                  in the cluster (in its clients' ids) */

    /* const after wsn_server_new */
    wsn_options *opts;
    int64_t write_wait_ms, pong_wait_ms, ping_period_ms, close_grace_ms;
    size_t read_limit, max_channel_name, max_metadata_bytes;
    unsigned max_subscriptions; /* per client; 0 = unbounded */
    unsigned send_buffer;
    size_t send_buffer_bytes; /* 0 = frames only */
    int drop_on_backpressure, events_on_io_thread, max_clients, compression, raw_incoming;
    int malloc_trim;    /* WSN_OPT_MALLOC_TRIM */
    size_t event_queue_limit;
    size_t max_partial_bytes; /* WSN_OPT_MAX_PARTIAL_BYTES; 0 = no bound */
    const char *backpressure_reason; /* const: in opts */
    /* const: lines above log_level go to log_sink (the shell's: the host's
     * logger or the pulled log queue); WSN_LOG_NONE when neither is set. */
    int log_level;
    void (*log_sink)(wsn_server *srv, wsn_log_level level, const char *msg);
    handler handlers[WSN_EVENT_UPGRADE + 1]; /* const once started */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    enum server_state state;  /* lock */
    int start_called;         /* lock */
    int start_result;         /* lock; 1 = still starting */
    int port;                 /* lock */
    int io_done;              /* lock: the I/O thread has finished */
    int join_claimed, joined; /* lock */
    int clients_cut;          /* lock: shutdown had to drop connections */
    pthread_t io_tid;         /* const once start_called */
    int ctx_alive;            /* lock: the transport may be woken */
    wsni_list commands;       /* lock: of command (shell/commands.h), FIFO */
    size_t cmd_publishes;     /* lock: publish commands queued */
    int publish_waiters;      /* lock */
    int stalled_clients;      /* lock */
    int room_fd;              /* const: eventfd, readable while room_open */
    int room_open;            /* lock: see wsn_server_room_fd */
    wsn_client *clients_by_id; /* lock */
    struct wsni_waiting_upgrade *upgrades_waiting; /* lock: ids the host may answer */
    int connected;            /* lock */
    atomic_int format_clients[FORMAT_COUNT]; /* io writes; publishers read */

    struct event_queue *events; /* const pointer: made by wsn_server_new */

    pthread_mutex_t err_lock;
    char last_error[256]; /* err_lock */
    pthread_mutex_t log_lock;

    pthread_mutex_t batch_lock;
    struct batch *batches;       /* batch_lock: pending batches by key */
    uint64_t batch_generation;   /* batch_lock */
    size_t max_pending_batches, max_batch_messages, max_batch_bytes; /* const */

    wsni_counters counters; /* each its own atomic (engine/counters.h) */

    /* io */
    registry reg;
    wsn_client **flush_list; /* clients whose write request waits for the flush */
    size_t flush_len, flush_cap;
    int flush_armed;
    wsni_timer flush_timer;
    int64_t flush_delay_us;
    int64_t last_write; /* when data last left for any client */
    wsni_list batch_timers; /* io: armed ttl timers (batch.c) */
    /* The lws transport's own state (transport/lws_state.h): its context,
     * the coalesce buffer, keepalive's lists, the quiet-buffer list, its
     * timers and the receive-buffer pool. Made by wsni_loop_start, freed
     * by the I/O thread as it ends; no other layer reads it. */
    struct wsni_lws *lws;
};

/* log.c: formats and hands the line to srv->log_sink (any thread). */
void wsni_log(wsn_server *srv, wsn_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* room.c: whether a publish may be queued now (wsn_server_room_fd). */
/* Publish commands queued at most; beyond this publishers wait (both
 * modes), so a publisher faster than the I/O thread cannot grow memory
 * without bound. */
#define WSNI_COMMAND_QUEUE_LIMIT 16384
/* Lock held: room as wsn_server_room_fd() documents it. */
int wsni_room_open(const wsn_server *srv);
/* Lock held: room may have changed; the room fd is written only when it
 * flips, so this costs a compare otherwise. */
void wsni_room_update(wsn_server *srv);

/* Lock held: no client is stalled any more (the I/O thread has ended). */
static inline void wsni_stalls_reset(wsn_server *srv) { srv->stalled_clients = 0; }

/* metadata.c */
void wsni_metadata_clear(wsn_client *c);

/* delivery.c (io) */
int wsni_deliver_frame(wsn_server *srv, wsn_client *c, wsn_frame *f, int may_wait);
int wsni_deliver_to_channel(wsn_server *srv, const char *channel, outgoing *o, int may_wait);
/* Several publishes to one channel, in order: each member's queue gets all
 * of them in one visit. With many subscribers one walk over the members
 * per run, not per message, keeps the cache misses per delivery down. */
int wsni_deliver_run_to_channel(wsn_server *srv, const char *channel, outgoing *const *outs,
                           size_t count, int may_wait);
int wsni_deliver_to_client(wsn_server *srv, wsn_client *c, outgoing *o, int may_wait);
/* Encodes, in the caller's thread, the formats that clients use now. */
int wsni_outgoing_prepare(wsn_server *srv, outgoing *o);
void wsni_client_begin_close(wsn_client *c, uint16_t code, const char *reason, int discard_queue);
/* The transport handed c's close frame to the wire: c has close_grace to
 * answer with its own before its socket is cut. */
void wsni_client_close_sent(wsn_client *c);
void wsni_client_queue_clear(wsn_client *c);
void wsni_client_request_write(wsn_client *c);
/* Asks lws for WRITEABLE now (a write pass already under way). */
void wsni_client_request_write_now(wsn_client *c);
/* Forgets a pending delayed write request (the client is closing). */
void wsni_client_flush_forget(wsn_client *c);
/* Queue ops used by the writer. The ring's slot of index (< ring_cap;
 * ring_head < ring_cap too): one subtraction instead of a division on
 * every queue access. Inline: the writer peeks twice per send. */
static inline unsigned wsni_ring_slot_of(const wsn_client *c, unsigned index)
{
    unsigned slot = c->ring_head + index;
    return slot >= c->ring_cap ? slot - c->ring_cap : slot;
}
static inline wsn_frame *wsni_client_queue_peek(const wsn_client *c, unsigned index)
{
    return index < c->ring_len ? c->ring[wsni_ring_slot_of(c, index)].frame : NULL;
}
void wsni_client_queue_pop(wsn_client *c, unsigned count);
void wsni_client_refill_from_overflow(wsn_client *c);
void wsni_client_kill(wsn_client *c);
/* The transport's calls when a connection begins (c->format set) and
 * ends: the engine's side of it (connected, the format count, the queue,
 * the memberships, the deadline and flush slot). */
void wsni_client_attach(wsn_client *c);
void wsni_client_detach(wsn_client *c);

/* The transport serves c's write request now (a later want_write is a new
 * one) and reads what is left to send. */
static inline void wsni_client_write_granted(wsn_client *c) { c->write_requested = 0; }
static inline unsigned wsni_client_queued(const wsn_client *c) { return c->ring_len; }
/* Whether a close frame is due once the queue is empty, and with what. */
static inline int wsni_client_close_due(const wsn_client *c, uint16_t *code, const char **reason)
{
    if (!c->closing)
        return 0;
    *code = c->close_code;
    *reason = c->close_reason ? c->close_reason : "";
    return 1;
}
/* Data left for a client at now_us (the clock of transport->now_us): the
 * coalescing window measures from here. */
static inline void wsni_server_wrote(wsn_server *srv, int64_t now_us) { srv->last_write = now_us; }

/* The engine's timers and clock, through the server's transport. */
static inline void wsni_timer_arm(wsn_server *srv, wsni_timer *t, wsni_timer_fn fn,
                                  int64_t delay_us)
{
    srv->transport->timer_arm(srv, t, fn, delay_us);
}

static inline void wsni_timer_cancel(wsn_server *srv, wsni_timer *t)
{
    srv->transport->timer_cancel(t);
}

static inline int64_t wsni_now_us(wsn_server *srv) { return srv->transport->now_us(srv); }

#endif
