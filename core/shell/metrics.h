/* The metrics snapshot (metrics.c) and its Prometheus text
 * (metrics_text.c); the publish calls count their refusals here. */
#ifndef WSN_SHELL_METRICS_H
#define WSN_SHELL_METRICS_H

#include "shell/server.h"

/* A publish call's result, counted when it is a refusal the metrics name
 * (nothing is counted on success). Any thread. */
static inline int wsni_publish_result(wsn_server *srv, int rc)
{
    if (rc >= 0)
        return rc;
    int which = rc == WSN_ELIMIT          ? WSNI_PUBLISH_LIMIT
                : rc == WSN_EAGAIN        ? WSNI_PUBLISH_AGAIN
                : rc == WSN_ETIMEDOUT     ? WSNI_PUBLISH_TIMEOUT
                : rc == WSN_EBACKPRESSURE ? WSNI_PUBLISH_BACKPRESSURE
                                          : -1;
    if (which >= 0 && srv)
        wsni_count(&srv->counters.publish_refused[which], 1);
    return rc;
}

#endif
