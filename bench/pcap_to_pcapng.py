#!/usr/bin/env python3
"""Writes a classic pcap's packets as a pcapng file, for timing `analyze` on pcapng.

The same packets, in the same order, with the same capture lengths: one little-endian
section, one interface of the pcap's link type and snap length (with if_tsresol 9, i.e.
nanoseconds, when the pcap has nanosecond timestamps), and one enhanced packet block per
record. Stops at the first truncated record, like make_bench_pcap.py's reader. Kept free of
Wireshark's editcap, which a fresh machine does not have.

usage: pcap_to_pcapng.py IN.pcap OUT.pcapng
"""

import struct
import sys

from make_bench_pcap import pcap_kind


def block(ty, body):
    """A pcapng block of type `ty` around `body`, padded to 32 bits."""
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", ty, n) + body + struct.pack("<I", n)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1:]
    with open(src, "rb") as f, open(dst, "wb", buffering=1 << 24) as out:
        head = f.read(24)
        kind = pcap_kind(head)
        if kind is None:
            sys.exit(f"{src}: not a classic pcap")
        endian, nanos = kind
        snaplen, link = struct.unpack(endian + "II", head[16:24])
        # Section header: byte-order magic, version 1.0, section length unknown (-1).
        out.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        options = b""
        if nanos:
            # if_tsresol = 9 (10^-9 s), then opt_endofopt.
            options = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
        out.write(block(1, struct.pack("<HHI", link & 0xFFFF, 0, snaplen) + options))
        rec = struct.Struct(endian + "IIII")
        units = 1_000_000_000 if nanos else 1_000_000
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            sec, frac, incl, orig = rec.unpack(h)
            data = f.read(incl)
            if len(data) < incl:
                break
            ts = sec * units + frac
            out.write(block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, incl, orig)
                            + data))


if __name__ == "__main__":
    main()
