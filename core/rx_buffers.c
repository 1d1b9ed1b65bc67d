/* Why slots in mappings and not malloc: see rx_buffers.h. Slots of one size
 * come from chunks of CHUNK_BYTES of address space, mapped with
 * MAP_NORESERVE, so only the pages lws actually writes become resident.
 * Nothing of ours is stored inside a slot (the free list is a separate
 * array), or freeing would touch the page it meant to give back. */
#include "rx_buffers.h"

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The reason lws 4.1 passes when it allocates a connection's receive
 * buffer (lws_server_init_wsi_for_ws). If a later lws names it otherwise,
 * no allocation matches and everything goes to malloc, as before. */
#define RX_BUFFER_REASON "rx_ubuf"
/* Address space per chunk: 3,276 slots of a 16 KiB buffer. Reserving it
 * costs nothing resident. */
#define CHUNK_BYTES ((size_t)64 << 20)
/* Servers in one process with different read_buffer sizes: more distinct
 * sizes than this fall back to malloc. */
#define SIZE_CLASSES 4
/* Free slots keep their pages until rx_buffers_trim(): the next connection
 * reuses them, and a crowd leaving costs no system call per client. */
#define DIRTY ((uintptr_t)1)

typedef struct slot_class {
    size_t slot_bytes; /* the request rounded up to whole pages */
    size_t per_chunk;
    char **chunks;
    size_t chunk_count;
    /* A stack: the most recently freed is reused first. The low bit (slots
     * are page-aligned) marks a slot freed with its pages still resident. */
    uintptr_t *free_slots;
    size_t free_count, free_cap;
} slot_class;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static slot_class classes[SIZE_CLASSES]; /* lock */
static size_t class_count;               /* lock */
/* Bounds of every chunk, read without the lock to turn away the heap
 * pointers of every other lws free in one comparison. */
static atomic_uintptr_t lowest = UINTPTR_MAX, highest;
static size_t page_bytes;
static _Thread_local void *newest_on_this_thread;

static slot_class *class_for(size_t slot_bytes)
{
    for (size_t i = 0; i < class_count; i++)
        if (classes[i].slot_bytes == slot_bytes)
            return &classes[i];
    if (class_count == SIZE_CLASSES)
        return NULL;
    slot_class *k = &classes[class_count++];
    memset(k, 0, sizeof(*k));
    k->slot_bytes = slot_bytes;
    k->per_chunk = CHUNK_BYTES / slot_bytes;
    return k;
}

static int add_chunk(slot_class *k)
{
    char **chunks = realloc(k->chunks, (k->chunk_count + 1) * sizeof(*chunks));
    if (!chunks)
        return -1;
    k->chunks = chunks;
    /* Room for every slot of every chunk, as all may be freed at once. */
    size_t need = (k->chunk_count + 1) * k->per_chunk;
    if (need > k->free_cap) {
        uintptr_t *slots = realloc(k->free_slots, need * sizeof(*slots));
        if (!slots)
            return -1;
        k->free_slots = slots;
        k->free_cap = need;
    }
    size_t bytes = k->per_chunk * k->slot_bytes;
    char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -1;
    k->chunks[k->chunk_count++] = base;
    /* Pushed highest first, so slots are handed out in address order. */
    for (size_t i = k->per_chunk; i-- > 0;)
        k->free_slots[k->free_count++] = (uintptr_t)(base + i * k->slot_bytes);
    uintptr_t lo = (uintptr_t)base, hi = lo + bytes;
    if (lo < atomic_load(&lowest))
        atomic_store(&lowest, lo);
    if (hi > atomic_load(&highest))
        atomic_store(&highest, hi);
    return 0;
}

static void *slot_take(size_t size)
{
    size_t slot_bytes = (size + page_bytes - 1) / page_bytes * page_bytes;
    void *slot = NULL;
    pthread_mutex_lock(&lock);
    slot_class *k = class_for(slot_bytes);
    if (k && (k->free_count || add_chunk(k) == 0))
        slot = (void *)(k->free_slots[--k->free_count] & ~(uintptr_t)DIRTY);
    pthread_mutex_unlock(&lock);
    return slot;
}

