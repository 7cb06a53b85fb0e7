//! Turning the command line's paths into an ordered list of inputs of known kind.
//!
//! Users point `analyze` at files and folders from many tools (`.pcap`, `.cap`, `.pcapng`,
//! `.trace`, recordings named anything), so the kind comes from the file's first bytes, never
//! its name. Folders are walked recursively in sorted order so the same tree always replays in
//! the same order (output must be reproducible).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use formats::files::FileKind;

/// What a file holds, judged by its magic bytes (in a folder, a file whose name promises a
/// capture or a recording gets that kind even when its bytes do not match: see [`expand`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Classic libpcap file (any byte order, micro- or nanosecond).
    Pcap,
    /// pcapng file.
    PcapNg,
    /// A Parquet file: a synscope recording (or something else, which the reader rejects).
    Parquet,
    /// Standard input (`-`), a pipe or a device: a capture read once, front to back, whose
    /// reader tells pcap from pcapng. Not sniffed here, as the bytes read would be gone.
    Stream,
}

/// The input name for standard input.
pub const STDIN: &str = "-";

/// Opens an input for reading: [`STDIN`] is standard input (a duplicate of its descriptor),
/// anything else the file at `path`.
pub fn open(path: &Path) -> io::Result<File> {
    if path == Path::new(STDIN) {
        Ok(File::from(io::stdin().as_fd().try_clone_to_owned()?))
    } else {
        File::open(path)
    }
}

/// One input to replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub kind: InputKind,
}

/// Why a path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    #[error("{path}: not a pcap, pcapng or Parquet file (first bytes {magic})")]
    UnknownKind { path: PathBuf, magic: String },
    #[error("{path}: no pcap, pcapng or Parquet files in this folder")]
    EmptyFolder { path: PathBuf },
    #[error("standard input (-) given twice")]
    StdinTwice,
}

pub use formats::files::{
    FLOWS_SUFFIX, PAYLOAD_SUFFIX, TMP_SUFFIX, flows_path_for, payload_path_for, tmp_path_for,
};

/// Sniffs the kind of one file from its first four bytes ([`formats::files::sniff`]).
pub fn sniff(path: &Path) -> Result<InputKind, InputError> {
    match formats::files::sniff(path) {
        Ok(Ok(kind)) => Ok(match kind {
            FileKind::Pcap => InputKind::Pcap,
            FileKind::PcapNg => InputKind::PcapNg,
            FileKind::Parquet => InputKind::Parquet,
        }),
        Ok(Err(magic)) => Err(InputError::UnknownKind {
            path: path.to_path_buf(),
            magic: magic.iter().map(|b| format!("{b:02x}")).collect(),
        }),
        Err(cause) => Err(InputError::Io {
            path: path.to_path_buf(),
            cause,
        }),
    }
}

/// The kind a file's extension promises (`.pcap`, `.cap`, `.pcapng`, `.parquet`, any case).
fn kind_by_name(path: &Path) -> Option<InputKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "pcap" | "cap" => Some(InputKind::Pcap),
        "pcapng" => Some(InputKind::PcapNg),
        "parquet" => Some(InputKind::Parquet),
        _ => None,
    }
}

/// Expands the command line's paths: files are taken as given (and must be of a known kind),
/// `-`, pipes and devices as [`InputKind::Stream`]s, and folders are walked recursively in
/// sorted order keeping files of a known kind and leaving out `*.flows.parquet` and
/// `*.payload.parquet` companions, `*.tmp` files and analyze's own results files.
///
/// In a folder, files of unknown content are not inputs (READMEs, logs, scripts), except
/// those whose extension says capture or recording (`kind_by_name`): an empty or damaged
/// `day3.pcap` is a bad input, to be reported like one (the run stops, or `--keep-going`
/// names it and goes on), not left out in silence, which would make a report look complete
/// when it is not.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<Input>, InputError> {
    expand_within(paths, TimeRange::default())
}

/// The times a replay wants (ns since the epoch, UTC): in a partitioned tree, `date=` and
/// `hour=` folders wholly outside are skipped by name, their files never opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Skip partitions that end at or before this.
    pub since: Option<u64>,
    /// Skip partitions that start at or after this.
    pub until: Option<u64>,
}

