//! Byte views of the `#[repr(C)]` records, for the three places bytes come from: the ring
//! buffer, the flow-table batch lookups and the journal.
//!
//! The record crate pins every layout (size, offsets, no implicit padding) and documents
//! them as host byte order; these helpers only copy bytes in and out of those layouts.

use record::{FlowCounters, FlowKey, SynRecord};

/// A plain-old-data record: every bit pattern is a valid value and there is no implicit
/// padding, so it can be copied from and to bytes.
///
/// # Safety
/// Implement only for `#[repr(C)]` types made of integers and integer arrays whose size is
/// pinned by a layout test (true for the record crate's types).
pub unsafe trait Pod: Copy {
    /// Size in bytes.
    const SIZE: usize = size_of::<Self>();
}

// SAFETY: integers and byte arrays only, layouts pinned in the record crate.
unsafe impl Pod for SynRecord {}
// SAFETY: as above.
unsafe impl Pod for FlowKey {}
// SAFETY: as above.
unsafe impl Pod for FlowCounters {}

/// Reads a `T` from the start of `bytes`; `None` when there are fewer than `T::SIZE` bytes.
pub fn read<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < T::SIZE {
        return None;
    }
    // SAFETY: `bytes` holds at least size_of::<T>() bytes, `read_unaligned` has no alignment
    // requirement and every bit pattern is a valid `T` (Pod).
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The bytes of `v`.
pub fn bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: `v` is a valid reference to `size_of::<T>()` initialised bytes (Pod: no
    // padding), borrowed for the returned lifetime.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), T::SIZE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_input() {
        let mut r = SynRecord::ZERO;
        r.ts_ns = 0x0102_0304_0506_0708;
        r.src_port = 0xabcd;
        r.tcp_opts[0] = 2;
        let b = bytes(&r).to_vec();
        assert_eq!(b.len(), 128);
        // Layout facts from the record crate's table: ts_ns at 0 (host order, LE here),
        // src_port at 48, tcp_opts at 84.
        assert_eq!(&b[0..8], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&b[48..50], &0xabcdu16.to_le_bytes());
        assert_eq!(b[84], 2);
        assert_eq!(read::<SynRecord>(&b), Some(r));
        assert_eq!(read::<SynRecord>(&b[..127]), None);
    }
}
