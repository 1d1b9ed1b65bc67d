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

static void unlink_ping(wsn_server *srv, wsn_client *c)
{
    if (c->ping_prev)
        c->ping_prev->ping_next = c->ping_next;
    else
        srv->ping_head = c->ping_next;
    if (c->ping_next)
        c->ping_next->ping_prev = c->ping_prev;
    else
        srv->ping_tail = c->ping_prev;
    c->ping_prev = c->ping_next = NULL;
}

static void append_ping(wsn_server *srv, wsn_client *c)
{
    c->ping_prev = srv->ping_tail;
    c->ping_next = NULL;
    if (srv->ping_tail)
        srv->ping_tail->ping_next = c;
    else
        srv->ping_head = c;
    srv->ping_tail = c;
}

static void unlink_pong(wsn_server *srv, wsn_client *c)
{
    if (c->pong_prev)
        c->pong_prev->pong_next = c->pong_next;
    else
        srv->pong_head = c->pong_next;
    if (c->pong_next)
        c->pong_next->pong_prev = c->pong_prev;
    else
        srv->pong_tail = c->pong_prev;
    c->pong_prev = c->pong_next = NULL;
}

static void append_pong(wsn_server *srv, wsn_client *c)
{
    c->pong_prev = srv->pong_tail;
    c->pong_next = NULL;
    if (srv->pong_tail)
        srv->pong_tail->pong_next = c;
    else
        srv->pong_head = c;
    srv->pong_tail = c;
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
    if (srv->ping_head)
        due = srv->ping_head->last_ping + ping_period_us(srv);
    if (srv->pong_head) {
        lws_usec_t pong_due = srv->pong_head->last_pong + pong_wait_us(srv);
        if (!due || pong_due < due)
            due = pong_due;
    }
    if (!due) {
        wsni_timer_cancel(srv, &srv->keepalive_timer);
        srv->keepalive_due = 0;
        return;
    }
    if (srv->keepalive_due && srv->keepalive_due <= due)
        return; /* armed early enough: the tick re-arms */
    lws_usec_t delay = due - now;
    if (delay < LWS_US_PER_MS)
        delay = LWS_US_PER_MS;
    srv->keepalive_due = now + delay;
    wsni_timer_arm(srv, &srv->keepalive_timer, tick, delay);
}

static void tick(wsni_timer *tm)
{
    wsn_server *srv = wsni_container_of(tm, wsn_server, keepalive_timer);
    lws_usec_t now = lws_now_usecs();
    srv->keepalive_due = 0;
    wsn_client *c;
    while ((c = srv->pong_head) && now - c->last_pong >= pong_wait_us(srv)) {
        wsni_log(srv, WSN_LOG_INFO, "client %s: no pong within pong_wait, dropping", c->id);
        wsni_keepalive_remove(srv, c);
        wsni_client_kill(c);
    }
    while ((c = srv->ping_head) && now - c->last_ping >= ping_period_us(srv)) {
        c->need_ping = 1;
        c->last_ping = now;
        unlink_ping(srv, c);
        append_ping(srv, c);
        wsni_client_request_write(c);
    }
    arm(srv, now);
}

void wsni_keepalive_add(wsn_server *srv, wsn_client *c)
{
    lws_usec_t now = lws_now_usecs();
    c->last_ping = c->last_pong = now;
    c->keepalive_linked = 1;
    append_ping(srv, c);
    append_pong(srv, c);
    arm(srv, now);
}

void wsni_keepalive_pong(wsn_server *srv, wsn_client *c)
{
    if (!c->keepalive_linked)
        return;
    c->last_pong = lws_now_usecs();
    /* A later deadline for this client never makes the armed timer late. */
    unlink_pong(srv, c);
    append_pong(srv, c);
}

void wsni_keepalive_remove(wsn_server *srv, wsn_client *c)
{
    if (!c->keepalive_linked)
        return;
    c->keepalive_linked = 0;
    unlink_ping(srv, c);
    unlink_pong(srv, c);
}

void wsni_keepalive_stop(wsn_server *srv)
{
    wsni_timer_cancel(srv, &srv->keepalive_timer);
    srv->keepalive_due = 0;
}
