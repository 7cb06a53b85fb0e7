//! The summary's aggregations, done with polars lazy frames.
//!
//! Observations arrive one at a time and there may be millions, so the [`Aggregator`] keeps
//! only a chunk of compact rows; each full chunk becomes a DataFrame that is immediately
//! grouped into partial counts (OS mix, quality, hosts, unknown signatures, MTU, distance).
//! Partials are re-grouped when they pile up and once more at the end. Memory therefore
//! follows the number of *distinct* keys (hosts, signatures), not the number of observations.
//!
//! Every final table is sorted on all its columns (count first) so ties come out in the same
//! order on every run.

use std::fmt::Write as _;

use polars::prelude::*;
use record::FlowKey;

use crate::analysis::Totals;
use crate::p0f::{EventKind, MatchedLabel};
use crate::parallel::FlowTable;
use crate::results::{Observation, host_addr, label_type_name};

/// Rows kept before they are grouped into partial counts.
const CHUNK_ROWS: usize = 100_000;

/// Partial frames kept per table before they are re-grouped into one.
const MAX_PARTIALS: usize = 16;

type PResult<T> = Result<T, String>;

fn perr(e: PolarsError) -> String {
    e.to_string()
}

/// An OS (or application) label as one line of text: `name flavor`, as p0f prints it.
pub fn label_text(l: &MatchedLabel) -> String {
    match &l.flavor {
        Some(f) if !f.is_empty() => format!("{} {f}", l.name),
        _ => l.name.to_string(),
    }
}

/// One row of the OS mix.
#[derive(Clone, Debug, PartialEq)]
pub struct OsRow {
    /// `os` or `app`; `None` for unknown signatures.
    pub label_type: Option<String>,
    pub class: Option<String>,
    pub name: Option<String>,
    pub flavor: Option<String>,
    pub count: u64,
    /// Share of all SYN/SYN+ACK observations, 0..=1.
    pub share: f64,
}

/// A value with its count and share.
#[derive(Clone, Debug, PartialEq)]
pub struct CountRow {
    pub key: String,
    pub count: u64,
    pub share: f64,
}

/// One of the most observed hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRow {
    pub host: String,
    /// SYN/SYN+ACK observations about the host.
    pub observations: u64,
    /// Its most often matched label (`name flavor`), `None` when never matched.
    pub os: Option<String>,
}

/// An unknown signature and how often it was seen.
#[derive(Clone, Debug, PartialEq)]
pub struct SigRow {
    /// `syn` or `syn+ack`.
    pub module: String,
    pub raw_sig: String,
    pub count: u64,
}

/// One row of the MTU mix.
#[derive(Clone, Debug, PartialEq)]
pub struct MtuRow {
    pub link: Option<String>,
    pub mtu: u32,
    pub count: u64,
    pub share: f64,
}

/// Packets and bytes of the flows whose client was labelled with one OS.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficRow {
    /// Client OS (`name flavor`), `None` for connections whose SYN was not matched or not
    /// seen.
    pub os: Option<String>,
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// Everything the `table` and `json` reports show.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub totals: Totals,
    /// SYN and SYN+ACK observations (the denominator of the shares).
    pub tcp_observations: u64,
    pub os_mix: Vec<OsRow>,
    pub quality_mix: Vec<CountRow>,
    /// Distinct hosts with a SYN/SYN+ACK observation.
    pub hosts: u64,
    pub top_hosts: Vec<HostRow>,
    pub unknown_sigs: Vec<SigRow>,
    pub mtu_mix: Vec<MtuRow>,
    /// `(distance, count)`, by distance.
    pub distance: Vec<(u32, u64)>,
    /// With flow counters: traffic by client OS.
    pub traffic_by_os: Option<Vec<TrafficRow>>,
}

/// Compact rows of one chunk.
#[derive(Default)]
struct Chunk {
    module: Vec<&'static str>,
    host: Vec<String>,
    label_type: Vec<Option<&'static str>>,
    class: Vec<Option<String>>,
    name: Vec<Option<String>>,
    flavor: Vec<Option<String>>,
    label: Vec<Option<String>>,
    quality: Vec<&'static str>,
    unknown_sig: Vec<Option<String>>,
    distance: Vec<u32>,
    mtu_link: Vec<Option<String>>,
    mtu: Vec<u32>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.module.len() + self.mtu.len()
    }
}

