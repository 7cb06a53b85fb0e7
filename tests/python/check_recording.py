#!/usr/bin/env python3
"""Check synscope Parquet recordings with plain pyarrow and polars, without synscope code.

Usage: check_recording.py PATH...

Each PATH is a recording (`synscope.record_type` = `syn`, `flows` or `payload`). For each file this
opens it with pyarrow AND polars and checks:
  - the synscope.* metadata keys (schema version 2, record type);
  - column names and types as documented in formats/README.md (timestamps are ns UTC,
    addresses and enums are text, integers unsigned of the documented width);
  - that both libraries see the same rows;
  - that values are sane: addresses parse as the row's IP version, enum texts are known,
    option blobs fit 40 bytes and match the TCP header length, decoded columns agree with
    the raw ones (recomputed here independently), flow endpoints are in canonical order,
    first/last-seen times are null exactly when a direction saw no packet, encapsulation names
    are known (flow keys carry only the VNI kinds), and a depth goes with every encapsulation;
    payload heads hold at most 8192 bytes and no more than the segment's payload_len, sides
    are known, SYN segments are absent, and syn_rows_before never decreases.

Prints one line per file and exits 1 if any check failed, 2 on bad usage.
"""

import ipaddress
import sys

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = "2"

META_KEYS = [
    "synscope.schema_version",
    "synscope.record_type",
    "synscope.host",
    "synscope.interface",
    "synscope.kernel",
    "synscope.tool_version",
    "synscope.clock_source",
]

TS = pa.timestamp("ns", tz="UTC")

SYN_COLUMNS = [
    ("ts", TS),
    ("ifindex", pa.uint32()),
    ("direction", pa.string()),
    ("source", pa.string()),
    ("ip_version", pa.uint8()),
    ("src_ip", pa.string()),
    ("dst_ip", pa.string()),
    ("src_port", pa.uint16()),
    ("dst_port", pa.uint16()),
    ("ttl", pa.uint8()),
    ("tos", pa.uint8()),
    ("ip_len", pa.uint16()),
    ("ip_id", pa.uint16()),
    ("ip_frag", pa.uint16()),
    ("ip_df", pa.bool_()),
    ("ip_hdr_len", pa.uint16()),
    ("flow_label", pa.uint32()),
    ("tcp_flags", pa.uint16()),
    ("tcp_flags_text", pa.string()),
    ("seq", pa.uint32()),
    ("ack", pa.uint32()),
    ("window", pa.uint16()),
    ("urg_ptr", pa.uint16()),
    ("payload_len", pa.uint16()),
    ("tcp_hdr_len", pa.uint8()),
    ("tcp_options", pa.binary()),
    ("record_flags", pa.uint8()),
    ("encap", pa.string()),
    ("encap_id", pa.uint32()),
    ("encaps", pa.uint8()),
]

FLOW_COLUMNS = [
    ("interval_start", TS),
    ("interval_end", TS),
    ("ip_version", pa.uint8()),
    ("addr_a", pa.string()),
    ("port_a", pa.uint16()),
    ("addr_b", pa.string()),
    ("port_b", pa.uint16()),
]
for _d in ("ab", "ba"):
    FLOW_COLUMNS += [
        (f"{_d}_packets", pa.uint64()),
        (f"{_d}_bytes", pa.uint64()),
        (f"{_d}_first_seen", TS),
        (f"{_d}_last_seen", TS),
        (f"{_d}_tcp_flags", pa.uint16()),
    ]
FLOW_COLUMNS += [("encap", pa.string()), ("encap_id", pa.uint32())]

PAYLOAD_COLUMNS = [
    ("ts", TS),
    ("syn_rows_before", pa.uint64()),
    ("ifindex", pa.uint32()),
    ("direction", pa.string()),
    ("side", pa.string()),
    ("ip_version", pa.uint8()),
    ("src_ip", pa.string()),
    ("dst_ip", pa.string()),
    ("src_port", pa.uint16()),
    ("dst_port", pa.uint16()),
    ("seq", pa.uint32()),
    ("tcp_flags", pa.uint16()),
    ("payload_len", pa.uint16()),
    ("head", pa.binary()),
    ("encap", pa.string()),
    ("encap_id", pa.uint32()),
    ("encaps", pa.uint8()),
]
SIDES = {"unknown", "client", "server"}
PAYLOAD_HEAD_MAX = 8192

# What polars must call the same columns.
POLARS_TYPES = {
    TS: pl.Datetime("ns", "UTC"),
    pa.string(): pl.String,
    pa.binary(): pl.Binary,
    pa.bool_(): pl.Boolean,
    pa.uint8(): pl.UInt8,
    pa.uint16(): pl.UInt16,
    pa.uint32(): pl.UInt32,
    pa.uint64(): pl.UInt64,
}

