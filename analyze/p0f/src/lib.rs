//! The p0f v3 engine: passive OS fingerprinting of SYN and SYN+ACK records, reproducing
//! p0f 3.09b's observable behaviour (its log lines) from [`record::SynRecord`]s.
//!
//! A crate of its own, on `record` and a few small crates only, so that anything holding
//! `SynRecord`s (the `analyze` replay, `capture`, a binding) can fingerprint them without
//! `analyze`'s dataframe, Parquet and CLI dependencies.
//!
//! - [`sig`]: record -> p0f TCP signature (quirks, option layout, window forms, TTL guess)
//!   and p0f's packet filters.
//! - [`db`]: the signature database in memory.
//! - [`parse`]: the p0f.fp parser (Debian's p0f.fp plus `synscope.fp`, or a user file).
//! - [`matcher`]: p0f's matching tiers (exact specific, exact generic, fuzzy).
//! - [`state`]: [`Engine`], the per-connection and per-host state (SYN/SYN+ACK pairing, MTU,
//!   uptime, host change and IP sharing).
//! - [`http`]: p0f's HTTP fingerprinting (request / response heads, their signatures and
//!   matching), fed by [`record::PayloadRecord`]s through [`Engine::payload`].
//! - [`event`]: the typed observations the engine emits.
//! - [`log`]: the p0f log-line formatter.
//!
//! ```no_run
//! use std::sync::Arc;
//! use p0f::{Database, Engine, log::write_p0f_line};
//! # fn records() -> Vec<record::SynRecord> { Vec::new() }
//! let db = Arc::new(Database::embedded()?);
//! let mut engine = Engine::new(db);
//! let mut events = Vec::new();
//! for r in records() {
//!     engine.process(&r, &mut events);
//! }
//! for ev in &events {
//!     write_p0f_line(engine.database(), ev, &mut std::io::stdout())?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod db;
pub mod event;
pub(crate) mod hashed;
pub mod http;
pub mod log;
pub mod matcher;
pub mod parse;
pub mod sig;
pub mod state;

pub use db::{Database, LabelId, LabelNames, LinkId};
pub use event::{
    Endpoints, Event, EventKind, HttpKind, HttpObservation, HttpParams, LabelType, Lang,
    MatchedLabel, Params, Subject, TcpKind,
};
pub use http::HttpTables;
pub use matcher::{MatchResult, Quality};
pub use parse::{DbError, DbErrorKind, DbFile};
pub use sig::{Packet, RawSig, Skip};
pub use state::{Engine, EngineConfig, PayloadStatus, Status};
