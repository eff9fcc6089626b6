//! graphite-web's aggregation functions (`getAggFunc` and `functions/safe.py`): what
//! `aggregate`, the `*Series` combiners, `groupByNode` callbacks, `summarize` and the moving
//! windows apply to a row or a bucket of values. Every function skips None the way graphite-web's
//! `safe*` helpers do, and sums run left to right as CPython's `sum` does.

use crate::query::error::QueryError;
use crate::query::series::{python_max, python_min, python_sum};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    Average,
    AvgZero,
    Median,
    Sum,
    Min,
    Max,
    Diff,
    Stddev,
    Count,
    Range,
    Multiply,
    Last,
}

impl AggFunc {
    /// `getAggFunc(name)`, aliases included (`avg`, `total`, `rangeOf`, `current`).
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name {
            "average" | "avg" => AggFunc::Average,
            "avg_zero" => AggFunc::AvgZero,
            "median" => AggFunc::Median,
            "sum" | "total" => AggFunc::Sum,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "diff" => AggFunc::Diff,
            "stddev" => AggFunc::Stddev,
            "count" => AggFunc::Count,
            "range" | "rangeOf" => AggFunc::Range,
            "multiply" => AggFunc::Multiply,
            "last" | "current" => AggFunc::Last,
            _ => return None,
        })
    }

    /// Like `from_name`, with graphite-web's error text for an unknown name.
    pub fn parse(name: &str) -> Result<AggFunc, QueryError> {
        AggFunc::from_name(name)
            .ok_or_else(|| QueryError::bad(format!("Unsupported aggregation function: {name}")))
    }

    /// The function applied to one row or bucket (None where graphite-web returns None).
    pub fn apply(self, values: &[Option<f64>]) -> Option<f64> {
        match self {
            AggFunc::Average => safe_avg(values),
            AggFunc::AvgZero => safe_avg_zero(values),
            AggFunc::Median => safe_median(values),
            AggFunc::Sum => safe_sum(values),
            AggFunc::Min => safe_min(values),
            AggFunc::Max => safe_max(values),
            AggFunc::Diff => safe_diff(values),
            AggFunc::Stddev => safe_stddev(values),
            AggFunc::Count => Some(safe_len(values) as f64),
            AggFunc::Range => match (safe_max(values), safe_min(values)) {
                (Some(a), Some(b)) => Some(a - b),
                _ => None,
            },
            AggFunc::Multiply => safe_mul(values),
            AggFunc::Last => safe_last(values),
        }
    }
}

/// `[func(row) if xffValues(row, xff) else None for row in izip_longest(*columns)]` without
/// forming the rows: each column (one series' values) is folded into per-row accumulators in
/// column order, which is the order a row lists its values in, so every sum, product and
/// comparison happens in the same order as [`AggFunc::apply`] on the row and the results are
/// bit-identical. A column shorter than the longest counts as None past its end, as
/// `izip_longest` pads it. Median needs the whole row and gathers it into one reused buffer;
/// stddev folds the columns twice (the mean, then the squared deviations).
pub fn aggregate_columns(
    func: AggFunc,
    columns: &[&[Option<f64>]],
    x_files_factor: f64,
) -> Vec<Option<f64>> {
    let width = columns.len();
    if func == AggFunc::Median {
        let len = columns.iter().map(|c| c.len()).max().unwrap_or(0);
        let mut row = Vec::with_capacity(width);
        return (0..len)
            .map(|i| {
                row.clear();
                row.extend(columns.iter().map(|c| c.get(i).copied().flatten()));
                if passes_xff(safe_len(&row) as u32, width, x_files_factor) {
                    func.apply(&row)
                } else {
                    None
                }
            })
            .collect();
    }
    let mut fold = ColumnFold::any(func);
    for column in columns {
        fold.add(column);
    }
    if func == AggFunc::Stddev {
        let mut squares = vec![0.0; fold.count.len()];
        for column in columns {
            for (i, v) in column.iter().enumerate() {
                if let Some(v) = *v {
                    let avg = fold.acc[i] / f64::from(fold.count[i]);
                    squares[i] += (v - avg) * (v - avg);
                }
            }
        }
        fold.acc = squares;
    }
    fold.finish(x_files_factor)
}

/// Folds each non-null value of a column into its row: `step(acc, first value of the row, v)`.
fn fold_each<'a>(
    rows: impl Iterator<Item = ((&'a mut f64, &'a mut u32), &'a Option<f64>)>,
    step: impl Fn(&mut f64, bool, f64),
) {
    for ((acc, count), v) in rows {
        if let Some(v) = *v {
            step(acc, *count == 0, v);
            *count += 1;
        }
    }
}

/// graphite-web's `xffValues` for a row of `width` values of which `count` are not None.
fn passes_xff(count: u32, width: usize, x_files_factor: f64) -> bool {
    count > 0 && (f64::from(count) / width as f64) >= x_files_factor
}

