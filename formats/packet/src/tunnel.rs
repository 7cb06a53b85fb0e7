//! Tunnels carried in IP: what an IP packet that is not TCP may hold that leads to another
//! IP packet or Ethernet frame.
//!
//! Each tunnel is recognised by its IP protocol number or, over UDP, by its well-known
//! destination port (AYIYA and Teredo, whose servers answer from their port, by either port),
//! and its header is stepped over: only fixed fields and length fields are read, never a
//! checksum or a signature. The inner packet is handed back as a [`Next`]: an IP header, an
//! Ethernet type field or an MPLS stack, which the caller parses the same way as an outer one.

use crate::layer::{EncapId, IpVersion, Packet, Skip, resume};
use crate::link::{
    ETH_P_IPV4, ETH_P_IPV6, ETH_P_MPLS_MC, ETH_P_MPLS_UC, Next, be24, ethernet_at, mpls_label, snap,
};
use record::{MAX_GTP_EXT, encap};

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_UDP: u8 = 17;

/// UDP destination ports.
const PORT_VXLAN: u16 = 4789;
const PORT_VXLAN_GPE: u16 = 4790;
const PORT_GENEVE: u16 = 6081;
const PORT_GTP_U: u16 = 2152;
const PORT_GRE_UDP: u16 = 4754;
const PORT_MPLS_UDP: u16 = 6635;
const PORT_AYIYA: u16 = 5072;
const PORT_TEREDO: u16 = 3544;

/// GRE protocol types besides the Ethertypes of IP and MPLS.
const GRE_TEB: u16 = 0x6558;
const GRE_ERSPAN_II: u16 = 0x88be;
const GRE_ERSPAN_III: u16 = 0x22eb;
const GRE_WCCP: u16 = 0x883e;
/// Aruba's access-point tunnel: an 802.11 data frame.
const GRE_ARUBA: u16 = 0x8200;

/// GRE flag bits (first 16 bits of the header).
const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
const GRE_VERSION: u16 = 0x0007;

/// What an IP packet that is not TCP carries, told from its protocol number and, for UDP,
/// its ports: what one step of the parse decides before any tunnel header is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Carried {
    /// An IP packet right after the header (IP-in-IP, 6in4, 4in6, 6in6).
    Ip(Next),
    /// A tunnel header to read in the next step: [`resume::GRE`] or [`resume::UDP`].
    Tunnel(u8),
    /// Nothing we read.
    Nothing,
}

/// The first look at IP protocol `proto` whose header starts at `l4` (see [`Carried`]).
/// Cheap on purpose: it runs in the kernel's first program for every IP packet that is not
/// TCP, so a UDP packet costs one read of its ports unless they are a tunnel's.
#[inline(always)]
pub(crate) fn carried<P: Packet>(pkt: &mut P, proto: u8, l4: u32) -> Carried {
    match proto {
        IPPROTO_IPIP => Carried::Ip(Next::Ip(IpVersion::V4, l4)),
        IPPROTO_IPV6 => Carried::Ip(Next::Ip(IpVersion::V6, l4)),
        IPPROTO_GRE => Carried::Tunnel(resume::GRE),
        IPPROTO_UDP => match pkt.bytes::<4>(l4) {
            Some(h) if is_tunnel_port([h[0], h[1]], [h[2], h[3]]) => Carried::Tunnel(resume::UDP),
            _ => Carried::Nothing,
        },
        _ => Carried::Nothing,
    }
}

/// What a tunnel header leads to: the inner packet, and the tunnel's [`encap`] kind and
/// identifier (VNI, key, session, TEID, label) when its header carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tunnel {
    pub(crate) next: Next,
    pub(crate) kind: u8,
    pub(crate) id: EncapId,
}

impl Tunnel {
    #[inline(always)]
    fn new(next: Next, kind: u8, id: EncapId) -> Tunnel {
        Tunnel { next, kind, id }
    }
}

/// The inner packet of a tunnel header ([`Carried::Tunnel`]: `what` is [`resume::GRE`] or
/// [`resume::UDP`]) at `l4`, or why there is none ([`Skip::NotTcp`] for a header that is no
/// tunnel we read).
#[inline(always)]
pub(crate) fn tunnel<P: Packet>(pkt: &mut P, what: u8, l4: u32) -> Result<Tunnel, Skip> {
    match what {
        resume::GRE => gre(pkt, l4, encap::GRE),
        resume::UDP => udp(pkt, l4),
        _ => Err(Skip::NotTcp),
    }
}

