/*
 * Private header of the wsnotify Lua module (wsnotify.core): the userdata
 * layouts every file shares and the few shims that let one source build
 * against Lua 5.1 (and LuaJIT, which has its ABI), 5.2, 5.3 and 5.4.
 */
#ifndef LWSN_H
#define LWSN_H

#include <lauxlib.h>
#include <lua.h>

#include "wsnotify.h"

#define LWSN_SERVER_MT "wsnotify.core.server"
#define LWSN_CLIENT_MT "wsnotify.core.client"

struct lwsn_batch;

/* A server owned by Lua: NULL once closed (close() and __gc both free). */
typedef struct lwsn_server {
    wsn_server *srv;
    int flags; /* wsn_publish_flags every publish passes */
    struct lwsn_batch *batch; /* take_events' buffers, made on first use */
} lwsn_server;

/* One retained client handle: released by __gc, so a client object stays
 * usable (metadata readable, calls answering WSN_EGONE) as long as Lua
 * holds it. */
typedef struct lwsn_client {
    wsn_client *c;
} lwsn_client;

/* ---- Lua version shims ------------------------------------------------ */

#if LUA_VERSION_NUM < 502
#define lwsn_rawlen(L, i) lua_objlen(L, (i))
void lwsn_setfuncs(lua_State *L, const luaL_Reg *l);
#else
#define lwsn_rawlen(L, i) lua_rawlen(L, (i))
#define lwsn_setfuncs(L, l) luaL_setfuncs(L, (l), 0)
#endif

/* 1 and *out when the value at idx is a number with an integral value
 * that fits int64_t (5.3+: also any integer subtype). */
int lwsn_tointeger(lua_State *L, int idx, int64_t *out);
/* Pushes an int64 as an integer (5.3+) or a number (5.1/5.2/LuaJIT). */
void lwsn_pushint64(lua_State *L, int64_t v);

/* ---- errors ----------------------------------------------------------- */

/* Pushes nil, "<what>: <strerror> [WSN_X]" (plus ": detail" when given),
 * "WSN_X" and returns 3: the module's failure result. */
int lwsn_fail(lua_State *L, int rc, const char *what, const char *detail);
/* lwsn_fail with the server's last error text as detail. */
int lwsn_fail_srv(lua_State *L, int rc, const char *what, wsn_server *srv);

/* ---- values ----------------------------------------------------------- */

/* JSON text of the value at idx: a string is taken as JSON text as it is;
 * a received JSON message object is its payload; nil/boolean/number/
 * table/wsnotify.null are encoded by the core's writer (lua-cjson's rules:
 * a table whose keys are exactly 1..n is an array, the empty-array marker
 * is an empty array, other tables objects with string keys). Raises on a
 * value JSON cannot hold. One value is pushed (the text, or what holds
 * it); the text stays valid until the next encode in this Lua state.
 * *len gets its length; *trusted (may be NULL) is 1 when the text is the
 * core's own (WSN_PUBLISH_TRUSTED_JSON may be passed), 0 for a string. */
const char *lwsn_json_arg(lua_State *L, int idx, size_t *len, int *trusted);
/* Decodes JSON text and pushes the value (null: the null marker). Returns
 * 1, or pushes nothing and returns 0 when the text is not JSON. */
int lwsn_json_push(lua_State *L, const char *text, size_t len);
/* Registers json_encode, json_decode, json_get_string, null, empty_array
 * in the module table on top of the stack. */
void lwsn_json_open(lua_State *L);

/* ---- clients ---------------------------------------------------------- */

/* Pushes a new client object holding its own retain of c. */
void lwsn_client_push(lua_State *L, wsn_client *c);
/* The client at idx (raises for anything else). */
wsn_client *lwsn_client_check(lua_State *L, int idx);
void lwsn_client_open(lua_State *L);
/* Pushes the list's strings as an array and frees the list; returns 1. */
int lwsn_push_strlist(lua_State *L, wsn_strlist *list);

/* ---- server ----------------------------------------------------------- */

void lwsn_server_open(lua_State *L);

#endif
