//! One captured frame -> one [`SynRecord`] (or flow update), the same way the kernel datapath
//! reads a packet.
//!
//! The rules, which `ebpf` follows too:
//! - IPv4: any header length 20..=60; fragments (MF set or offset != 0) are skipped because the
//!   TCP header is either absent or not the whole story.
//! - IPv6: hop-by-hop (0), routing (43) and destination-options (60) headers are walked, at most
//!   [`MAX_IPV6_EXT`] of them; a fragment header (44) skips the packet; any other next header is
//!   "not tcp".
//! - TCP: the 20-byte base header must be captured for the packet to count at all (flows need
//!   ports and flags). A SYN additionally needs its whole option area (that is what p0f reads)
//!   and a data offset of at least 5 words; otherwise the flow is still updated but no record is
//!   made ("truncated tcp header" / "bad tcp header"), as the kernel does. The payload may be
//!   cut by the snap length: the record then carries [`record_flag::SNAPPED`] and the length
//!   the IP header announced.
//! - Every field is copied raw; nothing is judged here (odd flags, malformed options, bogus
//!   lengths are the fingerprinting engine's business).
//!
//! Most frames of a capture are TCP segments without SYN, or UDP, which need only a few fixed
//! fields. [`fast`] reads exactly those with plain bounds-checked loads and hands every other
//! frame (SYNs, IPv4 headers etherparse would reject, IPv6 extension headers) to the general
//! path, which slices with etherparse and stays the definition; a test checks the two agree.

use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, TcpHeaderSlice, err};
use record::{
    FlowKey, SynRecord, TCP_OPTS_MAX, direction, flow_dir, record_flag, source, tcp_flag,
};

use super::SkipReason;
use super::link::{self, LinkType, Net};

/// Most IPv6 extension headers walked before giving up. Must equal the datapath's unrolled
/// loop bound (`ebpf::parse::MAX_IPV6_EXT`), or the two would disagree on such packets.
pub use record::MAX_IPV6_EXT;

/// IP protocol numbers used below.
const IPPROTO_TCP: u8 = 6;
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DSTOPTS: u8 = 60;

/// A TCP packet, as the flow table and the SYN stream see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The flow the packet belongs to.
    pub key: FlowKey,
    /// Its direction relative to `key` ([`record::flow_dir`]).
    pub dir: u8,
    /// Layer-3 bytes: IPv4 total length, or 40 + IPv6 payload length (as the header says).
    pub l3_bytes: u64,
    /// TCP flags ([`tcp_flag`] bits).
    pub tcp_flags: u16,
    /// `None` when SYN is clear; when it is set, the record, or why none could be made (the
    /// packet still counts for its flow).
    pub syn: Option<Result<SynRecord, SkipReason>>,
}

/// The IP-layer facts the TCP step needs.
struct Ip<'a> {
    version: u8,
    src: [u8; 16],
    dst: [u8; 16],
    /// IPv4 total length / IPv6 payload length, as in the header.
    ip_len: u16,
    ip_id: u16,
    ip_frag: u16,
    hdr_len: u16,
    ttl: u8,
    tos: u8,
    flow_label: u32,
    /// Bytes from the start of the IP header as announced by the header.
    l3_bytes: u64,
    /// Bytes from the start of the IP header actually captured.
    captured: usize,
    /// What follows the IP header (and extension headers).
    tcp: &'a [u8],
}

/// Decodes one captured frame.
///
/// Pure and allocation-free, so callers may run it on any thread. `ts_ns` and `ifindex` are
/// copied into the record unchanged. Returns why the frame was skipped when it carries no TCP
/// header we can read.
///
/// Always inlined so the caller (the reader's per-frame loop) gets the fast path's result in
/// registers instead of a ~200-byte `Result<Parsed, _>` written to and read back through memory
/// (with plain `#[inline]` LLVM kept it out of line; that cost about a quarter of the remaining
/// parse time on the benchmark capture). What gets inlined is small: the Ethernet strip and
/// `fast`; other link types and the general path are single out-of-line functions.
#[inline(always)]
pub fn parse_packet(
    link: LinkType,
    ts_ns: u64,
    ifindex: u32,
    data: &[u8],
) -> Result<Parsed, SkipReason> {
    let (net, l3) = link::strip(link, data)?;
    match fast(net, l3) {
        Some(parsed) => parsed,
        None => general(net, l3, ts_ns, ifindex),
    }
}

