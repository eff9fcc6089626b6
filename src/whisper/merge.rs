//! whisper.py's `merge` and `diff`: copying and comparing two files with the same archives.
//!
//! Both work one archive at a time (whisper.py's private `__archive_fetch` and
//! `__archive_update_many`), which the public `fetch`/`update_many` cannot express since those
//! pick the archive from the age of the data, so they use `WhisperFile`'s archive-level calls.

use std::path::Path;

use super::file::now_epoch;
use super::{ArchiveInfo, FetchResult, Header, Result, WhisperError, WhisperFile};

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

/// The known `(timestamp, value)` pairs of an archive read, as whisper.py builds them with
/// `zip(range(start, end, step), values)` and a filter on None.
fn known_points(r: &FetchResult) -> Vec<(i64, f64)> {
    let count = if r.end > r.start && r.step > 0 {
        usize::try_from((r.end - r.start + r.step - 1) / r.step).unwrap_or(usize::MAX)
    } else {
        0
    };
    r.values
        .iter()
        .take(count)
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (r.start + i as i64 * r.step, v)))
        .collect()
}

/// The index of `archive` in `header`'s file order.
fn index_of(header: &Header, archive: &ArchiveInfo) -> usize {
    header
        .archives
        .iter()
        .position(|a| a == archive)
        .unwrap_or(0)
}

fn now_or_clock(now: Option<i64>) -> i64 {
    now.unwrap_or_else(now_epoch)
}

/// The archive list compared the way whisper.py compares its header dicts.
fn same_archives(a: &Header, b: &Header) -> bool {
    a.archives == b.archives
}

/// Archives sorted by retention; the sort is stable, as Python's is.
fn by_retention(header: &Header) -> Vec<ArchiveInfo> {
    let mut archives = header.archives.clone();
    archives.sort_by_key(|a| a.retention);
    archives
}

/// whisper.py's `merge(a, b, time_from, time_to, now)`: a's points overwrite b's.
pub fn merge(
    from_path: &Path,
    to_path: &Path,
    time_from: Option<i64>,
    time_to: Option<i64>,
    now: Option<i64>,
) -> Result<()> {
    let src = WhisperFile::open(from_path, false)?;
    let mut dst = WhisperFile::open(to_path, true)?;
    if !same_archives(src.header(), dst.header()) {
        return Err(WhisperError::Unalike(format!(
            "{} and {} archive configurations are unalike. Resize the input before merging",
            from_path.display(),
            to_path.display()
        )));
    }
    let now = now_or_clock(now);
    let until = time_to.unwrap_or(now);
    let from = time_from.unwrap_or(0);
    if until < from {
        return Err(WhisperError::InvalidArgument(
            "time_to must be >= time_from".to_string(),
        ));
    }
    for archive in by_retention(src.header()) {
        let oldest = now - archive.retention as i64;
        let archive_from = from.max(oldest);
        if until < oldest {
            continue;
        }
        let slice = src.fetch_archive(index_of(src.header(), &archive), archive_from, until)?;
        let points = known_points(&slice);
        if points.is_empty() {
            continue;
        }
        dst.archive_update_many(&archive, &points)?;
    }
    Ok(())
}

/// whisper.py's `diff(a, b, ignore_empty, until_time, now)`. `until_time` of 0 means none, as
/// whisper.py's truthiness test has it.
pub fn diff(
    path_a: &Path,
    path_b: &Path,
    ignore_empty: bool,
    until_time: Option<i64>,
    now: Option<i64>,
) -> Result<Vec<ArchiveDiff>> {
    let a = WhisperFile::open(path_a, false)?;
    let b = WhisperFile::open(path_b, false)?;
    if !same_archives(a.header(), b.header()) {
        return Err(WhisperError::Unalike(format!(
            "{} and {} archive configurations are unalike. Resize the input before diffing",
            path_a.display(),
            path_b.display()
        )));
    }
    let now = now_or_clock(now);
    let mut until = match until_time {
        Some(t) if t != 0 => t,
        _ => now,
    };
    let mut out = Vec::new();
    for (index, archive) in by_retention(a.header()).iter().enumerate() {
        let start_time = now - archive.retention as i64;
        let file_index = index_of(a.header(), archive);
        let sa = a.fetch_archive(file_index, start_time, until)?;
        let sb = b.fetch_archive(file_index, start_time, until)?;
        let start = sa.start.min(sb.start);
        let end = sa.end.max(sb.end);
        let step = sa.step.min(sb.step);
        let count = end.saturating_sub(start).div_euclid(step.max(1)).max(0) as usize;
        let mut kept = Vec::new();
        for s in 0..count {
            // whisper.py indexes both lists up to the slot count; a short list (only possible
            // when `until` is past now) raises IndexError there.
            let (Some(&va), Some(&vb)) = (sa.values.get(s), sb.values.get(s)) else {
                return Err(WhisperError::InvalidArgument(
                    "list index out of range".to_string(),
                ));
            };
            let keep = if ignore_empty {
                va.is_some() && vb.is_some()
            } else {
                va.is_some() || vb.is_some()
            };
            if keep {
                kept.push((start + s as i64 * step, va, vb));
            }
        }
        let total = kept.len();
        let points = kept
            .into_iter()
            .filter(|(_, va, vb)| match (va, vb) {
                (Some(x), Some(y)) => x != y,
                (None, None) => false,
                _ => true,
            })
            .collect();
        out.push(ArchiveDiff {
            index,
            points,
            total,
        });
        until = until.min(start_time);
    }
    Ok(out)
}
