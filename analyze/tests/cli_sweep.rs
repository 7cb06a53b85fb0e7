//! `analyze --records` over every capture in the shared corpus (`testkit::shared_pcaps`): never a crash, and the SYN /
//! SYN+ACK rows of each recording equal tshark's counts in `fixtures/golden/syn-counts.tsv`
//! (files listed there as exceptions are only required not to crash: exit 0 or a clean
//! exit 2).
//!
//! And recordings keep what HTTP needs: every capture of the corpus whose `analyze --format
//! p0f` lines include HTTP ones is converted, and its recording must give the very same lines
//! (HTTP and the rest, in order, timestamps included). Captures without HTTP lines cost one
//! run of `analyze` each and are only counted (`p0f_differential` compares their recordings).

mod common;

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Mutex;

use common::{analyze, root};
use formats::syn::SynReader;

testkit::main! {
    records_sweep_matches_golden_counts needs [testkit::SHARED_PCAPS],
    recordings_replay_http_like_their_captures needs [testkit::SHARED_PCAPS],
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

/// Every capture under `dir`, sorted (SOURCES.tsv and other notes left out).
fn corpus(dir: &std::path::Path) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if !p.extension().is_some_and(|e| {
                ["tsv", "md", "txt", "json", "log"].contains(&e.to_str().unwrap_or(""))
            }) {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, &mut v);
    v
}

/// `analyze --quiet --format p0f FILE`: its lines, or `None` when it refuses the file.
fn p0f_lines(file: &std::path::Path) -> Option<Vec<String>> {
    let o = analyze(&[
        OsStr::new("--quiet"),
        OsStr::new("--format"),
        OsStr::new("p0f"),
        file.as_os_str(),
    ]);
    o.status.success().then(|| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    })
}

fn recordings_replay_http_like_their_captures() {
    let dir = testkit::require_shared_pcaps();
    let files = corpus(&dir);
    assert!(
        files.len() > 100,
        "the corpus is there: {} files",
        files.len()
    );
    let tmp = tempfile::tempdir().unwrap();
    let next = Mutex::new(0usize);
    let failures = Mutex::new(Vec::<String>::new());
    // (captures with HTTP lines, their HTTP lines, captures without)
    let totals = Mutex::new((0usize, 0usize, 0usize));
    std::thread::scope(|s| {
        for worker in 0..2 {
            let (files, next, failures, totals, tmp, dir) =
                (&files, &next, &failures, &totals, &tmp, &dir);
            s.spawn(move || {
                let rec: PathBuf = tmp.path().join(format!("w{worker}.parquet"));
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some(file) = files.get(i) else { break };
                    let name = file.strip_prefix(dir).unwrap_or(file).display().to_string();
                    let Some(want) = p0f_lines(file) else {
                        continue;
                    };
                    let http = want.iter().filter(|l| l.contains("] mod=http ")).count();
                    if http == 0 {
                        totals.lock().unwrap().2 += 1;
                        continue;
                    }
                    let o = analyze(&[
                        OsStr::new("--quiet"),
                        OsStr::new("--records"),
                        rec.as_os_str(),
                        file.as_os_str(),
                    ]);
                    if !o.status.success() {
                        failures.lock().unwrap().push(format!(
                            "{name}: --records failed: {}",
                            String::from_utf8_lossy(&o.stderr)
                        ));
                        continue;
                    }
                    match p0f_lines(&rec) {
                        Some(got) if got == want => {}
                        Some(got) => {
                            let at = got.iter().zip(&want).position(|(g, w)| g != w);
                            failures.lock().unwrap().push(format!(
                                "{name}: {} lines from the capture, {} from its recording; \
                                 first difference at line {at:?}: {:?} vs {:?}",
                                want.len(),
                                got.len(),
                                at.and_then(|i| want.get(i)),
                                at.and_then(|i| got.get(i)),
                            ));
                        }
                        None => failures
                            .lock()
                            .unwrap()
                            .push(format!("{name}: the recording does not replay")),
                    }
                    let mut t = totals.lock().unwrap();
                    t.0 += 1;
                    t.1 += http;
                }
            });
        }
    });
    let (with_http, http_lines, without) = *totals.lock().unwrap();
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "recordings vs captures: {with_http} captures with {http_lines} HTTP lines compared, \
         {} differ; {without} captures without HTTP lines not converted",
        failures.len()
    );
    assert!(
        with_http >= 20,
        "only {with_http} captures with HTTP lines: is the corpus complete?"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
