//! Plumbing shared by every Parquet file synscope writes: the recordings ([`crate::syn`],
//! [`crate::flows`], [`crate::payload`]) and `analyze`'s results file.
//!
//! Each is a "one Rust row type <-> one flat Arrow schema" file with the same writer settings,
//! the same metadata handling and the same failure modes, so the writer, the reader and the
//! error type live here once, generic over a [`WriteKind`] (schema, column encodings, rows ->
//! columns) and, for files read back, a [`RecordKind`] (columns -> rows). `syn`, `flows` and
//! the results only describe their columns.
//!
//! Writing: rows are buffered, converted to Arrow batches of a few thousand rows, and handed to
//! parquet's `ArrowWriter`, which closes a row group every [`WriterOptions::row_group_rows`]
//! rows. Reading: each row group can be read on its own ([`RecordingReader::read_row_group`]
//! opens its own file handle, so several threads may read different row groups at once), or
//! the whole file streamed ([`RecordingReader::records`]).

use std::fs::File;
use std::io::Write;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use thiserror::Error;

use crate::meta::{MetaError, RecordType, RecordingMeta};

/// Arrow type of every timestamp column: nanoseconds since the Unix epoch, UTC, so that
/// pyarrow, polars and DuckDB show wall-clock times without being told the unit.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::from("UTC")))
}

/// Everything that can go wrong writing or reading a recording.
///
/// Every variant names the file (its path, or `<stream>` for a writer over an arbitrary
/// [`Write`]) and, when it concerns data, the row group and row, so that a bad file can be
/// found and inspected.
#[derive(Debug, Error)]
pub enum RecordingError {
    /// The file could not be opened or created.
    #[error("{file}: {cause}")]
    Io {
        /// The file.
        file: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// The file is not a readable Parquet file: no footer, bad magic, truncated. A writer that
    /// was killed before `close()` leaves exactly such a file.
    #[error(
        "{file}: not a readable Parquet file (truncated, or its writer did not close): {cause}"
    )]
    NotParquet {
        /// The file.
        file: String,
        /// The cause.
        cause: ParquetError,
    },
    /// The file's metadata is not that of a recording this build reads.
    #[error("{file}: {cause}")]
    Meta {
        /// The file.
        file: String,
        /// The cause.
        cause: MetaError,
    },
    /// The file holds another record type than the reader or writer handles.
    #[error("{file}: recording holds {found:?} records, expected {expected:?}")]
    WrongRecordType {
        /// The file.
        file: String,
        /// The type the reader or writer handles.
        expected: RecordType,
        /// The type the file (or the metadata given to a writer) says.
        found: RecordType,
    },
    /// A column the reader needs is missing or has another type than the schema says.
    #[error("{file}: column {column}: {reason}")]
    Schema {
        /// The file.
        file: String,
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// A value in the file cannot be a valid row (bad address text, option blob longer than
    /// 40 bytes, unknown direction name, unexpected null...).
    #[error("{file}: row group {row_group}, row {row}: column {column}: {reason}")]
    Corrupt {
        /// The file.
        file: String,
        /// Row group index.
        row_group: usize,
        /// Row index within the row group.
        row: usize,
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading a row group failed inside parquet (decompression, page decoding, I/O).
    #[error("{file}: row group {row_group}: {cause}")]
    Read {
        /// The file.
        file: String,
        /// Row group index.
        row_group: usize,
        /// The cause.
        cause: ParquetError,
    },
    /// A row group index past the end.
    #[error("{file}: row group {index} requested, the file has {count}")]
    NoSuchRowGroup {
        /// The file.
        file: String,
        /// Requested index.
        index: usize,
        /// Number of row groups.
        count: usize,
    },
    /// A row given to a writer cannot be stored faithfully (not canonical, timestamp past
    /// 2262, unknown enum value). The row is not written; the writer stays usable.
    #[error("{file}: row {row} not written: {reason}")]
    Unwritable {
        /// The file.
        file: String,
        /// Index the row would have had in the file.
        row: u64,
        /// What is wrong.
        reason: String,
    },
    /// Encoding or writing failed inside parquet/arrow, or the writer options are invalid.
    #[error("{file}: write failed: {reason}")]
    Write {
        /// The file.
        file: String,
        /// The cause, as text (it comes from either arrow or parquet).
        reason: String,
    },
    /// The writer was already closed.
    #[error("{file}: writer already closed")]
    Closed {
        /// The file.
        file: String,
    },
}

/// A value-level problem found while turning columns into rows; the reader adds the file
/// and row group to make a [`RecordingError::Corrupt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Row within the batch, when one row is at fault.
    pub row: usize,
    /// The column.
    pub column: String,
    /// What is wrong.
    pub reason: String,
}

impl DecodeError {
    /// A problem with one value.
    pub fn new(row: usize, column: &str, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            row,
            column: column.to_string(),
            reason: reason.into(),
        }
    }
}

