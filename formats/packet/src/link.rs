//! The link layer: Ethernet and what an Ethernet type field can announce before an IP header.
//!
//! One bounded walk ([`walk`]) over type fields: each step reads the 2-byte type at the current
//! offset and either finds IP (done), steps over a header that leaves the frame's addressing as
//! it is (VLAN tag, VN-Tag, LLC/SNAP), or enters an encapsulated frame or packet (PBB, Cisco
//! FabricPath, MPLS, PPPoE), which counts towards [`record::MAX_ENCAPS`]. Tunnels found in IP
//! (`crate::tunnel`) hand their inner Ethernet frame or MPLS stack back to the same walk.
//!
//! Offsets are `u32` from the start of the packet and only grow by small constants or by
//! header lengths read as bytes, so they cannot overflow before a read fails.

use record::{Encap, MAX_LINK_HEADERS, MAX_MPLS_LABELS, MAX_STEPS, MAX_VLAN_TAGS, encap};

use crate::layer::{
    EncapId, IpVersion, Link, Packet, Resume, Skip, enter_encap, next_step_number, resume,
};

pub(crate) const ETH_P_IPV4: u16 = 0x0800;
pub(crate) const ETH_P_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad and the legacy QinQ tag.
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_QINQ_LEGACY: u16 = 0x9100;
/// MPLS unicast and multicast.
pub(crate) const ETH_P_MPLS_UC: u16 = 0x8847;
pub(crate) const ETH_P_MPLS_MC: u16 = 0x8848;
/// PPPoE session stage (discovery, 0x8863, carries no IP).
const ETH_P_PPPOE_SES: u16 = 0x8864;
/// 802.1ah provider backbone bridging: a 4-byte I-TAG, then the customer's Ethernet frame.
const ETH_P_PBB: u16 = 0x88e7;
/// Cisco VN-Tag: 4 bytes of tag, then the next type field.
const ETH_P_VNTAG: u16 = 0x8926;
/// Cisco FabricPath: the outer addresses are FabricPath switch addresses; the type field is
/// followed by 2 bytes of FTag/TTL and the original Ethernet frame.
const ETH_P_FABRICPATH: u16 = 0x8903;
/// Type fields up to this value are 802.3 lengths: an LLC header follows.
const ETH_MAX_LEN: u16 = 1500;
/// PPP protocol numbers of IPv4 and IPv6.
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

/// What comes next while walking towards the IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// An IP header of this version at this offset.
    Ip(IpVersion, u32),
    /// A 2-byte Ethernet type field at this offset (an Ethernet header's is at its start + 12).
    Type(u32),
    /// The first label of an MPLS stack at this offset.
    Mpls(u32),
}

/// The type field of the Ethernet frame that starts at `eth`.
#[inline(always)]
pub(crate) fn ethernet_at(eth: u32) -> Next {
    Next::Type(eth + 12)
}

#[inline(always)]
fn is_vlan(ethertype: u16) -> bool {
    ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD || ethertype == ETH_P_QINQ_LEGACY
}

/// The IP version an Ethertype announces, if any (for link layers that carry one).
#[inline(always)]
pub fn ip_of_ethertype(ethertype: u16) -> Option<IpVersion> {
    match ethertype {
        ETH_P_IPV4 => Some(IpVersion::V4),
        ETH_P_IPV6 => Some(IpVersion::V6),
        _ => None,
    }
}

/// What a walk over link-layer headers found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Walked {
    /// An IP header.
    Ip(Link),
    /// An encapsulation entered, or a type field other than IP and VLAN that [`enter`] reads:
    /// the next step goes on from here.
    Inner(Resume),
}

impl Next {
    /// The step state that goes on at `self`.
    #[inline(always)]
    pub(crate) fn resume(self, encaps: Encap, vlans: u8, links: u8, steps: u8) -> Resume {
        let (what, off) = match self {
            Next::Ip(IpVersion::V4, off) => (resume::IPV4, off),
            Next::Ip(IpVersion::V6, off) => (resume::IPV6, off),
            Next::Type(off) => (resume::TYPE, off),
            Next::Mpls(off) => (resume::MPLS, off),
        };
        Resume {
            off,
            what,
            vlans,
            links,
            steps,
            encaps,
        }
    }

