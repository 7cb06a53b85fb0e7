//! File-level ingestion tests on the committed fixtures (`fixtures/pcap/`) and on captures
//! written in the test with pcap-file's writers.
//!
//! Expected values come from tshark (noted where used) or from the inputs the test wrote, never
//! from this crate's output.

use std::borrow::Cow;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etherparse::PacketBuilder;
use formats::pcap::{self, CaptureReader, Collect, Format, LinkType, PcapError, SkipReason};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{PcapNgWriter, RawBlock};
use pcap_file::{DataLink, Endianness, TsResolution};
use record::{SynRecord, flow_dir};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/pcap")
        .join(rel)
}

fn ingest(rel: &str) -> (Collect, pcap::IngestStats) {
    let mut sink = Collect::default();
    let stats = pcap::open(&fixture(rel))
        .and_then(|mut r| r.run(&mut sink))
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(stats.packets, stats.tcp + stats.skipped_total(), "{rel}");
    for r in &sink.records {
        assert!(r.is_canonical(), "{rel}");
    }
    (sink, stats)
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0; 16];
    x[..4].copy_from_slice(&a);
    x
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Every fixture gives the golden counts (the same rows the corpus sweep uses).
#[test]
fn fixtures_match_golden_counts() {
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/golden/syn-counts.tsv"),
    )
    .unwrap();
    let mut seen = 0;
    for line in golden.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols[0] == "file" || !fixture(cols[0]).is_file() {
            continue;
        }
        assert!(
            cols.get(3).is_none_or(|e| e.is_empty()),
            "fixture is an exception"
        );
        let (_, stats) = ingest(cols[0]);
        let want: (u64, u64) = (cols[1].parse().unwrap(), cols[2].parse().unwrap());
        assert_eq!((stats.syn, stats.syn_ack), want, "{}", cols[0]);
        seen += 1;
    }
    let bundled = std::fs::read_dir(fixture(""))
        .unwrap()
        .flat_map(|project| {
            std::fs::read_dir(project.unwrap().path())
                .into_iter()
                .flatten()
        })
        .filter(|f| {
            let name = f.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".pcap") || name.ends_with(".pcapng")
        })
        .count();
    assert!(bundled >= 15, "{bundled} bundled captures");
    assert_eq!(seen, bundled, "all fixtures are in the golden file");
}

/// Linux SLL, nanosecond pcap. Values from
/// `tshark -T fields -e frame.time_epoch -e ip.src -e tcp.srcport … -o tcp.relative_sequence_numbers:FALSE`.
#[test]
fn sll_nanosecond_fields() {
    let (c, stats) = ingest("tcpdump/tests__tcp-handshake-nano.pcap");
    assert_eq!(
        stats.link_types.keys().copied().collect::<Vec<_>>(),
        [LinkType::LINUX_SLL]
    );
    assert_eq!(c.records.len(), 2);
    let syn = &c.records[0];
    assert_eq!(syn.ts_ns, 1_418_145_369_924_505_488);
    assert_eq!(syn.src_addr, v4([131, 155, 215, 69]));
    assert_eq!((syn.src_port, syn.dst_port), (46656, 80));
    assert_eq!(
        (syn.seq, syn.ack, syn.window, syn.ttl),
        (797_190_859, 0, 27200, 64)
    );
    assert_eq!(syn.tcp_hdr_len, 40);
    assert_eq!(
        syn.options(),
        hex("020405500402080a436a03620000000001030307")
    );
    let sa = &c.records[1];
    assert!(sa.is_syn_ack());
    assert_eq!(sa.ts_ns, 1_418_145_370_052_027_262);
    assert_eq!(
        (sa.seq, sa.ack, sa.window, sa.ttl),
        (3_078_856_592, 797_190_860, 8192, 117)
    );
    assert_eq!(
        sa.options(),
        hex("020405a0010303080402080a0df5af50436a0362")
    );
}

/// pcapng with dozens of interfaces; the packets are on interface 48 (tshark
/// `frame.interface_id`), microsecond resolution.
#[test]
fn pcapng_interface_id_and_time() {
    let (c, _) = ingest("zeek/testing__btest__Traces__ldap__modify-request.pcapng");
    assert_eq!(c.records.len(), 2);
    assert!(c.records.iter().all(|r| r.ifindex == 48));
    let syn = &c.records[0];
    assert_eq!(syn.ts_ns, 1_725_966_551_231_155_000);
    assert_eq!(syn.src_addr, v6("2a00:6020:ad0b:8381:c8c2:18f1:4b9d:7524"));
    assert_eq!(
        (syn.src_port, syn.dst_port, syn.seq),
        (49695, 389, 2_903_845_870)
    );
    assert_eq!((syn.ip_version, syn.ttl, syn.window), (6, 64, 64800));
    assert_eq!(syn.options(), hex("020405a00103030801010402"));
    assert_eq!(c.records[1].ts_ns, 1_725_966_551_231_413_000);
}

