#!/usr/bin/env python3
"""Runs one check of this folder against every chat example there is here
(C, Python, Node, Lua, OpenResty), one after the other, and prints each
check's JSON line and a summary; exits 1 if any check failed.

  python3 conformance/hostile/each_chat.py [--only c,python] CHECK.py [check args]

  python3 conformance/hostile/each_chat.py slow_reader_freeze.py --duration 30

An example that cannot run here is skipped with the reason: C needs
build/examples/wsnotify-chat (or $WSN_BUILD_DIR's), Python a wsnotify
importable by this Python, Node bindings/node/build/wsnotify.node, Lua
luajit and build-lua/ (bindings/lua/setup.sh), OpenResty nginx with its
Lua module as well."""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EX = os.path.join(ROOT, "examples")


def examples():
    """name -> (command, None) or (None, why it cannot run here)."""
    build = os.environ.get("WSN_BUILD_DIR", os.path.join(ROOT, "build"))
    c = os.path.join(build, "examples", "wsnotify-chat")
    lua_core = os.path.join(os.environ.get("WSN_LUA_BUILD_DIR", os.path.join(ROOT, "build-lua")),
                            "lua", "5.1", "wsnotify", "core.so")
    found = {
        "c": ([c], None) if os.access(c, os.X_OK) else (None, f"no {c}"),
        "python": ([sys.executable, os.path.join(EX, "python", "chat.py")], None)
        if importlib.util.find_spec("wsnotify") else (None, "wsnotify not importable"),
        "node": (["node", os.path.join(EX, "node", "chat.js")], None)
        if shutil.which("node") and os.path.exists(
            os.path.join(ROOT, "bindings", "node", "build", "wsnotify.node"))
        else (None, "no node or no bindings/node/build/wsnotify.node"),
        "lua": (["luajit", os.path.join(EX, "lua", "chat.lua")], None)
        if shutil.which("luajit") and os.path.exists(lua_core)
        else (None, f"no luajit or no {lua_core}"),
        "openresty": (["bash", os.path.join(EX, "openresty", "run.sh")], None)
        if shutil.which("nginx") and os.path.exists(lua_core)
        and os.path.exists("/usr/lib/nginx/modules/ngx_http_lua_module.so")
        else (None, "no nginx with its Lua module, or no build-lua/"),
    }
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated: c,python,node,lua,openresty")
    ap.add_argument("check", help="a check script of this folder")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="the check's own arguments")
    a = ap.parse_args()
    script = a.check if os.path.isabs(a.check) else os.path.join(HERE, a.check)
    wanted = [n for n in a.only.split(",") if n]
    summary = []
    for name, (cmd, why) in examples().items():
        if wanted and name not in wanted:
            continue
        if cmd is None:
            summary.append((name, "skipped", why))
            continue
        p = subprocess.run([sys.executable, script, *a.args, "--", *cmd],
                           stdout=subprocess.PIPE, text=True)
        line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        print(line, flush=True)
        detail = ""
        try:
            detail = "; ".join(json.loads(line).get("failures", []))
        except ValueError:
            detail = "no result line"
        summary.append((name, {0: "pass", 1: "FAIL"}.get(p.returncode, f"error {p.returncode}"),
                        detail))
    for name, verdict, detail in summary:
        print(f"{name:10} {verdict:8} {detail}", file=sys.stderr)
    return 1 if any(v not in ("pass", "skipped") for _, v, _ in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
