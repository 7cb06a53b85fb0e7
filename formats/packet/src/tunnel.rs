//! Tunnels carried in IP: what an IP packet that is not TCP may hold that leads to another
//! IP packet or Ethernet frame.
//!
//! Each tunnel is recognised by its IP protocol number or, over UDP, by its well-known
//! destination port (AYIYA and Teredo, whose servers answer from their port, by either port),
//! and its header is stepped over: only fixed fields and length fields are read, never a
//! checksum or a signature. The inner packet is handed back as a [`Next`]: an IP header, an
//! Ethernet type field or an MPLS stack, which the caller parses the same way as an outer one.

use crate::layer::{IpVersion, Packet, Skip};
use crate::link::{ETH_P_IPV4, ETH_P_IPV6, ETH_P_MPLS_MC, ETH_P_MPLS_UC, Next, ethernet_at, snap};
use record::MAX_GTP_EXT;

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

/// The inner packet of the tunnel IP protocol `proto` whose header starts at `l4`, or why
/// there is none ([`Skip::NotTcp`] for a protocol or port that is no tunnel we read).
#[inline(always)]
pub(crate) fn tunnel<P: Packet>(pkt: &mut P, proto: u8, l4: u32) -> Result<Next, Skip> {
    if !record::DECAP {
        return Err(Skip::NotTcp);
    }
    match proto {
        IPPROTO_IPIP => Ok(Next::Ip(IpVersion::V4, l4)),
        IPPROTO_IPV6 => Ok(Next::Ip(IpVersion::V6, l4)),
        IPPROTO_GRE => gre(pkt, l4),
        IPPROTO_UDP => udp(pkt, l4),
        _ => Err(Skip::NotTcp),
    }
}

#[inline(always)]
fn udp<P: Packet>(pkt: &mut P, l4: u32) -> Result<Next, Skip> {
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
        PORT_GRE_UDP => gre(pkt, at),
        PORT_MPLS_UDP => Ok(Next::Mpls(at)),
        _ if dport == PORT_AYIYA || sport == PORT_AYIYA => ayiya(pkt, at),
        _ if dport == PORT_TEREDO || sport == PORT_TEREDO => teredo(pkt, at),
        _ => Err(Skip::NotTcp),
    }
}

/// VXLAN (RFC 7348): 8 bytes, then an Ethernet frame.
#[inline(always)]
fn vxlan<P: Packet>(pkt: &mut P, at: u32) -> Result<Next, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    // The I flag says the VNI is valid; without it the frame is not VXLAN traffic we trust.
    if h[0] & 0x08 == 0 {
        return Err(Skip::NotTcp);
    }
    Ok(ethernet_at(at + 8))
}

/// VXLAN-GPE: 8 bytes whose fourth says what follows.
#[inline(always)]
fn vxlan_gpe<P: Packet>(pkt: &mut P, at: u32) -> Result<Next, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    let inner = at + 8;
    match h[3] {
        1 => Ok(Next::Ip(IpVersion::V4, inner)),
        2 => Ok(Next::Ip(IpVersion::V6, inner)),
        3 => Ok(ethernet_at(inner)),
        5 => Ok(Next::Mpls(inner)),
        _ => Err(Skip::NotTcp),
    }
}

