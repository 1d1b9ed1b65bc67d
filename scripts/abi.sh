#!/usr/bin/env bash
# The ABI of libwsnotify, recorded and checked with libabigail (Debian
# package abigail-tools).
#
#   scripts/abi.sh record LIB [INCLUDE_DIR]
#       writes abi/libwsnotify-<version>.abi from LIB (a library built with
#       debug info: the default RelWithDebInfo build/libwsnotify.so), and
#       abi/libwsnotify-<version>.enums, every enumerator of the header in
#       INCLUDE_DIR (default include/: the header LIB was built from).
#       Refuses to change a baseline that exists: a released ABI never
#       changes.
#   scripts/abi.sh check LIB
#       compares LIB with every baseline in abi/ of the same SONAME, and
#       include/ with their enumerators. Additions (functions, variables,
#       enumerators) pass; a function or variable removed or changed, or an
#       enumerator removed or renumbered, fails.
#
# Only what include/ defines counts: the layout of an opaque struct (defined
# in core/) is the core's business, not the ABI's. Growing wsn_event_info
# at its end (which its size field allows) is reported as a change too:
# libabigail 2.2's has_data_member_inserted_between suppression also hid a
# member's type change, so no such exception is made here.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
abidir="$root/abi"
headers="$root/include"

usage() {
    echo "usage: $0 record LIB [INCLUDE_DIR] | check LIB" >&2
    exit 2
}

