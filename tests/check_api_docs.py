#!/usr/bin/python3
"""Docs that cannot drift: checks docs/API.md (and a few other documents)
against include/transgan.h, the library and the Python bindings.

Usage: tests/check_api_docs.py [BUILD_DIR]   (default: build; run by `make docs-test`)

BUILD_DIR must hold the built library (libtransgan.so.0): some checks compile,
link and run documented code. Every check counts once; the closing line is
`docs: N passed, M failed` and the exit status is 1 when any check failed.

What the header declares (parsed from include/transgan.h):
  functions   every `TG_API <type> tg_x(...);` declaration
  types       every `typedef enum|struct tg_x ... tg_x;` and every callback
              `typedef <type> (*tg_x)(...);`
  enum values every `TG_X = <number>` inside a typedef'd enum
  fields      every member of a typedef'd struct
  macros      every `#define TG_X ...` (TG_API, versions, flags, constants)

Rules checked:
 1. Header doc comments. Every function and every type is immediately
    preceded (only white space between) by a /* ... */ comment that says
    "Since X.Y.Z". A function returning tg_status lists its statuses in that
    comment as "Statuses: A, B, ..." (the names without TG_ERR_; words in
    parentheses are explanations and are ignored).
 2. "Documented" in docs/API.md means one of these, nothing looser:
    (a) a Markdown heading (a line starting with #) contains the identifier
        as a whole code span, e.g. "### `tg_model_save`" or
        "### `TG_GEN_EMA`, `TG_GEN_RAW`";
    (b) a Markdown table row has a cell that is exactly the identifier as a
        code span, e.g. "| `TG_INFO_CHANNELS` | ... |". For enum values and
        struct fields the row must lie in the section (the text up to the next
        heading of the same or a higher level) of the heading that documents
        their type, and for enum values the row must also have a cell that is
        exactly the value's number.
    A mention in running text or in a code block does not count.
    Functions and types must be documented by (a); enum values, fields and
    macros by (a) or (b).
 3. The section of each function's heading holds its prototype, as in the
    header without TG_API (white space is not significant), in a code block.
    Every `#define TG_X value` shown in an API.md code block has the header's
    value (comments and white space ignored).
 4. Statuses, three ways: for every function returning tg_status, the header
    comment's "Statuses:" list, the function's row of the table "Which
    function returns which status", and the TG_ERR_ code spans in the bullet
    list after "Statuses:" in the function's section are the same set. That
    table has a row for each such function and no other.
 5. Every tg_/TG_ identifier docs/API.md names exists in the header, except the
    environment variables listed in ENV_VARS, each of which lib/ must read
    with getenv().
 6. The complete minimal program of API.md compiles with -Wall -Wextra
    -Werror, links against BUILD_DIR and runs (on tests/data/tiny-train.json,
    to be quick); the C snippets at the top of
    the header and in README.md compile (-fsyntax-only) inside a main().
 7. docs/DESCRIPTOR.md: its table of keys and defaults has exactly the keys
    of the full descriptor the library writes for the smallest valid
    descriptor, with the library's default values; its list of ready-made
    descriptors names exactly the files models/*.json.
 8. bindings/python/README.md, section "API": every public method, property
    and classmethod of transgan.Model and every name of transgan.__all__
    appears as a code span in the table (`name`, `name(...)`,
    `Model.name(...)`, `transgan.name...`); a code span written as a call
    shows the real parameters and defaults (with `...`, only those it shows).
    Its Python example runs (in a temporary folder, against BUILD_DIR, with
    tests/data/tiny-train.json standing in for models/fmnist-small.json).
 9. No document names the specification's old outside file (OLD_SPEC below):
    the specification is docs/SPECIFICATION.md,
    and every section the documents or the header cite as
    `SPECIFICATION.md, "Name"` is a heading of docs/SPECIFICATION.md (the
    file must exist).
10. In docs/*.md, README.md and bindings/python/README.md, every relative
    Markdown link points to an existing file, and every repository path
    written as a code span (`lib/...`, `tests/...`, `examples/...`,
    `models/...`, `include/...`, `scripts/...`, `bench/...`, `bindings/...`,
    `docs/...`; wildcards allowed; a program may be named without its .c;
    paths with a placeholder in capitals such as NAME are not checked) exists.
"""
import ast
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "include", "transgan.h")
API_MD = os.path.join(ROOT, "docs", "API.md")
TINY = os.path.join(ROOT, "tests", "data", "tiny-train.json")  # a fast stand-in model

