#!/usr/bin/env bash
# Browser end-to-end tests of the chat page against every chat example:
#
#   bash e2e/run.sh
#
# 1. Debian's chromium (apt-get install only if /usr/bin/chromium is missing)
# 2. playwright-core from e2e/package-lock.json (npm ci, no browser download)
# 3. the C chat example, built with CMake if needed
# 4. each example server started on a free port (--port 0; the port is read
#    from its "chat server on http://HOST:PORT/" log line)
# 5. `node --test e2e/chat.test.js` runs the same scenario against each
#    (its last step sends the server SIGTERM)
# 6. each server stopped by its PID; a server that did not exit 0 after
#    SIGTERM is a failure
#
# Exits non-zero if anything failed, including an example server that could
# not start (say the Python package is not installed): that is a loud
# failure, not a skip, unless WSN_E2E_SKIP names it.
#
# Knobs (environment):
#   WSN_E2E_SKIP=python       comma-separated example names not to run
#                             (listed as SKIPPED in the summary)
#   WSN_CHAT_BIN=PATH         a built wsnotify-chat to use (no build)
#   WSN_E2E_BUILD_DIR=DIR     CMake build folder for the C example (default:
#                             build/ if it already has the example, else
#                             build-e2e/)
#   PYTHON=PATH               the Python with wsnotify installed (default:
#                             .venv/bin/python if there, else python3)
#   WSN_E2E_CHROMIUM=PATH     the browser (default /usr/bin/chromium)
#   WSN_E2E_WAIT_MS=N         timeout of each DOM wait (default 10000)
#   WSN_E2E_TIMEOUT=N         limit of the node test run, seconds (default 600)
# Artifacts (screenshots, server logs): e2e/artifacts/ (gitignored).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
artifacts="$here/artifacts"
chromium_bin="${WSN_E2E_CHROMIUM:-/usr/bin/chromium}"
skip_list=",${WSN_E2E_SKIP:-},"
jobs="$(nproc 2>/dev/null || echo 2)"

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'e2e/run.sh: %s\n' "$*" >&2; exit 1; }

# ---- the examples under test ---------------------------------------------
# NAME then the command that serves examples/chat/index.html at / and the
# WebSocket at /ws on a free port. {chat_bin}, {python} and {root} are
# filled in below (word by word, so paths may hold spaces). Another example
# is one more line here.
examples=(
    "c       {chat_bin} --port 0 --static-dir {root}/examples/chat"
    "python  {python} {root}/examples/python/chat.py --port 0"
    "node    node {root}/examples/node/chat.js --port 0"
    "lua     {root}/examples/lua/chat.lua --port 0"
    "openresty {root}/examples/openresty/run.sh --port 0"
    "c-secure {chat_bin} --port 0 --static-dir {root}/examples/chat --tls-cert {certs}/server.pem --tls-key {certs}/server.key --auth-token {token} --metrics"
)
# c-secure is the issue-20 deployment: wss with a test certificate (the
# browser told to ignore its CA), --auth-token (the page carries the
# token in its own URL) and --metrics.
e2e_token="e2e-$$"

skipped() { [[ "$skip_list" == *",$1,"* ]]; }
wanted() { # wanted NAME: is any example with that name going to run
    local line
    for line in "${examples[@]}"; do
        read -r n _ <<<"$line"
        if [ "$n" = "$1" ] && ! skipped "$n"; then return 0; fi
    done
    return 1
}

# ---- 1. chromium ---------------------------------------------------------
if [ ! -x "$chromium_bin" ]; then
    [ "$chromium_bin" = /usr/bin/chromium ] || die "WSN_E2E_CHROMIUM=$chromium_bin is not executable"
    say "installing chromium (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || die "apt-get update failed"
    timeout 900 apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core \
        || die "apt-get install chromium failed"
    [ -x "$chromium_bin" ] || die "no $chromium_bin after installing chromium"
fi
"$chromium_bin" --version 2>/dev/null | head -1

# ---- 2. node + playwright-core ------------------------------------------
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    say "installing nodejs and npm (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq || die "apt-get update failed"
    timeout 900 apt-get install -y -qq nodejs npm || die "apt-get install nodejs npm failed"
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || die "node $(node --version) is too old: node --test needs 18 or later"
echo "node $(node --version)"

export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
want_pw="$(node -p 'require(process.argv[1]).packages["node_modules/playwright-core"].version' \
    "$here/package-lock.json")" || die "cannot read e2e/package-lock.json"
have_pw="$(cd "$here" && node -p 'require("playwright-core/package.json").version' 2>/dev/null)" || have_pw=""
if [ "$have_pw" != "$want_pw" ]; then
    say "npm ci (playwright-core $want_pw)"
    (cd "$here" && timeout 300 npm ci --no-audit --no-fund) || die "npm ci failed"
