//! The parser, written against a tiny [`Packet`] trait so the very same code runs in the kernel
//! (over the packet's memory) and in userspace (over a byte slice, [`Frame`]).
//!
//! Verifier-driven shape:
//! - every read is of a constant size ([`Packet::bytes`] hands out a `&[u8; N]`): the kernel
//!   side checks `N` bytes against the packet's end once and the parser then reads fields
//!   straight from packet memory, with no copy; the variable-length TCP option area is
//!   dispatched over its 11 possible sizes (0, 4, …, 40);
//! - loops have constant bounds (the bounds in `record`: VLAN tags, encapsulations, MPLS
//!   labels, link headers, GTP-U and IPv6 extension headers);
//! - no slice indexing with run-time indexes, no arithmetic that can panic (all `wrapping_*` /
//!   `saturating_*` / checked by construction);
//! - the parse is cut into steps at encapsulations ([`first_step`], [`next_step`], the state
//!   between them a small [`Resume`]): the kernel runs each step in a program of its own,
//!   joined by tail calls, because one program walking every encapsulation made the verifier
//!   explore each combination of headers with exact offsets (more than its 1M instructions),
//!   while a step that starts from a state read from a map is explored once. The first step
//!   (every packet's) reads only Ethernet, VLAN tags, IP and TCP, so plain traffic costs what
//!   it did before encapsulations were read. [`parse_ethernet`] and [`ip`] chain the same
//!   steps in a loop for userspace.
//!
//! The rules:
//! - the link layer and the tunnels are walked to the innermost IP packet (`crate::link`,
//!   `crate::tunnel`; the list is in formats/README.md, "Encapsulations"); the record is that
//!   packet's. At TC the outer VLAN tag is often already stripped into `skb->vlan_tci` by the
//!   driver, and the data then simply starts with the inner type.
//! - IPv4: any header length 20..=60; later fragments (offset != 0) are skipped, a first
//!   fragment (MF) is read when it holds the whole TCP header.
//! - IPv6: hop-by-hop (0), routing (43), fragment (44, offset 0 only) and destination-options
//!   (60) headers are walked, at most [`MAX_IPV6_EXT`] of them; any other next header is
//!   "not tcp" unless it is a tunnel.
//! - TCP: the 20-byte base header must be there for the packet to count at all (flows need
//!   ports and flags). A SYN additionally needs its whole option area (that is what p0f reads)
//!   and a data offset of at least 5 words; otherwise the flow is still updated but no record is
//!   made.
//! - Every field is copied raw; nothing is judged here (odd flags, malformed options, bogus
//!   lengths are the fingerprinting engine's business).
//!
//! The skip reasons are those of etherparse's header slices, checked in the same order (the
//! whole IPv4 header before its protocol, the whole of each IPv6 extension header before the
//! next), so that replay can count them; checks that only choose between two reasons run on
//! the path that skips, so a packet that is kept pays nothing for them.

use record::{Encap, MAX_STEPS, SynRecord, TCP_OPTS_MAX, encap, tcp_flag};

use crate::layer::{EncapId, enter_encap, next_step_number};
pub use crate::layer::{Frame, IpVersion, Link, Packet, Resume, Skip, resume};
use crate::link::{self, Walked};
use crate::tunnel::{Carried, carried, tunnel};

const IPPROTO_TCP: u8 = 6;
/// IPv6 extension headers we step over: hop-by-hop options, routing, fragment (the first
/// fragment only), destination options.
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DSTOPTS: u8 = 60;
/// How many IPv6 extension headers we walk before giving up. RFC 8200 order allows
/// hop-by-hop, dest-opts, routing, fragment, dest-opts before the upper layer; 4 covers all
/// but the rarest of those.
pub use record::MAX_IPV6_EXT;

/// What became of a TCP packet's SYN bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syn {
    /// SYN is clear.
    No,
    /// A SYN whose every field, options included, was read: the record is complete and
    /// canonical and may be emitted.
    Record,
    /// A SYN whose record cannot be made ([`Skip::BadTcpHeader`], [`Skip::TruncatedTcpHeader`],
    /// [`Skip::Fragment`]).
    Unreadable(Skip),
}

/// What the parser found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a TCP packet we can read.
    Skip(Skip),
    /// A TCP packet. The record holds its addresses, ports and flags (enough for the flow
    /// table, [`crate::flow_key`]); `syn` says whether it also holds a SYN record.
    Tcp {
        /// Layer-3 bytes of the innermost IP packet: IPv4 total length, or 40 + IPv6 payload
        /// length (as the header says).
        l3_bytes: u32,
        /// Offset of the innermost IP header from the start of the packet.
        l3_off: u32,
        /// The SYN bit and whether its record was made.
        syn: Syn,
    },
}

/// Parses an Ethernet frame from its first byte into `rec`: [`ethernet`], then [`ip`].
#[inline(always)]
pub fn parse_ethernet<P: Packet>(pkt: &mut P, rec: &mut SynRecord) -> Parsed {
    match ethernet(pkt) {
        Ok(link) => ip(pkt, link, rec),
        Err(skip) => Parsed::Skip(skip),
    }
}

/// The Ethernet header and what follows it up to the first IP header: VLAN tags (at most
/// [`record::MAX_VLAN_TAGS`]), VN-Tag, LLC/SNAP, and the encapsulations a type field announces
/// (MPLS, PPPoE, PBB, Cisco FabricPath). At TC the outer VLAN tag is often already stripped
/// into `skb->vlan_tci` by the driver, and the data then simply starts with the inner type.
#[inline(always)]
pub fn ethernet<P: Packet>(pkt: &mut P) -> Result<Link, Skip> {
    link::walk_all(pkt, ETHERNET)
}

