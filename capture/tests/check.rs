//! `capture --check`: the kernel matrix (tests/kernels/run.sh) reads its lines, so their shape
//! is a contract. The usage rules are checked anywhere; the verdicts need root and a binary
//! with its eBPF object, and are reported as ignored without them.

use std::process::Command;

mod common;
use common::EBPF_OBJECT;
use testkit::ROOT;

testkit::main! {
    check_needs_no_output_and_takes_no_capture_options,
    check_reports_features_and_verifier_verdicts needs [ROOT, EBPF_OBJECT],
}

const CAPTURE: &str = env!("CARGO_BIN_EXE_capture");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(CAPTURE).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_needs_no_output_and_takes_no_capture_options() {
    let (code, _, err) = run(&["--check", "--iface", "lo"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--iface"), "{err}");
    let (code, _, err) = run(&["--iface", "lo"]);
    assert_eq!(code, 2, "--out is still required without --check: {err}");
    assert!(err.contains("--out"), "{err}");
}

fn check_reports_features_and_verifier_verdicts() {
    let (code, out, err) = run(&["--check"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("kernel "), "{out}");
    for word in ["ring buffer", "atomics", "bpf_xdp_load_bytes"] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("feature ") && l.contains(word) && l.ends_with(": ok")),
            "{word}: {out}"
        );
    }
    for prog in [
        "synscope_tc",
        "synscope_tc_egress",
        "synscope_tc_decap",
        "synscope_xdp",
        "synscope_xdp_decap",
    ] {
        assert!(
            lines.contains(&format!("verifier {prog}: accepted").as_str()),
            "{prog}: {out}"
        );
    }
}
