//! `analyze --records`: the recording it writes holds exactly what ingestion reads, is plain
//! Parquet for Python, and bad inputs fail cleanly with exit code 2.

mod common;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;

use common::{analyze, fixture_captures, root};
use formats::flows::FlowReader;
use formats::pcap::Collect;
use formats::syn::SynReader;
use record::{FlowDirCounters, FlowKey};

testkit::main! {
    recording_equals_ingestion_of_every_fixture,
    recording_replays_to_the_same_p0f_lines_as_its_capture,
    version_1_recordings_still_read,
    python_reads_the_recording needs [testkit::PYTHON],
    bad_inputs_exit_2_naming_the_file,
    unsupported_link_type_is_named,
    truncated_capture_gives_prefix_and_warning,
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Runs `analyze --records OUT INPUTS...` and returns stderr; panics on failure.
fn records(out: &Path, inputs: &[&Path]) -> String {
    let mut args = vec![os("--records"), out.as_os_str()];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    let o = analyze(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "analyze --records failed: {stderr}");
    assert!(o.stdout.is_empty(), "--records writes nothing to stdout");
    stderr
}

fn recording_equals_ingestion_of_every_fixture() {
    let caps = fixture_captures();
    assert!(caps.len() >= 5, "fixtures/pcap holds the bundled captures");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.parquet");
    let inputs: Vec<&Path> = caps.iter().map(|p| p.as_path()).collect();
    let stderr = records(&out, &inputs);

    // The same captures through the library, independently of the binary.
    let mut want = Collect::default();
    let mut want_flows: HashMap<FlowKey, (FlowDirCounters, FlowDirCounters)> = HashMap::new();
    for c in &caps {
        let mut one = Collect::default();
        formats::pcap::open(c).unwrap().run(&mut one).unwrap();
        want.records.extend(one.records);
        for (k, v) in one.flows {
            let e = want_flows.entry(k).or_default();
            e.0.merge(&v.a_to_b);
            e.1.merge(&v.b_to_a);
        }
    }
    assert!(!want.records.is_empty());

    let got: Vec<_> = SynReader::open(&out)
        .unwrap()
        .records()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.len(), want.records.len());
    assert!(got == want.records, "records differ from ingestion");
    let syn = got.iter().filter(|r| !r.is_syn_ack()).count();
    let syn_ack = got.len() - syn;
    assert!(
        stderr.contains(&format!("syn {syn}, syn+ack {syn_ack}")),
        "stderr totals: {stderr}"
    );

    // Flow rows are per interval; summed per flow they are the whole-file counters.
    let flows = FlowReader::open(out.with_file_name("rec.flows.parquet")).unwrap();
    let mut got_flows: HashMap<FlowKey, (FlowDirCounters, FlowDirCounters)> = HashMap::new();
    for row in flows.records() {
        let row = row.unwrap();
        assert!(row.interval_start_ns < row.interval_end_ns);
        let e = got_flows.entry(row.key).or_default();
        e.0.merge(&row.counters.a_to_b);
        e.1.merge(&row.counters.b_to_a);
    }
    assert_eq!(got_flows.len(), want_flows.len());
    for (k, v) in &want_flows {
        assert_eq!(got_flows.get(k), Some(v), "flow {k:?}");
    }
}

fn recording_replays_to_the_same_p0f_lines_as_its_capture() {
    let dir = tempfile::tempdir().unwrap();
    for cap in fixture_captures() {
        let out = dir.path().join("one.parquet");
        records(&out, &[&cap]);
        let a = analyze(&[os("--format"), os("p0f"), cap.as_os_str()]);
        let b = analyze(&[os("--format"), os("p0f"), out.as_os_str()]);
        assert!(a.status.success() && b.status.success());
        // Every line, HTTP ones included (the payload file keeps their segments), in order.
        assert_eq!(
            String::from_utf8_lossy(&a.stdout),
            String::from_utf8_lossy(&b.stdout),
            "{}",
            cap.display()
        );
    }
}

