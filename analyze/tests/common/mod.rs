//! Shared by the CLI tests: paths, the real binary, and the skip-or-fail rule for tests that
//! need something from outside (Python packages, p0f, `../shared/pcaps`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (one level above this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("crate dir has a parent")
        .to_path_buf()
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

/// A missing outside requirement: a loud skip, or a failure when `var` is set to 1 (CI).
/// Returns normally only for the skip.
pub fn skip_or_fail(var: &str, what: &str) {
    if std::env::var(var).is_ok_and(|v| v == "1") {
        panic!("{what}, and {var}=1 forbids skipping");
    }
    eprintln!("SKIP: {what} (set {var}=1 to make this a failure)");
}

/// `../shared/pcaps` beside the workspace, when present.
pub fn shared_pcaps() -> Option<PathBuf> {
    let p = root().join("../shared/pcaps");
    p.is_dir().then_some(p)
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

/// A python3 that can import every module in `modules`, if there is one.
pub fn python_with(modules: &[&str]) -> Option<PathBuf> {
    let code = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    let ok = Command::new("python3")
        .args(["-c", &code])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| PathBuf::from("python3"))
}