/// Partial counts of one table, re-grouped by the same keys when merged.
struct Partials {
    keys: &'static [&'static str],
    frames: Vec<DataFrame>,
}

impl Partials {
    fn new(keys: &'static [&'static str]) -> Partials {
        Partials {
            keys,
            frames: Vec::new(),
        }
    }

    fn regroup(&self, lf: LazyFrame) -> LazyFrame {
        let keys: Vec<Expr> = self.keys.iter().map(|k| col(*k)).collect();
        lf.group_by(keys).agg([col("count").sum().alias("count")])
    }

    fn push(&mut self, df: DataFrame) -> PResult<()> {
        self.frames.push(df);
        if self.frames.len() > MAX_PARTIALS {
            let merged = self.merged()?.collect().map_err(perr)?;
            self.frames = vec![merged];
        }
        Ok(())
    }

    /// All partials concatenated and re-grouped.
    fn merged(&self) -> PResult<LazyFrame> {
        if self.frames.is_empty() {
            return Err("no partial counts".into());
        }
        let lfs: Vec<LazyFrame> = self.frames.iter().map(|d| d.clone().lazy()).collect();
        let all = concat(lfs, UnionArgs::default()).map_err(perr)?;
        Ok(self.regroup(all))
    }
}

/// Accumulates observations into the summary's tables.
pub struct Aggregator {
    chunk: Chunk,
    os: Partials,
    quality: Partials,
    hosts: Partials,
    sigs: Partials,
    distance: Partials,
    mtu: Partials,
    tcp_rows: u64,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::new()
    }
}

