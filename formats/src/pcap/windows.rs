//! A pcap or pcapng file read by several threads at once, each reading and parsing windows
//! of its own.
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
//! over the record headers of bytes already in cache: microseconds), never for its parsing.
//! Window `k` holds the records that *start* in its byte range; it reads a margin past its end
//! for the record that straddles it. A pcapng block's meaning depends on the section header
//! and interface descriptions before it, so a pcapng window also hands the next one the
//! section its framing ended in ([`super::ng`]); its packet blocks are parsed later, each in
//! the section it was framed in.
//!
//! Parsed in window order, the windows give exactly what [`super::CaptureReader::run`] gives,
//! damage included (tests check it on cut and corrupted files). The file's length is taken
//! once, when the windows are made: bytes appended later (a capture still being written) are
//! not read; read such a file with [`super::CaptureReader::run`].

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use pcap_file::pcap::PcapParser;
use pcap_file::{Endianness, PcapError as FileError};

use super::ng::{BlockKind, Framer, Step, declared_len};
use super::reader::{Body, CaptureReader, Chunk, Frame, NgBlock};
use super::{LinkType, MAX_RECORD, PcapError};

/// Bytes of a window: small enough that a window stays in a core's L2 cache between being
/// read and being parsed (measured: 1 MiB beat 4 MiB), large enough that the per-window
/// hand-offs do not matter.
pub const WINDOW_SIZE: usize = 1 << 20;

/// Bytes read past a window's end in the same read (at most the window's size), so that the
/// record straddling the end needs no second read when it is a frame of a common link (an
/// Ethernet frame of 1,514 bytes, or a little more with VLAN tags, and its 16-byte header).
/// Longer records are read on when framing finds them cut ([`Windows::needed`]): one more read
/// per window of a capture of jumbo or offloaded frames. Every margin byte is read twice (by
/// this window, and as part of the next), and the kernel's copy out of the page cache is about
/// half of a replay's CPU time: a margin of 64 KiB was 6% more copying than the file's size.
const MARGIN: usize = 2048;

/// A window start meaning "the file's framing stopped before this window".
const STOP: u64 = u64::MAX;

/// A pcap or pcapng file cut into windows of [`WINDOW_SIZE`] bytes (or the size given), to
/// be read by several threads: each thread calls [`Windows::read`] for its windows in
/// increasing order, and whoever consumes them parses ([`Chunk::run`]) and merges them in
/// window order.
pub struct Windows {
    name: String,
    file: File,
    format: Framing,
    /// File offset of the first packet record (pcap) or the first block after the section
    /// header (pcapng).
    first: u64,
    /// File length when the windows were made.
    file_len: u64,
    size: u64,
    /// `starts[k]`: where window `k`'s first record starts once window `k - 1` is framed;
    /// `starts[0]` is set from the start.
    starts: Vec<OnceLock<Start>>,
    /// The most records a window of this file has held so far: the next window's frame list
    /// starts with room for that many, so that it is not grown (and copied) several times
    /// over in a capture of small packets.
    most_frames: AtomicUsize,
}

/// How records are framed.
enum Framing {
    Pcap {
        parser: Arc<PcapParser>,
        link: LinkType,
        frac_ns: u64,
    },
    /// Block by block, each in the light of the blocks before ([`Start::framer`]).
    PcapNg,
}