[ $# -eq 2 ] || { [ $# -eq 3 ] && [ "$1" = record ]; } || usage
verb="$1"
lib="$2"
if [ $# -eq 3 ]; then
    headers="$(cd "$3" && pwd)"
fi
[ -f "$lib" ] || { echo "abi: no such library: $lib" >&2; exit 2; }
for tool in abidw abidiff; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "abi: $tool not found: install abigail-tools (scripts/setup.sh does)" >&2
        exit 2
    }
done

# No paths of this machine, type ids that do not depend on the order types
# are met. Locations stay (file names only): abidiff tells a type of
# include/ (whose change breaks callers) from an opaque one of core/ by
# them; a baseline without them let a field inserted into wsn_event_info
# pass as "filtered out".
abidw_opts=(--headers-dir "$headers" --drop-private-types --no-corpus-path
            --no-comp-dir-path --short-locs --type-id-style hash)

# The version from the real file name (libwsnotify.so.0.1.0).
lib_version() {
    local real
    real="$(basename "$(readlink -f "$1")")"
    if [[ "$real" =~ \.so\.([0-9]+\.[0-9]+\.[0-9]+)$ ]]; then
        echo "${BASH_REMATCH[1]}"
    else
        echo "abi: cannot tell the version of $1 (resolves to $real)" >&2
        exit 2
    fi
}

soname_of_abi() {
    sed -n "1s/.* soname='\([^']*\)'.*/\1/p" "$1"
}

# "NAME = value" for every enumerator of the header in $1, sorted. An enum
# that no signature uses (wsn_status: calls return int) is not in the
# library's ABI as libabigail sees it, yet its numbers are what every
# binding hard-codes from wsnotify_ffi.h.
enumerators() {
    python3 "$root/scripts/gen_ffi_header.py" --header "$1/wsnotify.h" --stdout |
        sed -n 's/^ *\(WSN_[A-Z0-9_]*\) = \(-\{0,1\}[0-9]*\),\{0,1\}$/\1 = \2/p' |
        LC_ALL=C sort
}

# keep TMP OUT: OUT becomes TMP unless it exists (then it must be equal).
keep() {
    local tmp="$1" out="$2" version="$3"
    if [ -f "$out" ]; then
        if cmp -s "$tmp" "$out"; then
            rm -f "$tmp"
            echo "abi: $out is up to date"
            return
        fi
        rm -f "$tmp"
        echo "abi: $out exists and differs from $lib: a recorded ABI never changes" >&2
        echo "abi: (bump the version in include/wsnotify.h, or delete the file if $version was never released)" >&2
        exit 1
    fi
    chmod 644 "$tmp"
    mv "$tmp" "$out"
    echo "abi: recorded $out"
}

record() {
    local version tmp
    version="$(lib_version "$lib")"
    mkdir -p "$abidir"
    tmp="$(mktemp)"
    abidw "${abidw_opts[@]}" --out-file "$tmp" "$lib"
    if ! grep -q "<function-decl name='wsn_version'" "$tmp"; then
        rm -f "$tmp"
        echo "abi: $lib has no debug info for wsn_version: build it with -g (RelWithDebInfo)" >&2
        exit 1
    fi
    keep "$tmp" "$abidir/libwsnotify-$version.abi" "$version"
    tmp="$(mktemp)"
    enumerators "$headers" >"$tmp"
    if ! grep -q '^WSN_EINVAL = -1$' "$tmp"; then
        rm -f "$tmp"
        echo "abi: no enumerators read from $headers/wsnotify.h" >&2
        exit 1
    fi
    keep "$tmp" "$abidir/libwsnotify-$version.enums" "$version"
}

# 0 when include/ keeps every enumerator of the baseline with its value.
check_enums() {
    local enums="$1" gone
    gone="$(LC_ALL=C comm -23 "$enums" <(enumerators "$headers"))"
    if [ -n "$gone" ]; then
        echo "abi: INCOMPATIBLE with $(basename "$enums"): enumerators removed or renumbered:"
        sed 's/^/  was /' <<<"$gone"
        return 1
    fi
    echo "abi: every enumerator of $(basename "$enums") kept"
}

# A suppression of the structs the header declares opaque (typedef struct
# wsn_x wsn_x; with no body): their layout is core/'s. abidiff's own
# --headers-dir2 filter is not used: it also hid a public struct member
# whose type changed to one of a system header (size_t -> uint32_t).
opaque_suppressions() {
    local names
    names="$(sed -n 's/^typedef struct \(wsn_[a-z0-9_]*\) \1;.*/\1/p' "$headers/wsnotify.h" | paste -sd'|')"
    [ -n "$names" ] || { echo "abi: no opaque types found in wsnotify.h" >&2; exit 2; }
    printf '[suppress_type]\n  type_kind = struct\n  name_regexp = ^(%s)$\n' "$names"
}

# 0 when LIB offers everything the baseline offers, unchanged.
check_one() {
    local base="$1" out rc=0 bad
    out="$(abidiff --suppressions "$supp" "$base" "$lib")" || rc=$?
    [ -z "$out" ] || printf '%s\n' "$out"
    # abidiff's exit status is a bit set: 1 error, 2 usage error, 4 some ABI
    # change, 8 an incompatible one (a symbol removed). A changed signature
    # only sets 4, as do additions, so the summary lines tell them apart.
    if [ $((rc & 3)) -ne 0 ]; then
        echo "abi: abidiff failed (exit $rc)"
        return 1
    fi
    if [ $((rc & 8)) -ne 0 ]; then
        echo "abi: INCOMPATIBLE with $(basename "$base"): a symbol was removed"
        return 1
    fi
    bad="$(grep -E 'changes summary:' <<<"$out" |
        grep -E '(^|[^0-9])([1-9][0-9]*) (Removed|Changed)' || true)"
    if [ -n "$bad" ]; then
        echo "abi: INCOMPATIBLE with $(basename "$base"):"
        printf '  %s\n' "$bad"
        return 1
    fi
    echo "abi: compatible with $(basename "$base")$([ $((rc & 4)) -ne 0 ] && echo ' (additions only)')"
}

check() {
    local soname base n=0 failed=0
    supp="$(mktemp)"
    trap 'rm -f "$supp"' EXIT
    opaque_suppressions >"$supp"
    soname="$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')"
    shopt -s nullglob
    for base in "$abidir"/libwsnotify-*.abi; do
        [ "$(soname_of_abi "$base")" = "$soname" ] || continue
        n=$((n + 1))
        echo "== $(basename "$base") vs $lib"
        check_one "$base" || failed=1
        if [ -f "${base%.abi}.enums" ]; then
            check_enums "${base%.abi}.enums" || failed=1
        else
            echo "abi: no ${base%.abi}.enums"
            failed=1
        fi
    done
    if [ "$n" -eq 0 ]; then
        echo "abi: no baseline for $soname in $abidir"
        exit 1
    fi
    exit "$failed"
}

case "$verb" in
record) record ;;
check) check ;;
*) usage ;;
esac
