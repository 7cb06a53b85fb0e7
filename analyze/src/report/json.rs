//! The summary as JSON (the `summary` member of `--format json`).

use serde_json::{Map, Value, json};

use super::agg::Summary;

/// The summary as a JSON value. Shares are fractions (0..=1); missing labels are `null`.
pub fn value(s: &Summary) -> Value {
    let t = &s.totals;
    let map = |m: &mut dyn Iterator<Item = (String, u64)>| -> Value {
        Value::Object(m.map(|(k, v)| (k, json!(v))).collect::<Map<_, _>>())
    };
    json!({
        "totals": {
            "inputs": t.inputs,
            "failed_inputs": t.failed.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
            "packets": t.ingest.packets,
            "captured_bytes": t.ingest.bytes,
            "tcp_packets": t.ingest.tcp,
            "syn": t.ingest.syn,
            "syn_ack": t.ingest.syn_ack,
            "skipped_packets": map(&mut t.ingest.skipped.iter().map(|(k, v)| (k.to_string(), *v))),
            "syn_not_recorded": map(&mut t.ingest.syn_skipped.iter().map(|(k, v)| (k.to_string(), *v))),
            "link_types": map(&mut t.ingest.link_types.iter().map(|(k, v)| (k.to_string(), *v))),
            "records": map(&mut t.engine.iter().map(|(k, v)| (k.clone(), *v))),
            "observations": map(&mut t.observations.iter().map(|(k, v)| (k.clone(), *v))),
        },
        "encapsulations": t.encapsulations.iter().map(|((kind, id), c)| json!({
            "encapsulation": record::encap::name(*kind), "id": id,
            "syn": c.syn, "syn_ack": c.syn_ack, "max_depth": c.max_depth,
        })).collect::<Vec<_>>(),
        "tcp_observations": s.tcp_observations,
        "os_mix": s.os_mix.iter().map(|r| json!({
            "label_type": r.label_type, "class": r.class, "name": r.name, "flavor": r.flavor,
            "count": r.count, "share": r.share,
        })).collect::<Vec<_>>(),
        "quality_mix": s.quality_mix.iter().map(|r| json!({
            "quality": r.key, "count": r.count, "share": r.share,
        })).collect::<Vec<_>>(),
        "hosts": s.hosts,
        "top_hosts": s.top_hosts.iter().map(|r| json!({
            "host": r.host, "observations": r.observations, "os": r.os,
        })).collect::<Vec<_>>(),
        "top_unknown_signatures": s.unknown_sigs.iter().map(|r| json!({
            "module": r.module, "raw_sig": r.raw_sig, "count": r.count,
        })).collect::<Vec<_>>(),
        "mtu_mix": s.mtu_mix.iter().map(|r| json!({
            "mtu": r.mtu, "link": r.link, "count": r.count, "share": r.share,
        })).collect::<Vec<_>>(),
        "distance": s.distance.iter().map(|(d, n)| json!({"hops": d, "count": n})).collect::<Vec<_>>(),
        "traffic_by_os": s.traffic_by_os.as_ref().map(|rows| rows.iter().map(|r| json!({
            "os": r.os, "flows": r.flows, "packets": r.packets, "bytes": r.bytes,
        })).collect::<Vec<_>>()),
        "user_agent_agreement": agreement(&s.agreement),
    })
}

/// The agreement section: counts of host signatures, and the disagreeing signatures.
fn agreement(a: &crate::learn::Agreement) -> Value {
    json!({
        "ua_hosts": a.ua_hosts,
        "mixed_hosts": a.mixed_hosts,
        "dishonest_requests": a.dishonest_requests,
        "hosts": a.hosts,
        "host_signatures": a.host_sigs,
        "observations": a.observations,
        "class_agree": a.class_agree,
        "name_agree": a.name_agree,
        "unknown": a.unknown,
        "generic": a.generic,
        "fuzzy": a.fuzzy,
        "disagreeing": a.disagreeing.iter().map(|r| json!({
            "module": r.module, "sig": r.sig, "label": r.label, "ua_os": r.ua_os,
            "hosts": r.hosts, "observations": r.observations,
        })).collect::<Vec<_>>(),
    })
}

/// Appends the summary, pretty-printed and indented to sit one level inside a document.
pub fn summary(s: &Summary, out: &mut String) {
    // Serialising a `Value` cannot fail.
    let text = serde_json::to_string_pretty(&value(s)).unwrap_or_default();
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push_str("\n  ");
        }
        out.push_str(line);
    }
}
