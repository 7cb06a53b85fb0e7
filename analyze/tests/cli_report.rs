//! `analyze` reports: the golden table and JSON outputs of the bundled captures, agreement
//! between every output format (and with `--format p0f`), identical output whatever
//! `--threads`, the results Parquet file read from Python, captures read from standard input
//! and pipes (live ones printed as they come), and bad inputs.
//!
//! Golden files live in `fixtures/golden/analyze/`. They are produced by this code: after a
//! deliberate change, regenerate them with `SYNSCOPE_BLESS=1 cargo test -p analyze --test
//! cli_report` and review the diff before committing.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{analyze, analyze_command, fixture_captures, root};
use serde_json::Value;

testkit::main! {
    golden_table_report,
    golden_json_document,
    help_text_is_golden,
    formats_agree_with_each_other_and_with_p0f_lines,
    one_thread_and_many_threads_give_identical_bytes,
    one_thread_and_many_threads_agree_on_corpus_captures needs [testkit::SHARED_PCAPS],
    capture_and_its_recording_agree_including_traffic_by_os,
    python_polars_reads_the_results_file needs [testkit::PYTHON],
    repeated_cause_check_catches_a_doubled_chain,
    bad_inputs_stop_the_run_or_are_skipped_with_keep_going,
    captures_from_standard_input_and_pipes_equal_the_files,
    live_pipes_print_each_packet_before_the_input_ends,
    a_stream_input_outlasts_the_first_interrupt,
    a_signal_stops_a_run_over_files_and_leaves_no_parquet_file,
    results_files_are_not_inputs,
    a_sampled_or_lossy_capture_says_so,
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Runs analyze and returns stdout; panics (with stderr) unless it exits 0.
fn run_ok(args: &[&OsStr]) -> String {
    let o = analyze(args);
    assert!(
        o.status.success(),
        "analyze {args:?} failed ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("utf-8 output")
}

/// The bundled captures, as paths relative to the workspace root (so outputs naming source
/// files do not depend on where the workspace lives), run from the root.
fn fixture_args() -> Vec<PathBuf> {
    let root = root();
    fixture_captures()
        .into_iter()
        .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
        .collect()
}

/// Runs analyze from the workspace root.
fn run_in_root(args: &[&OsStr]) -> std::process::Output {
    analyze_command(args)
        .current_dir(root())
        .output()
        .expect("run analyze")
}

/// Compares `got` with the golden file `name`, or rewrites it under `SYNSCOPE_BLESS=1`.
fn golden(name: &str, got: &str) {
    let path = root().join("fixtures/golden/analyze").join(name);
    if std::env::var("SYNSCOPE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (SYNSCOPE_BLESS=1 creates it)", path.display()));
    if want != got {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(5)
            .map(|(i, (a, b))| format!("line {}:\n  want {a}\n  got  {b}", i + 1))
            .collect();
        panic!(
            "{} differs ({} vs {} lines):\n{}",
            path.display(),
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

fn fixtures_output(format: &str) -> String {
    fixtures_output_with(format, &[])
}

fn fixtures_output_with(format: &str, extra: &[&OsStr]) -> String {
    let files = fixture_args();
    let mut args = vec![os("--format"), os(format), os("--quiet")];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(|p| p.as_os_str()));
    let o = run_in_root(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn golden_table_report() {
    golden("report.txt", &fixtures_output("table"));
}

fn golden_json_document() {
    let text = fixtures_output("json");
    let v: Value = serde_json::from_str(&text).expect("one JSON document");
    assert!(v["observations"].is_array() && v["summary"].is_object());
    golden("report.json", &text);
}

fn help_text_is_golden() {
    let o = analyze(&[os("--help")]);
    assert!(o.status.success());
    golden("help.txt", &String::from_utf8(o.stdout).unwrap());
}

/// Every format says the same thing: the JSON document's observations are the NDJSON lines,
/// the CSV rows and the p0f lines, one for one; and its totals add up.
fn formats_agree_with_each_other_and_with_p0f_lines() {
    let doc: Value = serde_json::from_str(&fixtures_output("json")).unwrap();
    let obs = doc["observations"].as_array().unwrap();
    let nd: Vec<Value> = fixtures_output("ndjson")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(&nd, obs);
    let csv = fixtures_output("csv");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.len(), obs[0].as_object().unwrap().len());
    assert_eq!(lines.count(), obs.len());
    // The other formats' default database (`--format p0f` defaults to p0f.fp alone).
    let stack = [
        os("--db"),
        os("builtin:p0f.fp"),
        os("--db"),
        os("builtin:synscope.fp"),
    ];
    let p0f: Vec<String> = fixtures_output_with("p0f", &stack)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(p0f.len(), obs.len());
    assert!(obs.len() > 20, "the fixtures give observations");

    // Field by field against the p0f lines (an independent formatter of the same events).
    for (o, line) in obs.iter().zip(&p0f) {
        let module = o["module"].as_str().unwrap();
        assert!(line.contains(&format!("] mod={module}|")), "{line} / {o}");
        let subj = o["subject"].as_str().unwrap();
        assert!(line.contains(&format!("|subj={subj}")), "{line}");
        assert!(
            line.contains(&format!("/{}|srv=", o["client_port"])),
            "{line}"
        );
        if let Some(sig) = o["raw_sig"].as_str() {
            assert!(line.ends_with(&format!("|raw_sig={sig}")), "{line}");
            match o["os_name"].as_str() {
                Some(name) => {
                    let key = o["label_type"].as_str().unwrap();
                    let flavor = o["os_flavor"].as_str().map(|f| format!(" {f}"));
                    let want = format!("|{key}={name}{}|", flavor.unwrap_or_default());
                    assert!(line.contains(&want), "{want} in {line}");
                }
                // p0f writes an unmatched HTTP head as an unknown app.
                None if module.starts_with("http ") => {
                    assert!(line.contains("|app=???|"), "{line}");
                }
                None => assert!(line.contains("|os=???|"), "{line}"),
            }
        }
        if module.starts_with("http ") {
            let params = o["params"].as_str().unwrap_or("none").replace(' ', ",");
            assert!(line.contains(&format!("|params={params}|")), "{line}");
        }
        if let Some(mtu) = o["mtu"].as_u64() {
            assert!(line.ends_with(&format!("|raw_mtu={mtu}")), "{line}");
        }
        let time = o["time"].as_str().unwrap();
        // `2022-10-28T09:46:19.000250000Z` vs `[2022/10/28 09:46:19]`
        let p0f_time = format!("[{}]", time[..19].replace('-', "/").replace('T', " "));
        assert!(line.starts_with(&p0f_time), "{p0f_time} vs {line}");
    }

    // Totals: observations by module add up to the rows; OS mix and quality add up to the
    // SYN/SYN+ACK rows.
    let s = &doc["summary"];
    let by_module: u64 = s["totals"]["observations"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(by_module as usize, obs.len());
    let tcp = obs
        .iter()
        .filter(|o| o["raw_sig"].is_string())
        .filter(|o| !o["module"].as_str().is_some_and(|m| m.starts_with("http ")))
        .count() as u64;
    assert_eq!(s["tcp_observations"].as_u64(), Some(tcp));
    let sum = |k: &str| -> u64 {
        s[k].as_array()
            .unwrap()
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum("os_mix"), tcp);
    assert_eq!(sum("quality_mix"), tcp);
    assert_eq!(sum("distance"), tcp);
    let mtus = obs.iter().filter(|o| o["module"] == "mtu").count() as u64;
    assert_eq!(sum("mtu_mix"), mtus);
    // The records the engine saw are the SYN and SYN+ACK records ingestion made.
    let t = &s["totals"];
    let seen: u64 = t["records"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(
        seen,
        t["syn"].as_u64().unwrap() + t["syn_ack"].as_u64().unwrap()
    );
    // Unknown signatures counted in the summary are the rows with os=??? (top 10 of them).
    let unknown = obs
        .iter()
        .filter(|o| o["raw_sig"].is_string() && o["os_name"].is_null())
        .filter(|o| !o["module"].as_str().is_some_and(|m| m.starts_with("http ")))
        .count() as u64;
    assert!(sum("top_unknown_signatures") <= unknown);
    let q_unknown = s["quality_mix"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["quality"] == "unknown")
        .map_or(0, |r| r["count"].as_u64().unwrap());
    assert_eq!(q_unknown, unknown);
}

/// Writes `records` as a recording with tiny row groups, so several threads get work and any
/// reordering would show.
fn small_group_recording(records: &[record::SynRecord], path: &Path) {
    use formats::meta::{RecordType, RecordingMeta};
    use formats::recording::WriterOptions;
    let mut w = formats::syn::SynWriter::create(
        path,
        &RecordingMeta::new(RecordType::Syn),
        WriterOptions {
            row_group_rows: 16,
            ..WriterOptions::default()
        },
    )
    .unwrap();
    w.write_all(records).unwrap();
    w.close().unwrap();
}

fn one_thread_and_many_threads_give_identical_bytes() {
    identical_bytes_whatever_the_threads(fixture_captures());
}

/// The same with a slice of the shared corpus too: more records, more groups.
fn one_thread_and_many_threads_agree_on_corpus_captures() {
    let mut caps = fixture_captures();
    let mut more: Vec<PathBuf> = std::fs::read_dir(testkit::require_shared_pcaps().join("zeek"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    more.retain(|p| p.extension().is_some_and(|e| e == "pcap"));
    more.sort();
    caps.extend(more.into_iter().take(60));
    identical_bytes_whatever_the_threads(caps);
}

/// Every format, and the results file, are byte-identical on 1, 2 and 7 threads, for a
/// recording of `caps` split into many small groups plus the first three captures.
fn identical_bytes_whatever_the_threads(caps: Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut recs = Vec::new();
    for c in &caps {
        let _ = formats::pcap::open(c).map(|mut r| r.run(&mut recs));
    }
    assert!(recs.len() > 20);
    let rec = dir.path().join("many-groups.parquet");
    small_group_recording(&recs, &rec);
    for format in ["table", "json", "ndjson", "csv", "p0f"] {
        let mut outs = Vec::new();
        for threads in ["1", "2", "7"] {
            let pq = dir.path().join(format!("{format}-{threads}.parquet"));
            let mut args = vec![
                os("--format"),
                os(format),
                os("--threads"),
                os(threads),
                os("--out"),
                pq.as_os_str(),
                rec.as_os_str(),
            ];
            args.extend(caps.iter().take(3).map(|p| p.as_os_str()));
            outs.push((run_ok(&args), std::fs::read(&pq).unwrap()));
        }
        assert!(!outs[0].0.is_empty());
        assert!(
            outs.iter().all(|o| o.0 == outs[0].0),
            "{format}: stdout differs"
        );
        assert!(
            outs.iter().all(|o| o.1 == outs[0].1),
            "{format}: results file differs"
        );
    }
}

/// A capture and the recording made from it (`--records`, which also writes the flow file)
/// give the same observations and the same traffic-by-OS table.
fn capture_and_its_recording_agree_including_traffic_by_os() {
    let dir = tempfile::tempdir().unwrap();
    let caps = fixture_captures();
    let rec = dir.path().join("rec.parquet");
    let mut args = vec![os("--records"), rec.as_os_str(), os("--quiet")];
    args.extend(caps.iter().map(|p| p.as_os_str()));
    run_ok(&args);
    assert!(dir.path().join("rec.flows.parquet").exists());

    let mut args = vec![os("--format"), os("json")];
    args.extend(caps.iter().map(|p| p.as_os_str()));
    let from_caps: Value = serde_json::from_str(&run_ok(&args)).unwrap();
    let from_rec: Value =
        serde_json::from_str(&run_ok(&[os("--format"), os("json"), rec.as_os_str()])).unwrap();
    // Every observation, HTTP ones included (the recording's payload file keeps their
    // segments); only the input they came from differs.
    let strip = |v: &Value| -> Vec<Value> {
        v["observations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                let mut o = o.clone();
                o.as_object_mut().unwrap().remove("source_file");
                o
            })
            .collect()
    };
    assert_eq!(strip(&from_caps), strip(&from_rec));
    for k in ["os_mix", "quality_mix", "top_hosts", "mtu_mix", "distance"] {
        assert_eq!(from_caps["summary"][k], from_rec["summary"][k], "{k}");
    }
    let traffic = &from_caps["summary"]["traffic_by_os"];
    assert!(traffic.is_array(), "captures count flows");
    assert_eq!(traffic, &from_rec["summary"]["traffic_by_os"]);
    // All TCP packets of the captures are in some flow.
    let packets: u64 = traffic
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["packets"].as_u64().unwrap())
        .sum();
    assert_eq!(
        Some(packets),
        from_caps["summary"]["totals"]["tcp_packets"].as_u64()
    );
}

/// Reads the results file with polars and pyarrow and compares it with the NDJSON lines
/// of the same run (argv: results.parquet expect.ndjson).
const CHECK_RESULTS_PY: &str = r#"
import json, sys
import polars as pl
import pyarrow.parquet as pq

path, expect_path, version = sys.argv[1], sys.argv[2], sys.argv[3]
expect = [json.loads(l) for l in open(expect_path)]
meta = pq.read_metadata(path)
kv = {k.decode(): v.decode() for k, v in meta.metadata.items()}
assert kv.get("synscope.record_type") == "results", kv
assert kv.get("synscope.results_schema_version") == version, kv
assert meta.row_group(0).column(0).compression == "ZSTD"
df = pl.read_parquet(path)
assert df.height == len(expect), (df.height, len(expect))
assert df.columns == list(expect[0].keys()), (df.columns, list(expect[0].keys()))
assert str(df.schema["time"]) == "Datetime(time_unit='ns', time_zone='UTC')", df.schema["time"]
for row, want in zip(df.iter_rows(named=True), expect):
    for k, v in want.items():
        got = row[k]
        if k == "time":
            got = got.strftime("%Y-%m-%dT%H:%M:%S.%f")
            assert v.startswith(got), (got, v)
        elif isinstance(v, float):
            assert abs(got - v) < 1e-9 * max(1.0, abs(v)), (k, got, v)
        else:
            assert got == v, (k, got, v)
# A notebook-style question, answered by polars on the file.
syn = df.filter(pl.col("module") == "syn").group_by("os_name").len()
assert syn["len"].sum() == sum(1 for e in expect if e["module"] == "syn")
print("ok", df.height, "rows")
"#;

fn python_polars_reads_the_results_file() {
    let py = testkit::python_with(&["polars", "pyarrow"]).expect("the harness checked");
    let dir = tempfile::tempdir().unwrap();
    let pq = dir.path().join("results.parquet");
    let caps = fixture_captures();
    let mut args = vec![os("--format"), os("ndjson"), os("--out"), pq.as_os_str()];
    args.extend(caps.iter().map(|p| p.as_os_str()));
    let nd = run_ok(&args);
    let expect = dir.path().join("expect.ndjson");
    std::fs::write(&expect, &nd).unwrap();
    let o = std::process::Command::new(py)
        .arg("-c")
        .arg(CHECK_RESULTS_PY)
        .arg(&pq)
        .arg(&expect)
        .arg(analyze::results::RESULTS_SCHEMA_VERSION.to_string())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "check_results.py failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn assert_exit_2(args: &[&OsStr], needles: &[&str]) -> std::process::Output {
    let o = analyze(args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("error: "), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "want {n:?} in {stderr}");
    }
    for line in stderr.lines().filter(|l| l.starts_with("error: ")) {
        assert_no_repeated_cause(line);
    }
    o
}

/// An error line is a chain `context: cause: its cause`; no part of it may come twice in a
/// row, as it does when an error both prints its cause and returns it as its `source()`.
fn assert_no_repeated_cause(line: &str) {
    assert!(!has_repeated_cause(line), "cause printed twice in {line:?}");
}

/// Whether some run of `: `-separated parts of `line` comes twice in a row.
fn has_repeated_cause(line: &str) -> bool {
    let parts: Vec<&str> = line.split(": ").collect();
    (0..parts.len()).any(|i| {
        (1..=(parts.len() - i) / 2).any(|len| parts[i..i + len] == parts[i + len..i + 2 * len])
    })
}

fn repeated_cause_check_catches_a_doubled_chain() {
    let doubled = "error: x.pcap: No such file or directory (os error 2): No such file or \
                   directory (os error 2)";
    assert!(has_repeated_cause(doubled));
    assert!(!has_repeated_cause(
        "error: reading the inputs: x.pcap: No such file or directory"
    ));
}

fn bad_inputs_stop_the_run_or_are_skipped_with_keep_going() {
    let dir = tempfile::tempdir().unwrap();
    let caps = fixture_captures();
    let good = &caps[0];
    // A recording whose second half is gone: no footer.
    let rec = dir.path().join("rec.parquet");
    run_ok(&[os("--records"), rec.as_os_str(), os("-q"), good.as_os_str()]);
    let bytes = std::fs::read(&rec).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let missing = dir.path().join("missing.pcap");

    assert_exit_2(
        &[missing.as_os_str()],
        &["missing.pcap", "No such file or directory"],
    );
    let o = assert_exit_2(
        &[
            os("--format"),
            os("ndjson"),
            good.as_os_str(),
            cut.as_os_str(),
        ],
        &["cut.parquet"],
    );
    // Output already written before the bad input stays valid lines.
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }

    // --keep-going: the good inputs are all analysed, the bad one named, exit status 2.
    let o = assert_exit_2(
        &[
            os("--format"),
            os("p0f"),
            os("--keep-going"),
            cut.as_os_str(),
            good.as_os_str(),
            good.as_os_str(),
        ],
        &["cut.parquet", "1 of 3 inputs"],
    );
    let alone = run_ok(&[
        os("--format"),
        os("p0f"),
        good.as_os_str(),
        good.as_os_str(),
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), alone);

    // In a folder, a damaged file named as a capture is a bad input, not a file to ignore.
    let folder = dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::copy(good, folder.join("a.pcap")).unwrap();
    std::fs::write(folder.join("b.pcap"), b"").unwrap();
    std::fs::write(folder.join("notes.txt"), b"not an input").unwrap();
    assert_exit_2(&[folder.as_os_str()], &["b.pcap", "empty file"]);
    let o = assert_exit_2(
        &[
            os("--format"),
            os("p0f"),
            os("--keep-going"),
            folder.as_os_str(),
        ],
        &["b.pcap", "1 of 2 inputs"],
    );
    let alone = run_ok(&[os("--format"), os("p0f"), good.as_os_str()]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), alone);

    // --records converts captures only.
    let again = dir.path().join("again.parquet");
    assert_exit_2(
        &[os("--records"), again.as_os_str(), rec.as_os_str()],
        &["rec.parquet", "not a capture"],
    );
    assert!(!again.exists());

    // --out must not overwrite an input.
    assert_exit_2(
        &[os("--out"), rec.as_os_str(), rec.as_os_str()],
        &["is one of the inputs"],
    );
    // An unwritable results path.
    let nowhere = dir.path().join("no/such/dir/r.parquet");
    assert_exit_2(
        &[os("--out"), nowhere.as_os_str(), good.as_os_str()],
        &["r.parquet"],
    );
    assert_exit_2(
        &[os("--records"), nowhere.as_os_str(), good.as_os_str()],
        &["r.parquet", "No such file or directory"],
    );
    let no_db = dir.path().join("no.fp");
    assert_exit_2(
        &[os("--db"), no_db.as_os_str(), good.as_os_str()],
        &["no.fp", "No such file or directory"],
    );
}

/// Starts analyze with pipes for its standard input, output and error.
fn spawn_piped(args: &[&OsStr]) -> std::process::Child {
    use std::process::Stdio;
    analyze_command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs analyze with `bytes` on its standard input (written from another thread, so that a
/// pipe larger than its buffer cannot block).
fn analyze_fed(args: &[&OsStr], bytes: Vec<u8>) -> std::process::Output {
    use std::io::Write;
    let mut child = spawn_piped(args);
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        // analyze may stop reading early (a bad input): a closed pipe is its answer.
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

fn captures_from_standard_input_and_pipes_equal_the_files() {
    let caps = fixture_captures();
    let pcap = caps
        .iter()
        .max_by_key(|p| {
            let n = p.to_string_lossy().into_owned();
            (n.ends_with(".pcap"), std::fs::metadata(p).unwrap().len())
        })
        .unwrap();
    let pcapng = caps
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".pcapng"))
        .unwrap();
    for (cap, format) in [(pcap, "p0f"), (pcapng, "p0f"), (pcap, "json")] {
        let want = run_ok(&[os("--format"), os(format), cap.as_os_str()]);
        let o = analyze_fed(
            &[os("--format"), os(format), os("-")],
            std::fs::read(cap).unwrap(),
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got = String::from_utf8_lossy(&o.stdout);
        // JSON names the source file: `-` here.
        let want = want.replace(&*cap.to_string_lossy(), "-");
        assert_eq!(got, want, "{} as {format}", cap.display());
    }

    // A named pipe is read as a stream too (sniffing it would eat its first bytes).
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("live.pcap");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let (fifo, bytes) = (fifo.clone(), std::fs::read(pcap).unwrap());
        std::thread::spawn(move || std::fs::write(fifo, bytes).unwrap())
    };
    let got = run_ok(&[os("--format"), os("p0f"), fifo.as_os_str()]);
    writer.join().unwrap();
    assert_eq!(got, run_ok(&[os("--format"), os("p0f"), pcap.as_os_str()]));

    // A recording made from standard input is the one made from the file.
    let from_file = dir.path().join("file.parquet");
    let from_stdin = dir.path().join("stdin.parquet");
    run_ok(&[
        os("--records"),
        from_file.as_os_str(),
        os("-q"),
        pcap.as_os_str(),
    ]);
    let o = analyze_fed(
        &[os("--records"), from_stdin.as_os_str(), os("-q"), os("-")],
        std::fs::read(pcap).unwrap(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        run_ok(&[os("--format"), os("p0f"), from_stdin.as_os_str()]),
        run_ok(&[os("--format"), os("p0f"), from_file.as_os_str()])
    );

    // Standard input can be read once; a recording cannot be streamed.
    assert_exit_2(&[os("-"), os("-")], &["(-) given twice"]);
    let o = analyze_fed(&[os("-")], std::fs::read(&from_file).unwrap());
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("-: not a pcap or pcapng file"), "{stderr}");
}

/// The smallest bundled capture ending in `ext` whose p0f lines number at least four, and
/// those lines (from the file).
fn small_capture_with_lines(ext: &str) -> (PathBuf, String) {
    fixture_captures()
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .map(|p| {
            let want = run_ok(&[os("--format"), os("p0f"), p.as_os_str()]);
            (p, want)
        })
        .filter(|(_, want)| want.lines().count() >= 4)
        .min_by_key(|(p, _)| std::fs::metadata(p).unwrap().len())
        .unwrap_or_else(|| panic!("a {ext} fixture with p0f lines"))
}

/// `analyze ARGS` fed like a live pipe: its standard input stays open until [`Live::close`],
/// its output is collected on another thread.
struct Live {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    reader: std::thread::JoinHandle<()>,
}

impl Live {
    fn start(args: &[&OsStr]) -> Live {
        use std::io::Read;
        let mut child = spawn_piped(args);
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().unwrap();
        let (tx, chunks) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut block = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut block) {
                if n == 0 || tx.send(block[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Live {
            child,
            stdin,
            chunks,
            reader,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    /// Output until at least `len` bytes came, or a generous deadline passed (a hang is
    /// what the callers test for, not a slow machine).
    fn output(&self, len: usize) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut got = Vec::new();
        while got.len() < len {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(bytes) => got.extend(bytes),
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// Sends SIGINT, as Ctrl-C does to every process of a pipeline.
    #[cfg(unix)]
    fn interrupt(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: a plain system call on our own child, which has not been waited for (so
        // its pid cannot have been reused).
        let rc = unsafe { libc::kill(pid, libc::SIGINT) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    }

    /// Closes standard input and waits: the exit status, stderr and any output not yet read.
    fn close(mut self) -> (std::process::ExitStatus, String, Vec<u8>) {
        use std::io::Read;
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        self.reader.join().unwrap();
        let mut stderr = String::new();
        let mut pipe = self.child.stderr.take().unwrap();
        pipe.read_to_string(&mut stderr).unwrap();
        let rest = self.chunks.try_iter().flatten().collect();
        (status, stderr, rest)
    }
}

/// A live pipe (`tcpdump -U -w - | analyze --format p0f -`): the lines of the packets that came
/// are printed while the pipe stays open, as p0f prints them, not when 4 MiB have arrived,
/// a batch has filled or the input has ended. Both container formats, each fed whole and
/// then held open; what comes out before the end must be everything the file gives.
fn live_pipes_print_each_packet_before_the_input_ends() {
    for (cap, want) in [
        small_capture_with_lines(".pcap"),
        small_capture_with_lines(".pcapng"),
    ] {
        let mut live = Live::start(&[os("--format"), os("p0f"), os("-")]);
        live.feed(&std::fs::read(&cap).unwrap());
        let got = live.output(want.len());
        assert_eq!(
            got,
            want,
            "{}: lines printed while the pipe was open",
            cap.display()
        );
        let (status, stderr, rest) = live.close();
        assert!(status.success(), "{}: {stderr}", cap.display());
        assert!(rest.is_empty(), "{}: more after the end", cap.display());
    }
}

/// Ctrl-C in `tcpdump -U -w - | analyze --out r.parquet -` reaches the whole pipeline: the
/// capture ends its pipe, and analyze must live through the first SIGINT to finish then, with
/// its Parquet file closed; a second SIGINT ends it as usual.
#[cfg(unix)]
fn a_stream_input_outlasts_the_first_interrupt() {
    use std::os::unix::process::ExitStatusExt;

    let (cap, want) = small_capture_with_lines(".pcap");
    let bytes = std::fs::read(&cap).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("file.parquet");
    run_ok(&[
        os("--format"),
        os("p0f"),
        os("--out"),
        from_file.as_os_str(),
        cap.as_os_str(),
    ]);
    let live_out = dir.path().join("live.parquet");
    let mut live = Live::start(&[
        os("--format"),
        os("p0f"),
        os("--out"),
        live_out.as_os_str(),
        os("-"),
    ]);
    live.feed(&bytes);
    // Its lines are out: analyze is past its start-up and reading.
    assert_eq!(live.output(want.len()), want);
    live.interrupt();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        live.child.try_wait().unwrap().is_none(),
        "killed by one SIGINT"
    );
    let (status, stderr, rest) = live.close();
    assert!(status.success(), "{stderr}");
    assert!(rest.is_empty());
    let rows = |p: &Path| {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(std::fs::File::open(p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        reader.metadata().file_metadata().num_rows()
    };
    assert!(rows(&from_file) > 0);
    assert_eq!(rows(&live_out), rows(&from_file));

    let mut live = Live::start(&[os("--format"), os("p0f"), os("-")]);
    live.feed(&bytes);
    assert_eq!(live.output(want.len()), want);
    live.interrupt();
    std::thread::sleep(std::time::Duration::from_millis(300));
    live.interrupt();
    let status = live.child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(2),
        "the second SIGINT ends it: {status:?}"
    );
    drop(live);
}

/// Ctrl-C or SIGTERM during a run over files stops it: exit status 128 + the signal, an
/// `error:` line, and no Parquet file, finished or temporary (a `.tmp` left in a folder used
/// to break the next `analyze` of that folder). The run is caught mid-way by not reading its
/// output: it blocks writing stdout (or stderr, for `--records`) until the signal has come.
#[cfg(unix)]
fn a_signal_stops_a_run_over_files_and_leaves_no_parquet_file() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;

    // Many inputs (the fixtures again and again) for far more output than pipes hold.
    let caps: Vec<PathBuf> = (0..40).flat_map(|_| fixture_captures()).collect();
    let dir = tempfile::tempdir().unwrap();
    for (signal, records) in [
        (libc::SIGINT, false),
        (libc::SIGTERM, false),
        (libc::SIGINT, true),
    ] {
        let out = dir.path().join(format!("out-{signal}-{records}.parquet"));
        let mut args = vec![os("--threads"), os("2")];
        if records {
            args.extend([os("--records"), out.as_os_str()]);
        } else {
            args.extend([os("--format"), os("ndjson"), os("--out"), out.as_os_str()]);
        }
        args.extend(caps.iter().map(|p| p.as_os_str()));
        let mut child = spawn_piped(&args);
        let what = format!("signal {signal}, records {records}");
        // Under way: the temporary file is there and the output has filled its pipe.
        let tmp = dir
            .path()
            .join(format!("out-{signal}-{records}.parquet.tmp"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !tmp.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(tmp.exists(), "{what}: no temporary file");
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: finished before the signal (give it more input)"
        );
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: a plain system call on our own child, not yet waited for.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        // Let it write again, and see it end.
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let drain = std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
        });
        let mut err = String::new();
        stderr.read_to_string(&mut err).unwrap();
        drain.join().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), None, "{what}: killed by the signal: {err}");
        assert_eq!(status.code(), Some(128 + signal), "{what}: {err}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("error:") && l.ends_with("interrupted")),
            "{what}: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{what}: left behind {left:?}");
    }
}

/// analyze's own results file, written into the folder it read, is not an input of the next
/// run of that folder; named on the command line, it is refused with a word on what it is.
fn results_files_are_not_inputs() {
    let (cap, _) = small_capture_with_lines(".pcap");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&cap, dir.path().join("a.pcap")).unwrap();
    let first = run_ok(&[os("--format"), os("p0f"), dir.path().as_os_str()]);
    let res = dir.path().join("res.parquet");
    run_ok(&[
        os("--format"),
        os("p0f"),
        os("--out"),
        res.as_os_str(),
        dir.path().as_os_str(),
    ]);
    assert!(res.exists());
    assert_eq!(
        run_ok(&[os("--format"), os("p0f"), dir.path().as_os_str()]),
        first
    );
    assert_exit_2(&[res.as_os_str()], &["res.parquet", "results file"]);
}

/// A recording whose live capture sampled (`--max-syn-rate`) or lost SYNs carries the
/// counters in its metadata; the report and the JSON show them as SYNs not recorded, so a
/// sampled minute never reads as complete. A recording without them shows no such rows.
fn a_sampled_or_lossy_capture_says_so() {
    use formats::meta::{RecordType, RecordingMeta};
    let dir = tempfile::tempdir().unwrap();
    let mut recs = Vec::new();
    formats::pcap::open(&fixture_captures()[0])
        .unwrap()
        .run(&mut recs)
        .unwrap();
    assert!(!recs.is_empty());
    let write = |name: &str, extra: &[(&str, &str)]| {
        let path = dir.path().join(name);
        let mut meta = RecordingMeta::new(RecordType::Syn);
        meta.extra = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut w = formats::syn::SynWriter::create(&path, &meta, Default::default()).unwrap();
        w.write_all(&recs).unwrap();
        w.close().unwrap();
        path
    };
    let sampled = write(
        "sampled.parquet",
        &[
            ("max_syn_rate", "1000"),
            ("syn_sampled_out", "1234"),
            ("ringbuf_full", "5"),
            ("syn_unparsed", "0"),
        ],
    );
    let table = run_ok(&[sampled.as_os_str()]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(&format!("SYN not recorded: {name}")))
            .map(|l| l.split_whitespace().last().unwrap_or_default().to_string())
    };
    assert_eq!(
        row("sampled out by the capture's flood guard").as_deref(),
        Some("1234"),
        "{table}"
    );
    assert_eq!(
        row("capture ring buffer full").as_deref(),
        Some("5"),
        "{table}"
    );
    assert_eq!(
        row("headers unreadable at capture"),
        None,
        "zero counts add no row"
    );
    let json: Value =
        serde_json::from_str(&run_ok(&[os("--format"), os("json"), sampled.as_os_str()])).unwrap();
    let lost = &json["summary"]["totals"]["syn_not_recorded"];
    assert_eq!(
        lost["sampled out by the capture's flood guard"], 1234,
        "{lost}"
    );
    assert_eq!(lost["capture ring buffer full"], 5, "{lost}");

    let complete = write("complete.parquet", &[]);
    let table = run_ok(&[complete.as_os_str()]);
    assert!(!table.contains("SYN not recorded"), "{table}");
}