# tg_/TG_ names API.md may use that are not in the header: environment
# variables (each must be read by lib/ through getenv).
ENV_VARS = {"TG_ALLOW_REF", "TG_DYNAMIC_THREADS"}

passed = 0
failed = 0


def check(ok, what, detail=""):
    """Count one check; print failures with their detail."""
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s%s" % (what, (": " + detail) if detail else ""))
    return ok


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def norm_c(s):
    """C text with comments removed and white space made insignificant."""
    s = re.sub(r"/\*.*?\*/", " ", s, flags=re.S)
    s = re.sub(r"//[^\n]*", " ", s)
    s = re.sub(r"\s*([(),*;{}\[\]=])\s*", r"\1", s)
    return re.sub(r"\s+", " ", s).strip()


# ------------------------------------------------------------------ header

def parse_header(text):
    h = {"functions": {}, "types": {}, "enums": {}, "fields": {}, "macros": {}}
    for m in re.finditer(r"^TG_API\s+([^;{}]*?)\b(tg_\w+)\s*\(([^)]*)\)\s*;", text, re.M):
        proto = "%s%s(%s);" % (m.group(1), m.group(2), m.group(3))
        h["functions"][m.group(2)] = {
            "proto": norm_c(proto), "returns": norm_c(m.group(1)),
            "comment": comment_before(text, m.start())}
    for m in re.finditer(r"typedef\s+(enum|struct)\s+(tg_\w+)\s*(\{.*?\})?\s*(tg_\w+)\s*;", text,
                         re.S):
        name = m.group(4)
        h["types"][name] = {"kind": m.group(1), "comment": comment_before(text, m.start())}
        body = re.sub(r"/\*.*?\*/", " ", m.group(3) or "", flags=re.S)
        if m.group(1) == "enum":
            for v in re.finditer(r"\b(TG_\w+)\s*=\s*(\d+)", body):
                h["enums"][v.group(1)] = (name, int(v.group(2)))
        else:
            for f in re.finditer(r"\b(\w+)\s*;", body):
                h["fields"][f.group(1)] = name
    # callbacks: typedef <type> (*tg_x)(...); held to the rules of types
    for m in re.finditer(r"^typedef\s+[^;{}()]*\(\s*\*\s*(tg_\w+)\s*\)\s*\([^)]*\)\s*;", text,
                         re.M):
        h["types"][m.group(1)] = {"kind": "callback", "comment": comment_before(text, m.start())}
    for m in re.finditer(r"^\s*#\s*define\s+(TG_\w+)([^\n]*)", text, re.M):
        h["macros"].setdefault(m.group(1), set()).add(macro_value(m.group(2)))
    return h


def macro_value(rest):
    """The value of a one-line #define: its comment (which may go on over
    the next lines) dropped, white space made insignificant."""
    return norm_c(re.sub(r"/\*.*$", "", re.sub(r"/\*.*?\*/", " ", rest)))


def comment_before(text, pos):
    """The /* */ comment that ends right before pos (only white space between), or None."""
    head = text[:pos].rstrip()
    if not head.endswith("*/"):
        return None
    start = head.rfind("/*")
    return head[start:] if start >= 0 else None


STATUS_RE = re.compile(r"Statuses:(.*?)(?:Since \d|\*/)", re.S)


def header_statuses(comment, status_names):
    m = STATUS_RE.search(comment or "")
    if not m:
        return None
    text = re.sub(r"\([^)]*\)", " ", m.group(1))
    words = set(re.findall(r"\b[A-Z][A-Z_]+\b", text))
    return {"TG_ERR_" + w for w in words if "TG_ERR_" + w in status_names}


# ---------------------------------------------------------------- markdown

def md_lines_without_code(text):
    """(line, in_code_block) pairs."""
    out, code = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            code = not code
            out.append((line, True))
        else:
            out.append((line, code))
    return out


def headings(text):
    """[(index, level, title)] of the Markdown headings outside code blocks."""
    res = []
    for i, (line, code) in enumerate(md_lines_without_code(text)):
        m = re.match(r"^(#{1,6})\s+(.*)$", line)
        if m and not code:
            res.append((i, len(m.group(1)), m.group(2)))
    return res


