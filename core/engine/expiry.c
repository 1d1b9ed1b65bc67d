#include "engine/expiry.h"

#include <stdlib.h>
#include <time.h>

/* Ten years. */
#define MAX_EXPIRY_MS (10LL * 366 * 24 * 3600 * 1000)

struct wsni_expiry {
    wsni_timer timer;
    wsn_client *client;
};

static int64_t unix_ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void expire(wsn_client *c)
{
    wsni_count_io(&c->srv->counters.closed[WSNI_CLOSED_EXPIRED], 1);
    wsni_log(c->srv, WSN_LOG_INFO, "client %s: authorization expired", c->id);
    wsni_client_begin_close(c, WSNI_CLOSE_EXPIRED, "authorization expired", 0);
}

static void on_expiry(wsni_timer *t)
{
    struct wsni_expiry *e = wsni_container_of(t, struct wsni_expiry, timer);
    wsn_client *c = e->client;
    c->expiry = NULL;
    free(e);
    expire(c);
}

void wsni_expiry_clear(wsn_client *c)
{
    if (!c->expiry)
        return;
    wsni_timer_cancel(c->srv, &c->expiry->timer);
    free(c->expiry);
    c->expiry = NULL;
}

int wsni_expiry_set(wsn_client *c, int64_t at_ms)
{
    if (!c->attached || c->closing)
        return WSN_EGONE;
    if (!at_ms) {
        wsni_expiry_clear(c);
        return WSN_OK;
    }
    /* The wall clock is read once, here: the timer runs on the monotonic
     * clock, so a clock step later moves nothing. */
    int64_t left_ms = at_ms - unix_ms_now();
    if (left_ms <= 0) {
        wsni_expiry_clear(c);
        expire(c);
        return WSN_OK;
    }
    /* Further away than this is never, in practice; it also keeps the
     * timer's microseconds (and its due time) from overflowing. */
    if (left_ms > MAX_EXPIRY_MS)
        left_ms = MAX_EXPIRY_MS;
    if (!c->expiry) {
        if (!(c->expiry = calloc(1, sizeof(*c->expiry))))
            return WSN_ENOMEM;
        c->expiry->client = c;
    }
    wsni_timer_arm(c->srv, &c->expiry->timer, on_expiry, left_ms * 1000);
    return WSN_OK;
}
