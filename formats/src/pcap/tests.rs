//! Packet-level tests: frames are built with etherparse's `PacketBuilder` from known field
//! values, and the expected records are written down from those same inputs (never from our
//! parser's output).

use etherparse::{
    IpDscp, IpEcn, IpFragOffset, IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv4Options,
    Ipv6Extensions, Ipv6FlowLabel, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader,
    Ipv6RoutingExtensions, PacketBuilder, VlanId,
};
use packet::Skip;
use record::{FlowKey, SynRecord, direction, flow_dir, record_flag, source, tcp_flag};

use super::{LinkType, Parsed, SkipReason, parse_packet};

const SRC4: [u8; 4] = [198, 51, 100, 7];
const DST4: [u8; 4] = [198, 51, 100, 200];
const SRC6: [u8; 16] = [0xfd, 0, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
const DST6: [u8; 16] = [0xfd, 0, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20];
const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// MSS 1460, SACK permitted, timestamps 1/0, NOP, window scale 7: a Linux-like SYN.
const LINUX_OPTS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
];
const TS: u64 = 1_700_000_000_123_456_789;

fn addr4(a: [u8; 4]) -> [u8; 16] {
    let mut x = [0u8; 16];
    x[..4].copy_from_slice(&a);
    x
}

/// IPv4 header with every field we copy set to something distinctive.
fn v4_header(tos_dscp: u8, tos_ecn: u8) -> Ipv4Header {
    let mut h = Ipv4Header::new(0, 57, IpNumber::TCP, SRC4, DST4).unwrap();
    h.identification = 0xbeef;
    h.dont_fragment = true;
    h.dscp = IpDscp::try_new(tos_dscp).unwrap();
    h.ecn = IpEcn::try_new(tos_ecn).unwrap();
    h
}

/// The record a plain IPv4 SYN built by [`v4_syn`] must give, written from its inputs.
fn expected_v4(opts: &[u8], payload: usize, ip_opts: usize) -> SynRecord {
    let mut r = SynRecord::ZERO;
    r.ts_ns = TS;
    r.ifindex = 0;
    r.src_addr = addr4(SRC4);
    r.dst_addr = addr4(DST4);
    r.src_port = 40000;
    r.dst_port = 443;
    r.ip_hdr_len = 20 + ip_opts as u16;
    r.ip_len = r.ip_hdr_len + 20 + opts.len() as u16 + payload as u16;
    r.ip_id = 0xbeef;
    r.ip_frag = record::ip_frag::DF;
    r.tcp_flags = tcp_flag::SYN;
    r.window = 64240;
    r.seq = 0x0102_0304;
    r.ack = 0;
    r.urg_ptr = 0;
    r.payload_len = payload as u16;
    r.ip_version = 4;
    r.ttl = 57;
    r.tos = (10 << 2) | 1;
    r.direction = direction::UNKNOWN;
    r.source = source::PCAP;
    r.tcp_hdr_len = 20 + opts.len() as u8;
    r.tcp_opts_len = opts.len() as u8;
    r.tcp_opts[..opts.len()].copy_from_slice(opts);
    r
}

