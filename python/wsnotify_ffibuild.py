"""cffi build script for the ``wsnotify._wsnotify`` extension (API mode).

Used by setup.py through ``cffi_modules`` (``make_ffi``). Two ways to build:

* bundled (default): the C core (``core/*.c``) is compiled into the
  extension, which then needs only the system libraries the core links
  (libwebsockets, jansson, ... as named by the repository's CMakeLists.txt);
* system: with ``WSNOTIFY_USE_SYSTEM_LIB=1`` the extension links the
  installed ``libwsnotify`` found through ``pkg-config wsnotify``.

The cdef is ``include/wsnotify_ffi.h``, the macro-free declarations that
scripts/gen_ffi_header.py generates from ``wsnotify.h`` (a ctest fails when
the two drift apart), so the binding never drifts from the header.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

# Where the C sources are: "csrc/" inside the package tree (an sdist, where
# setup.py's sdist command copied them), else the repository around python/.
CSRC = os.path.join(HERE, "csrc")
REPO = os.path.dirname(HERE)

# Used when CMakeLists.txt cannot be read: the pkg-config modules the core
# links. Extend here only if CMakeLists.txt is not available.
DEFAULT_PKG_MODULES = ["libwebsockets", "jansson", "msgpack", "libsodium", "hiredis", "openssl"]


def use_system_lib() -> bool:
    return os.environ.get("WSNOTIFY_USE_SYSTEM_LIB", "").strip().lower() in (
        "1", "yes", "true", "on")


def source_root() -> str:
    """The directory holding include/wsnotify.h and core/*.c."""
    for root in (CSRC, REPO):
        if os.path.isfile(os.path.join(root, "include", "wsnotify.h")):
            return root
    raise RuntimeError(
        "wsnotify C sources not found: expected include/wsnotify.h in "
        f"{CSRC} (sdist) or {REPO} (repository checkout)")


def core_sources(root: str) -> list:
    """Every .c under core/ (its layer folders), sorted: new files join the
    build by themselves."""
    srcs = sorted(glob.glob(os.path.join(root, "core", "**", "*.c"),
                            recursive=True))
    if not srcs:
        raise RuntimeError(
            f"no C sources in {os.path.join(root, 'core')}: the core is "
            "missing (set WSNOTIFY_USE_SYSTEM_LIB=1 to link an installed "
            "libwsnotify instead)")
    return srcs


def cmake_pkg_requirements(root: str) -> list:
    """The pkg-config modules the core links, with the version ranges
    CMakeLists.txt requires: the module specs of its wsn_pkg_check() and
    pkg_check_modules() calls, as pkg-config takes them ("libwebsockets >=
    4.1", "libwebsockets < 4.2", "jansson", ...)."""
    path = os.path.join(root, "CMakeLists.txt")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return list(DEFAULT_PKG_MODULES)
    keywords = {"REQUIRED", "QUIET", "NO_CMAKE_PATH",
                "NO_CMAKE_ENVIRONMENT_PATH", "IMPORTED_TARGET", "GLOBAL"}
    reqs = []
    calls = r"(?:wsn_pkg_check|pkg_check_modules)\s*\(([^)]*)\)"
    for m in re.finditer(calls, text, re.I):
        # CMake's quoting is close enough to the shell's for these calls
        words = shlex.split(m.group(1))[1:]  # first: the prefix variable
        for w in words:
            if w in keywords or w.startswith("${"):
                continue
            sm = re.fullmatch(r"([^<>=\s]+)\s*(?:([<>=]+)\s*(\S+))?", w)
            if not sm:
                continue
            spec = sm.group(1) if not sm.group(2) else " ".join(sm.groups())
            if spec not in reqs:
                reqs.append(spec)
    return reqs or list(DEFAULT_PKG_MODULES)


def cmake_pkg_modules(root: str) -> list:
    """The module names of cmake_pkg_requirements(), once each."""
    mods = []
    for spec in cmake_pkg_requirements(root):
        name = spec.split()[0]
        if name not in mods:
            mods.append(name)
    return mods


def pkg_config(args: list) -> list:
    try:
        out = subprocess.run(["pkg-config"] + args, check=True,
                             capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise RuntimeError("pkg-config is not installed") from None
    except subprocess.CalledProcessError as e:
        raise RuntimeError(
            f"pkg-config {' '.join(shlex.quote(a) for a in args)} failed: "
            f"{e.stderr.strip()}") from None
    return shlex.split(out)


def split_flags(flags: list) -> dict:
    res = {"include_dirs": [], "library_dirs": [], "libraries": [],
           "extra_compile_args": [], "extra_link_args": []}
    for f in flags:
        if f.startswith("-I"):
            res["include_dirs"].append(os.path.normpath(f[2:]))
        elif f.startswith("-L"):
            res["library_dirs"].append(os.path.normpath(f[2:]))
        elif f.startswith("-l"):
            res["libraries"].append(f[2:])
        elif f == "-pthread":
            res["extra_compile_args"].append(f)
            res["extra_link_args"].append(f)
        else:
            res["extra_link_args"].append(f)
    return res


# The version macros are the one thing of wsnotify.h that wsnotify_ffi.h
# leaves out (it has no #define); "..." makes cffi take their values from
# the header the extension is compiled with.
VERSION_CDEF = """
#define WSN_VERSION_MAJOR ...
#define WSN_VERSION_MINOR ...
#define WSN_VERSION_PATCH ...
"""


# What the binding declares beyond wsnotify_ffi.h: only what cffi itself
# needs. The origin check is the one callback the binding offers (opt-in,
# it runs on the core's I/O thread during a handshake); cffi generates its C
# trampoline from this declaration. Events, log lines and room for publishes
# are all pulled through the public API.
CALLBACK_CDEF = r"""
extern "Python" int _wsnpy_origin_cb(void *user, const char *origin,
                                     const char *host);
"""

# Argument shims, no engine logic: cffi passes bytes for char * but not
# for the core's const void *, and wants a size_t cell for an out-length
# that Python would otherwise allocate per call; json_get_string of a
# small text returns where the value is instead of copying it out. Events in batches are the
# core's own call (wsn_server_take_events, since 0.3). Built with the
# extension, never exported.
BINDING_CDEF = r"""
int wsnpy_publish(wsn_server *srv, const char *channel, const char *json,
                  size_t len, int flags);
int64_t wsnpy_json_get_string(const char *json, size_t len, const char *key,
                              char *out, size_t cap);
int64_t wsnpy_json_string_span(const char *json, size_t len, const char *key);
"""

BINDING_SOURCE = r"""
#include <stdint.h>
#include <string.h> /* memmem: _GNU_SOURCE (define_macros; Python.h too) */

