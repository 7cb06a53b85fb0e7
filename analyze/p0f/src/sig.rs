//! SynRecord -> p0f v3 TCP signature, exactly as p0f 3.09b computes it.
//!
//! p0f's `parse_packet()` (process.c) decodes a packet into quirks, option layout, MSS,
//! window scale and timestamps; `fp_tcp.c` turns that into the `raw_sig` it logs. This module
//! does both from a [`SynRecord`], including p0f's packet filters, so that the engine
//! fingerprints exactly the packets p0f would fingerprint and nothing else.
//!
//! Everything here is `Copy` and allocation-free: the signature is rendered lazily through
//! [`RawSig`]'s `Display`.

use core::fmt;

use record::{SynRecord, ip_frag, record_flag, tcp_flag};

/// Largest number of TCP options p0f records (`MAX_TCP_OPT` in p0f's config.h); parsing stops
/// there and the packet gets the `bad` quirk.
pub const MAX_TCP_OPT: usize = 24;

/// Largest TTL distance for a non-fuzzy match (`MAX_DIST`).
pub const MAX_DIST: u8 = 35;

/// MSS of a p0f-sendsyn probe (`SPECIAL_MSS`).
pub const SPECIAL_MSS: u16 = 1331;
/// Window of a p0f-sendsyn probe (`SPECIAL_WIN`).
pub const SPECIAL_WIN: u16 = 1337;

/// IPv4 + TCP minimal header size (`MIN_TCP4`).
pub const MIN_TCP4: u32 = 40;
/// IPv6 + TCP minimal header size (`MIN_TCP6`).
pub const MIN_TCP6: u32 = 60;

/// TCP option kinds that have a name in signatures.
pub mod opt {
    pub const EOL: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WS: u8 = 3;
    pub const SOK: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TS: u8 = 8;
}

/// Quirk bits. The values are ours; the printing order ([`quirk::ALL`]) is p0f's.
pub mod quirk {
    /// IPv4 don't-fragment set.
    pub const DF: u32 = 1 << 0;
    /// DF set but IPv4 ID non-zero.
    pub const NZ_ID: u32 = 1 << 1;
    /// DF not set but IPv4 ID zero.
    pub const ZERO_ID: u32 = 1 << 2;
    /// Explicit congestion notification support (IP or TCP level).
    pub const ECN: u32 = 1 << 3;
    /// IPv4 must-be-zero bit set.
    pub const NZ_MBZ: u32 = 1 << 4;
    /// IPv6 flow label non-zero.
    pub const FLOW: u32 = 1 << 5;
    /// Sequence number zero.
    pub const ZERO_SEQ: u32 = 1 << 6;
    /// ACK number "non-zero" without ACK flag (see [`super::Packet::from_record`]).
    pub const NZ_ACK: u32 = 1 << 7;
    /// ACK number zero with ACK flag.
    pub const ZERO_ACK: u32 = 1 << 8;
    /// Urgent pointer non-zero without URG flag.
    pub const NZ_URG: u32 = 1 << 9;
    /// URG flag set.
    pub const URG: u32 = 1 << 10;
    /// PSH flag set.
    pub const PUSH: u32 = 1 << 11;
    /// Own timestamp zero.
    pub const OPT_ZERO_TS1: u32 = 1 << 12;
    /// Peer timestamp non-zero on a SYN.
    pub const OPT_NZ_TS2: u32 = 1 << 13;
    /// Non-zero data after EOL.
    pub const OPT_EOL_NZ: u32 = 1 << 14;
    /// Window scale above 14.
    pub const OPT_EXWS: u32 = 1 << 15;
    /// Malformed options.
    pub const OPT_BAD: u32 = 1 << 16;

    /// Every quirk with its p0f.fp spelling, in the order p0f prints them.
    pub const ALL: [(u32, &str); 17] = [
        (DF, "df"),
        (NZ_ID, "id+"),
        (ZERO_ID, "id-"),
        (ECN, "ecn"),
        (NZ_MBZ, "0+"),
        (FLOW, "flow"),
        (ZERO_SEQ, "seq-"),
        (NZ_ACK, "ack+"),
        (ZERO_ACK, "ack-"),
        (NZ_URG, "uptr+"),
        (URG, "urgf+"),
        (PUSH, "pushf+"),
        (OPT_ZERO_TS1, "ts1-"),
        (OPT_NZ_TS2, "ts2+"),
        (OPT_EOL_NZ, "opt+"),
        (OPT_EXWS, "exws"),
        (OPT_BAD, "bad"),
    ];
}

/// Why a record is not fingerprinted: each is a packet p0f 3.09b drops before `fingerprint_tcp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Skip {
    /// `ip_version` is neither 4 nor 6.
    BadIpVersion,
    /// The capture holds fewer bytes than the IP length (`SNAPPED`): p0f "bails out".
    Snapped,
    /// IP/TCP lengths do not leave room for the headers.
    BadLength,
    /// IPv4 fragment (MF or non-zero offset).
    Fragment,
    /// IPv6 with extension headers: p0f 3.09b only accepts TCP as the first next-header,
    /// so it never fingerprints these. We mimic that.
    Ipv6ExtensionHeaders,
    /// SYN+FIN, SYN+RST, FIN+RST or no SYN/ACK/FIN/RST at all.
    SillyFlags,
    /// Not a SYN or SYN+ACK (after p0f's flag reduction).
    NotSyn,
}

