/*
 * NativeServer: one wsn_server, its options by name, lifecycle and the
 * pub/sub calls. index.js wraps it in the public Server class (an
 * EventEmitter) and turns results into Promises.
 *
 * Lifetime: a started server's event function keeps the process (and
 * this object) alive until STOPPED; the garbage collector or the
 * environment's teardown (worker_threads) frees the engine, shutting it
 * down first if it still runs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "events.h"
#include "metrics.h"
#include "server.h"

#define ERRBUF 512
/* Log lines queued for the JS thread unless the log_queue option says
 * otherwise; more are counted as dropped. */
#define LOG_QUEUE_DEFAULT 1000

static const napi_type_tag SERVER_TAG = {0x77736e7365727665ULL,
                                         0x722d6e6f64652d31ULL};

/* Every engine call below needs a server that was not torn down. */
static struct nserver *self_args(napi_env env, napi_callback_info info,
                                 napi_value *argv, size_t want) {
    size_t argc = want;
    napi_value self, undef;
    void *p = NULL;
    bool ok = false;
    napi_get_undefined(env, &undef);
    for (size_t i = 0; i < want; i++)
        argv[i] = undef;
    if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok)
        return NULL;
    if (napi_check_object_type_tag(env, self, &SERVER_TAG, &ok) != napi_ok ||
        !ok || napi_unwrap(env, self, &p) != napi_ok) {
        napi_throw_type_error(env, "WSN_EINVAL", "not a NativeServer");
        return NULL;
    }
    struct nserver *ns = p;
    if (!ns->srv) {
        nw_throw_code(env, WSN_ECLOSED, "server", "the server was freed");
        return NULL;
    }
    return ns;
}

static napi_value throw_rc(napi_env env, struct nserver *ns, int rc,
                           const char *what) {
    char detail[ERRBUF] = "";
    /* The text only describes this failure for codes that set it. */
    if (rc == WSN_EINVAL || rc == WSN_ELIMIT || rc == WSN_EJSON ||
        rc == WSN_EIO)
        wsn_server_last_error(ns->srv, detail, sizeof detail);
    return nw_throw_code(env, rc, what, detail);
}

/* ---- teardown ----------------------------------------------------------- */

/* Stops the waiter, waits for shutdown calls on the thread pool, then
 * frees the engine (which shuts it down with write_wait if it runs). */
static void server_teardown(struct nserver *ns) {
    if (ns->torn_down)
        return;
    ns->torn_down = true;
    if (ns->srv) {
        nw_events_stop(ns);
        pthread_mutex_lock(&ns->mu);
        while (ns->busy > 0)
            pthread_cond_wait(&ns->cv, &ns->mu);
        pthread_mutex_unlock(&ns->mu);
        wsn_server_free(ns->srv);
        ns->srv = NULL;
    }
}

static void env_cleanup(void *arg) {
    struct nserver *ns = arg;
    ns->hook_added = false;
    server_teardown(ns);
}

static void server_finalize(napi_env env, void *data, void *hint) {
    (void)env;
    (void)hint;
    struct nserver *ns = data;
    if (ns->hook_added) {
        napi_remove_env_cleanup_hook(env, env_cleanup, ns);
        ns->hook_added = false;
    }
    server_teardown(ns);
    nw_server_unref(ns);
}

/* ---- options ------------------------------------------------------------ */