/// An IPv4 SYN without link header.
fn v4_syn(opts: &[u8], payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ip(IpHeaders::Ipv4(v4_header(10, 1), Ipv4Extensions::default()))
        .tcp(40000, 443, 0x0102_0304, 64240)
        .syn()
        .options_raw(opts)
        .unwrap();
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn parse(link: LinkType, data: &[u8]) -> Result<Parsed, SkipReason> {
    parse_packet(link, TS, 0, data)
}

/// The record-or-reason for a SYN frame, whether the reason came before or after TCP.
fn rec(link: LinkType, data: &[u8]) -> Result<SynRecord, SkipReason> {
    parse(link, data)?.syn.expect("SYN set")
}

fn syn_of(link: LinkType, data: &[u8]) -> SynRecord {
    let p = parse(link, data).unwrap();
    let r = p.syn.expect("SYN set").expect("a record");
    assert!(r.is_canonical());
    r
}

#[test]
fn ethernet_ipv4_syn_all_fields() {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(IpHeaders::Ipv4(v4_header(10, 1), Ipv4Extensions::default()))
        .tcp(40000, 443, 0x0102_0304, 64240)
        .syn()
        .options_raw(&LINUX_OPTS)
        .unwrap();
    let mut frame = Vec::new();
    b.write(&mut frame, &[]).unwrap();
    let p = parse(LinkType::ETHERNET, &frame).unwrap();
    assert_eq!(p.syn, Some(Ok(expected_v4(&LINUX_OPTS, 0, 0))));
    assert_eq!(p.tcp_flags, tcp_flag::SYN);
    assert_eq!(p.l3_bytes, 20 + 20 + 20);
    let (key, dir) = FlowKey::new(4, addr4(SRC4), 40000, addr4(DST4), 443);
    assert_eq!((p.key, p.dir), (key, dir));
    assert_eq!(dir, flow_dir::A_TO_B);
}

#[test]
fn ethernet_padding_is_not_payload() {
    // A 54-byte SYN padded to the 60-byte Ethernet minimum.
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(IpHeaders::Ipv4(v4_header(10, 1), Ipv4Extensions::default()))
        .tcp(40000, 443, 0x0102_0304, 64240)
        .syn()
        .write(&mut frame, &[])
        .unwrap();
    frame.resize(60, 0);
    assert_eq!(syn_of(LinkType::ETHERNET, &frame), expected_v4(&[], 0, 0));
}

#[test]
fn ipv6_syn_ack_all_fields() {
    let mut h = Ipv6Header {
        traffic_class: 0xb8 | 2,
        flow_label: Ipv6FlowLabel::try_new(0x9_abcd).unwrap(),
        payload_length: 0,
        next_header: IpNumber::TCP,
        hop_limit: 61,
        source: SRC6,
        destination: DST6,
    };
    h.payload_length = 0; // set by the builder
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ip(IpHeaders::Ipv6(h, Ipv6Extensions::default()))
        .tcp(443, 40000, 77, 65535)
        .syn()
        .ack(0x0102_0305)
        .urg(0x1234)
        .options_raw(&[2, 4, 0x05, 0xa0])
        .unwrap();
    let mut frame = Vec::new();
    b.write(&mut frame, &[1, 2, 3]).unwrap();
    let r = syn_of(LinkType::ETHERNET, &frame);
    let mut want = SynRecord::ZERO;
    want.ts_ns = TS;
    want.flow_label = 0x9_abcd;
    want.src_addr = SRC6;
    want.dst_addr = DST6;
    want.src_port = 443;
    want.dst_port = 40000;
    want.ip_len = 24 + 3;
    want.ip_hdr_len = 40;
    want.tcp_flags = tcp_flag::SYN | tcp_flag::ACK | tcp_flag::URG;
    want.window = 65535;
    want.seq = 77;
    want.ack = 0x0102_0305;
    want.urg_ptr = 0x1234;
    want.payload_len = 3;
    want.ip_version = 6;
    want.ttl = 61;
    want.tos = 0xba;
    want.source = source::PCAP;
    want.tcp_hdr_len = 24;
    want.tcp_opts_len = 4;
    want.tcp_opts[..4].copy_from_slice(&[2, 4, 0x05, 0xa0]);
    assert_eq!(r, want);
    assert!(r.is_syn_ack());
}

/// Every link type must find the same IPv4 packet behind its header.
#[test]
fn link_types_reach_the_same_record() {
    let ip = v4_syn(&LINUX_OPTS, &[]);
    let want = expected_v4(&LINUX_OPTS, 0, 0);
    let mut ip6 = Vec::new();
    PacketBuilder::ipv6(SRC6, DST6, 64)
        .tcp(1, 2, 3, 4)
        .syn()
        .write(&mut ip6, &[])
        .unwrap();
    let with = |prefix: &[u8], body: &[u8]| [prefix, body].concat();
    let sll = |proto: [u8; 2]| {
        // packet type 0 (host), ARPHRD 772 (loopback: etherparse would refuse it), address
        // length 6, address, protocol.
        let mut h = vec![0, 0, 0x03, 0x04, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
        h.extend_from_slice(&proto);
        h
    };
    let sll2 = |proto: [u8; 2]| {
        let mut h = proto.to_vec();
        h.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        h
    };
    let mut ipoib = vec![0u8; 40];
    ipoib.extend_from_slice(&[0x08, 0x00, 0, 0]);
    let mut fddi = vec![0x50];
    fddi.extend_from_slice(&[0xaa; 12]);
    fddi.extend_from_slice(&[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00]);
    // NFLOG: header, a prefix TLV of 5 bytes (padded to 8), then the payload TLV.
    let mut nflog = vec![
        2, 0, 0, 0, 9, 0, 10, 0, b'a', b'b', b'c', b'd', b'e', 0, 0, 0,
    ];
    nflog.extend_from_slice(&((4 + ip.len()) as u16).to_le_bytes());
    nflog.extend_from_slice(&9u16.to_le_bytes());
    let cases: Vec<(&str, LinkType, Vec<u8>)> = vec![
        ("raw 101", LinkType::RAW, ip.clone()),
        ("raw 12", LinkType::DLT_RAW_12, ip.clone()),
        ("raw 14", LinkType::DLT_RAW_14, ip.clone()),
        ("ipv4 228", LinkType::IPV4, ip.clone()),
        ("null le", LinkType::NULL, with(&[2, 0, 0, 0], &ip)),
        ("null be", LinkType::NULL, with(&[0, 0, 0, 2], &ip)),
        ("loop", LinkType::LOOP, with(&[0, 0, 0, 2], &ip)),
        ("sll", LinkType::LINUX_SLL, with(&sll([8, 0]), &ip)),
        ("sll2", LinkType::LINUX_SLL2, with(&sll2([8, 0]), &ip)),
        ("ppp", LinkType::PPP, with(&[0, 0x21], &ip)),
        ("ppp compressed", LinkType::PPP, with(&[0x21], &ip)),
        (
            "ppp hdlc",
            LinkType::PPP_HDLC,
            with(&[0xff, 0x03, 0, 0x21], &ip),
        ),
        ("c_hdlc", LinkType::C_HDLC, with(&[0x0f, 0, 8, 0], &ip)),
        ("ipoib", LinkType::IPOIB, with(&ipoib, &ip)),
        ("fddi", LinkType::FDDI, with(&fddi, &ip)),
        ("nflog", LinkType::NFLOG, with(&nflog, &ip)),
        (
            "arcnet linux rfc1051",
            LinkType::ARCNET_LINUX,
            with(&[1, 2, 0, 0, 0xf0], &ip),
        ),
        (
            "arcnet linux rfc1201",
            LinkType::ARCNET_LINUX,
            with(&[1, 2, 0, 0, 0xd4, 0, 0, 9], &ip),
        ),
        (
            "arcnet linux exception",
            LinkType::ARCNET_LINUX,
            with(&[1, 2, 0, 0, 0xd4, 0xff, 0xff, 0xff, 0xd4, 0, 0, 9], &ip),
        ),
        (
            "arcnet bsd rfc1201",
            LinkType::ARCNET_BSD,
            with(&[1, 2, 0xd4, 0, 0, 9], &ip),
        ),
    ];
    for (name, link, frame) in cases {
        assert_eq!(rec(link, &frame), Ok(want), "{name}");
    }
    // IPv6 behind the links that say "IPv6" in their own way.
    let v6 = syn_of(LinkType::RAW, &ip6);
    assert_eq!((v6.ip_version, v6.src_addr, v6.dst_port), (6, SRC6, 2));
    let cases6: Vec<(&str, LinkType, Vec<u8>)> = vec![
        ("ipv6 229", LinkType::IPV6, ip6.clone()),
        ("null linux", LinkType::NULL, with(&[10, 0, 0, 0], &ip6)),
        ("null netbsd", LinkType::NULL, with(&[24, 0, 0, 0], &ip6)),
        ("null freebsd", LinkType::NULL, with(&[28, 0, 0, 0], &ip6)),
        ("null darwin", LinkType::NULL, with(&[30, 0, 0, 0], &ip6)),
        ("null darwin be", LinkType::NULL, with(&[0, 0, 0, 30], &ip6)),
        ("loop", LinkType::LOOP, with(&[0, 0, 0, 24], &ip6)),
        ("sll", LinkType::LINUX_SLL, with(&sll([0x86, 0xdd]), &ip6)),
        (
            "sll2",
            LinkType::LINUX_SLL2,
            with(&sll2([0x86, 0xdd]), &ip6),
        ),
        ("ppp", LinkType::PPP, with(&[0xff, 0x03, 0, 0x57], &ip6)),
        (
            "arcnet",
            LinkType::ARCNET_LINUX,
            with(&[1, 2, 0, 0, 0xc4, 0, 0, 1], &ip6),
        ),
    ];
    for (name, link, frame) in cases6 {
        assert_eq!(rec(link, &frame), Ok(v6), "{name}");
    }
    // Wrong family / protocol / truncated link headers.
    assert_eq!(
        parse(LinkType::NULL, &with(&[7, 0, 0, 0], &ip)),
        Err(SkipReason::Packet(Skip::NotIp))
    );
    assert_eq!(
        parse(LinkType::NULL, &[2, 0]),
        Err(SkipReason::Packet(Skip::TruncatedLinkHeader))
    );
    assert_eq!(
        parse(LinkType::LINUX_SLL, &with(&sll([8, 6]), &ip)),
        Err(SkipReason::Packet(Skip::NotIp))
    );
    assert_eq!(
        parse(LinkType::LINUX_SLL2, &[8, 0, 0]),
        Err(SkipReason::Packet(Skip::TruncatedLinkHeader))
    );
    assert_eq!(
        parse(LinkType::PPP, &with(&[0xc0, 0x21], &ip)),
        Err(SkipReason::Packet(Skip::NotIp))
    );
    assert_eq!(
        parse(
            LinkType::ARCNET_LINUX,
            &with(&[1, 2, 0, 0, 0xd4, 3, 0, 9], &ip)
        ),
        Err(SkipReason::Packet(Skip::Fragment))
    );
    assert_eq!(
        parse(LinkType(6), &ip),
        Err(SkipReason::UnsupportedLinkType(LinkType(6)))
    );
    // Raw IP with a version nibble that is neither 4 nor 6.
    let mut bad = ip.clone();
    bad[0] = 0x55;
    assert_eq!(
        parse(LinkType::RAW, &bad),
        Err(SkipReason::Packet(Skip::BadIpHeader))
    );
    assert_eq!(
        parse(LinkType::RAW, &[]),
        Err(SkipReason::Packet(Skip::TruncatedIpHeader))
    );
    // Link says IPv6, packet is IPv4.
    assert_eq!(
        parse(LinkType::IPV6, &ip),
        Err(SkipReason::Packet(Skip::BadIpHeader))
    );
}

#[test]
fn vlan_and_qinq() {
    let want = expected_v4(&LINUX_OPTS, 0, 0);
    let ipv4 = || IpHeaders::Ipv4(v4_header(10, 1), Ipv4Extensions::default());
    let mut single = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(VlanId::try_new(100).unwrap())
        .ip(ipv4())
        .tcp(40000, 443, 0x0102_0304, 64240)
        .syn()
        .options_raw(&LINUX_OPTS)
        .unwrap()
        .write(&mut single, &[])
        .unwrap();
    assert_eq!(&single[12..14], &[0x81, 0x00]);
    assert_eq!(syn_of(LinkType::ETHERNET, &single), want);

    let mut double = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
        .ip(ipv4())
        .tcp(40000, 443, 0x0102_0304, 64240)
        .syn()
        .options_raw(&LINUX_OPTS)
        .unwrap()
        .write(&mut double, &[])
        .unwrap();
    assert_eq!(&double[12..14], &[0x88, 0xa8]);
    assert_eq!(syn_of(LinkType::ETHERNET, &double), want);
    // The old QinQ TPID 0x9100 works too.
    let mut old = double.clone();
    old[12..14].copy_from_slice(&[0x91, 0x00]);
    assert_eq!(syn_of(LinkType::ETHERNET, &old), want);

    // Tags up to the bound are read; one more is skipped.
    let mut deep = double.clone();
    for n in 2..=record::MAX_VLAN_TAGS {
        if n > 2 {
            deep.splice(16..16, [0x81, 0x00, 0, 30]);
        }
        assert_eq!(syn_of(LinkType::ETHERNET, &deep), want, "{n} tags");
    }
    deep.splice(16..16, [0x81, 0x00, 0, 31]);
    assert_eq!(
        parse(LinkType::ETHERNET, &deep),
        Err(SkipReason::Packet(Skip::VlanTooDeep))
    );
    // Cut inside the tag.
    assert_eq!(
        parse(LinkType::ETHERNET, &double[..16]),
        Err(SkipReason::Packet(Skip::TruncatedLinkHeader))
    );
    assert_eq!(
        parse(LinkType::ETHERNET, &double[..10]),
        Err(SkipReason::Packet(Skip::TruncatedLinkHeader))
    );
}

#[test]
fn ethernet_non_ip_is_skipped() {
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        parse(LinkType::ETHERNET, &arp),
        Err(SkipReason::Packet(Skip::NotIp))
    );
    // 802.3 length field instead of an EtherType.
    arp[12..14].copy_from_slice(&[0x00, 0x2e]);
    assert_eq!(
        parse(LinkType::ETHERNET, &arp),
        Err(SkipReason::Packet(Skip::NotIp))
    );
}

#[test]
fn ipv4_options_are_counted_in_ip_hdr_len() {
    let mut h = v4_header(10, 1);
    // Router alert (4 bytes) + NOP x3 + EOL: 8 bytes of options.
    h.options = Ipv4Options::from([148, 4, 0, 0, 1, 1, 1, 0]);
    let mut pkt = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv4(h, Ipv4Extensions::default()))
        .tcp(40000, 443, 0x0102_0304, 64240)
        .syn()
        .options_raw(&LINUX_OPTS)
        .unwrap()
        .write(&mut pkt, &[9; 5])
        .unwrap();
    assert_eq!(syn_of(LinkType::RAW, &pkt), expected_v4(&LINUX_OPTS, 5, 8));
}

