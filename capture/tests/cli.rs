//! The binary's error contract: `error: ...` on stderr and exit status 2, before anything is
//! attached or written. Runs anywhere (the privilege test needs root to drop privileges and
//! the eBPF object, and is reported as ignored without them).

use std::process::Command;

mod common;
use common::{EBPF_OBJECT, SETPRIV};
use testkit::ROOT;

testkit::main! {
    unknown_interface_exits_2,
    unsupported_mode_and_bad_intervals_exit_2,
    unprivileged_exits_2 needs [ROOT, SETPRIV, EBPF_OBJECT],
    recover_with_nothing_to_do,
    durations_in_human_form,
    out_dir_usage_errors_exit_2,
}

const CAPTURE: &str = env!("CARGO_BIN_EXE_capture");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(CAPTURE).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn unknown_interface_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.parquet");
    let (code, err) = run(&["--iface", "synscope-nope0", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    // Without root or without the object the earlier check speaks first; all exit 2.
    if testkit::is_root() && capture::kernel::object_available().is_ok() {
        assert!(
            err.contains("unknown interface \"synscope-nope0\""),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file written"
    );
}

fn unsupported_mode_and_bad_intervals_exit_2() {
    let (code, err) = run(&["--iface", "lo", "--out", "/tmp/x.parquet", "--mode", "dpdk"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("dpdk"), "{err}");
    let (code, err) = run(&[
        "--iface",
        "lo",
        "--out",
        "/tmp/x.parquet",
        "--flush-interval",
        "0",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("flush-interval"), "{err}");
}

fn unprivileged_exits_2() {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .args([
            CAPTURE,
            "--iface",
            "lo",
            "--out",
            "/tmp/synscope-unpriv.parquet",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("CAP_BPF") && err.contains("sudo"), "{err}");
}

fn recover_with_nothing_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("day.parquet");
    let o = Command::new(CAPTURE)
        .args(["--recover", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to recover"));
}

/// `--duration 10s`, `--flow-interval 15m`, `--flush-interval 250ms` and plain seconds parse
/// (the run then stops at a later check, never at the durations); a bad or zero one is a
/// usage error naming the option.
fn durations_in_human_form() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.parquet");
    let out = out.to_str().unwrap();
    for (flag, value) in [
        ("--duration", "10s"),
        ("--duration", "2"),
        ("--flow-interval", "15m"),
        ("--flush-interval", "250ms"),
        ("--duration", "1h30m"),
    ] {
        let (code, err) = run(&["--iface", "synscope-nope0", "--out", out, flag, value]);
        assert_eq!(code, 2, "{err}");
        assert!(
            !err.contains("invalid value") && !err.contains(flag),
            "{flag} {value} rejected: {err}"
        );
    }
    for (flag, value, says) in [
        ("--duration", "10x", "unknown unit"),
        ("--duration", "0s", "more than zero"),
        ("--flow-interval", "soon", "expected a number"),
    ] {
        let (code, err) = run(&["--iface", "lo", "--out", out, flag, value]);
        assert_eq!(code, 2, "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains(flag) && err.contains(says),
            "{flag} {value}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file written"
    );
}

/// `--rotate 0`, `--out` with `--out-dir`, `--out-dir` options without it, and an `--out-dir`
/// that cannot be created each end in `error: ...` and exit 2, before anything is attached,
/// leaving a tree's closed files as they were. (On an interface that does not exist, so a
/// usage error wrongly let through fails on it, attaching nothing.)
fn out_dir_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let closed = tree.join("syn/host=h/date=2026-12-06/hour=08/h-lo-x.parquet");
    std::fs::create_dir_all(closed.parent().unwrap()).unwrap();
    std::fs::write(&closed, b"PAR1 closed").unwrap();
    let t = tree.to_str().unwrap();
    let out = dir.path().join("x.parquet");
    let out = out.to_str().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let under_file = file.join("tree");
    for (args, says) in [
        (
            vec!["--iface", "synscope-nope0", "--out-dir", t, "--rotate", "0"],
            "--rotate",
        ),
        (
            vec![
                "--iface",
                "synscope-nope0",
                "--out-dir",
                t,
                "--rotate",
                "0s",
            ],
            "more than zero",
        ),
        (
            vec!["--iface", "synscope-nope0", "--out", out, "--out-dir", t],
            "--out-dir",
        ),
        (
            vec!["--iface", "synscope-nope0", "--out", out, "--rotate", "1m"],
            "--out-dir",
        ),
        (
            vec![
                "--iface",
                "synscope-nope0",
                "--out-dir",
                t,
                "--max-disk",
                "lots",
            ],
            "--max-disk",
        ),
        (
            vec![
                "--iface",
                "synscope-nope0",
                "--out-dir",
                under_file.to_str().unwrap(),
            ],
            "a-file",
        ),
    ] {
        let (code, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(says),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.path().join("x.parquet").exists());
    assert_eq!(std::fs::read(&closed).unwrap(), b"PAR1 closed");
}
