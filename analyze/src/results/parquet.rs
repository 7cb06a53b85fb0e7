//! The results Parquet file (`--out results.parquet`): one row per observation, the columns
//! of [`super::COLUMNS`] with Arrow types, for notebooks.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampNanosecondBuilder, UInt8Builder, UInt16Builder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use formats::recording::{RecordingWriter, WriteKind, WriterOptions};
use p0f::Database;
use parquet::file::metadata::KeyValue;

use super::{
    COLUMNS, Cell, ColType, KEY_RESULTS_VERSION, Observation, RESULTS_SCHEMA_VERSION, Sources,
    cells,
};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| {
            let t = match c.ty {
                ColType::Time => formats::recording::timestamp_type(),
                ColType::Str => DataType::Utf8,
                ColType::U8 => DataType::UInt8,
                ColType::U16 => DataType::UInt16,
                ColType::U32 => DataType::UInt32,
                ColType::F64 => DataType::Float64,
                ColType::Bool => DataType::Boolean,
            };
            Field::new(c.name, t, c.nullable)
        })
        .collect();
    Arc::new(Schema::new(fields))
});

/// The Arrow schema of the results Parquet file.
pub fn schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Why the results file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {cause}")]
    Io { path: PathBuf, cause: io::Error },
    /// Writing the Parquet file failed (the error names the file).
    #[error(transparent)]
    Write(#[from] formats::recording::RecordingError),
}

/// Rows per row group of the results file: bounded so the writer's memory is, and readers
/// can split the file.
pub const RESULTS_ROW_GROUP_ROWS: usize = 65536;

/// The results file's compression: the file is written once and read many times in
/// notebooks, so it takes a higher zstd level than the recordings, which capture writes
/// under load.
const RESULTS_ZSTD_LEVEL: i32 = 3;

/// The results file as a [`WriteKind`]: written by the same [`RecordingWriter`] as the
/// recordings.
pub struct Results;

/// What encoding an observation needs besides itself.
pub struct ResultsContext {
    /// Input names, indexed by the observation's source.
    pub sources: Sources,
    /// The database of the engine whose observations are written (label ids -> names).
    pub db: Arc<Database>,
}

impl WriteKind for Results {
    type Row = Observation;
    type Context = ResultsContext;
    /// The text columns: labels, signatures, addresses and names repeat across rows.
    const DICTIONARY_COLUMNS: &'static [&'static str] = &TEXT_COLUMNS;
    const DELTA_COLUMNS: &'static [&'static str] = &[];

    fn schema() -> SchemaRef {
        schema()
    }

    /// Every observation can be written: its cells are total.
    fn check(_: &Observation) -> Result<(), String> {
        Ok(())
    }

    fn encode(rows: &[Observation], cx: &ResultsContext) -> Result<RecordBatch, ArrowError> {
        encode(rows, &cx.sources, &cx.db)
    }
}

/// The names of the text columns of [`COLUMNS`], in order.
const TEXT_COLUMNS: [&str; text_column_count()] = text_column_names();

