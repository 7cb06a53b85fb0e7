//! File conventions every synscope program follows, in one place.
//!
//! - Names: a recording's companions, its flow file (`day.parquet` -> `day.flows.parquet`, or
//!   in a partitioned tree `syn/.../N.parquet` -> `flows/.../N.parquet`) and its payload file
//!   (`day.payload.parquet`, `payload/.../N.parquet`), and the temporary name a file is
//!   written under until it is complete (`NAME.tmp`).
//! - [`Staged`]: temp + fsync + rename (+ fsync of the folder), so a reader (a user, `analyze`,
//!   a sync tool, a query engine) sees a file under its final name only when it is complete
//!   and on storage; a writer that fails or dies leaves at most a `*.tmp`, which readers skip.
//! - [`sniff`]: what a file holds, from its first bytes (never its name).
//! - The partitioned tree (`DIR/syn/host=H/date=YYYY-MM-DD/hour=HH/NAME.parquet`) that
//!   `capture --out-dir` writes and `analyze` reads: [`partition_dir`], [`partition_span`].

use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use crate::time::{Civil, NS_PER_DAY, NS_PER_HOUR, parse_date};

/// Suffix of the flow file written beside a SYN recording (`day.parquet` ->
/// `day.flows.parquet`). Such files are companions, not inputs of their own.
pub const FLOWS_SUFFIX: &str = ".flows.parquet";

/// Suffix of the payload file written beside a SYN recording (`day.parquet` ->
/// `day.payload.parquet`, [`crate::payload`]). A companion too, not an input.
pub const PAYLOAD_SUFFIX: &str = ".payload.parquet";

/// Suffix of a file being written under a temporary name, renamed when complete.
pub const TMP_SUFFIX: &str = ".tmp";

/// Top folder of SYN recordings in a partitioned tree.
pub const TREE_SYN: &str = "syn";
/// Top folder of flow recordings in a partitioned tree (same sub-paths and names as `syn`).
pub const TREE_FLOWS: &str = "flows";
/// Top folder of payload recordings in a partitioned tree (same sub-paths and names as
/// `syn`). No capture writes one yet; the name is fixed here so that readers know where to
/// look and tree walkers what to leave out.
pub const TREE_PAYLOAD: &str = "payload";

/// Where `path` is written until it is complete (`day.parquet` -> `day.parquet.tmp`).
pub fn tmp_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

/// The flow file that belongs to a SYN recording, whether or not it exists: in a partitioned
/// tree the same name under `flows/` instead of `syn/`, otherwise the `NAME.flows.parquet`
/// sibling.
pub fn flows_path_for(recording: &Path) -> PathBuf {
    companion(recording, TREE_FLOWS, FLOWS_SUFFIX)
}

/// The payload file that belongs to a SYN recording, whether or not it exists: in a
/// partitioned tree the same name under `payload/` instead of `syn/`, otherwise the
/// `NAME.payload.parquet` sibling.
pub fn payload_path_for(recording: &Path) -> PathBuf {
    companion(recording, TREE_PAYLOAD, PAYLOAD_SUFFIX)
}

/// Whether `path` names a recording's companion (flow or payload file) by its suffix: such a
/// file is read with its SYN recording, never as an input of its own.
pub fn is_companion_name(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with(FLOWS_SUFFIX) || name.ends_with(PAYLOAD_SUFFIX)
}

/// The companion of `recording` under the tree folder `top`, or with `suffix` for
/// `.parquet`.
fn companion(recording: &Path, top: &str, suffix: &str) -> PathBuf {
    if let Some(p) = tree_companion(recording, top) {
        return p;
    }
    let name = recording
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".parquet").unwrap_or(&name);
    recording.with_file_name(format!("{stem}{suffix}"))
}

/// `.../syn/k=v/.../NAME` -> `.../TOP/k=v/.../NAME` when every folder between `syn` and the
/// file is a `key=value` partition (and there is at least one).
fn tree_companion(recording: &Path, top: &str) -> Option<PathBuf> {
    let parts: Vec<Component> = recording.components().collect();
    let (file, dirs) = parts.split_last()?;
    let at = dirs.iter().rposition(|c| c.as_os_str() == TREE_SYN)?;
    let partitions = &dirs[at + 1..];
    if partitions.is_empty()
        || !partitions
            .iter()
            .all(|c| c.as_os_str().to_string_lossy().contains('='))
    {
        return None;
    }
    let mut out: PathBuf = dirs[..at].iter().collect();
    out.push(top);
    out.extend(partitions);
    out.push(file);
    Some(out)
}

