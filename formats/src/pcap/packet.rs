//! One captured frame -> one [`SynRecord`] (or flow update), through the very parser the
//! kernel datapath runs (the `packet` crate), and how its result is routed to a sink.
//!
//! The per-packet rules are `packet`'s (documented there). What a capture file adds, and is
//! done here: link types other than Ethernet ([`super::link`]), the record's producer fields
//! (`ts_ns` from the capture, `ifindex` = pcapng interface id, `source = pcap`,
//! `direction = unknown`), and the [`record_flag::SNAPPED`] flag: the payload may be cut by the
//! snap length, and the record then carries the flag and the length the IP header announced.

use packet::{Frame, IpVersion, Skip, Stepped, Syn};
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
    let (l3_bytes, syn, _) = parse_frame(link, ts_ns, ifindex, data, &mut rec)?;
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
/// for it ([`Segment::flow`]): the TCP packet's layer-3 bytes and SYN state, where its
/// innermost IP packet is ([`L3`], for [`Segment::payload`]), and its fields in `rec`, which
/// must be [`SynRecord::ZERO`] on entry.
///
/// Always inlined, and the record filled in place, so that the caller (the reader's per-frame
/// loop) gets the result in registers instead of a 136-byte record copied out of a returned
/// value. Link types other than Ethernet are stripped by one out-of-line function.
#[inline(always)]
fn parse_frame<'a>(
    link: LinkType,
    ts_ns: u64,
    ifindex: u32,
    data: &'a [u8],
    rec: &mut SynRecord,
) -> Result<(u64, Syn, L3<'a>), SkipReason> {
    // No `?` on the parser's results, and each IP version's result taken apart in its own
    // arm: merged into one value first (a `?`'s `ControlFlow`, or one `Parsed` for both
    // arms), the hot IPv4 result went through the stack and was read back by loads that
    // straddle its stores. Store-to-load forwarding fails on those, and the two stalls per
    // frame were most of the parse's cycles.
    let (frame, at) = if link == LinkType::ETHERNET {
        match packet::ethernet(&mut Frame(data)) {
            Ok(at) => (data, at),
            Err(skip) => return Err(skip.into()),
        }
    } else {
        let (net, l3) = link::strip(link, data)?;
        (l3, packet::Link::ip(ip_version(net, l3)?, 0))
    };
    // IPv4 inline, the rarer IPv6 (and its extension-header walk) out of line: that keeps the
    // per-frame loop small.
    let (l3_bytes, l3_off, syn) = match at.version {
        IpVersion::V4 => match packet::ip_step(&mut Frame(frame), at, rec) {
            Stepped::Done(parsed) => tcp_parts(parsed)?,
            Stepped::Inner(from) => tcp_parts(packet::ip_inner(&mut Frame(frame), from, rec))?,
        },
        IpVersion::V6 => tcp_parts(ipv6(frame, at, rec))?,
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
    Ok((l3_bytes, syn, L3 { frame, off: l3_off }))
}

/// A parse's TCP packet as the layer-3 bytes, the IP header's offset and the SYN state.
#[inline(always)]
fn tcp_parts(parsed: packet::Parsed) -> Result<(u64, u32, Syn), SkipReason> {
    match parsed {
        packet::Parsed::Tcp {
            l3_bytes,
            l3_off,
            syn,
        } => Ok((u64::from(l3_bytes), l3_off, syn)),
        packet::Parsed::Skip(skip) => Err(skip.into()),
    }
}

/// Where a TCP packet's innermost IP header is: the frame from its network layer on (the
/// link header of a non-Ethernet link already stripped) and the header's offset in it.
/// Kept so that [`Segment::payload`] can find the TCP payload without the parser copying
/// anything per packet (only a sink that asks pays for it).
#[derive(Clone, Copy)]
struct L3<'a> {
    frame: &'a [u8],
    off: u32,
}

