//! Parallel and deterministic replay of inputs.
//!
//! The p0f features that keep state (SYN/SYN+ACK pairing, uptime, host change, IP sharing)
//! need every record in capture order, so there is exactly one [`p0f::Engine`] and it
//! runs on the caller's thread. What can run elsewhere is the decoding in front of it:
//!
//! - recordings: Parquet row groups are decompressed and decoded on a rayon pool of
//!   [`ReplayOptions::threads`] threads, a window of row groups at a time, and handed over in
//!   row-group order; the rows of the recording's payload file, when it has one and
//!   [`ReplayOptions::http`] is set, are read in order beside them and put at their place
//!   among the SYN records ([`PayloadMerge`]);
//! - pcap and pcapng files: [`ReplayOptions::threads`] reader threads each read, frame and
//!   parse the next 1 MiB window of the file whenever they are free for one ([`Turns`];
//!   [`formats::pcap::Windows`]: positioned reads, so the bytes are parsed in the cache of
//!   the core that read them; a window is framed once the one before it is, which for
//!   pcapng also hands on the interfaces described so far), with the very code
//!   `formats::pcap`'s sequential reader runs ([`formats::pcap::Chunk::run`]); the producer
//!   thread hands their records over in window order;
//! - captures that cannot be read by position (standard input, pipes): the sequential
//!   `formats::pcap` reader runs on the producer thread.
//!
//! Meanwhile the caller's thread runs the engine.
//!
//! Batches travel through bounded channels, so memory is bounded by the work in flight
//! (a few row groups, windows or packet batches), never by the size of the input. Whatever the thread
//! count, the consumer sees the same records in the same order: output is identical for
//! `--threads 1` and `--threads N` by construction (and a CLI test checks it).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Condvar, Mutex};

use formats::flows::FlowReader;
use formats::payload::{PayloadReader, PayloadRow};
use formats::pcap::{
    CaptureReader, Endpoints, HttpFilter, IngestStats, PacketSink, PcapError, Segment, SkipReason,
    WINDOW_SIZE, Windows,
};
use formats::syn::SynReader;
use rayon::prelude::*;
use record::{FlowKey, PayloadRecord, SynRecord};
use rustc_hash::FxHashMap;

use crate::inputs::{Input, InputKind, flows_path_for, payload_path_for};
use crate::replay::ReplayError;
use crate::stoppable::Stoppable;

/// What the traffic-by-OS table needs of a flow: its TCP packets and layer-3 bytes, both
/// directions together.
///
/// Not the full [`record::FlowCounters`] (per direction, with first and last times and
/// flags, 80 bytes): that is what recordings keep, but here the table is updated for every
/// TCP packet of a capture, so its entries are kept small (56 bytes instead of 120): half
/// the memory, page faults and cache misses (BENCHMARKS.md, "Why the replay's code looks the
/// way it does").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

impl Traffic {
    /// One packet of `l3_bytes`.
    #[inline(always)]
    fn add_packet(&mut self, l3_bytes: u64) {
        self.packets += 1;
        self.bytes += l3_bytes;
    }

    /// Another share of the same flow.
    #[inline(always)]
    pub fn merge(&mut self, other: &Traffic) {
        self.packets += other.packets;
        self.bytes += other.bytes;
    }

    /// Both directions of a recording's counters.
    pub fn of(c: &record::FlowCounters) -> Traffic {
        Traffic {
            packets: c.a_to_b.packets + c.b_to_a.packets,
            bytes: c.a_to_b.bytes + c.b_to_a.bytes,
        }
    }
}

/// Traffic of a whole input, by flow.
///
/// An [`FxHashMap`]: the table is updated once per TCP packet, so the hash is on the hot
/// path. Keys come from the capture being analysed, not from an adversary choosing them
/// against a running service, so a fast unkeyed hash is fine here.
pub type FlowTable = FxHashMap<FlowKey, Traffic>;

/// An input's flows' traffic, as one table per thread that counted it.
///
/// A flow whose packets were parsed by several reader threads has an entry in each of their
/// tables, with that thread's share of its packets; its counters are the sum over the tables.
/// The tables are not merged into one when the input ends: that merge (a fresh table as large
/// as all of them, then an insert per flow) would run after the last window, alone on the
/// wall-clock path. Whoever needs each flow once sums as it goes
/// ([`FlowShards::for_each_flow`]).
#[derive(Debug, Default)]
pub struct FlowShards {
    tables: Vec<FlowTable>,
}

impl FlowShards {
    /// The shards of one table.
    pub fn single(table: FlowTable) -> FlowShards {
        let mut s = FlowShards::default();
        s.push(table);
        s
    }

    /// Adds a table of the same flows' counters (or of others).
    pub fn push(&mut self, table: FlowTable) {
        if !table.is_empty() {
            self.tables.push(table);
        }
    }

    /// An upper bound of the number of flows (exact for a single table).
    pub fn len_bound(&self) -> usize {
        self.tables.iter().map(FlowTable::len).sum()
    }

    /// Adds `other`'s counters. Its tables are summed into this one's largest table, so
    /// the number of tables stays that of the first input however many inputs follow
    /// (and [`FlowShards::for_each_flow`] stays a few lookups per flow).
    pub fn absorb(&mut self, other: FlowShards) {
        let Some(largest) = self.tables.iter_mut().max_by_key(|t| t.len()) else {
            *self = other;
            return;
        };
        for table in other.tables {
            for (k, c) in table {
                largest.entry(k).or_default().merge(&c);
            }
        }
    }

    /// Calls `f` once per flow with its counters summed over the tables.
    pub fn for_each_flow(&self, mut f: impl FnMut(&FlowKey, &Traffic)) {
        for (i, table) in self.tables.iter().enumerate() {
            let (before, rest) = self.tables.split_at(i);
            let after = &rest[1..];
            for (k, c) in table {
                // Seen (and summed) with an earlier table.
                if before.iter().any(|t| t.contains_key(k)) {
                    continue;
                }
                let mut sum = *c;
                for t in after {
                    if let Some(more) = t.get(k) {
                        sum.merge(more);
                    }
                }
                f(k, &sum);
            }
        }
    }
}

/// Settings of a replay.
#[derive(Clone, Copy, Debug)]
pub struct ReplayOptions {
    /// Decoding threads for recordings (at least 1).
    pub threads: usize,
    /// Records per batch handed from the producer thread to the consumer when a capture is
    /// read in order (from a pipe).
    pub batch_records: usize,
    /// Bytes of a capture file read and parsed as one piece ([`formats::pcap::WINDOW_SIZE`];
    /// smaller in tests, to have many pieces from small files).
    pub chunk_bytes: usize,
    /// Also gather flow counters: counted from every TCP packet of a capture, or summed from a
    /// recording's `NAME.flows.parquet` sibling when it exists.
    pub flows: bool,
    /// On a bad input, report it and go on with the next one instead of stopping.
    pub keep_going: bool,
    /// Also hand over payload records for p0f's HTTP module: from captures, the segments
    /// [`HttpFilter`] picks, with a filter per window of a capture file (so the records do
    /// not depend on the number of threads), one for a whole stream read in order; from a
    /// recording, the rows of its payload file (`NAME.payload.parquet`, which `--records`
    /// fills with those very segments), when it has one.
    pub http: bool,
    /// When set (by a signal handler: [`signals::STOP`]), the replay stops within
    /// [`IDLE_FLUSH`] and returns [`ReplayError::Interrupted`].
    pub stop: Option<&'static AtomicBool>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            threads: 1,
            batch_records: 4096,
            chunk_bytes: WINDOW_SIZE,
            flows: false,
            keep_going: false,
            http: false,
            stop: None,
        }
    }
}

/// How one input ended.
#[derive(Debug)]
pub struct InputDone {
    /// For captures: what ingestion saw. For recordings: `syn`/`syn_ack` only.
    pub stats: IngestStats,
    /// Flow counters, when [`ReplayOptions::flows`] was set and the input has them.
    pub flows: Option<FlowShards>,
}