/// Where every Ethernet frame's parse starts: its type field, in step 1.
const ETHERNET: Resume = Resume {
    off: 12,
    what: resume::TYPE,
    vlans: 0,
    links: 0,
    steps: 1,
    encaps: Encap::NONE,
};

/// What one step of a parse ([`first_step`], [`next_step`]) found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stepped {
    /// The parse is over.
    Done(Parsed),
    /// An encapsulation: the next step goes on from here.
    Inner(Resume),
}

/// The first step of an Ethernet frame's parse, the kernel's first program: the Ethernet
/// header, VLAN tags, IP and TCP, stopping at any encapsulation (a type field other than IP
/// and VLAN, or a tunnel in IP). `rec` must be [`SynRecord::ZERO`] on entry, as for [`ip`].
#[inline(always)]
pub fn first_step<P: Packet>(pkt: &mut P, rec: &mut SynRecord) -> Stepped {
    match link::walk(pkt, ETHERNET, ETHERNET.steps) {
        Ok(Walked::Ip(link)) => ip_step(pkt, link, rec),
        Ok(Walked::Inner(r)) => Stepped::Inner(r),
        Err(skip) => Stepped::Done(Parsed::Skip(skip)),
    }
}

/// A later step, from where the previous one stopped: a tunnel header, an encapsulating (or
/// rarer) link header, or the walk through one Ethernet header to its IP packet and TCP
/// header. `rec` must be [`SynRecord::ZERO`] on entry. The kernel's decapsulation program
/// runs it, once per tail call; [`parse_ethernet`] and [`ip`] chain the same steps in
/// userspace. Past [`MAX_STEPS`] steps the packet is skipped ("encapsulation too deep").
#[inline(always)]
pub fn next_step<P: Packet>(pkt: &mut P, from: Resume, rec: &mut SynRecord) -> Stepped {
    // A tunnel header is a step of its own: read together with the walk after it, the
    // kernel's verifier saw every tunnel's offsets combined with every link header's.
    if from.what == resume::GRE || from.what == resume::UDP {
        return match through_tunnel(pkt, from) {
            Ok(from) => Stepped::Inner(from),
            Err(skip) => Stepped::Done(Parsed::Skip(skip)),
        };
    }
    match link::link_step(pkt, from) {
        Ok(Walked::Ip(link)) => ip_step(pkt, link, rec),
        Ok(Walked::Inner(r)) => Stepped::Inner(r),
        Err(skip) => Stepped::Done(Parsed::Skip(skip)),
    }
}

/// An Ethernet frame's parse the way the kernel runs it: [`first_step`], then [`next_step`]
/// as its tail calls do, each step with a fresh record and only the [`Resume`] carried over.
/// Gives what [`parse_ethernet`] gives (tests over every encapsulation and over the shared
/// captures hold the two to that), and how many steps it ran: at most [`MAX_STEPS`] + 1, the
/// last of which may only refuse to go on (in the kernel: [`MAX_STEPS`] tail calls).
pub fn by_steps<P: Packet>(pkt: &mut P, rec: &mut SynRecord) -> (usize, Parsed) {
    *rec = SynRecord::ZERO;
    let mut stepped = first_step(pkt, rec);
    let mut steps = 1;
    while steps <= MAX_STEPS {
        match stepped {
            Stepped::Done(parsed) => return (steps, parsed),
            Stepped::Inner(from) => {
                *rec = SynRecord::ZERO;
                stepped = next_step(pkt, from, rec);
                steps += 1;
            }
        }
    }
    (steps, Parsed::Skip(Skip::EncapsulationTooDeep))
}

/// What one IP header led to.
enum Step {
    /// The packet ends here (skipped).
    Done(Parsed),
    /// A TCP header at `l4`; the record holds the IP fields.
    Tcp(Tcp),
    /// Another IP protocol, carried at this offset: maybe a tunnel.
    Tunnel(u8, u32),
}

/// Where the TCP header is and what the IP layer says about it.
struct Tcp {
    /// Offset of the IP header.
    l3: u32,
    l4: u32,
    /// TCP segment length the IP header announces (header + payload).
    l4_len: u16,
    l3_bytes: u32,
    /// A first fragment: the TCP header must lie within `l4_len`.
    first_fragment: bool,
    /// IPv4 header with options: (offset, length), to tell a cut IP header from a cut TCP
    /// header; (0, 0) otherwise.
    ip_opts: (u32, u32),
}

/// Parses the IP packet `link` points at into `rec`, which must be [`SynRecord::ZERO`] on entry
/// (the record stays canonical because nothing writes past the bytes a field uses), looking
/// through up to [`record::MAX_ENCAPS`] encapsulations in all: the record describes the innermost IP
/// packet. With [`Syn::Record`] every field is filled except `ts_ns`, `ifindex`, `direction`,
/// `source` and `record_flags`, which the caller owns; for other TCP packets at least what the
/// flow key needs (version, addresses, ports) and the flags. After [`Parsed::Skip`] the
/// record's contents are unspecified.
#[inline(always)]
pub fn ip<P: Packet>(pkt: &mut P, link: Link, rec: &mut SynRecord) -> Parsed {
    // The common packet (TCP in this IP header) returns here. Only an encapsulation goes on,
    // out of line: the loop's step state, carried from turn to turn, is then not packed and
    // unpacked on every frame's path (7% of a release build's instructions on the bench
    // slice, BENCHMARKS.md).
    match ip_step(pkt, link, rec) {
        Stepped::Done(parsed) => parsed,
        Stepped::Inner(from) => ip_inner(pkt, from, rec),
    }
}

