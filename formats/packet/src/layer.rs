//! What every layer's parser speaks: the packet's bytes ([`Packet`]), where an IP header is
//! ([`Link`]), where a parse stopped at an encapsulation ([`Resume`]) and why a frame is
//! skipped ([`Skip`]). A module of its own so that the IP step
//! (`crate::parse`), the link layer (`crate::link`) and the tunnels (`crate::tunnel`) share
//! it without importing each other in a circle.

use record::{Encap, MAX_ENCAPS, MAX_STEPS};

/// Read access to one packet.
pub trait Packet {
    /// The `N` bytes starting at `off`, or `None` when the packet is shorter than `off + N`.
    /// `&mut self`: an implementation may copy the bytes into a buffer of its own (the
    /// kernel's fallback for bytes outside an skb's linear data), so only one view lives at a
    /// time.
    fn bytes<const N: usize>(&mut self, off: u32) -> Option<&[u8; N]>;
}

/// A whole frame in memory (pcap replay, tests).
pub struct Frame<'a>(pub &'a [u8]);

impl Packet for Frame<'_> {
    #[inline(always)]
    fn bytes<const N: usize>(&mut self, off: u32) -> Option<&[u8; N]> {
        self.0.get(off as usize..)?.first_chunk::<N>()
    }
}

/// Why a frame gave no TCP packet, or a SYN no record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// The frame ends inside the link-layer header (Ethernet, a VLAN tag, LLC/SNAP, MPLS,
    /// PPPoE).
    TruncatedLinkHeader,
    /// More VLAN tags in one Ethernet header than [`record::MAX_VLAN_TAGS`].
    VlanTooDeep,
    /// More MPLS labels than [`record::MAX_MPLS_LABELS`].
    MplsTooDeep,
    /// More link-layer headers than [`record::MAX_LINK_HEADERS`].
    LinkTooDeep,
    /// More encapsulations than [`record::MAX_ENCAPS`] (or GTP-U extension headers than
    /// [`record::MAX_GTP_EXT`]).
    EncapsulationTooDeep,
    /// The link layer carries something other than IPv4/IPv6.
    NotIp,
    /// The frame ends inside the header of a tunnel (GRE, VXLAN, Geneve, GTP-U, ...).
    TruncatedTunnelHeader,
    /// The frame ends inside the IP header or an IPv6 extension header.
    TruncatedIpHeader,
    /// Wrong version nibble or IPv4 header length below 20 bytes.
    BadIpHeader,
    /// An IPv4 or IPv6 fragment other than the first, a first fragment too short for the TCP
    /// header (for SYNs: with its options), or a fragment of anything but TCP.
    Fragment,
    /// More IPv6 extension headers than [`record::MAX_IPV6_EXT`].
    Ipv6ExtChainTooLong,
    /// IP carries another protocol (including IPv6 headers we do not walk, and UDP or GRE
    /// that is no tunnel we read).
    NotTcp,
    /// TCP data offset below 5 words (SYNs only: the packet still counts for its flow).
    BadTcpHeader,
    /// The frame ends inside the 20-byte TCP header, or (SYNs only, the packet still counts
    /// for its flow) inside its options.
    TruncatedTcpHeader,
}

impl Skip {
    /// Stable short name: summaries and tests show it.
    pub fn name(self) -> &'static str {
        match self {
            Skip::TruncatedLinkHeader => "truncated link header",
            Skip::VlanTooDeep => "vlan too deep",
            Skip::MplsTooDeep => "mpls stack too deep",
            Skip::LinkTooDeep => "link headers too deep",
            Skip::EncapsulationTooDeep => "encapsulation too deep",
            Skip::NotIp => "not ip",
            Skip::TruncatedTunnelHeader => "truncated tunnel header",
            Skip::TruncatedIpHeader => "truncated ip header",
            Skip::BadIpHeader => "bad ip header",
            Skip::Fragment => "fragment",
            Skip::Ipv6ExtChainTooLong => "ipv6 extension chain too long",
            Skip::NotTcp => "not tcp",
            Skip::BadTcpHeader => "bad tcp header",
            Skip::TruncatedTcpHeader => "truncated tcp header",
        }
    }
}

/// The IP version a link layer announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

/// Where an IP header starts, and the encapsulations entered to reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The IP version announced.
    pub version: IpVersion,
    /// Offset of the IP header from the start of the packet.
    pub off: u32,
    /// Encapsulations entered so far (at most [`record::MAX_ENCAPS`]), and the outermost one.
    pub encaps: Encap,
    /// Steps of the parse so far, the one that found this header included (see [`Resume`]).
    pub steps: u8,
}

