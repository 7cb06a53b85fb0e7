//! The independent oracle: the frame -> record rules written a second time, on etherparse's
//! header slices instead of the shared parser's constant-size reads, and the tests that hold
//! [`super::parse_packet`] (the shared `packet` parser, which the kernel runs too) to it on
//! real captures, on every single-byte change of built packets, and on random bytes.
//!
//! This was the pcap reader's own definition before the kernel's parser replaced it; it stays
//! as the reference because it was written from the RFCs through another library, so a slip in
//! the shared parser's hand-written offsets shows up here as a disagreement.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use etherparse::err::packet::BuildWriteError;
use etherparse::{
    EtherType, Ethernet2HeaderSlice, IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header,
    Ipv4HeaderSlice, Ipv4Options, Ipv6Extensions, Ipv6FlowLabel, Ipv6FragmentHeaderSlice,
    Ipv6Header, Ipv6HeaderSlice, Ipv6RawExtHeader, Ipv6RawExtHeaderSlice, PacketBuilder,
    SingleVlanHeaderSlice, TcpHeaderSlice, err,
};
use packet::Skip;
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use proptest::prelude::*;
use record::{
    FlowKey, MAX_ENCAPS, MAX_IPV6_EXT, MAX_VLAN_TAGS, SynRecord, TCP_OPTS_MAX, direction,
    record_flag, source, tcp_flag,
};

use super::link::{self, Net};
use super::{LinkType, Parsed, SkipReason, parse_packet};

/// IP protocol numbers used below.
const IPPROTO_TCP: u8 = 6;
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DSTOPTS: u8 = 60;

/// Why the oracle gave no answer of its own.
#[derive(Debug)]
enum Out {
    /// The frame is skipped, for this reason.
    Skip(SkipReason),
    /// The frame holds an encapsulation the oracle does not look into (everything but VLAN
    /// tags and IP-in-IP, which etherparse's slices read): only the shared parser's own tests
    /// and the tshark counts judge those frames.
    Opaque,
}

impl From<SkipReason> for Out {
    fn from(r: SkipReason) -> Out {
        Out::Skip(r)
    }
}

fn skip(s: Skip) -> Out {
    Out::Skip(SkipReason::Packet(s))
}

/// The oracle's [`parse_packet`]; `None` for a frame it cannot judge ([`Out::Opaque`]).
fn oracle(
    link_type: LinkType,
    ts_ns: u64,
    ifindex: u32,
    data: &[u8],
) -> Option<Result<Parsed, SkipReason>> {
    let run = || {
        let (net, l3) = if link_type == LinkType::ETHERNET {
            ethernet(data)?
        } else {
            link::strip(link_type, data)?
        };
        general(net, l3, ts_ns, ifindex, 0)
    };
    match run() {
        Ok(p) => Some(Ok(p)),
        Err(Out::Skip(r)) => Some(Err(r)),
        Err(Out::Opaque) => None,
    }
}

/// Ethernet and up to [`MAX_VLAN_TAGS`] VLAN tags, with etherparse's slices.
fn ethernet(data: &[u8]) -> Result<(Net, &[u8]), Out> {
    let eth =
        Ethernet2HeaderSlice::from_slice(data).map_err(|_| skip(Skip::TruncatedLinkHeader))?;
    let mut proto = eth.ether_type();
    let mut rest = &data[eth.slice().len()..];
    let mut tags = 0;
    while matches!(
        proto,
        EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME
    ) {
        if tags == MAX_VLAN_TAGS {
            return Err(skip(Skip::VlanTooDeep));
        }
        let vlan =
            SingleVlanHeaderSlice::from_slice(rest).map_err(|_| skip(Skip::TruncatedLinkHeader))?;
        proto = vlan.ether_type();
        rest = &rest[vlan.slice().len()..];
        tags += 1;
    }
    match proto {
        EtherType::IPV4 => Ok((Net::V4, rest)),
        EtherType::IPV6 => Ok((Net::V6, rest)),
        // MPLS, PPPoE session, PBB, Cisco FabricPath, VN-Tag, and 802.3 lengths (LLC/SNAP).
        EtherType(0x8847 | 0x8848 | 0x8864 | 0x88e7 | 0x8903 | 0x8926) => Err(Out::Opaque),
        EtherType(len) if len <= 1500 => Err(Out::Opaque),
        _ => Err(skip(Skip::NotIp)),
    }
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
    /// A first fragment (IPv4 MF, or an IPv6 fragment header with M): the TCP header must lie
    /// within the announced length.
    first_fragment: bool,
    /// What follows the IP header (and extension headers).
    tcp: &'a [u8],
}