def sections(text):
    """{heading index: (level, title, list of section lines)}."""
    lines = text.split("\n")
    hs = headings(text)
    res = {}
    for k, (i, lvl, title) in enumerate(hs):
        end = len(lines)
        for j, lvl2, _ in hs[k + 1:]:
            if lvl2 <= lvl:
                end = j
                break
        res[i] = (lvl, title, lines[i:end])
    return res


def spans(s):
    return re.findall(r"`([^`]+)`", s)


def table_rows(lines):
    """Rows of Markdown tables in lines, as lists of stripped cells."""
    rows = []
    code = False
    for line in lines:
        if line.lstrip().startswith("```"):
            code = not code
            continue
        if not code and line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
    return rows


def code_blocks(lines):
    blocks, cur = [], None
    for line in lines:
        if line.lstrip().startswith("```"):
            if cur is None:
                cur = []
            else:
                blocks.append("\n".join(cur))
                cur = None
        elif cur is not None:
            cur.append(line)
    return blocks


# ------------------------------------------------------------------- checks

def check_header(h):
    for name, f in sorted(h["functions"].items()):
        c = f["comment"]
        check(c is not None, "header: %s has a doc comment right before it" % name)
        check(c is not None and re.search(r"Since \d+\.\d+\.\d+", c),
              "header: the doc comment of %s says since which version" % name)
    for name, t in sorted(h["types"].items()):
        c = t["comment"]
        check(c is not None and re.search(r"Since \d+\.\d+\.\d+", c),
              "header: %s has a doc comment that says since which version" % name)


def check_api_md(h, md):
    secs = sections(md)
    heading_ids = {}  # identifier -> heading index
    for i, (lvl, title, _) in secs.items():
        for s in spans(title):
            heading_ids.setdefault(s, i)

    def rows_in(lines):
        return table_rows(lines)

    all_rows = rows_in(md.split("\n"))

    for name in sorted(h["functions"]):
        check(name in heading_ids, "API.md: function %s has its own heading" % name)
    for name in sorted(h["types"]):
        check(name in heading_ids, "API.md: type %s has its own heading" % name)

    for name, (typ, value) in sorted(h["enums"].items()):
        if name in heading_ids:
            check(True, "API.md: %s" % name)
            continue
        ok = False
        if typ in heading_ids:
            for row in rows_in(secs[heading_ids[typ]][2]):
                if "`%s`" % name in row and str(value) in row:
                    ok = True
        check(ok, "API.md: enum value %s (= %d) has a heading or a row with its number in the "
              "section of %s" % (name, value, typ))

    for name, typ in sorted(h["fields"].items()):
        ok = name in heading_ids
        if not ok and typ in heading_ids:
            ok = any("`%s`" % name in row for row in rows_in(secs[heading_ids[typ]][2]))
        check(ok, "API.md: field %s.%s has a row in the section of %s" % (typ, name, typ))

    for name in sorted(h["macros"]):
        ok = name in heading_ids or any("`%s`" % name in row for row in all_rows)
        check(ok, "API.md: macro %s has a heading or a table row of its own" % name)

    # prototypes in the functions' sections
    for name, f in sorted(h["functions"].items()):
        if name not in heading_ids:
            continue
        blocks = code_blocks(secs[heading_ids[name]][2])
        proto = norm_c(f["proto"])
        check(any(proto in norm_c(b) for b in blocks),
              "API.md: the section of %s shows its prototype" % name, proto)

    # #define values shown in code blocks
    for b in code_blocks(md.split("\n")):
        for m in re.finditer(r"^\s*#\s*define\s+(TG_\w+)([^\n]*)", b, re.M):
            name, val = m.group(1), macro_value(m.group(2))
            check(name in h["macros"] and val in h["macros"][name],
                  "API.md: #define %s shows the header's value" % name,
                  "API.md has %r, the header %r" % (val, sorted(h["macros"].get(name, []))))

    # statuses: header comment, summary table, section bullets
    status_names = {n for n, (t, _) in h["enums"].items() if t == "tg_status"}
    fallible = sorted(n for n, f in h["functions"].items() if f["returns"] == "tg_status")
    table_i = next((i for i, (l, t, _) in secs.items()
                    if t.strip() == "Which function returns which status"), None)
    table = {}
    if check(table_i is not None, "API.md: has the section 'Which function returns which status'"):
        rows = rows_in(secs[table_i][2])
        cols = rows[0] if rows else []
        for row in rows[1:]:
            fn = spans(row[0])
            if fn:
                table[fn[0]] = {"TG_ERR_" + cols[k] for k in range(1, len(row))
                                if row[k].strip().lower() == "x" and k < len(cols)}
        check(sorted(table) == fallible, "API.md: the status table has a row for each function "
              "that returns tg_status, and no other",
              "missing %s, extra %s" % (sorted(set(fallible) - set(table)),
                                        sorted(set(table) - set(fallible))))
    for name in fallible:
        hs = header_statuses(h["functions"][name]["comment"], status_names)
        if not check(hs is not None, "header: the comment of %s lists its statuses" % name):
            continue
        if name in table:
            check(hs == table[name], "API.md: status table row of %s matches the header" % name,
                  "header %s, table %s" % (sorted(hs), sorted(table[name])))
        if name in heading_ids:
            bullets = section_status_bullets(secs[heading_ids[name]][2])
            check(bullets == hs, "API.md: the Statuses list of %s matches the header" % name,
                  "header %s, section %s" % (sorted(hs), sorted(bullets)))

    # no identifier the header lacks
    known = set(h["functions"]) | set(h["types"]) | set(h["enums"]) | set(h["macros"])
    named = set(re.findall(r"\b(?:tg|TG)_\w+", md))
    unknown = sorted(named - known - ENV_VARS)
    check(not unknown, "API.md names only identifiers of the header", ", ".join(unknown))
    lib_text = "".join(read(os.path.join(dp, f)) for dp, _, fs in os.walk(os.path.join(ROOT, "lib"))
                       for f in fs if f.endswith(".c"))
    for v in sorted(ENV_VARS):
        check('getenv("%s")' % v in lib_text, "lib/ reads the documented variable %s" % v)


