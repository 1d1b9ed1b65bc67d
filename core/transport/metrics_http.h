/* GET /metrics (WSN_OPT_METRICS): the Prometheus text of
 * wsn_server_metrics_text(), behind an optional bearer token
 * (WSN_OPT_METRICS_TOKEN). The route is a mount of its own; loop.c's
 * callback hands it the HTTP request and the writable turns. I/O thread. */
#ifndef WSN_TRANSPORT_METRICS_HTTP_H
#define WSN_TRANSPORT_METRICS_HTTP_H

#include "engine/objects.h"

#include <libwebsockets.h>

/* An answer being written: one per HTTP request, in the request's pss. */
struct wsni_metrics_reply;

/* The mount list with /metrics put in front of next when the option is on
 * (else next itself). */
const struct lws_http_mount *wsni_metrics_http_mount(wsn_server *srv,
                                                     const struct lws_http_mount *next);
/* Whether this HTTP request is for /metrics and the route is on. */
int wsni_metrics_http_wanted(wsn_server *srv, struct lws *wsi);
/* Answers the request's headers (200, or 401 without the token) and makes
 * *reply the body to write; lws's callback result. */
int wsni_metrics_http_headers(wsn_server *srv, struct lws *wsi, struct wsni_metrics_reply **reply);
/* HTTP_WRITEABLE: writes the next part of the body (more than one turn
 * when it is long); lws's callback result. */
int wsni_metrics_http_body(struct lws *wsi, struct wsni_metrics_reply **reply);
/* The request ended (or the connection did): frees what is left. */
void wsni_metrics_http_free(struct wsni_metrics_reply **reply);

#endif
