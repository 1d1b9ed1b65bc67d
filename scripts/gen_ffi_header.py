#!/usr/bin/env python3
"""Generates include/wsnotify_ffi.h from include/wsnotify.h.

wsnotify_ffi.h holds the declarations of wsnotify.h and nothing else: no
#define, #include or conditional, no WSN_API / WSN_DEPRECATED markers, no
extern "C", every enumerator with its value written out. cffi's
``FFI().cdef`` and LuaJIT's ``ffi.cdef`` take it as it is, so no binding
keeps a rewriting of its own.

    scripts/gen_ffi_header.py           rewrite include/wsnotify_ffi.h
    scripts/gen_ffi_header.py --check   exit 1 if the committed file differs
                                        from what the header gives
    scripts/gen_ffi_header.py --stdout  print it

The header is written for FFI parsers already (enums, no varargs, no inline
functions, no bitfields, no public struct holding a macro); what this script
cannot turn into a plain declaration it refuses with the line at fault,
rather than emit something an FFI would misread.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "include", "wsnotify.h")
OUTPUT = os.path.join(ROOT, "include", "wsnotify_ffi.h")

# Macros that only decorate declarations: removed with their arguments.
MARKERS = ("WSN_API", "WSN_DEPRECATED")


class HeaderError(Exception):
    pass


def strip_comments(text: str) -> str:
    """Removes /* */ and // comments, keeping the line count (for errors)
    and the "==== Section ====" headings, which stay as orientation."""
    def block(m: re.Match) -> str:
        body = m.group(0)
        head = re.match(r"/\*\s*(====.*?====+)\s*\*/$", body, re.S)
        if head:
            return "/* " + head.group(1).strip("= ").join(("==== ", " ====")) + " */"
        return "\n" * body.count("\n")
    text = re.sub(r"/\*.*?\*/", block, text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def drop_preprocessor(text: str) -> tuple:
    """Returns (text without directives, {macro: body}). Conditionals are
    understood only as far as the header uses them: the include guard,
    extern "C" under __cplusplus (dropped), and blocks that hold nothing but
    directives (the WSN_API / WSN_DEPRECATED fallbacks)."""
    lines = re.sub(r"\\\n", " ", text).split("\n")
    out, macros, stack = [], {}, []
    for no, line in enumerate(lines, 1):
        s = line.strip()
        if s.startswith("#"):
            d = s[1:].strip()
            word = re.match(r"\w*", d).group(0)
            if word in ("if", "ifdef", "ifndef"):
                guard = not stack and word == "ifndef" and "WSNOTIFY_H" in d
                stack.append("guard" if guard else
                             "cplusplus" if "__cplusplus" in d else "other")
            elif word == "endif":
                if not stack:
                    raise HeaderError(f"line {no}: #endif without #if")
                stack.pop()
            elif word == "define":
                m = re.match(r"define\s+(\w+)(\([^)]*\))?\s*(.*)", d)
                if m:
                    macros.setdefault(m.group(1), m.group(3).strip())
            elif word not in ("else", "elif", "include", "pragma", "undef"):
                raise HeaderError(f"line {no}: unsupported directive: {s}")
            out.append("")
            continue
        if "cplusplus" in stack:
            out.append("")
            continue
        if s and any(k == "other" for k in stack):
            raise HeaderError(
                f"line {no}: a declaration inside a conditional block "
                f"cannot be made macro-free: {s}")
        out.append(line)
    if stack:
        raise HeaderError("unterminated #if")
    return "\n".join(out), macros


def realign(text: str) -> str:
    """Drops a leading "WSN_API " and shifts the declaration's continuation
    lines left by as much, so that parameters stay aligned."""
    out, shift = [], 0
    for line in text.split("\n"):
        if shift and line.startswith(" " * shift):
            line = line[shift:]
        elif line.startswith("WSN_API "):
            line = line[len("WSN_API "):]
            shift = len("WSN_API ")
        if ";" in line or not line.strip():
            shift = 0
        out.append(line)
    return "\n".join(out)


def drop_markers(text: str) -> str:
    text = realign(text)
    for name in MARKERS:
        while True:
            m = re.search(rf"\b{name}\b\s*", text)
            if not m:
                break
            end = m.end()
            if end < len(text) and text[end] == "(":
                depth, i, quote = 0, end, None
                while i < len(text):
                    c = text[i]
                    if quote:
                        if c == "\\":
                            i += 1
                        elif c == quote:
                            quote = None
                    elif c in "\"'":
                        quote = c
                    elif c == "(":
                        depth += 1
                    elif c == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    i += 1
                end = i + 1
                while end < len(text) and text[end] in " \t":
                    end += 1
            text = text[:m.start()] + text[end:]
    return text


_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.LShift, ast.RShift, ast.BitOr,
           ast.BitAnd, ast.BitXor)


def evaluate(expr: str, known: dict, where: str) -> int:
    """An enumerator's value: integer literals, earlier enumerators and the
    integer operators C allows there."""
    src = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expr.strip())

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in known:
            return known[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(
                node.op, (ast.USub, ast.UAdd, ast.Invert)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else (
                ~v if isinstance(node.op, ast.Invert) else v)
        if isinstance(node, ast.BinOp) and isinstance(node.op, _BINOPS):
            a, b = ev(node.left), ev(node.right)
            return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b,
                    ast.LShift: a << b, ast.RShift: a >> b, ast.BitOr: a | b,
                    ast.BitAnd: a & b, ast.BitXor: a ^ b}[type(node.op)]
        raise HeaderError(f"{where}: cannot evaluate enumerator value {expr!r}")

    try:
        return ev(ast.parse(src, mode="eval"))
    except SyntaxError:
        raise HeaderError(f"{where}: cannot evaluate enumerator value {expr!r}") from None


def literal_enums(text: str, known: dict) -> str:
    """Rewrites every enum body with one "NAME = value" per line."""
    def body(m: re.Match) -> str:
        head, inner, tail = m.group(1), m.group(2), m.group(3)
        entries = [e.strip() for e in inner.split(",")]
        if entries and not entries[-1]:
            entries.pop()
        lines, nxt = [], 0
        for e in entries:
            em = re.fullmatch(r"([A-Za-z_]\w*)\s*(?:=\s*(.+))?", e, re.S)
            if not em:
                raise HeaderError(f"enum {head.strip()}: cannot read {e!r}")
            name = em.group(1)
            value = (evaluate(em.group(2), known, f"enum {head.strip()}")
                     if em.group(2) is not None else nxt)
            known[name] = value
            nxt = value + 1
            lines.append(f"    {name} = {value}")
        return head + "{\n" + ",\n".join(lines) + "\n}" + tail
    return re.sub(r"(\benum\b[^{;]*)\{([^}]*)\}(\s*\w*\s*;)", body, text)


def check_plain(text: str, macros: dict) -> None:
    """Refuses what an FFI parser would misread or a macro left behind."""
    for no, line in enumerate(text.split("\n"), 1):
        if line.startswith("/*"):
            continue
        if "..." in line:
            raise HeaderError(f"output line {no}: varargs: {line.strip()}")
        if re.search(r"\binline\b|__attribute__|\bextern\b", line):
            raise HeaderError(f"output line {no}: not a plain declaration: {line.strip()}")
        for name in re.findall(r"\b[A-Za-z_]\w*\b", line):
            if name in macros:
                raise HeaderError(
                    f"output line {no}: uses the macro {name}: {line.strip()}")


def tidy(text: str) -> str:
    """Trailing blanks and runs of blank lines go, and so do the headings of
    sections left empty (the export macros)."""
    lines = [ln.rstrip() for ln in text.split("\n")]
    out = []
    for i, ln in enumerate(lines):
        if ln.startswith("/* ==== "):
            rest = next((x for x in lines[i + 1:] if x), "")
            if not rest or rest.startswith("/* ==== "):
                continue
        if not ln and (not out or not out[-1]):
            continue
        out.append(ln)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def version(macros: dict) -> str:
    try:
        return ".".join(macros[f"WSN_VERSION_{p}"]
                        for p in ("MAJOR", "MINOR", "PATCH"))
    except KeyError as e:
        raise HeaderError(f"{e.args[0]} not defined in wsnotify.h") from None


def generate(header_text: str) -> str:
    text = strip_comments(header_text)
    text, macros = drop_preprocessor(text)
    text = drop_markers(text)
    text = literal_enums(text, {})
    text = tidy(text)
    check_plain(text, macros)
    preamble = (
        "/* wsnotify_ffi.h: the declarations of wsnotify.h "
        f"{version(macros)} for FFI parsers\n"
        " * (cffi cdef, LuaJIT ffi.cdef): no macros, enum values written out.\n"
        " * Generated by scripts/gen_ffi_header.py; do not edit. The doc\n"
        " * comments, and what each call does, are in wsnotify.h. The types\n"
        " * size_t, int64_t and uint64_t come from <stddef.h> and <stdint.h>. */\n\n")
    return preamble + text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true",
                   help="exit 1 if the output file differs from the header")
    g.add_argument("--stdout", action="store_true", help="print, write nothing")
    ap.add_argument("--header", default=HEADER)
    ap.add_argument("--output", default=OUTPUT)
    args = ap.parse_args()

    with open(args.header, encoding="utf-8") as f:
        try:
            text = generate(f.read())
        except HeaderError as e:
            print(f"gen_ffi_header: {args.header}: {e}", file=sys.stderr)
            return 2
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        try:
            with open(args.output, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current == text:
            print(f"gen_ffi_header: {args.output} matches {args.header}")
            return 0
        sys.stdout.writelines(difflib.unified_diff(
            current.splitlines(True), text.splitlines(True),
            args.output + " (committed)", args.output + " (from the header)"))
        print(f"gen_ffi_header: {args.output} is out of date: "
              "run scripts/gen_ffi_header.py and commit the result",
              file=sys.stderr)
        return 1
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"gen_ffi_header: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
