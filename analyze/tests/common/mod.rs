//! Shared by the CLI tests: paths and the real binary. What a test needs from outside the
//! workspace (Python packages, p0f, the shared corpus) is `testkit`'s business.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    testkit::workspace_root()
}

/// The real `analyze` binary with `args`, in UTC (report times do not depend on the host).
pub fn analyze_command(args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_analyze"));
    cmd.args(args).env("TZ", "UTC");
    cmd
}

/// Runs the real `analyze` binary.
pub fn analyze(args: &[&std::ffi::OsStr]) -> Output {
    analyze_command(args).output().expect("run analyze")
}

/// The bundled captures (`fixtures/pcap/**`), sorted.
pub fn fixture_captures() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("readable fixture folder") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p
                .extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
            {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&root().join("fixtures/pcap"), &mut v);
    v.sort();
    v
}
