//! Link layers: which capture link types we read and how to find the IP header in each.
//!
//! Ethernet (with VLAN tags) is the kernel's link layer too, so the shared parser reads it
//! (`packet::ethernet`, called by [`super::parse_packet`]). The others exist only in capture
//! files and are a handful of fixed offsets, read here; etherparse either does not know them
//! (SLL2, BSD null/loop, PPP, NFLOG, IPoIB, FDDI) or validates them more strictly than captures
//! need: its SLL slice rejects every ARPHRD type except a few, while `tcpdump -i any` writes
//! SLL headers for loopback, tun and PPP devices too.

use packet::{Frame, IpVersion, Skip};

use super::link_type::LinkType;
use super::stats::SkipReason;

/// Which IP version the link layer announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Net {
    V4,
    V6,
    /// The link layer does not say (raw IP): the version nibble decides.
    Either,
}

impl From<IpVersion> for Net {
    fn from(version: IpVersion) -> Net {
        match version {
            IpVersion::V4 => Net::V4,
            IpVersion::V6 => Net::V6,
        }
    }
}

/// BSD `AF_INET`.
const AF_INET: u32 = 2;
/// `AF_INET6` differs between systems: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30.
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// Strips the link header: returns the IP version it announces and the bytes from the start of
/// the IP header.
///
/// One out-of-line function, so that inlining [`super::parse_packet`] into the per-frame loop
/// stays small: Ethernet, by far the most common link type, is read inline there.
#[inline(never)]
pub(crate) fn strip(link: LinkType, data: &[u8]) -> Result<(Net, &[u8]), SkipReason> {
    match link {
        LinkType::ETHERNET => ethernet(data),
        LinkType::RAW | LinkType::DLT_RAW_12 | LinkType::DLT_RAW_14 => Ok((Net::Either, data)),
        LinkType::IPV4 => Ok((Net::V4, data)),
        LinkType::IPV6 => Ok((Net::V6, data)),
        LinkType::LINUX_SLL => {
            // packet type (2), ARPHRD (2), address length (2), address (8), protocol (2).
            let proto = be16(data, 14).ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
            ether_type(proto, after(data, 16))
        }
        LinkType::LINUX_SLL2 => {
            // protocol (2), reserved (2), ifindex (4), ARPHRD (2), packet type (1),
            // address length (1), address (8).
            let proto = be16(data, 0).ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
            if data.len() < 20 {
                return Err(SkipReason::Packet(Skip::TruncatedLinkHeader));
            }
            ether_type(proto, after(data, 20))
        }
        LinkType::NULL | LinkType::LOOP => {
            let b: [u8; 4] = data
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
            let af = if link == LinkType::LOOP {
                u32::from_be_bytes(b)
            } else {
                // Host order of whoever wrote the file: families are small numbers, so a value
                // with an empty low half was written big-endian.
                let le = u32::from_le_bytes(b);
                if le & 0xffff == 0 {
                    le.swap_bytes()
                } else {
                    le
                }
            };
            let ip = after(data, 4);
            if af == AF_INET {
                Ok((Net::V4, ip))
            } else if AF_INET6.contains(&af) {
                Ok((Net::V6, ip))
            } else {
                Err(SkipReason::Packet(Skip::NotIp))
            }
        }
        LinkType::PPP | LinkType::PPP_HDLC => ppp(data),
        LinkType::C_HDLC => {
            let proto = be16(data, 2).ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
            ether_type(proto, after(data, 4))
        }
        LinkType::FDDI => {
            // frame control (1), destination (6), source (6), then 802.2 LLC/SNAP:
            // DSAP 0xaa, SSAP 0xaa, control 0x03, OUI (3), EtherType (2).
            let llc = data
                .get(13..21)
                .ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
            if llc[..3] != [0xaa, 0xaa, 0x03] {
                return Err(SkipReason::Packet(Skip::NotIp));
            }
            ether_type(u16::from_be_bytes([llc[6], llc[7]]), after(data, 21))
        }
        LinkType::IPOIB => {
            // 40 bytes of source and destination hardware addresses, then the RFC 4391
            // encapsulation header: EtherType (2) and reserved (2).
            let proto = be16(data, 40).ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
            if data.len() < 44 {
                return Err(SkipReason::Packet(Skip::TruncatedLinkHeader));
            }
            ether_type(proto, after(data, 44))
        }
        LinkType::NFLOG => nflog(data),
        LinkType::ARCNET_BSD => arcnet(data, 2),
        LinkType::ARCNET_LINUX => arcnet(data, 4),
        other => Err(SkipReason::UnsupportedLinkType(other)),
    }
}

#[inline]
fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

#[inline]
fn after(data: &[u8], at: usize) -> &[u8] {
    data.get(at..).unwrap_or(&[])
}