/// How one kind of Parquet file is written: a row type, its flat Arrow schema, and how its
/// columns are encoded.
///
/// Implemented by the recordings ([`RecordKind`]) and by `analyze`'s results file, so every
/// Parquet file synscope writes goes through the one [`RecordingWriter`]: the same row groups,
/// compression, metadata handling, footer and error reporting.
pub trait WriteKind {
    /// The Rust row.
    type Row: Clone + Send;
    /// What turning rows into columns needs besides the rows: `()` for the recordings; the
    /// results file resolves database label ids and input indexes through it.
    type Context: Send;
    /// Columns written with dictionary encoding (up to [`DICTIONARY_PAGE_LIMIT`] per row
    /// group, plain after that); every other column is written plain (then zstd). Only
    /// columns that repeat a few values in ordinary traffic belong here (enum names, option
    /// blobs, addresses): on a column of mostly distinct values (times, sequence numbers,
    /// ports) parquet builds a dictionary as large as the data, hashing every value, before
    /// giving up on it; that was about a third of the CPU of converting a flood, and the files
    /// came out larger than plain + zstd (BENCHMARKS.md, "converting the journals at stop").
    /// Readers see the same values either way.
    const DICTIONARY_COLUMNS: &'static [&'static str];
    /// Timestamp columns, written `DELTA_BINARY_PACKED`: successive times differ by little,
    /// so the deltas pack into a few bits each, before zstd, instead of handing zstd eight
    /// bytes a row (a SYN flood's conversion: ~10% less CPU, SYN file ~8% smaller). pyarrow,
    /// polars, DuckDB and parquet-rs all read it.
    const DELTA_COLUMNS: &'static [&'static str];
    /// The full schema.
    fn schema() -> SchemaRef;
    /// Why a row cannot be stored faithfully, if it cannot.
    fn check(row: &Self::Row) -> Result<(), String>;
    /// Rows (all passed [`WriteKind::check`]) -> one batch with [`WriteKind::schema`].
    fn encode(rows: &[Self::Row], context: &Self::Context) -> Result<RecordBatch, ArrowError>;
}

/// One recording type: a [`WriteKind`] that can also be read back into rows.
///
/// Implemented by [`crate::syn::Syn`] and [`crate::flows::Flows`]; the generic
/// [`RecordingWriter`] and [`RecordingReader`] do the rest.
pub trait RecordKind: WriteKind<Context = ()> {
    /// Stored in the metadata and checked by readers.
    const RECORD_TYPE: RecordType;
    /// Columns the reader needs to rebuild a row (derived, human-friendly columns are not
    /// read back).
    const RAW_COLUMNS: &'static [&'static str];
    /// Raw columns added after the first schema version, each with the
    /// [`crate::meta::SCHEMA_VERSION`] that added it: files of that version or later must
    /// hold them, older files do not, and `decode` gives their rows the value such a file's
    /// producer could only have meant (see [`columns::EncapColumns`]).
    const ADDED_COLUMNS: &'static [(&'static str, u32)];
    /// A batch holding at least the [`RecordKind::RAW_COLUMNS`] and the
    /// [`RecordKind::ADDED_COLUMNS`] of its file's version (with the schema's types, checked
    /// when the file was opened) -> rows, appended to `out`.
    fn decode(batch: &RecordBatch, out: &mut Vec<Self::Row>) -> Result<(), DecodeError>;
}

/// Writer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterOptions {
    /// Rows per row group (the last one may be shorter, and [`RecordingWriter::flush`] ends
    /// one early). Bounded so readers can replay row groups in parallel with bounded memory;
    /// the writer holds one row group in memory. Default 65536.
    pub row_group_rows: usize,
    /// zstd level, 1..=22. Default 1: compressing was the largest cost left in converting a
    /// SYN flood's journals at level 3, and level 1 takes ~20% less CPU there for files 0-2%
    /// larger (a flood) and up to 13% larger (the flow file of ordinary traffic); see
    /// BENCHMARKS.md, "converting the journals at stop".
    pub zstd_level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            row_group_rows: 65536,
            zstd_level: 1,
        }
    }
}

/// What a closed writer wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteSummary {
    /// Rows in the file.
    pub rows: u64,
    /// Row groups in the file.
    pub row_groups: usize,
    /// File size in bytes, footer included.
    pub bytes: u64,
}

/// Largest dictionary page of a column chunk; past it the chunk goes on plain. Parquet's
/// default, 1 MiB, holds ~65,000 addresses: a flood from random sources hashed nearly every
/// address of every row group into a dictionary it then dropped (+23% CPU against plain). At
/// 64 KiB such a chunk gives up after a few thousand values, while a flood from a few hundred
/// sources, or ordinary traffic, keeps its dictionary (BENCHMARKS.md, "converting the journals
/// at stop").
pub const DICTIONARY_PAGE_LIMIT: usize = 64 << 10;

/// Rows converted to an Arrow batch at a time: big enough for columnar speed, small enough
/// that the row buffer stays small next to the row group being encoded.
const BATCH_ROWS: usize = 4096;

/// Name used in errors of writers that do not write to a named file.
const STREAM_NAME: &str = "<stream>";

