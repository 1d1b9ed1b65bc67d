/*
 * Events and log lines from the core to JS without running JS on the
 * core's threads and without touching libuv: a waiter thread per started
 * server blocks in wsn_server_wait() and, when events are queued, asks the
 * JS thread (through a Node-API thread-safe function) to take a batch of
 * them. It then waits until that batch was taken before waiting again, so
 * one drain is queued at a time and the core's event queue stays the
 * bound. An idle server's waiter sleeps in the kernel: no CPU.
 */
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* Events per JS call: large enough that a busy server makes few calls,
 * small enough that timers and I/O of the JS thread get their turn. */
#define EVENT_BATCH 512
/* Fields per event in the array handed to JS (index.js reads them). */
#define EVENT_STRIDE 7
/* Log lines waiting for the JS thread; more are dropped. */
#define LOG_QUEUE 1000

static void *waiter_main(void *arg) {
    struct nserver *ns = arg;
    for (;;) {
        int rc = wsn_server_wait(ns->srv, -1);
        if (rc < 0)
            break; /* WSN_ECLOSED: STOPPED was taken */
        if (rc == 0)
            continue;
        pthread_mutex_lock(&ns->mu);
        bool stop = ns->stopped || ns->closing;
        if (!stop)
            ns->pending = true;
        pthread_mutex_unlock(&ns->mu);
        if (stop)
            break;
        if (napi_call_threadsafe_function(ns->ev_tsfn, NULL,
                                          napi_tsfn_blocking) != napi_ok)
            break; /* napi_closing: the environment is going */
        pthread_mutex_lock(&ns->mu);
        while (ns->pending && !ns->closing)
            pthread_cond_wait(&ns->cv, &ns->mu);
        stop = ns->stopped || ns->closing;
        pthread_mutex_unlock(&ns->mu);
        if (stop)
            break;
    }
    napi_release_threadsafe_function(ns->ev_tsfn, napi_tsfn_release);
    return NULL;
}

static napi_value str(napi_env env, const char *s, napi_value empty) {
    napi_value v;
    if (!s || !*s)
        return empty;
    napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
    return v;
}

/* Runs on the JS thread: takes up to EVENT_BATCH events into one array
 * [kind, clientId, type, channel, payload, messageId, replyToId, ...]
 * (payload: the NativeClient for CONNECT) and calls JS once. */
static void drain_events(napi_env env, napi_value js_cb, void *context,
                         void *data) {
    (void)data;
    struct nserver *ns = context;
    if (!env) /* the function is being torn down */
        return;
    napi_value arr, empty, undef, v;
    napi_create_array(env, &arr);
    napi_create_string_utf8(env, "", 0, &empty);
    napi_get_undefined(env, &undef);
    uint32_t k = 0;
    bool stopped = false;
    for (int i = 0; i < EVENT_BATCH && !stopped; i++) {
        wsn_event *ev = NULL;
        int rc = wsn_server_next_event(ns->srv, &ev);
        if (rc == WSN_ECLOSED) {
            stopped = true;
            break;
        }
        if (rc != WSN_OK)
            break; /* WSN_EAGAIN: nothing more now */
        wsn_event_type kind = wsn_event_kind(ev);
        napi_value f[EVENT_STRIDE];
        for (int j = 0; j < EVENT_STRIDE; j++)
            f[j] = undef;
        napi_create_int32(env, (int32_t)kind, &f[0]);
        f[1] = str(env, wsn_event_client_id(ev), empty);
        if (kind == WSN_EVENT_MESSAGE) {
            wsn_message_type t = wsn_event_message_type(ev);
            size_t len = 0;
            const void *p = wsn_event_payload(ev, &len);
            napi_create_int32(env, (int32_t)t, &f[2]);
            f[3] = str(env, wsn_event_channel(ev), empty);
            if (t == WSN_TYPE_BINARY) {
                void *dst;
                napi_create_buffer_copy(env, len, len ? p : "", &dst, &v);
                f[4] = v;
            } else {
                napi_create_string_utf8(env, p ? p : "", len, &f[4]);
            }
            f[5] = str(env, wsn_event_message_id(ev), empty);
            f[6] = str(env, wsn_event_reply_to_id(ev), empty);
        } else if (kind == WSN_EVENT_CONNECT) {
            wsn_client *c = wsn_event_client(ev);
            if (c && (v = nw_client_wrap(env, c)) != NULL)
                f[4] = v;
        } else if (kind == WSN_EVENT_STOPPED) {
            stopped = true;
        }
        wsn_event_free(ev);
        for (int j = 0; j < EVENT_STRIDE; j++)
            napi_set_element(env, arr, k++, f[j]);
    }
    pthread_mutex_lock(&ns->mu);
    ns->pending = false;
    if (stopped)
        ns->stopped = true;
    pthread_cond_broadcast(&ns->cv);
    pthread_mutex_unlock(&ns->mu);
    if (k > 0)
        napi_call_function(env, undef, js_cb, 1, &arr, NULL);
}

