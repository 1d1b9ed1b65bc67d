/*
 * JSON between Lua values and text, so that publishing a Lua table needs
 * no Lua JSON library. Lua values are written through the core's JSON
 * writer (wsn_json_writer: escaping, UTF-8, number text and the nesting
 * bound are the core's, and its text is published with
 * WSN_PUBLISH_TRUSTED_JSON); this file decides only what each Lua value
 * is, by lua-cjson's rules, so code moving between the two behaves alike:
 *   - a table whose keys are exactly 1..n (n > 0) is an array;
 *   - a table carrying wsnotify.array_mt, and wsnotify.empty_array, are
 *     arrays even when empty; any other empty table is an object {};
 *   - other tables are objects and need string keys (numbers as keys are
 *     written as their decimal text, as cjson does);
 *   - wsnotify.null is JSON null; functions, userdata, threads and
 *     boolean keys are refused here, what the core's writer refuses (a
 *     string that is not UTF-8, NaN and infinities, nesting deeper than
 *     WSN_JSON_MAX_DEPTH) is raised with its code.
 * A received JSON message object stands for its payload (the event's
 * text, checked by the core on the way in). Text is read with jansson (the
 * library the core parses with); decoded arrays carry array_mt, so an
 * empty array survives a round trip.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwsn.h"

/* Sentinels: addresses unique to this module. */
static const char null_key, empty_array_key, array_mt_key, writer_key, message_mt_key,
    message_raw_key;

#define NULL_SENTINEL ((void *)&null_key)
#define EMPTY_ARRAY_SENTINEL ((void *)&empty_array_key)

static void push_array_mt(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

/* ---- Lua -> text ----------------------------------------------------- */

/* The core's writer, one per Lua state (registry), reset for each value:
 * the walk below only decides what each Lua value is; escaping, UTF-8,
 * number text and the nesting bound are the core's. The walk cannot run
 * Lua code (no metamethod is called), so one writer is never used by two
 * walks at once. */
typedef struct writer_box {
    wsn_json_writer *w;
    size_t last_len; /* the previous value's text */
} writer_box;

/* A writer keeps the memory of the biggest value it wrote; after one over
 * this it is made anew, so one large value does not stay pinned. */
#define WRITER_KEEP_BYTES (1u << 20)

static int writer_box_gc(lua_State *L) {
    writer_box *b = lua_touserdata(L, 1);
    if (b->w) {
        wsn_json_writer_free(b->w);
        b->w = NULL;
    }
    return 0;
}

/* Pushes the state's writer box (made on first use) and returns the
 * writer, reset. */
static wsn_json_writer *push_writer(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&writer_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    writer_box *b = lua_touserdata(L, -1);
    if (!b) {
        lua_pop(L, 1);
        b = lua_newuserdata(L, sizeof *b);
        b->w = NULL;
        b->last_len = 0;
        lua_newtable(L);
        lua_pushcfunction(L, writer_box_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        b->w = wsn_json_writer_new();
        if (!b->w)
            luaL_error(L, "out of memory");
        lua_pushlightuserdata(L, (void *)&writer_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    if (b->last_len > WRITER_KEEP_BYTES) {
        wsn_json_writer *fresh = wsn_json_writer_new();
        if (!fresh)
            luaL_error(L, "out of memory");
        wsn_json_writer_free(b->w);
        b->w = fresh;
    }
    b->last_len = 0;
    wsn_json_writer_reset(b->w);
    return b->w;
}

/* Raises for a value the core's writer refused: what it was, and the
 * core's code (README: "Tables are encoded by the core"). */
static void check(lua_State *L, int rc, const char *what) {
    if (rc == WSN_OK)
        return;
    if (rc == WSN_ENOMEM)
        luaL_error(L, "out of memory");
    luaL_error(L, "cannot encode %s as JSON [%s]", what, wsn_err_name(rc));
}

static void encode_string(lua_State *L, wsn_json_writer *w, int idx, int key) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    int rc = key ? wsn_json_key(w, s, len) : wsn_json_string(w, s, len);
    check(L, rc, key ? "a table key that is not UTF-8" : "a string that is not UTF-8");
}

static void encode_number(lua_State *L, wsn_json_writer *w, int idx) {
    int64_t i;
    double d = (double)lua_tonumber(L, idx);
    if (lwsn_tointeger(L, idx, &i)) {
        check(L, wsn_json_integer(w, i), "a number");
        return;
    }
    int rc = wsn_json_number(w, d);
    if (rc == WSN_EINVAL)
        check(L, rc, isnan(d) ? "NaN" : "an infinity");
    check(L, rc, "a number");
}

static void encode(lua_State *L, wsn_json_writer *w, int idx);

/* Positive integer keys 1..n and nothing else: n; else -1. */
static long array_length(lua_State *L, int idx) {
    long count = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int64_t k;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER || !lwsn_tointeger(L, -1, &k) ||
            k < 1) {
            lua_pop(L, 1);
            return -1;
        }
        if (k > max)
            max = (long)k;
        count++;
    }
    return max == count ? count : -1;
}

static int has_array_mt(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx))
        return 0;
    push_array_mt(L);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