/// Streaming writer of one [`WriteKind`] (a recording, or `analyze`'s results) over any
/// [`Write`].
///
/// Rows are validated as they come ([`RecordingError::Unwritable`] leaves the writer usable),
/// buffered, and written in row groups of [`WriterOptions::row_group_rows`] rows.
///
/// Durability: [`RecordingWriter::flush`] ends the current row group and pushes every byte
/// written so far to the underlying writer. A Parquet file is only readable once its footer
/// is written by [`RecordingWriter::close`] (or [`RecordingWriter::finish`]): a writer that
/// dies leaves an unreadable file. Crash safety is the producer's business, done once: live
/// capture writes journals and converts them to a recording on close or after a crash
/// (`capture::journal`, `capture::output`).
///
/// Dropping an unclosed writer makes a best-effort close (pending rows and the footer are
/// written) but the outcome, success or error, is lost. Call [`RecordingWriter::close`].
pub struct RecordingWriter<K: WriteKind, W: Write + Send> {
    /// `None` once closed.
    inner: Option<ArrowWriter<W>>,
    /// Handed to [`WriteKind::encode`] with every batch.
    context: K::Context,
    /// Accepted rows not yet handed to `inner`.
    pending: Vec<K::Row>,
    /// Rows accepted so far (written or pending).
    rows: u64,
    /// Rows converted to a batch at a time: [`BATCH_ROWS`], or fewer when row groups are
    /// smaller (a payload recording's rows are up to 8 KiB each, and its row groups are kept
    /// short so that neither they nor the rows waiting for them take much memory).
    batch_rows: usize,
    /// For error messages.
    name: String,
}

impl<K: WriteKind, W: Write + Send> std::fmt::Debug for RecordingWriter<K, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingWriter")
            .field("file", &self.name)
            .field("rows", &self.rows)
            .field("closed", &self.inner.is_none())
            .finish()
    }
}

impl<K: RecordKind> RecordingWriter<K, File> {
    /// Creates (or truncates) `path` and writes a recording to it.
    pub fn create(
        path: impl AsRef<Path>,
        meta: &RecordingMeta,
        options: WriterOptions,
    ) -> Result<Self, RecordingError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let file = File::create(path).map_err(|cause| RecordingError::Io {
            file: name.clone(),
            cause,
        })?;
        Self::with_name(file, meta, options, name)
    }
}

impl<K: RecordKind, W: Write + Send> RecordingWriter<K, W> {
    /// Writes a recording to `out`. `meta.record_type` must be `K`'s record type.
    pub fn new(
        out: W,
        meta: &RecordingMeta,
        options: WriterOptions,
    ) -> Result<Self, RecordingError> {
        Self::with_name(out, meta, options, STREAM_NAME.to_string())
    }

    fn with_name(
        out: W,
        meta: &RecordingMeta,
        options: WriterOptions,
        name: String,
    ) -> Result<Self, RecordingError> {
        if meta.record_type != K::RECORD_TYPE {
            return Err(RecordingError::WrongRecordType {
                file: name,
                expected: K::RECORD_TYPE,
                found: meta.record_type,
            });
        }
        Self::with_metadata(out, (), meta.to_key_values(), options, name)
    }
}

