//! A series as graphite-web's `TimeSeries` holds it: a name (the legend), the path expression it
//! came from, tags, `[start, end)` with a step, one value per step (None where there is no data),
//! and how it consolidates when several values must become one (maxDataPoints, `normalize`).

use std::collections::BTreeMap;

/// How a run of values becomes one (graphite-web's `consolidationFunc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consolidation {
    Average,
    /// Like average, but nulls count as zero.
    AvgZero,
    Sum,
    Min,
    Max,
    First,
    Last,
}

impl Consolidation {
    /// The names `consolidateBy` accepts (`avg` is an alias of `average`).
    pub fn from_name(name: &str) -> Option<Consolidation> {
        Some(match name {
            "average" | "avg" => Consolidation::Average,
            "avg_zero" => Consolidation::AvgZero,
            "sum" => Consolidation::Sum,
            "min" => Consolidation::Min,
            "max" => Consolidation::Max,
            "first" => Consolidation::First,
            "last" => Consolidation::Last,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Consolidation::Average => "average",
            Consolidation::AvgZero => "avg_zero",
            Consolidation::Sum => "sum",
            Consolidation::Min => "min",
            Consolidation::Max => "max",
            Consolidation::First => "first",
            Consolidation::Last => "last",
        }
    }

    /// Applies the function to the usable values of one bucket (never empty). Sums run left to
    /// right, as CPython's `sum` does, so results are bit-identical to graphite-web's.
    pub fn apply(self, usable: &[f64]) -> f64 {
        match self {
            Consolidation::Sum => python_sum(usable),
            Consolidation::Average | Consolidation::AvgZero => {
                python_sum(usable) / usable.len() as f64
            }
            Consolidation::Max => python_max(usable),
            Consolidation::Min => python_min(usable),
            Consolidation::First => usable[0],
            Consolidation::Last => usable[usable.len() - 1],
        }
    }
}

/// CPython 3.11's `sum()` over floats: plain left-to-right addition starting from 0.
pub fn python_sum(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |acc, v| acc + v)
}

/// CPython's `max()`: the first of equal maxima, and NaN handling by `>` comparisons (a NaN
/// first element stays; later NaNs are never greater).
pub fn python_max(values: &[f64]) -> f64 {
    let mut best = values[0];
    for &v in &values[1..] {
        if v > best {
            best = v;
        }
    }
    best
}

/// CPython's `min()`, the mirror of [`python_max`].
pub fn python_min(values: &[f64]) -> f64 {
    let mut best = values[0];
    for &v in &values[1..] {
        if v < best {
            best = v;
        }
    }
    best
}

/// Tags as graphite-web keeps them: every value a string, `name` always present.
pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The name shown as the legend (`target` in JSON).
    pub name: String,
    /// The expression the series came from; aggregates name themselves after it, and functions
    /// that re-fetch with another time range (movingAverage, timeShift) evaluate it again.
    pub path_expression: String,
    pub tags: Tags,
    pub start: i64,
    /// Exclusive end, as whisper's fetch gives it.
    pub end: i64,
    pub step: i64,
    pub values: Vec<Option<f64>>,
    pub consolidation: Consolidation,
    pub x_files_factor: f64,
    /// Values consolidated into one when the series is read (graphite-web's `valuesPerPoint`).
    pub values_per_point: usize,
}

impl Series {
    /// A series as graphite-web's `TimeSeries(name, start, end, step, values)` makes it: tags
    /// parsed from the name (unless the name looks like a function call), average consolidation,
    /// the given xFilesFactor, the name as its path expression.
    pub fn new(
        name: impl Into<String>,
        start: i64,
        end: i64,
        step: i64,
        values: Vec<Option<f64>>,
        x_files_factor: f64,
    ) -> Series {
        let name = name.into();
        Series {
            tags: tags_from_name(&name),
            path_expression: name.clone(),
            name,
            start,
            end,
            step,
            values,
            consolidation: Consolidation::Average,
            x_files_factor,
            values_per_point: 1,
        }
    }

    /// A new series with this one's path expression, consolidation and xFilesFactor but new
    /// name, range and values: what most graphite-web functions build for their output.
    pub fn derive(&self, name: impl Into<String>, values: Vec<Option<f64>>) -> Series {
        let name = name.into();
        Series {
            tags: self.tags.clone(),
            path_expression: self.path_expression.clone(),
            name,
            start: self.start,
            end: self.end,
            step: self.step,
            values,
            consolidation: self.consolidation,
            x_files_factor: self.x_files_factor,
            values_per_point: 1,
        }
    }

    /// The values as graphite-web's iteration yields them: consolidated in groups of
    /// `values_per_point` when that is above one.
    pub fn points(&self) -> Vec<Option<f64>> {
        if self.values_per_point <= 1 {
            return self.values.clone();
        }
        crate::query::consolidate::consolidate(
            &self.values,
            self.values_per_point,
            self.consolidation,
            self.x_files_factor,
        )
    }

    /// Sets one tag the way graphite-web's `Tags` dict does (values become strings).
    pub fn set_tag(&mut self, key: &str, value: impl Into<String>) {
        self.tags.insert(key.to_string(), value.into());
    }
}

/// graphite-web's tags for a series name: `{name: <name>}`, or for a tagged name
/// (`a.b;k=v`) its tags plus `name`. Names that look like a function call (`f(...)`) are not
/// parsed, as in graphite-web.
pub fn tags_from_name(name: &str) -> Tags {
    let mut tags = Tags::new();
    if !looks_like_call(name) {
        if let Ok(parsed) = crate::ingest::name::TaggedSeries::parse(name) {
            tags = parsed.tags;
        }
    }
    tags.entry("name".to_string())
        .or_insert_with(|| name.to_string());
    tags
}

/// graphite-web's `^[a-z]+[(].+[)]$` (case-insensitive) test.
fn looks_like_call(name: &str) -> bool {
    let letters = name.bytes().take_while(u8::is_ascii_alphabetic).count();
    letters > 0
        && name.len() >= letters + 3
        && name.as_bytes()[letters] == b'('
        && name.ends_with(')')
}
