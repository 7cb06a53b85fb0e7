//! The capture link type number, on its own so that the link layers ([`super::link`]) and the
//! statistics that count link types ([`super::stats`]) can both name it.

use std::fmt;

/// A capture link type (the `LINKTYPE_*` number of the pcap header or pcapng interface).
///
/// Kept as the raw number so unknown types can still be named in errors and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: 4-byte address family in the byte order of the capturing host.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II (with optional 802.1Q / 802.1ad tags).
    pub const ETHERNET: LinkType = LinkType(1);
    /// ARCnet as BSD captures it: source, destination, then the protocol byte.
    pub const ARCNET_BSD: LinkType = LinkType(7);
    /// PPP, optionally with the HDLC address/control bytes.
    pub const PPP: LinkType = LinkType(9);
    /// FDDI with an 802.2 LLC/SNAP header.
    pub const FDDI: LinkType = LinkType(10);
    /// `DLT_RAW` as most BSDs number it: a bare IPv4 or IPv6 header.
    pub const DLT_RAW_12: LinkType = LinkType(12);
    /// `DLT_RAW` as OpenBSD numbers it.
    pub const DLT_RAW_14: LinkType = LinkType(14);
    /// PPP in HDLC-like framing (RFC 1662).
    pub const PPP_HDLC: LinkType = LinkType(50);
    /// `LINKTYPE_RAW`: a bare IPv4 or IPv6 header.
    pub const RAW: LinkType = LinkType(101);
    /// Cisco HDLC: address, control, then an EtherType.
    pub const C_HDLC: LinkType = LinkType(104);
    /// OpenBSD loopback: like [`LinkType::NULL`] but the family is in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1 (`tcpdump -i any`).
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// ARCnet as Linux captures it: like [`LinkType::ARCNET_BSD`] with a 2-byte offset field
    /// after the destination.
    pub const ARCNET_LINUX: LinkType = LinkType(129);
    /// Bare IPv4.
    pub const IPV4: LinkType = LinkType(228);
    /// Bare IPv6.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux netfilter NFLOG messages.
    pub const NFLOG: LinkType = LinkType(239);
    /// IP over InfiniBand with the 44-byte pseudo header libpcap writes.
    pub const IPOIB: LinkType = LinkType(242);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Whether [`super::parse_packet`] can decode this link type.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            LinkType::NULL
                | LinkType::ETHERNET
                | LinkType::ARCNET_BSD
                | LinkType::ARCNET_LINUX
                | LinkType::PPP
                | LinkType::FDDI
                | LinkType::DLT_RAW_12
                | LinkType::DLT_RAW_14
                | LinkType::PPP_HDLC
                | LinkType::RAW
                | LinkType::C_HDLC
                | LinkType::LOOP
                | LinkType::LINUX_SLL
                | LinkType::IPV4
                | LinkType::IPV6
                | LinkType::NFLOG
                | LinkType::IPOIB
                | LinkType::LINUX_SLL2
        )
    }

    /// Short lower-case name, as tcpdump's `LINKTYPE_` list spells it, for messages.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "null",
            1 => "ethernet",
            6 => "ieee802_5",
            7 => "arcnet_bsd",
            8 => "slip",
            9 => "ppp",
            10 => "fddi",
            12 | 14 => "raw (dlt_raw)",
            50 => "ppp_hdlc",
            51 => "ppp_ether",
            101 => "raw",
            104 => "c_hdlc",
            105 => "ieee802_11",
            108 => "loop",
            113 => "linux_sll",
            119 => "prism_header",
            127 => "ieee802_11_radiotap",
            129 => "arcnet_linux",
            138 => "apple_ip_over_ieee1394",
            147..=162 => "user",
            192 => "ppi",
            201 => "bluetooth_hci_h4_with_phdr",
            220 => "usb_linux_mmapped",
            228 => "ipv4",
            229 => "ipv6",
            239 => "nflog",
            242 => "ipoib",
            249 => "usbpcap",
            276 => "linux_sll2",
            _ => "unknown",
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}
