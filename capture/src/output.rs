//! Output files: naming, journal-to-Parquet conversion and crash recovery.
//!
//! For `--out day.parquet` a capture produces `day.parquet` (SYN records) and
//! `day.flows.parquet` (flow rows). While it runs, only the journals `day.parquet.journal`
//! and `day.flows.parquet.journal` and the counter file `day.parquet.counters` exist (see
//! [`crate::journal`]). A clean exit converts them (through a `.tmp` file and a rename, so
//! an output file is either complete or absent) and deletes them. A later start that finds
//! them converts them into `day.recovered-<START>.parquet` / `.flows.parquet`, where START
//! is the killed run's start time (UTC seconds), so the new run's outputs never collide.

use std::fs;
use std::path::{Path, PathBuf};

use formats::flows::{FlowRow, FlowWriter};
use formats::meta::{RecordType, RecordingMeta};
use formats::recording::{RecordingError, WriteSummary, WriterOptions};
use formats::syn::SynWriter;
use record::SynRecord;

use crate::error::{CaptureError, Result, io_err};
use crate::journal::{Frame, JournalReader};

/// Journal metadata keys that map onto [`RecordingMeta`] fields; every other key becomes a
/// `synscope.extra.*` pair.
pub mod key {
    pub const HOST: &str = "host";
    pub const INTERFACE: &str = "interface";
    pub const KERNEL: &str = "kernel";
    pub const CLOCK_SOURCE: &str = "clock_source";
    pub const START_UTC_NS: &str = "start_utc_ns";
}

/// Every path a capture with one `--out` uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paths {
    /// SYN recording.
    pub syn: PathBuf,
    /// Flow recording.
    pub flows: PathBuf,
    /// SYN journal.
    pub syn_journal: PathBuf,
    /// Flow journal.
    pub flows_journal: PathBuf,
    /// Latest counters (`name=value` lines), rewritten atomically at every flush.
    pub counters: PathBuf,
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `dir/stem` of `out` without a trailing `.parquet`.
fn base(out: &Path) -> PathBuf {
    let s = out.to_string_lossy();
    match s.strip_suffix(".parquet") {
        Some(b) if !b.is_empty() && !b.ends_with('/') => PathBuf::from(b),
        _ => out.to_path_buf(),
    }
}

impl Paths {
    /// Paths for `--out out`.
    pub fn new(out: &Path) -> Paths {
        let flows = with_suffix(&base(out), ".flows.parquet");
        Paths {
            syn: out.to_path_buf(),
            syn_journal: with_suffix(out, ".journal"),
            flows_journal: with_suffix(&flows, ".journal"),
            counters: with_suffix(out, ".counters"),
            flows,
        }
    }

    /// Where a killed run that started at `start_s` (UTC seconds) is recovered to.
    pub fn recovered(&self, start_s: u64) -> (PathBuf, PathBuf) {
        let b = with_suffix(&base(&self.syn), &format!(".recovered-{start_s}"));
        (
            with_suffix(&b, ".parquet"),
            with_suffix(&b, ".flows.parquet"),
        )
    }
}

