//! Filter Series, Filter Data and Sorting: functions that keep, drop, reorder or blank out
//! series by their values or names (highestMax, currentAbove, removeBelowValue, sortByName,
//! grep, ...), as graphite-web 1.1.10 does, stable sorts and None handling included.
//!
//! Values are read as graphite-web iterates a series (consolidated when `valuesPerPoint` is
//! above one). Arguments pass graphite-web's parameter validation first, which converts them
//! (a float parameter given `5` or `"5"` is `5.0`), so names print the converted value.

use super::aggfuncs::{safe_max, safe_min, AggFunc, AGG_FUNC_NAMES};
use super::alias::python_re::PyRegex;
use super::{FunctionDef, Literal, Param, ParamType};
use crate::python::format::{float_repr, printf_g};
use crate::query::error::QueryError;
use crate::query::eval::Context;
use crate::query::series::Series;
use crate::query::sort;
use crate::query::value::{Args, Value};

const SERIES: Param = Param::required("seriesList", ParamType::SeriesList);
const N_INT: Param = Param::required("n", ParamType::Integer);
const N_FLOAT: Param = Param::required("n", ParamType::Float);
const AGG_DEFAULT: Param = Param::optional("func", ParamType::AggFunc)
    .with_default(Literal::Str("average"))
    .options(AGG_FUNC_NAMES);
const REVERSE: Param =
    Param::optional("reverse", ParamType::Boolean).with_default(Literal::Bool(false));

/// A Filter Series entry taking `(seriesList, n)`.
macro_rules! by_n {
    ($name:literal, $n:expr, $desc:literal, $run:expr) => {
        FunctionDef {
            name: $name,
            group: "Filter Series",
            signature: concat!($name, "(seriesList, n)"),
            description: $desc,
            params: &[SERIES, $n],
            run: $run,
        }
    };
}

/// A Filter Data entry taking `(seriesList, n)`.
macro_rules! data_n {
    ($name:literal, $desc:literal, $run:expr) => {
        FunctionDef {
            name: $name,
            group: "Filter Data",
            signature: concat!($name, "(seriesList, n)"),
            description: $desc,
            params: &[SERIES, N_FLOAT],
            run: $run,
        }
    };
}

/// An entry of the given group taking only `(seriesList)`; shared with other function files.
macro_rules! series_only {
    ($group:literal, $name:literal, $desc:literal, $run:expr) => {
        $crate::query::functions::FunctionDef {
            name: $name,
            group: $group,
            signature: concat!($name, "(seriesList)"),
            description: $desc,
            params: &[$crate::query::functions::Param::required(
                "seriesList",
                $crate::query::functions::ParamType::SeriesList,
            )],
            run: $run,
        }
    };
}
pub(crate) use series_only;

pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "highest",
        group: "Filter Series",
        signature: "highest(seriesList, n=1, func='average')",
        description: "Keeps the n series with the highest value of an aggregation function \
                      (average by default) over the range.",
        params: &[SERIES, N_INT, AGG_DEFAULT],
        run: highest,
    },
    FunctionDef {
        name: "lowest",
        group: "Filter Series",
        signature: "lowest(seriesList, n=1, func='average')",
        description: "Keeps the n series with the lowest value of an aggregation function \
                      (average by default) over the range.",
        params: &[SERIES, N_INT, AGG_DEFAULT],
        run: lowest,
    },
    by_n!(
        "highestCurrent",
        N_INT,
        "Keeps the n series whose last non-null value is highest.",
        |c, a| top(c, a, "current", true)
    ),
    by_n!(
        "highestMax",
        N_INT,
        "Keeps the n series with the highest maximum over the range.",
        |c, a| top(c, a, "max", true)
    ),
    by_n!(
        "highestAverage",
        N_INT,
        "Keeps the n series with the highest average over the range.",
        |c, a| top(c, a, "average", true)
    ),
    by_n!(
        "lowestCurrent",
        N_INT,
        "Keeps the n series whose last non-null value is lowest.",
        |c, a| top(c, a, "current", false)
    ),
    by_n!(
        "lowestAverage",
        N_INT,
        "Keeps the n series with the lowest average over the range.",
        |c, a| top(c, a, "average", false)
    ),
    by_n!(
        "currentAbove",
        N_FLOAT,
        "Keeps the series whose last non-null value is above n.",
        |c, a| threshold_filter(c, a, "last", ">")
    ),
    by_n!(
        "currentBelow",
        N_FLOAT,
        "Keeps the series whose last non-null value is at most n (or that have none).",
        |c, a| threshold_filter(c, a, "last", "<=")
    ),
    by_n!(
        "averageAbove",
        N_FLOAT,
        "Keeps the series whose average is above n.",
        |c, a| threshold_filter(c, a, "average", ">")
    ),
    by_n!(
        "averageBelow",
        N_FLOAT,
        "Keeps the series whose average is at most n (or that have no values).",
        |c, a| threshold_filter(c, a, "average", "<=")
    ),
    by_n!(
        "maximumAbove",
        N_FLOAT,
        "Keeps the series whose maximum is above n.",
        |c, a| threshold_filter(c, a, "max", ">")
    ),
    by_n!(
        "maximumBelow",
        N_FLOAT,
        "Keeps the series whose maximum is at most n (or that have no values).",
        |c, a| threshold_filter(c, a, "max", "<=")
    ),
    by_n!(
        "minimumAbove",
        N_FLOAT,
        "Keeps the series whose minimum is above n.",
        |c, a| threshold_filter(c, a, "min", ">")
    ),
    by_n!(
        "minimumBelow",
        N_FLOAT,
        "Keeps the series whose minimum is at most n (or that have no values).",
        |c, a| threshold_filter(c, a, "min", "<=")
    ),
    FunctionDef {
        name: "filterSeries",
        group: "Filter Series",
        signature: "filterSeries(seriesList, func, operator, threshold)",
        description: "Keeps the series for which an aggregation function compared with the \
                      operator to the threshold holds.",
        params: &[
            SERIES,
            Param::required("func", ParamType::AggFunc).options(AGG_FUNC_NAMES),
            Param::required("operator", ParamType::String)
                .options(&["!=", "<", "<=", "=", ">", ">="]),
            Param::required("threshold", ParamType::Float),
        ],
        run: filter_series,
    },
    data_n!(
        "removeBelowValue",
        "Sets values below n to null.",
        |c, a| remove_value(c, a, false)
    ),
    data_n!(
        "removeAboveValue",
        "Sets values above n to null.",
        |c, a| remove_value(c, a, true)
    ),
    data_n!(
        "removeBelowPercentile",
        "Sets values below the series' nth percentile to null.",
        |c, a| remove_percentile(c, a, false)
    ),
    data_n!(
        "removeAbovePercentile",
        "Sets values above the series' nth percentile to null.",
        |c, a| remove_percentile(c, a, true)
    ),
    FunctionDef {
        name: "removeEmptySeries",
        group: "Filter Series",
        signature: "removeEmptySeries(seriesList, xFilesFactor=None)",
        description: "Drops series without values, or with a smaller fraction of non-null \
                      values than xFilesFactor.",
        params: &[SERIES, Param::optional("xFilesFactor", ParamType::Float)],
        run: remove_empty_series,
    },
    by_n!("limit", N_INT, "Keeps the first n series.", limit),
    by_n!(
        "mostDeviant",
        N_INT,
        "Keeps the n series whose values vary most around their mean (largest variance).",
        most_deviant
    ),
    by_n!(
        "averageOutsidePercentile",
        N_FLOAT,
        "Keeps the series whose average lies outside the nth (and 100-nth) percentile of all \
         the averages.",
        average_outside_percentile
    ),
    by_n!(
        "removeBetweenPercentile",
        N_FLOAT,
        "Keeps the series with at least one value outside the nth (and 100-nth) percentile of \
         the values of all series at that time.",
        remove_between_percentile
    ),
    FunctionDef {
        name: "exclude",
        group: "Filter Series",
        signature: "exclude(seriesList, pattern)",
        description: "Drops the series whose name matches a regular expression (Python syntax).",
        params: &[SERIES, Param::required("pattern", ParamType::String)],
        run: |c, a| grep_like(c, a, false),
    },
    FunctionDef {
        name: "grep",
        group: "Filter Series",
        signature: "grep(seriesList, pattern)",
        description: "Keeps the series whose name matches a regular expression (Python syntax).",
        params: &[SERIES, Param::required("pattern", ParamType::String)],
        run: |c, a| grep_like(c, a, true),
    },
    FunctionDef {
        name: "unique",
        group: "Filter Series",
        signature: "unique(*seriesLists)",
        description: "Concatenates the lists, keeping only the first series of each name.",
        params: &[Param::required("seriesLists", ParamType::SeriesList).multiple()],
        run: unique,
    },
    FunctionDef {
        name: "sortBy",
        group: "Sorting",
        signature: "sortBy(seriesList, func='average', reverse=False)",
        description: "Sorts the series by an aggregation function (average by default), \
                      ascending unless reverse.",
        params: &[SERIES, AGG_DEFAULT, REVERSE],
        run: sort_by,
    },
    FunctionDef {
        name: "sortByName",
        group: "Sorting",
        signature: "sortByName(seriesList, natural=False, reverse=False)",
        description: "Sorts the series by name, alphabetically or with numbers compared by \
                      value (natural).",
        params: &[
            SERIES,
            Param::optional("natural", ParamType::Boolean).with_default(Literal::Bool(false)),
            REVERSE,
        ],
        run: sort_by_name,
    },
    series_only!(
        "Sorting",
        "sortByTotal",
        "Sorts the series by the sum of their values, largest first.",
        |c, a| sort_with(c, a, "sum", true)
    ),
    series_only!(
        "Sorting",
        "sortByMaxima",
        "Sorts the series by their maximum, largest first.",
        |c, a| sort_with(c, a, "max", true)
    ),
    series_only!(
        "Sorting",
        "sortByMinima",
        "Drops series whose maximum is not above zero and sorts the rest by their minimum, \
         smallest first.",
        sort_by_minima
    ),
];

