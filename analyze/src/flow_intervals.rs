//! Per-interval flow counters built from packets, for recordings made from pcaps.
//!
//! `capture` drains the kernel flow table every `--flow-interval` and writes one row per flow
//! per interval. To make a pcap-derived recording look the same to a notebook, packets are
//! grouped into intervals of the same length, aligned to multiples of the interval since the
//! Unix epoch (so two files of the same day line up), and each interval's rows hold the
//! counts *within* that interval.

use std::collections::HashMap;

use formats::flows::FlowRow;
use record::{FlowCounters, FlowKey};

/// Accumulates flow counters and hands out finished intervals.
#[derive(Debug)]
pub struct FlowIntervals {
    interval_ns: u64,
    /// Start of the interval being filled; `None` before the first packet.
    current: Option<u64>,
    table: HashMap<FlowKey, FlowCounters>,
}

impl FlowIntervals {
    /// `interval_ns` of 0 is treated as 1 ns (every packet its own interval would be silly, but
    /// never a division by zero).
    pub fn new(interval_ns: u64) -> Self {
        FlowIntervals {
            interval_ns: interval_ns.max(1),
            current: None,
            table: HashMap::new(),
        }
    }

    /// Counts one TCP packet. When it falls into a later interval than the one being filled,
    /// that interval's rows are passed to `emit` first (sorted by flow key, so output does not
    /// depend on hashing). A packet older than the current interval (captures are not always
    /// in time order) is counted in the current one rather than reopening a finished interval.
    pub fn add(
        &mut self,
        key: &FlowKey,
        dir: u8,
        ts_ns: u64,
        l3_bytes: u64,
        tcp_flags: u16,
        emit: &mut impl FnMut(FlowRow),
    ) {
        let start = ts_ns - ts_ns % self.interval_ns;
        match self.current {
            Some(cur) if start > cur => {
                self.flush(emit);
                self.current = Some(start);
            }
            Some(_) => {}
            None => self.current = Some(start),
        }
        self.table
            .entry(*key)
            .or_default()
            .dir_mut(dir)
            .add(ts_ns, l3_bytes, tcp_flags);
    }

    /// Emits the interval being filled (if any) and starts empty.
    pub fn flush(&mut self, emit: &mut impl FnMut(FlowRow)) {
        let Some(start) = self.current.take() else {
            return;
        };
        let mut rows: Vec<(FlowKey, FlowCounters)> = self.table.drain().collect();
        rows.sort_unstable_by_key(|r| r.0);
        let end = start.saturating_add(self.interval_ns);
        for (key, counters) in rows {
            emit(FlowRow {
                interval_start_ns: start,
                interval_end_ns: end,
                key,
                counters,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use record::{flow_dir, tcp_flag};

    fn key(last: u8) -> FlowKey {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[198, 51, 100, last]);
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&[198, 51, 100, 200]);
        FlowKey::new(4, a, 40000, b, 80).0
    }

    #[test]
    fn intervals_split_and_sort() {
        let s = 1_000_000_000u64;
        let mut fi = FlowIntervals::new(10 * s);
        let mut rows = Vec::new();
        let mut emit = |r: FlowRow| rows.push(r);
        fi.add(
            &key(2),
            flow_dir::A_TO_B,
            101 * s,
            60,
            tcp_flag::SYN,
            &mut emit,
        );
        fi.add(
            &key(1),
            flow_dir::A_TO_B,
            102 * s,
            60,
            tcp_flag::SYN,
            &mut emit,
        );
        fi.add(
            &key(2),
            flow_dir::B_TO_A,
            103 * s,
            60,
            tcp_flag::SYN | tcp_flag::ACK,
            &mut emit,
        );
        // Out of order by a little: stays in the current interval.
        fi.add(
            &key(1),
            flow_dir::A_TO_B,
            99 * s,
            40,
            tcp_flag::ACK,
            &mut emit,
        );
        // Next interval: the first one is emitted.
        fi.add(
            &key(1),
            flow_dir::A_TO_B,
            125 * s,
            1500,
            tcp_flag::PSH,
            &mut emit,
        );
        fi.flush(&mut emit);
        fi.flush(&mut emit); // idempotent
        assert_eq!(rows.len(), 3);
        assert!(rows[0].key < rows[1].key, "sorted by key");
        assert_eq!(rows[0].interval_start_ns, 100 * s);
        assert_eq!(rows[0].interval_end_ns, 110 * s);
        let k1 = rows
            .iter()
            .find(|r| r.key == key(1) && r.interval_start_ns == 100 * s);
        let k1 = k1.unwrap().counters.a_to_b;
        assert_eq!((k1.packets, k1.bytes, k1.first_seen_ns), (2, 100, 99 * s));
        let k2 = rows.iter().find(|r| r.key == key(2)).unwrap().counters;
        assert_eq!((k2.a_to_b.packets, k2.b_to_a.packets), (1, 1));
        assert_eq!(rows[2].interval_start_ns, 120 * s);
        assert_eq!(rows[2].counters.a_to_b.bytes, 1500);
    }

    #[test]
    fn zero_interval_does_not_divide_by_zero() {
        let mut fi = FlowIntervals::new(0);
        let mut n = 0;
        fi.add(&key(1), 0, 5, 1, 0, &mut |_| n += 1);
        fi.add(&key(1), 0, 6, 1, 0, &mut |_| n += 1);
        fi.flush(&mut |_| n += 1);
        assert_eq!(n, 2);
    }
}
