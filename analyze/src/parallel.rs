//! Parallel and deterministic replay of inputs.
//!
//! The p0f features that keep state (SYN/SYN+ACK pairing, uptime, host change, IP sharing)
//! need every record in capture order, so there is exactly one [`crate::p0f::Engine`] and it
//! runs on the caller's thread. What can run elsewhere is the decoding in front of it:
//!
//! - recordings: Parquet row groups are decompressed and decoded on a rayon pool of
//!   [`ReplayOptions::threads`] threads, a window of row groups at a time, and handed over in
//!   row-group order;
//! - classic pcap files: one producer thread reads the file and cuts it into 4 MiB chunks of
//!   whole packet records ([`formats::pcap::CaptureReader::next_chunk`]: a hop over 16-byte
//!   headers, cheap); the pool parses several chunks at once, each with the very code
//!   `formats::pcap`'s sequential reader runs ([`formats::pcap::Chunk::run`]), and the
//!   producer hands their records over in chunk order while the next chunks are parsed;
//! - pcapng files: the sequential `formats::pcap` reader runs on the producer thread (a
//!   block's meaning depends on the interface descriptions before it).
//!
//! Meanwhile the caller's thread runs the engine.
//!
//! Batches travel through a bounded channel, so memory is bounded by the work in flight
//! (a few row groups or packet batches), never by the size of the input. Whatever the thread
//! count, the consumer sees the same records in the same order: output is identical for
//! `--threads 1` and `--threads N` by construction (and a CLI test checks it).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use formats::flows::FlowReader;
use formats::pcap::{
    CHUNK_SIZE, CaptureReader, Chunk, Format, IngestStats, LinkType, PacketSink, PcapError,
};
use formats::syn::SynReader;
use rayon::prelude::*;
use record::{FlowCounters, FlowKey, SynRecord};

use crate::inputs::{Input, InputKind, flows_path_for};
use crate::p0f::hasher::FastMap;
use crate::replay::ReplayError;

/// Chunks of a classic pcap being parsed (or parsed and waiting for their turn) per pool
/// thread: enough to keep every thread busy while the oldest chunk is handed over, few
/// enough to bound memory (a few [`CHUNK_SIZE`] buffers per thread).
const CHUNKS_PER_THREAD: usize = 3;

/// At most this many chunks in flight whatever the thread count, so memory stays bounded
/// (128 MiB of chunk buffers) on machines with many cores.
const MAX_CHUNKS_IN_FLIGHT: usize = 32;

/// Flow counters summed over a whole input, by flow.
///
/// Keyed with the engine's fast hasher ([`FastMap`]): the table is updated once per TCP
/// packet, and SipHash showed up at 5% of a profile of a 1 GiB capture. Keys come from the
/// capture being analysed, not from an adversary choosing them against a running service, so a
/// fast non-keyed hash is fine here.
pub type FlowTable = FastMap<FlowKey, FlowCounters>;

/// Settings of a replay.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    /// Decoding threads for recordings (at least 1).
    pub threads: usize,
    /// Records per batch handed from a pcapng's producer thread to the consumer.
    pub batch_records: usize,
    /// Bytes of a classic pcap parsed as one task ([`formats::pcap::CHUNK_SIZE`]; smaller
    /// in tests, to have many chunks from small files).
    pub chunk_bytes: usize,
    /// Also gather flow counters: counted from every TCP packet of a capture, or summed from a
    /// recording's `NAME.flows.parquet` sibling when it exists.
    pub flows: bool,
    /// On a bad input, report it and go on with the next one instead of stopping.
    pub keep_going: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            threads: 1,
            batch_records: 4096,
            chunk_bytes: CHUNK_SIZE,
            flows: false,
            keep_going: false,
        }
    }
}

/// How one input ended.
#[derive(Debug)]
pub struct InputDone {
    /// For captures: what ingestion saw. For recordings: `syn`/`syn_ack` only.
    pub stats: IngestStats,
    /// Flow counters, when [`ReplayOptions::flows`] was set and the input has them.
    pub flows: Option<FlowTable>,
}

