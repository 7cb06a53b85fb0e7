//! `analyze --records OUT.parquet INPUT...`: captures -> a recording in `capture`'s format.
//!
//! The point is that an old pcap becomes indistinguishable from a live recording: the same
//! [`record::SynRecord`]s (ingestion guarantees that), the same Parquet schemas, and a flow
//! file beside it with one row per flow per interval, exactly as `capture` writes them. So a
//! notebook or `analyze` itself never needs to care where the data came from.
//!
//! A third file, `OUT.payload.parquet` ([`formats::payload`]), keeps the TCP segments p0f's
//! HTTP module reads: exactly the payload records the replay of the same captures hands the
//! engine (the segments [`HttpFilter`] picks, with a filter per [`WINDOW_SIZE`] window of a
//! capture file as [`crate::parallel`] has it, one for a whole stream), each with its place
//! among the SYN rows, so replaying the recording gives the capture's HTTP lines too. It is
//! written always, with no rows when no flow looked like HTTP, so the set of files is the
//! same for every conversion and a missing payload file says "recorded without payload" (an
//! older recording, a capture tree), never "no HTTP seen".
//!
//! All three files are written under temporary names and renamed into place only once their
//! footers are written: a failed conversion leaves no half-written file that looks like a
//! recording.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use formats::files::Staged;
use formats::flows::{FlowRow, FlowWriter};
use formats::meta::{RecordType, RecordingMeta};
use formats::payload::{PayloadRow, PayloadWriter};
use formats::pcap::{
    CaptureReader, HttpFilter, IngestStats, PacketSink, PcapError, Segment, WINDOW_SIZE, Windows,
};
use formats::recording::{RecordingError, WriteSummary, WriterOptions};
use formats::syn::SynWriter;
use record::SynRecord;

use crate::flow_intervals::FlowIntervals;

use crate::inputs::{self, Input, InputKind, flows_path_for, payload_path_for};
use crate::stoppable::{Stoppable, Stopped};

/// Settings of a conversion.
#[derive(Clone, Copy, Debug)]
pub struct RecordsOptions {
    /// Length of a flow-counter interval, ns (the `capture --flow-interval` equivalent).
    pub flow_interval_ns: u64,
    /// Parquet writer settings for the files (the payload file's row groups are bounded
    /// further: [`formats::payload::writer_options`]).
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
    /// The payload file beside it.
    pub payload_path: PathBuf,
    pub payload: WriteSummary,
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

/// Converts `inputs` (pcap/pcapng only) into `out`, its flow file and its payload file.
/// `on_file` is called after each input with its report, for progress output.
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
    let payload_path = payload_path_for(out);
    // Dropped on an error, each removes its temporary file: they are ours and useless then.
    let syn_file = Staged::new(out);
    let flows_file = Staged::new(&flows_path);
    let payload_file = Staged::new(&payload_path);
    let tmps = Tmps {
        syn: syn_file.tmp(),
        flows: flows_file.tmp(),
        payload: payload_file.tmp(),
    };
    let c = convert(inputs, &tmps, opts, &mut on_file)?;
    // The companions first: a reader that finds the SYN file finds them complete.
    commit(flows_file)?;
    commit(payload_file)?;
    commit(syn_file)?;
    Ok(RecordsReport {
        files: c.files,
        total: c.total,
        syn_path: out.to_path_buf(),
        syn: c.syn,
        flows_path,
        flows: c.flows,
        payload_path,
        payload: c.payload,
    })
}

/// Where the three files are written until committed.
struct Tmps<'a> {
    syn: &'a Path,
    flows: &'a Path,
    payload: &'a Path,
}

/// What [`convert`] wrote.
struct Converted {
    files: Vec<FileReport>,
    total: IngestStats,
    syn: WriteSummary,
    flows: WriteSummary,
    payload: WriteSummary,
}

fn convert(
    inputs: &[Input],
    tmps: &Tmps<'_>,
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
        syn: SynWriter::create(tmps.syn, &meta(RecordType::Syn), opts.writer)?,
        flows: FlowWriter::create(tmps.flows, &meta(RecordType::Flows), opts.writer)?,
        payload: PayloadWriter::create(
            tmps.payload,
            &meta(RecordType::Payload),
            formats::payload::writer_options(opts.writer),
        )?,
        http: HttpFilter::default(),
        intervals: FlowIntervals::new(opts.flow_interval_ns),
        error: None,
    };
    let mut files = Vec::with_capacity(inputs.len());
    let mut total = IngestStats::default();
    for input in inputs {
        let stats = read_capture(&input.path, opts, &mut sink)?;
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
    let RecordingSink {
        syn,
        flows,
        payload,
        ..
    } = sink;
    // Every writer is closed, whatever the others do; the first error wins.
    let (syn, flows, payload) = (syn.close(), flows.close(), payload.close());
    Ok(Converted {
        files,
        total,
        syn: syn?,
        flows: flows?,
        payload: payload?,
    })
}

/// Reads one capture into `sink` the way the replay reads it ([`crate::parallel`]): a
/// regular file window by window ([`Windows`], [`WINDOW_SIZE`] bytes), with a fresh HTTP
/// filter per window, so the payload records are the very ones `analyze FILE` hands the
/// engine; a stream front to back with one filter.
fn read_capture(
    path: &Path,
    opts: &RecordsOptions,
    sink: &mut RecordingSink,
) -> Result<IngestStats, RecordsError> {
    let name = path.display().to_string();
    let io_err = |cause| PcapError::Io {
        path: name.clone(),
        cause,
    };
    let file = inputs::open(path).map_err(io_err)?;
    let positioned = file.try_clone();
    let reader = CaptureReader::new(name.clone(), Stoppable::new(file, opts.stop))?;
    let windows = match positioned {
        Ok(f) => Windows::new(&reader, f, WINDOW_SIZE)?,
        Err(_) => None,
    };
    let Some(windows) = windows else {
        let mut reader = reader;
        sink.http = HttpFilter::default();
        return Ok(reader.run(sink)?);
    };
    let mut stats = IngestStats::default();
    let mut buffer = Vec::new();
    for k in 0..windows.len() {
        if opts
            .stop
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
        {
            let cause = std::io::Error::other(Stopped);
            return Err(io_err(cause).into());
        }
        let chunk = windows.read(k, buffer)?;
        sink.http = HttpFilter::default();
        stats.merge(&chunk.run(sink));
        buffer = chunk.into_buffer();
    }
    // A pcap without packets still names its link type, as the sequential reader does.
    if let Some(link) = windows.link_type() {
        stats.link_types.entry(link).or_default();
    }
    Ok(stats)
}

/// Writes what ingestion finds. [`PacketSink`] calls cannot fail, so the first write error is
/// kept and the rest of the file is skipped cheaply; the caller checks after each file.
struct RecordingSink {
    syn: SynWriter,
    flows: FlowWriter,
    payload: PayloadWriter,
    /// Picks the payload records; replaced at each window ([`read_capture`]).
    http: HttpFilter,
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
        // A SYN is never a payload record (the filter says so), so a segment's place is
        // after the SYN rows written so far, the place the replay gives it.
        if self.error.is_none()
            && let Some(record) = self.http.record(seg)
        {
            let row = PayloadRow {
                syn_rows_before: self.syn.rows_written(),
                record: *record,
            };
            if let Err(e) = self.payload.write(&row) {
                self.error = Some(e);
            }
        }
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
