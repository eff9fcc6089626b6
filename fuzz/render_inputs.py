#!/usr/bin/env python3
"""Inputs for the `render` fuzz target.

    python3 fuzz/render_inputs.py corpus   # fuzz/corpus/render/ from the targets in tests/*.rs
    python3 fuzz/render_inputs.py dict     # fuzz/render.dict from graphite-web's function list

The corpus takes every string literal in tests/*.rs that looks like a render target and points
its paths at the series the fuzz target's in-memory source holds, so seeds start out fetching
data. The dictionary lists every function name, parameter name (as a keyword `name=`), option
value, and the grammar's tokens.
"""

import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SPEC = "/work/shared/spec/functions-graphite-web-1.1.10.json"

# Path expressions over the fuzz target's series (see fuzz_targets/render.rs).
PATHS = ["a.b.c", "a.b.*", "a.*", "x.y", "a.{b,e}.*", "x.*.*", "*.*", "a.b.[cd]", "x.z.w"]

LITERAL = re.compile(r'r#"(.*?)"#|"((?:[^"\\\n]|\\.)*)"', re.S)
TARGET = re.compile(r"^[A-Za-z][A-Za-z0-9]*\(.*\)$|^\S+\|[A-Za-z]", re.S)
# `$p.g.*`, `{p}.x.y`, `{}.a`: a test's own prefix and the path after it.
PREFIXED = re.compile(r"(\$[a-z]+|\{[a-z]*\})(\.[A-Za-z0-9_*?\[\]{}-]+)*")
# Any other dotted path outside quotes (`servers.web1.cpu`).
DOTTED = re.compile(r"(?<![\w.$])[A-Za-z_*][\w*?\[\]-]*(?:\.[\w*?\[\]{}-]+)+(?![\w(])")
QUOTED = re.compile(r"('[^']*'|\"[^\"]*\")")


def unescape(s):
    return s.replace('\\"', '"').replace("\\\\", "\\").replace("\\n", "\n")


def targets():
    tests = os.path.join(ROOT, "tests")
    for fname in sorted(os.listdir(tests)):
        if not fname.endswith(".rs"):
            continue
        with open(os.path.join(tests, fname), encoding="utf-8") as f:
            text = f.read()
        for m in LITERAL.finditer(text):
            s = m.group(1) if m.group(1) is not None else unescape(m.group(2))
            if TARGET.match(s) and len(s) < 2000:
                yield s


def rewrite(target):
    n = [0]

    def path(_m):
        n[0] += 1
        h = int(hashlib.sha1(f"{target}{n[0]}".encode()).hexdigest(), 16)
        return PATHS[h % len(PATHS)]

    target = PREFIXED.sub(path, target)
    parts = QUOTED.split(target)
    for i in range(0, len(parts), 2):
        parts[i] = DOTTED.sub(lambda m: m.group(0) if m.group(0) in PATHS else path(m), parts[i])
    return "".join(parts)


def corpus():
    out = os.path.join(HERE, "corpus", "render")
    os.makedirs(out, exist_ok=True)
    seen = set()
    for t in targets():
        t = rewrite(t)
        if t in seen:
            continue
        seen.add(t)
        name = hashlib.sha1(t.encode()).hexdigest()
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(t)
    extra = [
        "seriesByTag('dc=east')",
        "seriesByTag('name=~x.*','host!=h3')|aliasByTags('dc')",
        "groupByTags(seriesByTag('dc=~.*'),'sum','dc')",
        "a.b.c;dc=east",
        "-1h",
        "now-5min",
        "noon yesterday",
        "20231114",
        "midnight+3d",
    ]
    for t in extra:
        with open(os.path.join(out, hashlib.sha1(t.encode()).hexdigest()), "w") as f:
            f.write(t)
    print(f"{len(seen) + len(extra)} seeds in {out}")


def quote(tok):
    return '"' + tok.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dictionary():
    with open(SPEC, encoding="utf-8") as f:
        spec = json.load(f)
    toks = []
    for name, fn in sorted(spec.items()):
        toks.append(name + "(")
        for p in fn.get("params", []):
            toks.append(p["name"] + "=")
            for opt in p.get("options", []) or []:
                if isinstance(opt, str):
                    toks.append(f"'{opt}'")
    toks += list("(),\"'=*{}[]|.;?!~") + ["=~", "!=", "!=~", "template(", "seriesByTag("]
    toks += ["0", "1", "-1", "2", "7", "100", "1e308", "-1e308", "1e-308", "0.5", "-0.0",
             "1e400", "99999999999999999999", "9223372036854775807", "nan", "inf", "-inf",
             "True", "False", "None", "true", "false", "none"]
    toks += ["'-1h'", "'1d'", "'5min'", "'1y'", "'-1000y'", "'30s'", "'1w'", "'2mon'",
             "-1h", "now", "today", "yesterday", "tomorrow", "noon", "midnight", "teatime",
             "now-5min", "+", "-", "12:00", "20231114", "jan", "sunday", "am", "pm"]
    toks += ["a.b.c", "a.b.*", "x.y", "a.{b,e}.*", "dc=east", "'dc=east'", "'name=~x.*'",
             "host", "$1", "$name", "name="]
    seen = set()
    lines = []
    for t in toks:
        if t not in seen:
            seen.add(t)
            lines.append(quote(t))
    with open(os.path.join(HERE, "render.dict"), "w", encoding="utf-8") as f:
        f.write("# render target tokens: python3 fuzz/render_inputs.py dict\n")
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} tokens in fuzz/render.dict")


if __name__ == "__main__":
    {"corpus": corpus, "dict": dictionary}[sys.argv[1] if len(sys.argv) > 1 else "corpus"]()