/// IPv6 with a type-0 routing header: tshark `ipv6.routing.len` 4 (40 bytes), `ipv6.plen` 60.
#[test]
fn ipv6_routing_header_fixture() {
    let (c, _) = ingest("zeek/testing__btest__Traces__chksums__ip6-route0-tcp-good-chksum.pcap");
    let r = &c.records[0];
    assert_eq!(
        (r.ip_hdr_len, r.ip_len, r.tcp_hdr_len, r.payload_len),
        (80, 60, 20, 0)
    );
    assert_eq!(r.src_addr, v6("2001:4f8:4:7:2e0:81ff:fe52:ffff"));
    assert_eq!((r.src_port, r.dst_port, r.window), (30000, 80, 8192));
}

/// BSD null with AF 30 (Darwin IPv6).
#[test]
fn null_link_ipv6_fixture() {
    let (c, _) = ingest("huginn-net/pcap__tls-alpn-h2.pcap");
    assert_eq!(c.records.len(), 2);
    let syn = &c.records[0];
    assert_eq!(syn.src_addr, v6("2001:4998:ef83:14:8000::100d"));
    assert_eq!((syn.seq, syn.window, syn.ttl), (857_026_346, 65535, 64));
    assert_eq!(
        syn.options(),
        hex("02040542010303060101080a6e69087c0000000004020000")
    );
    assert_eq!(c.records[1].ttl, 59);
}

/// A SYN carrying 100 bytes of payload (tshark `tcp.len`).
#[test]
fn syn_with_payload_fixture() {
    let (c, _) = ingest("zeek/testing__btest__Traces__tcp__payload-syn.pcap");
    assert_eq!(c.records[0].payload_len, 100);
    assert_eq!(c.records[0].record_flags, 0);
    assert_eq!(c.records[1].payload_len, 0);
}

/// Flow counters against tshark: 50 TCP frames whose `ip.len` sum to 2312 bytes, in 13
/// conversations (`-z conv,tcp`).
#[test]
fn flows_match_tshark_totals() {
    let (c, stats) = ingest("zeek/testing__btest__Traces__http__bro.org-filtered.pcap");
    assert_eq!(stats.tcp, 50);
    assert_eq!(c.flows.len(), 13);
    let (mut packets, mut bytes) = (0, 0);
    for f in c.flows.values() {
        packets += f.a_to_b.packets + f.b_to_a.packets;
        bytes += f.a_to_b.bytes + f.b_to_a.bytes;
    }
    assert_eq!((packets, bytes), (50, 2312));
    // Each SYN's flow saw it in the direction the key says.
    for r in &c.records {
        let (key, dir) = record::FlowKey::new(4, r.src_addr, r.src_port, r.dst_addr, r.dst_port);
        let f = &c.flows[&key];
        let d = if dir == flow_dir::A_TO_B {
            &f.a_to_b
        } else {
            &f.b_to_a
        };
        assert_ne!(d.tcp_flags & record::tcp_flag::SYN, 0);
        assert!(d.first_seen_ns <= r.ts_ns && r.ts_ns <= d.last_seen_ns);
    }
}

/// Byte offset of packet record `n` (0-based) in a classic pcap, by walking the record
/// headers (little-endian files only).
fn pcap_record_offset(bytes: &[u8], n: usize) -> usize {
    assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let mut at = 24;
    for _ in 0..n {
        let incl = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        at += 16 + incl as usize;
    }
    at
}

/// A file cut inside a packet: the readable prefix is ingested and the warning names the
/// offset of the broken record. tshark: SYN frames 1,3,4,5,6,7,… and SYN+ACK 2,8,9,10,…, so
/// the first 10 packets hold 6 SYN and 4 SYN+ACK.
#[test]
fn truncated_file_gives_prefix_and_offset() {
    let bytes = std::fs::read(fixture(
        "zeek/testing__btest__Traces__http__bro.org-filtered.pcap",
    ))
    .unwrap();
    let at = pcap_record_offset(&bytes, 10);
    for cut in [at + 16 + 5, at + 7, at + 1] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.pcap");
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let mut c = Collect::default();
        let stats = pcap::open(&path).unwrap().run(&mut c).unwrap();
        assert_eq!(stats.packets, 10, "cut {cut}");
        assert_eq!((stats.syn, stats.syn_ack), (6, 4), "cut {cut}");
        assert_eq!(stats.truncated_at, Some(at as u64), "cut {cut}");
        assert!(
            stats
                .to_string()
                .contains(&format!("unreadable from byte {at}"))
        );
    }
    // Cut exactly between records: no warning.
    let mut c = Collect::default();
    let stats = CaptureReader::new("mem".into(), Cursor::new(&bytes[..at]))
        .unwrap()
        .run(&mut c)
        .unwrap();
    assert_eq!((stats.packets, stats.truncated_at), (10, None));
}