/// What an IP header leads to: TCP, or the inner IP packet of IP-in-IP.
enum IpNext<'a> {
    Tcp(Ip<'a>),
    Inner(Net, &'a [u8]),
}

/// The IP layer onwards, with etherparse's header slices; `encaps` is the number of
/// encapsulations entered so far.
fn general(net: Net, l3: &[u8], ts_ns: u64, ifindex: u32, encaps: usize) -> Result<Parsed, Out> {
    let version = match net {
        Net::V4 => 4,
        Net::V6 => 6,
        Net::Either => match l3.first() {
            Some(b) if b >> 4 == 4 => 4,
            Some(b) if b >> 4 == 6 => 6,
            Some(_) => return Err(skip(Skip::BadIpHeader)),
            None => return Err(skip(Skip::TruncatedIpHeader)),
        },
    };
    let next = if version == 4 { ipv4(l3)? } else { ipv6(l3)? };
    match next {
        IpNext::Tcp(ip) => {
            let mut parsed = tcp(&ip, ts_ns, ifindex)?;
            // The only encapsulation the oracle enters is IP in IP, which has no identifier
            // and stays out of the flow key.
            if let Some(Ok(r)) = &mut parsed.syn
                && encaps > 0
            {
                r.encap_kind = record::encap::IP_IN_IP;
                r.encaps = encaps as u8;
            }
            Ok(parsed)
        }
        IpNext::Inner(net, inner) => {
            if encaps == MAX_ENCAPS {
                return Err(skip(Skip::EncapsulationTooDeep));
            }
            general(net, inner, ts_ns, ifindex, encaps + 1)
        }
    }
}

/// What a non-TCP protocol holds: an IP-in-IP inner packet, an encapsulation the oracle does
/// not read, or nothing.
fn not_tcp<'a>(proto: u8, payload: &'a [u8]) -> Result<IpNext<'a>, Out> {
    const UDP_TUNNEL_PORTS: [u16; 6] = [4789, 4790, 6081, 2152, 4754, 6635];
    const UDP_EITHER_PORTS: [u16; 2] = [5072, 3544];
    match proto {
        4 => Ok(IpNext::Inner(Net::V4, payload)),
        41 => Ok(IpNext::Inner(Net::V6, payload)),
        47 => Err(Out::Opaque),
        17 => match payload.first_chunk::<4>() {
            Some(h) => {
                let (sport, dport) = (
                    u16::from_be_bytes([h[0], h[1]]),
                    u16::from_be_bytes([h[2], h[3]]),
                );
                if UDP_TUNNEL_PORTS.contains(&dport)
                    || UDP_EITHER_PORTS.contains(&dport)
                    || UDP_EITHER_PORTS.contains(&sport)
                {
                    Err(Out::Opaque)
                } else {
                    Err(skip(Skip::NotTcp))
                }
            }
            None => Err(skip(Skip::NotTcp)),
        },
        _ => Err(skip(Skip::NotTcp)),
    }
}

/// Ports and flags from the fixed 20 bytes of a TCP header, or `None` when fewer are captured.
///
/// These are all the flow table needs; etherparse only slices complete headers (options
/// included), so they are read directly.
fn tcp_base(tcp: &[u8]) -> Option<(u16, u16, u16)> {
    let b = tcp.first_chunk::<20>()?;
    let sport = u16::from_be_bytes([b[0], b[1]]);
    let dport = u16::from_be_bytes([b[2], b[3]]);
    let tcp_flags = u16::from(b[13]) | (u16::from(b[12] & 1) << 8);
    Some((sport, dport, tcp_flags))
}

/// An IPv4 address in the 16-byte form records and flow keys use (bytes 4..16 zero).
fn v4_addr(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

fn ipv4(l3: &[u8]) -> Result<IpNext<'_>, Out> {
    let h = Ipv4HeaderSlice::from_slice(l3).map_err(|e| match e {
        err::ipv4::HeaderSliceError::Len(_) => skip(Skip::TruncatedIpHeader),
        err::ipv4::HeaderSliceError::Content(_) => skip(Skip::BadIpHeader),
    })?;
    let raw = h.slice();
    let ip_frag = u16::from_be_bytes([raw[6], raw[7]]);
    let hdr_len = raw.len();
    if h.protocol().0 != IPPROTO_TCP {
        if ip_frag & (record::ip_frag::MF | record::ip_frag::OFFSET_MASK) != 0 {
            return Err(skip(Skip::NotTcp));
        }
        return not_tcp(h.protocol().0, &l3[hdr_len..]);
    }
    if ip_frag & record::ip_frag::OFFSET_MASK != 0 {
        return Err(skip(Skip::Fragment));
    }
    Ok(IpNext::Tcp(Ip {
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
        first_fragment: ip_frag & record::ip_frag::MF != 0,
        tcp: &l3[hdr_len..],
    }))
}

