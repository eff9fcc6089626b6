//! The tag database: every tagged series Carbide knows, indexed by tag and value, answering
//! graphite-web 1.1.10's TagDB questions (`seriesByTag`, `/tags/findSeries`, the `/tags`
//! listings and Grafana's autocomplete) the way its default `LocalDatabaseTagDB` answers them.
//!
//! Tag names and values are interned once each (one global value table, as graphite-web's
//! `tags_tagvalue`), a series keeps its canonical path and a short list of (tag, value) ids,
//! and each (tag, value) pair has a posting list of series slots. Ids are handed out in
//! first-seen order like the SQL autoincrement columns, so `/tags` reports the same ids as
//! graphite-web for the same history; like graphite-web, deleting a series never forgets a tag
//! name or a value id.
//!
//! Query semantics follow graphite-web's SQL precisely: a condition that cannot match the empty
//! value becomes a join tested with `re.search` (SQLite's `REGEXP`), one that can is a
//! post-filter tested with `re.match` on the value or `""` for a missing tag, and at least one
//! condition must be of the first kind. Results sort by path in code point order (SQLite's
//! binary collation on UTF-8 agrees).
//!
//! The index is fed by ingest (new tagged names), by `/tags/tagSeries` and `/tags/tagMultiSeries`
//! (what carbon and go-carbon POST), and at start by the readable `_tagged` files
//! (`TAG_HASH_FILENAMES = False`); carbon's default hashed file names cannot be decoded.
//!
//! # Persistence
//! [`TagIndex::open`] replays the series log `<data_dir>/tags/series.log` (see
//! [`super::tag_log`]) and then logs every registration and deletion, ids included: the log
//! replays the same history, so `/tags` shows the same ids after a restart. A series whose
//! file exists under `_tagged` under a hashed name but which is not in the log (a data
//! directory written by carbon or go-carbon, which keep the names in their own TagDB, or a
//! registration lost in the last second before a crash) stays unknown to the tag index until
//! it is registered again; [`OpenStats::unknown_hashed`] counts such files.

use std::fmt;
use std::hash::BuildHasher;
use std::io;
use std::path::Path;

use foldhash::fast::RandomState;
use hashbrown::{HashMap, HashTable};
use parking_lot::RwLock;

use super::tag_log::{self, LogOptions, LogStats, Record, TagLog, TagLogError};
use crate::ingest::name::{tag_hash, TaggedSeries, TAGGED_DIR};
use crate::query::functions::alias::python_re::PyRegex;

type Map<K, V> = HashMap<K, V, RandomState>;

/// graphite-web's `TAGDB_AUTOCOMPLETE_LIMIT`.
pub const AUTOCOMPLETE_LIMIT: usize = 100;

/// A failed TagDB call: graphite-web answers a `ValueError` with 400 and anything else with 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagError {
    /// A Python `ValueError` (bad tagspec, no condition requiring a value, bad `int()`).
    Invalid(String),
    /// Any other exception (unparsable series name, bad regular expression).
    Failed(String),
}

impl TagError {
    /// The HTTP status graphite-web's `jsonResponse` gives this error.
    pub fn status(&self) -> u16 {
        match self {
            TagError::Invalid(_) => 400,
            TagError::Failed(_) => 500,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            TagError::Invalid(m) | TagError::Failed(m) => m,
        }
    }
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TagError {}

/// One row of `/tags`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub id: u32,
    pub tag: String,
}

/// One value of `/tags/<tag>`: how many series carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    pub id: u32,
    pub value: String,
    pub count: usize,
}

/// `/tags/<tag>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDetails {
    pub id: u32,
    pub tag: String,
    pub values: Vec<ValueInfo>,
}

/// What [`TagIndex::load_dir`] found under `_tagged`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Series recovered from readable file names.
    pub loaded: usize,
    /// Files named by hash only (carbon's default), whose series cannot be recovered.
    pub hashed: usize,
    /// Other files: not `.wsp`, not canonical, or in the wrong hash directory.
    pub skipped: usize,
}

/// Strings stored once. Each also has the id graphite-web's SQL table would give it: its
/// `INSERT OR IGNORE` of one row per tag (or value) of a new series advances the
/// autoincrement counter for every row, inserted or ignored, so a new string gets the counter
/// at its row.
#[derive(Default)]
struct Interner {
    names: Vec<Box<str>>,
    public: Vec<u32>,
    counter: u32,
    table: HashTable<u32>,
    hasher: RandomState,
}

impl Interner {
    fn get(&self, s: &str) -> Option<u32> {
        let h = self.hasher.hash_one(s);
        self.table
            .find(h, |&i| {
                self.names.get(i as usize).is_some_and(|n| &**n == s)
            })
            .copied()
    }

    /// One row of an insert: the string's index, new or not.
    fn intern(&mut self, s: &str) -> u32 {
        self.counter = self.counter.saturating_add(1);
        if let Some(i) = self.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.into());
        self.public.push(self.counter);
        let h = self.hasher.hash_one(s);
        let names = &self.names;
        let hasher = &self.hasher;
        self.table.insert_unique(h, i, |&j| {
            hasher.hash_one(names.get(j as usize).map_or("", |n| &**n))
        });
        i
    }

    /// A string with the public id a snapshot recorded, without counting a row.
    fn preset(&mut self, s: &str, public: u32) {
        if self.get(s).is_some() {
            return;
        }
        let i = self.names.len() as u32;
        self.names.push(s.into());
        self.public.push(public);
        let h = self.hasher.hash_one(s);
        let names = &self.names;
        let hasher = &self.hasher;
        self.table.insert_unique(h, i, |&j| {
            hasher.hash_one(names.get(j as usize).map_or("", |n| &**n))
        });
    }

    fn name(&self, i: u32) -> &str {
        self.names.get(i as usize).map_or("", |n| n)
    }

    /// The id graphite-web would show.
    fn public_id(&self, i: u32) -> u32 {
        self.public.get(i as usize).copied().unwrap_or_default()
    }
}

/// The series slots carrying one (tag, value), ascending. Most pairs (a `name` value, a
/// host) have one series, so that case needs no allocation.
enum Postings {
    One(u32),
    Many(Vec<u32>),
}

impl Postings {
    fn len(&self) -> usize {
        match self {
            Postings::One(_) => 1,
            Postings::Many(v) => v.len(),
        }
    }

    fn push(&mut self, slot: u32) {
        match self {
            Postings::One(a) => *self = Postings::Many(vec![*a, slot]),
            Postings::Many(v) => v.push(slot),
        }
    }

    /// Removes `slot`; true when nothing is left.
    fn remove(&mut self, slot: u32) -> bool {
        match self {
            Postings::One(a) => *a == slot,
            Postings::Many(v) => {
                if let Ok(i) = v.binary_search(&slot) {
                    v.remove(i);
                }
                v.is_empty()
            }
        }
    }

    fn as_slice(&self) -> &[u32] {
        match self {
            Postings::One(a) => std::slice::from_ref(a),
            Postings::Many(v) => v,
        }
    }
}

#[derive(Default)]
struct TagEntry {
    /// Value id → series with that value; absent once no series has it.
    values: Map<u32, Postings>,
    /// Live series carrying the tag.
    series: usize,
}

struct Series {
    path: Box<str>,
    /// (tag id, value id), ascending by tag id.
    tags: Box<[(u32, u32)]>,
}

