#!/usr/bin/env bash
# One command for the benchmark matrix: builds wsnotify with the bench
# targets, installs the peers (npm `ws`, PyPI `websockets`, matplotlib) when
# missing, runs bench/run.py (every argument is passed on) and so rewrites
# docs/benchmarks.md and docs/img/bench-*.png.
#
#   bench/run.sh                                   # full matrix (~1 h, 2 cores)
#   bench/run.sh --machine-note "otherwise idle"   # say how busy the box was
#   bench/run.sh --modes formats                   # JSON vs MessagePack only (~2 min):
#                                                  # rewrites just that section
#   bench/run.sh --smoke                           # ~5 s check, C servers only,
#                                                  # installs nothing, no report
#   WSN_BUILD_DIR=build-bench bench/run.sh --quick # one run each, short phases
#
# Not part of CI's test run; CI may call --smoke.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# how the report names the command (run.py appends the arguments)
if [ -n "${WSN_BUILD_DIR:-}" ]; then
    export WSN_BENCH_PREFIX="WSN_BUILD_DIR=${WSN_BUILD_DIR#"$root"/} bench/run.sh"
else
    export WSN_BENCH_PREFIX="bench/run.sh"
fi
build="$(realpath -m "${WSN_BUILD_DIR:-$root/build}")"
export WSN_BUILD_DIR="$build"

smoke=0
for a in "$@"; do
    [ "$a" = "--smoke" ] && smoke=1
done

say() { printf '[bench] %s\n' "$*" >&2; }

command -v taskset >/dev/null || { say "taskset missing (util-linux)"; exit 2; }
jobs="$(nproc 2>/dev/null || echo 2)"
cmake -S "$root" -B "$build" -DWSN_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j "$jobs" --target wsn-loadgen wsn-chat-bench c-epoll-ref >/dev/null
# the chat example is a target only once examples/ builds it
cmake --build "$build" -j "$jobs" --target wsnotify-chat >/dev/null 2>&1 ||
    say "wsnotify-chat not built (the C chat example is not there yet?)"

if [ -x "$root/.venv/bin/python" ] && [ -z "${PYTHON:-}" ]; then
    PY="$root/.venv/bin/python"
else
    PY="${PYTHON:-python3}"
fi

if [ "$smoke" -eq 0 ]; then
    if command -v npm >/dev/null && [ ! -d "$here/peers/node-ws/node_modules/ws" ]; then
        say "npm ci (bench/peers/node-ws)"
        (cd "$here/peers/node-ws" && npm ci --no-audit --no-fund >/dev/null) ||
            say "npm ci failed: node-ws will be skipped"
    fi
    missing=()
    "$PY" -c "import websockets" 2>/dev/null || missing+=(websockets)
    "$PY" -c "import matplotlib" 2>/dev/null || missing+=(matplotlib)
    if [ "${#missing[@]}" -gt 0 ]; then
        say "pip install ${missing[*]}"
        "$PY" -m pip install -q --root-user-action=ignore "${missing[@]}" ||
            say "pip install failed: some peers or the plots will be skipped"
    fi
    if ! "$PY" -c "import wsnotify" 2>/dev/null && [ -f "$root/python/pyproject.toml" ]; then
        say "pip install ./python (for examples/python/chat.py)"
        "$PY" -m pip install -q --root-user-action=ignore "$root/python" ||
            say "could not install the Python binding: py-chat will be skipped"
    fi
fi

export PYTHON="$PY"
exec "$PY" "$here/run.py" "$@"
