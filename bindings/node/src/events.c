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

#include "server.h"

/* Events per JS call: large enough that a busy server makes few calls,
 * small enough that timers and I/O of the JS thread get their turn. */
#define EVENT_BATCH 512
/* Fields per event in the array handed to JS (index.js reads them). */
#define EVENT_STRIDE 7
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

static napi_value str(napi_env env, const char *s, napi_value empty) {
    napi_value v;
    if (!*s)
        return empty;
    napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
    return v;
}

/* [kind, clientId, type, channel, payload, messageId, replyToId, ...]
 * (payload: the NativeClient for CONNECT); sets *stopped on STOPPED. */
static napi_value take_events(napi_env env, struct nserver *ns,
                              bool *stopped) {
    napi_value arr, empty, undef, v;
    napi_create_array(env, &arr);
    napi_create_string_utf8(env, "", 0, &empty);
    napi_get_undefined(env, &undef);
    uint32_t k = 0;
    for (int i = 0; i < EVENT_BATCH && !*stopped; i++) {
        wsn_event *ev = NULL;
        int rc = wsn_server_next_event(ns->srv, &ev);
        if (rc == WSN_ECLOSED)
            *stopped = true;
        if (rc != WSN_OK)
            break; /* WSN_EAGAIN: nothing more now */
        wsn_event_info in;
        memset(&in, 0, sizeof in);
        in.size = sizeof in;
        if (wsn_event_get_info(ev, &in) != WSN_OK) {
            wsn_event_free(ev);
            continue;
        }
        napi_value f[EVENT_STRIDE];
        for (int j = 0; j < EVENT_STRIDE; j++)
            f[j] = undef;
        napi_create_int32(env, (int32_t)in.kind, &f[0]);
        f[1] = str(env, in.client_id, empty);
        if (in.kind == WSN_EVENT_MESSAGE) {
            napi_create_int32(env, (int32_t)in.type, &f[2]);
            f[3] = str(env, in.channel, empty);
            if (in.type == WSN_TYPE_BINARY) {
                void *dst;
                napi_create_buffer_copy(env, in.payload_len, in.payload, &dst,
                                        &f[4]);
            } else {
                napi_create_string_utf8(env, in.payload, in.payload_len,
                                        &f[4]);
            }
            f[5] = str(env, in.message_id, empty);
            f[6] = str(env, in.reply_to_id, empty);
        } else if (in.kind == WSN_EVENT_CONNECT) {
            if (in.client && (v = nw_client_wrap(env, in.client)) != NULL)
                f[4] = v;
        } else if (in.kind == WSN_EVENT_STOPPED) {
            *stopped = true;
        }
        wsn_event_free(ev);
        for (int j = 0; j < EVENT_STRIDE; j++)
            napi_set_element(env, arr, k++, f[j]);
    }
    return arr;
}

/* [level, line, ...]: every queued log line, after a warning when lines
 * were dropped since the last call. */
napi_value nw_take_logs(napi_env env, struct nserver *ns) {
    napi_value arr, v;
    napi_create_array(env, &arr);
    uint32_t k = 0;
    uint64_t dropped = wsn_server_logs_dropped(ns->srv);
    if (dropped > ns->logs_dropped) {
        char text[96];
        snprintf(text, sizeof text, "%llu log lines were dropped (log_queue full)",
                 (unsigned long long)(dropped - ns->logs_dropped));
        ns->logs_dropped = dropped;
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
        napi_create_int32(env, (int32_t)level, &v);
        napi_set_element(env, arr, k++, v);
        napi_create_string_utf8(env, line, len, &v);
        napi_set_element(env, arr, k++, v);
    }
    return arr;
}

/* On the JS thread: onEvents(events, logs) or, for room, onEvents(null,
 * null, true). */
static void deliver(napi_env env, napi_value js_cb, void *context,
                    void *data) {
    struct nserver *ns = context;
    if (!env || !ns->srv) /* torn down */
        return;
    napi_value argv[3], undef;
    napi_get_undefined(env, &undef);
    if (data == CALL_ROOM) {
        napi_get_null(env, &argv[0]);
        argv[1] = argv[0];
        napi_get_boolean(env, true, &argv[2]);
        napi_call_function(env, undef, js_cb, 3, argv, NULL);
        return;
    }
    bool stopped = false;
    argv[0] = take_events(env, ns, &stopped);
    argv[1] = nw_take_logs(env, ns);
    pthread_mutex_lock(&ns->mu);
    ns->pending = false;
    if (stopped)
        ns->stopped = true;
    pthread_mutex_unlock(&ns->mu);
    wake(ns);
    napi_call_function(env, undef, js_cb, 2, argv, NULL);
}

static void ev_tsfn_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    nw_events_join(data);
    nw_server_unref(data);
}

bool nw_events_start(napi_env env, struct nserver *ns, napi_value on_events) {
    napi_value name;
    ns->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ns->wake_fd < 0) {
        nw_throw_code(env, WSN_ENOMEM, "start", "cannot make an eventfd");
        return false;
    }
    napi_create_string_utf8(env, "wsnotify events", NAPI_AUTO_LENGTH, &name);
    if (!nw_check(env, napi_create_threadsafe_function(
                           env, on_events, NULL, name, 0, 1, ns,
                           ev_tsfn_finalize, ns, deliver, &ns->ev_tsfn)))
        return false;
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
