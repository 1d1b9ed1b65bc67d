/*
 * Client objects: a retained wsn_client handle in a userdata, with the
 * connection's fields (id, remote_address, subprotocol, connected) and its
 * metadata. The handle outlives the connection: metadata stays readable in
 * a disconnect handler, calls that need the connection return WSN_EGONE.
 */
#include <stdlib.h>
#include <string.h>

#include "lwsn.h"

void lwsn_client_push(lua_State *L, wsn_client *c) {
    lwsn_client *u = lua_newuserdata(L, sizeof *u);
    u->c = wsn_client_retain(c);
    luaL_getmetatable(L, LWSN_CLIENT_MT);
    lua_setmetatable(L, -2);
}

wsn_client *lwsn_client_check(lua_State *L, int idx) {
    lwsn_client *u = luaL_checkudata(L, idx, LWSN_CLIENT_MT);
    return u->c;
}

static const char *check_key(lua_State *L, int idx) {
    size_t len;
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_checktype(L, idx, LUA_TSTRING);
    const char *key = lua_tolstring(L, idx, &len);
    if (strlen(key) != len)
        luaL_argerror(L, idx, "key must not contain NUL");
    return key;
}

static int client_gc(lua_State *L) {
    lwsn_client *u = luaL_checkudata(L, 1, LWSN_CLIENT_MT);
    wsn_client_release(u->c);
    u->c = NULL;
    return 0;
}

static int client_tostring(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    lua_pushfstring(L, "wsnotify.client(%s)", wsn_client_id(c));
    return 1;
}

static int client_eq(lua_State *L) {
    lwsn_client *x = lua_touserdata(L, 1), *y = lua_touserdata(L, 2);
    lua_pushboolean(L, x && y && x->c == y->c);
    return 1;
}

static int done(lua_State *L, int rc, const char *what) {
    if (rc == WSN_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return lwsn_fail(L, rc, what, NULL);
}

/* set_metadata(key, value): strings, integers, other numbers and booleans
 * keep their type; tables (and wsnotify.null) are stored as JSON. Integers
 * are Lua 5.3+ integers, or on 5.1 and LuaJIT numbers with an integral
 * value (set_metadata_double stores 2.0 as a double there). */
static int client_set_metadata(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    const char *key = check_key(L, 2);
    int64_t i;
    int rc;
    switch (lua_type(L, 3)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, 3, &len);
        if (strlen(s) != len)
            return luaL_argerror(L, 3, "string values must not contain NUL "
                                       "(use set_metadata_bytes)");
        rc = wsn_client_set_string(c, key, s);
        break;
    }
    case LUA_TBOOLEAN:
        rc = wsn_client_set_bool(c, key, lua_toboolean(L, 3));
        break;
    case LUA_TNUMBER:
        if (lwsn_tointeger(L, 3, &i))
            rc = wsn_client_set_int(c, key, i);
        else
            rc = wsn_client_set_double(c, key, (double)lua_tonumber(L, 3));
        break;
    case LUA_TTABLE:
    case LUA_TLIGHTUSERDATA: {
        size_t len;
        const char *text = lwsn_json_arg(L, 3, &len, NULL);
        rc = wsn_client_set_json(c, key, text);
        break;
    }
    default:
        return luaL_argerror(L, 3, "a string, number, boolean or table");
    }
    return done(L, rc, "set_metadata");
}

static int client_set_metadata_bytes(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    const char *key = check_key(L, 2);
    size_t len;
    const char *data = luaL_checklstring(L, 3, &len);
    return done(L, wsn_client_set_bytes(c, key, data, len),
                "set_metadata_bytes");
}

static int client_set_metadata_double(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    const char *key = check_key(L, 2);
    double d = (double)luaL_checknumber(L, 3);
    return done(L, wsn_client_set_double(c, key, d), "set_metadata_double");
}

/* set_metadata_json(key, text): JSON text stored as it is (validated). */
static int client_set_metadata_json(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    const char *key = check_key(L, 2);
    size_t len;
    const char *text = luaL_checklstring(L, 3, &len);
    if (strlen(text) != len)
        return lwsn_fail(L, WSN_EJSON, "set_metadata_json", "NUL in text");
    return done(L, wsn_client_set_json(c, key, text), "set_metadata_json");
}

typedef int (*buf_getter)(wsn_client *, const char *, char *, size_t,
                          size_t *);

static int get_bytes(wsn_client *c, const char *key, char *buf, size_t cap,
                     size_t *len) {
    return wsn_client_get_bytes(c, key, buf, cap, len);
}

/* Pushes a string, bytes or JSON value; returns a wsn code. */
static int push_buffer(lua_State *L, wsn_client *c, const char *key,
                       wsn_value_type vt) {
    buf_getter get = vt == WSN_VALUE_STRING ? wsn_client_get_string
                     : vt == WSN_VALUE_JSON ? wsn_client_get_json
                                            : get_bytes;
    char small[256];
    size_t n = 0;
    int rc = get(c, key, small, sizeof small, &n);
    char *big = NULL;
    const char *text = small;
    /* The value may grow between the calls: ask again with its new size. */
    for (int tries = 0; rc == WSN_ENOSPC && tries < 8; tries++) {
        free(big);
        big = malloc(n + 1);
        if (!big)
            return WSN_ENOMEM;
        rc = get(c, key, big, n + 1, &n);
        text = big;
    }
    if (rc == WSN_OK) {
        if (vt == WSN_VALUE_JSON) {
            if (!lwsn_json_push(L, text, n))
                rc = WSN_EJSON;
        } else {
            lua_pushlstring(L, text, n);
        }
    }
    free(big);
    return rc;
}

