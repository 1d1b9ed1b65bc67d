/* The I/O thread: the lws context, its callback, the write path and the
 * keepalive timers. Everything here runs on the I/O thread. */
#include "engine/batch.h"
#include "engine/codec.h"
#include "engine/expiry.h"
#include "shell/cluster.h"
#include "shell/commands.h"
#include "transport/gate.h"
#include "transport/keepalive.h"
#include "transport/handoff.h"
#include "transport/listener.h"
#include "transport/lws_state.h"
#include "transport/memory.h"
#include "transport/metrics_http.h"
#include "transport/origin.h"
#include "transport/rate.h"
#include "transport/refuse.h"
#include "transport/headers.h"
#include "transport/rx_buffers.h"
#include "transport/rx_quiet.h"
#include "transport/tls.h"
#include "util/text.h"
#include "util/thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* One raw write carries up to this many bytes of queued frames; lws's send
 * cap (tx_packet_size) matches, so it is one send() per writable pass. */
#define COALESCE_BYTES (256 * 1024)
/* lws reads each socket into one per-thread buffer of this size per pass;
 * bigger means a busy publisher's messages are taken in fewer passes. */
#ifndef PT_SERV_BUF
#define PT_SERV_BUF (64 * 1024)
#endif
/* A loop pass that wrote to fewer clients than this applies the publishes
 * queued meanwhile at once (see io_main). */
#define EARLY_COMMANDS_MAX_WRITES 32
/* Handed connections taken per readable event (as listener.c's accepts). */
#define HANDOFFS_PER_PASS 64
/* Raw writes per WRITEABLE callback before yielding to other clients. */
#define WRITE_PASSES 4
/* Below this many clients at the peak, memory is not worth giving back. */
#define TRIM_MIN_PEAK 32
/* Partial messages holding this much count as a spike worth a trim. */
#define SPIKE_PARTIAL_BYTES (16u << 20)

struct pss {
    wsn_client *client; /* the registry's reference; NULL until ESTABLISHED */
    int deflate;        /* permessage-deflate accepted during the handshake */
    int in_message;     /* a fragmented message is being received */
    int health;         /* an HTTP /healthz body is due */
    char *health_why;   /* malloc'd: the 503 body due (why the server is not
                           healthy); freed when written or at close */
    struct wsni_metrics_reply *metrics; /* a GET /metrics answer being written */
};

void wsni_loop_emit(wsn_server *srv, wsn_event *ev)
{
    if (srv->events_on_io_thread && ev->kind != WSN_EVENT_STOPPED) {
        handler h = srv->handlers[ev->kind];
        if (h.fn)
            h.fn(h.user, srv, ev);
        wsn_event_free(ev);
        return;
    }
    if (srv->events_on_io_thread) {
        handler h = srv->handlers[ev->kind];
        if (h.fn)
            h.fn(h.user, srv, ev);
    }
    /* The queue decides under its lock, so the host's resume decision
     * (taken under the same lock) can never be missed. */
    wsn_client *c = ev->client;
    int pause = wsni_event_queue_push(srv->events, ev, srv->lws->in_service);
    if (pause & EVQ_BIG)
        srv->lws->spike = 1;
    if (pause & EVQ_PAUSE_CLIENT) {
        /* ev may be taken and freed by now; c is still referenced by the
         * caller (the connection holds it). */
        struct wsni_conn *conn = wsni_conn_of(c);
        conn->rx_held = 1;
        if (conn->wsi && !srv->lws->rx_paused)
            lws_rx_flow_control(conn->wsi, 0);
    }
    if (pause & (EVQ_PAUSE_ALL_COUNT | EVQ_PAUSE_ALL_BYTES)) {
        if (pause & EVQ_PAUSE_ALL_COUNT)
            wsni_log(srv, WSN_LOG_WARN, "%zu events waiting for the host: pausing reads",
                     srv->event_queue_limit);
        else
            wsni_log(srv, WSN_LOG_WARN,
                     "events waiting for the host hold event_queue_bytes: pausing reads");
        srv->lws->spike = 1;
        wsni_loop_pause_rx(srv, 1);
    }
}

void wsni_loop_pause_rx(wsn_server *srv, int pause)
{
    if (srv->lws->rx_paused == pause)
        return;
    srv->lws->rx_paused = pause;
    /* The id table is written only on this thread, so reading it here
     * needs no lock. A client held for its own share stays paused. */
    wsn_client *c, *tmp;
    HASH_ITER(hh, srv->clients_by_id, c, tmp)
    {
        struct wsni_conn *conn = wsni_conn_of(c);
        if (conn->wsi && !conn->rx_held)
            lws_rx_flow_control(conn->wsi, !pause);
    }
}

void wsni_loop_resume_client_rx(wsn_client *c)
{
    struct wsni_conn *conn = wsni_conn_of(c);
    wsn_server *srv = c->srv;
    /* The host's resume and a later push that paused c again cross here:
     * the queue's word is the last. */
    if (!conn->rx_held || wsni_event_queue_client_paused(srv->events, c))
        return;
    conn->rx_held = 0;
    if (conn->wsi && !srv->lws->rx_paused)
        lws_rx_flow_control(conn->wsi, 1);
}

static void emit_client_event(wsn_server *srv, wsn_event_type kind, wsn_client *c)
{
    wsn_event *ev = wsni_event_new(kind, c);
    if (ev)
        wsni_loop_emit(srv, ev);
    else
        wsni_log(srv, WSN_LOG_ERROR, "client %s: event lost: out of memory", c->id);
}

