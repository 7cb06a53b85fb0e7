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
    /// A signal stopped the replay ([`crate::parallel::ReplayOptions::stop`]).
    #[error("interrupted")]
    Interrupted,
}
