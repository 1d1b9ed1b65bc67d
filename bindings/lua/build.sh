#!/usr/bin/env bash
# Builds the Lua C module wsnotify.core for one Lua ABI into a tree that
# LUA_CPATH can point at:
#   bash bindings/lua/build.sh 5.1 OUT_DIR LIB_DIR   (5.1 also serves LuaJIT)
#   bash bindings/lua/build.sh 5.4 OUT_DIR LIB_DIR
# LIB_DIR holds libwsnotify.so (the repository's CMake build); it is
# written into the module's RUNPATH so no LD_LIBRARY_PATH is needed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
abi="$1" out="$2" lib="$(cd "$3" && pwd)"
case "$abi" in
    5.1) pc=lua5.1 ;;
    5.4) pc=lua5.4 ;;
    *) echo "build.sh: Lua ABI 5.1 or 5.4, not '$abi'" >&2; exit 2 ;;
esac
mkdir -p "$out/wsnotify"
# shellcheck disable=SC2046
"${CC:-cc}" -std=c11 -O2 -g -fPIC -shared \
    -Wall -Wextra -Wshadow -Wconversion -Wno-sign-conversion -Werror \
    $(pkg-config --cflags "$pc" jansson) -I"$root/include" \
    -o "$out/wsnotify/core.so" "$here"/src/*.c \
    -L"$lib" -lwsnotify $(pkg-config --libs jansson) -Wl,-rpath,"$lib"
