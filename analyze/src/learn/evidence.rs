//! What the traffic itself says a host runs: the SYN / SYN+ACK signatures a host sent (with
//! the label the database gave them) and the OS its HTTP requests' `User-Agent` names by
//! p0f.fp's `ua_os` list. The agreement section ([`super::agree`]) and the learned
//! signatures ([`super::suggest`]) are both read from it.
//!
//! Kept per (host, signature) and per host, not per observation: memory follows the number
//! of distinct hosts and signatures, as the summary's host table does.

use std::net::IpAddr;

use p0f::event::TcpKind;
use p0f::{Database, EventKind, MatchedLabel, Quality, RawSig};
use rustc_hash::FxHashMap;

use crate::results::{Observation, host_addr};

/// Source files named per signature in the evidence (more are counted, not named).
const MAX_SOURCES: usize = 4;

/// A host's SYN or SYN+ACK signature, as the database labelled it.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    pub observations: u64,
    /// ns since the Unix epoch.
    pub first_ns: u64,
    pub last_ns: u64,
    /// The label of its first observation (a signature's match depends on the signature
    /// alone, but for the TTL of a fuzzy match).
    pub label: Option<MatchedLabel>,
    pub quality: Quality,
    /// Indexes of the inputs it was seen in (the first [`MAX_SOURCES`]).
    pub sources: Vec<usize>,
}

impl Seen {
    fn new(ts: u64, label: Option<MatchedLabel>, quality: Quality, source: usize) -> Seen {
        Seen {
            observations: 1,
            first_ns: ts,
            last_ns: ts,
            label,
            quality,
            sources: vec![source],
        }
    }

    fn add(&mut self, ts: u64, source: usize) {
        self.observations += 1;
        self.first_ns = self.first_ns.min(ts);
        self.last_ns = self.last_ns.max(ts);
        if self.sources.len() < MAX_SOURCES && !self.sources.contains(&source) {
            self.sources.push(source);
        }
    }

    /// `other`'s observations added to these.
    pub fn merge(&mut self, other: &Seen) {
        self.observations += other.observations;
        self.first_ns = self.first_ns.min(other.first_ns);
        self.last_ns = self.last_ns.max(other.last_ns);
        for s in &other.sources {
            if self.sources.len() < MAX_SOURCES && !self.sources.contains(s) {
                self.sources.push(*s);
            }
        }
    }
}

/// A host signature as [`Evidence`]'s table keys it, with its hash.
///
/// The hash is taken from the observation's fields where they lie (see [`SigKey::of`]), and
/// the table hashes only that word: hashing the key after it was put together, the hasher's
/// 8-byte reads of the option layout straddled the narrower stores that had just built it,
/// and waited on each (a store-forwarding stall, about 2% of a JSON replay in perf).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SigKey {
    hash: u64,
    host: IpAddr,
    kind: TcpKind,
    raw: RawSig,
}

impl SigKey {
    fn of(host: IpAddr, kind: TcpKind, raw: &RawSig) -> SigKey {
        use std::hash::BuildHasher;
        SigKey {
            hash: rustc_hash::FxBuildHasher.hash_one((&host, &kind, raw)),
            host,
            kind,
            raw: *raw,
        }
    }
}

impl std::hash::Hash for SigKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The evidence of a run, collected observation by observation.
#[derive(Debug, Default)]
pub struct Evidence {
    sigs: FxHashMap<SigKey, Seen>,
    /// Per host: `ua_os` entries of its honest requests, with their counts.
    ua: FxHashMap<IpAddr, Vec<(u16, u64)>>,
    /// Requests whose `User-Agent` p0f calls dishonest (it does not fit the request's
    /// headers): not trusted as a host's OS, counted.
    pub dishonest_requests: u64,
}

/// A host signature whose host's User-Agent names one OS: a unit of comparison.
#[derive(Clone, Debug)]
pub struct HostSig<'a> {
    pub host: IpAddr,
    pub kind: TcpKind,
    pub raw: &'a RawSig,
    pub seen: &'a Seen,
    /// The OS name (as the `ua_os` list spells it).
    pub ua_os: &'a str,
}

/// Hosts and their User-Agent OS, resolved at the end of a run.
#[derive(Debug, Default)]
pub struct Resolved<'a> {
    /// Hosts with at least one honest request naming an OS.
    pub ua_hosts: u64,
    /// Of those, hosts whose requests name several OSes (behind NAT, several systems): left
    /// out of the comparison.
    pub mixed_hosts: u64,
    /// The host signatures of every other host.
    pub pairs: Vec<HostSig<'a>>,
}

