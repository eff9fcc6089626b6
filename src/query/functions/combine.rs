//! Combine: graphite-web 1.1.10's functions that merge several series into fewer (sumSeries and
//! the other `aggregate` forms, divideSeries, countSeries, percentileOfSeries), group them by
//! node or wildcard first (groupByNode(s), *WithWildcards), pair two lists (*SeriesLists), or
//! express each as a percentage of a total (asPercent).
//!
//! Series of different steps are combined the way graphite-web's `normalize()` does it: each is
//! consolidated to the least common multiple of the steps and the rows are formed by index,
//! without re-aligning series whose starts differ. asPercent keeps graphite-web's habit of
//! labelling consolidated values with the series' original step, and of reusing the bounds of
//! the last normalization for series that found no partner. These quirks are deliberate: they
//! are what Grafana gets from graphite-web.

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;

use super::aggfuncs::{aggregate_columns, safe_div, safe_sum, AggFunc, ColumnFold, AGG_FUNC_NAMES};
use super::{FunctionDef, Literal, Param, ParamType};
use crate::python::format::{float_repr, printf_g};
use crate::query::ast::Expr;
use crate::query::consolidate::{consolidate, lcm};
use crate::query::error::QueryError;
use crate::query::eval::Context;
use crate::query::series::{Series, Tags};
use crate::query::value::{Args, Value};

const SERIES_LISTS: &[Param] = &[Param::required("seriesLists", ParamType::SeriesList).multiple()];
const SERIES_LIST: Param = Param::required("seriesList", ParamType::SeriesList);
const WILDCARDS: &[Param] = &[
    SERIES_LIST,
    Param::optional("position", ParamType::Node).multiple(),
];
const TWO_LISTS: &[Param] = &[
    Param::required("seriesListFirstPos", ParamType::SeriesList),
    Param::required("seriesListSecondPos", ParamType::SeriesList),
];
const AS_PERCENT: &[Param] = &[
    SERIES_LIST,
    Param::optional("total", ParamType::Any),
    Param::optional("nodes", ParamType::NodeOrTag).multiple(),
];

/// What `/functions` offers for an `aggOrSeriesFunc` parameter: the aggregation names and the
/// series functions graphite-web marks as aggregators.
pub(crate) const AGG_OR_SERIES_FUNC_NAMES: &[&str] = &[
    "asPercent",
    "average",
    "averageSeries",
    "averageSeriesWithWildcards",
    "avg",
    "avg_zero",
    "count",
    "countSeries",
    "current",
    "diff",
    "diffSeries",
    "diffSeriesLists",
    "last",
    "max",
    "maxSeries",
    "median",
    "min",
    "minSeries",
    "multiply",
    "multiplySeries",
    "multiplySeriesLists",
    "multiplySeriesWithWildcards",
    "pct",
    "powSeries",
    "range",
    "rangeOf",
    "rangeOfSeries",
    "stddev",
    "stddevSeries",
    "sum",
    "sumSeries",
    "sumSeriesLists",
    "sumSeriesWithWildcards",
    "total",
];

/// One `aggregate` shorthand (`sumSeries(*seriesLists)` and its kin).
macro_rules! shorthand {
    ($name:literal, $run:ident, $desc:literal) => {
        FunctionDef {
            name: $name,
            group: "Combine",
            signature: concat!($name, "(*seriesLists)"),
            description: $desc,
            params: SERIES_LISTS,
            run: $run,
        }
    };
}

pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "aggregate",
        group: "Combine",
        signature: "aggregate(seriesList, func, xFilesFactor=None)",
        description: "Combines the series into one by applying an aggregation function \
                      (sum, average, median, ...) to the values at each point.",
        params: &[
            SERIES_LIST,
            Param::required("func", ParamType::AggFunc).options(AGG_FUNC_NAMES),
            Param::optional("xFilesFactor", ParamType::Float),
        ],
        run: aggregate,
    },
    FunctionDef {
        name: "aggregateSeriesLists",
        group: "Combine",
        signature: "aggregateSeriesLists(seriesListFirstPos, seriesListSecondPos, func, \
                    xFilesFactor=None)",
        description: "Aggregates two equally long lists pairwise: the first series of each \
                      list together, then the second ones, and so on.",
        params: &[
            Param::required("seriesListFirstPos", ParamType::SeriesList),
            Param::required("seriesListSecondPos", ParamType::SeriesList),
            Param::required("func", ParamType::AggFunc).options(AGG_FUNC_NAMES),
            Param::optional("xFilesFactor", ParamType::Float),
        ],
        run: aggregate_series_lists,
    },
    FunctionDef {
        name: "aggregateWithWildcards",
        group: "Combine",
        signature: "aggregateWithWildcards(seriesList, func, *positions)",
        description: "Groups the series by their names with the given nodes left out, and \
                      aggregates each group with the given function.",
        params: &[
            SERIES_LIST,
            Param::required("func", ParamType::AggFunc).options(AGG_FUNC_NAMES),
            Param::optional("position", ParamType::Node).multiple(),
        ],
        run: aggregate_with_wildcards,
    },
    FunctionDef {
        name: "asPercent",
        group: "Combine",
        signature: "asPercent(seriesList, total=None, *nodes)",
        description: "Each series as a percentage of a total: the sum of the list, a number, \
                      one series, a matching list, or per-group totals matched by nodes.",
        params: AS_PERCENT,
        run: as_percent,
    },
    shorthand!(
        "averageSeries",
        average_series,
        "The average of the non-null values at each point."
    ),
    FunctionDef {
        name: "averageSeriesWithWildcards",
        group: "Combine",
        signature: "averageSeriesWithWildcards(seriesList, *position)",
        description: "Groups the series by their names with the given nodes left out, and \
                      averages each group.",
        params: WILDCARDS,
        run: average_series_with_wildcards,
    },
    shorthand!(
        "avg",
        average_series,
        "Short form of averageSeries: the average of the non-null values at each point."
    ),
    FunctionDef {
        name: "countSeries",
        group: "Combine",
        signature: "countSeries(*seriesLists)",
        description: "A line at the number of series given (zero when called without \
                      arguments).",
        params: &[Param::optional("seriesLists", ParamType::SeriesList).multiple()],
        run: count_series,
    },
    shorthand!(
        "diffSeries",
        diff_series,
        "The first series minus all the others, point by point (nulls ignored)."
    ),
    FunctionDef {
        name: "diffSeriesLists",
        group: "Combine",
        signature: "diffSeriesLists(seriesListFirstPos, seriesListSecondPos)",
        description: "Subtracts the series of the second list from those of the first, pair \
                      by pair.",
        params: TWO_LISTS,
        run: diff_series_lists,
    },
    FunctionDef {
        name: "divideSeries",
        group: "Combine",
        signature: "divideSeries(dividendSeriesList, divisorSeries)",
        description: "Divides every series by one divisor series (null where the divisor is \
                      null or zero).",
        params: &[
            Param::required("dividendSeriesList", ParamType::SeriesList),
            Param::required("divisorSeries", ParamType::SeriesList),
        ],
        run: divide_series,
    },
    FunctionDef {
        name: "divideSeriesLists",
        group: "Combine",
        signature: "divideSeriesLists(dividendSeriesList, divisorSeriesList)",
        description: "Divides the series of the first list by those of the second, pair by \
                      pair.",
        params: &[
            Param::required("dividendSeriesList", ParamType::SeriesList),
            Param::required("divisorSeriesList", ParamType::SeriesList),
        ],
        run: divide_series_lists,
    },
    FunctionDef {
        name: "groupByNode",
        group: "Combine",
        signature: "groupByNode(seriesList, nodeNum, callback='average')",
        description: "Groups the series by one node of their names (or a tag) and combines \
                      each group with an aggregation or an aggregating series function.",
        params: &[
            SERIES_LIST,
            Param::required("nodeNum", ParamType::NodeOrTag),
            Param::optional("callback", ParamType::AggOrSeriesFunc)
                .with_default(Literal::Str("average"))
                .options(AGG_OR_SERIES_FUNC_NAMES),
        ],
        run: group_by_node,
    },
    FunctionDef {
        name: "groupByNodes",
        group: "Combine",
        signature: "groupByNodes(seriesList, callback, *nodes)",
        description: "Groups the series by several nodes of their names (or tags) and \
                      combines each group with an aggregation or an aggregating series \
                      function.",
        params: &[
            SERIES_LIST,
            Param::required("callback", ParamType::AggOrSeriesFunc)
                .options(AGG_OR_SERIES_FUNC_NAMES),
            Param::optional("nodes", ParamType::NodeOrTag).multiple(),
        ],
        run: group_by_nodes,
    },
    shorthand!(
        "maxSeries",
        max_series,
        "The largest non-null value at each point."
    ),
    shorthand!(
        "minSeries",
        min_series,
        "The smallest non-null value at each point."
    ),
    shorthand!(
        "multiplySeries",
        multiply_series,
        "The product of the values at each point (null if any is null)."
    ),
    FunctionDef {
        name: "multiplySeriesLists",
        group: "Combine",
        signature: "multiplySeriesLists(seriesListFirstPos, seriesListSecondPos)",
        description: "Multiplies the series of two equally long lists pair by pair.",
        params: TWO_LISTS,
        run: multiply_series_lists,
    },
    FunctionDef {
        name: "multiplySeriesWithWildcards",
        group: "Combine",
        signature: "multiplySeriesWithWildcards(seriesList, *position)",
        description: "Groups the series by their names with the given nodes left out, and \
                      multiplies each group.",
        params: WILDCARDS,
        run: multiply_series_with_wildcards,
    },
    FunctionDef {
        name: "pct",
        group: "Combine",
        signature: "pct(seriesList, total=None, *nodes)",
        description: "Short form of asPercent: each series as a percentage of a total.",
        params: AS_PERCENT,
        run: as_percent,
    },
    FunctionDef {
        name: "percentileOfSeries",
        group: "Combine",
        signature: "percentileOfSeries(seriesList, n, interpolate=False)",
        description: "The n-th percentile of the values at each point across the series; \
                      an actual value unless interpolate is true.",
        params: &[
            SERIES_LIST,
            Param::required("n", ParamType::Float),
            Param::optional("interpolate", ParamType::Boolean).with_default(Literal::Bool(false)),
        ],
        run: percentile_of_series,
    },
    shorthand!(
        "rangeOfSeries",
        range_of_series,
        "The largest minus the smallest non-null value at each point."
    ),
    shorthand!(
        "stddevSeries",
        stddev_series,
        "The population standard deviation of the non-null values at each point."
    ),
    shorthand!(
        "sum",
        sum_series,
        "Short form of sumSeries: the sum of the non-null values at each point."
    ),
    shorthand!(
        "sumSeries",
        sum_series,
        "The sum of the non-null values at each point."
    ),
    FunctionDef {
        name: "sumSeriesLists",
        group: "Combine",
        signature: "sumSeriesLists(seriesListFirstPos, seriesListSecondPos)",
        description: "Adds the series of two equally long lists pair by pair.",
        params: TWO_LISTS,
        run: sum_series_lists,
    },
    FunctionDef {
        name: "sumSeriesWithWildcards",
        group: "Combine",
        signature: "sumSeriesWithWildcards(seriesList, *position)",
        description: "Groups the series by their names with the given nodes left out, and \
                      sums each group.",
        params: WILDCARDS,
        run: sum_series_with_wildcards,
    },
];

// ---------------------------------------------------------------------------------------------
// normalize

/// The common bounds of a set of series as graphite-web's `normalize` computes them: the least
/// common multiple of the steps, the earliest start, and the latest end trimmed to a whole
/// number of steps. None for no series.
fn bounds<'a>(series: impl IntoIterator<Item = &'a Series>) -> Option<(i64, i64, i64)> {
    let mut it = series.into_iter();
    let first = it.next()?;
    let (mut step, mut start, mut end) = (first.step, first.start, first.end);
    for s in it {
        step = lcm(step, s.step);
        start = start.min(s.start);
        end = end.max(s.end);
    }
    if step > 0 {
        end -= (end - start).rem_euclid(step);
    }
    Some((start, end, step))
}

/// The values a series yields once `normalize` has set it to `step`: consolidated in groups of
/// `step / own step` with its own function and xFilesFactor (replacing any earlier grouping).
/// A series already at `step` lends its values: most lists share one step, and copying a
/// thousand day-long series only to read them once is what made sumSeries slow.
fn values_at(series: &Series, step: i64) -> Cow<'_, [Option<f64>]> {
    let per_point = if series.step > 0 && step > series.step {
        (step / series.step) as usize
    } else {
        1
    };
    if per_point <= 1 {
        return Cow::Borrowed(&series.values);
    }
    Cow::Owned(consolidate(
        &series.values,
        per_point,
        series.consolidation,
        series.x_files_factor,
    ))
}

/// `normalize` of a list: the bounds and each series' values at the common step.
struct Normalized<'a> {
    start: i64,
    end: i64,
    step: i64,
    values: Vec<Cow<'a, [Option<f64>]>>,
}

fn normalize<'a>(series: impl IntoIterator<Item = &'a Series> + Clone) -> Option<Normalized<'a>> {
    let (start, end, step) = bounds(series.clone())?;
    let values = series.into_iter().map(|s| values_at(s, step)).collect();
    Some(Normalized {
        start,
        end,
        step,
        values,
    })
}