/// How a window size relates to the MSS or MTU (`detect_win_multi()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WinMulti {
    /// Multiplier, or negative when none was found (p0f's `-1`, or the odd negative values
    /// p0f's signed arithmetic yields for tiny peer MSS values).
    pub multi: i32,
    /// The divisor was an MTU rather than an MSS.
    pub use_mtu: bool,
}

/// Window-size search as in p0f's `detect_win_multi()`, in p0f's order: MSS, MSS-12 (with
/// timestamps), MSS for a 1500 MTU (IPv4, IPv4-12, then IPv6 forms), MTU = MSS+40,
/// MTU = MSS + actual header size, MTU = MSS+60 (IPv6), MTU 1500, and on SYN+ACKs the
/// peer's SYN MSS and that minus 12.
///
/// `mss` is signed because p0f.fp signatures may have `*` (-1) there when the same routine is
/// used for the database's "already covered" check. The result is narrowed to 16 bits like
/// p0f's `s16` return value.
pub fn detect_win_multi(
    win: u16,
    mss: i32,
    has_ts: bool,
    ip_ver: i8,
    tot_hdr: i32,
    syn_mss: u16,
) -> WinMulti {
    const NONE: WinMulti = WinMulti {
        multi: -1,
        use_mtu: false,
    };
    if win == 0 || mss < 100 {
        return NONE;
    }
    let win = i32::from(win);
    let check = |div: i32, use_mtu: bool| -> Option<WinMulti> {
        // p0f would crash on a zero divisor (only reachable via a peer MSS of 12); skip it.
        if div != 0 && win % div == 0 {
            Some(WinMulti {
                multi: i32::from((win / div) as i16),
                use_mtu,
            })
        } else {
            None
        }
    };
    let v6 = ip_ver == 6;
    let order: [(i32, bool, bool); 11] = [
        (mss, false, true),
        (mss - 12, false, has_ts),
        (1500 - MIN_TCP4 as i32, false, true),
        (1500 - MIN_TCP4 as i32 - 12, false, true),
        (1500 - MIN_TCP6 as i32, false, v6),
        (1500 - MIN_TCP6 as i32 - 12, false, v6),
        (mss + MIN_TCP4 as i32, true, true),
        (mss + tot_hdr, true, true),
        (mss + MIN_TCP6 as i32, true, v6),
        (1500, true, true),
        (i32::from(syn_mss), false, syn_mss != 0),
    ];
    for (div, use_mtu, enabled) in order {
        if enabled && let Some(w) = check(div, use_mtu) {
            return w;
        }
    }
    if syn_mss != 0
        && let Some(w) = check(i32::from(syn_mss) - 12, false)
    {
        return w;
    }
    NONE
}

/// p0f's guess of the hop distance when no signature says otherwise (`guess_dist()`).
pub fn guess_dist(ttl: u8) -> u8 {
    match ttl {
        0..=32 => 32 - ttl,
        33..=64 => 64 - ttl,
        65..=128 => 128 - ttl,
        _ => 255 - ttl,
    }
}

/// An option layout: up to [`MAX_TCP_OPT`] option kinds, used as the matcher's index key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Layout {
    /// Number of options.
    pub len: u8,
    /// Option kinds; entries past `len` are zero.
    pub kinds: [u8; MAX_TCP_OPT],
}

impl Layout {
    /// The option kinds in use.
    pub fn as_slice(&self) -> &[u8] {
        &self.kinds[..usize::from(self.len).min(MAX_TCP_OPT)]
    }

    /// Appends a kind; returns false when full.
    pub fn push(&mut self, kind: u8) -> bool {
        let n = usize::from(self.len);
        if n >= MAX_TCP_OPT {
            return false;
        }
        self.kinds[n] = kind;
        self.len += 1;
        true
    }

    /// Writes the layout in p0f.fp syntax (`mss,nop,ws,...,eol+N`).
    pub fn write(&self, eol_pad: u8, f: &mut impl fmt::Write) -> fmt::Result {
        for (i, k) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            match *k {
                opt::EOL => {
                    f.write_str("eol+")?;
                    f.write_str(itoa::Buffer::new().format(eol_pad))?;
                }
                opt::NOP => f.write_str("nop")?,
                opt::MSS => f.write_str("mss")?,
                opt::WS => f.write_str("ws")?,
                opt::SOK => f.write_str("sok")?,
                opt::SACK => f.write_str("sack")?,
                opt::TS => f.write_str("ts")?,
                other => write!(f, "?{other}")?,
            }
        }
        Ok(())
    }
}

/// Writes quirks in p0f's order, comma separated.
pub fn write_quirks(quirks: u32, f: &mut impl fmt::Write) -> fmt::Result {
    let mut first = true;
    for (bit, name) in quirk::ALL {
        if quirks & bit != 0 {
            if !first {
                f.write_char(',')?;
            }
            f.write_str(name)?;
            first = false;
        }
    }
    Ok(())
}