/// The payload of a TCP segment, as p0f's HTTP module takes it ([`Segment::payload`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPayload<'a> {
    /// Sequence number of the first payload byte.
    pub seq: u32,
    /// Payload bytes according to the IP header.
    pub len: u16,
    /// The payload as captured: all `len` bytes (a segment cut by the snap length has no
    /// [`TcpPayload`]; p0f drops such packets).
    pub bytes: &'a [u8],
}

/// A TCP packet with a readable header, as [`PacketSink::tcp`] gets it.
///
/// The flow key is made on demand ([`Segment::flow`]): it is about a sixth of the parse's
/// instructions, and a sink without a flow table (the p0f lines, a records-only replay)
/// never needs it.
pub struct Segment<'a> {
    rec: &'a SynRecord,
    l3: L3<'a>,
    /// When the packet was captured, ns since the Unix epoch.
    pub ts_ns: u64,
    /// Layer-3 bytes: IPv4 total length, or 40 + IPv6 payload length (as the header says).
    pub l3_bytes: u64,
}

impl<'a> Segment<'a> {
    /// The packet's flow and its direction in it ([`record::flow_dir`]).
    #[inline(always)]
    pub fn flow(&self) -> (FlowKey, u8) {
        self.rec.flow_key()
    }

    /// The packet's endpoints as its record has them, to tell later packets of its flow by
    /// ([`Endpoints::way_of`]).
    #[inline(always)]
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::of(self.rec)
    }

    /// TCP flags ([`record::tcp_flag`] bits).
    #[inline(always)]
    pub fn tcp_flags(&self) -> u16 {
        self.rec.tcp_flags
    }

    /// The record fields of the packet: addresses, ports, flags, encapsulation (and for a
    /// SYN everything else).
    #[inline(always)]
    pub fn fields(&self) -> &SynRecord {
        self.rec
    }

    /// The byte a non-empty [`Segment::payload`] starts with, found without most of its
    /// checks: a pre-test for a sink that wants only payloads starting with given bytes (or
    /// only segments with payload), costing a few reads where `payload` costs a dozen checks.
    ///
    /// Whenever `payload` is `Some` with bytes, this is `Some` of its first byte (the TCP
    /// header is `ip_hdr_len` bytes into the IP packet for both versions `payload` accepts,
    /// and the payload ends where the IP header says the packet does). So `None` means
    /// `payload` has no bytes to offer; a `Some` may still come with a `payload` of `None`
    /// (a fragment, a bad data offset, IPv6 extension headers), and only says "ask it".
    #[inline(always)]
    pub fn payload_first_byte(&self) -> Option<u8> {
        let r = self.rec;
        let ip = self.l3.off as usize;
        let tcp = ip + usize::from(r.ip_hdr_len);
        let doff = usize::from(*self.l3.frame.get(tcp + 12)? >> 4) * 4;
        let ip_bytes = usize::from(r.ip_len) + if r.ip_version == 6 { 40 } else { 0 };
        if tcp + doff >= ip + ip_bytes {
            return None;
        }
        self.l3.frame.get(tcp + doff).copied()
    }

    /// The TCP payload and sequence number, when p0f would read them: an unfragmented IPv4
    /// packet or an IPv6 packet whose next header is TCP (p0f walks no extension headers),
    /// a sane data offset, and every payload byte the IP header announces captured (p0f
    /// drops a packet cut by the snap length). Made only when asked for: the parse itself
    /// reads nothing past the TCP flags of a non-SYN packet.
    ///
    /// The IP header's fields come from the record (the parser copied them for every TCP
    /// packet), so only the TCP data offset and sequence number are read here: this runs
    /// for every TCP packet of a replay that feeds p0f's HTTP module.
    #[inline]
    pub fn payload(&self) -> Option<TcpPayload<'a>> {
        let r = self.rec;
        let (hdr, total) = match r.ip_version {
            // More fragments, or a fragment offset: p0f does not reassemble.
            4 if r.ip_frag & 0x3fff == 0 => (usize::from(r.ip_hdr_len), usize::from(r.ip_len)),
            // Extension headers (a header longer than 40 bytes): p0f reads TCP only when it
            // is the fixed header's next header.
            6 if r.ip_hdr_len == 40 => (40, 40 + usize::from(r.ip_len)),
            _ => return None,
        };
        let off = self.l3.off as usize;
        let tcp = self
            .l3
            .frame
            .get(off..off.checked_add(total)?)?
            .get(hdr..)?;
        let doff = usize::from(*tcp.get(12)? >> 4) * 4;
        if doff < 20 {
            return None;
        }
        let bytes = tcp.get(doff..)?;
        let seq = tcp.first_chunk::<8>()?;
        Some(TcpPayload {
            seq: u32::from_be_bytes([seq[4], seq[5], seq[6], seq[7]]),
            len: u16::try_from(bytes.len()).ok()?,
            bytes,
        })
    }
}