/// Writes `pairs` as `name=value` lines to `path` atomically (temp file + rename).
pub fn write_counters(path: &Path, pairs: &[(String, String)]) -> Result<()> {
    let tmp = with_suffix(path, ".tmp");
    let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    fs::write(&tmp, text).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// Reads a counters file; missing or unreadable gives nothing (counters are informative).
pub fn read_counters(path: &Path) -> Vec<(String, String)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds the recording metadata from journal metadata plus extra pairs.
pub fn recording_meta(
    record_type: RecordType,
    journal_meta: &[(String, String)],
    extra: &[(String, String)],
) -> RecordingMeta {
    let mut m = RecordingMeta::new(record_type);
    for (k, v) in journal_meta.iter().chain(extra) {
        match k.as_str() {
            key::HOST => m.host = v.clone(),
            key::INTERFACE => m.interface = v.clone(),
            key::KERNEL => m.kernel = v.clone(),
            key::CLOCK_SOURCE => m.clock_source = v.clone(),
            _ => m.extra.push((k.clone(), v.clone())),
        }
    }
    m
}

/// Rows read from a journal and handed to a Parquet writer at a time while converting: 1 MiB
/// of SYN records per read. The chunk is held twice (the bytes read and the decoded rows), so
/// 65,536 rows cost ~16 MiB of peak RSS on top of the writer's row group for no measurable
/// CPU gain (BENCHMARKS.md, "converting the journals at stop").
const CONVERT_CHUNK: usize = 8192;

/// Streams the journal at `journal` into a Parquet file at `out` (via `out.tmp` + rename).
/// Returns the summary and the number of damaged frames (torn tail counts as one).
fn convert_one<F: Frame>(
    journal: &Path,
    out: &Path,
    record_type: RecordType,
    extra: &[(String, String)],
    mut write: impl FnMut(&mut Sink, &[F]) -> std::result::Result<(), RecordingError>,
) -> Result<(WriteSummary, usize)> {
    let mut reader = JournalReader::<F>::open(journal)?;
    let meta = recording_meta(record_type, &reader.meta, extra);
    let tmp = with_suffix(out, ".tmp");
    let rec_err = |cause| CaptureError::Recording {
        path: out.to_path_buf(),
        cause,
    };
    let mut sink = match record_type {
        RecordType::Syn => {
            Sink::Syn(SynWriter::create(&tmp, &meta, WriterOptions::default()).map_err(rec_err)?)
        }
        RecordType::Flows => {
            Sink::Flows(FlowWriter::create(&tmp, &meta, WriterOptions::default()).map_err(rec_err)?)
        }
    };
    let mut chunk = Vec::new();
    while reader.next_chunk(&mut chunk, CONVERT_CHUNK)? {
        write(&mut sink, &chunk).map_err(rec_err)?;
    }
    let summary = match sink {
        Sink::Syn(w) => w.close(),
        Sink::Flows(w) => w.close(),
    }
    .map_err(rec_err)?;
    fs::rename(&tmp, out).map_err(io_err(out))?;
    Ok((summary, reader.torn_bytes.min(1) + reader.bad_frames))
}

/// The writer of one conversion.
enum Sink {
    Syn(SynWriter),
    Flows(FlowWriter),
}

fn write_syn(sink: &mut Sink, rows: &[SynRecord]) -> std::result::Result<(), RecordingError> {
    match sink {
        Sink::Syn(w) => w.write_all(rows),
        Sink::Flows(_) => Ok(()),
    }
}

fn write_flows(sink: &mut Sink, rows: &[FlowRow]) -> std::result::Result<(), RecordingError> {
    match sink {
        Sink::Flows(w) => w.write_all(rows),
        Sink::Syn(_) => Ok(()),
    }
}

/// What one conversion produced.
#[derive(Clone, Debug)]
pub struct Converted {
    /// SYN output and its summary.
    pub syn: (PathBuf, WriteSummary),
    /// Flow output and its summary (absent when the run had no flow journal).
    pub flows: Option<(PathBuf, WriteSummary)>,
    /// Frames lost to a torn write or corruption, both journals together.
    pub damaged: usize,
}

/// Converts the journals of `paths` into `syn_out` / `flows_out`, then deletes the journals
/// and the counters file. `extra` is added to both files' metadata.
pub fn convert(
    paths: &Paths,
    syn_out: &Path,
    flows_out: &Path,
    extra: &[(String, String)],
) -> Result<Converted> {
    let (syn, mut damaged) = convert_one(
        &paths.syn_journal,
        syn_out,
        RecordType::Syn,
        extra,
        write_syn,
    )?;
    let flows = if paths.flows_journal.exists() {
        let (s, d) = convert_one(
            &paths.flows_journal,
            flows_out,
            RecordType::Flows,
            extra,
            write_flows,
        )?;
        damaged += d;
        Some((flows_out.to_path_buf(), s))
    } else {
        None
    };
    for p in [&paths.syn_journal, &paths.flows_journal, &paths.counters] {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(p)(e)),
        }
    }
    Ok(Converted {
        syn: (syn_out.to_path_buf(), syn),
        flows,
        damaged,
    })
}

