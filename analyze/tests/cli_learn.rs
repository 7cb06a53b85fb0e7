//! The User-Agent as ground truth, on the real binary: the agreement section and the
//! `ua_os` columns, and `--suggest-sigs`, on `fixtures/learn/learn.pcap`, whose hosts' SYN
//! signatures and User-Agents are known by construction (`fixtures/learn/make_pcap.py`).
//!
//! The expected agreement is derived from p0f 3.09b's own log of the capture
//! (`learn.p0f.log`) and p0f.fp's `ua_os` list, not from synscope's code.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;

use common::{analyze, root};
use serde_json::Value;

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn capture() -> PathBuf {
    root().join("fixtures/learn/learn.pcap")
}

fn run_ok(args: &[&OsStr]) -> String {
    let o = analyze(args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// p0f.fp's `ua_os` list, in order: the OS, the User-Agent text naming it.
const UA_OS: [(&str, &str); 9] = [
    ("Linux", "Linux"),
    ("Windows", "Windows"),
    ("iOS", "iPad"),
    ("iOS", "iPhone"),
    ("Mac OS X", "Mac OS X"),
    ("FreeBSD", "FreeBSD"),
    ("OpenBSD", "OpenBSD"),
    ("NetBSD", "NetBSD"),
    ("Solaris", "SunOS"),
];

fn class(os: &str) -> &'static str {
    if os == "Windows" { "win" } else { "unix" }
}

/// `field=value` of a p0f log line.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split('|')
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    hosts: u64,
    unknown: u64,
    generic: u64,
    class_agree: u64,
    name_agree: u64,
}

/// The agreement p0f's log implies: each client's SYN label against the OS its request's
/// User-Agent names.
fn from_p0f_log() -> Counts {
    let log = std::fs::read_to_string(root().join("fixtures/learn/learn.p0f.log")).unwrap();
    let mut syn: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let mut ua: BTreeMap<String, &str> = BTreeMap::new();
    for l in log.lines() {
        let host = field(l, "cli")
            .and_then(|c| c.split('/').next())
            .unwrap()
            .to_string();
        if l.contains("mod=syn|") {
            let generic = field(l, "params") == Some("generic");
            syn.insert(host, (field(l, "os").unwrap().to_string(), generic));
        } else if l.contains("mod=http request|") && !l.contains("dishonest") {
            let software = field(l, "raw_sig").unwrap().splitn(4, ':').nth(3).unwrap();
            if let Some((os, _)) = UA_OS.iter().find(|(_, s)| software.contains(s)) {
                ua.insert(host, os);
            }
        }
    }
    let mut c = Counts::default();
    for (host, os) in &ua {
        let Some((label, generic)) = syn.get(host) else {
            continue;
        };
        c.hosts += 1;
        c.generic += u64::from(*generic);
        if label == "???" {
            c.unknown += 1;
            continue;
        }
        let name = UA_OS.iter().map(|(n, _)| *n).find(|n| label.starts_with(n));
        c.name_agree += u64::from(name == Some(*os));
        c.class_agree += u64::from(name.is_some_and(|n| class(n) == class(os)));
    }
    c
}

#[test]
fn agreement_follows_p0fs_own_lines() {
    let want = from_p0f_log();
    assert_eq!(want.hosts, 12, "the capture's construction");
    let doc: Value = serde_json::from_str(&run_ok(&[
        os("--format"),
        os("json"),
        capture().as_os_str(),
    ]))
    .unwrap();
    let a = &doc["summary"]["user_agent_agreement"];
    let n = |k: &str| a[k].as_u64().unwrap_or_else(|| panic!("{k} in {a}"));
    let got = Counts {
        hosts: n("hosts"),
        unknown: n("unknown"),
        generic: n("generic"),
        class_agree: n("class_agree"),
        name_agree: n("name_agree"),
    };
    assert_eq!(got, want);
    // One signature per host here.
    assert_eq!(n("host_signatures"), want.hosts);
    assert_eq!(n("mixed_hosts"), 0);
    // The HTTP request rows say which OS their User-Agent names.
    let obs = doc["observations"].as_array().unwrap();
    let requests: Vec<&Value> = obs
        .iter()
        .filter(|o| o["module"] == "http request")
        .collect();
    assert_eq!(requests.len(), 12);
    for r in requests {
        let want = if r["client_addr"] == "192.0.2.45"
            || r["client_addr"]
                .as_str()
                .unwrap()
                .split('.')
                .nth(3)
                .unwrap()
                .parse::<u8>()
                .unwrap()
                <= 5
        {
            ("Windows", "win")
        } else {
            ("Linux", "unix")
        };
        assert_eq!(
            (r["ua_os"].as_str(), r["ua_os_class"].as_str()),
            (Some(want.0), Some(want.1)),
            "{r}"
        );
    }
    // The table has the section, with group A's signature among the disagreeing ones.
    let table = run_ok(&[capture().as_os_str()]);
    assert!(table.contains("SYN labels vs User-Agent OS"), "{table}");
    assert!(table.contains("mss,nop,nop,sok,nop,ws"), "{table}");
}