static bool set_option(napi_env env, wsn_options *opts, napi_value name_v,
                       napi_value value) {
    struct arg name, sval;
    char msg[ERRBUF];
    if (!nw_arg_string(env, name_v, "option name", &name))
        return false;
    wsn_option id;
    wsn_option_type type;
    bool ok = false;
    int rc;
    if (wsn_option_by_name(name.p, &id, &type) != WSN_OK) {
        snprintf(msg, sizeof msg, "unknown option '%s'", name.p);
        napi_throw_type_error(env, "WSN_ENOTFOUND", msg);
        goto out;
    }
    if (type == WSN_OPTTYPE_STRING) {
        snprintf(msg, sizeof msg, "option %s", name.p);
        if (!nw_arg_string(env, value, msg, &sval))
            goto out;
        rc = wsn_options_set_string(opts, id, sval.p);
        nw_arg_free(&sval);
    } else if (type == WSN_OPTTYPE_BOOL) {
        bool b = false;
        napi_valuetype t;
        napi_typeof(env, value, &t);
        if (t != napi_boolean) {
            snprintf(msg, sizeof msg, "option %s must be a boolean", name.p);
            napi_throw_type_error(env, "WSN_ETYPE", msg);
            goto out;
        }
        napi_get_value_bool(env, value, &b);
        rc = wsn_options_set_int(opts, id, b ? 1 : 0);
    } else {
        int64_t lo = INT64_MIN, hi = INT64_MAX, x = 0;
        wsn_option_bounds(id, &lo, &hi);
        snprintf(msg, sizeof msg, "option %s%s", name.p,
                 type == WSN_OPTTYPE_DURATION_MS ? " (ms)" : "");
        if (!nw_arg_int64(env, value, msg, lo, hi, &x))
            goto out;
        rc = wsn_options_set_int(opts, id, x);
    }
    if (rc != WSN_OK) {
        snprintf(msg, sizeof msg, "option %s: %s", name.p, wsn_strerror(rc));
        napi_throw_range_error(env, wsn_err_name(rc), msg);
        goto out;
    }
    ok = true;
out:
    nw_arg_free(&name);
    return ok;
}

static bool set_options(napi_env env, wsn_options *opts, napi_value obj) {
    napi_valuetype t;
    napi_typeof(env, obj, &t);
    if (t == napi_undefined || t == napi_null)
        return true;
    if (t != napi_object) {
        napi_throw_type_error(env, "WSN_EINVAL", "options must be an object");
        return false;
    }
    napi_value keys;
    uint32_t n = 0;
    if (!nw_check(env, napi_get_property_names(env, obj, &keys)))
        return false;
    napi_get_array_length(env, keys, &n);
    for (uint32_t i = 0; i < n; i++) {
        napi_value k, v;
        napi_get_element(env, keys, i, &k);
        napi_get_property(env, obj, k, &v);
        napi_valuetype vt;
        napi_typeof(env, v, &vt);
        if (vt == napi_undefined)
            continue; /* {port: undefined}: the default */
        if (!set_option(env, opts, k, v))
            return false;
    }
    return true;
}

/* new NativeServer(options {snake_case: value}). Log lines are queued in
 * the core (log_queue) and reach JS with the events. */
static napi_value server_ctor(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1], self;
    NW_CALL(env, napi_get_undefined(env, &argv[0]));
    NW_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
    struct nserver *ns = calloc(1, sizeof *ns);
    wsn_options *opts = wsn_options_new();
    if (!ns || !opts) {
        free(ns);
        wsn_options_free(opts);
        return nw_throw_code(env, WSN_ENOMEM, "new Server", NULL);
    }
    ns->env = env;
    ns->refs = 1;
    ns->wake_fd = -1;
    pthread_mutex_init(&ns->mu, NULL);
    pthread_cond_init(&ns->cv, NULL);

    char err[ERRBUF] = "";
    int rc;
    wsn_options_set_int(opts, WSN_OPT_LOG_QUEUE, LOG_QUEUE_DEFAULT);
    if (!set_options(env, opts, argv[0]))
        goto fail;
    wsn_options_get_int(opts, WSN_OPT_WRITE_WAIT, &ns->write_wait_ms);
    rc = wsn_server_new(opts, &ns->srv, err, sizeof err);
    if (rc != WSN_OK) {
        if (rc == WSN_EINVAL || rc == WSN_ERANGE)
            napi_throw_range_error(env, wsn_err_name(rc), err);
        else
            nw_throw_code(env, rc, "new Server", err);
        goto fail;
    }
    wsn_options_free(opts);
    opts = NULL;
    if (!nw_check(env, napi_type_tag_object(env, self, &SERVER_TAG)) ||
        !nw_check(env, napi_wrap(env, self, ns, server_finalize, NULL,
                                         NULL)))
        goto fail;
    if (napi_add_env_cleanup_hook(env, env_cleanup, ns) == napi_ok)
        ns->hook_added = true;
    return self;
fail:
    wsn_options_free(opts);
    server_teardown(ns);
    nw_server_unref(ns);
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

/* start(onEvents): binds, then hands every event batch to onEvents,
 * which keeps the process and the server alive until STOPPED. */
