//! Real traffic through the recordings: every capture in the shared corpus
//! (`testkit::shared_pcaps`) is ingested with `formats::pcap`, its SYN records and flow counters
//! written to Parquet and read back bit-identical; the files then go through the Python checker.
//!
//! Without the corpus (or, for the checker, Python with pyarrow and polars) the tests are
//! reported as ignored; CI's `SYNSCOPE_REQUIRE_*` switches make that a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use formats::flows::{FlowReader, FlowRow, FlowWriter};
use formats::meta::{RecordType, RecordingMeta};
use formats::pcap::Collect;
use formats::record::SynRecord;
use formats::recording::WriterOptions;
use formats::syn::{SynReader, SynWriter};

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            captures(&p, out);
        } else if p
            .extension()
            .is_some_and(|e| matches!(e.to_str(), Some("pcap" | "pcapng" | "cap")))
        {
            out.push(p);
        }
    }
}

testkit::main! {
    real_captures_round_trip_through_parquet needs [testkit::SHARED_PCAPS],
    corpus_recordings_pass_the_python_checker needs [testkit::SHARED_PCAPS, testkit::PYTHON],
}

fn real_captures_round_trip_through_parquet() {
    round_trip_corpus();
}

fn corpus_recordings_pass_the_python_checker() {
    let (_tmp, syn_path, flows_path) = round_trip_corpus();
    let script = testkit::workspace_root().join("tests/python/check_recording.py");
    let out = Command::new("python3")
        .arg(script)
        .args([&syn_path, &flows_path])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(out.status.success(), "checker failed:\n{text}");
}

/// Writes the corpus's records and flows to a recording, checks they read back identical,
/// and returns the folder holding it with the SYN and flow file paths.
fn round_trip_corpus() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = testkit::require_shared_pcaps();
    let mut files = Vec::new();
    captures(&dir, &mut files);
    assert!(!files.is_empty(), "no captures under {}", dir.display());

    let mut records: Vec<SynRecord> = Vec::new();
    let mut flows: Vec<FlowRow> = Vec::new();
    let mut unreadable = 0;
    for f in &files {
        let mut sink = Collect::default();
        let ok = formats::pcap::open(f)
            .and_then(|mut r| r.run(&mut sink))
            .is_ok();
        if !ok {
            unreadable += 1;
            continue;
        }
        // One interval per capture, spanning its packets.
        let span = sink.flows.values().flat_map(|c| {
            [c.a_to_b, c.b_to_a]
                .into_iter()
                .filter(|d| d.packets > 0)
                .flat_map(|d| [d.first_seen_ns, d.last_seen_ns])
        });
        let (start, end) = span.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
        let mut keys: Vec<_> = sink.flows.into_iter().collect();
        keys.sort_by_key(|(k, _)| *k);
        flows.extend(keys.into_iter().map(|(key, counters)| FlowRow {
            interval_start_ns: start.min(end),
            interval_end_ns: end,
            key,
            counters,
        }));
        records.extend(sink.records);
    }
    eprintln!(
        "{} captures ({unreadable} unreadable by formats::pcap): {} SYN records, {} flows",
        files.len(),
        records.len(),
        flows.len()
    );
    assert!(records.len() > 100 && flows.len() > 100);

    let tmp = tempfile::tempdir().unwrap();
    let syn_path = tmp.path().join("corpus.parquet");
    let flows_path = tmp.path().join("corpus.flows.parquet");
    let opts = WriterOptions {
        row_group_rows: 1000,
        ..WriterOptions::default()
    };
    let mut meta = RecordingMeta::new(RecordType::Syn);
    meta.interface = dir.display().to_string();
    meta.clock_source = "pcap".into();
    let mut w = SynWriter::create(&syn_path, &meta, opts).unwrap();
    w.write_all(&records).unwrap();
    w.close().unwrap();
    meta.record_type = RecordType::Flows;
    let mut w = FlowWriter::create(&flows_path, &meta, opts).unwrap();
    w.write_all(&flows).unwrap();
    w.close().unwrap();

    let back: Vec<SynRecord> = SynReader::open(&syn_path)
        .unwrap()
        .records()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(back == records, "SYN records differ after the round trip");
    let back: Vec<FlowRow> = FlowReader::open(&flows_path)
        .unwrap()
        .records()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(back == flows, "flow rows differ after the round trip");

    (tmp, syn_path, flows_path)
}
