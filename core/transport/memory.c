/* Why this is more than malloc_trim(0) (measured with the soak, see
 * docs/conformance.md): glibc gives each thread a cache ("tcache") of up
 * to 7 freed chunks per size class up to 1032 bytes. The arena counts
 * those chunks as in use, so malloc_trim cannot release the pages they sit
 * on, and neither can a shrink of the arena's top. After many clients
 * have come and gone, the I/O thread's cache holds chunks of the last
 * clients to leave, scattered across its grown arena, and with the free
 * fragments next to them they keep pages resident (figures in
 * docs/architecture.md, "Measurements behind the code").
 *
 * glibc has no call to flush a thread's cache (only thread exit does), so
 * we cycle it: per size class, 14 mallocs take the cached chunks out of
 * the cache (they come first) and 7 or more from the arena; freeing all
 * 14 in address order refills the cache with the 7 lowest-addressed ones
 * (the cache takes the first 7 frees of a class) and hands the rest back
 * to their arenas, where they coalesce and malloc_trim releases them. (A
 * variant that kept the 7 fresh chunks instead left more RSS in the
 * soak's block mode.) Then malloc_trim(0), and one free of a 64 KiB block
 * so that glibc also trims the top of the caller's arena, which
 * malloc_trim leaves alone in every arena but the main one. Only plain
 * malloc/free are used, so with any other allocator, or a future glibc
 * that caches differently, this is merely useless, never wrong. */
#include "transport/memory.h"

#include <stdint.h>
#include <stdlib.h>

#if defined(__GLIBC__)
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

/* tcache size classes: chunk sizes 32..1040 bytes in steps of 16, i.e.
 * requests of 24 + 16 * i bytes. */
#define CACHE_CLASSES 64
/* Twice the default per-class count (glibc.malloc.tcache_count, 7): the
 * cached chunks plus at least as many from the arena to choose from. */
#define CACHE_HOLD 14

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

void wsni_memory_give_back(void)
{
    for (int i = 0; i < CACHE_CLASSES; i++) {
        void *held[CACHE_HOLD];
        size_t n = 0;
        while (n < CACHE_HOLD && (held[n] = malloc(24 + 16 * (size_t)i)))
            n++;
        qsort(held, n, sizeof(held[0]), by_address);
        for (size_t k = 0; k < n; k++)
            free(held[k]);
    }
    malloc_trim(0);
    /* 64 KiB: glibc's FASTBIN_CONSOLIDATION_THRESHOLD, below the mmap
     * threshold (128 KiB or more), so it comes from the arena. Volatile:
     * the compiler may drop a malloc that is only freed. */
    void *volatile block = malloc(64 * 1024);
    free(block);
}

void wsni_memory_discard(void *buf, size_t len)
{
    /* Whole pages inside [buf, buf + len) only: the rest of the block is
     * malloc's (its header, or a neighbour's data). */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)buf + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)buf + len) & ~(page - 1);
    if (buf && end > start)
        madvise((void *)start, end - start, MADV_DONTNEED);
}
#else
void wsni_memory_give_back(void) {}
void wsni_memory_discard(void *buf, size_t len)
{
    (void)buf;
    (void)len;
}
#endif
