//! The summary report: the run's counters ([`totals`]), aggregations ([`agg`], polars) and
//! their renderings as a readable table ([`table`]) or a JSON object ([`json`]).

pub mod agg;
mod frames;
pub mod json;
mod keys;
pub mod table;
#[cfg(test)]
mod test_db;
pub mod totals;
pub mod traffic;

pub use agg::{Aggregator, Summary};
pub use totals::Totals;