// ---- arguments, after graphite-web's parameter validation ----

/// A float parameter: `float(value)` as graphite-web's validation applies it (numbers,
/// booleans and numeric strings); None when absent or None.
pub fn py_float(args: &Args, name: &str) -> Result<Option<f64>, QueryError> {
    match args.get(name) {
        Some(Value::Str(s)) => match crate::python::number::parse_float(s) {
            Some(f) => Ok(Some(f)),
            None => Err(arg_error(args, name, "a number", args.get(name))),
        },
        _ => args.opt_float(name),
    }
}

/// A required float parameter.
pub fn req_float(args: &Args, name: &str) -> Result<f64, QueryError> {
    py_float(args, name)?.ok_or_else(|| arg_error(args, name, "a number", args.get(name)))
}

/// An integer parameter: `int(value)` unless it is a float, as graphite-web's validation does;
/// None when absent or None.
pub fn py_int(args: &Args, name: &str) -> Result<Option<i64>, QueryError> {
    match args.get(name) {
        Some(Value::Str(s)) => match crate::python::number::parse_int(s) {
            Some(i) => Ok(Some(i)),
            None => Err(arg_error(args, name, "an integer", args.get(name))),
        },
        _ => args.opt_int(name),
    }
}

/// A boolean parameter as graphite-web's validation and then Python's truthiness see it:
/// `"true"`/`"false"` in any case are booleans, other values count by truthiness.
pub fn py_bool(args: &Args, name: &str, default: bool) -> bool {
    match args.get(name) {
        None => default,
        Some(Value::Str(s)) => match s.to_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => !s.is_empty(),
        },
        Some(_) => args.bool(name, default).unwrap_or(default),
    }
}

fn arg_error(args: &Args, name: &str, want: &str, got: Option<&Value>) -> QueryError {
    let got = got.unwrap_or(&Value::None);
    QueryError::bad(format!(
        "{}: argument {name:?} must be {want}, got {} {}",
        args.function(),
        got.type_name(),
        got.python_repr()
    ))
}

/// How many items Python's `list[:n]` keeps of `len`.
pub fn python_prefix_len(len: usize, n: i64) -> usize {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let end = if n < 0 {
        len_i.saturating_add(n).max(0)
    } else {
        n.min(len_i)
    };
    usize::try_from(end).unwrap_or(0)
}

/// graphite-web's `keyFunc`: the aggregate, with None sorting as -inf.
fn sort_key(func: AggFunc, series: &Series) -> f64 {
    func.apply(&series.points()).unwrap_or(f64::NEG_INFINITY)
}