    /// Inverse of [`Next::resume`]; `None` for a `what` it does not write.
    #[inline(always)]
    pub(crate) fn of(r: &Resume) -> Option<Next> {
        match r.what {
            resume::IPV4 => Some(Next::Ip(IpVersion::V4, r.off)),
            resume::IPV6 => Some(Next::Ip(IpVersion::V6, r.off)),
            resume::TYPE => Some(Next::Type(r.off)),
            resume::MPLS => Some(Next::Mpls(r.off)),
            _ => None,
        }
    }
}

/// Walks from `from` (step number `step`) towards an IP header over VLAN tags and MPLS labels,
/// and stops before any other type field ([`resume::ENTER`]: [`enter`] reads it in a step of
/// its own). The loop's only continuing case is a VLAN tag, so the kernel's verifier sees one
/// state per turn; and the first step, every packet's, stays as small as it was before
/// encapsulations were read.
#[inline(always)]
pub(crate) fn walk<P: Packet>(pkt: &mut P, from: Resume, step: u8) -> Result<Walked, Skip> {
    let Some(next) = Next::of(&from) else {
        return Err(Skip::NotIp);
    };
    walk_from(pkt, next, from.encaps, from.vlans, from.links, step)
}

#[inline(always)]
fn walk_from<P: Packet>(
    pkt: &mut P,
    mut next: Next,
    encaps: Encap,
    vlans: u8,
    links: u8,
    step: u8,
) -> Result<Walked, Skip> {
    let mut vlans = usize::from(vlans);
    // Link headers read in this Ethernet header, earlier steps included: the bound.
    let mut i = usize::from(links);
    // This walk's own turns, from 0: in the kernel `i` comes from a map, unknown to the
    // verifier, and a loop whose only counter is unknown looks the same on every turn to
    // older verifiers (6.1), which then report an infinite loop.
    let mut turn = 0;
    while turn < MAX_LINK_HEADERS && i < MAX_LINK_HEADERS {
        turn += 1;
        let at = match next {
            Next::Ip(version, off) => {
                return Ok(Walked::Ip(Link {
                    version,
                    off,
                    encaps,
                    steps: step,
                }));
            }
            Next::Mpls(at) => {
                next = mpls(pkt, at)?;
                i += 1;
                continue;
            }
            Next::Type(at) => at,
        };
        let Some(t) = pkt.bytes::<2>(at) else {
            return Err(Skip::TruncatedLinkHeader);
        };
        let ethertype = u16::from_be_bytes(*t);
        // IPv4 first, in one compare: without the hint LLVM merges this chain into one
        // switch and lowers it to a balanced tree of compares (three before IPv4's).
        if ethertype == ETH_P_IPV4 {
            next = Next::Ip(IpVersion::V4, at + 2);
        } else if ethertype == ETH_P_IPV6 {
            core::hint::cold_path();
            next = Next::Ip(IpVersion::V6, at + 2);
        } else if is_vlan(ethertype) {
            if vlans >= MAX_VLAN_TAGS {
                return Err(Skip::VlanTooDeep);
            }
            vlans += 1;
            // TCI, then the next type field.
            next = Next::Type(at + 4);
        } else if is_other(ethertype) {
            return Ok(Walked::Inner(Resume {
                off: at,
                what: resume::ENTER,
                vlans: vlans as u8,
                links: i as u8,
                steps: step,
                encaps,
            }));
        } else {
            return Err(Skip::NotIp);
        }
        i += 1;
    }
    match next {
        Next::Ip(version, off) => Ok(Walked::Ip(Link {
            version,
            off,
            encaps,
            steps: step,
        })),
        _ => Err(Skip::LinkTooDeep),
    }
}

