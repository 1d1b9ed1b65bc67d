/* Why slots in mappings and not malloc: see rx_buffers.h. A pool's slots
 * come from chunks of CHUNK_BYTES of address space, mapped with
 * MAP_NORESERVE, so only the pages lws actually writes become resident.
 * Nothing of ours is stored inside a slot (the free list is a separate
 * array), or freeing would touch the page it meant to give back. A pool is
 * used by one thread only, so nothing here takes a lock. */
#include "transport/rx_buffers.h"

#include <dlfcn.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The reason lws 4.1 passes when it allocates a connection's receive
 * buffer (lws_server_init_wsi_for_ws). If a later lws names it otherwise,
 * no allocation matches and everything goes to malloc, as before. */
#define RX_BUFFER_REASON "rx_ubuf"
/* Address space per chunk: 963 slots of a 64 KiB buffer (the default),
 * 3,276 of a 16 KiB one. Reserving it costs nothing resident. */
#define CHUNK_BYTES ((size_t)64 << 20)
#define DIRTY ((uintptr_t)1)

static size_t page_bytes;
/* The pool of the server whose I/O thread this is, if any. */
static _Thread_local rx_pool *thread_pool;

static int add_chunk(rx_pool *pool)
{
    char **chunks = realloc(pool->chunks, (pool->chunk_count + 1) * sizeof(*chunks));
    if (!chunks)
        return -1;
    pool->chunks = chunks;
    /* Room for every slot of every chunk, as all may be freed at once. */
    size_t need = (pool->chunk_count + 1) * pool->per_chunk;
    if (need > pool->free_cap) {
        uintptr_t *slots = realloc(pool->free_slots, need * sizeof(*slots));
        if (!slots)
            return -1;
        pool->free_slots = slots;
        pool->free_cap = need;
    }
    size_t bytes = pool->per_chunk * pool->slot_bytes;
    char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -1;
    pool->chunks[pool->chunk_count++] = base;
    /* Pushed highest first, so slots are handed out in address order. */
    for (size_t i = pool->per_chunk; i-- > 0;)
        pool->free_slots[pool->free_count++] = (uintptr_t)(base + i * pool->slot_bytes);
    uintptr_t lo = (uintptr_t)base, hi = lo + bytes;
    if (!pool->lowest || lo < pool->lowest)
        pool->lowest = lo;
    if (hi > pool->highest)
        pool->highest = hi;
    return 0;
}

static void *slot_take(rx_pool *pool, size_t size)
{
    size_t slot_bytes = (size + page_bytes - 1) / page_bytes * page_bytes;
    if (!pool->slot_bytes) {
        pool->slot_bytes = slot_bytes;
        pool->per_chunk = CHUNK_BYTES / slot_bytes ? CHUNK_BYTES / slot_bytes : 1;
    }
    if (slot_bytes != pool->slot_bytes)
        return NULL;
    if (!pool->free_count && add_chunk(pool) != 0)
        return NULL;
    return (void *)(pool->free_slots[--pool->free_count] & ~DIRTY);
}

static int in_pool(const rx_pool *pool, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (!pool || a < pool->lowest || a >= pool->highest)
        return 0;
    size_t bytes = pool->per_chunk * pool->slot_bytes;
    for (size_t c = 0; c < pool->chunk_count; c++) {
        uintptr_t base = (uintptr_t)pool->chunks[c];
        if (a >= base && a < base + bytes)
            return 1;
    }
    return 0;
}

/* The allocator lws had before ours: every request that is not about one
 * of our slots goes to it, so a host's allocator, or another copy of this
 * core in the process (a static copy and libwsnotify.so, each with its own
 * pools, sharing one lws), keeps serving what it allocated. NULL: lws's
 * default behaviour (realloc/free). Written once, before ours is set. */
typedef void *(*lws_alloc_fn)(void *ptr, size_t size, const char *reason);
static lws_alloc_fn prev_allocator;

/* Copies of this core find each other through lws itself: lws_realloc
 * (NULL, 0, reason) is a no-op returning NULL for lws's default allocator
 * and, by the contract of lws_set_allocator, for any sane one. Ours
 * answers two such questions (the text must match exactly; version it if
 * the answer ever changes):
 *  - PROBE: "which allocator are you?": a pointer to the answering copy's
 *    descriptor, so a later copy can chain to it;
 *  - FIND, with reason pointing to one copy's own FIND string: "is that
 *    copy's allocator still in the chain?": its descriptor, or NULL. */
#define PROBE_TEXT "wsnotify lws allocator probe 1"
#define FIND_TEXT "wsnotify lws allocator find 1"
typedef struct allocator_desc {
    lws_alloc_fn fn;
} allocator_desc;
static const char find_reason[] = FIND_TEXT;
static void *lws_allocator(void *ptr, size_t size, const char *reason);
static const allocator_desc self = {lws_allocator};