DIRECTIONS = {"unknown", "ingress", "egress"}
# record::encap names (formats/README.md); flow keys carry only the virtual-network ones.
ENCAPS = {
    "none", "vxlan", "vxlan-gpe", "geneve", "gre", "erspan", "gre-udp", "gtp-u", "ip-in-ip",
    "mpls", "mpls-udp", "pppoe", "pbb", "fabricpath", "ayiya", "teredo",
}
FLOW_ENCAPS = {"none", "vxlan", "vxlan-gpe", "geneve"}
SOURCES = {"tc", "xdp", "pcap"}
# TCP flag bits and the letter order synscope documents: S A F R P U E C N.
FLAG_LETTERS = [
    (0x002, "S"),
    (0x010, "A"),
    (0x001, "F"),
    (0x004, "R"),
    (0x008, "P"),
    (0x020, "U"),
    (0x040, "E"),
    (0x080, "C"),
    (0x100, "N"),
]
IP_DF = 0x4000


class Checker:
    """Collects failures for one file instead of stopping at the first."""

    def __init__(self, path):
        self.path = path
        self.failures = []

    def check(self, ok, what):
        if not ok:
            self.failures.append(what)
        return ok


def flag_letters(flags):
    return "".join(ch for bit, ch in FLAG_LETTERS if flags & bit)


def parse_addr(text, version):
    """The address's 16 canonical bytes (IPv4 in the first 4), or None if it is not an
    address of that version."""
    try:
        a = ipaddress.ip_address(text)
    except ValueError:
        return None
    if a.version != version:
        return None
    return a.packed.ljust(16, b"\0")


def check_schema(c, schema, columns):
    names = [f.name for f in schema]
    c.check(names == [n for n, _ in columns], f"columns are {names}")
    for name, typ in columns:
        if name in names:
            got = schema.field(name).type
            c.check(got == typ, f"{name}: pyarrow type {got}, expected {typ}")


def check_polars(c, df_pl, table, columns):
    c.check(df_pl.height == table.num_rows, f"polars {df_pl.height} rows, pyarrow {table.num_rows}")
    for name, typ in columns:
        if name not in df_pl.columns:
            c.check(False, f"polars has no column {name}")
            continue
        want = POLARS_TYPES[typ]
        c.check(df_pl.schema[name] == want, f"{name}: polars type {df_pl.schema[name]}, expected {want}")
    # Both libraries must read the same values; compare the first columns (timestamps as
    # integer nanoseconds, since Python datetimes stop at microseconds).
    for name, typ in columns[:4]:
        if name in df_pl.columns and name in table.column_names:
            col_pl = df_pl.get_column(name)
            col_pa = table.column(name)
            if typ == TS:
                col_pl = col_pl.cast(pl.Int64)
                col_pa = col_pa.cast(pa.int64())
            same = col_pl.to_list() == col_pa.to_pylist()
            c.check(same, f"{name}: polars and pyarrow values differ")


def timestamps_as_ns(table):
    """The table with every timestamp column as int64 nanoseconds (None stays None)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.int64()))
    return table


def check_endpoints(c, where, r):
    """Addresses of the row's IP version and a known direction (SYN and payload rows)."""
    v = r["ip_version"]
    c.check(parse_addr(r["src_ip"], v) is not None, f"{where}: src_ip {r['src_ip']!r} is not IPv{v}")
    c.check(parse_addr(r["dst_ip"], v) is not None, f"{where}: dst_ip {r['dst_ip']!r} is not IPv{v}")
    c.check(r["direction"] in DIRECTIONS, f"{where}: direction {r['direction']!r}")


def check_encap(c, where, r):
    """A known encapsulation, with a depth exactly when there is one (SYN and payload rows)."""
    e, depth = r["encap"], r["encaps"]
    c.check(e in ENCAPS, f"{where}: encap {e!r}")
    if e == "none":
        c.check(depth == 0 and r["encap_id"] is None, f"{where}: depth or id without encapsulation")
    else:
        c.check(1 <= depth <= 3, f"{where}: {e} at depth {depth}")


def check_syn_rows(c, rows):
    for i, r in enumerate(rows):
        where = f"row {i}"
        v = r["ip_version"]
        if not c.check(v in (4, 6), f"{where}: ip_version {v}"):
            continue
        check_endpoints(c, where, r)
        c.check(r["source"] in SOURCES, f"{where}: source {r['source']!r}")
        opts = r["tcp_options"]
        c.check(len(opts) <= 40, f"{where}: {len(opts)} option bytes")
        thl = r["tcp_hdr_len"]
        c.check(20 <= thl <= 60 and thl % 4 == 0, f"{where}: tcp_hdr_len {thl}")
        c.check(len(opts) == thl - 20, f"{where}: {len(opts)} option bytes for tcp_hdr_len {thl}")
        c.check(r["tcp_flags"] & 0x002 != 0, f"{where}: tcp_flags {r['tcp_flags']:#x} without SYN")
        c.check(r["tcp_flags"] < 0x200, f"{where}: tcp_flags {r['tcp_flags']:#x} beyond NS")
        c.check(
            r["tcp_flags_text"] == flag_letters(r["tcp_flags"]),
            f"{where}: tcp_flags_text {r['tcp_flags_text']!r} for flags {r['tcp_flags']:#x}",
        )
        c.check(r["ip_df"] == bool(r["ip_frag"] & IP_DF), f"{where}: ip_df disagrees with ip_frag")
        if v == 4:
            c.check(r["ip_hdr_len"] >= 20 and r["ip_hdr_len"] % 4 == 0, f"{where}: IPv4 ip_hdr_len {r['ip_hdr_len']}")
            c.check(r["flow_label"] == 0, f"{where}: IPv4 with flow label")
        else:
            c.check(r["ip_hdr_len"] >= 40, f"{where}: IPv6 ip_hdr_len {r['ip_hdr_len']}")
            c.check(r["flow_label"] < (1 << 20), f"{where}: flow label {r['flow_label']:#x} over 20 bits")
            c.check(r["ip_id"] == 0 and r["ip_frag"] == 0, f"{where}: IPv6 with ip_id/ip_frag")
        check_encap(c, where, r)


