//! `--retain` and `--max-disk`: the tree's oldest closed files go, so the disk never fills.
//!
//! The unit is a *part*: the SYN file and the flow file of one name in one partition
//! (`syn/P/N.parquet` and `flows/P/N.parquet`), deleted together so a recording never loses
//! its flow rows first. Its age is the end of its hour partition: with `--retain 7d` a part
//! goes once every row in it is older than 7 days. With `--max-disk`, the oldest parts (by
//! hour, then name) go until the tree's Parquet files take at most that many bytes. Only
//! closed files are candidates: the span being filled lives in journals, and temporary files
//! are not counted. Retention runs at start and after every span's conversion.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use formats::files::{TREE_FLOWS, TREE_SYN, partition_span};

use crate::error::{Result, io_err};

/// What retention may keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Delete parts whose rows are all older than this.
    pub retain: Option<Duration>,
    /// Delete the oldest parts while the tree holds more bytes than this.
    pub max_disk: Option<u64>,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.retain.is_some() || self.max_disk.is_some()
    }
}

/// What retention deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Files deleted.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Deleted {
    /// Adds `other`.
    pub fn add(&mut self, other: Deleted) {
        self.files += other.files;
        self.bytes += other.bytes;
    }
}

/// One closed part of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// End of its hour partition, ns since the epoch.
    pub hour_end_ns: u64,
    /// Path below `syn/` (or `flows/`): the partition folders and the name.
    pub rel: PathBuf,
    /// Its files (SYN, flows) and their sizes.
    pub files: Vec<(PathBuf, u64)>,
}

impl Part {
    fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, b)| b).sum()
    }
}

/// Which parts to delete (indexes into `parts`, which must be sorted oldest first).
pub fn plan(parts: &[Part], now_ns: u64, limits: Limits) -> Vec<usize> {
    let mut doomed = Vec::new();
    let mut total: u64 = parts.iter().map(Part::bytes).sum();
    let cutoff = limits
        .retain
        .map(|r| now_ns.saturating_sub(u64::try_from(r.as_nanos()).unwrap_or(u64::MAX)));
    for (i, p) in parts.iter().enumerate() {
        let too_old = cutoff.is_some_and(|c| p.hour_end_ns <= c);
        let too_big = limits.max_disk.is_some_and(|m| total > m);
        if !(too_old || too_big) {
            break;
        }
        doomed.push(i);
        total -= p.bytes();
    }
    doomed
}

/// The closed parts of the tree at `dir`, oldest first.
pub fn scan(dir: &Path) -> Result<Vec<Part>> {
    let mut parts: Vec<Part> = Vec::new();
    for top in [TREE_SYN, TREE_FLOWS] {
        let root = dir.join(top);
        let mut stack = vec![(root.clone(), None::<u64>, None::<u64>)];
        while let Some((folder, day, hour_end)) = stack.pop() {
            let entries = match fs::read_dir(&folder) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&folder)(e)),
            };
            for e in entries {
                let e = e.map_err(io_err(&folder))?;
                let path = e.path();
                let meta = e.metadata().map_err(io_err(&path))?;
                if meta.is_dir() {
                    let span = partition_span(&e.file_name(), day);
                    let is_day = e.file_name().to_string_lossy().starts_with("date=");
                    let day = if is_day { span.map(|s| s.0) } else { day };
                    let hour_end = if is_day {
                        hour_end
                    } else {
                        span.map(|s| s.1).or(hour_end)
                    };
                    stack.push((path, day, hour_end));
                    continue;
                }
                let name = e.file_name().to_string_lossy().into_owned();
                let (Some(end), true) = (hour_end, name.ends_with(".parquet")) else {
                    continue;
                };
                let rel = path.strip_prefix(&root).unwrap_or(&path).to_path_buf();
                match parts.iter_mut().find(|p| p.rel == rel) {
                    Some(p) => p.files.push((path, meta.len())),
                    None => parts.push(Part {
                        hour_end_ns: end,
                        rel,
                        files: vec![(path, meta.len())],
                    }),
                }
            }
        }
    }
    parts.sort_by(|a, b| (a.hour_end_ns, &a.rel).cmp(&(b.hour_end_ns, &b.rel)));
    Ok(parts)
}

