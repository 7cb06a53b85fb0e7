//! The raw records that every part of synscope shares.
//!
//! The kernel datapath (`ebpf`), the pcap reader (`formats::pcap`), both through the one packet
//! parser (`packet`), and the Parquet recordings (`formats::syn`, `formats::flows`) all speak
//! these types, and the p0f engine (`p0f`) reads only them. That is what makes live and replay
//! agree: the same packet gives the same bytes here whether the kernel or a pcap produced it.
//!
//! Rules for every record in this crate:
//! - `#[repr(C)]`, fixed size, explicit `_pad*` fields so no byte is implicit padding (the
//!   layout tests below pin size and every offset);
//! - no `bool`, no enums in the layout: plain integers whose meaning is documented;
//! - multi-byte integers are in **host byte order** (little-endian on every target we build:
//!   x86_64, aarch64, bpfel), addresses and TCP option bytes are copied **as on the wire**;
//! - records are *canonical*: every byte that a field does not use (the tail of an IPv4 address,
//!   option bytes past `tcp_opts_len`, padding) is zero, so two equal packets give bit-identical
//!   records.
//!
//! Only raw fields live here. Decoding (option layouts, quirks, signatures) happens in userspace.
#![no_std]
// The kernel side has no unsafe code at all; userspace's byte views (module `pod`) are the one
// place with any.
#![cfg_attr(not(feature = "user"), forbid(unsafe_code))]
#![cfg_attr(feature = "user", deny(unsafe_code))]

/// Userspace's byte views of the records (the `user` feature): the ring buffer, the
/// flow-table batch lookups and capture's journal copy records from and to bytes with
/// bytemuck, as aya-template gives its shared types aya's `Pod` behind the same feature.
#[cfg(feature = "user")]
#[allow(unsafe_code)]
mod pod {
    use super::{CpuCounters, FlowCounters, FlowDirCounters, FlowKey, PayloadRecord, SynRecord};

    // SAFETY (all six): `#[repr(C)]`, integers and integer arrays only, no implicit padding
    // (explicit `_pad*` fields; the layout tests pin every size and offset), so every bit
    // pattern is a valid value and all-zero is one.
    unsafe impl bytemuck::Zeroable for SynRecord {}
    unsafe impl bytemuck::Pod for SynRecord {}
    unsafe impl bytemuck::Zeroable for FlowKey {}
    unsafe impl bytemuck::Pod for FlowKey {}
    unsafe impl bytemuck::Zeroable for FlowDirCounters {}
    unsafe impl bytemuck::Pod for FlowDirCounters {}
    unsafe impl bytemuck::Zeroable for FlowCounters {}
    unsafe impl bytemuck::Pod for FlowCounters {}
    unsafe impl bytemuck::Zeroable for CpuCounters {}
    unsafe impl bytemuck::Pod for CpuCounters {}
    unsafe impl bytemuck::Zeroable for PayloadRecord {}
    unsafe impl bytemuck::Pod for PayloadRecord {}
}

mod payload;
#[cfg(feature = "user")]
pub use payload::NotAPrefix;
pub use payload::{PAYLOAD_HEAD_MAX, PayloadRecord, payload_side};

/// How many IPv6 extension headers (hop-by-hop, routing, destination options) the parser
/// (`packet`) walks before giving up on a packet: the kernel needs a constant loop bound.
/// Here, beside the records, because it decides which packets give one.
pub const MAX_IPV6_EXT: usize = 4;

/// How many VLAN tags (802.1Q / 802.1ad / 0x9100) the parser looks through in one Ethernet
/// header, for the same reason. Four covers QinQ and provider stacks (QinQinQ) with room to
/// spare; a fifth tag skips the packet ("vlan too deep").
pub const MAX_VLAN_TAGS: usize = 4;

/// How many encapsulations the parser looks through, outermost first: each tunnel (IP-in-IP,
/// GRE, VXLAN, Geneve, GTP-U, AYIYA, Teredo, GRE-in-UDP) and each header that starts a new
/// Ethernet or IP packet inside the frame (MPLS, PBB, Cisco FabricPath, PPPoE) counts one. One
/// more skips the packet ("encapsulation too deep"): it bounds the kernel's chain of tail calls
/// (one per step, see `packet::next_step`) and replay's loop over the same steps, and a
/// recursive tunnel (GRE in GRE in ...) cannot make the parser run away.
pub const MAX_ENCAPS: usize = 3;

/// How many link-layer headers (an Ethernet type field and what it announces: a VLAN tag, a
/// VN-Tag, an LLC/SNAP header, an inner Ethernet header) one walk reads before giving up
/// ("link headers too deep"). Larger than [`MAX_VLAN_TAGS`] + [`MAX_ENCAPS`] so those two
/// bounds are the ones that normally decide.
pub const MAX_LINK_HEADERS: usize = 10;

/// How many steps one packet's parse may take (`packet::first_step`, then `packet::next_step`
/// once per step: a tunnel header, an encapsulating link header, or the walk through one
/// Ethernet header to its IP packet); one more skips it ("encapsulation too deep"). In the
/// kernel each step after the first is a tail call, and a chain may hold 33: this keeps it
/// far below that. Real frames need at most 2 x [`MAX_ENCAPS`] + a few (a VN-Tag or an
/// LLC/SNAP header takes a step of its own).
pub const MAX_STEPS: usize = 16;

/// How many MPLS labels the parser walks to reach the bottom of the stack ("mpls stack too
/// deep" past it). Carrier stacks are 1-3 labels deep; 6 leaves room for VPN, entropy and
/// segment-routing labels.
pub const MAX_MPLS_LABELS: usize = 6;

/// How many GTP-U extension headers the parser steps over ("encapsulation too deep" past
/// it). Mobile cores send at most one or two (PDU session container, PDCP number).
pub const MAX_GTP_EXT: usize = 2;

/// Size of [`SynRecord::tcp_opts`]: the largest TCP option area (60-byte header minus 20).
pub const TCP_OPTS_MAX: usize = 40;

/// Names shared by the eBPF object and the loader, so neither side spells them twice.
pub mod names {
    /// TC classifier program for ingress.
    pub const PROG_TC: &str = "synscope_tc";
    /// TC classifier program for egress: the ingress program's code with the direction
    /// fixed, because `__sk_buff` does not say which side of the device a program runs on.
    pub const PROG_TC_EGRESS: &str = "synscope_tc_egress";
    /// XDP program (ingress only).
    pub const PROG_XDP: &str = "synscope_xdp";
    /// TC program that goes on with a packet's parse inside an encapsulation, reached by
    /// tail call through [`MAP_DECAP_TC`] (from the TC hooks and from itself).
    pub const PROG_TC_DECAP: &str = "synscope_tc_decap";
    /// The same for XDP, through [`MAP_DECAP_XDP`].
    pub const PROG_XDP_DECAP: &str = "synscope_xdp_decap";
    /// Program array holding [`PROG_TC_DECAP`] at index 0 (the loader fills it).
    pub const MAP_DECAP_TC: &str = "DECAP_TC";
    /// Program array holding [`PROG_XDP_DECAP`] at index 0.
    pub const MAP_DECAP_XDP: &str = "DECAP_XDP";
    /// Ring buffer carrying [`crate::SynRecord`]s to userspace.
    pub const MAP_SYN_EVENTS: &str = "SYN_EVENTS";
    /// LRU hash of [`crate::FlowKey`] -> [`crate::FlowCounters`].
    pub const MAP_FLOWS: &str = "FLOWS";
    /// Per-CPU array with one [`crate::CpuCounters`]: the counters and the flood guard's window.
    pub const MAP_COUNTERS: &str = "COUNTERS";
    /// Global (`u32`, read-only data) the loader sets before loading: 1 keeps the flow table,
    /// 0 does not. Being read-only data, the verifier knows its value and drops the code a
    /// setting leaves unused, where a configuration map would cost a lookup per packet.
    pub const GLOBAL_FLOWS: &str = "SYNSCOPE_FLOWS";
    /// Global (`u32`, read-only data): the flood guard's limit, SYN records kept per second per
    /// CPU; 0 keeps every SYN. See [`crate::CpuCounters`].
    pub const GLOBAL_MAX_SYN_RATE: &str = "SYNSCOPE_MAX_SYN_RATE";
}

