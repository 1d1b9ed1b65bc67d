"""Build of the wsnotify Python package (metadata lives in pyproject.toml).

The extension is built by cffi from wsnotify_ffibuild.py. The C sources
come from the repository around python/ (core/, include/); `setup.py sdist`
(and so `python -m build`) copies them into the sdist under csrc/ so that
the sdist builds anywhere. WSNOTIFY_USE_SYSTEM_LIB=1 links the installed
libwsnotify (pkg-config wsnotify) instead of compiling the core in.
"""

import glob
import os
import re
import shutil
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CSRC = os.path.join(HERE, "csrc")


def source_root():
    for root in (CSRC, REPO):
        if os.path.isfile(os.path.join(root, "include", "wsnotify.h")):
            return root
    raise RuntimeError("wsnotify.h not found (neither csrc/ nor ../include/)")


def version():
    """The version of the header the extension is built from: the
    installed one with WSNOTIFY_USE_SYSTEM_LIB=1, else the bundled one."""
    sys.path.insert(0, HERE)
    try:
        from wsnotify_ffibuild import header_path
    finally:
        sys.path.pop(0)
    with open(header_path(), encoding="utf-8") as f:
        text = f.read()
    parts = [re.search(rf"#define\s+WSN_VERSION_{n}\s+(\d+)", text).group(1)
             for n in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def c_source_files(root):
    """(source path, path relative to csrc/) of everything the bundled
    build needs: core/**/*.c, core/**/*.h, include/*.h, CMakeLists.txt (which
    names the pkg-config modules the core links), LICENSE if any."""
    files = []
    for pattern in ("core/**/*.c", "core/**/*.h", "include/*.h"):
        for p in sorted(glob.glob(os.path.join(root, pattern), recursive=True)):
            files.append((p, os.path.relpath(p, root)))
    for name in ("CMakeLists.txt", "LICENSE", "LICENSE.md", "LICENSE.txt"):
        p = os.path.join(root, name)
        if os.path.isfile(p):
            files.append((p, name))
    return files


class sdist_with_c_sources(sdist):
    """Puts the C core into the sdist (csrc/), taken from the repository."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = source_root()
        dest = os.path.join(base_dir, "csrc")
        if os.path.abspath(root) == os.path.abspath(CSRC):
            return  # building an sdist from an sdist: csrc/ came along
        for src, rel in c_source_files(root):
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(src, target)


class build_ext_always(build_ext):
    """Always rebuilds: pip builds in python/build/, whose leftovers may
    come from the other mode (bundled / WSNOTIFY_USE_SYSTEM_LIB) or from an
    older core (a changed core/*.h does not make setuptools recompile)."""

    def run(self):
        self.force = True  # (set here: the option is reset after init)
        super().run()


setup(
    version=version(),
    cffi_modules=["wsnotify_ffibuild.py:make_ffi"],
    cmdclass={"sdist": sdist_with_c_sources, "build_ext": build_ext_always},
    zip_safe=False,
)
