//! The summary report: the run's counters ([`totals`]), aggregations ([`agg`], polars) and
//! their renderings as a readable table ([`table`]) or a JSON object ([`json`]).

pub mod agg;
pub mod json;
pub mod table;
pub mod totals;

pub use agg::{Aggregator, Summary};
pub use totals::Totals;
