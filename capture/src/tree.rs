//! `--out-dir DIR`: a capture as a long-running service, writing closed files into a tree.
//!
//! ```text
//! DIR/syn/host=H/date=YYYY-MM-DD/hour=HH/H-IFACE-YYYYMMDDTHHMMSSZ-XXXXXXXX.parquet
//! DIR/flows/host=H/date=YYYY-MM-DD/hour=HH/<same name>.parquet
//! DIR/.journal/   the journals and counters of the span being filled, and the lock
//! ```
//!
//! The capture cuts its recording into spans (`--rotate`, `--rotate-size`). Each span has
//! its own journals, named like its files; when the span ends, the drain continues in the
//! next span's journal and a converter thread turns the finished journals into Parquet
//! ([`crate::output::convert_journal`]: temp name, fsync, rename), then deletes them and
//! applies retention ([`crate::retention`]). A file's name is unique across hosts and
//! restarts (host, interface, span start, 32 random bits); its partition is the UTC hour its
//! rows were seen in.
//!
//! One capture per (DIR, host, interface) holds `DIR/.journal/H-IFACE.lock`. At start it
//! recovers the journals of its killed predecessor into `NAME-recovered.parquet` files and
//! deletes the temporary files a conversion was writing when it died.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use formats::files::{TMP_SUFFIX, TREE_FLOWS, TREE_SYN, safe_name};
use formats::flows::Flows;
use formats::recording::WriteSummary;
use formats::syn::Syn;
use formats::time::{Civil, NS_PER_HOUR};

use crate::error::{CaptureError, Result, io_err};
use crate::journal::{JournalReader, try_lock};
use crate::output::{Target, convert_journal, key, read_counters};
use crate::retention::{Deleted, Limits};

/// Folder of the journals, below DIR.
pub const JOURNAL_DIR: &str = ".journal";

/// The tree of one capture (host + interface) in DIR.
#[derive(Debug)]
pub struct Tree {
    /// DIR.
    pub dir: PathBuf,
    /// Host name as it appears in paths.
    pub host: String,
    /// `H-IFACE`: the prefix of this capture's file names.
    pub prefix: String,
    /// Holds the lock while the capture runs.
    _lock: fs::File,
}

/// The journals and counters of one span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// File name of its outputs, without `.parquet`.
    pub name: String,
    /// Start, ns since the epoch.
    pub start_ns: u64,
    /// SYN journal.
    pub syn_journal: PathBuf,
    /// Flow journal.
    pub flows_journal: PathBuf,
    /// Latest counters of the span.
    pub counters: PathBuf,
}

/// What converting one span wrote.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// Files under `syn/`.
    pub syn: Vec<(PathBuf, WriteSummary)>,
    /// Files under `flows/`.
    pub flows: Vec<(PathBuf, WriteSummary)>,
    /// Frames lost to a torn write or corruption.
    pub damaged: usize,
}

impl Written {
    /// Adds `other`'s files.
    pub fn extend(&mut self, other: Written) {
        self.syn.extend(other.syn);
        self.flows.extend(other.flows);
        self.damaged += other.damaged;
    }

    /// SYN rows written.
    pub fn syn_rows(&self) -> u64 {
        self.syn.iter().map(|(_, s)| s.rows).sum()
    }

    /// Bytes of every file written.
    pub fn bytes(&self) -> u64 {
        self.syn
            .iter()
            .chain(&self.flows)
            .map(|(_, s)| s.bytes)
            .sum()
    }
}