/// A segment's endpoints and encapsulation as its record has them, in its own direction:
/// what its flow key is made of ([`record::FlowKey::new_in`]) ([`Segment::endpoints`]).
/// A sink that keeps the last flow it saw tells a later segment of that flow by comparing
/// these with the segment's fields ([`Endpoints::way_of`]), without making its key, which
/// costs more than the parse of most segments. Equal endpoints give equal keys and
/// directions (comparing the encapsulation even where the key leaves it out only makes a
/// match rarer, never wrong).
///
/// Held as the record holds them, so that a comparison is two 16-byte compares (one vector
/// compare each) and two word compares, with nothing computed from the segment's fields
/// first: most segments continue the last flow, one way or the other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// The source address, as in the record.
    src: [u8; 16],
    /// The destination address, likewise.
    dst: [u8; 16],
    /// The source port in the low half, the destination port in the high half.
    ports: u32,
    /// IP version and encapsulation ([`rest`]).
    rest: u64,
}

impl Endpoints {
    #[inline(always)]
    fn of(f: &SynRecord) -> Endpoints {
        Endpoints {
            src: f.src_addr,
            dst: f.dst_addr,
            ports: ports(f),
            rest: rest(f),
        }
    }

    /// How the segment with fields `f` goes in the flow of the segment these endpoints were
    /// taken from: `Some(0)` the same way (the same key and direction), `Some(1)` the other
    /// way (the same key, the other direction), `None` when it is not known to be that flow.
    /// A segment between one address and port and itself goes the same way both ways, as
    /// its key's direction does.
    #[inline(always)]
    pub fn way_of(&self, f: &SynRecord) -> Option<u8> {
        if rest(f) != self.rest {
            return None;
        }
        // `&`, not `&&`: each compare is a few instructions, cheaper than a branch.
        let ports = ports(f);
        if (f.src_addr == self.src) & (f.dst_addr == self.dst) & (ports == self.ports) {
            return Some(0);
        }
        let back = (f.src_addr == self.dst)
            & (f.dst_addr == self.src)
            & (ports == self.ports.rotate_left(16));
        back.then_some(1)
    }
}

/// A record's ports as one word: source port low, destination port high.
#[inline(always)]
fn ports(f: &SynRecord) -> u32 {
    u32::from(f.src_port) | u32::from(f.dst_port) << 16
}

/// A record's IP version and encapsulation (id, kind, depth and flags) as one word.
#[inline(always)]
fn rest(f: &SynRecord) -> u64 {
    u64::from(f.encap_id)
        | u64::from(f.encap_kind) << 32
        | u64::from(f.encaps) << 40
        | u64::from(f.encap_flags) << 48
        | u64::from(f.ip_version) << 56
}

#[cfg(test)]
impl<'a> Segment<'a> {
    /// [`Segment::payload`] read from the frame alone ([`tcp_payload`]).
    pub(super) fn payload_from_frame(&self) -> Option<TcpPayload<'a>> {
        tcp_payload(self.l3.frame, self.l3.off as usize, self.rec.ip_version)
    }
}