/* --- handshake ----------------------------------------------------------- */

static int refuse(struct lws *wsi, unsigned int status, const char *why)
{
    if (lws_return_http_status(wsi, status, why))
        return -1;
    return 1;
}

/* Counts a refusal for the metrics and passes refuse()'s result on. */
static int refused(wsn_server *srv, wsni_refusal why, int rc)
{
    wsni_count_io(&srv->counters.refused[why], 1);
    return rc;
}

/* lws drops a client whose every offered subprotocol is unknown without a
 * word; we answer 400 instead. No header at all means JSON. */
static int subprotocol_supported(struct lws *wsi)
{
    char *offer = wsni_header_copy(wsi, WSI_TOKEN_PROTOCOL, NULL);
    if (!offer)
        return 1;
    int found = 0;
    char *save = NULL;
    for (char *tok = strtok_r(offer, ", \t", &save); tok && !found;
         tok = strtok_r(NULL, ", \t", &save))
        found = !strcmp(tok, "wsnotify.json") || !strcmp(tok, "wsnotify.msgpack");
    free(offer);
    return found;
}

static int confirm_upgrade(wsn_server *srv, struct lws *wsi)
{
    if (srv->lws->draining)
        return refused(srv, WSNI_REFUSED_SHUTDOWN,
                       refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "server shutting down"));
    char *uri = wsni_header_copy(wsi, WSI_TOKEN_GET_URI, NULL);
    if (!uri)
        return refused(srv, WSNI_REFUSED_BAD_REQUEST,
                       refuse(wsi, HTTP_STATUS_METHOD_NOT_ALLOWED, "WebSocket upgrade needs GET"));
    int right_path = !strcmp(uri, opt_str(srv->opts, WSN_OPT_PATH));
    free(uri);
    if (!right_path)
        return refused(srv, WSNI_REFUSED_BAD_REQUEST, refuse(wsi, HTTP_STATUS_NOT_FOUND, NULL));
    if (srv->lws->client_cap && srv->connected >= srv->lws->client_cap) {
        unsigned n = wsni_ratelog_due(&srv->lws->clients_log);
        if (n)
            wsni_log(srv, WSN_LOG_WARN, "%d clients (%s): %u upgrades refused with 503",
                     srv->lws->client_cap,
                     srv->max_clients ? "max_clients" : "what RLIMIT_NOFILE leaves", n);
        return refused(srv, WSNI_REFUSED_MAX_CLIENTS,
                       refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "too many clients"));
    }
    if (!subprotocol_supported(wsi))
        return refused(srv, WSNI_REFUSED_BAD_REQUEST,
                       refuse(wsi, HTTP_STATUS_BAD_REQUEST,
                              "unsupported subprotocol: offer wsnotify.json or wsnotify.msgpack"));
    /* With no extension to accept, lws 4.1.6 reads an extension offer to
     * its end, gives up at byte 255 and drops the connection unanswered
     * (lws_extension_server_handshake): answer instead. */
    if (lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS) >= 255)
        return refused(srv, WSNI_REFUSED_BAD_REQUEST,
                       refuse(wsi, HTTP_STATUS_BAD_REQUEST,
                              "Sec-WebSocket-Extensions over 254 bytes (no extension is supported)"));
    char *origin = wsni_header_copy(wsi, WSI_TOKEN_ORIGIN, NULL);
    char *host = wsni_header_copy(wsi, WSI_TOKEN_HOST, NULL);
    int ok;
    if (srv->opts->origin_fn)
        ok = srv->opts->origin_fn(srv->opts->origin_user, origin, host) != 0;
    else
        ok = wsni_origin_allowed(opt_str(srv->opts, WSN_OPT_ALLOWED_ORIGINS), origin, host);
    if (!ok)
        wsni_log(srv, WSN_LOG_WARN, "origin %s refused (host %s)", origin ? origin : "(none)",
                host ? host : "(none)");
    free(origin);
    free(host);
    if (!ok)
        return refused(srv, WSNI_REFUSED_ORIGIN,
                       refuse(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed"));
    if (opt_int(srv->opts, WSN_OPT_AUTHENTICATE) && wsni_gate_unanswered(wsi)) {
        /* The gate asks the host about a plain connection's first request
         * only; over TLS the request waits once upgraded. */
        if (!srv->lws->tls)
            return refuse(wsi, HTTP_STATUS_BAD_REQUEST,
                          "the upgrade must be the connection's first request");
        if (wsni_gate_hold(srv, wsi))
            return refuse(wsi, HTTP_STATUS_SERVICE_UNAVAILABLE, "out of memory");
    }
    return 0;
}

/* The connection becomes a client: on upgrade, or for one held for the
 * host (TLS), once the host accepted it. */
static int make_client(wsn_server *srv, struct lws *wsi, struct pss *pss)
{
    wsn_client *c = wsni_client_new(srv);
    if (!c) {
        wsni_log(srv, WSN_LOG_ERROR, "out of memory accepting a client");
        return -1;
    }
    wsni_conn_of(c)->wsi = wsi;
    wsni_conn_of(c)->rx_buffer = wsni_rx_pool_take_new(&srv->lws->rx_pool);
    wsni_conn_of(c)->deflate = pss->deflate;
    lws_get_peer_simple(wsi, c->remote, sizeof(c->remote));
    const struct lws_protocols *proto = lws_get_protocol(wsi);
    c->format = proto && proto->id == 2 ? FORMAT_MSGPACK : FORMAT_JSON;
    c->subprotocol = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) > 0 && proto ? proto->name : "";
    wsni_client_attach(c);
    pss->client = c;
    wsni_client_register(c);
    if (srv->connected > srv->lws->peak_since_trim)
        srv->lws->peak_since_trim = srv->connected;
    wsni_keepalive_add(srv, c);
    if (srv->lws->rx_paused)
        lws_rx_flow_control(wsi, 0);
    wsni_log(srv, WSN_LOG_DEBUG, "client %s connected from %s", c->id, c->remote);
    wsni_upgrade_answer *answer = wsni_gate_take_answer(wsi);
    if (answer) {
        wsni_upgrade_answer_apply(c, answer);
        wsni_upgrade_answer_free(answer);
    }
    emit_client_event(srv, WSN_EVENT_CONNECT, c);
    return 0;
}