/// Room a batch reserves for payload prefixes at its first: a window of a capture with HTTP
/// in it holds tens of KiB of them, and growing from nothing reallocated and copied them
/// eight times over.
const PAYLOAD_BYTES_START: usize = 64 * 1024;

/// Records of one input in file order: SYN records, and payload records
/// ([`ReplayOptions::http`]) each with its place among them.
#[derive(Debug, Default)]
pub struct Batch {
    /// SYN and SYN+ACK records, in file order.
    pub syns: Vec<SynRecord>,
    /// Payload records in file order: the number of `syns` that came before each, and where
    /// its prefix ([`PayloadRecord::prefix`]) is in `payload_bytes`. Few (only HTTP flows'
    /// first segments), so they travel beside the SYN records rather than making every
    /// record as large as a payload record; and as prefixes, because an 8 KiB record copied
    /// from the filter into the batch, the batch into the channel and batches into each other
    /// made a replay of the 64 MiB bench slice spend 60% of its instructions in memcpy and
    /// memset (BENCHMARKS.md).
    payloads: Vec<(usize, Range<usize>)>,
    payload_bytes: Vec<u8>,
}

impl Batch {
    /// An empty batch with room for `n` SYN records.
    pub fn with_capacity(n: usize) -> Batch {
        Batch {
            syns: Vec::with_capacity(n),
            payloads: Vec::new(),
            payload_bytes: Vec::new(),
        }
    }

    /// Records of both kinds.
    pub fn len(&self) -> usize {
        self.syns.len() + self.payloads.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.syns.is_empty() && self.payloads.is_empty()
    }

    /// How much this batch holds, for [`Batch::reserve`].
    fn size(&self) -> Room {
        Room {
            syns: self.syns.len(),
            payloads: self.payloads.len(),
            payload_bytes: self.payload_bytes.len(),
        }
    }

    /// Makes room for `more` after what the batch holds.
    fn reserve(&mut self, more: Room) {
        /// An empty vector too small is allocated afresh: reallocating it would copy all of
        /// its old capacity's bytes.
        fn room<T>(v: &mut Vec<T>, more: usize) {
            if v.is_empty() && v.capacity() < more {
                *v = Vec::with_capacity(more);
            } else {
                v.reserve(more);
            }
        }
        room(&mut self.syns, more.syns);
        room(&mut self.payloads, more.payloads);
        room(&mut self.payload_bytes, more.payload_bytes);
    }

    /// Drops every record.
    pub fn clear(&mut self) {
        self.syns.clear();
        self.payloads.clear();
        self.payload_bytes.clear();
    }

    /// Appends (a copy of) a payload record after the SYN records so far.
    pub fn push_payload(&mut self, r: &PayloadRecord) {
        if self.payload_bytes.capacity() == 0 {
            self.payload_bytes.reserve(PAYLOAD_BYTES_START);
        }
        let start = self.payload_bytes.len();
        self.payload_bytes.extend_from_slice(r.prefix());
        self.payloads
            .push((self.syns.len(), start..self.payload_bytes.len()));
    }

    /// Every record in file order.
    pub fn in_order(&self) -> impl Iterator<Item = Rec<'_>> {
        let mut payloads = self.payloads.iter().peekable();
        let mut syns = self.syns.iter().enumerate();
        std::iter::from_fn(move || {
            if let Some((_, range)) = payloads.next_if(|(at, _)| {
                // A payload's place is the number of SYN records before it.
                syns.clone().next().is_none_or(|(i, _)| *at <= i)
            }) {
                let prefix = self.payload_bytes.get(range.clone()).unwrap_or_default();
                return Some(Rec::Payload(PayloadRef(prefix)));
            }
            syns.next().map(|(_, r)| Rec::Syn(r))
        })
    }
}

/// Records and payload bytes of a [`Batch`] ([`Batch::size`], [`Batch::reserve`]).
#[derive(Clone, Copy, Debug, Default)]
struct Room {
    syns: usize,
    payloads: usize,
    payload_bytes: usize,
}

impl Room {
    /// A quarter more of each, and payload bytes at least [`PAYLOAD_BYTES_START`] when there
    /// are any: room for a batch like this one whose neighbour holds a little more.
    fn with_headroom(self) -> Room {
        let more = |n: usize| n + n / 4;
        let bytes = more(self.payload_bytes);
        Room {
            syns: more(self.syns),
            payloads: more(self.payloads),
            payload_bytes: if bytes > 0 {
                bytes.max(PAYLOAD_BYTES_START)
            } else {
                0
            },
        }
    }
}

/// One record of a [`Batch`].
#[derive(Clone, Copy, Debug)]
pub enum Rec<'a> {
    Syn(&'a SynRecord),
    Payload(PayloadRef<'a>),
}

/// A payload record of a [`Batch`], as its prefix ([`PayloadRecord::prefix`]).
#[derive(Clone, Copy, Debug)]
pub struct PayloadRef<'a>(&'a [u8]);

impl<'a> PayloadRef<'a> {
    /// Makes `r` this record (see [`PayloadRecord::load_prefix`]: `r` must be canonical,
    /// as [`PayloadRecord::ZERO`] or a record only ever loaded this way). Costs a copy of the
    /// record's payload, not of 8 KiB. Tests compare whole records with it; the replay hands
    /// the engine fields and head apart ([`PayloadRef::fields_into`]).
    #[cfg(test)]
    pub fn load_into(&self, r: &mut PayloadRecord) {
        // Every prefix in a batch was made by `push_payload` from a record: always one.
        let loaded = r.load_prefix(self.0);
        debug_assert!(loaded.is_ok(), "{loaded:?}");
    }

    /// Copies this record's fields into `r` and returns its head where it lies in the batch
    /// ([`PayloadRecord::load_fields`]; `r.head` is left as it was): for
    /// `p0f::Engine::payload_parts`, without a copy of the payload.
    pub fn fields_into(&self, r: &mut PayloadRecord) -> &'a [u8] {
        // Every prefix in a batch was made by `push_payload` from a record: always one.
        r.load_fields(self.0).unwrap_or_default()
    }
}

impl From<Vec<SynRecord>> for Batch {
    fn from(syns: Vec<SynRecord>) -> Batch {
        Batch {
            syns,
            ..Batch::default()
        }
    }
}

/// What the replay hands to its consumer, always in input order.
pub trait Consumer {
    /// Records of input `index`, in file order (called many times per input).
    fn records(&mut self, index: usize, records: &Batch);
    /// Input `index` was read to its end.
    fn input_done(&mut self, index: usize, done: InputDone);
    /// Input `index` failed (only with [`ReplayOptions::keep_going`]; otherwise the error
    /// ends the replay). Records delivered before the failure stay delivered.
    fn input_failed(&mut self, index: usize, error: &ReplayError);
    /// Whether to stop early (an output error, say). Checked after every batch.
    fn stop(&self) -> bool {
        false
    }
    /// Nothing new has come for [`IDLE_FLUSH`]: a live stream is waiting for packets. What
    /// the consumer holds back for efficiency (batches, buffered output) should go out now.
    fn idle(&mut self) {}
}

/// How long the replay waits for the next batch before telling its consumer it is idle
/// ([`Consumer::idle`]). Readers of files keep it busy; a quiet live pipe does not, and its
/// observations should then show up at once, as p0f prints them, not when a batch fills.
pub const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(50);

/// Byte-level progress shared with whoever draws a progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of input consumed so far (for recordings, proportional to rows decoded).
    pub done: AtomicU64,
    /// Total bytes of all inputs; 0 when unknown (an input is a stream: standard input or a
    /// pipe, whose size nobody knows before its end).
    pub total: AtomicU64,
}

