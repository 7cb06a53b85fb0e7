//! Ingests every capture of the shared corpus and compares SYN / SYN+ACK counts with the
//! golden file `fixtures/golden/syn-counts.tsv`, which `tests/golden/make-syn-counts.sh`
//! derives from tshark independently of this code.
//!
//! The corpus is not in the repository (23 MB, other projects' files): where it is absent
//! (`testkit::shared_pcaps`), the test is reported as ignored.

use std::path::PathBuf;

use formats::pcap::{self, PacketSink};
use record::SynRecord;

/// Counts records and checks each is canonical, without keeping them.
#[derive(Default)]
struct Check {
    syn: u64,
    syn_ack: u64,
    not_canonical: u64,
    wrong_source: u64,
}

impl PacketSink for Check {
    fn syn(&mut self, rec: &SynRecord) {
        if rec.is_syn_ack() {
            self.syn_ack += 1;
        } else {
            self.syn += 1;
        }
        if !rec.is_canonical() {
            self.not_canonical += 1;
        }
        if rec.source != record::source::PCAP || rec.direction != record::direction::UNKNOWN {
            self.wrong_source += 1;
        }
    }
}

struct Golden {
    file: String,
    syn: u64,
    syn_ack: u64,
    exception: Option<String>,
}

fn golden() -> Vec<Golden> {
    let path = std::env::var_os("SYNSCOPE_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| testkit::workspace_root().join("fixtures/golden/syn-counts.tsv"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read golden file {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("file\t") && !l.is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 3, "bad golden line: {l:?}");
            let num = |s: &str| {
                s.parse::<u64>()
                    .unwrap_or_else(|_| panic!("bad count in {l:?}"))
            };
            Golden {
                file: cols[0].to_string(),
                syn: num(cols[1]),
                syn_ack: num(cols[2]),
                exception: cols.get(3).filter(|s| !s.is_empty()).map(|s| s.to_string()),
            }
        })
        .collect()
}

testkit::main! {
    corpus_matches_golden_counts needs [testkit::SHARED_PCAPS],
}

fn corpus_matches_golden_counts() {
    let dir = testkit::require_shared_pcaps();
    let rows = golden();
    assert!(!rows.is_empty(), "golden file is empty");
    let (mut files, mut syn, mut syn_ack, mut matched, mut exceptions) = (0, 0, 0, 0, 0);
    let mut failures = Vec::new();
    for row in &rows {
        let path = dir.join(&row.file);
        files += 1;
        let mut check = Check::default();
        let result = pcap::open(&path).and_then(|mut r| r.run(&mut check));
        // Invariants hold for every file, exception or not.
        if let Ok(stats) = &result {
            assert_eq!(
                stats.packets,
                stats.tcp + stats.skipped_total(),
                "{}: every frame is tcp or skipped",
                row.file
            );
            assert_eq!((stats.syn, stats.syn_ack), (check.syn, check.syn_ack));
            assert_eq!(check.not_canonical, 0, "{}: non-canonical record", row.file);
            assert_eq!(check.wrong_source, 0, "{}: source/direction", row.file);
        }
        syn += check.syn;
        syn_ack += check.syn_ack;
        if let Some(why) = &row.exception {
            exceptions += 1;
            eprintln!(
                "exception {}: got {}/{} want {}/{} ({why}){}",
                row.file,
                check.syn,
                check.syn_ack,
                row.syn,
                row.syn_ack,
                result
                    .as_ref()
                    .err()
                    .map(|e| format!(" [{e}]"))
                    .unwrap_or_default()
            );
            continue;
        }
        match result {
            Ok(stats) if (check.syn, check.syn_ack) == (row.syn, row.syn_ack) => {
                matched += 1;
                let _ = stats;
            }
            Ok(stats) => failures.push(format!(
                "{}: got syn {} syn+ack {}, golden {} {} [{stats}]",
                row.file, check.syn, check.syn_ack, row.syn, row.syn_ack
            )),
            Err(e) => failures.push(format!("{}: error {e}", row.file)),
        }
    }
    eprintln!(
        "pcap sweep: {files} files, {syn} SYN, {syn_ack} SYN+ACK, {matched} matched, \
         {exceptions} exceptions, {} mismatched",
        failures.len()
    );
    for f in &failures {
        eprintln!("MISMATCH {f}");
    }
    assert!(
        failures.is_empty(),
        "{} files differ from golden",
        failures.len()
    );
}