/// Whether UDP ports (as on the wire) are a tunnel's that [`udp`] reads.
#[inline(always)]
fn is_tunnel_port(sport: [u8; 2], dport: [u8; 2]) -> bool {
    let (sport, dport) = (u16::from_be_bytes(sport), u16::from_be_bytes(dport));
    matches!(
        dport,
        PORT_VXLAN
            | PORT_VXLAN_GPE
            | PORT_GENEVE
            | PORT_GTP_U
            | PORT_GRE_UDP
            | PORT_MPLS_UDP
            | PORT_AYIYA
            | PORT_TEREDO
    ) || sport == PORT_AYIYA
        || sport == PORT_TEREDO
}

#[inline(always)]
fn udp<P: Packet>(pkt: &mut P, l4: u32) -> Result<Tunnel, Skip> {
    let Some(h) = pkt.bytes::<4>(l4) else {
        // Not even the ports: not a tunnel we can tell.
        return Err(Skip::NotTcp);
    };
    let sport = u16::from_be_bytes([h[0], h[1]]);
    let dport = u16::from_be_bytes([h[2], h[3]]);
    let at = l4 + 8;
    match dport {
        PORT_VXLAN => vxlan(pkt, at),
        PORT_VXLAN_GPE => vxlan_gpe(pkt, at),
        PORT_GENEVE => geneve(pkt, at),
        PORT_GTP_U => gtp_u(pkt, at),
        PORT_GRE_UDP => gre(pkt, at, encap::GRE_UDP),
        PORT_MPLS_UDP => Ok(Tunnel::new(
            Next::Mpls(at),
            encap::MPLS_UDP,
            mpls_label(pkt, at),
        )),
        _ if dport == PORT_AYIYA || sport == PORT_AYIYA => ayiya(pkt, at),
        _ if dport == PORT_TEREDO || sport == PORT_TEREDO => teredo(pkt, at),
        _ => Err(Skip::NotTcp),
    }
}

/// The 24-bit VNI in bytes 4..7 of a VXLAN, VXLAN-GPE or Geneve header.
#[inline(always)]
fn vni(h: &[u8; 8]) -> EncapId {
    EncapId::new(be24([h[4], h[5], h[6]]))
}

/// VXLAN (RFC 7348): 8 bytes, then an Ethernet frame.
#[inline(always)]
fn vxlan<P: Packet>(pkt: &mut P, at: u32) -> Result<Tunnel, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    // The I flag says the VNI is valid; without it the frame is not VXLAN traffic we trust.
    if h[0] & 0x08 == 0 {
        return Err(Skip::NotTcp);
    }
    Ok(Tunnel::new(ethernet_at(at + 8), encap::VXLAN, vni(h)))
}

/// VXLAN-GPE: 8 bytes whose fourth says what follows.
#[inline(always)]
fn vxlan_gpe<P: Packet>(pkt: &mut P, at: u32) -> Result<Tunnel, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    let inner = at + 8;
    let next = match h[3] {
        1 => Next::Ip(IpVersion::V4, inner),
        2 => Next::Ip(IpVersion::V6, inner),
        3 => ethernet_at(inner),
        5 => Next::Mpls(inner),
        _ => return Err(Skip::NotTcp),
    };
    Ok(Tunnel::new(next, encap::VXLAN_GPE, vni(h)))
}

/// Geneve (RFC 8926): 8 bytes and the options they announce (skipped), then what the
/// protocol type says.
#[inline(always)]
fn geneve<P: Packet>(pkt: &mut P, at: u32) -> Result<Tunnel, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    if h[0] >> 6 != 0 {
        return Err(Skip::NotTcp);
    }
    let inner = at + 8 + u32::from(h[0] & 0x3f) * 4;
    let next = ethertype_next(u16::from_be_bytes([h[2], h[3]]), inner)?;
    Ok(Tunnel::new(next, encap::GENEVE, vni(h)))
}

/// An inner packet announced by an Ethertype (GRE, Geneve).
#[inline(always)]
fn ethertype_next(ethertype: u16, inner: u32) -> Result<Next, Skip> {
    match ethertype {
        ETH_P_IPV4 => Ok(Next::Ip(IpVersion::V4, inner)),
        ETH_P_IPV6 => Ok(Next::Ip(IpVersion::V6, inner)),
        GRE_TEB => Ok(ethernet_at(inner)),
        ETH_P_MPLS_UC | ETH_P_MPLS_MC => Ok(Next::Mpls(inner)),
        _ => Err(Skip::NotTcp),
    }
}

