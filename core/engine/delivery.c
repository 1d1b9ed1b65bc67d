/* The I/O thread's side of delivery: per-client bounded queues, fan-out to
 * a channel, backpressure, and closing a client politely. */
#include "engine/objects.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ring's invariant: len entries from head, within a capacity that
 * never exceeds send_buffer (checked in debug builds at every change). */
static void ring_check(const wsn_client *c)
{
    assert(c->ring_len <= c->ring_cap);
    assert(c->ring_cap <= c->srv->send_buffer);
    assert(!c->ring_cap || c->ring_head < c->ring_cap);
    assert(c->ring_len || !c->ring_bytes);
    (void)c;
}


/* Doubles the queue (up to send_buffer), keeping the order. */
static int ring_grow(wsn_client *c)
{
    unsigned cap = c->ring_cap ? c->ring_cap * 2 : 8;
    if (cap > c->srv->send_buffer)
        cap = c->srv->send_buffer;
    ring_slot *ring = malloc(cap * sizeof(*ring));
    if (!ring)
        return -1;
    for (unsigned i = 0; i < c->ring_len; i++)
        ring[i] = c->ring[wsni_ring_slot_of(c, i)];
    free(c->ring);
    c->ring = ring;
    c->ring_cap = cap;
    c->ring_head = 0;
    ring_check(c);
    return 0;
}

/* Room for f: a free slot (send_buffer frames) and, unless the queue is
 * empty, room for its bytes (send_buffer_bytes), so that one frame bigger
 * than the byte bound still goes to a client that has read everything. */
static inline int ring_has_room(wsn_client *c, const wsn_frame *f)
{
    if (c->ring_len) {
        size_t cap_bytes = c->srv->send_buffer_bytes;
        if (cap_bytes && c->ring_bytes + f->wire_len > cap_bytes)
            return 0;
    }
    if (c->ring_len < c->ring_cap)
        return 1;
    return c->ring_cap < c->srv->send_buffer && !ring_grow(c);
}

void wsni_client_queue_pop(wsn_client *c, unsigned count)
{
    while (count-- && c->ring_len) {
        ring_slot *s = &c->ring[c->ring_head];
        assert(c->ring_bytes >= s->frame->wire_len);
        c->ring_bytes -= s->frame->wire_len;
        wsni_frame_unref(s->frame);
        s->frame = NULL;
        c->ring_head = c->ring_head + 1 == c->ring_cap ? 0 : c->ring_head + 1;
        c->ring_len--;
    }
    ring_check(c);
}

static void deadline_fired(wsni_timer *tm);

/* The queue stopped being empty: its oldest frame has write_wait to
 * leave. Armed once; when it fires it looks at whichever frame is oldest
 * then, so a client that keeps reading costs one timer per write_wait, not
 * one per frame. Out of line: ring_push runs once per delivery, this once
 * per write_wait. */
static __attribute__((noinline)) void arm_age_deadline(wsn_client *c, int64_t queued_at)
{
    c->deadline = DEADLINE_AGE;
    wsn_server *srv = c->srv;
    int64_t delay = srv->write_wait_ms * 1000 - (wsni_now_us(srv) - queued_at);
    wsni_timer_arm(srv, &c->deadline_timer, deadline_fired, delay > 0 ? delay : 0);
}

static inline __attribute__((always_inline)) void ring_push(wsn_client *c, wsn_frame *f,
                                                            int64_t queued_at)
{
    assert(c->ring_len < c->ring_cap);
    ring_slot *s = &c->ring[wsni_ring_slot_of(c, c->ring_len)];
    s->frame = f;
    s->queued_at = queued_at;
    c->ring_len++;
    c->ring_bytes += f->wire_len;
    if (c->deadline == DEADLINE_NONE)
        arm_age_deadline(c, queued_at);
}