enum Msg {
    Batch(usize, Batch),
    /// Consecutive windows' batches of a capture file, in order ([`Producer::capture_windows`]),
    /// each handed to the consumer as it is and then to [`Spares`].
    Windows(usize, Vec<Batch>),
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
    let total: u64 = if inputs.iter().any(|i| i.kind == InputKind::Stream) {
        0
    } else {
        inputs
            .iter()
            .map(|i| std::fs::metadata(&i.path).map(|m| m.len()).unwrap_or(0))
            .sum()
    };
    progress.total.store(total, Ordering::Relaxed);
    let threads = opts.threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("analyze-decode-{i}"))
        .build()
        .map_err(|e| ReplayError::Threads(e.to_string()))?;
    let cancel = AtomicBool::new(false);
    let spares = Spares::default();
    // Two windows of row groups (or a few dozen packet batches) in flight at most.
    let (tx, rx) = sync_channel::<Msg>(threads * 2 + 2);
    std::thread::scope(|s| {
        let producer = Producer {
            opts,
            pool: &pool,
            tx,
            cancel: &cancel,
            progress,
            spares: &spares,
        };
        s.spawn(move || producer.run(inputs));
        let result = consume(rx, opts, &spares, consumer);
        // On an early return the producer must not wait on a full channel or read a large
        // file to its end: the receiver is dropped (sends fail) and reads are cancelled.
        cancel.store(true, Ordering::Relaxed);
        result
    })
}

fn consume(
    rx: Receiver<Msg>,
    opts: &ReplayOptions,
    spares: &Spares,
    consumer: &mut impl Consumer,
) -> Result<(), ReplayError> {
    let stopped = || opts.stop.is_some_and(|s| s.load(Ordering::Relaxed));
    // Told already that nothing is happening: then wait without a deadline (unless a stop
    // flag is to be watched).
    let mut idle = true;
    loop {
        if stopped() {
            return Err(ReplayError::Interrupted);
        }
        let msg = if idle && opts.stop.is_none() {
            match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        } else {
            match rx.recv_timeout(IDLE_FLUSH) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    if !idle {
                        consumer.idle();
                    }
                    idle = true;
                    if consumer.stop() {
                        return Ok(());
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        idle = false;
        match msg {
            Msg::Batch(i, recs) => consumer.records(i, &recs),
            Msg::Windows(i, batches) => {
                for recs in batches {
                    consumer.records(i, &recs);
                    spares.give(recs);
                    if consumer.stop() {
                        return Ok(());
                    }
                }
            }
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
    spares: &'a Spares,
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
                InputKind::Pcap | InputKind::PcapNg | InputKind::Stream => {
                    self.capture(i, &input.path)
                }
                InputKind::Parquet => self.recording(i, &input.path, size),
            };
            // Whatever was counted, the input is now fully behind us. A stream has no size:
            // what was counted is all of it.
            if input.kind != InputKind::Stream {
                self.progress
                    .done
                    .store(before.saturating_add(size), Ordering::Relaxed);
            }
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
        let file = match crate::inputs::open(path) {
            Ok(f) => f,
            Err(cause) => {
                return Ok(Err(ReplayError::from(PcapError::Io { path: name, cause })));
            }
        };
        // A second handle for positioned reads ([`Windows`]).
        let positioned = file.try_clone();
        let src = Stoppable::new(file, Some(self.cancel)).counting(&self.progress.done);
        let mut reader = match CaptureReader::new(name, src) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.into())),
        };
        if let Ok(positioned) = positioned {
            match Windows::new(&reader, positioned, self.opts.chunk_bytes) {
                Ok(Some(windows)) => return self.capture_windows(index, &windows),
                Ok(None) => {}
                Err(e) => return Ok(Err(e.into())),
            }
        }
        // A capture that cannot be read by position (a pipe): in order, here.
        let mut sink = BatchSink {
            index,
            batch: Batch::with_capacity(self.opts.batch_records),
            http: self.opts.http.then(HttpFilter::default),
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
            flows: sink.flows.map(FlowShards::single),
        }))
    }

    /// A capture in a regular file: [`ReplayOptions::threads`] reader threads each read,
    /// frame and parse the next window of it ([`Windows`], [`Turns`]) into a flow table of
    /// their own, and this thread hands the windows' records over strictly in window order.
    /// The input's flows are those tables together ([`FlowShards`]).
    ///
    /// Plain threads rather than pool tasks: a reader waits for the previous window's
    /// framing, which is only safe when every reader surely runs at once.
    fn capture_windows(
        &self,
        index: usize,
        windows: &Windows,
    ) -> Result<Result<InputDone, ReplayError>, Gone> {
        let count = windows.len();
        let readers = self.opts.threads.clamp(1, count.max(1));
        let flows = self.opts.flows;
        let mut stats = IngestStats::default();
        let turns = Turns::new(count, readers);
        let outcome = std::thread::scope(|s| {
            // Whatever ends the hand-over, readers waiting for a turn go on (and stop).
            let _close = CloseOnDrop(&turns);
            let mut handles = Vec::with_capacity(readers);
            for n in 0..readers {
                let reader = WindowReader {
                    windows,
                    turns: &turns,
                    flows,
                    http: self.opts.http,
                    cancel: self.cancel,
                    progress: &self.progress.done,
                    spares: self.spares,
                };
                let spawned = std::thread::Builder::new()
                    .name(format!("analyze-read-{n}"))
                    .spawn_scoped(s, move || reader.run());
                match spawned {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        // Nobody will frame the windows not claimed yet: release the others
                        // (`_close` stops further claims).
                        (0..count).for_each(|k| windows.abandon(k));
                        return Ok(Err(ReplayError::Threads(e.to_string())));
                    }
                }
            }
            // Windows' batches go on in groups of at least WINDOW_BATCH records: a window
            // holds few records, and a message per window would wake the engine's thread for
            // each. Grouped as they are, not appended into one batch: that copied every
            // record once more.
            let mut group = WindowGroup::default();
            for k in 0..count {
                // Readers stop without a word only when the replay is being abandoned.
                let Some(done) = turns.take(k) else {
                    return Err(Gone);
                };
                match done {
                    Ok((records, window_stats)) => {
                        stats.merge(&window_stats);
                        group.push(records, self.spares);
                        if group.records >= WINDOW_BATCH {
                            self.send(group.take(index))?;
                        }
                    }
                    Err(e) => {
                        // The records before the failure are delivered all the same.
                        if group.records > 0 {
                            self.send(group.take(index))?;
                        }
                        return Ok(Err(ReplayError::from(e)));
                    }
                }
            }
            if group.records > 0 {
                self.send(group.take(index))?;
            }
            let mut shards = FlowShards::default();
            for h in handles {
                shards.push(h.join().map_err(|_| Gone)?);
            }
            Ok(Ok(shards))
        });
        let shards = match outcome {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Ok(Err(e)),
            Err(Gone) => return Err(Gone),
        };
        // A pcap without packets still names its link type (as the sequential reader does).
        if let Some(link) = windows.link_type() {
            stats.link_types.entry(link).or_default();
        }
        Ok(Ok(InputDone {
            stats,
            flows: flows.then_some(shards),
        }))
    }

    fn recording(
        &self,
        index: usize,
        path: &Path,
        size: u64,
    ) -> Result<Result<InputDone, ReplayError>, Gone> {
        let reader = match SynReader::open(path) {
            Ok(r) => r,
            // Say what it is rather than what a recording would have.
            Err(_) if formats::meta::is_results_file(path) => {
                return Ok(Err(ReplayError::ResultsFile(path.to_path_buf())));
            }
            Err(e) => return Ok(Err(e.into())),
        };
        let payload_reader = if self.opts.http {
            match sibling_payload(path) {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            }
        } else {
            None
        };
        let mut payloads = payload_reader
            .as_ref()
            .map(|r| PayloadMerge::new(r, self.opts.batch_records));
        let groups = reader.num_row_groups();
        let rows = reader.num_rows().max(1);
        let window = self.pool.current_num_threads().max(1);
        let mut stats = IngestStats::default();
        capture_losses(&reader.meta().extra, &mut stats);
        // SYN rows handed over so far: where the next row group starts.
        let mut base = 0u64;
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
                let n = recs.len() as u64;
                let merged = match &mut payloads {
                    Some(m) => m.merge(recs, base, &mut |b| self.send(Msg::Batch(index, b))),
                    None => Ok(self.send(Msg::Batch(index, Batch::from(recs)))),
                };
                match merged {
                    Ok(sent) => sent?,
                    Err(e) => return Ok(Err(e)),
                }
                base += n;
            }
            start = end;
        }
        // The segments after the last SYN record.
        if let Some(m) = &mut payloads {
            match m.rest(base, &mut |b| self.send(Msg::Batch(index, b))) {
                Ok(sent) => sent?,
                Err(e) => return Ok(Err(e)),
            }
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

/// The SYNs a live capture saw but did not record, from the recording's metadata counters
/// (absent in recordings made from pcaps), so a report never presents a sampled or lossy
/// capture as complete.
fn capture_losses(extra: &[(String, String)], stats: &mut IngestStats) {
    for (key, reason) in [
        ("syn_sampled_out", SkipReason::SampledOut),
        ("ringbuf_full", SkipReason::RingFull),
        ("syn_unparsed", SkipReason::UnreadableAtCapture),
    ] {
        let n = extra
            .iter()
            .filter(|(k, _)| k == key)
            .filter_map(|(_, v)| v.parse::<u64>().ok())
            .sum::<u64>();
        if n > 0 {
            *stats.syn_skipped.entry(reason).or_default() += n;
        }
    }
}

/// The counters of a recording's `NAME.flows.parquet` sibling summed per flow over all
/// intervals, or `None` when there is no such file.
pub fn sibling_flows(recording: &Path) -> Result<Option<FlowShards>, ReplayError> {
    let path: PathBuf = flows_path_for(recording);
    if !path.is_file() {
        return Ok(None);
    }
    let reader = FlowReader::open(&path)?;
    let mut table = FlowTable::default();
    for g in 0..reader.num_row_groups() {
        for row in reader.read_row_group(g)? {
            table
                .entry(row.key)
                .or_default()
                .merge(&Traffic::of(&row.counters));
        }
    }
    Ok(Some(FlowShards::single(table)))
}

/// A reader of the payload file beside `recording` (`NAME.payload.parquet`, or its place
/// in a capture tree), or `None` when there is none: recordings made before payload files
/// existed, and capture trees (live capture does not record payload yet), replay without
/// HTTP records.
pub fn sibling_payload(recording: &Path) -> Result<Option<PayloadReader>, ReplayError> {
    let path = payload_path_for(recording);
    if !path.is_file() {
        return Ok(None);
    }
    Ok(Some(PayloadReader::open(&path)?))
}

/// Puts a payload file's rows at their place among a recording's SYN records, as the
/// capture's replay had them: a row with `syn_rows_before = n` goes after the recording's
/// `n`th SYN record and before the next one ([`Batch::in_order`]).
///
/// The payload file is read in order, a batch at a time, beside the SYN row groups (which
/// come in order too); batches handed on hold at most `max_payloads` payload records, so
/// memory stays bounded however many segments fall between two SYN records.
pub struct PayloadMerge<'a> {
    rows: std::iter::Peekable<formats::recording::Records<'a, formats::payload::Payload>>,
    /// `syn_rows_before` of the last row taken: rows must not go back.
    last: u64,
    max_payloads: usize,
    file: String,
}

