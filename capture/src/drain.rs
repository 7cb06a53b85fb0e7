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

/// Where the drain takes records from: the datapath's [`Ring`]; tests feed it their own.
pub trait Source: Send + 'static {
    /// Hands every record available now to `f`, in order; returns how many entries were
    /// malformed.
    fn drain(&mut self, f: impl FnMut(SynRecord)) -> u64;
}

impl Source for Ring {
    fn drain(&mut self, f: impl FnMut(SynRecord)) -> u64 {
        Ring::drain(self, f)
    }
}

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
    /// The thread; taken when it is joined early, after it ended on an error.
    handle: Option<JoinHandle<Result<Drained>>>,
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
        ring: impl Source,
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
            handle: Some(handle),
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
    pub fn swap_journal(&mut self, next: JournalWriter) -> Result<JournalWriter> {
        let (tx, rx) = mpsc::channel();
        if self.swaps.send((next, tx)).is_err() {
            return Err(self.ended_early());
        }
        if let Some(h) = &self.handle {
            h.thread().unpark();
        }
        match rx.recv() {
            Ok(reply) => reply,
            Err(_) => Err(self.ended_early()),
        }
    }

    /// The error that ended the thread on its own (a full disk, say), joining it: a swap
    /// that finds the thread gone reports why it went, not merely that it did.
    fn ended_early(&mut self) -> CaptureError {
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => panicked(),
            Some(Ok(Ok(_))) | None => CaptureError::Sys {
                call: "ring-drain thread",
                cause: std::io::Error::other("stopped before the journal swap"),
            },
        }
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
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the thread after one last drain and closes the journal (synced), then hands
    /// `rest` the channel with the records not yet taken; returns the totals, or the error
    /// that ended the thread.
    pub fn stop_keeping(mut self, rest: impl FnOnce(&Receiver<Vec<SynRecord>>)) -> Result<Drained> {
        self.stop.store(true, Ordering::Release);
        let Some(handle) = self.handle.take() else {
            // Joined already by a swap, which returned the thread's error.
            rest(&self.records);
            return Err(self.ended_early());
        };
        handle.thread().unpark();
        let joined = handle.join();
        rest(&self.records);
        joined.unwrap_or_else(|_| Err(panicked()))
    }
}

fn panicked() -> CaptureError {
    CaptureError::Sys {
        call: "ring-drain thread",
        cause: std::io::Error::other("panicked"),
    }
}

struct Worker<S> {
    ring: S,
    journal: JournalWriter,
    clock: Clock,
    flush: Duration,
    tx: Option<Sender<Vec<SynRecord>>>,
    spare: Receiver<Vec<SynRecord>>,
    swaps: Receiver<Swap>,
    stop: Arc<AtomicBool>,
    progress: Arc<Progress>,
}

impl<S: Source> Worker<S> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal;

    /// What the test's source does on its next drain.
    enum Step {
        Record(SynRecord),
        Panic,
    }

    /// Records sent by the test, handed over on the next drain.
    struct Feed(Receiver<Step>);

    impl Source for Feed {
        fn drain(&mut self, mut f: impl FnMut(SynRecord)) -> u64 {
            while let Ok(step) = self.0.try_recv() {
                match step {
                    Step::Record(r) => f(r),
                    Step::Panic => panic!("the test's source fails"),
                }
            }
            0
        }
    }

    fn rec(port: u16) -> SynRecord {
        let mut r = SynRecord::ZERO;
        r.ip_version = 4;
        r.src_port = port;
        r.ts_ns = u64::from(port) * 1000;
        r
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while !done() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    fn journal_at(dir: &tempfile::TempDir, name: &str) -> JournalWriter {
        JournalWriter::create::<SynRecord>(&dir.path().join(name), &[]).unwrap()
    }

    fn ports(dir: &tempfile::TempDir, name: &str) -> Vec<(u16, u64)> {
        journal::read::<SynRecord>(&dir.path().join(name))
            .unwrap()
            .frames
            .iter()
            .map(|r| (r.src_port, r.ts_ns))
            .collect()
    }

    #[test]
    fn a_swap_splits_the_records_between_journals_in_utc() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let clock = Clock::with_offset(5_000_000);
        let mut d = Drainer::start(
            Feed(rx),
            journal_at(&dir, "a"),
            clock,
            Duration::from_secs(60),
            true,
        )
        .unwrap();
        for p in 1..=3 {
            tx.send(Step::Record(rec(p))).unwrap();
        }
        wait_for("3 records", || d.progress().records == 3);
        let old = d.swap_journal(journal_at(&dir, "b")).unwrap();
        assert_eq!(
            (old.path(), old.frames()),
            (dir.path().join("a").as_path(), 3)
        );
        tx.send(Step::Record(rec(4))).unwrap();
        wait_for("4 records", || d.progress().records == 4);
        let mut flowed = Vec::new();
        let drained = d
            .stop_keeping(|batches| {
                flowed.extend(batches.try_iter().flatten().map(|r| r.src_port));
            })
            .unwrap();
        assert_eq!(drained.records, 4);
        // The flow batches keep monotonic time; the journals hold UTC.
        assert_eq!(flowed, [1, 2, 3, 4]);
        assert_eq!(
            ports(&dir, "a"),
            [(1, 5_001_000), (2, 5_002_000), (3, 5_003_000)]
        );
        assert_eq!(ports(&dir, "b"), [(4, 5_004_000)]);
    }

    #[test]
    fn a_swap_after_the_thread_ended_says_why_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::channel();
        let mut d = Drainer::start(
            Feed(rx),
            journal_at(&dir, "a"),
            Clock::with_offset(0),
            Duration::from_secs(60),
            false,
        )
        .unwrap();
        tx.send(Step::Panic).unwrap();
        wait_for("the thread to end", || d.failed());
        let err = d.swap_journal(journal_at(&dir, "b")).unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        assert!(d.failed());
        let err = d.stop_keeping(|_| {}).unwrap_err();
        assert!(err.to_string().contains("ring-drain thread"), "{err}");
    }
}
