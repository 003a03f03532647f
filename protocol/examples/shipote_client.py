#!/usr/bin/env python3
"""A shipote client written from protocol/SPEC.md alone (Python 3.11, stdlib only).

As a module::

    from shipote_client import Client
    with Client.connect("/run/user/1000/shipote.sock") as c:
        print(c.call({"type": "Health"}))

As a command::

    python3 shipote_client.py [--socket PATH] ping|health|caps|raw-discern [SAMPLE] [--hint PATH]
    python3 shipote_client.py --selftest [--golden-dir DIR]

Every response is printed on stdout as one JSON object. Exit status: 0 success,
1 the daemon answered Error (code and message also go to stderr), 2 the daemon
could not be reached or the exchange failed (connection, framing, decoding),
3 the self-test failed.

Values are plain Python data: a struct is a dict of its fields; a Request or
Response is a dict whose "type" key holds the variant name, plus its fields; an
enum without fields (ErrorCode, LogStream, ...) is its variant name as a str; a
tuple is a tuple (a list in JSON); Option is None or the value; Vec<u8> is bytes
(hex in JSON); a BTreeMap is a dict; a Ulid / WorkspaceId is its 26-character
string.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import struct
import sys
import time
from pathlib import Path

__all__ = [
    "Client",
    "ProtocolError",
    "DaemonError",
    "REQUEST",
    "RESPONSE",
    "encode_frame",
    "decode_payload",
    "default_socket_path",
]

MAX_FRAME_BYTES = 1 << 20  # 1 MiB of payload, inclusive
HEADER_BYTES = 4

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class ProtocolError(Exception):
    """The bytes do not follow the shipote wire format."""


class DaemonError(Exception):
    """The daemon answered Response::Error."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# --------------------------------------------------------------------------
# postcard primitives
# --------------------------------------------------------------------------


class Reader:
    """A cursor over one payload."""

    def __init__(self, data: bytes):
        self.data = memoryview(bytes(data))
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError(
                f"unexpected end of payload: need {n} bytes at offset {self.pos}, "
                f"{len(self.data) - self.pos} left"
            )
        out = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def remaining(self) -> int:
        return len(self.data) - self.pos


def varint_max_bytes(bits: int) -> int:
    return (bits + 6) // 7


def write_varint(out: bytearray, n: int, bits: int) -> None:
    if n < 0 or n >= 1 << bits:
        raise ProtocolError(f"{n} does not fit in u{bits}")
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def read_varint(r: Reader, bits: int) -> int:
    """LEB128 as postcard decodes it: at most ceil(bits/7) bytes, and the last
    byte of a maximal-length varint may only carry the remaining bits."""
    max_bytes = varint_max_bytes(bits)
    last_max = (1 << (bits % 7)) - 1 if bits % 7 else 0x7F
    out = 0
    for i in range(max_bytes):
        b = r.byte()
        out |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if i == max_bytes - 1 and b > last_max:
                raise ProtocolError(f"bad varint for u{bits}")
            return out
    raise ProtocolError(f"bad varint for u{bits}: more than {max_bytes} bytes")


def zigzag(n: int, bits: int) -> int:
    return (n << 1) ^ (n >> (bits - 1))


def unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


# --------------------------------------------------------------------------
# Types: each has encode(value, out: bytearray) and decode(r: Reader) -> value
# --------------------------------------------------------------------------


class UInt:
    def __init__(self, bits: int):
        self.bits = bits

    def encode(self, v, out):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ProtocolError(f"expected an integer, got {v!r}")
        if self.bits == 8:
            if not 0 <= v <= 255:
                raise ProtocolError(f"{v} does not fit in u8")
            out.append(v)
        else:
            write_varint(out, v, self.bits)

    def decode(self, r):
        if self.bits == 8:
            return r.byte()
        return read_varint(r, self.bits)


class SInt:
    def __init__(self, bits: int):
        self.bits = bits

    def encode(self, v, out):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ProtocolError(f"expected an integer, got {v!r}")
        lo, hi = -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        if not lo <= v <= hi:
            raise ProtocolError(f"{v} does not fit in i{self.bits}")
        if self.bits == 8:
            out.append(v & 0xFF)
        else:
            write_varint(out, zigzag(v, self.bits), self.bits)

    def decode(self, r):
        if self.bits == 8:
            b = r.byte()
            return b - 256 if b > 127 else b
        return unzigzag(read_varint(r, self.bits))


class Bool:
    def encode(self, v, out):
        if not isinstance(v, bool):
            raise ProtocolError(f"expected a bool, got {v!r}")
        out.append(1 if v else 0)

    def decode(self, r):
        b = r.byte()
        if b > 1:
            raise ProtocolError(f"bad bool byte {b:#04x}")
        return b == 1


class Float:
    def __init__(self, fmt: str):
        self.fmt = fmt  # "<f" or "<d"
        self.size = struct.calcsize(fmt)

    def encode(self, v, out):
        out += struct.pack(self.fmt, float(v))

    def decode(self, r):
        return struct.unpack(self.fmt, r.take(self.size))[0]


class Str:
    """String and PathBuf: varint(usize) byte length + UTF-8."""

    def encode(self, v, out):
        if isinstance(v, Path):
            v = str(v)
        if not isinstance(v, str):
            raise ProtocolError(f"expected a str, got {v!r}")
        b = v.encode("utf-8")
        write_varint(out, len(b), 64)
        out += b

    def decode(self, r):
        n = read_varint(r, 64)
        try:
            return r.take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"string is not UTF-8: {e}") from None