/* The core refuses the level past WSN_JSON_MAX_DEPTH; a table that
 * contains itself meets that bound too. */
static void check_open(lua_State *L, int rc) {
    if (rc == WSN_ELIMIT)
        luaL_error(L, "cannot encode JSON nested deeper than %d levels "
                      "(a table that contains itself?) [WSN_ELIMIT]", WSN_JSON_MAX_DEPTH);
    check(L, rc, "a table");
}

static void encode_table(lua_State *L, wsn_json_writer *w, int idx) {
    long n = array_length(L, idx);
    if (n > 0 || (n == 0 && has_array_mt(L, idx))) {
        check_open(L, wsn_json_begin_array(w));
        for (long i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (int)i);
            encode(L, w, lua_gettop(L));
            lua_pop(L, 1);
        }
        check(L, wsn_json_end_array(w), "a table");
        return;
    }
    check_open(L, wsn_json_begin_object(w));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
            luaL_error(L, "cannot encode a table key of type %s as JSON",
                       luaL_typename(L, -2));
        /* A copy: lua_tolstring on a number key itself would confuse
         * lua_next. */
        lua_pushvalue(L, -2);
        encode_string(L, w, lua_gettop(L), 1);
        encode(L, w, lua_gettop(L) - 1);
        lua_pop(L, 2);
    }
    check(L, wsn_json_end_object(w), "a table");
}

static void encode(lua_State *L, wsn_json_writer *w, int idx) {
    luaL_checkstack(L, 4, "JSON encode");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        check(L, wsn_json_null(w), "nil");
        break;
    case LUA_TBOOLEAN:
        check(L, wsn_json_bool(w, lua_toboolean(L, idx)), "a boolean");
        break;
    case LUA_TNUMBER:
        encode_number(L, w, idx);
        break;
    case LUA_TSTRING:
        encode_string(L, w, idx, 0);
        break;
    case LUA_TLIGHTUSERDATA: {
        void *p = lua_touserdata(L, idx);
        if (p == NULL_SENTINEL) {
            check(L, wsn_json_null(w), "null");
        } else if (p == EMPTY_ARRAY_SENTINEL) {
            check_open(L, wsn_json_begin_array(w));
            check(L, wsn_json_end_array(w), "empty_array");
        } else {
            luaL_error(L, "cannot encode a lightuserdata as JSON");
        }
        break;
    }
    case LUA_TTABLE:
        encode_table(L, w, idx);
        break;
    default:
        luaL_error(L, "cannot encode a %s as JSON", luaL_typename(L, idx));
    }
}

/* Encodes the value at idx with the state's writer; pushes the writer's
 * box (one value on the stack, as lwsn_json_arg promises) and returns the
 * text, valid until the next encode in this state. */