impl<'a> PayloadMerge<'a> {
    /// Merges the rows of `reader`, handing on batches of at most `max_payloads` payloads.
    pub fn new(reader: &'a PayloadReader, max_payloads: usize) -> PayloadMerge<'a> {
        PayloadMerge {
            rows: reader.records().peekable(),
            last: 0,
            max_payloads: max_payloads.max(1),
            file: reader.path().display().to_string(),
        }
    }

    /// The next row if it belongs at or before SYN record `end` (its `syn_rows_before` is
    /// at most `end`).
    fn next_until(&mut self, end: u64) -> Result<Option<PayloadRow>, ReplayError> {
        match self.rows.peek() {
            None => return Ok(None),
            Some(Ok(r)) if r.syn_rows_before > end => return Ok(None),
            Some(_) => {}
        }
        let row = match self.rows.next() {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(None),
        };
        if row.syn_rows_before < self.last {
            return Err(ReplayError::PayloadOrder {
                file: self.file.clone(),
                found: row.syn_rows_before,
                after: self.last,
            });
        }
        self.last = row.syn_rows_before;
        Ok(Some(row))
    }

    /// SYN records `base..base + syns.len()` of the recording, with the payload rows that
    /// belong among them (and right after them), as one or more batches handed to `send`.
    /// The outer error is the merge's (a bad payload file), the inner one `send`'s.
    pub fn merge<E>(
        &mut self,
        syns: Vec<SynRecord>,
        base: u64,
        send: &mut impl FnMut(Batch) -> Result<(), E>,
    ) -> Result<Result<(), E>, ReplayError> {
        let end = base + syns.len() as u64;
        let Some(first) = self.next_until(end)? else {
            return Ok(if syns.is_empty() {
                Ok(())
            } else {
                send(Batch::from(syns))
            });
        };
        let mut batch = Batch::with_capacity(syns.len());
        // SYN records of `syns` already in a batch.
        let mut taken = 0usize;
        let mut next = Some(first);
        while let Some(row) = next {
            // Within `taken..=syns.len()`: rows never go back, and `next_until(end)`.
            let at = usize::try_from(row.syn_rows_before.saturating_sub(base))
                .unwrap_or(usize::MAX)
                .clamp(taken, syns.len());
            batch.syns.extend_from_slice(&syns[taken..at]);
            taken = at;
            batch.push_payload(&row.record);
            if batch.payloads.len() >= self.max_payloads {
                let full = std::mem::replace(&mut batch, Batch::with_capacity(syns.len() - taken));
                if let Err(e) = send(full) {
                    return Ok(Err(e));
                }
            }
            next = self.next_until(end)?;
        }
        batch.syns.extend_from_slice(&syns[taken..]);
        Ok(if batch.is_empty() {
            Ok(())
        } else {
            send(batch)
        })
    }

    /// The rows after the recording's last SYN record (`syn_rows` of them); a row that claims
    /// more SYN records before it than the recording has is an error (the payload file is not
    /// this recording's, or one of them was cut).
    pub fn rest<E>(
        &mut self,
        syn_rows: u64,
        send: &mut impl FnMut(Batch) -> Result<(), E>,
    ) -> Result<Result<(), E>, ReplayError> {
        let merged = self.merge(Vec::new(), syn_rows, send)?;
        // What `merge` left is a row past the end (an unreadable row it would have
        // returned as its error).
        if let Some(Ok(r)) = self.rows.peek() {
            return Err(ReplayError::PayloadPlace {
                file: self.file.clone(),
                found: r.syn_rows_before,
                syn_rows,
            });
        }
        Ok(merged)
    }
}

/// Windows the readers may be ahead of the hand-over ([`Turns`]).
const WINDOWS_AHEAD: usize = 8;

/// Windows ready for the hand-over before a reader wakes it ([`Turns::deliver`]).
const WINDOW_GROUP: usize = 4;

/// Records of consecutive windows handed to the consumer at a time (at least), as one
/// [`Msg::Windows`].
const WINDOW_BATCH: usize = 384;

/// Consecutive windows' batches gathered for one [`Msg::Windows`].
#[derive(Default)]
struct WindowGroup {
    batches: Vec<Batch>,
    /// Records in `batches`.
    records: usize,
}

impl WindowGroup {
    /// Adds a window's batch; an empty one goes straight back to `spares`.
    fn push(&mut self, batch: Batch, spares: &Spares) {
        if batch.is_empty() {
            spares.give(batch);
        } else {
            self.records += batch.len();
            self.batches.push(batch);
        }
    }

