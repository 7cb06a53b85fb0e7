//! What a capture is asked to do ([`Config`], [`Destination`]) and what it did ([`Summary`],
//! [`Outputs`]): the terms [`crate::run`] and [`crate::session`] share.

use std::path::PathBuf;
use std::time::Duration;

use record::counter;

use crate::drain::Drained;

use crate::kernel::Mode;
use crate::output::Converted;
use crate::retention::{Deleted, Limits};
use crate::tree::Written;

/// Where a capture writes.
#[derive(Clone, Debug)]
pub enum Destination {
    /// `--out day.parquet`: one SYN recording and its `.flows.parquet` sibling, converted
    /// from the journals when capture stops.
    File(PathBuf),
    /// `--out-dir DIR`: closed files in a partitioned tree, one span at a time
    /// ([`crate::tree`]).
    Tree {
        /// DIR.
        dir: PathBuf,
        /// Longest span.
        rotate: Duration,
        /// A span ends early once its journals hold this many bytes.
        rotate_size: Option<u64>,
        /// Retention.
        limits: Limits,
    },
}

/// Everything a capture needs to know.
#[derive(Clone, Debug)]
pub struct Config {
    /// Interface to capture on.
    pub iface: String,
    /// Where the recordings go.
    pub dest: Destination,
    /// Hook.
    pub mode: Mode,
    /// Stop after this long (else at SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    /// Flow snapshot period.
    pub flow_interval: Duration,
    /// Journal flush period (the most a SIGKILL can lose).
    pub flush_interval: Duration,
    /// Keep the flow table.
    pub flows: bool,
    /// Ring buffer size, MiB (power of two).
    pub ring_mib: u32,
    /// Flow table capacity.
    pub flow_entries: u32,
    /// Flood guard: SYN records kept per second per CPU (0: all).
    pub max_syn_rate: u32,
    /// Draw a status line on stderr (only honoured when stderr is a terminal).
    pub status: bool,
}

/// Names of the kernel counters, by [`record::counter`] index, as used in metadata.
pub const COUNTER_NAMES: [(u32, &str); 8] = [
    (counter::SYN_RECORDS, "syn_records"),
    (counter::RINGBUF_FULL, "ringbuf_full"),
    (counter::FLOW_INSERT_FAILED, "flow_insert_failed"),
    (counter::SYN_UNPARSED, "syn_unparsed"),
    (counter::TCP_PACKETS, "tcp_packets"),
    (counter::SYN_SEEN, "syn_seen"),
    (counter::SYN_SAMPLED_OUT, "syn_sampled_out"),
    (counter::DECAP_LOST, "decap_lost"),
];

/// What a capture wrote.
#[derive(Clone, Debug)]
pub enum Outputs {
    /// `--out`: the two files.
    File(Converted),
    /// `--out-dir`: every file of every span.
    Tree(PathBuf, Written),
}

/// What a finished capture did.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Kernel counters at the end, by [`record::counter`] index.
    pub counters: [u64; counter::COUNT as usize],
    /// SYN records drained from the ring buffer.
    pub syn_drained: u64,
    /// Longest time between two drains, µs.
    pub drain_max_gap_us: u64,
    /// Flow rows written.
    pub flow_rows: u64,
    /// Recorded SYNs no flow row counts (see [`FlowTracker::overflow`]).
    pub flow_overflow: u64,
    /// Ring-buffer entries of the wrong size (always 0 with a matching object).
    pub malformed: u64,
    /// How the datapath was attached.
    pub attachment: String,
    /// The outputs.
    pub outputs: Outputs,
    /// A killed earlier run's SYN rows recovered, and where they went.
    pub recovered: Option<(u64, String)>,
    /// What retention deleted.
    pub deleted: Deleted,
    /// Why it stopped.
    pub stopped_by: String,
}

impl Summary {
    /// Human report printed at exit.
    pub fn report(&self) -> String {
        let c = |i: u32| self.counters.get(i as usize).copied().unwrap_or(0);
        let mut s = String::new();
        if let Some((rows, at)) = &self.recovered {
            s.push_str(&format!(
                "recovered a killed run: {rows} SYN records -> {at}\n"
            ));
        }
        s.push_str(&format!(
            "stopped by {}; attached as {}\n\
             SYN seen {} | recorded {} | drained {} (longest gap {} ms) | dropped (ring full) {} | unparsed {} | \
             sampled out {}\n\
             TCP packets {} | flow rows {} | flow insert failures {} | SYNs in no flow row {} | \
             lost to decapsulation {}",
            self.stopped_by,
            self.attachment,
            c(counter::SYN_SEEN),
            c(counter::SYN_RECORDS),
            self.syn_drained,
            self.drain_max_gap_us / 1000,
            c(counter::RINGBUF_FULL),
            c(counter::SYN_UNPARSED),
            c(counter::SYN_SAMPLED_OUT),
            c(counter::TCP_PACKETS),
            self.flow_rows,
            c(counter::FLOW_INSERT_FAILED),
            self.flow_overflow,
            c(counter::DECAP_LOST),
        ));
        match &self.outputs {
            Outputs::File(c) => {
                for (p, w) in std::iter::once(&c.syn).chain(&c.flows) {
                    s.push_str(&format!(
                        "\nwrote {} ({} rows, {} bytes)",
                        p.display(),
                        w.rows,
                        w.bytes
                    ));
                }
            }
            Outputs::Tree(dir, w) => s.push_str(&format!(
                "\nwrote {} SYN files and {} flow files under {} ({} SYN rows, {} bytes)\n\
                 retention deleted {} files ({} bytes)",
                w.syn.len(),
                w.flows.len(),
                dir.display(),
                w.syn_rows(),
                w.bytes(),
                self.deleted.files,
                self.deleted.bytes,
            )),
        }
        s
    }
}

/// The counters as metadata pairs: the kernel's, then the drain's and the flow tracker's.
pub(crate) fn counter_pairs(
    c: &[u64; counter::COUNT as usize],
    drained: &Drained,
    flow_overflow: u64,
) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = COUNTER_NAMES
        .iter()
        .map(|(i, n)| {
            (
                n.to_string(),
                c.get(*i as usize).copied().unwrap_or(0).to_string(),
            )
        })
        .collect();
    v.push(("syn_drained".into(), drained.records.to_string()));
    v.push(("ring_malformed".into(), drained.malformed.to_string()));
    v.push(("drain_max_gap_us".into(), drained.max_gap_us.to_string()));
    v.push(("flow_overflow".into(), flow_overflow.to_string()));
    v
}
