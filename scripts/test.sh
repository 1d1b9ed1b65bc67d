#!/usr/bin/env bash
# Runs every test of wsnotify, the way CI does (`bash .ci/run` calls this):
#
#   1. setup      scripts/setup.sh (Debian packages, Python test deps)
#   2. build      cmake in build/           + ctest + chat example smoke tests
#                 (ctest includes tooling.abi_compat: the library's ABI
#                 against the baselines in abi/, scripts/abi.sh; and
#                 tooling.ffi_header_*: include/wsnotify_ffi.h matches the
#                 header and cffi and LuaJIT take it)
#                 (smoke_chat.py; smoke_msgpack.py: MessagePack + JSON clients;
#                 smoke_broker_chat.py: three servers on one Redis, restarted;
#                 smoke_auth_chat.py: --auth-token, 401 without it)
#                 smoke_tls_chat.py: --tls-cert/--tls-key, wss, SIGHUP reload)
#   3. asan       ASan+UBSan in build-asan/ + ctest + chat smoke
#   4. tsan       TSan in build-tsan/       + ctest + chat smoke
#   5. python     pip install ./python + pytest python/tests (if python/ exists)
#                 + smoke_msgpack.py against examples/python/chat.py
#   6. node       bindings/node/test.sh: the Node-API addon, node --test; then
#                 the chat smoke tests against examples/node/chat.js
#   7. lua        bindings/lua/test.sh: LuaJIT, Lua 5.4 and 5.1 specs, the
#                 OpenResty example, and the chat smoke tests against
#                 examples/lua/chat.lua
#   8. e2e        e2e/run.sh: the chat page in headless Chromium (if e2e/ exists)
#
# The broker's tests (tests/test_broker.c in every ctest stage, and
# test_broker.py, broker.test.js, broker_spec.lua) start redis-server
# processes of their own (setup.sh installs Debian's), each on a unix
# socket in a fresh directory or a free loopback port, kill and restart
# them for the failover drills and end them by PID; WSN_REDIS_SERVER,
# exported below, names the binary so none of them can skip.
#
# Every step runs under `timeout`; the whole run stays well inside 90
# minutes on 2 cores. Exits non-zero if any step fails, after printing a
# summary. Logs of each step: build-logs/<step>.log.
#
# Knobs (environment): WSN_SKIP_ASAN=1, WSN_SKIP_TSAN=1, WSN_SKIP_PYTHON=1,
# WSN_SKIP_NODE=1, WSN_SKIP_LUA=1, WSN_SKIP_E2E=1 skip a stage (for local iteration; CI skips nothing); WSN_CTEST_JOBS
# (default: number of cores); CC picks the compiler (default cc).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
cd "$root" || exit 1

jobs="$(wsn_jobs)"
ctest_jobs="${WSN_CTEST_JOBS:-$jobs}"
logdir="$root/build-logs"
mkdir -p "$logdir"
t_start=$(date +%s)

# The whole run's budget (CI allows 90 min), and per-step limits, in
# seconds. A step never gets more than what is left of the budget.
T_TOTAL=${WSN_T_TOTAL:-4800}
T_SETUP=${WSN_T_SETUP:-900}
T_CONFIGURE=${WSN_T_CONFIGURE:-180}
T_BUILD=${WSN_T_BUILD:-600}
T_CTEST=${WSN_T_CTEST:-480}
T_CTEST_ASAN=${WSN_T_CTEST_ASAN:-720}
T_CTEST_TSAN=${WSN_T_CTEST_TSAN:-900}
T_PIP=${WSN_T_PIP:-600}
T_PYTEST=${WSN_T_PYTEST:-600}
T_CHAT=${WSN_T_CHAT:-180}
T_E2E=${WSN_T_E2E:-900}
T_NODE=${WSN_T_NODE:-900}
T_LUA=${WSN_T_LUA:-900}
# Per-test limit inside ctest.
T_ONE_TEST=${WSN_T_ONE_TEST:-300}

summary=()        # lines of the final table
detail=""         # set by count_ctest / count_pytest
failures=0
n_passed=0
n_failed=0
n_skipped=0

say() { printf '\n==> %s\n' "$*"; }

record() { # record STEP STATUS SECONDS [DETAIL]
    summary+=("$(printf '%-16s %-5s %5ss  %s' "$1" "$2" "$3" "${4:-}")")
    if [ "$2" = FAIL ]; then failures=$((failures + 1)); fi
}