/// The general path: every IP header etherparse accepts, IPv6 extension headers, SYN records.
/// It defines the result; [`fast`] only shortcuts cases where it provably gives the same.
#[inline(never)]
fn general(net: Net, l3: &[u8], ts_ns: u64, ifindex: u32) -> Result<Parsed, SkipReason> {
    let version = match net {
        Net::V4 => 4,
        Net::V6 => 6,
        Net::Either => match l3.first() {
            Some(b) if b >> 4 == 4 => 4,
            Some(b) if b >> 4 == 6 => 6,
            Some(_) => return Err(SkipReason::BadIpHeader),
            None => return Err(SkipReason::TruncatedIpHeader),
        },
    };
    let ip = if version == 4 { ipv4(l3)? } else { ipv6(l3)? };
    tcp(&ip, ts_ns, ifindex)
}

/// The common cases, answered from a few fixed-offset loads: `None` hands the frame to
/// [`general`].
///
/// Taken: IPv4 whose first byte and length etherparse's `Ipv4HeaderSlice` accepts (version 4,
/// header length 20..=60 and all of it captured), and IPv6 with a captured 40-byte header,
/// version 6 and a next header that is TCP or not one we walk. For those the answer is
/// "not tcp", "fragment", "truncated tcp header" or a TCP packet without SYN, exactly as
/// [`general`] gives it. SYNs are left to [`general`], which builds their record from
/// etherparse's TCP slice. Builds no `Ip` (no 16-byte addresses copied twice) before it knows
/// the frame is TCP.
#[inline(always)]
fn fast(net: Net, l3: &[u8]) -> Option<Result<Parsed, SkipReason>> {
    let version = match net {
        Net::V4 => 4,
        Net::V6 => 6,
        Net::Either => *l3.first()? >> 4,
    };
    match version {
        4 => fast_v4(l3),
        6 => fast_v6(l3),
        _ => None,
    }
}

#[inline(always)]
fn fast_v4(l3: &[u8]) -> Option<Result<Parsed, SkipReason>> {
    let h = l3.first_chunk::<20>()?;
    // What `Ipv4HeaderSlice::from_slice` checks; anything it would reject goes the long way.
    let ihl = usize::from(h[0] & 0x0f);
    if h[0] >> 4 != 4 || ihl < 5 {
        return None;
    }
    let tcp = l3.get(ihl * 4..)?;
    if h[9] != IPPROTO_TCP {
        return Some(Err(SkipReason::NotTcp));
    }
    let ip_frag = u16::from_be_bytes([h[6], h[7]]);
    if ip_frag & (record::ip_frag::MF | record::ip_frag::OFFSET_MASK) != 0 {
        return Some(Err(SkipReason::Fragment));
    }
    let total_len = u16::from_be_bytes([h[2], h[3]]);
    let src = v4_addr([h[12], h[13], h[14], h[15]]);
    let dst = v4_addr([h[16], h[17], h[18], h[19]]);
    fast_tcp(4, src, dst, u64::from(total_len), tcp)
}

#[inline(always)]
fn fast_v6(l3: &[u8]) -> Option<Result<Parsed, SkipReason>> {
    let (h, tcp) = l3.split_first_chunk::<40>()?;
    if h[0] >> 4 != 6 {
        return None;
    }
    match h[6] {
        IPPROTO_TCP => {}
        IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS | IPV6_FRAGMENT => return None,
        _ => return Some(Err(SkipReason::NotTcp)),
    }
    let payload_len = u16::from_be_bytes([h[4], h[5]]);
    let src = h[8..24].try_into().ok()?;
    let dst = h[24..40].try_into().ok()?;
    fast_tcp(6, src, dst, 40 + u64::from(payload_len), tcp)
}