const fn text_column_count() -> usize {
    let (mut i, mut n) = (0, 0);
    while i < COLUMNS.len() {
        if matches!(COLUMNS[i].ty, ColType::Str) {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn text_column_names() -> [&'static str; text_column_count()] {
    let mut out = [""; text_column_count()];
    let (mut i, mut n) = (0, 0);
    while i < COLUMNS.len() {
        if matches!(COLUMNS[i].ty, ColType::Str) {
            out[n] = COLUMNS[i].name;
            n += 1;
        }
        i += 1;
    }
    out
}

/// Streaming writer of the results Parquet file (`--out results.parquet`).
///
/// Written to `NAME.tmp` and committed (fsync + rename, [`formats::files::Staged`]) by
/// [`ResultsWriter::close`], so a failed run leaves no file that looks complete. Metadata:
/// `synscope.record_type = results` and [`KEY_RESULTS_VERSION`].
pub struct ResultsWriter {
    path: PathBuf,
    /// Removes the temporary file when dropped uncommitted (an error elsewhere).
    file: Option<formats::files::Staged>,
    writer: Option<RecordingWriter<Results, File>>,
}

impl std::fmt::Debug for ResultsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultsWriter")
            .field("path", &self.path)
            .field("writer", &self.writer)
            .finish()
    }
}

impl ResultsWriter {
    /// Starts writing `path` (through a temporary sibling); `db` is the database of the
    /// engine whose observations will be written.
    pub fn create(
        path: &Path,
        sources: Sources,
        db: Arc<Database>,
    ) -> Result<ResultsWriter, ResultsError> {
        let staged = formats::files::Staged::new(path);
        let file = File::create(staged.tmp()).map_err(|cause| ResultsError::Io {
            path: staged.tmp().to_path_buf(),
            cause,
        })?;
        let metadata = vec![
            KeyValue::new(
                formats::meta::KEY_RECORD_TYPE.to_string(),
                "results".to_string(),
            ),
            KeyValue::new(
                KEY_RESULTS_VERSION.to_string(),
                RESULTS_SCHEMA_VERSION.to_string(),
            ),
            KeyValue::new(
                formats::meta::KEY_TOOL_VERSION.to_string(),
                format!("analyze {}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        let options = WriterOptions {
            row_group_rows: RESULTS_ROW_GROUP_ROWS,
            zstd_level: RESULTS_ZSTD_LEVEL,
        };
        let writer = RecordingWriter::with_metadata(
            file,
            ResultsContext { sources, db },
            metadata,
            options,
            path.display().to_string(),
        )?;
        Ok(ResultsWriter {
            path: path.to_path_buf(),
            file: Some(staged),
            writer: Some(writer),
        })
    }

    /// Adds one observation.
    pub fn write(&mut self, obs: &Observation) -> Result<(), ResultsError> {
        if let Some(w) = &mut self.writer {
            w.write(obs)?;
        }
        Ok(())
    }

    /// Writes the footer and renames the file into place. Returns the number of rows.
    pub fn close(mut self) -> Result<u64, ResultsError> {
        let rows = match self.writer.take() {
            Some(w) => w.close()?.rows,
            None => 0,
        };
        if let Some(file) = self.file.take() {
            file.commit().map_err(|cause| ResultsError::Io {
                path: self.path.clone(),
                cause,
            })?;
        }
        Ok(rows)
    }
}

impl Drop for ResultsWriter {
    fn drop(&mut self) {
        // Not closed (an error elsewhere): the writer goes first, then `file`, dropped
        // uncommitted, removes the half-written temporary.
        self.writer = None;
        self.file = None;
    }
}

/// Observations -> one Arrow batch with [`schema`].
pub fn encode(
    rows: &[Observation],
    sources: &Sources,
    db: &Database,
) -> Result<RecordBatch, arrow::error::ArrowError> {
    enum B {
        Time(TimestampNanosecondBuilder),
        Str(StringBuilder),
        U8(UInt8Builder),
        U16(UInt16Builder),
        U32(UInt32Builder),
        F64(Float64Builder),
        Bool(BooleanBuilder),
    }
    let n = rows.len();
    let mut builders: Vec<B> = COLUMNS
        .iter()
        .map(|c| match c.ty {
            ColType::Time => {
                B::Time(TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC"))
            }
            ColType::Str => B::Str(StringBuilder::with_capacity(n, n * 16)),
            ColType::U8 => B::U8(UInt8Builder::with_capacity(n)),
            ColType::U16 => B::U16(UInt16Builder::with_capacity(n)),
            ColType::U32 => B::U32(UInt32Builder::with_capacity(n)),
            ColType::F64 => B::F64(Float64Builder::with_capacity(n)),
            ColType::Bool => B::Bool(BooleanBuilder::with_capacity(n)),
        })
        .collect();
    let mut text = String::new();
    for obs in rows {
        for (b, cell) in builders.iter_mut().zip(cells(obs, sources, db)) {
            match (b, cell) {
                (B::Time(b), Cell::Time(ns)) => b.append_option(i64::try_from(ns).ok()),
                (B::Str(b), Cell::Str(s) | Cell::Word(_, s)) => b.append_value(s),
                (
                    B::Str(b),
                    c @ (Cell::Ip(..) | Cell::Sig(_) | Cell::Params(..) | Cell::Nat(_)),
                ) => {
                    text.clear();
                    c.text(&mut text);
                    b.append_value(&text);
                }
                (B::U8(b), Cell::UInt(v)) => b.append_option(u8::try_from(v).ok()),
                (B::U16(b), Cell::UInt(v)) => b.append_option(u16::try_from(v).ok()),
                (B::U32(b), Cell::UInt(v)) => b.append_option(u32::try_from(v).ok()),
                (B::F64(b), Cell::Float(v)) => b.append_value(v),
                (B::Bool(b), Cell::Bool(v)) => b.append_value(v),
                (B::Time(b), _) => b.append_null(),
                (B::Str(b), _) => b.append_null(),
                (B::U8(b), _) => b.append_null(),
                (B::U16(b), _) => b.append_null(),
                (B::U32(b), _) => b.append_null(),
                (B::F64(b), _) => b.append_null(),
                (B::Bool(b), _) => b.append_null(),
            }
        }
    }
    let arrays: Vec<ArrayRef> = builders
        .into_iter()
        .map(|b| -> ArrayRef {
            match b {
                B::Time(mut b) => Arc::new(b.finish()),
                B::Str(mut b) => Arc::new(b.finish()),
                B::U8(mut b) => Arc::new(b.finish()),
                B::U16(mut b) => Arc::new(b.finish()),
                B::U32(mut b) => Arc::new(b.finish()),
                B::F64(mut b) => Arc::new(b.finish()),
                B::Bool(mut b) => Arc::new(b.finish()),
            }
        })
        .collect();
    RecordBatch::try_new(schema(), arrays)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::NCOLS;
    use crate::results::tests::real_syn;

    #[test]
    fn parquet_round_trip() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("res.parquet");
        let obs = real_syn();
        let sources = Sources(vec![Arc::from("a.pcap")]);
        let db = Arc::new(p0f::Database::embedded().unwrap());
        let mut w = ResultsWriter::create(&path, sources, db).unwrap();
        for _ in 0..10 {
            w.write(&obs).unwrap();
        }
        assert!(!path.exists(), "only renamed into place on close");
        assert_eq!(w.close().unwrap(), 10);
        assert!(formats::meta::is_results_file(&path));
        let f = File::open(&path).unwrap();
        let b = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let kv = b
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .clone();
        assert!(kv.iter().any(|k| k.key == KEY_RESULTS_VERSION
            && k.value.as_deref() == Some(&RESULTS_SCHEMA_VERSION.to_string())));
        let batches: Vec<_> = b.build().unwrap().collect::<Result<_, _>>().unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 10);
        assert_eq!(batches[0].schema().fields().len(), NCOLS);
    }
}
