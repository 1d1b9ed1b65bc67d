/* A client joins the list when its buffer is written and leaves it when the
 * buffer is released. Each tick clears the "written since" flag of the
 * clients that have it and releases the others, so a buffer goes back after
 * one to two periods without pongs, and a client that keeps answering
 * pings costs one flag store per pong and a visit per tick. */
#include "transport/rx_quiet.h"

#include "transport/lws_state.h"
#include "shell/server.h"

#include <stdlib.h>

/* Short enough that a crowd of subscribers is lean again a few seconds
 * after a keepalive round; each tick costs a loop pass (a poll over every
 * socket with lws's default loop), and the timer runs only while some
 * client is listed. */
#define RX_QUIET_PERIOD_US (2 * LWS_US_PER_SEC)

static void tick(wsni_timer *tm);

static void arm(wsn_server *srv)
{
    if (!srv->lws->rx_quiet_armed) {
        srv->lws->rx_quiet_armed = 1;
        wsni_timer_arm(srv, &srv->lws->rx_quiet_timer, tick, RX_QUIET_PERIOD_US);
    }
}

void wsni_rx_quiet_note(wsn_server *srv, wsn_client *c)
{
    wsni_conn_of(c)->rx_recent = true;
    if (wsni_conn_of(c)->rx_quiet_slot || !wsni_conn_of(c)->rx_buffer || wsni_conn_of(c)->deflate || !srv->ctx_alive)
        return; /* listed already; nothing to give back; see tick(); closing */
    if (srv->lws->rx_quiet_len == srv->lws->rx_quiet_cap) {
        size_t cap = srv->lws->rx_quiet_cap ? srv->lws->rx_quiet_cap * 2 : 64;
        wsn_client **list = realloc(srv->lws->rx_quiet, cap * sizeof(*list));
        if (!list)
            return; /* its pages stay resident: memory, not correctness */
        srv->lws->rx_quiet = list;
        srv->lws->rx_quiet_cap = cap;
    }
    srv->lws->rx_quiet[srv->lws->rx_quiet_len++] = c;
    wsni_conn_of(c)->rx_quiet_slot = (unsigned)srv->lws->rx_quiet_len;
    arm(srv);
}

static void unlist(wsn_server *srv, wsn_client *c)
{
    size_t i = wsni_conn_of(c)->rx_quiet_slot - 1;
    wsn_client *last = srv->lws->rx_quiet[--srv->lws->rx_quiet_len];
    srv->lws->rx_quiet[i] = last;
    wsni_conn_of(last)->rx_quiet_slot = (unsigned)i + 1;
    wsni_conn_of(c)->rx_quiet_slot = 0;
}

void wsni_rx_quiet_remove(wsn_server *srv, wsn_client *c)
{
    if (wsni_conn_of(c)->rx_quiet_slot)
        unlist(srv, c);
}

/* lws keeps a control frame's payload in the buffer across passes until
 * the frame ends, so a buffer is free to release only when no payload is
 * outstanding. Clients with permessage-deflate are never
 * listed: the inflater works through the same buffer and may hold output
 * there between passes. */
static void tick(wsni_timer *tm)
{
    wsn_server *srv = wsni_container_of(tm, struct wsni_lws, rx_quiet_timer)->srv;
    srv->lws->rx_quiet_armed = 0;
    /* Released together (wsni_rx_pool_release merges neighbours); without
     * room for the list, one at a time. */
    uintptr_t *quiet = malloc(srv->lws->rx_quiet_len * sizeof(*quiet) + 1);
    size_t quiet_len = 0;
    for (size_t i = srv->lws->rx_quiet_len; i-- > 0;) {
        wsn_client *c = srv->lws->rx_quiet[i];
        if (wsni_conn_of(c)->rx_recent) {
            wsni_conn_of(c)->rx_recent = false;
            continue;
        }
        if (!wsni_conn_of(c)->wsi || lws_remaining_packet_payload(wsni_conn_of(c)->wsi))
            continue;
        uintptr_t one = (uintptr_t)wsni_conn_of(c)->rx_buffer;
        if (quiet)
            quiet[quiet_len++] = one;
        else
            wsni_rx_pool_release(&srv->lws->rx_pool, &one, 1);
        unlist(srv, c);
    }
    if (quiet_len)
        wsni_rx_pool_release(&srv->lws->rx_pool, quiet, quiet_len);
    free(quiet);
    if (srv->lws->rx_quiet_len)
        arm(srv);
}

void wsni_rx_quiet_stop(wsn_server *srv)
{
    wsni_timer_cancel(srv, &srv->lws->rx_quiet_timer);
    srv->lws->rx_quiet_armed = 0;
    for (size_t i = 0; i < srv->lws->rx_quiet_len; i++)
        wsni_conn_of(srv->lws->rx_quiet[i])->rx_quiet_slot = 0;
    free(srv->lws->rx_quiet);
    srv->lws->rx_quiet = NULL;
    srv->lws->rx_quiet_len = srv->lws->rx_quiet_cap = 0;
}
