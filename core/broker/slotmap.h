/* A Redis Cluster's slot map: which master owns each of the 16384 key
 * slots, read with CLUSTER SLOTS from one node (blocking, bounded by a
 * timeout: the broker thread's, never the I/O thread's).
 *
 * Owns: the map and its reading. Broker thread. */
#ifndef WSN_BROKER_SLOTMAP_H
#define WSN_BROKER_SLOTMAP_H

#include "broker/slots.h"
#include "broker/url.h"

enum { SLOT_MAP_MASTERS = 32, SLOT_MAP_NONE = 0xff };

typedef struct wsni_slot_map {
    int cluster; /* 0: the node has cluster support disabled (n is 1) */
    int n;       /* masters */
    struct {
        char host[256]; /* "" (not a cluster): the URL's own address */
        int port;
    } masters[SLOT_MAP_MASTERS];
    unsigned char owner[CLUSTER_SLOTS]; /* slot -> index in masters */
} wsni_slot_map;

/* Asks the node at host:port (NULL host: addr's own address, unix socket
 * or host) for the map, after AUTH with addr's password. 0 with *m filled
 * (a node without cluster support: m->cluster 0), or -1 with why (cannot
 * connect, refused, a map that leaves a slot without master). */
int wsni_slot_map_read(const wsni_broker_addr *addr, const char *host, int port, int timeout_ms,
                       wsni_slot_map *m, char *why, size_t why_len);

#endif
