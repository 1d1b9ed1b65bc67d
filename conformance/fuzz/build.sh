#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# from every .c under core/ and conformance/fuzz/fuzz_*.c. Needs clang and its
# libFuzzer runtime (Debian: clang-14 + libclang-rt-14-dev).
#
#   conformance/fuzz/build.sh OUTDIR        -> OUTDIR/fuzz_<target>
#
# CC overrides the compiler (default: clang-14, else clang).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:?usage: build.sh OUTDIR}"
cc="${CC:-$(command -v clang-14 || command -v clang || true)}"
[ -n "$cc" ] || { echo "build.sh: clang not found" >&2; exit 1; }
mkdir -p "$out/obj"
deps_cflags="$(pkg-config --cflags libwebsockets jansson msgpack libsodium hiredis openssl)"
deps_libs="$(pkg-config --libs libwebsockets jansson msgpack libsodium hiredis openssl) -lpthread"
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
       -fno-sanitize-recover=undefined -D_GNU_SOURCE -std=c11
       -I"$root/include" -I"$root/core")
objs=()
# Any header may change a struct every object shares (server.h): an object
# older than the newest header is rebuilt, or the targets mix layouts.
newest_header="$(ls -t $(find "$root/core" -name '*.h') "$root"/include/*.h | head -n 1)"
while IFS= read -r src; do
    rel="${src#"$root"/core/}"
    obj="$out/obj/${rel//\//-}"
    obj="${obj%.c}.o"
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$here/build.sh" -nt "$obj" ] ||
        [ "$newest_header" -nt "$obj" ]; then
        # shellcheck disable=SC2086
        "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -fvisibility=hidden $deps_cflags \
            -c "$src" -o "$obj"
    fi
    objs+=("$obj")
done < <(find "$root/core" -name '*.c' | sort)
for src in "$here"/fuzz_*.c; do
    name="$(basename "${src%.c}")"
    # shellcheck disable=SC2086
    "$cc" "${flags[@]}" -fsanitize=fuzzer $deps_cflags "$src" "${objs[@]}" \
        $deps_libs -o "$out/$name"
    echo "built $out/$name"
done
