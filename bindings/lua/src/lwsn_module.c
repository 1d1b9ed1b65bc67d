/*
 * wsnotify.core: the Lua C module over the wsnotify C ABI. This file opens
 * the module and holds what belongs to no object: version, error texts,
 * the option table and the signal latch (the shims and the failure
 * results every file uses are lwsn_util.c). The Lua API users see is
 * wsnotify.lua, which builds on these functions.
 */
#define _GNU_SOURCE /* dladdr, RTLD_NODELETE */

#include <dlfcn.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "lwsn.h"

/* ---- module functions --------------------------------------------------- */

static int l_version(lua_State *L) {
    lua_pushinteger(L, wsn_version());
    lua_pushstring(L, wsn_version_string());
    return 2;
}

static int l_strerror(lua_State *L) {
    lua_pushstring(L, wsn_strerror((int)luaL_checkinteger(L, 1)));
    return 1;
}

static int l_err_name(lua_State *L) {
    lua_pushstring(L, wsn_err_name((int)luaL_checkinteger(L, 1)));
    return 1;
}

static const char *const opttype_names[] = {"?", "int", "bool", "string",
                                            "duration"};

static const char *opttype_name(wsn_option_type t) {
    return (t >= WSN_OPTTYPE_INT && t <= WSN_OPTTYPE_DURATION_MS)
               ? opttype_names[t]
               : "?";
}

/* options() -> array of {name=, type=, default=, min=, max=} in id order,
 * durations in seconds: the core's own table, so the binding keeps none. */
static int l_options(lua_State *L) {
    wsn_options *o = wsn_options_new();
    if (!o)
        return luaL_error(L, "out of memory");
    lua_newtable(L);
    int n = 0;
    wsn_option_type t;
    /* Ids may have gaps: stop after 32 unknown in a row (wsnotify.h). */
    for (int id = 1, unknown = 0; unknown < 32; id++) {
        if (wsn_option_type_of((wsn_option)id, &t) != 0) {
            unknown++;
            continue;
        }
        unknown = 0;
        lua_createtable(L, 0, 5);
        lua_pushstring(L, wsn_option_name((wsn_option)id));
        lua_setfield(L, -2, "name");
        lua_pushstring(L, opttype_name(t));
        lua_setfield(L, -2, "type");
        if (t == WSN_OPTTYPE_STRING) {
            const char *s = "";
            wsn_options_get_string(o, (wsn_option)id, &s);
            lua_pushstring(L, s);
            lua_setfield(L, -2, "default");
        } else {
            int64_t v = 0, lo = 0, hi = 0;
            wsn_options_get_int(o, (wsn_option)id, &v);
            wsn_option_bounds((wsn_option)id, &lo, &hi);
            double scale = t == WSN_OPTTYPE_DURATION_MS ? 1000.0 : 1.0;
            if (t == WSN_OPTTYPE_BOOL)
                lua_pushboolean(L, v != 0);
            else if (t == WSN_OPTTYPE_DURATION_MS)
                lua_pushnumber(L, (lua_Number)v / scale);
            else
                lwsn_pushint64(L, v);
            lua_setfield(L, -2, "default");
            if (t != WSN_OPTTYPE_BOOL) {
                lua_pushnumber(L, (lua_Number)lo / scale);
                lua_setfield(L, -2, "min");
                lua_pushnumber(L, (lua_Number)hi / scale);
                lua_setfield(L, -2, "max");
            }
        }
        lua_rawseti(L, -2, ++n);
    }
    wsn_options_free(o);
    return 1;
}

/* ---- handoff ------------------------------------------------------------- */

/* handoff(path, fd, head) -> true | nil, err, code: wsn_handoff(), the
 * front's side of an engine's handoff_socket (an nginx worker giving the
 * engine a connection it accepted). Needs no server in this process. On
 * true the engine holds the socket: the caller closes its own descriptor
 * without writing to it. Types are checked strictly (a number is no path,
 * a string no fd): a wrong one is the caller's bug, not a failure. */
static int l_handoff(lua_State *L) {
    size_t head_len;
    int64_t fd;
    luaL_checktype(L, 1, LUA_TSTRING);
    if (lua_type(L, 2) != LUA_TNUMBER || !lwsn_tointeger(L, 2, &fd))
        return luaL_argerror(L, 2, "an integer file descriptor expected");
    luaL_checktype(L, 3, LUA_TSTRING);
    const char *path = lua_tostring(L, 1);
    const char *head = lua_tolstring(L, 3, &head_len);
    /* Out of int's range is no descriptor: the core's WSN_EINVAL. */
    int rc = wsn_handoff(path, fd < 0 || fd > INT_MAX ? -1 : (int)fd, head,
                         head_len);
    if (rc != WSN_OK)
        return lwsn_fail(L, rc, "handoff", NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- signals -------------------------------------------------------------- */

/* A standalone Lua program has no portable way to catch SIGINT/SIGTERM
 * (lua-posix's handlers run from a debug hook, which LuaJIT's compiled
 * code never calls). The latch is process-wide because signals are; the
 * loop in wsnotify.lua reads it between its bounded waits. */
static volatile sig_atomic_t caught_signal;

static void on_signal(int sig) { caught_signal = sig; }

/* catch_signals() installs the latch for SIGINT and SIGTERM. */
static int l_catch_signals(lua_State *L) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return luaL_error(L, "sigaction failed");
    lua_pushboolean(L, 1);
    return 1;
}

/* caught_signal() -> "SIGINT" / "SIGTERM" once one arrived, else nil. The
 * default action comes back, so a second signal ends a stuck process. */
static int l_caught_signal(lua_State *L) {
    int sig = caught_signal;
    if (!sig)
        return 0;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    lua_pushstring(L, sig == SIGINT ? "SIGINT" : "SIGTERM");
    return 1;
}

static const luaL_Reg module_fns[] = {
    {"version", l_version},
    {"strerror", l_strerror},
    {"err_name", l_err_name},
    {"options", l_options},
    {"handoff", l_handoff},
    {"catch_signals", l_catch_signals},
    {"caught_signal", l_caught_signal},
    {NULL, NULL}};

int luaopen_wsnotify_core(lua_State *L);

int luaopen_wsnotify_core(lua_State *L) {
    /* A library of another major version has another ABI. */
    if (wsn_version() / 10000 != WSN_VERSION_MAJOR)
        return luaL_error(L, "wsnotify: libwsnotify %s loaded, this module "
                             "needs major version %d",
                          wsn_version_string(), WSN_VERSION_MAJOR);
    /* Lua unloads C modules when its state closes, and the order in which
     * it runs finalizers then is not ours to choose: a server's __gc could
     * come after this code (and libwsnotify with it) is gone. Pinning the
     * module keeps it loaded for the life of the process. */
    Dl_info self;
    if (dladdr((void *)luaopen_wsnotify_core, &self) && self.dli_fname)
        (void)dlopen(self.dli_fname, RTLD_NOW | RTLD_NODELETE);
    lua_newtable(L);
    lwsn_setfuncs(L, module_fns);
    lwsn_json_open(L);
    lwsn_client_open(L);
    lwsn_server_open(L);
    return 1;
}
