"""Loads the compiled extension and refuses a C library of another major
version than this package was written for."""

from __future__ import annotations

from typing import Tuple

try:
    from ._wsnotify import ffi, lib
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError(
        "wsnotify's C extension (wsnotify._wsnotify) is missing or cannot "
        f"be loaded: {e}. Reinstall with `pip install ./python` from the "
        "wsnotify repository (see python/README.md)") from e

#: The C API major version this Python code was written against.
SUPPORTED_MAJOR = 0


def check_version(library_number: int, header_major: int,
                  supported_major: int = SUPPORTED_MAJOR) -> None:
    """Raises ImportError unless the loaded library, the header the extension
    was compiled with and this package agree on the major version."""
    lib_major = library_number // 10000
    if header_major != supported_major:
        raise ImportError(
            f"wsnotify: the extension was built from wsnotify.h major "
            f"version {header_major}, but this Python package supports major "
            f"version {supported_major}")
    if lib_major != header_major:
        raise ImportError(
            f"wsnotify: the loaded C library is version "
            f"{lib_major}.{library_number // 100 % 100}.{library_number % 100}"
            f" (major {lib_major}), but the extension was built for major "
            f"version {header_major}: refusing to run against it")


def _version_tuple(number: int) -> Tuple[int, int, int]:
    return (number // 10000, number // 100 % 100, number % 100)


HEADER_VERSION: Tuple[int, int, int] = (
    lib.WSN_VERSION_MAJOR, lib.WSN_VERSION_MINOR, lib.WSN_VERSION_PATCH)
C_VERSION_NUMBER: int = lib.wsn_version()
C_VERSION: str = ffi.string(lib.wsn_version_string()).decode("ascii")
C_VERSION_INFO: Tuple[int, int, int] = _version_tuple(C_VERSION_NUMBER)

check_version(C_VERSION_NUMBER, lib.WSN_VERSION_MAJOR)