#[test]
fn ipv4_fragments_are_skipped() {
    // Later fragments; a first fragment (MF, offset 0) holding the whole header is read.
    let fragment = |mf: bool, off: u16| {
        let mut h = v4_header(0, 0);
        h.more_fragments = mf;
        h.fragment_offset = IpFragOffset::try_new(off).unwrap();
        let mut pkt = Vec::new();
        PacketBuilder::ip(IpHeaders::Ipv4(h, Ipv4Extensions::default()))
            .tcp(1, 2, 3, 4)
            .syn()
            .write(&mut pkt, &[])
            .unwrap();
        pkt
    };
    for (mf, off) in [(false, 10u16), (true, 3)] {
        assert_eq!(
            parse(LinkType::RAW, &fragment(mf, off)),
            Err(SkipReason::Packet(Skip::Fragment)),
            "{mf} {off}"
        );
    }
    let pkt = fragment(true, 0);
    assert_ne!(syn_of(LinkType::RAW, &pkt).ip_frag & record::ip_frag::MF, 0);
}

/// An IPv6 SYN with the given extension headers, each an 8-byte raw header.
fn v6_with_exts(exts: Ipv6Extensions) -> Vec<u8> {
    let h = Ipv6Header {
        traffic_class: 0,
        flow_label: Ipv6FlowLabel::ZERO,
        payload_length: 0,
        next_header: IpNumber::TCP,
        hop_limit: 64,
        source: SRC6,
        destination: DST6,
    };
    let mut pkt = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv6(h, exts))
        .tcp(5, 6, 7, 8)
        .syn()
        .options_raw(&[2, 4, 5, 0xa0])
        .unwrap()
        .write(&mut pkt, &[0; 2])
        .unwrap();
    pkt
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let raw = || Ipv6RawExtHeader::new_raw(IpNumber::TCP, &[0; 6]).unwrap();
    let cases: Vec<(&str, Ipv6Extensions, u16)> = vec![
        (
            "hop-by-hop",
            Ipv6Extensions {
                hop_by_hop_options: Some(raw()),
                ..Default::default()
            },
            8,
        ),
        (
            "destination options",
            Ipv6Extensions {
                destination_options: Some(raw()),
                ..Default::default()
            },
            8,
        ),
        (
            "routing",
            Ipv6Extensions {
                routing: Some(Ipv6RoutingExtensions {
                    routing: Ipv6RawExtHeader::new_raw(IpNumber::TCP, &[0; 14]).unwrap(),
                    final_destination_options: None,
                }),
                ..Default::default()
            },
            16,
        ),
        (
            "all three",
            Ipv6Extensions {
                hop_by_hop_options: Some(raw()),
                destination_options: Some(raw()),
                routing: Some(Ipv6RoutingExtensions {
                    routing: raw(),
                    final_destination_options: Some(raw()),
                }),
                ..Default::default()
            },
            32,
        ),
    ];
    for (name, exts, ext_len) in cases {
        let pkt = v6_with_exts(exts);
        let r = syn_of(LinkType::IPV6, &pkt);
        assert_eq!(r.ip_hdr_len, 40 + ext_len, "{name}");
        assert_eq!(r.ip_len, ext_len + 24 + 2, "{name}");
        assert_eq!(r.payload_len, 2, "{name}");
        assert_eq!(r.options(), &[2, 4, 5, 0xa0], "{name}");
        let p = parse(LinkType::IPV6, &pkt).unwrap();
        assert_eq!(p.l3_bytes, 40 + u64::from(ext_len) + 26, "{name}");
        // Cut inside the last extension header.
        let cut = 40 + usize::from(ext_len) - 3;
        assert_eq!(
            parse(LinkType::IPV6, &pkt[..cut]),
            Err(SkipReason::Packet(Skip::TruncatedIpHeader)),
            "{name}"
        );
    }
    let frag = v6_with_exts(Ipv6Extensions {
        fragment: Some(Ipv6FragmentHeader::new(
            IpNumber::TCP,
            IpFragOffset::ZERO,
            true,
            99,
        )),
        ..Default::default()
    });
    // A first fragment holding the whole TCP header is read; a later one is skipped.
    let rec = syn_of(LinkType::IPV6, &frag);
    assert_eq!((rec.ip_hdr_len, rec.dst_port), (48, 6));
    let later = v6_with_exts(Ipv6Extensions {
        fragment: Some(Ipv6FragmentHeader::new(
            IpNumber::TCP,
            IpFragOffset::try_new(5).unwrap(),
            true,
            99,
        )),
        ..Default::default()
    });
    assert_eq!(
        parse(LinkType::IPV6, &later),
        Err(SkipReason::Packet(Skip::Fragment))
    );
}

