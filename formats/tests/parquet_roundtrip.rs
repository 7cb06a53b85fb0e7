//! Round trips through real Parquet files: whatever canonical rows go in come back
//! bit-identical, in order, whichever way they are read (streamed or per row group, in
//! parallel), and row groups have the configured bound.

use formats::flows::{FlowReader, FlowRow, FlowWriter};
use formats::meta::{RecordType, RecordingMeta};
use formats::record::{FlowCounters, FlowDirCounters, FlowKey, SynRecord, TCP_OPTS_MAX};
use formats::recording::{RecordingError, WriterOptions};
use formats::syn::{SynReader, SynWriter};
use proptest::prelude::*;

/// Addresses, with the special IPv6 forms whose text differs (all zero, loopback, mapped and
/// compatible IPv4) as likely as random ones.
fn addr() -> impl Strategy<Value = [u8; 16]> {
    prop_oneof![
        any::<[u8; 16]>(),
        Just([0u8; 16]),
        Just(std::net::Ipv6Addr::LOCALHOST.octets()),
        any::<[u8; 4]>().prop_map(|a| std::net::Ipv4Addr::from(a).to_ipv6_mapped().octets()),
        any::<[u8; 4]>().prop_map(|a| {
            let mut o = [0u8; 16];
            o[12..].copy_from_slice(&a);
            o
        }),
    ]
}

/// Canonical records: IPv4 with zero address tails or IPv6, every direction and source value,
/// option blobs of every length 0..=40 with a zero tail, times up to i64::MAX ns.
fn canonical_syn() -> impl Strategy<Value = SynRecord> {
    let addrs = (any::<bool>(), addr(), addr());
    let opts = proptest::collection::vec(any::<u8>(), 0..=TCP_OPTS_MAX);
    let small = (
        0u8..=2,
        1u8..=3,
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
    );
    let words = any::<[u16; 10]>();
    let longs = (0..=i64::MAX as u64, any::<[u32; 4]>());
    (addrs, opts, small, words, longs).prop_map(
        |((v6, mut src, mut dst), opts, small, w, (ts, l))| {
            let (direction, source, ttl, tos, tcp_hdr_len, record_flags) = small;
            let ip_version = if v6 { 6 } else { 4 };
            if !v6 {
                src[4..].fill(0);
                dst[4..].fill(0);
            }
            let mut r = SynRecord::ZERO;
            r.ts_ns = ts;
            r.ifindex = l[0];
            r.flow_label = l[1];
            r.seq = l[2];
            r.ack = l[3];
            r.src_addr = src;
            r.dst_addr = dst;
            r.src_port = w[0];
            r.dst_port = w[1];
            r.ip_len = w[2];
            r.ip_id = w[3];
            r.ip_frag = w[4];
            r.ip_hdr_len = w[5];
            r.tcp_flags = w[6];
            r.window = w[7];
            r.urg_ptr = w[8];
            r.payload_len = w[9];
            r.ip_version = ip_version;
            r.ttl = ttl;
            r.tos = tos;
            r.direction = direction;
            r.source = source;
            r.tcp_hdr_len = tcp_hdr_len;
            r.record_flags = record_flags;
            r.tcp_opts[..opts.len()].copy_from_slice(&opts);
            r.tcp_opts_len = opts.len() as u8;
            r
        },
    )
}

/// Counters of one direction: no packets (then times are zero, stored as null) or some.
fn dir_counters() -> impl Strategy<Value = FlowDirCounters> {
    prop_oneof![
        (any::<u64>(), any::<u16>()).prop_map(|(bytes, tcp_flags)| FlowDirCounters {
            bytes,
            tcp_flags,
            ..FlowDirCounters::default()
        }),
        (
            1..=u64::MAX,
            any::<u64>(),
            0..=i64::MAX as u64,
            0..=i64::MAX as u64,
            any::<u16>()
        )
            .prop_map(|(packets, bytes, t1, t2, tcp_flags)| FlowDirCounters {
                packets,
                bytes,
                first_seen_ns: t1.min(t2),
                last_seen_ns: t1.max(t2),
                tcp_flags,
                _pad0: [0; 6],
            }),
    ]
}

fn flow_row() -> impl Strategy<Value = FlowRow> {
    (
        any::<bool>(),
        addr(),
        addr(),
        any::<u16>(),
        any::<u16>(),
        0..=i64::MAX as u64,
        0..=i64::MAX as u64,
        dir_counters(),
        dir_counters(),
    )
        .prop_map(|(v6, mut a, mut b, pa, pb, s, e, ab, ba)| {
            let ip_version = if v6 { 6 } else { 4 };
            if !v6 {
                a[4..].fill(0);
                b[4..].fill(0);
            }
            let (key, _) = FlowKey::new(ip_version, a, pa, b, pb);
            FlowRow {
                interval_start_ns: s,
                interval_end_ns: e,
                key,
                counters: FlowCounters {
                    a_to_b: ab,
                    b_to_a: ba,
                },
            }
        })
}

