//! Turns periodic snapshots of the kernel flow table, plus the SYN records, into per-interval
//! rows.
//!
//! The kernel keeps cumulative counters per flow (since the entry was created) for every TCP
//! packet except the SYNs it recorded: those it leaves to this module, which adds each
//! drained record to its flow ([`FlowTracker::record`]). That keeps a SYN flood away from the
//! kernel's table entirely; here it costs one hash-map update per record.
//!
//! Every `--flow-interval` the capture reads the whole table and emits one row per flow that
//! saw packets since the previous snapshot, with:
//! - `packets`, `bytes`: the increase over the interval, plus the interval's recorded SYNs;
//! - `first_seen_ns`: the direction's first packet if it came in this interval, else the
//!   interval start (the kernel does not keep per-interval first times);
//! - `last_seen_ns`: the direction's last packet;
//! - `tcp_flags`: every flag seen in that direction since the flow started (an OR cannot be
//!   split into intervals);
//! - directions without packets in the interval are all zero.
//!
//! The kernel's times have the tick's precision (it reads the coarse clock for flows), the
//! records' are exact. All times are converted to UTC. An LRU eviction followed by a new entry
//! for the same key is detected (counters went down or the first-seen time changed) and
//! counted from zero.
//!
//! Recorded SYNs wait for the interval's end in a table bounded like the kernel's
//! (`--flow-entries` flows). Once it is full, every further record of the interval is counted
//! in [`FlowTracker::overflow`] instead: its packet is in the SYN recording but in no flow
//! row. Only a flood of new flows (or a host with more new flows per interval than the
//! kernel's table holds) fills it. The table keeps std's randomly keyed SipHash: its keys are
//! chosen by whoever sends packets, and a flood of colliding keys must not stall capture.

use std::collections::HashMap;

use formats::flows::FlowRow;
use record::{FlowCounters, FlowDirCounters, FlowKey, SynRecord};

use crate::clock::Clock;

/// State between snapshots.
#[derive(Debug)]
pub struct FlowTracker {
    /// Each flow's kernel counters at the previous snapshot, with the flags its recorded
    /// SYNs added (the kernel never saw those).
    prev: HashMap<FlowKey, FlowCounters>,
    /// The flags of flows whose packets in the previous interval were all recorded SYNs
    /// (a -> b, b -> a), for their later rows; kept apart from `prev` because a flood makes
    /// many of them and a full entry would be three times the size.
    carried: HashMap<FlowKey, [u16; 2]>,
    /// Recorded SYNs since the previous snapshot, by flow (monotonic times).
    recorded: HashMap<FlowKey, FlowCounters>,
    /// Most flows `recorded` holds.
    capacity: usize,
    /// Records not added to any flow because `recorded` was full.
    overflow: u64,
    /// Monotonic time of the previous snapshot (or of the start).
    last_mono: u64,
}

impl FlowTracker {
    /// A tracker whose first interval starts at `start_mono`, holding the recorded SYNs of
    /// at most `capacity` flows per interval.
    pub fn new(start_mono: u64, capacity: usize) -> FlowTracker {
        FlowTracker {
            prev: HashMap::new(),
            carried: HashMap::new(),
            recorded: HashMap::new(),
            capacity,
            overflow: 0,
            last_mono: start_mono,
        }
    }

    /// Adds drained SYN records (their `ts_ns` still monotonic) to their flows.
    pub fn record_all(&mut self, recs: &[SynRecord]) {
        for r in recs {
            self.record(r);
        }
    }

    /// Adds a drained SYN record (its `ts_ns` still monotonic) to its flow.
    pub fn record(&mut self, rec: &SynRecord) {
        // Full: counted without a key or a lookup, so that past the limit a flood's SYN costs
        // only this (the table is a random access into megabytes: a cache miss per lookup).
        if self.recorded.len() >= self.capacity {
            self.overflow += 1;
            return;
        }
        let (key, dir) = rec.flow_key();
        self.recorded.entry(key).or_default().dir_mut(dir).add(
            rec.ts_ns,
            rec.l3_bytes(),
            rec.tcp_flags,
        );
    }