/// What the replay hands to its consumer, always in input order.
pub trait Consumer {
    /// Records of input `index`, in file order (called many times per input).
    fn records(&mut self, index: usize, records: &[SynRecord]);
    /// Input `index` was read to its end.
    fn input_done(&mut self, index: usize, done: InputDone);
    /// Input `index` failed (only with [`ReplayOptions::keep_going`]; otherwise the error
    /// ends the replay). Records delivered before the failure stay delivered.
    fn input_failed(&mut self, index: usize, error: &ReplayError);
    /// Whether to stop early (an output error, say). Checked after every batch.
    fn stop(&self) -> bool {
        false
    }
}

/// Byte-level progress shared with whoever draws a progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of input consumed so far (for recordings, proportional to rows decoded).
    pub done: AtomicU64,
    /// Total bytes of all inputs.
    pub total: AtomicU64,
}

enum Msg {
    Batch(usize, Vec<SynRecord>),
    Done(usize, InputDone),
    Failed(usize, ReplayError),
}

/// Replays `inputs` in order into `consumer`. Returns the first error unless
/// [`ReplayOptions::keep_going`] is set, in which case bad inputs go to
/// [`Consumer::input_failed`] and the replay goes on.
pub fn replay(
    inputs: &[Input],
    opts: &ReplayOptions,
    progress: &Progress,
    consumer: &mut impl Consumer,
) -> Result<(), ReplayError> {
    let total: u64 = inputs
        .iter()
        .map(|i| std::fs::metadata(&i.path).map(|m| m.len()).unwrap_or(0))
        .sum();
    progress.total.store(total, Ordering::Relaxed);
    let threads = opts.threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("analyze-decode-{i}"))
        .build()
        .map_err(|e| ReplayError::Threads(e.to_string()))?;
    let cancel = AtomicBool::new(false);
    // Two windows of row groups (or a few dozen packet batches) in flight at most.
    let (tx, rx) = sync_channel::<Msg>(threads * 2 + 2);
    std::thread::scope(|s| {
        let producer = Producer {
            opts,
            pool: &pool,
            tx,
            cancel: &cancel,
            progress,
        };
        s.spawn(move || producer.run(inputs));
        let result = consume(rx, opts, consumer);
        // On an early return the producer must not wait on a full channel or read a large
        // file to its end: the receiver is dropped (sends fail) and reads are cancelled.
        cancel.store(true, Ordering::Relaxed);
        result
    })
}

fn consume(
    rx: Receiver<Msg>,
    opts: &ReplayOptions,
    consumer: &mut impl Consumer,
) -> Result<(), ReplayError> {
    for msg in rx.iter() {
        match msg {
            Msg::Batch(i, recs) => consumer.records(i, &recs),
            Msg::Done(i, done) => consumer.input_done(i, done),
            Msg::Failed(i, err) => {
                if !opts.keep_going {
                    return Err(err);
                }
                consumer.input_failed(i, &err);
            }
        }
        if consumer.stop() {
            return Ok(());
        }
    }
    Ok(())
}

struct Producer<'a> {
    opts: &'a ReplayOptions,
    pool: &'a rayon::ThreadPool,
    tx: SyncSender<Msg>,
    cancel: &'a AtomicBool,
    progress: &'a Progress,
}

/// The consumer went away: stop producing.
struct Gone;