static const char *encode_value(lua_State *L, int idx, size_t *len) {
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    wsn_json_writer *w = push_writer(L);
    encode(L, w, idx);
    const char *text = wsn_json_writer_text(w, len);
    if (!text) /* every call above succeeded: a bug, not a value */
        luaL_error(L, "cannot encode the value as JSON [%s]",
                   wsn_err_name(wsn_json_writer_error(w)));
    ((writer_box *)lua_touserdata(L, -1))->last_len = *len;
    return text;
}

/* A received message object (the message_mt of wsnotify.lua, which it
 * registers with set_message_mt) of type json stands for its payload.
 * *trusted (may be NULL) is 1 while msg.raw is still the event's text,
 * which the core checked on the way in: wsnotify.lua keeps a second
 * reference under message_raw_key, so a raw the application replaced is
 * checked like any string. */
static const char *message_payload(lua_State *L, int idx, size_t *len, int *trusted) {
    if (!lua_getmetatable(L, idx))
        return NULL;
    lua_pushlightuserdata(L, (void *)&message_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    int is_msg = !lua_isnil(L, -1) && lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!is_msg)
        return NULL;
    lua_pushliteral(L, "type");
    lua_rawget(L, idx);
    int json = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "json") == 0;
    lua_pop(L, 1);
    if (!json)
        luaL_error(L, "only a JSON message stands for its payload; pass msg.raw "
                      "with its type (publish_with_type) instead");
    lua_pushlightuserdata(L, (void *)&message_raw_key);
    lua_rawget(L, idx);
    lua_pushliteral(L, "raw");
    lua_rawget(L, idx);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "a message without its raw text");
    int core = lua_rawequal(L, -1, -2);
    lua_remove(L, -2);
    if (trusted)
        *trusted = core;
    const char *text = lua_tolstring(L, -1, len);
    if (*len == 0 && core) { /* a JSON message without a value: null */
        lua_pop(L, 1);
        lua_pushliteral(L, "null");
        text = lua_tolstring(L, -1, len);
    }
    return text;
}

const char *lwsn_json_arg(lua_State *L, int idx, size_t *len, int *trusted) {
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    if (trusted)
        *trusted = 0;
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_pushvalue(L, idx);
        return lua_tolstring(L, -1, len);
    }
    if (lua_type(L, idx) == LUA_TTABLE) {
        const char *text = message_payload(L, idx, len, trusted);
        if (text)
            return text;
    }
    if (trusted)
        *trusted = 1;
    return encode_value(L, idx, len);
}

/* ---- jansson -> Lua --------------------------------------------------- */

