#!/usr/bin/env python3
"""Build the discern corpus: the first 4 KiB of real and generated files, with
libmagic's and Magika's answers for each, in OUT/manifest.tsv.

    python3 bench/discern/build-corpus.py /var/tmp/shipote-discern-corpus

Sources, in this order:
  1. files on this machine (/usr/share, /usr/lib, /usr/bin, /usr/sbin, /usr/include,
     /etc, /var/lib/dpkg), sampled per libmagic MIME type so that gzip'd man pages
     and Python bytecode do not drown everything else;
  2. a few Debian packages fetched with `apt-get download` (the machine's apt
     configuration knows the mirror) and unpacked with dpkg-deb, for images, fonts,
     sounds and documents this host lacks; the .deb files themselves too;
  3. generated files for the text formats (JSON, NDJSON, CSV, TSV, YAML, logs,
     scripts, source, markup, encodings) and a few binary containers, built from a
     seeded random generator with varied shapes, sizes and dialects, so a sample
     is sometimes whole and sometimes cut mid-record at 4 KiB.

Each chosen file is copied as its first 4096 bytes to OUT/files/NNNNN-<name>
(keeping the name so the extension can serve as a hint) and libmagic is asked
twice (`file -b --mime-type -f LIST`): about the cut copy, which is what a sniffer
sees, and about the whole original file (generated files are written at full size
and cut like the others), which is the file's type as libmagic names it. Manifest
columns: path (relative to OUT), libmagic on the 4 KiB copy, origin (the whole
file, kept under OUT/.stage for generated and packaged files), libmagic on the
whole origin, then Magika (the `magika` package from PyPI, model included, run
offline on the CPU: `pip install magika`) on the 4 KiB copy and on the whole
origin (label and score each), and `known`: for a generated file, the format
it was generated as (a MIME name; empty for the machine's and packages' files).

Reproducible: same seed, same machine and package versions -> same corpus.
Options: --seed N (default 6), --per-type N (cap of files per libmagic type from
the machine, default 120), --no-debs (skip step 2).
"""

import argparse
import bz2
import gzip
import io
import json
import lzma
import os
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import tarfile
import zipfile
import zlib

SAMPLE_BYTES = 4096
# What each generated file was made as, by file name: the sample's known
# origin, used where libmagic and Magika disagree (MIME names as discern's).
KNOWN = {}
ROOTS = ["/usr/share", "/usr/lib", "/usr/bin", "/usr/sbin", "/usr/include", "/etc", "/var/lib/dpkg"]
# Packages with types the base system lacks: pictures, fonts, sounds, PDFs, DTDs.
DEBS = [
    "python-matplotlib-data",  # png, svg, pdf, ttf, afm, csv, jpg, npy
    "fonts-font-awesome",  # woff, woff2, eot, otf, ttf, svg
    "sound-theme-freedesktop",  # ogg vorbis
    "alsa-utils",  # wav
    "docbook-xml",  # dtd, xml, catalogs
    "desktop-base",  # png, svg, jpg
    "sqlite3-doc",  # html, gif, jpg, png
    "poppler-data",  # cmaps
    "golang-1.19-src",  # Go sources, assembly, testdata of every kind
    "libjs-jquery",  # minified and plain JavaScript
    "php-getid3",  # PHP
    "lua-penlight",  # Lua
    "libtcl8.6",  # Tcl
    "openjdk-17-jre-headless",  # Java archives, class files, module images
    "python3-docutils",  # reStructuredText, Python
    "texlive-base",  # TeX, LaTeX, fonts
]


def file_mimes(paths):
    """libmagic's MIME type for each path, batched through `file -f`."""
    out = []
    for i in range(0, len(paths), 5000):
        chunk = paths[i : i + 5000]
        res = subprocess.run(
            ["file", "-b", "--mime-type", "-f", "-"],
            input="\n".join(chunk) + "\n",
            capture_output=True,
            text=True,
            check=True,
        )
        lines = res.stdout.splitlines()
        if len(lines) != len(chunk):
            sys.exit(f"file answered {len(lines)} lines for {len(chunk)} paths")
        out.extend(lines)
    return out


def walk(roots):
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = os.path.join(dirpath, name)
                if "\n" in p or "\t" in p:
                    continue
                try:
                    if os.path.islink(p) or not os.path.isfile(p) or os.path.getsize(p) == 0:
                        continue
                except OSError:
                    continue
                found.append(p)
    return found


