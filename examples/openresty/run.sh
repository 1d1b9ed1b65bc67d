#!/usr/bin/env bash
# Runs the wsnotify chat example inside nginx (Debian's nginx with
# libnginx-mod-http-lua and lua-resty-core), in the foreground, under a
# temp prefix of its own: nginx serves the page, hands each /ws
# connection to the engine in worker 0 (its socket, over the engine's
# handoff_socket: no frame crosses nginx) or, with --ws-proxy, proxies it,
# and proxies /healthz and /metrics. Ctrl-C (SIGINT) or SIGTERM quits
# nginx gracefully (every chat client gets close 1001) and exits 0.
#
#   bash examples/openresty/run.sh [--host ADDR] [--port N] [--static-dir DIR]
#        [--verbose] [--workers N] [--engine-port N] [--broker URL]
#        [--auth-token T] [--ws-proxy]
#        [--client-rate N] [--client-burst N]
#
# --port 0 picks a free port. Expects bindings/lua/setup.sh --nginx to
# have run (scripts/run-chat.sh openresty does that).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prog="run.sh"

usage() {
    cat <<USAGE
usage: $prog [--host ADDR] [--port N] [--static-dir DIR] [--verbose]
             [--workers N] [--engine-port N] [--broker URL] [--auth-token T]
             [--metrics] [--metrics-token T] [--ws-proxy]
             [--client-rate N] [--client-burst N]

  --host ADDR        listen address (default 127.0.0.1;
                     0.0.0.0 for every interface)
  --port N           TCP port (default \$WSN_PORT, else 8080;
                     0 = any free port)
  --static-dir DIR   folder holding index.html (default: examples/chat
                     of this checkout)
  --verbose          log at debug level: also one line per
                     connection and per message
  --workers N        nginx worker processes (default 2)
  --engine-port N    the engine's loopback port (default: a free one)
  --broker URL       share rooms with other chat servers through Redis:
                     redis://127.0.0.1:6379 (default \$WSN_BROKER, else none)
  --auth-token T     clients must send ?token=T or "Authorization: Bearer T";
                     others get 401 (default \$WSN_AUTH_TOKEN, else no check)
  --metrics          serve GET /metrics (Prometheus text format)
  --metrics-token T  with --metrics: answer only requests with
                     'Authorization: Bearer T' (default \$WSN_METRICS_TOKEN,
                     else open)
  --ws-proxy         proxy /ws connections to the engine's port instead
                     of handing their sockets to it: every frame then
                     crosses nginx (slower); the one to use when nginx
                     terminates TLS (a handed socket must be plain)
                     (default: \$WSN_WS_PROXY=1 sets it)
  --client-rate N    messages a client may send per second before it is
                     closed with 1008 (default the engine's, 100; 0 = none)
  --client-burst N   what a quiet client may send at once (200)
USAGE
}

valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -le 65535 ]; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

host=127.0.0.1
port="${WSN_PORT:-8080}"
if ! valid_port "$port"; then
    echo "$prog: bad WSN_PORT '$port'" >&2
    exit 2
fi
static_dir="$root/examples/chat"
verbose=false
workers=2
engine_port=""
broker="${WSN_BROKER:-}"
auth_token="${WSN_AUTH_TOKEN:-}"
metrics=false
metrics_token="${WSN_METRICS_TOKEN:-}"
client_rate=nil # Lua nil: the engine's default
client_burst=nil
ws_conf="$here/ws_handoff.conf"
[ "${WSN_WS_PROXY:-0}" = 1 ] && ws_conf="$here/ws_proxy.conf"

while [ "$#" -gt 0 ]; do
    a="$1"
    val=""
    has_val=0
    if [[ "$a" == --*=* ]]; then
        val="${a#*=}"
        a="${a%%=*}"
        has_val=1
    fi
    need() {
        if [ "$has_val" = 0 ]; then
            if [ "$#" -lt 2 ]; then
                echo "$prog: $a needs a value" >&2
                exit 2
            fi
            val="$2"
            shift_by=2
        fi
    }
    shift_by=1
    case "$a" in
        -h|--help) usage; exit 0 ;;
        --host) need "$@"; host="$val" ;;
        --port|-p) need "$@"; port="$val"
            valid_port "$port" || { echo "$prog: bad port '$port'" >&2; exit 2; } ;;
        --static-dir) need "$@"; static_dir="$val" ;;
        --verbose|-v) verbose=true ;;
        --workers) need "$@"; workers="$val"
            [[ "$workers" =~ ^[1-9][0-9]*$ ]] || { echo "$prog: bad worker count '$workers'" >&2; exit 2; } ;;
        --broker) need "$@"; broker="$val"
            [[ "$broker" != *"|"* && "$broker" != *'"'* ]] || { echo "$prog: bad broker URL" >&2; exit 2; } ;;
        --auth-token) need "$@"; auth_token="$val"
            [[ -n "$auth_token" && "$auth_token" =~ ^[A-Za-z0-9._~+/=-]+$ ]] ||
                { echo "$prog: --auth-token takes a non-empty token of letters, digits and ._~+/=-" >&2; exit 2; } ;;
        --client-rate|--client-burst) need "$@"
            [[ "$val" =~ ^[0-9]+$ ]] || { echo "$prog: bad count '$val'" >&2; exit 2; }
            if [ "$a" = --client-rate ]; then client_rate="$val"; else client_burst="$val"; fi ;;
        --metrics) metrics=true ;;
        --ws-proxy) ws_conf="$here/ws_proxy.conf" ;;
        --metrics-token) need "$@"; metrics_token="$val"
            [[ "$metrics_token" =~ ^[A-Za-z0-9._~+/=-]*$ ]] ||
                { echo "$prog: --metrics-token takes letters, digits and ._~+/=-" >&2; exit 2; } ;;
        --engine-port) need "$@"; engine_port="$val"
            valid_port "$engine_port" || { echo "$prog: bad port '$engine_port'" >&2; exit 2; } ;;
        *) usage >&2; echo "$prog: unknown argument '$1'" >&2; exit 2 ;;
    esac
    shift "$shift_by"