static void unstall(wsn_client *c)
{
    if (!c->stalled)
        return;
    wsn_server *srv = c->srv;
    pthread_mutex_lock(&srv->lock);
    c->stalled = 0;
    assert(srv->stalled_clients > 0);
    srv->stalled_clients--;
    wsni_room_update(srv);
    /* A sender to this one client may go on even while others stall. */
    if (srv->publish_waiters)
        pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->lock);
}

/* The oldest frame waiting behind the full queue, or NULL. */
static frame_node *first_waiting(wsn_client *c)
{
    return wsni_list_first(&c->overflow, frame_node, node);
}

void wsni_client_refill_from_overflow(wsn_client *c)
{
    frame_node *n;
    while ((n = first_waiting(c)) && ring_has_room(c, n->frame)) {
        wsni_list_remove(&c->overflow, &n->node);
        ring_push(c, n->frame, n->queued_at);
        free(n);
    }
    if (!c->overflow.head)
        unstall(c);
}

void wsni_client_queue_clear(wsn_client *c)
{
    uint64_t discarded = c->ring_len;
    wsni_client_queue_pop(c, c->ring_len);
    frame_node *n;
    while ((n = first_waiting(c))) {
        wsni_list_remove(&c->overflow, &n->node);
        wsni_frame_unref(n->frame);
        free(n);
        discarded++;
    }
    if (discarded)
        wsni_count_io(&c->srv->counters.discarded, discarded);
    unstall(c);
}

void wsni_client_request_write_now(wsn_client *c)
{
    if (c->attached && !c->write_requested) {
        c->write_requested = 1;
        c->srv->transport->want_write(c);
    }
}

static void flush_writes(wsni_timer *tm)
{
    wsn_server *srv = wsni_container_of(tm, wsn_server, flush_timer);
    srv->flush_armed = 0;
    for (size_t i = 0; i < srv->flush_len; i++) {
        wsn_client *c = srv->flush_list[i];
        if (!c)
            continue;
        c->flush_slot = 0;
        if (c->attached)
            srv->transport->want_write(c);
    }
    srv->flush_len = 0;
}

void wsni_client_flush_forget(wsn_client *c)
{
    if (c->flush_slot) {
        c->srv->flush_list[c->flush_slot - 1] = NULL;
        c->flush_slot = 0;
    }
}

/* While the server is busy writing (it wrote within the coalescing
 * window), write requests wait for one flush at most a window away, so a
 * client's frames from several publishes leave in one send. A server that
 * has been quiet writes at once: no added delay at low rates. */
void wsni_client_request_write(wsn_client *c)
{
    wsn_server *srv = c->srv;
    if (!c->attached || c->write_requested)
        return;
    if (!srv->flush_delay_us || wsni_now_us(srv) - srv->last_write >= srv->flush_delay_us) {
        wsni_client_request_write_now(c);
        return;
    }
    if (srv->flush_len == srv->flush_cap) {
        size_t cap = srv->flush_cap ? srv->flush_cap * 2 : 256;
        wsn_client **p = realloc(srv->flush_list, cap * sizeof(*p));
        if (!p) {
            wsni_client_request_write_now(c);
            return;
        }
        srv->flush_list = p;
        srv->flush_cap = cap;
    }
    c->write_requested = 1;
    srv->flush_list[srv->flush_len++] = c;
    c->flush_slot = (int)srv->flush_len;
    if (!srv->flush_armed) {
        srv->flush_armed = 1;
        wsni_timer_arm(srv, &srv->flush_timer, flush_writes, srv->flush_delay_us);
    }
}

void wsni_client_kill(wsn_client *c)
{
    c->srv->transport->cut(c);
}

static void drop_for_backpressure(wsn_client *c, wsni_closing reason, const char *why);

/* deadline_timer: close_grace ran out for a dropped client's close frame
 * or for a client's answer to ours, or the oldest queued frame may have
 * waited write_wait. */
