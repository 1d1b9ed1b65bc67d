/* Redis Cluster's key slots: which of the 16384 slots a channel name
 * falls in (CRC16/XMODEM of the name, or of its first non-empty {hash
 * tag}), as every cluster node computes it, so that a sharded publish
 * goes to the master that owns its channel.
 *
 * Owns: the slot function. Any thread. */
#ifndef WSN_BROKER_SLOTS_H
#define WSN_BROKER_SLOTS_H

#include <stddef.h>

enum { CLUSTER_SLOTS = 16384 };

/* The slot of len bytes of name (hash tags applied). */
unsigned wsni_key_slot(const char *name, size_t len);

#endif
