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
DEFAULT_PKG_MODULES = ["libwebsockets", "jansson", "msgpack"]


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
    """Every core/*.c, sorted: new files join the build by themselves."""
    srcs = sorted(glob.glob(os.path.join(root, "core", "*.c")))
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


# Python-side glue compiled into the extension: a per-server log buffer, so
# that the core's log callback (called on the core's threads) never runs
# Python code (the binding drains it on its own thread), and one call that
# takes an event with all its fields (one C call, one GIL release per event
# instead of one per field). Only the public API is used, so the glue works
# with the bundled core and with a system libwsnotify alike.
# Declared once for both cffi's cdef and the compiled glue.
EVENT_INFO_STRUCT = r"""
typedef struct wsnpy_event_info {
    int kind;
    int type;
    wsn_client *client;
    const char *client_id;
    const char *channel;
    const char *payload;
    size_t payload_len;
    const char *message_id;
    const char *reply_to_id;
} wsnpy_event_info;
"""

GLUE_CDEF = r"""
typedef struct wsnpy_logbuf wsnpy_logbuf;
wsnpy_logbuf *wsnpy_logbuf_new(size_t max_lines);
void wsnpy_logbuf_free(wsnpy_logbuf *b);
int wsnpy_logbuf_install(wsn_options *opts, wsnpy_logbuf *b);
int wsnpy_logbuf_take(wsnpy_logbuf *b, int *level, char *buf, size_t cap,
                      size_t *len, size_t *dropped);
int wsnpy_logbuf_pending(wsnpy_logbuf *b);

""" + EVENT_INFO_STRUCT + r"""int wsnpy_next_event(wsn_server *srv, wsn_event **out,
                     wsnpy_event_info *info);

extern "Python" int _wsnpy_origin_cb(void *user, const char *origin,
                                     const char *host);
"""

GLUE_SOURCE = r"""
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include "wsnotify.h"

struct wsnpy_logline {
    struct wsnpy_logline *next;
    int level;
    size_t len;
    char text[];
};

typedef struct wsnpy_logbuf {
    pthread_mutex_t lock;
    struct wsnpy_logline *head, *tail;
    size_t count, max_lines, dropped;
} wsnpy_logbuf;

static wsnpy_logbuf *wsnpy_logbuf_new(size_t max_lines)
{
    wsnpy_logbuf *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b);
        return NULL;
    }
    b->max_lines = max_lines ? max_lines : 1;
    return b;
}

static void wsnpy_logbuf_free(wsnpy_logbuf *b)
{
    if (!b)
        return;
    while (b->head) {
        struct wsnpy_logline *n = b->head->next;
        free(b->head);
        b->head = n;
    }
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Runs on the core's threads: copies the line, drops the oldest when full. */
static void wsnpy_log_fn(void *user, wsn_log_level level, const char *msg)
{
    wsnpy_logbuf *b = user;
    size_t n = msg ? strlen(msg) : 0;
    struct wsnpy_logline *l = malloc(sizeof(*l) + n + 1);
    if (!l)
        return;
    l->next = NULL;
    l->level = (int)level;
    l->len = n;
    if (n)
        memcpy(l->text, msg, n);
    l->text[n] = '\0';
    pthread_mutex_lock(&b->lock);
    if (b->count >= b->max_lines && b->head) {
        struct wsnpy_logline *old = b->head;
        b->head = old->next;
        if (!b->head)
            b->tail = NULL;
        free(old);
        b->count--;
        b->dropped++;
    }
    if (b->tail)
        b->tail->next = l;
    else
        b->head = l;
    b->tail = l;
    b->count++;
    pthread_mutex_unlock(&b->lock);
}

static int wsnpy_logbuf_install(wsn_options *opts, wsnpy_logbuf *b)
{
    return wsn_options_set_logger(opts, wsnpy_log_fn, b);
}

/* Nonzero when a line (or a count of dropped lines) waits: lets the host
 * skip wsnpy_logbuf_take() on the common path. */
static int wsnpy_logbuf_pending(wsnpy_logbuf *b)
{
    int n;
    pthread_mutex_lock(&b->lock);
    n = b->head != NULL || b->dropped != 0;
    pthread_mutex_unlock(&b->lock);
    return n;
}

/* Takes the oldest line: 1 and the line (truncated to cap), or 0 when
 * empty. *dropped receives (and resets) the count of lines lost. */
static int wsnpy_logbuf_take(wsnpy_logbuf *b, int *level, char *buf,
                             size_t cap, size_t *len, size_t *dropped)
{
    struct wsnpy_logline *l;
    pthread_mutex_lock(&b->lock);
    *dropped = b->dropped;
    b->dropped = 0;
    l = b->head;
    if (l) {
        b->head = l->next;
        if (!b->head)
            b->tail = NULL;
        b->count--;
    }
    pthread_mutex_unlock(&b->lock);
    if (!l)
        return 0;
    *level = l->level;
    *len = l->len < cap ? l->len : cap;
    if (cap)
        memcpy(buf, l->text, *len);
    free(l);
    return 1;
}

""" + EVENT_INFO_STRUCT + r"""
/* wsn_server_next_event() plus every field of the event: 0 with *out (free
 * it with wsn_event_free()) and *info filled (pointers owned by the event),
 * else the error of wsn_server_next_event() (WSN_EAGAIN, WSN_ECLOSED).
 * Message fields are NULL/0 for other kinds. */
static int wsnpy_next_event(wsn_server *srv, wsn_event **out,
                            wsnpy_event_info *info)
{
    const wsn_event *ev;
    int rc = wsn_server_next_event(srv, out);
    memset(info, 0, sizeof(*info));
    if (rc != 0)
        return rc;
    ev = *out;
    info->kind = (int)wsn_event_kind(ev);
    info->client = wsn_event_client(ev);
    info->client_id = wsn_event_client_id(ev);
    if (info->kind == WSN_EVENT_MESSAGE) {
        info->type = (int)wsn_event_message_type(ev);
        info->channel = wsn_event_channel(ev);
        info->payload = (const char *)wsn_event_payload(ev, &info->payload_len);
        info->message_id = wsn_event_message_id(ev);
        info->reply_to_id = wsn_event_reply_to_id(ev);
    }
    return 0;
}
"""


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

    ffi = FFI()
    ffi.cdef(read_cdef())
    ffi.cdef(VERSION_CDEF)
    ffi.cdef(GLUE_CDEF)

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

    ffi.set_source("wsnotify._wsnotify", GLUE_SOURCE, **kw)
    return ffi


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--cdef":
        print(read_cdef(), end="")
    else:
        make_ffi().compile(verbose=True)
