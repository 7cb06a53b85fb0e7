//! Ground truth from the traffic itself: the OS a host's HTTP User-Agent names, set against
//! the labels its SYN and SYN+ACK signatures get ([`agree`], a summary section), and turned
//! into candidate p0f.fp entries where the labels are missing or wrong ([`suggest`],
//! `--suggest-sigs`). Both read the per-host [`evidence`] a run collects.

pub mod agree;
pub mod evidence;
pub mod suggest;

pub use agree::{Agreement, DisagreeRow, agreement};
pub use evidence::Evidence;
pub use suggest::{Candidate, SuggestError, SuggestOptions};
