//! The Parquet recording of flow counters: one row per flow per interval.
//!
//! `capture` snapshots the kernel flow table every interval and writes one [`FlowRow`] per
//! flow; the pcap reader produces the same rows. Columns follow the same conventions as the
//! SYN recording (timestamps ns UTC, addresses as text, unsigned integers); the per-direction
//! first/last-seen times are null when that direction saw no packet, because `0` would read
//! as 1970 in a notebook. See `formats/README.md` for the column list.

use std::fs::File;
use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, RecordBatch, TimestampNanosecondArray, UInt8Array, UInt16Array, UInt64Array,
};
use arrow::datatypes::{
    DataType, Field, Schema, SchemaRef, TimestampNanosecondType, UInt8Type, UInt16Type, UInt64Type,
};
use arrow::error::ArrowError;
use record::{FlowCounters, FlowDirCounters, FlowKey};

use crate::meta::RecordType;
use crate::recording::columns::{
    EncapColumns, TextColumn, addr_from_text, addr_is_canonical, encap_arrays, get, prim, text,
    ts_from_i64, ts_to_i64,
};
use crate::recording::{DecodeError, RecordKind, RecordingReader, RecordingWriter, WriteKind};

/// One flow's counters over one interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowRow {
    /// Start of the interval, ns since the Unix epoch (UTC).
    pub interval_start_ns: u64,
    /// End of the interval, ns since the Unix epoch (UTC).
    pub interval_end_ns: u64,
    /// The flow (canonical endpoint order, see [`FlowKey::new`]).
    pub key: FlowKey,
    /// Counters of both directions.
    pub counters: FlowCounters,
}

/// The flow recording type (see [`RecordKind`]).
#[derive(Clone, Copy, Debug)]
pub struct Flows;

/// Streaming writer of flow recordings, over a [`File`] by default (`FlowWriter::create`)
/// or any `Write + Send` (`FlowWriter::new`).
pub type FlowWriter<W = File> = RecordingWriter<Flows, W>;

/// Reader of flow recordings.
pub type FlowReader = RecordingReader<Flows>;

/// Column names, in schema order.
pub mod col {
    pub const INTERVAL_START: &str = "interval_start";
    pub const INTERVAL_END: &str = "interval_end";
    pub const IP_VERSION: &str = "ip_version";
    pub const ADDR_A: &str = "addr_a";
    pub const PORT_A: &str = "port_a";
    pub const ADDR_B: &str = "addr_b";
    pub const PORT_B: &str = "port_b";
    pub const AB_PACKETS: &str = "ab_packets";
    pub const AB_BYTES: &str = "ab_bytes";
    pub const AB_FIRST_SEEN: &str = "ab_first_seen";
    pub const AB_LAST_SEEN: &str = "ab_last_seen";
    pub const AB_TCP_FLAGS: &str = "ab_tcp_flags";
    pub const BA_PACKETS: &str = "ba_packets";
    pub const BA_BYTES: &str = "ba_bytes";
    pub const BA_FIRST_SEEN: &str = "ba_first_seen";
    pub const BA_LAST_SEEN: &str = "ba_last_seen";
    pub const BA_TCP_FLAGS: &str = "ba_tcp_flags";
    /// Schema version 2: [`record::FlowKey::encap_kind`] by name.
    pub const ENCAP: &str = "encap";
    /// Schema version 2: [`record::FlowKey::encap_id`], null without the ID flag.
    pub const ENCAP_ID: &str = "encap_id";
}

/// Column names of one direction, so both directions share the code.
struct DirCols {
    packets: &'static str,
    bytes: &'static str,
    first_seen: &'static str,
    last_seen: &'static str,
    tcp_flags: &'static str,
}

const AB: DirCols = DirCols {
    packets: col::AB_PACKETS,
    bytes: col::AB_BYTES,
    first_seen: col::AB_FIRST_SEEN,
    last_seen: col::AB_LAST_SEEN,
    tcp_flags: col::AB_TCP_FLAGS,
};