fn ipv6(l3: &[u8]) -> Result<IpNext<'_>, Out> {
    let h = Ipv6HeaderSlice::from_slice(l3).map_err(|e| match e {
        err::ipv6::HeaderSliceError::Len(_) => skip(Skip::TruncatedIpHeader),
        err::ipv6::HeaderSliceError::Content(_) => skip(Skip::BadIpHeader),
    })?;
    let mut next = h.next_header().0;
    let mut at = h.slice().len();
    let mut walked = 0;
    let (mut fragment, mut first_fragment) = (false, false);
    while next != IPPROTO_TCP {
        match next {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS | IPV6_FRAGMENT => {
                if walked == MAX_IPV6_EXT {
                    return Err(skip(Skip::Ipv6ExtChainTooLong));
                }
                if next == IPV6_FRAGMENT {
                    let f = Ipv6FragmentHeaderSlice::from_slice(&l3[at..])
                        .map_err(|_| skip(Skip::TruncatedIpHeader))?;
                    if f.fragment_offset().value() != 0 {
                        return Err(skip(Skip::Fragment));
                    }
                    fragment = true;
                    first_fragment = f.more_fragments();
                    next = f.next_header().0;
                    at += f.slice().len();
                } else {
                    let ext = Ipv6RawExtHeaderSlice::from_slice(&l3[at..])
                        .map_err(|_| skip(Skip::TruncatedIpHeader))?;
                    next = ext.next_header().0;
                    at += ext.slice().len();
                }
                walked += 1;
            }
            _ if fragment => return Err(skip(Skip::Fragment)),
            _ => return not_tcp(next, &l3[at..]),
        }
    }
    let payload_len = h.payload_length();
    Ok(IpNext::Tcp(Ip {
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
        first_fragment,
        tcp: &l3[at..],
    }))
}