impl TimeRange {
    fn excludes(&self, (start, end): (u64, u64)) -> bool {
        self.since.is_some_and(|s| end <= s) || self.until.is_some_and(|u| start >= u)
    }
}

/// [`expand`], skipping the partitions of a tree outside `range`. A tree
/// (`capture --out-dir`) is read through its `syn/` folder; its `flows/` and `payload/`
/// folders hold the recordings' companions (found by [`flows_path_for`] and
/// [`payload_path_for`]), not inputs.
pub fn expand_within(paths: &[PathBuf], range: TimeRange) -> Result<Vec<Input>, InputError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_path() == Path::new(STDIN) {
            if out.iter().any(|i: &Input| i.path == *p) {
                return Err(InputError::StdinTwice);
            }
            out.push(Input {
                path: p.clone(),
                kind: InputKind::Stream,
            });
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|cause| InputError::Io {
            path: p.clone(),
            cause,
        })?;
        if meta.is_dir() {
            let before = out.len();
            walk(p, &mut out, range, None)?;
            if out.len() == before {
                return Err(InputError::EmptyFolder { path: p.clone() });
            }
        } else {
            let kind = if meta.is_file() {
                sniff(p)?
            } else {
                InputKind::Stream
            };
            out.push(Input {
                path: p.clone(),
                kind,
            });
        }
    }
    Ok(out)
}