/// [`SynRecord::direction`] values.
pub mod direction {
    /// Not known (pcap files do not say).
    pub const UNKNOWN: u8 = 0;
    /// Received by the interface (TC ingress, XDP).
    pub const INGRESS: u8 = 1;
    /// Sent by the interface (TC egress).
    pub const EGRESS: u8 = 2;

    /// Human name, as used in Parquet columns and reports.
    pub const fn name(v: u8) -> Option<&'static str> {
        match v {
            UNKNOWN => Some("unknown"),
            INGRESS => Some("ingress"),
            EGRESS => Some("egress"),
            _ => None,
        }
    }

    /// Inverse of [`name`].
    pub fn from_name(s: &str) -> Option<u8> {
        match s {
            "unknown" => Some(UNKNOWN),
            "ingress" => Some(INGRESS),
            "egress" => Some(EGRESS),
            _ => None,
        }
    }
}

/// [`SynRecord::source`] values: which producer made the record.
pub mod source {
    /// The TC classifier.
    pub const TC: u8 = 1;
    /// The XDP program.
    pub const XDP: u8 = 2;
    /// A pcap or pcapng file.
    pub const PCAP: u8 = 3;

    /// Human name, as used in Parquet columns and reports.
    pub const fn name(v: u8) -> Option<&'static str> {
        match v {
            TC => Some("tc"),
            XDP => Some("xdp"),
            PCAP => Some("pcap"),
            _ => None,
        }
    }

    /// Inverse of [`name`].
    pub fn from_name(s: &str) -> Option<u8> {
        match s {
            "tc" => Some(TC),
            "xdp" => Some(XDP),
            "pcap" => Some(PCAP),
            _ => None,
        }
    }
}

/// Every octet's decimal text followed by a dot, in a 4-byte block, with the length of
/// the text and dot.
const OCTETS: [([u8; 4], u8); 256] = {
    let mut t = [([0u8; 4], 0u8); 256];
    let mut v = 0;
    while v < 256 {
        let (h, d, u) = ((v / 100) as u8, (v / 10 % 10) as u8, (v % 10) as u8);
        t[v] = if v >= 100 {
            ([b'0' + h, b'0' + d, b'0' + u, b'.'], 4)
        } else if v >= 10 {
            ([b'0' + d, b'0' + u, b'.', 0], 3)
        } else {
            ([b'0' + u, b'.', 0, 0], 2)
        };
        v += 1;
    }
    t
};

/// The dotted quad of the IPv4 address in `a[..4]` (the text `std::net::Ipv4Addr` prints),
/// put together on the stack: the text is the first `len` bytes (at most 15) of the block.
/// Shared by everything that prints addresses in bulk: `analyze`'s p0f lines and tables,
/// the Parquet recordings' address columns.
///
/// Each octet is one 4-byte copy from [`OCTETS`] and no branch on its number of digits
/// (copies of a variable length, 1 to 3 digits, were memmove calls: three addresses a JSON
/// row; `Display` with its padding machinery was the largest cost of writing a SYN flood's
/// recording).
pub fn ipv4_text(a: &[u8; 16]) -> ([u8; 16], usize) {
    let mut text = [0u8; 16];
    let mut len = 0;
    for &octet in &a[..4] {
        let (block, n) = OCTETS[octet as usize];
        // `len` is at most 12 here: four octets of at most 4 bytes each fit.
        if let Some(dst) = text.get_mut(len..len + 4) {
            dst.copy_from_slice(&block);
        }
        len += n as usize;
    }
    // The last octet's dot is not part of the text.
    (text, len - 1)
}

/// Bits of [`SynRecord::tcp_flags`]: the 8 flag bits of TCP header byte 13, plus NS.
pub mod tcp_flag {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
    /// The ECN-nonce bit (low bit of TCP header byte 12), moved up to bit 8.
    pub const NS: u16 = 0x100;

    /// Flags as letters in the fixed order S(YN) A(CK) F(IN) R(ST) P(SH) U(RG) E(CE) C(WR)
    /// N(S), so a SYN is `"S"`, a SYN+ACK `"SA"`, an ECN-setup SYN `"SEC"`. Writes into
    /// `out`, returns the number of bytes used (at most 9).
    pub fn letters(flags: u16, out: &mut [u8; 9]) -> usize {
        const ORDER: [(u16, u8); 9] = [
            (SYN, b'S'),
            (ACK, b'A'),
            (FIN, b'F'),
            (RST, b'R'),
            (PSH, b'P'),
            (URG, b'U'),
            (ECE, b'E'),
            (CWR, b'C'),
            (NS, b'N'),
        ];
        let mut n = 0;
        for (bit, ch) in ORDER {
            if flags & bit != 0 {
                out[n] = ch;
                n += 1;
            }
        }
        n
    }
}

/// Bits of [`SynRecord::record_flags`]: facts about how the record was obtained.
pub mod record_flag {
    /// The capture holds fewer bytes than the IP length field claims (a pcap snap length cut
    /// the payload). The headers and options in the record are complete; `payload_len` is
    /// still the length the IP header announced. p0f ignores such packets.
    pub const SNAPPED: u8 = 0x01;
}

/// [`SynRecord::encap_kind`] values: the outermost encapsulation a packet was found inside.
///
/// Only headers that start a new packet or frame count (the ones [`MAX_ENCAPS`] bounds);
/// VLAN tags, VN-Tags and LLC/SNAP headers do not. Plain integers, not an enum, because the
/// kernel writes them and the flow table's key holds them.
pub mod encap {
    /// Not encapsulated.
    pub const NONE: u8 = 0;
    /// VXLAN (UDP 4789); id: the 24-bit VNI.
    pub const VXLAN: u8 = 1;
    /// VXLAN-GPE (UDP 4790); id: the 24-bit VNI.
    pub const VXLAN_GPE: u8 = 2;
    /// Geneve (UDP 6081); id: the 24-bit VNI.
    pub const GENEVE: u8 = 3;
    /// GRE (IP protocol 47), including transparent Ethernet bridging, WCCP and Aruba's
    /// access-point tunnel; id: the 32-bit key, when the K flag says one is present.
    pub const GRE: u8 = 4;
    /// ERSPAN type I, II or III (in GRE); id: the 10-bit session id (types II and III).
    pub const ERSPAN: u8 = 5;
    /// GRE in UDP (port 4754); id: the GRE key, when present.
    pub const GRE_UDP: u8 = 6;
    /// GTP-U (UDP 2152); id: the 32-bit TEID.
    pub const GTP_U: u8 = 7;
    /// IP in IP: 4in4, 6in4, 4in6 or 6in6. No id.
    pub const IP_IN_IP: u8 = 8;
    /// An MPLS label stack after an Ethernet type field; id: the top (outermost) 20-bit label.
    pub const MPLS: u8 = 9;
    /// MPLS in UDP (port 6635); id: the top 20-bit label.
    pub const MPLS_UDP: u8 = 10;
    /// PPPoE session stage; id: the 16-bit session id.
    pub const PPPOE: u8 = 11;
    /// 802.1ah provider backbone bridging; id: the 24-bit I-SID.
    pub const PBB: u8 = 12;
    /// Cisco FabricPath. No id.
    pub const FABRICPATH: u8 = 13;
    /// AYIYA (UDP 5072). No id.
    pub const AYIYA: u8 = 14;
    /// Teredo (UDP 3544). No id.
    pub const TEREDO: u8 = 15;

    /// Every kind's name, indexed by value.
    const NAMES: [&str; 16] = [
        "none",
        "vxlan",
        "vxlan-gpe",
        "geneve",
        "gre",
        "erspan",
        "gre-udp",
        "gtp-u",
        "ip-in-ip",
        "mpls",
        "mpls-udp",
        "pppoe",
        "pbb",
        "fabricpath",
        "ayiya",
        "teredo",
    ];

