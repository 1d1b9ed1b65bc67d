#include "broker/slots.h"

#include <stdint.h>
#include <string.h>

/* CRC16/XMODEM (poly 0x1021, init 0), what Redis Cluster specifies. */
static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned wsni_key_slot(const char *name, size_t len)
{
    const char *open = memchr(name, '{', len);
    if (open) {
        size_t from = (size_t)(open - name) + 1;
        const char *close = memchr(open + 1, '}', len - from);
        /* "{}" or no closing brace: the whole name is hashed. */
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (CLUSTER_SLOTS - 1);
    }
    return crc16(name, len) & (CLUSTER_SLOTS - 1);
}
