//! The default stdout report: plain-text tables meant for a terminal (and stable enough to be
//! a golden file).

use std::fmt::Write as _;
use std::io::{self, Write};

use super::Totals;
use super::agg::Summary;

/// Column alignment.
#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

use Align::{Left as L, Right as R};

/// Renders rows as aligned columns under a header, two spaces apart, indented by two.
fn grid(out: &mut String, header: &[(&str, Align)], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = header.iter().map(|(h, _)| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::from(" ");
        for ((cell, (_, align)), w) in cells.zip(header).zip(&width) {
            s.push(' ');
            let pad = w.saturating_sub(cell.chars().count());
            match align {
                Align::Left => {
                    s.push_str(cell);
                    s.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(cell);
                }
            }
            s.push(' ');
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(out, &mut header.iter().map(|(h, _)| *h));
    for r in rows {
        line(out, &mut r.iter().map(String::as_str));
    }
}

fn pct(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

fn section(out: &mut String, title: &str) {
    out.push('\n');
    out.push_str(title);
    out.push('\n');
}

/// The report as text: the run's counters, then one table per aggregation of the summary.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    out.push_str("synscope analyze report\n");
    totals(&mut out, &s.totals);
    link_types(&mut out, &s.totals);
    os_mix(&mut out, s);
    quality(&mut out, s);
    top_hosts(&mut out, s);
    unknown_sigs(&mut out, s);
    mtu(&mut out, s);
    distance(&mut out, s);
    traffic(&mut out, s);
    agreement(&mut out, s);
    encapsulations(&mut out, &s.totals);
    failed(&mut out, &s.totals);
    out
}

/// Every counter of the run: inputs, ingestion, engine outcomes and observations by module.
fn totals(out: &mut String, t: &Totals) {
    section(out, "Totals");
    let mut rows: Vec<Vec<String>> = vec![
        vec!["inputs".into(), t.inputs.to_string()],
        vec!["packets".into(), t.ingest.packets.to_string()],
        vec!["captured bytes".into(), t.ingest.bytes.to_string()],
        vec!["TCP packets".into(), t.ingest.tcp.to_string()],
        vec!["SYN records".into(), t.ingest.syn.to_string()],
        vec!["SYN+ACK records".into(), t.ingest.syn_ack.to_string()],
    ];
    if !t.failed.is_empty() {
        rows.insert(1, vec!["inputs failed".into(), t.failed.len().to_string()]);
    }
    for (reason, n) in &t.ingest.skipped {
        rows.push(vec![format!("skipped packets: {reason}"), n.to_string()]);
    }
    for (reason, n) in &t.ingest.syn_skipped {
        rows.push(vec![format!("SYN not recorded: {reason}"), n.to_string()]);
    }
    for (status, n) in &t.engine {
        rows.push(vec![format!("records {status}"), n.to_string()]);
    }
    for (module, n) in &t.observations {
        rows.push(vec![format!("observations mod={module}"), n.to_string()]);
    }
    grid(out, &[("counter", L), ("value", R)], &rows);
}

/// Frames by link type; left out when no capture was read (recordings only).
fn link_types(out: &mut String, t: &Totals) {
    if t.ingest.link_types.is_empty() {
        return;
    }
    section(out, "Link types (frames)");
    let rows: Vec<Vec<String>> = t
        .ingest
        .link_types
        .iter()
        .map(|(l, n)| vec![l.to_string(), n.to_string()])
        .collect();
    grid(out, &[("link type", L), ("frames", R)], &rows);
}

fn os_mix(out: &mut String, s: &Summary) {
    section(
        out,
        &format!(
            "OS mix ({} SYN and SYN+ACK observations)",
            s.tcp_observations
        ),
    );
    let rows: Vec<Vec<String>> = s
        .os_mix
        .iter()
        .map(|r| {
            vec![
                r.label_type.clone().unwrap_or_else(|| "???".into()),
                or_dash(&r.class),
                r.name.clone().unwrap_or_else(|| "unknown".into()),
                or_dash(&r.flavor),
                r.count.to_string(),
                pct(r.share),
            ]
        })
        .collect();
    grid(
        out,
        &[
            ("type", L),
            ("class", L),
            ("name", L),
            ("flavor", L),
            ("count", R),
            ("share", R),
        ],
        &rows,
    );
}

fn quality(out: &mut String, s: &Summary) {
    section(out, "Match quality");
    let rows: Vec<Vec<String>> = s
        .quality_mix
        .iter()
        .map(|r| vec![r.key.clone(), r.count.to_string(), pct(r.share)])
        .collect();
    grid(out, &[("quality", L), ("count", R), ("share", R)], &rows);
}

fn top_hosts(out: &mut String, s: &Summary) {
    section(
        out,
        &format!("Top hosts ({} of {})", s.top_hosts.len(), s.hosts),
    );
    let rows: Vec<Vec<String>> = s
        .top_hosts
        .iter()
        .map(|r| {
            vec![
                r.host.clone(),
                r.observations.to_string(),
                r.os.clone().unwrap_or_else(|| "unknown".into()),
            ]
        })
        .collect();
    grid(out, &[("host", L), ("observations", R), ("os", L)], &rows);
}

fn unknown_sigs(out: &mut String, s: &Summary) {
    section(out, "Top unknown signatures");
    let rows: Vec<Vec<String>> = s
        .unknown_sigs
        .iter()
        .map(|r| vec![r.count.to_string(), r.module.clone(), r.raw_sig.clone()])
        .collect();
    grid(out, &[("count", R), ("mod", L), ("raw_sig", L)], &rows);
}

/// SYN labels against the User-Agent OS of the same hosts; left out when no host sent a
/// User-Agent naming an OS.
fn agreement(out: &mut String, s: &Summary) {
    let a = &s.agreement;
    if a.ua_hosts == 0 {
        return;
    }
    section(out, "SYN labels vs User-Agent OS (host signatures)");
    let of = |n: u64| {
        let share = if a.host_sigs == 0 {
            0.0
        } else {
            n as f64 / a.host_sigs as f64
        };
        vec![n.to_string(), pct(share)]
    };
    let mut rows: Vec<Vec<String>> = vec![
        vec![
            "hosts with a User-Agent OS".into(),
            a.ua_hosts.to_string(),
            String::new(),
        ],
        vec![
            "  naming several OSes (left out)".into(),
            a.mixed_hosts.to_string(),
            String::new(),
        ],
        vec!["hosts compared".into(), a.hosts.to_string(), String::new()],
        vec![
            "host signatures compared".into(),
            a.host_sigs.to_string(),
            String::new(),
        ],
    ];
    for (what, n) in [
        ("same class", a.class_agree),
        ("same OS name", a.name_agree),
        ("unknown", a.unknown),
        ("generic match", a.generic),
        ("fuzzy match", a.fuzzy),
    ] {
        let mut row = vec![format!("  {what}")];
        row.extend(of(n));
        rows.push(row);
    }
    if a.dishonest_requests > 0 {
        rows.push(vec![
            "dishonest User-Agents (left out)".into(),
            a.dishonest_requests.to_string(),
            String::new(),
        ]);
    }
    grid(out, &[("", L), ("count", R), ("share", R)], &rows);
    if a.disagreeing.is_empty() {
        return;
    }
    section(out, "Top signatures not naming the User-Agent OS");
    let rows: Vec<Vec<String>> = a
        .disagreeing
        .iter()
        .map(|r| {
            vec![
                r.hosts.to_string(),
                r.observations.to_string(),
                r.module.to_string(),
                r.ua_os.clone(),
                r.label.clone().unwrap_or_else(|| "???".into()),
                r.sig.clone(),
            ]
        })
        .collect();
    grid(
        out,
        &[
            ("hosts", R),
            ("count", R),
            ("mod", L),
            ("user-agent os", L),
            ("syn label", L),
            ("sig", L),
        ],
        &rows,
    );
}

fn mtu(out: &mut String, s: &Summary) {
    section(out, "MTU and link");
    let rows: Vec<Vec<String>> = s
        .mtu_mix
        .iter()
        .map(|r| {
            vec![
                r.mtu.to_string(),
                r.link.clone().unwrap_or_else(|| "unknown".into()),
                r.count.to_string(),
                pct(r.share),
            ]
        })
        .collect();
    grid(
        out,
        &[("mtu", R), ("link", L), ("count", R), ("share", R)],
        &rows,
    );
}

/// Hops with a bar of up to 40 `#`, scaled to the most common distance.
fn distance(out: &mut String, s: &Summary) {
    section(out, "Distance (hops)");
    let max = s.distance.iter().map(|d| d.1).max().unwrap_or(0);
    let rows: Vec<Vec<String>> = s
        .distance
        .iter()
        .map(|(d, n)| {
            let bar = if max == 0 { 0 } else { (n * 40).div_ceil(max) };
            vec![d.to_string(), n.to_string(), "#".repeat(bar as usize)]
        })
        .collect();
    grid(out, &[("hops", R), ("count", R), ("", L)], &rows);
}

/// Flows, packets and bytes by the OS of their client; only when flow counters were read.
fn traffic(out: &mut String, s: &Summary) {
    let Some(traffic) = &s.traffic_by_os else {
        return;
    };
    section(out, "Traffic by client OS (all TCP packets of each flow)");
    let rows: Vec<Vec<String>> = traffic
        .iter()
        .map(|r| {
            vec![
                r.os.clone()
                    .unwrap_or_else(|| "unknown or no SYN seen".into()),
                r.flows.to_string(),
                r.packets.to_string(),
                r.bytes.to_string(),
            ]
        })
        .collect();
    grid(
        out,
        &[("os", L), ("flows", R), ("packets", R), ("bytes", R)],
        &rows,
    );
}

/// Records by the outermost encapsulation they were found inside (VXLAN by VNI, GRE by key,
/// ...); left out when every record was plain.
fn encapsulations(out: &mut String, t: &Totals) {
    if t.encapsulations.is_empty() {
        return;
    }
    section(out, "Encapsulations (records by outermost encapsulation)");
    let rows: Vec<Vec<String>> = t
        .encapsulations
        .iter()
        .map(|((kind, id), c)| {
            vec![
                record::encap::name(*kind).unwrap_or("invalid").to_string(),
                id.map_or_else(|| "-".to_string(), |id| id.to_string()),
                c.syn.to_string(),
                c.syn_ack.to_string(),
                c.max_depth.to_string(),
            ]
        })
        .collect();
    grid(
        out,
        &[
            ("encapsulation", L),
            ("id", R),
            ("SYN", R),
            ("SYN+ACK", R),
            ("max depth", R),
        ],
        &rows,
    );
}

/// The inputs `--keep-going` passed over, with their errors.
fn failed(out: &mut String, t: &Totals) {
    if t.failed.is_empty() {
        return;
    }
    section(out, "Failed inputs");
    for (path, err) in &t.failed {
        let _ = writeln!(out, "  {path}: {err}");
    }
}

/// Writes the report.
pub fn write(s: &Summary, w: &mut impl Write) -> io::Result<()> {
    w.write_all(render(s).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_aligns_columns() {
        let mut s = String::new();
        grid(
            &mut s,
            &[("name", Align::Left), ("n", Align::Right)],
            &[
                vec!["a".into(), "1000".into()],
                vec!["long name".into(), "7".into()],
            ],
        );
        assert_eq!(
            s,
            "  name          n\n  a          1000\n  long name     7\n"
        );
    }
}
