/* Channels and their members (io thread only). A membership sits in its
 * channel's table of members (keyed by client: subscribe checks and
 * unsubscribe are O(1)) and in its client's list of memberships (disconnect
 * cleanup is O(1) per entry). A list, not a second table: a table per
 * client cost ~200 bytes for a client in one channel. */
#ifndef WSN_REGISTRY_H
#define WSN_REGISTRY_H

#include "engine/counters.h"
#include "wsnotify.h"

#include "util/hash.h"

typedef struct channel_entry channel_entry;

typedef struct membership {
    wsn_client *client; /* borrowed: removed before the client is released */
    channel_entry *chan;
    UT_hash_handle hh_chan;   /* in chan->members, keyed by client pointer */
    struct membership *client_prev, *client_next; /* client->subs, a list */
} membership;

struct channel_entry {
    char *name;
    membership *members;
    UT_hash_handle hh;
};

typedef struct registry {
    channel_entry *channels;
    /* Told when a channel gets its first member (first = 1) and when it
     * loses its last (0); NULL: nobody listens (engine/broker.c sets it). */
    void (*watch)(void *user, const char *channel, int first);
    void *watch_user;
    /* Gauges for the metrics snapshot: io writes them as channels and
     * memberships come and go, any thread reads them. */
    wsni_counter channel_count, membership_count;
} registry;

int wsni_registry_subscribe(registry *r, wsn_client *c, const char *name);
void wsni_registry_unsubscribe(registry *r, wsn_client *c, const char *name);
/* The same, saying whether a membership was made (*joined = 1; 0: c was a
 * member already) or one was dropped (returns 1; 0: c was not a member):
 * the shell's per-client subscription count follows them. */
int wsni_registry_join(registry *r, wsn_client *c, const char *name, int *joined);
int wsni_registry_leave(registry *r, wsn_client *c, const char *name);
void wsni_registry_remove_client(registry *r, wsn_client *c);
channel_entry *wsni_registry_find(registry *r, const char *name);
void wsni_registry_clear(registry *r);

#endif