fi
echo "playwright-core $want_pw"

# ---- 3. the C example ----------------------------------------------------
chat_bin=""
if wanted c; then
    if [ -n "${WSN_CHAT_BIN:-}" ]; then
        chat_bin="$WSN_CHAT_BIN"
        [ -x "$chat_bin" ] || die "WSN_CHAT_BIN=$chat_bin is not executable"
    else
        build="${WSN_E2E_BUILD_DIR:-}"
        if [ -z "$build" ]; then
            if [ -x "$root/build/examples/wsnotify-chat" ]; then build="$root/build"; else build="$root/build-e2e"; fi
        fi
        say "building wsnotify-chat in $build"
        if [ ! -f "$build/CMakeCache.txt" ]; then
            timeout 300 cmake -S "$root" -B "$build" -DWSN_BUILD_EXAMPLES=ON -DWSN_BUILD_TESTS=OFF >/dev/null \
                || die "cmake configure failed"
        fi
        timeout 600 cmake --build "$build" --target wsnotify-chat -j "$jobs" >"$build/e2e-build.log" 2>&1 \
            || { tail -30 "$build/e2e-build.log"; die "building wsnotify-chat failed (log: $build/e2e-build.log)"; }
        chat_bin="$build/examples/wsnotify-chat"
        [ -x "$chat_bin" ] || die "no $chat_bin after the build (is WSN_BUILD_EXAMPLES on in $build?)"
    fi
fi

# ---- 3b. Python ----------------------------------------------------------
if [ -n "${PYTHON:-}" ]; then
    python="$PYTHON"
elif [ -x "$root/.venv/bin/python" ]; then
    python="$root/.venv/bin/python"
else
    python=python3
fi

# ---- 3c. the Node binding -------------------------------------------------
if wanted node; then
    say "building the Node addon (bindings/node)"
    mkdir -p "$artifacts"
    (cd "$root/bindings/node" &&
        { [ -d node_modules/node-api-headers ] || timeout 300 npm ci --ignore-scripts --no-audit --no-fund; } &&
        timeout 600 node build.js >"$artifacts/node-build.log" 2>&1) \
        || die "building bindings/node failed (log: $artifacts/node-build.log)"
fi

# ---- 3d. certificates for c-secure ------------------------------------------
certs=""
if wanted c-secure; then
    certs="$(mktemp -d "${TMPDIR:-/tmp}/wsn-e2e-certs.XXXXXX")"
    bash "$root/tests/tls/make_certs.sh" "$certs" || die "making test certificates failed (openssl)"
fi