    /// Processes a snapshot taken at `now_mono`, handing the interval's rows to `emit` one
    /// by one (a flood's interval has tens of thousands; nothing collects them here).
    pub fn interval(
        &mut self,
        snapshot: &[(FlowKey, FlowCounters)],
        now_mono: u64,
        clock: &Clock,
        emit: &mut dyn FnMut(FlowRow),
    ) {
        let start = self.last_mono;
        let (from, to) = (clock.to_utc(start), clock.to_utc(now_mono));
        let mut row = |key: &FlowKey, counters: FlowCounters| {
            if counters.a_to_b.packets > 0 || counters.b_to_a.packets > 0 {
                emit(FlowRow {
                    interval_start_ns: from,
                    interval_end_ns: to,
                    key: *key,
                    counters,
                });
            }
        };
        let mut next = HashMap::with_capacity(snapshot.len());
        for (key, cur) in snapshot {
            let mut prev = self.prev.get(key).copied();
            if let (None, Some([ab, ba])) = (prev, self.carried.get(key)) {
                // First kernel entry of a flow whose recorded SYNs came earlier.
                let mut flags = FlowCounters::default();
                flags.a_to_b.tcp_flags = *ab;
                flags.b_to_a.tcp_flags = *ba;
                prev = Some(flags);
            }
            let mut counters = FlowCounters {
                a_to_b: delta(&cur.a_to_b, prev.as_ref().map(|p| &p.a_to_b), start, clock),
                b_to_a: delta(&cur.b_to_a, prev.as_ref().map(|p| &p.b_to_a), start, clock),
            };
            // Flags stay for the flow's later rows, including those only this module saw.
            let mut kept = *cur;
            if let Some(p) = &prev {
                kept.a_to_b.tcp_flags |= p.a_to_b.tcp_flags;
                kept.b_to_a.tcp_flags |= p.b_to_a.tcp_flags;
            }
            if let Some(rec) = self.recorded.remove(key) {
                counters.merge(&recorded_rows(&rec, start, clock));
                kept.a_to_b.tcp_flags |= rec.a_to_b.tcp_flags;
                kept.b_to_a.tcp_flags |= rec.b_to_a.tcp_flags;
            }
            row(key, counters);
            next.insert(*key, kept);
        }
        // Flows whose packets this interval were all recorded SYNs (the kernel has no entry
        // for them yet, or never will). Their flags are carried for one interval, long
        // enough for a handshake that straddles the boundary.
        self.carried.clear();
        for (key, rec) in self.recorded.drain() {
            row(&key, recorded_rows(&rec, start, clock));
            self.carried
                .insert(key, [rec.a_to_b.tcp_flags, rec.b_to_a.tcp_flags]);
        }
        self.prev = next;
        self.last_mono = now_mono;
    }

    /// Flows known from the last snapshot.
    pub fn flows(&self) -> usize {
        self.prev.len()
    }

    /// Recorded SYNs that no flow row counts, because the table of recorded flows was full
    /// (see the module documentation).
    pub fn overflow(&self) -> u64 {
        self.overflow
    }
}

/// Recorded-SYN counters as interval-row counters: UTC times, none before the interval.
fn recorded_rows(rec: &FlowCounters, interval_start: u64, clock: &Clock) -> FlowCounters {
    let conv = |d: &FlowDirCounters| {
        if d.packets == 0 {
            return FlowDirCounters::default();
        }
        let first = clock.to_utc(d.first_seen_ns.max(interval_start));
        FlowDirCounters {
            first_seen_ns: first,
            last_seen_ns: clock.to_utc(d.last_seen_ns).max(first),
            ..*d
        }
    };
    FlowCounters {
        a_to_b: conv(&rec.a_to_b),
        b_to_a: conv(&rec.b_to_a),
    }
}

