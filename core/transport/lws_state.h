/* The lws transport's per-server state, which only transport code reads
 * or writes: the context and the structures lws_create_context keeps
 * pointers to, the coalesce buffer, keepalive's and rx_quiet's client
 * lists, the loop's flags and the transport's own timers, the
 * receive-buffer pool. wsn_server holds a pointer to it, so the engine and
 * the shell never see an lws type.
 *
 * Owns: struct wsni_lws; the lws implementation of the engine's transport
 * interface (wsni_lws_transport). Thread: the I/O thread, from
 * wsni_loop_start until the I/O thread ends (ctx: read under srv->lock
 * by wake() while srv->ctx_alive). */
#ifndef WSN_TRANSPORT_LWS_STATE_H
#define WSN_TRANSPORT_LWS_STATE_H

#include "engine/transport.h"
#include "transport/loop.h"
#include "transport/rx_buffers.h"
#include "util/unix_path.h"

#include <libwebsockets.h>
#include <stdbool.h>

/* The transport's part of a client, embedded in wsn_client
 * (transport_part): only transport code reads or writes it. io only. */
struct wsni_conn {
    struct lws *wsi;      /* NULL once closed */
    wsn_frame *inflight;  /* deflate may still read it until next WRITEABLE */
    void *rx_buffer;      /* lws's receive buffer when in a slot of its own */
    unsigned char *rx;    /* message being reassembled */
    size_t rx_len, rx_cap;
    /* keepalive.c's lists, in order of last ping and of last pong */
    wsni_list_node ping_node, pong_node;
    int64_t last_pong, last_ping;
    int64_t rate_tat; /* rate.c: the bucket, as GCRA's theoretical arrival (ns) */
    unsigned rx_quiet_slot; /* index in rx_quiet + 1, 0 when not there */
    /* Bits, so that the struct fits WSNI_CONN_IMPL_SIZE with no padding:
     * 10,000 idle clients are 10,000 of these. */
    bool deflate : 1; /* permessage-deflate negotiated */
    bool rx_binary : 1;
    bool need_ping : 1;
    bool keepalive_linked : 1;
    bool rx_recent : 1; /* rx_quiet.c: rx_buffer written since the last tick */
    bool rx_held : 1;   /* reads paused for this client's share of the event queue */
    bool input_refused : 1;    /* refuse.c: closing for what it sent; what it still sends is dropped */
    bool close_handed : 1;     /* loop.c: our close frame went to lws, which awaits the answer */
};
static_assert(sizeof(struct wsni_conn) <= WSNI_CONN_IMPL_SIZE,
              "WSNI_CONN_IMPL_SIZE (engine/transport.h) too small");
static_assert(alignof(struct wsni_conn) <= WSNI_CONN_IMPL_ALIGN, "wsni_conn alignment");

static inline struct wsni_conn *wsni_conn_of(wsn_client *c)
{
    return (struct wsni_conn *)(void *)c->transport_part;
}

static inline wsn_client *wsni_conn_client(struct wsni_conn *conn)
{
    return conn ? wsni_container_of(conn, wsn_client, transport_part) : NULL;
}

typedef struct wsni_ratelog {
    int64_t at;     /* lws_now_usecs() of the last line */
    unsigned count; /* events since that line */
} wsni_ratelog;

/* Counts an event; returns how many to report (this one included) when a
 * line is due, at most once a second, else 0. */
static inline unsigned wsni_ratelog_due(wsni_ratelog *r)
{
    lws_usec_t now = lws_now_usecs();
    r->count++;
    if (r->at && now - r->at < LWS_US_PER_SEC)
        return 0;
    unsigned n = r->count;
    r->at = now;
    r->count = 0;
    return n;
}

