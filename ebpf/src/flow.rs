//! The flow-table key, computed the BPF-friendly way.
//!
//! [`record::FlowKey::new`] takes both addresses by value and compares them byte by byte; in
//! BPF that scalarises into 32 spilled registers and overflows the 512-byte stack. This
//! computes exactly the same key (a unit test checks it against `FlowKey::new`) by reading
//! the addresses as 64-bit words straight from the record and writing the key in place, a
//! word at a time (see [`crate::words`]).

use record::{FlowKey, SynRecord, flow_dir};

use crate::words;

/// A [`FlowKey`] on an 8-byte boundary, so it can be written in words (the key itself only
/// needs 2-byte alignment).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlignedKey(pub FlowKey);

const _: () = assert!(FlowKey::SIZE == 40 && core::mem::size_of::<AlignedKey>() == 40);

/// The record's address as two words, in memory order (for copying) and big-endian value
/// (for ordering).
#[inline(always)]
fn words_of(a: &[u8; 16]) -> ([u64; 2], (u64, u64)) {
    let p = a.as_ptr().cast::<u64>();
    // SAFETY: `a` is 16 bytes at offset 16 or 32 of an 8-aligned SynRecord (layout pinned in
    // `record`), so both words are in bounds and aligned.
    let w = unsafe { [p.read(), p.add(1).read()] };
    (w, (u64::from_be(w[0]), u64::from_be(w[1])))
}

/// Fills `key` for the packet in `rec` and returns its [`flow_dir`], exactly like
/// [`FlowKey::new`]`(rec.ip_version, rec.src_addr, rec.src_port, rec.dst_addr, rec.dst_port)`.
#[inline(always)]
pub fn flow_key(rec: &SynRecord, key: &mut AlignedKey) -> u8 {
    let (s_words, (s_hi, s_lo)) = words_of(&rec.src_addr);
    let (d_words, (d_hi, d_lo)) = words_of(&rec.dst_addr);
    let src_first = if s_hi != d_hi {
        s_hi < d_hi
    } else if s_lo != d_lo {
        s_lo < d_lo
    } else {
        rec.src_port <= rec.dst_port
    };
    let (a, b, port_a, port_b, dir) = if src_first {
        (
            s_words,
            d_words,
            rec.src_port,
            rec.dst_port,
            flow_dir::A_TO_B,
        )
    } else {
        (
            d_words,
            s_words,
            rec.dst_port,
            rec.src_port,
            flow_dir::B_TO_A,
        )
    };
    // Last word: port_a, port_b, ip_version, three zero bytes (offsets 32..40).
    let mut tail = [0u8; 8];
    let (pa, pb) = (port_a.to_ne_bytes(), port_b.to_ne_bytes());
    tail[0] = pa[0];
    tail[1] = pa[1];
    tail[2] = pb[0];
    tail[3] = pb[1];
    tail[4] = rec.ip_version;
    let out = [a[0], a[1], b[0], b[1], u64::from_ne_bytes(tail)];
    // SAFETY: `AlignedKey` is 40 bytes, 8-aligned; `out` is five words.
    unsafe { words::copy::<5>((key as *mut AlignedKey).cast::<u64>(), out.as_ptr()) };
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tiny deterministic generator (xorshift) so the comparison covers many inputs without
    /// extra dependencies.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn zero_key() -> AlignedKey {
        AlignedKey(FlowKey::new(0, [0; 16], 0, [0; 16], 0).0)
    }

    #[test]
    fn matches_record_flow_key_new() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        for i in 0..20_000 {
            let mut rec = SynRecord::ZERO;
            rec.ip_version = if i % 2 == 0 { 4 } else { 6 };
            for b in rec.src_addr.iter_mut().chain(rec.dst_addr.iter_mut()) {
                // Few distinct byte values so equal prefixes, equal halves and equal
                // addresses all occur often.
                *b = (rng.next() % 3) as u8;
            }
            if i % 5 == 0 {
                rec.dst_addr = rec.src_addr;
            }
            rec.src_port = (rng.next() % 4) as u16;
            rec.dst_port = (rng.next() % 4) as u16;
            let want = FlowKey::new(
                rec.ip_version,
                rec.src_addr,
                rec.src_port,
                rec.dst_addr,
                rec.dst_port,
            );
            let mut key = zero_key();
            let dir = flow_key(&rec, &mut key);
            assert_eq!((key.0, dir), want, "case {i}: {rec:?}");
        }
    }
}