impl Evidence {
    /// Takes what it needs of one observation: SYN and SYN+ACK fingerprints by the address
    /// that sent them, HTTP requests' User-Agent OS by the client's address.
    pub fn add(&mut self, obs: &Observation) {
        let ev = &obs.event;
        match &ev.kind {
            EventKind::Tcp(t) if matches!(t.kind, TcpKind::Syn | TcpKind::SynAck) => {
                self.sigs
                    .entry(SigKey::of(host_addr(ev), t.kind, &t.raw_sig))
                    .and_modify(|s| s.add(ev.ts_ns, obs.source))
                    .or_insert_with(|| Seen::new(ev.ts_ns, t.label, t.quality, obs.source));
            }
            EventKind::Http(h) => {
                let Some(entry) = h.ua_os else { return };
                if h.params.dishonest {
                    self.dishonest_requests += 1;
                    return;
                }
                let counts = self.ua.entry(ev.endpoints.client_ip()).or_default();
                match counts.iter_mut().find(|(e, _)| *e == entry) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((entry, 1)),
                }
            }
            _ => {}
        }
    }

    /// The host signatures to compare: those of hosts whose requests name exactly one OS,
    /// in a stable order (host, then module and signature text).
    pub fn resolve<'a>(&'a self, db: &'a Database) -> Resolved<'a> {
        let mut out = Resolved::default();
        let mut host_os: FxHashMap<IpAddr, &str> = FxHashMap::default();
        for (host, entries) in &self.ua {
            let mut names: Vec<&str> = entries
                .iter()
                .filter_map(|(e, _)| db.ua_os_name(*e))
                .collect();
            names.sort_unstable_by_key(|n| n.to_ascii_lowercase());
            names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
            out.ua_hosts += 1;
            match names.as_slice() {
                [one] => {
                    host_os.insert(*host, *one);
                }
                _ => out.mixed_hosts += 1,
            }
        }
        if host_os.is_empty() {
            return out;
        }
        for (
            SigKey {
                host, kind, raw, ..
            },
            seen,
        ) in &self.sigs
        {
            if let Some(os) = host_os.get(host) {
                out.pairs.push(HostSig {
                    host: *host,
                    kind: *kind,
                    raw,
                    seen,
                    ua_os: os,
                });
            }
        }
        out.pairs
            .sort_by_cached_key(|p| (p.host, p.kind.keyword(), p.raw.to_string(), p.seen.first_ns));
        out
    }
}

/// The database line of an observed signature: p0f's `raw_sig` with the observed TTL and
/// guessed distance (`57+7`) replaced by the initial TTL (`64`), which is what a database
/// signature holds. `None` when p0f could not guess the distance (`+?`).
pub fn sig_line(raw: &RawSig) -> Option<String> {
    use std::fmt::Write;
    let ttl = u32::from(raw.ttl) + u32::from(raw.guessed_dist()?);
    let text = raw.to_string();
    // The TTL is the second `:`-separated field.
    let from = text.find(':')? + 1;
    let to = text[from..].find(':').map_or(text.len(), |n| from + n);
    let mut line = String::with_capacity(text.len() + 2);
    line.push_str(&text[..from]);
    let _ = write!(line, "{ttl}");
    line.push_str(&text[to..]);
    Some(line)
}

/// OS names compared as p0f.fp spells them, ignoring case and spaces: its signatures say
/// `MacOS X` where its `ua_os` list says `Mac OS X`.
pub fn same_os(a: &str, b: &str) -> bool {
    fn squash(s: &str) -> impl Iterator<Item = char> + '_ {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
    }
    squash(a).eq(squash(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_case_and_spaces() {
        assert!(same_os("MacOS X", "Mac OS X"));
        assert!(same_os("linux", "Linux"));
        assert!(!same_os("Linux", "Windows"));
        assert!(!same_os("Linux", "Linux 2"));
        assert!(!same_os("Linux", "Linu"));
        assert!(same_os("", " "));
    }

    /// The database line is p0f's text with its second field replaced by the initial TTL,
    /// for every observed TTL (those too far from any initial TTL have none), both IP
    /// versions and a signature with options.
    #[test]
    fn sig_line_replaces_the_ttl_field() {
        let EventKind::Tcp(t) = crate::results::tests::real_syn().event.kind else {
            panic!("not a SYN");
        };
        let base = t.raw_sig;
        let mut lines = 0;
        for ip_ver in [4, 6] {
            for ttl in 0..=255 {
                let raw = RawSig {
                    ttl,
                    ip_ver,
                    ..base
                };
                let want = raw.guessed_dist().map(|d| {
                    let text = raw.to_string();
                    let mut fields: Vec<&str> = text.split(':').collect();
                    let ttl = (u32::from(ttl) + u32::from(d)).to_string();
                    fields[1] = &ttl;
                    fields.join(":")
                });
                assert_eq!(sig_line(&raw), want, "{raw}");
                lines += usize::from(want.is_some());
            }
        }
        assert!(lines > 200, "{lines}");
    }
}
