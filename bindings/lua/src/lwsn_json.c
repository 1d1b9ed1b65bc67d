/*
 * JSON between Lua values and text, so that publishing a Lua table needs
 * no Lua JSON library: written here in C, read with jansson (the library
 * the core itself parses with). The rules are lua-cjson's, so code moving between the two
 * behaves alike:
 *   - a table whose keys are exactly 1..n (n > 0) is an array;
 *   - a table carrying wsnotify.array_mt, and wsnotify.empty_array, are
 *     arrays even when empty; any other empty table is an object {};
 *   - other tables are objects and need string keys (numbers as keys are
 *     written as their decimal text, as cjson does);
 *   - wsnotify.null is JSON null; NaN and infinities are refused.
 * Decoded arrays carry array_mt, so an empty array survives a round trip.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwsn.h"

#define MAX_DEPTH 1000

/* Sentinels: addresses unique to this module. */
static const char null_key, empty_array_key, array_mt_key;

#define NULL_SENTINEL ((void *)&null_key)
#define EMPTY_ARRAY_SENTINEL ((void *)&empty_array_key)

static void push_array_mt(lua_State *L) {
    lua_pushlightuserdata(L, (void *)&array_mt_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

/* ---- Lua -> text ----------------------------------------------------- */

/* The text being written, owned by a userdata so that an error raised
 * half-way (a value JSON cannot hold, out of memory) frees it in __gc. */
typedef struct writer {
    char *p;
    size_t len, cap;
} writer;

static void put(lua_State *L, writer *w, const char *s, size_t n) {
    if (w->cap - w->len < n) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n)
            cap *= 2;
        char *p = realloc(w->p, cap);
        if (!p)
            luaL_error(L, "out of memory");
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

#define PUTS(L, w, lit) put(L, w, lit, sizeof lit - 1)

/* Length of the UTF-8 sequence at s (of at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t k;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        k = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        k = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        k = 4, min = 0x10000;
    else
        return 0;
    if (n < k)
        return 0;
    unsigned cp = c & (0x7F >> k);
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return k;
}

static void put_string(lua_State *L, writer *w, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    PUTS(L, w, "\"");
    size_t run = 0; /* start of the bytes copied as they are */
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = utf8_seq(u + i, n - i);
            if (!k)
                luaL_error(L, "cannot encode a string that is not UTF-8 as JSON");
            i += k;
            continue;
        }
        put(L, w, s + run, i - run);
        char esc[8];
        switch (c) {
        case '"': PUTS(L, w, "\\\""); break;
        case '\\': PUTS(L, w, "\\\\"); break;
        case '\n': PUTS(L, w, "\\n"); break;
        case '\r': PUTS(L, w, "\\r"); break;
        case '\t': PUTS(L, w, "\\t"); break;
        case '\b': PUTS(L, w, "\\b"); break;
        case '\f': PUTS(L, w, "\\f"); break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(L, w, esc, 6);
        }
        run = ++i;
    }
    put(L, w, s + run, n - run);
    PUTS(L, w, "\"");
}

static void put_number(lua_State *L, writer *w, int idx) {
    char buf[40];
    int64_t i;
    double d = (double)lua_tonumber(L, idx);
    if (isnan(d) || isinf(d))
        luaL_error(L, "cannot encode %s as JSON", isnan(d) ? "NaN" : "an infinity");
    if (lwsn_tointeger(L, idx, &i)) {
        snprintf(buf, sizeof buf, "%lld", (long long)i);
    } else {
        /* The shortest text that reads back as the same double. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
    }
    put(L, w, buf, strlen(buf));
}

static void encode(lua_State *L, writer *w, int idx, int depth);

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

static void encode_table(lua_State *L, writer *w, int idx, int depth) {
    long n = array_length(L, idx);
    if (n > 0 || (n == 0 && has_array_mt(L, idx))) {
        PUTS(L, w, "[");
        for (long i = 1; i <= n; i++) {
            if (i > 1)
                PUTS(L, w, ",");
            lua_rawgeti(L, idx, (int)i);
            encode(L, w, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
        PUTS(L, w, "]");
        return;
    }
    PUTS(L, w, "{");
    int first = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t klen;
        int kt = lua_type(L, -2);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
            luaL_error(L, "cannot encode a table key of type %s as JSON",
                       luaL_typename(L, -2));
        /* A copy: lua_tolstring on a number key itself would confuse
         * lua_next. */
        lua_pushvalue(L, -2);
        const char *key = lua_tolstring(L, -1, &klen);
        if (!first)
            PUTS(L, w, ",");
        first = 0;
        put_string(L, w, key, klen);
        PUTS(L, w, ":");
        encode(L, w, lua_gettop(L) - 1, depth + 1);
        lua_pop(L, 2);
    }
    PUTS(L, w, "}");
}

static void encode(lua_State *L, writer *w, int idx, int depth) {
    if (depth > MAX_DEPTH)
        luaL_error(L, "cannot encode JSON nested deeper than %d levels "
                      "(a table that contains itself?)", MAX_DEPTH);
    luaL_checkstack(L, 4, "JSON encode");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        PUTS(L, w, "null");
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            PUTS(L, w, "true");
        else
            PUTS(L, w, "false");
        break;
    case LUA_TNUMBER:
        put_number(L, w, idx);
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        put_string(L, w, s, len);
        break;
    }
    case LUA_TLIGHTUSERDATA: {
        void *p = lua_touserdata(L, idx);
        if (p == NULL_SENTINEL)
            PUTS(L, w, "null");
        else if (p == EMPTY_ARRAY_SENTINEL)
            PUTS(L, w, "[]");
        else
            luaL_error(L, "cannot encode a lightuserdata as JSON");
        break;
    }
    case LUA_TTABLE:
        encode_table(L, w, idx, depth);
        break;
    default:
        luaL_error(L, "cannot encode a %s as JSON", luaL_typename(L, idx));
    }
}

static int writer_gc(lua_State *L) {
    writer *w = lua_touserdata(L, 1);
    free(w->p);
    w->p = NULL;
    return 0;
}

/* Pushes the JSON text of the value at idx. */
static void push_json_text(lua_State *L, int idx) {
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    writer *w = lua_newuserdata(L, sizeof *w);
    memset(w, 0, sizeof *w);
    lua_newtable(L);
    lua_pushcfunction(L, writer_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    encode(L, w, idx, 0);
    lua_pushlstring(L, w->p, w->len);
    free(w->p);
    w->p = NULL;
    lua_remove(L, -2);
}

const char *lwsn_json_arg(lua_State *L, int idx, size_t *len) {
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_pushvalue(L, idx);
        return lua_tolstring(L, -1, len);
    }
    push_json_text(L, idx);
    return lua_tolstring(L, -1, len);
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
    push_json_text(L, 1);
    return 1;
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
                                    {NULL, NULL}};

void lwsn_json_open(lua_State *L) {
    lwsn_setfuncs(L, json_fns);
    lua_pushlightuserdata(L, NULL_SENTINEL);
    lua_setfield(L, -2, "null");
    lua_pushlightuserdata(L, EMPTY_ARRAY_SENTINEL);
    lua_setfield(L, -2, "empty_array");
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
