#include "broker/seq.h"

#include "util/hash.h"

#include <stdlib.h>
#include <string.h>

/* Streams a sender numbers at most; beyond, the idle ones are forgotten
 * (and start again under a new epoch). */
#define OUT_MAX 65536
#define OUT_IDLE_MS 60000

typedef struct out_stream {
    UT_hash_handle hh;
    uint32_t epoch;
    uint64_t next;
    int64_t used;
    char name[];
} out_stream;

struct wsni_seq_out {
    out_stream *streams;
    uint32_t epochs; /* the last epoch given */
};

typedef struct in_origin {
    struct in_origin *next;
    uint64_t origin;
    uint32_t epoch;
    uint64_t expect;
    int64_t heard;
} in_origin;

typedef struct in_stream {
    UT_hash_handle hh;
    in_origin *origins; /* a cluster's few servers: a list */
    char name[];
} in_stream;

struct wsni_seq_in {
    in_stream *streams;
};

wsni_seq_out *wsni_seq_out_new(void) { return calloc(1, sizeof(wsni_seq_out)); }

void wsni_seq_out_free(wsni_seq_out *t)
{
    if (!t)
        return;
    out_stream *s, *tmp;
    HASH_ITER(hh, t->streams, s, tmp)
    {
        HASH_DEL(t->streams, s);
        free(s);
    }
    free(t);
}

static void out_evict(wsni_seq_out *t, int64_t now_ms)
{
    out_stream *s, *tmp;
    HASH_ITER(hh, t->streams, s, tmp)
    {
        if (now_ms - s->used >= OUT_IDLE_MS || HASH_COUNT(t->streams) >= OUT_MAX) {
            HASH_DEL(t->streams, s);
            free(s);
        }
    }
}

int wsni_seq_out_take(wsni_seq_out *t, const char *stream, size_t count, int64_t now_ms,
                      uint32_t *epoch, uint64_t *seq)
{
    size_t len = strlen(stream);
    out_stream *s;
    HASH_FIND(hh, t->streams, stream, len, s);
    if (!s) {
        if (HASH_COUNT(t->streams) >= OUT_MAX)
            out_evict(t, now_ms);
        s = malloc(sizeof(*s) + len + 1);
        if (!s)
            return -1;
        memset(s, 0, sizeof(*s));
        memcpy(s->name, stream, len + 1);
        s->epoch = ++t->epochs;
        HASH_ADD(hh, t->streams, name[0], len, s);
    }
    s->used = now_ms;
    *epoch = s->epoch;
    *seq = s->next;
    s->next += count;
    return 0;
}

wsni_seq_in *wsni_seq_in_new(void) { return calloc(1, sizeof(wsni_seq_in)); }

static void in_stream_free(in_stream *s)
{
    while (s->origins) {
        in_origin *o = s->origins;
        s->origins = o->next;
        free(o);
    }
    free(s);
}

void wsni_seq_in_free(wsni_seq_in *t)
{
    if (!t)
        return;
    in_stream *s, *tmp;
    HASH_ITER(hh, t->streams, s, tmp)
    {
        HASH_DEL(t->streams, s);
        in_stream_free(s);
    }
    free(t);
}

int64_t wsni_seq_in_check(wsni_seq_in *t, const char *stream, uint64_t origin, uint32_t epoch,
                          uint64_t seq, size_t count, int64_t now_ms)
{
    size_t len = strlen(stream);
    in_stream *s;
    HASH_FIND(hh, t->streams, stream, len, s);
    if (!s) {
        s = calloc(1, sizeof(*s) + len + 1);
        if (!s)
            return 0; /* not tracked: nothing counted, nothing dropped */
        memcpy(s->name, stream, len + 1);
        HASH_ADD(hh, t->streams, name[0], len, s);
    }
    in_origin *o = s->origins;
    while (o && o->origin != origin)
        o = o->next;
    if (!o) {
        if (!(o = calloc(1, sizeof(*o))))
            return 0;
        o->origin = origin;
        o->next = s->origins;
        s->origins = o;
        o->epoch = epoch;
        o->expect = seq;
    } else if (o->epoch != epoch) {
        o->epoch = epoch;
        o->expect = seq;
    }
    o->heard = now_ms;
    if (seq < o->expect)
        return -1;
    int64_t skipped = (int64_t)(seq - o->expect);
    o->expect = seq + count;
    return skipped;
}

void wsni_seq_in_forget(wsni_seq_in *t, const char *stream)
{
    in_stream *s;
    HASH_FIND(hh, t->streams, stream, strlen(stream), s);
    if (s) {
        HASH_DEL(t->streams, s);
        in_stream_free(s);
    }
}

void wsni_seq_in_sweep(wsni_seq_in *t, int64_t now_ms, int64_t idle_ms)
{
    in_stream *s, *tmp;
    HASH_ITER(hh, t->streams, s, tmp)
    {
        in_origin **link = &s->origins;
        while (*link) {
            in_origin *o = *link;
            if (now_ms - o->heard >= idle_ms) {
                *link = o->next;
                free(o);
            } else
                link = &o->next;
        }
        if (!s->origins) {
            HASH_DEL(t->streams, s);
            in_stream_free(s);
        }
    }
}