# run STEP LIMIT CMD...: runs CMD under timeout, output to the console and
# build-logs/STEP.log. Sets $rc and $secs.
run() {
    local step="$1" limit="$2"
    shift 2
    local t0 left
    t0=$(date +%s)
    left=$((t_start + T_TOTAL - t0))
    if [ "$left" -lt 10 ]; then
        say "$step: skipped, the ${T_TOTAL}s budget is spent"
        echo "!! $step: out of time" >"$logdir/$step.log"
        rc=124
        secs=0
        return
    fi
    if [ "$limit" -gt "$left" ]; then limit=$left; fi
    say "$step: $* (limit ${limit}s)"
    timeout -k 30 "$limit" "$@" 2>&1 | tee "$logdir/$step.log"
    rc=${PIPESTATUS[0]}
    secs=$(($(date +%s) - t0))
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "!! $step: timed out after ${limit}s"
    fi
}

# Adds the counts that ctest printed in build-logs/STEP.log to the totals;
# sets $detail for the summary.
count_ctest() {
    local line total failed
    line=$(grep -Eo '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' \
        "$logdir/$1.log" | tail -n 1)
    if [ -z "$line" ]; then
        n_failed=$((n_failed + 1))
        detail="(no ctest result)"
        return
    fi
    failed=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
    total=$(sed -E 's/.*out of ([0-9]+)/\1/' <<<"$line")
    n_passed=$((n_passed + total - failed))
    n_failed=$((n_failed + failed))
    detail="($((total - failed)) passed, $failed failed)"
}

# The plain "N passed, N failed" closing line (scripts/smoke_chat.py).
count_plain() {
    local line p f
    line=$(grep -E '^([a-z]+: )?[0-9]+ passed, [0-9]+ failed' "$logdir/$1.log" | tail -n 1)
    if [ -z "$line" ]; then
        n_failed=$((n_failed + 1))
        detail="(no result line)"
        return
    fi
    p=$(grep -Eo '[0-9]+ passed' <<<"$line" | grep -Eo '[0-9]+')
    f=$(grep -Eo '[0-9]+ failed' <<<"$line" | grep -Eo '[0-9]+')
    n_passed=$((n_passed + p))
    n_failed=$((n_failed + f))
    detail="($p passed, $f failed)"
}

# node --test's closing counts ("ℹ pass N", "ℹ fail N", "ℹ skipped N").
count_node() {
    local p f s
    p=$(grep -Eo '^ℹ pass [0-9]+' "$logdir/$1.log" | tail -n 1 | grep -Eo '[0-9]+')
    f=$(grep -Eo '^ℹ fail [0-9]+' "$logdir/$1.log" | tail -n 1 | grep -Eo '[0-9]+')
    s=$(grep -Eo '^ℹ skipped [0-9]+' "$logdir/$1.log" | tail -n 1 | grep -Eo '[0-9]+')
    if [ -z "$p" ] || [ -z "$f" ]; then
        n_failed=$((n_failed + 1))
        detail="(no node --test result)"
        return
    fi
    n_passed=$((n_passed + p))
    n_failed=$((n_failed + f))
    n_skipped=$((n_skipped + ${s:-0}))
    detail="($p passed, $f failed, ${s:-0} skipped)"
}

count_pytest() {
    local line p f e s
    line=$(grep -E '^=+ .*(passed|failed|error|no tests ran).* in [0-9.]+s' \
        "$logdir/$1.log" | tail -n 1)
    if [ -z "$line" ]; then
        n_failed=$((n_failed + 1))
        detail="(no pytest result)"
        return
    fi
    p=$(grep -Eo '[0-9]+ passed' <<<"$line" | grep -Eo '[0-9]+' || echo 0)
    f=$(grep -Eo '[0-9]+ failed' <<<"$line" | grep -Eo '[0-9]+' || echo 0)
    e=$(grep -Eo '[0-9]+ errors?' <<<"$line" | grep -Eo '[0-9]+' || echo 0)
    s=$(grep -Eo '[0-9]+ skipped' <<<"$line" | grep -Eo '[0-9]+' || echo 0)
    n_passed=$((n_passed + p))
    n_failed=$((n_failed + f + e))
    n_skipped=$((n_skipped + s))
    detail="($p passed, $((f + e)) failed, $s skipped)"
}

finish() {
    local total=$(($(date +%s) - t_start))
    printf '\n==> summary (%dm%02ds)\n' $((total / 60)) $((total % 60))
    printf '%s\n' "${summary[@]}"
    if [ "$failures" -gt 0 ]; then
        printf '%d step(s) FAILED; logs in %s\n' "$failures" "$logdir"
    else
        printf 'all steps passed\n'
    fi
    printf 'total: %d passed, %d failed, %d skipped\n' \
        "$n_passed" "$n_failed" "$n_skipped"
    restore_sysctl
    [ "$failures" -eq 0 ]
    exit $?
}