static int on_established(wsn_server *srv, struct lws *wsi, struct pss *pss)
{
    if (srv->lws->draining)
        return -1;
    if (wsni_gate_is_held(wsi)) {
        wsn_event *ev = wsni_gate_held_connected(srv, wsi);
        if (ev)
            wsni_loop_emit(srv, ev);
        return 0;
    }
    return make_client(srv, wsi, pss);
}

/* A connection held for the host (TLS) has no client yet: it is written
 * to once, to be refused or to become a client. */
static int held_writeable(wsn_server *srv, struct lws *wsi, struct pss *pss)
{
    const char *reason;
    int code = wsni_gate_held_close(wsi, &reason);
    if (code) {
        lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)reason,
                         strlen(reason));
        return -1;
    }
    if (wsni_gate_is_held(wsi) || wsni_gate_unanswered(wsi))
        return 0;
    if (srv->lws->draining)
        return -1;
    if (make_client(srv, wsi, pss))
        return -1;
    if (!srv->lws->rx_paused)
        lws_rx_flow_control(wsi, 1);
    return 0;
}

/* After many clients leave, glibc keeps their freed memory mapped; give it
 * back so a server's footprint follows its load (the soak measures this). */
static void give_back_now(wsni_timer *tm)
{
    wsn_server *srv = wsni_container_of(tm, struct wsni_lws, trim_timer)->srv;
    if (!srv->connected) /* the biggest writes touched it to its end */
        wsni_memory_discard(srv->lws->coalesce, LWS_PRE + srv->lws->coalesce_cap);
    if (srv->malloc_trim)
        wsni_memory_give_back();
    wsni_rx_pool_trim(&srv->lws->rx_pool);
    srv->lws->peak_since_trim = srv->connected;
    srv->lws->spike = 0;
    srv->lws->trimmed_at = lws_now_usecs();
}

static void give_back_memory(wsn_server *srv)
{
    int now = srv->connected;
    if (!srv->ctx_alive) /* CLOSED during lws_context_destroy */
        return;
    /* At zero always (the last <= TRIM_MIN_PEAK clients' memory too);
     * otherwise below half the peak since the last time, or after a
     * spike in bytes (a full event queue, many partial messages: a few
     * clients can pin hundreds of MiB, issue 16 item 7), at most once a
     * second. */
    int64_t delay = 100 * 1000;
    if (now && srv->lws->spike) {
        int64_t next = srv->lws->trimmed_at + LWS_US_PER_SEC - lws_now_usecs();
        if (next > delay)
            delay = next;
    } else if (now && (srv->lws->peak_since_trim < TRIM_MIN_PEAK ||
                       now > srv->lws->peak_since_trim / 2)) {
        return;
    }
    /* Later, from the loop: lws frees this client's wsi (and we release
     * the client) only after CLOSED returns; repeated calls coalesce. */
    wsni_timer_arm(srv, &srv->lws->trim_timer, give_back_now, delay);
}

static void partial_refused_log(wsn_server *srv, wsn_client *c)
{
    unsigned n = wsni_ratelog_due(&srv->lws->partial_log);
    if (n)
        wsni_log(srv, WSN_LOG_WARN,
                 "client %s: messages being received hold max_partial_bytes (%zu): closed with "
                 "1013 (%u such clients since the last line)",
                 c->id, srv->max_partial_bytes, n);
}

/* Frees c's reassembly buffer and takes it off the server's partial bytes. */
static void rx_release(wsn_server *srv, wsn_client *c)
{
    struct wsni_conn *conn = wsni_conn_of(c);
    srv->lws->partial_bytes -= conn->rx_cap;
    free(conn->rx);
    conn->rx = NULL;
    conn->rx_cap = conn->rx_len = 0;
}

static void on_closed(wsn_server *srv, struct pss *pss)
{
    wsn_client *c = pss->client;
    if (!c)
        return; /* refused during the handshake: never a client */
    pss->client = NULL;
    wsni_keepalive_remove(srv, c);
    wsni_rx_quiet_remove(srv, c);
    wsni_expiry_clear(c);
    wsni_client_detach(c);
    if (wsni_conn_of(c)->inflight) {
        wsni_frame_unref(wsni_conn_of(c)->inflight);
        wsni_conn_of(c)->inflight = NULL;
    }
    wsni_conn_of(c)->wsi = NULL;
    wsni_conn_of(c)->rx_buffer = NULL; /* lws frees it with the wsi */
    rx_release(srv, c);
    wsni_client_forget(c);
    give_back_memory(srv);
    wsni_log(srv, WSN_LOG_DEBUG, "client %s disconnected", c->id);
    emit_client_event(srv, WSN_EVENT_DISCONNECT, c);
    wsn_client_release(c);
    if (srv->lws->draining && !srv->connected && !srv->lws->stop) {
        srv->lws->stop = 1;
        /* Not while lws_context_destroy() runs: the context is going. */
        if (srv->ctx_alive)
            lws_cancel_service(srv->lws->ctx);
    }
}