static void deadline_fired(wsni_timer *tm)
{
    wsn_client *c = wsni_container_of(tm, wsn_client, deadline_timer);
    wsn_server *srv = c->srv;
    enum client_deadline was = (enum client_deadline)c->deadline;
    c->deadline = DEADLINE_NONE;
    if (was == DEADLINE_GRACE) {
        wsni_log(srv, WSN_LOG_INFO, "client %s: close not completed within close_grace, dropping",
                 c->id);
        wsni_client_kill(c);
        return;
    }
    if (!c->ring_len)
        return; /* everything left; the next frame arms it again */
    int64_t age = wsni_now_us(srv) - c->ring[c->ring_head].queued_at;
    int64_t limit = srv->write_wait_ms * 1000;
    if (age < limit) {
        c->deadline = DEADLINE_AGE;
        wsni_timer_arm(srv, &c->deadline_timer, deadline_fired, limit - age);
        return;
    }
    if (c->closing) {
        /* A polite close (shutdown) waits behind data that cannot leave. */
        wsni_log(srv, WSN_LOG_INFO, "client %s: queue not written within write_wait, dropping",
                 c->id);
        wsni_client_kill(c);
        return;
    }
    drop_for_backpressure(c, WSNI_CLOSED_SLOW, "oldest queued message older than write_wait");
}

void wsni_client_begin_close(wsn_client *c, uint16_t code, const char *reason, int discard_queue)
{
    if (!c->attached || c->closing)
        return;
    c->closing = 1;
    c->close_code = code;
    /* A close reason is at most 123 bytes on the wire. */
    c->close_reason = strndup(reason, 123);
    if (discard_queue) {
        /* A dropped client gets no more data: only the close frame, and
         * close_grace for it to leave before the socket is cut. */
        wsni_client_queue_clear(c);
        c->deadline = DEADLINE_GRACE;
        wsni_timer_arm(c->srv, &c->deadline_timer, deadline_fired,
                       c->srv->close_grace_ms * 1000);
    }
    wsni_client_request_write(c);
}

void wsni_client_close_sent(wsn_client *c)
{
    /* A dropped client's grace runs from its drop: not extended. */
    if (c->deadline == DEADLINE_GRACE)
        return;
    c->deadline = DEADLINE_GRACE;
    wsni_timer_arm(c->srv, &c->deadline_timer, deadline_fired, c->srv->close_grace_ms * 1000);
}

static void drop_for_backpressure(wsn_client *c, wsni_closing closing, const char *why)
{
    const char *reason = c->srv->backpressure_reason;
    wsni_count_io(&c->srv->counters.closed[closing], 1);
    wsni_log(c->srv, WSN_LOG_WARN, "client %s: %s, closing (%s)", c->id, why, reason);
    wsni_client_begin_close(c, 1001 /* going away */, reason, 1);
}

static int deliver_frame(wsn_server *srv, wsn_client *c, wsn_frame *f, int may_wait, int64_t now)
{
    if (!c->attached || c->closing) {
        wsni_count_io(&srv->counters.missed, 1);
        return WSN_OK;
    }
    if (!c->overflow.head && ring_has_room(c, f)) {
        ring_push(c, frame_ref(f), now);
        wsni_client_request_write(c);
        return WSN_OK;
    }
    if (srv->drop_on_backpressure || !may_wait) {
        wsni_count_io(&srv->counters.missed, 1);
        if (!srv->drop_on_backpressure)
            return WSN_EBACKPRESSURE;
        drop_for_backpressure(c, WSNI_CLOSED_QUEUE_FULL, "send queue full");
        return WSN_OK;
    }
    /* Block mode: keep the frame in order behind the full queue; while any
     * client is stalled, publishers wait before queueing more, so this list
     * holds at most the commands already queued. The queue's deadline is
     * already armed: the stall ends in a drop once its oldest frame has
     * waited write_wait. */
    frame_node *n = calloc(1, sizeof(*n));
    if (!n) {
        wsni_count_io(&srv->counters.missed, 1);
        drop_for_backpressure(c, WSNI_CLOSED_QUEUE_FULL, "out of memory for its queue");
        return WSN_ENOMEM;
    }
    n->frame = frame_ref(f);
    n->queued_at = now;
    wsni_list_append(&c->overflow, &n->node);
    if (!c->stalled) {
        pthread_mutex_lock(&srv->lock);
        c->stalled = 1;
        srv->stalled_clients++;
        wsni_room_update(srv);
        pthread_mutex_unlock(&srv->lock);
    }
    return WSN_OK;
}