class Bytes:
    """Vec<u8>: varint(usize) length + the raw bytes."""

    def encode(self, v, out):
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise ProtocolError(f"expected bytes, got {v!r}")
        write_varint(out, len(v), 64)
        out += bytes(v)

    def decode(self, r):
        return r.take(read_varint(r, 64))


def ulid_to_int(s: str) -> int:
    if len(s) != 26:
        raise ProtocolError(f"a ULID has 26 characters, not {len(s)}: {s!r}")
    n = 0
    for c in s.upper():
        i = CROCKFORD.find(c)
        if i < 0:
            raise ProtocolError(f"invalid ULID character {c!r} in {s!r}")
        n = (n << 5) | i
    if n >> 128:
        raise ProtocolError(f"ULID out of range (first character above 7): {s!r}")
    return n


def int_to_ulid(n: int) -> str:
    if not 0 <= n < 1 << 128:
        raise ProtocolError(f"{n} is not a 128-bit value")
    return "".join(CROCKFORD[(n >> (5 * (25 - i))) & 31] for i in range(26))


class UlidT:
    """Ulid and WorkspaceId: the 26-character Crockford base32 string."""

    def encode(self, v, out):
        if isinstance(v, int) and not isinstance(v, bool):
            v = int_to_ulid(v)
        ulid_to_int(v)  # validate
        STR.encode(v.upper(), out)

    def decode(self, r):
        s = STR.decode(r)
        ulid_to_int(s)
        return s


class Opt:
    def __init__(self, inner):
        self.inner = inner

    def encode(self, v, out):
        if v is None:
            out.append(0)
        else:
            out.append(1)
            self.inner.encode(v, out)

    def decode(self, r):
        tag = r.byte()
        if tag == 0:
            return None
        if tag == 1:
            return self.inner.decode(r)
        raise ProtocolError(f"bad Option tag {tag:#04x}")


class Seq:
    def __init__(self, inner):
        self.inner = inner

    def encode(self, v, out):
        v = list(v)
        write_varint(out, len(v), 64)
        for item in v:
            self.inner.encode(item, out)

    def decode(self, r):
        n = read_varint(r, 64)
        if n > r.remaining():  # every item takes at least one byte
            raise ProtocolError(f"sequence of {n} items cannot fit in the payload")
        return [self.inner.decode(r) for _ in range(n)]


class Tup:
    def __init__(self, *items):
        self.items = items

    def encode(self, v, out):
        v = tuple(v)
        if len(v) != len(self.items):
            raise ProtocolError(f"expected a {len(self.items)}-tuple, got {v!r}")
        for t, x in zip(self.items, v):
            t.encode(x, out)

    def decode(self, r):
        return tuple(t.decode(r) for t in self.items)


class StrMap:
    """BTreeMap<String, String>: varint count, then key/value pairs in byte order
    of the keys (Rust's str ordering is UTF-8 byte order)."""

    def encode(self, v, out):
        items = sorted(dict(v).items(), key=lambda kv: kv[0].encode("utf-8"))
        write_varint(out, len(items), 64)
        for k, x in items:
            STR.encode(k, out)
            STR.encode(x, out)

    def decode(self, r):
        n = read_varint(r, 64)
        out = {}
        for _ in range(n):
            k = STR.decode(r)
            out[k] = STR.decode(r)
        return out


class Struct:
    """Fields in declaration order, no names, no tags."""

    def __init__(self, name: str, fields):
        self.name = name
        self.fields = fields

    def encode(self, v, out):
        for fname, t in self.fields:
            if fname not in v:
                raise ProtocolError(f"{self.name}: missing field {fname!r}")
            t.encode(v[fname], out)

    def decode(self, r):
        return {fname: t.decode(r) for fname, t in self.fields}


class UnitEnum:
    """An enum whose variants carry no data: varint(u32) index; in Python, the name."""

    def __init__(self, name: str, variants):
        self.name = name
        self.variants = list(variants)

    def encode(self, v, out):
        try:
            i = self.variants.index(v)
        except ValueError:
            raise ProtocolError(f"{self.name} has no variant {v!r}") from None
        write_varint(out, i, 32)

    def decode(self, r):
        i = read_varint(r, 32)
        if i >= len(self.variants):
            raise ProtocolError(f"unknown {self.name} variant index {i}")
        return self.variants[i]


class MessageEnum:
    """Request / Response: varint(u32) index, then the variant's fields in order.
    In Python: {"type": variant name, field: value, ...}."""

    def __init__(self, name: str, variants):
        self.name = name
        self.variants = variants  # [(name, [(field, type)])]
        self.index = {vname: i for i, (vname, _) in enumerate(variants)}

    def encode(self, v, out):
        if isinstance(v, str):
            v = {"type": v}
        vname = v.get("type")
        if vname not in self.index:
            raise ProtocolError(f"{self.name} has no variant {vname!r}")
        i = self.index[vname]
        write_varint(out, i, 32)
        Struct(f"{self.name}::{vname}", self.variants[i][1]).encode(v, out)

    def decode(self, r):
        i = read_varint(r, 32)
        if i >= len(self.variants):
            raise ProtocolError(
                f"unknown {self.name} variant index {i} (a newer peer?)"
            )
        vname, fields = self.variants[i]
        out = {"type": vname}
        out.update(Struct(vname, fields).decode(r))
        return out