    /// Human name, as used in Parquet columns and reports.
    pub const fn name(v: u8) -> Option<&'static str> {
        if (v as usize) < NAMES.len() {
            Some(NAMES[v as usize])
        } else {
            None
        }
    }

    /// Inverse of [`name`].
    pub fn from_name(s: &str) -> Option<u8> {
        NAMES.iter().position(|n| *n == s).map(|i| i as u8)
    }

    /// Whether a kind's identifier names one virtual network for both directions of a
    /// connection, so that it belongs in the flow key ([`super::FlowKey`]): the VNIs of
    /// VXLAN, VXLAN-GPE and Geneve, which overlays reuse private addresses under. The other
    /// identifiers often differ by direction (GTP-U TEIDs always do; GRE keys and ERSPAN
    /// sessions of mirrored traffic may: the shared corpus's `erspan.pcap` has key 0 one way
    /// and 0x2000000 the other; MPLS labels are per hop), and keying by them would split a
    /// handshake in two.
    pub const fn keys_flows(kind: u8) -> bool {
        matches!(kind, VXLAN | VXLAN_GPE | GENEVE)
    }

    /// Bits of [`super::SynRecord::encap_flags`] (and [`super::FlowKey::encap_flags`]).
    pub mod flag {
        /// `encap_id` holds the encapsulation's identifier. Without it `encap_id` is 0: the
        /// kind has none (IP in IP), this packet's header did not carry one (GRE without a
        /// key, ERSPAN type I), or the capture cut the header before it.
        pub const ID: u8 = 0x01;
    }
}

/// Bits of the IPv4 flags/fragment-offset word ([`SynRecord::ip_frag`]).
pub mod ip_frag {
    /// The reserved ("evil", must-be-zero) bit.
    pub const RESERVED: u16 = 0x8000;
    /// Don't fragment.
    pub const DF: u16 = 0x4000;
    /// More fragments.
    pub const MF: u16 = 0x2000;
    /// Fragment offset, in 8-byte units.
    pub const OFFSET_MASK: u16 = 0x1fff;
}

/// One TCP SYN or SYN+ACK, as raw header fields.
///
/// This is what the kernel writes into the ring buffer and what the pcap reader produces; it
/// carries everything p0f v3 reads from a packet and nothing that needs decoding.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | `ts_ns` |
/// | 8 | 4 | `ifindex` |
/// | 12 | 4 | `flow_label` |
/// | 16 | 16 | `src_addr` |
/// | 32 | 16 | `dst_addr` |
/// | 48 | 2 | `src_port` |
/// | 50 | 2 | `dst_port` |
/// | 52 | 2 | `ip_len` |
/// | 54 | 2 | `ip_id` |
/// | 56 | 2 | `ip_frag` |
/// | 58 | 2 | `ip_hdr_len` |
/// | 60 | 2 | `tcp_flags` |
/// | 62 | 2 | `window` |
/// | 64 | 4 | `seq` |
/// | 68 | 4 | `ack` |
/// | 72 | 2 | `urg_ptr` |
/// | 74 | 2 | `payload_len` |
/// | 76 | 1 | `ip_version` |
/// | 77 | 1 | `ttl` |
/// | 78 | 1 | `tos` |
/// | 79 | 1 | `direction` |
/// | 80 | 1 | `source` |
/// | 81 | 1 | `tcp_hdr_len` |
/// | 82 | 1 | `tcp_opts_len` |
/// | 83 | 1 | `record_flags` |
/// | 84 | 40 | `tcp_opts` |
/// | 124 | 4 | `encap_id` |
/// | 128 | 1 | `encap_kind` |
/// | 129 | 1 | `encaps` |
/// | 130 | 1 | `encap_flags` |
/// | 131 | 5 | `_pad0` |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SynRecord {
    /// Time the packet was seen, nanoseconds. Once a record leaves `capture` or the pcap
    /// reader this is UTC since the Unix epoch. Inside the kernel it is `bpf_ktime_get_ns()`
    /// (CLOCK_MONOTONIC); `capture` adds the offset it measured at start before writing.
    pub ts_ns: u64,
    /// Interface index the packet was seen on (kernel), or pcapng interface id (pcap: 0).
    pub ifindex: u32,
    /// IPv6 flow label (low 20 bits); 0 for IPv4.
    pub flow_label: u32,
    /// Source address, network byte order. IPv4 uses bytes 0..4; bytes 4..16 are zero.
    pub src_addr: [u8; 16],
    /// Destination address, network byte order. IPv4 uses bytes 0..4; bytes 4..16 are zero.
    pub dst_addr: [u8; 16],
    /// TCP source port, host order.
    pub src_port: u16,
    /// TCP destination port, host order.
    pub dst_port: u16,
    /// IPv4 total length or IPv6 payload length, bytes, host order (as the header says).
    pub ip_len: u16,
    /// IPv4 identification, host order; 0 for IPv6.
    pub ip_id: u16,
    /// IPv4 flags and fragment offset word, host order (see [`ip_frag`]); 0 for IPv6.
    pub ip_frag: u16,
    /// Bytes from the start of the IP header to the TCP header: IPv4 IHL*4 (so options are
    /// `ip_hdr_len - 20`), IPv6 40 plus any extension headers walked.
    pub ip_hdr_len: u16,
    /// TCP flags, see [`tcp_flag`]: bits 0..8 are header byte 13, bit 8 is NS.
    pub tcp_flags: u16,
    /// TCP window, host order, unscaled.
    pub window: u16,
    /// TCP sequence number, host order.
    pub seq: u32,
    /// TCP acknowledgement number, host order (raw, also when ACK is not set).
    pub ack: u32,
    /// TCP urgent pointer, host order (raw, also when URG is not set).
    pub urg_ptr: u16,
    /// TCP payload bytes according to the IP length field (never negative: 0 when the header
    /// lengths exceed it).
    pub payload_len: u16,
    /// 4 or 6.
    pub ip_version: u8,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 TOS byte or IPv6 traffic class, including the two ECN bits.
    pub tos: u8,
    /// See [`direction`].
    pub direction: u8,
    /// See [`source`].
    pub source: u8,
    /// TCP data offset in bytes (20..=60).
    pub tcp_hdr_len: u8,
    /// Number of valid bytes in `tcp_opts` (`tcp_hdr_len - 20`).
    pub tcp_opts_len: u8,
    /// See [`record_flag`].
    pub record_flags: u8,
    /// The raw TCP option bytes, as on the wire; bytes past `tcp_opts_len` are zero.
    pub tcp_opts: [u8; TCP_OPTS_MAX],
    /// Identifier of the outermost encapsulation, host order (see [`encap`] for each kind's:
    /// VNI, GRE key, ERSPAN session, TEID, MPLS label, PPPoE session, I-SID); 0 unless
    /// `encap_flags` has [`encap::flag::ID`].
    pub encap_id: u32,
    /// The outermost encapsulation the packet was found inside, see [`encap`]; the other
    /// fields describe the innermost IP packet and its TCP header.
    pub encap_kind: u8,
    /// How many encapsulations the packet was found inside (0..=[`MAX_ENCAPS`]); 0 exactly
    /// when `encap_kind` is [`encap::NONE`].
    pub encaps: u8,
    /// See [`encap::flag`].
    pub encap_flags: u8,
    /// Explicit padding to a multiple of 8; always zero.
    pub _pad0: [u8; 5],
}

impl SynRecord {
    /// Size in bytes (pinned by a test).
    pub const SIZE: usize = 136;

