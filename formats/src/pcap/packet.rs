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

use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, TcpHeaderSlice, err};
use record::{FlowKey, SynRecord, TCP_OPTS_MAX, direction, record_flag, source, tcp_flag};

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
pub fn parse_packet(
    link: LinkType,
    ts_ns: u64,
    ifindex: u32,
    data: &[u8],
) -> Result<Parsed, SkipReason> {
    let (net, l3) = link::strip(link, data)?;
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
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&h.source());
    dst[..4].copy_from_slice(&h.destination());
    Ok(Ip {
        version: 4,
        src,
        dst,
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
    // Ports and flags come from the fixed part of the header, which is all the flow table
    // needs; etherparse only slices complete headers, so these few bytes are read directly.
    let Some(base) = ip.tcp.get(..20) else {
        return Err(SkipReason::TruncatedTcpHeader);
    };
    let sport = u16::from_be_bytes([base[0], base[1]]);
    let dport = u16::from_be_bytes([base[2], base[3]]);
    let tcp_flags = u16::from(base[13]) | (u16::from(base[12] & 1) << 8);
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