impl Producer<'_> {
    fn run(self, inputs: &[Input]) {
        for (i, input) in inputs.iter().enumerate() {
            if self.cancel.load(Ordering::Relaxed) {
                return;
            }
            let size = std::fs::metadata(&input.path).map(|m| m.len()).unwrap_or(0);
            let before = self.progress.done.load(Ordering::Relaxed);
            let outcome = match input.kind {
                InputKind::Pcap | InputKind::PcapNg => self.capture(i, &input.path),
                InputKind::Parquet => self.recording(i, &input.path, size),
            };
            // Whatever was counted, the input is now fully behind us.
            self.progress
                .done
                .store(before.saturating_add(size), Ordering::Relaxed);
            let msg = match outcome {
                Ok(Ok(done)) => Msg::Done(i, done),
                Ok(Err(e)) => Msg::Failed(i, e),
                Err(Gone) => return,
            };
            let failed = matches!(msg, Msg::Failed(..));
            if self.tx.send(msg).is_err() || (failed && !self.opts.keep_going) {
                return;
            }
        }
    }

    fn send(&self, msg: Msg) -> Result<(), Gone> {
        self.tx.send(msg).map_err(|_| Gone)
    }

    fn capture(&self, index: usize, path: &Path) -> Result<Result<InputDone, ReplayError>, Gone> {
        let name = path.display().to_string();
        let file = match File::open(path) {
            Ok(f) => f,
            Err(source) => {
                return Ok(Err(ReplayError::from(PcapError::Io { path: name, source })));
            }
        };
        let src = Counting {
            inner: file,
            progress: &self.progress.done,
            cancel: self.cancel,
        };
        let mut reader = match CaptureReader::new(name, src) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.into())),
        };
        if reader.format() == Format::Pcap {
            let link = reader.link_type();
            return self.capture_chunks(index, link, |stats, buffer| {
                reader.next_chunk(self.opts.chunk_bytes, stats, buffer)
            });
        }
        // pcapng: blocks depend on the interfaces described before them; read in order here.
        let mut sink = BatchSink {
            index,
            batch: Vec::with_capacity(self.opts.batch_records),
            cap: self.opts.batch_records.max(1),
            tx: &self.tx,
            gone: false,
            flows: self.opts.flows.then(FlowTable::default),
        };
        let run = reader.run(&mut sink);
        if sink.gone || self.cancel.load(Ordering::Relaxed) {
            return Err(Gone);
        }
        let stats = match run {
            Ok(s) => s,
            Err(e) => return Ok(Err(e.into())),
        };
        if !sink.batch.is_empty() {
            let last = std::mem::take(&mut sink.batch);
            self.send(Msg::Batch(index, last))?;
        }
        Ok(Ok(InputDone {
            stats,
            flows: sink.flows,
        }))
    }

    /// A classic pcap: this thread reads the file and cuts it into chunks of whole packet
    /// records ([`CaptureReader::next_chunk`], a hop over 16-byte headers), the pool parses
    /// up to [`CHUNKS_PER_THREAD`] chunks per thread at once, and their records are handed to
    /// the consumer strictly in chunk order. Flow counters are summed by each pool thread
    /// into a table of its own (sums, minima and maxima do not depend on order) and the
    /// tables are merged when the file ends.
    ///
    /// `next_chunk` cuts the next chunk (read into the buffer it is given); `link` is the
    /// file's link type.
    fn capture_chunks(
        &self,
        index: usize,
        link: Option<LinkType>,
        mut next_chunk: impl FnMut(&mut IngestStats, Vec<u8>) -> Result<Option<Chunk>, PcapError>,
    ) -> Result<Result<InputDone, ReplayError>, Gone> {
        let workers = self.pool.current_num_threads().max(1);
        let tables: Arc<Vec<Mutex<FlowTable>>> = Arc::new(
            (0..if self.opts.flows { workers } else { 0 })
                .map(|_| Mutex::new(FlowTable::default()))
                .collect(),
        );
        let mut stats = IngestStats::default();
        let mut in_flight: VecDeque<Receiver<Parsed>> = VecDeque::new();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let mut eof = false;
        let window = (workers * CHUNKS_PER_THREAD).min(MAX_CHUNKS_IN_FLIGHT);
        loop {
            while !eof && in_flight.len() < window {
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(Gone);
                }
                let buffer = spare.pop().unwrap_or_default();
                let chunk = match next_chunk(&mut stats, buffer) {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        eof = true;
                        break;
                    }
                    Err(e) => {
                        if self.cancel.load(Ordering::Relaxed) {
                            return Err(Gone);
                        }
                        return Ok(Err(e.into()));
                    }
                };
                let (tx, rx) = sync_channel(1);
                let tables = Arc::clone(&tables);
                self.pool.spawn(move || {
                    let mut records = Vec::new();
                    let table = rayon::current_thread_index().and_then(|i| tables.get(i));
                    let stats = match table.map(Mutex::lock) {
                        Some(Ok(mut table)) => {
                            let mut sink = TableSink {
                                records: &mut records,
                                table: &mut table,
                                run: None,
                            };
                            let stats = chunk.run(&mut sink);
                            sink.flush();
                            stats
                        }
                        _ => chunk.run(&mut records),
                    };
                    // The receiver is gone only when the replay was abandoned.
                    let _ = tx.send(Parsed {
                        records,
                        stats,
                        buffer: chunk.into_buffer(),
                    });
                });
                in_flight.push_back(rx);
            }
            let Some(rx) = in_flight.pop_front() else {
                break;
            };
            let Ok(parsed) = rx.recv() else {
                return Err(Gone);
            };
            stats.merge(&parsed.stats);
            spare.push(parsed.buffer);
            if !parsed.records.is_empty() {
                self.send(Msg::Batch(index, parsed.records))?;
            }
        }
        if let Some(link) = link {
            stats.link_types.entry(link).or_default();
        }
        let flows = if self.opts.flows {
            // Every task has finished (all results were received), so no lock is held.
            let mut merged = FlowTable::default();
            for t in tables.iter() {
                let t = std::mem::take(&mut *t.lock().map_err(|_| Gone)?);
                if merged.is_empty() {
                    merged = t;
                    continue;
                }
                for (k, c) in t {
                    merged.entry(k).or_default().merge(&c);
                }
            }
            Some(merged)
        } else {
            None
        };
        Ok(Ok(InputDone { stats, flows }))
    }

    fn recording(
        &self,
        index: usize,
        path: &Path,
        size: u64,
    ) -> Result<Result<InputDone, ReplayError>, Gone> {
        let reader = match SynReader::open(path) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.into())),
        };
        let groups = reader.num_row_groups();
        let rows = reader.num_rows().max(1);
        let window = self.pool.current_num_threads().max(1);
        let mut stats = IngestStats::default();
        let mut start = 0;
        while start < groups {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Gone);
            }
            let end = (start + window).min(groups);
            let decoded: Vec<_> = self.pool.install(|| {
                (start..end)
                    .into_par_iter()
                    .map(|g| reader.read_row_group(g))
                    .collect()
            });
            for group in decoded {
                let recs = match group {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e.into())),
                };
                for r in &recs {
                    if r.is_syn_ack() {
                        stats.syn_ack += 1;
                    } else {
                        stats.syn += 1;
                    }
                }
                let share = (size as u128 * recs.len() as u128 / rows as u128) as u64;
                self.progress.done.fetch_add(share, Ordering::Relaxed);
                self.send(Msg::Batch(index, recs))?;
            }
            start = end;
        }
        let flows = if self.opts.flows {
            match sibling_flows(path) {
                Ok(f) => f,
                Err(e) => return Ok(Err(e)),
            }
        } else {
            None
        };
        Ok(Ok(InputDone { stats, flows }))
    }
}

