//! Differential test against the real p0f 3.09b.
//!
//! Two tests, each over one set of captures: `bundled_captures` over `fixtures/pcap/` (always
//! there, so a fresh clone with p0f installed checks itself against p0f) and `shared_corpus`
//! over the shared corpus ([`testkit::shared_pcaps`]). For every capture, run
//! `p0f -r FILE -o LOG` (with `TZ=UTC`) and the real `analyze --format p0f FILE`, drop the
//! timestamps, and compare the multisets of `mod=syn`, `mod=syn+ack` and `mod=mtu` lines.
//!
//! The `mod=http request` / `mod=http response` lines are compared the same way, with
//! figures and a target of their own ([`COMPARED_HTTP`]).
//!
//! Every capture is also converted with `analyze --records` and the recording replayed with
//! `analyze --format p0f`: its lines must equal the capture's, timestamps and order included,
//! HTTP lines too (the recording's payload file keeps the segments they come from).
//!
//! `analyze` gives the engine SYN/SYN+ACK records only, the same whether they come from a
//! pcap, a recording or the live datapath. p0f also ends connections on FIN/RST/ACK packets,
//! which records do not carry; the few lines that depends on are listed exceptions. How close
//! the engine gets when it is fed every TCP packet as p0f is (`Engine::tcp_packet`) is printed
//! as an informational figure. Uptime, host change and IP sharing lines are
//! compared too but only reported: p0f also derives them from ACK/FIN/RST timestamps and HTTP
//! headers, which synscope records do not carry, so ours are expected to be a subset.
//!
//! Target: at least 99.5% of p0f's lines reproduced exactly (raw figure) and fewer than 0.5%
//! extra lines beyond the listed exceptions (the raw extra figure is printed: it is dominated
//! by frames p0f 3.09b cannot decode at the link layer, such as VLAN-tagged Ethernet, which
//! synscope's ingestion decodes). Every remaining difference must be listed, with its reason,
//! in
//! `fixtures/p0f/differential-exceptions.tsv` (columns: capture file name, missing|extra, line,
//! reason); an unlisted difference fails the test, a listed one that no longer occurs is
//! reported. Exceptions name the capture by file name, not by folder, so they hold for a
//! capture wherever it lives: a bundled copy of a corpus file carries its exceptions along.
//!
//! Without p0f the tests are reported as ignored, and `shared_corpus` likewise without the
//! corpus (`SYNSCOPE_REQUIRE_ORACLE=1` / `SYNSCOPE_REQUIRE_SHARED=1`, as CI sets them, make
//! that a failure).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use formats::pcap::{PacketSink, Segment};
use p0f::log::p0f_line;
use p0f::{Database, Engine, Event};
use rayon::prelude::*;
use record::SynRecord;

const COMPARED: [&str; 3] = ["syn", "syn+ack", "mtu"];
/// p0f's HTTP module, compared and judged on its own: analyze hands the engine only the
/// payload of flows its filter (`formats::pcap::HttpFilter`) picks, so its target is looser
/// (at least 98% reproduced, at most 2% extra beyond the listed exceptions).
const COMPARED_HTTP: [&str; 2] = ["http request", "http response"];
/// Compared and reported, not judged: p0f derives these partly from packets synscope does not
/// record (uptime from ACK/FIN/RST timestamps, host change from HTTP headers).
const INFORMATIONAL: [&str; 3] = ["uptime", "host change", "ip sharing"];

fn collect_captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_captures(&p, out);
        } else {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let lower = name.to_ascii_lowercase();
            let skip = [".tsv", ".md", ".txt", ".json", ".log"]
                .iter()
                .any(|ext| lower.ends_with(ext));
            if !skip {
                out.push(p);
            }
        }
    }
}

/// Strips `[YYYY/MM/DD HH:MM:SS] ` and returns (module, rest) for compared modules.
fn split_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.split_once("] ").map(|(_, r)| r)?;
    let module = rest.strip_prefix("mod=")?.split('|').next()?;
    Some((module, rest))
}

struct EngineSink {
    engine: Engine,
    events: Vec<Event>,
}

