#include "broker/envelope.h"

#include "util/text.h"

#include <stdlib.h>
#include <string.h>

#define HEADER 29
#define VERSION 2

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

unsigned char *wsni_envelope_encode(int kind, uint64_t origin, uint32_t epoch, uint64_t seq,
                                    const char *target,
                                    outgoing *const *outs, size_t count, size_t *len)
{
    size_t tlen = target ? strlen(target) : 0;
    if (count == 0 || count > ENVELOPE_MAX_COUNT || tlen >= sizeof(((wsni_envelope *)0)->target))
        return NULL;
    size_t total = HEADER + tlen;
    for (size_t i = 0; i < count; i++)
        for (int fmt = 0; fmt < FORMAT_COUNT; fmt++) {
            wsn_frame *f = wsni_outgoing_frame(outs[i], (enum wire_format)fmt);
            if (!f || f->payload_len > UINT32_MAX)
                return NULL;
            total += 5 + f->payload_len;
        }
    unsigned char *buf = malloc(total), *p = buf;
    if (!buf)
        return NULL;
    memcpy(p, "WSNB", 4);
    p[4] = VERSION;
    p[5] = (unsigned char)kind;
    p[6] = FORMAT_COUNT;
    p[7] = (unsigned char)count;
    put64(p + 8, origin);
    put64(p + 16, seq);
    put32(p + 24, epoch);
    p[28] = (unsigned char)tlen;
    p += HEADER;
    memcpy(p, target ? target : "", tlen);
    p += tlen;
    for (size_t i = 0; i < count; i++)
        for (int fmt = 0; fmt < FORMAT_COUNT; fmt++) {
            const wsn_frame *f = outs[i]->frames[fmt];
            *p++ = (unsigned char)(f->binary ? 1 : 0);
            put32(p, (uint32_t)f->payload_len);
            memcpy(p + 4, f->payload, f->payload_len);
            p += 4 + f->payload_len;
        }
    *len = total;
    return buf;
}

int wsni_envelope_origin(const void *data, size_t len, uint64_t *origin)
{
    const unsigned char *p = data;
    if (len < HEADER || memcmp(p, "WSNB", 4) || p[4] != VERSION)
        return -1;
    *origin = get64(p + 8);
    return 0;
}

/* Frames that arrived whole: nothing left to encode. */
static wsn_frame *no_encode(outgoing *o, enum wire_format fmt)
{
    (void)o;
    (void)fmt;
    return NULL;
}

static void remote_destroy(outgoing *o) { free(o); }

int wsni_envelope_decode(const void *data, size_t len, wsni_envelope *env)
{
    const unsigned char *p = data, *end = p + len;
    memset(env, 0, sizeof(*env));
    if (wsni_envelope_origin(data, len, &env->origin))
        return -1;
    env->kind = p[5];
    env->seq = get64(p + 16);
    env->epoch = get32(p + 24);
    size_t count = p[7], tlen = p[28];
    if ((env->kind != ENVELOPE_CHANNEL && env->kind != ENVELOPE_CLIENT) || p[6] != FORMAT_COUNT ||
        count == 0 || tlen >= sizeof(env->target) || (env->kind == ENVELOPE_CLIENT) != (tlen > 0) ||
        (env->kind == ENVELOPE_CLIENT && count != 1) || (size_t)(end - p) < HEADER + tlen)
        return -1;
    p += HEADER;
    memcpy(env->target, p, tlen);
    if (memchr(env->target, 0, tlen))
        return -1;
    p += tlen;
    for (size_t i = 0; i < count; i++) {
        outgoing *o = calloc(1, sizeof(*o));
        if (!o) {
            wsni_envelope_clear(env);
            return -2;
        }
        o->encode = no_encode;
        o->destroy = remote_destroy;
        env->outs[env->count++] = o;
        for (int fmt = 0; fmt < FORMAT_COUNT; fmt++) {
            if (end - p < 5 || p[0] > 1 || get32(p + 1) > (size_t)(end - p - 5)) {
                wsni_envelope_clear(env);
                return -1;
            }
            size_t n = get32(p + 1);
            /* A browser closes on a text frame that is not UTF-8 (1007):
             * whoever can write to Redis must not be able to cut clients. */
            if (!p[0] && !wsni_utf8_valid(p + 5, n)) {
                wsni_envelope_clear(env);
                return -1;
            }
            if (!(o->frames[fmt] = wsni_frame_from(p + 5, n, p[0]))) {
                wsni_envelope_clear(env);
                return -2;
            }
            p += 5 + n;
        }
    }
    if (p != end) {
        wsni_envelope_clear(env);
        return -1;
    }
    return 0;
}

void wsni_envelope_clear(wsni_envelope *env)
{
    for (size_t i = 0; i < env->count; i++)
        wsni_outgoing_free(env->outs[i]);
    env->count = 0;
}
