//! The reading end of the datapath's BPF ring buffer, consumed a pass at a time.
//!
//! aya's `RingBuf` hands out one entry at a time and publishes the consumer position after
//! each one with a sequentially consistent store. That position sits on the page the
//! kernel's producer reads on every `bpf_ringbuf_reserve`, so under a SYN flood each record
//! cost the reader a locked store and the sending CPU a cache line pulled back from the
//! reader's CPU. This reader maps the same pages, copies out every committed entry the
//! producer position announced when the pass began, and publishes the new position once per
//! [`PUBLISH_EVERY`] entries and at the end of the pass (BENCHMARKS.md, "Reading the ring a
//! pass at a time").
//!
//! The layout is the kernel's (`kernel/bpf/ringbuf.c`, stable since 5.8): the map's fd
//! mmaps one read-write page holding the consumer position, then (at offset one page) one
//! read-only page holding the producer position followed by the data pages mapped twice in
//! a row, so an entry that wraps around the end is contiguous. Each entry starts with an
//! 8-byte header: a u32 length (bit 31: still being written, bit 30: discarded) and a u32
//! page offset; entries are padded to 8 bytes. Positions are byte counts that only grow.

use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use aya::maps::MapData;
use record::{SynRecord, names};

use crate::error::{CaptureError, Result};

/// Header bit: the producer has reserved the entry and not yet committed it.
const BUSY_BIT: u32 = 1 << 31;
/// Header bit: the producer gave the entry up (`bpf_ringbuf_discard`); skip it.
const DISCARD_BIT: u32 = 1 << 30;
/// Size of an entry's header.
const HEADER: usize = 8;
/// Entries consumed between two publications of the consumer position within one pass: the
/// producer gets space back during a long pass, for one store per this many entries.
pub const PUBLISH_EVERY: u64 = 1024;