impl Tree {
    /// Opens (creating) DIR for a capture of `iface` on `host`: checks that it is writable
    /// and takes the lock. Fails with [`CaptureError::Busy`] when another capture of the
    /// same host and interface writes there.
    pub fn open(dir: &Path, host: &str, iface: &str) -> Result<Tree> {
        let journals = dir.join(JOURNAL_DIR);
        fs::create_dir_all(&journals).map_err(io_err(&journals))?;
        let host = safe_name(host);
        let prefix = format!("{host}-{}", safe_name(iface));
        let lock_path = journals.join(format!("{prefix}.lock"));
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        if !try_lock(&lock) {
            return Err(CaptureError::Busy(lock_path));
        }
        for top in [TREE_SYN, TREE_FLOWS] {
            let p = dir.join(top);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        Ok(Tree {
            dir: dir.to_path_buf(),
            host,
            prefix,
            _lock: lock,
        })
    }

    /// The journals of a span starting at `start_ns`, with a fresh unique name.
    pub fn span(&self, start_ns: u64) -> Span {
        let name = format!(
            "{}-{}-{:08x}",
            self.prefix,
            Civil::from_ns(start_ns).compact(),
            random_u32()
        );
        self.span_named(name, start_ns)
    }

    fn span_named(&self, name: String, start_ns: u64) -> Span {
        let j = self.dir.join(JOURNAL_DIR);
        Span {
            syn_journal: j.join(format!("{name}.syn.journal")),
            flows_journal: j.join(format!("{name}.flows.journal")),
            counters: j.join(format!("{name}.counters")),
            name,
            start_ns,
        }
    }

    /// Converts a finished span's journals into the tree, then deletes them. `counters` go
    /// into the metadata of the files of the span's own hour; a recovered span's files are
    /// also marked `recovered_from_journal=true`.
    pub fn convert(
        &self,
        span: &Span,
        counters: &[(String, String)],
        recovered: bool,
    ) -> Result<Written> {
        let recovered_mark = [("recovered_from_journal".to_string(), "true".to_string())];
        let marks = if recovered { &recovered_mark[..] } else { &[] };
        let target = |top: &str| (self.dir.join(top), self.host.as_str());
        let (syn_root, host) = target(TREE_SYN);
        let tree = |root| Target::Tree {
            root,
            host,
            name: &span.name,
            home_ns: span.start_ns,
            recovered,
        };
        let mut out = Written::default();
        let (syn, d) =
            convert_journal::<Syn>(&span.syn_journal, &tree(&syn_root), counters, marks)?;
        out.syn = syn;
        out.damaged += d;
        if span.flows_journal.exists() {
            let flows_root = self.dir.join(TREE_FLOWS);
            let (flows, d) =
                convert_journal::<Flows>(&span.flows_journal, &tree(&flows_root), counters, marks)?;
            out.flows = flows;
            out.damaged += d;
        }
        for p in [&span.syn_journal, &span.flows_journal, &span.counters] {
            match fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(p)(e)),
                _ => {}
            }
        }
        Ok(out)
    }

    /// Recovers what a killed capture of this host and interface left: its spans' journals
    /// become `NAME-recovered.parquet` files (with the last counters it saved and
    /// `recovered_from_journal=true`), and the temporary files of an interrupted conversion
    /// are deleted.
    pub fn recover(&self) -> Result<Written> {
        self.remove_stale_temporaries()?;
        let journals = self.dir.join(JOURNAL_DIR);
        let mut names: Vec<String> = fs::read_dir(&journals)
            .map_err(io_err(&journals))?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".syn.journal").map(str::to_string))
            .filter(|n| n.starts_with(&format!("{}-", self.prefix)))
            .collect();
        names.sort();
        let mut out = Written::default();
        for name in names {
            let span = self.span_named(name, 0);
            let guard = fs::File::open(&span.syn_journal).map_err(io_err(&span.syn_journal))?;
            if !try_lock(&guard) {
                return Err(CaptureError::Busy(span.syn_journal.clone()));
            }
            let start_ns = JournalReader::<record::SynRecord>::open(&span.syn_journal)?
                .get(key::START_UTC_NS)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let span = Span { start_ns, ..span };
            let counters = read_counters(&span.counters);
            out.extend(self.convert(&span, &counters, true)?);
        }
        Ok(out)
    }

    /// Deletes `PREFIX-*.tmp` files below `syn/` and `flows/`: only a conversion of this
    /// host and interface writes them, and the lock says none is running.
    fn remove_stale_temporaries(&self) -> Result<()> {
        let mut stack = vec![self.dir.join(TREE_SYN), self.dir.join(TREE_FLOWS)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(path);
                } else if name.starts_with(&format!("{}-", self.prefix))
                    && name.ends_with(TMP_SUFFIX)
                {
                    fs::remove_file(&path).map_err(io_err(&path))?;
                }
            }
        }
        Ok(())
    }
}

/// What the converter did with one span: the files written and what retention deleted.
pub type Converted = Result<(Written, Deleted)>;

/// A finished span and the counters (metadata pairs) its files carry: one converter job.
type Job = (Span, Vec<(String, String)>);

