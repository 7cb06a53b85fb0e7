//! Small helpers between polars and the report: its errors as strings (the report's error
//! type) and a frame's column read back as plain values.

use polars::prelude::*;

pub(super) type PResult<T> = Result<T, String>;

pub(super) fn perr(e: PolarsError) -> String {
    e.to_string()
}

pub(super) fn column<'a>(df: &'a DataFrame, name: &str) -> PResult<&'a Column> {
    df.column(name).map_err(perr)
}

pub(super) fn strs(df: &DataFrame, name: &str) -> PResult<Vec<Option<String>>> {
    let c = column(df, name)?;
    // An all-null chunk may come back typed Null: read it as nulls.
    if c.dtype() == &DataType::Null {
        return Ok(vec![None; c.len()]);
    }
    Ok(c.str()
        .map_err(perr)?
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

pub(super) fn u64s(df: &DataFrame, name: &str) -> PResult<Vec<u64>> {
    let c = column(df, name)?.cast(&DataType::UInt64).map_err(perr)?;
    Ok(c.u64()
        .map_err(perr)?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

pub(super) fn u32s(df: &DataFrame, name: &str) -> PResult<Vec<u32>> {
    let c = column(df, name)?.cast(&DataType::UInt32).map_err(perr)?;
    Ok(c.u32()
        .map_err(perr)?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}
