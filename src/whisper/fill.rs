//! whisper-fill.py as a library function: copy another file's data into this file's gaps only.
//!
//! Replicas that missed writes are reconciled with this; unlike merge it never overwrites a
//! value that is there. Reproduced on top of the public `info`/`fetch`/`update_many` with the
//! script's own rules, which decide what an operator ends up with: a value of `None` or `0`
//! counts as missing, a gap of a single step is left alone, and a gap is filled from the
//! source's finest archive first, walking back in time.

use std::path::Path;

use super::{fetch, info, update_many, Result, WhisperError, WriteOptions};

fn unpack_error() -> WhisperError {
    // whisper-fill.py unpacks a `None` fetch result and dies with this TypeError.
    WhisperError::InvalidArgument("cannot unpack non-iterable NoneType object".to_string())
}

/// whisper-fill.py's `fill(src, dst, tstart, tstop)`: copies src's points in `(tstart, tstop]`
/// into dst, finest source archive first.
pub fn fill_range(
    src: &Path,
    dst: &Path,
    tstart: i64,
    mut tstop: i64,
    now: i64,
    opts: WriteOptions,
) -> Result<()> {
    let header = info(src)?;
    let mut archives = header.archives.clone();
    archives.sort_by_key(|a| a.retention);
    let src_time = now - i64::from(header.max_retention);
    if tstart < src_time && tstop < src_time {
        return Ok(());
    }
    for archive in &archives {
        let rtime = now - archive.retention as i64;
        if tstop <= rtime {
            continue;
        }
        let from = rtime.max(tstart);
        let slice = fetch(src, from, Some(tstop), Some(now), None)?.ok_or_else(unpack_error)?;
        let mut points: Vec<(i64, f64)> = slice
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (slice.start + i as i64 * slice.step, v)))
            .filter(|&(t, _)| t < slice.end)
            .collect();
        // Newest first, as the script sorts them (update_many re-sorts anyway).
        points.reverse();
        update_many(dst, &points, Some(now), opts)?;
        tstop = from;
        if tstart == tstop {
            return Ok(());
        }
    }
    Ok(())
}

/// whisper-fill.py's `fill_archives(src, dst, now)`: finds dst's gaps archive by archive (finest
/// first) and fills each gap longer than one step from src.
pub fn fill(src: &Path, dst: &Path, now: i64, opts: WriteOptions) -> Result<()> {
    let header = info(dst)?;
    let mut archives = header.archives.clone();
    archives.sort_by_key(|a| a.retention);
    let mut start_from = now;
    for archive in &archives {
        let from_time = now - archive.retention as i64;
        if from_time >= start_from {
            continue;
        }
        let slice =
            fetch(dst, from_time, Some(start_from), Some(now), None)?.ok_or_else(unpack_error)?;
        let (mut start, end, step) = (slice.start, slice.end, slice.step);
        // The script keeps the gap start in a variable tested for truthiness, so a gap
        // starting at timestamp 0 reads as "no gap"; 0 stands for None here for the same
        // reason.
        let mut gap_start = 0i64;
        for v in &slice.values {
            let present = matches!(v, Some(x) if *x != 0.0);
            if !present && gap_start == 0 {
                gap_start = start;
            } else if present && gap_start != 0 {
                if start - gap_start > i64::from(archive.seconds_per_point) {
                    fill_range(src, dst, gap_start - step, start, now, opts)?;
                }
                gap_start = 0;
            } else if gap_start != 0 && start == end - step {
                fill_range(src, dst, gap_start - step, start, now, opts)?;
            }
            start += step;
        }
        start_from = from_time;
    }
    Ok(())
}