/// GRE (RFC 2784/2890), version 0: optional checksum, key and sequence words; then what the
/// protocol type says, with the fixed headers of ERSPAN II/III, WCCP and Aruba stepped over.
/// `kind` is [`encap::GRE`] or, over UDP, [`encap::GRE_UDP`]; ERSPAN is [`encap::ERSPAN`]
/// either way, identified by its session rather than the key.
#[inline(always)]
fn gre<P: Packet>(pkt: &mut P, at: u32, kind: u8) -> Result<Tunnel, Skip> {
    let Some(h) = pkt.bytes::<4>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    let flags = u16::from_be_bytes([h[0], h[1]]);
    let proto = u16::from_be_bytes([h[2], h[3]]);
    // Version 1 is PPTP's enhanced GRE; source routing (R) is obsolete and variable.
    if flags & (GRE_VERSION | GRE_R) != 0 {
        return Err(Skip::NotTcp);
    }
    let words = u32::from(flags & GRE_C != 0)
        + u32::from(flags & GRE_K != 0)
        + u32::from(flags & GRE_S != 0);
    let inner = at + 4 + 4 * words;
    let next = match proto {
        // ERSPAN type II has a sequence number and an 8-byte header; type I neither.
        GRE_ERSPAN_II if flags & GRE_S != 0 => {
            let session = match pkt.bytes::<4>(inner) {
                Some(w) => EncapId::new(erspan_session(w)),
                None => EncapId::NONE,
            };
            return Ok(Tunnel::new(ethernet_at(inner + 8), encap::ERSPAN, session));
        }
        GRE_ERSPAN_II => {
            return Ok(Tunnel::new(
                ethernet_at(inner),
                encap::ERSPAN,
                EncapId::NONE,
            ));
        }
        GRE_ERSPAN_III => {
            // 12 bytes; the O flag (last bit) adds an 8-byte platform sub-header.
            let Some(e) = pkt.bytes::<12>(inner) else {
                return Err(Skip::TruncatedTunnelHeader);
            };
            let platform = if e[11] & 0x01 != 0 { 8 } else { 0 };
            let session = erspan_session(&[e[0], e[1], e[2], e[3]]);
            return Ok(Tunnel::new(
                ethernet_at(inner + 12 + platform),
                encap::ERSPAN,
                EncapId::new(session),
            ));
        }
        GRE_WCCP => {
            // The 4-byte redirect header is optional: an IPv4 version nibble means it is absent.
            let Some(b) = pkt.bytes::<1>(inner) else {
                return Err(Skip::TruncatedTunnelHeader);
            };
            let ip = if b[0] >> 4 == 4 { inner } else { inner + 4 };
            Next::Ip(IpVersion::V4, ip)
        }
        GRE_ARUBA => wlan(pkt, inner)?,
        _ => ethertype_next(proto, inner)?,
    };
    // The key follows the checksum word when there is one.
    let key = if flags & GRE_K != 0 {
        let key_at = at + 4 + 4 * u32::from(flags & GRE_C != 0);
        match pkt.bytes::<4>(key_at) {
            Some(k) => EncapId::new(u32::from_be_bytes(*k)),
            None => EncapId::NONE,
        }
    } else {
        EncapId::NONE
    };
    Ok(Tunnel::new(next, kind, key))
}

/// The 10-bit session id in the first word of an ERSPAN type II or III header (version,
/// VLAN; then COS, encapsulation type, truncation bit, session id).
#[inline(always)]
fn erspan_session(w: &[u8; 4]) -> u32 {
    u32::from(u16::from_be_bytes([w[2], w[3]]) & 0x03ff)
}

/// An 802.11 data frame (Aruba's GRE tunnel): its header length follows from the frame
/// control field; the body must start with LLC/SNAP. Protected frames are not read.
#[inline(always)]
fn wlan<P: Packet>(pkt: &mut P, at: u32) -> Result<Next, Skip> {
    let Some(fc) = pkt.bytes::<2>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    let (fc0, fc1) = (fc[0], fc[1]);
    let data = (fc0 >> 2) & 0x03 == 2;
    let subtype = fc0 >> 4;
    // Data frames without a body (null function) and encrypted bodies carry nothing to read.
    if !data || subtype & 0x04 != 0 || fc1 & 0x40 != 0 {
        return Err(Skip::NotTcp);
    }
    let qos = subtype & 0x08 != 0;
    let mut len = 24;
    if fc1 & 0x03 == 0x03 {
        len += 6; // fourth address (to and from the distribution system)
    }
    if qos {
        len += 2;
        if fc1 & 0x80 != 0 {
            len += 4; // HT control
        }
    }
    snap(pkt, at + len)
}

