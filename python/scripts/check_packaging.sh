#!/usr/bin/env bash
# Checks the Python package the way a user gets it, away from the source
# tree:
#   1. `python -m build` gives an sdist (with the C core under csrc/) and a
#      wheel;
#   2. the wheel, installed in a fresh venv, passes the test suite;
#   3. the sdist, installed (so compiled) in a fresh venv, passes it too;
#   4. WSNOTIFY_USE_SYSTEM_LIB=1 against a libwsnotify installed by cmake
#      into a temporary prefix links libwsnotify.so.<major> and passes.
# The tests run from a copy of python/tests outside the repository, so
# nothing can be imported from the source tree.
#
#   bash python/scripts/check_packaging.sh [PYTHON]
#
# Needs network access to PyPI (build isolation, venvs) and, for step 4,
# cmake. Ends with a line "packaging: N passed, N failed"; exit status 0
# only when every step passed. WSN_PKG_KEEP=1 keeps the work directory.
set -uo pipefail

py="${1:-python3}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pydir="$(cd "$here/.." && pwd)"
root="$(cd "$pydir/.." && pwd)"
work="$(mktemp -d /tmp/wsnotify-pkg.XXXXXX)"
passed=0
failed=0
if [ "${WSN_PKG_KEEP:-0}" != 1 ]; then trap 'rm -rf "$work"' EXIT; fi

step() { printf '\n==> %s\n' "$*"; }
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }

cp -r "$pydir/tests" "$work/tests"
rm -rf "$work/tests/__pycache__"

suite() { # suite VENV NAME
    if (cd "$work/tests" && timeout 900 "$1/bin/python" -m pytest -q -ra \
        -p no:cacheprovider .) >"$work/$2.log" 2>&1; then
        ok "$2: $(tail -n 1 "$work/$2.log")"
    else
        bad "$2: $(tail -n 1 "$work/$2.log") (log: $work/$2.log)"
        tail -n 30 "$work/$2.log"
    fi
}

venv() { # venv DIR: a fresh venv with the test dependencies
    "$py" -m venv "$1" && "$1/bin/pip" install -q --disable-pip-version-check \
        pytest websockets msgpack
}

step "build sdist and wheel"
if (cd "$pydir" && "$py" -m build --outdir "$work/dist" >"$work/build.log" 2>&1); then
    sdist=$(ls "$work"/dist/*.tar.gz)
    wheel=$(ls "$work"/dist/*.whl)
    tar tzf "$sdist" >"$work/sdist.list"
    if grep -q '/csrc/include/wsnotify.h$' "$work/sdist.list" &&
        grep -q '/csrc/include/wsnotify_ffi.h$' "$work/sdist.list" &&
        grep -q '/csrc/core/shell/server.c$' "$work/sdist.list"; then
        ok "sdist and wheel built; the sdist carries the C core"
    else
        bad "the sdist lacks csrc/ (the C core and wsnotify_ffi.h)"
    fi
    # (a file, not a pipe into grep -q: with pipefail, grep quitting early
    # would fail the listing with SIGPIPE now and then)
    "$py" -m zipfile -l "$wheel" >"$work/wheel.list"
    if grep -q '^[^/]*/LICENSE$' "$work/sdist.list" &&
        grep -q 'dist-info/licenses/LICENSE ' "$work/wheel.list"; then
        ok "the sdist and the wheel carry LICENSE"
    else
        bad "LICENSE missing from the sdist or the wheel"
    fi
else
    bad "python -m build (log: $work/build.log)"
    tail -n 30 "$work/build.log"
    sdist=""
    wheel=""
fi

if [ -n "$wheel" ]; then
    step "wheel in a fresh venv"
    if venv "$work/v-wheel" && "$work/v-wheel/bin/pip" install -q "$wheel"; then
        suite "$work/v-wheel" wheel
    else
        bad "installing the wheel"
    fi
fi

if [ -n "$sdist" ]; then
    step "sdist in a fresh venv"
    if venv "$work/v-sdist" && "$work/v-sdist/bin/pip" install -q --no-cache-dir "$sdist"; then
        suite "$work/v-sdist" sdist
    else
        bad "installing the sdist"
    fi
fi

step "WSNOTIFY_USE_SYSTEM_LIB=1 against an installed libwsnotify"
if command -v cmake >/dev/null 2>&1; then
    prefix="$work/prefix"
    if cmake -S "$root" -B "$work/cbuild" -DCMAKE_INSTALL_PREFIX="$prefix" \
        -DWSN_BUILD_TESTS=OFF -DWSN_BUILD_EXAMPLES=OFF >"$work/cmake.log" 2>&1 &&
        cmake --build "$work/cbuild" -j"$(nproc)" >>"$work/cmake.log" 2>&1 &&
        cmake --install "$work/cbuild" >>"$work/cmake.log" 2>&1; then
        pcdir=$(dirname "$(find "$prefix" -name wsnotify.pc | head -n 1)")
        if venv "$work/v-sys" &&
            PKG_CONFIG_PATH="$pcdir" WSNOTIFY_USE_SYSTEM_LIB=1 \
                "$work/v-sys/bin/pip" install -q --no-cache-dir "$pydir"; then
            so=$(ls "$work"/v-sys/lib/python*/site-packages/wsnotify/_wsnotify*.so)
            if readelf -d "$so" | grep -q 'NEEDED.*libwsnotify\.so\.[0-9]'; then
                ok "the extension links libwsnotify.so.<major>"
            else
                bad "the extension does not link libwsnotify"
            fi
            suite "$work/v-sys" system-lib
        else
            bad "installing with WSNOTIFY_USE_SYSTEM_LIB=1"
        fi
    else
        bad "cmake build/install of libwsnotify (log: $work/cmake.log)"
    fi
else
    echo "cmake not found: step skipped"
fi

echo
echo "packaging: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