impl Normalized<'_> {
    /// Each series' values at the common step, in list order.
    fn columns(&self) -> Vec<&[Option<f64>]> {
        self.values.iter().map(|v| &**v).collect()
    }

    /// The rows `izip_longest` forms: index by index, shorter series padded with None.
    fn rows(&self) -> Vec<Vec<Option<f64>>> {
        let len = self.values.iter().map(|v| v.len()).max().unwrap_or(0);
        (0..len)
            .map(|i| {
                self.values
                    .iter()
                    .map(|v| v.get(i).copied().flatten())
                    .collect()
            })
            .collect()
    }
}

/// graphite-web's `formatPathExpressions`: the distinct path expressions in order, joined by `,`.
fn format_path_expressions<'a>(series: impl IntoIterator<Item = &'a Series>) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in series {
        if !seen.contains(&s.path_expression.as_str()) {
            seen.push(&s.path_expression);
        }
    }
    seen.join(",")
}

// ---------------------------------------------------------------------------------------------
// aggregate

/// The aggregation a `func` argument names: a `...Series` suffix is dropped first, as
/// graphite-web does, and the stripped name is what the result is named after.
fn agg_func(function: &str, raw: &str) -> Result<(String, AggFunc), QueryError> {
    let func = raw.strip_suffix("Series").unwrap_or(raw);
    match AggFunc::from_name(func) {
        Some(agg) => Ok((func.to_string(), agg)),
        None => Err(QueryError::bad(format!(
            "{function}: unsupported aggregation function {raw:?} (use one of {})",
            AGG_FUNC_NAMES.join(", ")
        ))),
    }
}

/// A function-name argument, which must be a string.
fn func_arg(args: &Args, name: &str) -> Result<String, QueryError> {
    match args.get(name) {
        Some(Value::Str(s)) => Ok(s.clone()),
        Some(other) => Err(QueryError::bad(format!(
            "{}: argument {name:?} must be the name of an aggregation function, got {} {}",
            args.function(),
            other.type_name(),
            other.python_repr()
        ))),
        None => Err(QueryError::bad(format!(
            "{}: missing required argument {name:?}",
            args.function()
        ))),
    }
}

/// graphite-web's `aggregate(requestContext, seriesList, func, xFilesFactor)`: one series
/// named `<func>Series(<path expressions>)`, or nothing for no input. The series are borrowed
/// (owned or not) and aggregated column by column, so a request holds one copy of its data.
fn aggregate_list<S: Borrow<Series>>(
    ctx: &Context<'_>,
    function: &str,
    series: &[S],
    raw_func: &str,
    x_files_factor: Option<f64>,
) -> Result<Option<Series>, QueryError> {
    let (func, agg) = agg_func(function, raw_func)?;
    let Some(norm) = normalize(series.iter().map(Borrow::borrow)) else {
        return Ok(None);
    };
    let xff = x_files_factor.unwrap_or(ctx.x_files_factor);
    let name = format!(
        "{func}Series({})",
        format_path_expressions(series.iter().map(Borrow::borrow))
    );
    let values = aggregate_columns(agg, &norm.columns(), xff);
    let mut tags = common_tags(series);
    tags.entry("name".to_string())
        .or_insert_with(|| name.clone());
    tags.insert("aggregatedBy".to_string(), func);
    let mut out = Series::new(name, norm.start, norm.end, norm.step, values, xff);
    out.tags = tags;
    Ok(Some(out))
}

/// The tags every series shares with the same value.
fn common_tags<S: Borrow<Series>>(series: &[S]) -> Tags {
    let Some(first) = series.first() else {
        return Tags::new();
    };
    let mut tags = first.borrow().tags.clone();
    for s in &series[1..] {
        let other = &s.borrow().tags;
        tags.retain(|k, v| other.get(k) == Some(v));
    }
    tags
}

/// Every series of a `multiple` series-list parameter, borrowed in order. Anything else than
/// series lists takes `series_all`'s path, for its error.
fn borrowed_series<'a>(args: &'a Args, name: &str) -> Option<Vec<&'a Series>> {
    let mut out = Vec::new();
    for v in args.all(name) {
        match v {
            Value::SeriesList(list) => out.extend(list),
            _ => return None,
        }
    }
    Some(out)
}

fn list(series: Option<Series>) -> Value {
    Value::SeriesList(series.into_iter().collect())
}

fn aggregate(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let series = args.series("seriesList")?;
    let func = func_arg(&args, "func")?;
    let xff = args.opt_float("xFilesFactor")?;
    Ok(list(aggregate_list(ctx, "aggregate", &series, &func, xff)?))
}

fn shorthand_run(ctx: &Context<'_>, mut args: Args, func: &str) -> Result<Value, QueryError> {
    if let Some(series) = borrowed_series(&args, "seriesLists") {
        return Ok(list(aggregate_list(
            ctx,
            args.function(),
            &series,
            func,
            None,
        )?));
    }
    let series = args.series_all("seriesLists")?;
    Ok(list(aggregate_list(
        ctx,
        args.function(),
        &series,
        func,
        None,
    )?))
}

/// The aggregation of the shorthands [`fold_paths`] may run while reading: those that need each
/// value once (stddev makes two passes; multiplySeries hands a lone series back as it is).
fn foldable(def: &FunctionDef) -> Option<&'static str> {
    let func = match def.name {
        "sum" | "sumSeries" => "sum",
        "avg" | "averageSeries" => "average",
        "minSeries" => "min",
        "maxSeries" => "max",
        "diffSeries" => "diff",
        "rangeOfSeries" => "rangeOf",
        _ => return None,
    };
    // Only when the registry resolved the name to this module's shorthand (FUNCTIONS is a
    // const, so its entries have no one address to compare).
    FUNCTIONS
        .iter()
        .any(|f| f.name == def.name && f.group == def.group && f.signature == def.signature)
        .then_some(func)
}