/* publish() of JSON text with its length: one call, and bytes go in as
 * they are. */
static int wsnpy_publish(wsn_server *srv, const char *channel,
                         const char *json, size_t len, int flags)
{
    return wsn_server_publish_ex(srv, NULL, channel, WSN_TYPE_JSON, json,
                                 len, NULL, NULL, flags);
}

/* wsn_json_get_string with the length as the result (>= 0) or the code
 * (< 0): Python passes a bytearray as out and needs no size_t cell. */
static int64_t wsnpy_json_get_string(const char *json, size_t len,
                                     const char *key, char *out, size_t cap)
{
    size_t n = 0;
    int rc = wsn_json_get_string(json, len, key, out, cap, &n);
    return rc != 0 ? (int64_t)rc : (int64_t)n;
}

/* wsn_json_get_string for text Python already holds as bytes, without an
 * output buffer: the decoded value is looked for in the text itself and
 * its place returned, offset << 32 | length, so Python slices bytes it
 * has (no per-thread buffer, no copy out of C). Equal bytes are the same
 * string wherever they are found. WSNPY_SPAN_NONE when the value is not
 * in the text as it is (it had escapes), is longer than the stack buffer,
 * or the text is too big to pack: then the buffer call is used. Else the
 * code of wsn_json_get_string (< 0). */
#define WSNPY_SPAN_NONE INT64_MIN
/* memmem's worst case (a text of near misses of the value) is about ten
 * times the core's scan of the same text, so only texts this small are
 * searched: there the slice saves most, and a hostile one costs little. */