/// The counters of a recording's `NAME.flows.parquet` sibling summed per flow over all
/// intervals, or `None` when there is no such file.
pub fn sibling_flows(recording: &Path) -> Result<Option<FlowTable>, ReplayError> {
    let path: PathBuf = flows_path_for(recording);
    if !path.is_file() {
        return Ok(None);
    }
    let reader = FlowReader::open(&path)?;
    let mut table = FlowTable::default();
    for g in 0..reader.num_row_groups() {
        for row in reader.read_row_group(g)? {
            table.entry(row.key).or_default().merge(&row.counters);
        }
    }
    Ok(Some(table))
}

/// What a pool thread made of one chunk.
struct Parsed {
    records: Vec<SynRecord>,
    stats: IngestStats,
    /// The chunk's buffer, reused for a later chunk.
    buffer: Vec<u8>,
}

/// Records into a vector and flow updates into a table.
///
/// Consecutive packets of one flow (a bulk transfer) are summed aside and put into the table
/// once, when another flow's packet comes or the chunk ends: the table lookup was the
/// largest single cost of parsing (profiled), and a run of one flow needs none.
struct TableSink<'a> {
    records: &'a mut Vec<SynRecord>,
    table: &'a mut FlowTable,
    /// The flow of the last packets and their counters, not yet in `table`.
    run: Option<(FlowKey, FlowCounters)>,
}

impl TableSink<'_> {
    /// Puts the pending run into the table.
    fn flush(&mut self) {
        if let Some((key, c)) = self.run.take() {
            self.table.entry(key).or_default().merge(&c);
        }
    }
}

impl PacketSink for TableSink<'_> {
    #[inline]
    fn syn(&mut self, rec: &SynRecord) {
        self.records.push(*rec);
    }

    #[inline]
    fn tcp(&mut self, key: &FlowKey, dir: u8, ts_ns: u64, l3_bytes: u64, tcp_flags: u16) {
        if !matches!(&self.run, Some((k, _)) if k == key) {
            self.flush();
            self.run = Some((*key, FlowCounters::default()));
        }
        if let Some((_, c)) = &mut self.run {
            c.dir_mut(dir).add(ts_ns, l3_bytes, tcp_flags);
        }
    }
}