/// The TCP step of [`fast`]: `None` for SYNs, which need a record.
#[inline(always)]
fn fast_tcp(
    version: u8,
    src: [u8; 16],
    dst: [u8; 16],
    l3_bytes: u64,
    tcp: &[u8],
) -> Option<Result<Parsed, SkipReason>> {
    let Some((sport, dport, tcp_flags)) = tcp_base(tcp) else {
        return Some(Err(SkipReason::TruncatedTcpHeader));
    };
    if tcp_flags & tcp_flag::SYN != 0 {
        return None;
    }
    let (key, dir) = flow_key(version, src, sport, dst, dport);
    Some(Ok(Parsed {
        key,
        dir,
        l3_bytes,
        tcp_flags,
        syn: None,
    }))
}

/// [`FlowKey::new`] with the addresses compared as `u128`s: the same order (address bytes
/// big-endian, then port), but LLVM keeps each address in registers instead of splitting the
/// byte arrays into 16 single-byte moves each, which it does with `FlowKey::new`'s
/// per-byte `u64::from_be_bytes` (seen in the disassembly of the fast path).
#[inline(always)]
fn flow_key(ip_version: u8, src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> (FlowKey, u8) {
    let src_first = (u128::from_be_bytes(src), sport) <= (u128::from_be_bytes(dst), dport);
    let (addr_a, port_a, addr_b, port_b, dir) = if src_first {
        (src, sport, dst, dport, flow_dir::A_TO_B)
    } else {
        (dst, dport, src, sport, flow_dir::B_TO_A)
    };
    let key = FlowKey {
        addr_a,
        addr_b,
        port_a,
        port_b,
        ip_version,
        _pad0: [0; 3],
    };
    (key, dir)
}

/// Ports and flags from the fixed 20 bytes of a TCP header, or `None` when fewer are captured.
///
/// These are all the flow table needs; etherparse only slices complete headers (options
/// included), so they are read directly.
#[inline(always)]
fn tcp_base(tcp: &[u8]) -> Option<(u16, u16, u16)> {
    let b = tcp.first_chunk::<20>()?;
    let sport = u16::from_be_bytes([b[0], b[1]]);
    let dport = u16::from_be_bytes([b[2], b[3]]);
    let tcp_flags = u16::from(b[13]) | (u16::from(b[12] & 1) << 8);
    Some((sport, dport, tcp_flags))
}

/// An IPv4 address in the 16-byte form records and flow keys use (bytes 4..16 zero).
#[inline(always)]
fn v4_addr(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

#[inline]
fn ipv4(l3: &[u8]) -> Result<Ip<'_>, SkipReason> {
    let h = Ipv4HeaderSlice::from_slice(l3).map_err(|e| match e {
        err::ipv4::HeaderSliceError::Len(_) => SkipReason::TruncatedIpHeader,
        err::ipv4::HeaderSliceError::Content(_) => SkipReason::BadIpHeader,
    })?;
    if h.protocol().0 != IPPROTO_TCP {
        return Err(SkipReason::NotTcp);
    }
    let raw = h.slice();
    let ip_frag = u16::from_be_bytes([raw[6], raw[7]]);
    if ip_frag & (record::ip_frag::MF | record::ip_frag::OFFSET_MASK) != 0 {
        return Err(SkipReason::Fragment);
    }
    let hdr_len = raw.len();
    Ok(Ip {
        version: 4,
        src: v4_addr(h.source()),
        dst: v4_addr(h.destination()),
        ip_len: h.total_len(),
        ip_id: h.identification(),
        ip_frag,
        hdr_len: hdr_len as u16,
        ttl: h.ttl(),
        tos: raw[1],
        flow_label: 0,
        l3_bytes: u64::from(h.total_len()),
        captured: l3.len(),
        tcp: &l3[hdr_len..],
    })
}

#[inline]
fn ipv6(l3: &[u8]) -> Result<Ip<'_>, SkipReason> {
    let h = Ipv6HeaderSlice::from_slice(l3).map_err(|e| match e {
        err::ipv6::HeaderSliceError::Len(_) => SkipReason::TruncatedIpHeader,
        err::ipv6::HeaderSliceError::Content(_) => SkipReason::BadIpHeader,
    })?;
    let mut next = h.next_header().0;
    let mut at = h.slice().len();
    let mut walked = 0;
    while next != IPPROTO_TCP {
        match next {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
                if walked == MAX_IPV6_EXT {
                    return Err(SkipReason::Ipv6ExtChainTooLong);
                }
                let ext = Ipv6RawExtHeaderSlice::from_slice(&l3[at..])
                    .map_err(|_| SkipReason::TruncatedIpHeader)?;
                next = ext.next_header().0;
                at += ext.slice().len();
                walked += 1;
            }
            IPV6_FRAGMENT => return Err(SkipReason::Fragment),
            _ => return Err(SkipReason::NotTcp),
        }
    }
    let payload_len = h.payload_length();
    Ok(Ip {
        version: 6,
        src: h.source(),
        dst: h.destination(),
        ip_len: payload_len,
        ip_id: 0,
        ip_frag: 0,
        // At most 40 + 8 * 2048 bytes: fits.
        hdr_len: at as u16,
        ttl: h.hop_limit(),
        tos: h.traffic_class(),
        flow_label: h.flow_label().value(),
        l3_bytes: 40 + u64::from(payload_len),
        captured: l3.len(),
        tcp: &l3[at..],
    })
}

