#!/usr/bin/env bash
# Builds wsnotify and runs the C chat example on http://localhost:8080
# (open it in two browser tabs). Arguments go to the server:
#
#   bash scripts/run-chat.sh                    # 127.0.0.1:8080
#   bash scripts/run-chat.sh --port 9000
#   bash scripts/run-chat.sh --host 0.0.0.0     # reachable from other hosts
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"

WSN_SETUP_SKIP_PYTHON=1 bash "$here/setup.sh"

build="${WSN_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DWSN_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$build" --target wsnotify-chat -j "$(wsn_jobs)"

exec "$build/examples/wsnotify-chat" --static-dir "$root/examples/chat" "$@"