/// Rows per group, as `count` (u64 whatever polars' index type).
fn count() -> Expr {
    len().cast(DataType::UInt64).alias("count")
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator {
            chunk: Chunk::default(),
            os: Partials::new(&["label_type", "class", "name", "flavor"]),
            quality: Partials::new(&["quality"]),
            hosts: Partials::new(&["host", "label"]),
            sigs: Partials::new(&["module", "raw_sig"]),
            distance: Partials::new(&["distance"]),
            mtu: Partials::new(&["link", "mtu"]),
            tcp_rows: 0,
        }
    }

    /// Adds one observation (only SYN/SYN+ACK and MTU observations are aggregated).
    pub fn add(&mut self, obs: &Observation) -> PResult<()> {
        let ev = &obs.event;
        let c = &mut self.chunk;
        match &ev.kind {
            EventKind::Tcp(t) => {
                self.tcp_rows += 1;
                c.module.push(ev.module());
                c.host.push(host_addr(ev).to_string());
                let l = t.label.as_ref();
                c.label_type.push(l.map(|l| label_type_name(l.label_type)));
                c.class
                    .push(l.and_then(|l| l.class.as_deref().map(str::to_string)));
                c.name.push(l.map(|l| l.name.to_string()));
                c.flavor
                    .push(l.and_then(|l| l.flavor.as_deref().map(str::to_string)));
                c.label.push(l.map(label_text));
                c.quality.push(t.quality.name());
                c.unknown_sig
                    .push(l.is_none().then(|| t.raw_sig.to_string()));
                c.distance.push(u32::from(t.distance));
            }
            EventKind::Mtu { link, mtu } => {
                c.mtu_link.push(link.as_deref().map(str::to_string));
                c.mtu.push(*mtu);
            }
            _ => {}
        }
        if self.chunk.len() >= CHUNK_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Groups the pending chunk into partial counts.
    fn flush(&mut self) -> PResult<()> {
        let c = std::mem::take(&mut self.chunk);
        if !c.module.is_empty() {
            let df = df!(
                "module" => c.module,
                "host" => c.host,
                "label_type" => c.label_type,
                "class" => c.class,
                "name" => c.name,
                "flavor" => c.flavor,
                "label" => c.label,
                "quality" => c.quality,
                "raw_sig" => c.unknown_sig,
                "distance" => c.distance,
            )
            .map_err(perr)?;
            let lf = df.lazy();
            for p in [
                &mut self.os,
                &mut self.quality,
                &mut self.hosts,
                &mut self.distance,
            ] {
                let keys: Vec<Expr> = p.keys.iter().map(|k| col(*k)).collect();
                let part = lf
                    .clone()
                    .group_by(keys)
                    .agg([count()])
                    .collect()
                    .map_err(perr)?;
                p.push(part)?;
            }
            let sigs = lf
                .filter(col("raw_sig").is_not_null())
                .group_by([col("module"), col("raw_sig")])
                .agg([count()])
                .collect()
                .map_err(perr)?;
            self.sigs.push(sigs)?;
        }
        if !c.mtu.is_empty() {
            let df = df!("link" => c.mtu_link, "mtu" => c.mtu).map_err(perr)?;
            let part = df
                .lazy()
                .group_by([col("link"), col("mtu")])
                .agg([count()])
                .collect()
                .map_err(perr)?;
            self.mtu.push(part)?;
        }
        Ok(())
    }

    /// The final tables. `top` bounds the host and signature lists.
    pub fn finish(mut self, totals: &Totals, flows: &FlowTotals, top: usize) -> PResult<Summary> {
        self.flush()?;
        let top = IdxSize::try_from(top).unwrap_or(IdxSize::MAX);
        let tcp = self.tcp_rows;
        let share = |count: u64, of: u64| {
            if of == 0 {
                0.0
            } else {
                count as f64 / of as f64
            }
        };
        let desc_then_asc = |n: usize| {
            SortMultipleOptions::default()
                .with_order_descending_multi(std::iter::once(true).chain((1..n).map(|_| false)))
                .with_nulls_last(true)
        };

        let mut os_mix = Vec::new();
        if !self.os.frames.is_empty() {
            let df = self
                .os
                .merged()?
                .sort(
                    ["count", "label_type", "class", "name", "flavor"],
                    desc_then_asc(5),
                )
                .collect()
                .map_err(perr)?;
            let lt = strs(&df, "label_type")?;
            let cl = strs(&df, "class")?;
            let nm = strs(&df, "name")?;
            let fl = strs(&df, "flavor")?;
            for (i, count) in u64s(&df, "count")?.into_iter().enumerate() {
                os_mix.push(OsRow {
                    label_type: lt[i].clone(),
                    class: cl[i].clone(),
                    name: nm[i].clone(),
                    flavor: fl[i].clone(),
                    count,
                    share: share(count, tcp),
                });
            }
        }

        let mut quality_mix = Vec::new();
        if !self.quality.frames.is_empty() {
            let df = self
                .quality
                .merged()?
                .sort(["count", "quality"], desc_then_asc(2))
                .collect()
                .map_err(perr)?;
            let q = strs(&df, "quality")?;
            for (i, count) in u64s(&df, "count")?.into_iter().enumerate() {
                quality_mix.push(CountRow {
                    key: q[i].clone().unwrap_or_default(),
                    count,
                    share: share(count, tcp),
                });
            }
        }

        let (mut hosts, mut top_hosts) = (0, Vec::new());
        if !self.hosts.frames.is_empty() {
            let merged = self.hosts.merged()?.collect().map_err(perr)?;
            let per_host = merged
                .clone()
                .lazy()
                .group_by([col("host")])
                .agg([col("count").sum().alias("observations")]);
            // The most often matched label of each host (ties: the smaller label).
            let best = merged
                .lazy()
                .filter(col("label").is_not_null())
                .sort(["host", "count", "label"], {
                    SortMultipleOptions::default().with_order_descending_multi([false, true, false])
                })
                .group_by_stable([col("host")])
                .agg([col("label").first().alias("label")]);
            let all = per_host
                .left_join(best, col("host"), col("host"))
                .sort(["observations", "host"], desc_then_asc(2))
                .collect()
                .map_err(perr)?;
            hosts = all.height() as u64;
            let df = all.head(Some(top as usize));
            let h = strs(&df, "host")?;
            let l = strs(&df, "label")?;
            for (i, n) in u64s(&df, "observations")?.into_iter().enumerate() {
                top_hosts.push(HostRow {
                    host: h[i].clone().unwrap_or_default(),
                    observations: n,
                    os: l[i].clone(),
                });
            }
        }

        let mut unknown_sigs = Vec::new();
        if !self.sigs.frames.is_empty() {
            let df = self
                .sigs
                .merged()?
                .sort(["count", "module", "raw_sig"], desc_then_asc(3))
                .limit(top)
                .collect()
                .map_err(perr)?;
            let m = strs(&df, "module")?;
            let s = strs(&df, "raw_sig")?;
            for (i, count) in u64s(&df, "count")?.into_iter().enumerate() {
                unknown_sigs.push(SigRow {
                    module: m[i].clone().unwrap_or_default(),
                    raw_sig: s[i].clone().unwrap_or_default(),
                    count,
                });
            }
        }

        let mut mtu_mix = Vec::new();
        if !self.mtu.frames.is_empty() {
            let df = self
                .mtu
                .merged()?
                .sort(["count", "mtu", "link"], desc_then_asc(3))
                .collect()
                .map_err(perr)?;
            let total: u64 = u64s(&df, "count")?.iter().sum();
            let l = strs(&df, "link")?;
            let m = u32s(&df, "mtu")?;
            for (i, count) in u64s(&df, "count")?.into_iter().enumerate() {
                mtu_mix.push(MtuRow {
                    link: l[i].clone(),
                    mtu: m[i],
                    count,
                    share: share(count, total),
                });
            }
        }

        let mut distance = Vec::new();
        if !self.distance.frames.is_empty() {
            let df = self
                .distance
                .merged()?
                .sort(["distance"], SortMultipleOptions::default())
                .collect()
                .map_err(perr)?;
            let d = u32s(&df, "distance")?;
            for (i, count) in u64s(&df, "count")?.into_iter().enumerate() {
                distance.push((d[i], count));
            }
        }

        Ok(Summary {
            totals: totals.clone(),
            tcp_observations: tcp,
            os_mix,
            quality_mix,
            hosts,
            top_hosts,
            unknown_sigs,
            mtu_mix,
            distance,
            traffic_by_os: flows.traffic_by_os()?,
        })
    }
}

