//! Agreement of the SYN labels with the User-Agent: how well the database's labels fit the
//! OS the same hosts' browsers name.
//!
//! The unit is a host signature: one host (with one User-Agent OS) and one of the SYN or
//! SYN+ACK signatures it sent. Most hosts have one; counting each signature keeps a host
//! whose signatures disagree with each other from being called either right or wrong.

use std::collections::BTreeMap;

use p0f::{Database, Quality};

use super::evidence::{HostSig, Resolved, same_os, sig_line};

/// The agreement section of the summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Agreement {
    /// Hosts with an honest HTTP request whose User-Agent names an OS.
    pub ua_hosts: u64,
    /// Of those, hosts naming several OSes: not compared.
    pub mixed_hosts: u64,
    /// Requests left out because p0f calls their User-Agent dishonest.
    pub dishonest_requests: u64,
    /// Hosts compared (one User-Agent OS, at least one SYN or SYN+ACK).
    pub hosts: u64,
    /// Host signatures compared, and their observations.
    pub host_sigs: u64,
    pub observations: u64,
    /// Host signatures without a match (`os=???`).
    pub unknown: u64,
    /// Matched by a generic (`g:`) signature.
    pub generic: u64,
    /// Matched fuzzily.
    pub fuzzy: u64,
    /// The label's class (`win`, `unix`, ...) is the User-Agent OS's class.
    pub class_agree: u64,
    /// The label's OS name is the User-Agent's ([`same_os`]).
    pub name_agree: u64,
    /// The signatures most often unknown or naming another OS, most hosts first.
    pub disagreeing: Vec<DisagreeRow>,
}

/// A signature whose label does not name the OS of its hosts' User-Agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisagreeRow {
    /// `syn` or `syn+ack`.
    pub module: &'static str,
    /// The signature as a database line would hold it (initial TTL; [`sig_line`]), or p0f's
    /// `raw_sig` when the distance is unknown.
    pub sig: String,
    /// The label's `name flavor`, `None` for unknown.
    pub label: Option<String>,
    pub ua_os: String,
    pub hosts: u64,
    pub observations: u64,
}

/// A disagreeing row's key: module, signature, label, User-Agent OS.
type RowKey = (&'static str, String, Option<String>, String);

/// The agreement of `resolved`'s host signatures; `top` bounds the disagreeing rows.
pub fn agreement(resolved: &Resolved<'_>, dishonest: u64, db: &Database, top: usize) -> Agreement {
    let mut a = Agreement {
        ua_hosts: resolved.ua_hosts,
        mixed_hosts: resolved.mixed_hosts,
        dishonest_requests: dishonest,
        ..Agreement::default()
    };
    let mut hosts = Vec::new();
    let mut rows: BTreeMap<RowKey, (u64, u64)> = BTreeMap::new();
    for p in &resolved.pairs {
        hosts.push(p.host);
        a.host_sigs += 1;
        a.observations += p.seen.observations;
        let verdict = verdict(p, db);
        a.unknown += u64::from(verdict.label.is_none());
        a.generic += u64::from(p.seen.quality == Quality::Generic);
        a.fuzzy += u64::from(p.seen.quality == Quality::Fuzzy);
        a.class_agree += u64::from(verdict.class_agree);
        a.name_agree += u64::from(verdict.name_agree);
        if !verdict.name_agree {
            let sig = sig_line(p.raw).unwrap_or_else(|| p.raw.to_string());
            let key = (p.kind.keyword(), sig, verdict.label, p.ua_os.to_string());
            let e = rows.entry(key).or_default();
            e.0 += 1;
            e.1 += p.seen.observations;
        }
    }
    hosts.sort_unstable();
    hosts.dedup();
    a.hosts = hosts.len() as u64;
    let mut rows: Vec<DisagreeRow> = rows
        .into_iter()
        .map(
            |((module, sig, label, ua_os), (hosts, observations))| DisagreeRow {
                module,
                sig,
                label,
                ua_os,
                hosts,
                observations,
            },
        )
        .collect();
    // Stable: the map's order breaks ties.
    rows.sort_by_key(|r| std::cmp::Reverse((r.hosts, r.observations)));
    rows.truncate(top);
    a.disagreeing = rows;
    a
}

/// How one host signature's label compares with its host's User-Agent OS.
struct Verdict {
    /// `name flavor`, `None` for unknown.
    label: Option<String>,
    class_agree: bool,
    name_agree: bool,
}

fn verdict(p: &HostSig<'_>, db: &Database) -> Verdict {
    let Some(l) = &p.seen.label else {
        return Verdict {
            label: None,
            class_agree: false,
            name_agree: false,
        };
    };
    let names = db.label_names(l.id);
    let ua_class = db.class_of_name(p.ua_os);
    Verdict {
        label: Some(match names.flavor {
            Some(f) => format!("{} {f}", names.name),
            None => names.name.to_string(),
        }),
        class_agree: names.class.is_some() && names.class == ua_class,
        name_agree: same_os(names.name, p.ua_os),
    }
}