#[inline]
fn tcp(ip: &Ip<'_>, ts_ns: u64, ifindex: u32) -> Result<Parsed, SkipReason> {
    let (sport, dport, tcp_flags) = tcp_base(ip.tcp).ok_or(SkipReason::TruncatedTcpHeader)?;
    let (key, dir) = FlowKey::new(ip.version, ip.src, sport, ip.dst, dport);
    let syn = (tcp_flags & tcp_flag::SYN != 0).then(|| {
        TcpHeaderSlice::from_slice(ip.tcp)
            .map(|t| syn_record(ip, &t, tcp_flags, ts_ns, ifindex))
            .map_err(|e| match e {
                err::tcp::HeaderSliceError::Len(_) => SkipReason::TruncatedTcpHeader,
                err::tcp::HeaderSliceError::Content(_) => SkipReason::BadTcpHeader,
            })
    });
    Ok(Parsed {
        key,
        dir,
        l3_bytes: ip.l3_bytes,
        tcp_flags,
        syn,
    })
}

fn syn_record(
    ip: &Ip<'_>,
    t: &TcpHeaderSlice<'_>,
    tcp_flags: u16,
    ts_ns: u64,
    ifindex: u32,
) -> SynRecord {
    let tcp_hdr_len = t.slice().len();
    let opts = t.options();
    let opts_len = opts.len().min(TCP_OPTS_MAX);
    let mut r = SynRecord::ZERO;
    r.ts_ns = ts_ns;
    r.ifindex = ifindex;
    r.flow_label = ip.flow_label;
    r.src_addr = ip.src;
    r.dst_addr = ip.dst;
    r.src_port = t.source_port();
    r.dst_port = t.destination_port();
    r.ip_len = ip.ip_len;
    r.ip_id = ip.ip_id;
    r.ip_frag = ip.ip_frag;
    r.ip_hdr_len = ip.hdr_len;
    r.tcp_flags = tcp_flags;
    r.window = t.window_size();
    r.seq = t.sequence_number();
    r.ack = t.acknowledgment_number();
    r.urg_ptr = t.urgent_pointer();
    // IPv4 length covers the IP header; IPv6 payload length covers extension headers but
    // not the fixed 40 bytes.
    let covered = if ip.version == 4 {
        u64::from(ip.hdr_len)
    } else {
        u64::from(ip.hdr_len) - 40
    };
    let payload = u64::from(ip.ip_len).saturating_sub(covered + tcp_hdr_len as u64);
    r.payload_len = payload as u16;
    r.ip_version = ip.version;
    r.ttl = ip.ttl;
    r.tos = ip.tos;
    r.direction = direction::UNKNOWN;
    r.source = source::PCAP;
    r.tcp_hdr_len = tcp_hdr_len as u8;
    r.tcp_opts_len = opts_len as u8;
    r.tcp_opts[..opts_len].copy_from_slice(&opts[..opts_len]);
    if (ip.captured as u64) < ip.l3_bytes {
        r.record_flags |= record_flag::SNAPPED;
    }
    r
}