fn meta(t: RecordType) -> RecordingMeta {
    let mut m = RecordingMeta::new(t);
    m.host = "testhost".into();
    m.interface = "veth-test".into();
    m.clock_source = "test".into();
    m.extra.push(("case".into(), "roundtrip".into()));
    m
}

/// Expected row group sizes: `flush_at` rows, then full groups of `per_group`, for `n` rows.
fn expected_groups(n: usize, per_group: usize, flush_at: Option<usize>) -> Vec<u64> {
    let mut groups = Vec::new();
    let mut rest = n;
    if let Some(f) = flush_at.filter(|f| *f > 0 && *f <= n) {
        // The flush closes a group of f rows (itself split at per_group).
        let mut head = f;
        while head > 0 {
            let g = head.min(per_group);
            groups.push(g as u64);
            head -= g;
        }
        rest = n - f;
    }
    while rest > 0 {
        let g = rest.min(per_group);
        groups.push(g as u64);
        rest -= g;
    }
    groups
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn syn_records_round_trip(
        rows in proptest::collection::vec(canonical_syn(), 0..300),
        per_group in 1usize..100,
        flush_frac in proptest::option::of(0.0f64..1.0),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("syn.parquet");
        let flush_at = flush_frac.map(|f| (f * rows.len() as f64) as usize);
        let opts = WriterOptions { row_group_rows: per_group, zstd_level: 1 };
        let mut w = SynWriter::create(&path, &meta(RecordType::Syn), opts).unwrap();
        for (i, r) in rows.iter().enumerate() {
            if Some(i) == flush_at {
                w.flush().unwrap();
            }
            w.write(r).unwrap();
        }
        let summary = w.close().unwrap();
        prop_assert_eq!(summary.rows, rows.len() as u64);
        prop_assert_eq!(summary.bytes, std::fs::metadata(&path).unwrap().len());

        let r = SynReader::open(&path).unwrap();
        prop_assert_eq!(r.meta(), &meta(RecordType::Syn));
        prop_assert_eq!(r.num_rows(), rows.len() as u64);
        let groups: Vec<u64> = (0..r.num_row_groups()).map(|i| r.row_group_rows(i).unwrap()).collect();
        prop_assert_eq!(&groups, &expected_groups(rows.len(), per_group, flush_at));
        prop_assert_eq!(summary.row_groups, groups.len());

        let streamed: Vec<SynRecord> = r.records().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&streamed, &rows);
        let mut by_group = Vec::new();
        for i in 0..r.num_row_groups() {
            by_group.extend(r.read_row_group(i).unwrap());
        }
        prop_assert_eq!(&by_group, &rows);
    }

    #[test]
    fn flow_rows_round_trip(
        rows in proptest::collection::vec(flow_row(), 0..200),
        per_group in 1usize..60,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.parquet");
        let opts = WriterOptions { row_group_rows: per_group, zstd_level: 1 };
        let mut w = FlowWriter::create(&path, &meta(RecordType::Flows), opts).unwrap();
        w.write_all(&rows).unwrap();
        let summary = w.close().unwrap();
        prop_assert_eq!(summary.rows, rows.len() as u64);

        let r = FlowReader::open(&path).unwrap();
        prop_assert_eq!(r.meta(), &meta(RecordType::Flows));
        prop_assert_eq!(r.num_row_groups(), rows.len().div_ceil(per_group));
        let streamed: Vec<FlowRow> = r.records().collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&streamed, &rows);
        let mut by_group = Vec::new();
        for i in 0..r.num_row_groups() {
            by_group.extend(r.read_row_group(i).unwrap());
        }
        prop_assert_eq!(&by_group, &rows);
    }
}

