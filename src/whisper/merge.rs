//! whisper.py's `merge` and `diff`: copying and comparing two files with the same archives.

use std::path::Path;

use super::Result;

/// One archive's differences, as whisper.py's `diff` returns them.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiveDiff {
    /// Archive index, by ascending retention.
    pub index: usize,
    /// `(timestamp, value in a, value in b)` for each slot that differs.
    pub points: Vec<(i64, Option<f64>, Option<f64>)>,
    /// How many slots were compared.
    pub total: usize,
}

/// whisper.py's `merge(a, b, time_from, time_to, now)`: a's points overwrite b's.
pub fn merge(
    _from_path: &Path,
    _to_path: &Path,
    _time_from: Option<i64>,
    _time_to: Option<i64>,
    _now: Option<i64>,
) -> Result<()> {
    todo!()
}

/// whisper.py's `diff(a, b, ignore_empty, until_time, now)`.
pub fn diff(
    _path_a: &Path,
    _path_b: &Path,
    _ignore_empty: bool,
    _until_time: Option<i64>,
    _now: Option<i64>,
) -> Result<Vec<ArchiveDiff>> {
    todo!()
}
