//! A classic pcap file read by several threads at once, each reading and parsing windows of
//! its own.
//!
//! Why: with one thread reading the file and others parsing it, every byte is copied into a
//! buffer by one core and then pulled into another core's cache to be framed and parsed; on a
//! 1 GiB capture that traffic cost more than the parsing itself (profiled). Here every thread
//! reads its windows with positioned reads and frames and parses them while the bytes are
//! still in its own cache.
//!
//! The one serial step is framing: where window `k`'s first record starts is known only once
//! window `k - 1` has been framed (its last record may reach into window `k`). So
//! [`Windows::read`] reads window `k` first, then waits for window `k - 1`'s framing (a hop
//! over the 16-byte record headers of bytes already in cache: microseconds), never for its
//! parsing. Window `k` holds the records that *start* in its byte range; it reads a margin past
//! its end for the record that straddles it.
//!
//! Parsed in window order, the windows give exactly what [`super::CaptureReader::run`] gives,
//! damage included (a test checks it on cut and corrupted files). The file's length is taken
//! once, when the windows are made: bytes appended later (a capture still being written) are
//! not read; read such a file with [`super::CaptureReader::run`].

use std::fs::File;
use std::io;
use std::sync::{Arc, OnceLock};

use pcap_file::pcap::PcapParser;
use pcap_file::{Endianness, PcapError as FileError};

use super::reader::{CaptureReader, Chunk, Frame};
use super::{LinkType, MAX_RECORD, PcapError};

/// Bytes of a window: small enough that a window stays in a core's L2 cache between being
/// read and being parsed (measured: 1 MiB beat 4 MiB), large enough that the per-window
/// hand-offs do not matter.
pub const WINDOW_SIZE: usize = 1 << 20;

/// Bytes read past a window's end in the same read (at most the window's size), so that the
/// record straddling the end (up to a full 64 KiB snap length with its header) rarely needs a
/// second read.
const MARGIN: usize = (64 << 10) + 16;

/// A window start meaning "the file's framing stopped before this window".
const STOP: u64 = u64::MAX;

/// A classic pcap file cut into windows of [`WINDOW_SIZE`] bytes (or the size given), to be
/// read by several threads: each thread calls [`Windows::read`] for its windows in increasing
/// order, and whoever consumes them parses ([`Chunk::run`]) and merges them in window order.
pub struct Windows {
    name: String,
    file: File,
    parser: Arc<PcapParser>,
    link: LinkType,
    frac_ns: u64,
    /// File offset of the first packet record.
    first: u64,
    /// File length when the windows were made.
    file_len: u64,
    size: u64,
    /// `starts[k]`: file offset of window `k`'s first record once window `k - 1` is framed
    /// (or [`STOP`]); `starts[0]` is set from the start.
    starts: Vec<OnceLock<u64>>,
}

impl std::fmt::Debug for Windows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Windows")
            .field("name", &self.name)
            .field("file_len", &self.file_len)
            .field("size", &self.size)
            .field("windows", &self.starts.len())
            .finish()
    }
}

