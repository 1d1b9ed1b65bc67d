/* The keyed hash of core/util/hash.h. */
#include "util/hash.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static unsigned char hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void make_key(void)
{
    if (sodium_init() >= 0) {
        randombytes_buf(hash_key, sizeof(hash_key));
        return;
    }
    /* libsodium could not start: the kernel's pool directly; if even that
     * fails, the clock and an address (weak, but not a constant). */
    if (getrandom(hash_key, sizeof(hash_key), 0) == (ssize_t)sizeof(hash_key))
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t mix[2] = {(uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32),
                       (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&ts};
    memcpy(hash_key, mix, sizeof(hash_key) < sizeof(mix) ? sizeof(hash_key) : sizeof(mix));
}

uint32_t wsni_hash(const void *key, size_t len)
{
    pthread_once(&hash_key_once, make_key);
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, key, len, hash_key);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return (uint32_t)(h ^ (h >> 32));
}
