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
            if fmatch.is_some()
                || deleted & !(quirk::DF | quirk::NZ_ID) != 0
                || added & !(quirk::ZERO_ID | quirk::ECN) != 0
            {
                continue;
            }
            fuzzy = true;
        }
        if r.eol_pad != ts.eol_pad || r.ip_opt_len != ts.ip_opt_len {
            continue;
        }
        if r.bad_ttl {
            if r.ttl < ts.ttl {
                continue;
            }
        } else if r.ttl < ts.ttl || r.ttl - ts.ttl > i32::from(MAX_DIST) {
            fuzzy = true;
        }
        if r.mss != -1 && r.mss != ts.mss {
            continue;
        }
        if r.wscale != -1 && r.wscale != ts.wscale {
            continue;
        }
        if r.pay_class != -1 && r.pay_class != ts.pay_class {
            continue;
        }
        if !window_matches(r, ts) {
            continue;
        }
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
    if let Some(r) = fsig {
        if db.label_of(r).is_some_and(|l| l.is_userland()) {
            return none;
        }
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