def fetch_debs(stage):
    debdir = os.path.join(stage, "debs")
    unpacked = os.path.join(stage, "unpacked")
    os.makedirs(debdir, exist_ok=True)
    os.makedirs(unpacked, exist_ok=True)
    for pkg in DEBS:
        have = [f for f in os.listdir(debdir) if f.startswith(pkg + "_")]
        if not have:
            r = subprocess.run(["apt-get", "download", pkg], cwd=debdir, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"warning: apt-get download {pkg} failed: {r.stderr.strip()}", file=sys.stderr)
                continue
        for f in sorted(os.listdir(debdir)):
            if f.startswith(pkg + "_") and f.endswith(".deb"):
                dest = os.path.join(unpacked, pkg)
                if not os.path.isdir(dest):
                    subprocess.run(["dpkg-deb", "-x", os.path.join(debdir, f), dest], check=True)
    return [debdir, unpacked]


# ---------------------------------------------------------------- generators

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
    "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu "
    "error warning request response server client cache disk memory queue worker"
).split()
NAMES = ["Ana", "Bruno", "Chloé", "Dmitri", "Eun-ji", "Fatima", "Gustavo", "Hiro", "Ingrid", "José", "Kofi", "Łucja"]
HOSTS = ["web01", "db-2", "cache.internal", "edge-7", "build", "localhost"]
PROGS = ["sshd", "cron", "kernel", "systemd", "nginx", "postfix/smtpd", "dockerd", "shipoted"]


def word(r):
    return r.choice(WORDS)


def sentence(r, n=None):
    return " ".join(word(r) for _ in range(n or r.randint(3, 12)))


def scalar(r):
    k = r.randint(0, 6)
    if k == 0:
        return r.randint(-10**6, 10**6)
    if k == 1:
        return round(r.uniform(-1e4, 1e4), r.randint(0, 6))
    if k == 2:
        return r.choice([True, False, None])
    if k == 3:
        return r.choice(NAMES) + " " + word(r)
    if k == 4:
        return f"2026-{r.randint(1,12):02d}-{r.randint(1,28):02d}T{r.randint(0,23):02d}:{r.randint(0,59):02d}:00Z"
    return sentence(r)


def value(r, depth):
    if depth <= 0 or r.random() < 0.5:
        return scalar(r)
    if r.random() < 0.5:
        return [value(r, depth - 1) for _ in range(r.randint(0, 6))]
    return {word(r) + str(i): value(r, depth - 1) for i in range(r.randint(0, 6))}


def gen_json(r):
    n = r.choice([1, 3, 10, 40, 200])
    doc = [value(r, 4) for _ in range(n)] if r.random() < 0.4 else {word(r) + str(i): value(r, 4) for i in range(n)}
    style = r.randint(0, 2)
    if style == 0:
        s = json.dumps(doc, ensure_ascii=r.random() < 0.5)
    elif style == 1:
        s = json.dumps(doc, indent=r.choice([2, 4]), ensure_ascii=False)
    else:
        s = json.dumps(doc, indent="\t", separators=(",", ": "), ensure_ascii=False)
    return s + ("\n" if r.random() < 0.7 else "")