    /// The message for the batches gathered, leaving none.
    fn take(&mut self, index: usize) -> Msg {
        self.records = 0;
        Msg::Windows(index, std::mem::take(&mut self.batches))
    }
}

/// Window batches the consumer is done with, kept for the reader threads to fill again
/// ([`Spares::take`]): a window's batch then starts with the room earlier windows needed
/// instead of growing from nothing (reallocating and copying its records as it grows), and
/// no batch is allocated on one thread and freed on another.
///
/// What a batch holds does not depend on which one it is, so the records do not depend on
/// the recycling; only memory does, and at most [`SPARES_MAX`] batches wait here.
#[derive(Debug, Default)]
struct Spares(Mutex<Vec<Batch>>);

/// Batches [`Spares`] keeps at most (more are dropped): about the windows in flight with a
/// few reader threads ([`WINDOWS_AHEAD`]).
const SPARES_MAX: usize = 32;

impl Spares {
    /// An empty batch: a spare one when there is one, else a new one.
    fn take(&self) -> Batch {
        let spare = self.0.lock().ok().and_then(|mut v| v.pop());
        spare.unwrap_or_default()
    }

    /// Keeps `batch`, emptied, for [`Spares::take`] (or drops it when enough are kept).
    fn give(&self, mut batch: Batch) {
        batch.clear();
        if let Ok(mut v) = self.0.lock()
            && v.len() < SPARES_MAX
        {
            v.push(batch);
        }
    }
}

/// What a reader thread has per window: its records and statistics, or why it could not be
/// read.
type WindowDone = Result<(Batch, IngestStats), PcapError>;

/// The windows of a capture between its reader threads and the thread that hands them over
/// in order: each reader takes the next window of the file when it is ready for one, at most
/// [`WINDOWS_AHEAD`] past the next to hand over, and leaves it, read and parsed, in that
/// window's slot.
///
/// Why not every `n`-th window to the `n`-th reader: framing is serial (a window is framed
/// once the one before it is), so with fixed turns a reader that the scheduler put aside
/// (for the engine's thread, say) stopped the other within one window and left its core
/// idle. Taking turns as they come, a reader waits only for a window another one has just
/// taken and not framed yet, for the rest of a read (BENCHMARKS.md).
struct Turns {
    count: usize,
    state: Mutex<TurnState>,
    /// Readers wait here for a window within reach.
    reach: Condvar,
    /// The hand-over waits here for the window it needs.
    ready: Condvar,
}

struct TurnState {
    /// The next window to take.
    next: usize,
    /// Windows handed over so far: the hand-over needs window `handed` next.
    handed: usize,
    /// Window `k`'s records, once parsed, at `k % WINDOWS_AHEAD`.
    slots: Vec<Option<WindowDone>>,
    /// Whether the hand-over is waiting (for window `handed`).
    waiting: bool,
    /// Readers still running.
    readers: usize,
    /// The replay stops: nobody takes another window.
    closed: bool,
}

impl Turns {
    fn new(count: usize, readers: usize) -> Turns {
        Turns {
            count,
            state: Mutex::new(TurnState {
                next: 0,
                handed: 0,
                slots: (0..WINDOWS_AHEAD).map(|_| None).collect(),
                waiting: false,
                readers,
                closed: false,
            }),
            reach: Condvar::new(),
            ready: Condvar::new(),
        }
    }

    /// The next window to read, waiting until it is within [`WINDOWS_AHEAD`] of the
    /// hand-over; `None` past the last one or when the replay stops. A window taken must be
    /// read or abandoned: the reader of the next one waits for its framing.
    fn claim(&self) -> Option<usize> {
        let mut st = self.state.lock().ok()?;
        loop {
            if st.closed || st.next >= self.count {
                return None;
            }
            if st.next < st.handed + WINDOWS_AHEAD {
                st.next += 1;
                return Some(st.next - 1);
            }
            st = self.reach.wait(st).ok()?;
        }
    }

    /// Leaves window `k`'s records for the hand-over, and wakes it when it waits and
    /// [`WINDOW_GROUP`] windows are ready for it (or all that are left, or a failure): it is
    /// woken once per group rather than once per window (fewer context switches).
    fn deliver(&self, k: usize, done: WindowDone) {
        if let Ok(mut st) = self.state.lock() {
            let failed = done.is_err();
            st.slots[k % WINDOWS_AHEAD] = Some(done);
            if st.waiting {
                let handed = st.handed;
                let ready = (handed..handed + WINDOWS_AHEAD)
                    .take_while(|j| st.slots[j % WINDOWS_AHEAD].is_some())
                    .count();
                if failed || ready >= WINDOW_GROUP || handed + ready >= self.count {
                    self.ready.notify_one();
                }
            }
        }
    }

    /// Window `k`'s records (the hand-over takes them in order, `k` = windows handed so
    /// far), waiting for them; `None` when every reader has stopped without them.
    fn take(&self, k: usize) -> Option<WindowDone> {
        let mut st = self.state.lock().ok()?;
        loop {
            if let Some(done) = st.slots[k % WINDOWS_AHEAD].take() {
                // Readers wait for reach only while the next window to take is out of it:
                // this take brings it in reach when it was `WINDOWS_AHEAD` past `k`.
                let out_of_reach = st.next < self.count && st.next >= k + WINDOWS_AHEAD;
                st.handed = k + 1;
                if out_of_reach {
                    self.reach.notify_all();
                }
                return Some(done);
            }
            if st.readers == 0 || st.closed {
                return None;
            }
            st.waiting = true;
            st = self.ready.wait(st).ok()?;
            st.waiting = false;
        }
    }

    /// A reader has stopped; `early`: before the windows ran out (cancelled, the consumer
    /// gone, a panic), so nobody should take another.
    fn reader_stopped(&self, early: bool) {
        if let Ok(mut st) = self.state.lock() {
            st.readers = st.readers.saturating_sub(1);
            st.closed |= early;
        }
        self.ready.notify_one();
        if early {
            self.reach.notify_all();
        }
    }

    /// The hand-over has ended: readers take no more windows.
    fn close(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.closed = true;
        }
        self.reach.notify_all();
    }
}

/// Calls [`Turns::close`] when dropped.
struct CloseOnDrop<'a>(&'a Turns);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Tells [`Turns`] that its reader stopped, when dropped.
struct Stopped<'a> {
    turns: &'a Turns,
    early: bool,
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.turns.reader_stopped(self.early);
    }
}

/// One reader thread of [`Producer::capture_windows`]: reads, frames and parses the windows
/// it takes ([`Turns`]).
struct WindowReader<'a> {
    windows: &'a Windows,
    turns: &'a Turns,
    flows: bool,
    http: bool,
    cancel: &'a AtomicBool,
    progress: &'a AtomicU64,
    spares: &'a Spares,
}

