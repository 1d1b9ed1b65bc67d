/*
 * Prints channel names whose uthash hash lands in the same bucket as a
 * target name's, for every table of up to 2^BITS buckets: the low BITS bits
 * of HASH_JEN agree. The hash is uthash's own macro (the system uthash.h
 * the core builds against), so what is printed is exactly what the
 * server's channel table computes; no key, so it can be done offline.
 *
 *   jen_collide TARGET COUNT BITS [PREFIX]
 *
 * Also prints, on stderr, the target's hash and how many names were tried.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uthash.h>

static unsigned jen(const char *s, size_t len)
{
    unsigned hashv;
    HASH_JEN(s, len, hashv);
    return hashv;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s TARGET COUNT BITS [PREFIX]\n", argv[0]);
        return 2;
    }
    const char *target = argv[1];
    long count = atol(argv[2]);
    int bits = atoi(argv[3]);
    const char *prefix = argc > 4 ? argv[4] : "c";
    if (count <= 0 || bits < 1 || bits > 31 || strlen(prefix) > 40)
        return 2;
    unsigned mask = (1u << bits) - 1u;
    unsigned want = jen(target, strlen(target)) & mask;
    char name[64];
    unsigned long tried = 0;
    long found = 0;
    for (unsigned long i = 0; found < count; i++, tried++) {
        int n = snprintf(name, sizeof name, "%s%lx", prefix, i);
        if ((jen(name, (size_t)n) & mask) == want) {
            puts(name);
            found++;
        }
    }
    fprintf(stderr, "target %s hash %08x low %d bits %x: %ld names from %lu tried\n",
            target, jen(target, strlen(target)), bits, want, found, tried);
    return 0;
}
