-- luarocks make (from bindings/lua, offline: the sources are here) builds
-- wsnotify.core against an installed libwsnotify (cmake --install), e.g.
--   luarocks --lua-version=5.1 make WSNOTIFY_DIR=/usr/local
-- or against a build tree of this checkout:
--   luarocks make WSNOTIFY_INCDIR=../../include WSNOTIFY_LIBDIR=../../build
rockspec_format = "3.0"
package = "wsnotify"
version = "0.3.0-1"
source = {
   url = "git+file://../..",
}
description = {
   summary = "Real-time WebSocket notifications: channels, pub/sub, batching",
   detailed = [[
Lua binding of wsnotify, a WebSocket notification engine in C: channel
pub/sub to browsers, batched publishing, per-client metadata. The engine
runs on threads of its own; its events are pulled and handled on the Lua
thread. Lua 5.1, LuaJIT (and nginx's lua module), 5.4.]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1",
}
external_dependencies = {
   WSNOTIFY = { header = "wsnotify.h", library = "wsnotify" },
   JANSSON = { header = "jansson.h", library = "jansson" },
}
build = {
   type = "builtin",
   modules = {
      wsnotify = "wsnotify.lua",
      ["wsnotify.core"] = {
         sources = { "src/lwsn_module.c", "src/lwsn_util.c", "src/lwsn_json.c",
                     "src/lwsn_client.c", "src/lwsn_server.c" },
         libraries = { "wsnotify", "jansson", "dl" },
         incdirs = { "$(WSNOTIFY_INCDIR)", "$(JANSSON_INCDIR)" },
         libdirs = { "$(WSNOTIFY_LIBDIR)", "$(JANSSON_LIBDIR)" },
      },
   },
}