impl WindowReader<'_> {
    /// Reads windows until none is left; returns its flow table.
    fn run(&self) -> FlowTable {
        // Early unless the windows run out (a panic included).
        let mut stopped = Stopped {
            turns: self.turns,
            early: true,
        };
        let mut table = FlowTable::default();
        let mut buffer = Vec::new();
        // A filter per window, not per reader: which windows a reader gets depends on the
        // thread count and the timing, and the records must not. One filter reset for each
        // window keeps its allocations.
        let mut http = self.http.then(HttpFilter::default);
        // What this reader's last window's batch held: a window's batch, spare or new,
        // starts with that room rather than growing record by record (neighbouring windows
        // hold about as many records).
        let mut last = Room::default();
        while let Some(k) = self.turns.claim() {
            // Whatever ends this turn early (cancellation, a panic), the claimed window is
            // abandoned, so the reader of the next one goes on.
            let mut claimed = Abandon {
                windows: self.windows,
                window: Some(k),
            };
            if self.cancel.load(Ordering::Relaxed) {
                break;
            }
            let read = self.windows.read(k, buffer);
            // Read (framed) or abandoned by `read` itself on failure.
            claimed.window = None;
            let chunk = match read {
                Ok(c) => c,
                Err(e) => {
                    // The windows after it are empty (`read` abandoned it): the hand-over
                    // stops at this one.
                    self.turns.deliver(k, Err(e));
                    stopped.early = false;
                    return table;
                }
            };
            let mut records = self.spares.take();
            records.reserve(last);
            if let Some(http) = &mut http {
                http.reset();
            }
            let stats = if self.flows {
                let mut sink = TableSink {
                    records: &mut records,
                    http: http.as_mut(),
                    table: &mut table,
                    run: None,
                };
                let stats = chunk.run(&mut sink);
                sink.flush();
                stats
            } else if let Some(http) = &mut http {
                chunk.run(&mut HttpSink {
                    records: &mut records,
                    http,
                })
            } else {
                chunk.run(&mut records.syns)
            };
            self.progress
                .fetch_add(self.windows.window_bytes(k), Ordering::Relaxed);
            buffer = chunk.into_buffer();
            last = records.size().with_headroom();
            self.turns.deliver(k, Ok((records, stats)));
        }
        stopped.early = self.cancel.load(Ordering::Relaxed);
        table
    }
}

/// Abandons a claimed window not read when dropped.
struct Abandon<'a> {
    windows: &'a Windows,
    window: Option<usize>,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.window {
            self.windows.abandon(k);
        }
    }
}

/// Records into a vector and flow updates into a table.
///
/// Consecutive packets of one flow (a bulk transfer) are summed aside and put into the table
/// once, when another flow's packet comes or the chunk ends: the table lookup is the
/// largest single cost of parsing, and a run of one flow needs none.
struct TableSink<'a> {
    records: &'a mut Batch,
    http: Option<&'a mut HttpFilter>,
    table: &'a mut FlowTable,
    /// The flow of the last packets and their counters, not yet in `table`; with the
    /// endpoints of the packet that started the run, by which the run's later packets are
    /// told without making their keys ([`Endpoints`]).
    run: Option<(Endpoints, FlowKey, Traffic)>,
}

impl TableSink<'_> {
    /// Puts the pending run into the table.
    fn flush(&mut self) {
        if let Some((_, key, c)) = self.run.take() {
            self.table.entry(key).or_default().merge(&c);
        }
    }

    /// Ends the pending run and starts one with `seg`: out of the per-frame loop, which
    /// otherwise only compares a segment with the run's endpoints and adds it.
    #[inline(never)]
    fn start_run(&mut self, seg: &Segment<'_>) {
        self.flush();
        let mut c = Traffic::default();
        c.add_packet(seg.l3_bytes);
        self.run = Some((seg.endpoints(), seg.flow().0, c));
    }
}

impl PacketSink for TableSink<'_> {
    #[inline]
    fn syn(&mut self, rec: &SynRecord) {
        self.records.syns.push(*rec);
    }

    /// Inlined into the per-frame loop: a call per segment cost more than the comparison.
    #[inline(always)]
    fn tcp(&mut self, seg: &Segment<'_>) {
        if let Some(http) = &mut self.http
            && let Some(r) = http.record(seg)
        {
            self.records.push_payload(r);
        }
        match &mut self.run {
            Some((e, _, c)) if e.way_of(seg.fields()).is_some() => c.add_packet(seg.l3_bytes),
            _ => self.start_run(seg),
        }
    }
}

/// SYN records and the payload records an [`HttpFilter`] picks, without a flow table.
struct HttpSink<'a> {
    records: &'a mut Batch,
    http: &'a mut HttpFilter,
}

impl PacketSink for HttpSink<'_> {
    #[inline]
    fn syn(&mut self, rec: &SynRecord) {
        self.records.syns.push(*rec);
    }

    #[inline]
    fn tcp(&mut self, seg: &Segment<'_>) {
        if let Some(r) = self.http.record(seg) {
            self.records.push_payload(r);
        }
    }
}

/// A capture's records, batched for the channel, and optionally its flow table.
struct BatchSink<'a> {
    index: usize,
    batch: Batch,
    http: Option<HttpFilter>,
    cap: usize,
    tx: &'a SyncSender<Msg>,
    gone: bool,
    flows: Option<FlowTable>,
}

impl BatchSink<'_> {
    /// Hands the batch over (or drops it, once the consumer is gone).
    fn send_batch(&mut self) {
        if self.gone {
            self.batch.clear();
            return;
        }
        let full = std::mem::replace(&mut self.batch, Batch::with_capacity(self.cap));
        if self.tx.send(Msg::Batch(self.index, full)).is_err() {
            self.gone = true;
        }
    }
}

