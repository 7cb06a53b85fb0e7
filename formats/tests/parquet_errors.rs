//! Files a reader must refuse, each with an error that says what is wrong and where.
//!
//! Foreign files are made with parquet's own `ArrowWriter` (not ours), so a file can carry
//! the wrong metadata, miss a column or hold a corrupt value.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, UInt8Array};
use arrow::datatypes::{DataType, Field, Schema};
use formats::flows::{FlowRow, FlowWriter};
use formats::meta::{KEY_SCHEMA_VERSION, MetaError, RecordType, RecordingMeta, SCHEMA_VERSION};
use formats::record::{FlowCounters, FlowKey, SynRecord, source};
use formats::recording::{RecordingError, WriteKind, WriterOptions};
use formats::syn::{Syn, SynReader, SynWriter, col};
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

fn rec(i: u8) -> SynRecord {
    let mut r = SynRecord::ZERO;
    r.ts_ns = 1_000 + u64::from(i);
    r.ip_version = 4;
    r.src_addr[..4].copy_from_slice(&[198, 51, 100, i]);
    r.dst_addr[..4].copy_from_slice(&[198, 51, 100, 250]);
    r.source = source::PCAP;
    r
}

/// Writes `batches` with parquet's plain writer, `kv` as metadata, `rows_per_group` rows per
/// row group.
fn write_foreign(path: &Path, batches: &[RecordBatch], kv: Vec<KeyValue>, rows_per_group: usize) {
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(kv))
        .set_max_row_group_row_count(Some(rows_per_group))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

fn syn_kv() -> Vec<KeyValue> {
    RecordingMeta::new(RecordType::Syn).to_key_values()
}

#[test]
fn wrong_record_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    let mut w = FlowWriter::create(
        &path,
        &RecordingMeta::new(RecordType::Flows),
        WriterOptions::default(),
    )
    .unwrap();
    let (key, _) = FlowKey::new(4, [0; 16], 1, [0; 16], 2);
    w.write(&FlowRow {
        interval_start_ns: 0,
        interval_end_ns: 1,
        key,
        counters: FlowCounters::default(),
    })
    .unwrap();
    w.close().unwrap();
    let e = SynReader::open(&path).unwrap_err();
    assert!(
        matches!(
            e,
            RecordingError::WrongRecordType {
                expected: RecordType::Syn,
                found: RecordType::Flows,
                ..
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("flows.parquet") && msg.contains("Flows"),
        "{msg}"
    );
}

#[test]
fn other_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.parquet");
    let mut kv = syn_kv();
    for e in &mut kv {
        if e.key == KEY_SCHEMA_VERSION {
            e.value = Some((SCHEMA_VERSION + 1).to_string());
        }
    }
    write_foreign(&path, &[Syn::encode(&[rec(1)], &()).unwrap()], kv, 100);
    let e = SynReader::open(&path).unwrap_err();
    match &e {
        RecordingError::Meta {
            cause:
                MetaError::UnsupportedVersion {
                    found, supported, ..
                },
            ..
        } => assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION)),
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.to_string().contains("schema version"), "{e}");
}

