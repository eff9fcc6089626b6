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
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
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
