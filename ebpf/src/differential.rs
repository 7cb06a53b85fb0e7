//! Host test: the datapath parser and `formats::pcap` must agree on every packet.
//!
//! Both are fed the same Ethernet frames - hand-made edge cases, every frame of the bundled
//! captures and (with `--ignored`, as CI runs it) of the shared corpus - and must produce the
//! same record for each SYN (all fields except `source`, `direction`, `ifindex`, `ts_ns`, which the
//! producers own) and the same flow key, direction, byte count and flags for every TCP packet.

use std::path::{Path, PathBuf};

use formats::pcap::{LinkType, parse_packet};
use record::{FlowKey, SynRecord};

use crate::flow::{AlignedKey, flow_key};
use crate::parse::{MAX_IPV6_EXT, Parsed, parse};

const ETHERNET: LinkType = LinkType(1);

/// The facts both sides produce for one frame: `None` when it is not a usable TCP packet;
/// otherwise flow key, direction, l3 bytes, flags and the SYN record when one is made.
type Facts = Option<(FlowKey, u8, u64, u16, Option<SynRecord>)>;

fn ours(frame: &[u8]) -> Facts {
    let mut rec = SynRecord::ZERO;
    match parse(frame, &mut rec) {
        Parsed::NotTcp => None,
        Parsed::Tcp {
            l3_bytes, syn_ok, ..
        } => {
            let mut key = AlignedKey(FlowKey::new(0, [0; 16], 0, [0; 16], 0).0);
            let dir = flow_key(&rec, &mut key);
            let key = key.0;
            if syn_ok {
                // Userspace counts a recorded SYN in its flow from the record alone.
                assert_eq!(rec.l3_bytes(), u64::from(l3_bytes), "{rec:?}");
            }
            Some((
                key,
                dir,
                u64::from(l3_bytes),
                rec.tcp_flags,
                syn_ok.then_some(rec),
            ))
        }
    }
}

fn theirs(frame: &[u8]) -> Facts {
    let p = parse_packet(ETHERNET, 0, 0, frame).ok()?;
    let syn = match p.syn {
        Some(Ok(mut r)) => {
            // Producer-owned fields; the kernel sees whole packets, never snapped ones.
            r.source = 0;
            r.direction = 0;
            r.record_flags &= !record::record_flag::SNAPPED;
            Some(r)
        }
        _ => None,
    };
    Some((p.key, p.dir, p.l3_bytes, p.tcp_flags, syn))
}

fn pcap_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            pcap_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "pcap" || x == "cap") {
            out.push(p);
        }
    }
}

#[test]
fn ipv6_walk_bound_matches_formats() {
    assert_eq!(MAX_IPV6_EXT, formats::pcap::MAX_IPV6_EXT);
}

#[test]
fn agrees_with_formats_pcap_on_bundled_captures() {
    agrees_on_captures_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pcap"));
}

#[test]
#[ignore = "needs the shared corpus ($SYNSCOPE_PCAPS or ../shared/pcaps): run with --ignored"]
fn agrees_with_formats_pcap_on_corpus_captures() {
    agrees_on_captures_under(&testkit::require_shared_pcaps());
}

/// Every whole Ethernet frame of the classic pcap files under `dir`.
fn agrees_on_captures_under(dir: &Path) {
    let mut files = Vec::new();
    pcap_files(dir, &mut files);
    assert!(!files.is_empty(), "no pcap files under {}", dir.display());
    let (mut frames, mut tcp, mut syns, mut used_files) = (0u64, 0u64, 0u64, 0u64);
    let mut mismatches = Vec::new();
    for f in &files {
        let Ok(file) = std::fs::File::open(f) else {
            continue;
        };
        let Ok(mut rd) = pcap_file::pcap::PcapReader::new(std::io::BufReader::new(file)) else {
            continue; // pcapng or damaged: not this test's business
        };
        if rd.header().datalink != pcap_file::DataLink::ETHERNET {
            continue;
        }
        used_files += 1;
        while let Some(Ok(pkt)) = rd.next_packet() {
            frames += 1;
            // Only whole frames: the kernel never sees a snapped packet.
            if pkt.data.len() < pkt.orig_len as usize {
                continue;
            }
            let (a, b) = (ours(&pkt.data), theirs(&pkt.data));
            if a.is_some() {
                tcp += 1;
            }
            if matches!(a, Some((_, _, _, _, Some(_)))) {
                syns += 1;
            }
            if a != b && mismatches.len() < 5 {
                mismatches.push(format!("{}: ours {a:?}\n theirs {b:?}", f.display()));
            }
        }
    }
    eprintln!("{used_files} ethernet pcaps, {frames} frames, {tcp} tcp, {syns} SYN records");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert!(syns > 0, "no SYNs compared: the test would prove nothing");
}
