//! The key-value metadata every synscope recording carries.
//!
//! A Parquet file holds a list of free `(key, value)` string pairs in its footer. synscope puts
//! its own facts there under `synscope.*` keys so that a recording explains itself: which
//! schema version wrote it, whether it holds SYN records or flow counters, and where and how it
//! was captured. Readers refuse a file whose schema version or record type they do not know,
//! with an error naming both values, rather than misreading columns.
//!
//! Keys (all values are UTF-8 text):
//!
//! | key | meaning |
//! |---|---|
//! | `synscope.schema_version` | [`SCHEMA_VERSION`] of the writer, decimal |
//! | `synscope.record_type` | `syn`, `flows` or `payload` ([`RecordType`]) |
//! | `synscope.host` | host name of the capturing machine (empty when unknown) |
//! | `synscope.interface` | interface name(s) captured, or the pcap file name |
//! | `synscope.kernel` | kernel release of the capturing machine (empty when unknown) |
//! | `synscope.tool_version` | name and version of the program that wrote the file |
//! | `synscope.clock_source` | how timestamps were obtained (e.g. `pcap`, `monotonic+offset`) |
//! | `synscope.extra.NAME` | free pairs ([`RecordingMeta::extra`]) |

use std::fmt;

use parquet::file::metadata::KeyValue;
use thiserror::Error;

/// Version of the column layout of both recording types, the one this build writes.
///
/// Policy: any change to a recording's columns (a column added, removed, renamed, retyped or
/// given a new meaning) bumps this number. Readers accept the versions they know, from
/// [`OLDEST_SCHEMA_VERSION`] to this one, and reject others with
/// [`MetaError::UnsupportedVersion`], because a silently misread column is worse than a clear
/// refusal.
///
/// History: 1, the first layout; 2 added the encapsulation columns (`encap`, `encap_id`, and
/// in SYN recordings `encaps`). A version 1 file reads as records outside any encapsulation,
/// which is what its producers could see.
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest schema version readers still accept.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

/// Prefix of every key synscope writes.
pub const KEY_PREFIX: &str = "synscope.";
/// Key of the schema version.
pub const KEY_SCHEMA_VERSION: &str = "synscope.schema_version";
/// Key of the record type.
pub const KEY_RECORD_TYPE: &str = "synscope.record_type";
/// Key of the capturing host name.
pub const KEY_HOST: &str = "synscope.host";
/// Key of the captured interface(s).
pub const KEY_INTERFACE: &str = "synscope.interface";
/// Key of the capturing kernel release.
pub const KEY_KERNEL: &str = "synscope.kernel";
/// Key of the writing tool's name and version.
pub const KEY_TOOL_VERSION: &str = "synscope.tool_version";
/// Key of the clock description.
pub const KEY_CLOCK_SOURCE: &str = "synscope.clock_source";
/// Prefix of the free extra pairs: `synscope.extra.NAME`.
pub const KEY_EXTRA_PREFIX: &str = "synscope.extra.";

/// What a recording holds; one file holds one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// [`record::SynRecord`]s (module [`crate::syn`]).
    Syn,
    /// Flow counters per interval (module [`crate::flows`]).
    Flows,
    /// [`record::PayloadRecord`]s of the flows that look like HTTP (module
    /// [`crate::payload`]).
    Payload,
}

impl RecordType {
    /// The value stored under [`KEY_RECORD_TYPE`].
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordType::Syn => "syn",
            RecordType::Flows => "flows",
            RecordType::Payload => "payload",
        }
    }

    /// Inverse of [`RecordType::as_str`].
    pub fn from_name(s: &str) -> Option<RecordType> {
        match s {
            "syn" => Some(RecordType::Syn),
            "flows" => Some(RecordType::Flows),
            "payload" => Some(RecordType::Payload),
            _ => None,
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a file's metadata is not that of a recording this code can read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MetaError {
    /// A required key is absent; without the schema version key the file is probably not a
    /// synscope recording at all.
    #[error("metadata key {key} is missing (not a synscope recording?)")]
    Missing {
        /// The missing key.
        key: &'static str,
    },
    /// The schema version is not a decimal number.
    #[error("metadata key {KEY_SCHEMA_VERSION} has the value {found:?}, not a version number")]
    BadVersion {
        /// The stored text.
        found: String,
    },
    /// The file was written with a schema version this reader does not know.
    #[error(
        "recording schema version {found} is not supported (this build reads versions {oldest} to {supported})"
    )]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// The oldest version this build reads.
        oldest: u32,
        /// The newest version this build reads (and the one it writes).
        supported: u32,
    },
    /// The record type is neither `syn` nor `flows`.
    #[error("metadata key {KEY_RECORD_TYPE} has the unknown value {found:?}")]
    UnknownRecordType {
        /// The stored text.
        found: String,
    },
}

