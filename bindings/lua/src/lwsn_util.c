/*
 * What every file of wsnotify.core uses and that uses nothing of theirs:
 * the Lua version shims and the module's failure result. Apart from
 * lwsn_module.c, which opens the other files, so that no two files call
 * each other (one-way: module -> server -> client -> json -> util).
 */
#include <math.h>

#include "lwsn.h"

/* ---- shims -------------------------------------------------------------- */

#if LUA_VERSION_NUM < 502
void lwsn_setfuncs(lua_State *L, const luaL_Reg *l) {
    for (; l->name; l++) {
        lua_pushcfunction(L, l->func);
        lua_setfield(L, -2, l->name);
    }
}
#endif

int lwsn_tointeger(lua_State *L, int idx, int64_t *out) {
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        *out = (int64_t)lua_tointeger(L, idx);
        return 1;
    }
#endif
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    double d = (double)lua_tonumber(L, idx);
    /* 2^63 is exact in a double; anything at or above it does not fit. */
    if (d != floor(d) || d < -9223372036854775808.0 ||
        d >= 9223372036854775808.0)
        return 0;
    *out = (int64_t)d;
    return 1;
}

void lwsn_pushint64(lua_State *L, int64_t v) {
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(L, (lua_Integer)v);
#else
    lua_pushnumber(L, (lua_Number)v);
#endif
}

/* ---- errors ------------------------------------------------------------- */

int lwsn_fail(lua_State *L, int rc, const char *what, const char *detail) {
    lua_pushnil(L);
    if (detail && *detail)
        lua_pushfstring(L, "%s: %s: %s [%s]", what, wsn_strerror(rc), detail,
                        wsn_err_name(rc));
    else
        lua_pushfstring(L, "%s: %s [%s]", what, wsn_strerror(rc),
                        wsn_err_name(rc));
    lua_pushstring(L, wsn_err_name(rc));
    return 3;
}

int lwsn_fail_srv(lua_State *L, int rc, const char *what, wsn_server *srv) {
    char detail[512] = "";
    /* Codes that say it all leave the text unchanged: showing it would
     * repeat an older failure. */
    if (srv && (rc == WSN_EINVAL || rc == WSN_EJSON || rc == WSN_ELIMIT ||
                rc == WSN_EIO || rc == WSN_ERANGE))
        wsn_server_last_error(srv, detail, sizeof detail);
    return lwsn_fail(L, rc, what, detail);
}