const BA: DirCols = DirCols {
    packets: col::BA_PACKETS,
    bytes: col::BA_BYTES,
    first_seen: col::BA_FIRST_SEEN,
    last_seen: col::BA_LAST_SEEN,
    tcp_flags: col::BA_TCP_FLAGS,
};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use crate::recording::timestamp_type;
    let f = |name: &str, t: DataType| Field::new(name, t, false);
    let mut fields = vec![
        f(col::INTERVAL_START, timestamp_type()),
        f(col::INTERVAL_END, timestamp_type()),
        f(col::IP_VERSION, DataType::UInt8),
        f(col::ADDR_A, DataType::Utf8),
        f(col::PORT_A, DataType::UInt16),
        f(col::ADDR_B, DataType::Utf8),
        f(col::PORT_B, DataType::UInt16),
    ];
    for d in [&AB, &BA] {
        fields.push(f(d.packets, DataType::UInt64));
        fields.push(f(d.bytes, DataType::UInt64));
        fields.push(Field::new(d.first_seen, timestamp_type(), true));
        fields.push(Field::new(d.last_seen, timestamp_type(), true));
        fields.push(f(d.tcp_flags, DataType::UInt16));
    }
    fields.push(f(col::ENCAP, DataType::Utf8));
    fields.push(Field::new(col::ENCAP_ID, DataType::UInt32, true));
    Arc::new(Schema::new(fields))
});

/// The Arrow schema of a flow recording.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Why one direction's counters cannot be stored faithfully.
fn check_dir(name: &str, d: &FlowDirCounters) -> Result<(), String> {
    if d._pad0 != [0; 6] {
        return Err(format!("{name}: padding is not zero"));
    }
    if d.packets == 0 {
        if d.first_seen_ns != 0 || d.last_seen_ns != 0 {
            return Err(format!(
                "{name}: no packets but first/last seen times set (they are stored as null)"
            ));
        }
    } else if ts_to_i64(d.first_seen_ns).is_none() || ts_to_i64(d.last_seen_ns).is_none() {
        return Err(format!("{name}: first/last seen time past year 2262"));
    }
    Ok(())
}

/// A text column of one endpoint's address of every row.
fn addr_column(rows: &[FlowRow], pick: fn(&FlowKey) -> &[u8; 16]) -> Result<ArrayRef, ArrowError> {
    let mut c = TextColumn::with_capacity(rows.len(), 15);
    for r in rows {
        c.push_addr(r.key.ip_version, pick(&r.key))?;
    }
    Ok(Arc::new(c.finish()?))
}

/// Whether the key is the one [`FlowKey::new_in`] makes of its own endpoints and
/// encapsulation: endpoint a the smaller one (both directions of a connection must land on the
/// same key, so a swapped key is not a valid row), and an encapsulation only of a kind that
/// [`record::encap::keys_flows`].
fn key_is_made_by_new_in(k: &FlowKey) -> bool {
    FlowKey::new_in(
        k.ip_version,
        k.addr_a,
        k.port_a,
        k.addr_b,
        k.port_b,
        &k.encap(),
    )
    .0 == *k
}

/// Whether the key's encapsulation id goes with its flags: only the ID flag, and an id only
/// with it.
fn encap_id_is_canonical(k: &FlowKey) -> bool {
    k.encap_flags & !record::encap::flag::ID == 0 && (k.encap_flags != 0 || k.encap_id == 0)
}

impl WriteKind for Flows {
    type Row = FlowRow;
    type Context = ();