/// `day`: the start of the `date=` partition `dir` is in, if any.
fn walk(
    dir: &Path,
    out: &mut Vec<Input>,
    range: TimeRange,
    day: Option<u64>,
) -> Result<(), InputError> {
    let io_err = |cause| InputError::Io {
        path: dir.to_path_buf(),
        cause,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_err)?;
    entries.sort();
    for path in entries {
        let ft = std::fs::metadata(&path).map_err(|cause| InputError::Io {
            path: path.clone(),
            cause,
        })?;
        if ft.is_dir() {
            let name = path.file_name().unwrap_or_default();
            let companions = [formats::files::TREE_FLOWS, formats::files::TREE_PAYLOAD];
            if companions.iter().any(|c| name == *c) && dir.join(formats::files::TREE_SYN).is_dir()
            {
                continue;
            }
            let span = formats::files::partition_span(name, day);
            if span.is_some_and(|s| range.excludes(s)) {
                continue;
            }
            let is_day = name.to_string_lossy().starts_with("date=");
            walk(
                &path,
                out,
                range,
                if is_day { span.map(|s| s.0) } else { day },
            )?;
        } else if ft.is_file() {
            let name = path.to_string_lossy();
            // A recording's companion, or a file still being written (or left so by a writer
            // that died: the temporary names of `--out`, `--records` and `capture`).
            if formats::files::is_companion_name(&path) || name.ends_with(TMP_SUFFIX) {
                continue;
            }
            match sniff(&path) {
                // analyze's own output, often written into the folder it read.
                Ok(InputKind::Parquet) if formats::meta::is_results_file(&path) => {}
                Ok(kind) => out.push(Input { path, kind }),
                // Its reader will say what is wrong with it.
                Err(InputError::UnknownKind { .. }) => {
                    if let Some(kind) = kind_by_name(&path) {
                        out.push(Input { path, kind });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn sniffs_by_content_not_name() {
        let d = tempfile::tempdir().unwrap();
        let a = write(d.path(), "x.txt", &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]);
        let b = write(d.path(), "y.pcap", &[0x0a, 0x0d, 0x0d, 0x0a]);
        let c = write(d.path(), "z", b"PAR1....");
        let e = write(d.path(), "n.pcap", &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(sniff(&a).unwrap(), InputKind::Pcap);
        assert_eq!(sniff(&b).unwrap(), InputKind::PcapNg);
        assert_eq!(sniff(&c).unwrap(), InputKind::Parquet);
        assert_eq!(sniff(&e).unwrap(), InputKind::Pcap);
        let bad = write(d.path(), "bad.pcap", b"hello");
        let err = sniff(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.pcap") && err.contains("68656c6c"),
            "{err}"
        );
        let short = write(d.path(), "short", b"PA");
        assert!(matches!(sniff(&short), Err(InputError::UnknownKind { .. })));
    }

    #[test]
    fn folders_are_walked_sorted_and_skip_companions_temporaries_and_results() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "b/2.pcap", &[0xa1, 0xb2, 0xc3, 0xd4]);
        write(d.path(), "a.parquet", b"PAR1");
        write(d.path(), "a.flows.parquet", b"PAR1");
        write(d.path(), "a.payload.parquet", b"PAR1");
        write(d.path(), "b/1.pcapng", &[0x0a, 0x0d, 0x0d, 0x0a]);
        write(d.path(), "notes.md", b"# hi");
        // Left by an interrupted writer, and analyze's own results (named like anything).
        write(d.path(), "b/res.parquet.tmp", b"PAR1");
        write(d.path(), "b/half.pcap.tmp", &[0xa1, 0xb2, 0xc3, 0xd4]);
        let results = d.path().join("b/0-results.parquet");
        let sources = crate::results::Sources(vec![]);
        let w = crate::results::ResultsWriter::create(&results, sources, Default::default());
        w.unwrap().close().unwrap();
        assert!(results.exists());
        let got = expand(&[d.path().to_path_buf()]).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|i| i.path.strip_prefix(d.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            names,
            vec![
                PathBuf::from("a.parquet"),
                PathBuf::from("b/1.pcapng"),
                PathBuf::from("b/2.pcap")
            ]
        );
    }

    #[test]
    fn folders_keep_damaged_files_named_as_captures() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "c/empty.pcap", b"");
        write(d.path(), "c/junk.PCAPNG", b"<html>");
        write(d.path(), "c/half.cap", &[0xd4, 0xc3]);
        write(d.path(), "c/bad.parquet", b"PK\x03\x04");
        write(d.path(), "c/notes.txt", b"hello");
        write(d.path(), "c/pcap", b"no extension");
        let got = expand(&[d.path().to_path_buf()]).unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|i| (i.path.file_name().unwrap().to_str().unwrap(), i.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("bad.parquet", InputKind::Parquet),
                ("empty.pcap", InputKind::Pcap),
                ("half.cap", InputKind::Pcap),
                ("junk.PCAPNG", InputKind::PcapNg),
            ]
        );
        // Named on the command line, such a file is still refused at once.
        assert!(matches!(
            expand(&[d.path().join("c/empty.pcap")]),
            Err(InputError::UnknownKind { .. })
        ));
    }

    #[test]
    fn errors_name_the_path() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope.pcap");
        let err = expand(&[missing]).unwrap_err().to_string();
        assert!(err.contains("nope.pcap"), "{err}");
        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let err = expand(&[empty]).unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("no pcap"), "{err}");
    }

    /// A `capture --out-dir` tree: read through `syn/`, `flows/` left to the companions, and
    /// `--since`/`--until` skip partitions by name (their files are not even sniffed, so
    /// junk in a skipped hour proves it was not opened).
    #[test]
    fn trees_skip_flows_and_partitions_out_of_range() {
        let d = tempfile::tempdir().unwrap();
        let h = |hour: u32| format!("syn/host=a/date=2026-12-06/hour={hour:02}/n.parquet");
        for hour in [7, 8, 9] {
            write(d.path(), &h(hour), b"PAR1");
            write(d.path(), &h(hour).replacen("syn/", "flows/", 1), b"PAR1");
            write(d.path(), &h(hour).replacen("syn/", "payload/", 1), b"PAR1");
        }
        write(
            d.path(),
            "syn/host=a/date=2026-12-05/hour=23/old.parquet",
            b"junk",
        );
        let all = expand(&[d.path().to_path_buf()]).unwrap();
        assert_eq!(all.len(), 4, "{all:?}");
        let at = |s: &str| formats::time::parse_rfc3339(s).unwrap();
        let range = TimeRange {
            since: Some(at("2026-12-06T08:30:00Z")),
            until: Some(at("2026-12-06T09:00:00Z")),
        };
        let got = expand_within(&[d.path().to_path_buf()], range).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|i| i.path.strip_prefix(d.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(names, vec![PathBuf::from(h(8))]);
        assert_eq!(
            flows_path_for(&got[0].path),
            d.path().join(h(8).replacen("syn/", "flows/", 1))
        );
        // DIR/syn alone reads the same.
        let got = expand_within(&[d.path().join("syn")], range).unwrap();
        assert_eq!(got.len(), 1);
    }
}