/// The active (not commented) lines of a database file.
fn active(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .map(str::to_string)
        .collect()
}

fn suggest(extra: &[&OsStr]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("learned.fp");
    let mut args = vec![os("--quiet"), os("--suggest-sigs"), out.as_os_str()];
    args.extend_from_slice(extra);
    let cap = capture();
    args.push(cap.as_os_str());
    run_ok(&args);
    std::fs::read_to_string(&out).unwrap()
}

#[test]
fn suggested_signatures_follow_the_evidence_and_load_after_p0f_fp() {
    let text = suggest(&[]);
    // Group A: five hosts with a Windows User-Agent, MSS 1460 and 1400, which p0f.fp calls
    // a generic Linux; group B has two hosts only, group C is labelled right.
    assert_eq!(
        active(&text),
        [
            "[tcp:request]",
            "label = s:win:Windows:(learned)",
            "sig   = 4:64:0:*:65535,8:mss,nop,nop,sok,nop,ws:df,id+:0",
        ],
        "{text}"
    );
    assert!(text.contains("; evidence: 5 hosts whose User-Agent names Windows, 0 conflicting hosts, 5 observations;"), "{text}");
    assert!(
        text.contains("; generalised: mss * (seen: 1400, 1460)"),
        "{text}"
    );
    assert!(
        text.contains("before: Linux 2.2.x-3.x (no timestamps) (generic); in: learn.pcap"),
        "{text}"
    );
    assert!(
        text.contains("first seen 2023-11-14 22:13:20 UTC"),
        "{text}"
    );

    // Loaded after the bundled files, it labels group A's hosts and nothing else.
    let dir = tempfile::tempdir().unwrap();
    let fp = dir.path().join("learned.fp");
    std::fs::write(&fp, &text).unwrap();
    let lines = run_ok(&[
        os("--format"),
        os("p0f"),
        os("--db"),
        os("builtin:p0f.fp"),
        os("--db"),
        os("builtin:synscope.fp"),
        os("--db"),
        fp.as_os_str(),
        capture().as_os_str(),
    ]);
    let learned: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains("|os=Windows (learned)|"))
        .filter_map(|l| field(l, "cli"))
        .collect();
    assert_eq!(
        learned,
        [
            "192.0.2.1/41001",
            "192.0.2.2/41002",
            "192.0.2.3/41003",
            "192.0.2.4/41004",
            "192.0.2.5/41005"
        ]
    );
}

#[test]
fn hosts_below_the_threshold_give_no_suggestion() {
    // Five hosts are not six.
    let text = suggest(&[os("--suggest-min-hosts"), os("6")]);
    assert!(active(&text).is_empty(), "{text}");
    assert!(text.starts_with(";"));
    // Two are enough for group B when two are asked for (and for each of group A's MSS).
    let text = suggest(&[os("--suggest-min-hosts"), os("2")]);
    let lines = active(&text);
    assert!(
        lines.contains(&"sig   = 4:64:0:1460:65535,0:mss,sok,ts:df,id+:0".to_string()),
        "{text}"
    );
    assert!(
        lines.contains(&"label = s:unix:Linux:(learned)".to_string()),
        "{text}"
    );
}

#[test]
fn bad_thresholds_exit_2() {
    let o = analyze(&[
        os("--suggest-sigs"),
        os("/dev/null"),
        os("--suggest-max-conflict"),
        os("1.5"),
        capture().as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: "));
}
