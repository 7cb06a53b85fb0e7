//! The summary's aggregations, done with polars lazy frames.
//!
//! Observations arrive one at a time and there may be millions, so the [`Aggregator`] keeps
//! only a chunk of compact rows; each full chunk becomes a DataFrame that is immediately
//! grouped into partial counts (OS mix, quality, hosts, unknown signatures, MTU, distance).
//! Partials are re-grouped when they pile up and once more at the end. Memory therefore
//! follows the number of *distinct* keys (hosts, labels, signatures), not the number of
//! observations.
//!
//! Every key is interned first ([`super::keys`]): the rows of a chunk are numbers only.
//!
//! At the end, [`Aggregator::finish`] turns the (few) ids back into text in small dictionary
//! frames, joins them onto the merged partials and groups *again by the text*: keys that are
//! distinct as values but print the same (two raw signatures that render alike, two labels
//! with the same `name flavor`, an IPv4 address with stray bytes after the first four) end up
//! in one row, exactly as when the text itself was the key.
//!
//! Every final table is sorted on all its (text) columns (count first) so ties come out in
//! the same order on every run.

use std::net::IpAddr;

use p0f::{Database, EventKind, Quality, RawSig, TcpKind};
use polars::prelude::*;

use super::frames::{PResult, perr, strs, u32s, u64s};
use super::keys::{
    Interner, Labels, Mtus, QUALITIES, code_dict, label_dict, label_id, quality_code,
};
use super::traffic::{FlowTotals, TrafficRow};
use crate::learn::Agreement;
use crate::report::Totals;
use crate::results::{Observation, host_addr};

/// Rows kept before they are grouped into partial counts.
const CHUNK_ROWS: usize = 100_000;

/// Partial frames kept per table before they are re-grouped into one.
const MAX_PARTIALS: usize = 16;

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
    /// SYN labels against the User-Agent OS: filled by the run from its evidence
    /// ([`crate::learn`]), which is not kept in polars frames.
    pub agreement: Agreement,
}

/// Compact rows of one chunk: ids and numbers only.
#[derive(Default)]
struct Chunk {
    /// TCP observations: host and label as one key ([`host_label`]), label (0: none),
    /// quality code, unknown signature with its module (0: matched), distance.
    host_label: Vec<u64>,
    label: Vec<u32>,
    quality: Vec<u32>,
    sig: Vec<u32>,
    distance: Vec<u32>,
    /// MTU observations: their (link, MTU) id.
    mtu: Vec<u32>,
}

impl Chunk {
    fn len(&self) -> usize {
        self.host_label.len() + self.mtu.len()
    }

    /// The TCP and the MTU rows as frames (`None` when there are none).
    fn frames(self) -> PResult<(Option<LazyFrame>, Option<LazyFrame>)> {
        let tcp = if self.host_label.is_empty() {
            None
        } else {
            let df = df!(
                "host_label" => self.host_label,
                "label_id" => self.label,
                "quality_id" => self.quality,
                "sig_id" => self.sig,
                "distance" => self.distance,
            )
            .map_err(perr)?;
            Some(df.lazy())
        };
        let mtu = if self.mtu.is_empty() {
            None
        } else {
            let df = df!("mtu_id" => self.mtu).map_err(perr)?;
            Some(df.lazy())
        };
        Ok((tcp, mtu))
    }
}

/// A host id and a label id as one key, so the host table's partials group by one column
/// (polars row-encodes keys of several columns: the host partials were most of a chunk's
/// grouping). [`split_host_label`] takes it apart again.
fn host_label(host: u32, label: u32) -> u64 {
    u64::from(host) << 32 | u64::from(label)
}

/// `(host_label, count)` rows as `(host_id, label_id, count)` rows.
fn split_host_label(rows: &DataFrame) -> PResult<DataFrame> {
    let keys = u64s(rows, "host_label")?;
    let hosts: Vec<u32> = keys.iter().map(|&k| (k >> 32) as u32).collect();
    let labels: Vec<u32> = keys.iter().map(|&k| k as u32).collect();
    df!(
        "host_id" => hosts,
        "label_id" => labels,
        "count" => u64s(rows, "count")?,
    )
    .map_err(perr)
}

/// The TCP rows of unknown signatures (a matched row's `sig_id` is 0).
fn unknown(rows: LazyFrame) -> LazyFrame {
    rows.filter(col("sig_id").neq(lit(0u32)))
}