/// A file being written under its temporary name ([`tmp_path_for`]); [`Staged::commit`] puts
/// it under its final name. Dropped uncommitted (an error on the way), it removes the
/// temporary file, so a failed write leaves nothing behind.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    tmp: PathBuf,
    done: bool,
}

impl Staged {
    /// Stages `path`: write to [`Staged::tmp`], then commit.
    pub fn new(path: &Path) -> Staged {
        Staged {
            path: path.to_path_buf(),
            tmp: tmp_path_for(path),
            done: false,
        }
    }

    /// Where to write.
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// The final name.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// fsync the temporary file, rename it to the final name, fsync the folder (so the rename
    /// itself survives a power cut). The writer must have closed it (all bytes written).
    pub fn commit(mut self) -> io::Result<PathBuf> {
        File::open(&self.tmp)?.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)?;
        self.done = true;
        sync_dir(&self.path);
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// fsync of the folder holding `path`, best effort: a file system that cannot sync folders
/// (some network ones) still got the rename.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}

/// Writes `bytes` to `path` atomically (temp + fsync + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let staged = Staged::new(path);
    std::fs::write(staged.tmp(), bytes)?;
    staged.commit().map(drop)
}

/// What a file holds, judged by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// Classic libpcap (any byte order, micro- or nanosecond).
    Pcap,
    /// pcapng.
    PcapNg,
    /// Parquet (a synscope recording, results, or something else its reader rejects).
    Parquet,
}

/// The kind announced by a file's first four bytes.
pub fn kind_from_magic(m: &[u8]) -> Option<FileKind> {
    match m {
        [0xa1, 0xb2, 0xc3, 0xd4]
        | [0xd4, 0xc3, 0xb2, 0xa1]
        | [0xa1, 0xb2, 0x3c, 0x4d]
        | [0x4d, 0x3c, 0xb2, 0xa1] => Some(FileKind::Pcap),
        [0x0a, 0x0d, 0x0d, 0x0a] => Some(FileKind::PcapNg),
        [b'P', b'A', b'R', b'1'] => Some(FileKind::Parquet),
        _ => None,
    }
}

/// Reads the first (up to) four bytes of `path` and judges them: `Ok(Err(magic))` holds the
/// bytes when they are of no known kind.
pub fn sniff(path: &Path) -> io::Result<Result<FileKind, Vec<u8>>> {
    let mut f = File::open(path)?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let m = &magic[..got];
    Ok(kind_from_magic(m).ok_or_else(|| m.to_vec()))
}

/// A folder or file name safe in a path and a `key=value` partition: letters, digits, `.`,
/// `_` and `-` kept, anything else `_` (host and interface names are normally already so).
pub fn safe_name(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() { "_".into() } else { out }
}

/// The partition folder of rows seen at `ts_ns`, below a tree's `syn` or `flows` folder:
/// `host=H/date=YYYY-MM-DD/hour=HH`.
pub fn partition_dir(host: &str, ts_ns: u64) -> PathBuf {
    let c = Civil::from_ns(ts_ns);
    let mut p = PathBuf::from(format!("host={}", safe_name(host)));
    p.push(format!("date={}", c.date()));
    p.push(format!("hour={:02}", c.hour));
    p
}

/// The start of the UTC hour holding `ts_ns`.
pub fn hour_start(ts_ns: u64) -> u64 {
    ts_ns - ts_ns % NS_PER_HOUR
}

