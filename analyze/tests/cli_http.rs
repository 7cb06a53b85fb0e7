//! `analyze --format p0f` on the HTTP fixtures (`fixtures/http/*.pcap`): the real binary's
//! lines against p0f 3.09b's own logs beside them (`*.p0f.log`, made by
//! `fixtures/http/make_logs.sh`), read as pcap and as pcapng, with one reader thread and with
//! several small windows (`--chunk-bytes` is not a CLI option, so several threads on the
//! sequential fixtures check only that threads do not change the lines); and each capture
//! converted with `analyze --records`, whose recording must give the capture's lines.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{analyze, root};

fn fixture(name: &str) -> PathBuf {
    root().join("fixtures/http").join(name)
}

fn golden(pcap: &Path) -> Vec<String> {
    let log = pcap.with_extension("p0f.log");
    std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn ours(file: &Path, threads: &str) -> Vec<String> {
    let out = analyze(&[
        OsStr::new("--quiet"),
        OsStr::new("--threads"),
        OsStr::new(threads),
        OsStr::new("--format"),
        OsStr::new("p0f"),
        file.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn http(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("] mod=http "))
        .cloned()
        .collect()
}

/// The same packets as a pcapng file (one Ethernet interface, enhanced packet blocks,
/// microsecond timestamps), so the pcapng reader's path is driven too.
fn to_pcapng(pcap: &Path, out: &Path) {
    let data = std::fs::read(pcap).unwrap();
    let le = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
    assert_eq!(le(0), 0xa1b2_c3d4, "a little-endian microsecond pcap");
    let mut ng = Vec::new();
    let block = |ng: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let len = 12 + body.len().next_multiple_of(4);
        ng.extend_from_slice(&kind.to_le_bytes());
        ng.extend_from_slice(&(len as u32).to_le_bytes());
        ng.extend_from_slice(body);
        ng.resize(ng.len() + body.len().next_multiple_of(4) - body.len(), 0);
        ng.extend_from_slice(&(len as u32).to_le_bytes());
    };
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut ng, 0x0a0d_0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&(le(20) as u16).to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65535u32.to_le_bytes());
    block(&mut ng, 1, &idb);
    let mut at = 24;
    while at + 16 <= data.len() {
        let (secs, usecs, caplen, len) = (le(at), le(at + 4), le(at + 8), le(at + 12));
        let ts = u64::from(secs) * 1_000_000 + u64::from(usecs);
        let frame = &data[at + 16..at + 16 + caplen as usize];
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&caplen.to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(frame);
        block(&mut ng, 6, &epb);
        at += 16 + caplen as usize;
    }
    std::fs::write(out, ng).unwrap();
}

/// Captures where every p0f line comes out, in order, HTTP lines included.
#[test]
fn http_fixtures_give_p0f_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let mut http_lines = 0;
    for name in ["browsers.pcap", "host_checks.pcap", "segmented.pcap"] {
        let pcap = fixture(name);
        let want = golden(&pcap);
        http_lines += http(&want).len();
        let ng = tmp.path().join(name).with_extension("pcapng");
        to_pcapng(&pcap, &ng);
        for (file, threads) in [(&pcap, "1"), (&pcap, "3"), (&ng, "1")] {
            assert_eq!(
                ours(file, threads),
                want,
                "{} with {threads} threads",
                file.display()
            );
        }
    }
    assert!(http_lines >= 10, "only {http_lines} http lines");
}

/// `malformed.pcap`: every p0f HTTP line comes out, in order. One connection has the server
/// speak first (an SMTP banner on port 80): p0f gives up on it, but analyze's filter
/// (`formats::pcap::HttpFilter`) only follows a flow from its first HTTP-looking payload, so
/// it reports the request that follows; that line is the one extra allowed.
#[test]
fn malformed_fixture_loses_no_p0f_line() {
    let pcap = fixture("malformed.pcap");
    let want = http(&golden(&pcap));
    assert!(!want.is_empty());
    let got = http(&ours(&pcap, "1"));
    let mut rest = got.iter();
    for w in &want {
        assert!(rest.any(|g| g == w), "missing or out of order: {w}");
    }
    assert!(
        got.len() <= want.len() + 1,
        "extra lines: {:#?}",
        got.iter().filter(|g| !want.contains(g)).collect::<Vec<_>>()
    );
}

/// `analyze --records` keeps what HTTP needs: each HTTP fixture's recording (SYN file and
/// payload file) gives exactly the capture's p0f lines, HTTP lines included and in the same
/// place, with one decoding thread and several; and so p0f's own HTTP lines (all of them,
/// except for `malformed.pcap`'s one allowed extra, see above).
#[test]
fn recordings_give_the_captures_http_lines() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "browsers.pcap",
        "host_checks.pcap",
        "segmented.pcap",
        "malformed.pcap",
    ] {
        let pcap = fixture(name);
        let rec = tmp.path().join(name).with_extension("parquet");
        let out = analyze(&[
            OsStr::new("--quiet"),
            OsStr::new("--records"),
            rec.as_os_str(),
            pcap.as_os_str(),
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let payload = formats::files::payload_path_for(&rec);
        assert!(payload.is_file(), "{name}: no {}", payload.display());
        let from_pcap = ours(&pcap, "1");
        let want_http = http(&golden(&pcap));
        assert!(!want_http.is_empty(), "{name}: p0f saw HTTP");
        assert!(!http(&from_pcap).is_empty(), "{name}: no HTTP lines");
        for threads in ["1", "3"] {
            let from_rec = ours(&rec, threads);
            assert_eq!(from_rec, from_pcap, "{name}: recording, {threads} threads");
        }
        let got_http = http(&from_pcap);
        if name == "malformed.pcap" {
            let extra: Vec<_> = got_http.iter().filter(|g| !want_http.contains(g)).collect();
            assert!(extra.len() <= 1, "{name}: {extra:#?}");
        } else {
            assert_eq!(got_http, want_http, "{name}: HTTP lines against p0f's");
        }
        // Without the payload file (a recording made before there were any) the recording
        // still replays, to the SYN-side lines alone.
        std::fs::remove_file(&payload).unwrap();
        let bare = ours(&rec, "1");
        assert!(http(&bare).is_empty(), "{name}: HTTP lines without payload");
    }
}