U8, U16, U32, U64, U128 = UInt(8), UInt(16), UInt(32), UInt(64), UInt(128)
I32, I64 = SInt(32), SInt(64)
BOOL = Bool()
F32, F64 = Float("<f"), Float("<d")
STR = Str()
PATH = STR  # PathBuf: a UTF-8 string on the wire
BYTES = Bytes()
ULID = UlidT()
WORKSPACE_ID = ULID

# --------------------------------------------------------------------------
# The schema (SPEC.md sections 6, 7 and 8)
# --------------------------------------------------------------------------

NETWORK_ACCESS = UnitEnum("NetworkAccess", ["Full", "Loopback", "None"])
EXIT_POLICY = UnitEnum("ExitPolicy", ["Reap", "Keep"])
QUOTA_ENFORCE = UnitEnum("QuotaEnforce", ["Hard", "ReportOnly"])
LOG_STREAM = UnitEnum("LogStream", ["Stdout", "Stderr", "Both"])
ERROR_CODE = UnitEnum(
    "ErrorCode", ["Invalid", "NotFound", "Unsupported", "Refused", "Busy", "Internal"]
)

SOMA = Struct(
    "Soma",
    [
        ("mem_max_bytes", Opt(U64)),
        ("mem_high_bytes", Opt(U64)),
        ("swap_max_bytes", Opt(U64)),
        ("tasks_max", Opt(U64)),
        ("cpu_quota_percent", Opt(U32)),
        ("cpu_weight", Opt(U32)),
        ("io_weight", Opt(U32)),
    ],
)
PERMISSIONS = Struct(
    "Permissions",
    [
        ("network", NETWORK_ACCESS),
        ("read_only_root", BOOL),
        ("writable_paths", Seq(PATH)),
        ("hidden_paths", Seq(PATH)),
        ("private_tmp", BOOL),
        ("private_dev", BOOL),
    ],
)
WORKSPACE_SPEC = Struct(
    "WorkspaceSpec",
    [
        ("label", STR),
        ("soma", SOMA),
        ("permissions", PERMISSIONS),
        ("ttl_ms", Opt(U64)),
        ("flow_dirs", Seq(PATH)),
        ("on_exit", EXIT_POLICY),
        ("quota_enforce", QUOTA_ENFORCE),
    ],
)
COMMAND_SPEC = Struct(
    "CommandSpec",
    [
        ("label", STR),
        ("exec", STR),
        ("argv", Seq(STR)),
        ("env", Seq(Tup(STR, STR))),
        ("cwd", Opt(PATH)),
        ("restart_on_failure", BOOL),
    ],
)
ENDPOINT = Struct("Endpoint", [("label", STR), ("port", STR)])
FLOW_EDGE = Struct(
    "FlowEdge",
    [("from", ENDPOINT), ("to", ENDPOINT), ("rate_limit_bytes_per_sec", Opt(U64))],
)
PIPELINE_SPEC = Struct(
    "PipelineSpec",
    [
        ("workspace", WORKSPACE_ID),
        ("label", STR),
        ("commands", Seq(COMMAND_SPEC)),
        ("edges", Seq(FLOW_EDGE)),
    ],
)

WORKSPACE_SUMMARY = Struct(
    "WorkspaceSummary",
    [
        ("id", WORKSPACE_ID),
        ("label", STR),
        ("unit", STR),
        ("commands", U32),
        ("uptime_ms", U64),
        ("on_exit", EXIT_POLICY),
        ("ttl_left_ms", Opt(U64)),
    ],
)
WORKSPACE_STATS_INFO = Struct(
    "WorkspaceStatsInfo",
    [
        ("commands_alive", U32),
        ("commands_total", U32),
        ("rss_bytes", Opt(U64)),
        ("rss_peak_bytes", Opt(U64)),
        ("cpu_usec", Opt(U64)),
        ("cpu_percent", Opt(F32)),
        ("cpu_cores", U32),
        ("tasks", Opt(U64)),
        ("source", STR),
        ("uptime_ms", U64),
        ("sampled_at_ms", U64),
    ],
)
BREACH = Struct("Breach", [("kind", STR), ("count", U64)])
QUOTA_REPORT_INFO = Struct(
    "QuotaReportInfo",
    [
        ("mem_limit", Opt(U64)),
        ("nproc_limit", Opt(U64)),
        ("cpu_quota_percent", Opt(U32)),
        ("enforced", BOOL),
        ("breaches", Seq(BREACH)),
    ],
)
COMMAND_INFO = Struct(
    "CommandInfo",
    [
        ("id", ULID),
        ("label", STR),
        ("pid", I32),
        ("alive", BOOL),
        ("exit_status", Opt(I32)),
        ("exit_signal", Opt(I32)),
        ("restarts", U32),
        ("failure", Opt(STR)),
        ("log_bytes", U64),
    ],
)
EDGE_DISCERNMENT_INFO = Struct(
    "EdgeDiscernmentInfo",
    [
        ("from_label", STR),
        ("from_output", STR),
        ("to_label", STR),
        ("to_input", STR),
        ("ty", Opt(STR)),
        ("mime", Opt(STR)),
        ("lens", Opt(STR)),
        ("confidence", F32),
        ("flow_socket", Opt(PATH)),
    ],
)
FLOW_INFO = Struct("FlowInfo", [("pipeline", ULID), ("sockets", Seq(PATH))])
FLOW_THROUGHPUT_INFO = Struct(
    "FlowThroughputInfo",
    [
        ("socket", PATH),
        ("bytes_total", U64),
        ("bytes_per_sec", F64),
        ("subscribers", U32),
        ("dropped_bytes", U64),
    ],
)