static void ev_tsfn_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    nw_events_join(data);
    nw_server_unref(data);
}

bool nw_events_start(napi_env env, struct nserver *ns, napi_value on_events) {
    napi_value name;
    napi_create_string_utf8(env, "wsnotify events", NAPI_AUTO_LENGTH, &name);
    if (!nw_check(env, napi_create_threadsafe_function(
                                   env, on_events, NULL, name, 0, 1, ns,
                                   ev_tsfn_finalize, ns, drain_events,
                                   &ns->ev_tsfn)))
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

void nw_events_join(struct nserver *ns) {
    if (ns->waiter_started && !ns->waiter_joined) {
        pthread_join(ns->waiter, NULL);
        ns->waiter_joined = true;
    }
}

/* ---- log lines (0.1: a logger callback on the core's threads) ---------- */

struct log_line {
    int level;
    size_t len;
    char text[];
};

static void on_core_log(void *user, wsn_log_level level, const char *msg) {
    struct nserver *ns = user;
    size_t n = strlen(msg);
    struct log_line *l = malloc(sizeof *l + n + 1);
    if (!l)
        return;
    l->level = (int)level;
    l->len = n;
    memcpy(l->text, msg, n + 1);
    /* Never waits: a full queue drops the line rather than stall I/O. */
    if (napi_call_threadsafe_function(ns->log_tsfn, l,
                                      napi_tsfn_nonblocking) != napi_ok)
        free(l);
}

static void deliver_log(napi_env env, napi_value js_cb, void *context,
                        void *data) {
    (void)context;
    struct log_line *l = data;
    if (env && js_cb) {
        napi_value argv[2], undef;
        napi_get_undefined(env, &undef);
        napi_create_int32(env, l->level, &argv[0]);
        napi_create_string_utf8(env, l->text, l->len, &argv[1]);
        napi_call_function(env, undef, js_cb, 2, argv, NULL);
    }
    free(l);
}

bool nw_log_attach(napi_env env, struct nserver *ns, wsn_options *opts,
                napi_value on_log) {
    napi_value name;
    napi_create_string_utf8(env, "wsnotify log", NAPI_AUTO_LENGTH, &name);
    if (!nw_check(env, napi_create_threadsafe_function(
                                   env, on_log, NULL, name, LOG_QUEUE, 1, NULL,
                                   NULL, ns, deliver_log, &ns->log_tsfn)))
        return false;
    /* Log lines alone must not keep the process alive. */
    napi_unref_threadsafe_function(env, ns->log_tsfn);
    int rc = wsn_options_set_logger(opts, on_core_log, ns);
    if (rc != WSN_OK) {
        nw_log_detach(ns);
        nw_throw_code(env, rc, "logger", NULL);
        return false;
    }
    return true;
}

/* After wsn_server_free(): no core thread calls on_core_log any more. */
void nw_log_detach(struct nserver *ns) {
    if (ns->log_tsfn) {
        napi_release_threadsafe_function(ns->log_tsfn, napi_tsfn_release);
        ns->log_tsfn = NULL;
    }
}
