//! Learned signatures (`analyze --suggest-sigs FILE.fp`): p0f.fp entries for the SYN and
//! SYN+ACK signatures the database does not know, knows only generically or fuzzily, or
//! labels with another OS than the User-Agent of the hosts that send them.
//!
//! Rules against overfitting, because a signature is shared by every host with the same
//! stack and a wrong one mislabels all of them:
//! - a signature is grouped by its database form (initial TTL, not the observed one), and
//!   suggested only when at least `min_hosts` distinct hosts with one User-Agent OS each
//!   name the same OS and at most `max_conflict` of its hosts name another;
//! - generalised only as p0f's syntax allows and only where the evidence covers it: an MSS
//!   becomes `*` when the same signature was suggested with at least two MSS values, a
//!   window becomes `*` when seen with at least three (the option layout, quirks, TTL and
//!   window scale are never generalised);
//! - a signature an earlier database matches exactly with a specific label cannot be
//!   overridden by a later file (p0f takes the first match, and rejects the line as
//!   "already covered"): it is written commented out, with the reason, for a person to
//!   decide on.
//!
//! The file is checked by loading it after the run's databases before it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use p0f::event::TcpKind;
use p0f::{Database, DbError, DbErrorKind, DbFile, Quality};

use super::evidence::{Resolved, Seen, same_os, sig_line};
use crate::results::Sources;

/// Thresholds of `--suggest-sigs`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuggestOptions {
    /// Distinct hosts naming the OS (`--suggest-min-hosts`).
    pub min_hosts: u64,
    /// Largest share of a signature's hosts naming another OS (`--suggest-max-conflict`).
    pub max_conflict: f64,
}

impl Default for SuggestOptions {
    fn default() -> Self {
        SuggestOptions {
            min_hosts: 3,
            max_conflict: 0.1,
        }
    }
}

/// Why the suggestions could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    #[error("the suggested signatures do not load: {0}")]
    Invalid(DbError),
    #[error("writing {path}: {cause}")]
    Write { path: String, cause: std::io::Error },
}

/// The hosts of one signature, by the OS their User-Agent names.
#[derive(Clone, Debug)]
struct Group {
    to_srv: bool,
    sig: String,
    /// OS name -> hosts.
    hosts: BTreeMap<String, BTreeSet<IpAddr>>,
    seen: Seen,
    /// What the field generalised to `*` was, when it was.
    generalised: Option<String>,
}

/// One suggested entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// `[tcp:request]` (SYN) rather than `[tcp:response]`.
    pub to_srv: bool,
    /// The `sig =` value.
    pub sig: String,
    pub class: String,
    pub os: String,
    /// Hosts naming `os`, hosts naming another OS, observations.
    pub hosts: u64,
    pub conflicting: u64,
    pub observations: u64,
    pub first_ns: u64,
    pub last_ns: u64,
    /// The label it had (`name flavor (quality)`, `??? (unknown)`).
    pub before: String,
    pub sources: Vec<String>,
    /// `mss * (seen: 1460, 1400)`.
    pub generalised: Option<String>,
    /// Why the entry is written commented out.
    pub blocked: Option<String>,
}

/// The label of every learned signature: what the User-Agent says, the OS name, and no
/// version (a User-Agent rarely names a kernel).
pub const FLAVOR: &str = "(learned)";

/// The candidates the evidence supports, in file order (requests first, then by signature).
pub fn candidates(
    resolved: &Resolved<'_>,
    db: &Database,
    sources: &Sources,
    opts: SuggestOptions,
) -> Vec<Candidate> {
    let mut groups: BTreeMap<(bool, String), Group> = BTreeMap::new();
    for p in &resolved.pairs {
        let Some(sig) = sig_line(p.raw) else { continue };
        let to_srv = p.kind == TcpKind::Syn;
        let g = groups
            .entry((!to_srv, sig.clone()))
            .or_insert_with(|| Group {
                to_srv,
                sig,
                hosts: BTreeMap::new(),
                seen: Seen {
                    observations: 0,
                    ..p.seen.clone()
                },
                generalised: None,
            });
        g.seen.merge(p.seen);
        g.hosts
            .entry(p.ua_os.to_string())
            .or_default()
            .insert(p.host);
    }
    // Only the signatures that need a label take part in generalising.
    let mut open: Vec<Group> = groups
        .into_values()
        .filter(|g| needs_label(g, db))
        .collect();
    open = generalise(open, Field::Mss, 2, opts);
    open = generalise(open, Field::Win, 3, opts);
    let mut out: Vec<Candidate> = open
        .iter()
        .filter_map(|g| candidate(g, db, sources, opts))
        .collect();
    // The order of the file: requests first.
    out.sort_by(|a, b| (!a.to_srv, &a.sig).cmp(&(!b.to_srv, &b.sig)));
    out
}

