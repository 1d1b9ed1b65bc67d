#include "broker/slotmap.h"

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <string.h>

static int map_master(wsni_slot_map *m, const char *host, size_t host_len, int port)
{
    for (int i = 0; i < m->n; i++)
        if (m->masters[i].port == port && strlen(m->masters[i].host) == host_len &&
            !memcmp(m->masters[i].host, host, host_len))
            return i;
    if (m->n == SLOT_MAP_MASTERS || host_len >= sizeof(m->masters[0].host))
        return -1;
    memcpy(m->masters[m->n].host, host, host_len);
    m->masters[m->n].host[host_len] = 0;
    m->masters[m->n].port = port;
    return m->n++;
}

/* CLUSTER SLOTS: [[start, end, [host, port, id, ...], replicas...], ...].
 * A master announced without a host ("") is where the seed is. */
static const char *parse_slots(wsni_slot_map *m, const redisReply *r, const char *seed_host)
{
    memset(m->owner, SLOT_MAP_NONE, sizeof(m->owner));
    m->n = 0;
    m->cluster = 1;
    if (r->type != REDIS_REPLY_ARRAY)
        return "CLUSTER SLOTS: not an array";
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            return "CLUSTER SLOTS: unexpected reply";
        long long from = e->element[0]->integer, to = e->element[1]->integer;
        const redisReply *h = e->element[2]->element[0];
        long long port = e->element[2]->element[1]->integer;
        if (from < 0 || to >= CLUSTER_SLOTS || from > to || port < 1 || port > 65535)
            return "CLUSTER SLOTS: bad slot range or port";
        const char *host = h->len && strcmp(h->str, "?") ? h->str : seed_host;
        int k = map_master(m, host, strlen(host), (int)port);
        if (k < 0)
            return "CLUSTER SLOTS: too many masters";
        memset(m->owner + from, k, (size_t)(to - from + 1));
    }
    if (memchr(m->owner, SLOT_MAP_NONE, sizeof(m->owner)))
        return "cluster: not every slot has a master";
    return NULL;
}

int wsni_slot_map_read(const wsni_broker_addr *addr, const char *host, int port, int timeout_ms,
                       wsni_slot_map *m, char *why, size_t why_len)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *ctx = host ? redisConnectWithTimeout(host, port, tv)
                        : addr->path[0]
                            ? redisConnectUnixWithTimeout(addr->path, tv)
                            : redisConnectWithTimeout(addr->host, addr->port, tv);
    const char *seed_host = host ? host : addr->path[0] ? "127.0.0.1" : addr->host;
    int rc = -1;
    redisReply *r = NULL;
    if (!ctx || ctx->err) {
        snprintf(why, why_len, "%s", ctx ? ctx->errstr : "cannot connect");
        goto out;
    }
    redisSetTimeout(ctx, tv);
    if (addr->password[0]) {
        r = redisCommand(ctx, "AUTH %s", addr->password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            snprintf(why, why_len, "AUTH refused: %.80s", r ? r->str : ctx->errstr);
            goto out;
        }
        freeReplyObject(r);
    }
    r = redisCommand(ctx, "CLUSTER SLOTS");
    if (!r) {
        snprintf(why, why_len, "CLUSTER SLOTS: %.80s", ctx->errstr);
        goto out;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* A Redis that is no cluster node: the one of the URL serves
         * every channel, as without broker_sharded. */
        if (strstr(r->str, "cluster support disabled")) {
            m->cluster = 0;
            m->n = 1;
            m->masters[0].host[0] = 0;
            rc = 0;
        } else
            snprintf(why, why_len, "CLUSTER SLOTS: %.80s", r->str);
        goto out;
    }
    const char *bad = parse_slots(m, r, seed_host);
    if (bad)
        snprintf(why, why_len, "%s", bad);
    else
        rc = 0;
out:
    if (r)
        freeReplyObject(r);
    if (ctx)
        redisFree(ctx);
    return rc;
}

