//! The Parquet recording of payload records: one row per [`PayloadRecord`], the TCP segments
//! p0f's HTTP module reads, beside a SYN recording (`day.parquet` -> `day.payload.parquet`,
//! [`crate::files::payload_path_for`]).
//!
//! Why a file of its own: a payload row is up to 8 KiB of head bytes where a SYN row is about
//! 15 bytes on disk, and few segments are kept (only those `formats::pcap::HttpFilter` picks:
//! the first 8 KiB of each direction of flows that start like HTTP), so putting them in the
//! SYN file would give every SYN row a column that is nearly always empty, and every notebook
//! that reads SYN rows would have to skip it. A reader that does not know the file (an older
//! `analyze`, a notebook) simply does not open it.
//!
//! Order: the p0f engine's HTTP state depends on where each segment falls among the SYN
//! records (a SYN for a connection resets it, a response completes what a request began), so
//! each row carries `syn_rows_before`, the number of rows of the SYN recording that come
//! before the segment in capture order. Timestamps cannot say it: a capture's packets need not
//! be in time order, several inputs are concatenated, and equal times are common in coarse
//! captures. Rows are written with `syn_rows_before` never decreasing; replay checks that.
//!
//! Columns (documented with units in `formats/README.md`): addresses and enums as text, the
//! head as `binary` of exactly `head_len` bytes (so `head_len` is not a column of its own),
//! encapsulation as the SYN recording has it. Nothing is derived: every column is read back,
//! and a row rebuilds the record bit for bit.

use std::fs::File;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, BinaryArray, RecordBatch, StringArray, TimestampNanosecondArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimestampNanosecondType, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};
use arrow::error::ArrowError;
use record::{PAYLOAD_HEAD_MAX, PayloadRecord, direction, payload_side};

use crate::meta::RecordType;
use crate::recording::columns::{
    EncapColumns, Endpoints, addr_array, encap_arrays, get, no_nulls, prim, text, ts_from_i64,
    ts_to_i64,
};
use crate::recording::{
    DecodeError, RecordKind, RecordingReader, RecordingWriter, WriteKind, WriterOptions,
};

/// The payload recording type (see [`RecordKind`]).
#[derive(Clone, Copy, Debug)]
pub struct Payload;

/// Streaming writer of payload recordings.
pub type PayloadWriter<W = File> = RecordingWriter<Payload, W>;

/// Reader of payload recordings.
pub type PayloadReader = RecordingReader<Payload>;

/// Rows per row group of a payload recording at most: a row holds up to
/// [`PAYLOAD_HEAD_MAX`] bytes of head, so 1024 rows keep a row group (which the writer holds
/// in memory, and a reader decodes at once) within about 8 MiB, where the SYN recording's
/// 65,536 rows would allow half a gigabyte.
pub const ROW_GROUP_ROWS: usize = 1024;

/// `options` with row groups bounded to [`ROW_GROUP_ROWS`] rows.
pub fn writer_options(options: WriterOptions) -> WriterOptions {
    WriterOptions {
        row_group_rows: options.row_group_rows.min(ROW_GROUP_ROWS),
        ..options
    }
}

/// One row: a payload record and its place among the SYN records of its recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadRow {
    /// Rows of the SYN recording that come before this segment in capture order: replay hands
    /// the segment to the engine after that many SYN records and before the next one.
    pub syn_rows_before: u64,
    /// The segment.
    pub record: PayloadRecord,
}

