//! `capture`: load synscope's eBPF datapath on an interface and record every TCP SYN /
//! SYN+ACK (as `record::SynRecord`s) and per-interval flow counters to Parquet.
//!
//! - [`kernel`]: load, configure, attach (TC via TCX links, XDP via bpf links), read maps;
//! - [`floor`]: the kernel features the datapath needs, probed before loading;
//! - [`mode`]: where the datapath hooks in (TC or XDP);
//! - [`run`]: the capture loop (flow snapshots, counters, status, clean stop);
//! - [`drain`]: the ring buffer's reader, on a thread of its own;
//! - [`journal`] + [`output`]: crash safety (append-only journals, converted to Parquet on
//!   exit or recovered on the next start);
//! - [`flowtrack`]: cumulative kernel counters -> per-interval rows;
//! - [`clock`]: monotonic kernel timestamps -> UTC.

pub mod cli;
pub mod clock;
pub mod drain;
pub mod error;
pub mod floor;
pub mod flowtrack;
pub mod journal;
pub mod kernel;
pub mod mode;
pub mod output;
pub mod run;

pub use error::{CaptureError, Result};