    /// The addresses (a host talks to few others); every other column is a number.
    const DICTIONARY_COLUMNS: &'static [&'static str] =
        &[col::ADDR_A, col::ADDR_B, col::ENCAP, col::ENCAP_ID];
    const DELTA_COLUMNS: &'static [&'static str] = &[
        col::INTERVAL_START,
        col::INTERVAL_END,
        col::AB_FIRST_SEEN,
        col::AB_LAST_SEEN,
        col::BA_FIRST_SEEN,
        col::BA_LAST_SEEN,
    ];

    fn schema() -> SchemaRef {
        schema()
    }

    /// A row is stored faithfully when its key is canonical (version 4 or 6, zero IPv4
    /// tails and padding), directions without packets have zero times (stored as null), and
    /// all times fit Arrow's i64.
    fn check(r: &FlowRow) -> Result<(), String> {
        let k = &r.key;
        if !addr_is_canonical(k.ip_version, &k.addr_a)
            || !addr_is_canonical(k.ip_version, &k.addr_b)
            || k._pad0 != 0
            || k._pad1 != [0; 4]
            || !encap_id_is_canonical(k)
        {
            return Err(
                "flow key is not canonical (IP version 4/6, zero tails and padding, an id \
                 only with its flag)"
                    .into(),
            );
        }
        if !key_is_made_by_new_in(k) {
            return Err(
                "flow key endpoints are not in canonical order, or its encapsulation is not \
                 one flow keys carry (see FlowKey::new_in)"
                    .into(),
            );
        }
        if ts_to_i64(r.interval_start_ns).is_none() || ts_to_i64(r.interval_end_ns).is_none() {
            return Err("interval time past year 2262".into());
        }
        check_dir("a_to_b", &r.counters.a_to_b)?;
        check_dir("b_to_a", &r.counters.b_to_a)
    }

    fn encode(rows: &[FlowRow], (): &()) -> Result<RecordBatch, ArrowError> {
        let ts = |f: &dyn Fn(&FlowRow) -> u64| {
            Arc::new(
                TimestampNanosecondArray::from(
                    rows.iter()
                        .map(|r| ts_to_i64(f(r)).unwrap_or(i64::MAX))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ) as ArrayRef
        };
        let mut columns: Vec<ArrayRef> = vec![
            ts(&|r| r.interval_start_ns),
            ts(&|r| r.interval_end_ns),
            Arc::new(UInt8Array::from_iter_values(
                rows.iter().map(|r| r.key.ip_version),
            )),
            addr_column(rows, |k| &k.addr_a)?,
            Arc::new(UInt16Array::from_iter_values(
                rows.iter().map(|r| r.key.port_a),
            )),
            addr_column(rows, |k| &k.addr_b)?,
            Arc::new(UInt16Array::from_iter_values(
                rows.iter().map(|r| r.key.port_b),
            )),
        ];
        let dirs: [fn(&FlowRow) -> &FlowDirCounters; 2] =
            [|r| &r.counters.a_to_b, |r| &r.counters.b_to_a];
        for dir in dirs {
            let seen = |f: fn(&FlowDirCounters) -> u64| {
                Arc::new(
                    TimestampNanosecondArray::from(
                        rows.iter()
                            .map(|r| {
                                let d = dir(r);
                                (d.packets != 0).then(|| ts_to_i64(f(d)).unwrap_or(i64::MAX))
                            })
                            .collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ) as ArrayRef
            };
            columns.push(Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| dir(r).packets),
            )));
            columns.push(Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| dir(r).bytes),
            )));
            columns.push(seen(|d| d.first_seen_ns));
            columns.push(seen(|d| d.last_seen_ns));
            columns.push(Arc::new(UInt16Array::from_iter_values(
                rows.iter().map(|r| dir(r).tcp_flags),
            )));
        }
        columns.extend(encap_arrays(rows, |r| {
            (r.key.encap_kind, r.key.encap_flags, r.key.encap_id)
        }));
        RecordBatch::try_new(schema(), columns)
    }
}