/// A capture's records, batched for the channel, and optionally its flow table.
struct BatchSink<'a> {
    index: usize,
    batch: Vec<SynRecord>,
    cap: usize,
    tx: &'a SyncSender<Msg>,
    gone: bool,
    flows: Option<FlowTable>,
}

impl PacketSink for BatchSink<'_> {
    #[inline]
    fn syn(&mut self, rec: &SynRecord) {
        self.batch.push(*rec);
        if self.batch.len() >= self.cap && !self.gone {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(self.cap));
            if self.tx.send(Msg::Batch(self.index, full)).is_err() {
                self.gone = true;
            }
        } else if self.gone {
            self.batch.clear();
        }
    }

    #[inline]
    fn tcp(&mut self, key: &FlowKey, dir: u8, ts_ns: u64, l3_bytes: u64, tcp_flags: u16) {
        if let Some(f) = &mut self.flows {
            f.entry(*key)
                .or_default()
                .dir_mut(dir)
                .add(ts_ns, l3_bytes, tcp_flags);
        }
    }
}

/// A file reader that counts bytes for the progress bar and stops when the replay is
/// cancelled (so an abandoned replay does not read a large capture to its end).
struct Counting<'a> {
    inner: File,
    progress: &'a AtomicU64,
    cancel: &'a AtomicBool,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other("replay cancelled"));
        }
        let n = self.inner.read(buf)?;
        self.progress.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects everything a replay delivers, for comparing runs.
    #[derive(Default)]
    struct Log {
        records: Vec<(usize, SynRecord)>,
        done: Vec<(usize, u64)>,
        stats: Vec<IngestStats>,
        flows: Vec<Option<Vec<(FlowKey, FlowCounters)>>>,
        failed: Vec<(usize, String)>,
    }

    impl Consumer for Log {
        fn records(&mut self, index: usize, records: &[SynRecord]) {
            self.records.extend(records.iter().map(|r| (index, *r)));
        }
        fn input_done(&mut self, index: usize, done: InputDone) {
            self.done.push((index, done.stats.records()));
            self.stats.push(done.stats);
            self.flows.push(done.flows.map(|f| {
                let mut v: Vec<_> = f.into_iter().collect();
                v.sort_by_key(|(k, _)| *k);
                v
            }));
        }
        fn input_failed(&mut self, index: usize, error: &ReplayError) {
            self.failed.push((index, error.to_string()));
        }
    }

    fn fixtures() -> Vec<Input> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/pcap");
        crate::inputs::expand(&[root]).unwrap()
    }

    fn records(path: &Path) -> Vec<SynRecord> {
        let mut v = Vec::new();
        formats::pcap::open(path).unwrap().run(&mut v).unwrap();
        v
    }

    #[test]
    fn captures_arrive_whole_and_in_order_with_small_batches() {
        let inputs = fixtures();
        let want: Vec<(usize, SynRecord)> = inputs
            .iter()
            .enumerate()
            .flat_map(|(i, inp)| records(&inp.path).into_iter().map(move |r| (i, r)))
            .collect();
        assert!(want.len() > 20, "fixtures hold SYNs");
        for batch in [1, 3, 4096] {
            let mut log = Log::default();
            let opts = ReplayOptions {
                batch_records: batch,
                ..ReplayOptions::default()
            };
            replay(&inputs, &opts, &Progress::default(), &mut log).unwrap();
            assert_eq!(log.records, want, "batch {batch}");
            assert_eq!(log.done.len(), inputs.len());
        }
    }

    /// The chunked pcap path gives exactly what the sequential `formats::pcap` reader gives,
    /// whatever the number of threads: records, statistics (truncation included) and flow
    /// counters (summed per thread, then merged).
    #[test]
    fn parallel_pcap_parsing_equals_the_sequential_reader() {
        let d = tempfile::tempdir().unwrap();
        let mut inputs = fixtures();
        // A damaged copy of the largest classic pcap: cut inside a record.
        let big = inputs
            .iter()
            .filter(|i| i.kind == InputKind::Pcap)
            .max_by_key(|i| std::fs::metadata(&i.path).unwrap().len())
            .unwrap()
            .clone();
        let bytes = std::fs::read(&big.path).unwrap();
        let cut = d.path().join("cut.pcap");
        std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
        inputs.extend(crate::inputs::expand(&[cut]).unwrap());
        let run = |threads, chunk_bytes| {
            let mut log = Log::default();
            let opts = ReplayOptions {
                threads,
                flows: true,
                batch_records: 5,
                chunk_bytes,
                ..ReplayOptions::default()
            };
            let progress = Progress::default();
            replay(&inputs, &opts, &progress, &mut log).unwrap();
            assert_eq!(
                progress.done.load(Ordering::Relaxed),
                progress.total.load(Ordering::Relaxed)
            );
            log
        };
        // What `formats::pcap`'s own reader gives, file by file.
        let mut seq = Log::default();
        for (i, inp) in inputs.iter().enumerate() {
            let mut c = formats::pcap::Collect::default();
            let stats = formats::pcap::open(&inp.path).unwrap().run(&mut c).unwrap();
            seq.records.extend(c.records.iter().map(|r| (i, *r)));
            seq.stats.push(stats);
            let mut v: Vec<_> = c.flows.into_iter().collect();
            v.sort_by_key(|(k, _)| *k);
            seq.flows.push(Some(v));
        }
        for (threads, chunk_bytes) in [(1, CHUNK_SIZE), (2, 1500), (3, 64 << 10), (3, 1)] {
            let par = run(threads, chunk_bytes);
            let what = format!("threads {threads}, chunks of {chunk_bytes} bytes");
            assert_eq!(par.records, seq.records, "{what}");
            assert_eq!(par.stats, seq.stats, "{what}");
            assert_eq!(par.flows, seq.flows, "{what}");
        }
        let last = seq.stats.last().unwrap();
        assert!(
            last.truncated_at.is_some(),
            "the cut file is reported as damaged"
        );
    }

    #[test]
    fn recordings_decode_in_parallel_in_order() {
        use formats::meta::{RecordType, RecordingMeta};
        use formats::recording::WriterOptions;
        let d = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        for inp in fixtures() {
            all.extend(records(&inp.path));
        }
        // Small row groups so several threads have work and order could go wrong.
        let path = d.path().join("r.parquet");
        let meta = RecordingMeta::new(RecordType::Syn);
        let mut w = formats::syn::SynWriter::create(
            &path,
            &meta,
            WriterOptions {
                row_group_rows: 7,
                ..WriterOptions::default()
            },
        )
        .unwrap();
        w.write_all(&all).unwrap();
        w.close().unwrap();
        let inputs = crate::inputs::expand(&[path]).unwrap();
        for threads in [1, 2, 5] {
            let mut log = Log::default();
            let opts = ReplayOptions {
                threads,
                ..ReplayOptions::default()
            };
            let progress = Progress::default();
            replay(&inputs, &opts, &progress, &mut log).unwrap();
            let got: Vec<SynRecord> = log.records.iter().map(|(_, r)| *r).collect();
            assert_eq!(got, all, "threads {threads}");
            assert_eq!(
                progress.done.load(Ordering::Relaxed),
                progress.total.load(Ordering::Relaxed)
            );
        }
    }

    #[test]
    fn bad_input_stops_or_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let bad = d.path().join("bad.parquet");
        std::fs::write(&bad, b"PAR1 but not really a parquet file").unwrap();
        let mut inputs = crate::inputs::expand(&[bad]).unwrap();
        inputs.extend(fixtures().into_iter().take(2));
        let mut log = Log::default();
        let err = replay(
            &inputs,
            &ReplayOptions::default(),
            &Progress::default(),
            &mut log,
        )
        .unwrap_err();
        assert!(err.to_string().contains("bad.parquet"), "{err}");
        assert!(log.records.is_empty());

        let mut log = Log::default();
        let opts = ReplayOptions {
            keep_going: true,
            ..ReplayOptions::default()
        };
        replay(&inputs, &opts, &Progress::default(), &mut log).unwrap();
        assert_eq!(log.failed.len(), 1);
        assert_eq!(log.failed[0].0, 0);
        assert_eq!(log.done.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 2]);
    }
}