/// Many rows with the default bound, row groups read by parallel threads from one reader.
#[test]
fn default_row_groups_read_in_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.parquet");
    let n = 150_000u32;
    let make = |i: u32| {
        let mut r = SynRecord::ZERO;
        r.ts_ns = 1_763_700_000_000_000_000 + u64::from(i) * 1000;
        r.ip_version = 4;
        r.src_addr[..4].copy_from_slice(&i.to_be_bytes());
        r.dst_addr[..4].copy_from_slice(&[198, 51, 100, 1]);
        r.src_port = (i % 65536) as u16;
        r.dst_port = 443;
        r.seq = i.wrapping_mul(2_654_435_761);
        r.source = formats::record::source::PCAP;
        r.tcp_opts_len = (i % 41) as u8;
        for k in 0..r.tcp_opts_len as usize {
            r.tcp_opts[k] = (i as usize + k) as u8;
        }
        r
    };
    let mut w = SynWriter::create(&path, &meta(RecordType::Syn), WriterOptions::default()).unwrap();
    for i in 0..n {
        w.write(&make(i)).unwrap();
    }
    let s = w.close().unwrap();
    // 150000 = 2 * 65536 + 18928.
    assert_eq!((s.rows, s.row_groups), (150_000, 3));

    let r = SynReader::open(&path).unwrap();
    let groups: Vec<Vec<SynRecord>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..r.num_row_groups())
            .map(|i| {
                let r = &r;
                scope.spawn(move || r.read_row_group(i))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    assert_eq!(
        groups.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![65536, 65536, 18928]
    );
    for (i, rec) in groups.iter().flatten().enumerate() {
        assert_eq!(*rec, make(i as u32), "row {i}");
    }
}

/// Dropping an unclosed writer still leaves a complete, readable file.
#[test]
fn drop_without_close_writes_the_footer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.parquet");
    let mut rec = SynRecord::ZERO;
    rec.ip_version = 6;
    rec.src_addr[15] = 1;
    rec.source = formats::record::source::XDP;
    {
        let mut w =
            SynWriter::create(&path, &meta(RecordType::Syn), WriterOptions::default()).unwrap();
        w.write(&rec).unwrap();
        w.write(&rec).unwrap();
    }
    let r = SynReader::open(&path).unwrap();
    let all: Vec<SynRecord> = r.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(all, vec![rec, rec]);
}

/// After `finish`, the writer refuses more rows instead of writing past the footer.
#[test]
fn writing_after_finish_is_an_error() {
    let mut w =
        SynWriter::new(Vec::new(), &meta(RecordType::Syn), WriterOptions::default()).unwrap();
    let s = w.finish().unwrap();
    assert_eq!((s.rows, s.row_groups), (0, 0));
    let mut rec = SynRecord::ZERO;
    rec.ip_version = 4;
    assert!(matches!(w.write(&rec), Err(RecordingError::Closed { .. })));
    assert!(matches!(w.finish(), Err(RecordingError::Closed { .. })));
}

/// Which columns carry a dictionary page and which are delta-encoded: exactly each kind's
/// `DICTIONARY_COLUMNS` and `DELTA_COLUMNS` (a name there that is not a column would
/// silently do nothing).
#[test]
fn only_the_listed_columns_are_dictionary_or_delta_encoded() {
    use formats::recording::WriteKind;
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn columns_where(
        path: &std::path::Path,
        pick: fn(&parquet::file::metadata::ColumnChunkMetaData) -> bool,
    ) -> Vec<String> {
        let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let rg = r.metadata().row_group(0);
        rg.columns()
            .iter()
            .filter(|c| pick(c))
            .map(|c| c.column_path().string())
            .collect()
    }
    let dictionary_columns =
        |p: &std::path::Path| columns_where(p, |c| c.dictionary_page_offset().is_some());
    let delta_columns = |p: &std::path::Path| {
        columns_where(p, |c| {
            c.encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED)
        })
    };
    let names = |cols: &[&str]| cols.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let dir = tempfile::tempdir().unwrap();
    let syn = dir.path().join("s.parquet");
    let mut rec = SynRecord::ZERO;
    rec.ip_version = 4;
    rec.tcp_opts_len = 4;
    rec.tcp_opts[..4].copy_from_slice(&[2, 4, 5, 0xb4]);
    rec.source = formats::record::source::PCAP;
    let mut w = SynWriter::create(&syn, &meta(RecordType::Syn), WriterOptions::default()).unwrap();
    w.write_all(&[rec, rec]).unwrap();
    w.close().unwrap();
    use formats::{flows::Flows, syn::Syn};
    assert!(!Syn::DICTIONARY_COLUMNS.is_empty());
    assert_eq!(dictionary_columns(&syn), names(Syn::DICTIONARY_COLUMNS));
    assert_eq!(delta_columns(&syn), names(Syn::DELTA_COLUMNS));

    let flows = dir.path().join("f.flows.parquet");
    let (key, _) = FlowKey::new(4, [0; 16], 1, [0; 16], 2);
    let row = FlowRow {
        interval_start_ns: 0,
        interval_end_ns: 1,
        key,
        counters: FlowCounters::default(),
    };
    let mut w =
        FlowWriter::create(&flows, &meta(RecordType::Flows), WriterOptions::default()).unwrap();
    w.write(&row).unwrap();
    w.close().unwrap();
    assert_eq!(dictionary_columns(&flows), names(Flows::DICTIONARY_COLUMNS));
    assert!(!Flows::DELTA_COLUMNS.is_empty());
    assert_eq!(delta_columns(&flows), names(Flows::DELTA_COLUMNS));
}