impl RecordKind for Flows {
    const RECORD_TYPE: RecordType = RecordType::Flows;
    const RAW_COLUMNS: &'static [&'static str] = &[
        col::INTERVAL_START,
        col::INTERVAL_END,
        col::IP_VERSION,
        col::ADDR_A,
        col::PORT_A,
        col::ADDR_B,
        col::PORT_B,
        col::AB_PACKETS,
        col::AB_BYTES,
        col::AB_FIRST_SEEN,
        col::AB_LAST_SEEN,
        col::AB_TCP_FLAGS,
        col::BA_PACKETS,
        col::BA_BYTES,
        col::BA_FIRST_SEEN,
        col::BA_LAST_SEEN,
        col::BA_TCP_FLAGS,
    ];
    const ADDED_COLUMNS: &'static [(&'static str, u32)] = &[(col::ENCAP, 2), (col::ENCAP_ID, 2)];

    fn decode(batch: &RecordBatch, out: &mut Vec<FlowRow>) -> Result<(), DecodeError> {
        let start = prim::<TimestampNanosecondType>(batch, col::INTERVAL_START)?;
        let end = prim::<TimestampNanosecondType>(batch, col::INTERVAL_END)?;
        let ipv = prim::<UInt8Type>(batch, col::IP_VERSION)?;
        let addr_a = text(batch, col::ADDR_A)?;
        let port_a = prim::<UInt16Type>(batch, col::PORT_A)?;
        let addr_b = text(batch, col::ADDR_B)?;
        let port_b = prim::<UInt16Type>(batch, col::PORT_B)?;
        let encap = EncapColumns::read(batch, col::ENCAP, col::ENCAP_ID)?;
        struct Dir<'a> {
            names: &'static DirCols,
            packets: &'a UInt64Array,
            bytes: &'a UInt64Array,
            first: &'a TimestampNanosecondArray,
            last: &'a TimestampNanosecondArray,
            flags: &'a UInt16Array,
        }
        let dir = |names: &'static DirCols| -> Result<Dir<'_>, DecodeError> {
            Ok(Dir {
                names,
                packets: prim::<UInt64Type>(batch, names.packets)?,
                bytes: prim::<UInt64Type>(batch, names.bytes)?,
                first: get::<TimestampNanosecondArray>(batch, names.first_seen)?,
                last: get::<TimestampNanosecondArray>(batch, names.last_seen)?,
                flags: prim::<UInt16Type>(batch, names.tcp_flags)?,
            })
        };
        let dirs = [dir(&AB)?, dir(&BA)?];
        // A time is null exactly when the direction saw no packet.
        let seen = |d: &Dir, a: &TimestampNanosecondArray, name: &str, i: usize| match (
            d.packets.value(i) == 0,
            a.is_null(i),
        ) {
            (true, true) => Ok(0),
            (false, false) => ts_from_i64(a.value(i), i, name),
            (true, false) => Err(DecodeError::new(i, name, "set although packets is 0")),
            (false, true) => Err(DecodeError::new(i, name, "null although packets > 0")),
        };

        out.reserve(batch.num_rows());
        for i in 0..batch.num_rows() {
            let v = ipv.value(i);
            let mut counters = [FlowDirCounters::default(); 2];
            for (c, d) in counters.iter_mut().zip(&dirs) {
                c.packets = d.packets.value(i);
                c.bytes = d.bytes.value(i);
                c.first_seen_ns = seen(d, d.first, d.names.first_seen, i)?;
                c.last_seen_ns = seen(d, d.last, d.names.last_seen, i)?;
                c.tcp_flags = d.flags.value(i);
            }
            let [a_to_b, b_to_a] = counters;
            let (encap_kind, encap_flags, encap_id) = encap.at(i, col::ENCAP)?;
            // The key as stored, so that a swapped or otherwise non-canonical one is refused
            // rather than silently put in order (its counters would change direction).
            let key = FlowKey {
                addr_a: addr_from_text(v, addr_a.value(i), i, col::ADDR_A)?,
                addr_b: addr_from_text(v, addr_b.value(i), i, col::ADDR_B)?,
                port_a: port_a.value(i),
                port_b: port_b.value(i),
                ip_version: v,
                encap_kind,
                encap_flags,
                _pad0: 0,
                encap_id,
                _pad1: [0; 4],
            };
            if !key_is_made_by_new_in(&key) {
                return Err(DecodeError::new(
                    i,
                    col::ADDR_A,
                    "endpoints a and b are not in canonical order, or the encapsulation is \
                     not one flow keys carry",
                ));
            }
            let row = FlowRow {
                interval_start_ns: ts_from_i64(start.value(i), i, col::INTERVAL_START)?,
                interval_end_ns: ts_from_i64(end.value(i), i, col::INTERVAL_END)?,
                key,
                counters: FlowCounters { a_to_b, b_to_a },
            };
            out.push(row);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use record::tcp_flag;

    fn sample() -> FlowRow {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[198, 51, 100, 1]);
        let mut b = a;
        b[3] = 2;
        let (key, dir) = FlowKey::new(4, b, 443, a, 50000);
        let mut counters = FlowCounters::default();
        counters.dir_mut(dir).add(1_000, 60, tcp_flag::SYN);
        FlowRow {
            interval_start_ns: 0,
            interval_end_ns: 10_000,
            key,
            counters,
        }
    }

    #[test]
    fn encapsulated_keys_round_trip() {
        let plain = sample();
        let mut vxlan = sample();
        (vxlan.key.encap_kind, vxlan.key.encap_flags) =
            (record::encap::VXLAN, record::encap::flag::ID);
        vxlan.key.encap_id = 4242;
        let mut geneve = sample();
        geneve.key.encap_kind = record::encap::GENEVE;
        let rows = [plain, vxlan, geneve];
        for r in &rows {
            assert!(Flows::check(r).is_ok());
        }
        let batch = Flows::encode(&rows, &()).unwrap();
        let mut back = Vec::new();
        Flows::decode(&batch, &mut back).unwrap();
        assert_eq!(back, rows);
        let mut bad = sample();
        bad.key.encap_id = 3;
        assert!(Flows::check(&bad).is_err());
        let mut bad = sample();
        bad.key.encap_kind = record::encap::GTP_U;
        assert!(Flows::check(&bad).is_err());
        // The reader refuses what the writer refuses: an encapsulation flow keys do not carry,
        // and endpoints out of order (not put in order, which would swap the counters).
        let gtp = {
            let mut cols = batch.columns().to_vec();
            let idx = schema().index_of(col::ENCAP).unwrap();
            cols[idx] = Arc::new(StringArray::from(vec!["none", "gtp-u", "none"]));
            RecordBatch::try_new(schema(), cols).unwrap()
        };
        let e = Flows::decode(&gtp, &mut Vec::new()).unwrap_err();
        assert_eq!((e.row, e.column.as_str()), (1, col::ADDR_A));
        let swapped = {
            let mut cols = batch.columns().to_vec();
            for (x, y) in [(col::ADDR_A, col::ADDR_B), (col::PORT_A, col::PORT_B)] {
                let (ix, iy) = (schema().index_of(x).unwrap(), schema().index_of(y).unwrap());
                cols.swap(ix, iy);
            }
            RecordBatch::try_new(schema(), cols).unwrap()
        };
        let e = Flows::decode(&swapped, &mut Vec::new()).unwrap_err();
        assert_eq!((e.row, e.column.as_str()), (0, col::ADDR_A));
        // Version 1 batches (no encapsulation columns) read as outside any.
        let keep: Vec<usize> = (0..batch.num_columns() - 2).collect();
        let mut back = Vec::new();
        Flows::decode(&batch.project(&keep).unwrap(), &mut back).unwrap();
        assert_eq!(back, [plain, plain, plain]);
    }

    #[test]
    fn empty_direction_times_are_null_and_round_trip() {
        let r = sample();
        let batch = Flows::encode(&[r], &()).unwrap();
        // b -> a had the packet (b is the larger address).
        let ab_first = get::<TimestampNanosecondArray>(&batch, col::AB_FIRST_SEEN).unwrap();
        let ba_first = get::<TimestampNanosecondArray>(&batch, col::BA_FIRST_SEEN).unwrap();
        assert!(ab_first.is_null(0));
        assert_eq!(ba_first.value(0), 1_000);
        assert_eq!(
            get::<StringArray>(&batch, col::ADDR_A).unwrap().value(0),
            "198.51.100.1"
        );
        let mut back = Vec::new();
        Flows::decode(&batch, &mut back).unwrap();
        assert_eq!(back, vec![r]);
    }

    #[test]
    fn check_refuses_times_without_packets_and_bad_keys() {
        let mut r = sample();
        r.counters.a_to_b.last_seen_ns = 5;
        assert!(Flows::check(&r).is_err());
        let mut r = sample();
        r.key.addr_a[7] = 1;
        assert!(Flows::check(&r).is_err());
        let mut r = sample();
        r.key.ip_version = 5;
        assert!(Flows::check(&r).is_err());
        let mut r = sample();
        std::mem::swap(&mut r.key.addr_a, &mut r.key.addr_b);
        std::mem::swap(&mut r.key.port_a, &mut r.key.port_b);
        assert!(Flows::check(&r).is_err());
        assert!(Flows::check(&sample()).is_ok());
    }

    #[test]
    fn decode_rejects_null_time_with_packets() {
        let good = Flows::encode(&[sample()], &()).unwrap();
        let idx = schema().index_of(col::BA_LAST_SEEN).unwrap();
        let mut cols = good.columns().to_vec();
        cols[idx] =
            Arc::new(TimestampNanosecondArray::from(vec![None::<i64>]).with_timezone("UTC"));
        let bad = RecordBatch::try_new(schema(), cols).unwrap();
        let e = Flows::decode(&bad, &mut Vec::new()).unwrap_err();
        assert_eq!(e.column, col::BA_LAST_SEEN);
    }
}