/// A packet decoded the way p0f's `parse_packet()` decodes it (`struct packet_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// 4 or 6.
    pub ip_ver: u8,
    /// Observed TTL / hop limit.
    pub ttl: u8,
    /// IPv4 option bytes (0 for IPv6).
    pub ip_opt_len: u8,
    /// DSCP: the TOS / traffic class byte without its ECN bits, as p0f logs it.
    pub tos: u8,
    /// Quirk bits ([`quirk`]).
    pub quirks: u32,
    /// Option layout.
    pub layout: Layout,
    /// Bytes after an EOL option.
    pub eol_pad: u8,
    /// MSS option value (0 when absent).
    pub mss: u16,
    /// Window scale option value (0 when absent).
    pub wscale: u8,
    /// Raw TCP window.
    pub win: u16,
    /// Own timestamp (0 when absent).
    pub ts1: u32,
    /// IP header plus TCP header bytes.
    pub tot_hdr: u16,
    /// Payload bytes.
    pub pay_len: u16,
    /// True for SYN+ACK, false for SYN.
    pub syn_ack: bool,
    /// TCP sequence number.
    pub seq: u32,
}

/// What p0f takes from a record's IP header: its length, the IPv4 options' length and the
/// IP-level quirks.
struct IpLayer {
    hdr_len: u32,
    opt_len: u8,
    quirks: u32,
}

impl IpLayer {
    /// p0f's IPv4 / IPv6 checks (a packet failing one is skipped) and quirks.
    #[inline]
    fn of(r: &SynRecord) -> Result<IpLayer, Skip> {
        if r.ip_version != 4 && r.ip_version != 6 {
            return Err(Skip::BadIpVersion);
        }
        if r.record_flags & record_flag::SNAPPED != 0 {
            return Err(Skip::Snapped);
        }
        let ip_len = u32::from(r.ip_len);
        let tcp_doff = u32::from(r.tcp_hdr_len);
        let mut quirks = 0;
        if r.tos & 0x03 != 0 {
            quirks |= quirk::ECN;
        }
        if r.ip_version == 6 {
            if ip_len + 40 < MIN_TCP6 {
                return Err(Skip::BadLength);
            }
            if r.ip_hdr_len != 40 {
                return Err(Skip::Ipv6ExtensionHeaders);
            }
            if tcp_doff < 20 || tcp_doff > ip_len {
                return Err(Skip::BadLength);
            }
            if r.flow_label & 0xF_FFFF != 0 {
                quirks |= quirk::FLOW;
            }
            return Ok(IpLayer {
                hdr_len: 40,
                opt_len: 0,
                quirks,
            });
        }
        let hdr_len = u32::from(r.ip_hdr_len);
        // p0f trims the packet to the IPv4 total length, then requires room for the IPv4
        // and TCP headers.
        if ip_len < MIN_TCP4 || hdr_len < 20 || hdr_len + 20 > ip_len {
            return Err(Skip::BadLength);
        }
        if r.ip_frag & !(ip_frag::DF | ip_frag::RESERVED) != 0 {
            return Err(Skip::Fragment);
        }
        if tcp_doff < 20 || tcp_doff > ip_len - hdr_len {
            return Err(Skip::BadLength);
        }
        if r.ip_frag & ip_frag::RESERVED != 0 {
            quirks |= quirk::NZ_MBZ;
        }
        if r.ip_frag & ip_frag::DF != 0 {
            quirks |= quirk::DF;
            if r.ip_id != 0 {
                quirks |= quirk::NZ_ID;
            }
        } else if r.ip_id == 0 {
            quirks |= quirk::ZERO_ID;
        }
        Ok(IpLayer {
            hdr_len,
            opt_len: (hdr_len - 20).min(255) as u8,
            quirks,
        })
    }
}

/// p0f's TCP flag checks (silly combinations and anything but SYN or SYN+ACK are skipped):
/// whether it is a SYN+ACK, and the TCP-level quirks.
#[inline]
fn tcp_layer(r: &SynRecord) -> Result<(bool, u32), Skip> {
    let flags = r.tcp_flags;
    let tcp_type = flags & (tcp_flag::SYN | tcp_flag::ACK | tcp_flag::FIN | tcp_flag::RST);
    let syn = flags & tcp_flag::SYN != 0;
    let fin = flags & tcp_flag::FIN != 0;
    let rst = flags & tcp_flag::RST != 0;
    if (syn && (fin || rst)) || (fin && rst) || tcp_type == 0 {
        return Err(Skip::SillyFlags);
    }
    let syn_ack = if tcp_type == tcp_flag::SYN {
        false
    } else if tcp_type == tcp_flag::SYN | tcp_flag::ACK {
        true
    } else {
        return Err(Skip::NotSyn);
    };
    let mut quirks = 0;
    if flags & (tcp_flag::ECE | tcp_flag::CWR | tcp_flag::NS) != 0 {
        quirks |= quirk::ECN;
    }
    if r.seq == 0 {
        quirks |= quirk::ZERO_SEQ;
    }
    if flags & tcp_flag::ACK != 0 {
        if r.ack == 0 {
            quirks |= quirk::ZERO_ACK;
        }
    } else if (r.ack >> 24) & 1 != 0 && !rst {
        quirks |= quirk::NZ_ACK;
    }
    if flags & tcp_flag::URG != 0 {
        quirks |= quirk::URG;
    } else if r.urg_ptr != 0 {
        quirks |= quirk::NZ_URG;
    }
    if flags & tcp_flag::PSH != 0 {
        quirks |= quirk::PUSH;
    }
    Ok((syn_ack, quirks))
}