/// Recovers the journals of a killed run, if any. Returns what was written.
pub fn recover(paths: &Paths) -> Result<Option<Converted>> {
    if !paths.syn_journal.exists() {
        return Ok(None);
    }
    // A live capture holds this lock: its journal is not ours to convert.
    let guard = fs::File::open(&paths.syn_journal).map_err(io_err(&paths.syn_journal))?;
    if !crate::journal::try_lock(&guard) {
        return Err(CaptureError::Busy(paths.syn_journal.clone()));
    }
    let sj = JournalReader::<SynRecord>::open(&paths.syn_journal)?;
    let start_s = sj
        .get(key::START_UTC_NS)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        / 1_000_000_000;
    let (syn_out, flows_out) = paths.recovered(start_s);
    let mut extra = read_counters(&paths.counters);
    extra.push(("recovered_from_journal".into(), "true".into()));
    convert(paths, &syn_out, &flows_out, &extra).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalWriter;
    use formats::syn::SynReader;

    #[test]
    fn path_names() {
        let p = Paths::new(Path::new("/d/day.parquet"));
        assert_eq!(p.flows, PathBuf::from("/d/day.flows.parquet"));
        assert_eq!(p.syn_journal, PathBuf::from("/d/day.parquet.journal"));
        assert_eq!(
            p.flows_journal,
            PathBuf::from("/d/day.flows.parquet.journal")
        );
        assert_eq!(
            p.recovered(17),
            (
                PathBuf::from("/d/day.recovered-17.parquet"),
                PathBuf::from("/d/day.recovered-17.flows.parquet")
            )
        );
        let q = Paths::new(Path::new("out"));
        assert_eq!(q.flows, PathBuf::from("out.flows.parquet"));
    }

    #[test]
    fn recover_converts_and_removes_journals() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(&dir.path().join("day.parquet"));
        let meta = vec![
            (key::INTERFACE.to_string(), "veth0".to_string()),
            (key::START_UTC_NS.to_string(), "5000000000".to_string()),
            ("mode".to_string(), "tc".to_string()),
        ];
        let mut w = JournalWriter::create::<SynRecord>(&paths.syn_journal, &meta).unwrap();
        let mut r = SynRecord::ZERO;
        r.ip_version = 4;
        r.ts_ns = 1_700_000_000_000_000_000;
        r.source = record::source::TC;
        r.direction = record::direction::INGRESS;
        r.tcp_flags = record::tcp_flag::SYN;
        r.tcp_hdr_len = 20;
        r.ip_hdr_len = 20;
        r.ip_len = 40;
        r.ttl = 64;
        w.push(&r);
        w.flush().unwrap();
        // The killed capture's descriptor (and lock) is gone.
        drop(w);
        write_counters(&paths.counters, &[("ringbuf_full".into(), "3".into())]).unwrap();
        let got = recover(&paths).unwrap().unwrap();
        assert_eq!(got.syn.0, dir.path().join("day.recovered-5.parquet"));
        assert_eq!(got.syn.1.rows, 1);
        assert!(got.flows.is_none());
        assert!(!paths.syn_journal.exists() && !paths.counters.exists());
        let reader = SynReader::open(&got.syn.0).unwrap();
        assert_eq!(reader.meta().interface, "veth0");
        assert!(
            reader
                .meta()
                .extra
                .contains(&("ringbuf_full".into(), "3".into()))
        );
        assert!(reader.meta().extra.contains(&("mode".into(), "tc".into())));
        let rows: Vec<SynRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows, vec![r]);
        // Nothing left to recover.
        assert!(recover(&paths).unwrap().is_none());
    }

    #[test]
    fn running_capture_journal_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(&dir.path().join("day.parquet"));
        let live = JournalWriter::create::<SynRecord>(&paths.syn_journal, &[]).unwrap();
        assert!(matches!(recover(&paths), Err(CaptureError::Busy(_))));
        assert!(matches!(
            JournalWriter::create::<SynRecord>(&paths.syn_journal, &[]),
            Err(CaptureError::Busy(_))
        ));
        assert!(paths.syn_journal.exists());
        drop(live);
        // Lock released (as when the process dies): recoverable now.
        assert!(recover(&paths).unwrap().is_some());
    }
}