static void push_value(lua_State *L, json_t *v) {
    luaL_checkstack(L, 4, "JSON decode");
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *item;
        lua_createtable(L, 0, (int)json_object_size(v));
        json_object_foreach(v, key, item) {
            push_value(L, item);
            lua_setfield(L, -2, key);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *item;
        lua_createtable(L, (int)json_array_size(v), 0);
        json_array_foreach(v, i, item) {
            push_value(L, item);
            lua_rawseti(L, -2, (int)i + 1);
        }
        push_array_mt(L);
        lua_setmetatable(L, -2);
        break;
    }
    case JSON_STRING:
        lua_pushlstring(L, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        lwsn_pushint64(L, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        lua_pushnumber(L, (lua_Number)json_real_value(v));
        break;
    case JSON_TRUE:
        lua_pushboolean(L, 1);
        break;
    case JSON_FALSE:
        lua_pushboolean(L, 0);
        break;
    default:
        lua_pushlightuserdata(L, NULL_SENTINEL);
        break;
    }
}

static int json_holder_gc(lua_State *L) {
    json_t **h = lua_touserdata(L, 1);
    if (h && *h) {
        json_decref(*h);
        *h = NULL;
    }
    return 0;
}

int lwsn_json_push(lua_State *L, const char *text, size_t len) {
    json_error_t err;
    size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL;
    json_t *v = json_loadb(text, len, flags, &err);
    if (!v) /* integers beyond 64 bits: as numbers, like lua-cjson */
        v = json_loadb(text, len, flags | JSON_DECODE_INT_AS_REAL, &err);
    if (!v)
        return 0;
    /* Owned by a holder like the encoder's: pushing may raise. */
    json_t **h = lua_newuserdata(L, sizeof *h);
    *h = v;
    lua_newtable(L);
    lua_pushcfunction(L, json_holder_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    push_value(L, v);
    json_decref(v);
    *h = NULL;
    lua_remove(L, -2);
    return 1;
}

/* ---- module functions --------------------------------------------------- */

/* json_encode(value) -> text (raises for what JSON cannot hold). */
static int l_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    size_t len;
    const char *text = NULL;
    int core = 1;
    if (lua_type(L, 1) == LUA_TTABLE)
        text = message_payload(L, 1, &len, &core);
    if (text) {
        if (!core && wsn_json_validate(text, len) != WSN_OK)
            luaL_error(L, "msg.raw was replaced by text that is not JSON");
        return 1; /* the payload, pushed */
    }
    text = encode_value(L, 1, &len);
    lua_pushlstring(L, text, len);
    return 1;
}

/* set_message_mt(mt): the metatable of received messages (wsnotify.lua). */
static int l_set_message_mt(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushlightuserdata(L, (void *)&message_mt_key);
    lua_pushvalue(L, 1);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

/* json_decode(text) -> value | nil, err, "WSN_EJSON" */
static int l_json_decode(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    if (lwsn_json_push(L, text, len))
        return 1;
    return lwsn_fail(L, WSN_EJSON, "json_decode", NULL);
}

/* json_get_string(text, key) -> string | nil, err, code: one top-level
 * string member read without decoding the document. */
static int l_json_get_string(lua_State *L) {
    size_t len, klen, n = 0;
    const char *text = luaL_checklstring(L, 1, &len);
    const char *key = luaL_checklstring(L, 2, &klen);
    if (strlen(key) != klen)
        return luaL_argerror(L, 2, "key must not contain NUL");
    char small[256];
    int rc = wsn_json_get_string(text, len, key, small, sizeof small, &n);
    if (rc == WSN_OK) {
        lua_pushlstring(L, small, n);
        return 1;
    }
    if (rc == WSN_ENOSPC) {
        /* Decoding never lengthens a string: the text's size is enough. */
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        char *out = luaL_prepbuffer(&b);
        if (n + 1 <= LUAL_BUFFERSIZE) {
            rc = wsn_json_get_string(text, len, key, out, n + 1, &n);
        } else {
            char *big = malloc(n + 1);
            if (!big)
                return luaL_error(L, "out of memory");
            rc = wsn_json_get_string(text, len, key, big, n + 1, &n);
            if (rc == WSN_OK)
                lua_pushlstring(L, big, n);
            free(big);
            return rc == WSN_OK ? 1 : lwsn_fail(L, rc, "json_get_string", NULL);
        }
        if (rc == WSN_OK) {
            luaL_addsize(&b, n);
            luaL_pushresult(&b);
            return 1;
        }
    }
    return lwsn_fail(L, rc, "json_get_string", NULL);
}

static const luaL_Reg json_fns[] = {{"json_encode", l_json_encode},
                                    {"json_decode", l_json_decode},
                                    {"json_get_string", l_json_get_string},
                                    {"set_message_mt", l_set_message_mt},
                                    {NULL, NULL}};

void lwsn_json_open(lua_State *L) {
    lwsn_setfuncs(L, json_fns);
    lua_pushlightuserdata(L, NULL_SENTINEL);
    lua_setfield(L, -2, "null");
    lua_pushlightuserdata(L, EMPTY_ARRAY_SENTINEL);
    lua_setfield(L, -2, "empty_array");
    lua_pushlightuserdata(L, (void *)&message_raw_key);
    lua_setfield(L, -2, "message_raw_key");
    /* array_mt: one table per Lua state, kept in the registry. */
    lua_pushlightuserdata(L, (void *)&array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushstring(L, "array");
        lua_setfield(L, -2, "__jsontype");
        lua_pushlightuserdata(L, (void *)&array_mt_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
    }
    lua_setfield(L, -2, "array_mt");
}