/// `list.sort(key=..., reverse=...)`: keys computed once, compared with `lt` (Python's `<`)
/// in CPython's own sort, so keys `<` cannot order (NaN) end up where graphite-web puts them.
fn sort_by_key<K>(
    list: Vec<Series>,
    key: impl Fn(&Series) -> K,
    lt: impl Fn(&K, &K) -> bool,
    reverse: bool,
) -> Vec<Series> {
    let keys: Vec<K> = list.iter().map(key).collect();
    let mut order: Vec<usize> = (0..list.len()).collect();
    let by_key = |a: &usize, b: &usize| lt(&keys[*a], &keys[*b]);
    if reverse {
        sort::sort_by_lt_reversed(&mut order, by_key);
    } else {
        sort::sort_by_lt(&mut order, by_key);
    }
    let mut slots: Vec<Option<Series>> = list.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect()
}

fn agg_arg(args: &Args, name: &str, default: &'static str) -> Result<AggFunc, QueryError> {
    let func = agg_name(args, name, default)?;
    AggFunc::parse(&func).map_err(|e| QueryError::bad(format!("{}: {}", args.function(), e)))
}

/// An aggregation function's name; an explicit None reaches graphite-web's `getAggFunc`
/// (validation lets None through) and is refused there.
fn agg_name(args: &Args, name: &str, default: &'static str) -> Result<String, QueryError> {
    if let Some(Value::None) = args.get(name) {
        return Err(QueryError::bad(format!(
            "{}: Unsupported aggregation function: None",
            args.function()
        )));
    }
    args.str(name, default)
}

// ---- highest / lowest ----

fn highest(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let func = agg_name(&args, "func", "average")?;
    top_n(ctx, args, &func, true)
}

fn lowest(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let func = agg_name(&args, "func", "average")?;
    top_n(ctx, args, &func, false)
}

fn top(ctx: &mut Context<'_>, args: Args, func: &str, highest: bool) -> Result<Value, QueryError> {
    top_n(ctx, args, func, highest)
}

/// `seriesList.sort(key=keyFunc(aggFunc), reverse=highest)[:int(n)]`.
fn top_n(
    _ctx: &mut Context<'_>,
    mut args: Args,
    func: &str,
    highest: bool,
) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let func =
        AggFunc::parse(func).map_err(|e| QueryError::bad(format!("{}: {}", args.function(), e)))?;
    let n = top_count(&args)?;
    let mut sorted = sort_by_key(list, |s| sort_key(func, s), |a, b| a < b, highest);
    sorted.truncate(python_prefix_len(sorted.len(), n));
    Ok(Value::SeriesList(sorted))
}

/// `int(n)`: an integer, or (when validation refused a float and graphite-web went on with it)
/// a float truncated toward zero.
fn top_count(args: &Args) -> Result<i64, QueryError> {
    match args.get("n") {
        Some(Value::Float(f)) if f.is_finite() => Ok(f.trunc() as i64),
        _ => py_int(args, "n")?.ok_or_else(|| arg_error(args, "n", "an integer", args.get("n"))),
    }
}

// ---- value filters ----

/// graphite-web's `operatorFuncs`: None passes `!=`, `<` and `<=`, and fails the others.
fn compare(op: &str, value: Option<f64>, threshold: f64) -> bool {
    match (op, value) {
        ("=", Some(v)) => v == threshold,
        ("!=", Some(v)) => v != threshold,
        (">", Some(v)) => v > threshold,
        (">=", Some(v)) => v >= threshold,
        ("<", Some(v)) => v < threshold,
        ("<=", Some(v)) => v <= threshold,
        ("!=" | "<" | "<=", None) => true,
        _ => false,
    }
}

fn filter_by(list: Vec<Series>, func: AggFunc, op: &str, threshold: f64) -> Vec<Series> {
    list.into_iter()
        .filter(|s| compare(op, func.apply(&s.points()), threshold))
        .collect()
}

fn threshold_filter(
    _ctx: &mut Context<'_>,
    mut args: Args,
    func: &str,
    op: &str,
) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let n = req_float(&args, "n")?;
    let func = AggFunc::parse(func).map_err(|e| QueryError::bad(e.message().to_string()))?;
    Ok(Value::SeriesList(filter_by(list, func, op, n)))
}

