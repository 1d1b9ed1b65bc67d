/*
 * Events, log lines and room from the core to JS without running JS on
 * the core's threads and without touching libuv: a waiter thread per
 * started server poll()s the core's event fd (events and queued log
 * lines), its room fd (only while a publish waits for room) and a wake
 * eventfd, and asks the JS thread through a Node-API thread-safe function
 * to take a batch of events or to retry publishing. One drain is queued at
 * a time (the event fd is not polled while one is), so the core's event
 * queue stays the bound; an idle server's waiter sleeps in the kernel.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client.h"
#include "events.h"

/* Events per JS call: large enough that a busy server makes few calls,
 * small enough that timers and I/O of the JS thread get their turn. */
#define EVENT_BATCH 512
/* The strings and payloads of one batch; a message that does not fit ends
 * the batch and reaches JS as values of its own (the "big" argument). */
#define ARENA_BYTES (256 * 1024)
/* Longest log line the core writes is 511 bytes. */
#define LOG_LINE_MAX 512

/* What a call of the thread-safe function asks the JS thread to do. */
#define CALL_EVENTS ((void *)1)
#define CALL_ROOM ((void *)2)

static void wake(struct nserver *ns) {
    uint64_t one = 1;
    ssize_t n = write(ns->wake_fd, &one, sizeof one);
    (void)n; /* a full counter still wakes the waiter */
}

static void *waiter_main(void *arg) {
    struct nserver *ns = arg;
    int efd = wsn_server_event_fd(ns->srv);
    int rfd = wsn_server_room_fd(ns->srv);
    for (;;) {
        pthread_mutex_lock(&ns->mu);
        bool stop = ns->stopped || ns->closing;
        struct pollfd p[3] = {
            {ns->wake_fd, POLLIN, 0},
            {efd, (short)(ns->pending ? 0 : POLLIN), 0},
            {rfd, (short)(ns->want_room ? POLLIN : 0), 0},
        };
        pthread_mutex_unlock(&ns->mu);
        if (stop)
            break;
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[0].revents & POLLIN) {
            uint64_t x;
            ssize_t n = read(ns->wake_fd, &x, sizeof x);
            (void)n;
        }
        bool events = false, room = false;
        pthread_mutex_lock(&ns->mu);
        if ((p[1].revents & POLLIN) && !ns->pending) {
            ns->pending = true;
            events = true;
        }
        if ((p[2].revents & POLLIN) && ns->want_room) {
            ns->want_room = false;
            room = true;
        }
        pthread_mutex_unlock(&ns->mu);
        /* napi_closing: the environment is going */
        if (events && napi_call_threadsafe_function(ns->ev_tsfn, CALL_EVENTS,
                                                    napi_tsfn_blocking) !=
                          napi_ok)
            break;
        if (room && napi_call_threadsafe_function(ns->ev_tsfn, CALL_ROOM,
                                                  napi_tsfn_blocking) !=
                        napi_ok)
            break;
    }
    napi_release_threadsafe_function(ns->ev_tsfn, napi_tsfn_release);
    return NULL;
}

static napi_value str(napi_env env, const char *s) {
    napi_value v;
    napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
    return v;
}

/* One wsn_server_take_events call into the records and arena JS holds
 * (ns->rec, ns->arena: JS reads them in place, index.js _onEvents). What
 * JS cannot read there comes as values: for each CONNECT, in order, its
 * NativeClient and id in *connects (and for each BROKER its state's name
 * and reason, in the same list); for a message that did not fit in the
 * arena (it ends the batch), [channel, payload, messageId, replyToId] in
 * *big. Returns the number of events taken (ns->evs, freed by the caller
 * after JS ran: they hold their clients' references); sets *stopped on
 * STOPPED or once it was taken before. */