impl PacketSink for EngineSink {
    fn syn(&mut self, rec: &SynRecord) {
        self.engine.process(rec, &mut self.events);
    }

    fn tcp(&mut self, seg: &Segment<'_>) {
        self.engine
            .tcp_packet(&seg.flow().0, seg.ts_ns, seg.tcp_flags());
    }
}

#[derive(Default)]
struct FileResult {
    p0f_failed: Option<String>,
    ours_failed: Option<String>,
    /// Full lines (timestamps included) of p0f, of `analyze --format p0f`, and of the engine
    /// fed every TCP packet.
    p0f: Vec<String>,
    ours: Vec<String>,
    packets: Vec<String>,
    /// Why the recording replay differs from the capture's, if it does.
    recording_mismatch: Option<String>,
}

fn run_p0f(p0f: &Path, file: &Path, log: &Path) -> Result<Vec<String>, String> {
    let _ = std::fs::remove_file(log);
    let out = Command::new(p0f)
        .env("TZ", "UTC")
        .arg("-r")
        .arg(file)
        .arg("-o")
        .arg(log)
        .output()
        .map_err(|e| format!("cannot run p0f: {e}"))?;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let msg = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("p0f exit {}: {}", out.status, msg.trim()));
    }
    Ok(text.lines().map(str::to_string).collect())
}

/// Runs the real binary; stdout lines on success.
fn analyze(args: &[&std::ffi::OsStr]) -> Result<Vec<String>, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_analyze"))
        .arg("--quiet")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run analyze: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "analyze exit {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

fn run_ours(file: &Path) -> Result<Vec<String>, String> {
    analyze(&["--format".as_ref(), "p0f".as_ref(), file.as_os_str()])
}

/// `analyze --records` then `analyze --format p0f` on the recording.
fn run_recording(file: &Path, tmp: &Path, idx: usize) -> Result<Vec<String>, String> {
    let rec = tmp.join(format!("rec-{idx}.parquet"));
    analyze(&["--records".as_ref(), rec.as_os_str(), file.as_os_str()])?;
    let lines = analyze(&["--format".as_ref(), "p0f".as_ref(), rec.as_os_str()]);
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_file(tmp.join(format!("rec-{idx}.flows.parquet")));
    let _ = std::fs::remove_file(tmp.join(format!("rec-{idx}.payload.parquet")));
    lines
}

/// The engine fed every TCP packet of the capture, as p0f is.
fn run_packets(db: &Arc<Database>, file: &Path) -> Result<Vec<String>, String> {
    let mut sink = EngineSink {
        engine: Engine::new(Arc::clone(db)),
        events: Vec::new(),
    };
    let mut reader = formats::pcap::open(file).map_err(|e| e.to_string())?;
    reader.run(&mut sink).map_err(|e| e.to_string())?;
    Ok(sink.events.iter().map(|ev| p0f_line(db, ev)).collect())
}

fn check_file(p0f: &Path, db: &Arc<Database>, file: &Path, tmp: &Path, idx: usize) -> FileResult {
    let mut res = FileResult::default();
    let log = tmp.join(format!("p0f-{idx}.log"));
    match run_p0f(p0f, file, &log) {
        Ok(l) => res.p0f = l,
        Err(e) => res.p0f_failed = Some(e),
    }
    match run_ours(file) {
        Ok(l) => res.ours = l,
        Err(e) => res.ours_failed = Some(e),
    }
    if res.ours_failed.is_none() {
        match run_recording(file, tmp, idx) {
            Ok(l) if l == res.ours => {}
            Ok(l) => {
                res.recording_mismatch = Some(format!(
                    "{} lines from the capture, {} from its recording; first difference: {:?}",
                    res.ours.len(),
                    l.len(),
                    res.ours.iter().zip(&l).find(|(a, b)| a != b)
                ))
            }
            Err(e) => res.recording_mismatch = Some(e),
        }
        res.packets = run_packets(db, file).unwrap_or_default();
    }
    res
}