fn filter_series(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let func = agg_arg(&args, "func", "average")?;
    let op = args.str("operator", "")?;
    if !matches!(op.as_str(), "=" | "!=" | ">" | ">=" | "<" | "<=") {
        return Err(QueryError::bad(format!(
            "{}: Unsupported operator: {op}",
            args.function()
        )));
    }
    let threshold = req_float(&args, "threshold")?;
    Ok(Value::SeriesList(filter_by(list, func, &op, threshold)))
}

/// Sets to None each value (as iterated) for which `drop` holds, at the same index of the
/// stored values, as graphite-web's `s[index] = None` in its `enumerate(s)` loops does.
fn null_where(series: &mut Series, drop: impl Fn(Option<f64>) -> bool) {
    for (i, v) in series.points().into_iter().enumerate() {
        if drop(v) {
            if let Some(slot) = series.values.get_mut(i) {
                *slot = None;
            }
        }
    }
}

fn remove_value(_ctx: &mut Context<'_>, mut args: Args, above: bool) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let n = req_float(&args, "n")?;
    let fname = args.function();
    for s in &mut list {
        s.name = format!("{fname}({}, {})", s.name, printf_g(n, 6));
        s.path_expression = s.name.clone();
        if above {
            null_where(s, |v| matches!(v, Some(x) if x > n));
        } else {
            null_where(s, |v| match v {
                None => true,
                Some(x) => x < n,
            });
        }
    }
    Ok(Value::SeriesList(list))
}

/// graphite-web's `_getPercentile(points, n)` without interpolation over sorted values; None
/// where graphite-web's indexing fails (it then leaves the series alone).
pub fn percentile(sorted: &[f64], n: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let fractional = (n / 100.0) * (sorted.len() as f64 + 1.0);
    let mut rank = fractional.trunc();
    let fraction = fractional - rank;
    rank += fraction.ceil();
    let rank = rank as i64;
    if rank == 0 {
        return sorted.first().copied();
    }
    if usize::try_from(rank - 1).ok() == Some(sorted.len()) {
        return sorted.last().copied();
    }
    super::alias::python_index(sorted.len(), rank - 1).map(|i| sorted[i])
}

fn remove_percentile(
    _ctx: &mut Context<'_>,
    mut args: Args,
    above: bool,
) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let n = req_float(&args, "n")?;
    let fname = args.function();
    if !n.is_finite() {
        return Err(QueryError::bad(format!(
            "{fname}: argument \"n\" must be a finite number, got {}",
            float_repr(n)
        )));
    }
    for s in &mut list {
        s.name = format!("{fname}({}, {})", s.name, printf_g(n, 6));
        s.path_expression = s.name.clone();
        if n == 0.0 {
            // graphite-web's nPercentile asserts a non-zero percent (a 500 there).
            return Err(QueryError::bad(format!(
                "{fname}: the requested percent must not be 0"
            )));
        }
        let mut sorted: Vec<f64> = s.points().into_iter().flatten().collect();
        if sorted.is_empty() {
            continue;
        }
        // nPercentile's two sorts (see calculate.rs): with NaN the second may move values.
        sort::sort_floats(&mut sorted);
        sort::sort_floats(&mut sorted);
        let Some(p) = percentile(&sorted, n) else {
            continue;
        };
        // nPercentile tags a copy that shares this series' tags.
        s.set_tag("nPercentile", float_repr(n));
        if s.step <= 0 || (s.end - s.start) / s.step <= 0 {
            continue;
        }
        if above {
            null_where(s, |v| matches!(v, Some(x) if x > p));
        } else {
            null_where(s, |v| match v {
                None => true,
                Some(x) => x < p,
            });
        }
    }
    Ok(Value::SeriesList(list))
}

fn remove_empty_series(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let xff = py_float(&args, "xFilesFactor")?.unwrap_or(0.0);
    let kept = list
        .into_iter()
        .filter(|s| {
            // graphite-web counts non-null values as iterated over the stored length.
            let non_null = s.points().iter().flatten().count();
            let total = s.values.len();
            non_null > 0 && total > 0 && non_null as f64 / total as f64 >= xff
        })
        .collect();
    Ok(Value::SeriesList(kept))
}

