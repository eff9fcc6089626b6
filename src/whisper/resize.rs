//! whisper-resize.py as a library function: rebuild a file with new archives, keeping its data.
//!
//! The script's behaviour is its own (it fetches each old archive over a window relative to
//! now, replays the points through `update_many`, optionally re-buckets them first, then swaps
//! files through `.tmp`/`.bak`), so it is reproduced step by step on top of the public API. The
//! script narrates what it does on stdout; those lines are part of what operators see, so each
//! step is reported as a `ResizeEvent` and the CLI prints them in the script's words.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use super::{
    create, fetch, info, update_many, validate_archive_list, AggregationMethod, CreateOptions,
    Result, WhisperError, WriteOptions,
};

/// What `resize` may change besides the archives, as whisper-resize.py's options.
#[derive(Clone, Debug, Default)]
pub struct ResizeOptions {
    /// `--xFilesFactor`; the file's own when `None`.
    pub x_files_factor: Option<f64>,
    /// `--aggregationMethod`, by name; the file's own when `None`. An unknown name fails in
    /// `create`, as in the script.
    pub aggregation_method: Option<String>,
    /// `--newfile`: write there and leave the original alone.
    pub new_file: Option<PathBuf>,
    /// `--nobackup`: delete `<path>.bak` at the end.
    pub no_backup: bool,
    /// `--aggregate`: re-bucket the old points into the new archives' intervals.
    pub aggregate: bool,
    /// Locking and fsync for the writes.
    pub write: WriteOptions,
}

