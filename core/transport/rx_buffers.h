/* lws's per-connection receive buffers, placed where a quiet connection's
 * buffer can cost no memory at all.
 *
 * lws 4.1 allocates `read_buffer` bytes (+ LWS_PRE + 4) for every
 * connection at ESTABLISHED. It hands data frames to us straight from its
 * per-thread read buffer and writes this one only with control frame
 * payloads (a pong, a ping, a close). From the heap, its first page is
 * resident from the start anyway (malloc's header sits on it): at 16 KiB
 * and up, two thirds of an idle subscriber's footprint, and all of a small
 * buffer's bytes. Here every receive buffer gets page-aligned
 * slots of its own in big anonymous mappings, so its pages are resident
 * only once lws writes them, and a buffer whose connection has gone quiet
 * hands them back to the kernel (rx_quiet.c; they come back as zeros the
 * next time lws writes).
 *
 * lws's allocator hook is process-wide and has no context argument, so
 * each server's pool is attached to its I/O thread: lws allocates and frees
 * a connection's buffer on the thread that services its context. Ours
 * chains to the allocator that was there before it (lws's default, a
 * host's, or another copy of this core's in the same process), handling
 * only its own slots; WSN_OPT_RX_BUFFER_POOL = 0 leaves lws's allocator
 * alone. */
#ifndef WSN_RX_BUFFERS_H
#define WSN_RX_BUFFERS_H

#include <stddef.h>
#include <stdint.h>

/* One server's slots; zeroed is empty. I/O thread only. */
typedef struct rx_pool {
    size_t slot_bytes; /* set by the first buffer; other sizes go to malloc */
    size_t per_chunk;
    char **chunks;
    size_t chunk_count;
    uintptr_t lowest, highest; /* bounds of every chunk */
    /* A stack: the most recently freed is reused first. The low bit (slots
     * are page-aligned) marks a slot freed with its pages still resident. */
    uintptr_t *free_slots;
    size_t free_count, free_cap;
    void *newest; /* the buffer of the connection being established */
} rx_pool;

/* Makes lws allocate through us (lws_set_allocator; process-wide, once
 * per copy of this core). On threads without a pool, and for everything
 * but receive buffers, requests go to the allocator installed before ours.
 * Returns 0 when ours is still reachable from lws (pools are safe to
 * use), -1 when something replaced it without chaining to it: then use
 * no pool. Call before creating an lws context. Thread: any. */
int wsni_rx_buffers_install(void);

/* Whether an lws of this version (lws_get_library_version()'s text) is
 * one whose receive buffer behaves as this pool relies on: allocated with
 * reason "rx_ubuf" at ESTABLISHED, freed on the servicing thread, and
 * written only with control-frame payloads, so that its pages may be
 * discarded while the client is quiet (rx_quiet.c). Verified for 4.1.x
 * (4.1.6 read); a later lws that parked partial data frames there would
 * lose them. 1 = verified; else 0 with the reason in why. */
int wsni_rx_lws_version_supported(const char *version, char *why, size_t why_len);

/* Receive buffers allocated on the calling thread come from pool (NULL:
 * from malloc again). Attach before creating the lws context, detach after
 * destroying it. */
void wsni_rx_pool_attach(rx_pool *pool);

/* The receive buffer lws allocated for the connection now being
 * established, or NULL (it came from malloc). lws allocates it just before
 * LWS_CALLBACK_ESTABLISHED; call from there. */
void *wsni_rx_pool_take_new(rx_pool *pool);

/* These buffers hold nothing lws still needs: let the kernel take their
 * pages. Reorders bufs; buffers not in slots are skipped. */
void wsni_rx_pool_release(rx_pool *pool, uintptr_t *bufs, size_t count);

/* Gives back the pages of free slots (a freed slot keeps them for the next
 * connection). With wsni_memory_give_back(), once clients have left. */
void wsni_rx_pool_trim(rx_pool *pool);

/* Unmaps every chunk; after the lws context is destroyed (every slot is
 * free by then). Leaves the pool empty and usable. */
void wsni_rx_pool_destroy(rx_pool *pool);

#endif