fn limit(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let n = py_int(&args, "n")?.ok_or_else(|| arg_error(&args, "n", "an integer", None))?;
    list.truncate(python_prefix_len(list.len(), n));
    Ok(Value::SeriesList(list))
}

fn grep_like(_ctx: &mut Context<'_>, mut args: Args, keep: bool) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let pattern = args.opt_str("pattern")?.unwrap_or_default().to_string();
    let re = PyRegex::compile(&pattern)
        .map_err(|e| QueryError::bad(format!("{}: {e}", args.function())))?;
    Ok(Value::SeriesList(
        list.into_iter()
            .filter(|s| re.search(&s.name) == keep)
            .collect(),
    ))
}

fn unique(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let all = args.series_all("seriesLists")?;
    let mut seen = std::collections::HashSet::new();
    Ok(Value::SeriesList(
        all.into_iter()
            .filter(|s| seen.insert(s.name.clone()))
            .collect(),
    ))
}

/// mostDeviant: series ranked by `sum((v - mean)**2) / count` (the variance; series without
/// values are left out), largest first, the first n kept.
fn most_deviant(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let n = py_int(&args, "n")?.ok_or_else(|| arg_error(&args, "n", "an integer", None))?;
    let mut deviants = Vec::new();
    for s in list {
        let values: Vec<f64> = s.points().into_iter().flatten().collect();
        if values.is_empty() {
            continue;
        }
        let mean = crate::query::series::python_sum(&values) / values.len() as f64;
        let squares: Vec<f64> = values.iter().map(|v| (v - mean) * (v - mean)).collect();
        let sigma = crate::query::series::python_sum(&squares) / values.len() as f64;
        deviants.push((sigma, s));
    }
    let (sigmas, series): (Vec<f64>, Vec<Series>) = deviants.into_iter().unzip();
    let mut order: Vec<usize> = (0..series.len()).collect();
    sort::sort_by_lt_reversed(&mut order, |a, b| sigmas[*a] < sigmas[*b]);
    let mut slots: Vec<Option<Series>> = series.into_iter().map(Some).collect();
    let mut sorted: Vec<Series> = order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect();
    sorted.truncate(python_prefix_len(sorted.len(), n));
    Ok(Value::SeriesList(sorted))
}

/// The values of a sorted copy, for `_getPercentile`.
fn sorted_values(values: impl IntoIterator<Item = Option<f64>>) -> Vec<f64> {
    let mut v: Vec<f64> = values.into_iter().flatten().collect();
    sort::sort_floats(&mut v);
    v
}

fn percentile_error(fname: &str) -> QueryError {
    // graphite-web compares None with numbers here and fails (a 500).
    QueryError::bad(format!(
        "{fname}: cannot compare: a series or a percentile has no value"
    ))
}

/// averageOutsidePercentile: with n folded to at least 50, keeps the series whose average is
/// not strictly between the (100-n)th and nth percentiles of all averages.
fn average_outside_percentile(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let mut n = req_float(&args, "n")?;
    let fname = args.function();
    if list.is_empty() {
        return Ok(Value::SeriesList(list));
    }
    if n < 50.0 {
        n = 100.0 - n;
    }
    let averages: Vec<Option<f64>> = list
        .iter()
        .map(|s| super::aggfuncs::safe_avg(&s.points()))
        .collect();
    let sorted = sorted_values(averages.iter().copied());
    let (Some(low), Some(high)) = (percentile(&sorted, 100.0 - n), percentile(&sorted, n)) else {
        return Err(percentile_error(fname));
    };
    let mut kept = Vec::new();
    for (s, avg) in list.into_iter().zip(averages) {
        let avg = avg.ok_or_else(|| percentile_error(fname))?;
        if !(low < avg && avg < high) {
            kept.push(s);
        }
    }
    Ok(Value::SeriesList(kept))
}