/// Multiset difference: items of `a` not matched in `b`.
/// One family of compared modules (the SYN ones, the HTTP ones), judged on its own.
#[derive(Default)]
struct Judged {
    /// Per module: p0f's lines, those reproduced, and ours that p0f does not have.
    per_mod: BTreeMap<&'static str, (usize, usize, usize)>,
    /// Differences that `differential-exceptions.tsv` lists and explains.
    listed_missing: usize,
    listed_extra: usize,
}

impl Judged {
    /// p0f's lines, those reproduced, and the extra ones, over every module.
    fn totals(&self) -> (usize, usize, usize) {
        self.per_mod
            .values()
            .fold((0, 0, 0), |(t, ok, x), v| (t + v.0, ok + v.1, x + v.2))
    }
}

/// Where one capture's differences go: counted as listed exceptions (and marked used), or
/// kept as unlisted.
struct Judging<'a> {
    name: &'a str,
    exceptions: &'a BTreeSet<(String, String, String)>,
    used: &'a mut BTreeSet<(String, String, String)>,
    unlisted: &'a mut Vec<String>,
}

impl Judging<'_> {
    /// Compares one module's lines of p0f (`theirs`) and ours, into `into`.
    fn module(&mut self, into: &mut Judged, m: &'static str, theirs: &[String], ours: &[String]) {
        let missing = minus(theirs, ours);
        let extra = minus(ours, theirs);
        let e = into.per_mod.entry(m).or_default();
        e.0 += theirs.len();
        e.1 += theirs.len() - missing.len();
        e.2 += extra.len();
        for (kind, list) in [("missing", &missing), ("extra", &extra)] {
            for l in list {
                let key = (self.name.to_string(), kind.to_string(), l.clone());
                if self.exceptions.contains(&key) {
                    if kind == "extra" {
                        into.listed_extra += 1;
                    } else {
                        into.listed_missing += 1;
                    }
                    self.used.insert(key);
                } else {
                    self.unlisted.push(format!("{}\t{kind}\t{l}", self.name));
                }
            }
        }
    }
}

fn minus(a: &[String], b: &[String]) -> Vec<String> {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for x in b {
        *counts.entry(x.as_str()).or_default() += 1;
    }
    let mut out = Vec::new();
    for x in a {
        let c = counts.entry(x.as_str()).or_default();
        if *c > 0 {
            *c -= 1;
        } else {
            out.push(x.clone());
        }
    }
    out
}

/// The exceptions as (capture file name, missing|extra, line).
fn load_exceptions(path: &Path) -> BTreeSet<(String, String, String)> {
    let mut set = BTreeSet::new();
    let Ok(text) = std::fs::read_to_string(path) else {
        return set;
    };
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() >= 4 && cols[0] != "file" {
            set.insert((
                cols[0].to_string(),
                cols[1].to_string(),
                cols[2].to_string(),
            ));
        }
    }
    set
}

testkit::main! {
    bundled_captures needs [testkit::P0F],
    shared_corpus needs [testkit::P0F, testkit::SHARED_PCAPS],
}

fn bundled_captures() {
    differential(&testkit::workspace_root().join("fixtures/pcap"));
}

fn shared_corpus() {
    differential(&testkit::require_shared_pcaps());
}

