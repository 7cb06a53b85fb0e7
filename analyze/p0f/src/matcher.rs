//! Signature matching, p0f 3.09b's `tcp_find_match()`.
//!
//! Candidates come from an index keyed by direction and option layout (p0f hashes the layout
//! into buckets and compares the hash first, so only signatures with the packet's exact
//! layout can ever match). Within that list, file order decides:
//! 1. the first exact match of a specific (`s:`) signature wins at once;
//! 2. otherwise the first exact match of a generic (`g:`) signature;
//! 3. otherwise the first fuzzy match — TTL out of range, or quirks differing only by `df` /
//!    `id+` disappearing or `id-` / `ecn` appearing — unless it is a userland (`!`) signature,
//!    which p0f never accepts fuzzily.
//!
//! The same routine serves p0f.fp's "already covered" check, where the probe is itself a
//! database signature (`dupe_det`): then only exact specific matches count, and window types
//! are compared literally.

use super::db::{Database, TcpSig, WinType};
use super::sig::{MAX_DIST, Packet, WinMulti, guess_dist, quirk};

/// What is matched against the database: a packet, or a signature being registered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Probe {
    /// 4, 6, or -1 (a `*` signature being registered).
    pub ip_ver: i8,
    pub quirks: u32,
    pub eol_pad: i32,
    pub ip_opt_len: i32,
    pub ttl: i32,
    pub mss: i32,
    pub wscale: i32,
    pub pay_class: i8,
    pub win_type: WinType,
    pub win: i32,
    /// Window multiplier search result for this probe.
    pub win_multi: WinMulti,
}

impl Probe {
    /// The probe for a real packet; `syn_mss` is the flow's SYN MSS (for SYN+ACKs).
    pub fn from_packet(p: &Packet, syn_mss: u16) -> Probe {
        Probe {
            ip_ver: p.ip_ver as i8,
            quirks: p.quirks,
            eol_pad: i32::from(p.eol_pad),
            ip_opt_len: i32::from(p.ip_opt_len),
            ttl: i32::from(p.ttl),
            mss: i32::from(p.mss),
            wscale: i32::from(p.wscale),
            pay_class: p.pay_class(),
            win_type: WinType::Normal,
            win: i32::from(p.win),
            win_multi: p.win_multi(syn_mss),
        }
    }
}

/// Outcome of a lookup (p0f's `matched` / `fuzzy` / `dist` of `struct tcp_sig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchResult {
    /// Index of the matched signature in [`Database::tcp_sigs`].
    pub sig: Option<u32>,
    /// Fuzzy match.
    pub fuzzy: bool,
    /// Hop distance: signature TTL minus observed TTL, or p0f's guess.
    pub dist: u8,
}

/// Looks a probe up. With `dupe_det`, returns only an exact specific match (p0f.fp's
/// duplicate check); otherwise p0f's full tiered result.
pub(crate) fn find_match(
    db: &Database,
    to_srv: bool,
    layout: &super::sig::Layout,
    ts: &Probe,
    dupe_det: bool,
) -> MatchResult {
    let mut fmatch: Option<u32> = None;
    let mut gmatch: Option<u32> = None;
    for &idx in db.candidates(to_srv, layout) {
        let Some(r) = db.tcp_sigs().get(idx as usize) else {
            continue;
        };
        let generic = db.label_of(r).is_some_and(|l| l.generic);
        let Some(fuzzy) = compare(r, ts, fmatch.is_none()) else {
            continue;
        };
        if !fuzzy {
            if !generic {
                return MatchResult {
                    sig: Some(idx),
                    fuzzy: false,
                    dist: clamp_dist(r.ttl - ts.ttl),
                };
            } else if gmatch.is_none() {
                gmatch = Some(idx);
            }
        } else if fmatch.is_none() {
            fmatch = Some(idx);
        }
    }

    let none = MatchResult {
        sig: None,
        fuzzy: false,
        dist: 0,
    };
    if dupe_det {
        return none;
    }
    if let Some(g) = gmatch {
        let ttl = db.tcp_sigs().get(g as usize).map_or(ts.ttl, |r| r.ttl);
        return MatchResult {
            sig: Some(g),
            fuzzy: false,
            dist: clamp_dist(ttl - ts.ttl),
        };
    }
    let fsig = fmatch.and_then(|f| db.tcp_sigs().get(f as usize));
    // No fuzzy matching for userland tools. p0f returns before computing a distance, so the
    // packet is reported unknown with distance 0.
    if let Some(r) = fsig
        && db.label_of(r).is_some_and(|l| l.is_userland())
    {
        return none;
    }
    let obs_ttl = ts.ttl.clamp(0, 255) as u8;
    let dist = match fsig {
        Some(r) if !(r.ttl < ts.ttl || (!r.bad_ttl && r.ttl - ts.ttl > i32::from(MAX_DIST))) => {
            clamp_dist(r.ttl - ts.ttl)
        }
        _ => guess_dist(obs_ttl),
    };
    MatchResult {
        sig: fmatch,
        fuzzy: fmatch.is_some(),
        dist,
    }
}