/// sumSeries (and the other one-pass shorthands) whose arguments are all plain path
/// expressions: each series is folded into the result as it is read and then dropped, so the
/// request holds one series at a time instead of all of them (a thousand day-long series are
/// 138 MB as `Option<f64>`s). The answer is the one [`aggregate_list`] gives on the fetched
/// list. `Ok(None)` means "evaluate as usual": another function or argument shape, or series of
/// different steps, which normalize must consolidate to a common step before any row is formed
/// (the fetch counters are rolled back before the ordinary evaluation reads them again).
pub(crate) fn fold_paths(
    ctx: &mut Context<'_>,
    def: &FunctionDef,
    call: &crate::query::ast::Call,
) -> Result<Option<Value>, QueryError> {
    let Some(raw_func) = foldable(def) else {
        return Ok(None);
    };
    if call.args.is_empty() || !call.kwargs.is_empty() {
        return Ok(None);
    }
    let mut paths = Vec::with_capacity(call.args.len());
    for arg in &call.args {
        match arg {
            Expr::Path(p) => paths.push(p.as_str()),
            _ => return Ok(None),
        }
    }
    let (func, agg) = agg_func(def.name, raw_func)?;
    let Some(mut fold) = ColumnFold::new(agg) else {
        return Ok(None);
    };
    let before = ctx.fetched();
    // (start, end, step) so far; with one step throughout, normalize's bounds are the earliest
    // start and the latest end.
    let mut bounds: Option<(i64, i64, i64)> = None;
    let mut tags: Option<Tags> = None;
    let mut expressions: Vec<String> = Vec::new();
    for path in paths {
        let complete = ctx.fetch_each(path, &mut |s: Series| {
            match &mut bounds {
                None => bounds = Some((s.start, s.end, s.step)),
                Some((_, _, step)) if *step != s.step => return Ok(false),
                Some((start, end, _)) => {
                    *start = (*start).min(s.start);
                    *end = (*end).max(s.end);
                }
            }
            match &mut tags {
                None => tags = Some(s.tags.clone()),
                Some(t) => t.retain(|k, v| s.tags.get(k) == Some(v)),
            }
            if !expressions.contains(&s.path_expression) {
                expressions.push(s.path_expression.clone());
            }
            fold.add(&s.values);
            Ok(true)
        })?;
        if !complete {
            ctx.set_fetched(before);
            return Ok(None);
        }
    }
    let Some((start, mut end, step)) = bounds else {
        return Ok(Some(Value::SeriesList(Vec::new())));
    };
    if step > 0 {
        end -= (end - start).rem_euclid(step);
    }
    let xff = ctx.x_files_factor;
    let name = format!("{func}Series({})", expressions.join(","));
    let mut tags = tags.unwrap_or_default();
    tags.entry("name".to_string())
        .or_insert_with(|| name.clone());
    tags.insert("aggregatedBy".to_string(), func);
    let mut out = Series::new(name, start, end, step, fold.finish(xff), xff);
    out.tags = tags;
    Ok(Some(Value::SeriesList(vec![out])))
}

fn sum_series(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    shorthand_run(ctx, args, "sum")
}

fn average_series(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    shorthand_run(ctx, args, "average")
}

fn min_series(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    shorthand_run(ctx, args, "min")
}

fn max_series(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    shorthand_run(ctx, args, "max")
}

fn diff_series(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    shorthand_run(ctx, args, "diff")
}

fn stddev_series(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    shorthand_run(ctx, args, "stddev")
}

fn range_of_series(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    shorthand_run(ctx, args, "rangeOf")
}

fn multiply_series(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    // graphite-web hands a lone series back untouched (its legacy behaviour).
    if let [Value::SeriesList(only)] = args.all("seriesLists") {
        if only.len() == 1 {
            return Ok(Value::SeriesList(only.clone()));
        }
    }
    if let Some(series) = borrowed_series(&args, "seriesLists") {
        return Ok(list(aggregate_list(
            ctx,
            "multiplySeries",
            &series,
            "multiply",
            None,
        )?));
    }
    let series = args.series_all("seriesLists")?;
    Ok(list(aggregate_list(
        ctx,
        "multiplySeries",
        &series,
        "multiply",
        None,
    )?))
}

// ---------------------------------------------------------------------------------------------
// pairwise lists

fn aggregate_pairs(
    ctx: &Context<'_>,
    function: &str,
    first: Vec<Series>,
    second: Vec<Series>,
    raw_func: &str,
    xff: Option<f64>,
) -> Result<Value, QueryError> {
    if first.len() != second.len() {
        return Err(QueryError::bad(format!(
            "{function}: seriesListFirstPos and seriesListSecondPos must have the same length \
             (got {} and {})",
            first.len(),
            second.len()
        )));
    }
    let mut out = Vec::with_capacity(first.len());
    for (a, b) in first.into_iter().zip(second) {
        let name_tail = format!("Series({},{})", a.name, b.name);
        if let Some(mut result) = aggregate_list(ctx, function, &[a, b], raw_func, xff)? {
            // Only the legend changes; tags and path expression keep the aggregate's name.
            let cut = result.name.find("Series(").unwrap_or(result.name.len());
            result.name = format!("{}{name_tail}", &result.name[..cut]);
            out.push(result);
        }
    }
    Ok(Value::SeriesList(out))
}

fn aggregate_series_lists(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let first = args.series("seriesListFirstPos")?;
    let second = args.series("seriesListSecondPos")?;
    let func = func_arg(&args, "func")?;
    let xff = args.opt_float("xFilesFactor")?;
    aggregate_pairs(ctx, "aggregateSeriesLists", first, second, &func, xff)
}

fn pairs_run(ctx: &Context<'_>, mut args: Args, func: &str) -> Result<Value, QueryError> {
    let first = args.series("seriesListFirstPos")?;
    let second = args.series("seriesListSecondPos")?;
    aggregate_pairs(ctx, args.function(), first, second, func, None)
}

fn sum_series_lists(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    pairs_run(ctx, args, "sum")
}

fn diff_series_lists(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    pairs_run(ctx, args, "diff")
}

fn multiply_series_lists(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    pairs_run(ctx, args, "multiply")
}

/// One quotient series of divideSeries / divideSeriesLists.
fn quotient(ctx: &Context<'_>, dividend: &Series, divisor: &Series) -> Option<Series> {
    let name = format!("divideSeries({},{})", dividend.name, divisor.name);
    let norm = normalize([dividend, divisor])?;
    let values = norm
        .rows()
        .iter()
        .map(|row| safe_div(row[0], row[1]))
        .collect();
    Some(Series::new(
        name,
        norm.start,
        norm.end,
        norm.step,
        values,
        ctx.x_files_factor,
    ))
}

fn divide_series(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let dividends = args.series("dividendSeriesList")?;
    let divisors = args.series("divisorSeries")?;
    match divisors.as_slice() {
        [] => {
            // graphite-web blanks the dividends in place and renames them; tags stay.
            let out = dividends
                .into_iter()
                .map(|mut s| {
                    s.name = format!("divideSeries({},MISSING)", s.name);
                    s.path_expression = s.name.clone();
                    s.values.iter_mut().for_each(|v| *v = None);
                    s
                })
                .collect();
            Ok(Value::SeriesList(out))
        }
        [divisor] => Ok(Value::SeriesList(
            dividends
                .iter()
                .filter_map(|d| quotient(ctx, d, divisor))
                .collect(),
        )),
        more => Err(QueryError::bad(format!(
            "divideSeries: the second argument must reference exactly 1 series (got {})",
            more.len()
        ))),
    }
}

fn divide_series_lists(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let dividends = args.series("dividendSeriesList")?;
    let divisors = args.series("divisorSeriesList")?;
    if dividends.len() != divisors.len() {
        return Err(QueryError::bad(format!(
            "divideSeriesLists: dividendSeriesList and divisorSeriesList must have the same \
             length (got {} and {})",
            dividends.len(),
            divisors.len()
        )));
    }
    Ok(Value::SeriesList(
        dividends
            .iter()
            .zip(&divisors)
            .filter_map(|(d, q)| quotient(ctx, d, q))
            .collect(),
    ))
}

