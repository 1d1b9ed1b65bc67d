# shellcheck shell=bash
# Helpers shared by the scripts in this folder; source it, don't run it.

WSN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The Python interpreter the scripts use: $PYTHON if set, else the
# project's .venv (made by setup.sh only when the system Python refuses
# pip installs), else python3 from PATH.
wsn_python() {
    if [ -n "${PYTHON:-}" ]; then
        printf '%s\n' "$PYTHON"
    elif [ -x "$WSN_ROOT/.venv/bin/python" ]; then
        printf '%s\n' "$WSN_ROOT/.venv/bin/python"
    else
        printf '%s\n' python3
    fi
}

wsn_make_venv() {
    if [ ! -x "$WSN_ROOT/.venv/bin/python" ]; then
        python3 -m venv "$WSN_ROOT/.venv"
    fi
}

# Number of parallel build jobs: every core.
wsn_jobs() {
    nproc 2>/dev/null || echo 2
}