/// Column names, in schema order.
pub mod col {
    pub const TS: &str = "ts";
    /// [`super::PayloadRow::syn_rows_before`].
    pub const SYN_ROWS_BEFORE: &str = "syn_rows_before";
    pub const IFINDEX: &str = "ifindex";
    pub const DIRECTION: &str = crate::recording::columns::DIRECTION;
    /// [`record::payload_side`] by name.
    pub const SIDE: &str = "side";
    pub const IP_VERSION: &str = crate::recording::columns::IP_VERSION;
    pub const SRC_IP: &str = crate::recording::columns::SRC_IP;
    pub const DST_IP: &str = crate::recording::columns::DST_IP;
    pub const SRC_PORT: &str = crate::recording::columns::SRC_PORT;
    pub const DST_PORT: &str = crate::recording::columns::DST_PORT;
    pub const SEQ: &str = "seq";
    pub const TCP_FLAGS: &str = "tcp_flags";
    pub const PAYLOAD_LEN: &str = "payload_len";
    /// The head bytes, exactly `head_len` of them.
    pub const HEAD: &str = "head";
    pub const ENCAP: &str = "encap";
    pub const ENCAP_ID: &str = "encap_id";
    pub const ENCAPS: &str = "encaps";
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use crate::recording::timestamp_type;
    let f = |name: &str, t: DataType| Field::new(name, t, false);
    Arc::new(Schema::new(vec![
        f(col::TS, timestamp_type()),
        f(col::SYN_ROWS_BEFORE, DataType::UInt64),
        f(col::IFINDEX, DataType::UInt32),
        f(col::DIRECTION, DataType::Utf8),
        f(col::SIDE, DataType::Utf8),
        f(col::IP_VERSION, DataType::UInt8),
        f(col::SRC_IP, DataType::Utf8),
        f(col::DST_IP, DataType::Utf8),
        f(col::SRC_PORT, DataType::UInt16),
        f(col::DST_PORT, DataType::UInt16),
        f(col::SEQ, DataType::UInt32),
        f(col::TCP_FLAGS, DataType::UInt16),
        f(col::PAYLOAD_LEN, DataType::UInt16),
        f(col::HEAD, DataType::Binary),
        f(col::ENCAP, DataType::Utf8),
        Field::new(col::ENCAP_ID, DataType::UInt32, true),
        f(col::ENCAPS, DataType::UInt8),
    ]))
});

/// The Arrow schema of a payload recording.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

impl WriteKind for Payload {
    type Row = PayloadRow;
    type Context = ();

    const DICTIONARY_COLUMNS: &'static [&'static str] = &[
        col::DIRECTION,
        col::SIDE,
        col::SRC_IP,
        col::DST_IP,
        col::ENCAP,
        col::ENCAP_ID,
    ];
    /// Both grow slowly row to row.
    const DELTA_COLUMNS: &'static [&'static str] = &[col::TS, col::SYN_ROWS_BEFORE];

    fn schema() -> SchemaRef {
        schema()
    }

    /// A record is stored faithfully when it is canonical
    /// ([`PayloadRecord::is_canonical`]: nothing is lost by keeping only `head_len` bytes of
    /// head and the address bytes in use), its enums have names, and its time fits Arrow's
    /// i64.
    fn check(row: &PayloadRow) -> Result<(), String> {
        let r = &row.record;
        if !r.is_canonical() {
            return Err("record is not canonical (see record::PayloadRecord::is_canonical)".into());
        }
        if direction::name(r.direction).is_none() {
            return Err(format!("unknown direction value {}", r.direction));
        }
        if payload_side::name(r.side).is_none() {
            return Err(format!("unknown side value {}", r.side));
        }
        if ts_to_i64(r.ts_ns).is_none() {
            return Err(format!("timestamp {} ns is past year 2262", r.ts_ns));
        }
        Ok(())
    }

    fn encode(rows: &[PayloadRow], (): &()) -> Result<RecordBatch, ArrowError> {
        fn col<T, A: From<Vec<T>> + Array + 'static>(
            rows: &[PayloadRow],
            f: impl Fn(&PayloadRecord) -> T,
        ) -> ArrayRef {
            Arc::new(A::from(
                rows.iter().map(|r| f(&r.record)).collect::<Vec<T>>(),
            ))
        }
        let names = |f: fn(u8) -> Option<&'static str>, pick: fn(&PayloadRecord) -> u8| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| f(pick(&r.record)).unwrap_or("invalid")),
            )) as ArrayRef
        };
        let ts = TimestampNanosecondArray::from(
            rows.iter()
                .map(|r| ts_to_i64(r.record.ts_ns).unwrap_or(i64::MAX))
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC");
        let [encap, encap_id] = encap_arrays(rows, |r| {
            let r = &r.record;
            (r.encap_kind, r.encap_flags, r.encap_id)
        });
        let columns: Vec<ArrayRef> = vec![
            Arc::new(ts),
            Arc::new(UInt64Array::from(
                rows.iter().map(|r| r.syn_rows_before).collect::<Vec<_>>(),
            )),
            col::<_, UInt32Array>(rows, |r| r.ifindex),
            names(direction::name, |r| r.direction),
            names(payload_side::name, |r| r.side),
            col::<_, UInt8Array>(rows, |r| r.ip_version),
            addr_array(rows, |r| (r.record.ip_version, &r.record.src_addr))?,
            addr_array(rows, |r| (r.record.ip_version, &r.record.dst_addr))?,
            col::<_, UInt16Array>(rows, |r| r.src_port),
            col::<_, UInt16Array>(rows, |r| r.dst_port),
            col::<_, UInt32Array>(rows, |r| r.seq),
            col::<_, UInt16Array>(rows, |r| r.tcp_flags),
            col::<_, UInt16Array>(rows, |r| r.payload_len),
            Arc::new(BinaryArray::from_iter_values(
                rows.iter().map(|r| r.record.head()),
            )),
            encap,
            encap_id,
            col::<_, UInt8Array>(rows, |r| r.encaps),
        ];
        RecordBatch::try_new(schema(), columns)
    }
}

