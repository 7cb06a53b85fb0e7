//! The first stages of `analyze`'s capture replay alone, for `bench/analyze.sh`: how long a
//! pcap (or pcapng) file takes to get through the same reader threads before any
//! fingerprinting.
//!
//! usage: pcap_stages FILE.pcap THREADS STAGE
//!   STAGE `read`:  every window read with positioned reads (the copy out of the page cache)
//!                  and framed into packet records, as `analyze`'s reader threads do;
//!   STAGE `parse`: the same, and every packet parsed (SYN records kept, no flow table).
//!
//! Each of THREADS threads takes every THREADS-th window of [`Windows`], as `analyze` does.
//! Prints the bytes of packet records framed and the packets parsed to stdout.
//! The stages tell what a full run could at best take on this machine: `analyze` adds the
//! flow table, the fingerprinting engine, rendering and the summary on the same cores.

use std::fs::File;
use std::process::ExitCode;

use formats::pcap::{self, IngestStats, WINDOW_SIZE, Windows};
use record::SynRecord;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, threads, stage] = args.as_slice() else {
        return Err("usage: pcap_stages FILE.pcap THREADS read|parse".into());
    };
    let threads: usize = threads
        .parse()
        .map_err(|e| format!("THREADS {threads:?}: {e}"))?;
    let parse = match stage.as_str() {
        "read" => false,
        "parse" => true,
        other => return Err(format!("unknown stage {other:?} (read or parse)")),
    };
    let path = std::path::Path::new(path);
    let reader = pcap::open(path).map_err(|e| e.to_string())?;
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let windows = Windows::new(&reader, file, WINDOW_SIZE)
        .map_err(|e| e.to_string())?
        .ok_or("not a capture in a regular file")?;
    let threads = threads.clamp(1, windows.len().max(1));
    let totals = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|first| {
                let windows = &windows;
                s.spawn(move || stage_run(windows, first, threads, parse))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a reader thread panicked".to_string()))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut framed = 0;
    let mut stats = IngestStats::default();
    for t in totals {
        let (f, s) = t.map_err(|e| e.to_string())?;
        framed += f;
        stats.merge(&s);
    }
    println!(
        "record bytes framed {framed} packets parsed {} syn {} syn_ack {}",
        stats.packets, stats.syn, stats.syn_ack
    );
    Ok(())
}

/// Windows `first`, `first + step`, …: read and framed, and parsed when `parse`.
fn stage_run(
    windows: &Windows,
    first: usize,
    step: usize,
    parse: bool,
) -> Result<(u64, IngestStats), pcap::PcapError> {
    let mut buffer = Vec::new();
    let mut framed = 0;
    let mut stats = IngestStats::default();
    let mut records: Vec<SynRecord> = Vec::new();
    for k in (first..windows.len()).step_by(step) {
        let chunk = match windows.read(k, buffer) {
            Ok(c) => c,
            Err(e) => {
                // Release the windows after this one, as `analyze` does, then report.
                (k..windows.len())
                    .step_by(step)
                    .for_each(|j| windows.abandon(j));
                return Err(e);
            }
        };
        framed += chunk.len() as u64;
        if parse {
            records.clear();
            stats.merge(&chunk.run(&mut records));
        }
        buffer = chunk.into_buffer();
    }
    Ok((framed, stats))
}
