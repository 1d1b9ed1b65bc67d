/* The counters behind the metrics snapshot (docs/production.md). Any
 * thread reads them at any time, so each is an atomic; one written only on
 * the I/O thread is bumped with a relaxed load and store (a plain add on
 * the CPUs we build for, no locked instruction on the delivery path),
 * one written from several threads with a relaxed fetch_add. */
#ifndef WSN_ENGINE_COUNTERS_H
#define WSN_ENGINE_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

typedef atomic_uint_least64_t wsni_counter;

/* Why a connection was refused before it became a client. */
typedef enum wsni_refusal {
    WSNI_REFUSED_SHUTDOWN,     /* the server is draining */
    WSNI_REFUSED_MAX_CLIENTS,  /* max_clients, or what RLIMIT_NOFILE leaves */
    WSNI_REFUSED_PER_ADDRESS,  /* max_clients_per_address */
    WSNI_REFUSED_DESCRIPTORS,  /* closed at accept: descriptors nearly gone */
    WSNI_REFUSED_ORIGIN,       /* 403 */
    WSNI_REFUSED_BAD_REQUEST,  /* wrong path, method, subprotocol, header */
    WSNI_REFUSED_AUTH,         /* the host's auth hook said no */
    WSNI_REFUSED_AUTH_TIMEOUT, /* the host did not answer in auth_timeout */
    WSNI_REFUSED_AUTH_QUEUE,   /* too many upgrades waiting for the host */
    WSNI_REFUSED_TLS,          /* the TLS handshake failed */
    WSNI_REFUSAL_COUNT
} wsni_refusal;

/* Why the server closed a client. */
typedef enum wsni_closing {
    WSNI_CLOSED_SLOW,       /* backpressure: drop mode or write_wait */
    WSNI_CLOSED_RATE,       /* over its inbound message rate: 1008 */
    WSNI_CLOSED_EXPIRED,    /* its authorisation expired: 4001 */
    WSNI_CLOSED_TOO_BIG,    /* a message over read_limit: 1009 */
    WSNI_CLOSED_PONG,       /* no pong within pong_wait */
    WSNI_CLOSING_COUNT
} wsni_closing;

typedef struct wsni_counters {
    wsni_counter accepted; /* upgrades that became clients */
    wsni_counter refused[WSNI_REFUSAL_COUNT];
    wsni_counter closed[WSNI_CLOSING_COUNT];
} wsni_counters;

/* For a counter only the I/O thread writes. */
static inline void wsni_count_io(wsni_counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* For a counter several threads write. */
static inline void wsni_count(wsni_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t wsni_counter_read(const wsni_counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
