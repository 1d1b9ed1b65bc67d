/* Batched publishing (publish_wait): the table of pending batches, the
 * batch, its encoding and its delivery. The caller side (validation, the
 * commands that arm a ttl or flush a batch) is shell/publish_wait.c. The
 * table is shared under srv->batch_lock so callers get their answer (and
 * limit errors) at once; timers live on the I/O thread and find their
 * batch by key and generation, so a cancelled or flushed batch is never
 * touched by a late timer. */
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

/* What one add did to the table. */
typedef struct wsni_batch_added {
    uint64_t started;   /* nonzero: this add started a batch of this generation; arm its ttl */
    struct batch *full; /* this add filled a batch and took it out of the table: deliver it */
} wsni_batch_added;

/* Any thread. Adds e to the pending batch of key (channel NUL ident(8)),
 * starting one (channel, name, type) when there is none. On success the
 * table owns e (a duplicate of a message already pending is freed); on an
 * error nothing changed and e is still the caller's. may_take_full: the
 * caller is ready to deliver a batch that reaches the batch limits now
 * (else it stays pending until its ttl). */
int wsni_batch_add(wsn_server *srv, const char *key, size_t key_len, const char *channel,
                   const char *name, wsn_message_type type, batch_entry *e, int may_take_full,
                   wsni_batch_added *added);
/* Any thread: takes the batch of key out of the table when it is of this
 * generation (0: any), NULL otherwise. */
struct batch *wsni_batch_take(wsn_server *srv, const char *key, size_t key_len,
                              uint64_t generation);
/* Any thread: how many batches are pending. */
size_t wsni_batch_pending(wsn_server *srv);
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