done

if [ ! -f "$static_dir/index.html" ]; then
    echo "$prog: no index.html in $static_dir; pass --static-dir path/to/examples/chat" >&2
    exit 2
fi
static_dir="$(cd "$static_dir" && pwd)"
[ "$port" = 0 ] && port="$(free_port)"
[ -z "$engine_port" ] && engine_port="$(free_port)"
cpath="${WSN_LUA_CPATH:-${WSN_LUA_BUILD_DIR:-$root/build-lua}/lua/5.1/?.so}"
modules=/usr/lib/nginx/modules
if [ ! -e "$modules/ngx_http_lua_module.so" ]; then
    echo "$prog: no nginx Lua module in $modules (bash bindings/lua/setup.sh --nginx)" >&2
    exit 1
fi

prefix="$(mktemp -d "${TMPDIR:-/tmp}/wsnotify-nginx.XXXXXX")"
mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp"
user_line=""
# As root, nginx's workers would run as nobody, who may not read a private
# checkout (the module, the page): keep root for this local example.
[ "$(id -u)" = 0 ] && user_line="user root;"
sed -e "s|@WORKERS@|$workers|g" -e "s|@LOG_LEVEL@|$([ "$verbose" = true ] && echo debug || echo notice)|g" \
    -e "s|@USER_LINE@|$user_line|g" -e "s|@MODULES@|$modules|g" \
    -e "s|@LUA_PATH@|$here/?.lua;$root/examples/lua/?.lua;$root/bindings/lua/?.lua|g" \
    -e "s|@LUA_CPATH@|$cpath|g" -e "s|@ENGINE_PORT@|$engine_port|g" \
    -e "s|@VERBOSE@|$verbose|g" -e "s|@BROKER@|$broker|g" \
    -e "s|@METRICS@|$metrics|g" -e "s|@METRICS_TOKEN@|$metrics_token|g" \
    -e "s|@AUTH_TOKEN@|$([ -n "$auth_token" ] && echo "\"$auth_token\"" || echo nil)|g" \
    -e "s|@CLIENT_RATE@|$client_rate|g" -e "s|@CLIENT_BURST@|$client_burst|g" \
    -e "s|@WS_CONF@|$ws_conf|g" \
    -e "s|@HANDOFF@|$([ "$ws_conf" = "$here/ws_handoff.conf" ] && echo true || echo false)|g" \
    -e "s|@HOST@|$host|g" -e "s|@PORT@|$port|g" -e "s|@STATIC_DIR@|$static_dir|g" \
    "$here/nginx.conf.in" >"$prefix/conf/nginx.conf"

nginx -p "$prefix" -c "$prefix/conf/nginx.conf" -g "daemon off;" &
nginx_pid=$!
stopping=""
# nginx's own SIGTERM/SIGINT is a fast stop that cuts WebSockets without a
# close frame; SIGQUIT is the graceful one that lets the engine send 1001.
on_signal() {
    stopping="$1"
    kill -QUIT "$nginx_pid" 2>/dev/null || true
}
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM

# The address line comes once the engine answers /healthz, directly and
# through nginx: whoever reads it may connect at once. Neither says when
# it is ready, so ask, for at most 15 s.
probe_host="$host"
[ "$probe_host" = 0.0.0.0 ] && probe_host=127.0.0.1
# The engine first, directly: asking nginx before would log an upstream
# error whose URL a reader of this output could take for the address.
if ! python3 - "$engine_port" "$probe_host" "$port" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 15
for url in ("http://127.0.0.1:%s/healthz" % sys.argv[1],
            "http://%s:%s/healthz" % (sys.argv[2], sys.argv[3])):
    while True:
        try:
            if urllib.request.urlopen(url, timeout=1).status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
PY
then
    echo "$prog: nginx or the engine did not come up" >&2
    kill -QUIT "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" || true
    rm -rf "$prefix"
    exit 1
fi
ws_mode=handoff
[ "$ws_conf" = "$here/ws_proxy.conf" ] && ws_mode=proxy
echo "chat server on http://$host:$port/ (nginx pid $nginx_pid, prefix $prefix, engine on 127.0.0.1:$engine_port, /ws by $ws_mode)"
echo "open it in two browser tabs; Ctrl-C to stop"
rc=0
while :; do
    wait "$nginx_pid" && rc=0 || rc=$?
    # wait returns early (> 128) when a trapped signal arrives.
    if kill -0 "$nginx_pid" 2>/dev/null; then continue; fi
    break
done
rm -rf "$prefix"
if [ -n "$stopping" ]; then
    echo "got $stopping, nginx gracefully stopped"
    exit 0
fi
if [ "$rc" = 0 ]; then
    echo "nginx stopped (nginx -s quit or stop)"
    exit 0
fi
echo "nginx exited (status $rc)"
exit 1
