//! The ring buffer's reader, on a thread of its own.
//!
//! The datapath submits records without waking anyone (a wakeup per record was most of a
//! SYN's kernel cost under a flood), so the ring must be read on a short fixed period
//! ([`DRAIN_PERIOD`]) whatever else capture is doing. This thread does nothing else: every
//! period it empties the ring into the SYN journal (one `write(2)`), asks for the journal's
//! `fdatasync` every flush interval, and hands the records to the main loop, which adds them
//! to their flows. A flow snapshot, the counters file or a slow terminal can then never
//! delay a drain, and the ring only has to hold one period of a flood plus scheduling jitter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use record::SynRecord;

use crate::clock::Clock;
use crate::error::{CaptureError, Result};
use crate::journal::JournalWriter;
use crate::ring::Ring;

/// How often the ring buffer is drained: records reach the journal within about this long,
/// and a flood fills the ring only if it outruns the ring's size in this time (what
/// overflows is counted as `ringbuf_full`, never lost silently).
pub const DRAIN_PERIOD: Duration = Duration::from_millis(10);

/// What the drain did, once it has stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Records drained and appended to the journal.
    pub records: u64,
    /// Ring entries of the wrong size (always 0 with a matching object).
    pub malformed: u64,
    /// The longest time between the starts of two drains, µs: when the ring overflowed,
    /// this says whether the drain was late (the thread kept off the CPU, or blocked in a
    /// write) or the flood simply outran the ring.
    pub max_gap_us: u64,
}

/// Figures the running drain publishes for the main loop's counters and status line.
#[derive(Debug, Default)]
struct Progress {
    records: AtomicU64,
    malformed: AtomicU64,
    journal_bytes: AtomicU64,
    max_gap_us: AtomicU64,
}

/// A running drain thread; [`Drainer::stop`] ends it.
pub struct Drainer {
    handle: JoinHandle<Result<Drained>>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
    /// Drained records (monotonic timestamps), in batches, for the flow rows; nothing is
    /// sent when flows are off.
    pub records: Receiver<Vec<SynRecord>>,
    /// Emptied batches going back to the drain, which refills them: a flood's batches are
    /// large enough that allocating each anew costs page faults on every drain.
    spare: Sender<Vec<SynRecord>>,
    /// Journal swaps asked of the thread (rotation): the new journal, and where to send back
    /// the old one once it is closed and synced.
    swaps: Sender<Swap>,
}

/// A rotation request: the journal to continue with, and the channel for the old one.
type Swap = (JournalWriter, Sender<Result<JournalWriter>>);

impl Drainer {
    /// Starts draining `ring` into `journal` (timestamps converted to UTC with `clock`),
    /// with an `fdatasync` every `flush`. With `flows`, every record is also sent on
    /// [`Drainer::records`].
    pub fn start(
        ring: Ring,
        journal: JournalWriter,
        clock: Clock,
        flush: Duration,
        flows: bool,
    ) -> Result<Drainer> {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let (tx, records) = mpsc::channel();
        let (spare, spare_rx) = mpsc::channel();
        let (swaps, swaps_rx) = mpsc::channel();
        let worker = Worker {
            spare: spare_rx,
            swaps: swaps_rx,
            ring,
            journal,
            clock,
            flush,
            tx: flows.then_some(tx),
            stop: Arc::clone(&stop),
            progress: Arc::clone(&progress),
        };
        let handle = thread::Builder::new()
            .name("ring-drain".into())
            .spawn(move || worker.run())
            .map_err(|e| CaptureError::Sys {
                call: "spawning the ring-drain thread",
                cause: e,
            })?;
        Ok(Drainer {
            handle,
            stop,
            progress,
            records,
            spare,
            swaps,
        })
    }

    /// Continues in `next` after one more drain into the current journal, which is closed,
    /// synced and handed back: every record drained before the swap is in the old journal,
    /// every later one in `next`. Waits for the thread's next period (at most about
    /// [`DRAIN_PERIOD`]).
    pub fn swap_journal(&self, next: JournalWriter) -> Result<JournalWriter> {
        let gone = || CaptureError::Sys {
            call: "ring-drain thread",
            cause: std::io::Error::other("stopped before the journal swap"),
        };
        let (tx, rx) = mpsc::channel();
        self.swaps.send((next, tx)).map_err(|_| gone())?;
        self.handle.thread().unpark();
        rx.recv().map_err(|_| gone())?
    }

