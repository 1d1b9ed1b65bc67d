#!/usr/bin/env bash
# Makes the Lua binding usable from this checkout on Debian 12, idempotently:
# installs the Lua runtimes and test tools (and, with --nginx, nginx with
# its Lua module) when missing, then builds libwsnotify and wsnotify.core
# for the Lua 5.1 ABI (LuaJIT, 5.1, nginx) and 5.4 with the repository's
# CMake in $WSN_LUA_BUILD_DIR (default build-lua/): the modules land in
# build-lua/lua/<abi>/wsnotify/core.so.
#
#   bash bindings/lua/setup.sh [--nginx] [--no-install]
#
# Afterwards: LUA_PATH="bindings/lua/?.lua;;"
#             LUA_CPATH="build-lua/lua/5.1/?.so;;" luajit ...
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
build="${WSN_LUA_BUILD_DIR:-$root/build-lua}"

nginx=0
install=1
for a in "$@"; do
    case "$a" in
        --nginx) nginx=1 ;;
        --no-install) install=0 ;;
        *) echo "setup.sh: unknown argument '$a'" >&2; exit 2 ;;
    esac
done

say() { printf '[lua-setup] %s\n' "$*" >&2; }

APT_PACKAGES=(luajit2 libluajit2-5.1-dev lua5.4 liblua5.4-dev lua5.1
              liblua5.1-0-dev lua-busted lua-socket luarocks pkg-config)
NGINX_PACKAGES=(nginx libnginx-mod-http-lua lua-resty-core)

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing_of() {
    local p
    for p in "$@"; do pkg_installed "$p" || printf '%s\n' "$p"; done
}

apt_install() {
    [ "$#" -eq 0 ] && return 0
    say "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ "$install" = 1 ]; then
    WSN_SETUP_SKIP_PYTHON=1 bash "$root/scripts/setup.sh" >/dev/null
    mapfile -t missing < <(missing_of "${APT_PACKAGES[@]}")
    apt_install "${missing[@]}"
    if [ "$nginx" = 1 ]; then
        mapfile -t missing < <(missing_of "${NGINX_PACKAGES[@]}")
        if [ "${#missing[@]}" -gt 0 ]; then
            # Debian's nginx package starts a system nginx on port 80;
            # policy-rc.d forbids that (one that exists is left alone).
            made=0
            if [ ! -e /usr/sbin/policy-rc.d ]; then
                printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
                chmod 755 /usr/sbin/policy-rc.d
                made=1
            fi
            rc=0
            apt_install "${missing[@]}" || rc=$?
            [ "$made" = 1 ] && rm -f /usr/sbin/policy-rc.d
            [ "$rc" -eq 0 ] || exit "$rc"
        fi
    fi
fi

say "building libwsnotify and the Lua modules in $build"
cmake -S "$root" -B "$build" -DWSN_BUILD_TESTS=OFF -DWSN_BUILD_EXAMPLES=OFF \
    -DWSN_BUILD_LUA=ON >/dev/null
cmake --build "$build" -j "$(wsn_jobs)" >/dev/null
for abi in 5.1 5.4; do
    if [ ! -f "$build/lua/$abi/wsnotify/core.so" ]; then
        say "no Lua $abi module was built (liblua$abi-dev missing?)"
        exit 1
    fi
done