REQUEST = MessageEnum(
    "Request",
    [
        ("Ping", []),  # 0
        ("Health", []),  # 1
        ("WorkspaceCreate", [("spec", WORKSPACE_SPEC)]),  # 2
        ("WorkspaceList", []),  # 3
        ("WorkspaceStop", [("id", WORKSPACE_ID), ("grace_ms", U64)]),  # 4
        (
            "Run",  # 5
            [
                ("workspace", WORKSPACE_ID),
                ("exec", STR),
                ("argv", Seq(STR)),
                ("envp", Seq(Tup(STR, STR))),
                ("restart_on_failure", BOOL),
                ("cwd", Opt(PATH)),
            ],
        ),
        ("PipelineRun", [("spec", PIPELINE_SPEC), ("tap", BOOL), ("vars", StrMap())]),  # 6
        ("Discern", [("sample", BYTES), ("hint_path", Opt(PATH))]),  # 7
        ("Capabilities", []),  # 8
        ("CommandList", [("workspace", WORKSPACE_ID)]),  # 9
        (
            "CommandLogs",  # 10
            [
                ("workspace", WORKSPACE_ID),
                ("command", ULID),
                ("tail_bytes", U64),
                ("stream", LOG_STREAM),
            ],
        ),
        ("PipelineSave", [("name", STR), ("spec", PIPELINE_SPEC)]),  # 11
        ("PipelineSavedList", []),  # 12
        ("PipelineDrop", [("name", STR)]),  # 13
        ("PipelineRunSaved", [("name", STR), ("tap", BOOL), ("vars", StrMap())]),  # 14
        ("WorkspaceStats", [("workspace", WORKSPACE_ID)]),  # 15
        ("WorkspaceQuota", [("workspace", WORKSPACE_ID)]),  # 16
        ("WorkspaceStatsHistory", [("workspace", WORKSPACE_ID), ("tail", U32)]),  # 17
        ("WorkspaceFullSummary", [("workspace", WORKSPACE_ID)]),  # 18
        ("PipelineStop", [("pipeline", ULID), ("grace_ms", U64)]),  # 19
        ("FlowList", []),  # 20
        ("FlowThroughput", []),  # 21
        ("FlowDrop", [("pipeline", ULID)]),  # 22
        (
            "CommandLogsFrom",  # 23
            [
                ("workspace", WORKSPACE_ID),
                ("command", ULID),
                ("stream", LOG_STREAM),
                ("from", Opt(U64)),
                ("tail_bytes", U64),
                ("max_bytes", U64),
            ],
        ),
        ("WorkspaceDescribe", [("id", WORKSPACE_ID)]),  # 24
        ("Hello", [("protocol", U32)]),  # 25
    ],
)

RESPONSE = MessageEnum(
    "Response",
    [
        ("Pong", []),  # 0
        (
            "Health",  # 1
            [
                ("version", STR),
                ("uptime_ms", U64),
                ("alive_workspaces", U32),
                ("alive_commands", U32),
                ("alive_pipelines", U32),
                ("active_flows", U32),
                ("dirty", BOOL),
            ],
        ),
        (
            "WorkspaceCreated",  # 2
            [("id", WORKSPACE_ID), ("unit", STR), ("warnings", Seq(STR))],
        ),
        ("WorkspaceList", [("items", Seq(WORKSPACE_SUMMARY))]),  # 3
        ("WorkspaceStopped", [("id", WORKSPACE_ID), ("reaped", U32)]),  # 4
        (
            "RunStarted",  # 5
            [("workspace", WORKSPACE_ID), ("command_id", ULID), ("pid", I32)],
        ),
        (
            "PipelineStarted",  # 6
            [
                ("pipeline", ULID),
                ("command_pids", Seq(Tup(STR, I32))),
                ("edges", Seq(EDGE_DISCERNMENT_INFO)),
            ],
        ),
        (
            "Discernment",  # 7
            [("ty", STR), ("confidence", F32), ("mime", Opt(STR)), ("lens", Opt(STR))],
        ),
        (
            "Capabilities",  # 8
            [
                ("kernel_version", Tup(U32, U32, U32)),
                ("user_ns", STR),
                ("cgroup_v2", STR),
                ("cgroup_delegated", BOOL),
                ("has_cap_sys_admin", BOOL),
                ("cgroup_path", Opt(STR)),
                ("cgroup_controllers", Seq(STR)),
                ("backend", STR),
                ("backend_reason", STR),
                ("systemd_version", Opt(STR)),
            ],
        ),
        ("CommandList", [("items", Seq(COMMAND_INFO))]),  # 9
        ("CommandLogs", [("bytes", BYTES)]),  # 10
        ("PipelineSaved", [("name", STR)]),  # 11
        ("PipelineSavedList", [("names", Seq(STR))]),  # 12
        ("PipelineDropped", [("name", STR), ("existed", BOOL)]),  # 13
        ("PipelineStopped", [("pipeline", ULID), ("reaped", U32)]),  # 14
        ("WorkspaceStats", [("info", WORKSPACE_STATS_INFO)]),  # 15
        ("WorkspaceQuota", [("info", QUOTA_REPORT_INFO)]),  # 16
        ("WorkspaceStatsHistory", [("samples", Seq(WORKSPACE_STATS_INFO))]),  # 17
        (
            "WorkspaceFullSummary",  # 18
            [
                ("stats", WORKSPACE_STATS_INFO),
                ("quota", QUOTA_REPORT_INFO),
                ("commands", Seq(COMMAND_INFO)),
                ("flow_sockets", Seq(PATH)),
            ],
        ),
        ("FlowList", [("items", Seq(FLOW_INFO))]),  # 19
        ("FlowThroughput", [("items", Seq(FLOW_THROUGHPUT_INFO))]),  # 20
        ("FlowDropped", [("pipeline", ULID), ("existed", BOOL)]),  # 21
        ("Error", [("code", ERROR_CODE), ("message", STR)]),  # 22
        (
            "CommandLogsFrom",  # 23
            [("bytes", BYTES), ("next", U64), ("skipped", U64), ("running", BOOL)],
        ),
        ("WorkspaceDescription", [("id", WORKSPACE_ID), ("spec", WORKSPACE_SPEC)]),  # 24
        ("Hello", [("protocol", U32), ("version", STR)]),  # 25
    ],
)

