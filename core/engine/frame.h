/* An immutable, reference-counted WebSocket frame, built once per publish
 * and shared by every subscriber's queue. Layout of the allocation:
 *   [WSNI_FRAME_PRE headroom][up to 10 header bytes, right-aligned][payload][NUL]
 * `wire` points at the first header byte: a server frame is unmasked, so
 * the same bytes go to every client (coalesced raw writes); `payload` has
 * WSNI_FRAME_PRE bytes before it for the transport's one-message write
 * path (lws_write() wants LWS_PRE there; the lws transport checks that
 * the two agree). */
#ifndef WSN_FRAME_H
#define WSN_FRAME_H

#define WSNI_FRAME_PRE 16

#include <stdatomic.h>
#include <stddef.h>

typedef struct wsn_frame {
    atomic_int refs;
    int binary;             /* opcode: 0 text, 1 binary */
    unsigned char *wire;    /* header + payload, wire_len bytes */
    size_t wire_len;
    unsigned char *payload; /* payload_len bytes, NUL after */
    size_t payload_len;
} wsn_frame;

/* A frame with room for len payload bytes (to be filled, then sealed);
 * refs = 1, owned by the caller. */
wsn_frame *wsni_frame_alloc(size_t len, int binary);
/* A frame holding a copy of data. */
wsn_frame *wsni_frame_from(const void *data, size_t len, int binary);
static inline wsn_frame *frame_ref(wsn_frame *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}
void wsni_frame_unref(wsn_frame *f);

#endif