impl<K: WriteKind, W: Write + Send> RecordingWriter<K, W> {
    /// Writes a file of any [`WriteKind`] to `out`, with `metadata` as its key-value
    /// metadata; `name` (the path) is what errors call the file.
    pub fn with_metadata(
        out: W,
        context: K::Context,
        metadata: Vec<KeyValue>,
        options: WriterOptions,
        name: String,
    ) -> Result<Self, RecordingError> {
        let write_err = |reason: String| RecordingError::Write {
            file: name.clone(),
            reason,
        };
        if options.row_group_rows == 0 {
            return Err(write_err("row_group_rows must be at least 1".to_string()));
        }
        let level = ZstdLevel::try_new(options.zstd_level).map_err(|e| write_err(e.to_string()))?;
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .set_key_value_metadata(Some(metadata))
            .set_created_by(format!(
                "synscope-formats {} (parquet-rs)",
                env!("CARGO_PKG_VERSION")
            ))
            .set_dictionary_enabled(false)
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT);
        for col in K::DICTIONARY_COLUMNS {
            props = props.set_column_dictionary_enabled(ColumnPath::from(*col), true);
        }
        for col in K::DELTA_COLUMNS {
            props =
                props.set_column_encoding(ColumnPath::from(*col), Encoding::DELTA_BINARY_PACKED);
        }
        let inner = ArrowWriter::try_new(out, K::schema(), Some(props.build()))
            .map_err(|e| write_err(e.to_string()))?;
        Ok(RecordingWriter {
            inner: Some(inner),
            context,
            pending: Vec::with_capacity(BATCH_ROWS.min(options.row_group_rows)),
            rows: 0,
            batch_rows: BATCH_ROWS.min(options.row_group_rows),
            name,
        })
    }

    fn inner_mut(&mut self) -> Result<&mut ArrowWriter<W>, RecordingError> {
        match self.inner.as_mut() {
            Some(w) => Ok(w),
            None => Err(RecordingError::Closed {
                file: self.name.clone(),
            }),
        }
    }

    /// Adds one row. Fails without writing it when the row cannot be stored faithfully.
    pub fn write(&mut self, row: &K::Row) -> Result<(), RecordingError> {
        self.inner_mut()?;
        K::check(row).map_err(|reason| RecordingError::Unwritable {
            file: self.name.clone(),
            row: self.rows,
            reason,
        })?;
        self.pending.push(row.clone());
        self.rows += 1;
        if self.pending.len() >= self.batch_rows {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Adds rows in order; stops at the first one that fails (earlier rows stay written).
    pub fn write_all<'a>(
        &mut self,
        rows: impl IntoIterator<Item = &'a K::Row>,
    ) -> Result<(), RecordingError>
    where
        K::Row: 'a,
    {
        for row in rows {
            self.write(row)?;
        }
        Ok(())
    }

    /// Rows accepted so far.
    pub fn rows_written(&self) -> u64 {
        self.rows
    }

    /// Hands the buffered rows to the parquet writer (which may close a row group).
    fn write_pending(&mut self) -> Result<(), RecordingError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let name = self.name.clone();
        let batch = K::encode(&self.pending, &self.context).map_err(|e| RecordingError::Write {
            file: name.clone(),
            reason: e.to_string(),
        })?;
        self.pending.clear();
        self.inner_mut()?
            .write(&batch)
            .map_err(|e| RecordingError::Write {
                file: name,
                reason: e.to_string(),
            })
    }

    /// Ends the current row group (if it has rows) and pushes all bytes to the underlying
    /// writer. For periodic crash-safety of long captures; each call may make one short row
    /// group, so call it every few seconds, not every row.
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        self.write_pending()?;
        let name = self.name.clone();
        let inner = self.inner_mut()?;
        inner.flush().map_err(|e| RecordingError::Write {
            file: name.clone(),
            reason: e.to_string(),
        })?;
        inner
            .sync()
            .map_err(|cause| RecordingError::Io { file: name, cause })
    }

    /// Writes the pending rows and the footer. Afterwards the writer only answers
    /// [`RecordingError::Closed`].
    pub fn finish(&mut self) -> Result<WriteSummary, RecordingError> {
        let pending = self.write_pending();
        let name = self.name.clone();
        let mut inner = match self.inner.take() {
            Some(w) => w,
            None => return Err(RecordingError::Closed { file: name }),
        };
        pending?;
        let meta = inner.finish().map_err(|e| RecordingError::Write {
            file: name.clone(),
            reason: e.to_string(),
        })?;
        let bytes = inner.bytes_written() as u64;
        inner
            .sync()
            .map_err(|cause| RecordingError::Io { file: name, cause })?;
        Ok(WriteSummary {
            rows: meta.file_metadata().num_rows().max(0) as u64,
            row_groups: meta.num_row_groups(),
            bytes,
        })
    }

    /// [`RecordingWriter::finish`], consuming the writer.
    pub fn close(mut self) -> Result<WriteSummary, RecordingError> {
        self.finish()
    }
}

impl<K: WriteKind, W: Write + Send> Drop for RecordingWriter<K, W> {
    /// Best-effort close; see the type documentation.
    fn drop(&mut self) {
        if self.inner.is_some() {
            let _ = self.finish();
        }
    }
}

/// Reader of one recording type from a file.
///
/// Opening reads and checks the footer: Parquet validity, the `synscope.*` metadata (schema
/// version, record type) and the raw columns' presence and types. Reading then only fails on
/// I/O or corrupt values.
pub struct RecordingReader<K: RecordKind> {
    path: PathBuf,
    name: String,
    arrow_meta: ArrowReaderMetadata,
    projection: ProjectionMask,
    meta: RecordingMeta,
    _kind: PhantomData<fn() -> K>,
}

impl<K: RecordKind> std::fmt::Debug for RecordingReader<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingReader")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .field("row_groups", &self.num_row_groups())
            .finish()
    }
}