/// Partial counts of one table, re-grouped by the same keys when merged.
struct Partials {
    keys: &'static [&'static str],
    frames: Vec<DataFrame>,
}

/// `lf` grouped by `keys`, its `count`s summed.
fn regroup(lf: LazyFrame, keys: &[&str]) -> LazyFrame {
    let keys: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    lf.group_by(keys).agg([col("count").sum().alias("count")])
}

impl Partials {
    fn new(keys: &'static [&'static str]) -> Partials {
        Partials {
            keys,
            frames: Vec::new(),
        }
    }

    fn push(&mut self, df: DataFrame) -> PResult<()> {
        self.frames.push(df);
        if self.frames.len() > MAX_PARTIALS
            && let Some(merged) = self.merged(None)?
        {
            self.frames = vec![merged.collect().map_err(perr)?];
        }
        Ok(())
    }

    /// All partials and `pending` (rows not grouped yet, one `count` each) concatenated and
    /// grouped; `None` when there is nothing.
    fn merged(&self, pending: Option<LazyFrame>) -> PResult<Option<LazyFrame>> {
        Ok(self.all(pending)?.map(|all| regroup(all, self.keys)))
    }

    /// All partials and `pending` concatenated, not grouped again (a key may have several
    /// rows); `None` when there is nothing.
    fn all(&self, pending: Option<LazyFrame>) -> PResult<Option<LazyFrame>> {
        let mut lfs: Vec<LazyFrame> = self.frames.iter().map(|d| d.clone().lazy()).collect();
        lfs.extend(pending);
        if lfs.is_empty() {
            return Ok(None);
        }
        concat(lfs, UnionArgs::default()).map(Some).map_err(perr)
    }

    /// `rows` grouped by this table's keys, with their `count`: a partial.
    fn grouped(&self, rows: LazyFrame) -> LazyFrame {
        let keys: Vec<Expr> = self.keys.iter().map(|k| col(*k)).collect();
        rows.group_by(keys).agg([count()])
    }

    /// `rows`' keys with a `count` of 1 each: rows not grouped yet, for
    /// [`Partials::merged`].
    fn ungrouped(&self, rows: LazyFrame) -> LazyFrame {
        let mut cols: Vec<Expr> = self.keys.iter().map(|k| col(*k)).collect();
        cols.push(lit(1u64).cast(DataType::UInt64).alias("count"));
        rows.select(cols)
    }
}

