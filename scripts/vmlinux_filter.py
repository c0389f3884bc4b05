#!/usr/bin/env python3
"""Reduce a full `bpftool btf dump file ... format c` header to a minimal one.

Reads the complete vmlinux.h produced by bpftool, splits it into top-level
declarations (bpftool emits them in a valid dependency order, separated by
blank lines), and keeps only the declarations reachable from a set of root
types:

  * by-value references (struct/union members, typedef targets, array element
    types) pull in the complete definition, transitively;
  * pointer-only references (and struct/union types appearing only inside
    function-pointer parameter lists or as their return type) are satisfied
    by a forward declaration (`struct X;` / `union X;`) emitted near the top;
  * enums are always kept whole (they are cheap and needed for CO-RE enum
    relocations).

Python 3 standard library only.

Root syntax (one per --root argument):
  struct NAME | union NAME | enum NAME | typedef NAME
  enum-with ENUMERATOR      anonymous (or named) enum containing ENUMERATOR
  A leading '?' marks the root optional (no error if absent).

Also: `vmlinux_filter.py extract-btf IMAGE OUT` extracts the raw BTF blob
from a kernel image that is not an ELF file (e.g. Debian's arm64 vmlinuz).
"""

import argparse
import os
import re
import sys

TOKEN_RE = re.compile(r'[A-Za-z_]\w*|\d\w*|"(?:[^"\\]|\\.)*"|\S')
KEYWORDS = {"struct", "union", "enum"}
TYPE_POS_PREV = {"{", ";", "(", ",", "const", "volatile", "typedef"}
QUALIFIERS = {"const", "volatile", "restrict"}

FULL = 2
DECL = 1


class Decl:
    __slots__ = ("idx", "text", "tokens", "kind", "name", "refs",
                 "enumerators", "is_fwd")

    def __init__(self, idx, text):
        self.idx = idx
        self.text = text
        self.tokens = TOKEN_RE.findall(text)
        self.kind = None        # 'struct' | 'union' | 'enum' | 'typedef'
        self.name = None        # None for anonymous enums
        self.refs = []          # list of (key, by_value)
        self.enumerators = set()
        self.is_fwd = False


def typedef_name(toks):
    """Name declared by a typedef token list (ending with ';')."""
    # function pointer: typedef RET (*NAME)(...);
    for i in range(len(toks) - 3):
        if toks[i] == "(" and toks[i + 1] == "*" and \
                re.match(r"[A-Za-z_]\w*$", toks[i + 2]) and toks[i + 3] == ")":
            return toks[i + 2]
    depth = 0
    body = toks[:-1]  # drop ';'
    # name is the last identifier at brace depth 0 before any '[' or '('
    # that follows the type (arrays: typedef T NAME[N];
    # function type: typedef RET NAME(ARGS);)
    cand = None
    for i, t in enumerate(body):
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
        elif depth == 0:
            if t in ("[", "(") and cand is not None:
                return cand
            if re.match(r"[A-Za-z_]\w*$", t) and t not in KEYWORDS \
                    and t not in QUALIFIERS and t != "typedef":
                cand = t
    return cand


def classify(d):
    t = d.tokens
    if not t:
        return
    if t[0] == "typedef":
        d.kind = "typedef"
        d.name = typedef_name(t)
    elif t[0] in ("struct", "union"):
        d.kind = t[0]
        if len(t) >= 3 and t[1] != "{":
            d.name = t[1]
            d.is_fwd = t[2] == ";"
    elif t[0] == "enum":
        d.kind = "enum"
        if t[1] != "{":
            d.name = t[1]
            d.is_fwd = len(t) > 2 and t[2] == ";"  # `enum X;` (BTF enum fwd)
        # enumerators: identifiers at depth 1 preceded by '{' or ','
        depth = 0
        for i, tok in enumerate(t):
            if tok == "{":
                depth += 1
            elif tok == "}":
                depth -= 1
            elif depth == 1 and t[i - 1] in ("{", ","):
                d.enumerators.add(tok)


