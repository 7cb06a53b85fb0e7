//! Replaying inputs: every input kind becomes the same stream of [`SynRecord`]s.
//!
//! This is where "live and replay agree" is kept honest on the analysis side: a pcap goes
//! through `formats::pcap` and a recording through `formats::syn`, and from here on nothing
//! knows which it was.

use std::path::PathBuf;

use formats::pcap::{IngestStats, PacketSink, PcapError};
use formats::recording::RecordingError;
use formats::syn::SynReader;
use record::SynRecord;

use crate::inputs::{Input, InputKind};

/// Why an input could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Pcap(#[from] PcapError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The decoding thread pool could not be started.
    #[error("starting decoding threads: {0}")]
    Threads(String),
}

/// What replaying one input read.
#[derive(Debug, Default)]
pub struct ReplayStats {
    /// For captures: what ingestion saw. For recordings: only `syn`/`syn_ack` are filled.
    pub ingest: IngestStats,
}

/// Calls `f` with every record of `input`, in input order.
pub fn for_each_record(
    input: &Input,
    f: &mut impl FnMut(&SynRecord),
) -> Result<ReplayStats, ReplayError> {
    match input.kind {
        InputKind::Pcap | InputKind::PcapNg => {
            struct Each<'a, F>(&'a mut F);
            impl<F: FnMut(&SynRecord)> PacketSink for Each<'_, F> {
                #[inline]
                fn syn(&mut self, rec: &SynRecord) {
                    (self.0)(rec)
                }
            }
            let ingest = formats::pcap::open(&input.path)?.run(&mut Each(f))?;
            Ok(ReplayStats { ingest })
        }
        InputKind::Parquet => {
            let reader = SynReader::open(&input.path)?;
            let mut stats = ReplayStats::default();
            for i in 0..reader.num_row_groups() {
                for rec in reader.read_row_group(i)? {
                    if rec.is_syn_ack() {
                        stats.ingest.syn_ack += 1;
                    } else {
                        stats.ingest.syn += 1;
                    }
                    f(&rec);
                }
            }
            Ok(stats)
        }
    }
}

/// Why a p0f-log replay failed.
#[derive(Debug, thiserror::Error)]
pub enum P0fLogError {
    #[error(transparent)]
    Db(#[from] crate::p0f::db::DbError),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("writing the log: {0}")]
    Write(#[source] std::io::Error),
}

/// Replays `inputs` in order through one p0f engine and writes p0f 3.09b log lines to `out`.
///
/// The engine sees only [`SynRecord`]s, never the other packets of a capture, so a pcap and
/// the recording made from it (`analyze --records`) give the same lines. `db` replaces the
/// bundled database. `on_file` gets each input's statistics (ingestion warnings live there).
pub fn write_p0f_log(
    inputs: &[Input],
    db: Option<&std::path::Path>,
    out: &mut impl std::io::Write,
    mut on_file: impl FnMut(&Input, &ReplayStats),
) -> Result<(), P0fLogError> {
    use crate::p0f::{Database, Engine, log::write_p0f_line};
    let db = match db {
        Some(path) => Database::from_file(path)?,
        None => Database::embedded()?,
    };
    let mut engine = Engine::new(std::sync::Arc::new(db));
    let mut events = Vec::new();
    let mut write_err = None;
    for input in inputs {
        let stats = for_each_record(input, &mut |rec| {
            if write_err.is_some() {
                return;
            }
            engine.process(rec, &mut events);
            for ev in events.drain(..) {
                if let Err(e) = write_p0f_line(&ev, out) {
                    write_err = Some(e);
                    break;
                }
            }
        })?;
        if let Some(e) = write_err.take() {
            return Err(P0fLogError::Write(e));
        }
        on_file(input, &stats);
    }
    Ok(())
}
