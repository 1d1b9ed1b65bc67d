#!/usr/bin/env bash
# Builds wsnotify and runs a chat example on http://localhost:8080 (open
# it in two browser tabs). The first argument picks the binding (c, the
# default, python, node, lua or openresty); the rest go to the server:
#
#   bash scripts/run-chat.sh                    # C, 127.0.0.1:8080
#   bash scripts/run-chat.sh --port 9000
#   bash scripts/run-chat.sh node --port 8080   # examples/node/chat.js
#   bash scripts/run-chat.sh python --host 0.0.0.0
#   bash scripts/run-chat.sh lua --port 8080        # examples/lua, LuaJIT
#   bash scripts/run-chat.sh openresty --port 8080  # examples/openresty, nginx
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

binding=c
case "${1:-}" in
    c|python|node|lua|openresty) binding="$1"; shift ;;
esac

case "$binding" in
    c)
        WSN_SETUP_SKIP_PYTHON=1 bash "$here/setup.sh"
        build="${WSN_BUILD_DIR:-$root/build}"
        cmake -S "$root" -B "$build" -DWSN_BUILD_EXAMPLES=ON >/dev/null
        cmake --build "$build" --target wsnotify-chat -j "$(wsn_jobs)"
        exec "$build/examples/wsnotify-chat" --static-dir "$root/examples/chat" "$@"
        ;;
    python)
        bash "$here/setup.sh"
        py="$(wsn_python)"
        "$py" -c 'import wsnotify' 2>/dev/null || "$py" -m pip install -q "$root/python"
        exec "$py" "$root/examples/python/chat.py" --static-dir "$root/examples/chat" "$@"
        ;;
    node)
        WSN_SETUP_SKIP_PYTHON=1 bash "$here/setup.sh"
        command -v node >/dev/null || apt-get install -y nodejs npm
        # builds bindings/node/build/wsnotify.node (nothing to do when current)
        (cd "$root/bindings/node" && node build.js >/dev/null)
        exec node "$root/examples/node/chat.js" --static-dir "$root/examples/chat" "$@"
        ;;
    lua)
        # installs the Lua runtimes if missing and builds wsnotify.core
        bash "$root/bindings/lua/setup.sh"
        lbuild="${WSN_LUA_BUILD_DIR:-$root/build-lua}"
        LUA_PATH="$root/bindings/lua/?.lua;${LUA_PATH:-;}" \
            LUA_CPATH="$lbuild/lua/5.1/?.so;${LUA_CPATH:-;}" \
            exec luajit "$root/examples/lua/chat.lua" "$@"
        ;;
    openresty)
        bash "$root/bindings/lua/setup.sh" --nginx
        exec bash "$root/examples/openresty/run.sh" "$@"
        ;;
esac
