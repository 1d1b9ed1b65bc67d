"""The binding's cdef is include/wsnotify_ffi.h (generated from wsnotify.h):
cffi must take it as is, and the built extension must expose every function
it declares."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from wsnotify._core import lib

PYDIR = Path(__file__).resolve().parents[1]
HEADER = PYDIR.parent / "include" / "wsnotify.h"

pytestmark = pytest.mark.skipif(not HEADER.is_file(),
                                reason="not in a repository checkout")


def load_build_script():
    spec = importlib.util.spec_from_file_location(
        "wsnotify_ffibuild_test", PYDIR / "wsnotify_ffibuild.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cdef_parses_and_matches_extension():
    from cffi import FFI
    b = load_build_script()
    cdef = b.read_cdef()
    assert b.ffi_header_path() == str(HEADER.with_name("wsnotify_ffi.h"))
    assert "WSN_API" not in cdef and "#" not in cdef
    f = FFI()
    f.cdef(cdef)  # cffi accepts it as is
    names = set(re.findall(r"\b(wsn_[a-z0-9_]+)\s*\(", cdef))
    assert "wsn_server_publish" in names
    missing = sorted(n for n in names if not hasattr(lib, n))
    assert missing == [], "the installed extension is older than the header"


def test_version_macros_in_cdef():
    b = load_build_script()
    assert b.read_version(HEADER.read_text()) == "%d.%d.%d" % (
        lib.WSN_VERSION_MAJOR, lib.WSN_VERSION_MINOR, lib.WSN_VERSION_PATCH)


def test_pkg_modules_from_cmake():
    b = load_build_script()
    mods = b.cmake_pkg_modules(str(PYDIR.parent))
    assert mods == ["libwebsockets", "jansson", "msgpack", "libsodium", "hiredis", "openssl"]
    reqs = b.cmake_pkg_requirements(str(PYDIR.parent))
    assert "libwebsockets >= 4.1" in reqs and "libwebsockets < 4.2" in reqs


def test_pkg_requirements_parsed(tmp_path):
    """Version constraints, quoted or not, spaced or not, come out as
    pkg-config module specs; keywords and variables are skipped."""
    (tmp_path / "CMakeLists.txt").write_text(
        "wsn_pkg_check(LWS libwebsockets>=4.1 libwebsockets<4.2)\n"
        'pkg_check_modules(J REQUIRED IMPORTED_TARGET "jansson >= 2.14")\n'
        "pkg_check_modules(M QUIET msgpack ${EXTRA} GLOBAL)\n")
    b = load_build_script()
    assert b.cmake_pkg_requirements(str(tmp_path)) == [
        "libwebsockets >= 4.1", "libwebsockets < 4.2", "jansson >= 2.14",
        "msgpack"]
    assert b.cmake_pkg_modules(str(tmp_path)) == [
        "libwebsockets", "jansson", "msgpack"]


def test_core_sources_globbed():
    b = load_build_script()
    srcs = b.core_sources(str(PYDIR.parent))
    assert srcs == sorted(srcs) and all(s.endswith(".c") for s in srcs)
    # every layer folder under core/ is taken, not only its top level
    for rel in ("/core/shell/server.c", "/core/engine/delivery.c",
                "/core/transport/loop.c"):
        assert any(s.endswith(rel) for s in srcs), rel
