//! Append-only journals: what makes a capture survive `kill -9`.
//!
//! A Parquet file is unreadable until its footer is written, so while capturing, records go
//! to journals next to the output: `OUT.journal` (SYN records) and `FLOWS.journal` (flow
//! rows). Each is a small header followed by fixed-size frames, appended with `write(2)` as
//! they are drained (every few milliseconds, in one write per drain) and `fdatasync`ed every
//! `--flush-interval` on a thread of its own. Data handed to the kernel survives the death of
//! the process, so after SIGKILL everything drained is in the journal; after a power cut,
//! everything older than about one flush interval (plus the sync's own duration). A torn last
//! frame is ignored on recovery.
//!
//! The sync has its own thread because under a SYN flood a second's worth of journal takes
//! long enough to reach storage that the ring buffer would overflow while the drain loop
//! waited for it.
//!
//! On a clean exit the journals are converted into the Parquet outputs and deleted. When
//! `capture` starts and finds journals left by a killed run, it converts them first (see
//! `output::recover`).
//!
//! Header layout (little-endian): 16-byte magic, `u32` format version, `u32` frame size,
//! `u32` metadata length, then the metadata as `key=value` lines (UTF-8).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;

use record::{FlowCounters, FlowKey, SynRecord};

use crate::error::{CaptureError, Result, io_err};

const MAGIC: &[u8; 16] = b"synscope-journal";
/// 2: records of 136 bytes and flow keys of 48, with the encapsulation (version 1 journals,
/// written before, are refused by name rather than misread).
const VERSION: u32 = 2;
const HEADER_FIXED: usize = 16 + 4 + 4 + 4;
/// Metadata larger than this is not ours.
const MAX_META: usize = 1 << 20;

/// A fixed-size journal frame.
pub trait Frame: Sized {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Appends the encoding of `self` (exactly `SIZE` bytes).
    fn encode(&self, out: &mut Vec<u8>);
    /// Decodes one frame of `SIZE` bytes; `None` if it is not a valid value.
    fn decode(b: &[u8]) -> Option<Self>;
}

impl Frame for SynRecord {
    const SIZE: usize = SynRecord::SIZE;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(bytemuck::bytes_of(self));
    }
    fn decode(b: &[u8]) -> Option<Self> {
        b.get(..SynRecord::SIZE)
            .map(bytemuck::pod_read_unaligned::<SynRecord>)
            .filter(SynRecord::is_canonical)
    }
}

impl Frame for formats::flows::FlowRow {
    const SIZE: usize = 16 + FlowKey::SIZE + FlowCounters::SIZE;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.interval_start_ns.to_le_bytes());
        out.extend_from_slice(&self.interval_end_ns.to_le_bytes());
        out.extend_from_slice(bytemuck::bytes_of(&self.key));
        out.extend_from_slice(bytemuck::bytes_of(&self.counters));
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let start = u64::from_le_bytes(*b.first_chunk::<8>()?);
        let end = u64::from_le_bytes(*b.get(8..)?.first_chunk::<8>()?);
        let key = bytemuck::pod_read_unaligned(b.get(16..16 + FlowKey::SIZE)?);
        let counters = bytemuck::pod_read_unaligned(b.get(16 + FlowKey::SIZE..Self::SIZE)?);
        Some(formats::flows::FlowRow {
            interval_start_ns: start,
            interval_end_ns: end,
            key,
            counters,
        })
    }
}

/// Takes an exclusive advisory lock (`flock`) on `file` without waiting; `false` when another
/// open file (another capture) holds it. The lock lives as long as the file stays open, so a
/// killed capture releases it.
pub fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a valid, open descriptor.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Writer side: frames are buffered by [`JournalWriter::push`], reach the file on
/// [`JournalWriter::write_out`] and storage after [`JournalWriter::flush`] (in the background)
/// or [`JournalWriter::finish`].
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
    frame_size: usize,
    buf: Vec<u8>,
    frames: u64,
    bytes: u64,
    syncer: Syncer,
}

/// `fdatasync` of one file on a thread of its own, one request at a time.
#[derive(Debug)]
struct Syncer {
    requests: Option<SyncSender<()>>,
    results: Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
    in_flight: bool,
}