impl Packet {
    /// Decodes a record, applying p0f's packet filters.
    ///
    /// Quirks are computed as p0f computes them, including two of its oddities that we keep
    /// on purpose so our signatures equal p0f's:
    /// - `ack+`: p0f tests `RD32(ack) & !(flags & RST)`, i.e. it ANDs the raw, network-order
    ///   ACK field with 1. Read as a little-endian word (the x86 hosts p0f runs on), bit 0 is
    ///   the lowest bit of the first ACK byte on the wire, so only ACK numbers with bit 24
    ///   set count as "non-zero".
    /// - `tos` is the TOS byte shifted right by two (the ECN bits feed the `ecn` quirk).
    pub fn from_record(r: &SynRecord) -> Result<Packet, Skip> {
        let ip = IpLayer::of(r)?;
        let (syn_ack, tcp_quirks) = tcp_layer(r)?;
        let tcp_doff = u32::from(r.tcp_hdr_len);
        let mut pk = Packet {
            ip_ver: r.ip_version,
            ttl: r.ttl,
            ip_opt_len: ip.opt_len,
            tos: r.tos >> 2,
            quirks: ip.quirks | tcp_quirks,
            layout: Layout::default(),
            eol_pad: 0,
            mss: 0,
            wscale: 0,
            win: r.window,
            ts1: 0,
            tot_hdr: (ip.hdr_len + tcp_doff).min(u32::from(u16::MAX)) as u16,
            pay_len: r.payload_len,
            syn_ack,
            seq: r.seq,
        };
        let opts_len = (tcp_doff as usize - 20).min(r.options().len());
        pk.parse_options(&r.options()[..opts_len]);
        Ok(pk)
    }

    /// TCP option parsing as p0f does it: problems are never fatal, they set `bad`.
    fn parse_options(&mut self, o: &[u8]) {
        let mut i = 0;
        while i < o.len() && usize::from(self.layout.len) < MAX_TCP_OPT {
            let kind = o[i];
            self.layout.push(kind);
            i += 1;
            match self.option(kind, &o[i..]) {
                Some(used) => i += used,
                None => {
                    // p0f gives up on the rest of the options, and calls them bad.
                    self.quirks |= quirk::OPT_BAD;
                    return;
                }
            }
        }
        if i != o.len() {
            self.quirks |= quirk::OPT_BAD;
        }
    }

    /// Reads one option whose kind byte is already consumed; `data` is the rest of the
    /// options (what p0f calls `opt_end - data`). Returns how many bytes of `data` the option
    /// takes, or `None` when it does not fit.
    fn option(&mut self, kind: u8, data: &[u8]) -> Option<usize> {
        match kind {
            opt::EOL => {
                self.eol_pad = data.len().min(255) as u8;
                // p0f scans for the first non-zero byte and consumes it too; `opt+` is set
                // only when that leaves it short of the end. So a non-zero byte that is the
                // very last option byte goes unnoticed, as in p0f.
                let scanned = data
                    .iter()
                    .position(|&b| b != 0)
                    .map_or(data.len(), |p| p + 1);
                if scanned != data.len() {
                    self.quirks |= quirk::OPT_EOL_NZ;
                }
                Some(data.len())
            }
            opt::NOP => Some(0),
            opt::MSS => {
                let body = self.fixed(data, 4)?;
                self.mss = u16::from_be_bytes([body[1], body[2]]);
                Some(body.len())
            }
            opt::WS => {
                let body = self.fixed(data, 3)?;
                self.wscale = body[1];
                if self.wscale > 14 {
                    self.quirks |= quirk::OPT_EXWS;
                }
                Some(body.len())
            }
            opt::SOK => Some(self.fixed(data, 2)?.len()),
            opt::SACK => variable(data, 10..=34),
            opt::TS => {
                let body = self.fixed(data, 10)?;
                self.ts1 = u32::from_be_bytes([body[1], body[2], body[3], body[4]]);
                if self.ts1 == 0 {
                    self.quirks |= quirk::OPT_ZERO_TS1;
                }
                if !self.syn_ack && body[5..9] != [0; 4] {
                    self.quirks |= quirk::OPT_NZ_TS2;
                }
                Some(body.len())
            }
            _ => variable(data, 2..=40),
        }
    }

    /// The body (length byte onwards) of an option p0f reads at its fixed size `len` (kind
    /// and length bytes included), or `None` when the options end first. A length byte other
    /// than `len` is the `opt+` quirk, and the option is still read at its fixed size, as in
    /// p0f.
    fn fixed<'a>(&mut self, data: &'a [u8], len: u8) -> Option<&'a [u8]> {
        let body = data.get(..usize::from(len) - 1)?;
        if body[0] != len {
            self.quirks |= quirk::OPT_BAD;
        }
        Some(body)
    }

    /// Payload class: 0 or 1 (`!!pay_len`).
    pub fn pay_class(&self) -> i8 {
        i8::from(self.pay_len != 0)
    }

    /// Whether p0f would treat this as a p0f-sendsyn probe.
    pub fn is_sendsyn_probe(&self) -> bool {
        !self.syn_ack && self.win == SPECIAL_WIN && self.mss == SPECIAL_MSS
    }

    /// The window multiplier search for this packet; `syn_mss` is the MSS of the flow's SYN
    /// when fingerprinting a SYN+ACK (0 otherwise).
    pub fn win_multi(&self, syn_mss: u16) -> WinMulti {
        detect_win_multi(
            self.win,
            i32::from(self.mss),
            self.ts1 != 0,
            self.ip_ver as i8,
            i32::from(self.tot_hdr),
            syn_mss,
        )
    }

    /// The signature p0f logs as `raw_sig` for this packet.
    pub fn raw_sig(&self, syn_mss: u16) -> RawSig {
        RawSig {
            ip_ver: self.ip_ver,
            ttl: self.ttl,
            ip_opt_len: self.ip_opt_len,
            mss: self.mss,
            wildcard_mss: self.syn_ack && self.mss == SPECIAL_MSS,
            win: self.win,
            win_multi: self.win_multi(syn_mss),
            wscale: self.wscale,
            layout: self.layout,
            eol_pad: self.eol_pad,
            quirks: self.quirks,
            has_payload: self.pay_len != 0,
        }
    }
}

