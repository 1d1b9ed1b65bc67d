/* What servers send each other through the broker: the already-encoded
 * frames of a publish (every wire format, so no server encodes again),
 * behind a header naming the origin server and its sequence number.
 *
 *   0  4  magic "WSNB"
 *   4  1  version (2: 1 had no epoch)
 *   5  1  kind: 1 channel publish (a run of count), 2 to one client
 *   6  1  formats per message (FORMAT_COUNT)
 *   7  1  count, 1..255
 *   8  8  origin server id (little-endian)
 *  16  8  sequence number of its first message in its stream (the Redis
 *          channel it is sent on; broker/seq.h), little-endian
 *  24  4  epoch of that stream's counter (little-endian)
 *  28  1  target length, then the target client id (kind 2; 0 for kind 1)
 *   then count x formats x { 1 byte: 0 text, 1 binary; 4 bytes length (LE);
 *                            the frame's payload }
 *
 * Anything else on a broker channel is not ours: the decoder refuses it
 * and the caller counts and logs it, never delivers it.
 *
 * Owns: the format, its encoder and decoder. Any thread. */
#ifndef WSN_BROKER_ENVELOPE_H
#define WSN_BROKER_ENVELOPE_H

#include "engine/outgoing.h"

#include <stddef.h>
#include <stdint.h>

enum { ENVELOPE_CHANNEL = 1, ENVELOPE_CLIENT = 2, ENVELOPE_MAX_COUNT = 255 };

typedef struct wsni_envelope {
    int kind;
    uint64_t origin, seq;
    uint32_t epoch;
    char target[64]; /* kind 2: the client id, NUL-terminated */
    size_t count;
    outgoing *outs[ENVELOPE_MAX_COUNT]; /* owned: wsni_envelope_clear */
} wsni_envelope;

/* A malloc'd envelope of count messages (every format of each encoded
 * now if not yet); NULL when out of memory. target: kind 2 only. */
unsigned char *wsni_envelope_encode(int kind, uint64_t origin, uint32_t epoch, uint64_t seq,
                                    const char *target, outgoing *const *outs, size_t count,
                                    size_t *len);

/* 0 with *env filled (frames copied out of data), -1 when data is not a
 * well-formed envelope of this version, -2 when out of memory. */
int wsni_envelope_decode(const void *data, size_t len, wsni_envelope *env);

/* Only the origin, without decoding the rest: 0, or -1 when data does
 * not start like an envelope. */
int wsni_envelope_origin(const void *data, size_t len, uint64_t *origin);

void wsni_envelope_clear(wsni_envelope *env);

#endif