struct wsni_lws {
    wsn_server *srv; /* const: the server this serves (timer callbacks find it) */
    /* lws_transport.c: the engine's timers sorted by due time, and the
     * one lws timer set for the earliest (timers_sul_due; 0 = not set). */
    wsni_list timers;
    lws_sorted_usec_list_t timers_sul;
    int64_t timers_sul_due;
    struct lws_context *ctx; /* lws_cancel_service from other threads only while
                              * srv->ctx_alive, under srv->lock */
    struct lws_vhost *vhost;
    unsigned char *coalesce; /* LWS_PRE + coalesce_cap bytes */
    size_t coalesce_cap;
    int stop;
    int draining;
    int rx_paused;
    size_t partial_bytes; /* reassembly buffers of every client (max_partial_bytes) */
    /* Refusals are logged at most once a second, with a count (a client
     * must not be able to flood the log): partial messages, max_clients,
     * descriptors. */
    wsni_ratelog partial_log, clients_log, fds_log;
    /* From RLIMIT_NOFILE at start: upgrades beyond client_cap get 503
     * (max_clients, or the descriptors left for clients when that is 0);
     * an accepted socket numbered fd_refuse_at or above is closed at once,
     * so that accept() never meets EMFILE (lws 4.1 retries it without
     * pause: a spin). 0 = no bound. */
    int client_cap;
    int fd_refuse_at;
    /* listener.c: our listening socket, lws's raw-file wsi that polls it
     * (NULL until adopted and once lws closed it), the spare descriptor
     * given up on EMFILE, and the timer that resumes a paused listener. */
    int listen_fd, spare_fd;
    struct lws *listen_wsi;
    wsni_timer listen_timer;
    /* handoff.c: the handoff socket (-1 without the option), its wsi, the
     * path bound, a datagram's buffer (WSN_HANDOFF_MAX_HEAD + 1). */
    int handoff_fd;
    struct lws *handoff_wsi;
    wsni_unix_path handoff_bound;
    char *handoff_buf;
    wsni_ratelog handoff_log;
    unsigned pass_writes; /* clients written to in this loop pass */
    int in_service;       /* inside the service loop, where the host is woken
                           * once per pass (wsni_event_queue_flush) */
    wsni_timer shutdown_timer, shutdown_final_timer;
    /* keepalive.c: clients by last ping and by last pong, one timer */
    wsni_list ping_list, pong_list; /* of wsn_client, by ping_node / pong_node */
    wsni_timer keepalive_timer;
    int64_t keepalive_due; /* when the timer fires; 0 = not armed */
    int peak_since_trim;   /* most clients connected since the last malloc_trim */
    int spike;             /* bytes peaked (reads paused, big partials) since then */
    int64_t trimmed_at;    /* lws_now_usecs() of the last give-back */
    wsni_timer trim_timer; /* wsni_memory_give_back() once clients left */
    /* rx_quiet.c: clients whose receive buffer was written since released */
    wsn_client **rx_quiet;
    size_t rx_quiet_len, rx_quiet_cap;
    int rx_quiet_armed;
    wsni_timer rx_quiet_timer;
    /* gate.c: upgrades waiting for the host (by id), how many were asked
     * and not answered, the last id given, connections by remote address
     * (max_clients_per_address). */
    struct wsni_gate_wait *waits_by_id;
    int tls; /* the vhost serves TLS: lws reads every request */
    struct conn_tag *adopting; /* the tag of the socket being handed to lws */
    size_t waits_asked;
    uint64_t last_upgrade_id;
    struct wsni_address_count *by_address;
    wsni_ratelog address_log, gate_log;
    /* queue_depth.c: the walk that finds the fullest send queue */
    int depth_armed;
    wsni_timer depth_timer;
    struct lws_protocols protocols[3];
    struct lws_protocol_vhost_options pvo_default, pvo_json;
    struct lws_http_mount mount_static, mount_health, mount_metrics;
    struct lws_extension extensions[2];
    lws_retry_bo_t retry;
    /* tls.c: the vhost's SSL_CTX (lws owns it; NULL without TLS), the
     * connections still in their handshake, failed handshakes' log line
     * and the last reason seen. */
    /* rate.c: client_rate's emission interval and burst tolerance (ns;
     * interval 0 = no limit), the clock of this loop pass, the log line. */
    int64_t rate_interval_ns, rate_tolerance_ns;
    int64_t rx_clock_us;
    wsni_ratelog rate_log;
    void *tls_ctx;
    void *tls_client_ctx; /* ours, given to lws (tls.c says why) */
    struct wsni_tls_pending *tls_pending;
    wsni_ratelog tls_log;
    char tls_last_why[96];
    rx_pool rx_pool; /* io: lws's receive buffers (rx_buffers.c) */
    int rx_pool_on;  /* the rx_buffer_pool option, off when the allocator hook could not go in */
};

#endif
