//! Turns periodic snapshots of the kernel flow table into per-interval rows.
//!
//! The kernel keeps cumulative counters per flow (since the entry was created). Every
//! `--flow-interval` the capture reads the whole table and emits one row per flow that saw
//! packets since the previous snapshot, with:
//! - `packets`, `bytes`: the increase over the interval;
//! - `first_seen_ns`: the direction's first packet if it came in this interval, else the
//!   interval start (the kernel does not keep per-interval first times);
//! - `last_seen_ns`: the direction's last packet;
//! - `tcp_flags`: every flag seen in that direction since the flow started (an OR cannot be
//!   split into intervals);
//! - directions without packets in the interval are all zero.
//!
//! All times are converted to UTC. An LRU eviction followed by a new entry for the same key is
//! detected (counters went down or the first-seen time changed) and counted from zero.

use std::collections::HashMap;

use formats::flows::FlowRow;
use record::{FlowCounters, FlowDirCounters, FlowKey};

use crate::clock::Clock;

/// State between snapshots.
#[derive(Debug)]
pub struct FlowTracker {
    prev: HashMap<FlowKey, FlowCounters>,
    /// Monotonic time of the previous snapshot (or of the start).
    last_mono: u64,
}

impl FlowTracker {
    /// A tracker whose first interval starts at `start_mono`.
    pub fn new(start_mono: u64) -> FlowTracker {
        FlowTracker {
            prev: HashMap::new(),
            last_mono: start_mono,
        }
    }

    /// Processes a snapshot taken at `now_mono`, appending the interval's rows to `out`.
    pub fn interval(
        &mut self,
        snapshot: &[(FlowKey, FlowCounters)],
        now_mono: u64,
        clock: &Clock,
        out: &mut Vec<FlowRow>,
    ) {
        let start = self.last_mono;
        let mut next = HashMap::with_capacity(snapshot.len());
        for (key, cur) in snapshot {
            let prev = self.prev.get(key);
            let a = delta(&cur.a_to_b, prev.map(|p| &p.a_to_b), start, clock);
            let b = delta(&cur.b_to_a, prev.map(|p| &p.b_to_a), start, clock);
            if a.packets > 0 || b.packets > 0 {
                out.push(FlowRow {
                    interval_start_ns: clock.to_utc(start),
                    interval_end_ns: clock.to_utc(now_mono),
                    key: *key,
                    counters: FlowCounters {
                        a_to_b: a,
                        b_to_a: b,
                    },
                });
            }
            next.insert(*key, *cur);
        }
        self.prev = next;
        self.last_mono = now_mono;
    }

    /// Flows known from the last snapshot.
    pub fn flows(&self) -> usize {
        self.prev.len()
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
    let (packets, bytes, earlier) = match same {
        Some(p) => (
            cur.packets - p.packets,
            cur.bytes.saturating_sub(p.bytes),
            p.packets > 0,
        ),
        None => (cur.packets, cur.bytes, false),
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
        tcp_flags: cur.tcp_flags,
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
        let mut t = FlowTracker::new(100);
        let mut c = FlowCounters::default();
        c.dir_mut(flow_dir::A_TO_B).add(150, 60, tcp_flag::SYN);
        let mut rows = Vec::new();
        t.interval(&[(key(), c)], 200, &clock, &mut rows);
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
        t.interval(&[(key(), c)], 300, &clock, &mut rows);
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
        t.interval(&[(key(), c)], 400, &clock, &mut rows);
        assert!(rows.is_empty());
        assert_eq!(t.flows(), 1);
    }

    #[test]
    fn evicted_and_recreated_flow_counts_from_zero() {
        let clock = Clock::with_offset(0);
        let mut t = FlowTracker::new(0);
        let mut c = FlowCounters::default();
        for i in 0..5 {
            c.dir_mut(flow_dir::A_TO_B).add(10 + i, 100, 0);
        }
        let mut rows = Vec::new();
        t.interval(&[(key(), c)], 100, &clock, &mut rows);
        let mut fresh = FlowCounters::default();
        fresh.dir_mut(flow_dir::A_TO_B).add(150, 70, 0);
        rows.clear();
        t.interval(&[(key(), fresh)], 200, &clock, &mut rows);
        let a = rows[0].counters.a_to_b;
        assert_eq!((a.packets, a.bytes, a.first_seen_ns), (1, 70, 150));
    }
}
