//! Why an input could not be replayed.
//!
//! The replay itself lives in [`crate::parallel`]: every input kind becomes the same ordered
//! stream of records there, so from the engine on nothing knows whether a pcap, a pcapng or a
//! recording was read.

use std::path::PathBuf;

use formats::pcap::PcapError;
use formats::recording::RecordingError;

/// Why an input could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Pcap(#[from] PcapError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The decoding thread pool could not be started.
    #[error("starting decoding threads: {0}")]
    Threads(String),
    /// A results file of `analyze --out` given as an input: its rows are observations, not
    /// the records a replay needs.
    #[error("{}: an analyze results file (--out), not a recording: load it in polars, pandas or DuckDB", .0.display())]
    ResultsFile(PathBuf),
    /// A recording's payload file lists its rows out of order (each row's place among the
    /// SYN records may not come before the previous row's), so they cannot be put back
    /// where the capture had them.
    #[error("{file}: payload rows out of order: syn_rows_before {found} after a row with {after}")]
    PayloadOrder {
        file: String,
        found: u64,
        after: u64,
    },
    /// A recording's payload file places a row after more SYN records than the recording
    /// has: it belongs to another recording, or one of the two was cut.
    #[error("{file}: a payload row comes after {found} SYN records, the recording has {syn_rows}")]
    PayloadPlace {
        file: String,
        found: u64,
        syn_rows: u64,
    },
    /// A signal stopped the replay ([`crate::parallel::ReplayOptions::stop`]).
    #[error("interrupted")]
    Interrupted,
}