def check_flow_rows(c, rows):
    for i, r in enumerate(rows):
        where = f"row {i}"
        v = r["ip_version"]
        if not c.check(v in (4, 6), f"{where}: ip_version {v}"):
            continue
        a = parse_addr(r["addr_a"], v)
        b = parse_addr(r["addr_b"], v)
        c.check(a is not None, f"{where}: addr_a {r['addr_a']!r} is not IPv{v}")
        c.check(b is not None, f"{where}: addr_b {r['addr_b']!r} is not IPv{v}")
        if a is not None and b is not None:
            c.check((a, r["port_a"]) <= (b, r["port_b"]), f"{where}: endpoints not in canonical order")
        c.check(r["interval_start"] <= r["interval_end"], f"{where}: interval ends before it starts")
        c.check(r["encap"] in FLOW_ENCAPS, f"{where}: flow key encap {r['encap']!r}")
        if r["encap"] == "none":
            c.check(r["encap_id"] is None, f"{where}: encap_id without encapsulation")
        for d in ("ab", "ba"):
            n = r[f"{d}_packets"]
            first, last = r[f"{d}_first_seen"], r[f"{d}_last_seen"]
            if n == 0:
                c.check(first is None and last is None, f"{where}: {d} times set without packets")
            else:
                ok = first is not None and last is not None
                if c.check(ok, f"{where}: {d} has {n} packets but null times"):
                    c.check(first <= last, f"{where}: {d} first_seen after last_seen")


def check_payload_rows(c, rows):
    before = 0
    for i, r in enumerate(rows):
        where = f"row {i}"
        v = r["ip_version"]
        if not c.check(v in (4, 6), f"{where}: ip_version {v}"):
            continue
        check_endpoints(c, where, r)
        c.check(r["side"] in SIDES, f"{where}: side {r['side']!r}")
        n = len(r["head"])
        c.check(n <= PAYLOAD_HEAD_MAX, f"{where}: {n} head bytes")
        c.check(n <= r["payload_len"], f"{where}: {n} head bytes for payload_len {r['payload_len']}")
        c.check(r["tcp_flags"] & 0x002 == 0, f"{where}: a SYN segment")
        c.check(r["syn_rows_before"] >= before, f"{where}: syn_rows_before goes back")
        before = r["syn_rows_before"]
        check_encap(c, where, r)


ROW_CHECKS = {"syn": check_syn_rows, "flows": check_flow_rows, "payload": check_payload_rows}


def check_file(path):
    c = Checker(path)
    try:
        meta = pq.read_metadata(path).metadata or {}
    except Exception as e:  # noqa: BLE001 - any failure to open is the finding
        return [f"pyarrow cannot read the footer: {e}"], None, 0
    kv = {k.decode(): v.decode() for k, v in meta.items()}
    for key in META_KEYS:
        c.check(key in kv, f"metadata key {key} missing")
    c.check(kv.get("synscope.schema_version") == SCHEMA_VERSION, f"schema version {kv.get('synscope.schema_version')!r}")
    kind = kv.get("synscope.record_type")
    if kind == "syn":
        columns = SYN_COLUMNS
    elif kind == "flows":
        columns = FLOW_COLUMNS
    elif kind == "payload":
        columns = PAYLOAD_COLUMNS
    else:
        c.check(False, f"record type {kind!r}")
        return c.failures, kind, 0

    table = pq.read_table(path)
    check_schema(c, table.schema, columns)
    try:
        df_pl = pl.read_parquet(path)
        check_polars(c, df_pl, table, columns)
    except Exception as e:  # noqa: BLE001
        c.check(False, f"polars cannot read it: {e}")
    if not c.failures:
        rows = timestamps_as_ns(table).to_pylist()
        ROW_CHECKS[kind](c, rows)
    return c.failures, kind, table.num_rows


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    bad = 0
    for path in argv[1:]:
        failures, kind, n = check_file(path)
        if failures:
            bad += 1
            print(f"FAIL {path} ({kind}, {n} rows): {len(failures)} problem(s)")
            for f in failures[:20]:
                print(f"  - {f}")
            if len(failures) > 20:
                print(f"  ... and {len(failures) - 20} more")
        else:
            print(f"ok   {path} ({kind}, {n} rows; pyarrow {pa.__version__}, polars {pl.__version__})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