    /// An all-zero record, the starting point for every producer.
    pub const ZERO: SynRecord = SynRecord {
        ts_ns: 0,
        ifindex: 0,
        flow_label: 0,
        src_addr: [0; 16],
        dst_addr: [0; 16],
        src_port: 0,
        dst_port: 0,
        ip_len: 0,
        ip_id: 0,
        ip_frag: 0,
        ip_hdr_len: 0,
        tcp_flags: 0,
        window: 0,
        seq: 0,
        ack: 0,
        urg_ptr: 0,
        payload_len: 0,
        ip_version: 0,
        ttl: 0,
        tos: 0,
        direction: 0,
        source: 0,
        tcp_hdr_len: 0,
        tcp_opts_len: 0,
        record_flags: 0,
        tcp_opts: [0; TCP_OPTS_MAX],
        encap_id: 0,
        encap_kind: 0,
        encaps: 0,
        encap_flags: 0,
        _pad0: [0; 5],
    };

    /// The valid option bytes.
    pub fn options(&self) -> &[u8] {
        let n = (self.tcp_opts_len as usize).min(TCP_OPTS_MAX);
        &self.tcp_opts[..n]
    }

    /// The packet's flow (canonical [`FlowKey`]) and its direction in it
    /// ([`flow_dir`]), from the record's addresses, ports and outermost encapsulation.
    ///
    /// Inlined: called out of line, the key came back through memory written a field at a
    /// time and was read back a word at a time, and those loads wait for the stores to
    /// retire (store-to-load forwarding fails), a stall per packet in a replay's flow table.
    #[inline]
    pub fn flow_key(&self) -> (FlowKey, u8) {
        FlowKey::new_in(
            self.ip_version,
            self.src_addr,
            self.src_port,
            self.dst_addr,
            self.dst_port,
            &Encap::of(self),
        )
    }

    /// Whether this is a SYN+ACK (as opposed to a plain SYN).
    pub fn is_syn_ack(&self) -> bool {
        self.tcp_flags & tcp_flag::ACK != 0
    }

    /// Length of the address in use: 4 for IPv4, 16 otherwise.
    pub fn addr_len(&self) -> usize {
        if self.ip_version == 4 { 4 } else { 16 }
    }

    /// The bytes this packet adds to its flow's counters: the IPv4 total length, or the
    /// IPv6 payload length plus the 40-byte fixed header (what the datapath counts for every
    /// other packet of the flow).
    pub fn l3_bytes(&self) -> u64 {
        if self.ip_version == 6 {
            40 + u64::from(self.ip_len)
        } else {
            u64::from(self.ip_len)
        }
    }

    /// Whether the canonical-form rules hold: unused address bytes, option bytes past
    /// `tcp_opts_len` and padding are zero, and lengths are in range. Producers must only emit
    /// canonical records; readers use this to reject corrupt input.
    pub fn is_canonical(&self) -> bool {
        let n = self.tcp_opts_len as usize;
        addrs_are_canonical(self.ip_version, &self.src_addr, &self.dst_addr)
            && n <= TCP_OPTS_MAX
            && self.tcp_opts[n..].iter().all(|b| *b == 0)
            && self._pad0 == [0; 5]
            && encap_is_canonical(
                self.encap_kind,
                self.encaps,
                self.encap_flags,
                self.encap_id,
            )
    }
}

/// The flow-key side of a [`PayloadRecord`], here beside [`FlowKey`] and [`Encap`] so that
/// `payload` (the record's layout) imports nothing from the crate root.
impl PayloadRecord {
    /// The segment's encapsulation fields.
    pub fn encap(&self) -> Encap {
        Encap {
            id: self.encap_id,
            kind: self.encap_kind,
            depth: self.encaps,
            flags: self.encap_flags,
            _pad: 0,
        }
    }

    /// The segment's flow (canonical [`FlowKey`], the one its SYN's record gives) and its
    /// direction in it ([`flow_dir`]).
    pub fn flow_key(&self) -> (FlowKey, u8) {
        FlowKey::new_in(
            self.ip_version,
            self.src_addr,
            self.src_port,
            self.dst_addr,
            self.dst_port,
            &self.encap(),
        )
    }

    /// Whether the record is in the one form its producers make, so that storing only its
    /// meaningful bytes (as the Parquet payload recording does) loses nothing: IP version 4
    /// or 6, IPv4 addresses zero past byte 4, `head_len` within `payload_len` and
    /// [`PAYLOAD_HEAD_MAX`], `head` and padding zero past `head_len`, and canonical
    /// encapsulation fields (as [`SynRecord::is_canonical`] has them).
    pub fn is_canonical(&self) -> bool {
        let n = usize::from(self.head_len);
        addrs_are_canonical(self.ip_version, &self.src_addr, &self.dst_addr)
            && n <= PAYLOAD_HEAD_MAX
            && self.head_len <= self.payload_len
            && self.head[n..].iter().all(|b| *b == 0)
            && self._pad0 == [0; 4]
            && encap_is_canonical(
                self.encap_kind,
                self.encaps,
                self.encap_flags,
                self.encap_id,
            )
    }
}

/// Whether a record's IP version is 4 or 6 and, for IPv4, its addresses are zero past their
/// first four bytes (the canonical form both record types share).
fn addrs_are_canonical(ip_version: u8, src: &[u8; 16], dst: &[u8; 16]) -> bool {
    match ip_version {
        4 => src[4..].iter().all(|b| *b == 0) && dst[4..].iter().all(|b| *b == 0),
        6 => true,
        _ => false,
    }
}

/// Whether encapsulation fields are canonical: a known kind; no depth, flags or id without
/// one, and a depth within [`MAX_ENCAPS`] with one; only known flags; an id only with its flag.
fn encap_is_canonical(kind: u8, depth: u8, flags: u8, id: u32) -> bool {
    let known = encap::name(kind).is_some() && flags & !encap::flag::ID == 0;
    let id_ok = flags & encap::flag::ID != 0 || id == 0;
    let depth_ok = if kind == encap::NONE {
        depth == 0 && flags == 0
    } else {
        depth >= 1 && usize::from(depth) <= MAX_ENCAPS
    };
    known && id_ok && depth_ok
}

/// Identifies a TCP flow regardless of direction.
///
/// The two endpoints are stored in a canonical order (endpoint `a` is the smaller one, see
/// [`FlowKey::new`]) so both directions of a connection update the same entry. The virtual
/// network of the outermost encapsulation is part of the key, where it names one
/// ([`encap::keys_flows`]: a VXLAN, VXLAN-GPE or Geneve VNI), so inner flows of different
/// segments reusing the same private addresses stay apart; other encapsulations leave the
/// `encap_*` fields zero.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 16 | `addr_a` |
/// | 16 | 16 | `addr_b` |
/// | 32 | 2 | `port_a` |
/// | 34 | 2 | `port_b` |
/// | 36 | 1 | `ip_version` |
/// | 37 | 1 | `encap_kind` |
/// | 38 | 1 | `encap_flags` |
/// | 39 | 1 | `_pad0` |
/// | 40 | 4 | `encap_id` |
/// | 44 | 4 | `_pad1` |
///
/// `Hash` is written out rather than derived: it feeds the key's six 8-byte words to the
/// hasher, where the derived one hashed each address as a byte slice (a length and a
/// variable-length byte hash each), which made hashing the largest part of a flow-table
/// update in replay (BENCHMARKS.md). It hashes every byte `Eq` compares, so equal keys hash
/// equally.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    /// Address of endpoint a, network byte order (IPv4 in bytes 0..4, rest zero).
    pub addr_a: [u8; 16],
    /// Address of endpoint b, network byte order (IPv4 in bytes 0..4, rest zero).
    pub addr_b: [u8; 16],
    /// TCP port of endpoint a, host order.
    pub port_a: u16,
    /// TCP port of endpoint b, host order.
    pub port_b: u16,
    /// 4 or 6.
    pub ip_version: u8,
    /// [`SynRecord::encap_kind`] of the flow's packets when [`encap::keys_flows`], else 0.
    pub encap_kind: u8,
    /// [`SynRecord::encap_flags`] of the flow's packets when [`encap::keys_flows`], else 0.
    pub encap_flags: u8,
    /// Always zero.
    pub _pad0: u8,
    /// [`SynRecord::encap_id`] of the flow's packets (the VNI) when [`encap::keys_flows`],
    /// else 0.
    pub encap_id: u32,
    /// Always zero.
    pub _pad1: [u8; 4],
}