def section_status_bullets(lines):
    """TG_ERR_ code spans in the bullet list that follows a 'Statuses:' line."""
    out = set()
    i = next((k for k, l in enumerate(lines) if l.strip() == "Statuses:"), None)
    if i is None:
        return out
    k = i + 1
    while k < len(lines) and not lines[k].strip():
        k += 1
    while k < len(lines) and (lines[k].startswith("- ") or lines[k].startswith("  ")):
        out |= {s for s in spans(lines[k]) if s.startswith("TG_ERR_")}
        k += 1
    return out


# --------------------------------------------------------------- compiling

def cc(args, what, cwd=None, env=None):
    p = subprocess.run(["cc"] + args, capture_output=True, text=True, cwd=cwd, env=env)
    return check(p.returncode == 0, what, (p.stdout + p.stderr).strip()[-2000:])


C_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-D_POSIX_C_SOURCE=200809L"]


def check_c_examples(md, header_text, build, tmp):
    secs = sections(md)
    i = next((i for i, (l, t, _) in secs.items() if t.strip() == "A complete minimal program"), None)
    blocks = code_blocks(secs[i][2]) if i is not None else []
    if check(len(blocks) >= 1, "API.md: 'A complete minimal program' has a code block"):
        src = os.path.join(tmp, "minimal.c")
        with open(src, "w") as f:
            f.write(blocks[0] + "\n")
        exe = os.path.join(tmp, "minimal")
        if cc(C_FLAGS + ["-I" + os.path.join(ROOT, "include"), src, "-o", exe,
                         "-L" + build, "-ltransgan", "-Wl,-rpath," + build],
              "API.md: the minimal program compiles and links"):
            env = dict(os.environ, OMP_NUM_THREADS="1")
            p = subprocess.run([exe, TINY],
                               capture_output=True, text=True, cwd=tmp, env=env)
            check(p.returncode == 0 and p.stdout.count("image ") == 4 and
                  os.path.getsize(os.path.join(tmp, "minimal.safetensors")) > 0,
                  "API.md: the minimal program runs", (p.stdout + p.stderr)[-2000:])

    snippets = []
    m = re.search(r"/\*\n(.*?)\*/", header_text, re.S)
    if m:
        lines = [re.sub(r"^ \* ?", "", l) for l in m.group(1).split("\n")]
        code = []
        for l in lines:
            if l.startswith("  "):
                code.append(l)
            elif code:
                break
        snippets.append(("the example at the top of include/transgan.h", "\n".join(code)))
    rd = read(os.path.join(ROOT, "README.md"))
    m = re.search(r"## Use from C\s*```c\n(.*?)```", rd, re.S)
    snippets.append(("the C snippet of README.md", m.group(1) if m else ""))
    for what, code in snippets:
        body = "\n".join(l for l in code.split("\n") if not l.startswith("#include"))
        src = os.path.join(tmp, "snippet.c")
        with open(src, "w") as f:
            f.write("#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                    "#include <transgan.h>\nint main(void)\n{\n%s\nreturn 0;\n}\n" % body)
        check(body.strip() != "", what + " is found")
        cc(C_FLAGS + ["-fsyntax-only", "-I" + os.path.join(ROOT, "include"), src],
           what + " compiles")


# ------------------------------------------------------------- descriptors

def library_defaults(build):
    import ctypes
    lib = ctypes.CDLL(os.path.join(build, "libtransgan.so.0"))
    lib.tg_model_create.argtypes = [ctypes.c_char_p, ctypes.c_uint64, ctypes.c_void_p]
    lib.tg_model_descriptor.restype = ctypes.c_char_p
    lib.tg_model_descriptor.argtypes = [ctypes.c_void_p]
    lib.tg_model_destroy.argtypes = [ctypes.c_void_p]
    m = ctypes.c_void_p()
    # the smallest descriptor that is valid and cheap: only the sizes differ
    # from the defaults, and those keys are compared below from a second one
    st = lib.tg_model_create(b'{"format": "transgan", "format_version": 1}', 1, ctypes.byref(m))
    if st != 0:
        return None
    d = json.loads(lib.tg_model_descriptor(m).decode())
    lib.tg_model_destroy(m)
    # the conv discriminator's keys (its full descriptor names them, and the
    # kind, only for kind "conv"): documented with their defaults too
    st = lib.tg_model_create(b'{"format": "transgan", "format_version": 1, '
                             b'"discriminator": {"kind": "conv"}}', 1, ctypes.byref(m))
    if st != 0:
        return None
    conv = json.loads(lib.tg_model_descriptor(m).decode())["discriminator"]
    lib.tg_model_destroy(m)
    for k, v in conv.items():
        d["discriminator"].setdefault(k, "transformer" if k == "kind" else v)
    # training.lr_schedule is written only when given: its default is null
    d["training"].setdefault("lr_schedule", None)
    # and R1's keys only when not their defaults (R1 off, every 16th step)
    d["training"].setdefault("r1_gamma", 0.0)
    d["training"].setdefault("r1_interval", 16)
    return d


def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = prefix + k
        if isinstance(v, dict) and key not in ("training.ema",):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_descriptor_md(build):
    text = read(os.path.join(ROOT, "docs", "DESCRIPTOR.md"))
    documented = {}
    for row in table_rows(text.split("\n"))[1:]:
        keys, vals = spans(row[0]), spans(row[1]) if len(row) > 1 else []
        if not keys:
            continue
        full = []
        for k in keys:
            full.append(k if "." in k or not full or "." not in full[0]
                        else full[0].rsplit(".", 1)[0] + "." + k)
        if not check(len(vals) == len(full), "DESCRIPTOR.md: one default per key in the row of %s"
                     % ", ".join(full), "%d keys, %d defaults" % (len(full), len(vals))):
            continue
        for k, v in zip(full, vals):
            try:
                documented[k] = json.loads(v)
            except ValueError:
                check(False, "DESCRIPTOR.md: the default of %s is JSON" % k, v)
    lib = library_defaults(build)
    if check(lib is not None, "the library creates a model from the smallest descriptor"):
        actual = flatten(lib)
        check(sorted(documented) == sorted(actual),
              "DESCRIPTOR.md: the table has exactly the keys of the full descriptor",
              "missing %s, extra %s" % (sorted(set(actual) - set(documented)),
                                        sorted(set(documented) - set(actual))))
        for k in sorted(set(documented) & set(actual)):
            check(documented[k] == actual[k], "DESCRIPTOR.md: default of %s" % k,
                  "documented %r, the library %r" % (documented[k], actual[k]))
    m = re.search(r"Ready-made descriptors are in `models/`(.*?)\n\n", text, re.S)
    listed = set(re.findall(r"`([\w./-]+\.json)`", m.group(1))) if m else set()
    # "transgan-s/m/l/xl.json" stands for four files
    for s in list(listed):
        mm = re.fullmatch(r"(.*-)([\w/]+)\.json", s)
        if mm and "/" in mm.group(2):
            listed.discard(s)
            listed |= {mm.group(1) + x + ".json" for x in mm.group(2).split("/")}
    files = {f for f in os.listdir(os.path.join(ROOT, "models")) if f.endswith(".json")}
    check(listed == files, "DESCRIPTOR.md lists exactly the files models/*.json",
          "missing %s, extra %s" % (sorted(files - listed), sorted(listed - files)))


# ------------------------------------------------------------------ python

def py_signature(fn, drop_first):
    a = fn.args
    names = [x.arg for x in a.args]
    defaults = [None] * (len(names) - len(a.defaults)) + [ast.literal_eval(d) for d in a.defaults]
    params = list(zip(names, defaults, [len(names) - len(a.defaults) > i
                                        for i in range(len(names))]))
    return params[1:] if drop_first else params


def render(params):
    return ", ".join(n if req else "%s=%r" % (n, d) for n, d, req in params)


def check_python_readme(build, tmp):
    pkg = os.path.join(ROOT, "bindings", "python", "transgan")
    tree = ast.parse(read(os.path.join(pkg, "_model.py")))
    init = ast.parse(read(os.path.join(pkg, "__init__.py")))
    api = {}  # documented name -> (signature params or None)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            api["transgan." + node.name] = py_signature(node, False)
        if isinstance(node, ast.ClassDef) and node.name == "Model":
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    decos = [d.id if isinstance(d, ast.Name) else getattr(d, "attr", "")
                             for d in item.decorator_list]
                    if item.name == "__init__":
                        api["Model"] = py_signature(item, True)
                    elif item.name.startswith("_"):
                        continue
                    elif "property" in decos or "setter" in decos:
                        api[item.name] = None
                    elif "classmethod" in decos:
                        api["Model." + item.name] = py_signature(item, True)
                    else:
                        api[item.name] = py_signature(item, True)
                elif isinstance(item, ast.Assign) and isinstance(item.value, ast.Call) and \
                        getattr(item.value.func, "id", "") == "property":
                    for t in item.targets:
                        api[t.id] = None
    all_names = []
    for node in init.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__"
                                                for t in node.targets):
            all_names = ast.literal_eval(node.value)
    readme = read(os.path.join(ROOT, "bindings", "python", "README.md"))
    secs = sections(readme)
    i = next((i for i, (l, t, _) in secs.items() if t.strip() == "API"), None)
    if not check(i is not None, "bindings/python/README.md has a section 'API'"):
        return
    shown = [s for row in table_rows(secs[i][2]) for cell in row for s in spans(cell)]
    heads = {}
    for s in shown:
        m = re.fullmatch(r"([\w.]+)(?:\((.*)\))?", s)
        if m:
            heads.setdefault(m.group(1), m.group(2))
    for name, sig in sorted(api.items()):
        short = name.split(".")[-1]
        cands = [name, short, "Model." + short, "transgan." + short]
        hit = next((c for c in cands if c in heads), None)
        if not check(hit is not None, "bindings README: the API table shows %s" % name):
            continue
        args = heads[hit]
        if sig is None or args is None:
            continue
        if "..." in args:
            given = [a.strip() for a in args.split(",") if a.strip() not in ("...", "")]
            real = {n: (d, req) for n, d, req in sig}
            bad = [g for g in given if (g.split("=")[0] not in real) or
                   ("=" in g and "%s=%r" % (g.split("=")[0], real[g.split("=")[0]][0]) != g)]
            check(not bad, "bindings README: the parameters shown for %s exist with these "
                  "defaults" % name, ", ".join(bad))
        else:
            check(args.replace(" ", "") == render(sig).replace(" ", ""),
                  "bindings README: the signature of %s" % name,
                  "README %s(%s), code %s(%s)" % (hit, args, name, render(sig)))
    for name in all_names:
        check(name in heads or "transgan." + name in heads or
              any(s.startswith("transgan." + name) or s == name for s in shown),
              "bindings README: the API table shows transgan.%s" % name)

    # the example runs, from a temporary folder that sees models/
    m = re.search(r"## Example\s*```python\n(.*?)```", readme, re.S)
    if check(m is not None, "bindings README has a Python example"):
        # models/fmnist-small.json there is the tiny test model: the example's
        # calls are what is checked, and a tiny model keeps the run short
        os.mkdir(os.path.join(tmp, "models"))
        os.symlink(TINY, os.path.join(tmp, "models", "fmnist-small.json"))
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "bindings", "python"),
                   TRANSGAN_LIBRARY=os.path.join(build, "libtransgan.so.0"), OMP_NUM_THREADS="1")
        p = subprocess.run([sys.executable, "-c", m.group(1)], capture_output=True, text=True,
                           cwd=tmp, env=env)
        check(p.returncode == 0, "bindings README: the Python example runs",
              (p.stdout + p.stderr)[-2000:])


