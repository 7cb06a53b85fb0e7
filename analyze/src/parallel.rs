//! Parallel and deterministic replay of inputs.
//!
//! The p0f features that keep state (SYN/SYN+ACK pairing, uptime, host change, IP sharing)
//! need every record in capture order, so there is exactly one [`crate::p0f::Engine`] and it
//! runs on the caller's thread. What can run elsewhere is the decoding in front of it:
//!
//! - recordings: Parquet row groups are decompressed and decoded on a rayon pool of
//!   [`ReplayOptions::threads`] threads, a window of row groups at a time, and handed over in
//!   row-group order;
//! - classic pcap files: one producer thread reads 4 MiB blocks and frames the packet
//!   records (a 16-byte header each, cheap), the pool parses the block's packets
//!   ([`formats::pcap::parse_packet`], the per-packet step of `formats::pcap`), and the
//!   producer folds the results back in file order; with one thread, or for pcapng, the
//!   sequential `formats::pcap` reader runs on the producer thread instead. Either way the
//!   caller's thread runs the engine at the same time.
//!
//! Batches travel through a bounded channel, so memory is bounded by the work in flight
//! (a few row groups or packet batches), never by the size of the input. Whatever the thread
//! count, the consumer sees the same records in the same order: output is identical for
//! `--threads 1` and `--threads N` by construction (and a CLI test checks it).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use formats::flows::FlowReader;
use formats::pcap::{
    CaptureReader, Format, IngestStats, LinkType, MAX_RECORD, PacketSink, PcapError,
};
use formats::syn::SynReader;
use rayon::prelude::*;
use record::{FlowCounters, FlowKey, SynRecord};

use crate::inputs::{Input, InputKind, flows_path_for};
use crate::p0f::hasher::FastMap;
use crate::replay::ReplayError;

/// Size of a classic pcap file header.
const PCAP_HEADER: usize = 24;