/// One `mmap`ed region, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: i32, len: usize, prot: i32, offset: usize) -> Result<Mapping> {
        let sys = |cause| CaptureError::Sys {
            call: "mmap of the ring buffer",
            cause,
        };
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| sys(std::io::Error::other("offset out of range")))?;
        // SAFETY: a fresh shared mapping of a BPF ring buffer fd; the kernel checks length,
        // offset and protection against the map (the producer page and data are read-only).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(sys(std::io::Error::last_os_error()));
        }
        let ptr = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| sys(std::io::Error::other("null mapping")))?;
        Ok(Mapping { ptr, len })
    }

    /// The position word at the start of the mapping.
    fn position(&self) -> &AtomicU64 {
        // SAFETY: the mapping is at least one page, page-aligned, and lives as long as
        // `self`; the kernel only ever accesses the word atomically (smp_load_acquire /
        // smp_store_release), as we do.
        unsafe { &*self.ptr.as_ptr().cast::<AtomicU64>() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; nothing borrows the mapping
        // past its owner.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The reader of the datapath's ring buffer of [`SynRecord`]s.
pub struct Ring {
    /// Keeps the map's fd open as long as the mappings are used.
    _map: MapData,
    consumer: Mapping,
    producer: Mapping,
    /// Page size: where the data starts in `producer`.
    data_offset: usize,
    /// Ring size in bytes (a power of two).
    size: usize,
}

// SAFETY: the mappings are plain shared memory owned by this value; the only writer of the
// consumer page in this process is this value, through `&mut self`.
unsafe impl Send for Ring {}

impl Ring {
    /// Maps the ring buffer `map` (of `BPF_MAP_TYPE_RINGBUF`).
    pub fn new(map: MapData) -> Result<Ring> {
        let map_err = |reason: String| CaptureError::Map {
            map: names::MAP_SYN_EVENTS,
            reason,
        };
        let size = map
            .info()
            .map_err(|e| map_err(e.to_string()))?
            .max_entries() as usize;
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(|_| map_err("no page size".into()))?;
        if !size.is_power_of_two() || size < page {
            return Err(map_err(format!(
                "size {size} is not a power-of-two number of pages"
            )));
        }
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + 2 * size, libc::PROT_READ, page)?;
        Ok(Ring {
            _map: map,
            consumer,
            producer,
            data_offset: page,
            size,
        })
    }

    /// Hands every record committed when the call began to `f`, in ring order, up to the
    /// first entry still being written; returns how many entries were malformed (not the
    /// size of a record), which cannot happen with a matching object.
    pub fn drain(&mut self, f: impl FnMut(SynRecord)) -> u64 {
        // Acquire pairs with the producer's release of its position: the headers up to it
        // are visible. The consumer position is ours alone: a relaxed read.
        let end = self.producer.position().load(Ordering::Acquire);
        let start = self.consumer.position().load(Ordering::Relaxed);
        // SAFETY: the data pages follow the producer page and are mapped twice, `2 * size`
        // bytes, all inside `producer`.
        let data = unsafe {
            std::slice::from_raw_parts(
                self.producer.ptr.as_ptr().add(self.data_offset),
                2 * self.size,
            )
        };
        let consumer = self.consumer.position();
        let (_, bad) = walk(data, self.size, start, end, f, |pos| {
            // SeqCst as libbpf and aya do: the producer reads it (acquire) on every reserve.
            consumer.store(pos, Ordering::SeqCst)
        });
        bad
    }
}

/// Reads the entries in `[start, end)` of a ring of `size` bytes whose data (mapped twice)
/// is `data`; stops early at an entry still being written. Calls `publish` with the new
/// consumer position every [`PUBLISH_EVERY`] entries and once at the end when it moved.
/// Returns the position reached and the number of malformed entries.
fn walk(
    data: &[u8],
    size: usize,
    start: u64,
    end: u64,
    mut f: impl FnMut(SynRecord),
    mut publish: impl FnMut(u64),
) -> (u64, u64) {
    let mask = (size - 1) as u64;
    let (mut pos, mut bad, mut since) = (start, 0, 0);
    while pos < end {
        let off = (pos & mask) as usize;
        let Some(header) = data.get(off..off + 4) else {
            break;
        };
        // SAFETY: 4 in-bounds bytes at an 8-aligned offset of a page-aligned mapping; the
        // producer writes the header with an atomic exchange.
        let header = unsafe { &*header.as_ptr().cast::<AtomicU32>() }.load(Ordering::Acquire);
        if header & BUSY_BIT != 0 {
            break;
        }
        let len = (header & !(BUSY_BIT | DISCARD_BIT)) as usize;
        if len > size - HEADER {
            // Not a header the kernel writes: nothing after it can be located. Count it and
            // leave the ring as it is, rather than read garbage.
            bad += 1;
            break;
        }
        if header & DISCARD_BIT == 0 {
            match data.get(off + HEADER..off + HEADER + len) {
                Some(bytes) if len == SynRecord::SIZE => f(bytemuck::pod_read_unaligned(bytes)),
                _ => bad += 1,
            }
        }
        pos += (HEADER + len).next_multiple_of(8) as u64;
        since += 1;
        if since == PUBLISH_EVERY {
            publish(pos);
            since = 0;
        }
    }
    if since > 0 {
        publish(pos);
    }
    (pos, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring of `size` bytes mapped twice, as the kernel does, filled from `entries`
    /// (header word, payload) starting at position `start`; returns the data (in u64s, so
    /// the headers are aligned as in the real mapping) and the end position.
    fn ring(size: usize, start: u64, entries: &[(u32, Vec<u8>)]) -> (Vec<u64>, u64) {
        let mut once = vec![0u8; size];
        let mut pos = start;
        for (header, payload) in entries {
            let mut entry = header.to_le_bytes().to_vec();
            entry.extend([0; 4]);
            entry.extend(payload);
            entry.resize(entry.len().next_multiple_of(8), 0);
            for (i, b) in entry.iter().enumerate() {
                once[(pos as usize + i) % size] = *b;
            }
            pos += entry.len() as u64;
        }
        let words = once.chunks(8).chain(once.chunks(8));
        (
            words
                .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
                .collect(),
            pos,
        )
    }

    fn as_bytes(words: &[u64]) -> &[u8] {
        // SAFETY: u64s viewed as their bytes; u8 has no alignment requirement.
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 8) }
    }

    fn syn(port: u16) -> SynRecord {
        let mut r = SynRecord::ZERO;
        r.src_port = port;
        r.ip_version = 4;
        r
    }

    fn payload(r: &SynRecord) -> Vec<u8> {
        bytemuck::bytes_of(r).to_vec()
    }

    fn read_all(data: &[u64], size: usize, start: u64, end: u64) -> (Vec<u16>, u64, u64, Vec<u64>) {
        let data = as_bytes(data);
        let (mut ports, mut published) = (Vec::new(), Vec::new());
        let (pos, bad) = walk(
            data,
            size,
            start,
            end,
            |r| ports.push(r.src_port),
            |p| published.push(p),
        );
        (ports, pos, bad, published)
    }

    #[test]
    fn reads_committed_entries_in_order_and_publishes_once() {
        let size = 4096;
        let rec = SynRecord::SIZE as u32;
        let (data, end) = ring(size, 0, &[(rec, payload(&syn(1))), (rec, payload(&syn(2)))]);
        let (ports, pos, bad, published) = read_all(&data, size, 0, end);
        assert_eq!(ports, [1, 2]);
        assert_eq!((pos, bad), (end, 0));
        assert_eq!(published, [end]);
    }

    #[test]
    fn skips_discarded_and_stops_at_busy() {
        let size = 4096;
        let rec = SynRecord::SIZE as u32;
        let entries = [
            (rec | DISCARD_BIT, payload(&syn(1))),
            (rec, payload(&syn(2))),
            (rec | BUSY_BIT, payload(&syn(3))),
            (rec, payload(&syn(4))),
        ];
        let (data, end) = ring(size, 0, &entries);
        let (ports, pos, bad, published) = read_all(&data, size, 0, end);
        assert_eq!(ports, [2]);
        assert_eq!(bad, 0);
        // Stopped before the busy entry: the next pass starts there.
        let busy_at = 2 * (HEADER + SynRecord::SIZE) as u64;
        assert_eq!((pos, published), (busy_at, vec![busy_at]));
    }

    #[test]
    fn an_entry_across_the_end_reads_whole_through_the_second_mapping() {
        let size = 4096;
        let rec = SynRecord::SIZE as u32;
        // Starts 64 bytes before the end of the ring: header and half the record wrap.
        let start = (3 * size - 64) as u64;
        let (data, end) = ring(
            size,
            start,
            &[(rec, payload(&syn(7))), (rec, payload(&syn(8)))],
        );
        let (ports, pos, bad, _) = read_all(&data, size, start, end);
        assert_eq!(ports, [7, 8]);
        assert_eq!((pos, bad), (end, 0));
    }

    #[test]
    fn wrong_sizes_are_counted_and_a_corrupt_length_stops_the_pass() {
        let size = 4096;
        let rec = SynRecord::SIZE as u32;
        let (data, end) = ring(
            size,
            0,
            &[(16, vec![0; 16]), (rec, payload(&syn(5))), (5000, vec![])],
        );
        let (ports, pos, bad, _) = read_all(&data, size, 0, end);
        assert_eq!(ports, [5]);
        assert_eq!(bad, 2);
        assert!(pos < end, "the pass stops at the corrupt header");
    }

    #[test]
    fn publishes_every_so_many_entries_in_a_long_pass() {
        let size = 1 << 20;
        let rec = SynRecord::SIZE as u32;
        let n = 2 * PUBLISH_EVERY as usize + 3;
        let entries: Vec<_> = (0..n).map(|i| (rec, payload(&syn(i as u16)))).collect();
        let (data, end) = ring(size, 0, &entries);
        let (ports, pos, bad, published) = read_all(&data, size, 0, end);
        assert_eq!(ports.len(), n);
        assert_eq!((pos, bad), (end, 0));
        let step = PUBLISH_EVERY * (HEADER + SynRecord::SIZE) as u64;
        assert_eq!(published, [step, 2 * step, end]);
    }

    #[test]
    fn an_empty_ring_publishes_nothing() {
        let (data, end) = ring(4096, 512, &[]);
        let (ports, pos, bad, published) = read_all(&data, 4096, 512, end);
        assert!(ports.is_empty() && published.is_empty());
        assert_eq!((pos, bad), (512, 0));
    }
}
