//! The run's counters, as the summary reports them: filled by the analysis while it runs
//! (here, not in `analysis.rs`, so the report does not import the run that feeds it).

use std::collections::BTreeMap;

use formats::pcap::IngestStats;

/// Counts over the whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Inputs read to their end.
    pub inputs: u64,
    /// Inputs that failed (only with `--keep-going`), with their error.
    pub failed: Vec<(String, String)>,
    /// Ingestion counters of all inputs (for recordings only `syn`/`syn_ack`).
    pub ingest: IngestStats,
    /// Records by what the engine did with them (`fingerprinted`, `p0f filter: …`,
    /// `duplicate syn`, …).
    pub engine: BTreeMap<String, u64>,
    /// Observations by module (`syn`, `syn+ack`, `mtu`, `uptime`, `host change`, …).
    pub observations: BTreeMap<String, u64>,
    /// Records found inside an encapsulation, by its outermost one.
    pub encapsulations: BTreeMap<EncapKey, EncapCounts>,
}

/// An outermost encapsulation: its [`record::encap`] kind and its identifier, if any.
pub type EncapKey = (u8, Option<u32>);

/// Records inside one encapsulation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncapCounts {
    /// SYN records.
    pub syn: u64,
    /// SYN+ACK records.
    pub syn_ack: u64,
    /// The most encapsulations any of them was found inside.
    pub max_depth: u8,
}

impl Totals {
    /// Counts a record found inside an encapsulation.
    pub fn count_encapsulated(&mut self, r: &record::SynRecord) {
        let e = record::Encap::of(r);
        let c = self.encapsulations.entry((e.kind, e.id())).or_default();
        if r.is_syn_ack() {
            c.syn_ack += 1;
        } else {
            c.syn += 1;
        }
        c.max_depth = c.max_depth.max(e.depth);
    }
}
