//! p0f v3 engine (being written).
