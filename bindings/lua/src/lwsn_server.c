/*
 * Server objects: one wsn_server in a userdata, its options from a Lua
 * table by name (wsn_option_by_name: the core's table, none of our own),
 * pub/sub, batching, monitoring and the pulled events. Handlers are not
 * here: wsnotify.lua runs them on the Lua thread from next_event(), so no
 * Lua code ever runs on one of the core's threads.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwsn.h"

#define ERRBUF 512

/* Log lines are queued by the core (WSN_OPT_LOG_QUEUE) and taken on the
 * Lua thread with next_log(), so no code of ours runs on a core thread. */
#define LOG_QUEUE_LINES 1000
#define LOG_LINE_MAX 4096

/* ---- options ------------------------------------------------------------- */

/* Applies one option (key at -2, value at -1). Returns 0, or a code with
 * err filled; a value of the wrong Lua type is a misuse and raises (the
 * caller's options object is freed by its holder). */
static int apply_option(lua_State *L, wsn_options *o, char *err, size_t cap) {
    if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "new_server: option names must be strings");
    const char *name = lua_tostring(L, -2);
    wsn_option id;
    wsn_option_type t;
    if (wsn_option_by_name(name, &id, &t) != WSN_OK)
        luaL_error(L, "new_server: unknown option '%s' (wsnotify.options() "
                      "lists them)", name);
    int64_t v = 0;
    int rc;
    switch (t) {
    case WSN_OPTTYPE_STRING: {
        if (lua_type(L, -1) == LUA_TTABLE) {
            /* A list of strings, as allowed_origins takes: joined by ",". */
            luaL_Buffer b;
            int list = lua_gettop(L);
            int n = (int)lwsn_rawlen(L, list);
            luaL_buffinit(L, &b);
            for (int i = 1; i <= n; i++) {
                /* The separator first: the buffer wants its own pieces on
                 * top of the stack whenever it grows. */
                if (i > 1)
                    luaL_addchar(&b, ',');
                lua_rawgeti(L, list, i);
                if (lua_type(L, -1) != LUA_TSTRING)
                    luaL_error(L, "new_server: option %s: a list of strings",
                               name);
                luaL_addvalue(&b);
            }
            luaL_pushresult(&b);
        } else {
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "new_server: option %s must be a string, not %s",
                           name, luaL_typename(L, -1));
            lua_pushvalue(L, -1);
        }
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len)
            luaL_error(L, "new_server: option %s must not contain NUL", name);
        rc = wsn_options_set_string(o, id, s);
        lua_pop(L, 1);
        break;
    }
    case WSN_OPTTYPE_BOOL:
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            luaL_error(L, "new_server: option %s must be a boolean, not %s",
                       name, luaL_typename(L, -1));
        rc = wsn_options_set_int(o, id, lua_toboolean(L, -1));
        break;
    case WSN_OPTTYPE_DURATION_MS: {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "new_server: option %s must be a number of "
                          "seconds, not %s", name, luaL_typename(L, -1));
        double s = (double)lua_tonumber(L, -1) * 1000.0;
        if (isnan(s) || s > 9.2e18 || s < -9.2e18)
            rc = WSN_ERANGE;
        else
            rc = wsn_options_set_int(o, id, (int64_t)llround(s));
        break;
    }
    default:
        if (!lwsn_tointeger(L, -1, &v))
            luaL_error(L, "new_server: option %s must be an integer, not %s",
                       name, luaL_typename(L, -1));
        rc = wsn_options_set_int(o, id, v);
    }
    if (rc != WSN_OK) {
        int64_t lo, hi;
        if (rc == WSN_ERANGE && wsn_option_bounds(id, &lo, &hi) == WSN_OK) {
            if (t == WSN_OPTTYPE_DURATION_MS)
                snprintf(err, cap, "option %s is out of range (%g s to %g s)",
                         name, (double)lo / 1000.0, (double)hi / 1000.0);
            else
                snprintf(err, cap, "option %s is out of range (%lld to %lld)",
                         name, (long long)lo, (long long)hi);
        } else {
            snprintf(err, cap, "option %s", name);
        }
    }
    return rc;
}

static int options_gc(lua_State *L) {
    wsn_options **h = lua_touserdata(L, 1);
    wsn_options_free(*h);
    *h = NULL;
    return 0;
}

/* new_server(options[, nonblocking]) -> server | nil, err, code. With
 * nonblocking every publish passes WSN_PUBLISH_NONBLOCK: it answers
 * WSN_EAGAIN (nothing queued) instead of waiting for room. */