/// Whether a signature's label is missing, generic, fuzzy or names another OS than its
/// hosts' majority.
fn needs_label(g: &Group, db: &Database) -> bool {
    let Some((os, _, _)) = majority(g) else {
        return false;
    };
    match &g.seen.label {
        None => true,
        Some(l) => g.seen.quality != Quality::Exact || !same_os(db.label_names(l.id).name, &os),
    }
}

/// The OS most of a group's hosts name, its hosts and the other hosts; `None` on a tie.
fn majority(g: &Group) -> Option<(String, u64, u64)> {
    let all: BTreeSet<&IpAddr> = g.hosts.values().flatten().collect();
    let mut best: Option<(&String, usize)> = None;
    let mut tie = false;
    for (os, hosts) in &g.hosts {
        match best {
            Some((_, n)) if hosts.len() == n => tie = true,
            Some((_, n)) if hosts.len() < n => {}
            _ => {
                best = Some((os, hosts.len()));
                tie = false;
            }
        }
    }
    let (os, n) = best?;
    (!tie).then(|| (os.clone(), n as u64, (all.len() - n) as u64))
}

/// A field a signature may be generalised over.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    /// The MSS (`ver:ttl:olen:MSS:...`).
    Mss,
    /// The window size, not its scale (`...:WIN,scale:...`).
    Win,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Mss => "mss",
            Field::Win => "window",
        }
    }

    /// The field's value in `sig`, and `sig` with the field as `*`.
    fn split(self, sig: &str) -> Option<(String, String)> {
        let mut f: Vec<String> = sig.split(':').map(str::to_string).collect();
        let value = match self {
            Field::Mss => std::mem::replace(f.get_mut(3)?, "*".into()),
            Field::Win => {
                let (win, scale) = f.get(4)?.split_once(',')?;
                let (win, scale) = (win.to_string(), scale.to_string());
                f[4] = format!("*,{scale}");
                win
            }
        };
        Some((value, f.join(":")))
    }
}

/// Signatures that differ only in `field` merged into one with `*` there, when at least
/// `min_values` values were seen, every one of them has the same majority OS, and the merged
/// hosts still pass the thresholds; the others are left as they are.
fn generalise(
    groups: Vec<Group>,
    field: Field,
    min_values: usize,
    opts: SuggestOptions,
) -> Vec<Group> {
    let mut by_shape: BTreeMap<(bool, String), Vec<(String, Group)>> = BTreeMap::new();
    let mut out = Vec::new();
    for g in groups {
        match field.split(&g.sig) {
            Some((value, shape)) if value != "*" => {
                by_shape
                    .entry((g.to_srv, shape))
                    .or_default()
                    .push((value, g));
            }
            _ => out.push(g),
        }
    }
    for ((_, shape), members) in by_shape {
        let oses: BTreeSet<Option<String>> = members
            .iter()
            .map(|(_, g)| majority(g).map(|m| m.0))
            .collect();
        let merged = (members.len() >= min_values && oses.len() == 1)
            .then(|| merge(&members, field, shape))
            .filter(|m| passes(m, opts));
        match merged {
            Some(m) => out.push(m),
            None => out.extend(members.into_iter().map(|(_, g)| g)),
        }
    }
    out
}

/// `members` as one group with signature `shape`.
fn merge(members: &[(String, Group)], field: Field, shape: String) -> Group {
    let mut m = members[0].1.clone();
    m.sig = shape;
    for (_, g) in &members[1..] {
        m.seen.merge(&g.seen);
        for (os, hosts) in &g.hosts {
            m.hosts.entry(os.clone()).or_default().extend(hosts);
        }
    }
    let values: Vec<&str> = members.iter().map(|(v, _)| v.as_str()).collect();
    m.generalised = Some(format!("{} * (seen: {})", field.name(), values.join(", ")));
    m
}

/// Whether a group's hosts meet the thresholds.
fn passes(g: &Group, opts: SuggestOptions) -> bool {
    let Some((_, hosts, conflicting)) = majority(g) else {
        return false;
    };
    let share = conflicting as f64 / (hosts + conflicting) as f64;
    hosts >= opts.min_hosts && share <= opts.max_conflict
}

