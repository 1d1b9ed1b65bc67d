/* The engine's transport interface on libwebsockets: write requests,
 * cutting a connection, timers and the clock. */
#include "transport/gate.h"
#include "transport/lws_state.h"
#include "transport/tls.h"

#include "engine/frame.h"
#include "engine/objects.h"
#include "transport/queue_depth.h"

#include <assert.h>

/* Frames are built with the headroom lws_write() needs before the data. */
static_assert(WSNI_FRAME_PRE == LWS_PRE, "frame headroom is lws's LWS_PRE");

static void want_write(wsn_client *c)
{
    if (wsni_conn_of(c)->wsi)
        lws_callback_on_writable(wsni_conn_of(c)->wsi);
    if (!c->srv->lws->depth_armed)
        wsni_queue_depth_watch(c->srv);
}

static void cut(wsn_client *c)
{
    if (wsni_conn_of(c)->wsi)
        lws_set_timeout(wsni_conn_of(c)->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The engine's timers: one list per server sorted by due time, behind one
 * lws timer for its head. lws 4.1 keeps its timers in one sorted list and
 * inserts from the head, so with a write_wait deadline per client
 * (issue 16 item 6) arming cost O(clients): 10,000 subscribers fanned out
 * at 0.42-0.78 of the speed before. Nearly every engine timer is armed for
 * later than all the others (the same delay, armed in time order), so
 * this list inserts from its tail: O(1) for them. */
typedef struct timer_rec {
    wsni_list_node node; /* in srv->lws->timers while armed */
    int64_t due;
    wsn_server *srv;
    int armed; /* zeroed: not armed */
} timer_rec;
static_assert(sizeof(timer_rec) <= WSNI_TIMER_IMPL_SIZE, "a timer record fits in wsni_timer");

static timer_rec *rec_of(wsni_timer *t)
{
    return (timer_rec *)(void *)t->impl;
}

static void schedule_head(wsn_server *srv);

static void timers_fired(lws_sorted_usec_list_t *sul)
{
    struct wsni_lws *lw = wsni_container_of(sul, struct wsni_lws, timers_sul);
    lw->timers_sul_due = 0;
    int64_t now = lws_now_usecs();
    timer_rec *r;
    /* A callback may arm or cancel timers: the head is read anew each time. */
    while ((r = wsni_list_first(&lw->timers, timer_rec, node)) && r->due <= now) {
        wsni_list_remove(&lw->timers, &r->node);
        r->armed = 0;
        wsni_timer *t = wsni_container_of((void *)r, wsni_timer, impl);
        t->fn(t);
    }
    schedule_head(lw->srv);
}

/* The lws timer follows the head when the head is earlier than it; a
 * cancelled head leaves it early, and it then finds nothing due. */
static void schedule_head(wsn_server *srv)
{
    struct wsni_lws *lw = srv->lws;
    timer_rec *head = wsni_list_first(&lw->timers, timer_rec, node);
    if (!head || (lw->timers_sul_due && lw->timers_sul_due <= head->due))
        return;
    lw->timers_sul_due = head->due;
    int64_t delay = head->due - lws_now_usecs();
    lws_sul_schedule(lw->ctx, 0, &lw->timers_sul, timers_fired, delay > 0 ? delay : 0);
}

static void timer_arm(wsn_server *srv, wsni_timer *t, wsni_timer_fn fn, int64_t delay_us)
{
    timer_rec *r = rec_of(t);
    wsni_list *l = &srv->lws->timers;
    if (r->armed)
        wsni_list_remove(l, &r->node);
    t->fn = fn;
    r->srv = srv;
    r->armed = 1;
    r->due = lws_now_usecs() + delay_us;
    wsni_list_node *after = l->tail;
    while (after && wsni_container_of(after, timer_rec, node)->due > r->due)
        after = after->prev;
    wsni_list_insert_after(l, after, &r->node);
    schedule_head(srv);
}

static void timer_cancel(wsni_timer *t)
{
    timer_rec *r = rec_of(t);
    if (r->armed)
        wsni_list_remove(&r->srv->lws->timers, &r->node);
    r->armed = 0;
}

static int64_t now_us(wsn_server *srv)
{
    (void)srv;
    return lws_now_usecs();
}

const wsni_transport wsni_lws_transport = {
    .want_write = want_write,
    .cut = cut,
    .timer_arm = timer_arm,
    .timer_cancel = timer_cancel,
    .now_us = now_us,
    .wake = wsni_loop_wake,
    .begin_shutdown = wsni_loop_begin_shutdown,
    .pause_rx = wsni_loop_pause_rx,
    .resume_client_rx = wsni_loop_resume_client_rx,
    .answer_upgrade = wsni_gate_answer,
    .reload_tls = wsni_tls_reload,
};
