//! Throughput check of the p0f engine (ignored by default: it needs a large capture).
//!
//! `SYNSCOPE_P0F_BENCH_PCAP=big.pcap cargo test --release -p p0f --test throughput -- \
//!  --ignored --nocapture` ingests the capture into memory, then times the engine alone and
//! the engine plus p0f log-line formatting, and (when p0f is installed) times
//! `p0f -r big.pcap -o LOG` on the same file for comparison.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use p0f::log::write_p0f_line;
use p0f::{Database, Engine};
use record::SynRecord;

#[test]
#[ignore = "needs SYNSCOPE_P0F_BENCH_PCAP"]
fn p0f_engine_throughput() {
    // Run on request only (`--ignored`): without its capture it fails rather than pass empty.
    let path = std::env::var_os("SYNSCOPE_P0F_BENCH_PCAP")
        .map(PathBuf::from)
        .expect("set SYNSCOPE_P0F_BENCH_PCAP to a large capture");
    let mut records: Vec<SynRecord> = Vec::new();
    let t = Instant::now();
    formats::pcap::open(&path)
        .and_then(|mut r| r.run(&mut records))
        .unwrap_or_else(|e| panic!("{e}"));
    let ingest = t.elapsed();
    let db = Arc::new(Database::embedded().unwrap_or_else(|e| panic!("{e}")));

    let mut engine = Engine::new(Arc::clone(&db));
    let mut events = Vec::with_capacity(16);
    let mut n_events = 0usize;
    let t = Instant::now();
    for r in &records {
        events.clear();
        engine.process(r, &mut events);
        n_events += events.len();
    }
    let engine_only = t.elapsed();

    let mut engine = Engine::new(Arc::clone(&db));
    let mut out = std::io::BufWriter::new(Vec::with_capacity(records.len() * 200));
    let t = Instant::now();
    for r in &records {
        events.clear();
        engine.process(r, &mut events);
        for ev in &events {
            write_p0f_line(&db, ev, &mut out).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let _ = out.flush();
    let with_lines = t.elapsed();

    let rate = |d: std::time::Duration| records.len() as f64 / d.as_secs_f64();
    eprintln!(
        "{} records, {n_events} events; ingest {:.2?}; engine {:.2?} ({:.0} rec/s); engine+lines {:.2?} ({:.0} rec/s)",
        records.len(),
        ingest,
        engine_only,
        rate(engine_only),
        with_lines,
        rate(with_lines)
    );
    let log = std::env::temp_dir().join(format!("p0f-bench-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let t = Instant::now();
    let ran = Command::new("p0f")
        .env("TZ", "UTC")
        .arg("-r")
        .arg(&path)
        .arg("-o")
        .arg(&log)
        .output();
    let p0f_time = t.elapsed();
    let _ = std::fs::remove_file(&log);
    match ran {
        Ok(o) if o.status.success() => eprintln!(
            "p0f -r: {p0f_time:.2?}; ingest+engine+lines is {:.1}x faster",
            p0f_time.as_secs_f64() / (ingest + with_lines).as_secs_f64()
        ),
        _ => eprintln!("p0f not run"),
    }
}
