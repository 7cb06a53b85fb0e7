//! HTTP fingerprints end to end: captures replayed through the engine (SYN records, other
//! packets' flags, and payload records for packets with data) give p0f 3.09b's log lines.
//!
//! `fixtures/http/*.pcap` were written for this (see `fixtures/http/README.md`), and each
//! `*.p0f.log` beside them is what `TZ=UTC p0f -r FILE -o LOG` wrote for it; every line of it
//! must come out, in order. The sweep over the shared corpus (`--ignored`) compares the
//! `mod=http` lines of every capture p0f finds HTTP in.
//!
//! The replay here is the test's own: classic pcap files, Ethernet (with VLAN tags) or raw
//! IP, IPv4 or IPv6 without extension headers, no tunnels. `formats::pcap::parse_packet`
//! makes the SYN records, as analyze's replay does.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use formats::pcap::{LinkType, parse_packet};
use p0f::log::p0f_line;
use p0f::{Database, Engine};
use record::PayloadRecord;

/// One frame of a classic pcap file: time (ns) and bytes.
fn read_pcap(path: &Path) -> (LinkType, Vec<(u64, Vec<u8>)>) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() >= 24, "{}: too short", path.display());
    let magic = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let (be, nanos) = match magic {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (false, true),
        0xd4c3_b2a1 => (true, false),
        0x4d3c_b2a1 => (true, true),
        m => panic!("{}: not a classic pcap (magic {m:#x})", path.display()),
    };
    let u32_at = |b: &[u8], at: usize| {
        let w = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if be {
            u32::from_be_bytes(w)
        } else {
            u32::from_le_bytes(w)
        }
    };
    let link = LinkType(u32_at(&data, 20));
    let mut frames = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let secs = u64::from(u32_at(&data, at));
        let frac = u64::from(u32_at(&data, at + 4));
        let caplen = u32_at(&data, at + 8) as usize;
        at += 16;
        let Some(frame) = data.get(at..at + caplen) else {
            break;
        };
        let ns = secs * 1_000_000_000 + if nanos { frac } else { frac * 1000 };
        frames.push((ns, frame.to_vec()));
        at += caplen;
    }
    (link, frames)
}

/// The payload record of a frame with TCP payload, when the test's parser can read it
/// (`None` for anything else, including frames cut short by the snap length, which p0f
/// drops).
fn payload_record(link: LinkType, ts_ns: u64, frame: &[u8]) -> Option<PayloadRecord> {
    let mut l3 = match link.0 {
        1 => {
            let mut off = 12;
            let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
            while matches!(ethertype, 0x8100 | 0x88a8 | 0x9100) {
                off += 4;
                ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
            }
            frame.get(off + 2..)?
        }
        // DLT_RAW, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6
        12 | 101 | 228 | 229 => frame,
        // BSD loopback (DLT_NULL, DLT_LOOP): a 4-byte address family
        0 | 108 => frame.get(4..)?,
        // Linux cooked capture
        113 => frame.get(16..)?,
        _ => return None,
    };
    let mut r = PayloadRecord::ZERO;
    r.ts_ns = ts_ns;
    let version = *l3.first()? >> 4;
    let (ip_hdr, total) = match version {
        4 => {
            let ihl = usize::from(l3[0] & 0x0f) * 4;
            if *l3.get(9)? != 6 {
                return None;
            }
            let frag = u16::from_be_bytes([l3[6], l3[7]]);
            if frag & 0x3fff != 0 {
                return None;
            }
            r.src_addr[..4].copy_from_slice(l3.get(12..16)?);
            r.dst_addr[..4].copy_from_slice(l3.get(16..20)?);
            (ihl, usize::from(u16::from_be_bytes([l3[2], l3[3]])))
        }
        6 => {
            if *l3.get(6)? != 6 {
                return None;
            }
            r.src_addr.copy_from_slice(l3.get(8..24)?);
            r.dst_addr.copy_from_slice(l3.get(24..40)?);
            (40, 40 + usize::from(u16::from_be_bytes([l3[4], l3[5]])))
        }
        _ => return None,
    };
    r.ip_version = version;
    if l3.len() < total {
        return None;
    }
    l3 = &l3[..total];
    let tcp = l3.get(ip_hdr..)?;
    let doff = usize::from(*tcp.get(12)? >> 4) * 4;
    let payload = tcp.get(doff..)?;
    if payload.is_empty() {
        return None;
    }
    r.src_port = u16::from_be_bytes([tcp[0], tcp[1]]);
    r.dst_port = u16::from_be_bytes([tcp[2], tcp[3]]);
    r.seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    r.tcp_flags = u16::from(tcp[13]) | (u16::from(tcp[12] & 1) << 8);
    r.payload_len = u16::try_from(payload.len()).ok()?;
    r.set_head(payload);
    Some(r)
}

