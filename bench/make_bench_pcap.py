#!/usr/bin/env python3
"""Builds a large Ethernet pcap from real captures, for timing `analyze` against p0f.

The classic-pcap, Ethernet (link type 1) files under the given folder are concatenated over
and over until the output reaches --size-mib. Each repetition shifts every IPv4 address
(second and third octets) and IPv6 address (bytes 5 and 6) by the repetition number, so
connections and hosts do not repeat, and moves time forward: each file's packets keep their
relative timing (capped at an hour) and start 1 ms after the previous file ended. IP checksums are not updated
(neither p0f nor analyze checks them).

usage: make_bench_pcap.py PCAP_DIR OUT.pcap [--size-mib 1024]
"""

import argparse
import os
import struct
import sys


def pcap_kind(head):
    """(struct byte-order prefix, nanosecond timestamps) of a classic pcap's 24-byte header,
    or None when it is not one."""
    if len(head) < 24:
        return None
    magic = head[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        return None
    return endian, magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")


def ether_pcaps(root):
    """(path, bytes) of classic pcap files with link type 1, sorted by path."""
    out = []
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                head = fh.read(24)
            kind = pcap_kind(head)
            if kind is None:
                continue
            endian, nanos = kind
            link = struct.unpack(endian + "I", head[20:24])[0]
            if link == 1:
                out.append((p, endian, nanos))
    out.sort()
    return out


def packets(path, endian, nanos):
    """(ts_ns, frame bytes) of a pcap file; stops quietly at a truncated record."""
    with open(path, "rb") as fh:
        data = fh.read()
    hdr = struct.Struct(endian + "IIII")
    pos = 24
    mult = 1 if nanos else 1000
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = hdr.unpack_from(data, pos)
        pos += 16
        if incl > 262144 or pos + incl > len(data):
            return
        yield sec * 1_000_000_000 + frac * mult, data[pos:pos + incl]
        pos += incl


def shift(frame, rep):
    """The frame with its IP addresses moved by `rep` (Ethernet, no VLAN)."""
    if len(frame) < 14 or rep == 0:
        return frame
    et = frame[12:14]
    b = bytearray(frame)
    hi, lo = (rep >> 8) & 0xFF, rep & 0xFF
    if et == b"\x08\x00" and len(frame) >= 34:
        for base in (14 + 12, 14 + 16):
            b[base + 1] = (b[base + 1] + hi) & 0xFF
            b[base + 2] = (b[base + 2] + lo) & 0xFF
    elif et == b"\x86\xdd" and len(frame) >= 54:
        for base in (14 + 8, 14 + 24):
            b[base + 5] = (b[base + 5] + hi) & 0xFF
            b[base + 6] = (b[base + 6] + lo) & 0xFF
    return bytes(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pcap_dir")
    ap.add_argument("out")
    ap.add_argument("--size-mib", type=int, default=1024)
    a = ap.parse_args()
    files = ether_pcaps(a.pcap_dir)
    if not files:
        sys.exit(f"no Ethernet classic pcap files under {a.pcap_dir}")
    # Load once: the corpus is small, the output is large.
    corpus = []
    for p, endian, nanos in files:
        pk = list(packets(p, endian, nanos))
        if pk:
            corpus.append(pk)
    target = a.size_mib * 1024 * 1024
    rec = struct.Struct("<IIII")
    written = 24
    n = 0
    clock = 1_700_000_000 * 1_000_000_000  # 2023-11-14, forward from here
    rep = 0
    with open(a.out, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        while written < target:
            for pk in corpus:
                first = pk[0][0]
                last = clock
                chunk = []
                for ts, frame in pk:
                    # Relative timing kept, within an hour (some captures span years).
                    t = clock + min(max(0, ts - first), 3600 * 1_000_000_000)
                    last = max(last, t)
                    f = shift(frame, rep)
                    chunk.append(rec.pack(t // 1_000_000_000, t % 1_000_000_000, len(f), len(f)))
                    chunk.append(f)
                    written += 16 + len(f)
                    n += 1
                out.write(b"".join(chunk))
                clock = last + 1_000_000
                if written >= target:
                    break
            rep += 1
    print(f"{a.out}: {n} packets, {written} bytes, {rep} repetitions of {len(corpus)} files",
          file=sys.stderr)


if __name__ == "__main__":
    main()