/// Whether signature `r` matches probe `ts`: `Some(false)` exactly, `Some(true)` fuzzily
/// (TTL out of range, or quirks differing only in the ways p0f tolerates, if
/// `quirks_may_differ`), `None` not at all.
#[inline]
fn compare(r: &TcpSig, ts: &Probe, quirks_may_differ: bool) -> Option<bool> {
    let mut fuzzy = false;
    let mut ref_quirks = r.quirks;
    // A version-less signature drops the quirks that cannot apply to the probe's family.
    if r.ip_ver == -1 {
        ref_quirks &= if ts.ip_ver == 4 {
            !quirk::FLOW
        } else {
            !(quirk::DF | quirk::NZ_ID | quirk::ZERO_ID)
        };
    }
    if ref_quirks != ts.quirks {
        let deleted = (ref_quirks ^ ts.quirks) & ref_quirks;
        let added = (ref_quirks ^ ts.quirks) & ts.quirks;
        if !quirks_may_differ
            || deleted & !(quirk::DF | quirk::NZ_ID) != 0
            || added & !(quirk::ZERO_ID | quirk::ECN) != 0
        {
            return None;
        }
        fuzzy = true;
    }
    if r.eol_pad != ts.eol_pad || r.ip_opt_len != ts.ip_opt_len {
        return None;
    }
    if r.bad_ttl {
        if r.ttl < ts.ttl {
            return None;
        }
    } else if r.ttl < ts.ttl || r.ttl - ts.ttl > i32::from(MAX_DIST) {
        fuzzy = true;
    }
    if r.mss != -1 && r.mss != ts.mss {
        return None;
    }
    if r.wscale != -1 && r.wscale != ts.wscale {
        return None;
    }
    if r.pay_class != -1 && r.pay_class != ts.pay_class {
        return None;
    }
    if !window_matches(r, ts) {
        return None;
    }
    Some(fuzzy)
}

fn clamp_dist(d: i32) -> u8 {
    d.clamp(0, 255) as u8
}

fn window_matches(r: &TcpSig, ts: &Probe) -> bool {
    if ts.win_type != WinType::Normal {
        // Comparing two p0f.fp signatures.
        return r.win_type == ts.win_type && r.win == ts.win;
    }
    match r.win_type {
        WinType::Normal => r.win == ts.win,
        WinType::Mod => r.win != 0 && ts.win % r.win == 0,
        WinType::Mss => !ts.win_multi.use_mtu && r.win == ts.win_multi.multi,
        WinType::Mtu => ts.win_multi.use_mtu && r.win == ts.win_multi.multi,
        WinType::Any => true,
    }
}

/// Match quality as p0f reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quality {
    /// Exact match of a specific signature.
    Exact,
    /// Exact match of a generic signature.
    Generic,
    /// Fuzzy match (of a specific or generic signature).
    Fuzzy,
    /// No match.
    Unknown,
}

impl Quality {
    /// Lower-case name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            Quality::Exact => "exact",
            Quality::Generic => "generic",
            Quality::Fuzzy => "fuzzy",
            Quality::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sig::tests::linux_syn;
    use record::SynRecord;

    /// One signature per tier, all with the `mss,sok,ts,nop,ws` layout of `linux_syn()`
    /// except the userland and random-TTL ones.
    const DB: &str = "\
classes = win,unix
[tcp:request]
label = s:unix:Exact:
sig = 4:64:0:*:mss*44,7:mss,sok,ts,nop,ws:df,id+:0
label = g:unix:Generic:
sig = 4:64:0:*:*,*:mss,sok,ts,nop,ws:df,id+:0
label = s:!:Tool:
sys = @unix
sig = *:64:0:1200:*,*:mss,nop:df,id+:0
label = s:win:Random:
sig = *:128-:0:*:*,*:mss:df,id+:0
";

    fn db() -> Database {
        Database::from_str_named("tiers.fp", DB).unwrap_or_else(|e| panic!("{e}"))
    }