/* --- receiving ------------------------------------------------------------ */

static void reply_error(wsn_server *srv, wsn_client *c, const char *error)
{
    outgoing *o = wsni_error_out_new(c->id, error);
    if (o) {
        wsni_deliver_to_client(srv, c, o, 0);
        wsni_outgoing_free(o);
    }
}

static void message_complete(wsn_server *srv, wsn_client *c, const unsigned char *data,
                             size_t len)
{
    if (!wsni_rate_admit(srv, c))
        return;
    wsn_event *ev = wsni_event_new(WSN_EVENT_MESSAGE, c);
    if (!ev) {
        wsni_log(srv, WSN_LOG_ERROR, "client %s: message lost: out of memory", c->id);
        return;
    }
    int msgpack_envelope = wsni_conn_of(c)->rx_binary && c->format == FORMAT_MSGPACK;
    if ((wsni_conn_of(c)->rx_binary && !msgpack_envelope) || srv->raw_incoming) {
        ev->msg.type = wsni_conn_of(c)->rx_binary ? WSN_TYPE_BINARY : WSN_TYPE_TEXT;
        ev->msg.channel = strdup("");
        ev->msg.message_id = strdup("");
        ev->msg.reply_to_id = strdup("");
        ev->msg.payload = malloc(len + 1);
        if (!ev->msg.channel || !ev->msg.message_id || !ev->msg.reply_to_id || !ev->msg.payload) {
            wsn_event_free(ev);
            return;
        }
        if (len)
            memcpy(ev->msg.payload, data, len);
        ev->msg.payload[len] = 0;
        ev->msg.payload_len = len;
    } else {
        const char *error = NULL;
        const unsigned char *rx = data ? data : (const unsigned char *)"";
        int rc = wsni_codec_of(msgpack_envelope ? FORMAT_MSGPACK : FORMAT_JSON)
                     ->parse(rx, len, &ev->msg, &error);
        if (rc) {
            wsn_event_free(ev);
            wsni_count_io(&srv->counters.invalid, 1);
            reply_error(srv, c, error);
            return;
        }
    }
    wsni_count_io(&srv->counters.received[ev->msg.type], 1);
    wsni_count_io(&srv->counters.received_bytes[ev->msg.type], len);
    wsni_loop_emit(srv, ev);
}