static int take_events(napi_env env, struct nserver *ns, size_t *used,
                       napi_value *connects, napi_value *big, bool *stopped) {
    int n = wsn_server_take_events(ns->srv, ns->evs, ns->rec, sizeof *ns->rec,
                                   EVENT_BATCH, ns->arena, ARENA_BYTES, used);
    if (n == WSN_ECLOSED)
        *stopped = true;
    if (n <= 0)
        return 0;
    uint32_t k = 0;
    for (int i = 0; i < n; i++) {
        const wsn_event_record *r = &ns->rec[i];
        if (r->kind == WSN_EVENT_CONNECT) {
            napi_value nc = r->client ? nw_client_wrap(env, r->client) : NULL;
            if (!nc)
                napi_get_undefined(env, &nc);
            if (k == 0)
                napi_create_array(env, connects);
            napi_set_element(env, *connects, k++, nc);
            napi_set_element(env, *connects, k++,
                             str(env, wsn_client_id(r->client)));
        } else if (r->kind == WSN_EVENT_STOPPED) {
            *stopped = true;
        } else if (r->kind == WSN_EVENT_BROKER) {
            /* The record has no strings for it: the state's name and the
             * reason join the CONNECT values, in order. */
            wsn_event_info in;
            memset(&in, 0, sizeof in);
            in.size = sizeof in;
            if (wsn_event_get_info(ns->evs[i], &in) != WSN_OK)
                continue;
            napi_value reason;
            napi_create_string_utf8(env, in.payload, in.payload_len, &reason);
            if (k == 0)
                napi_create_array(env, connects);
            napi_set_element(env, *connects, k++, str(env, in.channel));
            napi_set_element(env, *connects, k++, reason);
        } else if (r->kind == WSN_EVENT_UPGRADE) {
            /* [id, path, query, peer, header lines] join the CONNECT
             * values, in order. */
            wsn_event_info in;
            memset(&in, 0, sizeof in);
            in.size = sizeof in;
            if (wsn_event_get_info(ns->evs[i], &in) != WSN_OK)
                continue;
            napi_value id, headers;
            napi_create_double(env, (double)wsn_event_upgrade_id(ns->evs[i]), &id);
            napi_create_string_utf8(env, in.payload, in.payload_len, &headers);
            if (k == 0)
                napi_create_array(env, connects);
            napi_set_element(env, *connects, k++, id);
            napi_set_element(env, *connects, k++, str(env, in.channel));
            napi_set_element(env, *connects, k++,
                             str(env, wsn_event_upgrade_query(ns->evs[i])));
            napi_set_element(env, *connects, k++, str(env, in.reply_to_id));
            napi_set_element(env, *connects, k++, headers);
        } else if (r->kind == WSN_EVENT_MESSAGE && r->payload_offset < 0) {
            wsn_event_info in;
            memset(&in, 0, sizeof in);
            in.size = sizeof in;
            if (wsn_event_get_info(ns->evs[i], &in) != WSN_OK)
                continue;
            napi_value payload;
            if (in.type == WSN_TYPE_BINARY) {
                void *dst;
                napi_create_buffer_copy(env, in.payload_len, in.payload, &dst,
                                        &payload);
            } else {
                napi_create_string_utf8(env, in.payload, in.payload_len,
                                        &payload);
            }
            napi_create_array_with_length(env, 4, big);
            napi_set_element(env, *big, 0, str(env, in.channel));
            napi_set_element(env, *big, 1, payload);
            napi_set_element(env, *big, 2, str(env, in.message_id));
            napi_set_element(env, *big, 3, str(env, in.reply_to_id));
        }
    }
    return n;
}

/* [level, line, ...]: every queued log line, after a warning when lines
 * were dropped since the last call; undefined when there is none (the
 * common case: no array made per batch). */
napi_value nw_take_logs(napi_env env, struct nserver *ns) {
    napi_value arr, v;
    uint32_t k = 0;
    uint64_t dropped = wsn_server_logs_dropped(ns->srv);
    if (dropped > ns->logs_dropped) {
        char text[96];
        snprintf(text, sizeof text, "%llu log lines were dropped (log_queue full)",
                 (unsigned long long)(dropped - ns->logs_dropped));
        ns->logs_dropped = dropped;
        napi_create_array(env, &arr);
        napi_create_int32(env, WSN_LOG_WARN, &v);
        napi_set_element(env, arr, k++, v);
        napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &v);
        napi_set_element(env, arr, k++, v);
    }
    for (;;) {
        char line[LOG_LINE_MAX];
        size_t len = 0;
        wsn_log_level level;
        if (wsn_server_next_log(ns->srv, &level, line, sizeof line, &len) !=
            WSN_OK)
            break;
        if (k == 0)
            napi_create_array(env, &arr);
        napi_create_int32(env, (int32_t)level, &v);
        napi_set_element(env, arr, k++, v);
        napi_create_string_utf8(env, line, len, &v);
        napi_set_element(env, arr, k++, v);
    }
    if (k == 0)
        napi_get_undefined(env, &arr);
    return arr;
}

/* On the JS thread: onEvents(count, logs, records, arena, arenaUsed,
 * connects, big) (see take_events) or, for room, onEvents(-1). */