static int l_new_server(lua_State *L) {
    int nonblocking = lua_toboolean(L, 2);
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    wsn_options **h = lua_newuserdata(L, sizeof *h); /* 2 */
    *h = NULL;
    lua_newtable(L);
    lua_pushcfunction(L, options_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    *h = wsn_options_new();
    if (!*h)
        return luaL_error(L, "out of memory");
    char err[ERRBUF] = "";
    int rc = WSN_OK;
    if (lua_istable(L, 1)) {
        lua_pushnil(L);
        while (lua_next(L, 1)) {
            rc = apply_option(L, *h, err, sizeof err);
            lua_pop(L, 1);
            if (rc != WSN_OK) {
                lua_pop(L, 1);
                break;
            }
        }
    }
    int64_t queue = 0;
    if (rc == WSN_OK && wsn_options_get_int(*h, WSN_OPT_LOG_QUEUE, &queue) ==
                            WSN_OK && queue == 0)
        rc = wsn_options_set_int(*h, WSN_OPT_LOG_QUEUE, LOG_QUEUE_LINES);
    wsn_server *srv = NULL;
    if (rc == WSN_OK)
        rc = wsn_server_new(*h, &srv, err, sizeof err);
    wsn_options_free(*h);
    *h = NULL;
    if (rc != WSN_OK)
        return lwsn_fail(L, rc, "new_server", err);
    lwsn_server *u = lua_newuserdata(L, sizeof *u);
    u->srv = srv;
    u->flags = nonblocking ? WSN_PUBLISH_NONBLOCK : 0;
    u->batch = NULL;
    luaL_getmetatable(L, LWSN_SERVER_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* ---- helpers ------------------------------------------------------------- */

static lwsn_server *check_u(lua_State *L) {
    lwsn_server *u = luaL_checkudata(L, 1, LWSN_SERVER_MT);
    if (!u->srv)
        luaL_error(L, "wsnotify: the server was closed");
    return u;
}

static wsn_server *check_srv(lua_State *L) { return check_u(L)->srv; }

static int done(lua_State *L, wsn_server *srv, int rc, const char *what) {
    if (rc == WSN_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return lwsn_fail_srv(L, rc, what, srv);
}

/* A string argument for a C string: misuse raises; a NUL inside is a bad
 * value (the core would see a shorter name), so *bad is set. */
static const char *cstr_arg(lua_State *L, int idx, int *bad) {
    size_t len;
    /* Strictly a string: luaL_checklstring would take a number too. */
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_checktype(L, idx, LUA_TSTRING);
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len)
        *bad = 1;
    return s;
}

static const char *opt_cstr_arg(lua_State *L, int idx, int *bad) {
    if (lua_isnoneornil(L, idx))
        return NULL;
    return cstr_arg(L, idx, bad);
}

static wsn_message_type type_arg(lua_State *L, int idx) {
    static const char *const names[] = {"json", "text", "binary", NULL};
    return (wsn_message_type)luaL_checkoption(L, idx, "json", names);
}

/* The payload of a message of type t at idx: JSON values are encoded,
 * text and binary must be strings. Leaves one value pushed. */
static const char *payload_arg(lua_State *L, int idx, wsn_message_type t,
                               size_t *len, int *trusted) {
    *trusted = 0;
    if (t == WSN_TYPE_JSON)
        return lwsn_json_arg(L, idx, len, trusted);
    const char *s = luaL_checklstring(L, idx, len);
    lua_pushvalue(L, idx);
    return s;
}

static uint64_t ident_arg(lua_State *L, int idx) {
    int64_t v;
    if (!lwsn_tointeger(L, idx, &v) || v < 0)
        luaL_argerror(L, idx, "ident must be a non-negative integer");
    return (uint64_t)v;
}

static int64_t ms_arg(lua_State *L, int idx) {
    double s = (double)luaL_checknumber(L, idx) * 1000.0;
    if (isnan(s) || s > 9.2e18 || s < -9.2e18)
        luaL_argerror(L, idx, "seconds out of range");
    return (int64_t)llround(s);
}

/* Text the core made (its writer) or checked (an event's payload) needs
 * no second check: wsn_server_publish_ex skips validation and minify. */
static int trusted_flag(int trusted) {
    return trusted ? WSN_PUBLISH_TRUSTED_JSON : 0;
}

#define BAD_IF(bad, what)                                                      \
    do {                                                                       \
        if (bad)                                                               \
            return lwsn_fail(L, WSN_EINVAL, what, "NUL in a string");          \
    } while (0)

/* ---- lifecycle ----------------------------------------------------------- */

static int srv_start(lua_State *L) {
    wsn_server *srv = check_srv(L);
    return done(L, srv, wsn_server_start(srv), "start");
}

static int srv_port(lua_State *L) {
    lua_pushinteger(L, wsn_server_port(check_srv(L)));
    return 1;
}

/* shutdown(timeout_seconds) -> true | nil, err, "WSN_ETIMEDOUT" */
static int srv_shutdown(lua_State *L) {
    wsn_server *srv = check_srv(L);
    return done(L, srv, wsn_server_shutdown(srv, ms_arg(L, 2)), "shutdown");
}

static void batch_release(lwsn_server *u);

/* close(): shuts down if running, then frees; later calls are no-ops. */
static int srv_close(lua_State *L) {
    lwsn_server *u = luaL_checkudata(L, 1, LWSN_SERVER_MT);
    wsn_server *srv = u->srv;
    u->srv = NULL;
    batch_release(u);
    wsn_server_free(srv);
    return 0;
}

static int srv_closed(lua_State *L) {
    lwsn_server *u = luaL_checkudata(L, 1, LWSN_SERVER_MT);
    lua_pushboolean(L, u->srv == NULL);
    return 1;
}

static int srv_last_error(lua_State *L) {
    char buf[ERRBUF];
    wsn_server_last_error(check_srv(L), buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

/* ---- pub/sub --------------------------------------------------------------- */

static int srv_subscribe(lua_State *L) {
    wsn_server *srv = check_srv(L);
    wsn_client *c = lwsn_client_check(L, 2);
    int bad = 0;
    const char *ch = cstr_arg(L, 3, &bad);
    BAD_IF(bad, "subscribe");
    return done(L, srv, wsn_server_subscribe(srv, c, ch), "subscribe");
}

static int srv_unsubscribe(lua_State *L) {
    wsn_server *srv = check_srv(L);
    wsn_client *c = lwsn_client_check(L, 2);
    int bad = 0;
    const char *ch = cstr_arg(L, 3, &bad);
    BAD_IF(bad, "unsubscribe");
    return done(L, srv, wsn_server_unsubscribe(srv, c, ch), "unsubscribe");
}

/* publish(channel, value): a string is JSON text as it is, anything else
 * is encoded. */
static int srv_publish(lua_State *L) {
    lwsn_server *u = check_u(L);
    wsn_server *srv = u->srv;
    int bad = 0;
    const char *ch = cstr_arg(L, 2, &bad);
    luaL_checkany(L, 3);
    size_t len;
    int trusted;
    const char *text = lwsn_json_arg(L, 3, &len, &trusted);
    BAD_IF(bad || strlen(text) != len, "publish");
    return done(L, srv,
                wsn_server_publish_ex(srv, NULL, ch, WSN_TYPE_JSON, text, len,
                                      NULL, NULL, u->flags | trusted_flag(trusted)),
                "publish");
}

/* The arguments publish_with_type and publish_to_client share, from index
 * `at` on: channel, value, type, message_id, reply_to_id. */
static int publish_typed(lua_State *L, lwsn_server *u, wsn_client *c, int at,
                         const char *what) {
    int bad = 0;
    const char *ch = cstr_arg(L, at, &bad);
    luaL_checkany(L, at + 1);
    wsn_message_type t = type_arg(L, at + 2);
    const char *mid = opt_cstr_arg(L, at + 3, &bad);
    const char *rid = opt_cstr_arg(L, at + 4, &bad);
    size_t len;
    int trusted;
    const void *data = payload_arg(L, at + 1, t, &len, &trusted);
    BAD_IF(bad, what);
    return done(L, u->srv,
                wsn_server_publish_ex(u->srv, c, ch, t, data, len, mid, rid,
                                      u->flags | trusted_flag(trusted)),
                what);
}

/* publish_with_type(channel, value, type, message_id, reply_to_id) */
static int srv_publish_with_type(lua_State *L) {
    return publish_typed(L, check_u(L), NULL, 2, "publish_with_type");
}

/* publish_to_client(client, channel, value, type, message_id, reply_to_id) */
static int srv_publish_to_client(lua_State *L) {
    lwsn_server *u = check_u(L);
    return publish_typed(L, u, lwsn_client_check(L, 2), 3, "publish_to_client");
}

/* publish_to_client_id(id, channel, value, [type], [message_id],
 * [reply_to_id]): to a client of any server of the cluster. */
static int srv_publish_to_client_id(lua_State *L) {
    lwsn_server *u = check_u(L);
    int bad = 0;
    const char *id = cstr_arg(L, 2, &bad);
    const char *ch = cstr_arg(L, 3, &bad);
    luaL_checkany(L, 4);
    wsn_message_type t = type_arg(L, 5);
    const char *mid = opt_cstr_arg(L, 6, &bad);
    const char *rid = opt_cstr_arg(L, 7, &bad);
    size_t len;
    int trusted; /* no flags: it is checked */
    const void *data = payload_arg(L, 4, t, &len, &trusted);
    BAD_IF(bad, "publish_to_client_id");
    return done(L, u->srv,
                wsn_server_publish_to_client_id(u->srv, id, ch, t, data, len, mid, rid),
                "publish_to_client_id");
}

/* reload_tls() -> true | nil, err, code: the tls_cert and tls_key files
 * again (this thread waits while the I/O thread reads them). */
static int srv_reload_tls(lua_State *L) {
    wsn_server *srv = check_srv(L);
    return done(L, srv, wsn_server_reload_tls(srv), "reload_tls");
}

/* broker_state() -> {state=, reason=, server_id=, sent=, refused=, ...}. */
static int srv_broker_state(lua_State *L) {
    static const char *const names[] = {"none", "connecting", "up", "down"};
    wsn_server *srv = check_srv(L);
    wsn_broker_info bi;
    memset(&bi, 0, sizeof bi);
    bi.size = sizeof bi;
    int rc = wsn_server_broker_state(srv, &bi);
    if (rc < 0)
        return lwsn_fail_srv(L, rc, "broker_state", srv);
    lua_createtable(L, 0, 10);
    lua_pushstring(L, rc < 4 ? names[rc] : "?");
    lua_setfield(L, -2, "state");
    lua_pushstring(L, bi.reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, bi.server_id);
    lua_setfield(L, -2, "server_id");
    const struct {
        const char *name;
        uint64_t v;
    } counters[] = {{"sent", bi.sent},         {"refused", bi.refused},
                    {"unconfirmed", bi.unconfirmed}, {"received", bi.received},
                    {"ignored", bi.ignored},   {"dropped", bi.dropped},
                    {"reconnects", bi.reconnects}};
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        lwsn_pushint64(L, (int64_t)counters[i].v);
        lua_setfield(L, -2, counters[i].name);
    }
    return 1;
}

/* metrics() -> {connections=, connections_refused={origin=, ...},
 * messages_received={json=, text=, binary=}, ...}: every field of
 * wsn_metrics by its C name, the by-reason and by-type arrays keyed by
 * their label, reads_paused a boolean, broker_state a name. */
static const struct {
    const char *name;
    size_t offset;
} metric_fields[] = {
#define F(f) {#f, offsetof(wsn_metrics, f)}
    F(connections),        F(connections_accepted),  F(connections_ended),
    F(subscriptions),      F(channels),              F(messages_invalid),
    F(deliveries),         F(messages_sent),         F(bytes_sent),
    F(messages_dropped),   F(queued),                F(queue_max),
    F(stalled_clients),    F(publish_refused_limit), F(publish_refused_again),
    F(publish_refused_timeout), F(publish_refused_backpressure), F(pending_batches),
    F(events_queued),      F(events_queued_bytes),   F(clients_paused),
    F(logs_dropped),       F(broker_sent),           F(broker_refused),
    F(broker_unconfirmed), F(broker_received),       F(broker_ignored),
    F(broker_dropped),     F(broker_reconnects),     F(broker_lost),
#undef F
};

static const char *type_label(int i) {
    return i < 3 ? wsn_message_type_name((wsn_message_type)i) : NULL;
}

/* {label = value} of an array whose element i is named by name_of(i). */
static void push_labelled(lua_State *L, const uint64_t *values, const char *(*name_of)(int)) {
    lua_newtable(L);
    const char *label;
    for (int i = 0; (label = name_of(i)); i++) {
        lwsn_pushint64(L, (int64_t)values[i]);
        lua_setfield(L, -2, label);
    }
}

static int srv_metrics(lua_State *L) {
    static const char *const states[] = {"none", "connecting", "up", "down"};
    wsn_server *srv = check_srv(L);
    wsn_metrics m;
    memset(&m, 0, sizeof m);
    m.size = sizeof m;
    int rc = wsn_server_metrics(srv, &m);
    if (rc)
        return lwsn_fail_srv(L, rc, "metrics", srv);
    lua_createtable(L, 0, 40);
    for (size_t i = 0; i < sizeof metric_fields / sizeof metric_fields[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&m + metric_fields[i].offset, sizeof v);
        lwsn_pushint64(L, (int64_t)v);
        lua_setfield(L, -2, metric_fields[i].name);
    }
    push_labelled(L, m.connections_refused, wsn_refusal_name);
    lua_setfield(L, -2, "connections_refused");
    push_labelled(L, m.connections_closed, wsn_close_reason_name);
    lua_setfield(L, -2, "connections_closed");
    push_labelled(L, m.messages_received, type_label);
    lua_setfield(L, -2, "messages_received");
    push_labelled(L, m.bytes_received, type_label);
    lua_setfield(L, -2, "bytes_received");
    lua_pushboolean(L, m.reads_paused != 0);
    lua_setfield(L, -2, "reads_paused");
    lua_pushstring(L, m.broker_state < 4 ? states[m.broker_state] : "?");
    lua_setfield(L, -2, "broker_state");
    return 1;
}

/* metrics_text() -> the Prometheus text, as GET /metrics serves it. */
static int srv_metrics_text(lua_State *L) {
    wsn_server *srv = check_srv(L);
    size_t cap = 16384, len = 0;
    for (;;) {
        char *buf = malloc(cap);
        if (!buf)
            return lwsn_fail(L, WSN_ENOMEM, "metrics_text", NULL);
        int rc = wsn_server_metrics_text(srv, buf, cap, &len);
        if (rc == WSN_OK)
            lua_pushlstring(L, buf, len);
        free(buf);
        if (rc == WSN_OK)
            return 1;
        if (rc != WSN_ENOSPC)
            return lwsn_fail_srv(L, rc, "metrics_text", srv);
        cap = len + 1024;
    }
}

/* send_raw(client, data, type): type "text" (default) or "binary". */
static int srv_send_raw(lua_State *L) {
    static const char *const names[] = {"text", "binary", NULL};
    lwsn_server *u = check_u(L);
    wsn_server *srv = u->srv;
    wsn_client *c = lwsn_client_check(L, 2);
    size_t len;
    const char *data = luaL_checklstring(L, 3, &len);
    wsn_message_type t = luaL_checkoption(L, 4, "text", names) == 0
                             ? WSN_TYPE_TEXT
                             : WSN_TYPE_BINARY;
    return done(L, srv, wsn_server_send_raw_ex(srv, c, t, data, len, u->flags),
                "send_raw");
}

/* publish_wait(channel, value, ident, name, ttl_seconds) */
static int srv_publish_wait(lua_State *L) {
    lwsn_server *u = check_u(L);
    wsn_server *srv = u->srv;
    int bad = 0;
    const char *ch = cstr_arg(L, 2, &bad);
    luaL_checkany(L, 3);
    uint64_t ident = ident_arg(L, 4);
    const char *name = cstr_arg(L, 5, &bad);
    int64_t ttl = ms_arg(L, 6);
    size_t len;
    const char *text = lwsn_json_arg(L, 3, &len, NULL);
    BAD_IF(bad || strlen(text) != len, "publish_wait");
    return done(L, srv,
                wsn_server_publish_wait_ex(srv, ch, WSN_TYPE_JSON, text, len,
                                           ident, name, ttl, u->flags),
                "publish_wait");
}

/* publish_wait_with_type(channel, value, type, ident, name, ttl_seconds) */
static int srv_publish_wait_with_type(lua_State *L) {
    lwsn_server *u = check_u(L);
    wsn_server *srv = u->srv;
    int bad = 0;
    const char *ch = cstr_arg(L, 2, &bad);
    luaL_checkany(L, 3);
    wsn_message_type t = type_arg(L, 4);
    uint64_t ident = ident_arg(L, 5);
    const char *name = cstr_arg(L, 6, &bad);
    int64_t ttl = ms_arg(L, 7);
    size_t len;
    int trusted; /* publish_wait_ex takes no WSN_PUBLISH_TRUSTED_JSON */
    const void *data = payload_arg(L, 3, t, &len, &trusted);
    BAD_IF(bad, "publish_wait_with_type");
    return done(L, srv,
                wsn_server_publish_wait_ex(srv, ch, t, data, len, ident, name,
                                           ttl, u->flags),
                "publish_wait_with_type");
}

/* publish_wait_string(channel, text, ident, name, ttl_seconds) */
static int srv_publish_wait_string(lua_State *L) {
    lwsn_server *u = check_u(L);
    wsn_server *srv = u->srv;
    int bad = 0;
    const char *ch = cstr_arg(L, 2, &bad);
    const char *text = cstr_arg(L, 3, &bad);
    uint64_t ident = ident_arg(L, 4);
    const char *name = cstr_arg(L, 5, &bad);
    int64_t ttl = ms_arg(L, 6);
    BAD_IF(bad, "publish_wait_string");
    return done(L, srv,
                wsn_server_publish_wait_ex(srv, ch, WSN_TYPE_TEXT, text,
                                           strlen(text), ident, name, ttl,
                                           u->flags),
                "publish_wait_string");
}

static int srv_cancel_pending_messages(lua_State *L) {
    wsn_server *srv = check_srv(L);
    int bad = 0;
    const char *ch = cstr_arg(L, 2, &bad);
    uint64_t ident = ident_arg(L, 3);
    BAD_IF(bad, "cancel_pending_messages");
    return done(L, srv, wsn_server_cancel_pending_messages(srv, ch, ident),
                "cancel_pending_messages");
}

static int count_result(lua_State *L, wsn_server *srv, int rc,
                        const char *what) {
    if (rc < 0)
        return lwsn_fail_srv(L, rc, what, srv);
    lua_pushinteger(L, rc);
    return 1;
}

static int srv_pending_batches(lua_State *L) {
    wsn_server *srv = check_srv(L);
    return count_result(L, srv, wsn_server_pending_batches(srv),
                        "pending_batches");
}

/* ---- monitoring ------------------------------------------------------------ */

static int srv_connected_clients(lua_State *L) {
    wsn_server *srv = check_srv(L);
    return count_result(L, srv, wsn_server_connected_clients(srv),
                        "connected_clients");
}

static int srv_client_list(lua_State *L) {
    wsn_server *srv = check_srv(L);
    wsn_strlist *list = NULL;
    int rc = wsn_server_client_list(srv, &list);
    if (rc != WSN_OK)
        return lwsn_fail_srv(L, rc, "client_list", srv);
    return lwsn_push_strlist(L, list);
}

/* ---- events ---------------------------------------------------------------- */

static int srv_event_fd(lua_State *L) {
    lua_pushinteger(L, wsn_server_event_fd(check_srv(L)));
    return 1;
}

/* wait(timeout_seconds | nil = forever) -> 1 (events), 0 (timeout), or
 * the code (WSN_ECLOSED once stopped) as a negative number. */
static int srv_wait(lua_State *L) {
    wsn_server *srv = check_srv(L);
    int ms = -1;
    if (!lua_isnoneornil(L, 2)) {
        int64_t v = ms_arg(L, 2);
        ms = v < 0 ? 0 : v > 0x7fffffff ? 0x7fffffff : (int)v;
    }
    lua_pushinteger(L, wsn_server_wait(srv, ms));
    return 1;
}

static const char *const kind_names[] = {"?",       "connect", "message", "disconnect",
                                         "stopped", "broker",  "upgrade"};

/* Events per take_events call, and the bytes of their strings and
 * payloads; a message that does not fit ends the batch and is read from
 * its event. */
#define BATCH_MAX 256
#define ARENA_BYTES (256 * 1024)
#define FIELDS 8 /* per event in take_events' out table */

struct lwsn_batch {
    /* Events of the last take not yet freed: a Lua error (out of memory)
     * while they were pushed skips the free at its end; the next take,
     * or close, frees them then. */
    int unfreed;
    wsn_event *evs[BATCH_MAX];
    wsn_event_record rec[BATCH_MAX];
    char arena[ARENA_BYTES];
};

/* Frees the batch and the events it still held (before the server). */
static void batch_release(lwsn_server *u) {
    if (u->batch)
        wsn_events_free(u->batch->evs, u->batch->unfreed);
    free(u->batch);
    u->batch = NULL;
}

/* The client object of a borrowed handle: the one in clients (by id) or
 * a new one, added there (wsnotify.lua removes it after its disconnect). */
static void push_client(lua_State *L, int clients, wsn_client *c, const char *id) {
    lua_getfield(L, clients, id);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lwsn_client_push(L, c);
        lua_pushvalue(L, -1);
        lua_setfield(L, clients, id);
    }
}

/* take_events(clients, out[, max]) -> n | nil (none queued) | false
 * (stopped before) | nil, err, code. Takes up to max (default and at most
 * 256) events in one core call (wsn_server_take_events) and writes event i
 * (0-based) to out[8i+1 .. 8i+8]: kind, client, client_id, then for a
 * message type, channel, payload, message_id, reply_to_id; for a broker
 * event the state's name and the reason (nil for what does not apply). A client is the same object from event to event (see
 * push_client). */
static int srv_take_events(lua_State *L) {
    lwsn_server *u = check_u(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    int max = (int)luaL_optinteger(L, 4, BATCH_MAX);
    if (max < 1 || max > BATCH_MAX)
        max = BATCH_MAX;
    if (!u->batch && !(u->batch = calloc(1, sizeof *u->batch)))
        return luaL_error(L, "out of memory");
    struct lwsn_batch *b = u->batch;
    wsn_events_free(b->evs, b->unfreed);
    b->unfreed = 0;
    size_t used = 0;
    int n = wsn_server_take_events(u->srv, b->evs, b->rec, sizeof b->rec[0], max,
                                   b->arena, sizeof b->arena, &used);
    if (n == 0)
        return 0;
    if (n == WSN_ECLOSED) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (n < 0)
        return lwsn_fail_srv(L, n, "take_events", u->srv);
    b->unfreed = n;
    for (int i = 0; i < n; i++) {
        const wsn_event_record *r = &b->rec[i];
        int at = i * FIELDS;
        wsn_event_type kind = (wsn_event_type)r->kind;
        lua_pushstring(L, (kind >= WSN_EVENT_CONNECT && kind <= WSN_EVENT_UPGRADE)
                              ? kind_names[kind]
                              : "?");
        lua_rawseti(L, 3, at + 1);
        const char *id = r->client ? wsn_client_id(r->client) : "";
        if (r->client)
            push_client(L, 2, r->client, id);
        else
            lua_pushnil(L);
        lua_rawseti(L, 3, at + 2);
        lua_pushstring(L, id);
        lua_rawseti(L, 3, at + 3);
        if (kind == WSN_EVENT_BROKER) { /* the state's name and the reason */
            wsn_event_info in;
            memset(&in, 0, sizeof in);
            in.size = sizeof in;
            wsn_event_get_info(b->evs[i], &in); /* only fails for NULL */
            lua_pushstring(L, in.channel);
            lua_rawseti(L, 3, at + 4);
            lua_pushlstring(L, (const char *)in.payload, in.payload_len);
            lua_rawseti(L, 3, at + 5);
            for (int f = 6; f <= FIELDS; f++) {
                lua_pushnil(L);
                lua_rawseti(L, 3, at + f);
            }
            continue;
        }
        if (kind == WSN_EVENT_UPGRADE) { /* id, path, query, peer, header lines */
            wsn_event_info in;
            memset(&in, 0, sizeof in);
            in.size = sizeof in;
            wsn_event_get_info(b->evs[i], &in); /* only fails for NULL */
            lua_pushinteger(L, (lua_Integer)wsn_event_upgrade_id(b->evs[i]));
            lua_rawseti(L, 3, at + 4);
            lua_pushstring(L, in.channel);
            lua_rawseti(L, 3, at + 5);
            lua_pushstring(L, wsn_event_upgrade_query(b->evs[i]));
            lua_rawseti(L, 3, at + 6);
            lua_pushstring(L, in.reply_to_id);
            lua_rawseti(L, 3, at + 7);
            lua_pushlstring(L, (const char *)in.payload, in.payload_len);
            lua_rawseti(L, 3, at + 8);
            continue;
        }
        if (kind != WSN_EVENT_MESSAGE) {
            for (int f = 4; f <= FIELDS; f++) {
                lua_pushnil(L);
                lua_rawseti(L, 3, at + f);
            }
            continue;
        }
        const char *tn = wsn_message_type_name((wsn_message_type)r->type);
        lua_pushstring(L, tn ? tn : "?");
        lua_rawseti(L, 3, at + 4);
        if (r->payload_offset >= 0) {
            const char *a = b->arena;
            lua_pushlstring(L, a + r->channel_offset, (size_t)r->channel_len);
            lua_pushlstring(L, a + r->payload_offset, (size_t)r->payload_len);
            lua_pushlstring(L, a + r->message_id_offset, (size_t)r->message_id_len);
            lua_pushlstring(L, a + r->reply_to_id_offset, (size_t)r->reply_to_id_len);
        } else { /* did not fit in the arena: the last of the batch */
            wsn_event_info in;
            memset(&in, 0, sizeof in);
            in.size = sizeof in;
            wsn_event_get_info(b->evs[i], &in); /* only fails for NULL */
            lua_pushstring(L, in.channel);
            lua_pushlstring(L, (const char *)in.payload, in.payload_len);
            lua_pushstring(L, in.message_id);
            lua_pushstring(L, in.reply_to_id);
        }
        for (int f = FIELDS; f >= 5; f--)
            lua_rawseti(L, 3, at + f);
    }
    /* the client objects hold their own references now */
    wsn_events_free(b->evs, n);
    b->unfreed = 0;
    lua_pushinteger(L, n);
    return 1;
}

static uint64_t upgrade_id_arg(lua_State *L, int idx) {
    int64_t v;
    if (!lwsn_tointeger(L, idx, &v) || v <= 0)
        luaL_argerror(L, idx, "an upgrade id is a positive integer");
    return (uint64_t)v;
}

/* accept_upgrade(id, metadata table|nil, channels {..}|nil, expires_at
 * seconds|nil) -> true | nil, err, code. The metadata is encoded as the
 * JSON object whose members become the client's metadata. */
static int srv_accept_upgrade(lua_State *L) {
    wsn_server *srv = check_srv(L);
    uint64_t id = upgrade_id_arg(L, 2);
    const char *meta = NULL;
    size_t meta_len = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        meta = lwsn_json_arg(L, 3, &meta_len, NULL);
    }
    size_t n = 0;
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        n = lwsn_rawlen(L, 4);
    }
    int64_t expires = 0;
    if (!lua_isnoneornil(L, 5)) {
        expires = ms_arg(L, 5);
        if (expires < 0)
            luaL_argerror(L, 5, "expires_at is Unix seconds >= 0");
        if (!expires)
            expires = 1;
    }
    const char **names = lua_newuserdata(L, (n ? n : 1) * sizeof *names);
    for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, 4, (int)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_argerror(L, 4, "channels are strings");
        names[i] = lua_tostring(L, -1); /* kept alive by the table */
        lua_pop(L, 1);
    }
    return done(L, srv, wsn_server_accept_upgrade(srv, id, meta, names, n, expires),
                "accept_upgrade");
}

/* reject_upgrade(id, status, body|nil) -> true | nil, err, code */
static int srv_reject_upgrade(lua_State *L) {
    wsn_server *srv = check_srv(L);
    uint64_t id = upgrade_id_arg(L, 2);
    int status = (int)luaL_checkinteger(L, 3);
    const char *body = luaL_optstring(L, 4, NULL);
    return done(L, srv, wsn_server_reject_upgrade(srv, id, status, body), "reject_upgrade");
}

static const char *const level_names[] = {"none", "error", "warn", "info",
                                          "debug"};

/* next_log() -> level ("error", "warn", "info", "debug"), line | nil when
 * none is queued. */
static int srv_next_log(lua_State *L) {
    wsn_server *srv = check_srv(L);
    char small[LOG_LINE_MAX];
    char *buf = small;
    size_t len = 0;
    wsn_log_level level = WSN_LOG_INFO;
    int rc = wsn_server_next_log(srv, &level, small, sizeof small, &len);
    if (rc == WSN_ENOSPC) { /* the line is kept: take it with room for it */
        buf = malloc(len + 1);
        if (!buf)
            return luaL_error(L, "out of memory");
        rc = wsn_server_next_log(srv, &level, buf, len + 1, &len);
    }
    if (rc == WSN_OK) {
        lua_pushstring(L, (level >= WSN_LOG_NONE && level <= WSN_LOG_DEBUG)
                              ? level_names[level]
                              : "info");
        lua_pushlstring(L, buf, len);
    }
    if (buf != small)
        free(buf);
    return rc == WSN_OK ? 2 : 0;
}

static int srv_logs_dropped(lua_State *L) {
    lwsn_pushint64(L, (int64_t)wsn_server_logs_dropped(check_srv(L)));
    return 1;
}

static int srv_room_fd(lua_State *L) {
    lua_pushinteger(L, wsn_server_room_fd(check_srv(L)));
    return 1;
}

static int srv_tostring(lua_State *L) {
    lwsn_server *u = luaL_checkudata(L, 1, LWSN_SERVER_MT);
    if (u->srv)
        lua_pushfstring(L, "wsnotify.core.server(port %d)",
                        wsn_server_port(u->srv));
    else
        lua_pushliteral(L, "wsnotify.core.server(closed)");
    return 1;
}

static const luaL_Reg server_methods[] = {
    {"start", srv_start},
    {"port", srv_port},
    {"shutdown", srv_shutdown},
    {"close", srv_close},
    {"closed", srv_closed},
    {"last_error", srv_last_error},
    {"subscribe", srv_subscribe},
    {"unsubscribe", srv_unsubscribe},
    {"publish", srv_publish},
    {"publish_with_type", srv_publish_with_type},
    {"publish_to_client", srv_publish_to_client},
    {"publish_to_client_id", srv_publish_to_client_id},
    {"broker_state", srv_broker_state},
    {"accept_upgrade", srv_accept_upgrade},
    {"reject_upgrade", srv_reject_upgrade},
    {"metrics", srv_metrics},
    {"metrics_text", srv_metrics_text},
    {"reload_tls", srv_reload_tls},
    {"send_raw", srv_send_raw},
    {"publish_wait", srv_publish_wait},
    {"publish_wait_with_type", srv_publish_wait_with_type},
    {"publish_wait_string", srv_publish_wait_string},
    {"cancel_pending_messages", srv_cancel_pending_messages},
    {"pending_batches", srv_pending_batches},
    {"connected_clients", srv_connected_clients},
    {"client_list", srv_client_list},
    {"event_fd", srv_event_fd},
    {"wait", srv_wait},
    {"take_events", srv_take_events},
    {"next_log", srv_next_log},
    {"logs_dropped", srv_logs_dropped},
    {"room_fd", srv_room_fd},
    {NULL, NULL}};

void lwsn_server_open(lua_State *L) {
    if (luaL_newmetatable(L, LWSN_SERVER_MT)) {
        lua_newtable(L);
        lwsn_setfuncs(L, server_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, srv_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, srv_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_new_server);
    lua_setfield(L, -2, "new_server");
}