#define WSNPY_SPAN_MAX_TEXT 4096
static int64_t wsnpy_json_string_span(const char *json, size_t len,
                                      const char *key)
{
    char val[256];
    size_t n = 0;
    if (len > WSNPY_SPAN_MAX_TEXT)
        return WSNPY_SPAN_NONE;
    int rc = wsn_json_get_string(json, len, key, val, sizeof(val), &n);
    if (rc == WSN_ENOSPC)
        return WSNPY_SPAN_NONE;
    if (rc != 0)
        return (int64_t)rc;
    if (n == 0)
        return 0;
    const char *p = memmem(json, len, val, n);
    if (!p)
        return WSNPY_SPAN_NONE;
    return ((int64_t)(p - json) << 32) | (int64_t)n;
}
"""

# The source cffi compiles: the header, so that the version macros and
# every declaration are checked by the C compiler against wsnotify_ffi.h;
# then the binding's helpers.
SOURCE = '#include "wsnotify.h"\n' + BINDING_SOURCE

# The oldest header this binding can be built from: 0.3 brought events in
# batches (wsn_server_take_events); 0.2 wsn_event_get_info,
# wsn_server_next_log, the NONBLOCK publishes and the room fd.
MIN_VERSION = (0, 3)


def read_version(header_text: str) -> str:
    parts = []
    for name in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(rf"#define\s+WSN_VERSION_{name}\s+(\d+)", header_text)
        if not m:
            raise RuntimeError(f"WSN_VERSION_{name} not found in wsnotify.h")
        parts.append(m.group(1))
    return ".".join(parts)


def system_header() -> str:
    for flag in pkg_config(["--cflags-only-I", "wsnotify"]):
        cand = os.path.join(flag[2:], "wsnotify.h")
        if os.path.isfile(cand):
            return cand
    incdir = pkg_config(["--variable=includedir", "wsnotify"])
    for d in incdir + ["/usr/local/include", "/usr/include"]:
        cand = os.path.join(d, "wsnotify.h")
        if os.path.isfile(cand):
            return cand
    raise RuntimeError("wsnotify.h not found via pkg-config wsnotify")


def header_path() -> str:
    if use_system_lib():
        return system_header()
    return os.path.join(source_root(), "include", "wsnotify.h")


def ffi_header_path() -> str:
    """include/wsnotify_ffi.h, the declarations of wsnotify.h for FFIs,
    installed (and carried in the sdist) next to wsnotify.h."""
    hpath = header_path()
    path = os.path.join(os.path.dirname(hpath), "wsnotify_ffi.h")
    if not os.path.isfile(path):
        raise RuntimeError(
            f"{path} not found next to {hpath}: that libwsnotify predates "
            "the FFI declaration file (installed since 0.2); install a newer "
            "one, or generate it with the repository's "
            "scripts/gen_ffi_header.py")
    return path


def read_cdef() -> str:
    with open(ffi_header_path(), encoding="utf-8") as f:
        return f.read()


def make_ffi() -> FFI:
    hpath = header_path()

    with open(hpath, encoding="utf-8") as f:
        version = read_version(f.read())
    if tuple(int(p) for p in version.split(".")[:2]) < MIN_VERSION:
        raise RuntimeError(
            f"{hpath} is wsnotify {version}; this binding needs "
            f"{'.'.join(map(str, MIN_VERSION))} or newer")

    ffi = FFI()
    ffi.cdef(read_cdef())
    ffi.cdef(VERSION_CDEF)
    ffi.cdef(CALLBACK_CDEF)
    ffi.cdef(BINDING_CDEF)

    kw = {"include_dirs": [], "library_dirs": [], "libraries": [],
          "extra_compile_args": [], "extra_link_args": [],
          "define_macros": [], "sources": []}
    if use_system_lib():
        flags = split_flags(pkg_config(["--cflags", "--libs", "wsnotify"]))
        for k, v in flags.items():
            kw[k] += v
        kw["include_dirs"].append(os.path.dirname(hpath))
        libdir = [os.path.normpath(d) for d in
                  pkg_config(["--variable=libdir", "wsnotify"])]
        if libdir and libdir[0] not in ("/usr/lib", "/lib", "/usr/lib64",
                                        "/usr/lib/x86_64-linux-gnu"):
            # a private prefix: find the library there at run time too
            kw["extra_link_args"].append(f"-Wl,-rpath,{libdir[0]}")
        if "wsnotify" not in kw["libraries"]:
            kw["libraries"].append("wsnotify")
        kw["define_macros"].append(("_GNU_SOURCE", "1"))  # memmem
    else:
        root = source_root()
        kw["sources"] = core_sources(root)
        kw["include_dirs"] += [os.path.join(root, "include"),
                               os.path.join(root, "core")]
        # pkg-config refuses versions outside CMakeLists.txt's ranges, with
        # the one it found: the bundled build links what CMake would.
        reqs = cmake_pkg_requirements(root)
        flags = split_flags(pkg_config(["--cflags", "--libs"] + reqs))
        for k, v in flags.items():
            kw[k] += v
        if "pthread" not in kw["libraries"]:
            kw["libraries"].append("pthread")
        # Only PyInit_* leaves the extension: the core's wsn_* symbols stay
        # private to it, so two copies (extension + libwsnotify) never clash.
        kw["define_macros"] += [("WSN_API", ""), ("_GNU_SOURCE", "1"),
                                ("NDEBUG", "1")]
        kw["extra_compile_args"] += ["-std=gnu11", "-fvisibility=hidden"]

    ffi.set_source("wsnotify._wsnotify", SOURCE, **kw)
    return ffi


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--cdef":
        print(read_cdef(), end="")
    else:
        make_ffi().compile(verbose=True)