/// The signature of one packet in p0f.fp syntax; `Display` renders it exactly as p0f's
/// `dump_sig()` (`ver:ttl+dist:olen:mss:wsize,scale:olayout:quirks:pclass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RawSig {
    /// 4 or 6.
    pub ip_ver: u8,
    /// Observed TTL.
    pub ttl: u8,
    /// IPv4 option bytes.
    pub ip_opt_len: u8,
    /// MSS option value.
    pub mss: u16,
    /// A SYN+ACK echoing p0f-sendsyn's MSS: p0f prints `*` to suggest a wildcard.
    pub wildcard_mss: bool,
    /// Raw window.
    pub win: u16,
    /// Window multiplier (printed as `mss*N` / `mtu*N` when positive).
    pub win_multi: WinMulti,
    /// Window scale.
    pub wscale: u8,
    /// Option layout.
    pub layout: Layout,
    /// Bytes after EOL.
    pub eol_pad: u8,
    /// Quirks.
    pub quirks: u32,
    /// Payload present.
    pub has_payload: bool,
}

impl RawSig {
    /// Guessed distance, or `None` when above [`MAX_DIST`] (printed as `ttl+?`).
    pub fn guessed_dist(&self) -> Option<u8> {
        let d = guess_dist(self.ttl);
        (d <= MAX_DIST).then_some(d)
    }
}

impl fmt::Display for RawSig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl RawSig {
    /// Writes the signature in p0f.fp syntax, as [`fmt::Display`] does, into any writer:
    /// called directly (not through `write!` and a `Formatter`), every piece is a direct
    /// call to `out`, and numbers go through itoa rather than `fmt`'s integer padding.
    pub fn write_to(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let mut digits = itoa::Buffer::new();
        out.write_str(digits.format(self.ip_ver))?;
        out.write_char(':')?;
        out.write_str(digits.format(self.ttl))?;
        match self.guessed_dist() {
            Some(d) => {
                out.write_char('+')?;
                out.write_str(digits.format(d))?;
            }
            None => out.write_str("+?")?,
        }
        out.write_char(':')?;
        out.write_str(digits.format(self.ip_opt_len))?;
        out.write_char(':')?;
        if self.wildcard_mss {
            out.write_char('*')?;
        } else {
            out.write_str(digits.format(self.mss))?;
        }
        out.write_char(':')?;
        if self.win_multi.multi > 0 {
            out.write_str(if self.win_multi.use_mtu {
                "mtu*"
            } else {
                "mss*"
            })?;
            out.write_str(digits.format(self.win_multi.multi))?;
        } else {
            out.write_str(digits.format(self.win))?;
        }
        out.write_char(',')?;
        out.write_str(digits.format(self.wscale))?;
        out.write_char(':')?;
        self.layout.write(self.eol_pad, out)?;
        out.write_char(':')?;
        write_quirks(self.quirks, out)?;
        out.write_str(if self.has_payload { ":+" } else { ":0" })
    }
}