def skip_parens(toks, j):
    """Index just past the parenthesised group that starts at toks[j] (an
    __attribute__'s ((...))), or len(toks) if it is not closed."""
    depth = 0
    n = len(toks)
    while j < n:
        if toks[j] == "(":
            depth += 1
        elif toks[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return n


def next_significant(toks, j):
    """Skip qualifiers and __attribute__((...)) after position j."""
    n = len(toks)
    while j < n:
        if toks[j] in QUALIFIERS:
            j += 1
        elif toks[j] == "__attribute__":
            j = skip_parens(toks, j + 1)
        else:
            break
    return toks[j] if j < n else None


def find_refs(d, typedef_names):
    t = d.tokens
    refs = []
    paren = 0
    start = 0
    if d.kind in ("struct", "union") and d.name:
        start = 2  # skip 'struct NAME' of the definition itself
    elif d.kind == "enum":
        d.refs = []
        return
    i = start
    n = len(t)
    while i < n:
        tok = t[i]
        if tok == "__attribute__":
            i = skip_parens(t, i + 1)  # its argument list entirely
            continue
        if tok == "(":
            paren += 1
        elif tok == ")":
            paren -= 1
        elif tok in KEYWORDS and i + 1 < n and t[i + 1] != "{":
            name = t[i + 1]
            nxt = next_significant(t, i + 2)
            if tok == "enum":
                refs.append((("enum", name), True))
            else:
                by_value = paren == 0 and nxt not in ("*", "(")
                refs.append(((tok, name), by_value))
            i += 2
            continue
        elif tok in typedef_names and tok != d.name and i > 0 \
                and t[i - 1] in TYPE_POS_PREV:
            nxt = next_significant(t, i + 1)
            by_value = paren == 0 and nxt not in ("*", "(")
            refs.append((("typedef", tok), by_value))
        i += 1
    d.refs = refs


def split_dump(text):
    """Return (preamble_lines, decl_texts, closing_lines)."""
    chunks = [c.strip("\n") for c in re.split(r"\n\s*\n", text)]
    chunks = [c for c in chunks if c.strip()]
    pre, body, post = [], [], []
    # leading/trailing chunks consisting only of preprocessor lines
    i = 0
    while i < len(chunks) and all(l.startswith("#") for l in chunks[i].splitlines()):
        pre.append(chunks[i])
        i += 1
    j = len(chunks)
    while j > i and all(l.startswith("#") for l in chunks[j - 1].splitlines()):
        j -= 1
    post = chunks[j:]
    body = chunks[i:j]
    return pre, body, post


def extract_btf(image_path, out_path):
    """Extract the raw vmlinux BTF blob from a kernel image (e.g. an arm64
    `Image`, possibly gzip-compressed as Debian's vmlinuz), by scanning for
    the BTF header. Used when no ELF vmlinux / sysfs BTF is available."""
    import gzip
    import struct
    data = open(image_path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    best = None
    magic = b"\x9f\xeb\x01\x00\x18\x00\x00\x00"  # LE magic, v1, hdr_len 24
    i = data.find(magic)
    while i >= 0:
        if i + 24 <= len(data):
            type_off, type_len, str_off, str_len = struct.unpack_from("<4I", data, i + 8)
            total = 24 + str_off + str_len
            if type_off == 0 and str_off == type_len and i + total <= len(data) \
                    and data[i + 24 + str_off] == 0:
                if best is None or total > best[1]:
                    best = (i, total)
        i = data.find(magic, i + 1)
    if best is None:
        sys.exit("vmlinux_filter: no BTF blob found in %s" % image_path)
    with open(out_path, "wb") as f:
        f.write(data[best[0]:best[0] + best[1]])
    print("vmlinux_filter: extracted %d bytes of BTF at offset %#x from %s"
          % (best[1], best[0], image_path), file=sys.stderr)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "extract-btf":
        if len(sys.argv) != 4:
            sys.exit("usage: vmlinux_filter.py extract-btf IMAGE OUT")
        extract_btf(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="full bpftool C dump ('-' for stdin)")
    ap.add_argument("output", help="output header ('-' for stdout)")
    ap.add_argument("--extra", action="append", default=[],
                    help="additional C dump of a split (module) BTF made with "
                         "`bpftool btf dump file MOD.ko -B BASE format c`; "
                         "declarations not already present are appended "
                         "(repeatable)")
    ap.add_argument("--root", action="append", default=[],
                    help="root type, e.g. 'struct sk_buff' (repeatable)")
    ap.add_argument("--header-comment", default="",
                    help="file whose content is placed at the very top")
    ap.add_argument("--allow-missing", action="store_true",
                    help="warn instead of failing when a root is absent")
    args = ap.parse_args()

    text = sys.stdin.read() if args.input == "-" else open(args.input).read()
    pre, body, post = split_dump(text)

    decls = [Decl(i, c) for i, c in enumerate(body)]
    for d in decls:
        classify(d)
        if d.kind is None:
            sys.exit("vmlinux_filter: cannot classify declaration:\n" + d.text)

    # Merge split-BTF (module) dumps: each one repeats the base types, so only
    # declarations not seen yet are appended, in the module dump's own order
    # (which is a valid dependency order given everything before it).
    if args.extra:
        seen = {}
        anon = set()
        for d in decls:
            if d.name is None:
                anon.add(d.text)
            elif not d.is_fwd:
                seen[(d.kind, d.name)] = d.text
        conflicts = []
        for path in args.extra:
            _, ebody, _ = split_dump(open(path).read())
            for c in ebody:
                d = Decl(len(decls), c)
                classify(d)
                if d.kind is None:
                    sys.exit("vmlinux_filter: cannot classify declaration "
                             "in %s:\n%s" % (path, d.text))
                if d.name is None:
                    if d.text in anon:
                        continue
                    anon.add(d.text)
                elif d.is_fwd:
                    pass
                else:
                    key = (d.kind, d.name)
                    if key in seen:
                        if seen[key] != d.text:
                            conflicts.append("%s %s (in %s)" % (
                                key + (os.path.basename(path),)))
                        continue
                    seen[key] = d.text
                decls.append(d)
        for c in conflicts:
            print("warning: vmlinux_filter: differing duplicate definition "
                  "ignored: " + c, file=sys.stderr)

    defs = {}          # key -> Decl (complete definitions / typedefs / enums)
    fwd_in_input = set()
    for d in decls:
        if d.name is None:
            continue
        key = (d.kind, d.name)
        if d.is_fwd:
            fwd_in_input.add(key)
            continue
        if key in defs:
            sys.exit("vmlinux_filter: duplicate declaration of %s %s" % key)
        defs[key] = d
    typedef_names = {n for (k, n) in defs if k == "typedef"}
    for d in decls:
        if not d.is_fwd:
            find_refs(d, typedef_names)

    # --- resolve roots ---------------------------------------------------
    level = {}          # key -> FULL/DECL for named things
    keep_anon = set()   # indices of kept anonymous enums
    work = []
    missing = []

    def want(key, lvl):
        if key[0] == "enum":
            lvl = FULL
        if level.get(key, 0) >= lvl:
            return
        level[key] = lvl
        work.append(key)

    for r in args.root:
        r = r.strip()
        optional = r.startswith("?")
        r = r.lstrip("?").strip()
        kind, _, name = r.partition(" ")
        name = name.strip()
        found = False
        if kind == "enum-with":
            for d in decls:
                if d.kind == "enum" and name in d.enumerators:
                    found = True
                    if d.name is None:
                        keep_anon.add(d.idx)
                    else:
                        want(("enum", d.name), FULL)
        elif kind in ("struct", "union", "enum", "typedef"):
            if (kind, name) in defs:
                found = True
                want((kind, name), FULL)
        else:
            sys.exit("vmlinux_filter: bad root spec %r" % r)
        if not found and not optional:
            missing.append(r)

    if missing:
        msg = "vmlinux_filter: roots not found in BTF: " + ", ".join(missing)
        if not args.allow_missing:
            sys.exit(msg)
        print("warning: " + msg, file=sys.stderr)

    while work:
        key = work.pop()
        lvl = level[key]
        d = defs.get(key)
        if d is None:
            if key[0] == "enum" and key in fwd_in_input:
                print("warning: vmlinux_filter: only a forward declaration "
                      "exists for enum %s" % key[1], file=sys.stderr)
                continue
            if lvl == FULL or key[0] not in ("struct", "union"):
                sys.exit("vmlinux_filter: no definition for %s %s "
                         "(needed by value)" % key)
            continue  # opaque struct, forward declaration suffices
        if key[0] in ("struct", "union"):
            if lvl == DECL:
                continue
            for rk, by_value in d.refs:
                want(rk, FULL if by_value else DECL)
        elif key[0] == "typedef":
            eff = lvl
            if "{" in d.tokens or "[" in d.tokens:
                eff = FULL  # inline body / array: need complete element types
            for rk, by_value in d.refs:
                want(rk, FULL if (by_value and eff == FULL) else DECL)
        # enums have no references

    # --- emit ------------------------------------------------------------
    fwds = set()
    for (k, n), lvl in level.items():
        if k == "enum":
            # bpftool forward-declares enums used (in prototypes) before
            # their definition; keep doing so
            if (k, n) in fwd_in_input:
                fwds.add((k, n))
            continue
        if k not in ("struct", "union"):
            continue
        if lvl == DECL or (k, n) in fwd_in_input:
            fwds.add((k, n))

    out = []
    if args.header_comment:
        out.append(open(args.header_comment).read().rstrip("\n"))
        out.append("")
    if missing:
        out.append("/* Root types absent from this BTF (not generated): %s */"
                   % ", ".join(missing))
        out.append("")
    for p in pre:
        out.append(p)
        out.append("")
    for k, n in sorted(fwds, key=lambda x: (x[1], x[0])):
        out.append("%s %s;" % (k, n))
    out.append("")
    kept = 0
    for d in decls:
        if d.is_fwd:
            continue
        if d.name is None:
            ok = d.idx in keep_anon
        else:
            key = (d.kind, d.name)
            lvl = level.get(key, 0)
            ok = lvl == FULL or (lvl == DECL and d.kind in ("typedef", "enum"))
        if ok:
            out.append(d.text)
            out.append("")
            kept += 1
    for p in post:
        out.append(p)
        out.append("")
    result = "\n".join(out).rstrip("\n") + "\n"

    if args.output == "-":
        sys.stdout.write(result)
    else:
        with open(args.output, "w") as f:
            f.write(result)
    print("vmlinux_filter: kept %d of %d declarations, %d forward declarations"
          % (kept, len(decls), len(fwds)), file=sys.stderr)


if __name__ == "__main__":
    main()