# ---- TSan on this kernel --------------------------------------------------
# TSan's runtime (gcc 12, clang 14) aborts at start ("unexpected memory
# mapping") when the kernel randomises mmap with more than 28 bits. Probe
# once; fix with `setarch -R` (no ASLR for the test processes), else by
# lowering vm.mmap_rnd_bits (root), restored at exit.
tsan_wrap=()
saved_rnd_bits=""
restore_sysctl() {
    if [ -n "$saved_rnd_bits" ]; then
        sysctl -q -w vm.mmap_rnd_bits="$saved_rnd_bits" >/dev/null 2>&1 || true
        saved_rnd_bits=""
    fi
}

tsan_probe() {
    local dir cc
    dir=$(mktemp -d)
    cc="${CC:-cc}"
    cat >"$dir/p.c" <<'EOF'
#include <pthread.h>
static int x;
static void *f(void *a) { (void)a; __atomic_add_fetch(&x, 1, __ATOMIC_SEQ_CST); return 0; }
int main(void) { pthread_t t; pthread_create(&t, 0, f, 0); pthread_join(t, 0); return x == 1 ? 0 : 1; }
EOF
    if ! "$cc" -fsanitize=thread -pthread "$dir/p.c" -o "$dir/p" >"$dir/log" 2>&1; then
        echo "tsan probe: $cc cannot build with -fsanitize=thread:"
        cat "$dir/log"
        rm -rf "$dir"
        return 1
    fi
    if "$dir/p" >"$dir/log" 2>&1; then
        echo "tsan probe: runs as is"
        rm -rf "$dir"
        return 0
    fi
    echo "tsan probe: plain run failed: $(head -c 300 "$dir/log")"
    if command -v setarch >/dev/null 2>&1 &&
        setarch "$(uname -m)" -R "$dir/p" >/dev/null 2>&1; then
        echo "tsan probe: runs under setarch -R; using it for the TSan tests"
        tsan_wrap=(setarch "$(uname -m)" -R)
        rm -rf "$dir"
        return 0
    fi
    local bits
    bits=$(sysctl -n vm.mmap_rnd_bits 2>/dev/null || echo "")
    if [ -n "$bits" ] && [ "$bits" -gt 28 ] &&
        sysctl -q -w vm.mmap_rnd_bits=28 >/dev/null 2>&1; then
        saved_rnd_bits="$bits"
        if "$dir/p" >/dev/null 2>&1; then
            echo "tsan probe: runs with vm.mmap_rnd_bits=28 (was $bits; restored at exit)"
            rm -rf "$dir"
            return 0
        fi
        restore_sysctl
    fi
    echo "tsan probe: TSan cannot run on this machine"
    rm -rf "$dir"
    return 1
}

# smoke_step STEP SCRIPT PROGRAM [WRAP...]: one of the chat smoke tests
# (scripts/SCRIPT) against a chat example, counted and recorded as STEP.
smoke_step() {
    local step="$1" script="$2" program="$3" t0
    shift 3
    t0=$(date +%s)
    run "$step" "$T_CHAT" "$@" "$PY" "$here/$script" "$program"
    count_plain "$step"
    if [ "$rc" -ne 0 ]; then
        record "$step" FAIL $(($(date +%s) - t0)) "$detail rc=$rc"
    else
        record "$step" PASS $(($(date +%s) - t0)) "$detail"
    fi
}