/// The span of time `[start, end)` (ns) a partition folder name covers: `date=YYYY-MM-DD` a
/// day, `hour=HH` an hour of the day `day_start` (the enclosing `date=` folder's start).
/// `None` for other names (they are not time partitions).
pub fn partition_span(name: &std::ffi::OsStr, day_start: Option<u64>) -> Option<(u64, u64)> {
    let name = name.to_str()?;
    if let Some(d) = name.strip_prefix("date=") {
        let start = parse_date(d)?;
        return Some((start, start + NS_PER_DAY));
    }
    let h: u64 = name.strip_prefix("hour=")?.parse().ok()?;
    if h > 23 {
        return None;
    }
    let start = day_start? + h * NS_PER_HOUR;
    Some((start, start + NS_PER_HOUR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn companions() {
        assert_eq!(
            flows_path_for(Path::new("/x/day.parquet")),
            PathBuf::from("/x/day.flows.parquet")
        );
        assert_eq!(
            flows_path_for(Path::new("rec")),
            PathBuf::from("rec.flows.parquet")
        );
        assert_eq!(
            flows_path_for(Path::new("/d/syn/host=a/date=2026-12-06/hour=08/n.parquet")),
            PathBuf::from("/d/flows/host=a/date=2026-12-06/hour=08/n.parquet")
        );
        // A folder that happens to be called syn, without partitions below it.
        assert_eq!(
            flows_path_for(Path::new("/d/syn/n.parquet")),
            PathBuf::from("/d/syn/n.flows.parquet")
        );
        assert_eq!(
            tmp_path_for(Path::new("/d/n.parquet")),
            PathBuf::from("/d/n.parquet.tmp")
        );
        assert_eq!(
            payload_path_for(Path::new("/x/day.parquet")),
            PathBuf::from("/x/day.payload.parquet")
        );
        assert_eq!(
            payload_path_for(Path::new("/d/syn/host=a/date=2026-12-06/hour=08/n.parquet")),
            PathBuf::from("/d/payload/host=a/date=2026-12-06/hour=08/n.parquet")
        );
        assert_eq!(
            payload_path_for(Path::new("/d/syn/n.parquet")),
            PathBuf::from("/d/syn/n.payload.parquet")
        );
        assert!(is_companion_name(Path::new("/x/day.payload.parquet")));
        assert!(is_companion_name(Path::new("/x/day.flows.parquet")));
        assert!(!is_companion_name(Path::new("/x/day.parquet")));
    }

    #[test]
    fn staged_files_appear_only_when_committed() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.parquet");
        let s = Staged::new(&p);
        std::fs::write(s.tmp(), b"x").unwrap();
        assert!(!p.exists());
        assert_eq!(s.commit().unwrap(), p);
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        assert!(!tmp_path_for(&p).exists());
        // Dropped uncommitted: the temporary file goes, the committed file stays.
        let s = Staged::new(&p);
        std::fs::write(s.tmp(), b"y").unwrap();
        drop(s);
        assert!(!tmp_path_for(&p).exists());
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        write_atomic(&p, b"z").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"z");
    }

    #[test]
    fn sniffs_by_content() {
        let d = tempfile::tempdir().unwrap();
        let w = |n: &str, b: &[u8]| {
            let p = d.path().join(n);
            std::fs::write(&p, b).unwrap();
            sniff(&p).unwrap()
        };
        assert_eq!(w("a.txt", &[0xd4, 0xc3, 0xb2, 0xa1, 9]), Ok(FileKind::Pcap));
        assert_eq!(w("b", &[0x0a, 0x0d, 0x0d, 0x0a]), Ok(FileKind::PcapNg));
        assert_eq!(w("c.pcap", b"PAR1"), Ok(FileKind::Parquet));
        assert_eq!(w("d.pcap", b"PA"), Err(b"PA".to_vec()));
    }

    #[test]
    fn partitions() {
        let ts = crate::time::parse_rfc3339("2026-12-06T08:59:59.9Z").unwrap();
        assert_eq!(
            partition_dir("edge 1", ts),
            PathBuf::from("host=edge_1/date=2026-12-06/hour=08")
        );
        let (ds, de) = partition_span("date=2026-12-06".as_ref(), None).unwrap();
        assert_eq!(de - ds, NS_PER_DAY);
        let (hs, he) = partition_span("hour=08".as_ref(), Some(ds)).unwrap();
        assert!(hs <= ts && ts < he && hs == hour_start(ts));
        assert_eq!(partition_span("hour=24".as_ref(), Some(ds)), None);
        assert_eq!(partition_span("host=x".as_ref(), Some(ds)), None);
        assert_eq!(partition_span("date=2026-02-30".as_ref(), None), None);
    }
}