impl PacketSink for BatchSink<'_> {
    #[inline]
    fn syn(&mut self, rec: &SynRecord) {
        self.batch.syns.push(*rec);
        if self.batch.len() >= self.cap {
            self.send_batch();
        }
    }

    /// The reader may now wait for a live source: what it found so far goes on.
    fn pause(&mut self) {
        if !self.batch.is_empty() {
            self.send_batch();
        }
    }

    #[inline]
    fn tcp(&mut self, seg: &Segment<'_>) {
        if let Some(http) = &mut self.http
            && let Some(r) = http.record(seg)
        {
            self.batch.push_payload(r);
            if self.batch.len() >= self.cap {
                self.send_batch();
            }
        }
        if let Some(f) = &mut self.flows {
            f.entry(seg.flow().0).or_default().add_packet(seg.l3_bytes);
        }
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
        flows: Vec<Option<Vec<(FlowKey, Traffic)>>>,
        failed: Vec<(usize, String)>,
    }

    impl Consumer for Log {
        fn records(&mut self, index: usize, records: &Batch) {
            self.records
                .extend(records.syns.iter().map(|r| (index, *r)));
        }
        fn input_done(&mut self, index: usize, done: InputDone) {
            self.done.push((index, done.stats.records()));
            self.stats.push(done.stats);
            self.flows.push(done.flows.map(|f| {
                let mut v = Vec::new();
                f.for_each_flow(|k, c| v.push((*k, *c)));
                v.sort_by_key(|(k, _)| *k);
                v
            }));
        }
        fn input_failed(&mut self, index: usize, error: &ReplayError) {
            self.failed.push((index, error.to_string()));
        }
    }

    /// Payload records keep their place among the SYN records, also in a batch used before
    /// and handed back through [`Spares`].
    #[test]
    fn recycled_batches_keep_payload_places() {
        let syn = |n: u64| SynRecord {
            ts_ns: n,
            ..SynRecord::ZERO
        };
        let payload = |n: u64| PayloadRecord {
            ts_ns: n,
            ..PayloadRecord::ZERO
        };
        let spares = Spares::default();
        let mut used = spares.take();
        used.syns.push(syn(9));
        used.push_payload(&payload(9));
        spares.give(used);
        let mut a = spares.take();
        assert!(
            a.is_empty() && a.syns.capacity() > 0,
            "the spare batch comes back empty"
        );
        a.push_payload(&payload(0));
        a.syns.push(syn(1));
        a.push_payload(&payload(2));
        a.syns.push(syn(3));
        a.push_payload(&payload(4));
        a.syns.push(syn(5));
        a.push_payload(&payload(6));
        let mut scratch = PayloadRecord::ZERO;
        let order: Vec<u64> = a
            .in_order()
            .map(|r| match r {
                Rec::Syn(r) => r.ts_ns,
                Rec::Payload(p) => {
                    p.load_into(&mut scratch);
                    scratch.ts_ns
                }
            })
            .collect();
        assert_eq!(order, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(a.len(), 7);
    }

    /// Payload records come out of a batch as they went in, heads of every length in any
    /// order through one scratch record, also when the batch held longer ones before.
    #[test]
    fn payload_records_come_out_whole() {
        let records: Vec<PayloadRecord> = [3000usize, 5, 0, 8192, 40]
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let mut r = PayloadRecord::ZERO;
                r.ts_ns = i as u64;
                r.src_port = 1000 + i as u16;
                r.payload_len = n as u16;
                let head: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8 | 1).collect();
                r.set_head(&head);
                r
            })
            .collect();
        let mut a = Batch::default();
        for r in records.iter().rev() {
            a.push_payload(r);
        }
        a.clear();
        for r in &records {
            a.push_payload(r);
        }
        let mut scratch = PayloadRecord::ZERO;
        let mut n = 0;
        for (rec, want) in a.in_order().zip(&records) {
            let Rec::Payload(p) = rec else {
                panic!("a SYN record came out");
            };
            p.load_into(&mut scratch);
            assert_eq!(&scratch, want);
            n += 1;
        }
        assert_eq!(n, records.len());
    }

    fn key(n: u8) -> FlowKey {
        FlowKey::new(
            4,
            [198, 51, 100, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            1000,
            [0; 16],
            80,
        )
        .0
    }

    fn counters(packets: u64, bytes_each: u64) -> Traffic {
        Traffic {
            packets,
            bytes: packets * bytes_each,
        }
    }

    /// Each flow once, summed over every table that has a share of it, whatever the order of
    /// the tables; absorbing another input's shards sums them in too.
    #[test]
    fn flow_shards_sum_each_flow_once() {
        // (flow, packets, bytes each): flow 1 in all three tables, flow 2 in the last two, flow 3
        // in the first only.
        let tables = [
            vec![(1, 2, 10), (3, 1, 0)],
            vec![(1, 1, 5)],
            vec![(1, 4, 20), (2, 3, 7)],
        ];
        let expected = |n: u8| -> Traffic {
            let mut sum = Traffic::default();
            for t in &tables {
                for &(k, p, each) in t {
                    if k == n {
                        sum.merge(&counters(p, each));
                    }
                }
            }
            sum
        };
        let shards_of = |order: &[usize]| {
            let mut s = FlowShards::default();
            for &i in order {
                let mut t = FlowTable::default();
                for &(k, p, each) in &tables[i] {
                    t.insert(key(k), counters(p, each));
                }
                s.push(t);
            }
            s
        };
        let flows = |s: &FlowShards| {
            let mut v = Vec::new();
            s.for_each_flow(|k, c| v.push((*k, *c)));
            v.sort_by_key(|(k, _)| *k);
            v
        };
        let want: Vec<_> = [1, 2, 3].map(|n| (key(n), expected(n))).into();
        let mut want = want;
        want.sort_by_key(|(k, _)| *k);
        assert_eq!(want[0].1.packets + want[1].1.packets, 10);
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let s = shards_of(&order);
            assert_eq!(s.len_bound(), 5);
            assert_eq!(flows(&s), want, "tables in order {order:?}");
        }
        // Another input with flows 2 and 4: summed into the largest table.
        let mut more = FlowTable::default();
        more.insert(key(2), counters(1, 1));
        more.insert(key(4), counters(2, 2));
        let mut s = shards_of(&[0, 1, 2]);
        s.absorb(FlowShards::single(more));
        let got = flows(&s);
        assert_eq!(got.len(), 4);
        let two = got.iter().find(|(k, _)| *k == key(2)).unwrap().1;
        assert_eq!(
            two,
            Traffic {
                packets: 4,
                bytes: 22
            }
        );
        // Absorbed into nothing: taken as it is; empty tables are not kept.
        let mut empty = FlowShards::default();
        empty.push(FlowTable::default());
        assert_eq!(empty.len_bound(), 0);
        empty.absorb(shards_of(&[1]));
        assert_eq!(flows(&empty).len(), 1);
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

    /// The windowed capture path (pcap and pcapng) gives exactly what the sequential
    /// `formats::pcap` reader gives, whatever the number of threads: records, statistics
    /// (truncation included) and flow counters (counted per thread, summed per flow).
    #[test]
    fn parallel_pcap_parsing_equals_the_sequential_reader() {
        let d = tempfile::tempdir().unwrap();
        let mut inputs = fixtures();
        assert!(inputs.iter().any(|i| i.kind == InputKind::PcapNg));
        // Damaged copies of the largest pcap and pcapng: cut inside a record or block.
        for (kind, name) in [
            (InputKind::Pcap, "cut.pcap"),
            (InputKind::PcapNg, "cut.pcapng"),
        ] {
            let big = inputs
                .iter()
                .filter(|i| i.kind == kind)
                .max_by_key(|i| std::fs::metadata(&i.path).unwrap().len())
                .unwrap()
                .clone();
            let bytes = std::fs::read(&big.path).unwrap();
            let cut = d.path().join(name);
            std::fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
            inputs.extend(crate::inputs::expand(&[cut]).unwrap());
        }
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
            let mut v: Vec<_> = c.flows.iter().map(|(k, c)| (*k, Traffic::of(c))).collect();
            v.sort_by_key(|(k, _)| *k);
            seq.flows.push(Some(v));
        }
        for (threads, chunk_bytes) in [(1, WINDOW_SIZE), (2, 1500), (3, 64 << 10), (3, 1)] {
            let par = run(threads, chunk_bytes);
            let what = format!("threads {threads}, chunks of {chunk_bytes} bytes");
            assert_eq!(par.records, seq.records, "{what}");
            assert_eq!(par.stats, seq.stats, "{what}");
            assert_eq!(par.flows, seq.flows, "{what}");
        }
        for last in &seq.stats[seq.stats.len() - 2..] {
            assert!(
                last.truncated_at.is_some(),
                "the cut files are reported as damaged"
            );
        }
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

    /// Every record a replay delivers, SYN and payload, in the order the engine sees them.
    #[derive(Default)]
    struct Sequence(Vec<(usize, String)>);

    impl Consumer for Sequence {
        fn records(&mut self, index: usize, records: &Batch) {
            for r in records.in_order() {
                let what = match r {
                    Rec::Syn(r) => format!("syn {r:?}"),
                    Rec::Payload(p) => format!("payload {p:?}"),
                };
                self.0.push((index, what));
            }
        }
        fn input_done(&mut self, _: usize, _: InputDone) {}
        fn input_failed(&mut self, index: usize, error: &ReplayError) {
            panic!("input {index} failed: {error}");
        }
    }

    fn sequence(inputs: &[Input], opts: &ReplayOptions) -> Vec<String> {
        let mut seq = Sequence::default();
        replay(inputs, opts, &Progress::default(), &mut seq).unwrap();
        seq.0.into_iter().map(|(_, r)| r).collect()
    }

    /// A window's batch gets room for a quarter more than its reader's last one held, and
    /// room for payloads only after a window with some.
    #[test]
    fn batches_start_with_the_room_of_the_last() {
        let mut last = Batch::from(vec![SynRecord::ZERO; 8]);
        assert_eq!(last.size().with_headroom().payload_bytes, 0);
        last.push_payload(&PayloadRecord::ZERO);
        let room = last.size().with_headroom();
        assert_eq!((room.syns, room.payloads), (10, 1));
        assert_eq!(room.payload_bytes, PAYLOAD_BYTES_START);
        let mut next = Spares::default().take();
        next.reserve(room);
        assert!(next.is_empty() && next.syns.capacity() >= 10);
        assert!(next.payload_bytes.capacity() >= PAYLOAD_BYTES_START);
    }

    /// [`Turns`]: readers that take windows as they come, finish them in any order and at
    /// uneven speeds still hand every window over once, in order, and never run more than
    /// [`WINDOWS_AHEAD`] past the hand-over.
    #[test]
    fn turns_hand_windows_over_in_order_within_reach() {
        let count = 300;
        let turns = Turns::new(count, 3);
        let taken = std::thread::scope(|s| {
            for n in 0..3u64 {
                let turns = &turns;
                s.spawn(move || {
                    let _stopped = Stopped {
                        turns,
                        early: false,
                    };
                    while let Some(k) = turns.claim() {
                        let handed = turns.state.lock().unwrap().handed;
                        assert!(k < handed + WINDOWS_AHEAD, "window {k}, {handed} handed");
                        // Uneven work: windows finish out of order.
                        let spin = (k as u64 * 7 + n * 13) % 23;
                        std::thread::sleep(std::time::Duration::from_micros(spin * 20));
                        let stats = IngestStats {
                            packets: k as u64,
                            ..IngestStats::default()
                        };
                        turns.deliver(k, Ok((Batch::default(), stats)));
                    }
                });
            }
            (0..count)
                .map(|k| {
                    // A slow hand-over now and then: the readers must wait for it.
                    if k % 50 == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    match turns.take(k) {
                        Some(Ok((_, stats))) => stats.packets,
                        _ => panic!("window {k} not handed over"),
                    }
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(taken, (0..count as u64).collect::<Vec<_>>());
        assert_eq!(turns.claim(), None, "every window taken");
    }

    /// A reader that stops early (cancelled, or a panic) stops the hand-over rather than
    /// leaving it waiting for the window it will never deliver; closing releases readers
    /// that wait for a window within reach.
    #[test]
    fn turns_end_when_a_reader_stops_early_or_the_hand_over_ends() {
        let turns = Turns::new(100, 2);
        let k = turns.claim().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let _stopped = Stopped {
                    turns: &turns,
                    early: true,
                };
            });
        });
        assert!(turns.take(k).is_none());
        assert_eq!(
            turns.claim(),
            None,
            "no window is taken after an early stop"
        );

        let turns = Turns::new(100, 1);
        for k in 0..WINDOWS_AHEAD {
            assert_eq!(turns.claim(), Some(k));
        }
        // The next claim waits for the hand-over, until it ends.
        std::thread::scope(|s| {
            let waiting = s.spawn(|| turns.claim());
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!waiting.is_finished(), "a window out of reach is not taken");
            turns.close();
            assert_eq!(waiting.join().unwrap(), None);
        });
    }

    /// [`Spares`] keeps at most [`SPARES_MAX`] batches, and hands them out empty.
    #[test]
    fn spares_are_bounded() {
        let spares = Spares::default();
        for _ in 0..SPARES_MAX + 5 {
            spares.give(Batch::from(vec![SynRecord::ZERO]));
        }
        assert_eq!(spares.0.lock().unwrap().len(), SPARES_MAX);
        assert!(spares.take().is_empty());
    }

    /// Windows' batches, handed over in groups and recycled, come out in capture order with
    /// their payload records, whatever the number of reader threads (small windows: many
    /// groups and many recycled batches).
    #[test]
    fn window_groups_keep_capture_order() {
        let http_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/http");
        let mut inputs = crate::inputs::expand(&[http_dir]).unwrap();
        inputs.extend(fixtures());
        let run = |threads, chunk_bytes| {
            let opts = ReplayOptions {
                http: true,
                threads,
                chunk_bytes,
                ..ReplayOptions::default()
            };
            sequence(&inputs, &opts)
        };
        for chunk_bytes in [WINDOW_SIZE, 4096, 1] {
            let one = run(1, chunk_bytes);
            assert!(one.iter().any(|r| r.starts_with("payload")));
            assert!(one.iter().any(|r| r.starts_with("syn")));
            for threads in [2, 3] {
                assert_eq!(
                    run(threads, chunk_bytes),
                    one,
                    "{threads} threads, {chunk_bytes}"
                );
            }
        }
    }

    /// A recording made by `--records` replays the capture's SYN and payload records in the
    /// capture's order, whatever the row groups, threads and batch sizes; without `http`, or
    /// without its payload file, it gives the SYN records alone.
    #[test]
    fn recordings_replay_payloads_at_their_place() {
        let d = tempfile::tempdir().unwrap();
        let http_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/http");
        let captures = crate::inputs::expand(&[http_dir]).unwrap();
        assert!(captures.len() >= 4);
        let http = ReplayOptions {
            http: true,
            ..ReplayOptions::default()
        };
        // Small windows on the capture side would pick other segments: the recording keeps
        // what the default window size picks, as `analyze FILE` does.
        let want = sequence(&captures, &http);
        let payloads = want.iter().filter(|r| r.starts_with("payload")).count();
        let syns = want.len() - payloads;
        assert!(
            payloads > 20 && syns > 10,
            "{payloads} payloads, {syns} SYNs"
        );
        for row_group_rows in [1, 3, 1024] {
            let out = d.path().join(format!("r{row_group_rows}.parquet"));
            let opts = crate::records::RecordsOptions {
                writer: formats::recording::WriterOptions {
                    row_group_rows,
                    ..Default::default()
                },
                ..Default::default()
            };
            let report = crate::records::write_recording(&captures, &out, &opts, |_| {}).unwrap();
            assert_eq!(report.payload.rows as usize, payloads);
            let rec = crate::inputs::expand(std::slice::from_ref(&out)).unwrap();
            for (threads, batch_records) in [(1, 4096), (2, 1), (3, 2)] {
                let opts = ReplayOptions {
                    threads,
                    batch_records,
                    ..http
                };
                assert_eq!(
                    sequence(&rec, &opts),
                    want,
                    "row groups of {row_group_rows}, {threads} threads, batches of {batch_records}"
                );
            }
            let plain = sequence(&rec, &ReplayOptions::default());
            assert_eq!(plain.len(), syns);
            assert!(plain.iter().all(|r| r.starts_with("syn")));
            // An older recording, without the payload file: SYN records only, no error.
            std::fs::remove_file(payload_path_for(&out)).unwrap();
            assert_eq!(sequence(&rec, &http), plain);
        }
    }

    /// A payload file whose rows go back, or claim more SYN records before them than the
    /// recording has, is refused with a typed error rather than replayed out of place.
    #[test]
    fn misplaced_payload_rows_are_refused() {
        use formats::meta::{RecordType, RecordingMeta};
        use formats::payload::PayloadWriter;
        use formats::recording::WriterOptions;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("r.parquet");
        let syns: Vec<SynRecord> = fixtures()
            .iter()
            .flat_map(|i| records(&i.path))
            .take(3)
            .collect();
        assert_eq!(syns.len(), 3);
        let mut w = formats::syn::SynWriter::create(
            &path,
            &RecordingMeta::new(RecordType::Syn),
            WriterOptions::default(),
        )
        .unwrap();
        w.write_all(&syns).unwrap();
        w.close().unwrap();
        let mut p = PayloadRecord::ZERO;
        p.ip_version = 4;
        p.set_head(b"GET / HTTP/1.0\r\n\r\n");
        p.payload_len = p.head_len;
        let inputs = crate::inputs::expand(std::slice::from_ref(&path)).unwrap();
        let opts = ReplayOptions {
            http: true,
            ..ReplayOptions::default()
        };
        for (places, want) in [
            (&[2u64, 1][..], "out of order"),
            (&[1, 4][..], "after 4 SYN"),
        ] {
            let mut w = PayloadWriter::create(
                payload_path_for(&path),
                &RecordingMeta::new(RecordType::Payload),
                WriterOptions::default(),
            )
            .unwrap();
            for &n in places {
                let row = formats::payload::PayloadRow {
                    syn_rows_before: n,
                    record: p,
                };
                w.write(&row).unwrap();
            }
            w.close().unwrap();
            let mut seq = Sequence::default();
            let e = replay(&inputs, &opts, &Progress::default(), &mut seq).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
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