# ---- one CMake configuration: configure, build, ctest ----------------------
# cmake_stage NAME BUILDDIR SANITIZER CTEST_LIMIT [WRAPPER...]
cmake_stage() {
    local name="$1" dir="$2" san="$3" limit="$4"
    shift 4
    local wrap=("$@") t0
    t0=$(date +%s)

    run "$name-configure" "$T_CONFIGURE" cmake -S "$root" -B "$root/$dir" \
        -DWSN_SANITIZE="$san" -DWSN_BUILD_TESTS=ON -DWSN_BUILD_EXAMPLES=ON \
        -DWSN_PYTHON="$(command -v "$PY")"
    if [ "$rc" -ne 0 ]; then
        n_failed=$((n_failed + 1))
        record "$name" FAIL $(($(date +%s) - t0)) "(configure failed, rc=$rc)"
        return
    fi
    run "$name-build" "$T_BUILD" cmake --build "$root/$dir" -j "$jobs"
    if [ "$rc" -ne 0 ]; then
        n_failed=$((n_failed + 1))
        record "$name" FAIL $(($(date +%s) - t0)) "(build failed, rc=$rc)"
        return
    fi
    run "$name-ctest" "$limit" "${wrap[@]}" ctest --test-dir "$root/$dir" \
        --output-on-failure --no-tests=error -j "$ctest_jobs" \
        --timeout "$T_ONE_TEST"
    count_ctest "$name-ctest"
    if [ "$rc" -ne 0 ]; then
        record "$name" FAIL $(($(date +%s) - t0)) "$detail rc=$rc"
    else
        record "$name" PASS $(($(date +%s) - t0)) "$detail"
    fi

    # The chat example end to end, built with the same flags; then a
    # MessagePack and a JSON client chatting through it (issue 5).
    local chat="$root/$dir/examples/wsnotify-chat"
    smoke_step "$name-chat" smoke_chat.py "$chat" "${wrap[@]}"
    smoke_step "$name-msgpack" smoke_msgpack.py "$chat" "${wrap[@]}"
    # Three of it on one redis-server, killed and restarted (issue 19).
    smoke_step "$name-broker" smoke_broker_chat.py "$chat" "${wrap[@]}"
    # Started with --auth-token: token holders chat, others get 401 (issue 20).
    smoke_step "$name-auth" smoke_auth_chat.py "$chat" "${wrap[@]}"
    # Over TLS, with a certificate reload (issue 20).
    smoke_step "$name-tls" smoke_tls_chat.py "$chat" "${wrap[@]}"
}

# ---- the run ---------------------------------------------------------------
say "wsnotify tests in $root ($(nproc) cores, CI=${CI:-})"
uname -srm
"${CC:-cc}" --version | head -n 1
cmake --version | head -n 1

run setup "$T_SETUP" bash "$here/setup.sh"
if [ "$rc" -ne 0 ]; then
    n_failed=$((n_failed + 1))
    record setup FAIL "$secs" "(rc=$rc: nothing else can run)"
    finish
fi
record setup PASS "$secs"
PY="$(wsn_python)"
WSN_REDIS_SERVER="$(command -v redis-server || echo /usr/bin/redis-server)"
export WSN_REDIS_SERVER

# Sanitizer runtime options, unless the caller chose their own.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"
for s in lsan:LSAN_OPTIONS tsan:TSAN_OPTIONS ubsan:UBSAN_OPTIONS; do
    f="$root/tests/${s%%:*}.supp"
    if [ -f "$f" ]; then
        v="${s#*:}"
        export "$v=${!v:+${!v}:}suppressions=$f"
    fi
done

# Normal build and tests (the sanitizer variables are inert there).
cmake_stage build build "" "$T_CTEST"

# -O3 warns about things -O2 does not see (maybe-uninitialized), and
# -Werror makes that a failed build for anyone building a Release: compile
# everything that way too (nothing runs; the tests above cover the code).
t0=$(date +%s)
run release-configure "$T_CONFIGURE" cmake -S "$root" -B "$root/build-release" \
    -DCMAKE_BUILD_TYPE=Release -DWSN_BUILD_TESTS=ON -DWSN_BUILD_EXAMPLES=ON \
    -DWSN_BUILD_BENCH=ON
[ "$rc" -eq 0 ] && run release-build "$T_BUILD" cmake --build "$root/build-release" -j "$jobs"
if [ "$rc" -ne 0 ]; then
    n_failed=$((n_failed + 1))
    record release FAIL $(($(date +%s) - t0)) "(-O3 build failed, rc=$rc)"
else
    record release PASS $(($(date +%s) - t0)) "(compiled with -O3, not run)"
fi

if [ "${WSN_SKIP_ASAN:-0}" = 1 ]; then
    record asan SKIP 0 "(WSN_SKIP_ASAN=1)"
else
    cmake_stage asan build-asan address "$T_CTEST_ASAN"
fi

if [ "${WSN_SKIP_TSAN:-0}" = 1 ]; then
    record tsan SKIP 0 "(WSN_SKIP_TSAN=1)"
else
    say "tsan: probing the TSan runtime on this kernel"
    if tsan_probe; then
        cmake_stage tsan build-tsan thread "$T_CTEST_TSAN" "${tsan_wrap[@]}"
    else
        n_failed=$((n_failed + 1))
        record tsan FAIL 0 "(TSan runtime cannot start here; see probe output)"
    fi
fi

if [ "${WSN_SKIP_PYTHON:-0}" = 1 ]; then
    record python SKIP 0 "(WSN_SKIP_PYTHON=1)"