fn delta(
    cur: &FlowDirCounters,
    prev: Option<&FlowDirCounters>,
    interval_start: u64,
    clock: &Clock,
) -> FlowDirCounters {
    let same = prev.filter(|p| {
        cur.packets >= p.packets && (p.first_seen_ns == 0 || p.first_seen_ns == cur.first_seen_ns)
    });
    // `prev`'s flags include those of the flow's recorded SYNs, which the kernel never saw.
    let (packets, bytes, earlier, flags) = match same {
        Some(p) => (
            cur.packets - p.packets,
            cur.bytes.saturating_sub(p.bytes),
            p.packets > 0,
            cur.tcp_flags | p.tcp_flags,
        ),
        None => (cur.packets, cur.bytes, false, cur.tcp_flags),
    };
    if packets == 0 {
        return FlowDirCounters::default();
    }
    let first_mono = if earlier {
        cur.first_seen_ns.max(interval_start)
    } else {
        cur.first_seen_ns
    };
    let first = clock.to_utc(first_mono);
    let last = clock.to_utc(cur.last_seen_ns).max(first);
    FlowDirCounters {
        packets,
        bytes,
        first_seen_ns: first,
        last_seen_ns: last,
        tcp_flags: flags,
        _pad0: [0; 6],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::{flow_dir, tcp_flag};

    fn key() -> FlowKey {
        FlowKey::new(
            4,
            [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            1000,
            [0; 16],
            80,
        )
        .0
    }

    #[test]
    fn deltas_over_intervals() {
        let clock = Clock::with_offset(1_000_000);
        let mut t = FlowTracker::new(100, 16);
        let mut c = FlowCounters::default();
        c.dir_mut(flow_dir::A_TO_B).add(150, 60, tcp_flag::SYN);
        let mut rows = Vec::new();
        t.interval(&[(key(), c)], 200, &clock, &mut |r| rows.push(r));
        assert_eq!(rows.len(), 1);
        let r = rows[0];
        assert_eq!(
            (r.interval_start_ns, r.interval_end_ns),
            (1_000_100, 1_000_200)
        );
        assert_eq!(
            (r.counters.a_to_b.packets, r.counters.a_to_b.bytes),
            (1, 60)
        );
        assert_eq!(r.counters.a_to_b.first_seen_ns, 1_000_150);
        assert_eq!(r.counters.b_to_a, FlowDirCounters::default());

        // Next interval: one more packet each way.
        c.dir_mut(flow_dir::A_TO_B).add(250, 40, tcp_flag::ACK);
        c.dir_mut(flow_dir::B_TO_A).add(260, 1500, tcp_flag::ACK);
        rows.clear();
        t.interval(&[(key(), c)], 300, &clock, &mut |r| rows.push(r));
        let r = rows[0];
        let a = r.counters.a_to_b;
        assert_eq!((a.packets, a.bytes), (1, 40));
        // Earlier packets exist: first_seen is clamped to the interval start.
        assert_eq!((a.first_seen_ns, a.last_seen_ns), (1_000_200, 1_000_250));
        assert_eq!(a.tcp_flags, tcp_flag::SYN | tcp_flag::ACK);
        let b = r.counters.b_to_a;
        assert_eq!((b.packets, b.bytes, b.first_seen_ns), (1, 1500, 1_000_260));

        // Idle interval: no row.
        rows.clear();
        t.interval(&[(key(), c)], 400, &clock, &mut |r| rows.push(r));
        assert!(rows.is_empty());
        assert_eq!(t.flows(), 1);
    }

    #[test]
    fn evicted_and_recreated_flow_counts_from_zero() {
        let clock = Clock::with_offset(0);
        let mut t = FlowTracker::new(0, 16);
        let mut c = FlowCounters::default();
        for i in 0..5 {
            c.dir_mut(flow_dir::A_TO_B).add(10 + i, 100, 0);
        }
        let mut rows = Vec::new();
        t.interval(&[(key(), c)], 100, &clock, &mut |r| rows.push(r));
        let mut fresh = FlowCounters::default();
        fresh.dir_mut(flow_dir::A_TO_B).add(150, 70, 0);
        rows.clear();
        t.interval(&[(key(), fresh)], 200, &clock, &mut |r| rows.push(r));
        let a = rows[0].counters.a_to_b;
        assert_eq!((a.packets, a.bytes, a.first_seen_ns), (1, 70, 150));
    }

    /// A SYN from 10.0.0.1:`sport` to 10.0.0.2:80: endpoint a of [`client_key`]`(sport)`.
    fn syn(ts: u64, sport: u16, flags: u16) -> SynRecord {
        let mut r = SynRecord::ZERO;
        r.ip_version = 4;
        r.src_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        r.dst_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        r.src_port = sport;
        r.dst_port = 80;
        r.ip_len = 60;
        r.tcp_flags = flags;
        r.ts_ns = ts;
        r
    }

    fn client_key(sport: u16) -> FlowKey {
        let r = syn(0, sport, 0);
        let (k, dir) = FlowKey::new(4, r.src_addr, sport, r.dst_addr, 80);
        assert_eq!(dir, flow_dir::A_TO_B);
        k
    }

    #[test]
    fn recorded_syns_join_their_flow() {
        let clock = Clock::with_offset(0);
        let mut t = FlowTracker::new(100, 16);
        // The SYN is only in the ring; the kernel counted the handshake's ACK.
        t.record(&syn(110, 1000, tcp_flag::SYN));
        let mut c = FlowCounters::default();
        c.dir_mut(flow_dir::A_TO_B).add(130, 40, tcp_flag::ACK);
        let mut rows = Vec::new();
        t.interval(&[(client_key(1000), c)], 200, &clock, &mut |r| rows.push(r));
        assert_eq!(rows.len(), 1);
        let a = rows[0].counters.a_to_b;
        assert_eq!((a.packets, a.bytes), (2, 100));
        assert_eq!((a.first_seen_ns, a.last_seen_ns), (110, 130));
        assert_eq!(a.tcp_flags, tcp_flag::SYN | tcp_flag::ACK);

        // A later interval keeps the SYN flag the kernel never saw.
        c.dir_mut(flow_dir::A_TO_B).add(250, 40, tcp_flag::ACK);
        rows.clear();
        t.interval(&[(client_key(1000), c)], 300, &clock, &mut |r| rows.push(r));
        let a = rows[0].counters.a_to_b;
        assert_eq!((a.packets, a.bytes), (1, 40));
        assert_eq!(a.tcp_flags, tcp_flag::SYN | tcp_flag::ACK);
    }

    #[test]
    fn flows_of_recorded_syns_only_get_rows_and_keep_their_flags() {
        let clock = Clock::with_offset(0);
        let mut t = FlowTracker::new(0, 16);
        t.record(&syn(10, 1000, tcp_flag::SYN));
        t.record(&syn(20, 1000, tcp_flag::SYN)); // a retransmission
        let mut rows = Vec::new();
        t.interval(&[], 100, &clock, &mut |r| rows.push(r));
        assert_eq!(rows.len(), 1);
        let a = rows[0].counters.a_to_b;
        assert_eq!(
            (a.packets, a.bytes, a.first_seen_ns, a.last_seen_ns),
            (2, 120, 10, 20)
        );
        // The kernel's entry appears in the next interval (the client's ACK).
        let mut c = FlowCounters::default();
        c.dir_mut(flow_dir::A_TO_B).add(150, 40, tcp_flag::ACK);
        rows.clear();
        t.interval(&[(client_key(1000), c)], 200, &clock, &mut |r| rows.push(r));
        let a = rows[0].counters.a_to_b;
        assert_eq!((a.packets, a.first_seen_ns), (1, 150));
        assert_eq!(a.tcp_flags, tcp_flag::SYN | tcp_flag::ACK);
    }

    #[test]
    fn a_full_table_counts_what_it_leaves_out() {
        let clock = Clock::with_offset(0);
        let mut t = FlowTracker::new(0, 2);
        for port in 1..=5 {
            t.record(&syn(10, port, tcp_flag::SYN));
        }
        // Once full, even a flow it holds is counted as overflow (no lookup past the limit).
        t.record(&syn(11, 1, tcp_flag::SYN));
        assert_eq!(t.overflow(), 4);
        let mut rows = Vec::new();
        t.interval(&[], 100, &clock, &mut |r| rows.push(r));
        let packets: u64 = rows.iter().map(|r| r.counters.a_to_b.packets).sum();
        assert_eq!((rows.len(), packets), (2, 2));
        // The next interval has room again.
        t.record(&syn(110, 9, tcp_flag::SYN));
        assert_eq!(t.overflow(), 4);
    }
}