static napi_value js_start(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    struct nserver *ns = self_args(env, info, argv, 1);
    if (!ns)
        return NULL;
    napi_valuetype t;
    if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_function) {
        napi_throw_type_error(env, "WSN_EINVAL", "onEvents must be a function");
        return NULL;
    }
    int rc = wsn_server_start(ns->srv);
    if (rc != WSN_OK)
        return throw_rc(env, ns, rc, "start");
    nw_events_start(env, ns, argv[0]);
    return NULL;
}

static napi_value js_port(napi_env env, napi_callback_info info) {
    napi_value r;
    struct nserver *ns = self_args(env, info, NULL, 0);
    if (!ns)
        return NULL;
    napi_create_int32(env, wsn_server_port(ns->srv), &r);
    return r;
}

/* A core call that waits (shutdown, the TLS reload) made on a thread-pool
 * thread: its Promise resolves to [code, detail] on the JS thread. */
struct pool_call {
    struct nserver *ns;
    int (*fn)(struct pool_call *c);
    int64_t arg;
    int rc;
    char detail[ERRBUF]; /* the server's last error, for codes that set it */
    napi_deferred deferred;
    napi_async_work work;
    napi_ref self; /* keeps the server alive while the call runs */
};

static void pool_execute(napi_env env, void *data) {
    (void)env;
    struct pool_call *c = data;
    c->rc = c->fn(c);
    pthread_mutex_lock(&c->ns->mu);
    c->ns->busy--;
    pthread_cond_broadcast(&c->ns->cv);
    pthread_mutex_unlock(&c->ns->mu);
}

static void pool_complete(napi_env env, napi_status status, void *data) {
    struct pool_call *c = data;
    napi_value arr, v;
    napi_create_array_with_length(env, 2, &arr);
    napi_create_int32(env, status == napi_ok ? c->rc : WSN_ECLOSED, &v);
    napi_set_element(env, arr, 0, v);
    napi_create_string_utf8(env, c->detail, NAPI_AUTO_LENGTH, &v);
    napi_set_element(env, arr, 1, v);
    napi_resolve_deferred(env, c->deferred, arr);
    napi_delete_reference(env, c->self);
    napi_delete_async_work(env, c->work);
    free(c);
}

/* Queues fn on the thread pool; returns its Promise (NULL: thrown). */
static napi_value pool_call_start(napi_env env, napi_callback_info info, struct nserver *ns,
                                  int (*fn)(struct pool_call *), int64_t arg,
                                  const char *what) {
    napi_value self, promise, name;
    size_t argc = 0;
    NW_CALL(env, napi_get_cb_info(env, info, &argc, NULL, &self, NULL));
    struct pool_call *c = calloc(1, sizeof *c);
    if (!c)
        return nw_throw_code(env, WSN_ENOMEM, what, NULL);
    c->ns = ns;
    c->fn = fn;
    c->arg = arg;
    napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name);
    if (napi_create_promise(env, &c->deferred, &promise) != napi_ok ||
        napi_create_reference(env, self, 1, &c->self) != napi_ok ||
        napi_create_async_work(env, NULL, name, pool_execute, pool_complete, c,
                               &c->work) != napi_ok) {
        free(c);
        return nw_check(env, napi_generic_failure), NULL;
    }
    pthread_mutex_lock(&ns->mu);
    ns->busy++;
    pthread_mutex_unlock(&ns->mu);
    if (napi_queue_async_work(env, c->work) != napi_ok) {
        pthread_mutex_lock(&ns->mu);
        ns->busy--;
        pthread_mutex_unlock(&ns->mu);
        napi_delete_reference(env, c->self);
        napi_delete_async_work(env, c->work);
        free(c);
        return nw_check(env, napi_generic_failure), NULL;
    }
    return promise;
}

/* wsn_server_shutdown waits for clients. */
static int shutdown_call(struct pool_call *c) {
    return wsn_server_shutdown(c->ns->srv, c->arg);
}

/* shutdown(timeoutMs) => Promise<[code]> (0 or WSN_ETIMEDOUT). */
static napi_value js_shutdown(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    struct nserver *ns = self_args(env, info, argv, 1);
    if (!ns)
        return NULL;
    int64_t timeout = 0;
    if (!nw_arg_int64(env, argv[0], "timeout (ms)", 0, INT64_MAX, &timeout))
        return NULL;
    return pool_call_start(env, info, ns, shutdown_call, timeout, "wsnotify shutdown");
}

