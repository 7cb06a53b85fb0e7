//! The Parquet recording of SYN records: one row per [`SynRecord`].
//!
//! The columns are meant to be read by a notebook user without our code: timestamps are
//! `timestamp[ns, tz=UTC]`, addresses and enums are text, integers keep the record's widths
//! (unsigned). Two decoded columns (`ip_df`, `tcp_flags_text`) are added for convenience;
//! they are derived from raw columns on write and never read back, so the reader rebuilds a
//! record bit-identical to the one written. The column list, with units, is in
//! `formats/README.md`.
//!
//! ```no_run
//! use formats::meta::{RecordType, RecordingMeta};
//! use formats::recording::WriterOptions;
//! use formats::syn::{SynReader, SynWriter};
//! # fn main() -> Result<(), formats::recording::RecordingError> {
//! # let record = formats::record::SynRecord::ZERO;
//! let meta = RecordingMeta::new(RecordType::Syn);
//! let mut w = SynWriter::create("syn.parquet", &meta, WriterOptions::default())?;
//! w.write(&record)?;
//! let summary = w.close()?;
//! let r = SynReader::open("syn.parquet")?;
//! for rec in r.records() {
//!     let rec = rec?;
//! }
//! # Ok(()) }
//! ```

use std::fs::File;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, RecordBatch, StringArray, TimestampNanosecondArray,
    UInt8Array, UInt16Array, UInt32Array,
};
use arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimestampNanosecondType, UInt8Type, UInt16Type, UInt32Type,
};
use arrow::error::ArrowError;
use record::{SynRecord, TCP_OPTS_MAX, direction, ip_frag, source, tcp_flag};

use crate::meta::RecordType;
use crate::recording::columns::{
    EncapColumns, Endpoints, TextColumn, addr_array, encap_arrays, get, no_nulls, prim, text,
    ts_from_i64, ts_to_i64,
};
use crate::recording::{DecodeError, RecordKind, RecordingReader, RecordingWriter, WriteKind};

/// The SYN recording type (see [`RecordKind`]).
#[derive(Clone, Copy, Debug)]
pub struct Syn;

/// Streaming writer of SYN recordings, over a [`File`] by default (`SynWriter::create`) or any
/// `Write + Send` (`SynWriter::new`).
pub type SynWriter<W = File> = RecordingWriter<Syn, W>;

/// Reader of SYN recordings.
pub type SynReader = RecordingReader<Syn>;

