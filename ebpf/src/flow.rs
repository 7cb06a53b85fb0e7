//! The flow-table key, computed the BPF-friendly way.
//!
//! [`record::FlowKey::new`] takes both addresses by value and compares them byte by byte; in
//! BPF that scalarises into 32 spilled registers and overflows the 512-byte stack. This
//! computes exactly the same key (a unit test checks it against `FlowKey::new`) by reading
//! the addresses as big-endian 64-bit halves straight from the record and writing the key in
//! place.

use record::{FlowKey, SynRecord, flow_dir};

#[inline(always)]
fn halves(a: &[u8; 16]) -> (u64, u64) {
    let (hi, lo) = match (a.first_chunk::<8>(), a.last_chunk::<8>()) {
        (Some(h), Some(l)) => (*h, *l),
        // Unreachable for a 16-byte array; keeps the code panic-free.
        _ => ([0; 8], [0; 8]),
    };
    (u64::from_be_bytes(hi), u64::from_be_bytes(lo))
}

/// Fills `key` for the packet in `rec` and returns its [`flow_dir`], exactly like
/// [`FlowKey::new`]`(rec.ip_version, rec.src_addr, rec.src_port, rec.dst_addr, rec.dst_port)`.
#[inline(always)]
pub fn flow_key(rec: &SynRecord, key: &mut FlowKey) -> u8 {
    let (s_hi, s_lo) = halves(&rec.src_addr);
    let (d_hi, d_lo) = halves(&rec.dst_addr);
    let src_first = if s_hi != d_hi {
        s_hi < d_hi
    } else if s_lo != d_lo {
        s_lo < d_lo
    } else {
        rec.src_port <= rec.dst_port
    };
    key.ip_version = rec.ip_version;
    key._pad0 = [0; 3];
    if src_first {
        key.addr_a = rec.src_addr;
        key.addr_b = rec.dst_addr;
        key.port_a = rec.src_port;
        key.port_b = rec.dst_port;
        flow_dir::A_TO_B
    } else {
        key.addr_a = rec.dst_addr;
        key.addr_b = rec.src_addr;
        key.port_a = rec.dst_port;
        key.port_b = rec.src_port;
        flow_dir::B_TO_A
    }
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

    fn zero_key() -> FlowKey {
        FlowKey::new(0, [0; 16], 0, [0; 16], 0).0
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
            assert_eq!((key, dir), want, "case {i}: {rec:?}");
        }
    }
}
