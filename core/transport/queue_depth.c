#include "transport/queue_depth.h"

#include "transport/lws_state.h"

/* How old the maximum may be while queues are in use. */
#define DEPTH_PERIOD_US (1000 * 1000)

void wsni_queue_depth_refresh(wsn_server *srv)
{
    unsigned max = 0;
    /* The id table is written only on this thread: no lock to read it. */
    wsn_client *c, *tmp;
    HASH_ITER(hh, srv->clients_by_id, c, tmp)
    {
        unsigned n = wsni_client_queued(c);
        if (n > max)
            max = n;
    }
    wsni_gauge_set(&srv->counters.queue_max, max);
}

static void depth_tick(wsni_timer *tm)
{
    wsn_server *srv = wsni_container_of(tm, struct wsni_lws, depth_timer)->srv;
    wsni_queue_depth_refresh(srv);
    /* Quiet queues: the maximum is 0 and stays so until the next watch. */
    if (wsni_counter_read(&srv->counters.queue_max))
        wsni_timer_arm(srv, &srv->lws->depth_timer, depth_tick, DEPTH_PERIOD_US);
    else
        srv->lws->depth_armed = 0;
}

void wsni_queue_depth_watch(wsn_server *srv)
{
    if (srv->lws->depth_armed)
        return;
    srv->lws->depth_armed = 1;
    wsni_timer_arm(srv, &srv->lws->depth_timer, depth_tick, DEPTH_PERIOD_US);
}