/// Column names, in schema order.
pub mod col {
    pub const TS: &str = "ts";
    pub const IFINDEX: &str = "ifindex";
    pub const DIRECTION: &str = crate::recording::columns::DIRECTION;
    pub const SOURCE: &str = "source";
    pub const IP_VERSION: &str = crate::recording::columns::IP_VERSION;
    pub const SRC_IP: &str = crate::recording::columns::SRC_IP;
    pub const DST_IP: &str = crate::recording::columns::DST_IP;
    pub const SRC_PORT: &str = crate::recording::columns::SRC_PORT;
    pub const DST_PORT: &str = crate::recording::columns::DST_PORT;
    pub const TTL: &str = "ttl";
    pub const TOS: &str = "tos";
    pub const IP_LEN: &str = "ip_len";
    pub const IP_ID: &str = "ip_id";
    pub const IP_FRAG: &str = "ip_frag";
    /// Derived: `ip_frag & DF != 0`.
    pub const IP_DF: &str = "ip_df";
    pub const IP_HDR_LEN: &str = "ip_hdr_len";
    pub const FLOW_LABEL: &str = "flow_label";
    pub const TCP_FLAGS: &str = "tcp_flags";
    /// Derived: [`record::tcp_flag::letters`].
    pub const TCP_FLAGS_TEXT: &str = "tcp_flags_text";
    pub const SEQ: &str = "seq";
    pub const ACK: &str = "ack";
    pub const WINDOW: &str = "window";
    pub const URG_PTR: &str = "urg_ptr";
    pub const PAYLOAD_LEN: &str = "payload_len";
    pub const TCP_HDR_LEN: &str = "tcp_hdr_len";
    pub const TCP_OPTIONS: &str = "tcp_options";
    pub const RECORD_FLAGS: &str = "record_flags";
    /// Schema version 2: [`record::SynRecord::encap_kind`] by name.
    pub const ENCAP: &str = "encap";
    /// Schema version 2: [`record::SynRecord::encap_id`], null without the ID flag.
    pub const ENCAP_ID: &str = "encap_id";
    /// Schema version 2: [`record::SynRecord::encaps`].
    pub const ENCAPS: &str = "encaps";
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use crate::recording::timestamp_type;
    let f = |name: &str, t: DataType| Field::new(name, t, false);
    Arc::new(Schema::new(vec![
        f(col::TS, timestamp_type()),
        f(col::IFINDEX, DataType::UInt32),
        f(col::DIRECTION, DataType::Utf8),
        f(col::SOURCE, DataType::Utf8),
        f(col::IP_VERSION, DataType::UInt8),
        f(col::SRC_IP, DataType::Utf8),
        f(col::DST_IP, DataType::Utf8),
        f(col::SRC_PORT, DataType::UInt16),
        f(col::DST_PORT, DataType::UInt16),
        f(col::TTL, DataType::UInt8),
        f(col::TOS, DataType::UInt8),
        f(col::IP_LEN, DataType::UInt16),
        f(col::IP_ID, DataType::UInt16),
        f(col::IP_FRAG, DataType::UInt16),
        f(col::IP_DF, DataType::Boolean),
        f(col::IP_HDR_LEN, DataType::UInt16),
        f(col::FLOW_LABEL, DataType::UInt32),
        f(col::TCP_FLAGS, DataType::UInt16),
        f(col::TCP_FLAGS_TEXT, DataType::Utf8),
        f(col::SEQ, DataType::UInt32),
        f(col::ACK, DataType::UInt32),
        f(col::WINDOW, DataType::UInt16),
        f(col::URG_PTR, DataType::UInt16),
        f(col::PAYLOAD_LEN, DataType::UInt16),
        f(col::TCP_HDR_LEN, DataType::UInt8),
        f(col::TCP_OPTIONS, DataType::Binary),
        f(col::RECORD_FLAGS, DataType::UInt8),
        f(col::ENCAP, DataType::Utf8),
        Field::new(col::ENCAP_ID, DataType::UInt32, true),
        f(col::ENCAPS, DataType::UInt8),
    ]))
});

/// The Arrow schema of a SYN recording (raw and derived columns).
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// `tcp_flags` as letters ([`tcp_flag::letters`]), one per row.
fn flag_letters(rows: &[SynRecord]) -> Result<ArrayRef, ArrowError> {
    let mut c = TextColumn::with_capacity(rows.len(), 2);
    let mut buf = [0u8; 9];
    for r in rows {
        let n = tcp_flag::letters(r.tcp_flags, &mut buf);
        let text = std::str::from_utf8(&buf[..n])
            .map_err(|e| ArrowError::ComputeError(format!("flag letters: {e}")))?;
        c.push(text)?;
    }
    Ok(Arc::new(c.finish()?))
}

impl WriteKind for Syn {
    type Row = SynRecord;
    type Context = ();

