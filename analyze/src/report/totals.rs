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
}
