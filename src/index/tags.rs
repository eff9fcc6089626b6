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

use std::fmt;
use std::hash::BuildHasher;
use std::path::Path;

use foldhash::fast::RandomState;
use hashbrown::{HashMap, HashTable};
use parking_lot::RwLock;

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
        let mut pairs: Vec<(u32, u32)> = tag_ids.into_iter().zip(value_ids).collect();
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

    fn remove(&mut self, canonical: &str) {
        let h = self.path_hasher.hash_one(canonical);
        let series = &self.series;
        let Ok(entry) = self.by_path.find_entry(h, |&s| {
            series
                .get(s as usize)
                .and_then(Option::as_ref)
                .is_some_and(|x| &*x.path == canonical)
        }) else {
            return;
        };
        let (slot, _) = entry.remove();
        let Some(gone) = self.series.get_mut(slot as usize).and_then(Option::take) else {
            return;
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

/// The tag database. All methods take `&self`; readers share a lock, writers take it briefly.
#[derive(Default)]
pub struct TagIndex {
    inner: RwLock<Inner>,
}

impl TagIndex {
    pub fn new() -> TagIndex {
        TagIndex::default()
    }

    /// Registers a series (`tag_series`): any spelling carbon accepts, returns the canonical
    /// path. Registering a known series changes nothing.
    pub fn insert(&self, name: &str) -> Result<String, TagError> {
        let (canonical, pairs) = parse_name(name)?;
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(t, v)| (t.as_str(), v.as_str()))
            .collect();
        let mut inner = self.inner.write();
        if inner.slot_of(&canonical).is_none() {
            inner.insert(canonical.clone(), &borrowed);
        }
        Ok(canonical)
    }

    /// Removes a series (`del_series`); an unknown series is no error. Tag names and value ids
    /// stay, as in graphite-web's tables.
    pub fn remove(&self, name: &str) -> Result<(), TagError> {
        let (canonical, _) = parse_name(name)?;
        self.inner.write().remove(&canonical);
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
        let mut stats = LoadStats::default();
        let Ok(level1) = std::fs::read_dir(root.join(TAGGED_DIR)) else {
            return stats;
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
                for f in files.flatten() {
                    let fname = f.file_name();
                    let (Some(a), Some(b), Some(file)) = (n1.to_str(), n2.to_str(), fname.to_str())
                    else {
                        stats.skipped += 1;
                        continue;
                    };
                    match self.load_file(a, b, file) {
                        Some(true) => stats.loaded += 1,
                        Some(false) => stats.hashed += 1,
                        None => stats.skipped += 1,
                    }
                }
            }
        }
        stats
    }

    /// Some(true) loaded, Some(false) hash-named, None unusable.
    fn load_file(&self, d1: &str, d2: &str, file: &str) -> Option<bool> {
        let stem = file.strip_suffix(".wsp")?;
        if stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()) {
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
}