/* The class whose chunk holds p, or NULL; with the lock held. */
static slot_class *owner_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    for (size_t i = 0; i < class_count; i++) {
        slot_class *k = &classes[i];
        size_t bytes = k->per_chunk * k->slot_bytes;
        for (size_t c = 0; c < k->chunk_count; c++) {
            uintptr_t base = (uintptr_t)k->chunks[c];
            if (a >= base && a < base + bytes)
                return k;
        }
    }
    return NULL;
}

static int maybe_ours(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return a >= atomic_load_explicit(&lowest, memory_order_relaxed) &&
           a < atomic_load_explicit(&highest, memory_order_relaxed);
}

/* Gives the slot back if p is one; 0 when p is not ours. */
static int slot_put(void *p)
{
    if (!maybe_ours(p))
        return 0;
    pthread_mutex_lock(&lock);
    slot_class *k = owner_of(p);
    if (k) /* room: free_cap covers every slot */
        k->free_slots[k->free_count++] = (uintptr_t)p | DIRTY;
    pthread_mutex_unlock(&lock);
    return k != NULL;
}

static size_t slot_size_of(const void *p)
{
    if (!maybe_ours(p))
        return 0;
    pthread_mutex_lock(&lock);
    slot_class *k = owner_of(p);
    size_t bytes = k ? k->slot_bytes : 0;
    pthread_mutex_unlock(&lock);
    return bytes;
}

static void *lws_allocator(void *ptr, size_t size, const char *reason)
{
    if (!ptr) {
        if (!size)
            return NULL;
        if (reason && !strcmp(reason, RX_BUFFER_REASON)) {
            void *slot = slot_take(size);
            newest_on_this_thread = slot;
            if (slot)
                return slot;
        }
        return malloc(size);
    }
    size_t slot_bytes = slot_size_of(ptr);
    if (!slot_bytes) {
        if (!size) {
            free(ptr);
            return NULL;
        }
        return realloc(ptr, size);
    }
    if (!size) {
        slot_put(ptr);
        return NULL;
    }
    /* lws never resizes a receive buffer; if one ever does, move it. */
    void *moved = malloc(size);
    if (!moved)
        return NULL;
    memcpy(moved, ptr, size < slot_bytes ? size : slot_bytes);
    slot_put(ptr);
    return moved;
}

static void install_once(void)
{
    long page = sysconf(_SC_PAGESIZE);
    page_bytes = page > 0 ? (size_t)page : 4096;
    lws_set_allocator(lws_allocator);
}

void rx_buffers_install(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_once);
}

void *rx_buffers_take_new(void)
{
    void *slot = newest_on_this_thread;
    newest_on_this_thread = NULL;
    return slot;
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

void rx_buffers_release(void **bufs, size_t count)
{
    /* One madvise per run of adjacent slots, not per slot: subscribers that
     * arrived together sit side by side, and each call is a system call
     * and a TLB flush on every CPU the process runs on. */
    qsort(bufs, count, sizeof(*bufs), by_address);
    char *run = NULL;
    size_t run_bytes = 0;
    for (size_t i = 0; i <= count; i++) {
        size_t bytes = i < count ? slot_size_of(bufs[i]) : 0;
        if (i < count && !bytes)
            continue; /* not a slot: nothing to give back */
        if (bytes && run && (char *)bufs[i] == run + run_bytes) {
            run_bytes += bytes;
        } else {
            if (run)
                madvise(run, run_bytes, MADV_DONTNEED);
            run = i < count ? bufs[i] : NULL;
            run_bytes = bytes;
        }
    }
}

static int by_value(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

void rx_buffers_trim(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < class_count; i++) {
        slot_class *k = &classes[i];
        /* Address order turns neighbours into one call; the stack order
         * is lost, which only changes which free slot is reused first. */
        qsort(k->free_slots, k->free_count, sizeof(*k->free_slots), by_value);
        char *run = NULL;
        size_t run_bytes = 0;
        for (size_t j = 0; j <= k->free_count; j++) {
            uintptr_t v = j < k->free_count ? k->free_slots[j] : 0;
            if (v && !(v & DIRTY))
                continue;
            char *slot = (char *)(v & ~DIRTY);
            if (slot && run && slot == run + run_bytes) {
                run_bytes += k->slot_bytes;
            } else {
                if (run)
                    madvise(run, run_bytes, MADV_DONTNEED);
                run = slot;
                run_bytes = slot ? k->slot_bytes : 0;
            }
            if (v)
                k->free_slots[j] = v & ~DIRTY;
        }
    }
    pthread_mutex_unlock(&lock);
}
