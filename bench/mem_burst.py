#!/usr/bin/env python3
"""Memory after a burst: 1,000 clients each send one 1 MiB Discern and stay
connected until all are answered, then leave; prints the daemon's RSS idle,
with them, and 3 s after (issue 14: it must come back within 2x of idle).

    python3 bench/mem_burst.py SOCKET DAEMON_PID [CLIENTS]

Against a release daemon of its own, e.g.
    target/release/shipoted --socket /tmp/b/s.sock --state-dir /tmp/b/state &
    python3 bench/mem_burst.py /tmp/b/s.sock $!
Speaks protocol 0 (the seed's wire, no Hello): Discern is the same there.
"""
import os, resource, socket, struct, sys, time, subprocess
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
sock = sys.argv[1]; pid = int(sys.argv[2]); clients = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n: return bytes(out)
time.sleep(0.5)
idle = rss()
sample = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * (1048576 - 16 - 14)
payload = bytes([7]) + varint(len(sample)) + sample + b"\0"   # seed Discern, hint None
frame = struct.pack(">I", len(payload)) + payload
conns = []
for i in range(clients):
    s = socket.socket(socket.AF_UNIX); s.connect(sock); s.sendall(frame); conns.append(s)
for s in conns:
    hdr = s.recv(4, socket.MSG_WAITALL); n = struct.unpack(">I", hdr)[0]; s.recv(n, socket.MSG_WAITALL)
busy = rss()
for s in conns: s.close()
time.sleep(3)
after = rss()
print(f"{clients} clients of 1 MiB each: RSS idle {idle/1024:.1f} MiB, with them {busy/1024:.1f} MiB, 3 s after they left {after/1024:.1f} MiB ({after/idle:.2f}x idle)")