/// The file name that exceptions know a capture by.
fn capture_name(file: &Path) -> String {
    file.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Compares p0f with analyze on every capture under `dir`.
fn differential(dir: &Path) {
    let p0f = testkit::p0f().expect("the harness checked for p0f");
    let root = testkit::workspace_root();
    let mut files = Vec::new();
    collect_captures(dir, &mut files);
    assert!(!files.is_empty(), "no captures under {}", dir.display());
    // p0f.fp alone: the lines compared are p0f's own, whatever synscope.fp adds.
    let db = Arc::new(Database::p0f_only().unwrap_or_else(|e| panic!("database: {e}")));
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let results: Vec<(PathBuf, FileResult)> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| (f.clone(), check_file(&p0f, &db, f, tmp.path(), i)))
        .collect();

    // SYNSCOPE_P0F_DIFF_VERBOSE=1 prints uptime differences too; SYNSCOPE_P0F_DIFF_OUT=FILE
    // writes the unlisted differences as exception rows (reason left to fill in).
    let verbose = std::env::var("SYNSCOPE_P0F_DIFF_VERBOSE").is_ok_and(|v| v == "1");
    // Only the exceptions of the captures in this run can be used or stale.
    let names: BTreeSet<String> = files.iter().map(|f| capture_name(f)).collect();
    let exceptions: BTreeSet<_> =
        load_exceptions(&root.join("fixtures/p0f/differential-exceptions.tsv"))
            .into_iter()
            .filter(|(file, _, _)| names.contains(file))
            .collect();
    let mut used_exceptions = BTreeSet::new();
    let mut unlisted: Vec<String> = Vec::new();
    let mut syn = Judged::default();
    let mut http = Judged::default();
    let mut info = [(0usize, 0usize, 0usize); INFORMATIONAL.len()];
    let mut p0f_failures = Vec::new();
    let mut our_failures = Vec::new();
    let mut recording_mismatches = Vec::new();
    let (mut pk_total, mut pk_matched, mut pk_extra) = (0usize, 0usize, 0usize);
    let replayable = results
        .iter()
        .filter(|(_, r)| r.ours_failed.is_none())
        .count();
    for (file, res) in &results {
        if let Some(e) = &res.recording_mismatch {
            recording_mismatches.push(format!("{}: {e}", file.display()));
        }
    }
    for (file, res) in &results {
        let rel = file
            .strip_prefix(dir)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| file.display().to_string());
        let name = capture_name(file);
        if let Some(e) = &res.p0f_failed {
            // p0f could not read the file at all (e.g. a link type its BPF setup rejects):
            // nothing to compare against, so the file is left out of the figures.
            let ours = COMPARED
                .iter()
                .map(|m| {
                    res.ours
                        .iter()
                        .filter(|l| split_line(l).is_some_and(|x| x.0 == *m))
                        .count()
                })
                .sum::<usize>();
            p0f_failures.push(format!("{rel}: {e} (our lines: {ours})"));
            continue;
        }
        if let Some(e) = &res.ours_failed {
            our_failures.push(format!("{rel}: {e}"));
        }

        let pick = |lines: &[String], m: &str| -> Vec<String> {
            lines
                .iter()
                .filter_map(|l| split_line(l))
                .filter(|(module, _)| *module == m)
                .map(|(_, rest)| rest.to_string())
                .collect()
        };
        let mut judge = Judging {
            name: &name,
            exceptions: &exceptions,
            used: &mut used_exceptions,
            unlisted: &mut unlisted,
        };
        for m in COMPARED {
            judge.module(&mut syn, m, &pick(&res.p0f, m), &pick(&res.ours, m));
        }
        for m in COMPARED_HTTP {
            judge.module(&mut http, m, &pick(&res.p0f, m), &pick(&res.ours, m));
        }
        for m in COMPARED {
            let theirs = pick(&res.p0f, m);
            let packets = pick(&res.packets, m);
            pk_total += theirs.len();
            pk_matched += theirs.len() - minus(&theirs, &packets).len();
            pk_extra += minus(&packets, &theirs).len();
        }
        for (i, m) in INFORMATIONAL.into_iter().enumerate() {
            let theirs = pick(&res.p0f, m);
            let ours = pick(&res.ours, m);
            let extra = minus(&ours, &theirs);
            info[i].0 += theirs.len();
            info[i].1 += theirs.len() - minus(&theirs, &ours).len();
            info[i].2 += extra.len();
            if verbose {
                for l in &extra {
                    eprintln!("  {m} extra: {rel}\t{l}");
                }
            }
        }
    }

    let (total, matched, extra) = syn.totals();
    let (listed_missing, listed_extra) = (syn.listed_missing, syn.listed_extra);
    eprintln!(
        "p0f differential over {} captures under {}:",
        results.len(),
        dir.display()
    );
    for (m, (t, ok, x)) in &syn.per_mod {
        eprintln!("  mod={m:<8} p0f lines {t:>6}  reproduced {ok:>6}  extra {x:>4}");
    }
    let pct = |a: usize, b: usize| {
        if b == 0 {
            100.0
        } else {
            a as f64 * 100.0 / b as f64
        }
    };
    let reproduced = pct(matched, total);
    let extra_pct = pct(extra, total);
    eprintln!(
        "  total: {matched}/{total} reproduced ({reproduced:.3}%), {extra} extra ({extra_pct:.3}%)"
    );
    // The same figures once the listed, explained differences are set aside.
    let net_reproduced = pct(matched + listed_missing, total);
    let net_extra_pct = pct(extra - listed_extra, total);
    eprintln!(
        "  excluding listed exceptions ({listed_missing} missing, {listed_extra} extra): \
         {net_reproduced:.3}% reproduced, {net_extra_pct:.3}% extra"
    );
    let (http_total, http_matched, http_extra) = http.totals();
    let (http_listed_missing, http_listed_extra) = (http.listed_missing, http.listed_extra);
    for (m, (t, ok, x)) in &http.per_mod {
        eprintln!("  mod={m:<13} p0f lines {t:>6}  reproduced {ok:>6}  extra {x:>4}");
    }
    let http_reproduced = pct(http_matched, http_total);
    let http_net_extra = pct(http_extra - http_listed_extra, http_total);
    eprintln!(
        "  http: {http_matched}/{http_total} reproduced ({http_reproduced:.3}%), {http_extra} \
         extra ({:.3}%); excluding listed exceptions ({http_listed_missing} missing, \
         {http_listed_extra} extra): {:.3}% reproduced, {http_net_extra:.3}% extra",
        pct(http_extra, http_total),
        pct(http_matched + http_listed_missing, http_total),
    );
    eprintln!(
        "  (informational) engine fed every TCP packet, as p0f is: {pk_matched}/{pk_total} \
         reproduced ({:.3}%), {pk_extra} extra",
        pct(pk_matched, pk_total)
    );
    eprintln!(
        "  recordings: {} of {replayable} captures replay from their recording to identical \
         lines, HTTP lines included",
        replayable - recording_mismatches.len(),
    );
    for m in &recording_mismatches {
        eprintln!("  RECORDING MISMATCH {m}");
    }
    for (m, (t, ok, x)) in INFORMATIONAL.iter().zip(info) {
        eprintln!("  mod={m} (informational): {ok}/{t} of p0f's reproduced, {x} extra");
    }
    for f in &p0f_failures {
        eprintln!("  p0f failed: {f}");
    }
    for f in &our_failures {
        eprintln!("  ingestion failed: {f}");
    }
    let stale: Vec<_> = exceptions.difference(&used_exceptions).collect();
    for s in &stale {
        eprintln!(
            "  listed exception no longer occurs: {}\t{}\t{}",
            s.0, s.1, s.2
        );
    }
    for u in &unlisted {
        eprintln!("  UNLISTED {u}");
    }
    if let Some(path) = std::env::var_os("SYNSCOPE_P0F_DIFF_OUT") {
        let body: String = unlisted.iter().map(|u| format!("{u}\t?\n")).collect();
        let _ = std::fs::write(path, body);
    }
    assert!(total > 0, "p0f produced no comparable lines");
    assert!(
        reproduced >= 99.5,
        "only {reproduced:.3}% of p0f's lines reproduced"
    );
    // Extra lines are judged net of the listed exceptions: those are frames p0f 3.09b cannot
    // decode at the link layer (VLAN, MPLS, FDDI, multi-link pcapng), which it never
    // fingerprints; the raw figure is printed above.
    assert!(
        net_extra_pct < 0.5,
        "{net_extra_pct:.3}% extra lines beyond the listed exceptions"
    );
    assert!(
        http_reproduced >= 98.0,
        "only {http_reproduced:.3}% of p0f's http lines reproduced"
    );
    assert!(
        http_net_extra <= 2.0,
        "{http_net_extra:.3}% extra http lines beyond the listed exceptions"
    );
    assert!(
        recording_mismatches.is_empty(),
        "{} recordings replay differently from their capture",
        recording_mismatches.len()
    );
    assert!(
        unlisted.is_empty(),
        "{} differences are not listed in fixtures/p0f/differential-exceptions.tsv",
        unlisted.len()
    );
}
