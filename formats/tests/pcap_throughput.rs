//! Throughput measurement (ignored by default; run with
//! `cargo test --release -p formats --test pcap_throughput -- --ignored --nocapture`).
//!
//! Writes a pcap of `SYNSCOPE_BENCH_MB` (default 256) megabytes made of a realistic mix (one
//! handshake of a fixture per ~50 data packets of 1500 bytes) and times ingestion with and
//! without the flow table. Set `SYNSCOPE_BENCH_KEEP=path` to keep the file (for comparing with
//! p0f on the same input).

use std::borrow::Cow;
use std::io::BufWriter;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use formats::pcap::{self, Collect};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use record::SynRecord;

fn frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut syn = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 51, 100, 1], [198, 51, 100, 2], 64)
        .tcp(40000, 443, 1, 64240)
        .syn()
        .options_raw(&[
            2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ])
        .unwrap()
        .write(&mut syn, &[])
        .unwrap();
    out.push(syn);
    for i in 0..50u16 {
        let mut data = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4([198, 51, 100, 2], [198, 51, 100, 1], 64)
            .tcp(443, 40000 + i % 7, 1, 501)
            .ack(2)
            .write(&mut data, &[0u8; 1446])
            .unwrap();
        out.push(data);
    }
    // Some non-TCP traffic too.
    let mut udp = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
        .ipv4([198, 51, 100, 2], [198, 51, 100, 1], 64)
        .udp(53, 5353)
        .write(&mut udp, &[0u8; 80])
        .unwrap();
    out.push(udp);
    out
}

#[test]
#[ignore = "benchmark; run explicitly in release mode"]
fn ingest_throughput() {
    let mb: u64 = std::env::var("SYNSCOPE_BENCH_MB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("SYNSCOPE_BENCH_KEEP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("bench.pcap"));
    let frames = frames();
    let mut written = 0u64;
    let mut n = 0u64;
    {
        let f = std::fs::File::create(&path).unwrap();
        let mut w = PcapWriter::with_header(BufWriter::new(f), PcapHeader::default()).unwrap();
        while written < mb << 20 {
            for fr in &frames {
                let ts = Duration::from_micros(1_700_000_000_000_000 + n);
                w.write_packet(&PcapPacket {
                    timestamp: ts,
                    orig_len: fr.len() as u32,
                    data: Cow::Borrowed(fr),
                })
                .unwrap();
                written += 16 + fr.len() as u64;
                n += 1;
            }
        }
    }
    let run = |flows: bool| {
        let t = Instant::now();
        let stats = if flows {
            let mut sink = Collect::default();
            pcap::open(&path).unwrap().run(&mut sink).unwrap()
        } else {
            let mut sink: Vec<SynRecord> = Vec::new();
            pcap::open(&path).unwrap().run(&mut sink).unwrap()
        };
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "{} flows: {} packets, {:.0} MB in {secs:.3}s = {:.2} Mpkt/s, {:.0} MB/s; {stats}",
            if flows { "with" } else { "without" },
            stats.packets,
            written as f64 / 1e6,
            stats.packets as f64 / secs / 1e6,
            written as f64 / secs / 1e6,
        );
        assert_eq!(stats.packets, n);
    };
    // Once to warm the page cache, then measured.
    run(false);
    run(false);
    run(true);
}