/// Which way a packet went relative to a [`FlowKey`]'s endpoints.
pub mod flow_dir {
    /// From endpoint a to endpoint b.
    pub const A_TO_B: u8 = 0;
    /// From endpoint b to endpoint a.
    pub const B_TO_A: u8 = 1;
}

impl FlowKey {
    /// Size in bytes (pinned by a test).
    pub const SIZE: usize = 48;

    /// The all-zero key (no flow has it: a flow's IP version is 4 or 6).
    pub const ZERO: FlowKey = FlowKey {
        addr_a: [0; 16],
        addr_b: [0; 16],
        port_a: 0,
        port_b: 0,
        ip_version: 0,
        encap_kind: 0,
        encap_flags: 0,
        _pad0: 0,
        encap_id: 0,
        _pad1: [0; 4],
    };

    /// The key for a packet from `src:sport` to `dst:dport` outside any encapsulation, and
    /// the packet's direction ([`flow_dir`]). Endpoint a is the smaller of the two by address
    /// bytes, then port. See [`FlowKey::new_in`] for packets inside one.
    #[inline(always)]
    pub fn new(
        ip_version: u8,
        src: [u8; 16],
        sport: u16,
        dst: [u8; 16],
        dport: u16,
    ) -> (FlowKey, u8) {
        FlowKey::new_in(ip_version, src, sport, dst, dport, &Encap::NONE)
    }

    /// The key for a packet from `src:sport` to `dst:dport` found inside `encap`, and its
    /// direction: [`FlowKey::new`]'s, with the encapsulation where it [`encap::keys_flows`].
    ///
    /// A thin wrapper over [`FlowKey::words`], where the order and the keying are decided.
    #[inline(always)]
    pub fn new_in(
        ip_version: u8,
        src: [u8; 16],
        sport: u16,
        dst: [u8; 16],
        dport: u16,
        encap: &Encap,
    ) -> (FlowKey, u8) {
        let (w, dir) = FlowKey::words(
            ip_version,
            addr_words(src),
            sport,
            addr_words(dst),
            dport,
            encap,
        );
        (FlowKey::from_words(w), dir)
    }

    /// The encapsulation this key holds (depth 0: keys do not carry it).
    pub fn encap(&self) -> Encap {
        Encap {
            id: self.encap_id,
            kind: self.encap_kind,
            depth: 0,
            flags: self.encap_flags,
            _pad: 0,
        }
    }

    /// The canonicalisation itself, on addresses given as two 8-byte words each in memory
    /// order (`u64::from_ne_bytes` of bytes 0..8 and 8..16): the key's six words in memory
    /// order, and the packet's [`flow_dir`]. `encap`'s kind, flags and id go into the key
    /// when the kind [`encap::keys_flows`] (its depth never does).
    ///
    /// Words, not byte arrays, because this is what the kernel can afford: it reads the
    /// addresses straight out of an 8-aligned [`SynRecord`] as words and writes the key a word
    /// at a time, where byte arrays taken by value scalarise into dozens of spilled registers
    /// and overflow the BPF stack. Every key in synscope, kernel or userspace, is made here.
    #[inline(always)]
    pub fn words(
        ip_version: u8,
        src: [u64; 2],
        sport: u16,
        dst: [u64; 2],
        dport: u16,
        encap: &Encap,
    ) -> ([u64; 6], u8) {
        // Big-endian values order the addresses as their bytes compare.
        let (s_hi, s_lo) = (u64::from_be(src[0]), u64::from_be(src[1]));
        let (d_hi, d_lo) = (u64::from_be(dst[0]), u64::from_be(dst[1]));
        let src_first = if s_hi != d_hi {
            s_hi < d_hi
        } else if s_lo != d_lo {
            s_lo < d_lo
        } else {
            sport <= dport
        };
        let (a, b, port_a, port_b, dir) = if src_first {
            (src, dst, sport, dport, flow_dir::A_TO_B)
        } else {
            (dst, src, dport, sport, flow_dir::B_TO_A)
        };
        // Word 4: port_a, port_b, ip_version, encap_kind, encap_flags, a zero byte (offsets
        // 32..40); word 5: encap_id and four zero bytes (40..48).
        let mut tail = [0u8; 8];
        let (pa, pb) = (port_a.to_ne_bytes(), port_b.to_ne_bytes());
        tail[0] = pa[0];
        tail[1] = pa[1];
        tail[2] = pb[0];
        tail[3] = pb[1];
        tail[4] = ip_version;
        let keyed = encap::keys_flows(encap.kind);
        tail[5] = if keyed { encap.kind } else { 0 };
        tail[6] = if keyed { encap.flags } else { 0 };
        let [i0, i1, i2, i3] = if keyed { encap.id } else { 0 }.to_ne_bytes();
        let id = u64::from_ne_bytes([i0, i1, i2, i3, 0, 0, 0, 0]);
        ([a[0], a[1], b[0], b[1], u64::from_ne_bytes(tail), id], dir)
    }

    /// The key whose memory is the six words `w` (see [`FlowKey::words`]).
    #[inline(always)]
    fn to_words(self) -> [u64; 6] {
        let [a0, a1] = addr_words(self.addr_a);
        let [b0, b1] = addr_words(self.addr_b);
        let [p0, p1] = self.port_a.to_ne_bytes();
        let [p2, p3] = self.port_b.to_ne_bytes();
        let tail = u64::from_ne_bytes([
            p0,
            p1,
            p2,
            p3,
            self.ip_version,
            self.encap_kind,
            self.encap_flags,
            self._pad0,
        ]);
        let [i0, i1, i2, i3] = self.encap_id.to_ne_bytes();
        let [z0, z1, z2, z3] = self._pad1;
        let id = u64::from_ne_bytes([i0, i1, i2, i3, z0, z1, z2, z3]);
        [a0, a1, b0, b1, tail, id]
    }

    fn from_words(w: [u64; 6]) -> FlowKey {
        let [a0, a1, b0, b1, tail, id] = w;
        let t = tail.to_ne_bytes();
        let i = id.to_ne_bytes();
        FlowKey {
            addr_a: join_words(a0, a1),
            addr_b: join_words(b0, b1),
            port_a: u16::from_ne_bytes([t[0], t[1]]),
            port_b: u16::from_ne_bytes([t[2], t[3]]),
            ip_version: t[4],
            encap_kind: t[5],
            encap_flags: t[6],
            _pad0: 0,
            encap_id: u32::from_ne_bytes([i[0], i[1], i[2], i[3]]),
            _pad1: [0; 4],
        }
    }
}

impl core::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        for w in self.to_words() {
            state.write_u64(w);
        }
    }
}

/// A packet's outermost encapsulation and how deep it was found: the four encapsulation
/// fields of a [`SynRecord`] together, as the parser carries them from step to step and the
/// flow key takes them (8 bytes, `#[repr(C)]`: it travels between the kernel's programs).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Encap {
    /// [`SynRecord::encap_id`].
    pub id: u32,
    /// [`SynRecord::encap_kind`].
    pub kind: u8,
    /// [`SynRecord::encaps`]: how many encapsulations deep.
    pub depth: u8,
    /// [`SynRecord::encap_flags`].
    pub flags: u8,
    /// Always zero.
    pub _pad: u8,
}

impl Encap {
    /// Outside any encapsulation.
    pub const NONE: Encap = Encap {
        id: 0,
        kind: encap::NONE,
        depth: 0,
        flags: 0,
        _pad: 0,
    };

    /// A record's encapsulation fields.
    #[inline(always)]
    pub fn of(rec: &SynRecord) -> Encap {
        Encap {
            id: rec.encap_id,
            kind: rec.encap_kind,
            depth: rec.encaps,
            flags: rec.encap_flags,
            _pad: 0,
        }
    }