/// Where a window's first record starts.
#[derive(Clone, Debug)]
struct Start {
    /// File offset, or [`STOP`].
    at: u64,
    /// pcapng: the section (byte order, interfaces) the blocks before left for it.
    framer: Option<Framer>,
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
    /// Windows of `size` bytes over the records of `reader`'s file, read through `file` (the
    /// same file, opened again or cloned: only positioned reads are used), from where
    /// `reader` stands (right after the file header). `None` when `file` is not a regular
    /// file (a pipe has no positions): read those with [`CaptureReader::run`].
    pub fn new<R: io::Read>(
        reader: &CaptureReader<R>,
        file: File,
        size: usize,
    ) -> Result<Option<Windows>, PcapError> {
        let (format, first, framer) = match (reader.pcap_parts(), reader.pcapng_parts()) {
            (Some((parser, link, frac_ns, first)), _) => (
                Framing::Pcap {
                    parser,
                    link,
                    frac_ns,
                },
                first,
                None,
            ),
            (None, Some((framer, first))) => (Framing::PcapNg, first, Some(framer)),
            (None, None) => return Ok(None),
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
        let starts: Vec<OnceLock<Start>> = (0..count).map(|_| OnceLock::new()).collect();
        if let Some(s) = starts.first() {
            let _ = s.set(Start { at: first, framer });
        }
        Ok(Some(Windows {
            name: reader.name().to_string(),
            file,
            format,
            first,
            file_len,
            size,
            starts,
            most_frames: AtomicUsize::new(0),
        }))
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the file has no record bytes at all.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// A classic pcap's link type; `None` for pcapng, whose interfaces each have their own.
    pub fn link_type(&self) -> Option<LinkType> {
        match self.format {
            Framing::Pcap { link, .. } => Some(link),
            Framing::PcapNg => None,
        }
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
            let _ = next.set(Start {
                at: STOP,
                framer: None,
            });
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
        let filled = self.fill(&mut buf, lo, 0, (hi + margin).min(end), &mut end)?;
        let start = match self.starts.get(k) {
            Some(s) => s.wait().clone(),
            None => Start {
                at: STOP,
                framer: None,
            },
        };
        let empty = match &self.format {
            Framing::Pcap {
                parser,
                link,
                frac_ns,
            } => Body::Pcap {
                parser: Arc::clone(parser),
                link: *link,
                frac_ns: *frac_ns,
                frames: Some(Vec::new()),
            },
            Framing::PcapNg => Body::PcapNg {
                blocks: Vec::new(),
                sections: Vec::new(),
            },
        };
        let mut chunk = Chunk {
            data: Vec::new(),
            start: 0,
            len: 0,
            offset: start.at,
            damage: None,
            body: empty,
        };
        if start.at == STOP || start.at >= hi {
            // Damage earlier, or a record from an earlier window covers this one.
            self.publish(k, start);
            chunk.data = buf;
            return Ok(chunk);
        }
        // Window k-1 framed up to its end at least, so `start >= lo`.
        debug_assert!(start.at >= lo);
        let first = start.at.saturating_sub(lo) as usize;
        let mut w = Framed {
            buf,
            filled,
            end,
            at: first,
            damage: None,
        };
        let next = match (&self.format, start.framer) {
            (Framing::Pcap { parser, .. }, _) => {
                let frames = self.frame_pcap(parser, lo, hi, &mut w)?;
                self.most_frames.fetch_max(frames.len(), Ordering::Relaxed);
                if let Body::Pcap { frames: f, .. } = &mut chunk.body {
                    *f = Some(frames);
                }
                None
            }
            (Framing::PcapNg, Some(mut framer)) => {
                let (blocks, sections) = self.frame_pcapng(&mut framer, lo, hi, &mut w)?;
                chunk.body = Body::PcapNg { blocks, sections };
                Some(framer)
            }
            (Framing::PcapNg, None) => {
                // Every pcapng start carries its section; a window without one cannot be
                // framed (never happens: reported as damage rather than trusted).
                w.damage = Some((start.at, "pcapng section unknown".to_string()));
                None
            }
        };
        let next_at = if w.damage.is_none() {
            lo + w.at as u64
        } else {
            STOP
        };
        self.publish(
            k,
            Start {
                at: next_at,
                framer: next,
            },
        );
        chunk.data = w.buf;
        chunk.start = first;
        chunk.len = w.at;
        chunk.damage = w.damage;
        Ok(chunk)
    }

    /// Frames the pcap records that start in `[lo, hi)`.
    fn frame_pcap(
        &self,
        parser: &PcapParser,
        lo: u64,
        hi: u64,
        w: &mut Framed,
    ) -> Result<Vec<Frame>, PcapError> {
        // Kept for `Chunk::run`, which would otherwise frame the window again.
        let room = (self.size as usize / 256).max(self.most_frames.load(Ordering::Relaxed));
        let mut frames = Vec::with_capacity(room);
        while lo + (w.at as u64) < hi {
            match parser.next_raw_packet(&w.buf[w.at..w.filled]) {
                Ok((rem, pkt)) => {
                    w.at = w.filled - rem.len();
                    frames.push(Frame {
                        at: w.at - pkt.data.len(),
                        len: pkt.data.len(),
                        ts_sec: pkt.ts_sec,
                        ts_frac: pkt.ts_frac,
                    });
                }
                Err(FileError::IncompleteBuffer) => {
                    let o = lo + w.at as u64;
                    match self.needed(parser, &w.buf[w.at..w.filled], o, w.end) {
                        Ok(need) => {
                            w.filled = self.fill(&mut w.buf, lo, w.filled, o + need, &mut w.end)?;
                            // A file that shrank while read: judged again on the next turn.
                        }
                        Err(why) => {
                            w.damage = Some((o, why));
                            break;
                        }
                    }
                }
                Err(e) => {
                    w.damage = Some((lo + w.at as u64, e.to_string()));
                    break;
                }
            }
        }
        Ok(frames)
    }

    /// Frames the pcapng blocks that start in `[lo, hi)`, following `framer` through the
    /// section headers and interface descriptions among them.
    fn frame_pcapng(
        &self,
        framer: &mut Framer,
        lo: u64,
        hi: u64,
        w: &mut Framed,
    ) -> Result<(Vec<NgBlock>, Vec<Arc<super::ng::Section>>), PcapError> {
        let mut blocks = Vec::with_capacity(self.size as usize / 256);
        let mut sections: Vec<Arc<super::ng::Section>> = Vec::new();
        // Whether the framer's section changed since the last one kept. A section is kept
        // (shared) only when a packet needs it, so that a run of interface descriptions
        // does not copy the growing interface list once per description.
        let mut changed = true;
        while lo + (w.at as u64) < hi {
            match framer.step(&w.buf[w.at..w.filled]) {
                Step::Block { len, kind } => {
                    match kind {
                        BlockKind::Packet => {
                            if changed {
                                sections.push(Arc::clone(framer.section()));
                                changed = false;
                            }
                            blocks.push(NgBlock {
                                at: w.at,
                                len,
                                section: sections.len() - 1,
                            });
                        }
                        BlockKind::SectionChanged => changed = true,
                        BlockKind::Other => {}
                    }
                    w.at += len;
                }
                Step::Incomplete => {
                    let o = lo + w.at as u64;
                    let endianness = framer.section().endianness();
                    match block_needed(&w.buf[w.at..w.filled], o, w.end, endianness) {
                        Ok(want) => {
                            w.filled = self.fill(&mut w.buf, lo, w.filled, o + want, &mut w.end)?;
                        }
                        Err(why) => {
                            w.damage = Some((o, why));
                            break;
                        }
                    }
                }
                Step::Broken(why) => {
                    w.damage = Some((lo + w.at as u64, why));
                    break;
                }
            }
        }
        Ok((blocks, sections))
    }

    fn publish(&self, k: usize, next: Start) {
        if let Some(s) = self.starts.get(k + 1) {
            let _ = s.set(next);
        }
    }

    /// Total bytes the record at file offset `o` takes (`avail` are its bytes read so far),
    /// or why it cannot be read, in the words of the sequential reader.
    fn needed(&self, parser: &PcapParser, avail: &[u8], o: u64, end: u64) -> Result<u64, String> {
        let present = end - o;
        let need = match avail.get(8..12) {
            Some(b) => {
                let b = [b[0], b[1], b[2], b[3]];
                let incl = match parser.header().endianness {
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

/// A window being framed: `buf[..filled]` is the file from the window's start, `at` where
/// framing stands, `end` where the file ends (lowered if it shrinks while read).
struct Framed {
    buf: Vec<u8>,
    filled: usize,
    end: u64,
    at: usize,
    damage: Option<(u64, String)>,
}

/// How many bytes from file offset `o` to have read for another try at framing the pcapng
/// block there (`avail`: its bytes read so far, not enough), or why it will never frame.
///
/// The answers are the sequential reader's: it reads on until the block frames, the file
/// ends ("file ends inside") or [`MAX_RECORD`] bytes are buffered ("larger than"), whatever
/// the block's length field says (a section header's body may want more than its length).
fn block_needed(avail: &[u8], o: u64, end: u64, endianness: Endianness) -> Result<u64, String> {
    let present = avail.len() as u64;
    let left = end - o;
    if present >= MAX_RECORD as u64 {
        return Err(format!("pcapng block larger than {MAX_RECORD} bytes"));
    }
    if present >= left {
        return Err(format!(
            "file ends inside a pcapng block ({left} of its bytes present)"
        ));
    }
    let hint = declared_len(avail, endianness)
        .map(|n| n as u64)
        .filter(|&n| n > present)
        .unwrap_or(2 * present)
        .max(12);
    Ok(hint.min(MAX_RECORD as u64).min(left))
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
        // A pcap without packets still names its link type (as the sequential reader does).
        if let Some(link) = w.link_type() {
            stats.link_types.entry(link).or_default();
        }
        (got, stats)
    }

    /// Checks `bytes` read as windows against the sequential reader; returns the latter's
    /// statistics.
    fn check(bytes: &[u8], what: &str) -> IngestStats {
        let (_dir, path) = temp_pcap(bytes);
        let (want, want_stats) = sequential(&path);
        // Windows of one byte only for small files: each is a read and a hand-off. Windows
        // larger than the margin (4099) have records cut at their end read on.
        let sizes: &[usize] = if bytes.len() < 5000 {
            &[1, 7, 1 << 20]
        } else {
            &[37, 999, 4099, 1 << 20]
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

    /// The real captures in `fixtures/pcap` (pcap and pcapng), in windows smaller than their
    /// records and in the default size.
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
                if path
                    .extension()
                    .is_none_or(|e| e != "pcap" && e != "pcapng")
                {
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

    /// pcapng blocks in one byte order.
    struct Ng {
        f: Vec<u8>,
        big: bool,
        /// Offsets of the blocks written.
        starts: Vec<usize>,
    }

    impl Ng {
        /// `v` in the section's byte order.
        fn order<const N: usize>(&self, be: [u8; N], le: [u8; N]) -> [u8; N] {
            if self.big { be } else { le }
        }

        fn word(&mut self, v: u32) {
            let b = self.order(v.to_be_bytes(), v.to_le_bytes());
            self.f.extend_from_slice(&b);
        }

        fn half(&mut self, v: u16) {
            let b = self.order(v.to_be_bytes(), v.to_le_bytes());
            self.f.extend_from_slice(&b);
        }

        /// A block of type `ty` around `body` (padded to 4 bytes).
        fn block(&mut self, ty: u32, body: impl FnOnce(&mut Ng)) {
            self.starts.push(self.f.len());
            let at = self.f.len();
            self.word(ty);
            self.word(0);
            body(self);
            while !self.f.len().is_multiple_of(4) {
                self.f.push(0);
            }
            let len = (self.f.len() - at + 4) as u32;
            self.word(len);
            let b = self.order(len.to_be_bytes(), len.to_le_bytes());
            self.f[at + 4..at + 8].copy_from_slice(&b);
        }

        /// A section header in byte order `big`.
        fn section(&mut self, big: bool) {
            self.big = big;
            self.block(0x0a0d_0d0a, |b| {
                b.word(0x1a2b_3c4d);
                b.half(1);
                b.half(0);
                b.f.extend_from_slice(&[0xff; 8]);
            });
        }

        /// An interface of `link`, with `if_tsresol` = `resol` when given.
        fn iface(&mut self, link: u16, resol: Option<u8>) {
            self.block(1, |b| {
                b.half(link);
                b.half(0);
                b.word(4000);
                if let Some(r) = resol {
                    b.half(9);
                    b.half(1);
                    b.f.extend_from_slice(&[r, 0, 0, 0]);
                    b.half(0);
                    b.half(0);
                }
            });
        }

        fn epb(&mut self, iface: u32, ticks: u64, data: &[u8]) {
            self.block(6, |b| {
                b.word(iface);
                b.word((ticks >> 32) as u32);
                b.word(ticks as u32);
                b.word(data.len() as u32);
                b.word(data.len() as u32 + 3);
                b.f.extend_from_slice(data);
            });
        }
    }

    /// An IPv4 TCP packet (link type RAW) from port `port`: a SYN when `syn`, else an ACK.
    fn ipv4_tcp(port: u16, syn: bool, payload: usize) -> Vec<u8> {
        let total = 40 + payload;
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            6,
            0,
            0,
        ];
        p.extend_from_slice(&[198, 51, 100, 1, 198, 51, 100, 2]);
        p.extend_from_slice(&port.to_be_bytes());
        p.extend_from_slice(&80u16.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, if syn { 0x02 } else { 0x10 }]);
        p.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        p.extend((0..payload).map(|i| i as u8));
        p
    }

    /// A pcapng of every kind of block the reader meets, in two sections of opposite byte
    /// order: interfaces of two link types and two time resolutions, described up front and
    /// between packets; enhanced, simple and obsolete packet blocks; packets on an interface
    /// never described; a name resolution block; an enhanced packet block whose body does not
    /// parse and an interface description that does not. `n` packets a section.
    fn pcapng(n: usize) -> Ng {
        let mut g = Ng {
            f: Vec::new(),
            big: false,
            starts: Vec::new(),
        };
        for (s, big) in [(0u16, false), (1, true)] {
            g.section(big);
            g.iface(101, None);
            g.iface(1, Some(9));
            for i in 0..n {
                let port = 1000 + s * 1000 + i as u16;
                let pkt = ipv4_tcp(port, i % 3 == 0, (i * 577) % 3000);
                match i % 11 {
                    // Ethernet: the RAW packet behind a header.
                    1 => {
                        let mut e = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
                        e.extend_from_slice(&pkt);
                        g.epb(1, 1_700_000_000_000_000_000 + i as u64, &e)
                    }
                    2 => g.block(3, |b| {
                        b.word(pkt.len() as u32);
                        b.f.extend_from_slice(&pkt);
                    }),
                    3 => g.block(2, |b| {
                        b.half(0);
                        b.half(0);
                        b.word(0);
                        b.word(i as u32);
                        b.word(pkt.len() as u32);
                        b.word(pkt.len() as u32);
                        b.f.extend_from_slice(&pkt);
                    }),
                    // Interface 7 is never described.
                    4 => g.epb(7, i as u64, &pkt),
                    // Name resolution: no packet.
                    5 => g.block(4, |b| b.word(0)),
                    // Captured length past the block: framed, body bad.
                    6 => g.block(6, |b| {
                        b.word(0);
                        b.word(0);
                        b.word(0);
                        b.word(5000);
                        b.word(5000);
                    }),
                    // An interface description too short to parse; ids stay in line.
                    7 if i % 2 == 1 => g.block(1, |b| b.half(1)),
                    8 if i == 8 => g.iface(1, Some(0x86)),
                    _ => g.epb(0, 1_700_000_000_000_000 + i as u64 * 1000, &pkt),
                }
            }
        }
        g
    }

    /// Whatever the window size and thread count, and wherever a pcapng file is cut or its
    /// framing broken, its windows parsed in order give what the sequential reader gives.
    #[test]
    fn pcapng_windows_equal_the_sequential_reader() {
        let g = pcapng(40);
        assert!(g.f.len() > 60_000, "blocks span many windows");
        let stats = check(&g.f, "whole pcapng");
        assert!(stats.syn >= 10 && stats.tcp >= 40, "{stats:?}");
        assert!(stats.link_types.len() >= 2, "{stats:?}");
        assert!(
            stats
                .skipped
                .contains_key(&crate::pcap::SkipReason::BadBlock)
                && stats
                    .skipped
                    .contains_key(&crate::pcap::SkipReason::UnknownInterface),
            "{stats:?}"
        );
        assert_eq!(stats.truncated_at, None);
        for &s in &g.starts[g.starts.len() - 4..] {
            for cut in [s, s + 1, s + 7, s + 8, s + 11, s + 12, s + 13] {
                let stats = check(&g.f[..cut.min(g.f.len())], &format!("cut at {cut}"));
                assert_eq!(stats.truncated_at.is_some(), cut != s && cut < g.f.len());
            }
        }
        let small = pcapng(3);
        assert!(small.f.len() < 5000);
        check(&small.f, "small pcapng");
        check(&small.f[..small.f.len() - 5], "small pcapng, cut");
        // In the middle: a length field pointing past the end, a trailer that disagrees, a
        // second section header whose magic is wrong.
        let s = g.starts[g.starts.len() / 3];
        let mut huge = g.f.clone();
        huge[s + 4..s + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        assert_eq!(check(&huge, "huge length").truncated_at, Some(s as u64));
        let mut trailer = g.f.clone();
        trailer[s + 4] ^= 4;
        assert_eq!(check(&trailer, "bad trailer").truncated_at, Some(s as u64));
        let second = g.starts.iter().skip(1).find(|&&o| g.f[o] == 0x0a).copied();
        let second = second.expect("a second section");
        let mut magic = g.f.clone();
        magic[second + 8] ^= 0xff;
        assert_eq!(check(&magic, "bad magic").truncated_at, Some(second as u64));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any one byte of a pcapng changed, or the file cut anywhere: still the sequential
        /// reader's result, window by window.
        #[test]
        fn damaged_pcapng_windows_equal_the_sequential_reader(
            at in 0usize..1_000_000, byte in proptest::prelude::any::<u8>(), cut in proptest::prelude::any::<bool>()
        ) {
            let mut f = pcapng(6).f;
            let at = 28 + at % (f.len() - 28);
            if cut {
                f.truncate(at);
            } else {
                f[at] = byte;
            }
            check_quick(&f);
        }
    }

    /// [`check`] with fewer window sizes, for many files.
    fn check_quick(bytes: &[u8]) {
        let (_dir, path) = temp_pcap(bytes);
        let (want, want_stats) = sequential(&path);
        for (size, threads) in [(13, 2), (400, 3), (1 << 20, 2)] {
            let (got, stats) = windowed(&path, size, threads);
            assert_eq!(got.records, want.records, "size {size}");
            assert_eq!(got.flows, want.flows, "size {size}");
            assert_eq!(stats, want_stats, "size {size}");
        }
    }

    /// Every capture of the shared corpus (`../shared/pcaps`: real pcap and pcapng files from
    /// other projects, some damaged), read as windows, gives what the sequential reader gives.
    /// CI runs it with `--ignored`.
    #[test]
    #[ignore = "needs the shared corpus ($SYNSCOPE_PCAPS or ../shared/pcaps): run with --ignored"]
    fn corpus_read_as_windows_equals_the_sequential_reader() {
        let dir = testkit::require_shared_pcaps();
        let mut files = Vec::new();
        for sub in std::fs::read_dir(&dir).unwrap() {
            let sub = sub.unwrap().path();
            if sub.is_dir() {
                files.extend(std::fs::read_dir(&sub).unwrap().map(|f| f.unwrap().path()));
            }
        }
        files.sort();
        let (mut pcaps, mut pcapngs) = (0, 0);
        for path in &files {
            // Files that are no capture at all are the sequential reader's tests' business.
            let Ok(reader) = crate::pcap::open(path) else {
                continue;
            };
            match reader.format() {
                crate::pcap::Format::Pcap => pcaps += 1,
                crate::pcap::Format::PcapNg => pcapngs += 1,
            }
            let (want, want_stats) = sequential(path);
            for (size, threads) in [(4096, 2), (WINDOW_SIZE, 3)] {
                let (got, stats) = windowed(path, size, threads);
                let ctx = format!("{}: size {size}", path.display());
                assert_eq!(got.records, want.records, "{ctx}");
                assert_eq!(got.flows, want.flows, "{ctx}");
                assert_eq!(stats, want_stats, "{ctx}");
            }
        }
        assert!(
            pcaps > 400 && pcapngs >= 20,
            "{pcaps} pcap, {pcapngs} pcapng files"
        );
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
