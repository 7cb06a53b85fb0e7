//! The summary's keys as dense ids (dictionary encoding), and the dictionaries that turn
//! ids back into text at the end.
//!
//! The rows of a chunk are numbers only. Building a `String` per observation for the host, the
//! label and the raw signature (and formatting them) would cost more than the grouping
//! itself, so every key is *interned* instead: an `Interner` (an `FxHashMap` from the key to
//! a dense `u32` id, plus the keys in id order) hands out ids 1, 2, … in order of first sight,
//! 0 standing for "none" (no label, no MTU link, a matched signature). Keys are what the
//! engine already has, compared by value without formatting anything:
//!
//! * hosts by `(ip_version, address bytes)` of the side the observation is about,
//! * labels by type (`os`, `app`) and the database's [`LabelId`],
//! * unknown signatures by [`p0f::RawSig`] value,
//! * MTU links by the database's [`LinkId`] (one per distinct link name) and the MTU,
//! * the module (`syn`, `syn+ack`, …) and quality as small fixed codes.
//!
//! This is dictionary encoding, not aggregation: all counting, grouping, joining and sorting
//! stays in polars, on `u32` columns while observations stream in. The dictionaries hold one
//! entry per distinct key, as the partials do, so memory stays bounded by distinct keys.

use std::hash::Hash;

use p0f::{Database, LabelId, LabelType, LinkId, MatchedLabel, Quality};
use polars::prelude::*;
use rustc_hash::FxHashMap;

use super::frames::{PResult, perr};
use crate::results::label_type_name;

/// An OS (or application) label as one line of text: `name flavor`, as p0f prints it.
pub(super) fn name_flavor(name: &str, flavor: Option<&str>) -> String {
    match flavor {
        Some(f) if !f.is_empty() => format!("{name} {f}"),
        _ => name.to_string(),
    }
}

/// Dense `u32` ids for distinct keys (dictionary encoding): 1, 2, … in order of first sight,
/// 0 being left for "no key". Holds each distinct key twice (map and id order), nothing per
/// lookup.
#[derive(Debug)]
pub(super) struct Interner<K> {
    pub(super) ids: FxHashMap<K, u32>,
    /// `keys[id - 1]` is the key of `id`.
    pub(super) keys: Vec<K>,
}

impl<K> Default for Interner<K> {
    fn default() -> Self {
        Interner {
            ids: FxHashMap::default(),
            keys: Vec::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Interner<K> {
    /// The id of `key`, given a new one the first time it is seen.
    #[inline]
    pub(super) fn id(&mut self, key: K) -> PResult<u32> {
        use std::collections::hash_map::Entry;
        match self.ids.entry(key) {
            Entry::Occupied(e) => Ok(*e.get()),
            Entry::Vacant(e) => {
                let id = u32::try_from(self.keys.len() + 1)
                    .map_err(|_| "more than 2^32 distinct summary keys".to_string())?;
                self.keys.push(e.key().clone());
                e.insert(id);
                Ok(id)
            }
        }
    }

    /// Every id with its key, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &K)> {
        (1u32..).zip(&self.keys)
    }
}

/// (link, MTU) pairs of MTU observations (no link: unknown).
pub(super) type Mtus = Interner<(Option<LinkId>, u32)>;

/// Labels by type and database id; id 0 is "not matched". Two labels of the database with
/// the same text are two keys here: the tables are grouped again by text at the end.
#[derive(Debug, Default)]
pub(super) struct Labels(Interner<(LabelType, LabelId)>);

impl Labels {
    pub(super) fn id(&mut self, l: &MatchedLabel) -> PResult<u32> {
        self.0.id((l.label_type, l.id))
    }

    /// Every id with its label, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &(LabelType, LabelId))> {
        self.0.iter()
    }

    pub(super) fn len(&self) -> usize {
        self.0.keys.len()
    }
}

/// The id of an optional label (0: none).
#[inline]
pub(super) fn label_id(labels: &mut Labels, l: Option<&MatchedLabel>) -> PResult<u32> {
    match l {
        Some(l) => labels.id(l),
        None => Ok(0),
    }
}

/// `label_id` and every label's columns: `label_type`, `class`, `name`, `flavor` and `label`
/// (`name flavor`). Ids missing from it (0) come out of a left join as nulls.
pub(super) fn label_dict(labels: &Labels, db: &Database) -> PResult<LazyFrame> {
    let n = labels.len();
    let mut id = Vec::with_capacity(n);
    let mut lt = Vec::with_capacity(n);
    let mut class = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut flavor = Vec::with_capacity(n);
    let mut text = Vec::with_capacity(n);
    for (i, &(label_type, label)) in labels.iter() {
        let names = db.label_names(label);
        id.push(i);
        lt.push(Some(label_type_name(label_type)));
        class.push(names.class);
        name.push(Some(names.name));
        flavor.push(names.flavor);
        text.push(Some(name_flavor(names.name, names.flavor)));
    }
    let df = df!(
        "label_id" => id,
        "label_type" => lt,
        "class" => class,
        "name" => name,
        "flavor" => flavor,
        "label" => text,
    )
    .map_err(perr)?;
    Ok(df.lazy())
}

/// The match qualities, by code.
pub(super) const QUALITIES: [Quality; 4] = [
    Quality::Exact,
    Quality::Generic,
    Quality::Fuzzy,
    Quality::Unknown,
];

pub(super) fn quality_code(q: Quality) -> u32 {
    match q {
        Quality::Exact => 0,
        Quality::Generic => 1,
        Quality::Fuzzy => 2,
        Quality::Unknown => 3,
    }
}

/// `id_name` (0, 1, …) and `name`: the text of each code.
pub(super) fn code_dict(id_name: &str, name: &str, texts: &[&'static str]) -> PResult<LazyFrame> {
    let ids: Vec<u32> = (0u32..).take(texts.len()).collect();
    let df = DataFrame::new(
        texts.len(),
        vec![
            Column::new(id_name.into(), ids),
            Column::new(name.into(), texts.to_vec()),
        ],
    )
    .map_err(perr)?;
    Ok(df.lazy())
}
