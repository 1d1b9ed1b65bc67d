/* The hash of every uthash table in the core, and the one place that
 * includes <uthash.h>. The tables are keyed by what clients send (channel
 * names, batch keys, metadata keys) or name (client ids), so the hash is
 * keyed: SipHash-2-4 (libsodium's crypto_shorthash) under a random key
 * made once per process. uthash's own hash is unkeyed: names that share a
 * bucket can be computed offline, and after two useless expansions uthash
 * stops expanding that table for good (issue 16 item 8). */
#ifndef WSN_UTIL_HASH_H
#define WSN_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of len bytes at key under the process's key, folded to the
 * 32 bits uthash keeps. Any thread. */
uint32_t wsni_hash(const void *key, size_t len);

#undef HASH_FUNCTION
#define HASH_FUNCTION(keyptr, keylen, hashv) ((hashv) = wsni_hash((keyptr), (size_t)(keylen)))

#include <uthash.h>

#endif
