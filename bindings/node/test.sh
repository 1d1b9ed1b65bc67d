#!/usr/bin/env bash
# Builds and tests the Node.js binding: installs what is missing (the
# Debian -dev packages through scripts/setup.sh, Node and npm from Debian
# if absent, the npm packages of package-lock.json from the registry),
# builds the addon with warnings as errors, runs the node:test suites,
# `tsc --noEmit` over test/types.ts, then packs the package and installs
# the tarball into an empty folder offline (no ~/.npmrc) and runs it, and
# checks WSNOTIFY_USE_SYSTEM_LIB=1 against the repository's library
# installed into a temporary prefix.
# Idempotent; exits non-zero on any failure. node --test's closing lines
# ("ℹ pass N", "ℹ fail N") are the counts.
#
# WSN_NODE_ASAN=1: the addon and the core built with ASan+UBSan, and node
# run with gcc's runtimes preloaded (leak checks off: node's own
# allocations at exit are not ours).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"

step() { printf '\n== node: %s\n' "$*"; }

step "prerequisites"
if ! pkg-config --exists libwebsockets jansson msgpack 2>/dev/null ||
   ! command -v cmake >/dev/null; then
    WSN_SETUP_SKIP_PYTHON=1 bash "$root/scripts/setup.sh"
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    apt-get install -y nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 18 ]; then
    echo "node $(node --version) is too old: 18 or later is needed" >&2
    exit 1
fi
echo "node $(node --version), npm $(npm --version)"

step "npm packages"
npm_flags=(--no-audit --no-fund --no-update-notifier)
# The lock file pins ws, typescript, @types/node and node-api-headers;
# install only when node_modules is missing or older than the lock.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --ignore-scripts "${npm_flags[@]}"
    touch node_modules
fi

run_node=()
if [ "${WSN_NODE_ASAN:-0}" = 1 ]; then
    export WSNOTIFY_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
    export WSNOTIFY_LDFLAGS="-fsanitize=address,undefined"
    run_node=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
              ASAN_OPTIONS=detect_leaks=0)
fi

step "build (warnings are errors)"
WSNOTIFY_WERROR=1 node build.js

step "tsc --noEmit test/types.ts"
./node_modules/.bin/tsc -p test/tsconfig.json

step "pack, install into an empty folder offline"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" "${npm_flags[@]}" >/dev/null
mkdir "$tmp/app"
printf '{"name":"app","version":"1.0.0","private":true}\n' >"$tmp/app/package.json"
(cd "$tmp/app" && npm install --offline --userconfig /dev/null "${npm_flags[@]}" \
    "$tmp"/wsnotify-*.tgz >/dev/null)
(cd "$tmp/app" && "${run_node[@]}" node -e '
const { Server, cVersion } = require("wsnotify");
(async () => {
  const s = new Server({ host: "127.0.0.1", port: 0 });
  await s.start();
  const port = s.port;
  const clean = await s.shutdown(1000);
  if (!(port > 0) || !clean) process.exit(1);
  console.log(`packed wsnotify ${cVersion} installed, served on port ${port} and stopped`);
})();')

step "system library: WSNOTIFY_USE_SYSTEM_LIB=1 against an installed libwsnotify"
# The repository's library installed into a temporary prefix (library
# only), the addon built against it in a copy of the package, one smoke
# with no LD_LIBRARY_PATH, then what the addon links: libwsnotify.so.0
# from that prefix through its rpath, and no core symbol of its own.
sys="$tmp/syslib"
cmake -S "$root" -B "$sys/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DWSN_BUILD_TESTS=OFF -DWSN_BUILD_EXAMPLES=OFF -DWSN_BUILD_LUA=OFF >/dev/null
cmake --build "$sys/build" -j2 --target wsnotify wsnotify_static >/dev/null
cmake --install "$sys/build" --prefix "$sys/prefix" >/dev/null
pc="$(find "$sys/prefix" -name wsnotify.pc -print -quit)"
libdir="$(cd "$(dirname "$pc")/.." && pwd -P)"
mkdir "$sys/pkg"
cp -r package.json index.js index.d.ts build.js src "$sys/pkg/"
(cd "$sys/pkg" && WSNOTIFY_USE_SYSTEM_LIB=1 WSNOTIFY_WERROR=1 \
    PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
    node build.js >/dev/null)
addon="$sys/pkg/build/wsnotify.node"
env -u LD_LIBRARY_PATH "${run_node[@]}" node test/fixtures/syslib-smoke.js "$sys/pkg"
# Listings go to files before grep -q: piped, grep quitting at the first
# match could kill the lister with SIGPIPE and fail the pipe.
env -u LD_LIBRARY_PATH ldd "$addon" >"$sys/ldd.txt"
readelf -d "$addon" >"$sys/dynamic.txt"
nm --defined-only "$addon" >"$sys/defined.txt"
nm -D --undefined-only "$addon" >"$sys/imports.txt"
nm --defined-only build/wsnotify.node >"$sys/embedded.txt"
linked="$(awk '$1 == "libwsnotify.so.0" { print $3 }' "$sys/ldd.txt")"
if [ -z "$linked" ] ||
   [ "$(readlink -f "$linked")" != "$(readlink -f "$libdir/libwsnotify.so.0")" ]; then
    echo "the addon links '$linked', not $libdir/libwsnotify.so.0" >&2
    cat "$sys/ldd.txt" >&2
    exit 1
fi
grep -q "NEEDED.*\[libwsnotify\.so\.0\]" "$sys/dynamic.txt" &&
    grep -qF "PATH)" "$sys/dynamic.txt" && grep -qF "[$libdir]" "$sys/dynamic.txt" || {
    echo "no NEEDED libwsnotify.so.0 with rpath $libdir in the addon" >&2
    cat "$sys/dynamic.txt" >&2; exit 1; }
# The embedded build holds the core's functions (the control); this one
# only imports them.
grep -q ' wsn_server_new$' "$sys/embedded.txt" || {
    echo "control failed: the embedded addon has no wsn_server_new" >&2; exit 1; }
if grep -E ' wsni?_' "$sys/defined.txt" >"$sys/own.txt"; then
    echo "the system-lib addon defines core symbols:" >&2
    head "$sys/own.txt" >&2
    exit 1
fi
grep -Eq ' U wsn_server_new(@|$)' "$sys/imports.txt" || {
    echo "the system-lib addon does not import wsn_server_new" >&2; exit 1; }
echo "system-lib addon links $linked by its rpath and holds no core symbol"

step "node --test"
"${run_node[@]}" node --test --test-reporter=spec test/*.test.js
