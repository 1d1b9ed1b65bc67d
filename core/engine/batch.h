/* Batched publishing (publish_wait). The table of pending batches is
 * shared under srv->batch_lock so callers get their answer (and limit
 * errors) at once; timers live on the I/O thread and find their batch by
 * key and generation, so a cancelled or flushed batch is never touched by
 * a late timer. */
#ifndef WSN_BATCH_H
#define WSN_BATCH_H

#include "shell/server.h"

struct batch;

void wsni_batch_free(struct batch *b);
/* io: arms the ttl timer of the batch (key, generation). */
int wsni_batch_arm(wsn_server *srv, const char *key, size_t key_len, uint64_t generation,
              int64_t ttl_ms);
/* io: encodes and delivers a batch taken out of the table; frees it. */
int wsni_batch_deliver(wsn_server *srv, struct batch *b);
/* io: delivers every pending batch now (shutdown). */
void wsni_batch_flush_all(wsn_server *srv);
/* io: cancels the timers (the I/O thread is ending). */
void wsni_batch_timers_clear(wsn_server *srv);
/* Frees every pending batch undelivered (server teardown). */
void wsni_batch_table_clear(wsn_server *srv);

#endif