/// The step that reads the type field a walk stopped at ([`resume::ENTER`]): an
/// encapsulation is entered and the next step goes on inside it; a VN-Tag or LLC/SNAP header
/// is stepped over and the walk goes on in this step.
#[inline(always)]
pub(crate) fn enter<P: Packet>(pkt: &mut P, from: Resume, step: u8) -> Result<Walked, Skip> {
    let Some(t) = pkt.bytes::<2>(from.off) else {
        return Err(Skip::TruncatedLinkHeader);
    };
    let ethertype = u16::from_be_bytes(*t);
    let mut encaps = from.encaps;
    let next = other(pkt, from.off, ethertype, &mut encaps)?;
    let links = from.links.saturating_add(1);
    if encaps.depth != from.encaps.depth {
        return Ok(Walked::Inner(next.resume(encaps, from.vlans, links, step)));
    }
    walk_from(pkt, next, encaps, from.vlans, links, step)
}

/// Walks from `from` to an IP header through every link-level encapsulation on the way: the
/// userspace driver of [`walk`] and [`enter`] steps (the kernel's are tail calls).
#[inline(always)]
pub(crate) fn walk_all<P: Packet>(pkt: &mut P, from: Resume) -> Result<Link, Skip> {
    // An IP header in this walk returns here; only an encapsulation goes on, out of line (as
    // `crate::ip` does, for the same reason).
    match walk(pkt, from, from.steps)? {
        Walked::Ip(link) => Ok(link),
        Walked::Inner(r) => walk_inner(pkt, r),
    }
}

/// [`walk_all`] after its first walk stopped at an encapsulation or rarer link header `from`.
#[inline(never)]
fn walk_inner<P: Packet>(pkt: &mut P, from: Resume) -> Result<Link, Skip> {
    let mut walked = Walked::Inner(from);
    let mut turn = 0;
    while turn < MAX_STEPS {
        match walked {
            Walked::Ip(link) => return Ok(link),
            Walked::Inner(r) => walked = link_step(pkt, r)?,
        }
        turn += 1;
    }
    match walked {
        Walked::Ip(link) => Ok(link),
        Walked::Inner(_) => Err(Skip::EncapsulationTooDeep),
    }
}

/// The step after `from` when it is a link-layer one (not a tunnel header): within the
/// budget of [`MAX_STEPS`], [`enter`] or [`walk`].
#[inline(always)]
pub(crate) fn link_step<P: Packet>(pkt: &mut P, from: Resume) -> Result<Walked, Skip> {
    let step = next_step_number(&from)?;
    if from.what == resume::ENTER {
        enter(pkt, from, step)
    } else {
        walk(pkt, from, step)
    }
}

/// Whether a type field is one that [`other`] reads.
#[inline(always)]
fn is_other(ethertype: u16) -> bool {
    matches!(
        ethertype,
        ETH_P_VNTAG
            | ETH_P_PBB
            | ETH_P_FABRICPATH
            | ETH_P_MPLS_UC
            | ETH_P_MPLS_MC
            | ETH_P_PPPOE_SES
    ) || ethertype <= ETH_MAX_LEN
}