#[test]
fn ipv6_chain_is_bounded_and_unknown_headers_are_not_tcp() {
    // Nine destination-options headers by hand: one more than the walk allows.
    let mut pkt = v6_with_exts(Ipv6Extensions::default());
    let tcp = pkt.split_off(40);
    pkt[6] = 60;
    let n = super::MAX_IPV6_EXT + 1;
    for i in 0..n {
        let next = if i + 1 == n { 6 } else { 60 };
        pkt.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    pkt.extend_from_slice(&tcp);
    let plen = (pkt.len() - 40) as u16;
    pkt[4..6].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(
        parse(LinkType::IPV6, &pkt),
        Err(SkipReason::Packet(Skip::Ipv6ExtChainTooLong))
    );
    // Exactly the limit is fine.
    let mut ok = pkt[..40].to_vec();
    for i in 0..n - 1 {
        let next = if i + 2 == n { 6 } else { 60 };
        ok.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
    }
    ok.extend_from_slice(&tcp);
    let r = syn_of(LinkType::IPV6, &ok);
    assert_eq!(r.ip_hdr_len, 40 + 8 * super::MAX_IPV6_EXT as u16);
    // AH (51) is not walked.
    let mut ah = ok.clone();
    ah[6] = 51;
    assert_eq!(
        parse(LinkType::IPV6, &ah),
        Err(SkipReason::Packet(Skip::NotTcp))
    );
}

#[test]
fn malformed_tcp_options_are_carried_raw() {
    // MSS with length 0, a kind with length 255, and an unknown kind: p0f's business.
    let opts = [2, 0, 0xff, 0x01, 0xfe, 0xff, 0x00, 0x00];
    let pkt = v4_syn(&opts, &[]);
    assert_eq!(syn_of(LinkType::RAW, &pkt), expected_v4(&opts, 0, 0));
    // The longest option area.
    let long = [1u8; 40];
    let pkt = v4_syn(&long, &[]);
    assert_eq!(syn_of(LinkType::RAW, &pkt), expected_v4(&long, 0, 0));
}

#[test]
fn truncation_rules() {
    let payload = [7u8; 100];
    let pkt = v4_syn(&LINUX_OPTS, &payload);
    let headers = 20 + 20 + LINUX_OPTS.len();
    // Payload cut by the snap length: a record, flagged, with the announced payload length.
    for keep in [headers, headers + 1, pkt.len() - 1] {
        let r = syn_of(LinkType::RAW, &pkt[..keep]);
        let mut want = expected_v4(&LINUX_OPTS, payload.len(), 0);
        want.record_flags = record_flag::SNAPPED;
        assert_eq!(r, want, "keep {keep}");
    }
    assert_eq!(syn_of(LinkType::RAW, &pkt).record_flags, 0);
    // Options cut: the flow still counts the packet, but there is no record.
    for keep in [headers - 1, 20 + 20] {
        let p = parse(LinkType::RAW, &pkt[..keep]).unwrap();
        assert_eq!(
            p.syn,
            Some(Err(SkipReason::Packet(Skip::TruncatedTcpHeader))),
            "keep {keep}"
        );
        assert_eq!(p.l3_bytes, (headers + payload.len()) as u64);
        assert_eq!(p.tcp_flags, tcp_flag::SYN);
    }
    // Not even the fixed TCP header: nothing at all.
    for keep in [20 + 19, 21, 20] {
        assert_eq!(
            parse(LinkType::RAW, &pkt[..keep]),
            Err(SkipReason::Packet(Skip::TruncatedTcpHeader)),
            "keep {keep}"
        );
    }
    assert_eq!(
        parse(LinkType::RAW, &pkt[..19]),
        Err(SkipReason::Packet(Skip::TruncatedIpHeader))
    );
    // IPv4 options announced but not captured.
    let mut long_ihl = pkt[..20].to_vec();
    long_ihl[0] = 0x46;
    assert_eq!(
        parse(LinkType::RAW, &long_ihl),
        Err(SkipReason::Packet(Skip::TruncatedIpHeader))
    );
    // IHL below 5.
    let mut short_ihl = pkt.clone();
    short_ihl[0] = 0x44;
    assert_eq!(
        parse(LinkType::RAW, &short_ihl),
        Err(SkipReason::Packet(Skip::BadIpHeader))
    );
}

#[test]
fn bogus_lengths_are_copied_not_judged() {
    // Data offset below 5 words.
    let mut pkt = v4_syn(&[], &[]);
    pkt[20 + 12] = 4 << 4;
    assert_eq!(
        rec(LinkType::RAW, &pkt),
        Err(SkipReason::Packet(Skip::BadTcpHeader))
    );
    assert_eq!(parse(LinkType::RAW, &pkt).unwrap().l3_bytes, 40);
    // IPv4 total length smaller than the headers: payload_len saturates at 0 and the record
    // keeps the length as announced.
    let mut pkt = v4_syn(&LINUX_OPTS, &[1, 2, 3]);
    pkt[2..4].copy_from_slice(&30u16.to_be_bytes());
    let r = syn_of(LinkType::RAW, &pkt);
    assert_eq!((r.ip_len, r.payload_len, r.record_flags), (30, 0, 0));
}

#[test]
fn flags_and_non_syn_packets() {
    // ECN setup SYN with NS: flags land in the documented bits.
    let mut pkt = Vec::new();
    PacketBuilder::ip(IpHeaders::Ipv4(v4_header(0, 0), Ipv4Extensions::default()))
        .tcp(40000, 443, 1, 2)
        .syn()
        .ece()
        .cwr()
        .ns()
        .write(&mut pkt, &[])
        .unwrap();
    let r = syn_of(LinkType::RAW, &pkt);
    assert_eq!(
        r.tcp_flags,
        tcp_flag::SYN | tcp_flag::ECE | tcp_flag::CWR | tcp_flag::NS
    );
    // A plain ACK from the server side: a flow update, no record.
    let mut ack = Vec::new();
    PacketBuilder::ipv4(DST4, SRC4, 64)
        .tcp(443, 40000, 9, 100)
        .ack(2)
        .psh()
        .write(&mut ack, &[0; 10])
        .unwrap();
    let p = parse(LinkType::RAW, &ack).unwrap();
    assert_eq!(p.syn, None);
    assert_eq!(p.tcp_flags, tcp_flag::ACK | tcp_flag::PSH);
    assert_eq!(p.l3_bytes, 20 + 20 + 10);
    let (key, dir) = FlowKey::new(4, addr4(SRC4), 40000, addr4(DST4), 443);
    assert_eq!(p.key, key);
    assert_eq!(p.dir, 1 - dir);
    // Not TCP.
    let mut udp = Vec::new();
    PacketBuilder::ipv4(SRC4, DST4, 64)
        .udp(53, 53)
        .write(&mut udp, &[0; 4])
        .unwrap();
    assert_eq!(
        parse(LinkType::RAW, &udp),
        Err(SkipReason::Packet(Skip::NotTcp))
    );
    let mut udp6 = Vec::new();
    PacketBuilder::ipv6(SRC6, DST6, 64)
        .udp(53, 53)
        .write(&mut udp6, &[0; 4])
        .unwrap();
    assert_eq!(
        parse(LinkType::RAW, &udp6),
        Err(SkipReason::Packet(Skip::NotTcp))
    );
}

#[test]
fn ifindex_and_timestamp_are_copied() {
    let pkt = v4_syn(&[], &[]);
    let r = parse_packet(LinkType::RAW, 42, 3, &pkt)
        .unwrap()
        .syn
        .unwrap()
        .unwrap();
    assert_eq!((r.ts_ns, r.ifindex), (42, 3));
}

#[test]
fn garbage_never_panics() {
    // Every prefix and a family of byte flips of a real-looking frame, on every link type.
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(SRC6, DST6, 64)
        .tcp(1, 2, 3, 4)
        .syn()
        .options_raw(&LINUX_OPTS)
        .unwrap()
        .write(&mut frame, &[1; 8])
        .unwrap();
    let links = [
        0, 1, 6, 7, 9, 10, 12, 14, 50, 101, 104, 108, 113, 129, 228, 229, 239, 242, 276,
    ];
    for l in links {
        for n in 0..=frame.len() {
            let _ = parse(LinkType(l), &frame[..n]);
        }
        for i in 0..frame.len() {
            let mut f = frame.clone();
            f[i] ^= 0xff;
            let _ = parse(LinkType(l), &f);
        }
    }
}

mod fuzz {
    use proptest::prelude::*;

    use super::super::{CaptureReader, Collect, LinkType, parse_packet};

    const LINKS: [u32; 19] = [
        0, 1, 6, 7, 9, 10, 12, 14, 50, 101, 104, 108, 113, 129, 228, 229, 239, 242, 276,
    ];

    proptest! {
        /// Arbitrary bytes on any link type: no panic, and whatever record comes out obeys the
        /// record's own invariants.
        #[test]
        fn parse_is_total(link in proptest::sample::select(&LINKS[..]),
                          mut data in proptest::collection::vec(any::<u8>(), 0..160),
                          nudge in any::<bool>()) {
            // Make IP/TCP-looking input likely: raw IPv4 or IPv6 version nibble, TCP protocol.
            if nudge && data.len() > 40 {
                data[0] = if data[1] & 1 == 0 { 0x45 } else { 0x60 };
                data[9] = 6;
                data[6] = 6;
                data[7] &= 0x1f;
            }
            if let Ok(p) = parse_packet(LinkType(link), 5, 2, &data)
                && let Some(Ok(r)) = p.syn
            {
                prop_assert!(r.is_canonical());
                prop_assert_eq!(usize::from(r.tcp_opts_len) + 20, usize::from(r.tcp_hdr_len));
                prop_assert!((20..=60).contains(&r.tcp_hdr_len));
                prop_assert_eq!((r.ts_ns, r.ifindex), (5, 2));
                prop_assert!(r.ip_hdr_len >= 20);
            }
        }

        /// Arbitrary bytes after a valid pcap header or pcapng section header: reading stops
        /// cleanly, never panics, and a reported break lies inside the file.
        #[test]
        fn reader_is_total(body in proptest::collection::vec(any::<u8>(), 0..600),
                           ng in any::<bool>()) {
            let mut file = if ng {
                // Little-endian SHB of 28 bytes, no options.
                let mut shb = vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a,
                                   1, 0, 0, 0];
                shb.extend_from_slice(&[0xff; 8]);
                shb.extend_from_slice(&[28, 0, 0, 0]);
                shb
            } else {
                vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                     0, 0, 4, 0, 1, 0, 0, 0]
            };
            file.extend_from_slice(&body);
            let len = file.len() as u64;
            let mut sink = Collect::default();
            let stats = CaptureReader::new("fuzz".into(), std::io::Cursor::new(file))
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .run(&mut sink)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(stats.packets, stats.tcp + stats.skipped_total());
            if let Some(at) = stats.truncated_at {
                prop_assert!(at < len);
            }
        }
    }
}

