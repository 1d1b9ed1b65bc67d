#!/usr/bin/env bash
# The Lua binding's tests, from a fresh Debian 12 machine:
#   1. installs what they need (idempotent: nothing when all is there);
#   2. builds libwsnotify and wsnotify.core for the Lua 5.1 ABI (LuaJIT,
#      5.1, nginx) and 5.4 with CMake in build-lua/ (bindings/lua/setup.sh),
#      and checks both install paths: cmake --install, luarocks make;
#   3. runs the busted specs on LuaJIT, Lua 5.4 and Lua 5.1 (TAP, counted);
#   4. runs the chat smoke tests (scripts/smoke_chat.py, smoke_msgpack.py,
#      smoke_auth_chat.py, smoke_broker_chat.py)
#      against examples/lua/chat.lua on LuaJIT and through nginx
#      (examples/openresty/run.sh: /ws handed to the engine; smoke_chat.py
#      once more with the proxy, WSN_WS_PROXY=1);
#   5. runs the OpenResty test (examples/openresty/test.py: nginx under a
#      temp prefix on loopback) when Debian has the nginx Lua module.
# Prints one line per step and "lua: N passed, N failed" last; exits
# non-zero on any failure.
#
#   bash bindings/lua/test.sh
#   WSN_LUA_SKIP_INSTALL=1 bash bindings/lua/test.sh   # no apt-get
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
PY="$(wsn_python)"
build="${WSN_LUA_BUILD_DIR:-$root/build-lua}"
logs="$build/logs"

passed=0
failed=0
steps_failed=0

say() { printf '[lua] %s\n' "$*"; }

# ---- 1, 2. packages and build -------------------------------------------------
mkdir -p "$logs"
setup_args=(--nginx)
[ "${WSN_LUA_SKIP_INSTALL:-0}" = 1 ] && setup_args+=(--no-install)
if ! bash "$here/setup.sh" "${setup_args[@]}" >"$logs/setup.log" 2>&1; then
    tail -n 30 "$logs/setup.log"
    say "setup failed (install or build)"
    echo "lua: 0 passed, 1 failed"
    exit 1
fi

# ---- install paths: cmake --install and luarocks make ------------------------
# Each counts one check: the module, installed, loads and starts a server.
check_install() {
    local what="$1" lua="$2" path="$3" cpath="$4" libdir="$5" out
    if out=$(LUA_PATH="$path;;" LUA_CPATH="$cpath;;" LD_LIBRARY_PATH="$libdir" \
        "$lua" -e 'local w = require "wsnotify"
                   local s = assert(w.new_server{host = "127.0.0.1", port = 0})
                   assert(s:start()); s:close(1)
                   print(package.searchpath and package.searchpath("wsnotify.core", package.cpath) or "ok")' 2>&1); then
        passed=$((passed + 1))
        say "$what ($lua): loads from ${out##*/lua/}"
    else
        failed=$((failed + 1))
        say "$what ($lua): FAIL $out"
    fi
}

inst="$build/install-check"
rm -rf "$inst"
if cmake --install "$build" --prefix "$inst/prefix" >"$logs/install.log" 2>&1; then
    libdir="$(cd "$inst/prefix" && find . -name 'libwsnotify.so.*' -printf '%h\n' | head -n 1)"
    libdir="$inst/prefix/${libdir#./}"
    lmod="${libdir}/lua"
    check_install "cmake --install" luajit "$inst/prefix/share/lua/5.1/?.lua" "$lmod/5.1/?.so" ""
    check_install "cmake --install" lua5.4 "$inst/prefix/share/lua/5.4/?.lua" "$lmod/5.4/?.so" ""
    for v in 5.1 5.4; do
        lua=lua$v
        [ "$v" = 5.1 ] && lua=luajit
        if (cd "$here" && luarocks --lua-version="$v" --tree="$inst/rocks" make \
                wsnotify-*.rockspec WSNOTIFY_DIR="$inst/prefix" \
                WSNOTIFY_LIBDIR="$libdir") >>"$logs/install.log" 2>&1; then
            check_install "luarocks make" "$lua" "$inst/rocks/share/lua/$v/?.lua" \
                "$inst/rocks/lib/lua/$v/?.so" "$libdir"
        else
            failed=$((failed + 1))
            tail -n 10 "$logs/install.log"
            say "luarocks make (Lua $v): FAIL"
        fi
        rm -rf "$here/src/"*.o "$here/wsnotify"
    done
else
    failed=$((failed + 1))
    tail -n 10 "$logs/install.log"
    say "cmake --install: FAIL"
fi

# ---- 3. specs on each runtime ---------------------------------------------------
# run_busted NAME INTERPRETER ABI: busted's TAP output, each "ok"/"not ok"
# counted; a run that reports no plan (crashed) counts as a failure.
run_busted() {
    local name="$1" lua="$2" abi="$3" log="$logs/busted-$1.tap" ok bad
    (cd "$here" && LUA_PATH="$here/?.lua;$here/?/init.lua;;" \
        LUA_CPATH="$build/lua/$abi/?.so;;" WSN_ROOT="$root" WSN_LUA="$lua" \
        timeout 600 "$lua" /usr/bin/busted -o TAP spec) >"$log" 2>&1
    local rc=$?
    ok=$(grep -c '^ok ' "$log")
    bad=$(grep -c '^not ok ' "$log")
    passed=$((passed + ok))
    failed=$((failed + bad))
    if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ] || ! grep -q '^1\.\.[0-9]' "$log"; then
        steps_failed=$((steps_failed + 1))
        grep -A 12 '^not ok ' "$log" | head -n 60
        [ "$bad" -eq 0 ] && tail -n 20 "$log"
        say "busted on $name: $ok passed, $bad failed (rc=$rc) FAIL"
    else
        say "busted on $name: $ok passed, $bad failed"
    fi
}

