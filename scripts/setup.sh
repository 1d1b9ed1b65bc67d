#!/usr/bin/env bash
# Installs what building and testing wsnotify needs on a fresh Debian 12
# machine (run as root, or with sudo available). Idempotent: packages that
# are already there are not touched, and `apt-get update` runs only when
# something is missing. Safe to run any number of times, without a terminal.
#
#   bash scripts/setup.sh            # system packages + Python test deps
#   WSN_SETUP_SKIP_PYTHON=1 bash scripts/setup.sh   # system packages only
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1

say() { printf '[setup] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    fi
fi

# --- Debian packages ----------------------------------------------------
# Build: compiler, cmake, pkg-config and the five C libraries the engine
# uses (hiredis for the broker); redis-server for the broker's tests. Sanitizers: gcc's runtimes come with gcc; clang's with
# libclang-rt-14-dev. abigail-tools: abidw/abidiff for the ABI check
# (scripts/abi.sh). luajit: its ffi.cdef reads include/wsnotify_ffi.h in
# a ctest. libssl-dev: the core checks TLS files and client certificates
# with lws's OpenSSL; openssl: the TLS tests make their certificates.
APT_PACKAGES=(
    gcc
    make
    cmake
    pkg-config
    clang
    libclang-rt-14-dev
    libwebsockets-dev
    libssl-dev
    openssl
    libjansson-dev
    libmsgpack-dev
    libsodium-dev
    libhiredis-dev
    redis-server
    uthash-dev
    zlib1g-dev
    abigail-tools
    luajit
)
# Python itself only when the machine has none (the machines we target
# ship CPython; Debian's is the fallback).
if ! command -v python3 >/dev/null 2>&1; then
    APT_PACKAGES+=(python3 python3-pip python3-venv python3-dev)
fi

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
    # OpenResty's LuaJIT (luajit2, which bindings/lua/setup.sh installs for
    # nginx's Lua module) conflicts with Debian's luajit and gives the same
    # luajit command: installing luajit over it would remove the nginx
    # module again on every run.
    [ "$p" = luajit ] && pkg_installed luajit2 && continue
    pkg_installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing packages (${missing[*]}) and no apt-get: install them by hand"
        exit 1
    fi
    say "installing: ${missing[*]}"
    # A lock held by another apt (unattended upgrades) is waited for.
    apt_opts=(-y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef
              -o Dpkg::Options::=--force-confold)
    ok=0
    for attempt in 1 2 3; do
        if $SUDO apt-get update -q -o DPkg::Lock::Timeout=300 &&
           $SUDO apt-get install "${apt_opts[@]}" --no-install-recommends "${missing[@]}"; then
            ok=1
            break
        fi
        say "apt-get failed (attempt $attempt), retrying in 5 s"
        sleep 5
    done
    if [ "$ok" -ne 1 ]; then
        say "could not install: ${missing[*]}"
        exit 1
    fi
else
    say "Debian packages: all present"
fi

# --- Python test dependencies -------------------------------------------
if [ "${WSN_SETUP_SKIP_PYTHON:-0}" = "1" ]; then
    exit 0
fi

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PY="$(wsn_python)"

# import name -> PyPI name
declare -A PY_MODULES=(
    [websockets]=websockets
    [cffi]=cffi
    [pytest]=pytest
    [msgpack]=msgpack
    [prometheus_client]=prometheus-client
    [build]=build
    [setuptools]=setuptools
    [wheel]=wheel
)
py_missing=()
for mod in "${!PY_MODULES[@]}"; do
    # -I: the current folder (which may hold a build/ directory) is not
    # on sys.path, so only installed modules count.
    "$PY" -I -c "import $mod" >/dev/null 2>&1 || py_missing+=("${PY_MODULES[$mod]}")
done

if [ "${#py_missing[@]}" -gt 0 ]; then
    say "pip installing: ${py_missing[*]} (with $PY)"
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m ensurepip --upgrade >/dev/null 2>&1 || true
    fi
    pip_args=(install -q --root-user-action=ignore)
    if ! "$PY" -m pip "${pip_args[@]}" "${py_missing[@]}" 2>/tmp/wsn-pip-err.$$; then
        if grep -q externally-managed /tmp/wsn-pip-err.$$; then
            # Debian's own python3 refuses system-wide pip installs: use a
            # project venv instead (lib.sh picks it up from then on).
            say "system Python is externally managed: creating .venv"
            rm -f /tmp/wsn-pip-err.$$
            wsn_make_venv
            PY="$(wsn_python)"
            "$PY" -m pip install -q "${py_missing[@]}"
        else
            cat /tmp/wsn-pip-err.$$ >&2
            rm -f /tmp/wsn-pip-err.$$
            say "pip install failed"
            exit 1
        fi
    fi
    rm -f /tmp/wsn-pip-err.$$
else
    say "Python packages: all present ($PY)"
fi