/// The candidate of a group that passes the thresholds.
fn candidate(
    g: &Group,
    db: &Database,
    sources: &Sources,
    opts: SuggestOptions,
) -> Option<Candidate> {
    if !passes(g, opts) {
        return None;
    }
    let (os, hosts, conflicting) = majority(g)?;
    let class = db.class_of_name(&os);
    let (before, mut blocked) = match &g.seen.label {
        None => ("??? (unknown)".to_string(), None),
        Some(l) => {
            let n = db.label_names(l.id);
            let text = match n.flavor {
                Some(f) => format!("{} {f}", n.name),
                None => n.name.to_string(),
            };
            let quality = g.seen.quality.name();
            // A specific exact match comes first whatever a later file says.
            let blocked =
                (g.seen.quality == Quality::Exact && g.generalised.is_none()).then(|| {
                    format!(
                        "an earlier database matches it exactly at its line {}, which comes first",
                        l.sig_line
                    )
                });
            (format!("{text} ({quality})"), blocked)
        }
    };
    if class.is_none() {
        blocked = Some(format!(
            "no OS label of the database names {os}, so it has no class"
        ));
    }
    Some(Candidate {
        to_srv: g.to_srv,
        sig: g.sig.clone(),
        class: class.unwrap_or("unix").to_string(),
        os,
        hosts,
        conflicting,
        observations: g.seen.observations,
        first_ns: g.seen.first_ns,
        last_ns: g.seen.last_ns,
        before,
        sources: g
            .seen
            .sources
            .iter()
            .map(|i| source_name(sources, *i))
            .collect(),
        generalised: g.generalised.clone(),
        blocked,
    })
}

/// An input's file name (not its folder: the evidence should not carry local paths).
fn source_name(sources: &Sources, i: usize) -> String {
    let full = sources.0.get(i).map_or("", |s| s);
    Path::new(full)
        .file_name()
        .map_or_else(|| full.to_string(), |n| n.to_string_lossy().into_owned())
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn when(ns: u64) -> String {
    let c = formats::time::Civil::from_ns(ns);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        c.date(),
        c.hour,
        c.minute,
        c.second
    )
}

/// The file's text, and the line of each candidate's `sig =` (0 for a commented one).
/// `cands` must be in file order (requests first), as [`candidates`] gives them.
pub fn render(cands: &[Candidate], opts: SuggestOptions) -> (String, Vec<u32>) {
    let mut t = String::new();
    let _ = writeln!(
        t,
        ";\n; Signatures learned by `analyze --suggest-sigs` from hosts whose HTTP User-Agent\n\
         ; names their OS (p0f.fp's ua_os list). Thresholds: at least {} hosts, at most {:.0}%\n\
         ; of a signature's hosts naming another OS. Load after the databases they were learned\n\
         ; against: analyze --db builtin:p0f.fp --db builtin:synscope.fp --db THIS.fp ...\n;",
        opts.min_hosts,
        opts.max_conflict * 100.0
    );
    let mut lines = Vec::with_capacity(cands.len());
    for to_srv in [true, false] {
        let section: Vec<&Candidate> = cands.iter().filter(|c| c.to_srv == to_srv).collect();
        if section.is_empty() {
            continue;
        }
        let _ = writeln!(t, "\n[tcp:{}]", if to_srv { "request" } else { "response" });
        for c in section {
            let line = push_entry(&mut t, c);
            lines.push(line);
        }
    }
    (t, lines)
}

/// Appends one entry with its evidence; the line of its `sig =` (0 when commented out).
fn push_entry(t: &mut String, c: &Candidate) -> u32 {
    let _ = writeln!(
        t,
        "\n; evidence: {} hosts whose User-Agent names {}, {} conflicting hosts, {} observations;\n\
         ;   first seen {}, last seen {}; before: {}; in: {}",
        c.hosts,
        c.os,
        c.conflicting,
        c.observations,
        when(c.first_ns),
        when(c.last_ns),
        c.before,
        c.sources.join(", ")
    );
    if let Some(g) = &c.generalised {
        let _ = writeln!(t, "; generalised: {g}");
    }
    let prefix = match &c.blocked {
        Some(why) => {
            let _ = writeln!(t, "; not loadable: {why}");
            "; "
        }
        None => "",
    };
    let _ = writeln!(t, "{prefix}label = s:{}:{}:{FLAVOR}", c.class, c.os);
    let _ = writeln!(t, "{prefix}sig   = {}", c.sig);
    if c.blocked.is_some() {
        0
    } else {
        t.lines().count() as u32
    }
}