/// [`ip`] after the first IP header led into an encapsulation at `from` ([`ip_step`]'s
/// [`Stepped::Inner`]).
#[inline(never)]
pub fn ip_inner<P: Packet>(pkt: &mut P, from: Resume, rec: &mut SynRecord) -> Parsed {
    let mut stepped = Stepped::Inner(from);
    // Each turn is one step, and a step past the bound skips the packet.
    let mut turn = 0;
    while turn < MAX_STEPS {
        match stepped {
            Stepped::Done(parsed) => return parsed,
            Stepped::Inner(from) => stepped = next_step(pkt, from, rec),
        }
        turn += 1;
    }
    match stepped {
        Stepped::Done(parsed) => parsed,
        Stepped::Inner(_) => Parsed::Skip(Skip::EncapsulationTooDeep),
    }
}

/// One IP header: its TCP packet, or the tunnel it carries (one more encapsulation, which
/// starts a new Ethernet header's count of VLAN tags and link headers).
///
/// [`ip`] is this and [`ip_inner`]; a per-frame loop that takes the result apart at once
/// calls the two itself, so that the common packet's result is never merged with the
/// out-of-line one (the merged value went through memory, BENCHMARKS.md).
#[inline(always)]
pub fn ip_step<P: Packet>(pkt: &mut P, link: Link, rec: &mut SynRecord) -> Stepped {
    let step = match link.version {
        IpVersion::V4 => parse_ipv4(pkt, link.off, rec),
        IpVersion::V6 => parse_ipv6(pkt, link.off, rec),
    };
    let (proto, l4) = match step {
        Step::Tcp(t) => {
            link.encaps.write(rec);
            return Stepped::Done(tcp_of(pkt, t, rec));
        }
        Step::Done(parsed) => return Stepped::Done(parsed),
        Step::Tunnel(proto, l4) => (proto, l4),
    };
    clear_ip(rec);
    let mut encaps = link.encaps;
    match carried(pkt, proto, l4) {
        Carried::Ip(next) => match enter_encap(&mut encaps, encap::IP_IN_IP, EncapId::NONE) {
            Ok(()) => Stepped::Inner(next.resume(encaps, 0, 0, link.steps)),
            Err(skip) => Stepped::Done(Parsed::Skip(skip)),
        },
        // Read by the next step, which counts the encapsulation once the header is known.
        Carried::Tunnel(what) => Stepped::Inner(Resume {
            off: l4,
            what,
            vlans: 0,
            links: 0,
            steps: link.steps,
            encaps,
        }),
        Carried::Nothing => Stepped::Done(Parsed::Skip(Skip::NotTcp)),
    }
}

/// The tunnel-header step ([`resume::GRE`], [`resume::UDP`]): past the header, counting the
/// encapsulation and the step.
#[inline(always)]
fn through_tunnel<P: Packet>(pkt: &mut P, from: Resume) -> Result<Resume, Skip> {
    let step = next_step_number(&from)?;
    let inner = tunnel(pkt, from.what, from.off)?;
    let mut encaps = from.encaps;
    enter_encap(&mut encaps, inner.kind, inner.id)?;
    Ok(inner.next.resume(encaps, 0, 0, step))
}

/// The TCP step after the IP layers.
#[inline(always)]
fn tcp_of<P: Packet>(pkt: &mut P, t: Tcp, rec: &mut SynRecord) -> Parsed {
    match parse_tcp(pkt, &t, rec) {
        // Options cut short make the IP header unreadable, whatever it carries.
        Parsed::Skip(Skip::TruncatedTcpHeader)
            if t.ip_opts.1 > 0 && !has(pkt, t.ip_opts.0, t.ip_opts.1) =>
        {
            Parsed::Skip(Skip::TruncatedIpHeader)
        }
        parsed => parsed,
    }
}

/// Zeroes what an outer IP header wrote into the record, so the inner one's record is
/// canonical (an outer IPv6 address would leave bytes an inner IPv4 address does not cover).
#[inline(always)]
fn clear_ip(rec: &mut SynRecord) {
    rec.tos = 0;
    rec.flow_label = 0;
    rec.ip_len = 0;
    rec.ttl = 0;
    rec.src_addr = [0; 16];
    rec.dst_addr = [0; 16];
}

/// Whether the packet has `len` (> 0) bytes from `off`: one read of its last byte.
#[inline(always)]
fn has<P: Packet>(pkt: &mut P, off: u32, len: u32) -> bool {
    pkt.bytes::<1>(off + len - 1).is_some()
}

/// An IPv4 address and four zero bytes, in memory order, as one word (one store).
#[inline(always)]
fn ipv4_word(addr: [u8; 4]) -> [u8; 8] {
    let a = u64::from(u32::from_ne_bytes(addr));
    let word = if cfg!(target_endian = "little") {
        a
    } else {
        a << 32
    };
    word.to_ne_bytes()
}