fn column<'a>(df: &'a DataFrame, name: &str) -> PResult<&'a Column> {
    df.column(name).map_err(perr)
}

fn strs(df: &DataFrame, name: &str) -> PResult<Vec<Option<String>>> {
    let c = column(df, name)?;
    // An all-null chunk may come back typed Null: read it as nulls.
    if c.dtype() == &DataType::Null {
        return Ok(vec![None; c.len()]);
    }
    Ok(c.str()
        .map_err(perr)?
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

fn u64s(df: &DataFrame, name: &str) -> PResult<Vec<u64>> {
    let c = column(df, name)?.cast(&DataType::UInt64).map_err(perr)?;
    Ok(c.u64()
        .map_err(perr)?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

fn u32s(df: &DataFrame, name: &str) -> PResult<Vec<u32>> {
    let c = column(df, name)?.cast(&DataType::UInt32).map_err(perr)?;
    Ok(c.u32()
        .map_err(perr)?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

/// Flow counters and the client label of each connection, joined (in polars) into traffic
/// by OS at the end.
#[derive(Debug, Default)]
pub struct FlowTotals {
    wanted: bool,
    /// Summed counters of every flow of every input that had them.
    flows: FlowTable,
    /// Whether any input had flow counters.
    seen: bool,
    /// `(flow key text, client label)` of every fingerprinted SYN, in order.
    conn_key: Vec<String>,
    conn_label: Vec<Option<String>>,
}

/// A flow key as text, for joining in polars.
fn key_text(k: &FlowKey) -> String {
    let mut s = String::with_capacity(80);
    let _ = write!(s, "{}|", k.ip_version);
    for b in k.addr_a.iter().chain(&k.addr_b) {
        let _ = write!(s, "{b:02x}");
    }
    let _ = write!(s, "|{}|{}", k.port_a, k.port_b);
    s
}

impl FlowTotals {
    pub fn new(wanted: bool) -> FlowTotals {
        FlowTotals {
            wanted,
            ..FlowTotals::default()
        }
    }

    /// Whether traffic by OS is being gathered.
    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// The client of connection `key` was fingerprinted with `label` (or not matched).
    pub fn label_connection(&mut self, key: FlowKey, label: Option<&MatchedLabel>) {
        self.conn_key.push(key_text(&key));
        self.conn_label.push(label.map(label_text));
    }

    /// Adds one input's flow counters.
    pub fn add_table(&mut self, table: &FlowTable) {
        self.seen = true;
        for (k, c) in table {
            let e = self.flows.entry(*k).or_default();
            for (acc, d) in [(&mut e.a_to_b, &c.a_to_b), (&mut e.b_to_a, &c.b_to_a)] {
                acc.packets += d.packets;
                acc.bytes += d.bytes;
            }
        }
    }

    /// Packets, bytes and flow counts by client label; `None` when no input had flows.
    pub fn traffic_by_os(&self) -> PResult<Option<Vec<TrafficRow>>> {
        if !self.seen {
            return Ok(None);
        }
        let mut keys = Vec::with_capacity(self.flows.len());
        let mut packets = Vec::with_capacity(self.flows.len());
        let mut bytes = Vec::with_capacity(self.flows.len());
        for (k, c) in &self.flows {
            keys.push(key_text(k));
            packets.push(c.a_to_b.packets + c.b_to_a.packets);
            bytes.push(c.a_to_b.bytes + c.b_to_a.bytes);
        }
        let flows = df!("key" => keys, "packets" => packets, "bytes" => bytes).map_err(perr)?;
        let conns = df!("key" => self.conn_key.clone(), "label" => self.conn_label.clone())
            .map_err(perr)?;
        // A connection key reused later (port reuse) keeps its last label.
        let conns = conns
            .lazy()
            .with_row_index("seq", None)
            .sort(
                ["seq"],
                SortMultipleOptions::default().with_order_descending(true),
            )
            .group_by_stable([col("key")])
            .agg([col("label").first().alias("label")]);
        let df = flows
            .lazy()
            .left_join(conns, col("key"), col("key"))
            .group_by([col("label")])
            .agg([
                len().cast(DataType::UInt64).alias("flows"),
                col("packets").sum().alias("packets"),
                col("bytes").sum().alias("bytes"),
            ])
            .sort(
                ["bytes", "label"],
                SortMultipleOptions::default()
                    .with_order_descending_multi([true, false])
                    .with_nulls_last(true),
            )
            .collect()
            .map_err(perr)?;
        let l = strs(&df, "label")?;
        let f = u64s(&df, "flows")?;
        let p = u64s(&df, "packets")?;
        let b = u64s(&df, "bytes")?;
        Ok(Some(
            (0..df.height())
                .map(|i| TrafficRow {
                    os: l[i].clone(),
                    flows: f[i],
                    packets: p[i],
                    bytes: b[i],
                })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p0f::event::{Endpoints, LabelType, Params, TcpKind, TcpObservation};
    use crate::p0f::{Event, Quality, Subject};
    use std::sync::Arc;

    /// A SYN observation from host `h` (198.51.100.h) with label `name` (None: unknown),
    /// built from a real engine signature so the raw_sig is genuine.
    fn syn(h: u8, name: Option<&str>, template: &TcpObservation) -> Observation {
        let mut client = [0u8; 16];
        client[..4].copy_from_slice(&[198, 51, 100, h]);
        let mut t = template.clone();
        t.label = name.map(|n| MatchedLabel {
            label_type: LabelType::Os,
            class: Some(Arc::from("unix")),
            name: Arc::from(n),
            flavor: None,
            generic: false,
            sig_line: 1,
        });
        t.quality = if name.is_some() {
            Quality::Exact
        } else {
            Quality::Unknown
        };
        t.params = Params::default();
        Observation {
            source: 0,
            event: Event {
                ts_ns: 0,
                endpoints: Endpoints {
                    ip_version: 4,
                    client_addr: client,
                    client_port: 1000 + u16::from(h),
                    server_addr: [0; 16],
                    server_port: 80,
                },
                subject: Subject::Client,
                kind: EventKind::Tcp(t),
            },
        }
    }

    fn template() -> TcpObservation {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/pcap/tcpdump/tests__tcp-handshake-nano.pcap");
        let mut recs = Vec::new();
        formats::pcap::open(&path).unwrap().run(&mut recs).unwrap();
        let mut engine =
            crate::p0f::Engine::new(Arc::new(crate::p0f::Database::embedded().unwrap()));
        let mut events = Vec::new();
        for r in &recs {
            engine.process(r, &mut events);
        }
        events
            .into_iter()
            .find_map(|e| match e.kind {
                EventKind::Tcp(t) if t.kind == TcpKind::Syn => Some(t),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn counts_shares_and_hosts_survive_chunking() {
        let t = template();
        // Host 1: 3x Linux, 1x Windows; host 2: 2x Windows; host 3: 2x unknown.
        let obs: Vec<Observation> = [
            (1, Some("Linux")),
            (1, Some("Linux")),
            (1, Some("Windows")),
            (1, Some("Linux")),
            (2, Some("Windows")),
            (2, Some("Windows")),
            (3, None),
            (3, None),
        ]
        .iter()
        .map(|(h, n)| syn(*h, *n, &t))
        .collect();
        let mut a = Aggregator::new();
        for (i, o) in obs.iter().enumerate() {
            a.add(o).unwrap();
            // Force several partials (and so the re-grouping path).
            if i % 3 == 0 {
                a.flush().unwrap();
            }
        }
        let s = a
            .finish(&Totals::default(), &FlowTotals::new(false), 2)
            .unwrap();
        assert_eq!(s.tcp_observations, 8);
        let os: Vec<(Option<&str>, u64)> = s
            .os_mix
            .iter()
            .map(|r| (r.name.as_deref(), r.count))
            .collect();
        assert_eq!(
            os,
            vec![(Some("Linux"), 3), (Some("Windows"), 3), (None, 2)]
        );
        assert!((s.os_mix[0].share - 0.375).abs() < 1e-12);
        assert_eq!(s.hosts, 3);
        assert_eq!(s.top_hosts.len(), 2);
        assert_eq!(s.top_hosts[0].host, "198.51.100.1");
        assert_eq!(s.top_hosts[0].observations, 4);
        assert_eq!(s.top_hosts[0].os.as_deref(), Some("Linux"));
        assert_eq!(s.top_hosts[1].os.as_deref(), Some("Windows"));
        let q: Vec<(&str, u64)> = s
            .quality_mix
            .iter()
            .map(|r| (r.key.as_str(), r.count))
            .collect();
        assert_eq!(q, vec![("exact", 6), ("unknown", 2)]);
        assert_eq!(s.unknown_sigs.len(), 1);
        assert_eq!(s.unknown_sigs[0].count, 2);
        assert_eq!(s.unknown_sigs[0].raw_sig, t.raw_sig.to_string());
        assert_eq!(s.distance, vec![(u32::from(t.distance), 8)]);
        assert!(s.traffic_by_os.is_none());
    }

    #[test]
    fn traffic_is_attributed_to_the_client_label() {
        let mut f = FlowTotals::new(true);
        let a = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let b = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let (k1, _) = FlowKey::new(4, a, 5000, b, 80);
        let (k2, _) = FlowKey::new(4, a, 5001, b, 80);
        let (k3, _) = FlowKey::new(4, a, 5002, b, 80);
        let label = MatchedLabel {
            label_type: LabelType::Os,
            class: None,
            name: Arc::from("Linux"),
            flavor: Some(Arc::from("3.x")),
            generic: false,
            sig_line: 0,
        };
        f.label_connection(k1, None);
        f.label_connection(k1, Some(&label)); // reused key: the last label counts
        f.label_connection(k2, Some(&label));
        let mut t = FlowTable::default();
        for (k, p) in [(k1, 10u64), (k2, 5), (k3, 1)] {
            let mut c = record::FlowCounters::default();
            c.a_to_b.packets = p;
            c.a_to_b.bytes = p * 100;
            c.b_to_a.packets = 1;
            c.b_to_a.bytes = 40;
            t.insert(k, c);
        }
        f.add_table(&t);
        let rows = f.traffic_by_os().unwrap().unwrap();
        assert_eq!(
            rows,
            vec![
                TrafficRow {
                    os: Some("Linux 3.x".into()),
                    flows: 2,
                    packets: 17,
                    bytes: 1580
                },
                TrafficRow {
                    os: None,
                    flows: 1,
                    packets: 2,
                    bytes: 140
                },
            ]
        );
    }
}