/// One step of a resize, in the order whisper-resize.py prints them.
#[derive(Clone, Debug, PartialEq)]
pub enum ResizeEvent<'a> {
    Retrieving,
    RemovingTemporary(&'a Path),
    Creating(&'a Path),
    Created(&'a Path, u64),
    MigratingWithAggregation,
    /// All old timestamps, in the order the script lists them.
    OldTimestamps(&'a [i64]),
    /// One new archive's bucketing window: `range(from, until, step)`.
    Window {
        from: i64,
        until: i64,
        step: i64,
    },
    MigratingWithoutAggregation,
    RenamingOld(&'a Path),
    RenamingNew(&'a Path),
    /// Renaming the new file into place failed; the backup is being restored.
    RestoringBackup,
    UnlinkingBackup(&'a Path),
}

/// `path + suffix` on the raw file name, as the script's string concatenation does.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// whisper.py's `create` with the method given by name. An unknown name fails where
/// whisper.py's fails, after validation and the exists check; like `create` (and unlike
/// whisper.py) it leaves no 0-byte file behind.
pub fn create_with_method_name(
    path: &Path,
    archives: &[(u32, u32)],
    opts: &CreateOptions,
    method: &str,
) -> Result<()> {
    match AggregationMethod::from_name(method) {
        Some(m) => create(
            path,
            archives,
            &CreateOptions {
                aggregation_method: m,
                ..*opts
            },
        ),
        None => {
            let mut list = archives.to_vec();
            validate_archive_list(&mut list)?;
            if path.exists() {
                return Err(WhisperError::InvalidConfiguration(format!(
                    "File {} already exists!",
                    path.display()
                )));
            }
            Err(WhisperError::InvalidAggregationMethod(method.to_string()))
        }
    }
}

/// Python's `bisect.bisect_left(a, x, lo)`; `a` need not be sorted (the script's list may not
/// be), so the exact probing order matters.
fn bisect_left(a: &[i64], x: i64, lo: usize) -> usize {
    let (mut lo, mut hi) = (lo, a.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if a[mid] < x {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `zip(range(start, end, step), values)`.
fn zip_range(start: i64, end: i64, step: i64, values: &[Option<f64>]) -> Vec<(i64, Option<f64>)> {
    let span = i128::from(end) - i128::from(start);
    let count = if span > 0 && step > 0 {
        usize::try_from((span + i128::from(step) - 1) / i128::from(step)).unwrap_or(usize::MAX)
    } else {
        0
    };
    values
        .iter()
        .take(count)
        .enumerate()
        .map(|(i, &v)| (start + i as i64 * step, v))
        .collect()
}

/// whisper-resize.py: rebuilds `path` with `new_archives`. Returns the file written (the
/// `--newfile`, or `path` itself after the swap).
pub fn resize(
    path: &Path,
    new_archives: &[(u32, u32)],
    opts: &ResizeOptions,
    now: i64,
    events: &mut dyn FnMut(ResizeEvent<'_>),
) -> Result<PathBuf> {
    let header = info(path)?;
    let mut old = header.archives.clone();
    // Coarsest first; Python's stable sort with reverse=True keeps equal elements in order.
    old.sort_by_key(|a| std::cmp::Reverse(a.seconds_per_point));
    let xff = opts
        .x_files_factor
        .unwrap_or(f64::from(header.x_files_factor));
    let method_name = opts
        .aggregation_method
        .clone()
        .unwrap_or_else(|| header.aggregation_method.name().to_string());

    events(ResizeEvent::Retrieving);
    let mut data = Vec::with_capacity(old.len());
    for archive in &old {
        let from = now - archive.retention as i64 + i64::from(archive.seconds_per_point);
        let fetched = fetch(path, from, Some(now), Some(now), None)?.ok_or_else(|| {
            WhisperError::InvalidArgument("cannot unpack non-iterable NoneType object".to_string())
        })?;
        data.push(fetched);
    }

    let tmp = with_suffix(path, ".tmp");
    let new_file = match &opts.new_file {
        Some(p) => p.clone(),
        None => {
            if tmp.exists() {
                events(ResizeEvent::RemovingTemporary(&tmp));
                fs::remove_file(&tmp).map_err(|e| WhisperError::io(&tmp, e))?;
            }
            tmp.clone()
        }
    };
    events(ResizeEvent::Creating(&new_file));
    let create_opts = CreateOptions {
        x_files_factor: xff,
        write: opts.write,
        ..CreateOptions::default()
    };
    create_with_method_name(&new_file, new_archives, &create_opts, &method_name)?;
    let size = fs::metadata(&new_file)
        .map_err(|e| WhisperError::io(&new_file, e))?
        .len();
    events(ResizeEvent::Created(&new_file, size));

    if opts.aggregate {
        events(ResizeEvent::MigratingWithAggregation);
        // Finest archive first; each coarser archive contributes only what is older than
        // everything gathered so far.
        let mut order: Vec<usize> = (0..old.len()).collect();
        order.sort_by_key(|&i| old[i].seconds_per_point);
        let mut all: Vec<(i64, Option<f64>)> = Vec::new();
        for i in order {
            let d = &data[i];
            let mut points = zip_range(d.start, d.end, d.step, &d.values);
            points.reverse();
            if let Some(&(last_ts, _)) = all.last() {
                let slice_end = points.iter().position(|&(t, _)| t < last_ts).unwrap_or(0);
                all.extend_from_slice(&points[slice_end..]);
            } else {
                all.extend(points);
            }
        }
        all.reverse();
        let old_ts: Vec<i64> = all.iter().map(|p| p.0).collect();
        let old_values: Vec<Option<f64>> = all.iter().map(|p| p.1).collect();
        events(ResizeEvent::OldTimestamps(&old_ts));

        let method = AggregationMethod::from_name(&method_name)
            .ok_or_else(|| WhisperError::InvalidAggregationMethod(method_name.clone()))?;
        let new_header = info(&new_file)?;
        for archive in &new_header.archives {
            let step = i64::from(archive.seconds_per_point);
            if step == 0 {
                return Err(WhisperError::InvalidArgument(
                    "range() arg 3 must not be zero".to_string(),
                ));
            }
            let from = now - archive.retention as i64 + now.rem_euclid(step);
            let until = now + now.rem_euclid(step) + step;
            events(ResizeEvent::Window { from, until, step });
            let mut new_points = Vec::new();
            let mut t0 = from;
            while t0 + step < until {
                let t1 = t0 + step;
                let left = bisect_left(&old_ts, t0, 0);
                let right = bisect_left(&old_ts, t1, left);
                let bucket = &old_values[left..right];
                if !bucket.is_empty() {
                    let known: Vec<f64> = bucket.iter().flatten().copied().collect();
                    if !known.is_empty() && (known.len() as f64) / (bucket.len() as f64) >= xff {
                        if let Some(v) = method.aggregate(&known, bucket.len()) {
                            new_points.push((t0, v));
                        }
                    }
                }
                t0 = t1;
            }
            update_many(&new_file, &new_points, Some(now), opts.write)?;
        }
    } else {
        events(ResizeEvent::MigratingWithoutAggregation);
        for d in &data {
            let points: Vec<(i64, f64)> = zip_range(d.start, d.end, d.step, &d.values)
                .into_iter()
                .filter_map(|(t, v)| v.map(|v| (t, v)))
                .collect();
            update_many(&new_file, &points, Some(now), opts.write)?;
        }
    }

    if opts.new_file.is_some() {
        return Ok(new_file);
    }
    let backup = with_suffix(path, ".bak");
    events(ResizeEvent::RenamingOld(&backup));
    fs::rename(path, &backup).map_err(|e| WhisperError::io(path, e))?;
    events(ResizeEvent::RenamingNew(path));
    if let Err(e) = fs::rename(&tmp, path) {
        events(ResizeEvent::RestoringBackup);
        fs::rename(&backup, path).map_err(|e| WhisperError::io(&backup, e))?;
        return Err(WhisperError::io(&tmp, e));
    }
    if opts.no_backup {
        events(ResizeEvent::UnlinkingBackup(&backup));
        fs::remove_file(&backup).map_err(|e| WhisperError::io(&backup, e))?;
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisect_matches_python() {
        let a = [1, 3, 3, 5];
        assert_eq!(bisect_left(&a, 3, 0), 1);
        assert_eq!(bisect_left(&a, 4, 0), 3);
        assert_eq!(bisect_left(&a, 9, 2), 4);
        assert_eq!(bisect_left(&a, 0, 2), 2);
    }

    #[test]
    fn zip_range_truncates() {
        let v = [Some(1.0), None, Some(2.0)];
        assert_eq!(zip_range(10, 30, 10, &v), vec![(10, Some(1.0)), (20, None)]);
        assert!(zip_range(30, 10, 10, &v).is_empty());
    }
}
