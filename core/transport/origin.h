/* Which browser origins may open a WebSocket. */
#ifndef WSN_ORIGIN_H
#define WSN_ORIGIN_H

#include "wsnotify.h"

/* origin: the Origin header or NULL; host: the Host header or NULL.
 * allowed: WSN_OPT_ALLOWED_ORIGINS ("" = same origin, "*" = any, else a
 * comma-separated list of exact origins). Returns 1 to allow. */
int wsni_origin_allowed(const char *allowed, const char *origin, const char *host);

#endif
