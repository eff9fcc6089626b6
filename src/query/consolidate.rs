//! Turning runs of values into one: graphite-web's consolidating iteration (`valuesPerPoint`),
//! used by maxDataPoints in the JSON renderer and by `normalize` when series of different steps
//! are combined.

use super::series::{Consolidation, Series};

/// Consolidates `values` in groups of `per_point` (the last group may be partial): a group gives
/// `cf(non-null values)` when it has a non-null value and `non_null / per_point >= xff`, else
/// None. With avg_zero, nulls count as zeros in the average.
pub fn consolidate(
    values: &[Option<f64>],
    per_point: usize,
    cf: Consolidation,
    x_files_factor: f64,
) -> Vec<Option<f64>> {
    let per_point = per_point.max(1);
    let mut out = Vec::with_capacity(values.len().div_ceil(per_point));
    let mut usable = Vec::with_capacity(per_point);
    for group in values.chunks(per_point) {
        usable.clear();
        let mut non_null = 0usize;
        for v in group {
            match v {
                Some(x) => {
                    usable.push(*x);
                    non_null += 1;
                }
                None if cf == Consolidation::AvgZero => usable.push(0.0),
                None => {}
            }
        }
        if non_null > 0 && (non_null as f64 / per_point as f64) >= x_files_factor {
            out.push(Some(cf.apply(&usable)));
        } else {
            out.push(None);
        }
    }
    out
}

/// Least common multiple of two positive steps.
pub fn lcm(a: i64, b: i64) -> i64 {
    fn gcd(mut a: i64, mut b: i64) -> i64 {
        while b != 0 {
            let t = a % b;
            a = b;
            b = t;
        }
        a.abs()
    }
    if a == 0 || b == 0 {
        return a.max(b);
    }
    (a / gcd(a, b)) * b
}

/// graphite-web's `normalize([seriesList, ...])`: the step becomes the least common multiple of
/// all steps, each series is consolidated to it (its own function and xFilesFactor), start is the
/// earliest start and end the latest end, trimmed so that `end - start` is a whole number of steps.
/// Returns the series (values consolidated, step set to the common step), start, end and step;
/// None when there are no series (graphite-web raises NormalizeEmptyResultError, and the function
/// answers with an empty list).
///
/// Like graphite-web, series with different starts are not re-aligned: values are combined by
/// index, so a 60 s series and a 300 s series keep the 60 s series' start.
pub fn normalize(series: &[Series]) -> Option<(Vec<Series>, i64, i64, i64)> {
    normalize_owned(series.to_vec())
}

/// [`normalize`] of a list the caller owns: series already at the common step keep their
/// values where they are instead of being copied.
pub fn normalize_owned(mut series: Vec<Series>) -> Option<(Vec<Series>, i64, i64, i64)> {
    let first = series.first()?;
    let step = series.iter().fold(first.step, |acc, s| lcm(acc, s.step));
    let start = series.iter().map(|s| s.start).min().unwrap_or(0);
    let mut end = series.iter().map(|s| s.end).max().unwrap_or(0);
    if step > 0 {
        end -= (end - start) % step;
    }
    for s in &mut series {
        let factor = if s.step > 0 {
            (step / s.step) as usize
        } else {
            1
        };
        if factor > 1 {
            s.values = consolidate(&s.values, factor, s.consolidation, s.x_files_factor);
        }
        s.values_per_point = 1;
        s.step = step;
    }
    Some((series, start, end, step))
}

/// Rows of a normalized list: for each index, the values of every series at that index (a
/// shorter series gives None), as `izip_longest` would.
pub fn rows(series: &[Series]) -> Vec<Vec<Option<f64>>> {
    let len = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
    (0..len)
        .map(|i| {
            series
                .iter()
                .map(|s| s.values.get(i).copied().flatten())
                .collect()
        })
        .collect()
}