/// The type fields other than IP and VLAN. An encapsulation's identifier is read only to be
/// kept: when its bytes are cut off the parse goes on without it and fails where it did
/// before identifiers were read.
#[inline(always)]
fn other<P: Packet>(
    pkt: &mut P,
    at: u32,
    ethertype: u16,
    encaps: &mut Encap,
) -> Result<Next, Skip> {
    match ethertype {
        ETH_P_VNTAG => Ok(Next::Type(at + 6)),
        ETH_P_PBB => {
            // Type, I-TAG (4: flags, then the 24-bit I-SID), then the customer frame.
            let isid = match pkt.bytes::<4>(at + 2) {
                Some(t) => EncapId::new(be24([t[1], t[2], t[3]])),
                None => EncapId::NONE,
            };
            enter_encap(encaps, encap::PBB, isid)?;
            Ok(ethernet_at(at + 6))
        }
        ETH_P_FABRICPATH => {
            enter_encap(encaps, encap::FABRICPATH, EncapId::NONE)?;
            // Type, FTag/TTL (2), then the original frame.
            Ok(ethernet_at(at + 4))
        }
        ETH_P_MPLS_UC | ETH_P_MPLS_MC => {
            enter_encap(encaps, encap::MPLS, mpls_label(pkt, at + 2))?;
            Ok(Next::Mpls(at + 2))
        }
        ETH_P_PPPOE_SES => {
            // Type, then version/type, code, the 16-bit session id.
            let session = match pkt.bytes::<2>(at + 4) {
                Some(s) => EncapId::new(u32::from(u16::from_be_bytes(*s))),
                None => EncapId::NONE,
            };
            enter_encap(encaps, encap::PPPOE, session)?;
            // Type, PPPoE header (6: version/type, code, session id, length), PPP protocol.
            let Some(ppp) = pkt.bytes::<2>(at + 8) else {
                return Err(Skip::TruncatedLinkHeader);
            };
            match u16::from_be_bytes(*ppp) {
                PPP_IPV4 => Ok(Next::Ip(IpVersion::V4, at + 10)),
                PPP_IPV6 => Ok(Next::Ip(IpVersion::V6, at + 10)),
                _ => Err(Skip::NotIp),
            }
        }
        len if len <= ETH_MAX_LEN => snap(pkt, at + 2),
        _ => Err(Skip::NotIp),
    }
}

/// A 24-bit big-endian field.
#[inline(always)]
pub(crate) fn be24(b: [u8; 3]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// The 20-bit label of the MPLS label stack entry at `at`, if the packet holds it.
#[inline(always)]
pub(crate) fn mpls_label<P: Packet>(pkt: &mut P, at: u32) -> EncapId {
    match pkt.bytes::<3>(at) {
        Some(l) => EncapId::new(be24([l[0], l[1], l[2]]) >> 4),
        None => EncapId::NONE,
    }
}

/// An 802.2 LLC header at `llc`: only SNAP with an Ethertype (OUI 0) leads anywhere; its type
/// field is the last 2 of its 8 bytes.
#[inline(always)]
pub(crate) fn snap<P: Packet>(pkt: &mut P, llc: u32) -> Result<Next, Skip> {
    let Some(h) = pkt.bytes::<6>(llc) else {
        return Err(Skip::TruncatedLinkHeader);
    };
    if h[0] == 0xaa && h[1] == 0xaa && h[2] == 0x03 && h[3] == 0 && h[4] == 0 && h[5] == 0 {
        Ok(Next::Type(llc + 6))
    } else {
        Err(Skip::NotIp)
    }
}

/// An MPLS label stack at `at`, walked to its bottom; the payload has no type field, so its
/// first nibble decides: 4 or 6 is IP, 0 is the pseudowire control word before an Ethernet
/// frame (RFC 4385), anything else is not read.
#[inline(always)]
pub(crate) fn mpls<P: Packet>(pkt: &mut P, mut at: u32) -> Result<Next, Skip> {
    let mut i = 0;
    while i < MAX_MPLS_LABELS {
        let Some(label) = pkt.bytes::<4>(at) else {
            return Err(Skip::TruncatedLinkHeader);
        };
        let bottom = label[2] & 0x01 != 0;
        at += 4;
        if bottom {
            let Some(first) = pkt.bytes::<1>(at) else {
                return Err(Skip::TruncatedLinkHeader);
            };
            return match first[0] >> 4 {
                4 => Ok(Next::Ip(IpVersion::V4, at)),
                6 => Ok(Next::Ip(IpVersion::V6, at)),
                0 => Ok(ethernet_at(at + 4)),
                _ => Err(Skip::NotIp),
            };
        }
        i += 1;
    }
    Err(Skip::MplsTooDeep)
}
