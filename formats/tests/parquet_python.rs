//! Our recordings are plain Parquet: `tests/python/check_recording.py` opens them with
//! pyarrow and polars (no synscope code) and checks types, metadata and values.
//!
//! Runs when `python3` can import pyarrow and polars; otherwise the tests are reported as
//! ignored, or fail when `SYNSCOPE_REQUIRE_ORACLE=1` (as CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringArray};
use formats::flows::{FlowRow, FlowWriter};
use formats::meta::{RecordType, RecordingMeta};
use formats::record::{
    FlowCounters, FlowKey, SynRecord, direction, flow_dir, ip_frag, source, tcp_flag,
};
use formats::recording::{WriteKind, WriterOptions};
use formats::syn::{Syn, SynWriter, col};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

testkit::main! {
    recordings_pass_the_python_checker needs [testkit::PYTHON],
    python_checker_rejects_inconsistent_file needs [testkit::PYTHON],
}

fn script() -> PathBuf {
    testkit::workspace_root().join("tests/python/check_recording.py")
}

fn run_checker(paths: &[&Path]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(script())
        .args(paths)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&a);
    o
}

/// Records shaped like real ones: a Linux-like IPv4 SYN with MSS/SACK/TS/WS, an IPv6
/// SYN+ACK with a flow label, an ECN-setup SYN from a pcap.
fn syn_records() -> Vec<SynRecord> {
    let base = 1_763_700_000_123_456_789u64;
    let mut out = Vec::new();

    let mut r = SynRecord::ZERO;
    r.ts_ns = base;
    r.ifindex = 2;
    r.ip_version = 4;
    r.src_addr = v4([198, 51, 100, 10]);
    r.dst_addr = v4([198, 51, 100, 20]);
    r.src_port = 51234;
    r.dst_port = 80;
    r.ip_len = 60;
    r.ip_id = 0x1c46;
    r.ip_frag = ip_frag::DF;
    r.ip_hdr_len = 20;
    r.ttl = 64;
    r.tcp_flags = tcp_flag::SYN;
    r.window = 64240;
    r.seq = 0xdead_beef;
    r.tcp_hdr_len = 40;
    let opts = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 1, 2, 3, 0, 0, 0, 0, 1, 3, 3, 7,
    ];
    r.tcp_opts[..opts.len()].copy_from_slice(&opts);
    r.tcp_opts_len = opts.len() as u8;
    r.direction = direction::INGRESS;
    r.source = source::TC;
    out.push(r);

    let mut r = SynRecord::ZERO;
    r.ts_ns = base + 1_500;
    r.ifindex = 3;
    r.ip_version = 6;
    r.src_addr = "fd00:db8::1"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    r.dst_addr = "fd00:db8::2"
        .parse::<std::net::Ipv6Addr>()
        .unwrap()
        .octets();
    r.src_port = 443;
    r.dst_port = 40000;
    r.flow_label = 0xabcde;
    r.ip_len = 32;
    r.ip_hdr_len = 40;
    r.ttl = 63;
    r.tcp_flags = tcp_flag::SYN | tcp_flag::ACK;
    r.window = 65160;
    r.seq = 7;
    r.ack = 0xdead_bef0;
    r.tcp_hdr_len = 32;
    let opts = [2, 4, 5, 0xa0, 1, 1, 4, 2, 1, 3, 3, 7];
    r.tcp_opts[..opts.len()].copy_from_slice(&opts);
    r.tcp_opts_len = opts.len() as u8;
    r.direction = direction::EGRESS;
    r.source = source::XDP;
    out.push(r);

    let mut r = out[0];
    r.ts_ns = base + 9_000_000;
    r.tcp_flags = tcp_flag::SYN | tcp_flag::ECE | tcp_flag::CWR;
    r.tos = 0x02;
    r.ip_frag = 0;
    r.direction = direction::UNKNOWN;
    r.source = source::PCAP;
    r.ifindex = 0;
    out.push(r);
    out
}

fn flow_rows() -> Vec<FlowRow> {
    let a = v4([198, 51, 100, 10]);
    let b = v4([198, 51, 100, 20]);
    let mut rows = Vec::new();
    // A full handshake, then a flow where only one side spoke.
    let (key, d) = FlowKey::new(4, b, 80, a, 51234);
    let mut counters = FlowCounters::default();
    counters.dir_mut(d).add(1_000, 60, tcp_flag::SYN);
    let other = if d == flow_dir::A_TO_B {
        flow_dir::B_TO_A
    } else {
        flow_dir::A_TO_B
    };
    counters
        .dir_mut(other)
        .add(2_000, 60, tcp_flag::SYN | tcp_flag::ACK);
    counters.dir_mut(d).add(3_000, 52, tcp_flag::ACK);
    rows.push(FlowRow {
        interval_start_ns: 0,
        interval_end_ns: 10_000_000_000,
        key,
        counters,
    });
    let (key, d) = FlowKey::new(4, a, 40000, b, 22);
    let mut counters = FlowCounters::default();
    counters.dir_mut(d).add(5_000, 60, tcp_flag::SYN);
    rows.push(FlowRow {
        interval_start_ns: 0,
        interval_end_ns: 10_000_000_000,
        key,
        counters,
    });
    rows
}

fn meta(t: RecordType) -> RecordingMeta {
    let mut m = RecordingMeta::new(t);
    m.fill_local_host();
    m.interface = "veth-test".into();
    m.clock_source = "test".into();
    m
}

fn recordings_pass_the_python_checker() {
    let dir = tempfile::tempdir().unwrap();
    let syn_path = dir.path().join("syn.parquet");
    let flows_path = dir.path().join("flows.parquet");
    let opts = WriterOptions {
        row_group_rows: 2,
        ..WriterOptions::default()
    };
    let mut w = SynWriter::create(&syn_path, &meta(RecordType::Syn), opts).unwrap();
    w.write_all(&syn_records()).unwrap();
    w.close().unwrap();
    let mut w = FlowWriter::create(&flows_path, &meta(RecordType::Flows), opts).unwrap();
    w.write_all(&flow_rows()).unwrap();
    w.close().unwrap();

    let (ok, text) = run_checker(&[&syn_path, &flows_path]);
    eprintln!("{text}");
    assert!(ok, "checker failed:\n{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        2,
        "{text}"
    );
}

/// The checker is not a rubber stamp: a file whose decoded column disagrees with the raw one
/// (written with parquet's plain writer, bypassing ours) fails it.
fn python_checker_rejects_inconsistent_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.parquet");
    let records = syn_records();
    let good = Syn::encode(&records, &()).unwrap();
    let idx = good.schema().index_of(col::TCP_FLAGS_TEXT).unwrap();
    let mut cols = good.columns().to_vec();
    cols[idx] = Arc::new(StringArray::from(vec!["S", "S", "S"])) as ArrayRef;
    let bad = arrow::array::RecordBatch::try_new(good.schema(), cols).unwrap();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(meta(RecordType::Syn).to_key_values()))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        bad.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&bad).unwrap();
    w.close().unwrap();

    let (ok, text) = run_checker(&[&path]);
    eprintln!("{text}");
    assert!(!ok, "checker accepted a bad file:\n{text}");
    assert!(text.contains("tcp_flags_text"), "{text}");
}