static void *forward(void *ptr, size_t size, const char *reason)
{
    if (prev_allocator)
        return prev_allocator(ptr, size, reason);
    if (!size) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

static void *lws_allocator(void *ptr, size_t size, const char *reason)
{
    rx_pool *pool = thread_pool;
    if (!ptr) {
        if (!size) {
            if (reason == find_reason)
                return (void *)&self;
            if (reason && !strcmp(reason, PROBE_TEXT))
                return (void *)&self;
            return forward(ptr, size, reason);
        }
        if (pool && reason && !strcmp(reason, RX_BUFFER_REASON)) {
            pool->newest = slot_take(pool, size);
            if (pool->newest)
                return pool->newest;
        }
        return forward(ptr, size, reason);
    }
    if (!in_pool(pool, ptr))
        return forward(ptr, size, reason);
    void *moved = NULL;
    if (size) { /* lws never resizes a receive buffer; if one ever does */
        moved = malloc(size);
        if (!moved)
            return NULL;
        memcpy(moved, ptr, size < pool->slot_bytes ? size : pool->slot_bytes);
    }
    pool->free_slots[pool->free_count++] = (uintptr_t)ptr | DIRTY; /* free_cap: every slot */
    return moved;
}

/* lws 4.1 has no getter for its allocator. On x86-64 its setter is one
 * store, `mov %rdi, disp32(%rip); ret`, so the variable it stores to is
 * found from the code; any other code (another build, another CPU) gives
 * NULL and we fall back on the probe, which finds copies of this core but
 * not a host's own allocator. */
static lws_alloc_fn *lws_allocator_slot(void)
{
#if defined(__x86_64__)
    void (*setter)(lws_alloc_fn) = lws_set_allocator;
    const unsigned char *code;
    memcpy(&code, &setter, sizeof(code));
    static const unsigned char store_rdi[3] = {0x48, 0x89, 0x3d};
    if (memcmp(code, store_rdi, 3) || code[7] != 0xc3)
        return NULL;
    int32_t disp;
    memcpy(&disp, code + 3, sizeof(disp));
    return (lws_alloc_fn *)(uintptr_t)(code + 7 + disp);
#else
    return NULL;
#endif
}

/* A library copy whose allocator lws calls must never be unmapped. */
static void pin_this_copy(void)
{
    Dl_info info;
    lws_alloc_fn fn = lws_allocator;
    void *addr;
    memcpy(&addr, &fn, sizeof(addr));
    /* The main program is not found by its path (NULL): it is never
     * unloaded anyway. The handle is kept on purpose. */
    if (dladdr(addr, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static void install_once(void)
{
    long page = sysconf(_SC_PAGESIZE);
    page_bytes = page > 0 ? (size_t)page : 4096;
    pin_this_copy();
    lws_alloc_fn *slot = lws_allocator_slot();
    if (slot) {
        prev_allocator = *slot;
    } else {
        const allocator_desc *other = lws_realloc(NULL, 0, PROBE_TEXT);
        prev_allocator = other ? other->fn : NULL;
    }
    lws_set_allocator(lws_allocator);
}

int wsni_rx_lws_version_supported(const char *version, char *why, size_t why_len)
{
    int major = 0, minor = 0;
    if (version && sscanf(version, "%d.%d", &major, &minor) == 2 && major == 4 && minor == 1)
        return 1;
    snprintf(why, why_len,
             "libwebsockets %s is not one the receive-buffer pool was verified with (4.1.x): "
             "it relies on lws writing only control frames into a connection's buffer; "
             "set rx_buffer_pool=0 to run without it",
             version ? version : "(unknown)");
    return 0;
}

int wsni_rx_buffers_install(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_once);
    /* Ours may have been replaced since: by a host (then it would free
     * our slots with its own free) or by a copy of this core that chains
     * to us (fine). Only slots lws can still give back to us are safe. */
    return lws_realloc(NULL, 0, find_reason) == &self ? 0 : -1;
}

void wsni_rx_pool_attach(rx_pool *pool)
{
    thread_pool = pool;
}

void *wsni_rx_pool_take_new(rx_pool *pool)
{
    void *slot = pool->newest;
    pool->newest = NULL;
    return slot;
}

/* madvise(MADV_DONTNEED) over runs of neighbouring slots: subscribers that
 * arrived together sit side by side, and each call is a system call and a
 * TLB flush on every CPU the process runs on. sorted: addresses ascending,
 * 0 entries skipped. */
static void discard_runs(const rx_pool *pool, const uintptr_t *sorted, size_t count)
{
    char *run = NULL;
    size_t run_bytes = 0;
    for (size_t i = 0; i < count; i++) {
        char *slot = (char *)sorted[i];
        if (!slot)
            continue;
        if (run && slot == run + run_bytes) {
            run_bytes += pool->slot_bytes;
            continue;
        }
        if (run)
            madvise(run, run_bytes, MADV_DONTNEED);
        run = slot;
        run_bytes = pool->slot_bytes;
    }
    if (run)
        madvise(run, run_bytes, MADV_DONTNEED);
}

static int by_value(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

void wsni_rx_pool_release(rx_pool *pool, uintptr_t *bufs, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!in_pool(pool, (const void *)bufs[i]))
            bufs[i] = 0;
    qsort(bufs, count, sizeof(*bufs), by_value);
    discard_runs(pool, bufs, count);
}

void wsni_rx_pool_trim(rx_pool *pool)
{
    /* Address order turns neighbours into one call; the stack order is
     * lost, which only changes which free slot is reused first. Clean
     * slots are left out of the runs (their pages are gone already). */
    qsort(pool->free_slots, pool->free_count, sizeof(*pool->free_slots), by_value);
    uintptr_t *dirty = malloc(pool->free_count * sizeof(*dirty) + 1);
    size_t n = 0;
    for (size_t i = 0; i < pool->free_count; i++) {
        uintptr_t v = pool->free_slots[i];
        if (!(v & DIRTY))
            continue;
        pool->free_slots[i] = v & ~DIRTY;
        if (dirty)
            dirty[n++] = v & ~DIRTY;
        else
            madvise((void *)(v & ~DIRTY), pool->slot_bytes, MADV_DONTNEED);
    }
    discard_runs(pool, dirty, n);
    free(dirty);
}

void wsni_rx_pool_destroy(rx_pool *pool)
{
    for (size_t c = 0; c < pool->chunk_count; c++)
        munmap(pool->chunks[c], pool->per_chunk * pool->slot_bytes);
    free(pool->chunks);
    free(pool->free_slots);
    memset(pool, 0, sizeof(*pool));
}