#[inline(always)]
fn parse_ipv4<P: Packet>(pkt: &mut P, off: u32, rec: &mut SynRecord) -> Step {
    let Some(ip) = pkt.bytes::<20>(off) else {
        return Step::Done(Parsed::Skip(Skip::TruncatedIpHeader));
    };
    let ihl = u16::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return Step::Done(Parsed::Skip(Skip::BadIpHeader));
    }
    let proto = ip[9];
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    let ihl32 = u32::from(ihl);
    // Later fragments are skipped: the TCP header is not in them. A first fragment (MF,
    // offset 0) is read when it holds the whole TCP header ([`parse_tcp`]).
    if proto != IPPROTO_TCP || frag & record::ip_frag::OFFSET_MASK != 0 {
        // Options cut short make the header unreadable, whatever it carries.
        if ihl > 20 && !has(pkt, off, ihl32) {
            return Step::Done(Parsed::Skip(Skip::TruncatedIpHeader));
        }
        let skip = if proto != IPPROTO_TCP {
            if frag & (record::ip_frag::MF | record::ip_frag::OFFSET_MASK) == 0 {
                return Step::Tunnel(proto, off + ihl32);
            }
            Skip::NotTcp
        } else {
            Skip::Fragment
        };
        return Step::Done(Parsed::Skip(skip));
    }
    let total_len = u16::from_be_bytes([ip[2], ip[3]]);
    rec.ip_version = 4;
    rec.tos = ip[1];
    rec.ip_len = total_len;
    rec.ip_id = u16::from_be_bytes([ip[4], ip[5]]);
    rec.ip_frag = frag;
    rec.ttl = ip[8];
    rec.ip_hdr_len = ihl;
    // Eight bytes each (the address and four of the zeroes the record already has there):
    // the flow key reads an address a word at a time, and a word loaded across a narrower
    // store must wait for it to retire instead of being forwarded (a stall per packet).
    rec.src_addr[..8].copy_from_slice(&ipv4_word([ip[12], ip[13], ip[14], ip[15]]));
    rec.dst_addr[..8].copy_from_slice(&ipv4_word([ip[16], ip[17], ip[18], ip[19]]));
    // The IP header's announced length is what counts, options included.
    Step::Tcp(Tcp {
        l3: off,
        l4: off + ihl32,
        l4_len: total_len.saturating_sub(ihl),
        l3_bytes: u32::from(total_len),
        first_fragment: frag & record::ip_frag::MF != 0,
        ip_opts: if ihl > 20 { (off, ihl32) } else { (0, 0) },
    })
}

#[inline(always)]
fn parse_ipv6<P: Packet>(pkt: &mut P, off: u32, rec: &mut SynRecord) -> Step {
    let Some(ip) = pkt.bytes::<40>(off) else {
        return Step::Done(Parsed::Skip(Skip::TruncatedIpHeader));
    };
    if ip[0] >> 4 != 6 {
        return Step::Done(Parsed::Skip(Skip::BadIpHeader));
    }
    let payload_len = u16::from_be_bytes([ip[4], ip[5]]);
    let mut next = ip[6];
    // Every field is taken before the extension-header walk, which needs the packet again.
    rec.tos = (ip[0] << 4) | (ip[1] >> 4);
    rec.flow_label = (u32::from(ip[1] & 0x0f) << 16) | (u32::from(ip[2]) << 8) | u32::from(ip[3]);
    rec.ip_len = payload_len;
    rec.ttl = ip[7];
    copy16(&mut rec.src_addr, ip, 8);
    copy16(&mut rec.dst_addr, ip, 24);
    let mut hdr_len: u16 = 40;
    let mut fragment = false;
    let mut first_fragment = false;
    // Bounded walk over the extension headers we know how to skip; each must be there whole.
    let mut i = 0;
    while i < MAX_IPV6_EXT {
        if next == IPPROTO_TCP || !is_walked_ext(next) {
            break;
        }
        let at = off + u32::from(hdr_len);
        let Some(ext) = pkt.bytes::<8>(at) else {
            return Step::Done(Parsed::Skip(Skip::TruncatedIpHeader));
        };
        let this = next;
        next = ext[0];
        let len = if this == IPV6_FRAGMENT {
            // Offset (13 bits), 2 reserved bits, M. Only the first fragment has the TCP header.
            let offset_m = u16::from_be_bytes([ext[2], ext[3]]);
            if offset_m & 0xfff8 != 0 {
                return Step::Done(Parsed::Skip(Skip::Fragment));
            }
            fragment = true;
            first_fragment = offset_m & 0x0001 != 0;
            8
        } else {
            let len = (u16::from(ext[1]) + 1) * 8;
            if len > 8 && !has(pkt, at, u32::from(len)) {
                return Step::Done(Parsed::Skip(Skip::TruncatedIpHeader));
            }
            len
        };
        hdr_len = hdr_len.saturating_add(len);
        i += 1;
    }
    let l4 = off + u32::from(hdr_len);
    if next != IPPROTO_TCP {
        let skip = if is_walked_ext(next) {
            Skip::Ipv6ExtChainTooLong
        } else if fragment {
            Skip::Fragment
        } else {
            return Step::Tunnel(next, l4);
        };
        return Step::Done(Parsed::Skip(skip));
    }
    rec.ip_version = 6;
    rec.ip_hdr_len = hdr_len;
    // Bytes after the extension headers, per the payload length field.
    Step::Tcp(Tcp {
        l3: off,
        l4,
        l4_len: payload_len.saturating_sub(hdr_len - 40),
        l3_bytes: 40 + u32::from(payload_len),
        first_fragment,
        ip_opts: (0, 0),
    })
}

#[inline(always)]
fn is_walked_ext(next: u8) -> bool {
    next == IPV6_HOPOPTS || next == IPV6_ROUTING || next == IPV6_FRAGMENT || next == IPV6_DSTOPTS
}