#[test]
fn not_a_capture_and_unsupported_link_are_errors() {
    let err = pcap::open(&fixture("SOURCES.md")).err().unwrap();
    assert!(matches!(err, PcapError::NotACapture { .. }), "{err}");
    assert!(err.to_string().contains("SOURCES.md"));
    let err = pcap::open(&fixture("does-not-exist.pcap")).err().unwrap();
    assert!(matches!(err, PcapError::Io { .. }), "{err}");
    // A pcap header announcing token ring (6).
    let header = PcapHeader {
        datalink: DataLink::from(6),
        ..Default::default()
    };
    let w = PcapWriter::with_header(Vec::new(), header).unwrap();
    let err = CaptureReader::new("tr.pcap".into(), Cursor::new(w.into_writer()))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "tr.pcap: unsupported link type 6 (ieee802_5)"
    );
    let err = CaptureReader::new("empty".into(), Cursor::new(Vec::new()))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "empty: not a pcap or pcapng file (starts with nothing: empty file)"
    );
    // A header cut short.
    let err = CaptureReader::new("short".into(), Cursor::new(vec![0xd4, 0xc3, 0xb2, 0xa1, 2]))
        .err()
        .unwrap();
    assert!(matches!(err, PcapError::BadHeader { .. }), "{err}");
}

fn syn_frame(sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 51, 100, 1], [198, 51, 100, 2], 64)
        .tcp(sport, 80, 1000, 29200)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

fn raw_syn(sport: u16) -> Vec<u8> {
    syn_frame(sport)[14..].to_vec()
}

/// Big-endian nanosecond pcap, with an original length above the snap length (which
/// pcap-file's validated reader would refuse) and a SYN cut by the snap length.
#[test]
fn big_endian_nanosecond_pcap() {
    let header = PcapHeader {
        endianness: Endianness::Big,
        ts_resolution: TsResolution::NanoSecond,
        snaplen: 60,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    let frame = syn_frame(1111);
    w.write_packet(&PcapPacket::new(
        Duration::new(1_600_000_000, 7),
        54,
        &frame,
    ))
    .unwrap();
    let mut big = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([198, 51, 100, 1], [198, 51, 100, 2], 64)
        .tcp(2222, 80, 1000, 29200)
        .syn()
        .write(&mut big, &[0; 100])
        .unwrap();
    w.write_raw_packet(&pcap_file::pcap::RawPcapPacket {
        ts_sec: 1_600_000_001,
        ts_frac: 999_999_999,
        incl_len: 60,
        orig_len: big.len() as u32,
        data: Cow::Borrowed(&big[..60]),
    })
    .unwrap();
    let mut c = Collect::default();
    let mut r = CaptureReader::new("be".into(), Cursor::new(w.into_writer())).unwrap();
    assert_eq!(r.format(), Format::Pcap);
    assert_eq!(r.link_type(), Some(LinkType::ETHERNET));
    let stats = r.run(&mut c).unwrap();
    assert_eq!(stats.syn, 2);
    assert_eq!(c.records[0].ts_ns, 1_600_000_000_000_000_007);
    assert_eq!(c.records[0].src_port, 1111);
    assert_eq!(c.records[1].ts_ns, 1_600_000_001_999_999_999);
    assert_eq!(c.records[1].payload_len, 100);
    assert_eq!(c.records[1].record_flags, record::record_flag::SNAPPED);
}

/// Two interfaces with different link types and time resolutions, an interface offset, and a
/// packet naming an interface that was never described.
#[test]
fn pcapng_per_interface_link_and_time() {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let endianness = w.section().endianness;
    // Interface 0: Ethernet, default microseconds, offset +100 s.
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 0,
        options: vec![InterfaceDescriptionOption::IfTsOffset(100)],
    })
    .unwrap();
    // Interface 1: raw IP, 2^-10 s units.
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::RAW,
        snaplen: 0,
        options: vec![InterfaceDescriptionOption::IfTsResol(0x80 | 10)],
    })
    .unwrap();
    // Interface 2: nanoseconds, unsupported link type.
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::from(6),
        snaplen: 0,
        options: vec![InterfaceDescriptionOption::IfTsResol(9)],
    })
    .unwrap();
    // pcap-file writes the raw tick count it finds in `timestamp` as nanoseconds.
    let epb = |id: u32, ticks: u64, data: Vec<u8>| EnhancedPacketBlock {
        interface_id: id,
        timestamp: Duration::from_nanos(ticks),
        original_len: data.len() as u32,
        data: Cow::Owned(data),
        options: vec![],
    };
    w.write_pcapng_block(epb(0, 1_500_000_000_250_000, syn_frame(1)))
        .unwrap();
    w.write_pcapng_block(epb(1, 3 * 1024 + 512, raw_syn(2)))
        .unwrap();
    w.write_pcapng_block(epb(2, 5, raw_syn(3))).unwrap();
    // An EPB for interface 7, written by hand since the writer checks ids.
    let data = raw_syn(4);
    let mut body = Vec::new();
    let word = |v: u32| match endianness {
        Endianness::Big => v.to_be_bytes(),
        Endianness::Little => v.to_le_bytes(),
    };
    for v in [7, 0, 0, data.len() as u32, data.len() as u32] {
        body.extend_from_slice(&word(v));
    }
    body.extend_from_slice(&data);
    body.resize(body.len().div_ceil(4) * 4, 0);
    let len = 12 + body.len() as u32;
    w.write_raw_block(&RawBlock {
        type_: 6,
        initial_len: len,
        body: Cow::Owned(body),
        trailer_len: len,
    })
    .unwrap();

    let mut c = Collect::default();
    let mut r = CaptureReader::new("ng".into(), Cursor::new(w.into_inner())).unwrap();
    assert_eq!((r.format(), r.link_type()), (Format::PcapNg, None));
    let stats = r.run(&mut c).unwrap();
    assert_eq!(stats.packets, 4);
    let got: Vec<(u16, u32, u64)> = c
        .records
        .iter()
        .map(|r: &SynRecord| (r.src_port, r.ifindex, r.ts_ns))
        .collect();
    assert_eq!(
        got,
        [
            (1, 0, 1_500_000_000_250_000_000 + 100_000_000_000),
            (2, 1, 3_500_000_000),
        ]
    );
    assert_eq!(
        stats.skipped[&SkipReason::UnsupportedLinkType(LinkType(6))],
        1
    );
    assert_eq!(stats.skipped[&SkipReason::UnknownInterface], 1);
    assert_eq!(stats.link_types[&LinkType::ETHERNET], 1);
    assert_eq!(stats.link_types[&LinkType::RAW], 1);
    assert_eq!(stats.link_types[&LinkType(6)], 1);
    // Garbage after the last block: a warning at its offset, not an error.
    let mut bytes = {
        let mut w = PcapNgWriter::new(Vec::new()).unwrap();
        w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::RAW, 0))
            .unwrap();
        w.write_pcapng_block(epb(0, 1, raw_syn(9))).unwrap();
        w.into_inner()
    };
    let good = bytes.len() as u64;
    bytes.extend_from_slice(&[0xff; 10]);
    let mut c = Collect::default();
    let stats = CaptureReader::new("ng".into(), Cursor::new(bytes))
        .unwrap()
        .run(&mut c)
        .unwrap();
    assert_eq!((stats.syn, stats.truncated_at), (1, Some(good)));
}

