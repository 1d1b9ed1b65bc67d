/* The engine's transport interface on libwebsockets: write requests,
 * cutting a connection, timers (lws_sul) and the clock. */
#include "transport/lws_state.h"

#include "engine/frame.h"
#include "engine/objects.h"

#include <assert.h>

static_assert(sizeof(lws_sorted_usec_list_t) <= WSNI_TIMER_IMPL_SIZE,
              "an lws timer fits in wsni_timer");
static_assert(offsetof(wsni_timer, impl) == 0, "the lws timer is first in wsni_timer");
/* Frames are built with the headroom lws_write() needs before the data. */
static_assert(WSNI_FRAME_PRE == LWS_PRE, "frame headroom is lws's LWS_PRE");

static void want_write(wsn_client *c)
{
    if (wsni_conn_of(c)->wsi)
        lws_callback_on_writable(wsni_conn_of(c)->wsi);
}

static void cut(wsn_client *c)
{
    if (wsni_conn_of(c)->wsi)
        lws_set_timeout(wsni_conn_of(c)->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static void fired(lws_sorted_usec_list_t *sul)
{
    wsni_timer *t = (wsni_timer *)(void *)sul;
    t->fn(t);
}

static void timer_arm(wsn_server *srv, wsni_timer *t, wsni_timer_fn fn, int64_t delay_us)
{
    t->fn = fn;
    lws_sul_schedule(srv->lws->ctx, 0, (lws_sorted_usec_list_t *)(void *)t->impl, fired, delay_us);
}

static void timer_cancel(wsni_timer *t)
{
    lws_sul_cancel((lws_sorted_usec_list_t *)(void *)t->impl);
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
};