int wsni_deliver_frame(wsn_server *srv, wsn_client *c, wsn_frame *f, int may_wait)
{
    wsni_count_io(&srv->counters.offered, 1);
    return deliver_frame(srv, c, f, may_wait, wsni_now_us(srv));
}

int wsni_outgoing_prepare(wsn_server *srv, outgoing *o)
{
    for (int fmt = 0; fmt < FORMAT_COUNT; fmt++)
        if ((srv->encode_all_formats ||
             atomic_load_explicit(&srv->format_clients[fmt], memory_order_relaxed)) &&
            !wsni_outgoing_frame(o, (enum wire_format)fmt))
            return WSN_ENOMEM;
    return WSN_OK;
}

static int deliver_outgoing(wsn_server *srv, wsn_client *c, outgoing *o, int may_wait, int64_t now)
{
    wsn_frame *f = wsni_outgoing_frame(o, c->format);
    if (!f) {
        wsni_count_io(&srv->counters.missed, 1);
        wsni_log(srv, WSN_LOG_ERROR, "client %s: message lost: encoding failed", c->id);
        return WSN_ENOMEM;
    }
    return deliver_frame(srv, c, f, may_wait, now);
}

int wsni_deliver_to_client(wsn_server *srv, wsn_client *c, outgoing *o, int may_wait)
{
    wsni_count_io(&srv->counters.offered, 1);
    return deliver_outgoing(srv, c, o, may_wait, wsni_now_us(srv));
}

int wsni_deliver_run_to_channel(wsn_server *srv, const char *name, outgoing *const *outs, size_t count,
                           int may_wait)
{
    channel_entry *ch = wsni_registry_find(&srv->reg, name);
    if (!ch)
        return WSN_OK;
    int rc = WSN_OK;
    /* One clock reading per run, not per member: the frames' queue times.
     * Counted per run too: each member is offered every frame (members
     * stay while the walk runs: a dropped client leaves on CLOSED). */
    int64_t now = wsni_now_us(srv);
    wsni_count_io(&srv->counters.offered, HASH_CNT(hh_chan, ch->members) * count);
    membership *m, *tmp;
    HASH_ITER(hh_chan, ch->members, m, tmp)
    {
        for (size_t i = 0; i < count; i++) {
            int r = deliver_outgoing(srv, m->client, outs[i], may_wait, now);
            if (r)
                rc = r;
        }
    }
    return rc;
}

int wsni_deliver_to_channel(wsn_server *srv, const char *name, outgoing *o, int may_wait)
{
    return wsni_deliver_run_to_channel(srv, name, &o, 1, may_wait);
}

void wsni_client_attach(wsn_client *c)
{
    wsni_count_io(&c->srv->counters.accepted, 1);
    c->attached = 1;
    atomic_store(&c->connected, 1);
    atomic_fetch_add(&c->srv->format_clients[c->format], 1);
}

void wsni_client_detach(wsn_client *c)
{
    wsn_server *srv = c->srv;
    wsni_timer_cancel(srv, &c->deadline_timer);
    c->deadline = DEADLINE_NONE;
    wsni_client_flush_forget(c);
    atomic_store(&c->connected, 0);
    atomic_fetch_sub(&srv->format_clients[c->format], 1);
    wsni_registry_remove_client(&srv->reg, c);
    wsni_client_queue_clear(c);
    c->attached = 0;
    wsni_count_io(&srv->counters.ended, 1);
}