/// Copies 16 bytes of `src` starting at the constant `at` (8 or 24) into `dst`.
#[inline(always)]
fn copy16(dst: &mut [u8; 16], src: &[u8; 40], at: usize) {
    let mut i = 0;
    while i < 16 {
        // `at + i < 40` for both call sites; `get` keeps it panic-free regardless.
        if let (Some(d), Some(s)) = (dst.get_mut(i), src.get(at + i)) {
            *d = *s;
        }
        i += 1;
    }
}

/// Reads the TCP header at `l4`. `l4_len` is the TCP segment length the IP header announces
/// (header + payload), `l3_bytes` the flow-counter byte count.
#[inline(always)]
fn parse_tcp<P: Packet>(pkt: &mut P, t: &Tcp, rec: &mut SynRecord) -> Parsed {
    let (l4, l4_len, l3_bytes, l3_off) = (t.l4, t.l4_len, t.l3_bytes, t.l3);
    let Some(tcp) = pkt.bytes::<20>(l4) else {
        return Parsed::Skip(Skip::TruncatedTcpHeader);
    };
    // A first fragment must hold the base header itself; bytes past it belong to no one.
    if t.first_fragment && l4_len < 20 {
        return Parsed::Skip(Skip::Fragment);
    }
    // What the flow table needs, for every packet. The ports are taken as one word, so
    // that the compiler stores them with one store: the readers of a record load them
    // together, and a load across two separate 2-byte stores waits for both to reach the
    // cache instead of being forwarded from them (a stall per packet in replay).
    let ports = u32::from_be_bytes([tcp[0], tcp[1], tcp[2], tcp[3]]);
    rec.src_port = (ports >> 16) as u16;
    rec.dst_port = ports as u16;
    rec.tcp_flags = u16::from(tcp[13]) | (u16::from(tcp[12] & 0x01) << 8);
    if rec.tcp_flags & tcp_flag::SYN == 0 {
        return Parsed::Tcp {
            l3_bytes,
            l3_off,
            syn: Syn::No,
        };
    }
    // The rest only a SYN's record carries.
    let doff = (tcp[12] >> 4) * 4;
    if doff < 20 {
        return Parsed::Tcp {
            l3_bytes,
            l3_off,
            syn: Syn::Unreadable(Skip::BadTcpHeader),
        };
    }
    rec.seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    rec.ack = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    rec.window = u16::from_be_bytes([tcp[14], tcp[15]]);
    rec.urg_ptr = u16::from_be_bytes([tcp[18], tcp[19]]);
    rec.tcp_hdr_len = doff;
    rec.payload_len = l4_len.saturating_sub(u16::from(doff));
    let opts_len = doff - 20;
    // A failed read copies nothing, so the option area stays zero and the record canonical
    // even when it is not emitted.
    let syn = if load_opts(pkt, l4 + 20, opts_len, &mut rec.tcp_opts) {
        rec.tcp_opts_len = opts_len;
        // A first fragment whose announced length ends before the options do: the bytes
        // after it are the next fragment's, not these options.
        if t.first_fragment && l4_len < u16::from(doff) {
            Syn::Unreadable(Skip::Fragment)
        } else {
            Syn::Record
        }
    } else {
        Syn::Unreadable(Skip::TruncatedTcpHeader)
    };
    Parsed::Tcp {
        l3_bytes,
        l3_off,
        syn,
    }
}