# Every connection starts on protocol 0 (the seed's wire, SPEC.md section 14);
# this client speaks protocol 1, the types above, after a Hello (section 4.1).
PROTOCOL_CURRENT = 1
HELLO_INDEX = 25
SEED_ERROR_INDEX = 22

# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------


def encode_payload(kind: MessageEnum, msg) -> bytes:
    out = bytearray()
    kind.encode(msg, out)
    return bytes(out)


def encode_frame(kind: MessageEnum, msg) -> bytes:
    payload = encode_payload(kind, msg)
    if len(payload) > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"message of {len(payload)} bytes exceeds the limit of {MAX_FRAME_BYTES}"
        )
    return struct.pack(">I", len(payload)) + payload


def decode_payload(kind: MessageEnum, payload: bytes):
    r = Reader(payload)
    msg = kind.decode(r)
    if r.remaining():
        raise ProtocolError(f"payload has {r.remaining()} trailing bytes after the message")
    return msg


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket) -> bytes:
    """One frame's payload; raises ProtocolError on close, truncation or size."""
    header = _recv_exact(sock, HEADER_BYTES)
    if not header:
        raise ProtocolError("connection closed")
    if len(header) < HEADER_BYTES:
        raise ProtocolError(f"connection closed after {len(header)} of 4 header bytes")
    (n,) = struct.unpack(">I", header)
    if n > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {n} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    payload = _recv_exact(sock, n)
    if len(payload) < n:
        raise ProtocolError(
            f"connection closed after {HEADER_BYTES + len(payload)} of {HEADER_BYTES + n} bytes of a frame"
        )
    return payload


def default_socket_path() -> str:
    """$SHIPOTE_SOCKET (the reference CLI's override), else the SPEC's default rule."""
    env = os.environ.get("SHIPOTE_SOCKET")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "shipote.sock")
    uid = os.getuid()
    if os.path.isdir(f"/run/user/{uid}"):
        return f"/run/user/{uid}/shipote.sock"
    return f"/tmp/shipote-{uid}.sock"


def decode_seed_error(payload: bytes):
    """A protocol-0 Error (a message, no code), lifted into protocol 1: its code
    comes from the documented prefix `refused:` or `busy:`, else Invalid."""
    r = Reader(payload)
    if read_varint(r, 32) != SEED_ERROR_INDEX:
        raise ProtocolError("expected Hello or a protocol-0 Error before the switch")
    message = STR.decode(r)
    if r.remaining():
        raise ProtocolError(f"payload has {r.remaining()} trailing bytes after the message")
    code = "Invalid"
    if message.startswith("refused:"):
        code = "Refused"
    elif message.startswith("busy:"):
        code = "Busy"
    return {"type": "Error", "code": code, "message": message}


