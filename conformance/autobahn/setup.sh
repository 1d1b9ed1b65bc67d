#!/usr/bin/env bash
# Installs Autobahn|Testsuite (`wstest`) into a Python 2.7 virtualenv and
# prints the path of its wstest on the last line of stdout.
#
# autobahntestsuite (PyPI, latest 25.10.1) is Python 2.7 only: its pinned
# dependencies (autobahn 0.10.9, Twisted 19.10) do not import on Python 3.
# Debian 12 has no python2 package; this machine's pyenv has 2.7.18. We
# look for a Python 2.7 interpreter in this order: $WSN_PYTHON2,
# python2.7 on PATH, pyenv's versions/2.7*/bin/python2.7. The virtualenv
# is made by virtualenv 20.21.1 (the last release that can create Python
# 2.7 environments), itself installed with pip into the cache folder.
#
# Cache: ${WSN_AUTOBAHN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/wsnotify-autobahn}
# (reused by every build directory; delete it to reinstall).
set -euo pipefail

AB_VERSION=25.10.1
VENV_TOOL_VERSION=20.21.1
home="${WSN_AUTOBAHN_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/wsnotify-autobahn}"
venv="$home/venv-$AB_VERSION"
py3="${PYTHON3:-python3}"

if [ -x "$venv/bin/wstest" ] && "$venv/bin/python" -c 'import autobahntestsuite' 2>/dev/null; then
    echo "$venv/bin/wstest"
    exit 0
fi

find_python2() {
    if [ -n "${WSN_PYTHON2:-}" ]; then echo "$WSN_PYTHON2"; return 0; fi
    if command -v python2.7 >/dev/null 2>&1 && python2.7 -c 'import sys; assert sys.version_info[:2] == (2, 7)' 2>/dev/null; then
        command -v python2.7; return 0
    fi
    local root
    root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
    for p in "$root"/versions/2.7*/bin/python2.7; do
        if [ -x "$p" ]; then echo "$p"; return 0; fi
    done
    return 1
}

if ! py2="$(find_python2)"; then
    echo "autobahn setup: no Python 2.7 interpreter found (set WSN_PYTHON2, or install" >&2
    echo "  one with pyenv: autobahntestsuite runs on Python 2.7 only)" >&2
    exit 1
fi
echo "autobahn setup: Python 2.7 at $py2" >&2

mkdir -p "$home"
rm -rf "$venv" "$home/vtool"
"$py3" -m pip install --disable-pip-version-check -q --root-user-action=ignore \
    --target "$home/vtool" "virtualenv==$VENV_TOOL_VERSION" >&2
PYTHONPATH="$home/vtool" "$py3" -m virtualenv -q -p "$py2" "$venv" >&2
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! "$venv/bin/pip" install --disable-pip-version-check -q \
    -c "$here/constraints-py27.txt" "autobahntestsuite==$AB_VERSION" >"$home/pip.log" 2>&1; then
    tail -n 30 "$home/pip.log" >&2
    echo "autobahn setup: pip install autobahntestsuite==$AB_VERSION failed" >&2
    exit 1
fi
"$venv/bin/python" -c 'import autobahntestsuite' >&2
echo "$venv/bin/wstest"
