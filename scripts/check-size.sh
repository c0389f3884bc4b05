#!/usr/bin/env bash
# Size limits of the restructuring issue: no source file in src/ or bpf/ over
# 500 lines, no function there over 80 lines (signature to closing brace).
# Prints each violation as "path:line: what" and exits 1 if there is one.
# Functions are found by brace matching after comments, strings and
# preprocessor lines are blanked: a brace block whose header has a '(' and no
# '=' before it, outside any other function, is a function (lambdas count
# towards the function they are in).
# Usage: scripts/check-size.sh [FILE_LIMIT [FUNCTION_LIMIT]]
set -euo pipefail
cd "$(dirname "$0")/.."

exec python3 - "${1:-500}" "${2:-80}" <<'EOF'
import pathlib, re, sys

file_limit, func_limit = int(sys.argv[1]), int(sys.argv[2])
ACCESS_LABEL = re.compile(r"\s*(public|private|protected)\s*:(?!:)")
NOT_FUNCTIONS = re.compile(r"^(template\s*<.*>\s*)?(namespace|class|struct|union|enum|extern)\b")


def blank(text):
    """Comments, string/char literals and preprocessor lines become spaces; newlines stay."""
    out, i, n = [], 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c == "#":
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append(" \n")
                    i += 2
                    continue
                out.append(" ")
                i += 1
            continue
        if c == "\n":
            at_line_start = True
            out.append(c)
            i += 1
            continue
        if not c.isspace():
            at_line_start = False
        raw = re.match(r'R"([^(\s]*)\(', text[i:i + 20])
        if raw and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find(")" + raw.group(1) + '"', i)
            end = n if end < 0 else end + len(raw.group(1)) + 2
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i)
            end = n if end < 0 else end + 2
        elif c in "\"'" and not (c == "'" and i > 0 and text[i - 1].isalnum()):
            end = i + 1
            while end < n and text[end] != c and text[end] != "\n":
                end += 2 if text[end] == "\\" else 1
            end += 1
        else:
            out.append(c)
            i += 1
            continue
        out.append("".join(ch if ch == "\n" else " " for ch in text[i:end]))
        i = end
    return "".join(out)


def long_functions(text):
    code = blank(text)
    stack = []  # per open brace: start line of a function, or None
    header_start = 0  # offset just after the last ';', '{' or '}'
    line = 1
    for i, c in enumerate(code):
        if c == "\n":
            line += 1
        elif c == "{":
            header = " ".join(code[header_start:i].split())
            in_function = any(s is not None for s in stack)
            paren = header.find("(")
            is_function = (not in_function and paren >= 0 and "=" not in header[:paren]
                           and not NOT_FUNCTIONS.match(header))
            if is_function:
                label = ACCESS_LABEL.match(code, header_start)
                first = label.end() if label else header_start
                first += len(code[first:i]) - len(code[first:i].lstrip())
                start = code.count("\n", 0, first) + 1
                name = re.findall(r"([\w:~]+)\s*\(", header[:paren + 1])
                stack.append((start, name[-1] if name else header[:40]))
            else:
                stack.append(None)
            header_start = i + 1
        elif c == "}":
            top = stack.pop() if stack else None
            if top is not None:
                length = line - top[0] + 1
                if length > func_limit:
                    yield top[0], top[1], length
            header_start = i + 1
        elif c == ";":
            header_start = i + 1


bad = 0
files = sorted(p for d in ("src", "bpf") for p in pathlib.Path(d).rglob("*")
               if p.suffix in (".c", ".h", ".cpp", ".hpp"))
for path in files:
    text = path.read_text()
    lines = text.count("\n")
    if lines > file_limit:
        print(f"{path}:1: file has {lines} lines (limit {file_limit})")
        bad += 1
    for start, name, length in long_functions(text):
        print(f"{path}:{start}: function {name} has {length} lines (limit {func_limit})")
        bad += 1
sys.exit(1 if bad else 0)
EOF