def gen_ndjson(r):
    keys = [word(r) for _ in range(r.randint(2, 7))]
    lines = []
    for i in range(r.choice([3, 20, 80, 400])):
        rec = {"ts": f"2026-03-{r.randint(1,28):02d}T{r.randint(0,23):02d}:00:{r.randint(0,59):02d}Z", "seq": i}
        for k in keys:
            rec[k] = value(r, 2)
        lines.append(json.dumps(rec, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def gen_table(r, delim):
    cols = r.randint(2, 12)
    header = [word(r) + ("_id" if i == 0 else "") for i in range(cols)]
    kinds = [r.randint(0, 4) for _ in range(cols)]
    quote_all = r.random() < 0.2
    eol = "\r\n" if r.random() < 0.3 else "\n"

    def cell(k):
        if k == 0:
            return str(r.randint(0, 99999))
        if k == 1:
            return f"{r.uniform(-100, 100):.{r.randint(1, 4)}f}"
        if k == 2:
            return r.choice(NAMES)
        if k == 3:
            return f"2026-{r.randint(1,12):02d}-{r.randint(1,28):02d}"
        s = sentence(r, r.randint(1, 4))
        if delim != "\t" and r.random() < 0.2:
            s = s.replace(" ", delim + " ", 1)
        return s

    def fmt(c):
        if delim != "\t" and (quote_all or delim in c or '"' in c):
            return '"' + c.replace('"', '""') + '"'
        return c

    rows = [header] if r.random() < 0.8 else []
    for _ in range(r.choice([4, 30, 150, 600])):
        rows.append([cell(k) for k in kinds])
    return eol.join(delim.join(fmt(c) for c in row) for row in rows) + eol


def gen_yaml(r):
    out = []
    if r.random() < 0.4:
        out.append("---")
    if r.random() < 0.3:
        out.append(f"# {sentence(r)}")

    def emit(v, indent, key=None):
        pad = "  " * indent
        if isinstance(v, dict):
            if key is not None:
                out.append(f"{pad}{key}:")
                indent += 1
            for k, x in v.items():
                emit(x, indent, k)
        elif isinstance(v, list):
            if key is not None:
                out.append(f"{pad}{key}:")
            for x in v:
                if isinstance(x, (dict, list)) and x:
                    out.append(f"{pad}  -")
                    emit(x, indent + 2)
                else:
                    out.append(f"{pad}  - {yscalar(x)}")
        else:
            out.append(f"{pad}{key}: {yscalar(v)}" if key is not None else f"{pad}{yscalar(v)}")

    def yscalar(x):
        if x is None:
            return "null"
        if x is True:
            return "true"
        if x is False:
            return "false"
        if isinstance(x, str) and (":" in x or r.random() < 0.2):
            return json.dumps(x, ensure_ascii=False)
        if isinstance(x, (dict, list)):
            return json.dumps(x)
        return str(x)

    emit({word(r) + str(i): value(r, 3) for i in range(r.choice([3, 8, 30, 120]))}, 0)
    return "\n".join(out) + "\n"


def gen_log(r):
    style = r.randint(0, 4)
    lines = []
    t = r.randint(0, 86000)
    for i in range(r.choice([5, 40, 200])):
        t += r.randint(0, 90)
        hh, mm, ss = t // 3600 % 24, t // 60 % 60, t % 60
        host, prog, msg = r.choice(HOSTS), r.choice(PROGS), sentence(r)
        pid = r.randint(1, 99999)
        if style == 0:  # classic syslog
            lines.append(f"{r.choice(['Jan','Feb','Mar','Nov'])} {r.randint(1,28):2d} {hh:02d}:{mm:02d}:{ss:02d} {host} {prog}[{pid}]: {msg}")
        elif style == 1:  # RFC 5424
            lines.append(f"<{r.randint(0,191)}>1 2026-11-{r.randint(1,28):02d}T{hh:02d}:{mm:02d}:{ss:02d}.{r.randint(0,999999):06d}+00:00 {host} {prog} {pid} - - {msg}")
        elif style == 2:  # ISO timestamp + level
            lvl = r.choice(["INFO", "WARN", "ERROR", "DEBUG", "info", "warn"])
            lines.append(f"2026-11-{r.randint(1,28):02d} {hh:02d}:{mm:02d}:{ss:02d},{r.randint(0,999):03d} {lvl} [{word(r)}] {msg}")
        elif style == 3:  # RFC 3339 with T
            lvl = r.choice(["INFO", "WARN", "ERROR"])
            lines.append(f"2026-11-{r.randint(1,28):02d}T{hh:02d}:{mm:02d}:{ss:02d}Z {lvl} {prog}: {msg}")
        else:  # journalctl -o export: one record of KEY=value lines per entry
            lines += [
                f"__CURSOR=s={r.getrandbits(128):032x};i={i:x}",
                f"__REALTIME_TIMESTAMP={1790000000000000 + t * 1000000}",
                f"__MONOTONIC_TIMESTAMP={t * 1000000}",
                f"_BOOT_ID={r.getrandbits(128):032x}",
                "PRIORITY=6",
                f"_HOSTNAME={host}",
                f"SYSLOG_IDENTIFIER={prog}",
                f"_PID={pid}",
                f"MESSAGE={msg}",
                "",
            ]
    return "\n".join(lines) + "\n"


def gen_shell(r):
    sheb = r.choice(["#!/bin/sh", "#!/bin/bash", "#!/usr/bin/env bash", "#! /bin/sh -e", "#!/bin/dash"])
    body = [sheb, f"# {sentence(r)}", "set -eu"]
    for _ in range(r.randint(3, 60)):
        v = word(r).upper()
        body.append(r.choice([
            f'{v}="${{{v}:-{word(r)}}}"',
            f'if [ -n "${v}" ]; then\n  echo "{sentence(r)}" >&2\nfi',
            f'for f in /etc/{word(r)}/*; do\n  test -f "$f" && . "$f"\ndone',
            f'{word(r)}() {{\n  local x="$1"\n  printf "%s\\n" "$x"\n}}',
            f'case "$1" in\n  start) {word(r)} ;;\n  *) exit 1 ;;\nesac',
        ]))
    return "\n".join(body) + "\n"


def gen_script(r, lang):
    if lang == "python":
        sheb = r.choice(["#!/usr/bin/env python3", "#!/usr/bin/python3", "#!/usr/bin/python3 -u"])
        body = [sheb, '"""' + sentence(r) + '"""', "import os", "import sys", ""]
        for _ in range(r.randint(2, 20)):
            body.append(f"def {word(r)}_{r.randint(0,99)}(x, y=None):\n    if x is None:\n        return {r.randint(0,9)}\n    return [i for i in range(x)]\n")
        body.append('if __name__ == "__main__":\n    sys.exit(main())')
    elif lang == "perl":
        body = [r.choice(["#!/usr/bin/perl", "#!/usr/bin/perl -w", "#!/usr/bin/env perl"]), "use strict;", "use warnings;", ""]
        for _ in range(r.randint(2, 20)):
            body.append(f"sub {word(r)} {{\n    my ($x) = @_;\n    print \"$x\\n\" if $x =~ /{word(r)}/;\n}}")
    elif lang == "ruby":
        body = [r.choice(["#!/usr/bin/env ruby", "#!/usr/bin/ruby"])]
        for _ in range(r.randint(2, 20)):
            body.append(f"def {word(r)}(x)\n  puts \"#{{x}}\"\nend")
    elif lang == "node":
        body = ["#!/usr/bin/env node", "'use strict';"]
        for _ in range(r.randint(2, 20)):
            body.append(f"function {word(r)}(x) {{\n  return x.map((y) => y + {r.randint(0,9)});\n}}")
    else:  # awk
        body = [r.choice(["#!/usr/bin/awk -f", "#!/usr/bin/gawk -f"]), "BEGIN { FS = \":\" }"]
        for _ in range(r.randint(2, 20)):
            body.append(f"/{word(r)}/ {{ n[$1]++ }}")
        body.append("END { for (k in n) print k, n[k] }")
    return "\n".join(body) + "\n"


def gen_source(r, lang):
    if lang == "c":
        body = [f"/* {sentence(r)} */", "#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>", ""]
        for _ in range(r.randint(2, 30)):
            body.append(f"static int {word(r)}_{r.randint(0,99)}(const char *s, size_t n)\n{{\n\tif (s == NULL)\n\t\treturn -1;\n\treturn (int)strlen(s) + {r.randint(0,9)};\n}}\n")
        body.append("int main(int argc, char **argv)\n{\n\treturn 0;\n}")
    else:  # rust
        body = [f"//! {sentence(r)}", "", "use std::collections::HashMap;", "use std::io::{self, Read};", ""]
        for _ in range(r.randint(2, 30)):
            body.append(f"pub fn {word(r)}_{r.randint(0,99)}(x: &str) -> Option<usize> {{\n    let mut m = HashMap::new();\n    m.insert(x, {r.randint(0,9)});\n    m.get(x).copied()\n}}\n")
    return "\n".join(body) + "\n"


def gen_html(r):
    parts = [r.choice(["<!DOCTYPE html>", "<!doctype html>", '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN">', ""]),
             r.choice(["<html>", '<html lang="en">', "<HTML>"]), "<head>", f"<title>{sentence(r, 3)}</title>", "</head>", "<body>"]
    for _ in range(r.randint(2, 80)):
        parts.append(r.choice([f"<p>{sentence(r)}</p>", f"<h2>{sentence(r, 3)}</h2>", f'<a href="/{word(r)}">{word(r)}</a>',
                               f"<ul><li>{word(r)}</li><li>{word(r)}</li></ul>", f'<div class="{word(r)}">{sentence(r)}</div>']))
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def gen_xml(r):
    root = word(r)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>' if r.random() < 0.85 else '<?xml version="1.0"?>', f"<{root}>"]
    for i in range(r.randint(2, 150)):
        tag = word(r)
        parts.append(f'  <{tag} id="{i}" name="{r.choice(NAMES)}">{sentence(r)}</{tag}>')
    parts.append(f"</{root}>")
    return "\n".join(parts) + "\n"


def gen_prose(r):
    paras = []
    for _ in range(r.randint(1, 30)):
        paras.append(". ".join(sentence(r).capitalize() for _ in range(r.randint(1, 6))) + ".")
    return "\n\n".join(paras) + "\n"


def gen_markdown(r):
    out = [f"# {sentence(r, 3).title()}", ""]
    for _ in range(r.randint(2, 20)):
        out += [f"## {sentence(r, 2).title()}", "", gen_prose(r), f"- {sentence(r)}", f"- `{word(r)}`", ""]
    return "\n".join(out)


def gen_ini(r):
    out = []
    for _ in range(r.randint(1, 15)):
        out.append(f"[{word(r)}]")
        for _ in range(r.randint(1, 8)):
            out.append(f"{word(r)} = {scalar(r)}")
        out.append("")
    return "\n".join(out)


def gen_toml(r):
    out = [f"# {sentence(r)}", "[package]", f'name = "{word(r)}-{word(r)}"', f'version = "{r.randint(0,3)}.{r.randint(0,20)}.{r.randint(0,9)}"',
           f'edition = "{r.choice(["2018", "2021"])}"', ""]
    for _ in range(r.randint(1, 12)):
        out.append(f"[{r.choice(['dependencies', 'dev-dependencies', 'features', word(r)])}]")
        for _ in range(r.randint(1, 8)):
            k = word(r)
            out.append(r.choice([f'{k} = "{r.randint(0,9)}.{r.randint(0,9)}"', f"{k} = {r.randint(0,999)}",
                                 f'{k} = {{ version = "{r.randint(0,9)}", features = ["{word(r)}"] }}', f"{k} = {str(r.random() < 0.5).lower()}",
                                 f'{k} = ["{word(r)}", "{word(r)}"]']))
        out.append("")
    return "\n".join(out)


def gen_go(r):
    body = [f"// {sentence(r)}", f"package {word(r)}", "", "import (", '\t"fmt"', '\t"os"', '\t"strings"', ")", ""]
    for _ in range(r.randint(2, 25)):
        n = word(r).capitalize()
        body.append(r.choice([
            f"func {n}(s string) (int, error) {{\n\tif s == \"\" {{\n\t\treturn 0, fmt.Errorf(\"empty\")\n\t}}\n\treturn len(strings.Fields(s)), nil\n}}\n",
            f"type {n} struct {{\n\tName string `json:\"name\"`\n\tCount int\n}}\n",
            f"func (x *{n}) String() string {{\n\treturn fmt.Sprintf(\"%s\", x.Name)\n}}\n",
        ]))
    body.append("func main() {\n\tos.Exit(0)\n}")
    return "\n".join(body) + "\n"


def gen_java(r):
    cls = word(r).capitalize()
    body = [f"package org.{word(r)}.{word(r)};", "", "import java.util.List;", "import java.util.ArrayList;", "",
            f"/** {sentence(r)} */", f"public class {cls} {{"]
    for _ in range(r.randint(2, 25)):
        body.append(r.choice([
            f"    private final List<String> {word(r)} = new ArrayList<>();",
            f"    public int {word(r)}(String s) {{\n        if (s == null) {{\n            throw new IllegalArgumentException();\n        }}\n        return s.length();\n    }}",
            f"    @Override\n    public String toString() {{\n        return \"{cls}\";\n    }}",
        ]))
    body.append("}")
    return "\n".join(body) + "\n"


def gen_sql(r):
    out = [f"-- {sentence(r)}"]
    for _ in range(r.randint(2, 40)):
        t = word(r)
        out.append(r.choice([
            f"CREATE TABLE {t} (\n    id INTEGER PRIMARY KEY,\n    {word(r)} TEXT NOT NULL,\n    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP\n);",
            f"INSERT INTO {t} ({word(r)}, {word(r)}) VALUES ('{word(r)}', {r.randint(0,999)});",
            f"SELECT {word(r)}, COUNT(*) FROM {t} WHERE {word(r)} > {r.randint(0,99)} GROUP BY 1 ORDER BY 2 DESC;",
            f"UPDATE {t} SET {word(r)} = '{word(r)}' WHERE id = {r.randint(1,99)};",
        ]))
    return "\n".join(out) + "\n"


def gen_dockerfile(r):
    out = [f"# {sentence(r)}", f"FROM {r.choice(['debian:12', 'alpine:3.19', 'rust:1.80', 'python:3.11-slim'])}"]
    for _ in range(r.randint(2, 20)):
        out.append(r.choice([
            f"RUN apt-get update && apt-get install -y {word(r)} {word(r)} && rm -rf /var/lib/apt/lists/*",
            f"COPY {word(r)}/ /opt/{word(r)}/", f"ENV {word(r).upper()}={word(r)}", f"WORKDIR /srv/{word(r)}",
            f"EXPOSE {r.randint(1000, 9000)}", f"ARG {word(r).upper()}",
        ]))
    out.append(f'CMD ["/usr/bin/{word(r)}", "--{word(r)}"]')
    return "\n".join(out) + "\n"


def gen_diff(r):
    out = []
    for _ in range(r.randint(1, 6)):
        f = f"src/{word(r)}.c"
        out += [f"diff --git a/{f} b/{f}", f"index {r.getrandbits(28):07x}..{r.getrandbits(28):07x} 100644", f"--- a/{f}", f"+++ b/{f}"]
        for _ in range(r.randint(1, 4)):
            a = r.randint(1, 400)
            out.append(f"@@ -{a},7 +{a},8 @@ {word(r)}")
            for _ in range(r.randint(3, 12)):
                out.append(r.choice([" ", " ", "-", "+"]) + sentence(r))
    return "\n".join(out) + "\n"


# Binary containers with enough structure for libmagic and a sniffer to agree on.
BINARY_KNOWN = {
    "gz": "application/gzip", "xz": "application/x-xz", "bz2": "application/x-bzip2",
    "zlib": "application/zlib", "zst": "application/zstd", "lz4": "application/x-lz4",
    "lz": "application/x-lzip", "zip": "application/zip", "tar": "application/x-tar",
    "sqlite": "application/vnd.sqlite3", "bmp": "image/bmp", "ppm": "image/x-portable-pixmap",
    "pgm": "image/x-portable-greymap", "wav": "audio/x-wav", "pdf": "application/pdf",
}


def gen_binaries(r, gdir, n):
    def put(name, data):
        with open(os.path.join(gdir, name), "wb") as f:
            f.write(data)
        KNOWN[name] = BINARY_KNOWN[name.rsplit(".", 1)[1]]

    for i in range(n):
        payload = (gen_prose(r) + gen_json(r)).encode()
        put(f"bin{i}.gz", gzip.compress(payload, mtime=0))
        put(f"bin{i}.xz", lzma.compress(payload))
        put(f"bin{i}.bz2", bz2.compress(payload))
        put(f"bin{i}.zlib", zlib.compress(payload))
        for tool, ext in (("zstd", "zst"), ("lz4", "lz4"), ("lzip", "lz")):
            if shutil.which(tool):
                res = subprocess.run([tool, "-c"], input=payload, capture_output=True)
                if res.returncode == 0:
                    put(f"bin{i}.{ext}", res.stdout)
        zb = io.BytesIO()
        with zipfile.ZipFile(zb, "w", zipfile.ZIP_DEFLATED) as z:
            for j in range(r.randint(1, 4)):
                z.writestr(zipfile.ZipInfo(f"{word(r)}{j}.txt", (2026, 1, 1, 0, 0, 0)), sentence(r) * r.randint(1, 50))
        put(f"bin{i}.zip", zb.getvalue())
        tb = io.BytesIO()
        with tarfile.open(fileobj=tb, mode="w", format=tarfile.GNU_FORMAT if i % 2 else tarfile.PAX_FORMAT) as t:
            data = payload[: r.randint(10, len(payload))]
            ti = tarfile.TarInfo(f"{word(r)}/{word(r)}.txt")
            ti.size, ti.mtime = len(data), 1790000000
            t.addfile(ti, io.BytesIO(data))
        put(f"bin{i}.tar", tb.getvalue())
        db = os.path.join(gdir, f"db{i}.sqlite")
        if os.path.exists(db):
            os.remove(db)
        con = sqlite3.connect(db)
        con.execute(f"create table {word(r)} (id integer primary key, v text)")
        con.commit()
        con.close()
        KNOWN[f"db{i}.sqlite"] = BINARY_KNOWN["sqlite"]
        w, h = r.randint(1, 64), r.randint(1, 64)
        pixels = bytes(r.getrandbits(8) for _ in range(w * h * 3))
        row = (w * 3 + 3) & ~3
        bmp = b"".join(pixels[y * w * 3 : (y + 1) * w * 3] + b"\0" * (row - w * 3) for y in range(h))
        put(f"img{i}.bmp", b"BM" + struct.pack("<IHHI", 54 + len(bmp), 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, len(bmp), 2835, 2835, 0, 0) + bmp)
        put(f"img{i}.ppm", f"P6\n{w} {h}\n255\n".encode() + pixels)
        put(f"img{i}.pgm", f"P5\n{w} {h}\n255\n".encode() + pixels[: w * h])
        # WAV: PCM header + noise.
        frames = bytes(r.getrandbits(8) for _ in range(r.randint(100, 6000)))
        rate, ch = r.choice([8000, 22050, 44100, 48000]), r.choice([1, 2])
        put(f"snd{i}.wav", b"RIFF" + struct.pack("<I", 36 + len(frames)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, ch, rate, rate * ch * 2, ch * 2, 16) + b"data" + struct.pack("<I", len(frames)) + frames)
        # PDF: a minimal one-page document.
        put(f"doc{i}.pdf", (f"%PDF-1.{r.randint(3,7)}\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
                            f"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
                            f"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>\nendobj\n"
                            f"% {sentence(r)}\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n").encode("latin-1"))


def generate(gdir, r, scale):
    os.makedirs(gdir, exist_ok=True)

    def put(name, text, enc="utf-8", known=None):
        with open(os.path.join(gdir, name), "wb") as f:
            f.write(text.encode(enc))
        if known:
            KNOWN[name] = known

    for i in range(scale):
        put(f"doc{i}.json", gen_json(r), known="application/json")
        put(f"events{i}.ndjson" if i % 3 else f"events{i}.jsonl", gen_ndjson(r), known="application/x-ndjson")
        put(f"table{i}.csv", gen_table(r, r.choice([",", ",", ",", ";"])), known="text/csv")
        put(f"table{i}.tsv", gen_table(r, "\t"), known="text/tab-separated-values")
        put(f"conf{i}.yaml" if i % 2 else f"conf{i}.yml", gen_yaml(r), known="application/yaml")
        put(f"app{i}.log", gen_log(r), known="text/plain")
        put(f"run{i}.sh" if i % 3 else f"run{i}", gen_shell(r), known="text/x-shellscript")
        put(f"tool{i}.py" if i % 2 else f"tool{i}", gen_script(r, "python"), known="text/x-script.python")
        put(f"tool{i}.pl", gen_script(r, "perl"), known="text/x-perl")
        put(f"src{i}.c", gen_source(r, "c"), known="text/x-c")
        put(f"src{i}.rs", gen_source(r, "rust"), known="text/rust")
        put(f"page{i}.html", gen_html(r), known="text/html")
        put(f"data{i}.xml", gen_xml(r), known="text/xml")
        put(f"notes{i}.txt", gen_prose(r), known="text/plain")
        put(f"README{i}.md", gen_markdown(r), known="text/markdown")
        put(f"settings{i}.ini", gen_ini(r), known="text/plain")
        put(f"Cargo{i}.toml", gen_toml(r), known="application/toml")
        put(f"main{i}.go", gen_go(r), known="text/x-go")
        put(f"Main{i}.java", gen_java(r), known="text/x-java")
        put(f"query{i}.sql", gen_sql(r), known="application/x-sql")
        put(f"Dockerfile{i}", gen_dockerfile(r), known="text/x-dockerfile")
        put(f"change{i}.diff", gen_diff(r), known="text/x-diff")
        if i % 2 == 0:
            put(f"tool{i}.rb", gen_script(r, "ruby"), known="text/x-ruby")
            put(f"tool{i}.js", gen_script(r, "node"), known="application/javascript")
            put(f"tool{i}.awk", gen_script(r, "awk"), known="text/x-awk")
            put(f"utf16le-{i}.txt", "\ufeff" + gen_prose(r) + "ñandú café", "utf-16-le", known="text/plain")
            put(f"utf16be-{i}.txt", "\ufeff" + gen_prose(r) + "ñandú café", "utf-16-be", known="text/plain")
            put(f"bom{i}.txt", "\ufeff" + gen_prose(r), "utf-8", known="text/plain")
            put(f"latin1-{i}.txt", gen_prose(r) + " ñandú café", "latin-1", known="text/plain")
            # A text whose 4 KiB cut lands inside a multi-byte character.
            put(f"utf8cut{i}.txt", "é" * 1500 + "€" * r.randint(0, 700) + gen_prose(r), known="text/plain")
    gen_binaries(r, gdir, max(2, scale // 4))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--per-type", type=int, default=120)
    ap.add_argument("--gen-scale", type=int, default=40, help="generated files per text format")
    ap.add_argument("--no-debs", action="store_true")
    a = ap.parse_args()

    out = os.path.abspath(a.out)
    stage = os.path.join(out, ".stage")
    files = os.path.join(out, "files")
    if os.path.isdir(files):
        shutil.rmtree(files)
    os.makedirs(files)
    r = random.Random(a.seed)

    gdir = os.path.join(stage, "generated")
    if os.path.isdir(gdir):
        shutil.rmtree(gdir)
    generate(gdir, r, a.gen_scale)
    generated = walk([gdir])

    roots = [x for x in ROOTS if os.path.isdir(x)]
    if not a.no_debs:
        roots += fetch_debs(stage)
    found = walk(roots)
    print(f"{len(found)} files on the machine and in packages; asking libmagic about them", file=sys.stderr)
    buckets = {}
    for p, m in zip(found, file_mimes(found)):
        buckets.setdefault(m, []).append(p)
    chosen = []
    for m in sorted(buckets):
        ps = buckets[m]
        r.shuffle(ps)
        chosen += ps[: a.per_type]
    chosen += generated

    try:
        from magika import Magika
    except ImportError:
        sys.exit("Magika is the second reference: pip install magika (model included, runs offline)")
    magika = Magika()

    rows = []
    for i, src in enumerate(chosen):
        name = f"{i:05d}-{os.path.basename(src)}"
        with open(src, "rb") as f:
            head = f.read(SAMPLE_BYTES)
        with open(os.path.join(files, name), "wb") as f:
            f.write(head)
        rows.append((os.path.join("files", name), src))
    mimes = file_mimes([os.path.join(out, p) for p, _ in rows])
    whole = file_mimes([src for _, src in rows])
    print(f"asking Magika ({magika.get_model_name()}) about {len(rows)} samples and their origins", file=sys.stderr)

    def ask(paths):
        return [(str(res.output.label), res.output.mime_type, res.score) for res in magika.identify_paths(paths)]

    from pathlib import Path
    mg_cut = ask([Path(out, p) for p, _ in rows])
    mg_whole = ask([Path(src) for _, src in rows])
    gen_prefix = gdir + os.sep
    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        f.write("path\tlibmagic\torigin\tlibmagic_whole\tmagika\tmagika_mime\tmagika_score"
                "\tmagika_whole\tmagika_whole_mime\tmagika_whole_score\tknown\n")
        for (p, src), m, w, (mc, mcm, sc), (mw, mwm, sw) in zip(rows, mimes, whole, mg_cut, mg_whole):
            known = KNOWN.get(os.path.basename(src), "") if src.startswith(gen_prefix) else ""
            f.write(f"{p}\t{m}\t{src}\t{w}\t{mc}\t{mcm}\t{sc:.3f}\t{mw}\t{mwm}\t{sw:.3f}\t{known}\n")
    with open(os.path.join(out, "magika-version.txt"), "w") as f:
        import magika as mg
        f.write(f"magika {mg.__version__} model {magika.get_model_name()}\n")
    for name, answers in (("4 KiB copy", mimes), ("whole file", whole)):
        print(f"{len(rows)} samples, {len(set(answers))} libmagic types on the {name}", file=sys.stderr)
    differ = sum(m != w for m, w in zip(mimes, whole))
    print(f"libmagic names {differ} samples differently on the cut copy -> {out}/manifest.tsv", file=sys.stderr)


if __name__ == "__main__":
    main()