/// Bytes read and framed at a time from a classic pcap (parsed in parallel).
const BLOCK: usize = 4 << 20;

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
    /// Records per batch handed from a capture's producer thread to the consumer.
    pub batch_records: usize,
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
        let open = |name: &str| match File::open(path) {
            Ok(f) => Ok(f),
            Err(source) => Err(ReplayError::from(PcapError::Io {
                path: name.to_string(),
                source,
            })),
        };
        let before = self.progress.done.load(Ordering::Relaxed);
        let file = match open(&name) {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        let src = Counting {
            inner: file,
            progress: &self.progress.done,
            cancel: self.cancel,
        };
        // The reader validates the file header (and names the file in errors) either way.
        let mut reader = match CaptureReader::new(name.clone(), src) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.into())),
        };
        if let (Format::Pcap, Some(link), true) = (
            reader.format(),
            reader.link_type(),
            self.pool.current_num_threads() > 1,
        ) {
            let file = match open(&name) {
                Ok(f) => f,
                Err(e) => return Ok(Err(e)),
            };
            let src = Counting {
                inner: file,
                progress: &self.progress.done,
                cancel: self.cancel,
            };
            // What the reader above read is read again.
            self.progress.done.store(before, Ordering::Relaxed);
            return self.capture_parallel(index, &name, src, link);
        }
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

    /// A classic pcap with packets parsed on the pool: this thread reads blocks and frames
    /// the packet records (cheap: a 16-byte header each), the pool runs
    /// [`formats::pcap::parse_packet`] over a block's frames, and this thread folds the
    /// results in file order into the statistics, the flow table and record batches exactly
    /// as `formats::pcap`'s sequential reader does (a test compares the two).
    fn capture_parallel(
        &self,
        index: usize,
        name: &str,
        mut src: Counting<'_>,
        link: LinkType,
    ) -> Result<Result<InputDone, ReplayError>, Gone> {
        let io_err = |source| -> Result<Result<InputDone, ReplayError>, Gone> {
            Ok(Err(PcapError::Io {
                path: name.to_string(),
                source,
            }
            .into()))
        };
        let mut header = [0u8; PCAP_HEADER];
        if let Err(e) = src.read_exact(&mut header) {
            return io_err(e);
        }
        let (little, nanos) = match header[..4] {
            [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
            [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
            _ => (false, true),
        };
        let word = |b: &[u8]| -> u32 {
            let w = [b[0], b[1], b[2], b[3]];
            if little {
                u32::from_le_bytes(w)
            } else {
                u32::from_be_bytes(w)
            }
        };
        let frac_ns: u64 = if nanos { 1 } else { 1000 };
        let mut stats = IngestStats::default();
        let mut flows = self.opts.flows.then(FlowTable::default);
        let mut batch: Vec<SynRecord> = Vec::with_capacity(self.opts.batch_records);
        let cap = self.opts.batch_records.max(1);
        let mut buf: Vec<u8> = Vec::with_capacity(BLOCK);
        // Bytes the next unframed record needs in `buf` (more than a block for a huge one).
        let mut need = 16usize;
        let mut pos: u64 = PCAP_HEADER as u64; // file offset of buf[0]
        let mut eof = false;
        let mut frames: Vec<(u64, usize, usize)> = Vec::new();
        let mut parsed = Vec::new();
        loop {
            // Top the buffer up to one block (more when a record is larger than that).
            let want = BLOCK.max(need);
            let mut filled = buf.len();
            buf.resize(want, 0);
            while filled < want && !eof {
                match src.read(&mut buf[filled..]) {
                    Ok(0) => eof = true,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        if self.cancel.load(Ordering::Relaxed) {
                            return Err(Gone);
                        }
                        return io_err(e);
                    }
                }
            }
            buf.truncate(filled);
            // Frame every complete record.
            frames.clear();
            let mut at = 0usize;
            let mut damage = None;
            need = 16;
            while buf.len() - at >= 16 {
                let h = &buf[at..at + 16];
                let incl = word(&h[8..12]) as usize;
                if 16 + incl > MAX_RECORD {
                    damage = Some(format!("packet record larger than {MAX_RECORD} bytes"));
                    break;
                }
                if buf.len() - at < 16 + incl {
                    need = 16 + incl;
                    break;
                }
                let ts =
                    u64::from(word(&h[0..4])) * 1_000_000_000 + u64::from(word(&h[4..8])) * frac_ns;
                frames.push((ts, at + 16, at + 16 + incl));
                at += 16 + incl;
            }
            // Into a reused buffer: a fresh one per block costs page faults (profiled).
            self.pool.install(|| {
                frames
                    .par_iter()
                    .map(|&(ts, a, b)| formats::pcap::parse_packet(link, ts, 0, &buf[a..b]))
                    .collect_into_vec(&mut parsed)
            });
            for (&(ts, a, b), p) in frames.iter().zip(parsed.drain(..)) {
                stats.packets += 1;
                stats.bytes += (b - a) as u64;
                match p {
                    Ok(p) => {
                        stats.tcp += 1;
                        if let Some(f) = &mut flows {
                            f.entry(p.key).or_default().dir_mut(p.dir).add(
                                ts,
                                p.l3_bytes,
                                p.tcp_flags,
                            );
                        }
                        match p.syn {
                            None => {}
                            Some(Ok(rec)) => {
                                if rec.is_syn_ack() {
                                    stats.syn_ack += 1;
                                } else {
                                    stats.syn += 1;
                                }
                                batch.push(rec);
                                if batch.len() >= cap {
                                    let full =
                                        std::mem::replace(&mut batch, Vec::with_capacity(cap));
                                    self.send(Msg::Batch(index, full))?;
                                }
                            }
                            Some(Err(reason)) => *stats.syn_skipped.entry(reason).or_default() += 1,
                        }
                    }
                    Err(reason) => *stats.skipped.entry(reason).or_default() += 1,
                }
            }
            buf.drain(..at);
            pos += at as u64;
            if let Some(d) = damage {
                stats.truncated_at = Some(pos);
                stats.truncation = Some(d);
                break;
            }
            if eof {
                if !buf.is_empty() {
                    stats.truncated_at = Some(pos);
                    stats.truncation = Some(format!(
                        "file ends inside a packet record ({} of its bytes present)",
                        buf.len()
                    ));
                }
                break;
            }
        }
        *stats.link_types.entry(link).or_default() += stats.packets;
        if !batch.is_empty() {
            self.send(Msg::Batch(index, batch))?;
        }
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
            let e = table.entry(row.key).or_default();
            e.a_to_b.merge(&row.counters.a_to_b);
            e.b_to_a.merge(&row.counters.b_to_a);
        }
    }
    Ok(Some(table))
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

    /// The parallel pcap path gives exactly what the sequential `formats::pcap` reader gives:
    /// records, statistics (truncation included) and flow counters.
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
        let run = |threads| {
            let mut log = Log::default();
            let opts = ReplayOptions {
                threads,
                flows: true,
                batch_records: 5,
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
        let seq = run(1);
        let par = run(3);
        assert_eq!(par.records, seq.records);
        assert_eq!(par.stats, seq.stats);
        assert_eq!(par.flows, seq.flows);
        let last = seq.stats.last().unwrap();
        assert!(
            last.truncated_at.is_some(),
            "the cut file is reported as damaged"
        );
        assert!(seq.flows.iter().all(|f| f.is_some()));
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
