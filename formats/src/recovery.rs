//! Crash recovery for recordings written to a file.
//!
//! A Parquet file is readable only once its footer (the schema and the location of every row
//! group) is written at the end, which a writer does on close. A capture that is killed, or
//! whose machine loses power, never closes its file. To make its periodic flushes worth
//! something, a writer created on a path (`SynWriter::create`, `FlowWriter::create`) writes,
//! at every flush, a *checkpoint* beside the file: `NAME.checkpoint` holds the length of the
//! file at that flush and the footer that would describe the row groups written so far.
//! [`recover`] cuts the file back to that length (dropping the partial row group written
//! after the last flush) and appends the footer, giving a complete recording of every row up
//! to the last flush. A successful close removes the checkpoint.
//!
//! Checkpoint layout: the 8 bytes `SYNSCKP1`, the covered file length as a little-endian
//! u64, then the footer bytes exactly as they go at the end of the file (Thrift metadata,
//! its length, `PAR1`). It is written to `NAME.checkpoint.tmp` and renamed, so a crash during
//! a checkpoint leaves the previous one intact.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::schema::types::SchemaDescPtr;

use crate::recording::RecordingError;

/// First bytes of a checkpoint file (format version 1).
const MAGIC: &[u8; 8] = b"SYNSCKP1";

/// First bytes of every Parquet file.
const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// Where the checkpoint of `path` lives: `path` with `.checkpoint` appended.
pub fn checkpoint_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".checkpoint");
    PathBuf::from(s)
}

/// What a footer needs besides the row groups; fixed for the life of a writer.
#[derive(Debug, Clone)]
pub(crate) struct FooterParts {
    /// Parquet schema of the file.
    pub schema: SchemaDescPtr,
    /// All key-value metadata, including the Arrow schema hint readers use to get the exact
    /// Arrow types (e.g. the `UTC` timezone) back.
    pub key_values: Vec<KeyValue>,
    /// The `created_by` string.
    pub created_by: String,
    /// Parquet format version number of the writer.
    pub version: i32,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RecordingError + '_ {
    move |cause| RecordingError::Io {
        file: path.display().to_string(),
        cause,
    }
}

fn recover_err(path: &Path, reason: impl Into<String>) -> RecordingError {
    RecordingError::Recover {
        file: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Writes the checkpoint of `path`: the file is `covered` bytes long and holds
/// `row_groups`. With `sync`, the checkpoint reaches stable storage before it replaces the
/// previous one.
pub(crate) fn write_checkpoint(
    path: &Path,
    covered: u64,
    parts: &FooterParts,
    row_groups: Vec<RowGroupMetaData>,
    sync: bool,
) -> Result<(), RecordingError> {
    let rows = row_groups.iter().map(|rg| rg.num_rows()).sum();
    let file_meta = FileMetaData::new(
        parts.version,
        rows,
        Some(parts.created_by.clone()),
        Some(parts.key_values.clone()),
        Arc::clone(&parts.schema),
        None,
    );
    let meta = ParquetMetaData::new(file_meta, row_groups);
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&covered.to_le_bytes());
    ParquetMetaDataWriter::new(&mut buf, &meta)
        .with_preserve_page_index_locations(false)
        .finish()
        .map_err(|e| RecordingError::Write {
            file: path.display().to_string(),
            reason: format!("checkpoint footer: {e}"),
        })?;

    let final_path = checkpoint_path(path);
    let mut tmp_path = final_path.clone().into_os_string();
    tmp_path.push(".tmp");
    let tmp_path = PathBuf::from(tmp_path);
    let mut f = File::create(&tmp_path).map_err(io_err(&tmp_path))?;
    f.write_all(&buf).map_err(io_err(&tmp_path))?;
    if sync {
        f.sync_data().map_err(io_err(&tmp_path))?;
    }
    drop(f);
    std::fs::rename(&tmp_path, &final_path).map_err(io_err(&final_path))
}

/// Removes the checkpoint of `path`, if any (after a successful close it is obsolete).
pub(crate) fn remove_checkpoint(path: &Path) -> Result<(), RecordingError> {
    let cp = checkpoint_path(path);
    match std::fs::remove_file(&cp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(&cp)(e)),
    }
}

/// What [`recover`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The file already had a valid footer; only a stale checkpoint (if any) was removed.
    pub was_complete: bool,
    /// Rows in the file now.
    pub rows: u64,
    /// Row groups in the file now.
    pub row_groups: usize,
    /// Bytes cut from the end of the file (a row group that was being written when the writer
    /// died).
    pub discarded_bytes: u64,
}

/// Loads the footer of `path`; `Ok(None)` when the file has no valid one.
fn valid_footer(path: &Path) -> Result<Option<Arc<ParquetMetaData>>, RecordingError> {
    let file = File::open(path).map_err(io_err(path))?;
    Ok(ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
        .ok()
        .map(|m| Arc::clone(m.metadata())))
}

/// Makes the recording at `path` readable again after its writer died: cuts it back to the
/// last flush and appends the footer saved then (see the module documentation). A file that
/// is already complete is left alone. Changes the file in place, so call it only on files
/// whose writer is gone.
///
/// Fails when the file has no valid footer and no usable checkpoint (the writer died before
/// its first flush, or the checkpoint does not match the file).
pub fn recover(path: impl AsRef<Path>) -> Result<Recovery, RecordingError> {
    let path = path.as_ref();
    if let Some(meta) = valid_footer(path)? {
        remove_checkpoint(path)?;
        return Ok(Recovery {
            was_complete: true,
            rows: meta.file_metadata().num_rows().max(0) as u64,
            row_groups: meta.num_row_groups(),
            discarded_bytes: 0,
        });
    }
    let cp_path = checkpoint_path(path);
    let cp = match std::fs::read(&cp_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(recover_err(
                path,
                "no footer and no checkpoint: the writer died before its first flush",
            ));
        }
        Err(e) => return Err(io_err(&cp_path)(e)),
    };
    let (Some(magic), Some(len_bytes), Some(footer)) = (cp.get(..8), cp.get(8..16), cp.get(16..))
    else {
        return Err(recover_err(path, "checkpoint file is too short"));
    };
    if magic != MAGIC || footer.len() < 8 || !footer.ends_with(PARQUET_MAGIC) {
        return Err(recover_err(
            path,
            "checkpoint file is not a synscope checkpoint",
        ));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(len_bytes);
    let covered = u64::from_le_bytes(len8);

    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path))?;
    let actual = file.metadata().map_err(io_err(path))?.len();
    if actual < covered {
        return Err(recover_err(
            path,
            format!("file has {actual} bytes, the checkpoint covers {covered}"),
        ));
    }
    let mut head = [0u8; 4];
    file.read_exact(&mut head).map_err(io_err(path))?;
    if &head != PARQUET_MAGIC {
        return Err(recover_err(path, "file does not start with PAR1"));
    }
    file.set_len(covered).map_err(io_err(path))?;
    {
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(covered)).map_err(io_err(path))?;
    }
    file.write_all(footer).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    drop(file);

    let meta = valid_footer(path)?
        .ok_or_else(|| recover_err(path, "the repaired file still does not read as Parquet"))?;
    remove_checkpoint(path)?;
    Ok(Recovery {
        was_complete: false,
        rows: meta.file_metadata().num_rows().max(0) as u64,
        row_groups: meta.num_row_groups(),
        discarded_bytes: actual - covered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_sits_beside_the_file() {
        assert_eq!(
            checkpoint_path(Path::new("/a/b/syn.parquet")),
            PathBuf::from("/a/b/syn.parquet.checkpoint")
        );
    }
}
