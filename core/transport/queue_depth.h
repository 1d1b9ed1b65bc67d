/* The fullest client's send queue, for the metrics (wsn_metrics.queue_max).
 * A sum of queue lengths follows from counters the delivery path keeps
 * anyway; a maximum cannot be kept that cheaply (when the fullest queue
 * drains, the next fullest is unknown without a look at every client). So
 * the I/O thread walks the clients: once a second while frames are being
 * queued, and whenever the /metrics route serves (on this thread). The
 * walk reads one field per client (~10,000 in well under a millisecond).
 * I/O thread only. */
#ifndef WSN_TRANSPORT_QUEUE_DEPTH_H
#define WSN_TRANSPORT_QUEUE_DEPTH_H

#include "wsnotify.h"

/* Frames were queued for a client: the walk is due within a second. */
void wsni_queue_depth_watch(wsn_server *srv);
/* Walks the clients now and stores the maximum in the counters. */
void wsni_queue_depth_refresh(wsn_server *srv);

#endif
