#include "engine/registry.h"

#include "engine/objects.h"

#include <stdlib.h>
#include <string.h>

/* uthash starts every table with 32 buckets (512 bytes): a channel with
 * one or two members would cost that much. Tables made here start with 4
 * and grow as usual. */
#undef HASH_INITIAL_NUM_BUCKETS
#undef HASH_INITIAL_NUM_BUCKETS_LOG2
#define HASH_INITIAL_NUM_BUCKETS 4U
#define HASH_INITIAL_NUM_BUCKETS_LOG2 2U

channel_entry *wsni_registry_find(registry *r, const char *name)
{
    channel_entry *ch = NULL;
    HASH_FIND_STR(r->channels, name, ch);
    return ch;
}

int wsni_registry_join(registry *r, wsn_client *c, const char *name, int *joined)
{
    *joined = 0;
    channel_entry *ch = wsni_registry_find(r, name);
    if (!ch) {
        ch = calloc(1, sizeof(*ch));
        if (!ch || !(ch->name = strdup(name))) {
            free(ch);
            return WSN_ENOMEM;
        }
        HASH_ADD_KEYPTR(hh, r->channels, ch->name, strlen(ch->name), ch);
        wsni_gauge_io(&r->channel_count, 1);
    }
    membership *m = NULL;
    HASH_FIND(hh_chan, ch->members, &c, sizeof(c), m);
    if (m)
        return WSN_OK;
    m = calloc(1, sizeof(*m));
    if (!m) {
        if (!ch->members) { /* made just now: no empty channel stays */
            wsni_gauge_io(&r->channel_count, -1);
            HASH_DEL(r->channels, ch);
            free(ch->name);
            free(ch);
        }
        return WSN_ENOMEM;
    }
    m->client = c;
    m->chan = ch;
    HASH_ADD(hh_chan, ch->members, client, sizeof(m->client), m);
    m->client_next = c->subs;
    if (c->subs)
        c->subs->client_prev = m;
    c->subs = m;
    wsni_gauge_io(&r->membership_count, 1);
    if (r->watch && HASH_CNT(hh_chan, ch->members) == 1)
        r->watch(r->watch_user, ch->name, 1);
    *joined = 1;
    return WSN_OK;
}

int wsni_registry_subscribe(registry *r, wsn_client *c, const char *name)
{
    int joined;
    return wsni_registry_join(r, c, name, &joined);
}

static void drop_membership(registry *r, membership *m)
{
    channel_entry *ch = m->chan;
    HASH_DELETE(hh_chan, ch->members, m);
    if (m->client_prev)
        m->client_prev->client_next = m->client_next;
    else
        m->client->subs = m->client_next;
    if (m->client_next)
        m->client_next->client_prev = m->client_prev;
    free(m);
    wsni_gauge_io(&r->membership_count, -1);
    if (!ch->members) {
        if (r->watch)
            r->watch(r->watch_user, ch->name, 0);
        wsni_gauge_io(&r->channel_count, -1);
        HASH_DEL(r->channels, ch);
        free(ch->name);
        free(ch);
    }
}

int wsni_registry_leave(registry *r, wsn_client *c, const char *name)
{
    channel_entry *ch = wsni_registry_find(r, name);
    if (!ch)
        return 0;
    membership *m = NULL;
    HASH_FIND(hh_chan, ch->members, &c, sizeof(c), m);
    if (!m)
        return 0;
    drop_membership(r, m);
    return 1;
}

void wsni_registry_unsubscribe(registry *r, wsn_client *c, const char *name)
{
    (void)wsni_registry_leave(r, c, name);
}

void wsni_registry_remove_client(registry *r, wsn_client *c)
{
    while (c->subs)
        drop_membership(r, c->subs);
}

void wsni_registry_clear(registry *r)
{
    channel_entry *ch, *tmp;
    HASH_ITER(hh, r->channels, ch, tmp)
    {
        membership *m, *mtmp;
        HASH_ITER(hh_chan, ch->members, m, mtmp) { drop_membership(r, m); }
    }
}