impl Link {
    /// A bare IP packet at `off` (link types without Ethernet).
    pub const fn ip(version: IpVersion, off: u32) -> Link {
        Link {
            version,
            off,
            encaps: Encap::NONE,
            steps: 1,
        }
    }
}

/// Where a parse stopped on entering an encapsulation, so that the next step ([`crate::next_step`])
/// goes on from there. In userspace the next step follows at once; in the kernel it runs in
/// the next program of a tail call, and this travels between them through a per-CPU map (plain
/// integers, `#[repr(C)]`, 16 bytes). Each step is then verified once, from an unknown state,
/// where one program walking every encapsulation made the verifier explore every combination
/// of headers (more than its 1M instructions).
///
/// The counters carry the bounds across steps, so a parse split into steps is the same parse:
/// `vlans` and `links` count the current Ethernet header's VLAN tags and link headers
/// ([`record::MAX_VLAN_TAGS`], [`record::MAX_LINK_HEADERS`]), `encaps` the encapsulations
/// entered so far ([`record::MAX_ENCAPS`]), `steps` the steps taken
/// ([`record::MAX_STEPS`]). Userspace counts the same steps, so it stops where the kernel
/// does. `encaps` also carries the outermost encapsulation's kind and identifier to the step
/// that writes the record.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// Offset from the start of the packet of what [`Self::what`] names.
    pub off: u32,
    /// What is at `off`: one of [`resume`].
    pub what: u8,
    /// VLAN tags read in the current Ethernet header.
    pub vlans: u8,
    /// Link-layer headers read in the current walk.
    pub links: u8,
    /// Steps taken so far, the one that stopped here included.
    pub steps: u8,
    /// Encapsulations entered so far, and the outermost one.
    pub encaps: Encap,
}

/// The number of the step after `from`, or ("encapsulation too deep") none past
/// [`record::MAX_STEPS`]: the one budget every later step checks.
#[inline(always)]
pub(crate) fn next_step_number(from: &Resume) -> Result<u8, Skip> {
    if usize::from(from.steps) >= MAX_STEPS {
        return Err(Skip::EncapsulationTooDeep);
    }
    Ok(from.steps + 1)
}

/// An encapsulation's identifier as the records keep it: [`record::encap::flag`] bits and
/// the value, 0 without one. Plain integers from the moment an identifier is read: an
/// `Option<u32>` that is `None` leaves its value undefined, and the kernel's verifier rejects
/// a program that stores such a register ("!read_ok").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EncapId {
    pub(crate) flags: u8,
    pub(crate) id: u32,
}

impl EncapId {
    /// No identifier.
    pub(crate) const NONE: EncapId = EncapId { flags: 0, id: 0 };

    /// The identifier `id`.
    #[inline(always)]
    pub(crate) fn new(id: u32) -> EncapId {
        EncapId {
            flags: record::encap::flag::ID,
            id,
        }
    }
}

/// Counts one more encapsulation of `kind` with identifier `id`, or fails past
/// [`record::MAX_ENCAPS`]. The first one entered is the outermost: its kind and id are kept.
#[inline(always)]
pub(crate) fn enter_encap(encaps: &mut Encap, kind: u8, id: EncapId) -> Result<(), Skip> {
    if usize::from(encaps.depth) >= MAX_ENCAPS {
        return Err(Skip::EncapsulationTooDeep);
    }
    if encaps.depth == 0 {
        encaps.kind = kind;
        encaps.flags = id.flags;
        encaps.id = id.id;
    }
    encaps.depth += 1;
    Ok(())
}

/// [`Resume::what`] values.
pub mod resume {
    /// An IPv4 header.
    pub const IPV4: u8 = 0;
    /// An IPv6 header.
    pub const IPV6: u8 = 1;
    /// A 2-byte Ethernet type field.
    pub const TYPE: u8 = 2;
    /// The first label of an MPLS stack.
    pub const MPLS: u8 = 3;
    /// A GRE header (IP protocol 47), not yet counted as an encapsulation.
    pub const GRE: u8 = 4;
    /// A UDP header with a tunnel's port, not yet counted as an encapsulation.
    pub const UDP: u8 = 5;
    /// A type field other than IP and VLAN: an encapsulation (PBB, FabricPath, MPLS, PPPoE)
    /// or a rarer link header (VN-Tag, LLC/SNAP), read by a step of its own.
    pub const ENTER: u8 = 6;
}
