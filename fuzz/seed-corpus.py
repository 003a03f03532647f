#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into corpus/<target>/seed-* (the
inputs libFuzzer starts from; what it finds joins them). Idempotent. Uses the
protocol's own golden bytes and the Python client (protocol/examples) to
encode specs, so the seeds follow the wire as it is."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "protocol" / "examples"))
import shipote_client as sc  # noqa: E402


def put(target: str, name: str, data: bytes) -> None:
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


# wire: every golden payload of both protocols (without the 4-byte header).
for f in sorted((ROOT / "protocol" / "tests" / "golden").glob("*.hex")):
    for line in f.read_text().splitlines():
        if line.strip():
            name, hexbytes = line.split()
            put("wire", f"{f.stem}-{name}", bytes.fromhex(hexbytes)[4:])

# pipeline: (PipelineSpec, vars) as the wire encodes them.
SPEC_AND_VARS = sc.Tup(sc.PIPELINE_SPEC, sc.StrMap())


def spec(commands, edges, label="p"):
    return {"workspace": sc.WS, "label": label, "commands": commands, "edges": edges}


def cmd(label, exec_, argv=(), env=()):
    return {"label": label, "exec": exec_, "argv": list(argv), "env": list(env),
            "cwd": None, "restart_on_failure": False}


def edge(a, out, b, inp, rate=None):
    return {"from": {"label": a, "port": out}, "to": {"label": b, "port": inp},
            "rate_limit_bytes_per_sec": rate}


cases = {
    "golden": (sc.PIPELINE_SPEC_VALUE, {"K": "v"}),
    "template": (spec([cmd("${L}", "${P}", ["-n", "${N}x$${LIT}$HOME"], [("K_${N}", "${N}")])],
                      []), {"L": "a", "P": "echo", "N": "3"}),
    "fan": (spec([cmd("a", "yes"), cmd("b", "cat"), cmd("c", "wc", ["-c"])],
                 [edge("a", "stdout", "b", "stdin"), edge("a", "stdout", "c", "stdin", 1000)]), {}),
    "named": (spec([cmd("a", "sh"), cmd("b", "sh")],
                   [edge("a", "report", "b", "data"), edge("a", "stderr", "b", "stdin")]), {}),
    "cycle": (spec([cmd("a", "cat"), cmd("b", "cat")],
                   [edge("a", "stdout", "b", "stdin"), edge("b", "stdout", "a", "stdin")]), {}),
}
for name, value in cases.items():
    out = bytearray()
    SPEC_AND_VARS.encode(value, out)
    put("pipeline", name, bytes(out))

# pipeline_toml: the example files.
for f in sorted((ROOT / "examples" / "pipelines").glob("*.toml")):
    put("pipeline_toml", f.stem, f.read_bytes())

# discern: a hint selector byte, then a sample.
samples = {
    "json": b'{"a": [1, 2, {"b": null}], "c": "d"}\n',
    "ndjson": b'{"a":1}\n{"a":2}\n',
    "csv": b"name,size\na,1\nb,2\n",
    "png": b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02",
    "gzip": b"\x1f\x8b\x08\0\0\0\0\0\0\x03",
    "elf": b"\x7fELF\x02\x01\x01\0" + b"\0" * 8 + b"\x03\0>\0",
    "utf16": "hola\n".encode("utf-16"),
    "rust": (ROOT / "fuzz" / "fuzz_targets" / "discern.rs").read_bytes(),
    "toml": (ROOT / "Cargo.toml").read_bytes()[:4096],
    "markdown": (ROOT / "README.md").read_bytes()[:4096],
    "tsv": (ROOT / "bench" / "discern" / "verdicts.tsv").read_bytes()[:4096],
    "empty": b"",
}
for i, (name, data) in enumerate(samples.items()):
    put("discern", name, bytes([i]) + data)

print("seed corpora written:", {t.name: len(list(t.iterdir())) for t in sorted((HERE / "corpus").iterdir())})