    const DICTIONARY_COLUMNS: &'static [&'static str] = &[
        col::DIRECTION,
        col::SOURCE,
        col::SRC_IP,
        col::DST_IP,
        col::TCP_FLAGS_TEXT,
        col::TCP_OPTIONS,
        col::ENCAP,
        col::ENCAP_ID,
    ];
    const DELTA_COLUMNS: &'static [&'static str] = &[col::TS];

    fn schema() -> SchemaRef {
        schema()
    }

    /// A record is stored faithfully when it is canonical (so dropping the unused address
    /// and option bytes loses nothing), its enums have names, and its time fits Arrow's i64.
    fn check(r: &SynRecord) -> Result<(), String> {
        if !r.is_canonical() {
            return Err("record is not canonical (see record::SynRecord::is_canonical)".into());
        }
        if direction::name(r.direction).is_none() {
            return Err(format!("unknown direction value {}", r.direction));
        }
        if source::name(r.source).is_none() {
            return Err(format!("unknown source value {}", r.source));
        }
        if ts_to_i64(r.ts_ns).is_none() {
            return Err(format!("timestamp {} ns is past year 2262", r.ts_ns));
        }
        Ok(())
    }

    fn encode(rows: &[SynRecord], (): &()) -> Result<RecordBatch, ArrowError> {
        fn col<T, A: From<Vec<T>> + arrow::array::Array + 'static>(
            rows: &[SynRecord],
            f: impl Fn(&SynRecord) -> T,
        ) -> ArrayRef {
            Arc::new(A::from(rows.iter().map(f).collect::<Vec<T>>()))
        }
        let names = |f: fn(u8) -> Option<&'static str>, pick: fn(&SynRecord) -> u8| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| f(pick(r)).unwrap_or("invalid")),
            )) as ArrayRef
        };
        let ts = TimestampNanosecondArray::from(
            rows.iter()
                .map(|r| ts_to_i64(r.ts_ns).unwrap_or(i64::MAX))
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC");
        let [encap, encap_id] = encap_arrays(rows, |r| (r.encap_kind, r.encap_flags, r.encap_id));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ts),
            col::<_, UInt32Array>(rows, |r| r.ifindex),
            names(direction::name, |r| r.direction),
            names(source::name, |r| r.source),
            col::<_, UInt8Array>(rows, |r| r.ip_version),
            addr_array(rows, |r| (r.ip_version, &r.src_addr))?,
            addr_array(rows, |r| (r.ip_version, &r.dst_addr))?,
            col::<_, UInt16Array>(rows, |r| r.src_port),
            col::<_, UInt16Array>(rows, |r| r.dst_port),
            col::<_, UInt8Array>(rows, |r| r.ttl),
            col::<_, UInt8Array>(rows, |r| r.tos),
            col::<_, UInt16Array>(rows, |r| r.ip_len),
            col::<_, UInt16Array>(rows, |r| r.ip_id),
            col::<_, UInt16Array>(rows, |r| r.ip_frag),
            col::<_, BooleanArray>(rows, |r| r.ip_frag & ip_frag::DF != 0),
            col::<_, UInt16Array>(rows, |r| r.ip_hdr_len),
            col::<_, UInt32Array>(rows, |r| r.flow_label),
            col::<_, UInt16Array>(rows, |r| r.tcp_flags),
            flag_letters(rows)?,
            col::<_, UInt32Array>(rows, |r| r.seq),
            col::<_, UInt32Array>(rows, |r| r.ack),
            col::<_, UInt16Array>(rows, |r| r.window),
            col::<_, UInt16Array>(rows, |r| r.urg_ptr),
            col::<_, UInt16Array>(rows, |r| r.payload_len),
            col::<_, UInt8Array>(rows, |r| r.tcp_hdr_len),
            Arc::new(BinaryArray::from_iter_values(
                rows.iter().map(|r| r.options()),
            )),
            col::<_, UInt8Array>(rows, |r| r.record_flags),
            encap,
            encap_id,
            col::<_, UInt8Array>(rows, |r| r.encaps),
        ];
        RecordBatch::try_new(schema(), columns)
    }
}

