//! Zeroing and copying in 8-byte words.
//!
//! LLVM's BPF backend lowers a `memset`/`memcpy` it does not inline to a call into a
//! byte-at-a-time loop (about six instructions per byte): zeroing a 128-byte record that way
//! was once the largest cost of every packet, and even a 3-byte padding fill became a call.
//! These write each word with a volatile access, which LLVM keeps as one load or store
//! instead of recognising the idiom. Callers pass 8-aligned memory only.

/// Writes `N` zero words at `dst`.
///
/// # Safety
/// `dst` is valid for writes of `N` u64s and 8-aligned.
#[inline(always)]
pub unsafe fn zero<const N: usize>(dst: *mut u64) {
    let mut i = 0;
    while i < N {
        // SAFETY: `i < N`, within the caller's guarantee.
        unsafe { dst.add(i).write_volatile(0) };
        i += 1;
    }
}

/// Copies `N` words from `src` to `dst`.
///
/// # Safety
/// `src` is valid for reads and `dst` for writes of `N` u64s, both 8-aligned, and they do not
/// overlap.
#[inline(always)]
pub unsafe fn copy<const N: usize>(dst: *mut u64, src: *const u64) {
    let mut i = 0;
    while i < N {
        // SAFETY: `i < N`, within the caller's guarantee.
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_and_copy_whole_words() {
        let mut a = [7u64; 5];
        let b = [1u64, 2, 3, 4, 5];
        // SAFETY: arrays of five u64s.
        unsafe { super::zero::<5>(a.as_mut_ptr()) };
        assert_eq!(a, [0; 5]);
        // SAFETY: as above.
        unsafe { super::copy::<4>(a.as_mut_ptr(), b.as_ptr()) };
        assert_eq!(a, [1, 2, 3, 4, 0]);
    }
}