#[inline]
fn ether_type(proto: u16, rest: &[u8]) -> Result<(Net, &[u8]), SkipReason> {
    match packet::ip_of_ethertype(proto) {
        Some(version) => Ok((Net::from(version), rest)),
        None => Err(SkipReason::Packet(Skip::NotIp)),
    }
}

/// The shared parser's link-layer walk, for link types that wrap an Ethernet frame. (The
/// encapsulations it entered are not carried over: the IP step starts counting afresh.)
fn ethernet(data: &[u8]) -> Result<(Net, &[u8]), SkipReason> {
    let link = packet::ethernet(&mut Frame(data))?;
    Ok((Net::from(link.version), after(data, link.off as usize)))
}

/// PPP protocol numbers for IPv4 and IPv6.
const PPP_IP: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

fn ppp(data: &[u8]) -> Result<(Net, &[u8]), SkipReason> {
    // Optional HDLC address (0xff) and control (0x03) bytes.
    let data = match data {
        [0xff, 0x03, rest @ ..] => rest,
        _ => data,
    };
    // Protocol-field compression (RFC 1661): an odd first byte is a one-byte protocol.
    let (proto, rest) = match data {
        [p, rest @ ..] if p & 1 == 1 => (u16::from(*p), rest),
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        _ => return Err(SkipReason::Packet(Skip::TruncatedLinkHeader)),
    };
    match proto {
        PPP_IP => Ok((Net::V4, rest)),
        PPP_IPV6 => Ok((Net::V6, rest)),
        _ => Err(SkipReason::Packet(Skip::NotIp)),
    }
}

/// NFLOG TLV type carrying the logged packet (`NFULA_PAYLOAD`).
const NFULA_PAYLOAD: u16 = 9;

/// NFLOG: a 4-byte header (family, version, resource id) then TLVs of
/// `length (2) | type (2) | value`, padded to 4 bytes, lengths in the capturing host's byte
/// order (little-endian on every host that writes these in practice). The payload TLV holds the
/// IP packet; the header's family says which IP.
fn nflog(data: &[u8]) -> Result<(Net, &[u8]), SkipReason> {
    let family = *data
        .first()
        .ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
    let net = match u32::from(family) {
        AF_INET => Net::V4,
        10 => Net::V6,
        _ => return Err(SkipReason::Packet(Skip::NotIp)),
    };
    let mut at = 4;
    // Bounded: every step advances by at least 4 bytes.
    while let Some(tlv) = data.get(at..at + 4) {
        let len = usize::from(u16::from_le_bytes([tlv[0], tlv[1]]));
        // The top two bits of the type are netlink flags.
        let ty = u16::from_le_bytes([tlv[2], tlv[3]]) & 0x3fff;
        if len < 4 {
            return Err(SkipReason::Packet(Skip::TruncatedLinkHeader));
        }
        if ty == NFULA_PAYLOAD {
            let end = (at + len).min(data.len());
            return Ok((net, &data[at + 4..end]));
        }
        at += (len + 3) & !3;
    }
    Err(SkipReason::Packet(Skip::NotIp))
}

/// ARCnet protocol ids: RFC 1051 IPv4 (no fragmentation header), RFC 1201 IPv4 and RFC 2497
/// IPv6 (both with the RFC 1201 split-flag/sequence header).
const ARC_IP_OLD: u8 = 0xf0;
const ARC_IP: u8 = 0xd4;
const ARC_IP6: u8 = 0xc4;

/// ARCnet: `addr` bytes of addressing (2 on BSD, 4 on Linux), the protocol id, then for RFC
/// 1201 framing a split flag and a 2-byte sequence number. A split flag of 0xff marks an
/// "exception" packet whose header repeats after 4 filler bytes; any other non-zero flag is one
/// piece of a split packet, which we treat as a fragment.
fn arcnet(data: &[u8], addr: usize) -> Result<(Net, &[u8]), SkipReason> {
    let proto = *data
        .get(addr)
        .ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
    let net = match proto {
        ARC_IP_OLD => return Ok((Net::V4, after(data, addr + 1))),
        ARC_IP => Net::V4,
        ARC_IP6 => Net::V6,
        _ => return Err(SkipReason::Packet(Skip::NotIp)),
    };
    let mut at = addr + 1;
    let mut flag = *data
        .get(at)
        .ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
    if flag == 0xff {
        at += 4;
        flag = *data
            .get(at)
            .ok_or(SkipReason::Packet(Skip::TruncatedLinkHeader))?;
    }
    if flag != 0 {
        return Err(SkipReason::Packet(Skip::Fragment));
    }
    if data.len() < at + 3 {
        return Err(SkipReason::Packet(Skip::TruncatedLinkHeader));
    }
    Ok((net, after(data, at + 3)))
}
