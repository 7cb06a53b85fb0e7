//! A writer that dies after flushing leaves a file readers refuse; `recover` makes it a
//! complete recording of every row up to the last flush.

use std::io::Write;
use std::path::Path;

use formats::flows::{FlowReader, FlowRow, FlowWriter};
use formats::meta::{RecordType, RecordingMeta};
use formats::record::{FlowCounters, FlowKey, SynRecord, source};
use formats::recording::{RecordingError, WriterOptions};
use formats::recovery::{Recovery, checkpoint_path, recover};
use formats::syn::{SynReader, SynWriter};

fn rec(i: u32) -> SynRecord {
    let mut r = SynRecord::ZERO;
    r.ts_ns = 1_763_700_000_000_000_000 + u64::from(i);
    r.ip_version = 4;
    r.src_addr[..4].copy_from_slice(&i.to_be_bytes());
    r.dst_addr[..4].copy_from_slice(&[198, 51, 100, 1]);
    r.seq = i;
    r.source = source::TC;
    r
}

fn opts() -> WriterOptions {
    WriterOptions {
        row_group_rows: 40,
        ..WriterOptions::default()
    }
}

/// Simulates a crash: the writer vanishes without Drop, and the row group it was writing
/// leaves `garbage` bytes after the last flush.
fn crash<W>(w: W, path: &Path, garbage: usize) {
    std::mem::forget(w);
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(&vec![0xa5; garbage]).unwrap();
}

#[test]
fn crashed_writer_recovers_up_to_the_last_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("syn.parquet");
    let meta = RecordingMeta::new(RecordType::Syn);
    let mut w = SynWriter::create(&path, &meta, opts()).unwrap();
    for i in 0..100 {
        w.write(&rec(i)).unwrap();
    }
    w.flush().unwrap(); // groups of 40, 40, 20
    for i in 100..150 {
        w.write(&rec(i)).unwrap();
    }
    w.flush_and_sync().unwrap(); // 40, 10
    for i in 150..170 {
        w.write(&rec(i)).unwrap(); // never flushed: lost
    }
    assert!(checkpoint_path(&path).exists());
    crash(w, &path, 777);
    assert!(matches!(
        SynReader::open(&path),
        Err(RecordingError::NotParquet { .. })
    ));

    let got = recover(&path).unwrap();
    assert_eq!(
        got,
        Recovery {
            was_complete: false,
            rows: 150,
            row_groups: 5,
            discarded_bytes: 777
        }
    );
    assert!(!checkpoint_path(&path).exists());
    let r = SynReader::open(&path).unwrap();
    assert_eq!(r.meta(), &meta);
    let rows: Vec<SynRecord> = r.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(rows, (0..150).map(rec).collect::<Vec<_>>());

    // Recovering again is harmless.
    let again = recover(&path).unwrap();
    assert!(again.was_complete);
    assert_eq!((again.rows, again.row_groups), (150, 5));
}

#[test]
fn flow_recordings_recover_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.parquet");
    let mut w = FlowWriter::create(&path, &RecordingMeta::new(RecordType::Flows), opts()).unwrap();
    let row = |i: u16| {
        let (key, _) = FlowKey::new(6, [1; 16], i, [2; 16], 443);
        FlowRow {
            interval_start_ns: 0,
            interval_end_ns: 5,
            key,
            counters: FlowCounters::default(),
        }
    };
    let rows: Vec<FlowRow> = (0..60).map(row).collect();
    w.write_all(&rows).unwrap();
    w.flush().unwrap();
    w.write(&row(99)).unwrap();
    crash(w, &path, 0);
    let got = recover(&path).unwrap();
    assert_eq!((got.rows, got.row_groups), (60, 2));
    let r = FlowReader::open(&path).unwrap();
    let back: Vec<FlowRow> = r.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, rows);
}

#[test]
fn closed_file_has_no_checkpoint_and_needs_no_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("syn.parquet");
    let mut w = SynWriter::create(&path, &RecordingMeta::new(RecordType::Syn), opts()).unwrap();
    w.write(&rec(1)).unwrap();
    w.flush().unwrap();
    assert!(checkpoint_path(&path).exists());
    w.write(&rec(2)).unwrap();
    w.close().unwrap();
    assert!(!checkpoint_path(&path).exists());
    let before = std::fs::read(&path).unwrap();
    let got = recover(&path).unwrap();
    assert!(got.was_complete);
    assert_eq!((got.rows, got.discarded_bytes), (2, 0));
    assert_eq!(std::fs::read(&path).unwrap(), before, "file untouched");
}

#[test]
fn nothing_to_recover_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("syn.parquet");
    let mut w = SynWriter::create(&path, &RecordingMeta::new(RecordType::Syn), opts()).unwrap();
    w.write(&rec(1)).unwrap();
    crash(w, &path, 100);
    let e = recover(&path).unwrap_err();
    assert!(matches!(e, RecordingError::Recover { .. }), "{e:?}");
    assert!(e.to_string().contains("before its first flush"), "{e}");
}

#[test]
fn checkpoint_that_does_not_match_the_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("syn.parquet");
    let mut w = SynWriter::create(&path, &RecordingMeta::new(RecordType::Syn), opts()).unwrap();
    for i in 0..30 {
        w.write(&rec(i)).unwrap();
    }
    w.flush().unwrap();
    crash(w, &path, 0);
    // The file lost its tail (e.g. power loss without flush_and_sync).
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let e = recover(&path).unwrap_err();
    assert!(e.to_string().contains("the checkpoint covers"), "{e}");
    // Not a checkpoint at all.
    std::fs::write(checkpoint_path(&path), b"hello").unwrap();
    let e = recover(&path).unwrap_err();
    assert!(matches!(e, RecordingError::Recover { .. }), "{e:?}");
}
