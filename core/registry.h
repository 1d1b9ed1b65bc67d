/* Channels and their members (io thread only). A membership sits in two
 * hash tables at once: its channel's members and its client's channels,
 * so both subscribe checks and disconnect cleanup are O(1) per entry. */
#ifndef WSN_REGISTRY_H
#define WSN_REGISTRY_H

#include "wsnotify.h"

#include <uthash.h>

typedef struct channel_entry channel_entry;

typedef struct membership {
    wsn_client *client; /* borrowed: removed before the client is released */
    channel_entry *chan;
    UT_hash_handle hh_chan;   /* in chan->members, keyed by client pointer */
    UT_hash_handle hh_client; /* in client->subs, keyed by channel pointer */
} membership;

struct channel_entry {
    char *name;
    membership *members;
    UT_hash_handle hh;
};

typedef struct registry {
    channel_entry *channels;
} registry;

int registry_subscribe(registry *r, wsn_client *c, const char *name);
void registry_unsubscribe(registry *r, wsn_client *c, const char *name);
void registry_remove_client(registry *r, wsn_client *c);
channel_entry *registry_find(registry *r, const char *name);
void registry_clear(registry *r);

#endif
