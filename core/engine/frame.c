#include "engine/frame.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WS_MAX_HEADER 10

static size_t header_len(size_t len)
{
    if (len < 126)
        return 2;
    if (len <= 0xffff)
        return 4;
    return 10;
}

static size_t frame_headroom(void) { return sizeof(wsn_frame) + WSNI_FRAME_PRE + WS_MAX_HEADER; }

/* Sets up the frame at the start of an allocation laid out as frame.h says,
 * payload already in place or to be written. */
static wsn_frame *frame_init(void *block, size_t len, int binary)
{
    wsn_frame *f = block;
    size_t hl = header_len(len);
    atomic_init(&f->refs, 1);
    f->binary = binary;
    f->payload = (unsigned char *)block + frame_headroom();
    f->payload_len = len;
    f->payload[len] = 0;
    f->wire = f->payload - hl;
    f->wire_len = hl + len;
    /* FIN + opcode, then the unmasked length in the shortest form. */
    unsigned char *h = f->wire;
    h[0] = (unsigned char)(0x80 | (binary ? 0x2 : 0x1));
    if (hl == 2) {
        h[1] = (unsigned char)len;
    } else if (hl == 4) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    return f;
}

wsn_frame *wsni_frame_alloc(size_t len, int binary)
{
    void *block = malloc(frame_headroom() + len + 1);
    return block ? frame_init(block, len, binary) : NULL;
}

wsn_frame *wsni_frame_from(const void *data, size_t len, int binary)
{
    wsn_frame *f = wsni_frame_alloc(len, binary);
    if (f && len)
        memcpy(f->payload, data, len);
    return f;
}

void wsni_frame_unref(wsn_frame *f)
{
    if (!f)
        return;
    int before = atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel);
    assert(before > 0 && "frame reference dropped twice");
    if (before == 1)
        free(f);
}