run_busted luajit luajit 5.1
run_busted lua5.4 lua5.4 5.4
run_busted lua5.1 lua5.1 5.1

# ---- 4. chat smoke tests ------------------------------------------------------------
# smoke SCRIPT PROGRAM NAME: scripts/SCRIPT against a chat example; its
# closing line is "<name>: N passed, N failed".
smoke() {
    local script="$1" program="$2" name="$3" log="$logs/$3-$1.log" line ok bad
    LUA_PATH="$here/?.lua;;" LUA_CPATH="$build/lua/5.1/?.so;;" \
        timeout 300 "$PY" "$root/scripts/$script" "$program" >"$log" 2>&1
    local rc=$?
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    ok=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')
    bad=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    ok=${ok:-0}
    bad=${bad:-0}
    passed=$((passed + ok))
    failed=$((failed + bad))
    if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
        steps_failed=$((steps_failed + 1))
        grep -E 'FAIL' "$log" | head -n 20
        tail -n 5 "$log"
        say "$script on $name: $ok passed, $bad failed (rc=$rc) FAIL"
    else
        say "$script on $name: $ok passed, $bad failed"
    fi
}

have_nginx=0
if command -v nginx >/dev/null &&
    [ -e /usr/share/nginx/modules-available/mod-http-lua.conf ]; then
    have_nginx=1
fi

if "$PY" -c 'import websockets, msgpack' 2>/dev/null; then
    smoke smoke_chat.py "$root/examples/lua/chat.lua" chat.lua
    smoke smoke_msgpack.py "$root/examples/lua/chat.lua" chat.lua
    smoke smoke_auth_chat.py "$root/examples/lua/chat.lua" chat.lua
    smoke smoke_tls_chat.py "$root/examples/lua/chat.lua" chat.lua
    # Three of it on one redis-server, killed and restarted (issue 19).
    smoke smoke_broker_chat.py "$root/examples/lua/chat.lua" chat.lua
    if [ "$have_nginx" = 1 ]; then
        smoke smoke_chat.py "$root/examples/openresty/run.sh" openresty
        smoke smoke_msgpack.py "$root/examples/openresty/run.sh" openresty
        smoke smoke_auth_chat.py "$root/examples/openresty/run.sh" openresty
        smoke smoke_broker_chat.py "$root/examples/openresty/run.sh" openresty
        # The same chat through nginx's proxy (run.sh --ws-proxy, for nginx
        # terminating TLS); every run above hands /ws to the engine.
        WSN_WS_PROXY=1 smoke smoke_chat.py "$root/examples/openresty/run.sh" openresty-proxy
    fi
else
    steps_failed=$((steps_failed + 1))
    say "chat smoke tests: $PY lacks websockets/msgpack (bash scripts/setup.sh) FAIL"
fi

# ---- 5. OpenResty ------------------------------------------------------------------
if [ -f "$root/examples/openresty/test.py" ]; then
    if [ "$have_nginx" = 1 ]; then
        smoke_or_log="$logs/openresty.log"
        WSN_LUA_CPATH="$build/lua/5.1/?.so" timeout 600 "$PY" \
            "$root/examples/openresty/test.py" >"$smoke_or_log" 2>&1
        rc=$?
        line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$smoke_or_log" | tail -n 1)
        ok=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) passed.*/\1/')
        bad=$(printf '%s' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        passed=$((passed + ${ok:-0}))
        failed=$((failed + ${bad:-0}))
        if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
            steps_failed=$((steps_failed + 1))
            grep -E 'FAIL' "$smoke_or_log" | head -n 20
            tail -n 15 "$smoke_or_log"
            say "openresty: ${ok:-0} passed, ${bad:-0} failed (rc=$rc) FAIL"
        else
            say "openresty: $ok passed, $bad failed"
        fi
    else
        say "openresty: SKIP (no nginx with the Lua module on this machine)"
    fi
fi

if [ "$steps_failed" -gt 0 ] && [ "$failed" -eq 0 ]; then
    failed=$steps_failed
fi
echo "lua: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$steps_failed" -eq 0 ]