fn tcp(ip: &Ip<'_>, ts_ns: u64, ifindex: u32) -> Result<Parsed, Out> {
    let (sport, dport, tcp_flags) = tcp_base(ip.tcp).ok_or(skip(Skip::TruncatedTcpHeader))?;
    // The TCP segment length the IP header announces.
    let covered = if ip.version == 4 {
        u64::from(ip.hdr_len)
    } else {
        u64::from(ip.hdr_len) - 40
    };
    let l4_len = u64::from(ip.ip_len).saturating_sub(covered);
    if ip.first_fragment && l4_len < 20 {
        return Err(skip(Skip::Fragment));
    }
    let (key, dir) = FlowKey::new(ip.version, ip.src, sport, ip.dst, dport);
    let syn = (tcp_flags & tcp_flag::SYN != 0).then(|| {
        TcpHeaderSlice::from_slice(ip.tcp)
            .map_err(|e| match e {
                err::tcp::HeaderSliceError::Len(_) => SkipReason::Packet(Skip::TruncatedTcpHeader),
                err::tcp::HeaderSliceError::Content(_) => SkipReason::Packet(Skip::BadTcpHeader),
            })
            .and_then(|t| {
                if ip.first_fragment && l4_len < t.slice().len() as u64 {
                    Err(SkipReason::Packet(Skip::Fragment))
                } else {
                    Ok(syn_record(ip, &t, tcp_flags, ts_ns, ifindex))
                }
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

// The comparison.

const TS: u64 = 1_700_000_000_000_000_007;
const IFINDEX: u32 = 3;

/// What the oracle answered, by kind, over a test's frames: proof that the comparisons ran
/// and met every kind of frame they are meant to.
#[derive(Debug, Default)]
struct Tally(BTreeMap<&'static str, u64>);

impl Tally {
    fn add(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }

    /// Fails unless every one of `kinds` was seen.
    fn assert_saw(&self, kinds: &[&str]) {
        for kind in kinds {
            assert!(
                self.0.get(kind).copied().unwrap_or(0) > 0,
                "never compared a frame giving {kind}: {self:?}"
            );
        }
    }
}

/// Checks one frame: the shared parser's answer is the oracle's, and on Ethernet the
/// kernel's chain of steps ([`packet::by_steps`]) gives the same as the userspace driver.
fn check(link_type: LinkType, frame: &[u8], tally: &mut Tally) {
    if link_type == LinkType::ETHERNET {
        let (mut whole, mut steps) = (SynRecord::ZERO, SynRecord::ZERO);
        let want = packet::parse_ethernet(&mut packet::Frame(frame), &mut whole);
        let (_, got) = packet::by_steps(&mut packet::Frame(frame), &mut steps);
        assert_eq!(got, want, "kernel steps, frame {frame:02x?}");
        if let packet::Parsed::Tcp { .. } = want {
            assert_eq!(steps, whole, "kernel steps, frame {frame:02x?}");
        }
        tally.add("kernel steps compared");
    }
    // The TCP payload from the record's IP fields, as the HTTP filter takes it, against the
    // same read from the frame's own bytes.
    super::packet::handle(
        link_type,
        TS,
        IFINDEX,
        frame,
        &mut PayloadCheck(tally),
        &mut super::IngestStats::default(),
    );
    let Some(want) = oracle(link_type, TS, IFINDEX, frame) else {
        tally.add("opaque to the oracle");
        return;
    };
    assert_eq!(
        parse_packet(link_type, TS, IFINDEX, frame),
        want,
        "link {link_type}, frame {frame:02x?}"
    );
    tally.add(match &want {
        Ok(Parsed { syn: None, .. }) => "tcp",
        Ok(Parsed {
            syn: Some(Ok(_)), ..
        }) => "syn record",
        Ok(Parsed {
            syn: Some(Err(_)), ..
        }) => "syn without record",
        Err(reason) => reason.name(),
    });
}

/// Holds [`super::Segment::payload`] to the payload read from the frame's bytes.
struct PayloadCheck<'t>(&'t mut Tally);

impl super::PacketSink for PayloadCheck<'_> {
    fn syn(&mut self, _: &SynRecord) {}

    fn tcp(&mut self, seg: &super::Segment<'_>) {
        let got = seg.payload();
        assert_eq!(got, seg.payload_from_frame(), "{:?}", seg.fields());
        if let Some(first) = got.and_then(|p| p.bytes.first().copied()) {
            assert_eq!(seg.payload_first_byte(), Some(first), "{:?}", seg.fields());
        }
        if seg.payload_first_byte().is_none() {
            assert!(got.is_none_or(|p| p.bytes.is_empty()), "{:?}", seg.fields());
        }
        self.0.add(match got {
            Some(p) if !p.bytes.is_empty() => "tcp payload",
            _ => "tcp without payload",
        });
    }
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
fn agrees_with_etherparse_on_bundled_captures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pcap");
    agrees_with_etherparse_under(&dir);
}

/// The same over the shared corpus (CI runs it with `--ignored corpus`).
#[test]
#[ignore = "needs the shared corpus ($SYNSCOPE_PCAPS or ../shared/pcaps): run with --ignored"]
fn agrees_with_etherparse_on_corpus_captures() {
    agrees_with_etherparse_under(&testkit::require_shared_pcaps());
}

fn agrees_with_etherparse_under(dir: &Path) {
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
    tally.assert_saw(&[
        "kernel steps compared",
        "tcp payload",
        "tcp without payload",
        "tcp",
        "syn record",
        "not tcp",
        "not ip",
        "truncated link header",
        "truncated ip header",
        "truncated tcp header",
        "bad ip header",
    ]);
}

/// One packet from an etherparse builder chain.
fn build(write: impl FnOnce(&mut Vec<u8>) -> Result<(), BuildWriteError>) -> Vec<u8> {
    let mut pkt = Vec::new();
    write(&mut pkt).expect("etherparse builds the packet");
    pkt
}

/// IP packets (no link header): TCP with and without SYN, UDP, IPv4 options, IPv6 extension
/// headers.
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
fn agrees_with_etherparse_on_every_single_byte_change() {
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
    tally.assert_saw(&[
        "tcp",
        "syn record",
        "syn without record",
        "not tcp",
        "fragment",
        "truncated link header",
        "truncated ip header",
        "truncated tcp header",
        "bad ip header",
    ]);
}

proptest! {
    /// Random bytes after a plausible start: the first byte is an IP version nibble
    /// with a random header length, the rest arbitrary.
    #[test]
    fn agrees_with_etherparse_on_random_ip(
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
