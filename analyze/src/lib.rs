//! The analysis side of synscope: the p0f v3 engine and the reports built on it.