impl Series {
    fn value_of(&self, tag: u32) -> Option<u32> {
        self.tags
            .binary_search_by_key(&tag, |&(t, _)| t)
            .ok()
            .and_then(|i| self.tags.get(i))
            .map(|&(_, v)| v)
    }
}

#[derive(Default)]
struct Inner {
    tags: Interner,
    values: Interner,
    per_tag: Vec<TagEntry>,
    /// Slots are never reused, so posting lists stay ascending by appending.
    series: Vec<Option<Series>>,
    by_path: HashTable<u32>,
    path_hasher: RandomState,
    live: usize,
}

impl Inner {
    fn series(&self, slot: u32) -> Option<&Series> {
        self.series.get(slot as usize).and_then(Option::as_ref)
    }

    fn path(&self, slot: u32) -> &str {
        self.series(slot).map_or("", |s| &s.path)
    }

    fn slot_of(&self, path: &str) -> Option<u32> {
        let h = self.path_hasher.hash_one(path);
        self.by_path.find(h, |&s| self.path(s) == path).copied()
    }

    fn insert(&mut self, canonical: String, ordered: &[(&str, &str)]) {
        if self.slot_of(&canonical).is_some() {
            return;
        }
        // Ids in graphite-web's insertion order: all tag names of the series, then all values.
        let tag_ids: Vec<u32> = ordered.iter().map(|(t, _)| self.tags.intern(t)).collect();
        let value_ids: Vec<u32> = ordered.iter().map(|(_, v)| self.values.intern(v)).collect();
        self.insert_ids(canonical, tag_ids.into_iter().zip(value_ids).collect());
    }

    /// A series from a snapshot: its tags and values already have their ids, so no row is
    /// counted (one a damaged snapshot lost is interned as new).
    fn insert_snapshot(&mut self, canonical: String, ordered: &[(&str, &str)]) {
        if self.slot_of(&canonical).is_some() {
            return;
        }
        let mut pairs = Vec::with_capacity(ordered.len());
        for (t, v) in ordered {
            let t = match self.tags.get(t) {
                Some(i) => i,
                None => self.tags.intern(t),
            };
            let v = match self.values.get(v) {
                Some(i) => i,
                None => self.values.intern(v),
            };
            pairs.push((t, v));
        }
        self.insert_ids(canonical, pairs);
    }

    fn insert_ids(&mut self, canonical: String, mut pairs: Vec<(u32, u32)>) {
        pairs.sort_unstable();
        pairs.dedup_by_key(|p| p.0);
        let slot = self.series.len() as u32;
        for &(t, v) in &pairs {
            if self.per_tag.len() <= t as usize {
                self.per_tag.resize_with(t as usize + 1, TagEntry::default);
            }
            if let Some(entry) = self.per_tag.get_mut(t as usize) {
                entry.series += 1;
                match entry.values.get_mut(&v) {
                    Some(p) => p.push(slot),
                    None => {
                        entry.values.insert(v, Postings::One(slot));
                    }
                }
            }
        }
        let h = self.path_hasher.hash_one(canonical.as_str());
        self.series.push(Some(Series {
            path: canonical.into_boxed_str(),
            tags: pairs.into_boxed_slice(),
        }));
        let series = &self.series;
        let hasher = &self.path_hasher;
        self.by_path.insert_unique(h, slot, |&s| {
            let p = series
                .get(s as usize)
                .and_then(Option::as_ref)
                .map_or("", |x| &*x.path);
            hasher.hash_one(p)
        });
        self.live += 1;
    }

    /// Removes a live series; false if it was not known.
    fn remove(&mut self, canonical: &str) -> bool {
        let h = self.path_hasher.hash_one(canonical);
        let series = &self.series;
        let Ok(entry) = self.by_path.find_entry(h, |&s| {
            series
                .get(s as usize)
                .and_then(Option::as_ref)
                .is_some_and(|x| &*x.path == canonical)
        }) else {
            return false;
        };
        let (slot, _) = entry.remove();
        let Some(gone) = self.series.get_mut(slot as usize).and_then(Option::take) else {
            return false;
        };
        for &(t, v) in gone.tags.iter() {
            if let Some(entry) = self.per_tag.get_mut(t as usize) {
                entry.series = entry.series.saturating_sub(1);
                let empty = entry.values.get_mut(&v).is_some_and(|p| p.remove(slot));
                if empty {
                    entry.values.remove(&v);
                }
            }
        }
        self.live = self.live.saturating_sub(1);
        true
    }

    /// The records of a snapshot of this state: every tag and value with its id (in the
    /// order interned), the counters, the live series in slot order.
    fn snapshot(&self) -> impl Iterator<Item = Record<'_>> {
        let tags = self
            .tags
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| Record::Tag {
                id: self.tags.public_id(i as u32),
                name: n,
            });
        let values = self
            .values
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| Record::Value {
                id: self.values.public_id(i as u32),
                name: n,
            });
        let counters = std::iter::once(Record::Counters {
            tags: self.tags.counter,
            values: self.values.counter,
        });
        let series = self
            .series
            .iter()
            .flatten()
            .map(|s| Record::Series(&s.path));
        tags.chain(values).chain(counters).chain(series)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Match,
    NotMatch,
}

/// One parsed and compiled tagspec.
struct Cond {
    tag: String,
    op: Op,
    spec: String,
    /// graphite-web's `matches_empty`: such a condition only filters, and also accepts series
    /// without the tag.
    matches_empty: bool,
    /// The anchored pattern, searched (SQLite's `REGEXP` is `re.search`).
    search: Option<PyRegex>,
    /// The anchored pattern matched at the start only (`re.match`, used by the filters).
    matcher: Option<PyRegex>,
}

impl Cond {
    fn parse(expr: &str) -> Result<Cond, TagError> {
        let (tag, op, spec) = parse_tagspec(expr)?;
        let (search, matcher) = match op {
            Op::Match | Op::NotMatch => {
                let anchored = if spec.starts_with('^') {
                    spec.to_owned()
                } else {
                    format!("^({spec})")
                };
                let search = compile(&anchored)?;
                // Valid on its own, so wrapping it cannot change how it parses.
                let matcher = compile(&format!("^(?:{anchored})"))?;
                (Some(search), Some(matcher))
            }
            Op::Eq | Op::Ne => (None, None),
        };
        let matches_start = |s: &str| matcher.as_ref().is_some_and(|m| m.search(s));
        let matches_empty = match op {
            Op::Eq => spec.is_empty(),
            Op::Ne => !spec.is_empty(),
            Op::Match => matches_start(""),
            Op::NotMatch => !matches_start(""),
        };
        Ok(Cond {
            tag: tag.to_owned(),
            op,
            spec: spec.to_owned(),
            matches_empty,
            search,
            matcher,
        })
    }

    /// The SQL condition on a value the series has (never empty).
    fn join_accepts(&self, value: &str) -> bool {
        let searched = |s: &str| self.search.as_ref().is_some_and(|r| r.search(s));
        match self.op {
            Op::Eq => value == self.spec,
            Op::Ne => value != self.spec,
            Op::Match => searched(value),
            Op::NotMatch => !searched(value),
        }
    }