impl<K: RecordKind> RecordingReader<K> {
    /// Opens `path` and checks it (see the type documentation).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RecordingError> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        let file = File::open(&path).map_err(|cause| RecordingError::Io {
            file: name.clone(),
            cause,
        })?;
        let arrow_meta =
            ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|cause| {
                RecordingError::NotParquet {
                    file: name.clone(),
                    cause,
                }
            })?;
        let kv = arrow_meta
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        let meta = RecordingMeta::from_key_values(kv).map_err(|cause| RecordingError::Meta {
            file: name.clone(),
            cause,
        })?;
        if meta.record_type != K::RECORD_TYPE {
            return Err(RecordingError::WrongRecordType {
                file: name,
                expected: K::RECORD_TYPE,
                found: meta.record_type,
            });
        }
        let projection = Self::check_columns(&arrow_meta, &name, meta.schema_version)?;
        Ok(RecordingReader {
            path,
            name,
            arrow_meta,
            projection,
            meta,
            _kind: PhantomData,
        })
    }

    /// Checks that every raw column of the file's schema `version` exists with the schema's
    /// type; returns the projection that reads only them.
    fn check_columns(
        arrow_meta: &ArrowReaderMetadata,
        name: &str,
        version: u32,
    ) -> Result<ProjectionMask, RecordingError> {
        let want = K::schema();
        let have = arrow_meta.schema();
        let mut roots = Vec::with_capacity(K::RAW_COLUMNS.len() + K::ADDED_COLUMNS.len());
        let added = K::ADDED_COLUMNS
            .iter()
            .filter(|(_, since)| version >= *since)
            .map(|(col, _)| col);
        for col in K::RAW_COLUMNS.iter().chain(added) {
            let schema_err = |reason: String| RecordingError::Schema {
                file: name.to_string(),
                column: col.to_string(),
                reason,
            };
            let expected = want
                .field_with_name(col)
                .map_err(|e| schema_err(format!("not in this build's schema ({e})")))?;
            let (index, found) = have
                .column_with_name(col)
                .ok_or_else(|| schema_err("missing".to_string()))?;
            if found.data_type() != expected.data_type() {
                return Err(schema_err(format!(
                    "has type {}, expected {}",
                    found.data_type(),
                    expected.data_type()
                )));
            }
            roots.push(index);
        }
        Ok(ProjectionMask::roots(arrow_meta.parquet_schema(), roots))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's `synscope.*` metadata.
    pub fn meta(&self) -> &RecordingMeta {
        &self.meta
    }

    /// Number of row groups.
    pub fn num_row_groups(&self) -> usize {
        self.arrow_meta.metadata().num_row_groups()
    }

    /// Number of rows in the file (from the footer).
    pub fn num_rows(&self) -> u64 {
        self.arrow_meta.metadata().file_metadata().num_rows().max(0) as u64
    }

    /// Number of rows in row group `index`, `None` past the end.
    pub fn row_group_rows(&self, index: usize) -> Option<u64> {
        let rgs = self.arrow_meta.metadata().row_groups();
        rgs.get(index).map(|rg| rg.num_rows().max(0) as u64)
    }

    /// A batch reader over one row group, on its own file handle (cloned `File`s share one
    /// seek position, so sharing a handle between threads would mix reads up).
    fn row_group_batches(
        &self,
        index: usize,
        batch_rows: usize,
    ) -> Result<ParquetRecordBatchReader, RecordingError> {
        let count = self.num_row_groups();
        if index >= count {
            return Err(RecordingError::NoSuchRowGroup {
                file: self.name.clone(),
                index,
                count,
            });
        }
        let file = File::open(&self.path).map_err(|cause| RecordingError::Io {
            file: self.name.clone(),
            cause,
        })?;
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.arrow_meta.clone())
            .with_row_groups(vec![index])
            .with_projection(self.projection.clone())
            .with_batch_size(batch_rows)
            .build()
            .map_err(|cause| RecordingError::Read {
                file: self.name.clone(),
                row_group: index,
                cause,
            })
    }

    /// Decodes one batch at `first_row` of row group `row_group`, appending to `out`.
    fn decode_batch(
        &self,
        batch: Result<RecordBatch, ArrowError>,
        row_group: usize,
        first_row: usize,
        out: &mut Vec<K::Row>,
    ) -> Result<usize, RecordingError> {
        let batch = batch.map_err(|e| RecordingError::Read {
            file: self.name.clone(),
            row_group,
            cause: ParquetError::ArrowError(e.to_string()),
        })?;
        K::decode(&batch, out).map_err(|e| RecordingError::Corrupt {
            file: self.name.clone(),
            row_group,
            row: first_row + e.row,
            column: e.column,
            reason: e.reason,
        })?;
        Ok(batch.num_rows())
    }

    /// All rows of row group `index`. Takes `&self` and opens its own file handle, so
    /// threads can read different row groups of one reader in parallel.
    pub fn read_row_group(&self, index: usize) -> Result<Vec<K::Row>, RecordingError> {
        let expected = self.row_group_rows(index).unwrap_or(0) as usize;
        let reader = self.row_group_batches(index, expected.clamp(1, 1 << 16))?;
        let mut out = Vec::with_capacity(expected);
        let mut row = 0;
        for batch in reader {
            row += self.decode_batch(batch, index, row, &mut out)?;
        }
        Ok(out)
    }

    /// Every row of the file in order, streamed a batch at a time. On a corrupt row it
    /// yields every row before it, then the error, then ends.
    pub fn records(&self) -> Records<'_, K> {
        Records {
            reader: self,
            row_group: 0,
            batches: None,
            row_in_group: 0,
            buffer: Vec::new().into_iter(),
            error: None,
            done: false,
        }
    }
}

/// Iterator over every row of a recording; see [`RecordingReader::records`].
pub struct Records<'a, K: RecordKind> {
    reader: &'a RecordingReader<K>,
    /// Next row group to open when `batches` runs out.
    row_group: usize,
    batches: Option<ParquetRecordBatchReader>,
    row_in_group: usize,
    buffer: std::vec::IntoIter<K::Row>,
    /// An error to report once `buffer` is drained.
    error: Option<RecordingError>,
    done: bool,
}

impl<K: RecordKind> Records<'_, K> {
    /// Refills `buffer`; `Ok(false)` at the end of the file. When a batch holds a corrupt
    /// row, the rows before it still go to `buffer` and the error waits in `error`, so the
    /// caller sees every good row up to the first bad one.
    fn refill(&mut self) -> Result<bool, RecordingError> {
        loop {
            if let Some(batches) = self.batches.as_mut() {
                if let Some(batch) = batches.next() {
                    let mut rows = Vec::with_capacity(BATCH_ROWS);
                    let group = self.row_group - 1;
                    let decoded =
                        self.reader
                            .decode_batch(batch, group, self.row_in_group, &mut rows);
                    self.buffer = rows.into_iter();
                    match decoded {
                        Ok(n) => self.row_in_group += n,
                        Err(e) => self.error = Some(e),
                    }
                    return Ok(true);
                }
                self.batches = None;
            }
            if self.row_group >= self.reader.num_row_groups() {
                return Ok(false);
            }
            self.batches = Some(self.reader.row_group_batches(self.row_group, BATCH_ROWS)?);
            self.row_group += 1;
            self.row_in_group = 0;
        }
    }
}

