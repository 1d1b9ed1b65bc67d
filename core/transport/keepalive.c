/* Keepalive for every client of a server with one lws timer.
 *
 * lws keeps timers in one sorted linked list, so a timer per client costs
 * a walk over all the others at each (re)arm (measured in
 * docs/architecture.md, "Keepalive"). Every client shares the
 * same ping_period and pong_wait, so ordering clients by the time of their
 * last ping (and, separately, of their last pong) also orders their
 * deadlines. Two FIFO lists keep that order with O(1) updates: a client
 * moves to the tail when it is pinged (or answers), and the one timer only
 * ever needs to look at the heads. Everything here runs on the I/O thread. */
#include "transport/keepalive.h"
#include "transport/lws_state.h"

#include "shell/server.h"

static wsn_client *first_by_ping(wsn_server *srv)
{
    return wsni_conn_client(wsni_list_first(&srv->lws->ping_list, struct wsni_conn, ping_node));
}

static wsn_client *first_by_pong(wsn_server *srv)
{
    return wsni_conn_client(wsni_list_first(&srv->lws->pong_list, struct wsni_conn, pong_node));
}

static lws_usec_t ping_period_us(const wsn_server *srv)
{
    return srv->ping_period_ms * 1000;
}

static lws_usec_t pong_wait_us(const wsn_server *srv)
{
    return srv->pong_wait_ms * 1000;
}

static void tick(wsni_timer *tm);

/* Arms the timer for the earliest deadline of the two list heads. */
static void arm(wsn_server *srv, lws_usec_t now)
{
    lws_usec_t due = 0;
    wsn_client *by_ping = first_by_ping(srv), *by_pong = first_by_pong(srv);
    if (by_ping)
        due = wsni_conn_of(by_ping)->last_ping + ping_period_us(srv);
    if (by_pong) {
        lws_usec_t pong_due = wsni_conn_of(by_pong)->last_pong + pong_wait_us(srv);
        if (!due || pong_due < due)
            due = pong_due;
    }
    if (!due) {
        wsni_timer_cancel(srv, &srv->lws->keepalive_timer);
        srv->lws->keepalive_due = 0;
        return;
    }
    if (srv->lws->keepalive_due && srv->lws->keepalive_due <= due)
        return; /* armed early enough: the tick re-arms */
    lws_usec_t delay = due - now;
    if (delay < LWS_US_PER_MS)
        delay = LWS_US_PER_MS;
    srv->lws->keepalive_due = now + delay;
    wsni_timer_arm(srv, &srv->lws->keepalive_timer, tick, delay);
}

static void tick(wsni_timer *tm)
{
    wsn_server *srv = wsni_container_of(tm, struct wsni_lws, keepalive_timer)->srv;
    lws_usec_t now = lws_now_usecs();
    srv->lws->keepalive_due = 0;
    wsn_client *c;
    while ((c = first_by_pong(srv)) && now - wsni_conn_of(c)->last_pong >= pong_wait_us(srv)) {
        wsni_log(srv, WSN_LOG_INFO, "client %s: no pong within pong_wait, dropping", c->id);
        wsni_keepalive_remove(srv, c);
        wsni_count_io(&srv->counters.closed[WSNI_CLOSED_PONG], 1);
        wsni_client_kill(c);
    }
    while ((c = first_by_ping(srv)) && now - wsni_conn_of(c)->last_ping >= ping_period_us(srv)) {
        wsni_conn_of(c)->need_ping = 1;
        wsni_conn_of(c)->last_ping = now;
        wsni_list_remove(&srv->lws->ping_list, &wsni_conn_of(c)->ping_node);
        wsni_list_append(&srv->lws->ping_list, &wsni_conn_of(c)->ping_node);
        wsni_client_request_write(c);
    }
    arm(srv, now);
}

void wsni_keepalive_add(wsn_server *srv, wsn_client *c)
{
    lws_usec_t now = lws_now_usecs();
    wsni_conn_of(c)->last_ping = wsni_conn_of(c)->last_pong = now;
    wsni_conn_of(c)->keepalive_linked = 1;
    wsni_list_append(&srv->lws->ping_list, &wsni_conn_of(c)->ping_node);
    wsni_list_append(&srv->lws->pong_list, &wsni_conn_of(c)->pong_node);
    arm(srv, now);
}

void wsni_keepalive_pong(wsn_server *srv, wsn_client *c)
{
    if (!wsni_conn_of(c)->keepalive_linked)
        return;
    wsni_conn_of(c)->last_pong = lws_now_usecs();
    /* A later deadline for this client never makes the armed timer late. */
    wsni_list_remove(&srv->lws->pong_list, &wsni_conn_of(c)->pong_node);
    wsni_list_append(&srv->lws->pong_list, &wsni_conn_of(c)->pong_node);
}

void wsni_keepalive_remove(wsn_server *srv, wsn_client *c)
{
    if (!wsni_conn_of(c)->keepalive_linked)
        return;
    wsni_conn_of(c)->keepalive_linked = 0;
    wsni_list_remove(&srv->lws->ping_list, &wsni_conn_of(c)->ping_node);
    wsni_list_remove(&srv->lws->pong_list, &wsni_conn_of(c)->pong_node);
}

void wsni_keepalive_stop(wsn_server *srv)
{
    wsni_timer_cancel(srv, &srv->lws->keepalive_timer);
    srv->lws->keepalive_due = 0;
}