    /// `matches_filters` on the value, `""` for a missing tag.
    fn filter_accepts(&self, value: &str) -> bool {
        let matched = |s: &str| self.matcher.as_ref().is_some_and(|r| r.search(s));
        match self.op {
            Op::Eq => value == self.spec,
            Op::Ne => value != self.spec,
            Op::Match => matched(value),
            Op::NotMatch => !matched(value),
        }
    }

    fn accepts(&self, value: Option<&str>) -> bool {
        match (value, self.matches_empty) {
            (None, join_only) => join_only,
            (Some(v), false) => self.join_accepts(v),
            (Some(v), true) => self.filter_accepts(v),
        }
    }
}

/// `re.compile(pattern)`, failing with the text of Python's `re.error` where the translation
/// knows it (without the pattern the engine's message names).
fn compile(pattern: &str) -> Result<PyRegex, TagError> {
    PyRegex::compile(pattern).map_err(|e| {
        let named = format!(
            "invalid regular expression {}: ",
            crate::python::text::repr(pattern)
        );
        TagError::Failed(e.strip_prefix(&named).unwrap_or(&e).to_owned())
    })
}

/// `BaseTagDB.parse_tagspec`: `^([^;!=]+)(!?=~?)([^;]*)$`, which has exactly one way to match.
fn parse_tagspec(expr: &str) -> Result<(&str, Op, &str), TagError> {
    let invalid = || TagError::Invalid(format!("Invalid tagspec {expr}"));
    let tag_end = expr.find([';', '!', '=']).unwrap_or(expr.len());
    if tag_end == 0 {
        return Err(invalid());
    }
    let (tag, rest) = expr.split_at(tag_end);
    let (negated, rest) = match rest.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.strip_prefix('=').ok_or_else(invalid)?;
    let (regex, spec) = match rest.strip_prefix('~') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if spec.contains(';') {
        return Err(invalid());
    }
    let op = match (negated, regex) {
        (false, false) => Op::Eq,
        (true, false) => Op::Ne,
        (false, true) => Op::Match,
        (true, true) => Op::NotMatch,
    };
    Ok((tag, op, spec))
}

/// The tag name a tagspec is about (the autocomplete excludes it), or graphite-web's error.
pub fn tagspec_tag(expr: &str) -> Result<&str, TagError> {
    parse_tagspec(expr).map(|(t, _, _)| t)
}

/// A parsed series name and its tags in the order graphite-web's dict holds them (which fixes
/// the ids the SQL tables hand out): tags as first written, `name` where it was first written or
/// last.
fn parse_name(raw: &str) -> Result<(String, Vec<(String, String)>), TagError> {
    let parsed = TaggedSeries::parse(raw).map_err(|e| name_error(e.message()))?;
    let canonical = parsed.path();
    let mut order: Vec<&str> = Vec::with_capacity(parsed.tags.len());
    let openmetrics = raw.ends_with("\"}") && raw.contains('{');
    if !openmetrics {
        for seg in raw.split(';').skip(1) {
            if let Some((t, _)) = seg.split_once('=') {
                if !order.contains(&t) {
                    order.push(t);
                }
            }
        }
    } else {
        order.extend(
            parsed
                .tags
                .keys()
                .map(String::as_str)
                .filter(|t| *t != "name"),
        );
    }
    if !order.contains(&"name") {
        order.push("name");
    }
    let pairs = order
        .into_iter()
        .filter_map(|t| parsed.tags.get(t).map(|v| (t.to_owned(), v.clone())))
        .collect();
    Ok((canonical, pairs))
}

/// graphite-web's exception for an unparsable name: the text its `TaggedSeries` raises (one
/// word differs from carbon's), a `ValueError` only for the OpenMetrics unpacking failure.
fn name_error(carbon_text: &str) -> TagError {
    if carbon_text.starts_with("too many values to unpack") {
        return TagError::Invalid(carbon_text.to_owned());
    }
    match carbon_text.strip_suffix("results in an empty string") {
        Some(head) => TagError::Failed(format!("{head}results in emptry string")),
        None => TagError::Failed(carbon_text.to_owned()),
    }
}

/// A filter regex as graphite-web's listings apply it (anchored unless it starts with `^`).
/// SQLite raises only once it tests a row, so a bad pattern fails only where there are rows.
fn listing_filter(filter: Option<&str>) -> Result<Option<PyRegex>, String> {
    match filter {
        None | Some("") => Ok(None),
        Some(f) => {
            let anchored = if f.starts_with('^') {
                f.to_owned()
            } else {
                format!("^({f})")
            };
            PyRegex::compile(&anchored).map(Some)
        }
    }
}

const SQLITE_FUNCTION_FAILED: &str = "user-defined function raised exception";

/// What [`TagIndex::open`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenStats {
    /// Live series after replaying the log.
    pub from_log: usize,
    /// Log records read, and damaged ones skipped.
    pub records: usize,
    pub damaged: usize,
    /// Bytes of a torn last record cut off.
    pub torn_bytes: u64,
    /// Dead records found (duplicates, deleted series, deletions, damaged lines).
    pub dead: usize,
    /// Whether the log was rewritten as a snapshot.
    pub compacted: bool,
    /// The `_tagged` walk (readable names are added to the index and the log).
    pub files: LoadStats,
    /// Hash-named `_tagged` files whose series is not in the index: names only carbon's or
    /// go-carbon's own TagDB knows.
    pub unknown_hashed: usize,
}

/// The tag database. All methods take `&self`; readers share a lock, writers take it briefly.
#[derive(Default)]
pub struct TagIndex {
    inner: RwLock<Inner>,
    /// Where registrations and deletions are recorded; none for an index that is not
    /// persisted ([`TagIndex::new`]).
    log: Option<TagLog>,
}

impl TagIndex {
    pub fn new() -> TagIndex {
        TagIndex::default()
    }

    /// The persisted index of the data directory: replays `<data_dir>/tags/series.log`
    /// (compacting it when mostly dead), adds the readable `_tagged` file names under
    /// `whisper_dir`, and from then on logs every registration and deletion. Fails only if the
    /// log cannot be read or created, or is not a Carbide tag log.
    pub fn open(data_dir: &Path, whisper_dir: &Path) -> Result<(TagIndex, OpenStats), TagLogError> {
        TagIndex::open_with(data_dir, whisper_dir, LogOptions::default())
    }