/* get_metadata(key[, default]) -> the value; default (nil) when absent;
 * nil, err, code on a failure. */
static int client_get_metadata(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    const char *key = check_key(L, 2);
    int rc = WSN_ETYPE;
    /* A value replaced by another type between the two calls: retry. */
    for (int tries = 0; rc == WSN_ETYPE && tries < 8; tries++) {
        wsn_value_type vt;
        rc = wsn_client_get_type(c, key, &vt);
        if (rc != WSN_OK)
            break;
        switch (vt) {
        case WSN_VALUE_INT: {
            int64_t v;
            if ((rc = wsn_client_get_int(c, key, &v)) == WSN_OK)
                lwsn_pushint64(L, v);
            break;
        }
        case WSN_VALUE_DOUBLE: {
            double v;
            if ((rc = wsn_client_get_double(c, key, &v)) == WSN_OK)
                lua_pushnumber(L, (lua_Number)v);
            break;
        }
        case WSN_VALUE_BOOL: {
            int v;
            if ((rc = wsn_client_get_bool(c, key, &v)) == WSN_OK)
                lua_pushboolean(L, v);
            break;
        }
        case WSN_VALUE_STRING:
        case WSN_VALUE_BYTES:
        case WSN_VALUE_JSON:
            rc = push_buffer(L, c, key, vt);
            break;
        default:
            lua_pushnil(L);
            rc = WSN_OK;
        }
    }
    if (rc == WSN_OK)
        return 1;
    if (rc == WSN_ENOTFOUND) {
        lua_settop(L, 3);
        return 1;
    }
    return lwsn_fail(L, rc, "get_metadata", NULL);
}

/* delete_metadata(key) -> true if it was there, false if not. */
static int client_delete_metadata(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    int rc = wsn_client_delete(c, check_key(L, 2));
    if (rc == WSN_OK || rc == WSN_ENOTFOUND) {
        lua_pushboolean(L, rc == WSN_OK);
        return 1;
    }
    return lwsn_fail(L, rc, "delete_metadata", NULL);
}

/* set_expiry(unix seconds | nil) -> true | nil, err, code: when the
 * client is closed with 4001 (nil clears it). */
static int client_set_expiry(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    int64_t ms = 0;
    if (!lua_isnoneornil(L, 2)) {
        double s = (double)luaL_checknumber(L, 2) * 1000.0;
        if (!(s >= 0 && s < 9.2e18))
            return luaL_argerror(L, 2, "Unix seconds >= 0");
        ms = (int64_t)s;
        if (!ms)
            ms = 1;
    }
    int rc = wsn_client_set_expiry(c, ms);
    if (rc != WSN_OK)
        return lwsn_fail(L, rc, "set_expiry", NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int push_strlist(lua_State *L, wsn_strlist *list) {
    size_t n = wsn_strlist_count(list);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, wsn_strlist_get(list, i));
        lua_rawseti(L, -2, (int)i + 1);
    }
    wsn_strlist_free(list);
    return 1;
}

static int client_metadata_keys(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    wsn_strlist *list = NULL;
    int rc = wsn_client_metadata_keys(c, &list);
    if (rc != WSN_OK)
        return lwsn_fail(L, rc, "metadata_keys", NULL);
    return push_strlist(L, list);
}

static const luaL_Reg client_methods[] = {
    {"set_metadata", client_set_metadata},
    {"set_metadata_bytes", client_set_metadata_bytes},
    {"set_metadata_double", client_set_metadata_double},
    {"set_metadata_json", client_set_metadata_json},
    {"get_metadata", client_get_metadata},
    {"delete_metadata", client_delete_metadata},
    {"metadata_keys", client_metadata_keys},
    {"set_expiry", client_set_expiry},
    {NULL, NULL}};

/* Fields read from the handle; anything else is a method. */
static int client_index(lua_State *L) {
    wsn_client *c = lwsn_client_check(L, 1);
    const char *k = lua_tostring(L, 2);
    if (k) {
        if (strcmp(k, "id") == 0) {
            lua_pushstring(L, wsn_client_id(c));
            return 1;
        }
        if (strcmp(k, "remote_address") == 0) {
            lua_pushstring(L, wsn_client_remote_address(c));
            return 1;
        }
        if (strcmp(k, "subprotocol") == 0) {
            lua_pushstring(L, wsn_client_subprotocol(c));
            return 1;
        }
        if (strcmp(k, "connected") == 0) {
            lua_pushboolean(L, wsn_client_is_connected(c));
            return 1;
        }
    }
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    return 1;
}

void lwsn_client_open(lua_State *L) {
    if (luaL_newmetatable(L, LWSN_CLIENT_MT)) {
        lua_pushcfunction(L, client_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, client_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, client_eq);
        lua_setfield(L, -2, "__eq");
        lua_newtable(L);
        lwsn_setfuncs(L, client_methods);
        lua_pushcclosure(L, client_index, 1);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

int lwsn_push_strlist(lua_State *L, wsn_strlist *list) {
    return push_strlist(L, list);
}