# ---- 4. servers ------------------------------------------------------------
mkdir -p "$artifacts"
rm -f "$artifacts"/*.png "$artifacts"/*-server.log

names=()       # started (or failed) examples, in order
declare -A pid_of=() log_of=() error_of=() url_of=()
stopped_by_us=()

stop_servers() { # TERM each server still running, then KILL what is left
    local n p i
    for n in "${names[@]}"; do
        p="${pid_of[$n]:-}"
        if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null
            stopped_by_us+=("$n")
        fi
    done
    for n in "${names[@]}"; do
        p="${pid_of[$n]:-}"
        [ -n "$p" ] || continue
        for ((i = 0; i < 150; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$p" 2>/dev/null; then
            echo "e2e/run.sh: $n server (pid $p) ignored SIGTERM for 15 s: SIGKILL" >&2
            kill -KILL "$p" 2>/dev/null
        fi
    done
}
trap 'stop_servers' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME WORDS...: starts one server; sets pid_of/log_of or error_of.
start() {
    local name="$1" log="$artifacts/$1-server.log" cmd=() w p port="" i
    shift
    for w in "$@"; do
        w="${w//\{chat_bin\}/$chat_bin}"
        w="${w//\{python\}/$python}"
        w="${w//\{root\}/$root}"
        w="${w//\{certs\}/$certs}"
        w="${w//\{token\}/$e2e_token}"
        cmd+=("$w")
    done
    names+=("$name")
    log_of[$name]="$log"
    echo "$name: ${cmd[*]}"
    "${cmd[@]}" >"$log" 2>&1 </dev/null &
    p=$!
    # The port from the log line; at most 20 s.
    local scheme=http
    for ((i = 0; i < 200; i++)); do
        port="$(sed -n 's|.*chat server on https\{0,1\}://[^ ]*:\([0-9][0-9]*\)/.*|\1|p' "$log" | head -1)"
        grep -q 'chat server on https://' "$log" && scheme=https
        [ -n "$port" ] && break
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        if kill -0 "$p" 2>/dev/null; then
            error_of[$name]="no 'chat server on http://HOST:PORT/' line in its log within 20 s"
            pid_of[$name]="$p" # stopped with the others
        else
            wait "$p"
            error_of[$name]="the server exited with status $? before listening"
        fi
        echo "$name: FAILED TO START: ${error_of[$name]}; last lines of $log:" >&2
        tail -15 "$log" | sed 's/^/    /' >&2
        return
    fi
    # It answers HTTP (the page) before the browser comes; at most 10 s.
    if ! NODE_TLS_REJECT_UNAUTHORIZED=0 timeout 15 node -e '
        const url = process.argv[1];
        const until = Date.now() + 10000;
        (async () => {
          for (;;) {
            try { const r = await fetch(url); if (r.status === 200) return; } catch (e) {}
            if (Date.now() > until) { console.error("no 200 from " + url); process.exit(1); }
            await new Promise((r) => setTimeout(r, 100));
          }
        })();' "$scheme://127.0.0.1:$port/" 2>/dev/null; then
        error_of[$name]="listening on port $port but GET / never answered 200"
        pid_of[$name]="$p"
        echo "$name: FAILED TO START: ${error_of[$name]}" >&2
        return
    fi
    pid_of[$name]="$p"
    echo "$name: pid $p, $scheme://127.0.0.1:$port/"
    url_of[$name]="$scheme://127.0.0.1:$port/"
    # A server with --auth-token is opened as /?token=T (the page passes
    # it on to its socket).
    [[ " $* " == *" --auth-token "* ]] && url_of[$name]+="?token=$e2e_token"
}

json_str() { # a JSON string of $1
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    printf '"%s"' "$s"
}

say "starting the chat servers"
skipped_names=()
for line in "${examples[@]}"; do
    read -r -a words <<<"$line"
    name="${words[0]}"
    if skipped "$name"; then
        skipped_names+=("$name")
        echo "$name: SKIPPED (WSN_E2E_SKIP=${WSN_E2E_SKIP:-})"
        continue
    fi
    start "$name" "${words[@]:1}"
done

targets="["
sep=""
for name in "${names[@]}"; do
    entry="{\"name\":$(json_str "$name"),\"log\":$(json_str "${log_of[$name]}")"
    if [ -n "${error_of[$name]:-}" ]; then
        entry+=",\"error\":$(json_str "${error_of[$name]}")}"
    else
        entry+=",\"url\":$(json_str "${url_of[$name]}"),\"pid\":${pid_of[$name]}}"
    fi
    targets+="$sep$entry"
    sep=","
done
targets+="]"

# ---- 5. the tests ----------------------------------------------------------
rc_tests=0
if [ "${#names[@]}" -eq 0 ]; then
    echo "e2e/run.sh: every example is skipped: nothing to test" >&2
    rc_tests=1
else
    say "node --test e2e/chat.test.js"
    (cd "$here" && WSN_E2E_TARGETS="$targets" WSN_E2E_ARTIFACTS="$artifacts" \
        timeout --kill-after=10 "${WSN_E2E_TIMEOUT:-600}" node --test --test-reporter=spec chat.test.js)
    rc_tests=$?
    [ "$rc_tests" -eq 124 ] && echo "e2e/run.sh: the test run hit its ${WSN_E2E_TIMEOUT:-600} s limit" >&2
fi

# ---- 6. stop the servers, check how they exited -----------------------------
stop_servers
trap - EXIT
[ -n "$certs" ] && rm -rf "$certs"
failed=0
[ "$rc_tests" -eq 0 ] || failed=1
say "summary"
for name in "${names[@]}"; do
    if [ -n "${error_of[$name]:-}" ]; then
        printf '%-8s FAIL  server did not start: %s (log: %s)\n' "$name" "${error_of[$name]}" "${log_of[$name]}"
        failed=1
        continue
    fi
    wait "${pid_of[$name]}"
    rc=$?
    by_us=""
    for n in "${stopped_by_us[@]}"; do [ "$n" = "$name" ] && by_us=" (SIGTERM from run.sh: the test did not get to shut it down)"; done
    if [ "$rc" -eq 0 ]; then
        printf '%-8s ok    server exited 0 after SIGTERM%s (log: %s)\n' "$name" "$by_us" "${log_of[$name]}"
    else
        printf '%-8s FAIL  server exited with status %s after SIGTERM%s (log: %s)\n' "$name" "$rc" "$by_us" "${log_of[$name]}"
        failed=1
    fi
done
for name in "${skipped_names[@]}"; do printf '%-8s SKIPPED (WSN_E2E_SKIP)\n' "$name"; done
printf '%-8s %s\n' tests "$([ "$rc_tests" -eq 0 ] && echo ok || echo "FAIL (node --test exit $rc_tests)")"
echo "artifacts: $artifacts"
for f in "$artifacts"/*.png; do [ -e "$f" ] && echo "  $f"; done
exit "$failed"