impl RecordKind for Payload {
    const RECORD_TYPE: RecordType = RecordType::Payload;
    const RAW_COLUMNS: &'static [&'static str] = &[
        col::TS,
        col::SYN_ROWS_BEFORE,
        col::IFINDEX,
        col::DIRECTION,
        col::SIDE,
        col::IP_VERSION,
        col::SRC_IP,
        col::DST_IP,
        col::SRC_PORT,
        col::DST_PORT,
        col::SEQ,
        col::TCP_FLAGS,
        col::PAYLOAD_LEN,
        col::HEAD,
        col::ENCAP,
        col::ENCAP_ID,
        col::ENCAPS,
    ];
    /// The file type is younger than every column: all are in every version that has it.
    const ADDED_COLUMNS: &'static [(&'static str, u32)] = &[];

    fn decode(batch: &RecordBatch, out: &mut Vec<PayloadRow>) -> Result<(), DecodeError> {
        let ts = prim::<TimestampNanosecondType>(batch, col::TS)?;
        let before = prim::<UInt64Type>(batch, col::SYN_ROWS_BEFORE)?;
        let ifindex = prim::<UInt32Type>(batch, col::IFINDEX)?;
        let ends = Endpoints::read(batch)?;
        let side = text(batch, col::SIDE)?;
        let seq = prim::<UInt32Type>(batch, col::SEQ)?;
        let tcp_flags = prim::<UInt16Type>(batch, col::TCP_FLAGS)?;
        let payload_len = prim::<UInt16Type>(batch, col::PAYLOAD_LEN)?;
        let head = get::<BinaryArray>(batch, col::HEAD)?;
        no_nulls(head, col::HEAD)?;
        // Every file of this type is version 2 or later: `read` finds the columns.
        let encap = EncapColumns::read(batch, col::ENCAP, col::ENCAP_ID)?;
        let encaps = prim::<UInt8Type>(batch, col::ENCAPS)?;

        out.reserve(batch.num_rows());
        for i in 0..batch.num_rows() {
            let e = ends.at(i)?;
            let mut r = PayloadRecord::ZERO;
            r.ts_ns = ts_from_i64(ts.value(i), i, col::TS)?;
            r.ifindex = ifindex.value(i);
            r.direction = e.direction;
            r.side = payload_side::from_name(side.value(i)).ok_or_else(|| {
                DecodeError::new(i, col::SIDE, format!("unknown side {:?}", side.value(i)))
            })?;
            r.ip_version = e.ip_version;
            (r.src_addr, r.dst_addr) = (e.src_addr, e.dst_addr);
            (r.src_port, r.dst_port) = (e.src_port, e.dst_port);
            r.seq = seq.value(i);
            r.tcp_flags = tcp_flags.value(i);
            r.payload_len = payload_len.value(i);
            let h = head.value(i);
            if h.len() > PAYLOAD_HEAD_MAX {
                return Err(DecodeError::new(
                    i,
                    col::HEAD,
                    format!("{} head bytes, at most {PAYLOAD_HEAD_MAX}", h.len()),
                ));
            }
            if h.len() > usize::from(r.payload_len) {
                return Err(DecodeError::new(
                    i,
                    col::HEAD,
                    format!(
                        "{} head bytes, more than the segment's payload_len {}",
                        h.len(),
                        r.payload_len
                    ),
                ));
            }
            r.set_head(h);
            (r.encap_kind, r.encap_flags, r.encap_id) = encap.at(i, col::ENCAP)?;
            r.encaps = encaps.value(i);
            if !r.is_canonical() {
                return Err(DecodeError::new(
                    i,
                    col::ENCAPS,
                    "row is not a canonical record (encapsulation fields disagree)",
                ));
            }
            out.push(PayloadRow {
                syn_rows_before: before.value(i),
                record: r,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::RecordingMeta;
    use crate::recording::RecordingError;
    use record::tcp_flag;

    fn sample(i: u16) -> PayloadRow {
        let mut r = PayloadRecord::ZERO;
        r.ts_ns = 1_700_000_000_000_000_000 + u64::from(i);
        r.ip_version = 4;
        r.src_addr[..4].copy_from_slice(&[198, 51, 100, 7]);
        r.dst_addr[..4].copy_from_slice(&[198, 51, 100, 8]);
        r.src_port = 40000;
        r.dst_port = 80;
        r.seq = 0xfedc_ba98 ^ u32::from(i);
        r.tcp_flags = tcp_flag::ACK | tcp_flag::PSH;
        let head = format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n");
        r.set_head(head.as_bytes());
        r.payload_len = r.head_len + i;
        r.side = payload_side::CLIENT;
        r.direction = direction::INGRESS;
        r.ifindex = 3;
        PayloadRow {
            syn_rows_before: u64::from(i) * 2,
            record: r,
        }
    }

    /// Rows of every shape a record can take: IPv4 and IPv6, each side and direction, inside
    /// an encapsulation with and without an identifier, an empty head, a full 8 KiB head of
    /// every byte value, and a short head (fewer bytes than the segment's length).
    fn varied() -> Vec<PayloadRow> {
        let mut rows: Vec<PayloadRow> = (0..4).map(sample).collect();
        let mut v6 = sample(10);
        v6.record.ip_version = 6;
        v6.record.src_addr = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        v6.record.dst_addr = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        v6.record.side = payload_side::SERVER;
        v6.record.direction = direction::EGRESS;
        rows.push(v6);
        let mut vxlan = sample(11);
        (vxlan.record.encap_kind, vxlan.record.encaps) = (record::encap::VXLAN, 2);
        (vxlan.record.encap_flags, vxlan.record.encap_id) = (record::encap::flag::ID, 4242);
        rows.push(vxlan);
        let mut gre = sample(12);
        (gre.record.encap_kind, gre.record.encaps) = (record::encap::GRE, 1);
        rows.push(gre);
        let mut full = sample(13);
        let bytes: Vec<u8> = (0..PAYLOAD_HEAD_MAX).map(|b| (b * 7 % 256) as u8).collect();
        full.record.set_head(&bytes);
        full.record.payload_len = u16::MAX;
        full.record.side = payload_side::UNKNOWN;
        rows.push(full);
        let mut empty = sample(14);
        empty.record.set_head(b"");
        empty.record.payload_len = 0;
        rows.push(empty);
        rows
    }

    #[test]
    fn batch_round_trip_is_exact() {
        let rows = varied();
        assert!(rows.iter().all(|r| Payload::check(r).is_ok()));
        let batch = Payload::encode(&rows, &()).unwrap();
        assert_eq!(batch.schema(), schema());
        let heads = get::<BinaryArray>(&batch, col::HEAD).unwrap();
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(heads.value(i).len(), usize::from(r.record.head_len));
        }
        let src = get::<StringArray>(&batch, col::SRC_IP).unwrap();
        assert_eq!(src.value(0), "198.51.100.7");
        assert_eq!(src.value(4), "2001:db8::1");
        let sides = get::<StringArray>(&batch, col::SIDE).unwrap();
        assert_eq!((sides.value(0), sides.value(4)), ("client", "server"));
        let mut back = Vec::new();
        Payload::decode(&batch, &mut back).unwrap();
        assert_eq!(back, rows);
    }

    /// Through a real file, with row groups of 3 rows: the reader gives the rows back in
    /// order, and the file says what it holds.
    #[test]
    fn file_round_trip_is_exact() {
        let rows = varied();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.parquet");
        let meta = RecordingMeta::new(RecordType::Payload);
        let options = WriterOptions {
            row_group_rows: 3,
            ..WriterOptions::default()
        };
        let mut w = PayloadWriter::create(&path, &meta, options).unwrap();
        w.write_all(&rows).unwrap();
        let s = w.close().unwrap();
        assert_eq!(
            (s.rows, s.row_groups),
            (rows.len() as u64, rows.len().div_ceil(3))
        );
        let r = PayloadReader::open(&path).unwrap();
        assert_eq!(r.meta().record_type, RecordType::Payload);
        let back: Vec<PayloadRow> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(back, rows);
        // A SYN reader refuses the file by its type, not by failing on a column.
        let e = crate::syn::SynReader::open(&path).unwrap_err();
        assert!(matches!(e, RecordingError::WrongRecordType { .. }), "{e}");
    }

    #[test]
    fn row_groups_are_bounded() {
        assert_eq!(
            writer_options(WriterOptions::default()).row_group_rows,
            ROW_GROUP_ROWS
        );
        let small = WriterOptions {
            row_group_rows: 7,
            ..WriterOptions::default()
        };
        assert_eq!(writer_options(small).row_group_rows, 7);
    }

    #[test]
    fn writer_refuses_unstorable_rows_and_stays_usable() {
        let meta = RecordingMeta::new(RecordType::Payload);
        let mut w = PayloadWriter::new(Vec::new(), &meta, WriterOptions::default()).unwrap();
        let bad: [fn(&mut PayloadRecord); 8] = [
            |r| r.direction = 9,
            |r| r.side = 7,
            |r| r.src_addr[9] = 1,
            |r| r.ts_ns = u64::MAX,
            |r| r.payload_len = r.head_len - 1,
            |r| r.head[usize::from(r.head_len)] = 1,
            |r| r._pad0[0] = 1,
            |r| r.encap_id = 5,
        ];
        for (i, spoil) in bad.iter().enumerate() {
            let mut row = sample(1);
            spoil(&mut row.record);
            assert!(
                matches!(
                    w.write(&row),
                    Err(RecordingError::Unwritable { row: 0, .. })
                ),
                "case {i}"
            );
        }
        w.write(&sample(1)).unwrap();
        let s = w.close().unwrap();
        assert_eq!((s.rows, s.row_groups), (1, 1));
    }

    /// A bad value in a file is a typed error naming its row and column, never a panic or a
    /// silently different record.
    #[test]
    fn decode_rejects_corrupt_values() {
        let rows = vec![sample(1), sample(2)];
        let good = Payload::encode(&rows, &()).unwrap();
        let replace = |name: &str, arr: ArrayRef| {
            let idx = schema().index_of(name).unwrap();
            let mut cols = good.columns().to_vec();
            cols[idx] = arr;
            RecordBatch::try_new(schema(), cols).unwrap()
        };
        let head0 = rows[0].record.head().to_vec();
        let too_long = vec![b'x'; PAYLOAD_HEAD_MAX + 1];
        // Longer than row 1's payload_len (its head plus 2).
        let past_len = vec![b'x'; usize::from(rows[1].record.payload_len) + 1];
        let cases: Vec<(&str, ArrayRef)> = vec![
            (
                col::SRC_IP,
                Arc::new(StringArray::from(vec!["198.51.100.7", "not-an-ip"])),
            ),
            (
                col::DST_IP,
                Arc::new(StringArray::from(vec!["198.51.100.8", "2001:db8::1"])),
            ),
            (
                col::DIRECTION,
                Arc::new(StringArray::from(vec!["ingress", "sideways"])),
            ),
            (
                col::SIDE,
                Arc::new(StringArray::from(vec!["client", "both"])),
            ),
            (
                col::HEAD,
                Arc::new(BinaryArray::from_iter_values([&head0[..], &too_long[..]])),
            ),
            (
                col::HEAD,
                Arc::new(BinaryArray::from_iter_values([&head0[..], &past_len[..]])),
            ),
            (
                col::TS,
                Arc::new(TimestampNanosecondArray::from(vec![1, -5]).with_timezone("UTC")),
            ),
            (
                col::ENCAP,
                Arc::new(StringArray::from(vec!["none", "vxlan-ng"])),
            ),
            // A tunnel kind with no depth is not a record any producer makes.
            (col::ENCAP, Arc::new(StringArray::from(vec!["none", "gre"]))),
        ];
        for (name, arr) in cases {
            let mut out = Vec::new();
            let e = Payload::decode(&replace(name, arr), &mut out).unwrap_err();
            let column = if name == col::ENCAP && e.column == col::ENCAPS {
                col::ENCAP
            } else {
                e.column.as_str()
            };
            assert_eq!((e.row, column), (1, name), "{e:?}");
        }
        // A null where none may be.
        let heads = BinaryArray::from(vec![Some(&head0[..]), None]);
        let idx = schema().index_of(col::HEAD).unwrap();
        let mut cols = good.columns().to_vec();
        cols[idx] = Arc::new(heads);
        let loose = Schema::new(
            schema()
                .fields()
                .iter()
                .map(|f| {
                    let f = f.as_ref().clone();
                    if f.name() == col::HEAD {
                        f.with_nullable(true)
                    } else {
                        f
                    }
                })
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(Arc::new(loose), cols).unwrap();
        let e = Payload::decode(&batch, &mut Vec::new()).unwrap_err();
        assert_eq!((e.row, e.column.as_str()), (1, col::HEAD));
    }
}