/// Running per-row state of an aggregation fed one column (one series' values) at a time, in
/// row order: the running result, the running minimum for `range`, and the count of non-null
/// values. Lets an aggregate read its series one by one and keep none of them.
pub struct ColumnFold {
    func: AggFunc,
    acc: Vec<f64>,
    low: Vec<f64>,
    count: Vec<u32>,
    width: usize,
}

impl ColumnFold {
    /// A fold for the functions that need only one pass over each value; None for median and
    /// stddev, which need whole rows or a second pass.
    pub fn new(func: AggFunc) -> Option<ColumnFold> {
        (!matches!(func, AggFunc::Median | AggFunc::Stddev)).then(|| ColumnFold::any(func))
    }

    fn any(func: AggFunc) -> ColumnFold {
        ColumnFold {
            func,
            acc: Vec::new(),
            low: Vec::new(),
            count: Vec::new(),
            width: 0,
        }
    }

    /// Folds in the next column of the rows.
    pub fn add(&mut self, column: &[Option<f64>]) {
        self.width += 1;
        if column.len() > self.count.len() {
            // Rows only earlier columns were too short to reach: nothing counted yet.
            self.acc.resize(column.len(), 0.0);
            self.count.resize(column.len(), 0);
            if self.func == AggFunc::Range {
                self.low.resize(column.len(), 0.0);
            }
        }
        // One loop per function, over zipped slices: no bounds checks and no dispatch per value,
        // which keeps the fold well below the cost of reading the values.
        let rows = self.acc.iter_mut().zip(self.count.iter_mut()).zip(column);
        match self.func {
            AggFunc::Sum | AggFunc::Average | AggFunc::AvgZero | AggFunc::Stddev => {
                for ((acc, count), v) in rows {
                    if let Some(v) = *v {
                        *acc += v;
                        *count += 1;
                    }
                }
            }
            AggFunc::Min => fold_each(rows, |acc, first, v| {
                if first || v < *acc {
                    *acc = v
                }
            }),
            AggFunc::Max => fold_each(rows, |acc, first, v| {
                if first || v > *acc {
                    *acc = v
                }
            }),
            // safeDiff: the first value, then each later one negated, summed from zero.
            AggFunc::Diff => fold_each(rows, |acc, first, v| *acc += if first { v } else { -v }),
            AggFunc::Multiply => fold_each(rows, |acc, first, v| {
                *acc = if first { v } else { *acc * v }
            }),
            AggFunc::Last => fold_each(rows, |acc, _, v| *acc = v),
            AggFunc::Count | AggFunc::Median => fold_each(rows, |_, _, _| {}),
            AggFunc::Range => {
                let rows = rows.zip(self.low.iter_mut());
                for (((acc, count), v), low) in rows {
                    if let Some(v) = *v {
                        let first = *count == 0;
                        if first || v > *acc {
                            *acc = v
                        }
                        if first || v < *low {
                            *low = v
                        }
                        *count += 1;
                    }
                }
            }
        }
    }

    /// Columns folded so far (the width of every row).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The aggregated row values, None where a row fails the xFilesFactor test.
    pub fn finish(self, x_files_factor: f64) -> Vec<Option<f64>> {
        let width = self.width;
        (0..self.count.len())
            .map(|i| {
                let count = self.count[i];
                if !passes_xff(count, width, x_files_factor) {
                    return None;
                }
                let acc = self.acc[i];
                Some(match self.func {
                    AggFunc::Sum | AggFunc::Diff | AggFunc::Min | AggFunc::Max | AggFunc::Last => {
                        acc
                    }
                    AggFunc::Average => acc / f64::from(count),
                    // None counts as zero: adding 0.0 never changes a sum that starts at +0.0.
                    AggFunc::AvgZero => acc / width as f64,
                    // `acc` holds the squared deviations by now (see aggregate_columns).
                    AggFunc::Stddev => (acc / f64::from(count)).sqrt(),
                    AggFunc::Count => f64::from(count),
                    AggFunc::Range => acc - self.low[i],
                    // safe_mul: any None in the row, padding included, makes the product None.
                    AggFunc::Multiply if count as usize == width => acc,
                    AggFunc::Multiply | AggFunc::Median => return None,
                })
            })
            .collect()
    }
}

fn usable(values: &[Option<f64>]) -> Vec<f64> {
    values.iter().flatten().copied().collect()
}

pub fn safe_sum(values: &[Option<f64>]) -> Option<f64> {
    let v = usable(values);
    (!v.is_empty()).then(|| python_sum(&v))
}

/// The first value minus every later one, summed from zero as graphite-web's `sum` does (so a
/// lone -0.0 comes out as 0.0).
pub fn safe_diff(values: &[Option<f64>]) -> Option<f64> {
    let mut v = usable(values);
    if v.is_empty() {
        return None;
    }
    v[1..].iter_mut().for_each(|x| *x *= -1.0);
    Some(python_sum(&v))
}

