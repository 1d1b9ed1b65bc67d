/* The counters behind the metrics snapshot (docs/production.md). Any
 * thread reads them at any time, so each is an atomic; one written only on
 * the I/O thread is bumped with a relaxed load and store (a plain add on
 * the CPUs we build for, no locked instruction on the delivery path),
 * one written from several threads with a relaxed fetch_add. */
#ifndef WSN_ENGINE_COUNTERS_H
#define WSN_ENGINE_COUNTERS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

typedef atomic_uint_least64_t wsni_counter;

/* Why a connection was refused before it became a client. The order is
 * the public wsn_refusal's (include/wsnotify.h; shell/metrics.c checks it):
 * append, never renumber. */
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
    WSNI_REFUSAL_COUNT         /* at most 16: wsn_metrics has 16 slots */
} wsni_refusal;

/* Why the server closed a client; the order is the public
 * wsn_close_reason's, as above. */
typedef enum wsni_closing {
    WSNI_CLOSED_SLOW,       /* its oldest queued message waited write_wait */
    WSNI_CLOSED_RATE,       /* over its inbound message rate: 1008 */
    WSNI_CLOSED_EXPIRED,    /* its authorisation expired: 4001 */
    WSNI_CLOSED_TOO_BIG,    /* a message over read_limit: 1009 */
    WSNI_CLOSED_PONG,       /* no pong within pong_wait */
    WSNI_CLOSED_QUEUE_FULL, /* drop mode: its send queue was full */
    WSNI_CLOSED_BUSY,       /* its partial message went over max_partial_bytes: 1013 */
    WSNI_CLOSING_COUNT      /* at most 16, as above */
} wsni_closing;

/* Publish calls refused (any thread, counted only on failure). */
typedef enum wsni_publish_refusal {
    WSNI_PUBLISH_LIMIT,        /* WSN_ELIMIT */
    WSNI_PUBLISH_AGAIN,        /* WSN_EAGAIN: NONBLOCK without room */
    WSNI_PUBLISH_TIMEOUT,      /* WSN_ETIMEDOUT: waited write_wait for room */
    WSNI_PUBLISH_BACKPRESSURE, /* WSN_EBACKPRESSURE: on the I/O thread, a queue full */
    WSNI_PUBLISH_REFUSAL_COUNT
} wsni_publish_refusal;

typedef struct wsni_counters {
    wsni_counter accepted; /* upgrades that became clients */
    wsni_counter refused[WSNI_REFUSAL_COUNT];
    wsni_counter closed[WSNI_CLOSING_COUNT];
    /* io, unless said otherwise */
    wsni_counter ended;  /* connections that ended, whoever closed them */
    wsni_counter received[3], received_bytes[3]; /* messages in, by wsn_message_type */
    wsni_counter invalid;    /* messages in answered with an error reply */
    /* Frames offered to clients, counted per walk over a channel's
     * members, not per member: queued (deliveries) = offered - missed. */
    wsni_counter offered;
    wsni_counter sent, sent_bytes; /* frames written, their wire bytes */
    /* Frames taken out of a queue unwritten (the client was dropped or
     * left): frames waiting now = offered - missed - sent - discarded, so
     * the delivery path keeps no gauge of its own. */
    wsni_counter discarded;
    /* Frames offered to a client that did not take them: its queue full
     * (drop mode, or a publish on the I/O thread), it was closing or gone,
     * or memory ran out. */
    wsni_counter missed;
    /* The fullest client's send queue, in frames: a gauge the transport
     * refreshes by walking the clients (not on the delivery path). */
    wsni_counter queue_max;
    /* any thread; a line of their own, away from what the I/O thread
     * writes on every delivery */
    alignas(64) wsni_counter publish_refused[WSNI_PUBLISH_REFUSAL_COUNT];
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

/* For a gauge only the I/O thread writes. */
static inline void wsni_gauge_io(wsni_counter *c, int64_t delta)
{
    wsni_count_io(c, (uint64_t)delta); /* modulo 2^64: a negative delta subtracts */
}

static inline void wsni_gauge_set(wsni_counter *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

static inline uint64_t wsni_counter_read(const wsni_counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