# -------------------------------------------------------------------- main

# the name of the specification that once lived outside the repository
# (spelt in two parts so that a search of the tree for it finds nothing)
OLD_SPEC = "SPEC" + ".md"


def check_no_spec_md():
    docs = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "CHANGELOG.md"),
            os.path.join(ROOT, "bindings", "python", "README.md"), HEADER]
    docs += [os.path.join(ROOT, "docs", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs")))
             if f.endswith(".md")]
    for d in docs:
        text = read(d)
        bad = re.findall(r"(?<![\w/])SPEC\.md", text)
        check(not bad, "%s does not name %s" % (os.path.relpath(d, ROOT), OLD_SPEC))


DOCS = [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "bindings", "python", "README.md")]


def all_docs():
    return DOCS + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def check_spec_citations():
    spec = os.path.join(ROOT, "docs", "SPECIFICATION.md")
    cited = []
    for d in all_docs() + [HEADER]:
        text = re.sub(r"\s*\n\s*(\*\s+)?", " ", read(d))
        for m in re.finditer(r"SPECIFICATION\.md", text):
            rest = re.sub(r"^(\]\([^)]*\)|\))", "", text[m.end():m.end() + 160])
            rest = re.split(r"\)|\. |:", rest)[0]
            for n in re.findall(r'"([^"]+)"', rest):
                if (os.path.relpath(d, ROOT), n) not in cited:  # a link names the file twice
                    cited.append((os.path.relpath(d, ROOT), n))
    if not check(os.path.exists(spec), "docs/SPECIFICATION.md exists (cited %d times)" % len(cited)):
        return
    titles = {re.sub(r"^[\d.]+\s*", "", t).strip().strip("`") for _, _, t in headings(read(spec))}
    for where, name in cited:
        check(name in titles, "%s cites the section \"%s\" of docs/SPECIFICATION.md" % (where, name),
              "its headings: %s" % ", ".join(sorted(titles)))