/* The reload waits for the I/O thread, which reads and checks the files. */
static int reload_call(struct pool_call *c) {
    int rc = wsn_server_reload_tls(c->ns->srv);
    if (rc == WSN_EINVAL || rc == WSN_EIO || rc == WSN_EUNSUPPORTED)
        wsn_server_last_error(c->ns->srv, c->detail, sizeof c->detail);
    return rc;
}

/* reloadTls() => Promise<[code, detail]>. */
static napi_value js_reload_tls(napi_env env, napi_callback_info info) {
    struct nserver *ns = self_args(env, info, NULL, 0);
    if (!ns)
        return NULL;
    return pool_call_start(env, info, ns, reload_call, 0, "wsnotify reloadTls");
}

/* ---- pub/sub ------------------------------------------------------------ */

static napi_value sub_unsub(napi_env env, napi_callback_info info,
                            bool subscribe) {
    napi_value argv[2];
    struct nserver *ns = self_args(env, info, argv, 2);
    if (!ns)
        return NULL;
    wsn_client *c = nw_client_unwrap(env, argv[0]);
    struct arg ch;
    if (!c || !nw_arg_string(env, argv[1], "channel", &ch))
        return NULL;
    int rc = subscribe ? wsn_server_subscribe(ns->srv, c, ch.p)
                       : wsn_server_unsubscribe(ns->srv, c, ch.p);
    if (rc != WSN_OK)
        throw_rc(env, ns, rc, subscribe ? "subscribe" : "unsubscribe");
    nw_arg_free(&ch);
    return NULL;
}

static napi_value js_subscribe(napi_env env, napi_callback_info info) {
    return sub_unsub(env, info, true);
}

static napi_value js_unsubscribe(napi_env env, napi_callback_info info) {
    return sub_unsub(env, info, false);
}

static bool arg_type(napi_env env, napi_value v, wsn_message_type *out) {
    int32_t t = -1;
    if (napi_get_value_int32(env, v, &t) != napi_ok || t < WSN_TYPE_JSON ||
        t > WSN_TYPE_BINARY) {
        napi_throw_type_error(env, "WSN_EINVAL", "unknown message type");
        return false;
    }
    *out = (wsn_message_type)t;
    return true;
}

/* true when accepted, false for WSN_EAGAIN (no room: try again once
 * watchRoom() calls back), else throws the core's code. */
static napi_value accepted(napi_env env, struct nserver *ns, int rc,
                           const char *what) {
    napi_value r;
    if (rc != WSN_OK && rc != WSN_EAGAIN)
        return throw_rc(env, ns, rc, what);
    napi_get_boolean(env, rc == WSN_OK, &r);
    return r;
}

/* publish(client|null, channel, type, data, messageId, replyToId,
 * trusted) => accepted (never waits for room). trusted: data is JSON the
 * core made itself (a message's raw, forwarded), sent without a second
 * check. */
static napi_value js_publish(napi_env env, napi_callback_info info) {
    napi_value argv[7];
    struct nserver *ns = self_args(env, info, argv, 7);
    if (!ns)
        return NULL;
    napi_valuetype t;
    wsn_client *c = NULL;
    napi_typeof(env, argv[0], &t);
    if (t != napi_null && t != napi_undefined &&
        !(c = nw_client_unwrap(env, argv[0])))
        return NULL;
    wsn_message_type type;
    struct arg ch = {0}, data = {0}, mid = {0}, rid = {0};
    napi_value r = NULL;
    if (nw_arg_string(env, argv[1], "channel", &ch) &&
        arg_type(env, argv[2], &type) &&
        nw_arg_bytes(env, argv[3], "message", &data) &&
        nw_arg_opt_string(env, argv[4], "messageId", &mid) &&
        nw_arg_opt_string(env, argv[5], "replyToId", &rid)) {
        bool trusted = false;
        napi_get_value_bool(env, argv[6], &trusted); /* not a boolean: false */
        int rc = wsn_server_publish_ex(ns->srv, c, ch.p, type, data.p,
                                       data.len, mid.p, rid.p,
                                       WSN_PUBLISH_NONBLOCK |
                                           (trusted ? WSN_PUBLISH_TRUSTED_JSON : 0));
        r = accepted(env, ns, rc, c ? "publishToClient" : "publish");
    }
    nw_arg_free(&ch);
    nw_arg_free(&data);
    nw_arg_free(&mid);
    nw_arg_free(&rid);
    return r;
}

/* publishWait(channel, type, data, ident, name, ttlMs) => accepted; type
 * -1 is publishWaitString (data a string). */