/// The fast path against the general path: wherever [`fast`] answers, its answer must be the
/// one [`general`] gives, on real captures and on headers mutated byte by byte.
#[cfg(test)]
mod fast_path {
    use std::collections::BTreeMap;
    use std::fs::File;
    use std::path::{Path, PathBuf};

    use etherparse::err::packet::BuildWriteError;
    use etherparse::{
        IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv4Options, Ipv6Extensions,
        Ipv6FlowLabel, Ipv6Header, Ipv6RawExtHeader, PacketBuilder,
    };
    use pcap_file::pcap::PcapReader;
    use pcap_file::pcapng::{Block, PcapNgReader};
    use proptest::prelude::*;
    use record::FlowKey;

    use super::{LinkType, SkipReason, fast, flow_key, general, link, parse_packet};

    const TS: u64 = 1_700_000_000_000_000_007;
    const IFINDEX: u32 = 3;

    /// What [`fast`] answered, by kind, over a test's frames: proof that the comparisons ran.
    #[derive(Debug, Default)]
    struct Tally(BTreeMap<&'static str, u64>);

    impl Tally {
        fn add(&mut self, what: &'static str) {
            *self.0.entry(what).or_default() += 1;
        }

        fn get(&self, what: &str) -> u64 {
            self.0.get(what).copied().unwrap_or(0)
        }
    }

    /// Checks one frame: fast == general where fast answers, and `parse_packet` agrees.
    fn check(link_type: LinkType, frame: &[u8], tally: &mut Tally) {
        let Ok((net, l3)) = link::strip(link_type, frame) else {
            tally.add("link skip");
            return;
        };
        let slow = general(net, l3, TS, IFINDEX);
        match fast(net, l3) {
            Some(quick) => {
                assert_eq!(quick, slow, "link {link_type}, frame {frame:02x?}");
                tally.add(match quick {
                    Ok(_) => "tcp",
                    Err(SkipReason::NotTcp) => "not tcp",
                    Err(SkipReason::Fragment) => "fragment",
                    Err(SkipReason::TruncatedTcpHeader) => "truncated tcp",
                    Err(_) => "other",
                });
            }
            None => tally.add("general"),
        }
        assert_eq!(parse_packet(link_type, TS, IFINDEX, frame), slow);
    }

    /// Every frame of every pcap/pcapng under `dir`, with its link type. Files pcap-file cannot
    /// read (the corpus has deliberately broken ones) contribute what it read before failing.
    fn frames_under(dir: &Path, out: &mut Vec<(LinkType, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                frames_under(&path, out);
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if let Ok(mut r) = PcapReader::new(file) {
                let link_type = LinkType(u32::from(r.header().datalink));
                while let Some(Ok(p)) = r.next_raw_packet() {
                    out.push((link_type, p.data.into_owned()));
                }
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let Ok(mut r) = PcapNgReader::new(file) else {
                continue;
            };
            let mut ifaces: Vec<LinkType> = Vec::new();
            while let Some(Ok(block)) = r.next_block() {
                let (iface, data) = match block {
                    Block::SectionHeader(_) => {
                        ifaces.clear();
                        continue;
                    }
                    Block::InterfaceDescription(idb) => {
                        ifaces.push(LinkType(u32::from(idb.linktype)));
                        continue;
                    }
                    Block::EnhancedPacket(epb) => (epb.interface_id as usize, epb.data),
                    Block::SimplePacket(spb) => (0, spb.data),
                    Block::Packet(pb) => (usize::from(pb.interface_id), pb.data),
                    _ => continue,
                };
                if let Some(&link_type) = ifaces.get(iface) {
                    out.push((link_type, data.into_owned()));
                }
            }
        }
    }

    /// xorshift64: deterministic mutations without a dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// The bundled captures: every frame as captured, cut at every length up to 96 bytes, and
    /// with a few bytes of its first 96 overwritten.
    #[test]
    fn fast_equals_general_on_bundled_captures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pcap");
        fast_equals_general_under(&dir);
    }

    /// The same over the shared corpus (CI runs it with `--ignored`).
    #[test]
    #[ignore = "needs the shared corpus ($SYNSCOPE_PCAPS or ../shared/pcaps): run with --ignored"]
    fn fast_equals_general_on_corpus_captures() {
        fast_equals_general_under(&testkit::require_shared_pcaps());
    }

    fn fast_equals_general_under(dir: &Path) {
        let mut frames = Vec::new();
        frames_under(dir, &mut frames);
        assert!(!frames.is_empty(), "no frames under {}", dir.display());
        let mut tally = Tally::default();
        let mut rng = 0x9e37_79b9_7f4a_7c15;
        for (link_type, frame) in &frames {
            check(*link_type, frame, &mut tally);
            for len in 0..frame.len().min(96) {
                check(*link_type, &frame[..len], &mut tally);
            }
            let mut mutated = frame.clone();
            for _ in 0..4 {
                let span = mutated.len().min(96);
                if span == 0 {
                    break;
                }
                let r = next(&mut rng);
                mutated[(r % span as u64) as usize] = (r >> 32) as u8;
                check(*link_type, &mutated, &mut tally);
            }
        }
        eprintln!("{} frames: {tally:?}", frames.len());
        for kind in ["tcp", "not tcp", "truncated tcp", "general"] {
            assert!(
                tally.get(kind) > 0,
                "fast path never gave {kind}: {tally:?}"
            );
        }
    }

    /// One packet from an etherparse builder chain.
    fn build(write: impl FnOnce(&mut Vec<u8>) -> Result<(), BuildWriteError>) -> Vec<u8> {
        let mut pkt = Vec::new();
        write(&mut pkt).expect("etherparse builds the packet");
        pkt
    }

    /// IP packets (no link header) covering what [`fast`] takes and what it must leave.
    fn built_packets() -> Vec<Vec<u8>> {
        let src4 = [192, 0, 2, 1];
        let dst4 = [192, 0, 2, 200];
        let src6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let mut v4_opts = Ipv4Header::new(0, 9, IpNumber::TCP, src4, dst4).expect("header");
        v4_opts.options = Ipv4Options::from([148, 4, 0, 0, 1, 1, 1, 0]);
        let v6_hop = Ipv6Header {
            traffic_class: 0,
            flow_label: Ipv6FlowLabel::ZERO,
            payload_length: 0,
            next_header: IpNumber::TCP,
            hop_limit: 1,
            source: dst6,
            destination: src6,
        };
        let hop_by_hop = Ipv6Extensions {
            hop_by_hop_options: Some(
                Ipv6RawExtHeader::new_raw(IpNumber::TCP, &[0; 6]).expect("extension header"),
            ),
            ..Default::default()
        };
        vec![
            build(|p| {
                PacketBuilder::ipv4(src4, dst4, 64)
                    .tcp(443, 40000, 1, 2)
                    .ack(3)
                    .psh()
                    .write(p, &[1, 2, 3])
            }),
            build(|p| {
                PacketBuilder::ipv4(dst4, src4, 64)
                    .tcp(40000, 443, 1, 2)
                    .syn()
                    .write(p, &[])
            }),
            build(|p| {
                PacketBuilder::ipv4(src4, dst4, 64)
                    .udp(53, 5353)
                    .write(p, &[0; 8])
            }),
            build(|p| {
                PacketBuilder::ip(IpHeaders::Ipv4(v4_opts, Ipv4Extensions::default()))
                    .tcp(1, 2, 3, 4)
                    .fin()
                    .ns()
                    .write(p, &[])
            }),
            build(|p| {
                PacketBuilder::ipv6(src6, dst6, 64)
                    .tcp(443, 40000, 1, 2)
                    .ack(3)
                    .rst()
                    .write(p, &[7; 5])
            }),
            build(|p| PacketBuilder::ipv6(src6, src6, 64).udp(9, 9).write(p, &[])),
            build(|p| {
                PacketBuilder::ip(IpHeaders::Ipv6(v6_hop, hop_by_hop))
                    .tcp(5, 6, 7, 8)
                    .ack(1)
                    .write(p, &[])
            }),
        ]
    }

    /// The link layers an IP packet is wrapped in: link type and header bytes for IPv4 and IPv6.
    fn wrappings() -> Vec<(LinkType, Vec<u8>, Vec<u8>)> {
        let eth = |et: [u8; 2]| [&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2][..], &et[..]].concat();
        let vlan = |et: [u8; 2]| {
            [
                &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0, 0, 7][..],
                &et[..],
            ]
            .concat()
        };
        vec![
            (LinkType::RAW, vec![], vec![]),
            (LinkType::IPV4, vec![], vec![]),
            (LinkType::IPV6, vec![], vec![]),
            (LinkType::ETHERNET, eth([8, 0]), eth([0x86, 0xdd])),
            (LinkType::ETHERNET, vlan([8, 0]), vlan([0x86, 0xdd])),
            (LinkType::NULL, vec![2, 0, 0, 0], vec![10, 0, 0, 0]),
        ]
    }

    /// Built packets under every wrapping, cut at every length and with each of their first 80
    /// bytes set to every value in turn.
    #[test]
    fn fast_equals_general_on_every_single_byte_change() {
        let mut tally = Tally::default();
        for pkt in built_packets() {
            for (link_type, v4, v6) in wrappings() {
                for head in [&v4, &v6] {
                    let frame = [&head[..], &pkt[..]].concat();
                    for len in 0..=frame.len() {
                        check(link_type, &frame[..len], &mut tally);
                    }
                    for at in head.len()..frame.len().min(head.len() + 80) {
                        let mut mutated = frame.clone();
                        for v in 0..=255u8 {
                            mutated[at] = v;
                            check(link_type, &mutated, &mut tally);
                        }
                    }
                }
            }
        }
        for kind in ["tcp", "not tcp", "fragment", "truncated tcp", "general"] {
            assert!(
                tally.get(kind) > 0,
                "fast path never gave {kind}: {tally:?}"
            );
        }
    }

    /// Every pairing of addresses that are equal or differ only in one byte (first, last, and
    /// either side of the 8-byte halves `FlowKey::new` compares) and of ports, equal ones
    /// included: the ties decide the direction.
    #[test]
    fn flow_key_is_flow_key_new() {
        let mut addrs = vec![[0u8; 16], [0xff; 16]];
        for at in [0, 3, 7, 8, 15] {
            for v in [1, 0x80, 0xff] {
                let mut a = [0u8; 16];
                a[at] = v;
                addrs.push(a);
            }
        }
        let ports = [0u16, 1, 443, 0x8000, 0xffff];
        for version in [4, 6] {
            for src in &addrs {
                for dst in &addrs {
                    for sport in ports {
                        for dport in ports {
                            assert_eq!(
                                flow_key(version, *src, sport, *dst, dport),
                                FlowKey::new(version, *src, sport, *dst, dport)
                            );
                        }
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn flow_key_is_flow_key_new_on_random_endpoints(
            v6 in any::<bool>(),
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            sport in any::<u16>(),
            dport in any::<u16>(),
        ) {
            let version = if v6 { 6 } else { 4 };
            prop_assert_eq!(
                flow_key(version, src, sport, dst, dport),
                FlowKey::new(version, src, sport, dst, dport)
            );
        }

        /// Random bytes after a plausible start: the first byte is an IP version nibble
        /// with a random header length, the rest arbitrary.
        #[test]
        fn fast_equals_general_on_random_ip(
            first in prop::sample::select(&[0x45u8, 0x46, 0x4f, 0x44, 0x60, 0x6f, 0x50][..]),
            rest in prop::collection::vec(any::<u8>(), 0..120),
            proto in prop::sample::select(&[6u8, 17, 0, 43, 44, 60, 1][..]),
        ) {
            let mut pkt = vec![first];
            pkt.extend_from_slice(&rest);
            // Make TCP likely: the IPv4 protocol and IPv6 next-header bytes.
            if pkt.len() > 9 && first >> 4 == 4 {
                pkt[9] = proto;
            }
            if pkt.len() > 6 && first >> 4 == 6 {
                pkt[6] = proto;
            }
            let mut tally = Tally::default();
            for link_type in [LinkType::RAW, LinkType::IPV4, LinkType::IPV6] {
                check(link_type, &pkt, &mut tally);
            }
        }
    }
}