/// Reading through a reader that hands out a few bytes at a time exercises every refill path.
#[test]
fn tiny_reads_give_the_same_records() {
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    for rel in [
        "zeek/testing__btest__Traces__ldap__modify-request.pcapng",
        "zeek/testing__btest__Traces__http__bro.org-filtered.pcap",
    ] {
        let (whole, _) = ingest(rel);
        let bytes = std::fs::read(fixture(rel)).unwrap();
        let mut c = Collect::default();
        CaptureReader::new(rel.into(), Trickle(&bytes))
            .unwrap()
            .run(&mut c)
            .unwrap();
        assert_eq!(c.records, whole.records, "{rel}");
    }
}

/// Simple packet blocks: interface 0, no timestamp, body trimmed to the original length and
/// the interface snap length (the block body includes padding).
#[test]
fn pcapng_simple_packet_blocks() {
    use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::RAW, 0))
        .unwrap();
    // 41 bytes: one byte of payload, so the block carries 3 bytes of padding.
    let mut pkt = raw_syn(5);
    pkt.push(0xaa);
    // The IP total length says 40: fix it to 41 so the payload byte is announced.
    pkt[2..4].copy_from_slice(&41u16.to_be_bytes());
    w.write_pcapng_block(SimplePacketBlock {
        original_len: pkt.len() as u32,
        data: Cow::Owned(pkt.clone()),
    })
    .unwrap();
    let mut c = Collect::default();
    let stats = CaptureReader::new("spb".into(), Cursor::new(w.into_inner()))
        .unwrap()
        .run(&mut c)
        .unwrap();
    assert_eq!((stats.syn, stats.bytes), (1, 41));
    let r = &c.records[0];
    assert_eq!(
        (r.ts_ns, r.ifindex, r.src_port, r.payload_len),
        (0, 0, 5, 1)
    );
    assert_eq!(r.record_flags, 0);
}