/// A little-endian microsecond pcap (link type RAW) of `n` SYNs with payloads of growing
/// size, so records have many different lengths.
fn raw_pcap(n: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes());
    for i in 0..n {
        let payload = vec![i as u8; (i * 37) % 300];
        let pkt = v4_syn(&LINUX_OPTS, &payload);
        f.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
        f.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        f.extend_from_slice(&(pkt.len() as u32).to_le_bytes());
        f.extend_from_slice(&pkt);
    }
    f
}

/// Whatever the chunk size, and wherever the file is cut, parsing the chunks in order gives
/// what `CaptureReader::run` gives: same records, flows and statistics (truncation offset
/// included), and every chunk starts where the previous one ended.
#[test]
fn chunks_in_order_equal_the_whole_run() {
    use super::{CaptureReader, Collect, IngestStats};
    let full = raw_pcap(60);
    for cut in [
        full.len(),
        full.len() - 1,
        full.len() - 30,
        24 + 16 + 5,
        24 + 3,
        24,
    ] {
        let file = &full[..cut];
        let mut want = Collect::default();
        let want_stats = CaptureReader::new("x".into(), file)
            .unwrap()
            .run(&mut want)
            .unwrap();
        assert_eq!(
            want_stats.link_types.get(&LinkType::RAW).copied(),
            Some(want_stats.packets)
        );
        for size in [1, 7, 60, 1000, 1 << 20] {
            let mut r = CaptureReader::new("x".into(), file).unwrap();
            let mut got = Collect::default();
            let mut stats = IngestStats::default();
            let mut next_offset = 24;
            let mut buffer = Vec::new();
            while let Some(chunk) = r.next_chunk(size, &mut stats, buffer).unwrap() {
                assert_eq!(chunk.offset(), next_offset, "cut {cut} size {size}");
                next_offset += chunk.len() as u64;
                stats.merge(&chunk.run(&mut got));
                buffer = chunk.into_buffer();
            }
            assert!(
                r.next_chunk(size, &mut stats, Vec::new())
                    .unwrap()
                    .is_none()
            );
            stats.link_types.entry(LinkType::RAW).or_default();
            assert_eq!(got.records, want.records, "cut {cut} size {size}");
            assert_eq!(got.flows, want.flows, "cut {cut} size {size}");
            assert_eq!(stats, want_stats, "cut {cut} size {size}");
        }
        if cut < full.len() && cut > 24 {
            assert!(want_stats.truncated_at.is_some(), "cut {cut}");
        }
    }
}