static void deliver(napi_env env, napi_value js_cb, void *context,
                    void *data) {
    struct nserver *ns = context;
    if (!env || !ns->srv) /* torn down */
        return;
    napi_value argv[7], undef;
    napi_get_undefined(env, &undef);
    if (data == CALL_ROOM) {
        napi_create_int32(env, -1, &argv[0]);
        napi_call_function(env, undef, js_cb, 1, argv, NULL);
        return;
    }
    bool stopped = false;
    size_t used = 0;
    argv[5] = argv[6] = undef;
    int n = take_events(env, ns, &used, &argv[5], &argv[6], &stopped);
    napi_create_int32(env, n, &argv[0]);
    argv[1] = nw_take_logs(env, ns);
    napi_get_reference_value(env, ns->rec_ref, &argv[2]);
    napi_get_reference_value(env, ns->arena_ref, &argv[3]);
    napi_create_uint32(env, (uint32_t)used, &argv[4]);
    pthread_mutex_lock(&ns->mu);
    ns->pending = false;
    if (stopped)
        ns->stopped = true;
    pthread_mutex_unlock(&ns->mu);
    wake(ns);
    napi_call_function(env, undef, js_cb, 7, argv, NULL);
    wsn_events_free(ns->evs, n);
}

static void drop_buffers(napi_env env, struct nserver *ns) {
    if (env && ns->rec_ref)
        napi_delete_reference(env, ns->rec_ref);
    if (env && ns->arena_ref)
        napi_delete_reference(env, ns->arena_ref);
    ns->rec_ref = ns->arena_ref = NULL;
    ns->rec = NULL;
    ns->arena = NULL;
    free(ns->evs);
    ns->evs = NULL;
}

static void ev_tsfn_finalize(napi_env env, void *data, void *hint) {
    (void)hint;
    struct nserver *ns = data;
    nw_events_join(ns);
    drop_buffers(env, ns); /* no deliver runs now */
    nw_server_unref(ns);
}

/* The batch's records and arena as JS ArrayBuffers held by references:
 * the core writes into them and JS reads them in place, no copy per
 * batch. */
static bool make_buffers(napi_env env, struct nserver *ns) {
    napi_value rec, arena;
    void *p, *q;
    ns->evs = calloc(EVENT_BATCH, sizeof *ns->evs);
    if (!ns->evs) {
        nw_throw_code(env, WSN_ENOMEM, "start", NULL);
        return false;
    }
    return nw_check(env, napi_create_arraybuffer(
                             env, EVENT_BATCH * sizeof(wsn_event_record), &p,
                             &rec)) &&
           nw_check(env, napi_create_buffer(env, ARENA_BYTES, &q, &arena)) &&
           nw_check(env, napi_create_reference(env, rec, 1, &ns->rec_ref)) &&
           nw_check(env, napi_create_reference(env, arena, 1, &ns->arena_ref)) &&
           ((ns->rec = p), (ns->arena = q), true);
}

bool nw_events_start(napi_env env, struct nserver *ns, napi_value on_events) {
    napi_value name;
    if (!make_buffers(env, ns)) {
        drop_buffers(env, ns);
        return false;
    }
    ns->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ns->wake_fd < 0) {
        drop_buffers(env, ns);
        nw_throw_code(env, WSN_ENOMEM, "start", "cannot make an eventfd");
        return false;
    }
    napi_create_string_utf8(env, "wsnotify events", NAPI_AUTO_LENGTH, &name);
    if (!nw_check(env, napi_create_threadsafe_function(
                           env, on_events, NULL, name, 0, 1, ns,
                           ev_tsfn_finalize, ns, deliver, &ns->ev_tsfn))) {
        drop_buffers(env, ns);
        return false;
    }
    ns->refs++; /* dropped by ev_tsfn_finalize */
    if (pthread_create(&ns->waiter, NULL, waiter_main, ns) != 0) {
        napi_release_threadsafe_function(ns->ev_tsfn, napi_tsfn_abort);
        napi_throw_error(env, "WSN_ENOMEM", "cannot start the event thread");
        return false;
    }
    ns->waiter_started = true;
    return true;
}

bool nw_events_watch_room(struct nserver *ns) {
    pthread_mutex_lock(&ns->mu);
    bool running = ns->waiter_started && !ns->stopped && !ns->closing;
    if (running)
        ns->want_room = true;
    pthread_mutex_unlock(&ns->mu);
    if (running)
        wake(ns);
    return running;
}

void nw_events_stop(struct nserver *ns) {
    if (!ns->waiter_started || ns->waiter_joined)
        return;
    pthread_mutex_lock(&ns->mu);
    ns->closing = true;
    pthread_mutex_unlock(&ns->mu);
    wake(ns);
    nw_events_join(ns);
}

void nw_events_join(struct nserver *ns) {
    if (ns->waiter_started && !ns->waiter_joined) {
        pthread_join(ns->waiter, NULL);
        ns->waiter_joined = true;
    }
}
