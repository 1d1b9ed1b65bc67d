#!/usr/bin/env python3
"""Feeds include/wsnotify_ffi.h to cffi's FFI().cdef as it is, then opens
the built library through it: every function the file declares must resolve,
and every wsn_* function the library exports must be declared (a call added
to the core but not to the header, or the other way round, fails here).

    check_cffi.py FFI_HEADER LIBRARY
"""

import re
import subprocess
import sys

import cffi


def exported(lib: str) -> set:
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("T", "W"):
            name = parts[2].split("@")[0]
            if name.startswith("wsn_"):
                names.add(name)
    return names


def main() -> int:
    header, lib = sys.argv[1], sys.argv[2]
    with open(header, encoding="utf-8") as f:
        text = f.read()
    ffi = cffi.FFI()
    ffi.cdef(text)  # raises cffi.CDefError on anything it cannot take
    handle = ffi.dlopen(lib)
    declared = set(re.findall(r"\b(wsn_\w+)\s*\(", text))
    failed = 0
    for name in sorted(declared):
        try:
            getattr(handle, name)
        except AttributeError as e:
            print(f"declared but not in {lib}: {name} ({e})")
            failed += 1
    for name in sorted(exported(lib) - declared):
        print(f"exported by {lib} but not declared: {name}")
        failed += 1
    version = ffi.string(handle.wsn_version_string()).decode()
    print(f"cffi: {len(declared)} functions declared, all resolved in "
          f"{version}" if not failed else f"cffi: {failed} mismatches")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