/// `fixtures/recordings/v1/` holds the recording (and flows) that schema version 1 made of the
/// bundled captures of its day, before the encapsulation columns: it reads, as the same
/// records and flows a version 2 recording of the same captures holds, and replays to the
/// same lines.
fn version_1_recordings_still_read() {
    let v1 = root().join("fixtures/recordings/v1/day.parquet");
    let old = SynReader::open(&v1).unwrap();
    assert_eq!(old.meta().schema_version, 1);
    // The captures of that day: every bundled one but the VXLAN trace added with version 2.
    let caps: Vec<_> = fixture_captures()
        .into_iter()
        .filter(|c| !c.to_string_lossy().contains("vxlan"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("v2.parquet");
    let inputs: Vec<&Path> = caps.iter().map(|p| p.as_path()).collect();
    records(&out, &inputs);
    let new = SynReader::open(&out).unwrap();
    assert_eq!(new.meta().schema_version, formats::meta::SCHEMA_VERSION);
    let sorted = |r: &SynReader| {
        let mut v: Vec<_> = r.records().map(|r| format!("{:?}", r.unwrap())).collect();
        v.sort();
        v
    };
    let old_rows = sorted(&old);
    assert!(old_rows.len() >= 50, "{} rows", old_rows.len());
    assert_eq!(old_rows, sorted(&new));
    let flows = |p: &Path| {
        let mut v: Vec<_> = FlowReader::open(p)
            .unwrap()
            .records()
            .map(|r| format!("{:?}", r.unwrap().key))
            .collect();
        v.sort();
        v
    };
    let v1_flows = root().join("fixtures/recordings/v1/day.flows.parquet");
    assert_eq!(
        flows(&v1_flows),
        flows(&dir.path().join("v2.flows.parquet"))
    );
    let a = analyze(&[os("--format"), os("p0f"), v1.as_os_str()]);
    let b = analyze(&[os("--format"), os("p0f"), out.as_os_str()]);
    assert!(a.status.success() && b.status.success());
    let lines = |o: &std::process::Output| {
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert!(!a.stdout.is_empty());
    // The version 1 recording predates payload files: it has none, and replays without the
    // HTTP lines the new one's payload file gives.
    assert!(!formats::files::payload_path_for(&v1).exists());
    let mut without_http = lines(&b);
    without_http.retain(|l| !l.contains("] mod=http "));
    assert!(
        without_http.len() < lines(&b).len(),
        "the captures hold HTTP"
    );
    assert_eq!(lines(&a), without_http);
}

fn python_reads_the_recording() {
    let py = testkit::python_with(&["pyarrow", "polars"]).expect("the harness checked");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("py.parquet");
    let caps = fixture_captures();
    let inputs: Vec<&Path> = caps.iter().map(|p| p.as_path()).collect();
    records(&out, &inputs);
    let o = std::process::Command::new(py)
        .arg(root().join("tests/python/check_recording.py"))
        .arg(&out)
        .arg(dir.path().join("py.flows.parquet"))
        .arg(dir.path().join("py.payload.parquet"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "check_recording.py failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn assert_fails(args: &[&OsStr], needle: &str) {
    let o = analyze(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "exit code, stderr: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "want {needle:?} in {stderr}");
}

fn bad_inputs_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.parquet");
    let missing = dir.path().join("missing.pcap");
    assert_fails(
        &[os("--records"), out.as_os_str(), missing.as_os_str()],
        "missing.pcap",
    );
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture").unwrap();
    assert_fails(&[os("--format"), os("p0f"), junk.as_os_str()], "junk.pcap");

    // A recording is not a capture to convert.
    let rec = dir.path().join("rec.parquet");
    records(&rec, &[&fixture_captures()[0]]);
    assert_fails(
        &[os("--records"), out.as_os_str(), rec.as_os_str()],
        "rec.parquet",
    );
    assert!(!out.exists(), "no output left behind after a failure");

    // A corrupt recording: the footer is gone.
    let bytes = std::fs::read(&rec).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(&[os("--format"), os("p0f"), cut.as_os_str()], "cut.parquet");
}

fn unsupported_link_type_is_named() {
    // A pcap header for link type 147 (LINKTYPE_USER0) and one 60-byte frame.
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&147u32.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&60u32.to_le_bytes());
    f.extend_from_slice(&60u32.to_le_bytes());
    f.extend_from_slice(&[0; 60]);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("user0.pcap");
    std::fs::write(&p, f).unwrap();
    assert_fails(&[os("--format"), os("p0f"), p.as_os_str()], "147");
}

fn truncated_capture_gives_prefix_and_warning() {
    let cap = fixture_captures()
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let bytes = std::fs::read(&cap).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3 + 1]).unwrap();
    let out = dir.path().join("cut.parquet");
    let stderr = records(&out, &[&cut]);
    assert!(
        stderr.contains("warning: ") && stderr.contains("unreadable from byte"),
        "{stderr}"
    );
    let full = dir.path().join("full.parquet");
    records(&full, &[&cap]);
    let n_cut = SynReader::open(&out).unwrap().num_rows();
    let n_full = SynReader::open(&full).unwrap().num_rows();
    assert!(n_cut <= n_full);
}
