/* Loss accounting across servers (issue 19): every message a server sends
 * through the broker carries a sequence number per stream (a Redis channel:
 * one of the wsnotify channels, or a server's inbox) and the epoch of that
 * stream's counter; a receiver keeps, per stream and origin server, the
 * number it expects next, and counts what a jump skipped.
 *
 * Why per stream, not per origin: a server subscribes to some channels
 * only, so an origin's messages to the others are no gap. A counter that
 * is forgotten (bounded table) starts again under a new epoch; the
 * receiver takes the next message of a new epoch, or of an origin it has
 * not heard from (a restarted server has a new random origin), as its
 * start: nothing is counted across it.
 *
 * Owns: both tables. The sender's is its I/O thread's, the receiver's its
 * broker thread's; neither locks. */
#ifndef WSN_BROKER_SEQ_H
#define WSN_BROKER_SEQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct wsni_seq_out wsni_seq_out;
typedef struct wsni_seq_in wsni_seq_in;

wsni_seq_out *wsni_seq_out_new(void);
void wsni_seq_out_free(wsni_seq_out *t);
/* Numbers count messages of stream: *seq is the first's, *epoch its
 * counter's. -1 when out of memory (then nothing is numbered). */
int wsni_seq_out_take(wsni_seq_out *t, const char *stream, size_t count, int64_t now_ms,
                      uint32_t *epoch, uint64_t *seq);

wsni_seq_in *wsni_seq_in_new(void);
void wsni_seq_in_free(wsni_seq_in *t);
/* count messages from origin on stream starting at seq: 0 when they are
 * the next ones (or start the stream), the number skipped before them
 * (> 0), or -1 when they are older than what was seen (late or twice:
 * the caller drops them, they were counted as lost before). */
int64_t wsni_seq_in_check(wsni_seq_in *t, const char *stream, uint64_t origin, uint32_t epoch,
                          uint64_t seq, size_t count, int64_t now_ms);
/* The stream is no longer subscribed: whatever comes after starts anew. */
void wsni_seq_in_forget(wsni_seq_in *t, const char *stream);
/* Origins not heard from for idle_ms are forgotten (servers that left). */
void wsni_seq_in_sweep(wsni_seq_in *t, int64_t now_ms, int64_t idle_ms);

#endif