impl Syncer {
    fn new(file: File) -> io::Result<Syncer> {
        let (requests, todo) = mpsc::sync_channel::<()>(1);
        let (done, results) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || {
                for () in todo {
                    if done.send(file.sync_data()).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Syncer {
            requests: Some(requests),
            results,
            thread: Some(thread),
            in_flight: false,
        })
    }

    /// Starts a sync of everything written so far, unless one is still running (the next
    /// request then covers this data too). Reports a failure of the previous sync.
    fn request(&mut self) -> io::Result<()> {
        if self.in_flight {
            match self.results.try_recv() {
                Ok(r) => {
                    self.in_flight = false;
                    r?;
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => return Err(Self::gone()),
            }
        }
        let requests = self.requests.as_ref().ok_or_else(Self::gone)?;
        requests.send(()).map_err(|_| Self::gone())?;
        self.in_flight = true;
        Ok(())
    }

    /// Waits for the sync in flight, if any, and reports how it ended.
    fn wait(&mut self) -> io::Result<()> {
        if !self.in_flight {
            return Ok(());
        }
        self.in_flight = false;
        self.results.recv().map_err(|_| Self::gone())?
    }

    fn gone() -> io::Error {
        io::Error::other("the journal's sync thread stopped")
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // Closing the request channel ends the thread after its current sync.
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl JournalWriter {
    /// Creates (truncating) a journal for frames of `F` with the given metadata.
    pub fn create<F: Frame>(path: &Path, meta: &[(String, String)]) -> Result<JournalWriter> {
        // Lock before truncating: a second capture with the same --out must not wipe the
        // journal of one that is running.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err(path))?;
        if !try_lock(&file) {
            return Err(CaptureError::Busy(path.to_path_buf()));
        }
        file.set_len(0).map_err(io_err(path))?;
        let mut text = String::new();
        for (k, v) in meta {
            // Keys and values are ours; newlines would break the format, so they go.
            text.push_str(&k.replace(['\n', '='], "_"));
            text.push('=');
            text.push_str(&v.replace('\n', " "));
            text.push('\n');
        }
        let mut head = Vec::with_capacity(HEADER_FIXED + text.len());
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&VERSION.to_le_bytes());
        head.extend_from_slice(&(F::SIZE as u32).to_le_bytes());
        head.extend_from_slice(&(text.len() as u32).to_le_bytes());
        head.extend_from_slice(text.as_bytes());
        file.write_all(&head).map_err(io_err(path))?;
        file.sync_all().map_err(io_err(path))?;
        let syncer = file
            .try_clone()
            .and_then(Syncer::new)
            .map_err(io_err(path))?;
        Ok(JournalWriter {
            file,
            path: path.to_path_buf(),
            frame_size: F::SIZE,
            buf: Vec::new(),
            frames: 0,
            bytes: head.len() as u64,
            syncer,
        })
    }

    /// Buffers one frame.
    pub fn push<F: Frame>(&mut self, f: &F) {
        debug_assert_eq!(F::SIZE, self.frame_size);
        f.encode(&mut self.buf);
        self.frames += 1;
    }

    /// Writes the buffered frames to the file (one `write`): from then on they survive the
    /// death of the process.
    pub fn write_out(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf).map_err(io_err(&self.path))?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the buffered frames and starts syncing the file to storage in the background;
    /// an error of the previous sync is reported here.
    pub fn flush(&mut self) -> Result<()> {
        self.write_out()?;
        self.syncer.request().map_err(io_err(&self.path))
    }

    /// Writes the buffered frames and waits until the whole file is on storage.
    pub fn finish(&mut self) -> Result<()> {
        self.write_out()?;
        self.syncer.wait().map_err(io_err(&self.path))?;
        self.file.sync_data().map_err(io_err(&self.path))
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written to the file so far (header included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A journal read back in full (small journals and tests; see [`JournalReader`] for
/// streaming).
#[derive(Debug)]
pub struct Journal<F> {
    /// The metadata pairs, in file order.
    pub meta: Vec<(String, String)>,
    /// Every whole, valid frame.
    pub frames: Vec<F>,
    /// Bytes after the last whole frame (a write torn by a crash).
    pub torn_bytes: usize,
    /// Whole frames that did not decode (corruption); skipped.
    pub bad_frames: usize,
}

impl<F> Journal<F> {
    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&str> {
        get(&self.meta, key)
    }
}

fn get<'a>(meta: &'a [(String, String)], key: &str) -> Option<&'a str> {
    meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Streaming reader: the header on open, then frames chunk by chunk, so converting a day of
/// SYNs never holds the whole journal in memory.
#[derive(Debug)]
pub struct JournalReader<F> {
    file: BufReader<File>,
    path: PathBuf,
    /// The metadata pairs, in file order.
    pub meta: Vec<(String, String)>,
    /// Bytes after the last whole frame (known once the end is reached).
    pub torn_bytes: usize,
    /// Whole frames that did not decode (corruption); skipped.
    pub bad_frames: usize,
    buf: Vec<u8>,
    done: bool,
    _frame: PhantomData<F>,
}

impl<F: Frame> JournalReader<F> {
    /// Opens a journal of `F` frames and reads its header.
    pub fn open(path: &Path) -> Result<JournalReader<F>> {
        let bad = |reason: String| CaptureError::Journal {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = BufReader::new(File::open(path).map_err(io_err(path))?);
        let mut head = [0u8; HEADER_FIXED];
        read_full(&mut file, &mut head).map_err(io_err(path))?;
        if head.get(..16) != Some(MAGIC.as_slice()) {
            return Err(bad(
                "not a synscope journal (bad magic or truncated header)".into(),
            ));
        }
        let word = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&head[at..at + 4]);
            u32::from_le_bytes(w)
        };
        let (version, frame_size, meta_len) = (word(16), word(20), word(24) as usize);
        if version != VERSION {
            return Err(bad(format!("unsupported journal version {version}")));
        }
        if frame_size as usize != F::SIZE {
            return Err(bad(format!(
                "frame size {frame_size}, expected {} (wrong kind of journal)",
                F::SIZE
            )));
        }
        if meta_len > MAX_META {
            return Err(bad("metadata too large".into()));
        }
        let mut text = vec![0u8; meta_len];
        if read_full(&mut file, &mut text).map_err(io_err(path))? != meta_len {
            return Err(bad("truncated metadata".into()));
        }
        let meta = String::from_utf8_lossy(&text)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(JournalReader {
            file,
            path: path.to_path_buf(),
            meta,
            torn_bytes: 0,
            bad_frames: 0,
            buf: Vec::new(),
            done: false,
            _frame: PhantomData,
        })
    }

    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&str> {
        get(&self.meta, key)
    }

    /// Replaces `out` with up to `max` (at least 1) next valid frames; `false` once the
    /// journal is exhausted (then `out` is empty).
    pub fn next_chunk(&mut self, out: &mut Vec<F>, max: usize) -> Result<bool> {
        out.clear();
        while out.is_empty() && !self.done {
            self.buf.resize(max.max(1) * F::SIZE, 0);
            let n = read_full(&mut self.file, &mut self.buf).map_err(io_err(&self.path))?;
            if n < self.buf.len() {
                self.done = true;
                self.torn_bytes = n % F::SIZE;
            }
            for c in self.buf[..n].chunks_exact(F::SIZE) {
                match F::decode(c) {
                    Some(f) => out.push(f),
                    None => self.bad_frames += 1,
                }
            }
        }
        Ok(!out.is_empty())
    }
}

/// Reads until `buf` is full or the end of the file; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads a whole journal of `F` frames.
pub fn read<F: Frame>(path: &Path) -> Result<Journal<F>> {
    let mut r = JournalReader::<F>::open(path)?;
    let mut frames = Vec::new();
    let mut chunk = Vec::new();
    while r.next_chunk(&mut chunk, 4096)? {
        frames.append(&mut chunk);
    }
    Ok(Journal {
        meta: std::mem::take(&mut r.meta),
        frames,
        torn_bytes: r.torn_bytes,
        bad_frames: r.bad_frames,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use formats::flows::FlowRow;

    fn rec(i: u8) -> SynRecord {
        let mut r = SynRecord::ZERO;
        r.ip_version = 4;
        r.ts_ns = u64::from(i) * 1000;
        r.src_addr[..4].copy_from_slice(&[10, 0, 0, i]);
        r.tcp_opts_len = 4;
        r.tcp_opts[..4].copy_from_slice(&[2, 4, 5, 180]);
        r
    }

    #[test]
    fn round_trip_with_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.journal");
        let meta = vec![("interface".to_string(), "lo".to_string())];
        let mut w = JournalWriter::create::<SynRecord>(&p, &meta).unwrap();
        for i in 0..10 {
            w.push(&rec(i));
        }
        w.flush().unwrap();
        assert_eq!(w.frames(), 10);
        drop(w);
        // Simulate a write torn by SIGKILL: half a frame at the end.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&[0xaa; 60]).unwrap();
        drop(f);
        let j = read::<SynRecord>(&p).unwrap();
        assert_eq!(j.get("interface"), Some("lo"));
        assert_eq!(j.frames, (0..10).map(rec).collect::<Vec<_>>());
        assert_eq!((j.torn_bytes, j.bad_frames), (60, 0));
    }

    /// `write_out` puts frames in the file at once, with no sync; flushes may follow each other
    /// faster than the background syncs finish; `finish` leaves every frame in the file.
    #[test]
    fn written_out_frames_are_readable_before_any_sync() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.journal");
        let mut w = JournalWriter::create::<SynRecord>(&p, &[]).unwrap();
        w.push(&rec(0));
        w.push(&rec(1));
        assert_eq!(read::<SynRecord>(&p).unwrap().frames.len(), 0, "buffered");
        w.write_out().unwrap();
        assert_eq!(read::<SynRecord>(&p).unwrap().frames, vec![rec(0), rec(1)]);
        for i in 2..50 {
            w.push(&rec(i));
            w.flush().unwrap();
        }
        w.push(&rec(50));
        w.finish().unwrap();
        assert_eq!(
            read::<SynRecord>(&p).unwrap().frames,
            (0..51).map(rec).collect::<Vec<_>>()
        );
    }

    #[test]
    fn rejects_foreign_and_mismatched_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.journal");
        std::fs::write(&p, b"PAR1 not a journal").unwrap();
        assert!(matches!(
            read::<SynRecord>(&p),
            Err(CaptureError::Journal { .. })
        ));
        JournalWriter::create::<SynRecord>(&p, &[]).unwrap();
        assert!(matches!(
            read::<FlowRow>(&p),
            Err(CaptureError::Journal { .. })
        ));
        // A non-canonical record counts as bad, not as data.
        let mut w = JournalWriter::create::<SynRecord>(&p, &[]).unwrap();
        let mut r = rec(1);
        r.tcp_opts[10] = 1;
        w.push(&r);
        w.push(&rec(2));
        w.flush().unwrap();
        let j = read::<SynRecord>(&p).unwrap();
        assert_eq!((j.frames.len(), j.bad_frames), (1, 1));
    }

    #[test]
    fn chunked_reading_sees_every_frame_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.journal");
        let mut w = JournalWriter::create::<SynRecord>(&p, &[]).unwrap();
        for i in 0..=250u8 {
            w.push(&rec(i));
        }
        w.flush().unwrap();
        let mut r = JournalReader::<SynRecord>::open(&p).unwrap();
        let (mut got, mut chunk, mut calls) = (Vec::new(), Vec::new(), 0);
        while r.next_chunk(&mut chunk, 7).unwrap() {
            assert!(chunk.len() <= 7);
            got.extend_from_slice(&chunk);
            calls += 1;
        }
        assert_eq!(got, (0..=250).map(rec).collect::<Vec<_>>());
        assert_eq!(calls, 251usize.div_ceil(7));
        assert_eq!(r.torn_bytes, 0);
    }

    #[test]
    fn flow_rows_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.journal");
        let (key, dir_ab) = FlowKey::new(6, [1; 16], 5, [2; 16], 6);
        let mut counters = FlowCounters::default();
        counters.dir_mut(dir_ab).add(7, 60, record::tcp_flag::SYN);
        let row = FlowRow {
            interval_start_ns: 1,
            interval_end_ns: 2,
            key,
            counters,
        };
        let mut w = JournalWriter::create::<FlowRow>(&p, &[]).unwrap();
        w.push(&row);
        w.flush().unwrap();
        assert_eq!(read::<FlowRow>(&p).unwrap().frames, vec![row]);
    }
}