/// Accumulates observations into the summary's tables.
pub struct Aggregator {
    chunk: Chunk,
    /// Hosts by their address as [`host_addr`] gives it: one id per address text (an IPv4
    /// record's unused address bytes do not make another host), so the host table can be
    /// grouped by id and given text for its top rows only.
    hosts_ids: Interner<IpAddr>,
    labels: Labels,
    /// Unknown signatures (only those: matched ones are not listed) with their module: the
    /// table is grouped by this one id, which is cheaper than a group-by on two (module and
    /// signature ids).
    sig_ids: Interner<(TcpKind, RawSig)>,
    /// MTU observations' link (`None`: unknown link) and MTU, interned together so the MTU
    /// table is grouped by one id.
    mtus: Mtus,
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
            hosts_ids: Interner::default(),
            labels: Labels::default(),
            sig_ids: Interner::default(),
            mtus: Mtus::default(),
            os: Partials::new(&["label_id"]),
            quality: Partials::new(&["quality_id"]),
            hosts: Partials::new(&["host_label"]),
            sigs: Partials::new(&["sig_id"]),
            distance: Partials::new(&["distance"]),
            mtu: Partials::new(&["mtu_id"]),
            tcp_rows: 0,
        }
    }

    /// Adds one observation (only SYN/SYN+ACK and MTU observations are aggregated).
    ///
    /// Appends ids to the chunk: no allocation or formatting per observation, except for a
    /// key seen for the first time.
    pub fn add(&mut self, obs: &Observation) -> PResult<()> {
        let ev = &obs.event;
        match &ev.kind {
            EventKind::Tcp(t) => {
                self.tcp_rows += 1;
                let host = self.hosts_ids.id(host_addr(ev))?;
                let label = label_id(&mut self.labels, t.label.as_ref())?;
                let sig = if t.label.is_none() {
                    self.sig_ids.id((t.kind, t.raw_sig))?
                } else {
                    0
                };
                let c = &mut self.chunk;
                c.host_label.push(host_label(host, label));
                c.label.push(label);
                c.quality.push(quality_code(t.quality));
                c.sig.push(sig);
                c.distance.push(u32::from(t.distance));
            }
            EventKind::Mtu { link, mtu } => {
                let id = self.mtus.id((*link, *mtu))?;
                self.chunk.mtu.push(id);
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
        let (tcp, mtu) = std::mem::take(&mut self.chunk).frames()?;
        if let Some(rows) = tcp {
            for p in [
                &mut self.os,
                &mut self.quality,
                &mut self.hosts,
                &mut self.distance,
            ] {
                let part = p.grouped(rows.clone()).collect().map_err(perr)?;
                p.push(part)?;
            }
            let part = self.sigs.grouped(unknown(rows)).collect().map_err(perr)?;
            self.sigs.push(part)?;
        }
        if let Some(rows) = mtu {
            let part = self.mtu.grouped(rows).collect().map_err(perr)?;
            self.mtu.push(part)?;
        }
        Ok(())
    }

    /// `sig_id`, `module` and `raw_sig` (p0f's text) of every unknown signature.
    fn sig_dict(&self) -> PResult<LazyFrame> {
        let mut ids = Vec::with_capacity(self.sig_ids.keys.len());
        let mut modules = Vec::with_capacity(ids.capacity());
        let mut text = Vec::with_capacity(ids.capacity());
        for (i, (kind, sig)) in self.sig_ids.iter() {
            ids.push(i);
            modules.push(kind.keyword());
            text.push(sig.to_string());
        }
        Ok(df!("sig_id" => ids, "module" => modules, "raw_sig" => text)
            .map_err(perr)?
            .lazy())
    }

    /// `mtu_id`, `link` (null: unknown) and `mtu` of every (link, MTU) pair.
    fn mtu_dict(&self, db: &Database) -> PResult<LazyFrame> {
        let mut ids = Vec::with_capacity(self.mtus.keys.len());
        let mut links = Vec::with_capacity(ids.capacity());
        let mut mtus = Vec::with_capacity(ids.capacity());
        for (i, (link, mtu)) in self.mtus.iter() {
            ids.push(i);
            links.push(link.map(|l| db.link(l)));
            mtus.push(*mtu);
        }
        Ok(df!("mtu_id" => ids, "link" => links, "mtu" => mtus)
            .map_err(perr)?
            .lazy())
    }

    /// The final tables. `top` bounds the host and signature lists; `db` is the database of
    /// the engine whose observations were added (the text of their labels and links).
    pub fn finish(
        mut self,
        totals: &Totals,
        flows: &FlowTotals,
        top: usize,
        db: &Database,
    ) -> PResult<Summary> {
        // The rows since the last flush join the partials as they are, one `count` each:
        // grouping them into partials first would group them twice (five more queries on the
        // wall-clock path).
        let (tcp_rows, mtu_rows) = std::mem::take(&mut self.chunk).frames()?;
        let top = IdxSize::try_from(top).unwrap_or(IdxSize::MAX);
        let labels = label_dict(&self.labels, db)?;
        let t = Tables {
            agg: &self,
            db,
            tcp_rows,
            mtu_rows,
            labels,
            top,
        };
        // Every table is made after the replay, on the wall-clock path, and most are small
        // queries that mostly wait on polars' overhead: they run on three threads beside the
        // traffic table (a join over every flow), which has one of its own.
        std::thread::scope(|s| {
            let traffic = s.spawn(|| flows.traffic_by_os(db));
            let hosts = s.spawn(|| t.hosts());
            let small =
                s.spawn(|| -> PResult<_> { Ok((t.unknown_sigs()?, t.mtu_mix()?, t.distance()?)) });
            let os_mix = t.os_mix();
            let quality_mix = t.quality_mix();
            let (hosts, top_hosts) = joined(hosts.join())?;
            let (unknown_sigs, mtu_mix, distance) = joined(small.join())?;
            Ok(Summary {
                totals: totals.clone(),
                tcp_observations: self.tcp_rows,
                os_mix: os_mix?,
                quality_mix: quality_mix?,
                hosts,
                top_hosts,
                unknown_sigs,
                mtu_mix,
                distance,
                traffic_by_os: joined(traffic.join())?,
                agreement: Agreement::default(),
            })
        })
    }
}

/// The result of a summary table's thread.
fn joined<T>(r: std::thread::Result<PResult<T>>) -> PResult<T> {
    r.map_err(|_| "a summary table's thread panicked".to_string())?
}

/// What the summary's tables are made of once the replay is over: the partials, and the rows
/// since the last flush ([`Partials::ungrouped`]).
struct Tables<'a> {
    agg: &'a Aggregator,
    /// The database the labels and links are ids of.
    db: &'a Database,
    tcp_rows: Option<LazyFrame>,
    mtu_rows: Option<LazyFrame>,
    /// [`label_dict`] of the aggregator's labels.
    labels: LazyFrame,
    /// Bound of the host and signature lists.
    top: IdxSize,
}