#[test]
fn parquet_without_synscope_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.parquet");
    write_foreign(
        &path,
        &[Syn::encode(&[rec(1)], &()).unwrap()],
        Vec::new(),
        100,
    );
    let e = SynReader::open(&path).unwrap_err();
    assert!(
        matches!(
            e,
            RecordingError::Meta {
                cause: MetaError::Missing {
                    key: KEY_SCHEMA_VERSION
                },
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn truncated_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.parquet");
    let mut w = SynWriter::create(
        &path,
        &RecordingMeta::new(RecordType::Syn),
        WriterOptions::default(),
    )
    .unwrap();
    for i in 0..50 {
        w.write(&rec(i)).unwrap();
    }
    w.close().unwrap();
    let full = std::fs::read(&path).unwrap();
    for keep in [0, 3, full.len() / 2, full.len() - 1] {
        std::fs::write(&path, &full[..keep]).unwrap();
        let e = SynReader::open(&path).unwrap_err();
        assert!(
            matches!(e, RecordingError::NotParquet { .. }),
            "{keep} bytes: {e:?}"
        );
        assert!(e.to_string().contains("cut.parquet"), "{e}");
    }
}

/// A writer that flushed and then died (no Drop, so no best-effort close) leaves row groups
/// on disk but no footer: the reader says so instead of returning nothing.
#[test]
fn killed_writer_leaves_a_file_without_footer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.parquet");
    let mut w = SynWriter::create(
        &path,
        &RecordingMeta::new(RecordType::Syn),
        WriterOptions::default(),
    )
    .unwrap();
    for i in 0..10 {
        w.write(&rec(i)).unwrap();
    }
    w.flush().unwrap();
    let flushed = std::fs::metadata(&path).unwrap().len();
    std::mem::forget(w);
    assert!(flushed > 4, "flush wrote the row group ({flushed} bytes)");
    let e = SynReader::open(&path).unwrap_err();
    assert!(matches!(e, RecordingError::NotParquet { .. }), "{e:?}");
}

#[test]
fn missing_or_retyped_column_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = Syn::encode(&[rec(1)], &()).unwrap();
    let schema = good.schema();

    // Without `ttl`.
    let path = dir.path().join("no_ttl.parquet");
    let idx = schema.index_of(col::TTL).unwrap();
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    let mut cols = good.columns().to_vec();
    fields.remove(idx);
    cols.remove(idx);
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    write_foreign(&path, &[b], syn_kv(), 100);
    match SynReader::open(&path).unwrap_err() {
        RecordingError::Schema { column, reason, .. } => {
            assert_eq!((column.as_str(), reason.as_str()), (col::TTL, "missing"))
        }
        other => panic!("unexpected {other:?}"),
    }

    // `ttl` as text.
    let path = dir.path().join("text_ttl.parquet");
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    let mut cols = good.columns().to_vec();
    fields[idx] = Arc::new(Field::new(col::TTL, DataType::Utf8, false));
    cols[idx] = Arc::new(StringArray::from(vec!["64"])) as ArrayRef;
    let b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    write_foreign(&path, &[b], syn_kv(), 100);
    let e = SynReader::open(&path).unwrap_err();
    assert!(
        matches!(&e, RecordingError::Schema { column, .. } if column == col::TTL),
        "{e:?}"
    );
}

/// A corrupt value in the third row group: opening works, that row group fails with its
/// number and row, the others read, and the streaming iterator stops at the error.
#[test]
fn corrupt_values_name_file_row_group_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<SynRecord> = (0..10).map(rec).collect();
    let cases: Vec<(&str, ArrayRef)> = vec![
        (
            col::SRC_IP,
            Arc::new(StringArray::from(vec![
                "198.51.100.0",
                "198.51.100.1",
                "198.51.100.2",
                "198.51.100.3",
                "198.51.100.4",
                "198.51.100.5",
                "198.51.100.6",
                "not an address",
                "198.51.100.8",
                "198.51.100.9",
            ])),
        ),
        (
            col::IP_VERSION,
            Arc::new(UInt8Array::from(vec![4, 4, 4, 4, 4, 4, 4, 5, 4, 4])),
        ),
        (
            col::DIRECTION,
            Arc::new(StringArray::from(
                (0..10)
                    .map(|i| if i == 7 { "inbound" } else { "unknown" })
                    .collect::<Vec<_>>(),
            )),
        ),
    ];
    for (name, arr) in cases {
        let good = Syn::encode(&rows, &()).unwrap();
        let idx = good.schema().index_of(name).unwrap();
        let mut cols = good.columns().to_vec();
        cols[idx] = arr;
        let bad = RecordBatch::try_new(good.schema(), cols).unwrap();
        let path = dir.path().join(format!("corrupt_{name}.parquet"));
        // 3 rows per group: row 7 is row 1 of group 2.
        write_foreign(&path, &[bad], syn_kv(), 3);
        let r = SynReader::open(&path).unwrap();
        assert_eq!(r.num_row_groups(), 4);
        assert_eq!(r.read_row_group(1).unwrap(), rows[3..6].to_vec());
        let e = r.read_row_group(2).unwrap_err();
        match &e {
            RecordingError::Corrupt { row_group, row, .. } => {
                assert_eq!((*row_group, *row), (2, 1), "{name}: {e}")
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("corrupt_{name}.parquet")) && msg.contains("row group 2"),
            "{msg}"
        );
        let streamed: Vec<_> = r.records().collect();
        assert_eq!(streamed.len(), 8, "{name}: 7 good rows then the error");
        assert!(streamed[..7].iter().all(Result::is_ok));
        assert!(streamed[7].is_err());
        assert!(matches!(
            r.read_row_group(4),
            Err(RecordingError::NoSuchRowGroup {
                index: 4,
                count: 4,
                ..
            })
        ));
    }
}

#[test]
fn missing_file_error_names_it() {
    let e = SynReader::open("/nonexistent/dir/x.parquet").unwrap_err();
    assert!(matches!(e, RecordingError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/dir/x.parquet"), "{e}");
}