    /// Writes these fields into a record.
    #[inline(always)]
    pub fn write(&self, rec: &mut SynRecord) {
        rec.encap_id = self.id;
        rec.encap_kind = self.kind;
        rec.encaps = self.depth;
        rec.encap_flags = self.flags;
    }

    /// The identifier, when there is one.
    pub fn id(&self) -> Option<u32> {
        (self.flags & encap::flag::ID != 0).then_some(self.id)
    }
}

/// An address as two words in memory order (`u64::from_ne_bytes` of bytes 0..8 and 8..16):
/// how [`FlowKey::words`] takes addresses, and how a reader compares two addresses in two
/// word compares.
#[inline(always)]
pub fn addr_words(a: [u8; 16]) -> [u64; 2] {
    let [
        a0,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        a7,
        a8,
        a9,
        a10,
        a11,
        a12,
        a13,
        a14,
        a15,
    ] = a;
    [
        u64::from_ne_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_ne_bytes([a8, a9, a10, a11, a12, a13, a14, a15]),
    ]
}

/// The inverse of [`addr_words`].
#[inline(always)]
fn join_words(hi: u64, lo: u64) -> [u8; 16] {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = hi.to_ne_bytes();
    let [a8, a9, a10, a11, a12, a13, a14, a15] = lo.to_ne_bytes();
    [
        a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15,
    ]
}

/// Counters for one direction of a flow.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | `packets` |
/// | 8 | 8 | `bytes` |
/// | 16 | 8 | `first_seen_ns` |
/// | 24 | 8 | `last_seen_ns` |
/// | 32 | 2 | `tcp_flags` |
/// | 34 | 6 | `_pad0` |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowDirCounters {
    /// TCP packets seen in this direction.
    pub packets: u64,
    /// Layer-3 bytes (IP header plus payload, from the IP length fields) in this direction.
    pub bytes: u64,
    /// First packet time, ns, same clock as [`SynRecord::ts_ns`]; 0 when `packets == 0`.
    pub first_seen_ns: u64,
    /// Last packet time, ns, same clock as [`SynRecord::ts_ns`]; 0 when `packets == 0`.
    pub last_seen_ns: u64,
    /// OR of the [`tcp_flag`] bits of every packet in this direction.
    pub tcp_flags: u16,
    /// Always zero.
    pub _pad0: [u8; 6],
}

impl FlowDirCounters {
    /// Adds one packet.
    #[inline(always)]
    pub fn add(&mut self, ts_ns: u64, bytes: u64, tcp_flags: u16) {
        if self.packets == 0 || ts_ns < self.first_seen_ns {
            self.first_seen_ns = ts_ns;
        }
        if ts_ns > self.last_seen_ns {
            self.last_seen_ns = ts_ns;
        }
        self.packets += 1;
        self.bytes += bytes;
        self.tcp_flags |= tcp_flags;
    }

    /// Adds another period's counters of the same direction (e.g. one flow-file interval row),
    /// so per-interval rows sum to whole-flow counters. A period without packets adds nothing.
    #[inline(always)]
    pub fn merge(&mut self, other: &FlowDirCounters) {
        if other.packets == 0 {
            return;
        }
        if self.packets == 0 || other.first_seen_ns < self.first_seen_ns {
            self.first_seen_ns = other.first_seen_ns;
        }
        if other.last_seen_ns > self.last_seen_ns {
            self.last_seen_ns = other.last_seen_ns;
        }
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.tcp_flags |= other.tcp_flags;
    }
}

/// Counters for both directions of a flow, the value of the flow table.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 40 | `a_to_b` |
/// | 40 | 40 | `b_to_a` |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowCounters {
    /// Packets from endpoint a to endpoint b.
    pub a_to_b: FlowDirCounters,
    /// Packets from endpoint b to endpoint a.
    pub b_to_a: FlowDirCounters,
}

impl FlowCounters {
    /// Size in bytes (pinned by a test).
    pub const SIZE: usize = 80;

    /// The counters for a [`flow_dir`] value.
    #[inline(always)]
    pub fn dir_mut(&mut self, dir: u8) -> &mut FlowDirCounters {
        if dir == flow_dir::A_TO_B {
            &mut self.a_to_b
        } else {
            &mut self.b_to_a
        }
    }

    /// Adds another table's counters of the same flow (both directions; see
    /// [`FlowDirCounters::merge`]), e.g. from another thread's table or another interval.
    #[inline(always)]
    pub fn merge(&mut self, other: &FlowCounters) {
        self.a_to_b.merge(&other.a_to_b);
        self.b_to_a.merge(&other.b_to_a);
    }
}

/// Indexes of the per-CPU counter array ([`names::MAP_COUNTERS`]).
///
/// Kept as plain constants (not an enum) because the same numbers index a kernel map.
pub mod counter {
    /// SYN/SYN+ACK records written to the ring buffer.
    pub const SYN_RECORDS: u32 = 0;
    /// `bpf_ringbuf_reserve` failed: a SYN record was lost.
    pub const RINGBUF_FULL: u32 = 1;
    /// A flow-table insert failed: a packet was not counted in its flow.
    pub const FLOW_INSERT_FAILED: u32 = 2;
    /// A SYN whose headers could not be read (truncated or odd): not recorded.
    pub const SYN_UNPARSED: u32 = 3;
    /// TCP packets seen by the hook (SYN or not).
    pub const TCP_PACKETS: u32 = 4;
    /// SYN/SYN+ACK packets seen by the hook (recorded, dropped, sampled out or unparsed).
    pub const SYN_SEEN: u32 = 5;
    /// SYNs the flood guard left out (`--max-syn-rate`): this CPU had already kept its
    /// limit of records in the current second. Counted, never recorded.
    pub const SYN_SAMPLED_OUT: u32 = 6;
    /// Encapsulated packets whose parse could not go on into the decapsulation program (its
    /// tail call failed): neither recorded nor counted in the flow table.
    pub const DECAP_LOST: u32 = 7;
    /// Number of counters (size of the array).
    pub const COUNT: u32 = 8;
}

/// The per-CPU value of [`names::MAP_COUNTERS`] (one entry): everything a packet updates
/// besides the flow table and the ring, so each packet pays for one map lookup.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 x [`counter::COUNT`] | `counts` |
/// | 64 | 8 | `guard_window_ns` |
/// | 72 | 8 | `guard_window_kept` |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CpuCounters {
    /// Event counts since load, indexed by [`counter`] (native byte order).
    pub counts: [u64; counter::COUNT as usize],
    /// Flood guard: start of this CPU's current one-second window (ns, `CLOCK_MONOTONIC`,
    /// native byte order); 0 before the first SYN.
    pub guard_window_ns: u64,
    /// Flood guard: SYN records this CPU kept in the current window.
    pub guard_window_kept: u64,
}