/// A pipe that a capture writes into now and then (`tcpdump -w - | analyze -`): each read
/// hands out at most `piece` bytes. Any read may be the one that waits for the network, so
/// once the sink has seen the file header go by (`armed`), every read checks that the records
/// of all bytes handed out so far have reached the sink *and* been passed on by it (`pause`).
struct Drip<'a> {
    file: &'a [u8],
    served: usize,
    piece: usize,
    armed: std::rc::Rc<std::cell::Cell<bool>>,
    passed: std::rc::Rc<std::cell::RefCell<Vec<SynRecord>>>,
}

impl std::io::Read for Drip<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.armed.get() {
            let mut want = super::Collect::default();
            super::CaptureReader::new("prefix".into(), &self.file[..self.served])
                .unwrap()
                .run(&mut want)
                .unwrap();
            assert_eq!(
                *self.passed.borrow(),
                want.records,
                "piece {} served {}",
                self.piece,
                self.served
            );
        }
        let n = self.piece.min(buf.len()).min(self.file.len() - self.served);
        buf[..n].copy_from_slice(&self.file[self.served..self.served + n]);
        self.served += n;
        Ok(n)
    }
}

/// Holds records back until told the reader may wait, as a batching sink does.
struct Holding {
    held: Vec<SynRecord>,
    passed: std::rc::Rc<std::cell::RefCell<Vec<SynRecord>>>,
}

impl super::PacketSink for Holding {
    fn syn(&mut self, rec: &SynRecord) {
        self.held.push(*rec);
    }

    fn pause(&mut self) {
        self.passed.borrow_mut().append(&mut self.held);
    }
}

#[test]
fn a_pipe_s_packets_are_passed_on_before_the_reader_reads_again() {
    let file = raw_pcap(30);
    for piece in [11, 24, 100, 333, 5000, file.len()] {
        let armed = std::rc::Rc::new(std::cell::Cell::new(false));
        let passed = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let src = Drip {
            file: &file,
            served: 0,
            piece,
            armed: armed.clone(),
            passed: passed.clone(),
        };
        let mut reader = super::CaptureReader::new("pipe".into(), src).unwrap();
        armed.set(true);
        let mut sink = Holding {
            held: Vec::new(),
            passed: passed.clone(),
        };
        let stats = reader.run(&mut sink).unwrap();
        super::PacketSink::pause(&mut sink);
        assert_eq!(stats.syn, 30, "piece {piece}");
        assert_eq!(passed.borrow().len(), 30, "piece {piece}");
    }
}