/// removeBetweenPercentile: with n folded to at least 50, per time index the (100-n)th and
/// nth percentiles across the series (over the shortest length, as `zip` does), and keeps the
/// series with a value not strictly between them. graphite-web fails on any None value.
fn remove_between_percentile(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let mut n = req_float(&args, "n")?;
    let fname = args.function();
    if n < 50.0 {
        n = 100.0 - n;
    }
    let points: Vec<Vec<Option<f64>>> = list.iter().map(Series::points).collect();
    let columns = points.iter().map(Vec::len).min().unwrap_or(0);
    let mut lows = Vec::with_capacity(columns);
    let mut highs = Vec::with_capacity(columns);
    for i in 0..columns {
        let sorted = sorted_values(points.iter().map(|p| p[i]));
        lows.push(percentile(&sorted, 100.0 - n));
        highs.push(percentile(&sorted, n));
    }
    let mut kept = Vec::new();
    for (s, values) in list.into_iter().zip(&points) {
        let mut outside = false;
        for (i, v) in values.iter().enumerate() {
            let (Some(Some(low)), Some(v)) = (lows.get(i), v) else {
                return Err(percentile_error(fname));
            };
            // Python's chained `low < v < high` stops at a false first comparison.
            let between = *low < *v
                && match highs.get(i) {
                    Some(Some(high)) => v < high,
                    _ => return Err(percentile_error(fname)),
                };
            outside |= !between;
        }
        if outside {
            kept.push(s);
        }
    }
    Ok(Value::SeriesList(kept))
}

// ---- sorting ----

fn sort_by(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let func = agg_arg(&args, "func", "average")?;
    let reverse = py_bool(&args, "reverse", false);
    Ok(Value::SeriesList(sort_by_key(
        list,
        |s| sort_key(func, s),
        |a, b| a < b,
        reverse,
    )))
}

fn sort_with(
    _ctx: &mut Context<'_>,
    mut args: Args,
    func: &str,
    reverse: bool,
) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let func = AggFunc::parse(func).map_err(|e| QueryError::bad(e.message().to_string()))?;
    Ok(Value::SeriesList(sort_by_key(
        list,
        |s| sort_key(func, s),
        |a, b| a < b,
        reverse,
    )))
}

fn sort_by_minima(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let kept: Vec<Series> = list
        .into_iter()
        .filter(|s| safe_max(&s.points()).unwrap_or(0.0) > 0.0)
        .collect();
    Ok(Value::SeriesList(sort_by_key(
        kept,
        |s| safe_min(&s.points()).unwrap_or(f64::NEG_INFINITY),
        |a, b| a < b,
        false,
    )))
}

fn sort_by_name(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let natural = py_bool(&args, "natural", false);
    let reverse = py_bool(&args, "reverse", false);
    let key = |s: &Series| {
        if natural {
            natural_key(&s.name)
        } else {
            s.name.clone()
        }
    };
    // Rust's `str` order is byte order of UTF-8, which is Python's code point order.
    Ok(Value::SeriesList(sort_by_key(
        list,
        key,
        |a, b| a < b,
        reverse,
    )))
}

/// graphite-web's natural sort key: each run of (Unicode) decimal digits replaced by its
/// integer value zero-padded to ten digits (`"{0:010}".format(int(run))`).
pub fn natural_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 16);
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.is_empty() {
            return;
        }
        let trimmed = digits.trim_start_matches('0');
        let value = if trimmed.is_empty() { "0" } else { trimmed };
        for _ in value.len()..10 {
            out.push('0');
        }
        out.push_str(value);
        digits.clear();
    };
    for c in name.chars() {
        match crate::python::text::decimal(c) {
            Some(d) => digits.push(char::from(b'0' + d)),
            None => {
                flush(&mut digits, &mut out);
                out.push(c);
            }
        }
    }
    flush(&mut digits, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_graphite() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert_eq!(percentile(&v, 95.0), Some(5.0));
        assert_eq!(percentile(&v, 10.0), Some(1.0));
        assert_eq!(percentile(&v, 1.0), Some(1.0));
        assert_eq!(percentile(&v, -50.0), Some(2.0));
        assert_eq!(percentile(&v, 300.0), None);
    }

    #[test]
    fn natural() {
        assert_eq!(natural_key("server1"), "server0000000001");
        assert_eq!(natural_key("a007b"), "a0000000007b");
        assert_eq!(natural_key("x12345678901"), "x12345678901");
    }

    #[test]
    fn prefix() {
        assert_eq!(python_prefix_len(5, 2), 2);
        assert_eq!(python_prefix_len(5, -2), 3);
        assert_eq!(python_prefix_len(5, -7), 0);
        assert_eq!(python_prefix_len(5, 9), 5);
    }
}
