//! What every layer's parser speaks: the packet's bytes ([`Packet`]), where an IP header is
//! ([`Link`]) and why a frame is skipped ([`Skip`]). A module of its own so that the IP step
//! (`crate::parse`), the link layer (`crate::link`) and the tunnels (`crate::tunnel`) share
//! it without importing each other in a circle.

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

/// Where an IP header starts, and how many encapsulations were entered to reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// The IP version announced.
    pub version: IpVersion,
    /// Offset of the IP header from the start of the packet.
    pub off: u32,
    /// Encapsulations entered so far (at most [`record::MAX_ENCAPS`]).
    pub encaps: u8,
}

impl Link {
    /// A bare IP packet at `off` (link types without Ethernet).
    pub const fn ip(version: IpVersion, off: u32) -> Link {
        Link {
            version,
            off,
            encaps: 0,
        }
    }
}