/// The bytes after the kind byte taken by an option of variable length, whose length byte
/// (kind and length included) must lie in `allowed` and within the options; `None`
/// otherwise.
fn variable(data: &[u8], allowed: std::ops::RangeInclusive<usize>) -> Option<usize> {
    let len = usize::from(*data.first()?);
    (allowed.contains(&len) && len - 1 <= data.len()).then_some(len - 1)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plain Linux-like IPv4 SYN: DF, non-zero ID, options
    /// `mss,sok,ts,nop,ws` with MSS 1460, TS 1000/0, WS 7, window 64240, TTL 64.
    pub(crate) fn linux_syn() -> SynRecord {
        let mut r = SynRecord::ZERO;
        r.ip_version = 4;
        r.src_addr[..4].copy_from_slice(&[192, 0, 2, 1]);
        r.dst_addr[..4].copy_from_slice(&[192, 0, 2, 2]);
        r.src_port = 40000;
        r.dst_port = 80;
        r.ip_hdr_len = 20;
        r.tcp_hdr_len = 40;
        r.tcp_opts_len = 20;
        r.ip_len = 60;
        r.ip_id = 0x1234;
        r.ip_frag = ip_frag::DF;
        r.ttl = 64;
        r.tcp_flags = tcp_flag::SYN;
        r.window = 64240;
        r.seq = 1;
        let opts = [
            2, 4, 0x05, 0xb4, // mss 1460
            4, 2, // sok
            8, 10, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, // ts 1000 / 0
            1, // nop
            3, 3, 7, // ws 7
        ];
        r.tcp_opts[..20].copy_from_slice(&opts);
        r
    }

    fn set_opts(r: &mut SynRecord, opts: &[u8]) {
        r.tcp_opts = [0; 40];
        r.tcp_opts[..opts.len()].copy_from_slice(opts);
        r.tcp_opts_len = opts.len() as u8;
        r.tcp_hdr_len = 20 + opts.len() as u8;
        r.ip_len = r.ip_hdr_len + u16::from(r.tcp_hdr_len) + r.payload_len;
    }

    fn sig(r: &SynRecord) -> String {
        Packet::from_record(r)
            .map(|p| p.raw_sig(0).to_string())
            .unwrap_or_default()
    }

    fn quirks(r: &SynRecord) -> u32 {
        Packet::from_record(r).map(|p| p.quirks).unwrap_or(u32::MAX)
    }

    /// The signature text as `write!` with `{}` fields gives it: what `write_to` replaced.
    fn reference_text(s: &RawSig) -> String {
        let mut t = match s.guessed_dist() {
            Some(d) => format!("{}:{}+{}:{}:", s.ip_ver, s.ttl, d, s.ip_opt_len),
            None => format!("{}:{}+?:{}:", s.ip_ver, s.ttl, s.ip_opt_len),
        };
        if s.wildcard_mss {
            t.push_str("*:");
        } else {
            t += &format!("{}:", s.mss);
        }
        if s.win_multi.multi > 0 {
            let kind = if s.win_multi.use_mtu { "mtu" } else { "mss" };
            t += &format!("{kind}*{}", s.win_multi.multi);
        } else {
            t += &format!("{}", s.win);
        }
        t += &format!(",{}:", s.wscale);
        let kinds: Vec<String> = s
            .layout
            .as_slice()
            .iter()
            .map(|k| match *k {
                opt::EOL => format!("eol+{}", s.eol_pad),
                opt::NOP => "nop".into(),
                opt::MSS => "mss".into(),
                opt::WS => "ws".into(),
                opt::SOK => "sok".into(),
                opt::SACK => "sack".into(),
                opt::TS => "ts".into(),
                other => format!("?{other}"),
            })
            .collect();
        t += &kinds.join(",");
        t.push(':');
        let names: Vec<&str> = quirk::ALL
            .iter()
            .filter(|(bit, _)| s.quirks & bit != 0)
            .map(|(_, name)| *name)
            .collect();
        t += &names.join(",");
        t += if s.has_payload { ":+" } else { ":0" };
        t
    }

    #[test]
    fn signature_text_agrees_with_fmt() {
        let base = Packet::from_record(&linux_syn())
            .map(|p| p.raw_sig(0))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mut cases = vec![base];
        for ttl in [0, 1, 64, 128, 200, 255] {
            cases.push(RawSig { ttl, ..base });
        }
        for (mss, wildcard_mss) in [(0, false), (65535, false), (1460, true)] {
            cases.push(RawSig {
                mss,
                wildcard_mss,
                ..base
            });
        }
        for (multi, use_mtu, win) in [
            (0, false, 0),
            (-1, false, 65535),
            (1, true, 9),
            (44, false, 1),
        ] {
            cases.push(RawSig {
                win_multi: WinMulti { multi, use_mtu },
                win,
                ..base
            });
        }
        let mut layout = Layout::default();
        for (i, k) in [
            opt::MSS,
            opt::NOP,
            opt::SACK,
            99,
            opt::TS,
            opt::WS,
            opt::SOK,
            opt::EOL,
        ]
        .into_iter()
        .enumerate()
        {
            layout.kinds[i] = k;
            layout.len = i as u8 + 1;
        }
        for eol_pad in [0, 7, 255] {
            cases.push(RawSig {
                layout,
                eol_pad,
                ..base
            });
        }
        cases.push(RawSig {
            layout: Layout::default(),
            quirks: u32::MAX,
            has_payload: true,
            ip_ver: 6,
            ip_opt_len: 40,
            wscale: 14,
            ..base
        });
        for s in cases {
            assert_eq!(s.to_string(), reference_text(&s), "{s:?}");
        }
    }

    #[test]
    fn linux_syn_signature() {
        // 64240 = 44 * 1460, hence mss*44; ttl 64 at distance 0.
        assert_eq!(
            sig(&linux_syn()),
            "4:64+0:0:1460:mss*44,7:mss,sok,ts,nop,ws:df,id+:0"
        );
    }

    #[test]
    fn ip_quirks() {
        let mut r = linux_syn();
        r.ip_id = 0;
        assert_eq!(quirks(&r), quirk::DF);
        r.ip_frag = 0;
        assert_eq!(quirks(&r), quirk::ZERO_ID);
        r.ip_id = 7;
        assert_eq!(quirks(&r), 0);
        r.ip_frag = ip_frag::RESERVED;
        assert_eq!(quirks(&r), quirk::NZ_MBZ);
        r.ip_frag = 0;
        r.tos = 0x01;
        assert_eq!(quirks(&r), quirk::ECN);
        r.tos = 0x02;
        assert_eq!(quirks(&r), quirk::ECN);
        r.tos = 0xb8; // DSCP 46, no ECN bits
        assert_eq!(quirks(&r), 0);
        assert_eq!(Packet::from_record(&r).map(|p| p.tos), Ok(46));
    }

    #[test]
    fn tcp_flag_quirks() {
        let base = linux_syn();
        let q0 = quirks(&base);
        for (flags, q) in [
            (tcp_flag::ECE, quirk::ECN),
            (tcp_flag::CWR, quirk::ECN),
            (tcp_flag::NS, quirk::ECN),
            (tcp_flag::URG, quirk::URG),
            (tcp_flag::PSH, quirk::PUSH),
        ] {
            let mut r = base;
            r.tcp_flags |= flags;
            assert_eq!(quirks(&r), q0 | q, "flags {flags:#x}");
        }
        let mut r = base;
        r.seq = 0;
        assert_eq!(quirks(&r), q0 | quirk::ZERO_SEQ);
        let mut r = base;
        r.urg_ptr = 1;
        assert_eq!(quirks(&r), q0 | quirk::NZ_URG);
        // With URG set, a non-zero pointer is not a quirk of its own.
        r.tcp_flags |= tcp_flag::URG;
        assert_eq!(quirks(&r), q0 | quirk::URG);
    }

    #[test]
    fn ack_quirks_follow_p0f_bit_test() {
        let mut r = linux_syn();
        let q0 = quirks(&r);
        // p0f's test only sees bit 24 of the ACK number (see from_record's doc).
        r.ack = 0x0100_0000;
        assert_eq!(quirks(&r), q0 | quirk::NZ_ACK);
        r.ack = 0x0300_0000;
        assert_eq!(quirks(&r), q0 | quirk::NZ_ACK);
        r.ack = 0x0200_0000;
        assert_eq!(quirks(&r), q0);
        r.ack = 0x0000_0001;
        assert_eq!(quirks(&r), q0);
        // SYN+ACK: zero ACK is `ack-`.
        r.tcp_flags = tcp_flag::SYN | tcp_flag::ACK;
        r.ack = 0;
        assert_eq!(quirks(&r), q0 | quirk::ZERO_ACK);
        r.ack = 5;
        assert_eq!(quirks(&r), q0);
    }

    #[test]
    fn ts_quirks() {
        let mut r = linux_syn();
        let q0 = quirks(&r);
        r.tcp_opts[8..12].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(quirks(&r), q0 | quirk::OPT_ZERO_TS1);
        let mut r = linux_syn();
        r.tcp_opts[15] = 9;
        assert_eq!(quirks(&r), q0 | quirk::OPT_NZ_TS2);
        // A SYN+ACK carries the peer's timestamp legitimately.
        r.tcp_flags = tcp_flag::SYN | tcp_flag::ACK;
        r.ack = 1;
        assert_eq!(quirks(&r), q0);
    }

    #[test]
    fn option_quirks_and_layouts() {
        let mut r = linux_syn();
        // ws 15: exws.
        set_opts(&mut r, &[3, 3, 15, 1]);
        assert_eq!(quirks(&r), quirk::DF | quirk::NZ_ID | quirk::OPT_EXWS);
        assert_eq!(sig(&r), "4:64+0:0:0:64240,15:ws,nop:df,id+,exws:0");
        // EOL with zero padding: eol+3, no quirk.
        set_opts(&mut r, &[1, 0, 0, 0]);
        assert_eq!(sig(&r), "4:64+0:0:0:64240,0:nop,eol+2:df,id+:0");
        // EOL followed by garbage: opt+.
        set_opts(&mut r, &[0, 0, 5, 0]);
        assert_eq!(sig(&r), "4:64+0:0:0:64240,0:eol+3:df,id+,opt+:0");
        // ... unless the garbage is the last byte (p0f's scan consumes it).
        set_opts(&mut r, &[0, 0, 0, 5]);
        assert_eq!(sig(&r), "4:64+0:0:0:64240,0:eol+3:df,id+:0");
        // Wrong MSS length byte: bad, value still read.
        set_opts(&mut r, &[2, 5, 0x05, 0xb4]);
        assert_eq!(sig(&r), "4:64+0:0:1460:mss*44,0:mss:df,id+,bad:0");
        // MSS cut short: parsing aborts with bad.
        set_opts(&mut r, &[1, 1, 2, 4]);
        assert_eq!(sig(&r), "4:64+0:0:0:64240,0:nop,nop,mss:df,id+,bad:0");
        // Unknown option 30 with length 4, then nop.
        set_opts(&mut r, &[30, 4, 1, 2, 1, 1, 1, 1]);
        assert_eq!(sig(&r), "4:64+0:0:0:64240,0:?30,nop,nop,nop,nop:df,id+:0");
        // Unknown option with an impossible length: bad.
        set_opts(&mut r, &[30, 1, 1, 1]);
        assert_eq!(sig(&r), "4:64+0:0:0:64240,0:?30:df,id+,bad:0");
        // SACK (only valid 10..=34 long).
        set_opts(&mut r, &[5, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(sig(&r), "4:64+0:0:0:64240,0:sack,nop,nop:df,id+:0");
        set_opts(&mut r, &[5, 8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(sig(&r), "4:64+0:0:0:64240,0:sack:df,id+,bad:0");
        // More than 24 options: parsing stops, bad.
        set_opts(&mut r, &[1; 28]);
        let s = sig(&r);
        assert_eq!(s.matches("nop").count(), 24);
        assert!(s.ends_with(":df,id+,bad:0"), "{s}");
    }

    #[test]
    fn payload_class() {
        let mut r = linux_syn();
        r.payload_len = 10;
        r.ip_len += 10;
        assert!(sig(&r).ends_with(":+"));
    }

    #[test]
    fn wsize_forms() {
        let mut r = linux_syn();
        let cases: [(u16, &str); 8] = [
            (1460 * 4, "mss*4"),
            // With timestamps, MSS-12 counts: 1448 * 3.
            (1448 * 3, "mss*3"),
            // 1460 = 1500-40 is tried before MTU; 5000 % 1460 != 0, % 1448 != 0 ...
            (1500 * 2, "mtu*2"),
            (29200, "mss*20"),
            (1, "1"),
            (0, "0"),
            (65535, "65535"),
            (1520 * 3, "mtu*3"),
        ];
        for (w, want) in cases {
            r.window = w;
            let s = sig(&r);
            let field = s.split(':').nth(4).unwrap_or_default();
            assert_eq!(field, format!("{want},7"), "window {w}");
        }
        // mss+tot_hdr: 20-byte IPv4 + 40-byte TCP header, MSS 1000 -> 1060.
        r.tcp_opts[2..4].copy_from_slice(&1000u16.to_be_bytes());
        r.window = 1060 * 5;
        assert!(sig(&r).contains(":1000:mtu*5,"), "{}", sig(&r));
        // MSS below 100: never a multiple.
        r.tcp_opts[2..4].copy_from_slice(&99u16.to_be_bytes());
        r.window = 990;
        assert!(sig(&r).contains(":99:990,"));
    }

    #[test]
    fn wsize_peer_mss_on_syn_ack() {
        let mut r = linux_syn();
        r.tcp_flags = tcp_flag::SYN | tcp_flag::ACK;
        r.ack = 2;
        r.tcp_opts[2..4].copy_from_slice(&1400u16.to_be_bytes());
        r.window = 1380 * 7; // peer MSS 1392 - 12 = 1380
        let p = Packet::from_record(&r).unwrap_or_else(|_| panic!("fingerprintable"));
        assert_eq!(p.win_multi(0).multi, -1);
        assert_eq!(
            p.win_multi(1392),
            WinMulti {
                multi: 7,
                use_mtu: false
            }
        );
        assert_eq!(p.win_multi(1380).multi, 7);
    }

    #[test]
    fn ttl_guess_and_raw_dist() {
        let mut r = linux_syn();
        for (ttl, want) in [
            (64u8, "64+0"),
            (57, "57+7"),
            (32, "32+0"),
            (1, "1+31"),
            (33, "33+31"),
            (128, "128+0"),
            (100, "100+28"),
            (255, "255+0"),
            (230, "230+25"),
            // guess 255-200 = 55 > 35: unknown distance.
            (200, "200+?"),
            (65, "65+?"),
        ] {
            r.ttl = ttl;
            assert!(sig(&r).starts_with(&format!("4:{want}:")), "ttl {ttl}");
        }
    }

    #[test]
    fn filters() {
        let base = linux_syn();
        let mut r = base;
        r.record_flags = record_flag::SNAPPED;
        assert_eq!(Packet::from_record(&r), Err(Skip::Snapped));
        let mut r = base;
        r.ip_frag = ip_frag::MF;
        assert_eq!(Packet::from_record(&r), Err(Skip::Fragment));
        for bad in [
            tcp_flag::SYN | tcp_flag::FIN,
            tcp_flag::SYN | tcp_flag::RST,
            tcp_flag::FIN | tcp_flag::RST,
            tcp_flag::PSH,
        ] {
            let mut r = base;
            r.tcp_flags = bad;
            assert_eq!(Packet::from_record(&r), Err(Skip::SillyFlags), "{bad:#x}");
        }
        let mut r = base;
        r.tcp_flags = tcp_flag::ACK;
        assert_eq!(Packet::from_record(&r), Err(Skip::NotSyn));
        let mut r = base;
        r.ip_len = 39;
        assert_eq!(Packet::from_record(&r), Err(Skip::BadLength));
        let mut r = base;
        r.ip_len = 50; // TCP header (40) does not fit in 50-20.
        assert_eq!(Packet::from_record(&r), Err(Skip::BadLength));
        let mut r = base;
        r.ip_version = 6;
        r.ip_id = 0;
        r.ip_frag = 0;
        r.ip_hdr_len = 48;
        assert_eq!(Packet::from_record(&r), Err(Skip::Ipv6ExtensionHeaders));
        r.ip_version = 5;
        assert_eq!(Packet::from_record(&r), Err(Skip::BadIpVersion));
    }

    #[test]
    fn ipv6_signature() {
        let mut r = linux_syn();
        r.ip_version = 6;
        r.ip_id = 0;
        r.ip_frag = 0;
        r.ip_hdr_len = 40;
        r.ip_len = 40; // payload length: TCP header only
        r.flow_label = 0x12345;
        r.ttl = 60;
        r.window = 1440 * 10; // 1500 - 60 (IPv6 MSS for a 1500 MTU)
        r.tcp_opts[2..4].copy_from_slice(&1220u16.to_be_bytes());
        assert_eq!(sig(&r), "6:60+4:0:1220:mss*10,7:mss,sok,ts,nop,ws:flow:0");
    }

    #[test]
    fn sendsyn_echo_mss_is_wildcard() {
        let mut r = linux_syn();
        r.tcp_flags = tcp_flag::SYN | tcp_flag::ACK;
        r.ack = 2;
        r.tcp_opts[2..4].copy_from_slice(&SPECIAL_MSS.to_be_bytes());
        r.window = 1000;
        assert!(sig(&r).starts_with("4:64+0:0:*:1000,7:"));
    }
}
