//! Tests of `crate::link` and `crate::tunnel` through the whole parser. Every
//! encapsulation, built by hand from its specification around one inner SYN: the record must
//! be the inner packet's own, bit for bit; cutting the frame at any byte must
//! never give a record; one encapsulation past a bound is skipped with the bound's reason.

use crate::{Frame, Parsed, Skip, Syn, parse_ethernet};
use record::{Encap, MAX_ENCAPS, MAX_GTP_EXT, MAX_MPLS_LABELS, SynRecord, encap};

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

/// The frame's parse, checked to be the same in userspace's driver ([`parse_ethernet`]) and
/// in the kernel's ([`by_steps`]).
fn record(frame: &[u8]) -> (Parsed, SynRecord) {
    let mut r = SynRecord::ZERO;
    let p = parse_ethernet(&mut Frame(frame), &mut r);
    let (steps, kernel_p, kernel_r) = by_steps(frame);
    assert_eq!(kernel_p, p, "steps: {steps}");
    if let Parsed::Tcp { .. } = p {
        assert_eq!(kernel_r, r);
    }
    (p, r)
}

/// [`crate::by_steps`] on a frame in memory, with the number of steps.
pub(crate) fn by_steps(frame: &[u8]) -> (usize, Parsed, SynRecord) {
    let mut r = SynRecord::ZERO;
    let (steps, p) = crate::by_steps(&mut Frame(frame), &mut r);
    // The step after the last allowed one only refuses: MAX_STEPS tail calls at most.
    assert!(steps <= record::MAX_STEPS + 1, "{steps} steps");
    (steps, p, r)
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

/// The record of the inner packet found inside `depth` encapsulations, the outermost of
/// `kind` with identifier `id`.
fn want_in(inner_ip: &[u8], kind: u8, depth: u8, id: Option<u32>) -> SynRecord {
    let mut r = want(inner_ip);
    Encap {
        id: id.unwrap_or(0),
        kind,
        depth,
        flags: if id.is_some() { encap::flag::ID } else { 0 },
        _pad: 0,
    }
    .write(&mut r);
    r
}

/// Every encapsulation: (name, frame, inner IP packet, outermost encapsulation kind, depth,
/// identifier).
type Case = (&'static str, Vec<u8>, Vec<u8>, (u8, u8, Option<u32>));

fn cases() -> Vec<Case> {
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
            (encap::NONE, 0, None),
        ),
        (
            "mpls ipv4",
            eth(0x8847, &mpls(3, &i4)),
            i4.clone(),
            (encap::MPLS, 1, Some(0x100)),
        ),
        (
            "mpls ipv6",
            eth(0x8847, &mpls(1, &i6)),
            i6.clone(),
            (encap::MPLS, 1, Some(0x100)),
        ),
        (
            "mpls pseudowire",
            eth(0x8847, &mpls(2, &cat(&[&[0, 0, 0, 0], &ieth4]))),
            i4.clone(),
            (encap::MPLS, 1, Some(0x100)),
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
            (encap::PPPOE, 1, Some(1)),
        ),
        (
            "llc/snap",
            eth(60, &cat(&[&[0xaa, 0xaa, 3, 0, 0, 0, 0x86, 0xdd], &i6])),
            i6.clone(),
            (encap::NONE, 0, None),
        ),
        (
            "pbb",
            eth(0x88e7, &cat(&[&[0, 1, 2, 3], &ieth4])),
            i4.clone(),
            (encap::PBB, 1, Some(0x01_0203)),
        ),
        (
            "vn-tag in vlans",
            eth(
                0x8100,
                &cat(&[&[0, 5, 0x89, 0x26, 1, 2, 3, 4, 0x81, 0, 0, 6, 8, 0], &i4]),
            ),
            i4.clone(),
            (encap::NONE, 0, None),
        ),
        (
            "fabricpath",
            eth(0x8903, &cat(&[&[0, 0x3f], &ieth6])),
            i6.clone(),
            (encap::FABRICPATH, 1, None),
        ),
        (
            "ip-in-ip",
            eth(0x0800, &ipv4(4, &i4, 9)),
            i4.clone(),
            (encap::IP_IN_IP, 1, None),
        ),
        (
            "6in4",
            eth(0x0800, &ipv4(41, &i6, 9)),
            i6.clone(),
            (encap::IP_IN_IP, 1, None),
        ),
        (
            "4in6",
            eth(0x86dd, &ipv6(4, &i4, 9)),
            i4.clone(),
            (encap::IP_IN_IP, 1, None),
        ),
        (
            "6in6",
            eth(0x86dd, &ipv6(41, &i6, 9)),
            i6.clone(),
            (encap::IP_IN_IP, 1, None),
        ),
        (
            "gre key seq csum",
            eth(0x0800, &ipv4(47, &gre(0xb000, 0x0800, &[0, 7, 9], &i4), 9)),
            i4.clone(),
            (encap::GRE, 1, Some(7)),
        ),
        (
            "gre teb",
            eth(
                0x0800,
                &ipv4(47, &gre(0x2000, 0x6558, &[0x0200_0000], &ieth4), 9),
            ),
            i4.clone(),
            (encap::GRE, 1, Some(0x0200_0000)),
        ),
        (
            "erspan i",
            eth(0x0800, &ipv4(47, &gre(0, 0x88be, &[], &ieth6), 9)),
            i6.clone(),
            (encap::ERSPAN, 1, None),
        ),
        (
            "erspan ii",
            eth(
                0x0800,
                &ipv4(47, &gre(0x1000, 0x88be, &[5, 0x1001_0064, 0], &ieth4), 9),
            ),
            i4.clone(),
            (encap::ERSPAN, 1, Some(100)),
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
            (encap::ERSPAN, 1, Some(100)),
        ),
        (
            "wccp",
            eth(0x0800, &ipv4(47, &gre(0, 0x883e, &[0x0000_0001], &i4), 9)),
            i4.clone(),
            (encap::GRE, 1, None),
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
            (encap::GRE, 1, None),
        ),
        (
            "gre in udp",
            eth(0x0800, &ipv4(17, &udp(4754, &gre(0, 0x86dd, &[], &i6)), 9)),
            i6.clone(),
            (encap::GRE_UDP, 1, None),
        ),
        (
            "mpls in gre",
            eth(0x0800, &ipv4(47, &gre(0, 0x8847, &[], &mpls(2, &i4)), 9)),
            i4.clone(),
            (encap::GRE, 1, None),
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
            (encap::VXLAN, 1, Some(0x1234)),
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
            (encap::VXLAN_GPE, 1, Some(1)),
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
            (encap::GENEVE, 1, Some(9)),
        ),
        (
            "gtp-u with extension",
            eth(0x0800, &ipv4(17, &udp(2152, &gtp), 9)),
            i6.clone(),
            (encap::GTP_U, 1, Some(0xdead_beef)),
        ),
        (
            "ayiya",
            eth(0x0800, &ipv4(17, &udp(5072, &ayiya), 9)),
            i6.clone(),
            (encap::AYIYA, 1, None),
        ),
        (
            "teredo origin indication",
            eth(
                0x0800,
                &ipv4(17, &udp(3544, &cat(&[&[0, 0, 1, 2, 3, 4, 5, 6], &i6])), 9),
            ),
            i6.clone(),
            (encap::TEREDO, 1, None),
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
            (encap::IP_IN_IP, 3, None),
        ),
    ]
}