/// The facts stored in a recording's key-value metadata (see the module documentation for the
/// keys).
///
/// Text fields are free-form and may be empty when the producer does not know them (a pcap
/// replay does not know the capturing kernel, for example).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingMeta {
    /// The file's schema version: [`SCHEMA_VERSION`] for files this build writes (writers
    /// always store that, whatever this says), older ones for older files read back.
    pub schema_version: u32,
    /// What the file holds. Writers check it against the writer type.
    pub record_type: RecordType,
    /// Host name of the capturing machine.
    pub host: String,
    /// Interface name(s) captured, or the source pcap file for replays.
    pub interface: String,
    /// Kernel release of the capturing machine.
    pub kernel: String,
    /// Name and version of the writing program.
    pub tool_version: String,
    /// How timestamps were obtained, e.g. `pcap` (capture file timestamps) or
    /// `monotonic+offset` (`bpf_ktime_get_ns` plus the offset to UTC measured at start).
    pub clock_source: String,
    /// Free `(name, value)` pairs, stored as `synscope.extra.NAME`. Order is kept on write;
    /// on read they come back in file order.
    pub extra: Vec<(String, String)>,
}

impl RecordingMeta {
    /// Metadata for a record type with every text field empty except
    /// [`RecordingMeta::tool_version`], which names this crate's version so that no file is
    /// anonymous.
    pub fn new(record_type: RecordType) -> RecordingMeta {
        RecordingMeta {
            schema_version: SCHEMA_VERSION,
            record_type,
            host: String::new(),
            interface: String::new(),
            kernel: String::new(),
            tool_version: format!("synscope {}", env!("CARGO_PKG_VERSION")),
            clock_source: String::new(),
            extra: Vec::new(),
        }
    }

    /// Fills [`RecordingMeta::host`] and [`RecordingMeta::kernel`] from this machine
    /// (`/proc/sys/kernel/{hostname,osrelease}`), for live captures. Best effort: a field
    /// stays as it was when the file cannot be read, because a missing host name must not stop
    /// a capture.
    pub fn fill_local_host(&mut self) {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        if let Some(h) = read("/proc/sys/kernel/hostname") {
            self.host = h;
        }
        if let Some(k) = read("/proc/sys/kernel/osrelease") {
            self.kernel = k;
        }
    }

    /// The key-value pairs to store, schema version first.
    pub fn to_key_values(&self) -> Vec<KeyValue> {
        let mut kv = vec![
            KeyValue::new(KEY_SCHEMA_VERSION.to_string(), SCHEMA_VERSION.to_string()),
            KeyValue::new(
                KEY_RECORD_TYPE.to_string(),
                self.record_type.as_str().to_string(),
            ),
            KeyValue::new(KEY_HOST.to_string(), self.host.clone()),
            KeyValue::new(KEY_INTERFACE.to_string(), self.interface.clone()),
            KeyValue::new(KEY_KERNEL.to_string(), self.kernel.clone()),
            KeyValue::new(KEY_TOOL_VERSION.to_string(), self.tool_version.clone()),
            KeyValue::new(KEY_CLOCK_SOURCE.to_string(), self.clock_source.clone()),
        ];
        for (k, v) in &self.extra {
            kv.push(KeyValue::new(format!("{KEY_EXTRA_PREFIX}{k}"), v.clone()));
        }
        kv
    }

    /// Parses a file's key-value metadata.
    ///
    /// Checks the schema version first (a file from a future version may have changed
    /// anything else), then the record type. Other keys are optional: an absent text key
    /// reads as empty. Keys outside `synscope.*` (such as Arrow's own schema) are ignored.
    pub fn from_key_values(kv: &[KeyValue]) -> Result<RecordingMeta, MetaError> {
        let get = |key: &str| {
            kv.iter()
                .find(|e| e.key == key)
                .map(|e| e.value.as_deref().unwrap_or(""))
        };
        let version_text = get(KEY_SCHEMA_VERSION).ok_or(MetaError::Missing {
            key: KEY_SCHEMA_VERSION,
        })?;
        let version: u32 = version_text
            .trim()
            .parse()
            .map_err(|_| MetaError::BadVersion {
                found: version_text.to_string(),
            })?;
        if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&version) {
            return Err(MetaError::UnsupportedVersion {
                found: version,
                oldest: OLDEST_SCHEMA_VERSION,
                supported: SCHEMA_VERSION,
            });
        }
        let type_text = get(KEY_RECORD_TYPE).ok_or(MetaError::Missing {
            key: KEY_RECORD_TYPE,
        })?;
        let record_type =
            RecordType::from_name(type_text).ok_or_else(|| MetaError::UnknownRecordType {
                found: type_text.to_string(),
            })?;
        let text = |key: &str| get(key).unwrap_or("").to_string();
        let extra = kv
            .iter()
            .filter_map(|e| {
                e.key
                    .strip_prefix(KEY_EXTRA_PREFIX)
                    .map(|name| (name.to_string(), e.value.clone().unwrap_or_default()))
            })
            .collect();
        Ok(RecordingMeta {
            schema_version: version,
            record_type,
            host: text(KEY_HOST),
            interface: text(KEY_INTERFACE),
            kernel: text(KEY_KERNEL),
            tool_version: text(KEY_TOOL_VERSION),
            clock_source: text(KEY_CLOCK_SOURCE),
            extra,
        })
    }
}

