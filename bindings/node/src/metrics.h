/*
 * metrics() and metricsText() (metrics.c): the core's snapshot as a JS
 * object and as the Prometheus text. JS thread.
 */
#ifndef WSN_NODE_METRICS_H
#define WSN_NODE_METRICS_H

#include "util.h"

/* The snapshot as an object, or NULL with *rc the core's error (no JS
 * exception pending then) or with a JS exception pending (*rc 0). */
napi_value nw_metrics_object(napi_env env, wsn_server *srv, int *rc);
/* The Prometheus text as a string; NULL as above. */
napi_value nw_metrics_text(napi_env env, wsn_server *srv, int *rc);

#endif