/// `count` as a share of `of` (0 when there is nothing).
fn share(count: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        count as f64 / of as f64
    }
}

/// Sorted by the first of `n` columns descending, then by the others ascending, nulls last.
fn desc_then_asc(n: usize) -> SortMultipleOptions {
    SortMultipleOptions::default()
        .with_order_descending_multi(std::iter::once(true).chain((1..n).map(|_| false)))
        .with_nulls_last(true)
}

/// `lf` with the columns of `dict` joined on by `id`.
fn by_id(lf: LazyFrame, dict: LazyFrame, id: &str) -> LazyFrame {
    lf.left_join(dict, col(id), col(id))
}

impl Tables<'_> {
    /// The TCP rows since the last flush, as rows of table `p`.
    fn pending(&self, p: &Partials) -> Option<LazyFrame> {
        self.tcp_rows.clone().map(|r| p.ungrouped(r))
    }

    /// Partials are keyed by ids: the label text is joined on and grouped again by it.
    fn os_mix(&self) -> PResult<Vec<OsRow>> {
        let mut os_mix = Vec::new();
        let a = self.agg;
        let Some(merged) = a.os.merged(self.pending(&a.os))? else {
            return Ok(os_mix);
        };
        let keys = ["label_type", "class", "name", "flavor"];
        let df = regroup(by_id(merged, self.labels.clone(), "label_id"), &keys)
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
                share: share(count, a.tcp_rows),
            });
        }
        Ok(os_mix)
    }

    fn quality_mix(&self) -> PResult<Vec<CountRow>> {
        let mut quality_mix = Vec::new();
        let a = self.agg;
        let Some(merged) = a.quality.merged(self.pending(&a.quality))? else {
            return Ok(quality_mix);
        };
        let names = QUALITIES.map(Quality::name);
        let dict = code_dict("quality_id", "quality", &names)?;
        let df = regroup(by_id(merged, dict, "quality_id"), &["quality"])
            .sort(["count", "quality"], desc_then_asc(2))
            .collect()
            .map_err(perr)?;
        let q = strs(&df, "quality")?;
        for (i, count) in u64s(&df, "count")?.into_iter().enumerate() {
            quality_mix.push(CountRow {
                key: q[i].clone().unwrap_or_default(),
                count,
                share: share(count, a.tcp_rows),
            });
        }
        Ok(quality_mix)
    }

    /// The number of distinct hosts, and the top hosts with their most often matched label.
    fn hosts(&self) -> PResult<(u64, Vec<HostRow>)> {
        let a = self.agg;
        let top = self.top;
        let mut top_hosts = Vec::new();
        let Some(rows) = a.hosts.all(self.pending(&a.hosts))? else {
            return Ok((0, top_hosts));
        };
        // `(host_label, count)` rows split into `host_id` and `label_id`, a pair possibly
        // in several rows: grouped by host for the counts, and by label text for the
        // candidates' rows only (grouping every pair, then by text, would dominate the
        // summary's time).
        let rows = split_host_label(&rows.collect().map_err(perr)?)?;
        let per_host = rows
            .clone()
            .lazy()
            .group_by([col("host_id")])
            .agg([col("count").sum().alias("observations")])
            .collect()
            .map_err(perr)?;
        let hosts = per_host.height() as u64;
        // Every host with at least the top-th largest count is a candidate.
        let mut counts = u64s(&per_host, "observations")?;
        let keep = match (top as usize).min(counts.len()) {
            0 => lit(false),
            n => {
                let cut = *counts.select_nth_unstable_by(n - 1, |a, b| b.cmp(a)).1;
                col("observations").gt_eq(lit(cut))
            }
        };
        let candidates = per_host.lazy().filter(keep).collect().map_err(perr)?;
        // Only candidates get their address as text (the order's tie-break): formatting
        // and joining every address would dominate the summary's time with many hosts.
        let ids = u32s(&candidates, "host_id")?;
        let text: Vec<String> = ids
            .iter()
            .map(|&id| {
                let ip = a.hosts_ids.keys.get((id as usize).wrapping_sub(1));
                ip.map(IpAddr::to_string).unwrap_or_default()
            })
            .collect();
        let host_text = df!("host_id" => ids, "host" => text).map_err(perr)?.lazy();
        // The most often matched label of each candidate (ties: the smaller label text;
        // two label ids may share a text, so the counts are grouped by text again).
        let texts = self.labels.clone().select([col("label_id"), col("label")]);
        let rows = rows.lazy().inner_join(
            candidates.clone().lazy().select([col("host_id")]),
            col("host_id"),
            col("host_id"),
        );
        let best = regroup(by_id(rows, texts, "label_id"), &["host_id", "label"])
            .filter(col("label").is_not_null())
            .sort(["host_id", "count", "label"], {
                SortMultipleOptions::default().with_order_descending_multi([false, true, false])
            })
            .group_by_stable([col("host_id")])
            .agg([col("label").first().alias("label")]);
        let df = by_id(
            by_id(candidates.lazy(), host_text, "host_id"),
            best,
            "host_id",
        )
        .sort(["observations", "host"], desc_then_asc(2))
        .limit(top)
        .collect()
        .map_err(perr)?;
        let h = strs(&df, "host")?;
        let l = strs(&df, "label")?;
        for (i, n) in u64s(&df, "observations")?.into_iter().enumerate() {
            top_hosts.push(HostRow {
                host: h[i].clone().unwrap_or_default(),
                observations: n,
                os: l[i].clone(),
            });
        }
        Ok((hosts, top_hosts))
    }

    fn unknown_sigs(&self) -> PResult<Vec<SigRow>> {
        let mut unknown_sigs = Vec::new();
        let a = self.agg;
        let pending = self.tcp_rows.clone().map(|r| a.sigs.ungrouped(unknown(r)));
        let Some(merged) = a.sigs.merged(pending)? else {
            return Ok(unknown_sigs);
        };
        // Grouped again by text: two signatures can print alike (a window given as a
        // multiple of the MSS does not print the raw window).
        let df = regroup(
            by_id(merged, a.sig_dict()?, "sig_id"),
            &["module", "raw_sig"],
        )
        .sort(["count", "module", "raw_sig"], desc_then_asc(3))
        .limit(self.top)
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
        Ok(unknown_sigs)
    }

    fn mtu_mix(&self) -> PResult<Vec<MtuRow>> {
        let mut mtu_mix = Vec::new();
        let a = self.agg;
        let pending = self.mtu_rows.clone().map(|r| a.mtu.ungrouped(r));
        let Some(merged) = a.mtu.merged(pending)? else {
            return Ok(mtu_mix);
        };
        // One id per (link, MTU), and a link id per link text: no grouping by text needed.
        let df = by_id(merged, a.mtu_dict(self.db)?, "mtu_id")
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
        Ok(mtu_mix)
    }

    fn distance(&self) -> PResult<Vec<(u32, u64)>> {
        let mut distance = Vec::new();
        let a = self.agg;
        let Some(merged) = a.distance.merged(self.pending(&a.distance))? else {
            return Ok(distance);
        };
        let df = merged
            .sort(["distance"], SortMultipleOptions::default())
            .collect()
            .map_err(perr)?;
        let d = u32s(&df, "distance")?;
        for (i, count) in u64s(&df, "count")?.into_iter().enumerate() {
            distance.push((d[i], count));
        }
        Ok(distance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_db::{label, label_ids, link, test_db};
    use p0f::event::{Endpoints, Params, TcpObservation};
    use p0f::{Event, LabelType, MatchedLabel, Quality, Subject};

    /// A SYN observation from host `h` (198.51.100.h) with label `name` (None: unknown),
    /// built from a real engine signature so the raw_sig is genuine.
    fn syn(h: u8, name: Option<&str>, template: &TcpObservation) -> Observation {
        let mut client = [0u8; 16];
        client[..4].copy_from_slice(&[198, 51, 100, h]);
        let mut t = template.clone();
        t.label = name.map(|n| label(LabelType::Os, Some("unix"), n, None));
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
                    encap: record::Encap::NONE,
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
        let mut engine = p0f::Engine::new(Arc::new(p0f::Database::embedded().unwrap()));
        let mut events = Vec::new();
        for r in &recs {
            engine.process(r, &mut events);
        }
        let mut t = events
            .into_iter()
            .find_map(|e| match e.kind {
                EventKind::Tcp(t) if t.kind == TcpKind::Syn => Some(t),
                _ => None,
            })
            .unwrap();
        // Its label is an id of the embedded database; tests give their own, of test_db().
        t.label = None;
        t
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
            .finish(&Totals::default(), &FlowTotals::new(false), 2, test_db())
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

    /// An observation about the client `addr` (IPv`ver`).
    fn about(ver: u8, addr: [u8; 16], kind: EventKind) -> Observation {
        Observation {
            source: 0,
            event: Event {
                ts_ns: 0,
                endpoints: Endpoints {
                    ip_version: ver,
                    client_addr: addr,
                    client_port: 1000,
                    server_addr: [0; 16],
                    server_port: 80,
                    encap: record::Encap::NONE,
                },
                subject: Subject::Client,
                kind,
            },
        }
    }

    fn finish(a: Aggregator) -> Summary {
        a.finish(&Totals::default(), &FlowTotals::new(false), 100, test_db())
            .unwrap()
    }

    #[test]
    fn labels_with_one_text_are_one_row_and_hosts_keyed_by_label_text() {
        let t = template();
        let mut a = Aggregator::new();
        let mut host = [0u8; 16];
        host[..4].copy_from_slice(&[192, 0, 2, 1]);
        let add = |l: MatchedLabel, n: usize, a: &mut Aggregator| {
            let ids = label_ids(
                test_db().label_names(l.id).class,
                test_db().label_names(l.id).name,
                test_db().label_names(l.id).flavor,
            );
            for i in 0..n {
                let mut tcp = t.clone();
                let mut l = l;
                // Every label of the database with this text, and another line each time:
                // still one row.
                l.id = ids[i % ids.len()];
                l.sig_line = i as u32;
                tcp.label = Some(l);
                a.add(&about(4, host, EventKind::Tcp(tcp))).unwrap();
            }
            a.flush().unwrap();
        };
        // As text, `Linux 3.x` (os, unix) and `Linux 3.x` (app) are one label (4 > 3).
        add(
            label(LabelType::Os, Some("unix"), "Linux", Some("3.x")),
            2,
            &mut a,
        );
        add(label(LabelType::App, None, "Linux", Some("3.x")), 2, &mut a);
        add(
            label(LabelType::Os, Some("win"), "Windows", None),
            3,
            &mut a,
        );
        let s = finish(a);
        let os: Vec<(Option<&str>, Option<&str>, u64)> = s
            .os_mix
            .iter()
            .map(|r| (r.label_type.as_deref(), r.name.as_deref(), r.count))
            .collect();
        assert_eq!(
            os,
            vec![
                (Some("os"), Some("Windows"), 3),
                (Some("app"), Some("Linux"), 2),
                (Some("os"), Some("Linux"), 2),
            ]
        );
        assert_eq!(s.os_mix[1].class, None);
        assert_eq!(s.os_mix[2].class.as_deref(), Some("unix"));
        assert_eq!(s.os_mix[2].flavor.as_deref(), Some("3.x"));
        assert_eq!(s.hosts, 1);
        assert_eq!(s.top_hosts[0].observations, 7);
        assert_eq!(s.top_hosts[0].os.as_deref(), Some("Linux 3.x"));
    }

    #[test]
    fn unknown_sigs_are_counted_per_distinct_text() {
        let t = template();
        let mut s1 = t.raw_sig;
        s1.win_multi = p0f::sig::WinMulti {
            multi: 3,
            use_mtu: false,
        };
        s1.win = 1000;
        // Another value that prints the same (the window is shown as `mss*3`).
        let mut s2 = s1;
        s2.win = 2000;
        let mut s3 = s1;
        s3.ttl = s1.ttl.wrapping_sub(1);
        assert_ne!(s1, s2);
        assert_eq!(s1.to_string(), s2.to_string());
        assert_ne!(s1.to_string(), s3.to_string());
        let mut a = Aggregator::new();
        for (sig, kind) in [
            (s1, TcpKind::Syn),
            (s2, TcpKind::Syn),
            (s1, TcpKind::Syn),
            (s3, TcpKind::Syn),
            (s1, TcpKind::SynAck),
        ] {
            let mut tcp = t.clone();
            tcp.label = None;
            tcp.raw_sig = sig;
            tcp.kind = kind;
            a.add(&about(4, [0; 16], EventKind::Tcp(tcp))).unwrap();
        }
        // A matched observation lists no signature.
        let mut tcp = t.clone();
        tcp.label = Some(label(LabelType::Os, None, "Linux", None));
        a.add(&about(4, [0; 16], EventKind::Tcp(tcp))).unwrap();
        let s = finish(a);
        let rows: Vec<(&str, String, u64)> = s
            .unknown_sigs
            .iter()
            .map(|r| (r.module.as_str(), r.raw_sig.clone(), r.count))
            .collect();
        let mut ties = vec![("syn", s3.to_string(), 1), ("syn+ack", s1.to_string(), 1)];
        ties.sort();
        let mut want = vec![("syn", s1.to_string(), 3)];
        want.extend(ties);
        assert_eq!(rows, want);
        let modules: Vec<(&str, u64)> = s
            .os_mix
            .iter()
            .map(|r| (r.name.as_deref().unwrap_or("?"), r.count))
            .collect();
        assert_eq!(modules, vec![("?", 5), ("Linux", 1)]);
    }

    #[test]
    fn hosts_are_keyed_by_version_and_address() {
        let t = template();
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&[198, 51, 100, 1]);
        let mut stray = bytes;
        stray[15] = 1;
        let mut a = Aggregator::new();
        // IPv6 with the same bytes is another host; IPv4 with stray bytes after the first
        // four prints (and so counts) as the same IPv4 host.
        for (ver, addr) in [(4, bytes), (6, bytes), (4, bytes), (4, stray), (6, bytes)] {
            let mut tcp = t.clone();
            tcp.label = None;
            a.add(&about(ver, addr, EventKind::Tcp(tcp))).unwrap();
        }
        let s = finish(a);
        assert_eq!(s.hosts, 2);
        let hosts: Vec<(&str, u64)> = s
            .top_hosts
            .iter()
            .map(|r| (r.host.as_str(), r.observations))
            .collect();
        assert_eq!(hosts, vec![("198.51.100.1", 3), ("c633:6401::", 2)]);
        assert!(s.top_hosts.iter().all(|h| h.os.is_none()));
    }

    /// Only the top hosts get their address as text; the list still breaks ties on that text
    /// (`10.0.0.10` before `10.0.0.2`), and counts every host whatever `top` is.
    #[test]
    fn top_hosts_tie_break_on_text_and_top_zero() {
        let t = template();
        let run = |top: usize| {
            let mut a = Aggregator::new();
            for (last, n) in [(3u8, 1), (2, 2), (10, 2), (4, 1)] {
                let mut addr = [0u8; 16];
                addr[..4].copy_from_slice(&[10, 0, 0, last]);
                for _ in 0..n {
                    a.add(&about(4, addr, EventKind::Tcp(t.clone()))).unwrap();
                }
            }
            a.finish(&Totals::default(), &FlowTotals::new(false), top, test_db())
                .unwrap()
        };
        let hosts = |s: &Summary| -> Vec<(String, u64)> {
            s.top_hosts
                .iter()
                .map(|r| (r.host.clone(), r.observations))
                .collect()
        };
        let s = run(1);
        assert_eq!(s.hosts, 4);
        assert_eq!(hosts(&s), vec![("10.0.0.10".to_string(), 2)]);
        let s = run(3);
        assert_eq!(
            hosts(&s),
            vec![
                ("10.0.0.10".to_string(), 2),
                ("10.0.0.2".to_string(), 2),
                ("10.0.0.3".to_string(), 1)
            ]
        );
        let s = run(0);
        assert_eq!(s.hosts, 4);
        assert!(s.top_hosts.is_empty());
    }

    /// The code of each quality is its position in the list its names are joined from (the
    /// `match` is exhaustive, the list is not).
    #[test]
    fn codes_are_positions_in_their_lists() {
        for (i, q) in QUALITIES.iter().enumerate() {
            assert_eq!(quality_code(*q) as usize, i, "{q:?}");
        }
    }

    #[test]
    fn mtu_links_are_keyed_by_content() {
        let mut a = Aggregator::new();
        for (link, mtu) in [
            (Some("Ethernet or modem"), 1500),
            (None, 1500),
            (Some("Ethernet or modem"), 1500),
            (Some("DSL"), 1492),
            (None, 1400),
        ] {
            let kind = EventKind::Mtu {
                link: link.map(self::link),
                mtu,
            };
            a.add(&about(4, [0; 16], kind)).unwrap();
        }
        let s = finish(a);
        let rows: Vec<(Option<&str>, u32, u64)> = s
            .mtu_mix
            .iter()
            .map(|r| (r.link.as_deref(), r.mtu, r.count))
            .collect();
        assert_eq!(
            rows,
            vec![
                (Some("Ethernet or modem"), 1500, 2),
                (None, 1400, 1),
                (Some("DSL"), 1492, 1),
                (None, 1500, 1),
            ]
        );
        assert!((s.mtu_mix[0].share - 0.4).abs() < 1e-12);
        assert_eq!(s.tcp_observations, 0);
    }

    /// Rows still pending at the end join the partials ungrouped: the summary must not
    /// depend on where the flushes fell (none, after every row, every few rows, or so many
    /// that the partials are re-grouped).
    #[test]
    fn summary_does_not_depend_on_flush_points() {
        let t = template();
        let mut obs = Vec::new();
        for i in 0..60u8 {
            let name = [Some("Linux"), Some("Windows"), None][usize::from(i % 3)];
            obs.push(syn(i % 7, name, &t));
            if i % 4 == 0 {
                let link = (i % 8 == 0).then(|| link("DSL"));
                let mut addr = [0; 16];
                addr[..4].copy_from_slice(&[198, 51, 100, i % 5]);
                let kind = EventKind::Mtu {
                    link,
                    mtu: 1400 + u32::from(i % 3),
                };
                obs.push(about(4, addr, kind));
            }
        }
        let summary = |every: Option<usize>| {
            let mut a = Aggregator::new();
            for (i, o) in obs.iter().enumerate() {
                a.add(o).unwrap();
                if every.is_some_and(|n| i % n == n - 1) {
                    a.flush().unwrap();
                }
            }
            a.finish(&Totals::default(), &FlowTotals::new(false), 4, test_db())
                .unwrap()
        };
        let never = summary(None);
        assert_eq!(never.tcp_observations, 60);
        assert_eq!(never.hosts, 7);
        assert_eq!(never.top_hosts.len(), 4);
        assert_eq!(never.unknown_sigs[0].count, 20);
        assert_eq!(never.mtu_mix.iter().map(|r| r.count).sum::<u64>(), 15);
        // Every row its own partial: more than MAX_PARTIALS, so re-grouped on the way.
        for every in [1, 5, obs.len()] {
            assert_eq!(summary(Some(every)), never, "flush every {every} rows");
        }
    }

    /// Host and label ids come back out of their one key whole, at the ends of their range.
    #[test]
    fn host_label_keys_split_back() {
        let pairs = [
            (0, 0),
            (1, 0),
            (0, 1),
            (u32::MAX, 7),
            (7, u32::MAX),
            (u32::MAX, u32::MAX),
        ];
        let keys: Vec<u64> = pairs.iter().map(|&(h, l)| host_label(h, l)).collect();
        let counts: Vec<u64> = (1..=pairs.len() as u64).collect();
        let rows = df!("host_label" => keys, "count" => counts.clone()).unwrap();
        let split = split_host_label(&rows).unwrap();
        let hosts = u32s(&split, "host_id").unwrap();
        let labels = u32s(&split, "label_id").unwrap();
        let got: Vec<(u32, u32)> = hosts.into_iter().zip(labels).collect();
        assert_eq!(got, pairs);
        assert_eq!(u64s(&split, "count").unwrap(), counts);
    }
}