impl<K: RecordKind> Iterator for Records<'_, K> {
    type Item = Result<K::Row, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.buffer.next() {
                return Some(Ok(row));
            }
            if let Some(e) = self.error.take() {
                self.done = true;
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Column access and value conversion shared by the two recordings' `encode`/`decode`.
pub(crate) mod columns {
    use super::*;
    use arrow::array::{ArrayRef, ArrowPrimitiveType, PrimitiveArray, StringArray};
    use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};

    /// Column `name` of `batch` as array type `A`; a wrong type is an error, not a panic
    /// (the reader checked types at open, but a batch is still data from disk).
    pub fn get<'a, A: Array + 'static>(
        batch: &'a RecordBatch,
        name: &str,
    ) -> Result<&'a A, DecodeError> {
        let col = batch
            .column_by_name(name)
            .ok_or_else(|| DecodeError::new(0, name, "column missing from batch"))?;
        col.as_any().downcast_ref::<A>().ok_or_else(|| {
            DecodeError::new(0, name, format!("unexpected type {}", col.data_type()))
        })
    }

    /// Fails on the first null of a column that must not have any.
    pub fn no_nulls(arr: &dyn Array, name: &str) -> Result<(), DecodeError> {
        if arr.null_count() == 0 {
            return Ok(());
        }
        let row = (0..arr.len()).find(|i| arr.is_null(*i)).unwrap_or(0);
        Err(DecodeError::new(
            row,
            name,
            "null in a column that has no nulls",
        ))
    }

    /// A non-null primitive column.
    pub fn prim<'a, T: ArrowPrimitiveType>(
        batch: &'a RecordBatch,
        name: &str,
    ) -> Result<&'a PrimitiveArray<T>, DecodeError> {
        let a = get::<PrimitiveArray<T>>(batch, name)?;
        no_nulls(a, name)?;
        Ok(a)
    }

    /// A non-null text column.
    pub fn text<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray, DecodeError> {
        let a = get::<StringArray>(batch, name)?;
        no_nulls(a, name)?;
        Ok(a)
    }

    /// Names of the endpoint columns the SYN and payload recordings share ([`Endpoints`]).
    pub const DIRECTION: &str = "direction";
    pub const IP_VERSION: &str = "ip_version";
    pub const SRC_IP: &str = "src_ip";
    pub const DST_IP: &str = "dst_ip";
    pub const SRC_PORT: &str = "src_port";
    pub const DST_PORT: &str = "dst_port";

    /// One row's values of the [`Endpoints`] columns.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Endpoint {
        pub direction: u8,
        pub ip_version: u8,
        pub src_addr: [u8; 16],
        pub dst_addr: [u8; 16],
        pub src_port: u16,
        pub dst_port: u16,
    }

    /// The columns that say where a packet went, which SYN and payload recordings write the
    /// same way: `direction` by name ([`record::direction`]), `ip_version`, the addresses as
    /// text ([`TextColumn::push_addr`]) and the ports. Read once here, so both files reject
    /// the same bad values with the same errors.
    pub struct Endpoints<'a> {
        direction: &'a StringArray,
        ip_version: &'a PrimitiveArray<arrow::datatypes::UInt8Type>,
        src_ip: &'a StringArray,
        dst_ip: &'a StringArray,
        src_port: &'a PrimitiveArray<arrow::datatypes::UInt16Type>,
        dst_port: &'a PrimitiveArray<arrow::datatypes::UInt16Type>,
    }

    impl<'a> Endpoints<'a> {
        /// The endpoint columns of `batch` (non-null, of the schema's types).
        pub fn read(batch: &'a RecordBatch) -> Result<Endpoints<'a>, DecodeError> {
            Ok(Endpoints {
                direction: text(batch, DIRECTION)?,
                ip_version: prim(batch, IP_VERSION)?,
                src_ip: text(batch, SRC_IP)?,
                dst_ip: text(batch, DST_IP)?,
                src_port: prim(batch, SRC_PORT)?,
                dst_port: prim(batch, DST_PORT)?,
            })
        }

        /// Row `i`'s values; an unknown direction or an address that is not one of the row's
        /// IP version is an error naming its column.
        pub fn at(&self, i: usize) -> Result<Endpoint, DecodeError> {
            let ip_version = self.ip_version.value(i);
            let name = self.direction.value(i);
            let direction = record::direction::from_name(name).ok_or_else(|| {
                DecodeError::new(i, DIRECTION, format!("unknown direction {name:?}"))
            })?;
            Ok(Endpoint {
                direction,
                ip_version,
                src_addr: addr_from_text(ip_version, self.src_ip.value(i), i, SRC_IP)?,
                dst_addr: addr_from_text(ip_version, self.dst_ip.value(i), i, DST_IP)?,
                src_port: self.src_port.value(i),
                dst_port: self.dst_port.value(i),
            })
        }
    }

    /// A text column of each row's address (`pick` gives its IP version and address).
    pub fn addr_array<R>(
        rows: &[R],
        pick: impl Fn(&R) -> (u8, &[u8; 16]),
    ) -> Result<ArrayRef, ArrowError> {
        let mut c = TextColumn::with_capacity(rows.len(), 15);
        for r in rows {
            let (v, a) = pick(r);
            c.push_addr(v, a)?;
        }
        Ok(Arc::new(c.finish()?))
    }

    /// The encapsulation columns both recordings have (schema version 2): `encap`, the
    /// outermost encapsulation's name ([`record::encap::name`], `none` outside any), and
    /// `encap_id`, its identifier, null where it has none (so a GRE key of 0 and no key stay
    /// apart). In flow recordings they are the flow key's: set only for VXLAN, VXLAN-GPE and
    /// Geneve ([`record::encap::keys_flows`]). Absent from version 1 files: their rows read as
    /// outside any encapsulation.
    pub struct EncapColumns<'a> {
        kinds: Option<&'a StringArray>,
        ids: Option<&'a arrow::array::UInt32Array>,
    }

    impl<'a> EncapColumns<'a> {
        /// The `kind` and `id` columns of `batch`, when it has them (a version 2 file's
        /// batch; the reader checked at open that such a file has them).
        pub fn read(
            batch: &'a RecordBatch,
            kind: &str,
            id: &str,
        ) -> Result<EncapColumns<'a>, DecodeError> {
            if batch.column_by_name(kind).is_none() {
                return Ok(EncapColumns {
                    kinds: None,
                    ids: None,
                });
            }
            Ok(EncapColumns {
                kinds: Some(text(batch, kind)?),
                ids: Some(get::<arrow::array::UInt32Array>(batch, id)?),
            })
        }

        /// Row `i`'s kind, flags and id; `kind_col` names the column in errors.
        pub fn at(&self, i: usize, kind_col: &str) -> Result<(u8, u8, u32), DecodeError> {
            let (Some(kinds), Some(ids)) = (self.kinds, self.ids) else {
                return Ok((record::encap::NONE, 0, 0));
            };
            let name = kinds.value(i);
            let kind = record::encap::from_name(name).ok_or_else(|| {
                DecodeError::new(i, kind_col, format!("unknown encapsulation {name:?}"))
            })?;
            Ok(if ids.is_null(i) {
                (kind, 0, 0)
            } else {
                (kind, record::encap::flag::ID, ids.value(i))
            })
        }
    }

    /// The two encapsulation columns ([`EncapColumns`]) of rows whose kind, flags and id
    /// `pick` gives.
    pub fn encap_arrays<R>(rows: &[R], pick: impl Fn(&R) -> (u8, u8, u32)) -> [ArrayRef; 2] {
        let kinds = StringArray::from_iter_values(
            rows.iter()
                .map(|r| record::encap::name(pick(r).0).unwrap_or("invalid")),
        );
        let ids = arrow::array::UInt32Array::from_iter(rows.iter().map(|r| {
            let (_, flags, id) = pick(r);
            (flags & record::encap::flag::ID != 0).then_some(id)
        }));
        [Arc::new(kinds), Arc::new(ids)]
    }

    /// A record timestamp (u64 ns) as the i64 Arrow stores; `None` past year 2262.
    pub fn ts_to_i64(ns: u64) -> Option<i64> {
        i64::try_from(ns).ok()
    }

    /// An Arrow timestamp back to u64 ns; negative (before 1970) is corrupt.
    pub fn ts_from_i64(v: i64, row: usize, column: &str) -> Result<u64, DecodeError> {
        u64::try_from(v)
            .map_err(|_| DecodeError::new(row, column, format!("negative timestamp {v}")))
    }

    /// Whether the unused tail of an IPv4 address is zero (`ip_version` 4), or the version
    /// is 6; the checks writers make before storing an address as text.
    pub fn addr_is_canonical(ip_version: u8, addr: &[u8; 16]) -> bool {
        match ip_version {
            4 => addr[4..].iter().all(|b| *b == 0),
            6 => true,
            _ => false,
        }
    }

    /// An address as `std::net` prints it (dotted quad, or RFC 5952 IPv6 text): the reference
    /// [`TextColumn::push_addr`] is tested against.
    #[cfg(test)]
    pub fn addr_to_text(ip_version: u8, addr: &[u8; 16]) -> String {
        if ip_version == 4 {
            Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string()
        } else {
            Ipv6Addr::from(*addr).to_string()
        }
    }

    /// A non-null text column built in place: values are appended to one byte buffer, so
    /// writing a column costs no `String` per row. Formatting an address through `Display`
    /// into a fresh `String` was the largest single cost of converting a SYN flood (every
    /// row two addresses, each a `fmt` call chain and an allocation).
    pub struct TextColumn {
        values: Vec<u8>,
        offsets: Vec<i32>,
    }

    impl TextColumn {
        /// An empty column with room for `rows` values of about `bytes_per_row` bytes.
        pub fn with_capacity(rows: usize, bytes_per_row: usize) -> TextColumn {
            let mut offsets = Vec::with_capacity(rows + 1);
            offsets.push(0);
            TextColumn {
                values: Vec::with_capacity(rows * bytes_per_row),
                offsets,
            }
        }

        /// Ends the current value (whatever was appended since the previous one).
        fn end_value(&mut self) -> Result<(), ArrowError> {
            let end = i32::try_from(self.values.len()).map_err(|_| {
                ArrowError::InvalidArgumentError("text column past 2 GiB".to_string())
            })?;
            self.offsets.push(end);
            Ok(())
        }

        /// Appends one value.
        pub fn push(&mut self, text: &str) -> Result<(), ArrowError> {
            self.values.extend_from_slice(text.as_bytes());
            self.end_value()
        }

        /// Appends an address, with the same text as [`addr_to_text`].
        pub fn push_addr(&mut self, ip_version: u8, addr: &[u8; 16]) -> Result<(), ArrowError> {
            if ip_version == 4 {
                let (text, len) = record::ipv4_text(addr);
                self.values.extend_from_slice(&text[..len]);
            } else {
                use std::fmt::Write as _;
                write!(self, "{}", Ipv6Addr::from(*addr)).map_err(|e| {
                    ArrowError::ComputeError(format!("formatting an IPv6 address: {e}"))
                })?;
            }
            self.end_value()
        }

        /// The array; its UTF-8 is checked once here, for the whole buffer.
        pub fn finish(self) -> Result<StringArray, ArrowError> {
            let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
            StringArray::try_new(offsets, Buffer::from_vec(self.values), None)
        }
    }

    impl std::fmt::Write for TextColumn {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.values.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }

    /// Inverse of [`addr_to_text`]: the text must be an address of the row's IP version.
    pub fn addr_from_text(
        ip_version: u8,
        text: &str,
        row: usize,
        column: &str,
    ) -> Result<[u8; 16], DecodeError> {
        let bad = || {
            DecodeError::new(
                row,
                column,
                format!("{text:?} is not an IPv{ip_version} address"),
            )
        };
        let mut out = [0u8; 16];
        match ip_version {
            4 => {
                let a: Ipv4Addr = text.parse().map_err(|_| bad())?;
                out[..4].copy_from_slice(&a.octets());
            }
            6 => {
                let a: Ipv6Addr = text.parse().map_err(|_| bad())?;
                out = a.octets();
            }
            v => {
                return Err(DecodeError::new(
                    row,
                    "ip_version",
                    format!("IP version {v} is neither 4 nor 6"),
                ));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::columns::*;

    #[test]
    fn addresses_round_trip_through_text() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[192, 0, 2, 200]);
        assert_eq!(addr_to_text(4, &v4), "192.0.2.200");
        assert_eq!(addr_from_text(4, "192.0.2.200", 0, "c"), Ok(v4));
        let v6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(addr_to_text(6, &v6), "2001:db8::1");
        assert_eq!(addr_from_text(6, "2001:db8::1", 0, "c"), Ok(v6));
    }

    #[test]
    fn text_column_addresses_are_std_text() {
        let mut col = TextColumn::with_capacity(0, 0);
        let mut want = Vec::new();
        let mut a = [0u8; 16];
        // Every octet value in every position (1, 2 and 3 digits, zeros).
        for o in 0..=255u8 {
            for pos in 0..4 {
                a[..4].copy_from_slice(&[7, 70, 255, 0]);
                a[pos] = o;
                col.push_addr(4, &a).unwrap();
                want.push(addr_to_text(4, &a));
            }
        }
        let v6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        col.push_addr(6, &v6).unwrap();
        want.push(addr_to_text(6, &v6));
        col.push("S").unwrap();
        want.push("S".to_string());
        col.push("").unwrap();
        want.push(String::new());
        let arr = col.finish().unwrap();
        let got: Vec<&str> = arr.iter().map(|v| v.unwrap()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn address_text_must_match_the_version() {
        assert_eq!(
            addr_from_text(4, "2001:db8::1", 3, "src_ip")
                .unwrap_err()
                .row,
            3
        );
        assert!(addr_from_text(6, "192.0.2.1", 0, "c").is_err());
        assert!(addr_from_text(4, "300.1.1.1", 0, "c").is_err());
        assert!(addr_from_text(4, "", 0, "c").is_err());
        assert_eq!(
            addr_from_text(5, "192.0.2.1", 0, "c").unwrap_err().column,
            "ip_version"
        );
    }

    #[test]
    fn canonical_address_rules() {
        let mut a = [0u8; 16];
        assert!(addr_is_canonical(4, &a) && addr_is_canonical(6, &a));
        assert!(!addr_is_canonical(0, &a));
        a[4] = 1;
        assert!(!addr_is_canonical(4, &a) && addr_is_canonical(6, &a));
    }

    #[test]
    fn timestamps_outside_i64_are_refused() {
        assert_eq!(ts_to_i64(i64::MAX as u64), Some(i64::MAX));
        assert_eq!(ts_to_i64(i64::MAX as u64 + 1), None);
        assert_eq!(ts_from_i64(5, 0, "ts"), Ok(5));
        assert!(ts_from_i64(-1, 0, "ts").is_err());
    }
}
