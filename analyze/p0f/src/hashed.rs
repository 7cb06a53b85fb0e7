//! Keys with their hash computed once, for the engine's connection and host tables.
//!
//! The engine looks a record's connection up about ten times and its hosts several more;
//! keyed by [`Hashed`], a lookup hashes one word instead of the 40-byte flow key or the
//! 17-byte host key again. The tables are [`FxHashMap`]s: their keys come from a capture
//! being replayed or from the engine's own bounded tables, not from an adversary picking
//! keys against a running service, and no output depends on their iteration order, so a
//! fast unkeyed hash is enough.

use std::hash::{BuildHasher, Hash, Hasher};

use rustc_hash::FxBuildHasher;
#[cfg(test)]
use rustc_hash::FxHashMap;

/// A key with its [`FxBuildHasher`] hash computed once.
///
/// Equal keys have equal hashes, so comparing the hash first only makes unequal keys
/// cheaper to tell apart.
#[derive(Clone, Copy, Debug)]
pub struct Hashed<K> {
    hash: u64,
    key: K,
}

impl<K: Hash> Hashed<K> {
    pub fn new(key: K) -> Hashed<K> {
        let hash = FxBuildHasher.hash_one(&key);
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
        let mut table = FxHashMap::default();
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

    /// Keys that differ only in their upper bytes (IPv4 hosts `10.0.x.y`) spread over the
    /// buckets a table picks with the low bits of the hash.
    #[test]
    fn low_bits_spread_for_keys_differing_in_high_bytes() {
        let mut buckets = std::collections::HashSet::new();
        for i in 0..4096u32 {
            let ip = std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]);
            buckets.insert(Hashed::new(ip).hash & 0xfff);
        }
        assert!(buckets.len() > 1500, "{} buckets used", buckets.len());
    }
}
