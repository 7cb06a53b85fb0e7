//! One captured frame -> one [`SynRecord`] (or flow update), through the very parser the
//! kernel datapath runs (the `packet` crate), and how its result is routed to a sink.
//!
//! The per-packet rules are `packet`'s (documented there). What a capture file adds, and is
//! done here: link types other than Ethernet ([`super::link`]), the record's producer fields
//! (`ts_ns` from the capture, `ifindex` = pcapng interface id, `source = pcap`,
//! `direction = unknown`), and the [`record_flag::SNAPPED`] flag: the payload may be cut by the
//! snap length, and the record then carries the flag and the length the IP header announced.

use packet::{Frame, IpVersion, Skip, Syn};
use record::{FlowKey, SynRecord, direction, record_flag, source};

use super::link::{self, Net};
use super::link_type::LinkType;
use super::{IngestStats, PacketSink, SkipReason};

/// Most IPv6 extension headers walked before giving up (the kernel's unrolled loop bound).
pub use record::MAX_IPV6_EXT;

/// A TCP packet, as the flow table and the SYN stream see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The flow the packet belongs to.
    pub key: FlowKey,
    /// Its direction relative to `key` ([`record::flow_dir`]).
    pub dir: u8,
    /// Layer-3 bytes: IPv4 total length, or 40 + IPv6 payload length (as the header says).
    pub l3_bytes: u64,
    /// TCP flags ([`record::tcp_flag`] bits).
    pub tcp_flags: u16,
    /// `None` when SYN is clear; when it is set, the record, or why none could be made (the
    /// packet still counts for its flow).
    pub syn: Option<Result<SynRecord, SkipReason>>,
}

/// Decodes one captured frame.
///
/// Pure and allocation-free, so callers may run it on any thread. `ts_ns` and `ifindex` are
/// copied into the record unchanged. Returns why the frame was skipped when it carries no TCP
/// header we can read.
#[inline(always)]
pub fn parse_packet(
    link: LinkType,
    ts_ns: u64,
    ifindex: u32,
    data: &[u8],
) -> Result<Parsed, SkipReason> {
    let mut rec = SynRecord::ZERO;
    let (l3_bytes, syn) = parse_frame(link, ts_ns, ifindex, data, &mut rec)?;
    let (key, dir) = rec.flow_key();
    Ok(Parsed {
        key,
        dir,
        l3_bytes,
        tcp_flags: rec.tcp_flags,
        syn: match syn {
            Syn::No => None,
            Syn::Record => Some(Ok(rec)),
            Syn::Unreadable(skip) => Some(Err(skip.into())),
        },
    })
}

/// [`parse_packet`] without the flow key, which [`handle`] makes only for a sink that asks
/// for it ([`Segment::flow`]): the TCP packet's layer-3 bytes and SYN state, and its fields
/// in `rec`, which must be [`SynRecord::ZERO`] on entry.
///
/// Always inlined, and the record filled in place, so that the caller (the reader's per-frame
/// loop) gets the result in registers instead of a 136-byte record copied out of a returned
/// value. Link types other than Ethernet are stripped by one out-of-line function.
#[inline(always)]
fn parse_frame(
    link: LinkType,
    ts_ns: u64,
    ifindex: u32,
    data: &[u8],
    rec: &mut SynRecord,
) -> Result<(u64, Syn), SkipReason> {
    let (frame, at) = if link == LinkType::ETHERNET {
        (data, packet::ethernet(&mut Frame(data))?)
    } else {
        let (net, l3) = link::strip(link, data)?;
        (l3, packet::Link::ip(ip_version(net, l3)?, 0))
    };
    // IPv4 inline, the rarer IPv6 (and its extension-header walk) out of line: that keeps the
    // per-frame loop small.
    let parsed = match at.version {
        IpVersion::V4 => packet::ip(&mut Frame(frame), at, rec),
        IpVersion::V6 => ipv6(frame, at, rec),
    };
    let (l3_bytes, l3_off, syn) = match parsed {
        packet::Parsed::Skip(skip) => return Err(skip.into()),
        packet::Parsed::Tcp {
            l3_bytes,
            l3_off,
            syn,
        } => (u64::from(l3_bytes), l3_off, syn),
    };
    if syn == Syn::Record {
        rec.ts_ns = ts_ns;
        rec.ifindex = ifindex;
        rec.direction = direction::UNKNOWN;
        rec.source = source::PCAP;
        let captured = frame.len().saturating_sub(l3_off as usize);
        if (captured as u64) < l3_bytes {
            rec.record_flags |= record_flag::SNAPPED;
        }
    }
    Ok((l3_bytes, syn))
}

/// A TCP packet with a readable header, as [`PacketSink::tcp`] gets it.
///
/// The flow key is made on demand ([`Segment::flow`]): it is about a sixth of the parse's
/// instructions, and a sink without a flow table (the p0f lines, a records-only replay)
/// never needs it.
pub struct Segment<'a> {
    rec: &'a SynRecord,
    /// When the packet was captured, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Layer-3 bytes: IPv4 total length, or 40 + IPv6 payload length (as the header says).
    pub l3_bytes: u64,
}

impl Segment<'_> {
    /// The packet's flow and its direction in it ([`record::flow_dir`]).
    #[inline(always)]
    pub fn flow(&self) -> (FlowKey, u8) {
        self.rec.flow_key()
    }

    /// TCP flags ([`record::tcp_flag`] bits).
    #[inline(always)]
    pub fn tcp_flags(&self) -> u16 {
        self.rec.tcp_flags
    }
}

/// [`packet::ip`] for IPv6, out of line (see [`parse_packet`]).
#[inline(never)]
fn ipv6(frame: &[u8], at: packet::Link, rec: &mut SynRecord) -> packet::Parsed {
    packet::ip(&mut Frame(frame), at, rec)
}

/// The IP version of a raw-IP link layer's packet, which only its first nibble says.
#[inline]
fn ip_version(net: Net, l3: &[u8]) -> Result<IpVersion, SkipReason> {
    match net {
        Net::V4 => Ok(IpVersion::V4),
        Net::V6 => Ok(IpVersion::V6),
        Net::Either => match l3.first() {
            Some(b) if b >> 4 == 4 => Ok(IpVersion::V4),
            Some(b) if b >> 4 == 6 => Ok(IpVersion::V6),
            Some(_) => Err(SkipReason::Packet(Skip::BadIpHeader)),
            None => Err(SkipReason::Packet(Skip::TruncatedIpHeader)),
        },
    }
}

/// One frame: parse it and route the result to `sink`, counting it in `stats`.
#[inline]
pub(super) fn handle(
    link: LinkType,
    ts_ns: u64,
    ifindex: u32,
    data: &[u8],
    sink: &mut impl PacketSink,
    stats: &mut IngestStats,
) {
    stats.packets += 1;
    stats.bytes += data.len() as u64;
    let mut rec = SynRecord::ZERO;
    match parse_frame(link, ts_ns, ifindex, data, &mut rec) {
        Ok((l3_bytes, syn)) => {
            stats.tcp += 1;
            sink.tcp(&Segment {
                rec: &rec,
                ts_ns,
                l3_bytes,
            });
            match syn {
                Syn::No => {}
                Syn::Record => {
                    if rec.is_syn_ack() {
                        stats.syn_ack += 1;
                    } else {
                        stats.syn += 1;
                    }
                    sink.syn(&rec);
                }
                Syn::Unreadable(skip) => {
                    *stats.syn_skipped.entry(skip.into()).or_default() += 1;
                }
            }
        }
        Err(reason) => stats.skip(reason),
    }
}
