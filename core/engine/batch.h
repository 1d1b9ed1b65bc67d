/* Batched publishing (publish_wait): the batch, its encoding and its
 * delivery; the caller side, which fills the table, is
 * shell/publish_wait.c. The table of pending batches is shared under
 * srv->batch_lock so callers get their answer (and limit errors) at once;
 * timers live on the I/O thread and find their batch by key and
 * generation, so a cancelled or flushed batch is never touched by a late
 * timer. */
#ifndef WSN_BATCH_H
#define WSN_BATCH_H

#include "engine/codec.h"
#include "engine/objects.h"

#include "util/hash.h"

/* One pending message of a batch; de-duplicated by its canonical text. */
typedef struct batch_entry {
    wsni_batch_value v; /* what goes on the wire, in the batch's values */
    char *canonical;    /* the de-duplication key; also the hash key */
    UT_hash_handle hh;
} batch_entry;

struct batch {
    char *key; /* channel NUL ident(8 bytes) */
    size_t key_len;
    char *channel;
    char *name;
    wsn_message_type type;
    uint64_t generation;
    batch_entry *seen; /* hash of entries by canonical text */
    wsni_list values; /* of batch_entry (by v.node), arrival order */
    size_t count, bytes;
    UT_hash_handle hh;
};

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