elif [ ! -d "$root/python" ]; then
    record python SKIP 0 "(no python/ yet)"
else
    t0=$(date +%s)
    run python-install "$T_PIP" "$PY" -m pip install --root-user-action=ignore \
        --disable-pip-version-check "$root/python"
    if [ "$rc" -ne 0 ]; then
        n_failed=$((n_failed + 1))
        record python FAIL $(($(date +%s) - t0)) "(pip install ./python failed, rc=$rc)"
    else
        # Run from the repo root with the installed package (python/ itself
        # is not on sys.path, so the tests exercise what pip installed).
        run python-pytest "$T_PYTEST" "$PY" -m pytest "$root/python/tests" -ra \
            -p no:cacheprovider
        count_pytest python-pytest
        if [ "$rc" -eq 5 ]; then
            # "no tests collected": count it as a failure, never a pass
            [ "$detail" = "(no pytest result)" ] || n_failed=$((n_failed + 1))
            record python FAIL $(($(date +%s) - t0)) "(pytest collected no tests, rc=5)"
        elif [ "$rc" -ne 0 ]; then
            record python FAIL $(($(date +%s) - t0)) "$detail rc=$rc"
        else
            record python PASS $(($(date +%s) - t0)) "$detail"
        fi
        # The Python chat example with a MessagePack and a JSON client.
        smoke_step python-msgpack smoke_msgpack.py "$root/examples/python/chat.py"
        smoke_step python-broker smoke_broker_chat.py "$root/examples/python/chat.py"
        smoke_step python-auth smoke_auth_chat.py "$root/examples/python/chat.py"
        smoke_step python-tls smoke_tls_chat.py "$root/examples/python/chat.py"
    fi
fi

# A binding's own test script (it installs its runtime and builds what it
# needs), counted by COUNTER from its closing lines.
# binding_step NAME SCRIPT LIMIT COUNTER
binding_step() {
    local name="$1" script="$2" limit="$3" counter="$4" t0 skip
    skip="WSN_SKIP_${name^^}"
    if [ "${!skip:-0}" = 1 ]; then
        record "$name" SKIP 0 "($skip=1)"
        return
    fi
    if [ ! -f "$script" ]; then
        record "$name" SKIP 0 "(no ${script#"$root"/} yet)"
        return
    fi
    t0=$(date +%s)
    run "$name" "$limit" env PYTHON="$PY" bash "$script"
    "$counter" "$name"
    if [ "$rc" -ne 0 ]; then
        record "$name" FAIL $(($(date +%s) - t0)) "$detail rc=$rc"
    else
        record "$name" PASS $(($(date +%s) - t0)) "$detail"
    fi
}

binding_step node "$root/bindings/node/test.sh" "$T_NODE" count_node
# The Node chat example through the same smoke tests as the C and Python
# ones (bindings/node/test.sh built the addon it loads).
if [ "${WSN_SKIP_NODE:-0}" != 1 ] && [ -f "$root/bindings/node/build/wsnotify.node" ]; then
    smoke_step node-chat smoke_chat.py "$root/examples/node/chat.js"
    smoke_step node-msgpack smoke_msgpack.py "$root/examples/node/chat.js"
    smoke_step node-broker smoke_broker_chat.py "$root/examples/node/chat.js"
    smoke_step node-auth smoke_auth_chat.py "$root/examples/node/chat.js"
    smoke_step node-tls smoke_tls_chat.py "$root/examples/node/chat.js"
fi
binding_step lua "$root/bindings/lua/test.sh" "$T_LUA" count_plain

# Browser end-to-end tests of the chat page (e2e/run.sh installs its own
# chromium and playwright-core), against the examples built above.
if [ "${WSN_SKIP_E2E:-0}" = 1 ]; then
    record e2e SKIP 0 "(WSN_SKIP_E2E=1)"
elif [ ! -f "$root/e2e/run.sh" ]; then
    record e2e SKIP 0 "(no e2e/ yet)"
else
    t0=$(date +%s)
    chat_bin="$root/build/examples/wsnotify-chat"
    if [ -x "$chat_bin" ]; then
        run e2e "$T_E2E" env WSN_CHAT_BIN="$chat_bin" PYTHON="$PY" bash "$root/e2e/run.sh"
    else
        run e2e "$T_E2E" env PYTHON="$PY" bash "$root/e2e/run.sh"
    fi
    count_node e2e
    if [ "$rc" -ne 0 ]; then
        record e2e FAIL $(($(date +%s) - t0)) "$detail rc=$rc"
    else
        record e2e PASS $(($(date +%s) - t0)) "$detail"
    fi
fi

finish