    /// [`TagIndex::open`] with explicit flush and compaction settings.
    pub fn open_with(
        data_dir: &Path,
        whisper_dir: &Path,
        opts: LogOptions,
    ) -> Result<(TagIndex, OpenStats), TagLogError> {
        let dir = data_dir.join(tag_log::LOG_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| TagLogError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(tag_log::LOG_FILE);
        let mut idx = TagIndex::new();
        let mut stats = OpenStats::default();
        // Records about series (not a snapshot's tag, value and counter lines).
        let (mut series_records, mut unusable) = (0usize, 0usize);
        let replay = tag_log::replay(&path, |rec| {
            if matches!(rec, Record::Add(_) | Record::Del(_) | Record::Series(_)) {
                series_records += 1;
            }
            if !idx.apply(rec) {
                unusable += 1;
            }
        })?;
        if unusable > 0 {
            tracing::warn!(
                "{}: {unusable} records name no parsable series; skipped",
                path.display()
            );
        }
        tag_log::prepare(&path, &replay)?;
        stats.from_log = idx.len();
        stats.records = replay.records;
        stats.damaged = replay.damaged + unusable;
        stats.torn_bytes = replay.torn_bytes;
        stats.dead = series_records.saturating_sub(stats.from_log) + stats.damaged;
        if stats.dead >= opts.compact_min_dead.max(1) && stats.dead * 2 > stats.from_log {
            let inner = idx.inner.read();
            tag_log::rewrite(&path, inner.snapshot())?;
            stats.compacted = true;
            tracing::info!(
                "{}: compacted ({} dead records dropped, {} series kept)",
                path.display(),
                stats.dead,
                stats.from_log
            );
        }
        idx.log = Some(TagLog::open(&path, opts)?);
        let mut hashed = hashbrown::HashSet::with_hasher(RandomState::default());
        stats.files = idx.walk(whisper_dir, Some(&mut hashed));
        stats.unknown_hashed = idx.unknown_hashed_files(hashed);
        tracing::info!(
            "tag index: {} series from {} ({} records, {} damaged), {} from readable file names",
            stats.from_log,
            path.display(),
            stats.records,
            stats.damaged,
            stats.files.loaded
        );
        if stats.unknown_hashed > 0 {
            tracing::info!(
                "tag index: {} files under {} belong to no series of the tag index (deleted \
                 through /tags/delSeries, or written by carbon or go-carbon, whose own TagDB \
                 holds their names); they are not found by tag until registered again",
                stats.unknown_hashed,
                whisper_dir.join(TAGGED_DIR).display()
            );
        }
        Ok((idx, stats))
    }

    /// Applies one replayed record; false if it names no parsable series.
    fn apply(&self, rec: Record<'_>) -> bool {
        match rec {
            Record::Add(name) => self.insert(name).is_ok(),
            Record::Del(name) => self.remove(name).is_ok(),
            Record::Tag { id, name } => {
                self.inner.write().tags.preset(name, id);
                true
            }
            Record::Value { id, name } => {
                self.inner.write().values.preset(name, id);
                true
            }
            Record::Counters { tags, values } => {
                let mut inner = self.inner.write();
                inner.tags.counter = tags;
                inner.values.counter = values;
                true
            }
            Record::Series(name) => match parse_name(name) {
                Ok((canonical, pairs)) => {
                    let borrowed: Vec<(&str, &str)> = pairs
                        .iter()
                        .map(|(t, v)| (t.as_str(), v.as_str()))
                        .collect();
                    self.inner.write().insert_snapshot(canonical, &borrowed);
                    true
                }
                Err(_) => false,
            },
        }
    }

    /// How many of the hash-named `_tagged` files (by [`hash_key`]) belong to no known series.
    fn unknown_hashed_files(&self, mut files: hashbrown::HashSet<u64, RandomState>) -> usize {
        let inner = self.inner.read();
        for s in inner.series.iter().flatten() {
            if files.is_empty() {
                break;
            }
            if let Some(k) = hash_key(&tag_hash(&s.path)) {
                files.remove(&k);
            }
        }
        files.len()
    }

    /// Writes and fsyncs the registrations and deletions logged so far (a no-op for an index
    /// that is not persisted).
    pub fn flush(&self) -> io::Result<()> {
        self.log.as_ref().map_or(Ok(()), TagLog::flush)
    }

    /// At shutdown: stops the log's writer thread and writes what is left. The index keeps
    /// answering; later changes are written only by [`TagIndex::flush`].
    pub fn close(&self) -> io::Result<()> {
        self.log.as_ref().map_or(Ok(()), TagLog::close)
    }

    /// The log's counters (none for an index that is not persisted).
    pub fn log_stats(&self) -> Option<LogStats> {
        self.log.as_ref().map(TagLog::stats)
    }

    /// Registers a series (`tag_series`): any spelling carbon accepts, returns the canonical
    /// path. Registering a known series changes nothing.
    pub fn insert(&self, name: &str) -> Result<String, TagError> {
        let (canonical, pairs) = parse_name(name)?;
        // Most calls after a restart are for known series: answer those under the shared lock.
        if self.inner.read().slot_of(&canonical).is_some() {
            return Ok(canonical);
        }
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(t, v)| (t.as_str(), v.as_str()))
            .collect();
        let mut inner = self.inner.write();
        if inner.slot_of(&canonical).is_none() {
            inner.insert(canonical.clone(), &borrowed);
            // Under the lock, so the log holds the changes in the order they were made.
            if let Some(log) = &self.log {
                log.append(&Record::Add(name));
            }
        }
        Ok(canonical)
    }

    /// Removes a series (`del_series`); an unknown series is no error. Tag names and value ids
    /// stay, as in graphite-web's tables.
    pub fn remove(&self, name: &str) -> Result<(), TagError> {
        let (canonical, _) = parse_name(name)?;
        let mut inner = self.inner.write();
        if inner.remove(&canonical) {
            if let Some(log) = &self.log {
                log.append(&Record::Del(&canonical));
            }
        }
        Ok(())
    }

    /// Whether the series (canonical path) is known.
    pub fn contains(&self, canonical: &str) -> bool {
        self.inner.read().slot_of(canonical).is_some()
    }

