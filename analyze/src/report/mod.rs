//! The summary report: aggregations ([`agg`], polars) and their renderings as a readable
//! table ([`table`]) or a JSON object ([`json`]).

pub mod agg;
pub mod json;
pub mod table;

pub use agg::{Aggregator, Summary};
