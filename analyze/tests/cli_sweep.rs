//! `analyze --records` over every capture in the shared corpus (`testkit::shared_pcaps`): never a crash, and the SYN /
//! SYN+ACK rows of each recording equal tshark's counts in `fixtures/golden/syn-counts.tsv`
//! (files listed there as exceptions are only required not to crash: exit 0 or a clean
//! exit 2).

mod common;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Mutex;

use common::{analyze, root};
use formats::syn::SynReader;

testkit::main! {
    records_sweep_matches_golden_counts needs [testkit::SHARED_PCAPS],
}

struct Golden {
    file: String,
    syn: u64,
    synack: u64,
    exception: Option<String>,
}

fn golden() -> Vec<Golden> {
    let text = std::fs::read_to_string(root().join("fixtures/golden/syn-counts.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("file\t") && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Golden {
                file: f[0].to_string(),
                syn: f[1].parse().unwrap(),
                synack: f[2].parse().unwrap(),
                exception: f.get(3).filter(|e| !e.is_empty()).map(|e| e.to_string()),
            }
        })
        .collect()
}

fn records_sweep_matches_golden_counts() {
    let dir = testkit::require_shared_pcaps();
    let golden = golden();
    assert!(golden.len() > 500, "golden file lists the corpus");
    let tmp = tempfile::tempdir().unwrap();
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::<String>::new());
    let totals = Mutex::new((0usize, 0u64, 0u64, 0usize));
    std::thread::scope(|s| {
        for worker in 0..2 {
            let (golden, next, failures, totals, dir, tmp) =
                (&golden, &next, &failures, &totals, &dir, &tmp);
            s.spawn(move || {
                let out: PathBuf = tmp.path().join(format!("w{worker}.parquet"));
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(g) = golden.get(i) else { break };
                    let path = dir.join(&g.file);
                    let o = analyze(&[
                        OsStr::new("--quiet"),
                        OsStr::new("--records"),
                        out.as_os_str(),
                        path.as_os_str(),
                    ]);
                    let stderr = String::from_utf8_lossy(&o.stderr);
                    let code = o.status.code();
                    if code != Some(0) && !(code == Some(2) && stderr.starts_with("error: ")) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{}: crashed ({code:?}): {stderr}", g.file));
                        continue;
                    }
                    if g.exception.is_some() {
                        totals.lock().unwrap().3 += 1;
                        continue;
                    }
                    if code != Some(0) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{}: {stderr}", g.file));
                        continue;
                    }
                    let r = SynReader::open(&out).unwrap();
                    let (mut syn, mut synack) = (0u64, 0u64);
                    for rec in r.records() {
                        if rec.unwrap().is_syn_ack() {
                            synack += 1;
                        } else {
                            syn += 1;
                        }
                    }
                    if (syn, synack) != (g.syn, g.synack) {
                        failures.lock().unwrap().push(format!(
                            "{}: recording has {syn} SYN / {synack} SYN+ACK, tshark {} / {}",
                            g.file, g.syn, g.synack
                        ));
                    }
                    let mut t = totals.lock().unwrap();
                    t.0 += 1;
                    t.1 += syn;
                    t.2 += synack;
                }
            });
        }
    });
    let (matched_files, syn, synack, exceptions) = *totals.lock().unwrap();
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "analyze --records sweep: {} files, {} compared ({syn} SYN, {synack} SYN+ACK), \
         {exceptions} listed exceptions, {} mismatches",
        golden.len(),
        matched_files,
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