/// GTP-U (3GPP TS 29.281) G-PDU: 8 bytes, 4 more when any of E/S/PN is set, the extension
/// headers (at most [`MAX_GTP_EXT`]), then an IP packet told by its version nibble.
#[inline(always)]
fn gtp_u<P: Packet>(pkt: &mut P, at: u32) -> Result<Tunnel, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    // Version 1, protocol type GTP, message type G-PDU (255): the only ones carrying user data.
    if h[0] >> 5 != 1 || h[0] & 0x10 == 0 || h[1] != 0xff {
        return Err(Skip::NotTcp);
    }
    let teid = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    let mut inner = at + 8;
    if h[0] & 0x07 != 0 {
        let Some(opt) = pkt.bytes::<4>(inner) else {
            return Err(Skip::TruncatedTunnelHeader);
        };
        let mut next_ext = opt[3];
        inner += 4;
        // Each extension header: a length in 4-byte units, its content, the next type last.
        let mut i = 0;
        while next_ext != 0 {
            if i == MAX_GTP_EXT {
                return Err(Skip::EncapsulationTooDeep);
            }
            let Some(l) = pkt.bytes::<1>(inner) else {
                return Err(Skip::TruncatedTunnelHeader);
            };
            let len = u32::from(l[0]) * 4;
            if len == 0 {
                return Err(Skip::NotTcp);
            }
            let Some(n) = pkt.bytes::<1>(inner + len - 1) else {
                return Err(Skip::TruncatedTunnelHeader);
            };
            next_ext = n[0];
            inner += len;
            i += 1;
        }
    }
    Ok(Tunnel::new(
        ip_by_nibble(pkt, inner)?,
        encap::GTP_U,
        EncapId::new(teid),
    ))
}

/// An IP packet at `at` with no type field before it: its version nibble says which.
#[inline(always)]
fn ip_by_nibble<P: Packet>(pkt: &mut P, at: u32) -> Result<Next, Skip> {
    let Some(b) = pkt.bytes::<1>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    match b[0] >> 4 {
        4 => Ok(Next::Ip(IpVersion::V4, at)),
        6 => Ok(Next::Ip(IpVersion::V6, at)),
        _ => Err(Skip::NotTcp),
    }
}

/// AYIYA (anything in anything): 8 bytes, an identity of 2^n bytes and a signature of m
/// 4-byte words (n, m in the header), then the packet its next-header byte names.
#[inline(always)]
fn ayiya<P: Packet>(pkt: &mut P, at: u32) -> Result<Tunnel, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    let id_len = h[0] >> 4;
    // Opcode 1 is "forward" (a packet follows); identities beyond 256 bytes are not AYIYA's.
    if h[2] & 0x0f != 1 || id_len > 8 {
        return Err(Skip::NotTcp);
    }
    let inner = at + 8 + (1u32 << id_len) + u32::from(h[1] >> 4) * 4;
    let next = match h[3] {
        IPPROTO_IPIP => Next::Ip(IpVersion::V4, inner),
        IPPROTO_IPV6 => Next::Ip(IpVersion::V6, inner),
        _ => return Err(Skip::NotTcp),
    };
    Ok(Tunnel::new(next, encap::AYIYA, EncapId::NONE))
}

/// Teredo (RFC 4380): IPv6 in UDP, optionally after an 8-byte origin indication; packets with
/// an authentication header (variable, rare) are not read.
#[inline(always)]
fn teredo<P: Packet>(pkt: &mut P, at: u32) -> Result<Tunnel, Skip> {
    let Some(h) = pkt.bytes::<2>(at) else {
        return Err(Skip::NotTcp);
    };
    let inner = if h[0] == 0 && h[1] == 0 { at + 8 } else { at };
    let Some(b) = pkt.bytes::<1>(inner) else {
        return Err(Skip::NotTcp);
    };
    if b[0] >> 4 == 6 {
        Ok(Tunnel::new(
            Next::Ip(IpVersion::V6, inner),
            encap::TEREDO,
            EncapId::NONE,
        ))
    } else {
        Err(Skip::NotTcp)
    }
}