/// The file for `cands`, checked by loading it after `files`: an entry an earlier database
/// or entry already covers is commented out with the reason. Returns the text and the
/// candidates as written.
pub fn checked(
    mut cands: Vec<Candidate>,
    files: &[DbFile],
    name: &str,
    opts: SuggestOptions,
) -> Result<(String, Vec<Candidate>), SuggestError> {
    loop {
        let (text, lines) = render(&cands, opts);
        let err = match Database::stack_then(files, name, &text) {
            Ok(_) => return Ok((text, cands)),
            Err(e) => e,
        };
        let DbError::Parse {
            line,
            kind: DbErrorKind::AlreadyCovered(prev),
            ..
        } = &err
        else {
            return Err(SuggestError::Invalid(err));
        };
        let Some(i) = lines.iter().position(|l| l == line) else {
            return Err(SuggestError::Invalid(err));
        };
        cands[i].blocked = Some(format!(
            "already covered by the signature at line {prev} of an earlier database or entry"
        ));
    }
}

/// Writes `text` to `path` atomically (a temporary name, then renamed).
pub fn write(path: &Path, text: &str) -> Result<(), SuggestError> {
    formats::files::write_atomic(path, text.as_bytes()).map_err(|cause| SuggestError::Write {
        path: path.display().to_string(),
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(i: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, i])
    }

    /// A group of `sig` with hosts `1..=n` naming `os` and `conflicts` more naming FreeBSD.
    fn group(sig: &str, os: &str, n: u8, conflicts: u8) -> Group {
        let mut hosts = BTreeMap::new();
        hosts.insert(os.to_string(), (1..=n).map(host).collect());
        if conflicts > 0 {
            hosts.insert(
                "FreeBSD".to_string(),
                (100..100 + conflicts).map(host).collect(),
            );
        }
        Group {
            to_srv: true,
            sig: sig.to_string(),
            hosts,
            seen: Seen {
                observations: 1,
                first_ns: 0,
                last_ns: 0,
                label: None,
                quality: Quality::Unknown,
                sources: Vec::new(),
            },
            generalised: None,
        }
    }

    const OPTS: SuggestOptions = SuggestOptions {
        min_hosts: 3,
        max_conflict: 0.1,
    };

    #[test]
    fn thresholds_count_hosts_and_conflicts() {
        let sig = "4:64:0:1460:65535,8:mss,nop,nop,sok,nop,ws:df,id+:0";
        assert!(passes(&group(sig, "Windows", 3, 0), OPTS));
        assert!(!passes(&group(sig, "Windows", 2, 0), OPTS));
        // 9 against 1 is a tenth; 8 against 1 is more.
        assert!(passes(&group(sig, "Windows", 9, 1), OPTS));
        assert!(!passes(&group(sig, "Windows", 8, 1), OPTS));
        // A tie has no majority.
        assert_eq!(majority(&group(sig, "Windows", 2, 2)), None);
    }

    #[test]
    fn generalised_only_where_the_evidence_covers_it() {
        let a = "4:64:0:1460:65535,8:mss,nop,nop,sok,nop,ws:df,id+:0";
        let b = "4:64:0:1400:65535,8:mss,nop,nop,sok,nop,ws:df,id+:0";
        // Two MSS values: one entry with `*`, its hosts together.
        let mut other = group(b, "Windows", 0, 0);
        other
            .hosts
            .insert("Windows".into(), [host(10), host(11)].into());
        let out = generalise(vec![group(a, "Windows", 2, 0), other], Field::Mss, 2, OPTS);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].sig,
            "4:64:0:*:65535,8:mss,nop,nop,sok,nop,ws:df,id+:0"
        );
        assert_eq!(majority(&out[0]).map(|m| m.1), Some(4));
        // Not when the two name different OSes.
        let out = generalise(
            vec![group(a, "Windows", 3, 0), group(b, "Linux", 3, 0)],
            Field::Mss,
            2,
            OPTS,
        );
        assert_eq!(out.len(), 2);
        // Two window values are not enough for a `*` window.
        let w = "4:64:0:1460:8192,8:mss,nop,nop,sok,nop,ws:df,id+:0";
        let out = generalise(
            vec![group(a, "Windows", 3, 0), group(w, "Windows", 3, 0)],
            Field::Win,
            3,
            OPTS,
        );
        assert_eq!(out.len(), 2);
    }
}