    /// Live series.
    pub fn len(&self) -> usize {
        self.inner.read().live
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds every series whose `_tagged` file name is readable (`TAG_HASH_FILENAMES = False`):
    /// `_tagged/<h[0:3]>/<h[3:6]>/<path with . as _DOT_>.wsp`, checked against its hash.
    pub fn load_dir(&self, root: &Path) -> LoadStats {
        self.walk(root, None)
    }

    /// [`TagIndex::load_dir`], also collecting the [`hash_key`] of each hash-named file.
    fn walk(
        &self,
        root: &Path,
        mut hashed: Option<&mut hashbrown::HashSet<u64, RandomState>>,
    ) -> LoadStats {
        let mut stats = LoadStats::default();
        for_each_tagged_file(&root.join(TAGGED_DIR), |a, b, file| match (a, b, file) {
            (Some(a), Some(b), Some(file)) => match self.load_file(a, b, file) {
                Some(true) => stats.loaded += 1,
                Some(false) => {
                    stats.hashed += 1;
                    let key = file.strip_suffix(".wsp").and_then(hash_key);
                    if let (Some(set), Some(k)) = (hashed.as_deref_mut(), key) {
                        set.insert(k);
                    }
                }
                None => stats.skipped += 1,
            },
            _ => stats.skipped += 1,
        });
        stats
    }

    /// Some(true) loaded, Some(false) hash-named, None unusable.
    fn load_file(&self, d1: &str, d2: &str, file: &str) -> Option<bool> {
        let stem = file.strip_suffix(".wsp")?;
        if is_hash_name(stem) {
            return Some(false);
        }
        let name = stem.replace("_DOT_", ".");
        let h = tag_hash(&name);
        if h.get(0..3) != Some(d1) || h.get(3..6) != Some(d2) {
            return None;
        }
        let (canonical, _) = parse_name(&name).ok()?;
        if canonical != name || !name.contains(';') {
            return None;
        }
        self.insert(&name).ok().map(|_| true)
    }

    /// `find_series(exprs)`: the canonical paths matching every tagspec, sorted.
    pub fn find_series(&self, exprs: &[&str]) -> Result<Vec<String>, TagError> {
        let conds = parse_conds(exprs)?;
        let inner = self.inner.read();
        let slots = find_slots(&inner, &conds);
        Ok(slots.iter().map(|&s| inner.path(s).to_owned()).collect())
    }

    /// `list_tags(filter, limit)`: every tag name ever registered, sorted; `limit` is SQL's.
    pub fn list_tags(
        &self,
        filter: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<TagInfo>, TagError> {
        let inner = self.inner.read();
        let mut ids: Vec<u32> = (0..inner.tags.names.len() as u32).collect();
        if let Some(f) = filter.filter(|f| !f.is_empty()) {
            match listing_filter(Some(f)) {
                Ok(Some(re)) => ids.retain(|&i| re.search(inner.tags.name(i))),
                Ok(None) => {}
                Err(_) if ids.is_empty() => {}
                Err(_) => return Err(TagError::Failed(SQLITE_FUNCTION_FAILED.into())),
            }
        }
        ids.sort_unstable_by(|&a, &b| inner.tags.name(a).cmp(inner.tags.name(b)));
        if let Some(n) = limit {
            ids.truncate(n);
        }
        Ok(ids
            .into_iter()
            .map(|i| TagInfo {
                id: inner.tags.public_id(i),
                tag: inner.tags.name(i).to_owned(),
            })
            .collect())
    }

    /// `list_values(tag, filter, limit)`: the values some series has for `tag`, with counts.
    pub fn list_values(
        &self,
        tag: &str,
        filter: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<ValueInfo>, TagError> {
        let inner = self.inner.read();
        let Some(entry) = inner
            .tags
            .get(tag)
            .and_then(|t| inner.per_tag.get(t as usize))
        else {
            return Ok(Vec::new());
        };
        let mut rows: Vec<(u32, usize)> = entry.values.iter().map(|(&v, p)| (v, p.len())).collect();
        match listing_filter(filter) {
            Ok(Some(re)) => rows.retain(|&(v, _)| re.search(inner.values.name(v))),
            Ok(None) => {}
            Err(_) if rows.is_empty() => {}
            Err(_) => return Err(TagError::Failed(SQLITE_FUNCTION_FAILED.into())),
        }
        rows.sort_unstable_by(|a, b| inner.values.name(a.0).cmp(inner.values.name(b.0)));
        if let Some(n) = limit {
            rows.truncate(n);
        }
        Ok(rows
            .into_iter()
            .map(|(v, count)| ValueInfo {
                id: inner.values.public_id(v),
                value: inner.values.name(v).to_owned(),
                count,
            })
            .collect())
    }

    /// `get_tag(tag, filter, limit)`: None for a tag never registered.
    pub fn get_tag(
        &self,
        tag: &str,
        filter: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Option<TagDetails>, TagError> {
        let id = {
            let inner = self.inner.read();
            match inner.tags.get(tag) {
                Some(i) => inner.tags.public_id(i),
                None => return Ok(None),
            }
        };
        let values = self.list_values(tag, filter, limit)?;
        Ok(Some(TagDetails {
            id,
            tag: tag.to_owned(),
            values,
        }))
    }

    /// `auto_complete_tags(exprs, tagPrefix, limit)` of the TagDB: without exprs the tag names
    /// starting with `prefix`; with exprs the tag names of the matching series other than those
    /// the exprs name. Sorted; `limit` None is no limit.
    pub fn auto_complete_tags(
        &self,
        exprs: &[&str],
        prefix: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, TagError> {
        let prefix = prefix.unwrap_or("");
        if exprs.is_empty() {
            return Ok(self.tags(prefix, limit));
        }
        let searched = exprs
            .iter()
            .map(|e| tagspec_tag(e))
            .collect::<Result<Vec<_>, _>>()?;
        let conds = parse_conds(exprs)?;
        let inner = self.inner.read();
        let mut seen: Map<u32, ()> = Map::default();
        for slot in find_slots_unsorted(&inner, &conds) {
            if let Some(s) = inner.series(slot) {
                for &(t, _) in s.tags.iter() {
                    seen.insert(t, ());
                }
            }
        }
        let mut out: Vec<&str> = seen
            .keys()
            .map(|&t| inner.tags.name(t))
            .filter(|t| t.starts_with(prefix) && !searched.contains(t))
            .collect();
        out.sort_unstable();
        if let Some(n) = limit {
            out.truncate(n);
        }
        Ok(out.into_iter().map(str::to_owned).collect())
    }

    /// `auto_complete_values(exprs, tag, valuePrefix, limit)` of the TagDB: without exprs the
    /// values of `tag` starting with `prefix`; with exprs the values of `tag` over the series
    /// matching `exprs + [tag!=]`. Sorted and unique; `limit` None is no limit.
    pub fn auto_complete_values(
        &self,
        exprs: &[&str],
        tag: &str,
        prefix: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, TagError> {
        let prefix = prefix.unwrap_or("");
        if exprs.is_empty() {
            return Ok(self.values(tag, prefix, limit));
        }
        let has_tag = format!("{tag}!=");
        let mut all: Vec<&str> = exprs.to_vec();
        all.push(&has_tag);
        let conds = parse_conds(&all)?;
        let inner = self.inner.read();
        let Some(tag_id) = inner.tags.get(tag) else {
            return Ok(Vec::new());
        };
        let mut seen: Map<u32, ()> = Map::default();
        for slot in find_slots_unsorted(&inner, &conds) {
            if let Some(v) = inner.series(slot).and_then(|s| s.value_of(tag_id)) {
                seen.insert(v, ());
            }
        }
        let mut out: Vec<&str> = seen
            .keys()
            .map(|&v| inner.values.name(v))
            .filter(|v| v.starts_with(prefix))
            .collect();
        out.sort_unstable();
        if let Some(n) = limit {
            out.truncate(n);
        }
        Ok(out.into_iter().map(str::to_owned).collect())
    }

    /// Tag names starting with `prefix`, sorted, at most `limit` (None: all).
    pub fn tags(&self, prefix: &str, limit: Option<usize>) -> Vec<String> {
        let inner = self.inner.read();
        let mut out: Vec<&str> = inner
            .tags
            .names
            .iter()
            .map(|n| &**n)
            .filter(|n| n.starts_with(prefix))
            .collect();
        out.sort_unstable();
        if let Some(n) = limit {
            out.truncate(n);
        }
        out.into_iter().map(str::to_owned).collect()
    }

    /// Values of `tag` that some series has, starting with `prefix`, sorted, at most `limit`.
    pub fn values(&self, tag: &str, prefix: &str, limit: Option<usize>) -> Vec<String> {
        let inner = self.inner.read();
        let Some(entry) = inner
            .tags
            .get(tag)
            .and_then(|t| inner.per_tag.get(t as usize))
        else {
            return Vec::new();
        };
        let mut out: Vec<&str> = entry
            .values
            .keys()
            .map(|&v| inner.values.name(v))
            .filter(|v| v.starts_with(prefix))
            .collect();
        out.sort_unstable();
        if let Some(n) = limit {
            out.truncate(n);
        }
        out.into_iter().map(str::to_owned).collect()
    }
}

/// Calls `f` with the two directory names and the file name of every entry at
/// `<tagged>/*/*/*` (None where a name is not UTF-8).
fn for_each_tagged_file(
    tagged: &Path,
    mut f: impl FnMut(Option<&str>, Option<&str>, Option<&str>),
) {
    let Ok(level1) = std::fs::read_dir(tagged) else {
        return;
    };
    for d1 in level1.flatten() {
        let Ok(level2) = std::fs::read_dir(d1.path()) else {
            continue;
        };
        let n1 = d1.file_name();
        for d2 in level2.flatten() {
            let Ok(files) = std::fs::read_dir(d2.path()) else {
                continue;
            };
            let n2 = d2.file_name();
            for file in files.flatten() {
                let name = file.file_name();
                f(n1.to_str(), n2.to_str(), name.to_str());
            }
        }
    }
}

/// carbon's default `_tagged` file stem: the 64 hex digits of the name's SHA-256.
fn is_hash_name(stem: &str) -> bool {
    stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The first 64 bits of a hex hash: enough to tell a million files apart for a count, in a
/// fraction of the memory of the whole names.
fn hash_key(hex: &str) -> Option<u64> {
    hex.get(..16)
        .and_then(|h| u64::from_str_radix(&h.to_ascii_lowercase(), 16).ok())
}

fn parse_conds(exprs: &[&str]) -> Result<Vec<Cond>, TagError> {
    let conds = exprs
        .iter()
        .map(|e| Cond::parse(e))
        .collect::<Result<Vec<_>, _>>()?;
    if conds.iter().all(|c| c.matches_empty) {
        return Err(TagError::Invalid(
            "At least one tagspec must not match the empty string".into(),
        ));
    }
    Ok(conds)
}

fn find_slots(inner: &Inner, conds: &[Cond]) -> Vec<u32> {
    let mut slots = find_slots_unsorted(inner, conds);
    slots.sort_unstable_by(|&a, &b| inner.path(a).cmp(inner.path(b)));
    slots
}

/// Keeps the slots of `cands` that are also in `other`; both ascending.
fn intersect(cands: &mut Vec<u32>, other: &[u32]) {
    let mut j = 0;
    cands.retain(|&s| {
        while other.get(j).is_some_and(|&o| o < s) {
            j += 1;
        }
        other.get(j) == Some(&s)
    });
}

/// A condition bound to the index: its tag id and a memo of its verdict per value id.
struct Bound<'a> {
    cond: &'a Cond,
    tag: Option<u32>,
    memo: Map<u32, bool>,
}

impl Bound<'_> {
    fn accepts(&mut self, inner: &Inner, series: &Series) -> bool {
        let Some(value) = self.tag.and_then(|t| series.value_of(t)) else {
            return self.cond.accepts(None);
        };
        if let Some(&v) = self.memo.get(&value) {
            return v;
        }
        let verdict = self.cond.accepts(Some(inner.values.name(value)));
        self.memo.insert(value, verdict);
        verdict
    }
}

fn find_slots_unsorted(inner: &Inner, conds: &[Cond]) -> Vec<u32> {
    // The driver: the join condition with the fewest series, whose postings are the candidates.
    // An exact value gives its count for free; only without one are regexes run over all values
    // of their tag.
    let joins = || conds.iter().enumerate().filter(|(_, c)| !c.matches_empty);
    let mut best: Option<(usize, usize, Vec<u32>)> = None; // (cond index, size, value ids)
    let has_exact = joins().any(|(_, c)| c.op == Op::Eq);
    for (i, c) in joins() {
        let Some(entry) = inner
            .tags
            .get(&c.tag)
            .and_then(|t| inner.per_tag.get(t as usize))
        else {
            return Vec::new();
        };
        let (size, values) = if c.op == Op::Eq {
            match inner
                .values
                .get(&c.spec)
                .and_then(|v| entry.values.get(&v).map(|p| (v, p)))
            {
                Some((v, p)) => (p.len(), vec![v]),
                None => return Vec::new(),
            }
        } else if has_exact {
            continue;
        } else {
            let mut size = 0;
            let mut values = Vec::new();
            for (&v, p) in entry.values.iter() {
                if c.join_accepts(inner.values.name(v)) {
                    size += p.len();
                    values.push(v);
                }
            }
            (size, values)
        };
        if best.as_ref().is_none_or(|b| size < b.1) {
            best = Some((i, size, values));
        }
    }
    let Some((driver, size, values)) = best else {
        return Vec::new();
    };
    let Some(entry) = conds
        .get(driver)
        .and_then(|c| inner.tags.get(&c.tag))
        .and_then(|t| inner.per_tag.get(t as usize))
    else {
        return Vec::new();
    };
    let mut candidates = Vec::with_capacity(size);
    let several = values.len() > 1;
    for v in values {
        if let Some(p) = entry.values.get(&v) {
            candidates.extend_from_slice(p.as_slice());
        }
    }
    if several {
        candidates.sort_unstable();
    }
    // Other exact conditions intersect posting lists (both ascending), which reads memory in
    // order instead of visiting every candidate series.
    let mut rest = Vec::new();
    for (_, c) in conds.iter().enumerate().filter(|(i, _)| *i != driver) {
        if c.matches_empty || c.op != Op::Eq {
            rest.push(c);
            continue;
        }
        let postings = inner
            .tags
            .get(&c.tag)
            .and_then(|t| inner.per_tag.get(t as usize))
            .zip(inner.values.get(&c.spec))
            .and_then(|(e, v)| e.values.get(&v));
        let Some(postings) = postings else {
            return Vec::new();
        };
        intersect(&mut candidates, postings.as_slice());
    }
    let mut others: Vec<Bound<'_>> = rest
        .into_iter()
        .map(|c| Bound {
            cond: c,
            tag: inner.tags.get(&c.tag),
            memo: Map::default(),
        })
        .collect();
    candidates.retain(|&slot| {
        let Some(series) = inner.series(slot) else {
            return false;
        };
        others.iter_mut().all(|b| b.accepts(inner, series))
    });
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagspecs() {
        assert_eq!(parse_tagspec("a=b").ok(), Some(("a", Op::Eq, "b")));
        assert_eq!(parse_tagspec("a!=").ok(), Some(("a", Op::Ne, "")));
        assert_eq!(parse_tagspec("a=~b=c").ok(), Some(("a", Op::Match, "b=c")));
        assert_eq!(
            parse_tagspec("a!=~!x").ok(),
            Some(("a", Op::NotMatch, "!x"))
        );
        for bad in ["=a", "a", "a!b", "a=b;c", ";a=b", "a!~=b"] {
            assert_eq!(
                parse_tagspec(bad).err(),
                Some(TagError::Invalid(format!("Invalid tagspec {bad}")))
            );
        }
    }

    #[test]
    fn find_and_delete() {
        let idx = TagIndex::new();
        for n in [
            "cpu;dc=ams;host=a",
            "cpu;dc=fra;host=b",
            "disk;dc=ams",
            "cpu;host=c",
        ] {
            assert!(idx.insert(n).is_ok());
        }
        assert_eq!(idx.len(), 4);
        let f = |e: &[&str]| idx.find_series(e);
        assert_eq!(
            f(&["name=cpu"]).ok(),
            Some(vec![
                "cpu;dc=ams;host=a".to_string(),
                "cpu;dc=fra;host=b".into(),
                "cpu;host=c".into()
            ])
        );
        assert_eq!(
            f(&["name=cpu", "dc!=ams"]).ok(),
            Some(vec!["cpu;dc=fra;host=b".to_string(), "cpu;host=c".into()])
        );
        assert_eq!(
            f(&["dc=~a"]).ok(),
            Some(vec!["cpu;dc=ams;host=a".to_string(), "disk;dc=ams".into()])
        );
        assert_eq!(f(&["name=~isk"]).ok(), Some(vec![]));
        assert!(matches!(f(&["dc!=x"]), Err(TagError::Invalid(_))));
        assert!(idx.remove("cpu;host=a;dc=ams").is_ok());
        assert_eq!(f(&["host=a"]).ok(), Some(vec![]));
        assert_eq!(idx.len(), 3);
    }

    mod persisted {
        use super::super::*;
        use std::io::Write as _;
        use std::time::Duration;

        /// Everything the API shows: tags with ids, values with ids and counts, all series.
        fn state(idx: &TagIndex) -> String {
            let mut out = String::new();
            for t in idx.list_tags(None, None).unwrap_or_default() {
                out.push_str(&format!("tag {} {}\n", t.id, t.tag));
                for v in idx.list_values(&t.tag, None, None).unwrap_or_default() {
                    out.push_str(&format!("  {} {} x{}\n", v.id, v.value, v.count));
                }
            }
            for s in idx.find_series(&["name!="]).unwrap_or_default() {
                out.push_str(&format!("series {s}\n"));
            }
            out
        }

        fn opts() -> LogOptions {
            LogOptions {
                flush_interval: Duration::from_secs(3600),
                flush_bytes: 1 << 30,
                compact_min_dead: 1_000_000,
            }
        }

        fn open(dir: &Path, o: LogOptions) -> (TagIndex, OpenStats) {
            match TagIndex::open_with(dir, &dir.join("whisper"), o) {
                Ok(x) => x,
                Err(e) => panic!("open: {e}"),
            }
        }

        fn log_path(dir: &Path) -> std::path::PathBuf {
            dir.join(tag_log::LOG_DIR).join(tag_log::LOG_FILE)
        }

        const NAMES: [&str; 6] = [
            "disk.used;rack=a1;datacenter=dc1",
            "disk.used;datacenter=dc1;rack=a2",
            "cpu;zone=z;host=h1;host=h2",
            "x\\y\nz;t=ü ;u=a=b",
            "mem{env=\"prod\",dc=\"ams\"}",
            "cpu;host=h3",
        ];

        #[test]
        fn survives_reopen_with_the_same_ids() {
            let dir = tempfile::tempdir().expect("tempdir");
            let reference = TagIndex::new();
            let (idx, stats) = open(dir.path(), opts());
            assert_eq!(stats.from_log, 0);
            for n in NAMES {
                assert!(idx.insert(n).is_ok(), "{n}");
                assert!(reference.insert(n).is_ok());
            }
            let before = state(&idx);
            assert_eq!(before, state(&reference));
            assert!(idx.close().is_ok());
            drop(idx);
            let (idx, stats) = open(dir.path(), opts());
            assert_eq!(stats.from_log, NAMES.len());
            assert_eq!(
                (stats.damaged, stats.torn_bytes, stats.compacted),
                (0, 0, false)
            );
            assert_eq!(state(&idx), before);
            // New series after the restart get the ids an uninterrupted history gives.
            for n in ["net;host=h9;zone=y", "disk.used;rack=a1;datacenter=dc1"] {
                assert!(idx.insert(n).is_ok());
                assert!(reference.insert(n).is_ok());
            }
            assert_eq!(state(&idx), state(&reference));
        }

        #[test]
        fn buffered_until_flushed() {
            let dir = tempfile::tempdir().expect("tempdir");
            let (idx, _) = open(dir.path(), opts());
            let header_len = tag_log::HEADER.len() as u64 + 1;
            for i in 0..1000 {
                assert!(idx.insert(&format!("m;i={i}")).is_ok());
            }
            let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            assert_eq!(len(&log_path(dir.path())), header_len);
            assert!(idx.log_stats().is_some_and(|s| s.pending_bytes > 0));
            assert!(idx.flush().is_ok());
            assert!(len(&log_path(dir.path())) > header_len);
            assert_eq!(idx.log_stats().map(|s| s.pending_bytes), Some(0));
            // A size threshold wakes the writer without waiting for the interval.
            let small = LogOptions {
                flush_bytes: 4096,
                ..opts()
            };
            drop(idx);
            let (idx, stats) = open(dir.path(), small);
            assert_eq!(stats.from_log, 1000);
            let before = len(&log_path(dir.path()));
            for i in 0..1000 {
                assert!(idx.insert(&format!("n;i={i}")).is_ok());
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while len(&log_path(dir.path())) == before {
                assert!(std::time::Instant::now() < deadline, "no write");
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        #[test]
        fn deletions_persist() {
            let dir = tempfile::tempdir().expect("tempdir");
            let reference = TagIndex::new();
            let (idx, _) = open(dir.path(), opts());
            for n in NAMES {
                assert!(idx.insert(n).is_ok());
                assert!(reference.insert(n).is_ok());
            }
            for n in ["cpu;host=h2;zone=z", "cpu;host=h3", "unknown;a=b"] {
                assert!(idx.remove(n).is_ok());
                assert!(reference.remove(n).is_ok());
            }
            assert!(idx.close().is_ok());
            drop(idx);
            let (idx, stats) = open(dir.path(), opts());
            assert_eq!(stats.from_log, NAMES.len() - 2);
            assert_eq!(stats.dead, 4);
            assert_eq!(state(&idx), state(&reference));
            assert!(!idx.contains("cpu;host=h3"));
            // Deleted then registered again: new rows, as in graphite-web's tables.
            assert!(idx.insert("cpu;host=h3").is_ok());
            assert!(reference.insert("cpu;host=h3").is_ok());
            drop(idx);
            let (idx, _) = open(dir.path(), opts());
            assert_eq!(state(&idx), state(&reference));
        }

        #[test]
        fn torn_tail_and_damaged_records_are_skipped() {
            let dir = tempfile::tempdir().expect("tempdir");
            let (idx, _) = open(dir.path(), opts());
            for n in NAMES {
                assert!(idx.insert(n).is_ok());
            }
            drop(idx);
            let path = log_path(dir.path());
            let mut text = std::fs::read(&path).expect("read log");
            // Damage the second record (names[1]): one byte of its name.
            let lines: Vec<usize> = text
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i)
                .collect();
            let at = lines[1] + 15;
            text[at] ^= 0x01;
            std::fs::write(&path, &text).expect("write");
            // A record torn by a crash: no line feed.
            let mut torn = Vec::new();
            tag_log::encode(&Record::Add("torn;a=b"), &mut torn);
            torn.truncate(torn.len() - 3);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("open");
            f.write_all(&torn).expect("append");
            drop(f);

            let (idx, stats) = open(dir.path(), opts());
            assert_eq!(stats.damaged, 1);
            assert_eq!(stats.torn_bytes, torn.len() as u64);
            assert_eq!(stats.from_log, NAMES.len() - 1);
            assert!(!idx.contains("disk.used;datacenter=dc1;rack=a2"));
            assert!(!idx.contains("torn;a=b"));
            assert!(idx.contains("disk.used;datacenter=dc1;rack=a1"));
            // The torn bytes are gone, so the next record starts on its own line.
            assert!(idx.insert("after;crash=1").is_ok());
            drop(idx);
            let (idx, stats) = open(dir.path(), opts());
            assert_eq!((stats.damaged, stats.torn_bytes), (1, 0));
            assert!(idx.contains("after;crash=1"));
        }

        #[test]
        fn compaction_keeps_ids_and_tags_of_deleted_series() {
            let dir = tempfile::tempdir().expect("tempdir");
            let reference = TagIndex::new();
            let (idx, _) = open(dir.path(), opts());
            let both = |f: &dyn Fn(&TagIndex)| {
                f(&idx);
                f(&reference);
            };
            for i in 0..300 {
                both(&|x| {
                    let _ = x.insert(&format!("m{};host=h{i};dc=d{}", i % 7, i % 3));
                });
            }
            for i in 0..300 {
                if i % 10 != 0 {
                    both(&|x| {
                        let _ = x.remove(&format!("m{};host=h{i};dc=d{}", i % 7, i % 3));
                    });
                }
            }
            // A tag only deleted series had stays listed.
            both(&|x| {
                let _ = x.insert("only;gone=1");
                let _ = x.remove("only;gone=1");
            });
            assert!(idx.close().is_ok());
            drop(idx);
            let path = log_path(dir.path());
            let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let before = size(&path);
            let compacting = LogOptions {
                compact_min_dead: 10,
                ..opts()
            };
            let (idx, stats) = open(dir.path(), compacting);
            assert!(stats.compacted, "{stats:?}");
            assert_eq!(stats.from_log, 30);
            assert_eq!(stats.dead, 300 + 270 + 2 - 30);
            assert!(size(&path) < before / 2, "{} -> {}", before, size(&path));
            assert!(!dir.path().join("tags/series.log.tmp").exists());
            assert_eq!(state(&idx), state(&reference));
            assert!(state(&idx).contains("tag 1"), "{}", state(&idx));
            assert!(idx
                .list_tags(None, None)
                .unwrap_or_default()
                .iter()
                .any(|t| t.tag == "gone"));
            // Appends after the snapshot continue the id counters.
            for n in ["m9;host=h1000;dc=d9;new=1", "m0;host=h0;dc=d0"] {
                assert!(idx.insert(n).is_ok());
                assert!(reference.insert(n).is_ok());
            }
            assert!(idx.remove("m0;dc=d0;host=h0").is_ok());
            assert!(reference.remove("m0;dc=d0;host=h0").is_ok());
            drop(idx);
            let (idx, stats) = open(dir.path(), compacting);
            assert!(!stats.compacted, "{stats:?}");
            assert_eq!(state(&idx), state(&reference));
        }

        #[test]
        fn foreign_file_is_refused_not_overwritten() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = log_path(dir.path());
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, "something else\n").expect("write");
            let err = TagIndex::open_with(dir.path(), &dir.path().join("whisper"), opts());
            assert!(matches!(err, Err(TagLogError::Foreign { .. })));
            assert_eq!(
                std::fs::read(&path).ok(),
                Some(b"something else\n".to_vec())
            );
        }

        #[test]
        fn unwritable_log_keeps_serving_from_memory() {
            let dir = tempfile::tempdir().expect("tempdir");
            let (idx, _) = open(dir.path(), opts());
            drop(idx);
            // The log file replaced by a device that is always full: the write fails with
            // ENOSPC and cannot be truncated back.
            let path = log_path(dir.path());
            std::fs::remove_file(&path).expect("rm");
            std::os::unix::fs::symlink("/dev/full", &path).expect("symlink");
            let log = match TagLog::open(&path, opts()) {
                Ok(l) => l,
                Err(e) => panic!("{e}"),
            };
            let idx = TagIndex {
                log: Some(log),
                ..TagIndex::new()
            };
            assert!(idx.insert("a;b=c").is_ok());
            assert!(idx.flush().is_err());
            assert!(idx.insert("a;b=d").is_ok());
            assert!(idx.flush().is_err());
            let stats = idx.log_stats().unwrap_or_default();
            assert!(stats.failing);
            assert_eq!(stats.write_failures, 2);
            let mut want = Vec::new();
            tag_log::encode(&Record::Add("a;b=c"), &mut want);
            tag_log::encode(&Record::Add("a;b=d"), &mut want);
            assert_eq!(stats.pending_bytes, want.len());
            assert_eq!(idx.len(), 2);
        }

        /// The hot path under a burst of new series: run with
        /// `cargo test --release --lib burst -- --ignored --nocapture`.
        #[test]
        #[ignore = "a measurement, not a check"]
        fn burst_of_a_million_new_series() {
            let n = 1_000_000;
            let names: Vec<String> = (0..n)
                .map(|i| format!("burst.metric;host=h{};dc=d{};k=v{i}", i % 1000, i % 7))
                .collect();
            let plain = TagIndex::new();
            let t = std::time::Instant::now();
            for name in &names {
                let _ = plain.insert(name);
            }
            let without = t.elapsed();
            drop(plain);
            let dir = tempfile::tempdir().expect("tempdir");
            let (idx, _) = open(dir.path(), LogOptions::default());
            let t = std::time::Instant::now();
            for name in &names {
                let _ = idx.insert(name);
            }
            let with = t.elapsed();
            assert!(idx.close().is_ok());
            let closed = t.elapsed();
            let stats = idx.log_stats().unwrap_or_default();
            drop(idx);
            let bytes = std::fs::metadata(log_path(dir.path()))
                .map(|m| m.len())
                .unwrap_or(0);
            let t = std::time::Instant::now();
            let (idx, ostats) = open(dir.path(), LogOptions::default());
            let reopen = t.elapsed();
            assert_eq!(idx.len(), n);
            assert_eq!(ostats.from_log, n);
            eprintln!(
                "{n} new series: {without:?} without the log, {with:?} with it \
                 ({closed:?} to closed); {} fsyncs, {bytes} bytes; reopen {reopen:?}",
                stats.syncs
            );
        }

        #[test]
        fn readable_file_names_are_added_and_logged() {
            let dir = tempfile::tempdir().expect("tempdir");
            let name = "load.a;x=1.5";
            let h = tag_hash(name);
            let d = dir
                .path()
                .join("whisper/_tagged")
                .join(&h[0..3])
                .join(&h[3..6]);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(d.join("load_DOT_a;x=1_DOT_5.wsp"), b"").expect("touch");
            let hashed = tag_hash("not.known;a=b");
            let d2 = dir
                .path()
                .join("whisper/_tagged")
                .join(&hashed[0..3])
                .join(&hashed[3..6]);
            std::fs::create_dir_all(&d2).expect("mkdir");
            std::fs::write(d2.join(format!("{hashed}.wsp")), b"").expect("touch");
            let known = tag_hash("known;a=b");
            let d3 = dir
                .path()
                .join("whisper/_tagged")
                .join(&known[0..3])
                .join(&known[3..6]);
            std::fs::create_dir_all(&d3).expect("mkdir");
            std::fs::write(d3.join(format!("{known}.wsp")), b"").expect("touch");
            let (idx, stats) = open(dir.path(), opts());
            assert_eq!(stats.files.loaded, 1);
            assert_eq!(stats.files.hashed, 2);
            assert_eq!(stats.unknown_hashed, 2);
            assert!(idx.contains(name));
            assert!(idx.insert("known;a=b").is_ok());
            drop(idx);
            let (idx, stats) = open(dir.path(), opts());
            assert_eq!(stats.from_log, 2);
            assert_eq!(stats.unknown_hashed, 1);
            assert!(idx.contains("known;a=b"));
        }
    }
}