static napi_value js_publish_wait(napi_env env, napi_callback_info info) {
    napi_value argv[6];
    struct nserver *ns = self_args(env, info, argv, 6);
    if (!ns)
        return NULL;
    int32_t type = 0;
    uint64_t ident = 0;
    int64_t ttl = 0;
    struct arg ch = {0}, data = {0}, name = {0};
    napi_value r = NULL;
    napi_get_value_int32(env, argv[1], &type);
    if (nw_arg_string(env, argv[0], "channel", &ch) &&
        (type < 0 ? nw_arg_string(env, argv[2], "text", &data)
                  : nw_arg_bytes(env, argv[2], "message", &data)) &&
        nw_arg_uint64(env, argv[3], "ident", &ident) &&
        nw_arg_string(env, argv[4], "name", &name) &&
        nw_arg_int64(env, argv[5], "ttl (ms)", 0, INT64_MAX, &ttl)) {
        wsn_message_type t = type < 0 ? WSN_TYPE_TEXT : (wsn_message_type)type;
        int rc = type > WSN_TYPE_BINARY
                     ? WSN_EINVAL
                     : wsn_server_publish_wait_ex(ns->srv, ch.p, t, data.p,
                                                  data.len, ident, name.p, ttl,
                                                  WSN_PUBLISH_NONBLOCK);
        r = accepted(env, ns, rc, "publishWait");
    }
    nw_arg_free(&ch);
    nw_arg_free(&data);
    nw_arg_free(&name);
    return r;
}

static napi_value js_cancel_pending(napi_env env, napi_callback_info info) {
    napi_value argv[2];
    struct nserver *ns = self_args(env, info, argv, 2);
    if (!ns)
        return NULL;
    struct arg ch;
    uint64_t ident = 0;
    if (!nw_arg_string(env, argv[0], "channel", &ch))
        return NULL;
    if (nw_arg_uint64(env, argv[1], "ident", &ident)) {
        int rc = wsn_server_cancel_pending_messages(ns->srv, ch.p, ident);
        if (rc != WSN_OK)
            throw_rc(env, ns, rc, "cancelPendingMessages");
    }
    nw_arg_free(&ch);
    return NULL;
}

/* sendRaw(client, type, data) */
static napi_value js_send_raw(napi_env env, napi_callback_info info) {
    napi_value argv[3];
    struct nserver *ns = self_args(env, info, argv, 3);
    if (!ns)
        return NULL;
    wsn_client *c = nw_client_unwrap(env, argv[0]);
    wsn_message_type type;
    struct arg data = {0};
    napi_value r = NULL;
    if (c && arg_type(env, argv[1], &type) &&
        nw_arg_bytes(env, argv[2], "data", &data)) {
        int rc = wsn_server_send_raw_ex(ns->srv, c, type, data.p, data.len,
                                        WSN_PUBLISH_NONBLOCK);
        r = accepted(env, ns, rc, "sendRaw");
    }
    nw_arg_free(&data);
    return r;
}

/* takeLogs(): the queued log lines, for when no waiter hands them over
 * (a start that failed). */
static napi_value js_take_logs(napi_env env, napi_callback_info info) {
    struct nserver *ns = self_args(env, info, NULL, 0);
    return ns ? nw_take_logs(env, ns) : NULL;
}

/* watchRoom(): the event function gets (null, null, true) once a refused
 * publish may be tried again; false when no waiter runs (then try now). */
static napi_value js_watch_room(napi_env env, napi_callback_info info) {
    napi_value r;
    struct nserver *ns = self_args(env, info, NULL, 0);
    if (!ns)
        return NULL;
    napi_get_boolean(env, nw_events_watch_room(ns), &r);
    return r;
}

/* ---- monitoring --------------------------------------------------------- */

static napi_value count_result(napi_env env, struct nserver *ns, int rc,
                               const char *what) {
    napi_value r;
    if (rc < 0)
        return throw_rc(env, ns, rc, what);
    napi_create_int32(env, rc, &r);
    return r;
}

static napi_value js_pending_batches(napi_env env, napi_callback_info info) {
    struct nserver *ns = self_args(env, info, NULL, 0);
    return ns ? count_result(env, ns, wsn_server_pending_batches(ns->srv),
                             "pendingBatches")
              : NULL;
}