/// Metadata key an `analyze --out` results file carries (its column layout's version). Kept
/// here, beside the recordings' keys, so that the input side can tell a results file from a
/// recording without knowing anything of the results writer.
pub const KEY_RESULTS_VERSION: &str = "synscope.results_schema_version";

/// Whether the Parquet file at `path` is an `analyze` results file (its footer carries
/// [`KEY_RESULTS_VERSION`]): not a recording, so not an input of a replay. `false` for
/// anything unreadable.
pub fn is_results_file(path: &std::path::Path) -> bool {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(reader) = SerializedFileReader::new(file) else {
        return false;
    };
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .is_some_and(|kv| kv.iter().any(|k| k.key == KEY_RESULTS_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordingMeta {
        let mut m = RecordingMeta::new(RecordType::Flows);
        m.host = "h1".into();
        m.interface = "eth0,eth1".into();
        m.kernel = "6.1.0".into();
        m.clock_source = "pcap".into();
        m.extra = vec![("b".into(), "2".into()), ("a".into(), "".into())];
        m
    }

    #[test]
    fn key_values_round_trip() {
        let m = sample();
        let kv = m.to_key_values();
        assert_eq!(RecordingMeta::from_key_values(&kv), Ok(m));
        // Every key is under the synscope prefix and unique.
        let mut keys: Vec<_> = kv.iter().map(|e| e.key.clone()).collect();
        assert!(keys.iter().all(|k| k.starts_with(KEY_PREFIX)));
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), kv.len());
    }

    #[test]
    fn foreign_keys_are_ignored_and_absent_text_is_empty() {
        let kv = vec![
            KeyValue::new("ARROW:schema".into(), "xyz".to_string()),
            KeyValue::new(KEY_SCHEMA_VERSION.into(), SCHEMA_VERSION.to_string()),
            KeyValue::new(KEY_RECORD_TYPE.into(), "syn".to_string()),
        ];
        let m = RecordingMeta::from_key_values(&kv).unwrap();
        assert_eq!(m.record_type, RecordType::Syn);
        assert_eq!(m.host, "");
        assert!(m.extra.is_empty());
    }

    #[test]
    fn version_and_type_are_checked() {
        let mut kv = sample().to_key_values();
        kv[0].value = Some((SCHEMA_VERSION + 1).to_string());
        assert_eq!(
            RecordingMeta::from_key_values(&kv),
            Err(MetaError::UnsupportedVersion {
                found: SCHEMA_VERSION + 1,
                oldest: OLDEST_SCHEMA_VERSION,
                supported: SCHEMA_VERSION
            })
        );
        kv[0].value = Some("0".into());
        assert!(matches!(
            RecordingMeta::from_key_values(&kv),
            Err(MetaError::UnsupportedVersion { found: 0, .. })
        ));
        // Every version from the oldest on reads, and says which it is.
        for v in OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION {
            kv[0].value = Some(v.to_string());
            assert_eq!(
                RecordingMeta::from_key_values(&kv).map(|m| m.schema_version),
                Ok(v)
            );
        }
        kv[0].value = Some("one".into());
        assert!(matches!(
            RecordingMeta::from_key_values(&kv),
            Err(MetaError::BadVersion { .. })
        ));
        let mut kv = sample().to_key_values();
        kv[1].value = Some("packets".into());
        assert_eq!(
            RecordingMeta::from_key_values(&kv),
            Err(MetaError::UnknownRecordType {
                found: "packets".into()
            })
        );
        assert_eq!(
            RecordingMeta::from_key_values(&kv[1..]),
            Err(MetaError::Missing {
                key: KEY_SCHEMA_VERSION
            })
        );
    }

    #[test]
    fn record_type_names_round_trip() {
        for t in [RecordType::Syn, RecordType::Flows, RecordType::Payload] {
            assert_eq!(RecordType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(RecordType::from_name("SYN"), None);
    }
}