/// Whether p0f's default capture filter, `tcp or (vlan and tcp)`, lets an Ethernet frame
/// through: untagged, or exactly one VLAN tag (a QinQ frame has a tag where `tcp` looks for
/// the IP ethertype). analyze's replay does not apply this yet; the sweep below does, so
/// that it compares the HTTP engine and not the capture filter.
fn p0f_filter_passes(link: LinkType, frame: &[u8]) -> bool {
    if link.0 != 1 {
        return true;
    }
    let tpid = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
    };
    let is_tag = |t: Option<u16>| matches!(t, Some(0x8100 | 0x88a8 | 0x9100));
    !(is_tag(tpid(12)) && is_tag(tpid(16)))
}

/// The lines the engine writes for a capture, timestamps in UTC.
fn replay(path: &Path) -> Vec<String> {
    let (link, frames) = read_pcap(path);
    // p0f.fp alone, as p0f has it: synscope.fp's additions would label some of its `???`.
    let db = Arc::new(Database::p0f_only().unwrap_or_else(|e| panic!("{e}")));
    let mut engine = Engine::new(db);
    let mut events = Vec::new();
    for (ts, frame) in &frames {
        if !p0f_filter_passes(link, frame) {
            continue;
        }
        let Ok(parsed) = parse_packet(link, *ts, 0, frame) else {
            continue;
        };
        match &parsed.syn {
            Some(syn) => {
                engine.tcp_packet(&parsed.key, *ts, parsed.tcp_flags);
                if let Ok(rec) = syn
                    && rec.record_flags & record::record_flag::SNAPPED == 0
                {
                    engine.process(rec, &mut events);
                }
            }
            None => match payload_record(link, *ts, frame) {
                Some(p) if p.flow_key().0 == parsed.key => {
                    engine.payload(&p, &mut events);
                }
                _ => engine.tcp_packet(&parsed.key, *ts, parsed.tcp_flags),
            },
        }
    }
    events
        .iter()
        .map(|ev| p0f_line(engine.database(), ev))
        .collect()
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/http")
}

/// Every fixture capture gives exactly p0f's lines.
#[test]
fn fixture_captures_give_p0f_lines() {
    let dir = fixtures();
    let mut pcaps: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    pcaps.sort();
    assert!(pcaps.len() >= 4, "fixtures missing in {}", dir.display());
    let mut http_lines = 0;
    for pcap in &pcaps {
        let want = log_lines(&pcap.with_extension("p0f.log"));
        let got = replay(pcap);
        http_lines += want.iter().filter(|l| l.contains("] mod=http ")).count();
        assert_eq!(got, want, "{}", pcap.display());
    }
    assert!(
        http_lines >= 10,
        "only {http_lines} http lines in the fixtures"
    );
}

/// The shared corpus: for every capture whose p0f log (made now, with the installed p0f)
/// has `mod=http` lines, the engine's `mod=http` lines are the same.
///
/// Only those lines: the others differ for reasons outside the HTTP module (no uptime from
/// non-SYN packets, whose timestamps the engine does not get; tunnels p0f does not look
/// into), and p0f's `date` host-change lines vary between runs of p0f itself (see
/// `p0f::http::parse_date`).
#[test]
#[ignore = "needs the shared corpus (SYNSCOPE_PCAPS or ../shared/pcaps) and p0f"]
fn shared_corpus_http_lines_match_p0f() {
    let dir = std::env::var_os("SYNSCOPE_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/pcaps"));
    assert!(dir.is_dir(), "no shared corpus at {}", dir.display());
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .extension()
                .is_some_and(|x| x == "pcap" || x == "trace" || x == "cap")
            {
                files.push(p);
            }
        }
    }
    files.sort();
    let tmp = std::env::temp_dir().join(format!("synscope-http-{}", std::process::id()));
    let mut compared = 0;
    let mut failures = Vec::new();
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else {
            continue;
        };
        if bytes.len() < 24
            || !matches!(
                u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
                0xa1b2_c3d4 | 0xa1b2_3c4d | 0xd4c3_b2a1 | 0x4d3c_b2a1
            )
        {
            continue;
        }
        let _ = std::fs::remove_file(&tmp);
        let status = std::process::Command::new("p0f")
            .arg("-r")
            .arg(f)
            .arg("-o")
            .arg(&tmp)
            .env("TZ", "UTC")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("p0f: {e}"));
        if !status.success() || !tmp.exists() {
            continue;
        }
        let want: Vec<String> = log_lines(&tmp)
            .into_iter()
            .filter(|l| l.contains("] mod=http "))
            .collect();
        if want.is_empty() || !matches!(read_pcap(f).0.0, 0 | 1 | 12 | 101 | 108 | 113 | 228 | 229)
        {
            // No HTTP, or a link type this test's parser does not read (ARCnet).
            continue;
        }
        compared += 1;
        let got: Vec<String> = replay(f)
            .into_iter()
            .filter(|l| l.contains("] mod=http "))
            .collect();
        if got != want {
            failures.push(format!(
                "{}:\n  want {want:#?}\n  got {got:#?}",
                f.display()
            ));
        }
    }
    let _ = std::fs::remove_file(&tmp);
    eprintln!("{compared} captures with mod=http lines compared");
    assert!(compared > 0, "no capture with HTTP lines");
    assert!(
        failures.is_empty(),
        "{} of {compared} captures differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
