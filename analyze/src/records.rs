//! `analyze --records OUT.parquet INPUT...`: captures -> a recording in `capture`'s format.
//!
//! The point is that an old pcap becomes indistinguishable from a live recording: the same
//! [`record::SynRecord`]s (ingestion guarantees that), the same Parquet schemas, and a flow
//! file beside it with one row per flow per interval, exactly as `capture` writes them. So a
//! notebook or `analyze` itself never needs to care where the data came from.
//!
//! Both files are written under temporary names and renamed into place only once their
//! footers are written: a failed conversion leaves no half-written file that looks like a
//! recording.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use formats::files::Staged;
use formats::flows::{FlowRow, FlowWriter};
use formats::meta::{RecordType, RecordingMeta};
use formats::pcap::{CaptureReader, IngestStats, PacketSink, PcapError, Segment};
use formats::recording::{RecordingError, WriteSummary, WriterOptions};
use formats::syn::SynWriter;
use record::SynRecord;

use crate::flow_intervals::FlowIntervals;

use crate::inputs::{self, Input, InputKind, flows_path_for};
use crate::stoppable::Stoppable;

/// Settings of a conversion.
#[derive(Clone, Copy, Debug)]
pub struct RecordsOptions {
    /// Length of a flow-counter interval, ns (the `capture --flow-interval` equivalent).
    pub flow_interval_ns: u64,
    /// Parquet writer settings for both files.
    pub writer: WriterOptions,
    /// When set (by a signal handler: [`signals::STOP`]), the conversion stops at
    /// the input's next read and fails, leaving no file behind.
    pub stop: Option<&'static AtomicBool>,
}

impl Default for RecordsOptions {
    fn default() -> Self {
        RecordsOptions {
            flow_interval_ns: 10_000_000_000,
            writer: WriterOptions::default(),
            stop: None,
        }
    }
}

/// What one input contributed.
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    pub stats: IngestStats,
}

/// What a conversion did.
#[derive(Debug)]
pub struct RecordsReport {
    /// Per input, in input order.
    pub files: Vec<FileReport>,
    /// All inputs together.
    pub total: IngestStats,
    /// The SYN recording.
    pub syn_path: PathBuf,
    pub syn: WriteSummary,
    /// The flow file beside it.
    pub flows_path: PathBuf,
    pub flows: WriteSummary,
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error(
        "{0}: a Parquet file (a recording?), not a capture; --records converts pcap and pcapng files"
    )]
    NotACapture(PathBuf),
    #[error("no inputs")]
    NoInputs,
    #[error(transparent)]
    Pcap(#[from] PcapError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// Converts `inputs` (pcap/pcapng only) into `out` and its flow file. `on_file` is called
/// after each input with its report, for progress output.
pub fn write_recording(
    inputs: &[Input],
    out: &Path,
    opts: &RecordsOptions,
    mut on_file: impl FnMut(&FileReport),
) -> Result<RecordsReport, RecordsError> {
    if inputs.is_empty() {
        return Err(RecordsError::NoInputs);
    }
    if let Some(i) = inputs.iter().find(|i| i.kind == InputKind::Parquet) {
        return Err(RecordsError::NotACapture(i.path.clone()));
    }
    let flows_path = flows_path_for(out);
    // Dropped on an error, each removes its temporary file: they are ours and useless then.
    let syn_file = Staged::new(out);
    let flows_file = Staged::new(&flows_path);
    let (files, total, syn, flows) =
        convert(inputs, syn_file.tmp(), flows_file.tmp(), opts, &mut on_file)?;
    commit(syn_file)?;
    commit(flows_file)?;
    Ok(RecordsReport {
        files,
        total,
        syn_path: out.to_path_buf(),
        syn,
        flows_path,
        flows,
    })
}

type Converted = (Vec<FileReport>, IngestStats, WriteSummary, WriteSummary);

fn convert(
    inputs: &[Input],
    syn_tmp: &Path,
    flows_tmp: &Path,
    opts: &RecordsOptions,
    on_file: &mut impl FnMut(&FileReport),
) -> Result<Converted, RecordsError> {
    let names: Vec<String> = inputs
        .iter()
        .map(|i| i.path.display().to_string())
        .collect();
    let meta = |record_type| {
        let mut m = RecordingMeta::new(record_type);
        m.interface = names.join(",");
        m.clock_source = "pcap".to_string();
        m.extra.push((
            "flow_interval_ns".to_string(),
            opts.flow_interval_ns.to_string(),
        ));
        m
    };
    let mut sink = RecordingSink {
        syn: SynWriter::create(syn_tmp, &meta(RecordType::Syn), opts.writer)?,
        flows: FlowWriter::create(flows_tmp, &meta(RecordType::Flows), opts.writer)?,
        intervals: FlowIntervals::new(opts.flow_interval_ns),
        error: None,
    };
    let mut files = Vec::with_capacity(inputs.len());
    let mut total = IngestStats::default();
    for input in inputs {
        let name = input.path.display().to_string();
        let file = inputs::open(&input.path).map_err(|cause| PcapError::Io {
            path: name.clone(),
            cause,
        })?;
        let file = Stoppable::new(file, opts.stop);
        let stats = CaptureReader::new(name, file)?.run(&mut sink)?;
        // Intervals do not span files: files need not be in time order.
        sink.flush_intervals();
        if let Some(e) = sink.error.take() {
            return Err(e.into());
        }
        total.merge(&stats);
        let report = FileReport {
            path: input.path.clone(),
            stats,
        };
        on_file(&report);
        files.push(report);
    }
    let RecordingSink { syn, flows, .. } = sink;
    let syn = syn.close()?;
    let flows = flows.close()?;
    Ok((files, total, syn, flows))
}

/// Writes what ingestion finds. [`PacketSink`] calls cannot fail, so the first write error is
/// kept and the rest of the file is skipped cheaply; the caller checks after each file.
struct RecordingSink {
    syn: SynWriter,
    flows: FlowWriter,
    intervals: FlowIntervals,
    error: Option<RecordingError>,
}

impl RecordingSink {
    fn flush_intervals(&mut self) {
        let Self {
            flows,
            intervals,
            error,
            ..
        } = self;
        intervals.flush(&mut |row| write_flow(flows, error, &row));
    }
}

fn write_flow(flows: &mut FlowWriter, error: &mut Option<RecordingError>, row: &FlowRow) {
    if error.is_none()
        && let Err(e) = flows.write(row)
    {
        *error = Some(e);
    }
}

impl PacketSink for RecordingSink {
    fn syn(&mut self, rec: &SynRecord) {
        if self.error.is_none()
            && let Err(e) = self.syn.write(rec)
        {
            self.error = Some(e);
        }
    }

    fn tcp(&mut self, seg: &Segment<'_>) {
        let (key, dir) = seg.flow();
        let Self {
            flows,
            intervals,
            error,
            ..
        } = self;
        intervals.add(
            &key,
            dir,
            seg.ts_ns,
            seg.l3_bytes,
            seg.tcp_flags(),
            &mut |row| write_flow(flows, error, &row),
        );
    }
}

fn commit(file: Staged) -> Result<(), RecordsError> {
    let path = file.path().to_path_buf();
    file.commit()
        .map(drop)
        .map_err(|cause| RecordsError::Io { path, cause })
}