static napi_value js_connected_clients(napi_env env,
                                       napi_callback_info info) {
    struct nserver *ns = self_args(env, info, NULL, 0);
    return ns ? count_result(env, ns, wsn_server_connected_clients(ns->srv),
                             "connectedClients")
              : NULL;
}

static napi_value js_client_list(napi_env env, napi_callback_info info) {
    struct nserver *ns = self_args(env, info, NULL, 0);
    if (!ns)
        return NULL;
    wsn_strlist *list = NULL;
    int rc = wsn_server_client_list(ns->srv, &list);
    if (rc != WSN_OK)
        return throw_rc(env, ns, rc, "clientList");
    return nw_strlist_array(env, list);
}

/* publishToClientId(id, channel, type, data, messageId, replyToId) =>
 * true: to a client of any server of the cluster. */
static napi_value js_publish_to_client_id(napi_env env, napi_callback_info info) {
    napi_value argv[6];
    struct nserver *ns = self_args(env, info, argv, 6);
    if (!ns)
        return NULL;
    wsn_message_type type;
    struct arg id = {0}, ch = {0}, data = {0}, mid = {0}, rid = {0};
    napi_value r = NULL;
    if (nw_arg_string(env, argv[0], "clientId", &id) &&
        nw_arg_string(env, argv[1], "channel", &ch) && arg_type(env, argv[2], &type) &&
        nw_arg_bytes(env, argv[3], "message", &data) &&
        nw_arg_opt_string(env, argv[4], "messageId", &mid) &&
        nw_arg_opt_string(env, argv[5], "replyToId", &rid)) {
        int rc = wsn_server_publish_to_client_id(ns->srv, id.p, ch.p, type, data.p, data.len,
                                                 mid.p, rid.p);
        r = accepted(env, ns, rc, "publishToClientId");
    }
    nw_arg_free(&id);
    nw_arg_free(&ch);
    nw_arg_free(&data);
    nw_arg_free(&mid);
    nw_arg_free(&rid);
    return r;
}

static void set_u64(napi_env env, napi_value obj, const char *key, uint64_t v) {
    napi_value n;
    napi_create_double(env, (double)v, &n);
    napi_set_named_property(env, obj, key, n);
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *v) {
    napi_value s;
    napi_create_string_utf8(env, v, NAPI_AUTO_LENGTH, &s);
    napi_set_named_property(env, obj, key, s);
}

/* brokerState() => {state, reason, serverId, sent, refused, ...}. */
static napi_value js_broker_state(napi_env env, napi_callback_info info) {
    static const char *const names[] = {"none", "connecting", "up", "down"};
    struct nserver *ns = self_args(env, info, NULL, 0);
    if (!ns)
        return NULL;
    wsn_broker_info bi;
    memset(&bi, 0, sizeof bi);
    bi.size = sizeof bi;
    int rc = wsn_server_broker_state(ns->srv, &bi);
    if (rc < 0)
        return throw_rc(env, ns, rc, "brokerState");
    napi_value obj;
    napi_create_object(env, &obj);
    set_str(env, obj, "state", rc < 4 ? names[rc] : "unknown");
    set_str(env, obj, "reason", bi.reason);
    set_str(env, obj, "serverId", bi.server_id);
    set_u64(env, obj, "sent", bi.sent);
    set_u64(env, obj, "refused", bi.refused);
    set_u64(env, obj, "unconfirmed", bi.unconfirmed);
    set_u64(env, obj, "received", bi.received);
    set_u64(env, obj, "ignored", bi.ignored);
    set_u64(env, obj, "dropped", bi.dropped);
    set_u64(env, obj, "reconnects", bi.reconnects);
    return obj;
}

