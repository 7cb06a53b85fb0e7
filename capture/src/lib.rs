//! `capture`: load synscope's eBPF datapath on an interface and record every TCP SYN /
//! SYN+ACK (as `record::SynRecord`s) and per-interval flow counters to Parquet.
//!
//! - [`kernel`]: load, configure, attach (TC via TCX links, XDP via bpf links), read maps;
//! - [`floor`]: the kernel features the datapath needs, probed before loading;
//! - [`mode`]: where the datapath hooks in (TC or XDP);
//! - [`config`]: what a capture is asked to do and what it did;
//! - [`run`] + [`session`]: the capture loop, a session that ticks (flow snapshots, counters,
//!   status, rotation) until a clean stop;
//! - [`tree`] + [`retention`]: `--out-dir`'s partitioned tree of closed files, and what is
//!   deleted to keep it within `--retain` / `--max-disk`;
//! - [`drain`]: the ring buffer's reader, on a thread of its own, over [`ring`] (the ring
//!   buffer's pages, read a pass at a time);
//! - [`journal`] + [`output`]: crash safety (append-only journals, converted to Parquet on
//!   exit or recovered on the next start);
//! - [`flowtrack`]: cumulative kernel counters -> per-interval rows;
//! - [`clock`]: monotonic kernel timestamps -> UTC.

pub mod cli;
pub mod clock;
pub mod config;
pub mod drain;
pub mod error;
pub mod floor;
pub mod flowtrack;
pub mod journal;
pub mod kernel;
pub mod mode;
pub mod output;
pub mod retention;
pub mod ring;
pub mod run;
pub mod session;
pub mod tree;

pub use error::{CaptureError, Result};