#[test]
fn every_encapsulation_gives_the_inner_record() {
    for (name, frame, inner, (kind, depth, id)) in cases() {
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
        assert_eq!(r, want_in(&inner, kind, depth, id), "{name}");
        assert!(r.is_canonical(), "{name}");
    }
}

/// The SYN ends with its options: any cut loses some, so no cut may give a record.
#[test]
fn truncation_at_every_byte_never_gives_a_record() {
    for (name, frame, _, _) in cases() {
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
    assert_eq!(
        r,
        want_in(&inner4(), encap::IP_IN_IP, MAX_ENCAPS as u8, None)
    );
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

/// `k` VN-Tags (each 4 bytes of tag, then the next type field) in front of `ethertype`.
fn vntags(k: usize, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    for _ in 0..k {
        p.extend_from_slice(&[0x89, 0x26, 0, 0, 0, 0]);
    }
    p.extend_from_slice(&ethertype.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Every VN-Tag takes a step of its own (as does each tunnel header), so VXLAN in VXLAN in
/// VXLAN with VN-Tags in each inner frame runs out of steps ([`record::MAX_STEPS`]) while
/// every other bound still holds: both drivers stop at the same frame with the same reason
/// (`record` holds them to one answer).
#[test]
fn the_step_budget_is_the_same_for_both_drivers() {
    let mac = [2u8, 0, 0, 0, 0, 3, 2, 0, 0, 0, 0, 4];
    let mut reasons = Vec::new();
    for k in 0..record::MAX_LINK_HEADERS {
        let mut pkt = inner4();
        let mut ethertype = 0x0800;
        for _ in 0..MAX_ENCAPS {
            let frame = cat(&[&mac, &vntags(k, ethertype, &pkt)]);
            let vxlan = cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &frame]);
            pkt = ipv4(17, &udp(4789, &vxlan), 9);
            ethertype = 0x0800;
        }
        let (p, r) = record(&eth(0x0800, &pkt));
        if let Parsed::Tcp { .. } = p {
            let vxlan = want_in(&inner4(), encap::VXLAN, MAX_ENCAPS as u8, Some(1));
            assert_eq!(r, vxlan, "{k} VN-Tags");
        }
        reasons.push(p);
    }
    assert!(matches!(
        reasons[0],
        Parsed::Tcp {
            syn: Syn::Record,
            ..
        }
    ));
    assert_eq!(
        reasons.last(),
        Some(&Parsed::Skip(Skip::EncapsulationTooDeep))
    );
}
