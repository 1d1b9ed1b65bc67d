/* lws's per-connection receive buffers, placed where a quiet connection's
 * buffer can cost no memory at all.
 *
 * lws 4.1 allocates `read_buffer` bytes (+ LWS_PRE + 4) for every
 * connection at ESTABLISHED. It hands data frames to us straight from its
 * per-thread read buffer and writes this one only with control frame
 * payloads (a pong, a ping, a close). From the heap, its first page is
 * resident from the start anyway (malloc's header sits on it): at the
 * 16 KiB default, two thirds of an idle subscriber's footprint, and all of
 * a small buffer's bytes. Here every receive buffer gets page-aligned slots
 * of their own in big anonymous mappings, so its pages are resident only
 * once lws writes them, and a buffer whose connection has gone quiet hands
 * them back to the kernel (rx_quiet.c; they come back as zeros the next
 * time lws writes). */
#ifndef WSN_RX_BUFFERS_H
#define WSN_RX_BUFFERS_H

#include <stddef.h>

/* Makes lws allocate through us (lws_set_allocator; process-wide, once).
 * Every allocation other than a receive buffer goes to malloc as before.
 * Call before creating an lws context. Thread: any. */
void rx_buffers_install(void);

/* The receive buffer lws allocated on this thread for the connection now
 * being established, or NULL (no slot could be had: it came from malloc).
 * lws allocates it just before LWS_CALLBACK_ESTABLISHED; call from there.
 * Thread: the lws service thread. */
void *rx_buffers_take_new(void);

/* These buffers hold nothing lws still needs: let the kernel take their
 * pages. Reorders bufs. Buffers not in slots are skipped. Thread: the lws
 * service thread that owns the connections. */
void rx_buffers_release(void **bufs, size_t count);

/* Gives back the pages of free slots (freed slots keep theirs for the next
 * connection). With memory_give_back(), once clients have left. Thread:
 * any. */
void rx_buffers_trim(void);

#endif