static int on_receive(wsn_server *srv, struct lws *wsi, struct pss *pss, const void *in,
                      size_t len)
{
    wsn_client *c = pss->client;
    if (!c || wsni_input_refused(c))
        return 0;
    if (!pss->in_message) {
        pss->in_message = 1;
        wsni_conn_of(c)->rx_len = 0;
        wsni_conn_of(c)->rx_binary = lws_frame_is_binary(wsi);
    }
    /* The frame header already tells how much more is coming: refuse an
     * oversize message before waiting for (or buffering) its bytes. */
    if (wsni_conn_of(c)->rx_len + len + lws_remaining_packet_payload(wsi) > srv->read_limit) {
        wsni_log(srv, WSN_LOG_INFO, "client %s: message over read_limit (%zu)", c->id,
                srv->read_limit);
        wsni_count_io(&srv->counters.closed[WSNI_CLOSED_TOO_BIG], 1);
        rx_release(srv, c);
        wsni_input_refuse(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too big");
        return 0;
    }
    int whole = !wsni_conn_of(c)->rx_len && lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
    if (whole) {
        /* The common case, a message in one piece: no copy, and no buffer
         * kept per client (it was a kilobyte for every idle subscriber). */
        pss->in_message = 0;
        message_complete(srv, c, (const unsigned char *)in, len);
        return 0;
    }
    if (wsni_conn_of(c)->rx_len + len > wsni_conn_of(c)->rx_cap) {
        size_t cap = wsni_conn_of(c)->rx_cap ? wsni_conn_of(c)->rx_cap : 1024;
        while (cap < wsni_conn_of(c)->rx_len + len)
            cap *= 2;
        size_t grow = cap - wsni_conn_of(c)->rx_cap;
        if (srv->max_partial_bytes && srv->lws->partial_bytes + grow > srv->max_partial_bytes) {
            /* Many clients each holding part of a big message would pin
             * memory until they finish (issue 16 item 7): the one that
             * would go beyond the server's bound is asked to come back. */
            partial_refused_log(srv, c);
            wsni_count_io(&srv->counters.closed[WSNI_CLOSED_BUSY], 1);
            rx_release(srv, c);
            wsni_input_refuse(c, 1013, "server busy: try again later");
            return 0;
        }
        unsigned char *p = realloc(wsni_conn_of(c)->rx, cap + 1);
        if (!p)
            return -1;
        srv->lws->partial_bytes += grow;
        if (srv->lws->partial_bytes >= SPIKE_PARTIAL_BYTES)
            srv->lws->spike = 1;
        wsni_conn_of(c)->rx = p;
        wsni_conn_of(c)->rx_cap = cap;
    }
    if (len) {
        memcpy(wsni_conn_of(c)->rx + wsni_conn_of(c)->rx_len, in, len);
        wsni_conn_of(c)->rx_len += len;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return 0;
    pss->in_message = 0;
    message_complete(srv, c, wsni_conn_of(c)->rx, wsni_conn_of(c)->rx_len);
    rx_release(srv, c);
    return 0;
}

/* --- writing ---------------------------------------------------------------- */

/* Several queued frames, pre-built and unmasked, leave in one raw write. */
static int write_coalesced(wsn_server *srv, wsn_client *c, struct lws *wsi)
{
    for (int pass = 0; pass < WRITE_PASSES && wsni_client_queued(c); pass++) {
        if (pass && lws_send_pipe_choked(wsi))
            break;
        wsn_frame *first = wsni_client_queue_peek(c, 0);
        if (first->wire_len > srv->lws->coalesce_cap) {
            if (lws_write(wsi, first->wire, first->wire_len, LWS_WRITE_RAW) < 0)
                return -1;
            wsni_count_io(&srv->counters.sent, 1);
            wsni_count_io(&srv->counters.sent_bytes, first->wire_len);
            wsni_client_queue_pop(c, 1);
        } else {
            unsigned char *out = srv->lws->coalesce + LWS_PRE;
            size_t total = 0;
            unsigned n = 0;
            wsn_frame *f;
            while ((f = wsni_client_queue_peek(c, n)) && total + f->wire_len <= srv->lws->coalesce_cap) {
                memcpy(out + total, f->wire, f->wire_len);
                total += f->wire_len;
                n++;
            }
            if (lws_write(wsi, out, total, LWS_WRITE_RAW) < 0)
                return -1;
            wsni_count_io(&srv->counters.sent, n);
            wsni_count_io(&srv->counters.sent_bytes, total);
            wsni_client_queue_pop(c, n);
        }
        wsni_client_refill_from_overflow(c);
    }
    return 0;
}

/* permessage-deflate: lws frames and compresses; one message per pass, and
 * the frame stays referenced while lws may still read it. */
static int write_one(wsn_client *c, struct lws *wsi)
{
    wsn_frame *f = wsni_client_queue_peek(c, 0);
    if (lws_write(wsi, f->payload, f->payload_len, f->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
        0)
        return -1;
    wsni_conn_of(c)->inflight = frame_ref(f);
    wsni_count_io(&c->srv->counters.sent, 1);
    wsni_count_io(&c->srv->counters.sent_bytes, f->wire_len); /* before compression */
    wsni_client_queue_pop(c, 1);
    wsni_client_refill_from_overflow(c);
    return 0;
}

static int on_writeable(wsn_server *srv, struct lws *wsi, struct pss *pss)
{
    wsn_client *c = pss->client;
    if (!c)
        return held_writeable(srv, wsi, pss);
    wsni_client_write_granted(c);
    if (wsni_conn_of(c)->inflight) {
        wsni_frame_unref(wsni_conn_of(c)->inflight);
        wsni_conn_of(c)->inflight = NULL;
    }
    /* Our close frame is out and lws awaits the client's: nothing may
     * follow it (not even a keepalive ping), and a -1 here would cut the
     * socket at once, so that what the client still sends meets a reset
     * its library may report instead of our close code. close_grace
     * bounds the wait (wsni_client_close_sent). */
    if (wsni_conn_of(c)->close_handed)
        return 0;
    if (wsni_conn_of(c)->need_ping) {
        /* lws reports no RECEIVE_PONG for an empty pong, and a conforming
         * client echoes the ping's payload: so the ping carries one. It is
         * ASCII because lws runs a pong through the UTF-8 check of a text
         * message that came before it. */
        unsigned char ping[LWS_PRE + 4];
        memcpy(ping + LWS_PRE, "wsn!", 4);
        if (lws_write(wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
            return -1;
        wsni_conn_of(c)->need_ping = 0;
        if (lws_send_pipe_choked(wsi)) {
            wsni_client_request_write_now(c);
            return 0;
        }
    }
    uint16_t code;
    const char *why;
    if (wsni_client_queued(c)) {
        if ((wsni_conn_of(c)->deflate ? write_one(c, wsi) : write_coalesced(srv, c, wsi)) < 0)
            return -1;
        /* Only the coalescing window reads when data last left: without
         * one (the default) the clock read is a delivery's largest cost
         * after the send itself. */
        if (srv->flush_delay_us)
            wsni_server_wrote(srv, lws_now_usecs());
        srv->lws->pass_writes++;
    }
    if (wsni_client_queued(c)) {
        wsni_client_request_write_now(c);
    } else if (wsni_client_close_due(c, &code, &why)) {
        if (lws_send_pipe_choked(wsi)) {
            wsni_client_request_write_now(c);
        } else {
            wsni_conn_of(c)->close_handed = 1;
            wsni_client_close_sent(c);
            lws_close_reason(wsi, (enum lws_close_status)code, (unsigned char *)why, strlen(why));
            return -1;
        }
    }
    return 0;
}

/* --- HTTP: /healthz ------------------------------------------------------- */

/* 503 with the reason while the server cannot reach the rest of its
 * cluster (the broker is down): a load balancer takes it out, and an
 * operator reads why. */
static int health_headers(wsn_server *srv, struct lws *wsi, struct pss *pss)
{
    unsigned char buf[LWS_PRE + 256];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    char why[192];
    free(pss->health_why);
    pss->health_why = NULL;
    if (!wsni_cluster_healthy(srv, why, sizeof(why)) && !(pss->health_why = strdup(why)))
        return 1;
    const char *body = pss->health_why ? pss->health_why : "ok";
    if (lws_add_http_common_headers(wsi,
                                    pss->health_why ? HTTP_STATUS_SERVICE_UNAVAILABLE
                                                    : HTTP_STATUS_OK,
                                    "text/plain", strlen(body), &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return 1;
    pss->health = 1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int health_body(struct lws *wsi, struct pss *pss)
{
    unsigned char buf[LWS_PRE + 192];
    pss->health = 0;
    const char *body = pss->health_why ? pss->health_why : "ok";
    size_t n = strlen(body);
    memcpy(buf + LWS_PRE, body, n);
    free(pss->health_why);
    pss->health_why = NULL;
    if (lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_HTTP_FINAL) != (int)n)
        return 1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int is_health_request(struct lws *wsi)
{
    char *uri = wsni_header_copy(wsi, WSI_TOKEN_GET_URI, NULL);
    int yes = uri && !strcmp(uri, "/healthz");
    free(uri);
    return yes;
}

/* --- the callback: one for every protocol (LWS-NOTES §6) ------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct pss *pss = user;
    struct lws_context *ctx = lws_get_context(wsi);
    wsn_server *srv = ctx ? lws_context_user(ctx) : NULL;
    if (!srv)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    if (wsni_tls_wants(reason)) {
        int tls_handled, tls_rc = wsni_tls_callback(srv, wsi, reason, user, in, len, &tls_handled);
        if (tls_handled)
            return tls_rc;
    }

    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED: {
        /* Broadcast to every protocol: act once. Always return 0 here. */
        const struct lws_protocols *proto = lws_get_protocol(wsi);
        if (proto && proto->id == 1)
            wsni_commands_run(srv);
        return 0;
    }
    case LWS_CALLBACK_RAW_ADOPT_FILE:
        return 0;
    case LWS_CALLBACK_RAW_RX_FILE: {
        if (wsi == srv->lws->listen_wsi) {
            wsni_listener_ready(srv);
            return 0;
        }
        wsn_event *ev;
        if (wsni_handoff_is(srv, wsi)) {
            /* Bounded like accepts: others' turn comes in between. */
            for (int i = 0; i < HANDOFFS_PER_PASS && wsni_handoff_take(srv, &ev); i++)
                if (ev)
                    wsni_loop_emit(srv, ev);
            return 0;
        }
        int rc = wsni_gate_readable(srv, wsi, &ev);
        if (ev)
            wsni_loop_emit(srv, ev);
        return rc;
    }
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        /* lws closes the descriptor itself after this. */
        if (wsi == srv->lws->listen_wsi) {
            srv->lws->listen_wsi = NULL;
            srv->lws->listen_fd = -1;
        } else if (wsni_handoff_is(srv, wsi)) {
            wsni_handoff_closed(srv);
        } else {
            wsni_gate_closing(srv, wsi);
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        wsni_gate_forget(srv, wsi);
        return 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        wsni_gate_adopted(srv, wsi);
        break;
    case LWS_CALLBACK_RAW_ADOPT:
        /* lws turns a request it will not serve as HTTP (CONNECT) into a
         * raw socket bound to our protocol, which would stay open until
         * the peer gives up: we serve no raw sockets. */
        return -1;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* A close body of one byte cannot hold a code (RFC 6455 §5.5.1);
         * lws would echo it. */
        if (len == 1) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, NULL, 0);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
        if (pss)
            pss->deflate = 1;
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        return pss ? on_established(srv, wsi, pss) : -1;
    case LWS_CALLBACK_RECEIVE:
        return pss ? on_receive(srv, wsi, pss, in, len) : 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (pss && pss->client) {
            wsni_keepalive_pong(srv, pss->client);
            wsni_rx_quiet_note(srv, pss->client);
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return pss ? on_writeable(srv, wsi, pss) : 0;
    case LWS_CALLBACK_CLOSED:
        if (pss)
            on_closed(srv, pss);
        return 0;
    case LWS_CALLBACK_HTTP:
        if (pss && is_health_request(wsi))
            return health_headers(srv, wsi, pss);
        if (pss && wsni_metrics_http_wanted(srv, wsi))
            return wsni_metrics_http_headers(srv, wsi, &pss->metrics);
        break;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (pss && pss->health)
            return health_body(wsi, pss);
        if (pss && pss->metrics)
            return wsni_metrics_http_body(wsi, &pss->metrics);
        break;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (pss) {
            free(pss->health_why);
            pss->health_why = NULL;
            wsni_metrics_http_free(&pss->metrics);
        }
        break;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* --- shutdown --------------------------------------------------------------- */

static void shutdown_final(wsni_timer *tm)
{
    wsn_server *srv = wsni_container_of(tm, struct wsni_lws, shutdown_final_timer)->srv;
    srv->lws->stop = 1;
    lws_cancel_service(srv->lws->ctx);
}

static void shutdown_deadline(wsni_timer *tm)
{
    wsn_server *srv = wsni_container_of(tm, struct wsni_lws, shutdown_timer)->srv;
    if (!srv->connected)
        return;
    wsni_log(srv, WSN_LOG_WARN, "shutdown timeout: dropping %d client(s)", srv->connected);
    wsni_server_note_clients_cut(srv);
    wsn_client *c, *tmp;
    HASH_ITER(hh, srv->clients_by_id, c, tmp) { wsni_client_kill(c); }
    /* Killed connections close on the next pass; stop regardless soon. */
    wsni_timer_arm(srv, &srv->lws->shutdown_final_timer, shutdown_final, 100 * 1000);
}

void wsni_loop_begin_shutdown(wsn_server *srv, int64_t timeout_ms)
{
    if (srv->lws->draining)
        return;
    srv->lws->draining = 1;
    wsni_log(srv, WSN_LOG_INFO, "shutting down: %d client(s)", srv->connected);
    wsni_gate_refuse_all(srv);
    /* Accepted batches go out before their subscribers are closed. */
    wsni_batch_flush_all(srv);
    wsn_client *c, *tmp;
    HASH_ITER(hh, srv->clients_by_id, c, tmp)
    {
        wsni_client_begin_close(c, LWS_CLOSE_STATUS_GOINGAWAY, "server shutdown", 0);
    }
    if (!srv->connected) {
        srv->lws->stop = 1;
        lws_cancel_service(srv->lws->ctx);
        return;
    }
    wsni_timer_arm(srv, &srv->lws->shutdown_timer, shutdown_deadline, timeout_ms * 1000);
}

/* --- the thread --------------------------------------------------------------- */

static void fill_context_info(wsn_server *srv, struct lws_context_creation_info *info)
{
    memset(info, 0, sizeof(*info));
    srv->lws->protocols[0] = (struct lws_protocols){
        .name = "wsnotify.json",
        .callback = callback,
        .per_session_data_size = sizeof(struct pss),
        /* lws reads at most this much from a socket per pass, delivers
         * messages in chunks of it (reassembled up to read_limit) and
         * allocates it for every connection. */
        .rx_buffer_size = (size_t)opt_int(srv->opts, WSN_OPT_READ_BUFFER),
        .id = 1,
        .tx_packet_size = COALESCE_BYTES,
    };
    srv->lws->protocols[1] = srv->lws->protocols[0];
    srv->lws->protocols[1].name = "wsnotify.msgpack";
    srv->lws->protocols[1].id = 2;
    memset(&srv->lws->protocols[2], 0, sizeof(srv->lws->protocols[2]));
    /* Clients that name no subprotocol get JSON. */
    srv->lws->pvo_default = (struct lws_protocol_vhost_options){NULL, NULL, "default", "1"};
    srv->lws->pvo_json = (struct lws_protocol_vhost_options){NULL, &srv->lws->pvo_default, "wsnotify.json", ""};
    info->pvo = &srv->lws->pvo_json;
    info->protocols = srv->lws->protocols;

    const char *dir = opt_str(srv->opts, WSN_OPT_STATIC_DIR);
    srv->lws->mount_health = (struct lws_http_mount){
        .mountpoint = "/healthz",
        .origin_protocol = LWSMPRO_CALLBACK,
        .protocol = "wsnotify.json",
        .mountpoint_len = 8,
    };
    if (dir && *dir) {
        srv->lws->mount_static = (struct lws_http_mount){
            .mountpoint = "/",
            .origin = dir,
            .def = "index.html",
            .origin_protocol = LWSMPRO_FILE,
            .mountpoint_len = 1,
        };
        srv->lws->mount_health.mount_next = &srv->lws->mount_static;
    }
    info->mounts = wsni_metrics_http_mount(srv, &srv->lws->mount_health);

    /* The listening socket is ours (listener.c): the vhost only serves
     * the connections we hand it. */
    info->port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info->options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info->user = srv;
    info->vhost_name = "default";
    info->pt_serv_buf_size = PT_SERV_BUF;
    /* A zero hangup turns lws's own idle timer off (without a policy lws
     * would ping at 300 s): keepalive.c pings instead, with one timer for
     * all clients where lws would insert one per client into a sorted list. */
    srv->lws->retry = (lws_retry_bo_t){
        .secs_since_valid_ping = 0,
        .secs_since_valid_hangup = 0,
    };
    info->retry_and_idle_policy = &srv->lws->retry;
    if (srv->compression) {
        srv->lws->extensions[0] = (struct lws_extension){
            "permessage-deflate", lws_extension_callback_pm_deflate,
            "permessage-deflate; client_no_context_takeover; client_max_window_bits"};
        memset(&srv->lws->extensions[1], 0, sizeof(srv->lws->extensions[1]));
        info->extensions = srv->lws->extensions;
    }
    wsni_tls_fill(srv, info);
}

static void lws_state_free(wsn_server *srv)
{
    wsni_tls_free(srv);
    free(srv->lws->coalesce);
    free(srv->lws);
    srv->lws = NULL;
}

/* Before the loop ever served: the host's start returns the error. */
static void io_start_failed(wsn_server *srv)
{
    lws_state_free(srv);
    wsni_server_start_failed(srv);
    struct wsn_event *ev = wsni_event_new(WSN_EVENT_STOPPED, NULL);
    if (ev)
        wsni_event_queue_push(srv->events, ev, 0);
}

static void *io_main(void *arg)
{
    wsn_server *srv = arg;
    /* Named for top, gdb and perf (15 characters at most). */
    pthread_setname_np(pthread_self(), "wsnotify-io");
    struct lws_context_creation_info info;
    fill_context_info(srv, &info);
    int port;
    if (wsni_tls_check(srv) != 0 || wsni_listener_open(srv, &port) != 0) {
        io_start_failed(srv);
        return NULL;
    }
    if (wsni_handoff_open(srv) != 0) {
        wsni_listener_close(srv);
        io_start_failed(srv);
        return NULL;
    }
    /* lws logs process-wide with no server context; ours go through the
     * host's logger instead. WSN_LWS_LOG=1 shows lws's own for debugging. */
    const char *lws_log = getenv("WSN_LWS_LOG");
    lws_set_log_level(lws_log && *lws_log == '1' ? LLL_ERR | LLL_WARN | LLL_NOTICE : 0, NULL);

    /* Without a pool, lws's allocator is left as the host has it. */
    srv->lws->rx_pool_on = (int)opt_int(srv->opts, WSN_OPT_RX_BUFFER_POOL);
    if (srv->lws->rx_pool_on && wsni_rx_buffers_install() != 0) {
        srv->lws->rx_pool_on = 0;
        wsni_log(srv, WSN_LOG_WARN, "lws's allocator was replaced by the host: receive buffers "
                                   "come from malloc (set rx_buffer_pool=0 to say so)");
    }
    wsni_rx_pool_attach(srv->lws->rx_pool_on ? &srv->lws->rx_pool : NULL);
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        wsni_set_error(srv, "lws could not create its context");
        wsni_log(srv, WSN_LOG_ERROR, "lws could not create its context");
        wsni_rx_pool_attach(NULL);
        wsni_rx_pool_destroy(&srv->lws->rx_pool);
        wsni_listener_close(srv);
        wsni_handoff_close(srv);
        io_start_failed(srv);
        return NULL;
    }
    /* Set before the shell marks the context alive (under its lock): only
     * then may another thread's wake() read it. */
    srv->lws->ctx = ctx;
    srv->lws->vhost = lws_get_vhost_by_name(ctx, "default");
    if (!srv->lws->vhost || wsni_listener_adopt(srv) != 0 || wsni_handoff_adopt(srv) != 0) {
        lws_context_destroy(ctx);
        wsni_rx_pool_attach(NULL);
        wsni_rx_pool_destroy(&srv->lws->rx_pool);
        wsni_listener_close(srv);
        wsni_handoff_close(srv);
        io_start_failed(srv);
        return NULL;
    }
    wsni_server_started(srv, port);
    wsni_log(srv, WSN_LOG_INFO, "listening on %s:%d", opt_str(srv->opts, WSN_OPT_HOST), port);
    wsni_log(srv, WSN_LOG_DEBUG, "receive buffers %s",
            srv->lws->rx_pool_on ? "in page slots (rx_buffer_pool)" : "from malloc");

    srv->lws->in_service = 1;
    wsni_rate_setup(srv);
    while (!srv->lws->stop) {
        srv->lws->pass_writes = 0;
        srv->lws->rx_clock_us = 0;
        int rc = lws_service(ctx, 0);
        wsni_event_queue_flush(srv->events);
        if (rc < 0)
            break;
        /* A host thread on this core runs as soon as it is woken, so its
         * publishes are often queued by now. With few clients written to
         * in the pass, taking them here sends them in the very next pass
         * (which also takes the wake-up), not one pass later. A pass that
         * wrote to many clients is fanning out, and there letting publishes
         * gather for a pass means more frames per send. Both measured:
         * docs/architecture.md, "Measurements behind the code". */
        if (srv->lws->pass_writes < EARLY_COMMANDS_MAX_WRITES && wsni_commands_pending(srv))
            wsni_commands_run(srv);
    }
    srv->lws->in_service = 0;
    wsni_event_queue_flush(srv->events);

    wsni_timer_cancel(srv, &srv->lws->trim_timer);
    wsni_timer_cancel(srv, &srv->lws->listen_timer);
    wsni_batch_timers_clear(srv);
    wsni_keepalive_stop(srv);
    wsni_server_ctx_closing(srv);
    wsni_rx_quiet_stop(srv); /* after ctx_alive: closing clients list no more */
    /* Closes what is left; their CLOSED callbacks emit DISCONNECT events. */
    lws_context_destroy(ctx);
    wsni_rx_pool_attach(NULL);
    wsni_rx_pool_destroy(&srv->lws->rx_pool); /* lws freed every wsi and its buffer */
    wsni_listener_close(srv);
    wsni_handoff_close(srv);
    srv->lws->draining = 1;
    wsni_commands_drop(srv);
    wsni_registry_clear(&srv->reg);

    wsni_server_io_ended(srv);

    struct wsn_event *ev = wsni_event_new(WSN_EVENT_STOPPED, NULL);
    if (ev)
        wsni_loop_emit(srv, ev);
    /* lws holds no pointer into it any more, and no other thread reads it
     * once ctx_alive is 0; the host joins this thread before freeing srv. */
    lws_state_free(srv);
    return NULL;
}

int wsni_loop_rx_pool_supported(char *why, size_t why_len)
{
    return wsni_rx_lws_version_supported(lws_get_library_version(), why, why_len);
}

void wsni_loop_wake(wsn_server *srv)
{
    lws_cancel_service(srv->lws->ctx);
}

int wsni_loop_start(wsn_server *srv)
{
    /* Freed by the I/O thread when it ends. */
    if (!(srv->lws = calloc(1, sizeof(*srv->lws))))
        return WSN_ENOMEM;
    srv->lws->srv = srv;
    srv->lws->coalesce_cap = COALESCE_BYTES;
    srv->lws->coalesce = malloc(LWS_PRE + COALESCE_BYTES);
    if (!srv->lws->coalesce) {
        lws_state_free(srv);
        return WSN_ENOMEM;
    }
    /* The I/O thread takes no asynchronous signals (util/thread.h). io_tid
     * must be set before the thread can look at it. */
    pthread_mutex_lock(&srv->lock);
    int rc = wsni_thread_create(&srv->io_tid, io_main, srv);
    pthread_mutex_unlock(&srv->lock);
    if (rc) {
        lws_state_free(srv);
        return WSN_ENOMEM;
    }
    return WSN_OK;
}