/// The thread that converts finished spans and applies retention, so a long span's
/// conversion never delays flow snapshots, counters or a stop signal (the drain has a thread
/// of its own anyway).
#[derive(Debug)]
pub struct Converter {
    jobs: Option<Sender<Job>>,
    /// One result per span sent, in order.
    pub done: Receiver<Converted>,
    thread: Option<JoinHandle<()>>,
}

impl Converter {
    /// Starts the thread for `tree`, applying `limits` after every span.
    pub fn start(tree: Arc<Tree>, limits: Limits) -> Result<Converter> {
        let (jobs, todo) = mpsc::channel::<Job>();
        let (tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("span-convert".into())
            .spawn(move || {
                for (span, counters) in todo {
                    let r = tree.convert(&span, &counters, false).and_then(|w| {
                        let d =
                            crate::retention::apply(&tree.dir, formats::time::now_ns(), limits)?;
                        Ok((w, d))
                    });
                    if tx.send(r).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| CaptureError::Sys {
                call: "spawning the span-convert thread",
                cause: e,
            })?;
        Ok(Converter {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Queues a finished span (its journals closed) with its counters.
    pub fn send(&self, span: Span, counters: Vec<(String, String)>) -> Result<()> {
        let gone = || CaptureError::Sys {
            call: "span-convert thread",
            cause: std::io::Error::other("stopped"),
        };
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send((span, counters))
            .map_err(|_| gone())
    }

    /// Waits until every queued span is converted; returns the results not yet taken.
    pub fn finish(mut self) -> Vec<Converted> {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.done.try_iter().collect()
    }
}

/// When the span starting at `now_ns` ends: the next multiple of `every` counted from the
/// UTC hour's start (so 15 min spans start at :00, :15, :30, :45), and at the latest the next
/// hour, so a span's rows stay in one hour partition.
pub fn span_end(now_ns: u64, every: Duration) -> u64 {
    let every = u64::try_from(every.as_nanos()).unwrap_or(u64::MAX).max(1);
    let hour = now_ns - now_ns % NS_PER_HOUR;
    let by_period = ((now_ns - hour) / every)
        .saturating_add(1)
        .saturating_mul(every);
    hour + by_period.min(NS_PER_HOUR)
}

/// 32 random bits for file names, from the kernel; the time and process id if that fails.
fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let got = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    match got {
        Ok(()) => u32::from_le_bytes(b),
        Err(_) => formats::time::now_ns() as u32 ^ std::process::id().rotate_left(16),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalWriter;
    use formats::time::parse_rfc3339;
    use record::SynRecord;

    fn rec(ts_ns: u64, port: u16) -> SynRecord {
        let mut r = SynRecord::ZERO;
        r.ip_version = 4;
        r.ts_ns = ts_ns;
        r.src_port = port;
        r.source = record::source::TC;
        r.direction = record::direction::INGRESS;
        r.tcp_flags = record::tcp_flag::SYN;
        r.tcp_hdr_len = 20;
        r.ip_hdr_len = 20;
        r.ip_len = 40;
        r.ttl = 64;
        r
    }

    #[test]
    fn spans_end_on_period_multiples_and_hours() {
        let t = parse_rfc3339("2026-12-06T08:07:30Z").unwrap();
        let at = |s: &str| parse_rfc3339(s).unwrap();
        assert_eq!(
            span_end(t, Duration::from_secs(900)),
            at("2026-12-06T08:15:00Z")
        );
        assert_eq!(
            span_end(t, Duration::from_secs(7 * 60)),
            at("2026-12-06T08:14:00Z")
        );
        assert_eq!(
            span_end(t, Duration::from_secs(7200)),
            at("2026-12-06T09:00:00Z")
        );
        assert_eq!(
            span_end(at("2026-12-06T08:15:00Z"), Duration::from_secs(900)),
            at("2026-12-06T08:30:00Z")
        );
    }

    /// A span's rows land in the partition of the hour they were seen in; the span's own
    /// hour has the counters; the journals go; a second capture of the same interface is
    /// refused.
    #[test]
    fn spans_convert_into_hour_partitions() {
        let d = tempfile::tempdir().unwrap();
        let tree = Tree::open(d.path(), "edge 1", "eth0").unwrap();
        assert!(matches!(
            Tree::open(d.path(), "edge 1", "eth0"),
            Err(CaptureError::Busy(_))
        ));
        let start = parse_rfc3339("2026-12-06T09:00:00Z").unwrap();
        let span = tree.span(start);
        assert!(
            span.name.starts_with("edge_1-eth0-20261206T090000Z-"),
            "{}",
            span.name
        );
        let meta = vec![(key::START_UTC_NS.to_string(), start.to_string())];
        let mut w = JournalWriter::create::<SynRecord>(&span.syn_journal, &meta).unwrap();
        // One straggler of the previous hour (drained just after 09:00), then the span's own.
        for (ts, port) in [(start - 5_000_000, 1), (start + 1, 2), (start + 2, 3)] {
            w.push(&rec(ts, port));
        }
        w.finish().unwrap();
        drop(w);
        let extra = vec![("syn_seen".to_string(), "3".to_string())];
        let out = tree.convert(&span, &extra, false).unwrap();
        assert!(!span.syn_journal.exists());
        let mut files: Vec<_> = out
            .syn
            .iter()
            .map(|(p, s)| (p.strip_prefix(d.path()).unwrap().to_path_buf(), s.rows))
            .collect();
        files.sort();
        let name = format!("{}.parquet", span.name);
        assert_eq!(
            files,
            vec![
                (
                    Path::new("syn/host=edge_1/date=2026-12-06/hour=08").join(&name),
                    1
                ),
                (
                    Path::new("syn/host=edge_1/date=2026-12-06/hour=09").join(&name),
                    2
                ),
            ]
        );
        let home = formats::syn::SynReader::open(d.path().join(&files[1].0)).unwrap();
        assert!(home.meta().extra.contains(&("syn_seen".into(), "3".into())));
        let straggler = formats::syn::SynReader::open(d.path().join(&files[0].0)).unwrap();
        assert!(!straggler.meta().extra.iter().any(|(k, _)| k == "syn_seen"));
    }

    /// A killed run's journals become `-recovered` files, except the parts it had already
    /// committed; stale temporaries go.
    #[test]
    fn recovery_skips_committed_parts_and_removes_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let start = parse_rfc3339("2026-12-06T09:59:00Z").unwrap();
        let name;
        {
            let tree = Tree::open(d.path(), "h", "lo").unwrap();
            let span = tree.span(start);
            name = span.name.clone();
            let meta = vec![(key::START_UTC_NS.to_string(), start.to_string())];
            let mut w = JournalWriter::create::<SynRecord>(&span.syn_journal, &meta).unwrap();
            w.push(&rec(start + 1, 1));
            w.push(&rec(start + 120_000_000_000, 2)); // 10:01, the next hour
            w.finish().unwrap();
            // The 09 part was committed before the kill; the 10 part was being written.
            let p09 = d.path().join("syn/host=h/date=2026-12-06/hour=09");
            fs::create_dir_all(&p09).unwrap();
            fs::write(p09.join(format!("{name}.parquet")), b"PAR1 committed").unwrap();
            fs::write(p09.join(format!("{name}.parquet.tmp")), b"half").unwrap();
            crate::output::write_counters(&span.counters, &[("syn_seen".into(), "2".into())])
                .unwrap();
        }
        let tree = Tree::open(d.path(), "h", "lo").unwrap();
        let out = tree.recover().unwrap();
        let paths: Vec<_> = out
            .syn
            .iter()
            .map(|(p, s)| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    s.rows,
                )
            })
            .collect();
        assert_eq!(paths, vec![(format!("{name}-recovered.parquet"), 1)]);
        assert!(out.syn[0].0.to_string_lossy().contains("hour=10"));
        let p09 = d.path().join("syn/host=h/date=2026-12-06/hour=09");
        assert!(!p09.join(format!("{name}.parquet.tmp")).exists());
        assert!(p09.join(format!("{name}.parquet")).exists());
        assert_eq!(
            fs::read_dir(d.path().join(JOURNAL_DIR)).unwrap().count(),
            1,
            "only the lock is left"
        );
        // The recovered file has the saved counters, as it is the only one written.
        let r = formats::syn::SynReader::open(&out.syn[0].0).unwrap();
        assert!(
            r.meta()
                .extra
                .contains(&("recovered_from_journal".into(), "true".into()))
        );
        assert!(tree.recover().unwrap().syn.is_empty());
    }
}