/* acceptUpgrade(id, metadataJson|null, channels[], expiresAtMs). */
static napi_value js_accept_upgrade(napi_env env, napi_callback_info info) {
    napi_value argv[4];
    struct nserver *ns = self_args(env, info, argv, 4);
    if (!ns)
        return NULL;
    uint64_t id = 0;
    int64_t expires = 0;
    uint32_t count = 0;
    struct arg meta = {0};
    if (!nw_arg_uint64(env, argv[0], "upgrade id", &id) ||
        !nw_arg_opt_string(env, argv[1], "metadata", &meta))
        return NULL;
    if (!nw_arg_int64(env, argv[3], "expiresAt", 0, INT64_MAX, &expires) ||
        napi_get_array_length(env, argv[2], &count) != napi_ok) {
        if (!count)
            napi_throw_type_error(env, "WSN_EINVAL", "channels must be an array");
        nw_arg_free(&meta);
        return NULL;
    }
    struct arg *names = calloc(count ? count : 1, sizeof *names);
    const char **ptrs = calloc(count ? count : 1, sizeof *ptrs);
    uint32_t got = 0;
    bool ok = names && ptrs;
    for (; ok && got < count; got++) {
        napi_value v;
        ok = napi_get_element(env, argv[2], got, &v) == napi_ok &&
             nw_arg_string(env, v, "channel", &names[got]);
        if (ok)
            ptrs[got] = names[got].p;
    }
    if (ok) {
        int rc = wsn_server_accept_upgrade(ns->srv, id, meta.p, ptrs, count, expires);
        if (rc != WSN_OK)
            throw_rc(env, ns, rc, "acceptUpgrade");
    } else if (!names || !ptrs) {
        nw_throw_code(env, WSN_ENOMEM, "acceptUpgrade", "");
    }
    for (uint32_t i = 0; i < got && names; i++)
        nw_arg_free(&names[i]);
    free(names);
    free(ptrs);
    nw_arg_free(&meta);
    return NULL;
}

/* rejectUpgrade(id, status, body|null). */
static napi_value js_reject_upgrade(napi_env env, napi_callback_info info) {
    napi_value argv[3];
    struct nserver *ns = self_args(env, info, argv, 3);
    if (!ns)
        return NULL;
    uint64_t id = 0;
    int64_t status = 0;
    struct arg body = {0};
    if (!nw_arg_uint64(env, argv[0], "upgrade id", &id) ||
        !nw_arg_int64(env, argv[1], "status", 400, 599, &status) ||
        !nw_arg_opt_string(env, argv[2], "body", &body))
        return NULL;
    int rc = wsn_server_reject_upgrade(ns->srv, id, (int)status, body.p);
    if (rc != WSN_OK)
        throw_rc(env, ns, rc, "rejectUpgrade");
    nw_arg_free(&body);
    return NULL;
}

/* metrics() / metricsText(): the core's snapshot (metrics.c). */
static napi_value js_metrics(napi_env env, napi_callback_info info) {
    struct nserver *ns = self_args(env, info, NULL, 0);
    int rc = 0;
    napi_value r = ns ? nw_metrics_object(env, ns->srv, &rc) : NULL;
    return rc ? throw_rc(env, ns, rc, "metrics") : r;
}

static napi_value js_metrics_text(napi_env env, napi_callback_info info) {
    struct nserver *ns = self_args(env, info, NULL, 0);
    int rc = 0;
    napi_value r = ns ? nw_metrics_text(env, ns->srv, &rc) : NULL;
    return rc ? throw_rc(env, ns, rc, "metricsText") : r;
}

napi_value nw_server_class(napi_env env) {
    napi_property_descriptor props[] = {
        NW_METHOD("start", js_start),
        NW_METHOD("port", js_port),
        NW_METHOD("shutdown", js_shutdown),
        NW_METHOD("reloadTls", js_reload_tls),
        NW_METHOD("subscribe", js_subscribe),
        NW_METHOD("unsubscribe", js_unsubscribe),
        NW_METHOD("publish", js_publish),
        NW_METHOD("publishWait", js_publish_wait),
        NW_METHOD("cancelPendingMessages", js_cancel_pending),
        NW_METHOD("sendRaw", js_send_raw),
        NW_METHOD("watchRoom", js_watch_room),
        NW_METHOD("takeLogs", js_take_logs),
        NW_METHOD("pendingBatches", js_pending_batches),
        NW_METHOD("connectedClients", js_connected_clients),
        NW_METHOD("clientList", js_client_list),
        NW_METHOD("publishToClientId", js_publish_to_client_id),
        NW_METHOD("brokerState", js_broker_state),
        NW_METHOD("acceptUpgrade", js_accept_upgrade),
        NW_METHOD("rejectUpgrade", js_reject_upgrade),
        NW_METHOD("metrics", js_metrics),
        NW_METHOD("metricsText", js_metrics_text),
    };
    napi_value cls;
    NW_CALL(env, napi_define_class(env, "NativeServer", NAPI_AUTO_LENGTH,
                                     server_ctor, NULL,
                                     sizeof props / sizeof props[0], props,
                                     &cls));
    return cls;
}