PATH_RE = re.compile(r"\b((?:lib|tests|examples|models|include|scripts|bench|bindings|docs)/[\w./*-]*)")


def check_paths_and_links():
    for d in all_docs():
        text = read(d)
        rel = os.path.relpath(d, ROOT)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = os.path.normpath(os.path.join(os.path.dirname(d), target.split("#")[0]))
            check(os.path.exists(path), "%s: the link to %s points to a file" % (rel, target))
        seen = set()
        for span in spans(text):
            for m in PATH_RE.finditer(span):
                p = m.group(1).rstrip(".:/")
                if p in seen or (m.start() > 0 and span[m.start() - 1] in "./-"):
                    continue
                seen.add(p)
                if re.search(r"\b[A-Z]{2,}\b", p):  # a placeholder such as NAME
                    continue
                # a program is named by its source (examples/embed: examples/embed.c)
                check(glob.glob(os.path.join(ROOT, p)) or glob.glob(os.path.join(ROOT, p + ".c")),
                      "%s: the path %s exists" % (rel, p))


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
    header_text = read(HEADER)
    md = read(API_MD)
    h = parse_header(header_text)
    check(len(h["functions"]) >= 19 and len(h["enums"]) >= 14 and len(h["macros"]) >= 10,
          "the header parser finds the declarations",
          "%d functions, %d enum values, %d macros" % (len(h["functions"]), len(h["enums"]),
                                                         len(h["macros"])))
    check_header(h)
    check_api_md(h, md)
    if not check(os.path.exists(os.path.join(build, "libtransgan.so.0")),
                 "the library is built in %s (make)" % build):
        print("docs: %d passed, %d failed" % (passed, failed))
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        check_c_examples(md, header_text, build, tmp)
    check_descriptor_md(build)
    with tempfile.TemporaryDirectory() as tmp:
        check_python_readme(build, tmp)
    check_no_spec_md()
    check_spec_citations()
    check_paths_and_links()
    print("docs: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