impl Windows {
    /// Windows of `size` bytes over the packet records of `reader`'s file, read through
    /// `file` (the same file, opened again or cloned: only positioned reads are used).
    /// `None` when `reader` is a pcapng file or `file` is not a regular file (a pipe has no
    /// positions): read those with [`CaptureReader::run`].
    pub fn new<R: io::Read>(
        reader: &CaptureReader<R>,
        file: File,
        size: usize,
    ) -> Result<Option<Windows>, PcapError> {
        let Some((parser, link, frac_ns, first)) = reader.pcap_parts() else {
            return Ok(None);
        };
        let meta = file.metadata().map_err(|cause| PcapError::Io {
            path: reader.name().to_string(),
            cause,
        })?;
        if !meta.is_file() {
            return Ok(None);
        }
        let file_len = meta.len().max(first);
        let size = size.max(1) as u64;
        let count = (file_len - first).div_ceil(size) as usize;
        let starts: Vec<OnceLock<u64>> = (0..count).map(|_| OnceLock::new()).collect();
        if let Some(s) = starts.first() {
            let _ = s.set(first);
        }
        Ok(Some(Windows {
            name: reader.name().to_string(),
            file,
            parser,
            link,
            frac_ns,
            first,
            file_len,
            size,
            starts,
        }))
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the file has no packet record bytes at all.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The file's link type.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Bytes of the file window `k` covers (for progress).
    pub fn window_bytes(&self, k: usize) -> u64 {
        let (lo, hi) = self.range(k);
        hi - lo
    }

    fn range(&self, k: usize) -> (u64, u64) {
        let lo = self.first + k as u64 * self.size;
        (lo.min(self.file_len), (lo + self.size).min(self.file_len))
    }

    /// Window `k` never gets framed (its thread stops early): windows waiting on it stop too
    /// instead of waiting for ever. [`Windows::read`] does this itself when it fails.
    pub fn abandon(&self, k: usize) {
        if let Some(next) = self.starts.get(k + 1) {
            let _ = next.set(STOP);
        }
    }

    /// Reads window `k` into `buffer` (an earlier chunk's [`Chunk::into_buffer`] or an empty
    /// `Vec`) and frames its records; blocks until window `k - 1` is framed. The chunk is
    /// empty when an earlier window hit damage or a record spans the whole window; when the
    /// framing breaks in this window, the chunk holds the records before the damage and
    /// [`Chunk::run`] reports it.
    pub fn read(&self, k: usize, buffer: Vec<u8>) -> Result<Chunk, PcapError> {
        let result = self.read_inner(k, buffer);
        if result.is_err() {
            self.abandon(k);
        }
        result
    }

    fn read_inner(&self, k: usize, mut buf: Vec<u8>) -> Result<Chunk, PcapError> {
        let (lo, hi) = self.range(k);
        // Read before waiting: the read is the expensive part and needs nobody.
        let mut end = self.file_len;
        let margin = MARGIN.min(self.size as usize) as u64;
        let mut filled = self.fill(&mut buf, lo, 0, (hi + margin).min(end), &mut end)?;
        let start = match self.starts.get(k) {
            Some(s) => *s.wait(),
            None => STOP,
        };
        let mut chunk = Chunk {
            data: Vec::new(),
            start: 0,
            len: 0,
            parser: Arc::clone(&self.parser),
            link: self.link,
            frac_ns: self.frac_ns,
            offset: start,
            damage: None,
            frames: Some(Vec::new()),
        };
        if start == STOP || start >= hi {
            // Damage earlier, or a record from an earlier window covers this one.
            self.publish(k, start);
            chunk.data = buf;
            return Ok(chunk);
        }
        // Window k-1 framed up to its end at least, so `start >= lo`.
        debug_assert!(start >= lo);
        let first = start.saturating_sub(lo) as usize;
        let mut at = first;
        let mut next = STOP;
        // Kept for `Chunk::run`, which would otherwise frame the window again.
        let mut frames = Vec::with_capacity(self.size as usize / 256);
        while lo + (at as u64) < hi {
            match self.parser.next_raw_packet(&buf[at..filled]) {
                Ok((rem, pkt)) => {
                    at = filled - rem.len();
                    frames.push(Frame {
                        at: at - pkt.data.len(),
                        len: pkt.data.len(),
                        ts_sec: pkt.ts_sec,
                        ts_frac: pkt.ts_frac,
                    });
                }
                Err(FileError::IncompleteBuffer) => {
                    let o = lo + at as u64;
                    match self.needed(&buf[at..filled], o, end) {
                        Ok(need) => {
                            filled = self.fill(&mut buf, lo, filled, o + need, &mut end)?;
                            // A file that shrank while read: judged again on the next turn.
                        }
                        Err(why) => {
                            chunk.damage = Some((o, why));
                            break;
                        }
                    }
                }
                Err(e) => {
                    chunk.damage = Some((lo + at as u64, e.to_string()));
                    break;
                }
            }
        }
        if chunk.damage.is_none() {
            next = lo + at as u64;
        }
        self.publish(k, next);
        chunk.data = buf;
        chunk.start = first;
        chunk.len = at;
        chunk.frames = Some(frames);
        Ok(chunk)
    }

    fn publish(&self, k: usize, next: u64) {
        if let Some(s) = self.starts.get(k + 1) {
            let _ = s.set(next);
        }
    }

    /// Total bytes the record at file offset `o` takes (`avail` are its bytes read so far),
    /// or why it cannot be read, in the words of the sequential reader.
    fn needed(&self, avail: &[u8], o: u64, end: u64) -> Result<u64, String> {
        let present = end - o;
        let need = match avail.get(8..12) {
            Some(b) => {
                let b = [b[0], b[1], b[2], b[3]];
                let incl = match self.parser.header().endianness {
                    Endianness::Big => u32::from_be_bytes(b),
                    Endianness::Little => u32::from_le_bytes(b),
                };
                16 + u64::from(incl)
            }
            None => 16,
        };
        if need > MAX_RECORD as u64 && present >= MAX_RECORD as u64 {
            return Err(format!("packet record larger than {MAX_RECORD} bytes"));
        }
        if need > present {
            return Err(format!(
                "file ends inside a packet record ({present} of its bytes present)"
            ));
        }
        Ok(need)
    }

    /// Makes `buf[..]` hold the file from `lo` to `want` (at least), keeping the `filled`
    /// bytes already read; returns the new fill. A read that comes up short (the file shrank)
    /// lowers `end` to where the file now ends.
    fn fill(
        &self,
        buf: &mut Vec<u8>,
        lo: u64,
        mut filled: usize,
        want: u64,
        end: &mut u64,
    ) -> Result<usize, PcapError> {
        let want = (want.min(*end) - lo) as usize;
        if buf.len() < want {
            // Only grows, so a reused buffer is not zeroed again.
            buf.resize(want, 0);
        }
        while filled < want {
            match read_at(&self.file, &mut buf[filled..want], lo + filled as u64) {
                Ok(0) => {
                    *end = lo + filled as u64;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(cause) => {
                    return Err(PcapError::Io {
                        path: self.name.clone(),
                        cause,
                    });
                }
            }
        }
        Ok(filled)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::pcap::{Collect, IngestStats};

    /// A big-endian nanosecond pcap (link type RAW) of `n` records whose bodies are arbitrary
    /// bytes of lengths from 0 to about 5 KiB: framing does not care what is inside, and the
    /// parse of garbage is deterministic too (skip reasons).
    fn pcap(n: usize) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&0xa1b2_3c4du32.to_be_bytes());
        f.extend_from_slice(&2u16.to_be_bytes());
        f.extend_from_slice(&4u16.to_be_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_be_bytes());
        f.extend_from_slice(&101u32.to_be_bytes());
        for i in 0..n {
            let len = (i * 811) % 5200;
            let body: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
            f.extend_from_slice(&(1_700_000_000 + i as u32).to_be_bytes());
            f.extend_from_slice(&(i as u32 * 1000).to_be_bytes());
            f.extend_from_slice(&(len as u32).to_be_bytes());
            f.extend_from_slice(&(len as u32).to_be_bytes());
            f.extend_from_slice(&body);
        }
        f
    }

    /// Record start offsets of a file made by [`pcap`].
    fn record_starts(f: &[u8]) -> Vec<usize> {
        let mut at = 24;
        let mut out = Vec::new();
        while at + 16 <= f.len() {
            out.push(at);
            let len = u32::from_be_bytes([f[at + 8], f[at + 9], f[at + 10], f[at + 11]]);
            at += 16 + len as usize;
        }
        out
    }

    /// `bytes` as `x.pcap` in a fresh temporary folder (kept alive by the returned guard).
    fn temp_pcap(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pcap");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn sequential(path: &Path) -> (Collect, IngestStats) {
        let mut got = Collect::default();
        let stats = crate::pcap::open(path).unwrap().run(&mut got).unwrap();
        (got, stats)
    }

    /// Reads `path` as windows of `size` with `threads` threads (thread `t` reads windows
    /// `t, t + threads, …`), then parses the chunks in window order.
    fn windowed(path: &Path, size: usize, threads: usize) -> (Collect, IngestStats) {
        let reader = crate::pcap::open(path).unwrap();
        let w = Windows::new(&reader, File::open(path).unwrap(), size)
            .unwrap()
            .unwrap();
        let chunks: Vec<std::sync::Mutex<Option<Chunk>>> =
            (0..w.len()).map(|_| Default::default()).collect();
        std::thread::scope(|s| {
            for t in 0..threads {
                let (w, chunks) = (&w, &chunks);
                s.spawn(move || {
                    for k in (t..w.len()).step_by(threads) {
                        let c = w.read(k, Vec::new()).unwrap();
                        *chunks[k].lock().unwrap() = Some(c);
                    }
                });
            }
        });
        let mut got = Collect::default();
        let mut stats = IngestStats::default();
        for c in chunks {
            let c = c.into_inner().unwrap().unwrap();
            stats.merge(&c.run(&mut got));
        }
        stats.link_types.entry(w.link_type()).or_default();
        (got, stats)
    }

    /// Checks `bytes` read as windows against the sequential reader; returns the latter's
    /// statistics.
    fn check(bytes: &[u8], what: &str) -> IngestStats {
        let (_dir, path) = temp_pcap(bytes);
        let (want, want_stats) = sequential(&path);
        // Windows of one byte only for small files: each is a read and a hand-off.
        let sizes: &[usize] = if bytes.len() < 5000 {
            &[1, 7, 1 << 20]
        } else {
            &[37, 999, 1 << 20]
        };
        for &size in sizes {
            for threads in [1, 3] {
                let (got, stats) = windowed(&path, size, threads);
                let ctx = format!("{what}: size {size} threads {threads}");
                assert_eq!(got.records, want.records, "{ctx}");
                assert_eq!(got.flows, want.flows, "{ctx}");
                assert_eq!(stats, want_stats, "{ctx}");
            }
        }
        want_stats
    }

    /// Whatever the window size and thread count, and wherever the file is cut or its
    /// framing is broken, windows parsed in order give what the sequential reader gives:
    /// same records, flows and statistics, truncation offset and reason included.
    #[test]
    fn windows_equal_the_sequential_reader() {
        let full = pcap(40);
        let starts = record_starts(&full);
        assert!(full.len() > 60_000, "records span many windows");
        assert_eq!(check(&full, "whole").packets, 40);
        check(&full[..24], "header only");
        for &s in &starts[starts.len() - 3..] {
            for cut in [s, s + 1, s + 15, s + 16, s + 17] {
                let stats = check(&full[..cut.min(full.len())], &format!("cut at {cut}"));
                assert_eq!(stats.truncated_at.is_some(), cut != s && cut < full.len());
            }
        }
        check(&full[..full.len() - 1], "last byte missing");
        let small = pcap(4);
        assert!(small.len() < 5000);
        check(&small, "small");
        check(&small[..small.len() - 3], "small, cut");
        // A length field pointing past the end of the file in the middle of it.
        let mut broken = full.clone();
        let s = starts[17];
        broken[s + 8..s + 12].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        let stats = check(&broken, "huge length");
        assert_eq!(stats.truncated_at, Some(s as u64));
        assert!(stats.packets >= 17);
    }

    /// The real captures in `fixtures/pcap` (classic pcap ones), in windows smaller than
    /// their records and in the default size.
    #[test]
    fn fixtures_read_as_windows_equal_the_sequential_reader() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pcap");
        let mut seen = 0;
        for dir in std::fs::read_dir(&root).unwrap() {
            let dir = dir.unwrap().path();
            if !dir.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&dir).unwrap() {
                let path = f.unwrap().path();
                if path.extension().is_none_or(|e| e != "pcap") {
                    continue;
                }
                let (want, want_stats) = sequential(&path);
                for (size, threads) in [(1000, 2), (WINDOW_SIZE, 2), (64, 3)] {
                    let (got, stats) = windowed(&path, size, threads);
                    let ctx = format!("{}: size {size}", path.display());
                    assert_eq!(got.records, want.records, "{ctx}");
                    assert_eq!(got.flows, want.flows, "{ctx}");
                    assert_eq!(stats, want_stats, "{ctx}");
                }
                seen += 1;
            }
        }
        assert!(seen >= 10, "only {seen} fixtures");
    }

    /// A thread that gives up on its windows does not leave the others waiting.
    #[test]
    fn abandoned_windows_release_their_successors() {
        let (_dir, path) = temp_pcap(&pcap(40));
        let reader = crate::pcap::open(&path).unwrap();
        let w = Windows::new(&reader, File::open(&path).unwrap(), 1000)
            .unwrap()
            .unwrap();
        assert!(w.len() > 10);
        let c0 = w.read(0, Vec::new()).unwrap();
        assert!(!c0.is_empty());
        w.abandon(1);
        // Window 1 is never read; the windows after it do not wait for it, and are empty.
        for k in 2..w.len() {
            let c = w.read(k, Vec::new()).unwrap();
            assert!(c.is_empty(), "window {k}");
            assert_eq!(c.run(&mut Collect::default()).truncated_at, None);
        }
    }

    /// A pipe has no positions: no windows, the caller reads it sequentially.
    #[cfg(unix)]
    #[test]
    fn pipes_are_not_windowed() {
        let (_dir, path) = temp_pcap(&pcap(3));
        let reader = crate::pcap::open(&path).unwrap();
        let dev_null = File::open("/dev/null").unwrap();
        assert!(Windows::new(&reader, dev_null, 1000).unwrap().is_none());
    }
}
