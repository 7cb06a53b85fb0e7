//! Traffic by client OS: every flow's packets and bytes, attributed to the label of its
//! connection's fingerprinted SYN.

use p0f::{Database, MatchedLabel};
use polars::prelude::*;
use record::FlowKey;
use rustc_hash::FxHashMap;

use super::frames::{PResult, perr, strs, u64s};
use super::keys::{Labels, label_dict, label_id};
use crate::parallel::FlowShards;

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

/// Flow counters and the client label of each connection, aggregated (in polars) into
/// traffic by OS at the end.
///
/// Each connection keeps the label id of its last fingerprinted SYN (labels are interned by
/// type and database id, like the [`super::Aggregator`]'s): state, like the engine's own tables, not an
/// aggregation. At the end every flow gets its connection's label (null when its SYN was not
/// seen), and polars groups the flows by label id and again by the label's text.
#[derive(Debug, Default)]
pub struct FlowTotals {
    wanted: bool,
    /// Counters of every flow of every input that had them.
    flows: FlowShards,
    /// Whether any input had flow counters.
    seen: bool,
    /// The label id (0: not matched) of the last fingerprinted SYN of every connection. A
    /// connection key used again later (port reuse) keeps its last label. (This was a log
    /// of `(connection, label)` rows collapsed in polars to each connection's last label,
    /// a sort and a stable group-by on the summary's wall-clock path.)
    conn_labels: FxHashMap<FlowKey, u32>,
    labels: Labels,
    /// A failure while labelling (reported by [`FlowTotals::traffic_by_os`]).
    error: Option<String>,
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
        if self.error.is_none()
            && let Err(e) = self.try_label_connection(key, label)
        {
            self.error = Some(e);
        }
    }

    fn try_label_connection(&mut self, key: FlowKey, label: Option<&MatchedLabel>) -> PResult<()> {
        let label = label_id(&mut self.labels, label)?;
        self.conn_labels.insert(key, label);
        Ok(())
    }

    /// Adds one input's flow counters.
    pub fn add_flows(&mut self, flows: FlowShards) {
        self.seen = true;
        self.flows.absorb(flows);
    }

    /// Packets, bytes and flow counts by client label; `None` when no input had flows.
    /// `db` is the database the labels are ids of.
    pub fn traffic_by_os(&self, db: &Database) -> PResult<Option<Vec<TrafficRow>>> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if !self.seen {
            return Ok(None);
        }
        let n = self.flows.len_bound();
        let mut label = Vec::with_capacity(n);
        let mut packets = Vec::with_capacity(n);
        let mut bytes = Vec::with_capacity(n);
        self.flows.for_each_flow(|k, c| {
            // Null when the flow's SYN was not fingerprinted.
            label.push(self.conn_labels.get(k).copied());
            packets.push(c.packets);
            bytes.push(c.bytes);
        });
        let flows = df!("label" => label, "packets" => packets, "bytes" => bytes).map_err(perr)?;
        let texts =
            label_dict(&self.labels, db)?.select([col("label_id"), col("label").alias("os")]);
        let df = flows
            .lazy()
            .group_by([col("label")])
            .agg([
                len().cast(DataType::UInt64).alias("flows"),
                col("packets").sum().alias("packets"),
                col("bytes").sum().alias("bytes"),
            ])
            .left_join(texts, col("label"), col("label_id"))
            .group_by([col("os")])
            .agg([
                col("flows").sum().alias("flows"),
                col("packets").sum().alias("packets"),
                col("bytes").sum().alias("bytes"),
            ])
            .sort(
                ["bytes", "os"],
                SortMultipleOptions::default()
                    .with_order_descending_multi([true, false])
                    .with_nulls_last(true),
            )
            .collect()
            .map_err(perr)?;
        let l = strs(&df, "os")?;
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
    use crate::parallel::{FlowTable, Traffic};
    use crate::report::test_db::{label, test_db};
    use p0f::LabelType;

    #[test]
    fn traffic_is_attributed_to_the_client_label() {
        let mut f = FlowTotals::new(true);
        let a = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let b = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let (k1, _) = FlowKey::new(4, a, 5000, b, 80);
        let (k2, _) = FlowKey::new(4, a, 5001, b, 80);
        let (k3, _) = FlowKey::new(4, a, 5002, b, 80);
        let label = label(LabelType::Os, None, "Linux", Some("3.x"));
        f.label_connection(k1, None);
        f.label_connection(k1, Some(&label)); // reused key: the last label counts
        f.label_connection(k2, Some(&label));
        let mut t = FlowTable::default();
        for (k, p) in [(k1, 10u64), (k2, 5), (k3, 1)] {
            // p packets of 100 bytes one way, one of 40 the other.
            t.insert(
                k,
                Traffic {
                    packets: p + 1,
                    bytes: p * 100 + 40,
                },
            );
        }
        // Two inputs' tables: part of k1's and k2's packets come in the second, which is
        // merged into the first (the first is taken as it is).
        let mut second = FlowTable::default();
        for (k, p) in [(k1, 6u64), (k2, 5)] {
            let moved = t.get_mut(&k).unwrap();
            moved.packets -= p;
            moved.bytes -= p * 100;
            second.insert(
                k,
                Traffic {
                    packets: p,
                    bytes: p * 100,
                },
            );
        }
        f.add_flows(FlowShards::single(t));
        f.add_flows(FlowShards::single(second));
        let rows = f.traffic_by_os(test_db()).unwrap().unwrap();
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

    #[test]
    fn a_connection_keeps_its_last_label() {
        let mut f = FlowTotals::new(true);
        let a = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let b = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let key = |p| FlowKey::new(4, a, p, b, 80).0;
        let (k1, k2, k3, k4) = (key(5000), key(5001), key(5002), key(5003));
        let linux = || label(LabelType::Os, None, "Linux", Some("3.x"));
        // Same text, other content: one traffic row.
        let unix = label(LabelType::Os, Some("unix"), "Linux", Some("3.x"));
        f.label_connection(k1, None);
        f.label_connection(k2, Some(&unix));
        f.label_connection(k1, Some(&linux()));
        f.label_connection(k3, Some(&linux()));
        f.label_connection(k2, None);
        f.label_connection(k3, Some(&linux()));
        let mut t = FlowTable::default();
        for (k, p) in [(k1, 10u64), (k2, 5), (k3, 1), (k4, 2)] {
            t.insert(
                k,
                Traffic {
                    packets: p,
                    bytes: p * 100,
                },
            );
        }
        f.add_flows(FlowShards::single(t));
        let rows = f.traffic_by_os(test_db()).unwrap().unwrap();
        assert_eq!(
            rows,
            vec![
                TrafficRow {
                    os: Some("Linux 3.x".into()),
                    flows: 2,
                    packets: 11,
                    bytes: 1100
                },
                TrafficRow {
                    os: None,
                    flows: 2,
                    packets: 7,
                    bytes: 700
                },
            ]
        );
    }
}