    /// Gives an emptied batch back for reuse.
    pub fn recycle(&self, mut batch: Vec<SynRecord>) {
        batch.clear();
        // The drain is gone only at the stop, when nothing is reused any more.
        let _ = self.spare.send(batch);
    }

    /// The totals so far.
    pub fn progress(&self) -> Drained {
        Drained {
            records: self.progress.records.load(Ordering::Relaxed),
            malformed: self.progress.malformed.load(Ordering::Relaxed),
            max_gap_us: self.progress.max_gap_us.load(Ordering::Relaxed),
        }
    }

    /// Bytes appended to the SYN journal so far.
    pub fn journal_bytes(&self) -> u64 {
        self.progress.journal_bytes.load(Ordering::Relaxed)
    }

    /// Whether the thread has ended on its own, which only an error makes it do.
    pub fn failed(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops the thread after one last drain and closes the journal (synced), then hands
    /// `rest` the channel with the records not yet taken; returns the totals, or the error
    /// that ended the thread.
    pub fn stop_keeping(self, rest: impl FnOnce(&Receiver<Vec<SynRecord>>)) -> Result<Drained> {
        self.stop.store(true, Ordering::Release);
        self.handle.thread().unpark();
        let joined = self.handle.join();
        rest(&self.records);
        match joined {
            Ok(r) => r,
            Err(_) => Err(CaptureError::Sys {
                call: "ring-drain thread",
                cause: std::io::Error::other("panicked"),
            }),
        }
    }
}

struct Worker {
    ring: Ring,
    journal: JournalWriter,
    clock: Clock,
    flush: Duration,
    tx: Option<Sender<Vec<SynRecord>>>,
    spare: Receiver<Vec<SynRecord>>,
    swaps: Receiver<Swap>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
}

impl Worker {
    fn run(mut self) -> Result<Drained> {
        let mut totals = Drained::default();
        let mut next_flush = Instant::now() + self.flush;
        let mut last = Instant::now();
        loop {
            // Read before draining, so the drain after a stop request is the last one.
            let stopping = self.stop.load(Ordering::Acquire);
            let now = Instant::now();
            let gap = u64::try_from(now.duration_since(last).as_micros()).unwrap_or(u64::MAX);
            totals.max_gap_us = totals.max_gap_us.max(gap);
            last = now;
            let mut batch = self.spare.try_recv().unwrap_or_default();
            let keep = self.tx.is_some();
            let (journal, clock) = (&mut self.journal, self.clock);
            totals.malformed += self.ring.drain(|mut r| {
                if keep {
                    batch.push(r);
                }
                r.ts_ns = clock.to_utc(r.ts_ns);
                journal.push(&r);
                totals.records += 1;
            });
            self.journal.write_out()?;
            if let Ok((next, reply)) = self.swaps.try_recv() {
                let mut old = std::mem::replace(&mut self.journal, next);
                // The requester is gone only when capture is failing anyway.
                let _ = reply.send(old.finish().map(|()| old));
                next_flush = Instant::now() + self.flush;
            }
            if Instant::now() >= next_flush {
                self.journal.flush()?;
                next_flush = Instant::now() + self.flush;
            }
            self.progress
                .records
                .store(totals.records, Ordering::Relaxed);
            self.progress
                .malformed
                .store(totals.malformed, Ordering::Relaxed);
            self.progress
                .journal_bytes
                .store(self.journal.bytes(), Ordering::Relaxed);
            self.progress
                .max_gap_us
                .store(totals.max_gap_us, Ordering::Relaxed);
            if let (Some(tx), false) = (&self.tx, batch.is_empty()) {
                // The main loop is gone only when capture is failing anyway.
                let _ = tx.send(batch);
            }
            if stopping {
                break;
            }
            thread::park_timeout(DRAIN_PERIOD);
        }
        self.journal.finish()?;
        Ok(totals)
    }
}