class Client:
    """One connection speaking protocol 1; call() sends one request and returns
    its one response. The first call sends Hello and the request in one write."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.switched = False
        self.hello_sent = False

    @classmethod
    def connect(cls, path: str, timeout: float | None = 30.0) -> "Client":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(path)
        except BaseException:
            s.close()
            raise
        return cls(s)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def recv(self):
        if not self.switched:
            # Before the switch the daemon speaks protocol 0: the answer is our
            # Hello's, or an Error in the seed's form (a refusal at accept).
            payload = read_frame(self.sock)
            if payload[:1] != bytes([HELLO_INDEX]):
                return decode_seed_error(payload)
            decode_payload(RESPONSE, payload)
            self.switched = True
        return decode_payload(RESPONSE, read_frame(self.sock))

    def call(self, request):
        """Returns the decoded response; Error responses are returned, not raised."""
        frame = encode_frame(REQUEST, request)
        if not self.switched and not self.hello_sent:
            frame = encode_frame(REQUEST, {"type": "Hello", "protocol": PROTOCOL_CURRENT}) + frame
            self.hello_sent = True
        try:
            self.sock.sendall(frame)
        except (BrokenPipeError, ConnectionResetError):
            # The daemon may have refused us (Refused/Busy) before reading
            # anything: that Error frame is still waiting to be read.
            pass
        return self.recv()

    def call_ok(self, request):
        """Like call(), raising DaemonError for Response::Error."""
        resp = self.call(request)
        if resp["type"] == "Error":
            raise DaemonError(resp["code"], resp["message"])
        return resp


# --------------------------------------------------------------------------
# JSON output
# --------------------------------------------------------------------------


def _shortest_f32(x: float) -> float:
    """The shortest decimal that is the same f32 (0.9, not 0.8999999761581421)."""
    if not math.isfinite(x):
        return x
    bits = struct.pack("<f", x)
    for p in range(1, 10):
        y = float(f"{x:.{p}g}")
        if struct.pack("<f", y) == bits:
            return y
    return x


def to_json(v, t=None):
    """Plain JSON data for a decoded value (bytes become hex, f32 shortest)."""
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json(x) for x in v]
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return _shortest_f32(v) if struct.unpack("<f", struct.pack("<f", v))[0] == v else v
    return v


# --------------------------------------------------------------------------
# Self-test against protocol/tests/golden/*.hex
# --------------------------------------------------------------------------

WS = "01J4HMASW9NF6YY0938NKRKAYD"  # Ulid(0x0191_2345_6789_abcd_ef01_2345_6789_abcd)

# Every golden case's value, written out by hand from protocol/tests/golden.rs:
# the round trip alone cannot catch a symmetric mistake (e.g. i32 without zigzag).


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


STATS = {
    "commands_alive": 1, "commands_total": 2, "rss_bytes": 1 << 20,
    "rss_peak_bytes": 2 << 20, "cpu_usec": 1500, "cpu_percent": 12.5, "cpu_cores": 2,
    "tasks": 3, "source": "cgroup", "uptime_ms": 60_000, "sampled_at_ms": 1_700_000_000_000,
}
QUOTA = {
    "mem_limit": 1 << 20, "nproc_limit": 20, "cpu_quota_percent": None, "enforced": True,
    "breaches": [{"kind": "memory.oom_kill", "count": 1}],
}
COMMAND = {
    "id": int_to_ulid(5), "label": "sleep", "pid": 4242, "alive": False,
    "exit_status": None, "exit_signal": 9, "restarts": 2, "failure": "crash loop",
    "log_bytes": 10,
}
PIPELINE_SPEC_VALUE = {
    "workspace": WS, "label": "p",
    "commands": [{"label": "a", "exec": "cat", "argv": ["-"], "env": [("K", "V")],
                  "cwd": "/t", "restart_on_failure": True}],
    "edges": [{"from": {"label": "a", "port": "stdout"}, "to": {"label": "b", "port": "stdin"},
               "rate_limit_bytes_per_sec": 1000}],
}
EXPECTED = {
    ("requests", "WorkspaceCreate"): {
        "type": "WorkspaceCreate",
        "spec": {
            "label": "web",
            "soma": {"mem_max_bytes": 512 << 20, "mem_high_bytes": 400 << 20,
                     "swap_max_bytes": 0, "tasks_max": 100, "cpu_quota_percent": 150,
                     "cpu_weight": 100, "io_weight": None},
            "permissions": {"network": "Loopback", "read_only_root": True,
                            "writable_paths": ["/w"], "hidden_paths": ["/h"],
                            "private_tmp": True, "private_dev": False},
            "ttl_ms": 600_000, "flow_dirs": ["/f"], "on_exit": "Keep",
            "quota_enforce": "ReportOnly",
        },
    },
    ("requests", "WorkspaceStop"): {"type": "WorkspaceStop", "id": WS, "grace_ms": 1000},
    ("requests", "PipelineRun"): {"type": "PipelineRun", "spec": PIPELINE_SPEC_VALUE,
                                  "tap": True, "vars": {"K": "v"}},
    ("requests", "Discern"): {"type": "Discern", "sample": b"{}", "hint_path": "x.json"},
    ("requests", "CommandLogs"): {"type": "CommandLogs", "workspace": WS,
                                  "command": int_to_ulid(7), "tail_bytes": 4096,
                                  "stream": "Stderr"},
    ("responses", "Health"): {"type": "Health", "version": "0.1.0", "uptime_ms": 1234,
                              "alive_workspaces": 1, "alive_commands": 2,
                              "alive_pipelines": 3, "active_flows": 4, "dirty": True},
    ("responses", "RunStarted"): {"type": "RunStarted", "workspace": WS,
                                  "command_id": int_to_ulid(5), "pid": 77},
    ("responses", "Capabilities"): {
        "type": "Capabilities", "kernel_version": (6, 1, 0), "user_ns": "allowed",
        "cgroup_v2": "unified", "cgroup_delegated": True, "has_cap_sys_admin": False,
        "cgroup_path": "/a", "cgroup_controllers": ["memory"], "backend": "systemd",
        "backend_reason": "r", "systemd_version": "252",
    },
    ("responses", "CommandList"): {"type": "CommandList", "items": [COMMAND]},
    ("responses", "WorkspaceFullSummary"): {"type": "WorkspaceFullSummary", "stats": STATS,
                                            "quota": QUOTA, "commands": [COMMAND],
                                            "flow_sockets": ["/f/s"]},
    ("responses", "FlowThroughput"): {
        "type": "FlowThroughput",
        "items": [{"socket": "/f/s", "bytes_total": 100, "bytes_per_sec": 2.5,
                   "subscribers": 1, "dropped_bytes": 0}],
    },
    ("responses", "Error"): {"type": "Error", "code": "NotFound",
                             "message": "no such workspace"},
    ("requests", "Ping"): {"type": "Ping"},
    ("requests", "Health"): {"type": "Health"},
    ("requests", "WorkspaceCreate.default"): {
        "type": "WorkspaceCreate",
        "spec": {
            "label": "a",
            "soma": {"mem_max_bytes": None, "mem_high_bytes": None, "swap_max_bytes": None,
                     "tasks_max": None, "cpu_quota_percent": None, "cpu_weight": None,
                     "io_weight": None},
            "permissions": {"network": "Full", "read_only_root": False, "writable_paths": [],
                            "hidden_paths": [], "private_tmp": False, "private_dev": False},
            "ttl_ms": None, "flow_dirs": [], "on_exit": "Reap", "quota_enforce": "Hard",
        },
    },
    ("requests", "WorkspaceList"): {"type": "WorkspaceList"},
    ("requests", "Run"): {"type": "Run", "workspace": WS, "exec": "sleep", "argv": ["1"],
                          "envp": [("A", "b")], "restart_on_failure": False, "cwd": None},
    ("requests", "Capabilities"): {"type": "Capabilities"},
    ("requests", "CommandList"): {"type": "CommandList", "workspace": WS},
    ("requests", "PipelineSave"): {"type": "PipelineSave", "name": "n",
                                   "spec": PIPELINE_SPEC_VALUE},
    ("requests", "PipelineSavedList"): {"type": "PipelineSavedList"},
    ("requests", "PipelineDrop"): {"type": "PipelineDrop", "name": "n"},
    ("requests", "PipelineRunSaved"): {"type": "PipelineRunSaved", "name": "n", "tap": False,
                                       "vars": {"K": "v"}},
    ("requests", "WorkspaceStats"): {"type": "WorkspaceStats", "workspace": WS},
    ("requests", "WorkspaceQuota"): {"type": "WorkspaceQuota", "workspace": WS},
    ("requests", "WorkspaceStatsHistory"): {"type": "WorkspaceStatsHistory", "workspace": WS,
                                            "tail": 10},
    ("requests", "WorkspaceFullSummary"): {"type": "WorkspaceFullSummary", "workspace": WS},
    ("requests", "PipelineStop"): {"type": "PipelineStop", "pipeline": int_to_ulid(9),
                                   "grace_ms": 0},
    ("requests", "FlowList"): {"type": "FlowList"},
    ("requests", "FlowThroughput"): {"type": "FlowThroughput"},
    ("requests", "FlowDrop"): {"type": "FlowDrop", "pipeline": int_to_ulid(9)},
    ("requests", "CommandLogsFrom"): {"type": "CommandLogsFrom", "workspace": WS,
                                      "command": int_to_ulid(7), "stream": "Stdout",
                                      "from": 4096, "tail_bytes": 0, "max_bytes": 65536},
    ("responses", "Pong"): {"type": "Pong"},
    ("responses", "WorkspaceCreated"): {"type": "WorkspaceCreated", "id": WS,
                                        "unit": "u.scope", "warnings": ["w"]},
    ("responses", "WorkspaceList"): {
        "type": "WorkspaceList",
        "items": [{"id": WS, "label": "web", "unit": "u.scope", "commands": 1,
                   "uptime_ms": 5, "on_exit": "Reap", "ttl_left_ms": 9}],
    },
    ("responses", "WorkspaceStopped"): {"type": "WorkspaceStopped", "id": WS, "reaped": 3},
    ("responses", "PipelineStarted"): {
        "type": "PipelineStarted", "pipeline": int_to_ulid(9), "command_pids": [("a", 10)],
        "edges": [{"from_label": "a", "from_output": "stdout", "to_label": "b",
                   "to_input": "stdin", "ty": "json", "mime": "application/json",
                   "lens": "json", "confidence": _f32(0.9), "flow_socket": "/f/s"}],
    },
    ("responses", "Discernment"): {"type": "Discernment", "ty": "json", "confidence": 0.5,
                                   "mime": None, "lens": "json"},
    ("responses", "CommandLogs"): {"type": "CommandLogs", "bytes": b"hi\n"},
    ("responses", "PipelineSaved"): {"type": "PipelineSaved", "name": "n"},
    ("responses", "PipelineSavedList"): {"type": "PipelineSavedList", "names": ["a", "b"]},
    ("responses", "PipelineDropped"): {"type": "PipelineDropped", "name": "n",
                                       "existed": True},
    ("responses", "PipelineStopped"): {"type": "PipelineStopped",
                                       "pipeline": int_to_ulid(9), "reaped": 2},
    ("responses", "WorkspaceStats"): {"type": "WorkspaceStats", "info": STATS},
    ("responses", "WorkspaceQuota"): {"type": "WorkspaceQuota", "info": QUOTA},
    ("responses", "WorkspaceStatsHistory"): {"type": "WorkspaceStatsHistory",
                                             "samples": [STATS]},
    ("responses", "FlowList"): {"type": "FlowList",
                                "items": [{"pipeline": int_to_ulid(9), "sockets": ["/f/s"]}]},
    ("responses", "FlowDropped"): {"type": "FlowDropped", "pipeline": int_to_ulid(9),
                                   "existed": False},
    ("responses", "CommandLogsFrom"): {"type": "CommandLogsFrom", "bytes": b"hi\n",
                                       "next": 4099, "skipped": 0, "running": True},
    ("requests", "WorkspaceDescribe"): {"type": "WorkspaceDescribe", "id": WS},
    ("requests", "Hello"): {"type": "Hello", "protocol": 1},
    ("responses", "Hello"): {"type": "Hello", "protocol": 1, "version": "0.2.0"},
}
EXPECTED[("responses", "WorkspaceDescription")] = {
    "type": "WorkspaceDescription", "id": WS,
    "spec": EXPECTED[("requests", "WorkspaceCreate")]["spec"],
}


def selftest(golden_dir: Path) -> dict:
    """Decodes every golden line, checks its variant name and the frame header,
    compares the decoded value with the fixture of protocol/tests/golden.rs, and
    re-encodes it to the same bytes."""
    report = {"ok": True, "checked": {}, "failures": []}

    def fail(msg):
        report["ok"] = False
        report["failures"].append(msg)

    assert ulid_to_int(WS) == 0x0191_2345_6789_ABCD_EF01_2345_6789_ABCD
    for fname, kind in (("requests", REQUEST), ("responses", RESPONSE)):
        path = golden_dir / f"{fname}.hex"
        seen = set()
        count = 0
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            name, hexbytes = line.split()
            frame = bytes.fromhex(hexbytes)
            where = f"{fname}.hex:{lineno} {name}"
            try:
                (n,) = struct.unpack(">I", frame[:4])
                if n != len(frame) - 4:
                    raise ProtocolError(f"header says {n}, payload has {len(frame) - 4}")
                msg = decode_payload(kind, frame[4:])
                if msg["type"] != name.split(".")[0]:
                    raise ProtocolError(f"decoded as {msg['type']}")
                again = encode_frame(kind, msg)
                if again != frame:
                    raise ProtocolError(f"re-encoded as {again.hex()}")
                want = EXPECTED.get((fname, name))
                if want is None:
                    raise ProtocolError("no expected value in EXPECTED")
                if msg != want:
                    raise ProtocolError(f"decoded {msg!r}, expected {want!r}")
                seen.add(kind.index[msg["type"]])
                count += 1
            except ProtocolError as e:
                fail(f"{where}: {e}")
        missing = sorted(set(range(len(kind.variants))) - seen)
        if missing:
            fail(f"{fname}.hex has no case for variant indices {missing}")
        report["checked"][fname] = count
        # One past the last variant must be refused.
        try:
            decode_payload(kind, bytes([len(kind.variants)]))
            fail(f"{kind.name} index {len(kind.variants)} was accepted")
        except ProtocolError:
            pass
    return report


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="shipote_client.py",
        description="Talk to shipoted over its Unix socket (see protocol/SPEC.md).",
    )
    p.add_argument("--socket", help="socket path (default: $SHIPOTE_SOCKET, else the SPEC's rule)")
    p.add_argument("--selftest", action="store_true",
                   help="decode and re-encode every line of protocol/tests/golden/*.hex")
    p.add_argument("--golden-dir", type=Path,
                   default=Path(__file__).resolve().parent.parent / "tests" / "golden")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("ping", help="Request::Ping")
    sub.add_parser("health", help="Request::Health")
    sub.add_parser("caps", help="Request::Capabilities")
    d = sub.add_parser("raw-discern", help="Request::Discern; prints the raw response")
    d.add_argument("sample", nargs="?", default='{"a": 1}', help="the sample (UTF-8 text)")
    d.add_argument("--hint", help="hint_path")
    args = p.parse_args(argv)

    if args.selftest:
        report = selftest(args.golden_dir)
        print(json.dumps(report))
        return 0 if report["ok"] else 3
    if not args.command:
        p.error("a command is required (ping, health, caps, raw-discern) or --selftest")

    if args.command == "ping":
        request = {"type": "Ping"}
    elif args.command == "health":
        request = {"type": "Health"}
    elif args.command == "caps":
        request = {"type": "Capabilities"}
    else:
        request = {"type": "Discern", "sample": args.sample.encode("utf-8"),
                   "hint_path": args.hint}

    path = args.socket or default_socket_path()
    try:
        client = Client.connect(path)
    except OSError as e:
        print(f"shipote_client: cannot connect to {path}: {e}", file=sys.stderr)
        return 2
    with client:
        started = time.monotonic()
        try:
            response = client.call(request)
        except (OSError, ProtocolError) as e:
            print(f"shipote_client: exchange with {path} failed: {e}", file=sys.stderr)
            return 2
        elapsed_ms = (time.monotonic() - started) * 1000.0

    out = to_json(response)
    if response["type"] == "Error":
        print(json.dumps(out))
        print(f"shipote_client: daemon error {response['code']}: {response['message']}",
              file=sys.stderr)
        return 1
    expected = {"ping": "Pong", "health": "Health", "caps": "Capabilities"}.get(args.command)
    if expected and response["type"] != expected:
        print(f"shipote_client: unexpected response {response['type']} to {request['type']}",
              file=sys.stderr)
        return 2
    if args.command == "ping":
        out["round_trip_ms"] = round(elapsed_ms, 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
