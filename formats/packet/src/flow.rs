//! The flow-table key of a parsed packet, computed the BPF-friendly way.
//!
//! The order of the endpoints is [`FlowKey::words`]'s, the one canonicalisation there is; this
//! only feeds it the record's addresses as 64-bit words read straight from the record and
//! writes the key in place, a word at a time (see [`crate::words`]): taking the addresses as
//! byte arrays by value scalarises, in BPF, into 32 spilled registers and overflows the
//! 512-byte stack.

use record::{Encap, FlowKey, SynRecord};

use crate::words;

/// A [`FlowKey`] on an 8-byte boundary, so it can be written in words (the key itself only
/// needs 2-byte alignment).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlignedKey(pub FlowKey);

impl AlignedKey {
    /// The all-zero key, to be filled by [`flow_key`].
    pub const ZERO: AlignedKey = AlignedKey(FlowKey::ZERO);
}

const _: () = assert!(FlowKey::SIZE == 48 && core::mem::size_of::<AlignedKey>() == 48);

/// The record's address as two words in memory order.
#[inline(always)]
fn words_of(a: &[u8; 16]) -> [u64; 2] {
    let p = a.as_ptr().cast::<u64>();
    // SAFETY: `a` is 16 bytes at offset 16 or 32 of an 8-aligned SynRecord (layout pinned in
    // `record`), so both words are in bounds and aligned.
    unsafe { [p.read(), p.add(1).read()] }
}

/// Fills `key` for the packet in `rec` and returns its [`record::flow_dir`], exactly like
/// [`SynRecord::flow_key`] (addresses, ports and the outermost encapsulation).
#[inline(always)]
pub fn flow_key(rec: &SynRecord, key: &mut AlignedKey) -> u8 {
    let (out, dir) = FlowKey::words(
        rec.ip_version,
        words_of(&rec.src_addr),
        rec.src_port,
        words_of(&rec.dst_addr),
        rec.dst_port,
        &Encap::of(rec),
    );
    // SAFETY: `AlignedKey` is 48 bytes, 8-aligned; `out` is six words.
    unsafe { words::copy::<6>((key as *mut AlignedKey).cast::<u64>(), out.as_ptr()) };
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
            if i % 3 == 0 {
                rec.encap_kind = (rng.next() % 16) as u8;
                rec.encaps = 1;
                rec.encap_flags = record::encap::flag::ID;
                rec.encap_id = rng.next() as u32;
            }
            let want = rec.flow_key();
            let mut key = AlignedKey::ZERO;
            let dir = flow_key(&rec, &mut key);
            assert_eq!((key.0, dir), want, "case {i}: {rec:?}");
        }
    }
}