/// Copies `len` (a multiple of 4, at most 40) option bytes into the front of `out` with a
/// constant-size read per possible length.
#[inline(always)]
fn load_opts<P: Packet>(pkt: &mut P, off: u32, len: u8, out: &mut [u8; TCP_OPTS_MAX]) -> bool {
    macro_rules! chunk {
        ($n:literal) => {
            match (out.first_chunk_mut::<$n>(), pkt.bytes::<$n>(off)) {
                (Some(dst), Some(src)) => {
                    *dst = *src;
                    true
                }
                _ => false,
            }
        };
    }
    match len {
        0 => true,
        4 => chunk!(4),
        8 => chunk!(8),
        12 => chunk!(12),
        16 => chunk!(16),
        20 => chunk!(20),
        24 => chunk!(24),
        28 => chunk!(28),
        32 => chunk!(32),
        36 => chunk!(36),
        40 => chunk!(40),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::ip_frag;

    /// The word an IPv4 address is stored as holds its bytes in order, then zeroes.
    #[test]
    fn ipv4_word_is_the_address_then_zeroes() {
        assert_eq!(ipv4_word([192, 0, 2, 255]), [192, 0, 2, 255, 0, 0, 0, 0]);
        assert_eq!(ipv4_word([0, 0, 0, 1]), [0, 0, 0, 1, 0, 0, 0, 0]);
    }

    fn zero() -> SynRecord {
        SynRecord::ZERO
    }

    /// The userspace parse, checked against the kernel's chain of steps.
    fn parse(frame: &[u8], rec: &mut SynRecord) -> Parsed {
        let p = parse_ethernet(&mut Frame(frame), rec);
        let mut kernel_r = SynRecord::ZERO;
        let (_, kernel_p) = by_steps(&mut Frame(frame), &mut kernel_r);
        assert_eq!(kernel_p, p);
        if let Parsed::Tcp { .. } = p {
            assert_eq!(&kernel_r, rec);
        }
        p
    }

    fn skip(skip: Skip) -> Parsed {
        Parsed::Skip(skip)
    }

    /// Builds an Ethernet/IPv4/TCP SYN by hand from the listed field values.
    fn v4_syn(opts: &[u8], ip_opts: &[u8], payload: &[u8]) -> Vec<u8> {
        assert_eq!(opts.len() % 4, 0);
        assert_eq!(ip_opts.len() % 4, 0);
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&[0x08, 0x00]);
        let ihl = 20 + ip_opts.len();
        let total = ihl + 20 + opts.len() + payload.len();
        p.push(0x40 | (ihl / 4) as u8);
        p.push(0x02); // ECT(0)... tos
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&0x1234u16.to_be_bytes());
        p.extend_from_slice(&0x4000u16.to_be_bytes());
        p.push(64);
        p.push(6);
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&[198, 51, 100, 1]);
        p.extend_from_slice(&[198, 51, 100, 2]);
        p.extend_from_slice(ip_opts);
        push_tcp(&mut p, opts, 0x02, payload);
        p
    }

    fn push_tcp(p: &mut Vec<u8>, opts: &[u8], flags: u8, payload: &[u8]) {
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&80u16.to_be_bytes());
        p.extend_from_slice(&0xdeadbeefu32.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.push((((20 + opts.len()) / 4) as u8) << 4 | 1);
        p.push(flags);
        p.extend_from_slice(&64240u16.to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&9u16.to_be_bytes());
        p.extend_from_slice(opts);
        p.extend_from_slice(payload);
    }

    const OPTS: [u8; 20] = [
        2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    #[test]
    fn ipv4_syn_fields() {
        let pkt = v4_syn(&OPTS, &[1, 1, 1, 0], b"hi");
        let mut r = SynRecord::ZERO;
        let got = parse(pkt.as_slice(), &mut r);
        assert_eq!(
            got,
            Parsed::Tcp {
                l3_bytes: 24 + 40 + 2,
                l3_off: 14,
                syn: Syn::Record
            }
        );
        assert_eq!(r.ip_version, 4);
        assert_eq!(&r.src_addr[..4], &[198, 51, 100, 1]);
        assert_eq!(&r.dst_addr[..4], &[198, 51, 100, 2]);
        assert_eq!((r.src_port, r.dst_port), (40000, 80));
        assert_eq!((r.ip_len, r.ip_id, r.ip_frag), (66, 0x1234, ip_frag::DF));
        assert_eq!((r.ip_hdr_len, r.ttl, r.tos), (24, 64, 2));
        assert_eq!(r.tcp_flags, tcp_flag::SYN | tcp_flag::NS);
        assert_eq!(
            (r.seq, r.ack, r.window, r.urg_ptr),
            (0xdeadbeef, 7, 64240, 9)
        );
        assert_eq!((r.tcp_hdr_len, r.tcp_opts_len, r.payload_len), (40, 20, 2));
        assert_eq!(r.options(), &OPTS);
        assert!(r.is_canonical());
    }

    #[test]
    fn every_option_length_is_read() {
        for n in (0..=40).step_by(4) {
            let opts: Vec<u8> = (1..=n as u8).collect();
            let pkt = v4_syn(&opts, &[], &[]);
            let mut r = SynRecord::ZERO;
            assert!(matches!(
                parse(pkt.as_slice(), &mut r),
                Parsed::Tcp {
                    syn: Syn::Record,
                    ..
                }
            ));
            assert_eq!(r.options(), opts.as_slice());
            assert!(r.is_canonical());
            // A packet cut inside the options is seen as a SYN but not emitted.
            if n > 0 {
                let mut r = SynRecord::ZERO;
                let cut = &pkt[..pkt.len() - 1];
                assert_eq!(
                    parse(cut, &mut r),
                    Parsed::Tcp {
                        l3_bytes: 40 + n as u32,
                        l3_off: 14,
                        syn: Syn::Unreadable(Skip::TruncatedTcpHeader)
                    }
                );
                assert!(r.tcp_opts.iter().all(|b| *b == 0));
            }
        }
    }

    #[test]
    fn vlan_and_qinq_are_skipped() {
        let plain = v4_syn(&OPTS, &[], &[]);
        let mut want = SynRecord::ZERO;
        parse(plain.as_slice(), &mut want);
        for tags in [&[0x81, 0x00][..], &[0x88, 0xa8, 0, 5, 0x81, 0x00][..]] {
            let mut p = plain[..12].to_vec();
            p.extend_from_slice(tags);
            p.extend_from_slice(&[0, 7]); // TCI of the innermost tag
            p.extend_from_slice(&plain[12..]);
            let mut r = SynRecord::ZERO;
            assert!(matches!(
                parse(p.as_slice(), &mut r),
                Parsed::Tcp {
                    syn: Syn::Record,
                    ..
                }
            ));
            assert_eq!(r, want);
        }
    }

    fn v6_syn(ext: &[(u8, &[u8])], flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 12];
        p.extend_from_slice(&[0x86, 0xdd]);
        let ext_len: usize = ext.iter().map(|(_, b)| b.len()).sum();
        // traffic class 0xb8, flow label 0xabcde
        p.extend_from_slice(&[0x6b, 0x8a, 0xbc, 0xde]);
        p.extend_from_slice(&((ext_len + 20 + 8) as u16).to_be_bytes());
        p.push(ext.first().map(|e| e.0).unwrap_or(6));
        p.push(57);
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0xfd, 0, 0x0d, 0xb8]);
        src[15] = 1;
        let mut dst = src;
        dst[15] = 2;
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        for (i, (_, body)) in ext.iter().enumerate() {
            let mut b = body.to_vec();
            b[0] = ext.get(i + 1).map(|e| e.0).unwrap_or(6);
            p.extend_from_slice(&b);
        }
        push_tcp(&mut p, &OPTS[..8], flags, &[]);
        p
    }

    #[test]
    fn ipv6_with_extension_headers() {
        let hop = [0u8, 0, 1, 4, 0, 0, 0, 0];
        let mut dst_opts = [0u8; 16];
        dst_opts[1] = 1; // (1 + 1) * 8 = 16 bytes
        for (ext, hdr_len) in [
            (vec![], 40u16),
            (vec![(0u8, &hop[..])], 48),
            (vec![(0u8, &hop[..]), (60u8, &dst_opts[..])], 64),
        ] {
            let pkt = v6_syn(&ext, 0x12);
            let mut r = SynRecord::ZERO;
            assert_eq!(
                parse(pkt.as_slice(), &mut r),
                Parsed::Tcp {
                    l3_bytes: 40 + u32::from(hdr_len) - 40 + 28,
                    l3_off: 14,
                    syn: Syn::Record
                }
            );
            assert_eq!(r.ip_version, 6);
            assert_eq!((r.tos, r.flow_label, r.ttl), (0xb8, 0xabcde, 57));
            assert_eq!(r.ip_hdr_len, hdr_len);
            assert_eq!(r.ip_len, hdr_len - 40 + 28);
            assert_eq!((r.ip_id, r.ip_frag), (0, 0));
            assert_eq!(r.src_addr[15], 1);
            assert_eq!(&r.dst_addr[..4], &[0xfd, 0, 0x0d, 0xb8]);
            assert_eq!(r.tcp_flags, tcp_flag::SYN | tcp_flag::ACK | tcp_flag::NS);
            assert_eq!((r.tcp_opts_len, r.payload_len), (8, 0));
            assert_eq!(r.options(), &OPTS[..8]);
            assert!(r.is_canonical());
        }
        // A fragment header: an atomic or first fragment is walked, a later one stops the walk.
        let frag = [0u8; 8];
        let pkt = v6_syn(&[(44u8, &frag[..])], 0x02);
        let mut r = SynRecord::ZERO;
        assert!(matches!(
            parse(pkt.as_slice(), &mut r),
            Parsed::Tcp {
                syn: Syn::Record,
                ..
            }
        ));
        assert_eq!((r.ip_hdr_len, r.tcp_opts_len), (48, 8));
        let first = [0u8, 0, 0, 1, 0, 0, 0, 9];
        let pkt = v6_syn(&[(44u8, &first[..])], 0x02);
        assert!(matches!(
            parse(pkt.as_slice(), &mut zero()),
            Parsed::Tcp {
                syn: Syn::Record,
                ..
            }
        ));
        let later = [0u8, 0, 0, 8, 0, 0, 0, 9];
        let pkt = v6_syn(&[(44u8, &later[..])], 0x02);
        assert_eq!(parse(pkt.as_slice(), &mut zero()), skip(Skip::Fragment));
        // A first fragment too short for the SYN's options gives no record.
        let mut short = v6_syn(&[(44u8, &first[..])], 0x02);
        short[18..20].copy_from_slice(&(8u16 + 24).to_be_bytes());
        assert_eq!(
            parse(short.as_slice(), &mut zero()),
            Parsed::Tcp {
                l3_bytes: 40 + 32,
                l3_off: 14,
                syn: Syn::Unreadable(Skip::Fragment)
            }
        );
        // More extension headers than the walk allows.
        let many: Vec<(u8, &[u8])> = (0..=MAX_IPV6_EXT).map(|_| (60u8, &hop[..])).collect();
        let pkt = v6_syn(&many, 0x02);
        assert_eq!(
            parse(pkt.as_slice(), &mut zero()),
            skip(Skip::Ipv6ExtChainTooLong)
        );
        // As many as it allows, then something other than TCP.
        let mut most: Vec<(u8, &[u8])> = (0..MAX_IPV6_EXT).map(|_| (60u8, &hop[..])).collect();
        most.push((17, &frag[..]));
        let pkt = v6_syn(&most, 0x02);
        assert_eq!(parse(pkt.as_slice(), &mut zero()), skip(Skip::NotTcp));
        // An extension header longer than what was captured: the IP header is cut, even where
        // the bytes after it could be read as TCP.
        let pkt = v6_syn(&[(0u8, &hop[..]), (60u8, &dst_opts[..])], 0x02);
        assert_eq!(
            parse(&pkt[..14 + 40 + 8 + 15], &mut zero()),
            skip(Skip::TruncatedIpHeader)
        );
        assert_eq!(
            parse(&pkt[..14 + 40 + 8 + 7], &mut zero()),
            skip(Skip::TruncatedIpHeader)
        );
        // The 40-byte header cut, or another version.
        assert_eq!(
            parse(&pkt[..14 + 39], &mut zero()),
            skip(Skip::TruncatedIpHeader)
        );
        let mut v5 = pkt.clone();
        v5[14] = 0x5b;
        assert_eq!(parse(v5.as_slice(), &mut zero()), skip(Skip::BadIpHeader));
    }

    #[test]
    fn non_syn_and_non_tcp() {
        let mut pkt = v4_syn(&[], &[], b"data");
        let flags_at = 14 + 20 + 13;
        pkt[flags_at] = 0x10; // ACK only
        let mut r = SynRecord::ZERO;
        assert_eq!(
            parse(pkt.as_slice(), &mut r),
            Parsed::Tcp {
                l3_bytes: 44,
                l3_off: 14,
                syn: Syn::No
            }
        );
        // UDP
        let mut udp = pkt.clone();
        udp[14 + 9] = 17;
        assert_eq!(parse(udp.as_slice(), &mut zero()), skip(Skip::NotTcp));
        // IPv4 fragments: non-first, and first with MF.
        let mut frag = pkt.clone();
        frag[14 + 7] = 1;
        assert_eq!(parse(frag.as_slice(), &mut zero()), skip(Skip::Fragment));
        // A first fragment (MF, offset 0) holding the whole TCP header is read; one too
        // short for the base header is not.
        let mut first = pkt.clone();
        first[14 + 6] = 0x20;
        assert_eq!(
            parse(first.as_slice(), &mut zero()),
            Parsed::Tcp {
                l3_bytes: 44,
                l3_off: 14,
                syn: Syn::No
            }
        );
        first[16..18].copy_from_slice(&36u16.to_be_bytes());
        assert_eq!(parse(first.as_slice(), &mut zero()), skip(Skip::Fragment));
        // Total length shorter than the IP header: counted, as the header says.
        let mut short = pkt.clone();
        short[16..18].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            parse(short.as_slice(), &mut zero()),
            Parsed::Tcp {
                l3_bytes: 19,
                l3_off: 14,
                syn: Syn::No
            }
        );
        // Version and header length.
        let mut v5 = pkt.clone();
        v5[14] = 0x55;
        assert_eq!(parse(v5.as_slice(), &mut zero()), skip(Skip::BadIpHeader));
        let mut ihl4 = pkt.clone();
        ihl4[14] = 0x44;
        assert_eq!(parse(ihl4.as_slice(), &mut zero()), skip(Skip::BadIpHeader));
        // ARP, a runt frame, a cut IP header, a cut TCP header
        let mut arp = pkt.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(parse(arp.as_slice(), &mut zero()), skip(Skip::NotIp));
        assert_eq!(
            parse(&pkt[..13], &mut zero()),
            skip(Skip::TruncatedLinkHeader)
        );
        assert_eq!(
            parse(&pkt[..30], &mut zero()),
            skip(Skip::TruncatedIpHeader)
        );
        assert_eq!(
            parse(&pkt[..50], &mut zero()),
            skip(Skip::TruncatedTcpHeader)
        );
        // A data offset below 5 words: the packet counts, a SYN gives no record.
        let mut doff = v4_syn(&[], &[], &[]);
        doff[14 + 20 + 12] = 0x40;
        assert_eq!(
            parse(doff.as_slice(), &mut zero()),
            Parsed::Tcp {
                l3_bytes: 40,
                l3_off: 14,
                syn: Syn::Unreadable(Skip::BadTcpHeader)
            }
        );
    }

    /// IP options cut short: the IP header is what is truncated, whatever the packet carries
    /// and even where the frame ends inside the TCP header.
    #[test]
    fn cut_ipv4_options_are_a_truncated_ip_header() {
        let ip_opts = [1u8; 12];
        let pkt = v4_syn(&OPTS, &ip_opts, &[]);
        for end in [14 + 20, 14 + 25, 14 + 31] {
            assert_eq!(
                parse(&pkt[..end], &mut zero()),
                skip(Skip::TruncatedIpHeader)
            );
            for (at, v) in [(14 + 9, 17u8), (14 + 7, 1)] {
                let mut other = pkt[..end].to_vec();
                other[at] = v;
                assert_eq!(parse(&other, &mut zero()), skip(Skip::TruncatedIpHeader));
            }
        }
        // Whole options, cut TCP header.
        assert_eq!(
            parse(&pkt[..14 + 32 + 19], &mut zero()),
            skip(Skip::TruncatedTcpHeader)
        );
    }

    #[test]
    fn vlan_tags_past_the_bound_and_cut_tags() {
        let plain = v4_syn(&OPTS, &[], &[]);
        let mut want = SynRecord::ZERO;
        parse(plain.as_slice(), &mut want);
        let tag = |n: usize| {
            let mut p = plain[..12].to_vec();
            for i in 0..n {
                p.extend_from_slice(&[[0x88, 0xa8], [0x81, 0x00], [0x91, 0x00]][i % 3]);
                p.extend_from_slice(&[0, i as u8]);
            }
            p.extend_from_slice(&plain[12..]);
            p
        };
        let mut r = SynRecord::ZERO;
        parse(tag(record::MAX_VLAN_TAGS).as_slice(), &mut r);
        assert_eq!(r, want);
        let p = tag(record::MAX_VLAN_TAGS + 1);
        assert_eq!(parse(p.as_slice(), &mut zero()), skip(Skip::VlanTooDeep));
        assert_eq!(
            parse(&p[..17], &mut zero()),
            skip(Skip::TruncatedLinkHeader)
        );
        assert_eq!(
            parse(&p[..21], &mut zero()),
            skip(Skip::TruncatedLinkHeader)
        );
    }

    #[test]
    fn payload_len_never_underflows() {
        let mut pkt = v4_syn(&OPTS, &[], &[]);
        pkt[16..18].copy_from_slice(&30u16.to_be_bytes()); // IP ok, shorter than IP + TCP
        let mut r = SynRecord::ZERO;
        parse(pkt.as_slice(), &mut r);
        assert_eq!((r.ip_len, r.payload_len), (30, 0));
    }
}
