//! A fast, deterministic hasher for the engine's tables.
//!
//! The engine hashes a flow key, one or two host keys and an option layout per record; with
//! the standard SipHash that dominated the per-record cost. The keys are not attacker-chosen
//! in a way that matters here (a capture replayed offline, or the engine's own bounded
//! tables), and iteration order of these maps is never observed, so a multiply-rotate hash
//! (the FxHash construction used by rustc) is enough.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

/// Multiply-rotate hasher over 8-byte words.
#[derive(Clone, Copy, Default)]
pub struct FastHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    /// The product's high bits are the well-mixed ones, but hashbrown picks a bucket with the
    /// low bits, which depend only on the low bits of the input: keys differing in their upper
    /// bytes (the last octets of IPv4 addresses) all fell into a few buckets and lookups
    /// walked long probe chains (profiled: 100 ns a host lookup). Rotating brings mixed bits
    /// down, as rustc-hash 2 does.
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

/// A `HashMap` using [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A key with its [`FastHasher`] hash computed once.
///
/// The engine looks a record's flow up about ten times and its hosts several more; keyed by
/// this, a lookup hashes one word instead of the 40-byte flow key or the 17-byte host key
/// again. Equal keys have equal hashes, so comparing the hash first only makes unequal keys
/// cheaper to tell apart.
#[derive(Clone, Copy, Debug)]
pub struct Hashed<K> {
    hash: u64,
    key: K,
}

impl<K: Hash> Hashed<K> {
    pub fn new(key: K) -> Hashed<K> {
        let hash = BuildHasherDefault::<FastHasher>::default().hash_one(&key);
        Hashed { hash, key }
    }
}

impl<K> Hashed<K> {
    /// The key itself.
    pub fn key(&self) -> &K {
        &self.key
    }
}

impl<K: PartialEq> PartialEq for Hashed<K> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.key == other.key
    }
}

impl<K: Eq> Eq for Hashed<K> {}

impl<K> Hash for Hashed<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_different_keys_spread() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let h = |k: &(u8, [u8; 16])| b.hash_one(k);
        let a = (4u8, [1u8; 16]);
        assert_eq!(h(&a), h(&a));
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000u16 {
            let mut k = a;
            k.1[..2].copy_from_slice(&i.to_be_bytes());
            seen.insert(h(&k));
        }
        assert_eq!(seen.len(), 1000);
    }

    /// Keys that differ only in their upper bytes (IPv4 hosts `10.0.x.y`) spread over the
    /// buckets a table picks with the low bits of the hash.
    #[test]
    fn low_bits_spread_for_keys_differing_in_high_bytes() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let mut buckets = std::collections::HashSet::new();
        for i in 0..4096u32 {
            let ip = std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
            buckets.insert(b.hash_one(ip) & 0xfff);
        }
        // 4096 keys over 4096 buckets: a random hash fills about 63% of them (this one 48%;
        // without the final rotation, all 4096 keys land in one bucket).
        assert!(buckets.len() > 1500, "{} buckets used", buckets.len());
    }

    /// Wrapped keys are equal exactly when their keys are, and a table keyed by them finds
    /// every key it was given and no other.
    #[test]
    fn hashed_keys_behave_like_their_keys() {
        let keys: Vec<(u8, [u8; 16])> = (0..2000u16)
            .map(|i| {
                let mut a = [0u8; 16];
                a[..2].copy_from_slice(&i.to_be_bytes());
                (if i % 3 == 0 { 6 } else { 4 }, a)
            })
            .collect();
        let mut table = FastMap::default();
        for (i, k) in keys.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
            table.insert(Hashed::new(*k), i);
        }
        for (i, k) in keys.iter().enumerate() {
            let got = table.get(&Hashed::new(*k)).copied();
            assert_eq!(got, (i % 2 == 0).then_some(i), "{k:?}");
            assert_eq!(Hashed::new(*k), Hashed::new(*k));
            assert_eq!(Hashed::new(*k).key(), k);
        }
        assert_ne!(Hashed::new(keys[0]), Hashed::new(keys[1]));
    }
}