/// Applies `limits` to the tree at `dir` at time `now_ns`; empty partition folders left
/// behind go too.
pub fn apply(dir: &Path, now_ns: u64, limits: Limits) -> Result<Deleted> {
    let mut deleted = Deleted::default();
    if !limits.any() {
        return Ok(deleted);
    }
    let parts = scan(dir)?;
    for i in plan(&parts, now_ns, limits) {
        for (path, bytes) in &parts[i].files {
            match fs::remove_file(path) {
                Ok(()) => {
                    deleted.files += 1;
                    deleted.bytes += bytes;
                }
                // Someone else (an operator, another host's retention on a shared tree).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(path)(e)),
            }
            // Up to the tree's top: a folder that is not empty stays (remove_dir refuses).
            let mut folder = path.parent();
            while let Some(f) = folder.filter(|f| {
                f.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains('='))
            }) {
                if fs::remove_dir(f).is_err() {
                    break;
                }
                folder = f.parent();
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::files::partition_dir;
    use formats::time::{NS_PER_HOUR, parse_rfc3339};

    /// Writes a part of `bytes` bytes (SYN and flow file each half) in the hour of `ts`.
    fn part(dir: &Path, ts: u64, name: &str, bytes: usize) {
        for top in [TREE_SYN, TREE_FLOWS] {
            let folder = dir.join(top).join(partition_dir("h", ts));
            fs::create_dir_all(&folder).unwrap();
            fs::write(folder.join(format!("{name}.parquet")), vec![0u8; bytes / 2]).unwrap();
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        scan(dir)
            .unwrap()
            .iter()
            .map(|p| p.rel.file_stem().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn by_age_with_a_fake_clock() {
        let d = tempfile::tempdir().unwrap();
        let now = parse_rfc3339("2026-12-08T10:30:00Z").unwrap();
        let day = 24 * NS_PER_HOUR;
        part(d.path(), now - 3 * day, "a", 100); // 3 days old
        part(d.path(), now - day - NS_PER_HOUR, "b", 100); // its hour ended > 1 day ago
        part(d.path(), now - day + NS_PER_HOUR, "c", 100); // its hour ended < 1 day ago
        part(d.path(), now, "d", 100); // the current hour
        fs::write(d.path().join("syn/notes.parquet"), b"not in a partition").unwrap();
        let limits = Limits {
            retain: Some(Duration::from_secs(86_400)),
            max_disk: None,
        };
        let del = apply(d.path(), now, limits).unwrap();
        assert_eq!(
            del,
            Deleted {
                files: 4,
                bytes: 200
            }
        );
        assert_eq!(names(d.path()), vec!["c", "d"]);
        // Empty partition folders went with them; the unpartitioned file stayed.
        let old = d.path().join("syn").join(partition_dir("h", now - 3 * day));
        assert!(!old.exists() && !old.parent().unwrap().exists());
        assert!(d.path().join("syn/notes.parquet").exists());
        // Nothing more is old enough.
        assert_eq!(apply(d.path(), now, limits).unwrap(), Deleted::default());
    }

    #[test]
    fn by_size_oldest_first() {
        let d = tempfile::tempdir().unwrap();
        let now = parse_rfc3339("2026-12-08T10:30:00Z").unwrap();
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            part(d.path(), now - (4 - i as u64) * NS_PER_HOUR, name, 1000);
        }
        // Two parts in the current hour: the name orders them.
        part(d.path(), now, "e1", 1000);
        part(d.path(), now, "e2", 1000);
        let limits = Limits {
            retain: None,
            max_disk: Some(2500),
        };
        let del = apply(d.path(), now, limits).unwrap();
        assert_eq!(
            del,
            Deleted {
                files: 8,
                bytes: 4000
            }
        );
        assert_eq!(names(d.path()), vec!["e1", "e2"]);
        // A limit below one part deletes every closed part, and no more.
        let del = apply(
            d.path(),
            now,
            Limits {
                retain: None,
                max_disk: Some(10),
            },
        )
        .unwrap();
        assert_eq!(del.files, 4);
        assert!(scan(d.path()).unwrap().is_empty());
    }

    #[test]
    fn no_limits_delete_nothing() {
        let d = tempfile::tempdir().unwrap();
        part(d.path(), 0, "a", 10);
        assert_eq!(
            apply(d.path(), u64::MAX, Limits::default()).unwrap(),
            Deleted::default()
        );
        assert_eq!(names(d.path()), vec!["a"]);
    }
}