/// Geneve (RFC 8926): 8 bytes and the options they announce (skipped), then what the
/// protocol type says.
#[inline(always)]
fn geneve<P: Packet>(pkt: &mut P, at: u32) -> Result<Next, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    if h[0] >> 6 != 0 {
        return Err(Skip::NotTcp);
    }
    let inner = at + 8 + u32::from(h[0] & 0x3f) * 4;
    ethertype_next(u16::from_be_bytes([h[2], h[3]]), inner)
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
#[inline(always)]
fn gre<P: Packet>(pkt: &mut P, at: u32) -> Result<Next, Skip> {
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
    match proto {
        // ERSPAN type II has a sequence number and an 8-byte header; type I neither.
        GRE_ERSPAN_II if flags & GRE_S != 0 => Ok(ethernet_at(inner + 8)),
        GRE_ERSPAN_II => Ok(ethernet_at(inner)),
        GRE_ERSPAN_III => {
            // 12 bytes; the O flag (last bit) adds an 8-byte platform sub-header.
            let Some(e) = pkt.bytes::<12>(inner) else {
                return Err(Skip::TruncatedTunnelHeader);
            };
            let platform = if e[11] & 0x01 != 0 { 8 } else { 0 };
            Ok(ethernet_at(inner + 12 + platform))
        }
        GRE_WCCP => {
            // The 4-byte redirect header is optional: an IPv4 version nibble means it is absent.
            let Some(b) = pkt.bytes::<1>(inner) else {
                return Err(Skip::TruncatedTunnelHeader);
            };
            let ip = if b[0] >> 4 == 4 { inner } else { inner + 4 };
            Ok(Next::Ip(IpVersion::V4, ip))
        }
        GRE_ARUBA => wlan(pkt, inner),
        _ => ethertype_next(proto, inner),
    }
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
fn gtp_u<P: Packet>(pkt: &mut P, at: u32) -> Result<Next, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    // Version 1, protocol type GTP, message type G-PDU (255): the only ones carrying user data.
    if h[0] >> 5 != 1 || h[0] & 0x10 == 0 || h[1] != 0xff {
        return Err(Skip::NotTcp);
    }
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
    ip_by_nibble(pkt, inner)
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
fn ayiya<P: Packet>(pkt: &mut P, at: u32) -> Result<Next, Skip> {
    let Some(h) = pkt.bytes::<8>(at) else {
        return Err(Skip::TruncatedTunnelHeader);
    };
    let id_len = h[0] >> 4;
    // Opcode 1 is "forward" (a packet follows); identities beyond 256 bytes are not AYIYA's.
    if h[2] & 0x0f != 1 || id_len > 8 {
        return Err(Skip::NotTcp);
    }
    let inner = at + 8 + (1u32 << id_len) + u32::from(h[1] >> 4) * 4;
    match h[3] {
        IPPROTO_IPIP => Ok(Next::Ip(IpVersion::V4, inner)),
        IPPROTO_IPV6 => Ok(Next::Ip(IpVersion::V6, inner)),
        _ => Err(Skip::NotTcp),
    }
}

/// Teredo (RFC 4380): IPv6 in UDP, optionally after an 8-byte origin indication; packets with
/// an authentication header (variable, rare) are not read.
#[inline(always)]
fn teredo<P: Packet>(pkt: &mut P, at: u32) -> Result<Next, Skip> {
    let Some(h) = pkt.bytes::<2>(at) else {
        return Err(Skip::NotTcp);
    };
    let inner = if h[0] == 0 && h[1] == 0 { at + 8 } else { at };
    let Some(b) = pkt.bytes::<1>(inner) else {
        return Err(Skip::NotTcp);
    };
    if b[0] >> 4 == 6 {
        Ok(Next::Ip(IpVersion::V6, inner))
    } else {
        Err(Skip::NotTcp)
    }
}

#[cfg(test)]
mod tests {
    //! Every encapsulation, built by hand from its specification around one inner SYN: the
    //! record must be the inner packet's own, bit for bit; cutting the frame at any byte must
    //! never give a record; one encapsulation past a bound is skipped with the bound's reason.

    use crate::{Frame, Parsed, Skip, Syn, parse_ethernet};
    use record::{MAX_ENCAPS, MAX_GTP_EXT, MAX_MPLS_LABELS, SynRecord};

    const OPTS: [u8; 12] = [2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 0, 0];

    fn tcp_syn() -> Vec<u8> {
        let mut t = vec![
            0x9c, 0x40, 0, 80, 1, 2, 3, 4, 0, 0, 0, 0, 0x80, 0x02, 0xfa, 0xf0,
        ];
        t.extend_from_slice(&[0, 0, 0, 0]);
        t.extend_from_slice(&OPTS);
        t
    }

    fn ipv4(proto: u8, payload: &[u8], src: u8) -> Vec<u8> {
        let mut p = vec![0x45, 0x10];
        p.extend_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0xab, 0xcd, 0x40, 0, 61, proto, 0, 0]);
        p.extend_from_slice(&[192, 0, 2, src, 198, 51, 100, 7]);
        p.extend_from_slice(payload);
        p
    }

    fn ipv6(next: u8, payload: &[u8], src: u8) -> Vec<u8> {
        let mut p = vec![0x60, 0x01, 0x23, 0x45];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 63]);
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        a[15] = src;
        p.extend_from_slice(&a);
        a[15] = 0x77;
        p.extend_from_slice(&a);
        p.extend_from_slice(payload);
        p
    }

    fn udp(dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0xc0, 0x01];
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        p
    }

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        p.extend_from_slice(&ethertype.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn inner4() -> Vec<u8> {
        ipv4(6, &tcp_syn(), 1)
    }

    fn inner6() -> Vec<u8> {
        ipv6(6, &tcp_syn(), 1)
    }

    fn record(frame: &[u8]) -> (Parsed, SynRecord) {
        let mut r = SynRecord::ZERO;
        let p = parse_ethernet(&mut Frame(frame), &mut r);
        (p, r)
    }

    /// The record of the inner packet alone, on plain Ethernet.
    fn want(inner_ip: &[u8]) -> SynRecord {
        let ethertype = if inner_ip[0] >> 4 == 4 {
            0x0800
        } else {
            0x86dd
        };
        let (p, r) = record(&eth(ethertype, inner_ip));
        assert!(matches!(
            p,
            Parsed::Tcp {
                syn: Syn::Record,
                ..
            }
        ));
        r
    }

    fn gre(flags: u16, proto: u16, words: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut p = flags.to_be_bytes().to_vec();
        p.extend_from_slice(&proto.to_be_bytes());
        for w in words {
            p.extend_from_slice(&w.to_be_bytes());
        }
        p.extend_from_slice(payload);
        p
    }

    fn mpls(labels: usize, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        for i in 0..labels {
            let bottom = u8::from(i + 1 == labels);
            p.extend_from_slice(&[0x00, 0x10 + i as u8, bottom, 64]);
        }
        p.extend_from_slice(payload);
        p
    }

    /// Every encapsulation: (name, frame, inner IP packet).
    fn cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
        let (i4, i6) = (inner4(), inner6());
        let ieth4 = eth(0x0800, &i4);
        let ieth6 = eth(0x86dd, &i6);
        let wlan_qos = {
            let mut h = vec![0x88, 0x01, 0, 0];
            h.extend_from_slice(&[0x11; 18]);
            h.extend_from_slice(&[0, 0, 0, 0]);
            h.extend_from_slice(&[0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00]);
            h.extend_from_slice(&i4);
            h
        };
        let gtp = {
            let mut h = vec![0x34, 0xff, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 0x85];
            h.extend_from_slice(&[1, 0x10, 0x05, 0]);
            h.extend_from_slice(&i6);
            let len = ((h.len() - 8) as u16).to_be_bytes();
            h[2..4].copy_from_slice(&len);
            h
        };
        let ayiya = {
            let mut h = vec![0x41, 0x51, 0x11, 41, 0, 0, 0, 0];
            h.extend_from_slice(&[0x33; 16 + 20]);
            h.extend_from_slice(&i6);
            h
        };
        vec![
            (
                "qinq",
                eth(0x88a8, &cat(&[&[0, 5, 0x81, 0, 0, 6, 8, 0], &i4])),
                i4.clone(),
            ),
            ("mpls ipv4", eth(0x8847, &mpls(3, &i4)), i4.clone()),
            ("mpls ipv6", eth(0x8847, &mpls(1, &i6)), i6.clone()),
            (
                "mpls pseudowire",
                eth(0x8847, &mpls(2, &cat(&[&[0, 0, 0, 0], &ieth4]))),
                i4.clone(),
            ),
            (
                "pppoe over qinq",
                eth(
                    0x88a8,
                    &cat(&[
                        &[0, 5, 0x81, 0, 0, 6, 0x88, 0x64],
                        &[0x11, 0, 0, 1, 0, 0x3e, 0, 0x21],
                        &i4,
                    ]),
                ),
                i4.clone(),
            ),
            (
                "llc/snap",
                eth(60, &cat(&[&[0xaa, 0xaa, 3, 0, 0, 0, 0x86, 0xdd], &i6])),
                i6.clone(),
            ),
            (
                "pbb",
                eth(0x88e7, &cat(&[&[0, 1, 2, 3], &ieth4])),
                i4.clone(),
            ),
            (
                "vn-tag in vlans",
                eth(
                    0x8100,
                    &cat(&[&[0, 5, 0x89, 0x26, 1, 2, 3, 4, 0x81, 0, 0, 6, 8, 0], &i4]),
                ),
                i4.clone(),
            ),
            (
                "fabricpath",
                eth(0x8903, &cat(&[&[0, 0x3f], &ieth6])),
                i6.clone(),
            ),
            ("ip-in-ip", eth(0x0800, &ipv4(4, &i4, 9)), i4.clone()),
            ("6in4", eth(0x0800, &ipv4(41, &i6, 9)), i6.clone()),
            ("4in6", eth(0x86dd, &ipv6(4, &i4, 9)), i4.clone()),
            ("6in6", eth(0x86dd, &ipv6(41, &i6, 9)), i6.clone()),
            (
                "gre key seq csum",
                eth(0x0800, &ipv4(47, &gre(0xb000, 0x0800, &[0, 7, 9], &i4), 9)),
                i4.clone(),
            ),
            (
                "gre teb",
                eth(
                    0x0800,
                    &ipv4(47, &gre(0x2000, 0x6558, &[0x0200_0000], &ieth4), 9),
                ),
                i4.clone(),
            ),
            (
                "erspan i",
                eth(0x0800, &ipv4(47, &gre(0, 0x88be, &[], &ieth6), 9)),
                i6.clone(),
            ),
            (
                "erspan ii",
                eth(
                    0x0800,
                    &ipv4(47, &gre(0x1000, 0x88be, &[5, 0x1001_0064, 0], &ieth4), 9),
                ),
                i4.clone(),
            ),
            (
                "erspan iii with platform header",
                eth(
                    0x86dd,
                    &ipv6(
                        47,
                        &gre(
                            0x1000,
                            0x22eb,
                            &[5, 0x2001_0064, 0, 0x0000_0001, 0, 0],
                            &ieth4,
                        ),
                        9,
                    ),
                ),
                i4.clone(),
            ),
            (
                "wccp",
                eth(0x0800, &ipv4(47, &gre(0, 0x883e, &[0x0000_0001], &i4), 9)),
                i4.clone(),
            ),
            (
                "aruba",
                eth(
                    0x8100,
                    &cat(&[
                        &[1, 44, 8, 0],
                        &ipv4(47, &gre(0, 0x8200, &[], &wlan_qos), 9),
                    ]),
                ),
                i4.clone(),
            ),
            (
                "gre in udp",
                eth(0x0800, &ipv4(17, &udp(4754, &gre(0, 0x86dd, &[], &i6)), 9)),
                i6.clone(),
            ),
            (
                "mpls in gre",
                eth(0x0800, &ipv4(47, &gre(0, 0x8847, &[], &mpls(2, &i4)), 9)),
                i4.clone(),
            ),
            (
                "vxlan",
                eth(
                    0x0800,
                    &ipv4(
                        17,
                        &udp(4789, &cat(&[&[8, 0, 0, 0, 0, 0x12, 0x34, 0], &ieth4])),
                        9,
                    ),
                ),
                i4.clone(),
            ),
            (
                "vxlan-gpe",
                eth(
                    0x86dd,
                    &ipv6(
                        17,
                        &udp(4790, &cat(&[&[0x0c, 0, 0, 2, 0, 0, 1, 0], &i6])),
                        9,
                    ),
                ),
                i6.clone(),
            ),
            (
                "geneve with options",
                eth(
                    0x0800,
                    &ipv4(
                        17,
                        &udp(
                            6081,
                            &cat(&[&[2, 0, 0x65, 0x58, 0, 0, 9, 0], &[7; 8], &ieth6]),
                        ),
                        9,
                    ),
                ),
                i6.clone(),
            ),
            (
                "gtp-u with extension",
                eth(0x0800, &ipv4(17, &udp(2152, &gtp), 9)),
                i6.clone(),
            ),
            (
                "ayiya",
                eth(0x0800, &ipv4(17, &udp(5072, &ayiya), 9)),
                i6.clone(),
            ),
            (
                "teredo origin indication",
                eth(
                    0x0800,
                    &ipv4(17, &udp(3544, &cat(&[&[0, 0, 1, 2, 3, 4, 5, 6], &i6])), 9),
                ),
                i6.clone(),
            ),
            (
                "vxlan in gre in 6in4",
                eth(
                    0x0800,
                    &ipv4(
                        41,
                        &ipv6(
                            47,
                            &gre(
                                0,
                                0x0800,
                                &[],
                                &ipv4(
                                    17,
                                    &udp(4789, &cat(&[&[8, 0, 0, 0, 0, 0, 1, 0], &ieth4])),
                                    8,
                                ),
                            ),
                            9,
                        ),
                        10,
                    ),
                ),
                i4.clone(),
            ),
        ]
    }

    #[test]
    fn every_encapsulation_gives_the_inner_record() {
        for (name, frame, inner) in cases() {
            let (p, r) = record(&frame);
            let off = (frame.len() - inner.len()) as u32;
            assert_eq!(
                p,
                Parsed::Tcp {
                    l3_bytes: inner.len() as u32,
                    l3_off: off,
                    syn: Syn::Record
                },
                "{name}"
            );
            assert_eq!(r, want(&inner), "{name}");
            assert!(r.is_canonical(), "{name}");
        }
    }

    /// The SYN ends with its options: any cut loses some, so no cut may give a record.
    #[test]
    fn truncation_at_every_byte_never_gives_a_record() {
        for (name, frame, _) in cases() {
            for end in 0..frame.len() {
                let (p, r) = record(&frame[..end]);
                assert!(
                    !matches!(
                        p,
                        Parsed::Tcp {
                            syn: Syn::Record,
                            ..
                        }
                    ),
                    "{name} cut at {end}: {p:?} {r:?}"
                );
            }
        }
    }

    #[test]
    fn one_encapsulation_too_many_is_skipped() {
        let mut pkt = inner4();
        for _ in 0..MAX_ENCAPS {
            pkt = ipv4(4, &pkt, 9);
        }
        let (p, r) = record(&eth(0x0800, &pkt));
        assert!(matches!(
            p,
            Parsed::Tcp {
                syn: Syn::Record,
                ..
            }
        ));
        assert_eq!(r, want(&inner4()));
        let (p, _) = record(&eth(0x0800, &ipv4(4, &pkt, 9)));
        assert_eq!(p, Parsed::Skip(Skip::EncapsulationTooDeep));
        // Link-layer encapsulations count towards the same bound.
        let mut frame = eth(0x0800, &pkt[20..]);
        frame = eth(0x88e7, &cat(&[&[0, 0, 0, 1], &frame]));
        let (p, _) = record(&frame);
        assert!(matches!(
            p,
            Parsed::Tcp {
                syn: Syn::Record,
                ..
            }
        ));
        frame = eth(0x88e7, &cat(&[&[0, 0, 0, 1], &frame]));
        assert_eq!(record(&frame).0, Parsed::Skip(Skip::EncapsulationTooDeep));
    }

    #[test]
    fn mpls_and_gtp_bounds() {
        let ok = eth(0x8847, &mpls(MAX_MPLS_LABELS, &inner4()));
        assert!(matches!(
            record(&ok).0,
            Parsed::Tcp {
                syn: Syn::Record,
                ..
            }
        ));
        let deep = eth(0x8847, &mpls(MAX_MPLS_LABELS + 1, &inner4()));
        assert_eq!(record(&deep).0, Parsed::Skip(Skip::MplsTooDeep));
        let gtp = |exts: usize| {
            let mut h = vec![0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85];
            for i in 0..exts {
                let next = if i + 1 == exts { 0 } else { 0x85 };
                h.extend_from_slice(&[1, 0, 0, next]);
            }
            h.extend_from_slice(&inner4());
            eth(0x0800, &ipv4(17, &udp(2152, &h), 9))
        };
        assert!(matches!(
            record(&gtp(MAX_GTP_EXT)).0,
            Parsed::Tcp {
                syn: Syn::Record,
                ..
            }
        ));
        assert_eq!(
            record(&gtp(MAX_GTP_EXT + 1)).0,
            Parsed::Skip(Skip::EncapsulationTooDeep)
        );
    }

    #[test]
    fn what_is_no_tunnel_stays_not_tcp() {
        // DNS, GRE version 1 (PPTP), an unknown GRE payload, VXLAN without the I flag,
        // a GTP-U echo request.
        for (name, l4, proto) in [
            ("dns", udp(53, &[0; 12]), 17u8),
            ("pptp", gre(0x3001, 0x880b, &[0, 0], &[0xff, 3]), 47),
            ("gre ppp", gre(0, 0x880b, &[], &[0xff, 3]), 47),
            ("vxlan without I", udp(4789, &[0; 30]), 17),
            (
                "gtp echo",
                udp(2152, &[0x32, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]),
                17,
            ),
            ("icmp", vec![8, 0, 0, 0], 1),
        ] {
            let (p, _) = record(&eth(0x0800, &ipv4(proto, &l4, 9)));
            assert_eq!(p, Parsed::Skip(Skip::NotTcp), "{name}");
        }
        // A fragmented tunnel packet is not looked into.
        let mut frag = ipv4(4, &inner4(), 9);
        frag[6] = 0x20;
        assert_eq!(record(&eth(0x0800, &frag)).0, Parsed::Skip(Skip::NotTcp));
    }
}
