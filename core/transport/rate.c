#include "transport/rate.h"

#include "shell/options.h"
#include "shell/server.h"
#include "transport/lws_state.h"
#include "transport/refuse.h"

#define NS_PER_S 1000000000LL

/* The bucket as GCRA keeps it: one time per client, the theoretical
 * arrival of its next message (tat). A message at now passes when tat is
 * at most tolerance ahead of now, and moves tat one interval on; so a
 * quiet client may send burst messages at once, then one per interval. */
void wsni_rate_setup(wsn_server *srv)
{
    int64_t rate = opt_int(srv->opts, WSN_OPT_CLIENT_RATE);
    int64_t burst = opt_int(srv->opts, WSN_OPT_CLIENT_BURST);
    srv->lws->rate_interval_ns = rate ? NS_PER_S / rate : 0;
    srv->lws->rate_tolerance_ns = (burst - 1) * srv->lws->rate_interval_ns;
}

static void over_rate_log(wsn_server *srv, wsn_client *c)
{
    unsigned n = wsni_ratelog_due(&srv->lws->rate_log);
    if (n)
        wsni_log(srv, WSN_LOG_WARN,
                 "client %s: over client_rate (%lld/s, burst %lld): closed with 1008 (%u "
                 "such clients since the last line)",
                 c->id, (long long)opt_int(srv->opts, WSN_OPT_CLIENT_RATE),
                 (long long)opt_int(srv->opts, WSN_OPT_CLIENT_BURST), n);
}

int wsni_rate_admit(wsn_server *srv, wsn_client *c)
{
    struct wsni_lws *lw = srv->lws;
    struct wsni_conn *conn = wsni_conn_of(c);
    if (!lw->rate_interval_ns)
        return 1;
    if (wsni_input_refused(c))
        return 0;
    /* One clock read per loop pass (io_main clears it), not one per
     * message: lws keeps no time we could read for free, and a read per
     * message made the limit cost 51 instructions a message, not 17
     * (callgrind, docs/benchmarks.md). A message is stamped with its pass's first
     * read, off by at most the pass's length (microseconds, unless
     * handlers on the I/O thread are slow), and the error does not add
     * up: every pass reads the clock anew. */
    if (!lw->rx_clock_us)
        lw->rx_clock_us = lws_now_usecs();
    int64_t now = lw->rx_clock_us * 1000;
    int64_t tat = conn->rate_tat > now ? conn->rate_tat : now;
    if (tat - now <= lw->rate_tolerance_ns) {
        conn->rate_tat = tat + lw->rate_interval_ns;
        return 1;
    }
    wsni_count_io(&srv->counters.closed[WSNI_CLOSED_RATE], 1);
    over_rate_log(srv, c);
    wsni_input_refuse(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "message rate exceeded");
    return 0;
}
