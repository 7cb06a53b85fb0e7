//! synscope's data in and out.
//!
//! - [`pcap`]: pcap and pcapng files -> [`record::SynRecord`]s (and flow counters), exactly as
//!   the kernel datapath would have produced them for the same packets.
//! - [`syn`]: the Parquet recording of SYN records (schema, writer, reader).
//! - [`flows`]: the Parquet recording of flow counters (schema, writer, reader).
//! - [`payload`]: the Parquet recording of the TCP segments p0f's HTTP module reads (schema,
//!   writer, reader).
//! - [`meta`]: the key-value metadata every recording carries (schema version, capture host…).
//! - [`files`]: file conventions (companion and temporary names, atomic commit, sniffing by
//!   magic bytes, the partitioned tree); [`time`]: durations and UTC dates as typed and as
//!   partitions name them.
//!
//! The recording schemas are documented in `formats/README.md`.
//!
//! Errors name the file (and offset or row group) and end with their cause's text, and such a
//! cause is not also their `source()`: users see these messages through `{:#}` (anyhow's
//! chain) and as plain strings (`--keep-going`, the report's failed inputs), and either way
//! the cause appears exactly once.

pub mod files;
pub mod flows;
pub mod meta;
pub mod payload;
pub mod pcap;
pub mod recording;
pub mod syn;
pub mod time;

pub use record;
