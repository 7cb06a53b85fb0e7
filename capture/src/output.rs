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

use formats::files::Staged;
use formats::flows::{FlowRow, Flows};
use formats::meta::{RecordType, RecordingMeta};
use formats::recording::{RecordKind, RecordingWriter, WriteSummary, WriterOptions};
use formats::syn::Syn;
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

/// Writes `pairs` as `name=value` lines to `path` atomically (temp + fsync + rename).
pub fn write_counters(path: &Path, pairs: &[(String, String)]) -> Result<()> {
    let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    formats::files::write_atomic(path, text.as_bytes()).map_err(io_err(path))
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

/// The time a row was seen, which decides its partition in a tree.
pub trait Seen {
    /// ns since the Unix epoch.
    fn seen_ns(&self) -> u64;
}

impl Seen for SynRecord {
    fn seen_ns(&self) -> u64 {
        self.ts_ns
    }
}

impl Seen for FlowRow {
    fn seen_ns(&self) -> u64 {
        self.interval_start_ns
    }
}

/// Where a journal's rows go.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// One file (`--out`).
    File(&'a Path),
    /// A partitioned tree (`--out-dir`): `root/host=H/date=D/hour=HH/NAME.parquet`, one file
    /// per UTC hour the rows were seen in (normally one: only rows drained just after an
    /// hour's end fall in the previous one). The file of `home_ns`'s hour is always written,
    /// empty if need be, and alone carries the span's counters, so summing a tree's counters
    /// counts each span once.
    Tree {
        /// `DIR/syn` or `DIR/flows`.
        root: &'a Path,
        /// Host partition value.
        host: &'a str,
        /// File name without `.parquet`.
        name: &'a str,
        /// Start of the span (ns since the epoch).
        home_ns: u64,
        /// A killed run's journal: parts already committed under `name` (a crash between
        /// the commit and the journal's removal) are skipped, the others get
        /// `NAME-recovered.parquet`.
        recovered: bool,
    },
}

impl Target<'_> {
    /// Where the rows of the hour starting at `hour` go; `None` when they are already in the
    /// tree (see [`Target::Tree::recovered`]).
    fn part_path(&self, hour: u64) -> Option<PathBuf> {
        match *self {
            Target::File(p) => Some(p.to_path_buf()),
            Target::Tree {
                root,
                host,
                name,
                recovered,
                ..
            } => {
                let dir = root.join(formats::files::partition_dir(host, hour));
                if recovered {
                    if dir.join(format!("{name}.parquet")).exists() {
                        return None;
                    }
                    return Some(dir.join(format!("{name}{RECOVERED_SUFFIX}.parquet")));
                }
                Some(dir.join(format!("{name}.parquet")))
            }
        }
    }

    /// The hour the rows seen at `ns` belong to (a file target has one part).
    fn hour_of(&self, ns: u64) -> u64 {
        match self {
            Target::File(_) => 0,
            Target::Tree { .. } => formats::files::hour_start(ns),
        }
    }

    fn home_hour(&self) -> u64 {
        match *self {
            Target::File(_) => 0,
            Target::Tree { home_ns, .. } => formats::files::hour_start(home_ns),
        }
    }
}

/// Added to the names of files recovered from a killed run's journals.
pub const RECOVERED_SUFFIX: &str = "-recovered";

/// One output file of a conversion: `None` for rows that are already in the tree.
struct Part<K: RecordKind> {
    hour: u64,
    out: Option<(Staged, RecordingWriter<K, fs::File>)>,
}

fn open_part<K: RecordKind>(target: &Target, hour: u64, meta: &RecordingMeta) -> Result<Part<K>> {
    let Some(path) = target.part_path(hour) else {
        return Ok(Part { hour, out: None });
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let staged = Staged::new(&path);
    let writer =
        RecordingWriter::<K, fs::File>::create(staged.tmp(), meta, WriterOptions::default())
            .map_err(|cause| CaptureError::Recording { path, cause })?;
    Ok(Part {
        hour,
        out: Some((staged, writer)),
    })
}

/// Streams the journal at `journal` into Parquet at `target` (each file through a temporary
/// name, committed only once complete). `counters` is added to the metadata of the file that
/// carries the span's counters, `marks` to every file's. Returns the files written and the number of damaged frames
/// (a torn tail counts as one).
pub fn convert_journal<K: RecordKind>(
    journal: &Path,
    target: &Target,
    counters: &[(String, String)],
    marks: &[(String, String)],
) -> Result<(Vec<(PathBuf, WriteSummary)>, usize)>
where
    K::Row: Frame + Seen,
{
    let mut reader = JournalReader::<K::Row>::open(journal)?;
    let full: Vec<_> = marks.iter().chain(counters).cloned().collect();
    let full = recording_meta(K::RECORD_TYPE, &reader.meta, &full);
    let mut bare = marks.to_vec();
    bare.push((
        "span_counters".into(),
        "in this span's file of its own hour".into(),
    ));
    let bare = recording_meta(K::RECORD_TYPE, &reader.meta, &bare);
    let mut parts = vec![open_part::<K>(target, target.home_hour(), &full)?];
    let mut chunk = Vec::new();
    while reader.next_chunk(&mut chunk, CONVERT_CHUNK)? {
        // Rows come in time order but for the drain's interleaving of CPUs: runs of one hour
        // are written as one slice.
        let mut rest = chunk.as_slice();
        while let Some(first) = rest.first() {
            let hour = target.hour_of(first.seen_ns());
            let run = rest
                .iter()
                .position(|r| target.hour_of(r.seen_ns()) != hour)
                .unwrap_or(rest.len());
            let (rows, tail) = rest.split_at(run);
            rest = tail;
            let at = match parts.iter().position(|p| p.hour == hour) {
                Some(i) => i,
                None => {
                    parts.push(open_part::<K>(target, hour, &bare)?);
                    parts.len() - 1
                }
            };
            if let Some((staged, w)) = parts.get_mut(at).and_then(|p| p.out.as_mut()) {
                w.write_all(rows).map_err(|cause| CaptureError::Recording {
                    path: staged.path().to_path_buf(),
                    cause,
                })?;
            }
        }
    }
    // Every part is closed before any is committed: a failure leaves none of them.
    let mut closed = Vec::new();
    for (staged, w) in parts.into_iter().filter_map(|p| p.out) {
        let summary = w.close().map_err(|cause| CaptureError::Recording {
            path: staged.path().to_path_buf(),
            cause,
        })?;
        closed.push((staged, summary));
    }
    let mut written = Vec::new();
    for (staged, summary) in closed {
        let path = staged.path().to_path_buf();
        written.push((staged.commit().map_err(io_err(&path))?, summary));
    }
    Ok((written, reader.torn_bytes.min(1) + reader.bad_frames))
}

fn convert_one<K: RecordKind>(
    journal: &Path,
    out: &Path,
    extra: &[(String, String)],
) -> Result<(WriteSummary, usize)>
where
    K::Row: Frame + Seen,
{
    let (mut files, damaged) = convert_journal::<K>(journal, &Target::File(out), extra, &[])?;
    let summary = files
        .pop()
        .map(|(_, s)| s)
        .ok_or_else(|| CaptureError::Journal {
            path: journal.to_path_buf(),
            reason: "converted to no file".into(),
        })?;
    Ok((summary, damaged))
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
    let (syn, mut damaged) = convert_one::<Syn>(&paths.syn_journal, syn_out, extra)?;
    let flows = if paths.flows_journal.exists() {
        let (s, d) = convert_one::<Flows>(&paths.flows_journal, flows_out, extra)?;
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