impl CpuCounters {
    /// Size in bytes (pinned by a test).
    pub const SIZE: usize = 80;
    /// Length of a flood guard window, ns.
    pub const GUARD_WINDOW_NS: u64 = 1_000_000_000;
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, offset_of, size_of};

    #[test]
    fn syn_record_layout_is_pinned() {
        assert_eq!(size_of::<SynRecord>(), SynRecord::SIZE);
        assert_eq!(align_of::<SynRecord>(), 8);
        let expect = [
            (offset_of!(SynRecord, ts_ns), 0),
            (offset_of!(SynRecord, ifindex), 8),
            (offset_of!(SynRecord, flow_label), 12),
            (offset_of!(SynRecord, src_addr), 16),
            (offset_of!(SynRecord, dst_addr), 32),
            (offset_of!(SynRecord, src_port), 48),
            (offset_of!(SynRecord, dst_port), 50),
            (offset_of!(SynRecord, ip_len), 52),
            (offset_of!(SynRecord, ip_id), 54),
            (offset_of!(SynRecord, ip_frag), 56),
            (offset_of!(SynRecord, ip_hdr_len), 58),
            (offset_of!(SynRecord, tcp_flags), 60),
            (offset_of!(SynRecord, window), 62),
            (offset_of!(SynRecord, seq), 64),
            (offset_of!(SynRecord, ack), 68),
            (offset_of!(SynRecord, urg_ptr), 72),
            (offset_of!(SynRecord, payload_len), 74),
            (offset_of!(SynRecord, ip_version), 76),
            (offset_of!(SynRecord, ttl), 77),
            (offset_of!(SynRecord, tos), 78),
            (offset_of!(SynRecord, direction), 79),
            (offset_of!(SynRecord, source), 80),
            (offset_of!(SynRecord, tcp_hdr_len), 81),
            (offset_of!(SynRecord, tcp_opts_len), 82),
            (offset_of!(SynRecord, record_flags), 83),
            (offset_of!(SynRecord, tcp_opts), 84),
            (offset_of!(SynRecord, encap_id), 124),
            (offset_of!(SynRecord, encap_kind), 128),
            (offset_of!(SynRecord, encaps), 129),
            (offset_of!(SynRecord, encap_flags), 130),
            (offset_of!(SynRecord, _pad0), 131),
        ];
        for (i, (got, want)) in expect.iter().enumerate() {
            assert_eq!(got, want, "field #{i}");
        }
    }

    #[test]
    fn flow_layouts_are_pinned() {
        assert_eq!(size_of::<FlowKey>(), FlowKey::SIZE);
        assert_eq!(offset_of!(FlowKey, addr_b), 16);
        assert_eq!(offset_of!(FlowKey, port_a), 32);
        assert_eq!(offset_of!(FlowKey, port_b), 34);
        assert_eq!(offset_of!(FlowKey, ip_version), 36);
        assert_eq!(offset_of!(FlowKey, encap_kind), 37);
        assert_eq!(offset_of!(FlowKey, encap_flags), 38);
        assert_eq!(offset_of!(FlowKey, _pad0), 39);
        assert_eq!(offset_of!(FlowKey, encap_id), 40);
        assert_eq!(offset_of!(FlowKey, _pad1), 44);
        assert_eq!(size_of::<Encap>(), 8);
        assert_eq!(size_of::<FlowDirCounters>(), 40);
        assert_eq!(offset_of!(FlowDirCounters, tcp_flags), 32);
        assert_eq!(size_of::<FlowCounters>(), FlowCounters::SIZE);
        assert_eq!(offset_of!(FlowCounters, b_to_a), 40);
        assert_eq!(size_of::<CpuCounters>(), CpuCounters::SIZE);
        assert_eq!(offset_of!(CpuCounters, guard_window_ns), 64);
    }

    #[test]
    fn flow_key_matches_the_syn_records() {
        let mut syn = SynRecord::ZERO;
        syn.ip_version = 4;
        syn.src_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        syn.dst_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        syn.src_port = 40000;
        syn.dst_port = 80;
        syn.encap_kind = encap::VXLAN;
        syn.encaps = 1;
        syn.encap_id = 42;
        syn.encap_flags = encap::flag::ID;
        let mut p = PayloadRecord::ZERO;
        p.ip_version = 4;
        // The server's answer: the same flow, the other way.
        p.src_addr = syn.dst_addr;
        p.dst_addr = syn.src_addr;
        p.src_port = 80;
        p.dst_port = 40000;
        p.encap_kind = syn.encap_kind;
        p.encaps = syn.encaps;
        p.encap_id = syn.encap_id;
        p.encap_flags = syn.encap_flags;
        let (ks, ds) = syn.flow_key();
        let (kp, dp) = p.flow_key();
        assert_eq!(ks, kp);
        assert_ne!(ds, dp);
    }

    /// A hasher that keeps what it is fed, to see what [`FlowKey`]'s `Hash` hashes.
    #[derive(Default)]
    struct Fed {
        words: [u64; 8],
        n: usize,
        bytes: usize,
    }

    impl core::hash::Hasher for Fed {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.bytes += bytes.len();
        }
        fn write_u64(&mut self, w: u64) {
            self.words[self.n] = w;
            self.n += 1;
        }
    }

    /// `Hash` feeds the key's 48 bytes, in memory order, as six words and nothing else; so
    /// it hashes exactly what `Eq` compares. Each field, changed alone, changes the words.
    #[test]
    fn flow_key_hashes_its_six_words() {
        use core::hash::Hash;
        let encap = Encap {
            id: 0x0102_0304,
            kind: encap::VXLAN,
            depth: 1,
            flags: 0x05,
            _pad: 0,
        };
        let a = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
        let b = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let (k, _) = FlowKey::new_in(6, a, 443, b, 55000, &encap);
        let fed = |k: &FlowKey| {
            let mut h = Fed::default();
            k.hash(&mut h);
            assert_eq!((h.n, h.bytes), (6, 0));
            let mut w = [0u64; 6];
            w.copy_from_slice(&h.words[..6]);
            w
        };
        let words = fed(&k);
        assert_eq!(FlowKey::from_words(words), k);
        #[cfg(feature = "user")]
        {
            let bytes = bytemuck::bytes_of(&k);
            for (i, w) in words.iter().enumerate() {
                assert_eq!(w.to_ne_bytes(), bytes[i * 8..i * 8 + 8], "word {i}");
            }
        }
        let changes: [fn(&mut FlowKey); 10] = [
            |k| k.addr_a[0] ^= 1,
            |k| k.addr_a[15] ^= 1,
            |k| k.addr_b[8] ^= 1,
            |k| k.port_a ^= 0x100,
            |k| k.port_b ^= 1,
            |k| k.ip_version = 4,
            |k| k.encap_kind ^= 1,
            |k| k.encap_flags ^= 1,
            |k| k.encap_id ^= 1 << 31,
            |k| k._pad1[3] ^= 1,
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut other = k;
            change(&mut other);
            assert_ne!(fed(&other), words, "change {i}");
        }
    }

    #[test]
    fn flow_key_is_symmetric() {
        let a = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let b = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let (k1, d1) = FlowKey::new(4, a, 5000, b, 80);
        let (k2, d2) = FlowKey::new(4, b, 80, a, 5000);
        assert_eq!(k1, k2);
        assert_eq!(d1, flow_dir::A_TO_B);
        assert_eq!(d2, flow_dir::B_TO_A);
        assert_eq!(k1.addr_a, a);
        // Same address: the port decides.
        let (k3, d3) = FlowKey::new(4, a, 9, a, 8);
        assert_eq!((k3.port_a, k3.port_b, d3), (8, 9, flow_dir::B_TO_A));
    }

    /// The order [`FlowKey::words`] decides with words is the order of the address bytes,
    /// then the port: checked against that definition on addresses that are equal or differ
    /// in one byte (first, last, and either side of the 8-byte halves) and ports that tie.
    #[test]
    fn flow_key_orders_by_address_bytes_then_port() {
        let mut addrs = [[0u8; 16]; 17];
        addrs[1] = [0xff; 16];
        let mut n = 2;
        for at in [0, 3, 7, 8, 15] {
            for v in [1, 0x80, 0xff] {
                addrs[n][at] = v;
                n += 1;
            }
        }
        for version in [4, 6] {
            for src in &addrs {
                for dst in &addrs {
                    for sport in [0u16, 1, 443, 0x8000, 0xffff] {
                        for dport in [0u16, 1, 443, 0x8000, 0xffff] {
                            let (key, dir) = FlowKey::new(version, *src, sport, *dst, dport);
                            let src_first = (src, sport) <= (dst, dport);
                            let (a, pa, b, pb) = if src_first {
                                (src, sport, dst, dport)
                            } else {
                                (dst, dport, src, sport)
                            };
                            assert_eq!(
                                dir,
                                if src_first {
                                    flow_dir::A_TO_B
                                } else {
                                    flow_dir::B_TO_A
                                }
                            );
                            assert_eq!(
                                (key.addr_a, key.port_a, key.addr_b, key.port_b),
                                (*a, pa, *b, pb)
                            );
                            assert_eq!((key.ip_version, key._pad0), (version, 0));
                            assert_eq!((key.encap_kind, key.encap_id), (0, 0));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn dir_counters_accumulate() {
        let mut c = FlowCounters::default();
        c.dir_mut(flow_dir::B_TO_A).add(50, 60, tcp_flag::SYN);
        c.dir_mut(flow_dir::B_TO_A).add(40, 52, tcp_flag::ACK);
        c.dir_mut(flow_dir::B_TO_A)
            .add(70, 1500, tcp_flag::PSH | tcp_flag::ACK);
        let d = c.b_to_a;
        assert_eq!((d.packets, d.bytes), (3, 1612));
        assert_eq!((d.first_seen_ns, d.last_seen_ns), (40, 70));
        assert_eq!(d.tcp_flags, tcp_flag::SYN | tcp_flag::ACK | tcp_flag::PSH);
        assert_eq!(c.a_to_b, FlowDirCounters::default());

        // Two periods merged equal the same packets added to one counter.
        let mut first = FlowDirCounters::default();
        first.add(50, 60, tcp_flag::SYN);
        let mut second = FlowDirCounters::default();
        second.add(40, 52, tcp_flag::ACK);
        second.add(70, 1500, tcp_flag::PSH | tcp_flag::ACK);
        let mut merged = FlowDirCounters::default();
        merged.merge(&second);
        merged.merge(&FlowDirCounters::default());
        merged.merge(&first);
        assert_eq!(merged, d);

        // Whole flows merge direction by direction.
        let mut other = FlowCounters::default();
        other.dir_mut(flow_dir::A_TO_B).add(10, 40, tcp_flag::ACK);
        let mut both = c;
        both.merge(&other);
        assert_eq!((both.a_to_b, both.b_to_a), (other.a_to_b, c.b_to_a));
        both.merge(&FlowCounters::default());
        assert_eq!((both.a_to_b, both.b_to_a), (other.a_to_b, c.b_to_a));
    }

    #[test]
    fn ipv4_text_has_no_leading_zeros_and_no_trailing_dot() {
        let cases: [([u8; 4], &[u8]); 4] = [
            ([0, 0, 0, 0], b"0.0.0.0"),
            ([255, 255, 255, 255], b"255.255.255.255"),
            ([9, 10, 99, 100], b"9.10.99.100"),
            ([198, 51, 100, 7], b"198.51.100.7"),
        ];
        for (octets, want) in cases {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&octets);
            let (text, len) = ipv4_text(&a);
            assert_eq!(&text[..len], want);
        }
    }

    #[test]
    fn flag_letters() {
        let mut buf = [0u8; 9];
        let n = tcp_flag::letters(tcp_flag::SYN | tcp_flag::ACK, &mut buf);
        assert_eq!(&buf[..n], b"SA");
        let n = tcp_flag::letters(
            tcp_flag::SYN | tcp_flag::ECE | tcp_flag::CWR | tcp_flag::NS,
            &mut buf,
        );
        assert_eq!(&buf[..n], b"SECN");
        assert_eq!(tcp_flag::letters(0, &mut buf), 0);
    }

    #[test]
    fn canonical_rules() {
        let mut r = SynRecord::ZERO;
        assert!(!r.is_canonical(), "ip_version 0 is not a record");
        r.ip_version = 4;
        assert!(r.is_canonical());
        r.src_addr[5] = 1;
        assert!(!r.is_canonical());
        r.src_addr[5] = 0;
        r.tcp_opts_len = 4;
        r.tcp_opts[3] = 9;
        assert!(r.is_canonical());
        r.tcp_opts[4] = 9;
        assert!(!r.is_canonical());
    }

    #[test]
    fn enum_names_round_trip() {
        for v in 0..=255u8 {
            if let Some(n) = direction::name(v) {
                assert_eq!(direction::from_name(n), Some(v));
            }
            if let Some(n) = source::name(v) {
                assert_eq!(source::from_name(n), Some(v));
            }
            if let Some(n) = encap::name(v) {
                assert_eq!(encap::from_name(n), Some(v));
            }
        }
        assert_eq!(encap::name(encap::TEREDO), Some("teredo"));
        assert_eq!(encap::name(encap::TEREDO + 1), None);
    }

    #[test]
    fn encap_fields_are_canonical_only_when_consistent() {
        let mut r = SynRecord::ZERO;
        r.ip_version = 4;
        let set = |r: &mut SynRecord, kind, depth, flags, id| {
            r.encap_kind = kind;
            r.encaps = depth;
            r.encap_flags = flags;
            r.encap_id = id;
        };
        let mut cases = [
            (encap::NONE, 0, 0, 0, true),
            (encap::VXLAN, 1, encap::flag::ID, 4242, true),
            (encap::VXLAN, 1, encap::flag::ID, 0, true),
            (encap::IP_IN_IP, MAX_ENCAPS as u8, 0, 0, true),
            // An id without its flag, a depth without a kind, a kind without a depth, too
            // deep, an unknown flag, an unknown kind.
            (encap::GRE, 1, 0, 77, false),
            (encap::NONE, 1, 0, 0, false),
            (encap::GRE, 0, 0, 0, false),
            (encap::GRE, MAX_ENCAPS as u8 + 1, 0, 0, false),
            (encap::GRE, 1, 0x80, 0, false),
            (16, 1, 0, 0, false),
        ];
        for (kind, depth, flags, id, ok) in &mut cases {
            set(&mut r, *kind, *depth, *flags, *id);
            assert_eq!(r.is_canonical(), *ok, "{kind} {depth} {flags} {id}");
        }
    }

    #[test]
    fn flow_key_keeps_tunnels_apart() {
        let a = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let b = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut r = SynRecord::ZERO;
        r.ip_version = 4;
        (r.src_addr, r.src_port, r.dst_addr, r.dst_port) = (b, 80, a, 5000);
        let (plain, dir) = r.flow_key();
        assert_eq!((plain, dir), FlowKey::new(4, b, 80, a, 5000));
        Encap {
            id: 4242,
            kind: encap::VXLAN,
            depth: 1,
            flags: encap::flag::ID,
            _pad: 0,
        }
        .write(&mut r);
        let (vni_4242, dir2) = r.flow_key();
        assert_eq!(dir2, dir);
        assert_ne!(vni_4242, plain);
        assert_eq!(
            (vni_4242.encap_kind, vni_4242.encap_flags, vni_4242.encap_id),
            (encap::VXLAN, encap::flag::ID, 4242)
        );
        assert_eq!(vni_4242.encap().id(), Some(4242));
        r.encap_id = 4243;
        assert_ne!(r.flow_key().0, vni_4242);
        assert_eq!(Encap::of(&r).id(), Some(4243));
        // Identifiers that may differ by direction stay out of the key: a GTP-U SYN and its
        // SYN+ACK (other TEID) share their flow.
        r.encap_kind = encap::GTP_U;
        assert_eq!(r.flow_key(), (plain, dir));
        let gre = Encap {
            id: 77,
            kind: encap::GRE,
            depth: 1,
            flags: encap::flag::ID,
            _pad: 0,
        };
        assert_eq!(FlowKey::new_in(4, b, 80, a, 5000, &gre), (plain, dir));
    }

    /// The `user` feature's byte views see the layout the table above pins: the bytes of a
    /// record are its fields at their offsets, and reading them back gives the same record.
    #[cfg(feature = "user")]
    #[test]
    fn byte_views_follow_the_layout() {
        let mut r = SynRecord::ZERO;
        r.ts_ns = 0x0102_0304_0506_0708;
        r.src_port = 0xabcd;
        r.tcp_opts[0] = 2;
        let b = bytemuck::bytes_of(&r);
        assert_eq!(b.len(), SynRecord::SIZE);
        assert_eq!(b[0..8], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(b[48..50], 0xabcdu16.to_le_bytes());
        assert_eq!(b[84], 2);
        assert_eq!(bytemuck::pod_read_unaligned::<SynRecord>(b), r);
    }
}