/// [`Segment::payload`] from the frame's bytes alone, read the way p0f reads them: the
/// independent check that the record's fields give the same answer (tests).
#[cfg(test)]
pub(super) fn tcp_payload(frame: &[u8], off: usize, ip_version: u8) -> Option<TcpPayload<'_>> {
    let ip = frame.get(off..)?;
    let (hdr, total) = match ip_version {
        4 => {
            let ihl = usize::from(*ip.first()? & 0x0f) * 4;
            let flags_off = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
            // More fragments, or a fragment offset: p0f does not reassemble.
            if flags_off & 0x3fff != 0 || *ip.get(9)? != 6 {
                return None;
            }
            (
                ihl,
                usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?])),
            )
        }
        6 => {
            if *ip.get(6)? != 6 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            (40, 40 + plen)
        }
        _ => return None,
    };
    let ip = ip.get(..total)?;
    let tcp = ip.get(hdr..)?;
    let doff = usize::from(*tcp.get(12)? >> 4) * 4;
    if doff < 20 {
        return None;
    }
    let bytes = tcp.get(doff..)?;
    let seq = u32::from_be_bytes([*tcp.get(4)?, *tcp.get(5)?, *tcp.get(6)?, *tcp.get(7)?]);
    Some(TcpPayload {
        seq,
        len: u16::try_from(bytes.len()).ok()?,
        bytes,
    })
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
#[inline(always)]
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
        Ok((l3_bytes, syn, l3)) => {
            stats.tcp += 1;
            sink.tcp(&Segment {
                rec: &rec,
                l3,
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

#[cfg(test)]
mod tests {
    use super::*;
    use record::encap;

    /// A record of 198.51.100.1:40000 -> 198.51.100.2:80 with `change` applied.
    fn rec(change: impl Fn(&mut SynRecord)) -> SynRecord {
        let mut r = SynRecord::ZERO;
        r.ip_version = 4;
        r.src_addr[..4].copy_from_slice(&[198, 51, 100, 1]);
        r.dst_addr[..4].copy_from_slice(&[198, 51, 100, 2]);
        r.src_port = 40000;
        r.dst_port = 80;
        change(&mut r);
        r
    }

    fn reverse(r: &mut SynRecord) {
        std::mem::swap(&mut r.src_addr, &mut r.dst_addr);
        std::mem::swap(&mut r.src_port, &mut r.dst_port);
    }

    /// Each field a flow is told by, changed alone and with the direction reversed: the
    /// way is the one the flow keys say whenever there is one, and none for another flow.
    #[test]
    fn way_of_follows_flow_keys() {
        type Change = (&'static str, fn(&mut SynRecord));
        let changes: [Change; 9] = [
            ("same", |_| {}),
            ("source address", |r| r.src_addr[3] = 9),
            ("destination address, past the IPv4 bytes", |r| {
                r.dst_addr[15] = 1
            }),
            ("source port", |r| r.src_port = 40001),
            ("destination port", |r| r.dst_port = 443),
            ("IP version", |r| r.ip_version = 6),
            ("encapsulation", |r| {
                r.encap_kind = encap::GRE;
                r.encaps = 1;
            }),
            ("encapsulation id", |r| {
                r.encap_kind = encap::VXLAN;
                r.encaps = 1;
                r.encap_flags = encap::flag::ID;
                r.encap_id = 7;
            }),
            ("ports swapped alone", |r| {
                std::mem::swap(&mut r.src_port, &mut r.dst_port)
            }),
        ];
        let first = rec(|_| {});
        let ends = Endpoints::of(&first);
        let (key, dir) = first.flow_key();
        for (what, change) in changes {
            for back in [false, true] {
                let other = rec(|r| {
                    change(r);
                    if back {
                        reverse(r);
                    }
                });
                let way = ends.way_of(&other);
                let (other_key, other_dir) = other.flow_key();
                if let Some(way) = way {
                    assert_eq!(
                        (other_key, other_dir),
                        (key, dir ^ way),
                        "{what}, back {back}"
                    );
                }
                let expect = (what == "same").then_some(u8::from(back));
                assert_eq!(way, expect, "{what}, back {back}");
            }
        }
        // A flow between an address and port and itself goes the same way both ways.
        let own = rec(|r| {
            r.dst_addr = r.src_addr;
            r.dst_port = r.src_port;
        });
        assert_eq!(Endpoints::of(&own).way_of(&own), Some(0));
    }
}