// ---------------------------------------------------------------------------------------------
// countSeries, percentileOfSeries

fn count_series(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    if args.all("seriesLists").is_empty() {
        // Without arguments graphite-web draws constantLine(0): three points from `from` to
        // `until`, named "0".
        let (start, end) = (ctx.from, ctx.until);
        let step = ((end - start) as f64 / 2.0) as i64;
        let mut s = Series::new(
            "0",
            start,
            end,
            step,
            vec![Some(0.0); 3],
            ctx.x_files_factor,
        );
        s.path_expression = "countSeries()".to_string();
        return Ok(Value::SeriesList(vec![s]));
    }
    let series = args.series_all("seriesLists")?;
    let Some(norm) = normalize(&series) else {
        return Ok(Value::SeriesList(Vec::new()));
    };
    let name = format!("countSeries({})", format_path_expressions(&series));
    let len = norm.values.iter().map(|v| v.len()).max().unwrap_or(0);
    let values = vec![Some(series.len() as f64); len];
    Ok(Value::SeriesList(vec![Series::new(
        name,
        norm.start,
        norm.end,
        norm.step,
        values,
        ctx.x_files_factor,
    )]))
}

/// A boolean argument as graphite-web's validation leaves it: "true"/"false" strings are
/// booleans, anything else is judged by Python truthiness.
fn bool_arg(args: &Args, name: &str, default: bool) -> Result<bool, QueryError> {
    match args.get(name) {
        Some(Value::Str(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::Str(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => args.bool(name, default),
    }
}

/// graphite-web's `_getPercentile` (the NIST method): an actual value of the row unless
/// interpolating. Percentiles past the last value fail as graphite-web's indexing does.
fn percentile(row: &[Option<f64>], n: f64, interpolate: bool) -> Result<Option<f64>, QueryError> {
    let mut sorted: Vec<f64> = row.iter().flatten().copied().collect();
    if sorted.is_empty() {
        return Ok(None);
    }
    crate::query::sort::sort_floats(&mut sorted);
    let len = sorted.len();
    let fractional_rank = (n / 100.0) * (len + 1) as f64;
    if !fractional_rank.is_finite() {
        return Err(QueryError::bad(format!(
            "percentileOfSeries: percentile {} is out of range",
            float_repr(n)
        )));
    }
    let mut rank = fractional_rank.trunc() as usize;
    let rank_fraction = fractional_rank - rank as f64;
    if !interpolate {
        rank = rank.saturating_add(rank_fraction.ceil() as usize);
    }
    let out_of_range = || {
        QueryError::bad(format!(
            "percentileOfSeries: percentile {} is past the last of {len} values",
            float_repr(n)
        ))
    };
    let mut value = if rank == 0 {
        sorted[0]
    } else if rank - 1 == len {
        sorted[len - 1]
    } else {
        *sorted.get(rank - 1).ok_or_else(out_of_range)?
    };
    if interpolate && rank != len {
        let next = *sorted.get(rank).ok_or_else(out_of_range)?;
        value += rank_fraction * (next - value);
    }
    Ok(Some(value))
}

fn percentile_of_series(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let series = args.series("seriesList")?;
    let n = args.opt_float("n")?.unwrap_or(f64::NAN);
    let interpolate = bool_arg(&args, "interpolate", false)?;
    if n.is_nan() || n <= 0.0 {
        return Err(QueryError::bad(
            "percentileOfSeries: the requested percent must be greater than 0",
        ));
    }
    let Some(norm) = normalize(&series) else {
        return Ok(Value::SeriesList(Vec::new()));
    };
    let name = format!(
        "percentileOfSeries({},{})",
        series[0].path_expression,
        printf_g(n, 6)
    );
    let values = norm
        .rows()
        .iter()
        .map(|row| percentile(row, n, interpolate))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Value::SeriesList(vec![Series::new(
        name,
        norm.start,
        norm.end,
        norm.step,
        values,
        ctx.x_files_factor,
    )]))
}

// ---------------------------------------------------------------------------------------------
// grouping

/// The positions `*WithWildcards` leave out: integral numbers (Python compares `1 == 1.0`).
fn positions(function: &str, values: &[Value]) -> Result<Vec<i64>, QueryError> {
    let mut out = Vec::new();
    for v in values {
        match v {
            Value::Int(i) => out.push(*i),
            Value::Bool(b) => out.push(*b as i64),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() => out.push(*f as i64),
            // A string or fractional position never equals a node index.
            Value::Float(_) | Value::Str(_) | Value::None => {}
            Value::SeriesList(_) => {
                return Err(QueryError::bad(format!(
                    "{function}: positions must be node numbers, got a series list"
                )))
            }
        }
    }
    Ok(out)
}

/// Groups in first-seen order.
fn group_by<T>(
    items: Vec<T>,
    mut key: impl FnMut(&T) -> Result<String, QueryError>,
) -> GroupsOf<T> {
    let mut keys: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<T>> = HashMap::new();
    for item in items {
        let k = key(&item)?;
        match groups.get_mut(&k) {
            Some(g) => g.push(item),
            None => {
                keys.push(k.clone());
                groups.insert(k, vec![item]);
            }
        }
    }
    Ok((keys, groups))
}

type GroupsOf<T> = Result<(Vec<String>, HashMap<String, Vec<T>>), QueryError>;

fn with_wildcards(
    ctx: &Context<'_>,
    function: &str,
    series: Vec<Series>,
    func: &str,
    position_values: &[Value],
) -> Result<Value, QueryError> {
    let positions = positions(function, position_values)?;
    let (keys, mut groups) = group_by(series, |s| {
        Ok(s.name
            .split('.')
            .enumerate()
            .filter(|(i, _)| !positions.contains(&(*i as i64)))
            .map(|(_, node)| node)
            .collect::<Vec<_>>()
            .join("."))
    })?;
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let group = groups.remove(&key).unwrap_or_default();
        if let Some(mut s) = aggregate_list(ctx, function, &group, func, None)? {
            s.name = key;
            out.push(s);
        }
    }
    Ok(Value::SeriesList(out))
}

fn aggregate_with_wildcards(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let series = args.series("seriesList")?;
    let func = func_arg(&args, "func")?;
    let positions = args.all("position").to_vec();
    with_wildcards(ctx, "aggregateWithWildcards", series, &func, &positions)
}

fn wildcards_run(ctx: &Context<'_>, mut args: Args, func: &str) -> Result<Value, QueryError> {
    let series = args.series("seriesList")?;
    let positions = args.all("position").to_vec();
    with_wildcards(ctx, args.function(), series, func, &positions)
}

fn sum_series_with_wildcards(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    wildcards_run(ctx, args, "sum")
}

fn average_series_with_wildcards(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    wildcards_run(ctx, args, "average")
}

fn multiply_series_with_wildcards(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    wildcards_run(ctx, args, "multiply")
}

/// The first path expression inside a name such as `sumSeries(a.b.*,c)` (graphite-web's
/// `_getFirstPathExpression`): the first argument of each call, followed down.
fn first_path_expression(name: &str) -> Option<String> {
    let mut expr = crate::query::parser::parse(name).ok()?;
    loop {
        match expr {
            Expr::Path(p) => return Some(p),
            Expr::Call(call) => expr = call.args.into_iter().next()?,
            _ => return None,
        }
    }
}

/// graphite-web's `getNodeOrTag`: an integral number picks a node of the name (without its
/// tags; negative numbers count from the end), anything else, or a node that does not exist,
/// names a tag (empty when missing).
fn node_or_tag(
    function: &str,
    series: &Series,
    n: &Value,
    path: Option<&str>,
) -> Result<String, QueryError> {
    let index = match n {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        Value::Float(f) if f.is_infinite() => {
            return Err(QueryError::bad(format!(
                "{function}: node {} is not a node number or a tag",
                float_repr(*f)
            )))
        }
        Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
        Value::Float(_) | Value::Str(_) => None,
        Value::None | Value::SeriesList(_) => {
            return Err(QueryError::bad(format!(
                "{function}: nodes must be node numbers or tag names, got {}",
                n.type_name()
            )))
        }
    };
    if let Some(i) = index {
        let text = match path {
            Some(p) if !p.is_empty() => p,
            _ => series.name.as_str(),
        };
        let bare = text.split(';').next().unwrap_or("");
        let nodes: Vec<&str> = bare.split('.').collect();
        let len = nodes.len() as i64;
        let at = if i < 0 { i + len } else { i };
        if (0..len).contains(&at) {
            return Ok(nodes[at as usize].to_string());
        }
    }
    let tag = match n {
        Value::Str(s) => s.clone(),
        Value::Float(f) => float_repr(*f),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    };
    Ok(series.tags.get(&tag).cloned().unwrap_or_default())
}

/// graphite-web's `aggKey`: the nodes or tags joined by `.`, read from the first path
/// expression when the name looks like a function call.
pub(crate) fn agg_key(
    function: &str,
    series: &Series,
    nodes: &[Value],
) -> Result<String, QueryError> {
    let path = if series.name.ends_with(')') {
        first_path_expression(&series.name)
    } else {
        None
    };
    let parts = nodes
        .iter()
        .map(|n| node_or_tag(function, series, n, path.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(parts.join("."))
}

/// groupByNodes' callback applied to one group: a series function called with the group (the
/// first series it returns), or else an aggregation.
fn apply_callback(
    ctx: &mut Context<'_>,
    function: &str,
    callback: &str,
    group: Vec<Series>,
) -> Result<Series, QueryError> {
    if let Some(def) = super::lookup(callback) {
        let args = Args::bind(def.name, def.params, vec![Value::SeriesList(group)], vec![])?;
        return match (def.run)(ctx, args)? {
            Value::SeriesList(list) => list.into_iter().next().ok_or_else(|| {
                QueryError::bad(format!(
                    "{function}: callback {callback} returned no series for a group"
                ))
            }),
            other => Err(QueryError::bad(format!(
                "{function}: callback {callback} returned a {}, not series",
                other.type_name()
            ))),
        };
    }
    aggregate_list(ctx, function, &group, callback, None)?
        .ok_or_else(|| QueryError::Internal(format!("{function}: empty group")))
}

fn group_by_nodes_impl(
    ctx: &mut Context<'_>,
    function: &str,
    series: Vec<Series>,
    callback: &Value,
    nodes: &[Value],
) -> Result<Value, QueryError> {
    let (keys, mut groups) = group_by(series, |s| agg_key(function, s, nodes))?;
    if keys.is_empty() {
        return Ok(Value::SeriesList(Vec::new()));
    }
    let Value::Str(callback) = callback else {
        return Err(QueryError::bad(format!(
            "{function}: callback must be the name of an aggregation or series function, got {} {}",
            callback.type_name(),
            callback.python_repr()
        )));
    };
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let group = groups.remove(&key).unwrap_or_default();
        let mut s = apply_callback(ctx, function, callback, group)?;
        s.name = key;
        out.push(s);
    }
    Ok(Value::SeriesList(out))
}

fn group_by_node(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let series = args.series("seriesList")?;
    let node = args.get("nodeNum").cloned().unwrap_or(Value::None);
    let callback = match args.get("callback") {
        None | Some(Value::None) => Value::Str("average".to_string()),
        Some(v) => v.clone(),
    };
    group_by_nodes_impl(ctx, "groupByNode", series, &callback, &[node])
}

fn group_by_nodes(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let series = args.series("seriesList")?;
    let callback = args.get("callback").cloned().unwrap_or(Value::None);
    let nodes = args.all("nodes").to_vec();
    group_by_nodes_impl(ctx, "groupByNodes", series, &callback, &nodes)
}

// ---------------------------------------------------------------------------------------------
// asPercent

/// `safeMul(safeDiv(v, total), 100.0)`.
fn percent(v: Option<f64>, total: Option<f64>) -> Option<f64> {
    safe_div(v, total).map(|q| q * 100.0)
}

/// A number given as asPercent's total, with the text graphite-web names the result with.
fn number_total(function: &str, total: &Value) -> Result<(Option<f64>, String), QueryError> {
    match total {
        Value::Int(i) => Ok((Some(*i as f64), i.to_string())),
        Value::Float(f) => Ok((Some(*f), float_repr(*f))),
        // Python divides by True as by 1, and `False in (0, None)` makes the quotient None.
        Value::Bool(true) => Ok((Some(1.0), "True".to_string())),
        Value::Bool(false) => Ok((None, "False".to_string())),
        other => Err(QueryError::bad(format!(
            "{function}: total must be a number, a series list or None, got {} {}",
            other.type_name(),
            other.python_repr()
        ))),
    }
}

/// A percentage series over the given bounds.
fn percent_series(
    ctx: &Context<'_>,
    name: String,
    (start, end, step): (i64, i64, i64),
    values: Vec<Option<f64>>,
) -> Series {
    Series::new(name, start, end, step, values, ctx.x_files_factor)
}

/// `series1` against its total, normalized as a pair.
fn pair_percent(ctx: &Context<'_>, series: &Series, total: &Series) -> (Series, (i64, i64, i64)) {
    let name = format!("asPercent({},{})", series.name, total.name);
    // Both are non-empty, so normalize has bounds.
    let norm = normalize([series, total]).unwrap_or(Normalized {
        start: series.start,
        end: series.end,
        step: series.step,
        values: vec![Cow::Owned(Vec::new()), Cow::Owned(Vec::new())],
    });
    let values = norm.rows().iter().map(|r| percent(r[0], r[1])).collect();
    let b = (norm.start, norm.end, norm.step);
    (percent_series(ctx, name, b, values), b)
}

/// The sum of a group of totals as asPercent builds it (no xFilesFactor, plain safeSum).
fn summed(ctx: &Context<'_>, group: &[Series]) -> Option<Series> {
    let norm = normalize(group)?;
    let name = format!("sumSeries({})", format_path_expressions(group));
    let values = norm.rows().iter().map(|r| safe_sum(r)).collect();
    Some(Series::new(
        name,
        norm.start,
        norm.end,
        norm.step,
        values,
        ctx.x_files_factor,
    ))
}

fn as_percent(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let function = args.function();
    let series = args.series("seriesList")?;
    let total = match args.get("total").cloned() {
        None | Some(Value::None) => Total::None,
        Some(Value::SeriesList(list)) => Total::List(list),
        Some(v) => Total::Value(v),
    };
    let nodes = args.all("nodes").to_vec();
    // graphite-web normalizes the list first: nothing to normalize is an empty answer.
    let Some(overall) = bounds(&series) else {
        return Ok(Value::SeriesList(Vec::new()));
    };
    if !nodes.is_empty() {
        return as_percent_by_nodes(ctx, function, series, total, &nodes, overall.2);
    }
    let mut step_all = overall.2;
    let (total_values, total_text): (Vec<Option<f64>>, String) = match &total {
        Total::None => (
            normalize(&series)
                .map(|norm| norm.rows().iter().map(|r| safe_sum(r)).collect())
                .unwrap_or_default(),
            format!("sumSeries({})", format_path_expressions(&series)),
        ),
        Total::List(list) if list.len() != 1 && list.len() != series.len() => {
            return Err(QueryError::bad(format!(
                "{function}: the total must be missing, a number, one series, or as many series \
                 as the first argument ({} against {})",
                list.len(),
                series.len()
            )));
        }
        Total::List(list) if list.len() == 1 => {
            // normalize([seriesList, total]) re-groups the series with the total's step too.
            let t = &list[0];
            step_all = bounds(series.iter().chain([t])).map_or(step_all, |b| b.2);
            (values_at(t, step_all).into_owned(), t.name.clone())
        }
        // As many totals as series: paired below.
        Total::List(_) => (Vec::new(), String::new()),
        Total::Value(v) => {
            let (number, text) = number_total(function, v)?;
            (vec![number; series[0].values.len()], text)
        }
    };
    if let Total::List(list) = &total {
        if list.len() == series.len() {
            // Paired by name order, each pair normalized on its own.
            let mut a: Vec<&Series> = series.iter().collect();
            let mut b: Vec<&Series> = list.iter().collect();
            a.sort_by(|x, y| x.name.cmp(&y.name));
            b.sort_by(|x, y| x.name.cmp(&y.name));
            let out = a
                .into_iter()
                .zip(b)
                .map(|(s, t)| pair_percent(ctx, s, t).0)
                .collect();
            return Ok(Value::SeriesList(out));
        }
    }
    let mut out = Vec::with_capacity(series.len());
    for s in &series {
        let values = values_at(s, step_all);
        let len = values.len().max(total_values.len());
        let result = (0..len)
            .map(|i| {
                percent(
                    values.get(i).copied().flatten(),
                    total_values.get(i).copied().flatten(),
                )
            })
            .collect();
        let text = if total_text.is_empty() {
            &s.path_expression
        } else {
            &total_text
        };
        let name = format!("asPercent({},{text})", s.name);
        // The consolidated values keep the series' own start, end and step, as in graphite-web.
        out.push(percent_series(ctx, name, (s.start, s.end, s.step), result));
    }
    Ok(Value::SeriesList(out))
}

enum Total {
    None,
    List(Vec<Series>),
    Value(Value),
}

fn as_percent_by_nodes(
    ctx: &mut Context<'_>,
    function: &str,
    series: Vec<Series>,
    total: Total,
    nodes: &[Value],
    overall_step: i64,
) -> Result<Value, QueryError> {
    let (mut keys, mut groups) = group_by(series, |s| agg_key(function, s, nodes))?;
    // The bounds of graphite-web's most recent normalize call, which it reuses for series that
    // found no partner.
    let mut last: Option<(i64, i64, i64)> = None;
    let mut totals: HashMap<String, Series> = HashMap::new();
    match total {
        Total::None => {
            for key in &keys {
                let group = groups.get(key).map(Vec::as_slice).unwrap_or_default();
                let t = match group {
                    [one] => one.clone(),
                    _ => {
                        last = bounds(group).or(last);
                        summed(ctx, group).ok_or_else(|| {
                            QueryError::Internal(format!("{function}: empty group"))
                        })?
                    }
                };
                totals.insert(key.clone(), t);
            }
        }
        Total::List(list) => {
            let (total_keys, total_groups) = group_by(list, |s| agg_key(function, s, nodes))?;
            for key in total_keys {
                if !keys.contains(&key) {
                    keys.push(key.clone());
                }
                let group = total_groups
                    .get(&key)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let t = match group {
                    [one] => one.clone(),
                    _ => {
                        last = bounds(group).or(last);
                        summed(ctx, group).ok_or_else(|| {
                            QueryError::Internal(format!("{function}: empty group"))
                        })?
                    }
                };
                totals.insert(key, t);
            }
        }
        Total::Value(_) => {
            return Err(QueryError::bad(format!(
                "{function}: with nodes, the total must be None or a series list"
            )))
        }
    }
    let no_bounds = || {
        QueryError::bad(format!(
            "{function}: no series matched a total, so there are no bounds for the unmatched \
             ones (graphite-web fails here too)"
        ))
    };
    let mut out = Vec::new();
    for key in &keys {
        let Some(group) = groups.remove(key) else {
            let Some(t) = totals.get(key) else { continue };
            let name = format!("asPercent(MISSING,{})", t.name);
            let values = vec![None; t.points().len()];
            out.push(percent_series(
                ctx,
                name,
                last.ok_or_else(no_bounds)?,
                values,
            ));
            continue;
        };
        for s in &group {
            match totals.get(key) {
                None => {
                    let name = format!("asPercent({},MISSING)", s.name);
                    let values = vec![None; values_at(s, overall_step).len()];
                    out.push(percent_series(
                        ctx,
                        name,
                        last.ok_or_else(no_bounds)?,
                        values,
                    ));
                }
                Some(t) => {
                    let (result, b) = pair_percent(ctx, s, t);
                    last = Some(b);
                    out.push(result);
                }
            }
        }
    }
    Ok(Value::SeriesList(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_follows_nist_ranks() {
        let row = [
            Some(15.0),
            Some(20.0),
            None,
            Some(35.0),
            Some(40.0),
            Some(50.0),
        ];
        // rank = 0.3 * 6 = 1.8 -> 2 without interpolation.
        assert_eq!(percentile(&row, 30.0, false).ok(), Some(Some(20.0)));
        // 15 + 0.8 * (20 - 15) with interpolation.
        assert_eq!(percentile(&row, 30.0, true).ok(), Some(Some(19.0)));
        assert_eq!(percentile(&row, 100.0, false).ok(), Some(Some(50.0)));
        assert!(percentile(&row, 100.0, true).is_err());
        assert!(percentile(&row, 150.0, false).is_err());
        assert!(percentile(&row, 1e300, false).is_err());
        assert!(percentile(&row, 1e300, true).is_err());
        assert_eq!(percentile(&row, 1.0, false).ok(), Some(Some(15.0)));
        assert_eq!(percentile(&[None], 50.0, false).ok(), Some(None));
    }

    #[test]
    fn bounds_trim_end_to_whole_steps() {
        let a = Series::new("a", 60, 3660, 60, vec![Some(1.0); 60], 0.0);
        let b = Series::new("b", 300, 3900, 300, vec![Some(1.0); 12], 0.0);
        assert_eq!(bounds([&a, &b]), Some((60, 3660, 300)));
        assert_eq!(values_at(&a, 300).len(), 12);
    }

    /// Series by pattern: `m.*` four series of one step with different starts, lengths, nulls
    /// and tags; `mixed.*` one of them and a 120 s series.
    struct Fixed;

    impl crate::query::eval::SeriesSource for Fixed {
        fn fetch(
            &self,
            pattern: &str,
            _: i64,
            _: i64,
            _: i64,
            xff: f64,
        ) -> Result<Vec<Series>, QueryError> {
            let v = |n: usize, k: f64| -> Vec<Option<f64>> {
                (0..n)
                    .map(|i| (i % 3 != 1).then_some(i as f64 * k - 2.5))
                    .collect()
            };
            let mut out = vec![
                Series::new("m;dc=a;h=1", 0, 600, 60, v(10, 1.5), xff),
                Series::new("m;dc=a;h=2", 60, 600, 60, v(9, -0.1), xff),
                Series::new("m;dc=a;h=3", 0, 480, 60, v(8, 7.0), xff),
                Series::new("m;dc=a;h=4", 0, 660, 60, vec![None; 11], xff),
            ];
            if pattern == "mixed.*" {
                out.truncate(1);
                out.push(Series::new("slow", 0, 600, 120, v(5, 2.0), xff));
            }
            for s in &mut out {
                s.path_expression = pattern.to_string();
            }
            Ok(out)
        }
    }

    /// Folding series as they are read gives what aggregating the fetched list gives, for every
    /// foldable shorthand, and series of different steps take the ordinary path.
    #[test]
    fn folding_while_reading_matches_the_fetched_list() {
        let source = Fixed;
        for target in [
            "sumSeries(m.*)",
            "sum(m.*,m.*)",
            "averageSeries(m.*)",
            "avg(m.*)",
            "minSeries(m.*)",
            "maxSeries(m.*)",
            "diffSeries(m.*)",
            "rangeOfSeries(m.*)",
            "sumSeries(mixed.*)",
            "sumSeries(m.*,mixed.*)",
            "averageSeries(mixed.*,m.*)",
        ] {
            for xff in [0.0, 0.5] {
                let mut ctx = Context::new(0, 600, 600, chrono_tz::UTC, &source);
                ctx.x_files_factor = xff;
                let expr = crate::query::parser::parse(target).expect("parse");
                let Expr::Call(call) = &expr else {
                    panic!("{target} is a call")
                };
                let def = super::super::lookup(&call.name).expect("known");
                let folded = fold_paths(&mut ctx, def, call).expect("fold");
                assert_eq!(ctx.fetched().0 > 0, folded.is_some(), "{target}");
                let mut lists = Vec::new();
                for arg in &call.args {
                    let Expr::Path(p) = arg else { panic!("path") };
                    lists.push(Value::SeriesList(ctx.fetch(p).expect("fetch")));
                }
                let args = Args::bind(def.name, def.params, lists, vec![]).expect("bind");
                let want = (def.run)(&mut ctx, args).expect("run");
                match folded {
                    Some(got) => assert_eq!(got, want, "{target} xff {xff}"),
                    None => assert!(target.contains("mixed"), "{target} was not folded"),
                }
            }
        }
    }

    struct NoSource;

    impl crate::query::eval::SeriesSource for NoSource {
        fn fetch(
            &self,
            _: &str,
            _: i64,
            _: i64,
            _: i64,
            _: f64,
        ) -> Result<Vec<Series>, QueryError> {
            Ok(Vec::new())
        }
    }

    /// Tagged inputs (the render harness has no tagged fetch yet): graphite-web keeps the tags
    /// every input shares, `name` included when it is the same bare metric name.
    #[test]
    fn aggregate_keeps_common_tags() {
        let source = NoSource;
        let ctx = Context::new(0, 600, 600, chrono_tz::UTC, &source);
        let mut a = Series::new(
            "disk.used;dc=ams;host=a",
            0,
            600,
            60,
            vec![Some(1.0); 10],
            0.0,
        );
        let b = Series::new(
            "disk.used;dc=ams;host=b",
            0,
            600,
            60,
            vec![Some(2.0); 10],
            0.0,
        );
        a.path_expression = "seriesByTag('name=disk.used')".to_string();
        let out = aggregate_list(&ctx, "sumSeries", &[a.clone(), b], "sum", None)
            .ok()
            .flatten()
            .map(|s| (s.name, s.tags));
        let mut want = Tags::new();
        want.insert("dc".into(), "ams".into());
        want.insert("name".into(), "disk.used".into());
        want.insert("aggregatedBy".into(), "sum".into());
        assert_eq!(
            out,
            Some((
                "sumSeries(seriesByTag('name=disk.used'),disk.used;dc=ams;host=b)".to_string(),
                want
            ))
        );
        let c = Series::new("cpu;dc=ams", 0, 600, 60, vec![Some(2.0); 10], 0.0);
        let tags = aggregate_list(&ctx, "sumSeries", &[a, c], "sum", None)
            .ok()
            .flatten()
            .map(|s| s.tags);
        let mut want = Tags::new();
        want.insert("dc".into(), "ams".into());
        want.insert(
            "name".into(),
            "sumSeries(seriesByTag('name=disk.used'),cpu;dc=ams)".into(),
        );
        want.insert("aggregatedBy".into(), "sum".into());
        assert_eq!(tags, Some(want));
    }

    /// graphite-web's `xffValues`: a row counts when it has a non-null value and the share of
    /// non-null values reaches the xFilesFactor.
    #[test]
    fn xff_needs_a_value_and_the_share() {
        let sum = |columns: &[&[Option<f64>]], xff| aggregate_columns(AggFunc::Sum, columns, xff);
        assert_eq!(sum(&[&[None], &[None]], 0.0), vec![None]);
        assert_eq!(sum(&[&[Some(1.0)], &[None]], 0.5), vec![Some(1.0)]);
        assert_eq!(sum(&[&[Some(1.0)], &[None], &[None]], 0.5), vec![None]);
    }
}