pub fn safe_len(values: &[Option<f64>]) -> usize {
    values.iter().flatten().count()
}

/// `a / b`, None when a is None or b is None or zero.
pub fn safe_div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// `math.pow`, None where Python raises (domain or overflow).
pub fn safe_pow(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    let (a, b) = (a?, b?);
    let r = a.powf(b);
    if r.is_nan() && !a.is_nan() && !b.is_nan() {
        return None;
    }
    if r.is_infinite() && a.is_finite() && b.is_finite() {
        // Python raises OverflowError, or ZeroDivisionError-like ValueError for 0 ** -n.
        return None;
    }
    Some(r)
}

/// The product, None as soon as any factor is None.
pub fn safe_mul(values: &[Option<f64>]) -> Option<f64> {
    let mut it = values.iter();
    let mut product = (*it.next()?)?;
    for v in it {
        product *= (*v)?;
    }
    Some(product)
}

pub fn safe_avg(values: &[Option<f64>]) -> Option<f64> {
    let v = usable(values);
    (!v.is_empty()).then(|| python_sum(&v) / v.len() as f64)
}

/// The average with None counted as zero; None only for an empty row.
pub fn safe_avg_zero(values: &[Option<f64>]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let v: Vec<f64> = values.iter().map(|x| x.unwrap_or(0.0)).collect();
    Some(python_sum(&v) / v.len() as f64)
}

pub fn safe_median(values: &[Option<f64>]) -> Option<f64> {
    let mut v = usable(values);
    if v.is_empty() {
        return None;
    }
    crate::query::sort::sort_floats(&mut v);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// Population standard deviation.
pub fn safe_stddev(values: &[Option<f64>]) -> Option<f64> {
    let v = usable(values);
    if v.is_empty() {
        return None;
    }
    let avg = python_sum(&v) / v.len() as f64;
    let mut sum = 0.0;
    for x in &v {
        sum += (x - avg) * (x - avg);
    }
    Some((sum / v.len() as f64).sqrt())
}

pub fn safe_last(values: &[Option<f64>]) -> Option<f64> {
    values.iter().rev().flatten().next().copied()
}

pub fn safe_min(values: &[Option<f64>]) -> Option<f64> {
    let v = usable(values);
    (!v.is_empty()).then(|| python_min(&v))
}

pub fn safe_max(values: &[Option<f64>]) -> Option<f64> {
    let v = usable(values);
    (!v.is_empty()).then(|| python_max(&v))
}

/// The names `aggFunc` parameters offer in `/functions`.
pub const AGG_FUNC_NAMES: &[&str] = &[
    "average", "avg", "avg_zero", "count", "current", "diff", "last", "max", "median", "min",
    "multiply", "range", "rangeOf", "stddev", "sum", "total",
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: [AggFunc; 12] = [
        AggFunc::Average,
        AggFunc::AvgZero,
        AggFunc::Median,
        AggFunc::Sum,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::Diff,
        AggFunc::Stddev,
        AggFunc::Count,
        AggFunc::Range,
        AggFunc::Multiply,
        AggFunc::Last,
    ];

    fn value() -> impl Strategy<Value = Option<f64>> {
        prop_oneof![
            Just(None),
            Just(Some(-0.0)),
            Just(Some(f64::NAN)),
            Just(Some(f64::INFINITY)),
            (-1e6f64..1e6).prop_map(Some),
            (-3i32..3).prop_map(|i| Some(f64::from(i) * 0.1)),
        ]
    }

    fn same(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| match (x, y) {
                (Some(x), Some(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                (None, None) => true,
                _ => false,
            })
    }

    proptest! {
        /// Folding columns gives exactly what applying the function to each padded row gives.
        #[test]
        fn columns_match_rows(
            columns in prop::collection::vec(prop::collection::vec(value(), 0..6), 1..6),
            xff in prop_oneof![Just(0.0), Just(0.5), Just(1.0)],
        ) {
            let cols: Vec<&[Option<f64>]> = columns.iter().map(Vec::as_slice).collect();
            let len = columns.iter().map(Vec::len).max().unwrap_or(0);
            for func in ALL {
                let want: Vec<Option<f64>> = (0..len)
                    .map(|i| {
                        let row: Vec<Option<f64>> =
                            cols.iter().map(|c| c.get(i).copied().flatten()).collect();
                        let n = safe_len(&row);
                        if n > 0 && (n as f64 / row.len() as f64) >= xff {
                            func.apply(&row)
                        } else {
                            None
                        }
                    })
                    .collect();
                let got = aggregate_columns(func, &cols, xff);
                prop_assert!(same(&got, &want), "{:?}: {:?} != {:?}", func, got, want);
            }
        }
    }
}