    fn lookup(db: &Database, r: &SynRecord) -> (Option<String>, bool, u8) {
        let p = Packet::from_record(r).unwrap_or_else(|e| panic!("{e:?}"));
        let m = find_match(db, true, &p.layout, &Probe::from_packet(&p, 0), false);
        let name = m
            .sig
            .and_then(|i| db.tcp_sigs().get(i as usize))
            .and_then(|s| db.label_of(s))
            .map(|l| db.name_of(l).to_string());
        (name, m.fuzzy, m.dist)
    }

    fn with_opts(mut r: SynRecord, opts: &[u8]) -> SynRecord {
        r.tcp_opts = [0; 40];
        r.tcp_opts[..opts.len()].copy_from_slice(opts);
        r.tcp_opts_len = opts.len() as u8;
        r.tcp_hdr_len = 20 + opts.len() as u8;
        r.ip_len = 20 + u16::from(r.tcp_hdr_len);
        r
    }

    #[test]
    fn exact_specific_wins() {
        let mut r = linux_syn();
        r.ttl = 57;
        assert_eq!(lookup(&db(), &r), (Some("Exact".into()), false, 7));
    }

    #[test]
    fn exact_generic_when_no_specific() {
        let mut r = linux_syn();
        r.window = 1000; // not mss*44: only the generic `*` window fits
        assert_eq!(lookup(&db(), &r), (Some("Generic".into()), false, 0));
    }

    #[test]
    fn fuzzy_ttl_takes_first_in_file_order() {
        let mut r = linux_syn();
        r.ttl = 100; // above the signatures' 64: fuzzy, distance guessed (128 - 100)
        assert_eq!(lookup(&db(), &r), (Some("Exact".into()), true, 28));
        // Too far below (more than MAX_DIST hops): fuzzy, and p0f guesses the distance
        // (32 - 20) instead of trusting the signature's 44.
        r.ttl = 20;
        assert_eq!(lookup(&db(), &r), (Some("Exact".into()), true, 12));
    }

    #[test]
    fn fuzzy_quirk_tolerance() {
        let base = linux_syn();
        // df and id+ disappearing: fuzzy.
        let mut r = base;
        r.ip_frag = 0;
        assert_eq!(lookup(&db(), &r), (Some("Exact".into()), true, 0));
        // ecn appearing: fuzzy.
        let mut r = base;
        r.tcp_flags |= record::tcp_flag::ECE | record::tcp_flag::CWR;
        assert!(lookup(&db(), &r).1);
        // id- appearing (no DF, zero ID): fuzzy.
        let mut r = base;
        r.ip_frag = 0;
        r.ip_id = 0;
        assert!(lookup(&db(), &r).1);
        // Any other quirk appearing: no match at all, distance guessed.
        let mut r = base;
        r.seq = 0;
        assert_eq!(lookup(&db(), &r), (None, false, 0));
        let mut r = base;
        r.ttl = 50;
        r.tcp_flags |= record::tcp_flag::PSH;
        assert_eq!(lookup(&db(), &r), (None, false, 14));
    }

    #[test]
    fn userland_is_never_fuzzy() {
        // Layout mss,nop,eol+2: not the Tool layout, no candidate at all.
        let r = with_opts(linux_syn(), &[2, 4, 0x04, 0xb0, 1, 0, 0, 0]);
        assert!(lookup(&db(), &r).0.is_none());
        // Exactly mss,nop (a 25-byte TCP header: odd on the wire, fine for a record).
        let mut t = with_opts(linux_syn(), &[2, 4, 0x04, 0xb0, 1]);
        assert_eq!(lookup(&db(), &t), (Some("Tool".into()), false, 0));
        // With a TTL above 64 it would only match fuzzily: reported unknown, distance 0
        // (p0f returns before guessing one).
        t.ttl = 100;
        assert_eq!(lookup(&db(), &t), (None, false, 0));
    }

    #[test]
    fn random_ttl_signature() {
        let mut r = with_opts(linux_syn(), &[2, 4, 0x05, 0xb4]);
        r.ttl = 20;
        // Any TTL up to 128 matches exactly; the distance may exceed MAX_DIST.
        assert_eq!(lookup(&db(), &r), (Some("Random".into()), false, 108));
        r.ttl = 200;
        assert_eq!(lookup(&db(), &r).0, None);
    }

    #[test]
    fn syn_ack_uses_response_section() {
        let p = Packet::from_record(&linux_syn()).unwrap_or_else(|e| panic!("{e:?}"));
        let m = find_match(&db(), false, &p.layout, &Probe::from_packet(&p, 0), false);
        assert_eq!(m.sig, None);
    }
}