impl RecordKind for Syn {
    const RECORD_TYPE: RecordType = RecordType::Syn;
    const RAW_COLUMNS: &'static [&'static str] = &[
        col::TS,
        col::IFINDEX,
        col::DIRECTION,
        col::SOURCE,
        col::IP_VERSION,
        col::SRC_IP,
        col::DST_IP,
        col::SRC_PORT,
        col::DST_PORT,
        col::TTL,
        col::TOS,
        col::IP_LEN,
        col::IP_ID,
        col::IP_FRAG,
        col::IP_HDR_LEN,
        col::FLOW_LABEL,
        col::TCP_FLAGS,
        col::SEQ,
        col::ACK,
        col::WINDOW,
        col::URG_PTR,
        col::PAYLOAD_LEN,
        col::TCP_HDR_LEN,
        col::TCP_OPTIONS,
        col::RECORD_FLAGS,
    ];
    const ADDED_COLUMNS: &'static [(&'static str, u32)] =
        &[(col::ENCAP, 2), (col::ENCAP_ID, 2), (col::ENCAPS, 2)];

    fn decode(batch: &RecordBatch, out: &mut Vec<SynRecord>) -> Result<(), DecodeError> {
        let ts = prim::<TimestampNanosecondType>(batch, col::TS)?;
        let ifindex = prim::<UInt32Type>(batch, col::IFINDEX)?;
        let ends = Endpoints::read(batch)?;
        let src = text(batch, col::SOURCE)?;
        let ttl = prim::<UInt8Type>(batch, col::TTL)?;
        let tos = prim::<UInt8Type>(batch, col::TOS)?;
        let ip_len = prim::<UInt16Type>(batch, col::IP_LEN)?;
        let ip_id = prim::<UInt16Type>(batch, col::IP_ID)?;
        let ip_frag_w = prim::<UInt16Type>(batch, col::IP_FRAG)?;
        let ip_hdr_len = prim::<UInt16Type>(batch, col::IP_HDR_LEN)?;
        let flow_label = prim::<UInt32Type>(batch, col::FLOW_LABEL)?;
        let tcp_flags = prim::<UInt16Type>(batch, col::TCP_FLAGS)?;
        let seq = prim::<UInt32Type>(batch, col::SEQ)?;
        let ack = prim::<UInt32Type>(batch, col::ACK)?;
        let window = prim::<UInt16Type>(batch, col::WINDOW)?;
        let urg_ptr = prim::<UInt16Type>(batch, col::URG_PTR)?;
        let payload_len = prim::<UInt16Type>(batch, col::PAYLOAD_LEN)?;
        let tcp_hdr_len = prim::<UInt8Type>(batch, col::TCP_HDR_LEN)?;
        let opts = get::<BinaryArray>(batch, col::TCP_OPTIONS)?;
        no_nulls(opts, col::TCP_OPTIONS)?;
        let record_flags = prim::<UInt8Type>(batch, col::RECORD_FLAGS)?;
        let encap = EncapColumns::read(batch, col::ENCAP, col::ENCAP_ID)?;
        let encaps = match batch.column_by_name(col::ENCAPS) {
            Some(_) => Some(prim::<UInt8Type>(batch, col::ENCAPS)?),
            None => None,
        };

        out.reserve(batch.num_rows());
        for i in 0..batch.num_rows() {
            let e = ends.at(i)?;
            let mut r = SynRecord::ZERO;
            r.ts_ns = ts_from_i64(ts.value(i), i, col::TS)?;
            r.ifindex = ifindex.value(i);
            r.direction = e.direction;
            r.source = source::from_name(src.value(i)).ok_or_else(|| {
                DecodeError::new(i, col::SOURCE, format!("unknown source {:?}", src.value(i)))
            })?;
            r.ip_version = e.ip_version;
            (r.src_addr, r.dst_addr) = (e.src_addr, e.dst_addr);
            (r.src_port, r.dst_port) = (e.src_port, e.dst_port);
            r.ttl = ttl.value(i);
            r.tos = tos.value(i);
            r.ip_len = ip_len.value(i);
            r.ip_id = ip_id.value(i);
            r.ip_frag = ip_frag_w.value(i);
            r.ip_hdr_len = ip_hdr_len.value(i);
            r.flow_label = flow_label.value(i);
            r.tcp_flags = tcp_flags.value(i);
            r.seq = seq.value(i);
            r.ack = ack.value(i);
            r.window = window.value(i);
            r.urg_ptr = urg_ptr.value(i);
            r.payload_len = payload_len.value(i);
            r.tcp_hdr_len = tcp_hdr_len.value(i);
            let o = opts.value(i);
            if o.len() > TCP_OPTS_MAX {
                return Err(DecodeError::new(
                    i,
                    col::TCP_OPTIONS,
                    format!("{} option bytes, at most {TCP_OPTS_MAX}", o.len()),
                ));
            }
            r.tcp_opts[..o.len()].copy_from_slice(o);
            // In range by the check above.
            r.tcp_opts_len = o.len() as u8;
            r.record_flags = record_flags.value(i);
            (r.encap_kind, r.encap_flags, r.encap_id) = encap.at(i, col::ENCAP)?;
            r.encaps = encaps.map_or(0, |e| e.value(i));
            if !r.is_canonical() {
                return Err(DecodeError::new(
                    i,
                    col::IP_VERSION,
                    "row is not a canonical record",
                ));
            }
            out.push(r);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::RecordingMeta;
    use crate::recording::{RecordingError, WriterOptions};
    use arrow::array::Array;

    fn sample(i: u32) -> SynRecord {
        let mut r = SynRecord::ZERO;
        r.ts_ns = 1_700_000_000_000_000_000 + u64::from(i);
        r.ip_version = 4;
        r.src_addr[..4].copy_from_slice(&[198, 51, 100, 7]);
        r.dst_addr[..4].copy_from_slice(&[198, 51, 100, 8]);
        r.src_port = 40000;
        r.dst_port = 80;
        r.ttl = 64;
        r.ip_frag = ip_frag::DF;
        r.tcp_flags = tcp_flag::SYN | tcp_flag::ECE | tcp_flag::CWR;
        r.seq = i;
        r.tcp_hdr_len = 24;
        r.tcp_opts_len = 4;
        r.tcp_opts[..4].copy_from_slice(&[2, 4, 5, 0xb4]);
        r.direction = direction::INGRESS;
        r.source = source::TC;
        r
    }

    #[test]
    fn batch_round_trip_and_derived_columns() {
        let mut in_vxlan = sample(3);
        (in_vxlan.encap_kind, in_vxlan.encaps) = (record::encap::VXLAN, 2);
        (in_vxlan.encap_flags, in_vxlan.encap_id) = (record::encap::flag::ID, 4242);
        let mut in_gre = sample(4);
        (in_gre.encap_kind, in_gre.encaps) = (record::encap::GRE, 1);
        let rows = vec![sample(1), sample(2), in_vxlan, in_gre];
        let batch = Syn::encode(&rows, &()).unwrap();
        assert_eq!(batch.schema(), schema());
        let letters = get::<StringArray>(&batch, col::TCP_FLAGS_TEXT).unwrap();
        assert_eq!(letters.value(0), "SEC");
        let df = get::<BooleanArray>(&batch, col::IP_DF).unwrap();
        assert!(df.value(0));
        let src_ip = get::<StringArray>(&batch, col::SRC_IP).unwrap();
        assert_eq!(src_ip.value(1), "198.51.100.7");
        let kinds = get::<StringArray>(&batch, col::ENCAP).unwrap();
        let ids = get::<UInt32Array>(&batch, col::ENCAP_ID).unwrap();
        assert_eq!((kinds.value(0), ids.is_null(0)), ("none", true));
        assert_eq!((kinds.value(2), ids.value(2)), ("vxlan", 4242));
        assert_eq!((kinds.value(3), ids.is_null(3)), ("gre", true));
        let mut back = Vec::new();
        Syn::decode(&batch, &mut back).unwrap();
        assert_eq!(back, rows);
    }

    /// A version 1 batch has no encapsulation columns: its rows read as outside any.
    #[test]
    fn batches_without_encapsulation_columns_read_as_plain() {
        let rows = vec![sample(1), sample(2)];
        let full = Syn::encode(&rows, &()).unwrap();
        let keep: Vec<usize> = (0..full.num_columns())
            .filter(|&i| {
                let name = full.schema().field(i).name().clone();
                !Syn::ADDED_COLUMNS.iter().any(|(c, _)| *c == name)
            })
            .collect();
        let old = full.project(&keep).unwrap();
        let mut back = Vec::new();
        Syn::decode(&old, &mut back).unwrap();
        assert_eq!(back, rows);
        // An unknown name is corrupt, not "none".
        let idx = schema().index_of(col::ENCAP).unwrap();
        let mut cols = full.columns().to_vec();
        cols[idx] = Arc::new(StringArray::from(vec!["none", "vxlan-ng"]));
        let bad = RecordBatch::try_new(schema(), cols).unwrap();
        let e = Syn::decode(&bad, &mut Vec::new()).unwrap_err();
        assert_eq!((e.row, e.column.as_str()), (1, col::ENCAP));
    }

    #[test]
    fn writer_refuses_unstorable_rows_and_stays_usable() {
        let meta = RecordingMeta::new(RecordType::Syn);
        let mut w = SynWriter::new(Vec::new(), &meta, WriterOptions::default()).unwrap();
        let mut bad = sample(0);
        bad.direction = 9;
        assert!(matches!(
            w.write(&bad),
            Err(RecordingError::Unwritable { row: 0, .. })
        ));
        let mut bad = sample(0);
        bad.src_addr[9] = 1;
        assert!(w.write(&bad).is_err());
        let mut bad = sample(0);
        bad.ts_ns = u64::MAX;
        assert!(w.write(&bad).is_err());
        w.write(&sample(0)).unwrap();
        let s = w.close().unwrap();
        assert_eq!((s.rows, s.row_groups), (1, 1));
    }

    #[test]
    fn writer_refuses_bad_options() {
        let meta = RecordingMeta::new(RecordType::Syn);
        for options in [
            WriterOptions {
                row_group_rows: 0,
                ..WriterOptions::default()
            },
            WriterOptions {
                zstd_level: 99,
                ..WriterOptions::default()
            },
        ] {
            let e = SynWriter::new(Vec::new(), &meta, options).unwrap_err();
            assert!(
                matches!(e, RecordingError::Write { .. }),
                "{options:?}: {e:?}"
            );
        }
    }

    #[test]
    fn writer_refuses_metadata_of_another_type() {
        let meta = RecordingMeta::new(RecordType::Flows);
        let e = SynWriter::new(Vec::new(), &meta, WriterOptions::default()).unwrap_err();
        assert!(matches!(e, RecordingError::WrongRecordType { .. }));
    }

    #[test]
    fn decode_rejects_corrupt_values() {
        // Replace one column of a valid batch and check the error names row and column.
        let rows = vec![sample(1), sample(2)];
        let good = Syn::encode(&rows, &()).unwrap();
        let replace = |name: &str, arr: ArrayRef| {
            let idx = schema().index_of(name).unwrap();
            let mut cols = good.columns().to_vec();
            cols[idx] = arr;
            RecordBatch::try_new(schema(), cols).unwrap()
        };
        let cases: Vec<(&str, ArrayRef)> = vec![
            (
                col::SRC_IP,
                Arc::new(StringArray::from(vec!["198.51.100.7", "not-an-ip"])),
            ),
            (
                col::DIRECTION,
                Arc::new(StringArray::from(vec!["ingress", "sideways"])),
            ),
            (
                col::TCP_OPTIONS,
                Arc::new(BinaryArray::from_iter_values([&[1u8][..], &[1u8; 41][..]])),
            ),
            (
                col::TS,
                Arc::new(TimestampNanosecondArray::from(vec![1, -5]).with_timezone("UTC")),
            ),
        ];
        for (name, arr) in cases {
            let mut out = Vec::new();
            let e = Syn::decode(&replace(name, arr), &mut out).unwrap_err();
            assert_eq!((e.row, e.column.as_str()), (1, name), "{e:?}");
        }
    }
}
