//! The analysis side of synscope: the p0f v3 engine and the reports built on it.
//!
//! - [`p0f`]: signature encoder, p0f.fp database, matcher and the stateful p0f features.

pub mod p0f;
