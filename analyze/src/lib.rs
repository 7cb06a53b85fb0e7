//! The analysis side of synscope: replay, reports and the `analyze` CLI on top of the
//! [`p0f`] engine crate (signature encoder, p0f.fp database, matcher, stateful features).
//!
//! - [`inputs`]: command-line paths -> ordered inputs of known kind (pcap, pcapng, recording).
//! - [`records`]: `analyze --records`, captures -> a recording in `capture`'s format.
//! - [`flow_intervals`]: per-interval flow counters from packets, for those recordings.
//! - [`replay`]: why an input could not be replayed ([`replay::ReplayError`]).
//! - [`parallel`]: the parallel, deterministic replay (decoding in parallel, one engine).
//! - [`analysis`]: a whole run: replay -> engine -> observations -> outputs.
//! - [`stoppable`]: the capture file reader that stops when asked and counts its bytes.
//! - [`results`]: the flat observation rows and their JSON, CSV and Parquet writers.
//! - [`report`]: the summary (polars aggregations) as a table or JSON.
//! - [`learn`]: the User-Agent as ground truth: agreement with the SYN labels, learned
//!   signatures (`--suggest-sigs`).
//!
//! Errors follow `formats`' rule (a cause is in the message or is the `source()`, never
//! both), with the message's side taken, as users also see them as plain strings
//! (`--keep-going`, the report's failed inputs). The one exception,
//! [`analysis::AnalyzeError::Write`], keeps its I/O error as its `source()` only, for `main`
//! to tell a closed pipe from a failure.

pub mod analysis;
pub mod flow_intervals;
pub mod inputs;
pub mod learn;
pub mod parallel;
pub mod records;
pub mod replay;
pub mod report;
pub mod results;
pub mod stoppable;
