//! Calculate: the bucketing and window functions (summarize, smartSummarize, hitcount, the
//! moving-window family, exponentialMovingAverage, stdev, nPercentile). They share graphite-web's
//! window arithmetic and its habit of re-fetching the first argument with an earlier start, so
//! they live together; summarize, smartSummarize and hitcount still report graphite-web's group
//! ("Transform") in `/functions`.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Timelike};

use super::aggfuncs::{safe_avg, AggFunc, AGG_FUNC_NAMES};
use super::{FunctionDef, Literal, Param, ParamType};
use crate::python::format::{float_repr, printf_f, printf_g};
use crate::query::error::QueryError;
use crate::query::eval::Context;
use crate::query::series::Series;
use crate::query::time::{parse_time_offset, utc_offset, Zone};
use crate::query::value::{Args, Value};

const INTERVAL_SUGGESTIONS: &[Literal] = &[
    Literal::Str("10min"),
    Literal::Str("1h"),
    Literal::Str("1d"),
];

const WINDOW_SUGGESTIONS: &[Literal] = &[
    Literal::Int(5),
    Literal::Int(7),
    Literal::Int(10),
    Literal::Str("1min"),
    Literal::Str("5min"),
    Literal::Str("10min"),
    Literal::Str("30min"),
    Literal::Str("1hour"),
];

/// The string options of smartSummarize's `alignTo`; graphite-web also offers False, None and
/// True, which it treats as no alignment.
const ALIGN_TO_OPTIONS: &[&str] = &[
    "days", "hours", "minutes", "months", "seconds", "weeks", "years",
];

const SERIES_LIST: Param = Param::required("seriesList", ParamType::SeriesList);
const INTERVAL: Param =
    Param::required("intervalString", ParamType::Interval).suggestions(INTERVAL_SUGGESTIONS);
const SUM_FUNC: Param = Param::optional("func", ParamType::AggFunc)
    .with_default(Literal::Str("sum"))
    .options(AGG_FUNC_NAMES);
const WINDOW: Param =
    Param::required("windowSize", ParamType::IntOrInterval).suggestions(WINDOW_SUGGESTIONS);
const XFF: Param = Param::optional("xFilesFactor", ParamType::Float);

const SUMMARIZE_PARAMS: &[Param] = &[
    SERIES_LIST,
    INTERVAL,
    SUM_FUNC,
    Param::optional("alignToFrom", ParamType::Boolean).with_default(Literal::Bool(false)),
];
const SMART_SUMMARIZE_PARAMS: &[Param] = &[
    SERIES_LIST,
    INTERVAL,
    SUM_FUNC,
    Param::optional("alignTo", ParamType::String)
        .options(ALIGN_TO_OPTIONS)
        .literal_options(&[Literal::Bool(false), Literal::None, Literal::Bool(true)]),
];
const HITCOUNT_PARAMS: &[Param] = &[
    SERIES_LIST,
    INTERVAL,
    Param::optional("alignToInterval", ParamType::Boolean).with_default(Literal::Bool(false)),
];
const MOVING_WINDOW_PARAMS: &[Param] = &[
    SERIES_LIST,
    WINDOW,
    Param::optional("func", ParamType::AggFunc)
        .with_default(Literal::Str("average"))
        .options(AGG_FUNC_NAMES),
    XFF,
];
const MOVING_PARAMS: &[Param] = &[SERIES_LIST, WINDOW, XFF];
const EMA_PARAMS: &[Param] = &[SERIES_LIST, WINDOW];
const NPERCENTILE_PARAMS: &[Param] = &[SERIES_LIST, Param::required("n", ParamType::Float)];
const STDEV_PARAMS: &[Param] = &[
    SERIES_LIST,
    Param::required("points", ParamType::Integer),
    Param::optional("windowTolerance", ParamType::Float).with_default(Literal::Float(0.1)),
];

pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "summarize",
        group: "Transform",
        signature: "summarize(seriesList, intervalString, func='sum', alignToFrom=False)",
        description: "Aggregates each series into buckets of a fixed interval (sum by default), \
                      aligned to multiples of the interval or, with alignToFrom, to the series start.",
        params: SUMMARIZE_PARAMS,
        run: summarize,
    },
    FunctionDef {
        name: "smartSummarize",
        group: "Transform",
        signature: "smartSummarize(seriesList, intervalString, func='sum', alignTo=None)",
        description: "Aggregates each series into interval buckets starting at the request's \
                      start, optionally first moved back to the start of its year, month, week, \
                      day, hour or minute.",
        params: SMART_SUMMARIZE_PARAMS,
        run: smart_summarize,
    },
    FunctionDef {
        name: "hitcount",
        group: "Transform",
        signature: "hitcount(seriesList, intervalString, alignToInterval=False)",
        description: "Treats values as hits per second and totals the hits falling in each \
                      interval bucket, spreading a point across buckets it overlaps.",
        params: HITCOUNT_PARAMS,
        run: hitcount,
    },
    FunctionDef {
        name: "movingWindow",
        group: "Calculate",
        signature: "movingWindow(seriesList, windowSize, func='average', xFilesFactor=None)",
        description: "Applies an aggregation function to the trailing window (a number of \
                      points or a time interval) ending at each point.",
        params: MOVING_WINDOW_PARAMS,
        run: moving_window,
    },
    FunctionDef {
        name: "movingAverage",
        group: "Calculate",
        signature: "movingAverage(seriesList, windowSize, xFilesFactor=None)",
        description: "The average of the trailing window (points or interval) at each point.",
        params: MOVING_PARAMS,
        run: moving_average,
    },
    FunctionDef {
        name: "movingSum",
        group: "Calculate",
        signature: "movingSum(seriesList, windowSize, xFilesFactor=None)",
        description: "The sum of the trailing window (points or interval) at each point.",
        params: MOVING_PARAMS,
        run: moving_sum,
    },
    FunctionDef {
        name: "movingMedian",
        group: "Calculate",
        signature: "movingMedian(seriesList, windowSize, xFilesFactor=None)",
        description: "The median of the trailing window (points or interval) at each point.",
        params: MOVING_PARAMS,
        run: moving_median,
    },
    FunctionDef {
        name: "movingMin",
        group: "Calculate",
        signature: "movingMin(seriesList, windowSize, xFilesFactor=None)",
        description: "The minimum of the trailing window (points or interval) at each point.",
        params: MOVING_PARAMS,
        run: moving_min,
    },
    FunctionDef {
        name: "movingMax",
        group: "Calculate",
        signature: "movingMax(seriesList, windowSize, xFilesFactor=None)",
        description: "The maximum of the trailing window (points or interval) at each point.",
        params: MOVING_PARAMS,
        run: moving_max,
    },
    FunctionDef {
        name: "nPercentile",
        group: "Calculate",
        signature: "nPercentile(seriesList, n)",
        description: "Replaces each series by a flat line at its n-th percentile (nearest rank \
                      over the non-null values).",
        params: NPERCENTILE_PARAMS,
        run: n_percentile,
    },
    FunctionDef {
        name: "exponentialMovingAverage",
        group: "Calculate",
        signature: "exponentialMovingAverage(seriesList, windowSize)",
        description: "An exponential moving average with smoothing constant 2/(window+1), seeded \
                      with the plain average of the first window; values rounded to 6 decimals.",
        params: EMA_PARAMS,
        run: exponential_moving_average,
    },
    FunctionDef {
        name: "stdev",
        group: "Calculate",
        signature: "stdev(seriesList, points, windowTolerance=0.1)",
        description: "The population standard deviation of the trailing window of points, None \
                      where the share of non-null points in the window is below windowTolerance.",
        params: STDEV_PARAMS,
        run: stdev,
    },
];

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// A series built the way graphite-web's `TimeSeries.copy` builds one: tags, consolidation and
/// xFilesFactor kept, the new name also becoming the path expression.
fn copy_named(src: &Series, name: String, values: Vec<Option<f64>>) -> Series {
    let mut s = src.derive(name.clone(), values);
    s.path_expression = name;
    s
}

/// graphite-web's `xff(nonNull, total, xFilesFactor)`.
fn xff_ok(non_null: usize, total: f64, x_files_factor: f64) -> bool {
    if non_null == 0 || total == 0.0 {
        return false;
    }
    non_null as f64 / total >= x_files_factor
}

/// An interval argument in seconds (`delta.seconds + delta.days * 86400`).
fn interval_arg(function: &str, name: &str, text: &str) -> Result<i64, QueryError> {
    parse_time_offset(text).map_err(|e| {
        QueryError::bad(format!(
            "{function}: argument {name:?} is not a valid interval: {}",
            e.message()
        ))
    })
}

/// A bucket width: graphite-web divides by zero (500) or loops forever on a negative width, so
/// both are refused.
fn bucket_interval(function: &str, text: &str) -> Result<i64, QueryError> {
    let interval = interval_arg(function, "intervalString", text)?;
    if interval <= 0 {
        return Err(QueryError::bad(format!(
            "{function}: intervalString {text:?} must be a positive interval"
        )));
    }
    Ok(interval)
}

fn interval_string(args: &Args, function: &str) -> Result<String, QueryError> {
    match args.get("intervalString") {
        Some(Value::Str(s)) => Ok(s.clone()),
        Some(other) => Err(QueryError::bad(format!(
            "{function}: argument \"intervalString\" must be an interval string such as \"1h\", \
             got {}",
            other.python_repr()
        ))),
        None => Err(QueryError::bad(format!(
            "{function}: missing required argument \"intervalString\""
        ))),
    }
}

/// A boolean parameter as graphite-web's validation reads it: "true"/"false" in any case, else
/// Python truthiness.
fn bool_arg(args: &Args, name: &str, default: bool) -> Result<bool, QueryError> {
    if let Some(Value::Str(s)) = args.get(name) {
        if s.eq_ignore_ascii_case("true") {
            return Ok(true);
        }
        if s.eq_ignore_ascii_case("false") {
            return Ok(false);
        }
    }
    args.bool(name, default)
}

/// Refuses bucket counts that would exhaust memory (graphite-web would simply try).
fn check_buckets(ctx: &Context<'_>, function: &str, buckets: i64) -> Result<(), QueryError> {
    if buckets > ctx.limits.max_points as i64 {
        return Err(QueryError::Limit(format!(
            "{function}: {buckets} buckets, more than max_points = {}",
            ctx.limits.max_points
        )));
    }
    Ok(())
}

/// The input re-evaluated for `(from, until]`: graphite-web evaluates the call's first argument
/// expression again (`requestContext['args'][0]`). When the series list came as a keyword
/// argument there is no positional one (graphite-web fails with an IndexError); each distinct
/// path expression of the input is evaluated again instead.
pub(crate) fn refetch(
    ctx: &mut Context<'_>,
    list: &[Series],
    from: i64,
    until: i64,
) -> Result<Vec<Series>, QueryError> {
    if let Some(first) = ctx.raw_args().first().cloned() {
        return ctx.evaluate_expr_in(&first, from, until);
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for s in list {
        if seen.contains(&s.path_expression.as_str()) {
            continue;
        }
        seen.push(&s.path_expression);
        out.extend(ctx.evaluate_in(&s.path_expression, from, until)?);
    }
    Ok(out)
}

/// Python's `str.capitalize()` for the ASCII names aggregation functions have.
fn capitalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Python's `round(x, 6)` on a float: correctly rounded to 6 decimals (ties to even on the
/// binary value), non-finite values unchanged.
fn round6(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    printf_f(x, 6).parse().unwrap_or(x)
}

/// A `windowSize` argument: a number of points (an int, or a float or bool that Python's `int()`
/// truncates) or an interval string.
enum Window {
    /// The point count and the argument as `%s` shows it.
    Points(i64, String),
    Interval(String),
}

fn window_arg(args: &Args, function: &str) -> Result<Window, QueryError> {
    let bad = |what: String| QueryError::bad(format!("{function}: argument \"windowSize\" {what}"));
    let window = match args.get("windowSize") {
        Some(Value::Int(i)) => Window::Points(*i, i.to_string()),
        Some(Value::Float(f)) if f.is_finite() => Window::Points(f.trunc() as i64, float_repr(*f)),
        Some(Value::Bool(b)) => Window::Points(*b as i64, if *b { "True" } else { "False" }.into()),
        Some(Value::Str(s)) => Window::Interval(s.clone()),
        Some(other) => {
            return Err(bad(format!(
                "must be a number of points or an interval string, got {}",
                other.python_repr()
            )))
        }
        None => return Err(bad("is required".into())),
    };
    if let Window::Points(n, _) = window {
        // graphite-web slices with the negative count and returns shifted garbage.
        if n < 0 {
            return Err(bad(format!("must not be negative, got {n}")));
        }
    }
    Ok(window)
}

impl Window {
    /// The seconds of data fetched before the request's start: the interval's absolute value,
    /// or the count times the largest step of the input.
    fn preview_seconds(&self, function: &str, list: &[Series]) -> Result<i64, QueryError> {
        match self {
            Window::Interval(text) => Ok(interval_arg(function, "windowSize", text)?.abs()),
            Window::Points(n, _) => {
                let step = list.iter().map(|s| s.step).max().unwrap_or(0);
                step.checked_mul(*n).ok_or_else(|| {
                    QueryError::bad(format!("{function}: windowSize {n} is too large"))
                })
            }
        }
    }

    /// The window in points for a series of `step` (an interval covers `preview // step`).
    fn points(&self, preview: i64, step: i64) -> i64 {
        match self {
            Window::Points(n, _) => *n,
            Window::Interval(_) if step > 0 => preview.div_euclid(step),
            Window::Interval(_) => 0,
        }
    }

    /// `name(series,5)` for a count, `name(series,"5min")` for an interval.
    fn call_name(&self, function: &str, series: &str) -> String {
        match self {
            Window::Points(_, repr) => format!("{function}({series},{repr})"),
            Window::Interval(text) => format!("{function}({series},\"{text}\")"),
        }
    }

    /// The tag value: Python's `str()` of the argument.
    fn tag(&self) -> String {
        match self {
            Window::Points(_, repr) => repr.clone(),
            Window::Interval(text) => text.clone(),
        }
    }
}

/// The request's start moved back to the beginning of its `unit` in the request's time zone.
/// Like graphite-web (`datetime(..., tzinfo=start.tzinfo)`), the start's UTC offset is kept even
/// when the truncated time lies on the other side of a DST change. `weekday` is the ISO weekday
/// weeks align to.
fn align_start(from: i64, tz: Zone, unit: Unit, weekday: u32) -> i64 {
    let Some(utc) = chrono::DateTime::from_timestamp(from, 0) else {
        return from;
    };
    let offset = utc_offset(tz, from) as i64;
    let local = utc.naive_utc() + Duration::seconds(offset);
    let date = local.date();
    let day = |d: Option<NaiveDate>| d.and_then(|d| d.and_hms_opt(0, 0, 0));
    let aligned: Option<NaiveDateTime> = match unit {
        Unit::Years => day(NaiveDate::from_ymd_opt(date.year(), 1, 1)),
        Unit::Months => day(NaiveDate::from_ymd_opt(date.year(), date.month(), 1)),
        Unit::Weeks => {
            let mut back = date.weekday().number_from_monday() as i64 - weekday as i64;
            if back < 0 {
                back += 7;
            }
            day(Some(date)).map(|d| d - Duration::days(back))
        }
        Unit::Days => day(Some(date)),
        Unit::Hours => date.and_hms_opt(local.hour(), 0, 0),
        Unit::Minutes => date.and_hms_opt(local.hour(), local.minute(), 0),
        Unit::Seconds => Some(local),
    };
    match aligned {
        Some(t) => t.and_utc().timestamp() - offset,
        None => from,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

/// graphite-web's `getUnitString`: the unit a word starts with.
fn unit_of(s: &str) -> Option<Unit> {
    Some(if s.starts_with('s') {
        Unit::Seconds
    } else if s.starts_with("min") {
        Unit::Minutes
    } else if s.starts_with('h') {
        Unit::Hours
    } else if s.starts_with('d') {
        Unit::Days
    } else if s.starts_with('w') {
        Unit::Weeks
    } else if s.starts_with("mon") {
        Unit::Months
    } else if s.starts_with('y') {
        Unit::Years
    } else {
        return None;
    })
}

// ---------------------------------------------------------------------------------------------
// summarize, smartSummarize, hitcount

/// graphite-web's `_summarizeValues`: buckets `[t, t + interval)` from `new_start` while
/// `t < new_end`; a bucket gives `func(values in it)` (nulls included, the function skips them)
/// when its non-null share of `interval / step` passes the series' xFilesFactor. Returns the
/// values and the end of the last bucket.
fn summarize_values(
    series: &Series,
    func: AggFunc,
    interval: i64,
    new_start: i64,
    new_end: i64,
) -> (Vec<Option<f64>>, i64) {
    let values = series.points();
    let step = series.step.max(1);
    let timestamps = if series.end > series.start {
        (series.end - series.start + step - 1) / step
    } else {
        0
    };
    let count = values.len().min(timestamps.max(0) as usize);
    let interval_points = interval as f64 / step as f64;
    let mut out = Vec::new();
    let mut i = 0usize;
    let mut t = new_start;
    while t < new_end {
        let mut first = i;
        let mut non_null = 0usize;
        while i < count {
            let ts = series.start + i as i64 * step;
            if ts >= t + interval {
                break;
            }
            if ts <= t {
                first = i;
            }
            if ts >= t && values[i].is_some() {
                non_null += 1;
            }
            i += 1;
        }
        if xff_ok(non_null, interval_points, series.x_files_factor) {
            out.push(func.apply(&values[first..i]));
        } else {
            out.push(None);
        }
        t += interval;
    }
    (out, t)
}

fn summarize(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let interval_text = interval_string(&args, "summarize")?;
    let interval = bucket_interval("summarize", &interval_text)?;
    let func_name = args.str("func", "sum")?;
    let align_to_from = bool_arg(&args, "alignToFrom", false)?;
    let mut out = Vec::with_capacity(list.len());
    for mut series in list {
        // graphite-web looks the function up per series, so an empty list never fails on it.
        let func = AggFunc::parse(&func_name)?;
        let (new_start, new_end) = if align_to_from {
            (series.start, series.end)
        } else {
            (
                series.start - series.start.rem_euclid(interval),
                series.end - series.end.rem_euclid(interval) + interval,
            )
        };
        check_buckets(ctx, "summarize", (new_end - new_start) / interval)?;
        let (values, aligned_end) = summarize_values(&series, func, interval, new_start, new_end);
        series.set_tag("summarize", interval_text.as_str());
        series.set_tag("summarizeFunction", func_name.as_str());
        let name = format!(
            "summarize({}, \"{}\", \"{}\"{})",
            series.name,
            interval_text,
            func_name,
            if align_to_from { ", true" } else { "" }
        );
        let mut result = copy_named(&series, name, values);
        result.start = new_start;
        result.end = if align_to_from { aligned_end } else { new_end };
        result.step = interval;
        out.push(result);
    }
    Ok(Value::SeriesList(out))
}

fn smart_summarize(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let interval_text = interval_string(&args, "smartSummarize")?;
    let func_name = args.str("func", "sum")?;
    match args.get("alignTo") {
        // graphite-web ignores the old boolean alignToFrom given in this position.
        None | Some(Value::None) | Some(Value::Bool(_)) => {}
        Some(Value::Str(align_to)) => {
            let unit = unit_of(align_to).ok_or_else(|| {
                QueryError::bad(format!(
                    "smartSummarize: alignTo {align_to:?} is not one of years, months, weeks, \
                     days, hours, minutes, seconds"
                ))
            })?;
            // "weeks" aligns to Monday; a trailing digit names another ISO weekday.
            let weekday = match align_to.chars().last() {
                Some(c) if c.is_alphabetic() => 1,
                Some(c) => c.to_digit(10).ok_or_else(|| {
                    QueryError::bad(format!(
                        "smartSummarize: alignTo {align_to:?} must end with a weekday digit"
                    ))
                })?,
                None => 1,
            };
            let from = align_start(ctx.from, ctx.tz, unit, weekday);
            let until = ctx.until;
            list = refetch(ctx, &list, from, until)?;
        }
        Some(other) => {
            return Err(QueryError::bad(format!(
                "smartSummarize: argument \"alignTo\" must be a unit string, got {}",
                other.python_repr()
            )))
        }
    }
    let interval = bucket_interval("smartSummarize", &interval_text)?;
    let mut out = Vec::with_capacity(list.len());
    for mut series in list {
        let func = AggFunc::parse(&func_name)?;
        check_buckets(
            ctx,
            "smartSummarize",
            (series.end - series.start) / interval,
        )?;
        let (values, aligned_end) =
            summarize_values(&series, func, interval, series.start, series.end);
        series.set_tag("smartSummarize", interval_text.as_str());
        series.set_tag("smartSummarizeFunction", func_name.as_str());
        let name = format!(
            "smartSummarize({}, \"{}\", \"{}\")",
            series.name, interval_text, func_name
        );
        let mut result = copy_named(&series, name, values);
        result.end = aligned_end;
        result.step = interval;
        out.push(result);
    }
    Ok(Value::SeriesList(out))
}

fn hitcount(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let interval_text = interval_string(&args, "hitcount")?;
    let interval = bucket_interval("hitcount", &interval_text)?;
    let align = bool_arg(&args, "alignToInterval", false)?;
    if align {
        let unit = if interval >= 86400 {
            Some(Unit::Days)
        } else if interval >= 3600 {
            Some(Unit::Hours)
        } else if interval >= 60 {
            Some(Unit::Minutes)
        } else {
            None
        };
        let from = match unit {
            Some(unit) => align_start(ctx.from, ctx.tz, unit, 1),
            None => ctx.from,
        };
        let until = ctx.until;
        list = refetch(ctx, &list, from, until)?;
        for s in &mut list {
            let count = (s.end - s.start).div_euclid(interval);
            s.end = s.start + count * interval + interval;
        }
    }
    let mut out = Vec::with_capacity(list.len());
    for mut series in list {
        let step = series.step;
        let span = series.end - series.start;
        let bucket_count = if span > 0 {
            (span + interval - 1) / interval
        } else {
            0
        };
        check_buckets(ctx, "hitcount", bucket_count)?;
        let new_start = series.end - bucket_count * interval;
        // Running sums in the order graphite-web appends to its bucket lists, which is the
        // order its sum() adds them in.
        let mut buckets: Vec<Option<f64>> = vec![None; bucket_count as usize];
        for (i, value) in series.points().into_iter().enumerate() {
            let Some(value) = value else { continue };
            let start_time = series.start + i as i64 * step;
            let start_bucket = (start_time - new_start).div_euclid(interval);
            let start_mod = (start_time - new_start).rem_euclid(interval);
            let end_time = start_time + step;
            let mut end_bucket = (end_time - new_start).div_euclid(interval);
            let mut end_mod = (end_time - new_start).rem_euclid(interval);
            if end_bucket >= bucket_count {
                end_bucket = bucket_count - 1;
                end_mod = interval;
            }
            let mut add = |b: i64, v: f64| {
                if let Some(bucket) = usize::try_from(b).ok().and_then(|b| buckets.get_mut(b)) {
                    *bucket = Some(bucket.unwrap_or(0.0) + v);
                }
            };
            if start_bucket == end_bucket {
                if start_bucket >= 0 {
                    add(start_bucket, value * (end_mod - start_mod) as f64);
                }
            } else {
                if start_bucket >= 0 {
                    add(start_bucket, value * (interval - start_mod) as f64);
                }
                let per_bucket = value * interval as f64;
                for j in start_bucket + 1..end_bucket {
                    add(j, per_bucket);
                }
                if end_mod > 0 {
                    add(end_bucket, value * end_mod as f64);
                }
            }
        }
        series.set_tag("hitcount", interval_text.as_str());
        let name = format!(
            "hitcount({}, \"{}\"{})",
            series.name,
            interval_text,
            if align { ", true" } else { "" }
        );
        let mut result = copy_named(&series, name, buckets);
        result.start = new_start;
        result.step = interval;
        out.push(result);
    }
    Ok(Value::SeriesList(out))
}

// ---------------------------------------------------------------------------------------------
// The moving windows

fn moving_window(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let func = args.str("func", "average")?;
    moving(ctx, args, "movingWindow", &func)
}

fn moving_average(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    moving(ctx, args, "movingAverage", "average")
}

fn moving_sum(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    moving(ctx, args, "movingSum", "sum")
}

fn moving_median(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    moving(ctx, args, "movingMedian", "median")
}

fn moving_min(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    moving(ctx, args, "movingMin", "min")
}

fn moving_max(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    moving(ctx, args, "movingMax", "max")
}

/// graphite-web's `movingWindow`: the input is fetched again from `preview` seconds before the
/// request's start (possibly from a coarser archive), and each output point aggregates the
/// `windowPoints` values ending at it. The output is named and tagged `moving<Func>` after the
/// function name as given (`movingWindow(x,5,'avg')` gives `movingAvg(x,5)`).
fn moving(
    ctx: &mut Context<'_>,
    mut args: Args,
    function: &str,
    func_name: &str,
) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    if list.is_empty() {
        return Ok(Value::SeriesList(Vec::new()));
    }
    let window = window_arg(&args, function)?;
    let preview = window.preview_seconds(function, &list)?;
    let func = AggFunc::parse(func_name)?;
    let x_files_factor = args.opt_float("xFilesFactor")?;
    let (from, until) = (ctx.from - preview, ctx.until);
    let fetched = refetch(ctx, &list, from, until)?;
    let tag_name = format!("moving{}", capitalize(func_name));
    let mut out = Vec::with_capacity(fetched.len());
    for mut series in fetched {
        let name = window.call_name(&tag_name, &series.name);
        let points = window.points(preview, series.step);
        series.set_tag(&tag_name, window.tag());
        let xff = x_files_factor.unwrap_or(series.x_files_factor);
        let values = series.points();
        let n = points as usize;
        let mut result_values = Vec::with_capacity(values.len().saturating_sub(n));
        let mut window_values = Vec::with_capacity(n);
        // Python's range(windowPoints + 1, len + 1): the window is values[i - n .. i].
        for i in n + 1..=values.len() {
            window_values.clear();
            window_values.extend(values[i - n..i].iter().flatten().map(|v| Some(*v)));
            let value = if xff_ok(window_values.len(), n as f64, xff) {
                func.apply(&window_values)
            } else {
                None
            };
            result_values.push(value);
        }
        let mut result = copy_named(&series, name, result_values);
        result.start = series.start + preview;
        out.push(result);
    }
    Ok(Value::SeriesList(out))
}

fn exponential_moving_average(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    const FUNCTION: &str = "exponentialMovingAverage";
    let list = args.series("seriesList")?;
    if list.is_empty() {
        return Ok(Value::SeriesList(Vec::new()));
    }
    let window = window_arg(&args, FUNCTION)?;
    let preview = window.preview_seconds(FUNCTION, &list)?;
    let constant = match &window {
        Window::Interval(_) => 2.0 / (preview + 1) as f64,
        Window::Points(n, _) => 2.0 / (n + 1) as f64,
    };
    let (from, until) = (ctx.from - preview, ctx.until);
    let fetched = refetch(ctx, &list, from, until)?;
    let mut out = Vec::with_capacity(fetched.len());
    for mut series in fetched {
        let name = window.call_name(FUNCTION, &series.name);
        let points = window.points(preview, series.step).max(0) as usize;
        series.set_tag(FUNCTION, window.tag());
        let values = series.points();
        let seed = &values[..points.min(values.len())];
        // `safeAvg(...) or 0`: no value, and an average of zero, both seed with 0.
        let mut ema = safe_avg(seed).filter(|v| *v != 0.0).unwrap_or(0.0);
        let mut result_values = Vec::with_capacity(values.len() + 1 - seed.len());
        result_values.push(Some(round6(ema)));
        for v in values.iter().skip(points) {
            match v {
                Some(v) => {
                    ema = constant * v + (1.0 - constant) * ema;
                    result_values.push(Some(round6(ema)));
                }
                None => result_values.push(None),
            }
        }
        let mut result = copy_named(&series, name, result_values);
        result.start = series.start + preview;
        out.push(result);
    }
    Ok(Value::SeriesList(out))
}

fn stdev(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let Some(points) = args.opt_int("points")? else {
        return Err(QueryError::bad(
            "stdev: missing required argument \"points\"",
        ));
    };
    // A negative window makes graphite-web index past the end (a 500). A zero window drops
    // each value as it arrives, so no window ever holds a value: all None, as below.
    if points < 0 {
        return Err(QueryError::bad(format!(
            "stdev: points must not be negative, got {points}"
        )));
    }
    let tolerance = args.float("windowTolerance", 0.1)?;
    let window = points as usize;
    let mut out = Vec::with_capacity(list.len());
    for mut series in list {
        series.set_tag("stdev", points.to_string());
        let name = format!("stdev({},{})", series.name, points);
        let values = series.points();
        let mut result_values = Vec::with_capacity(values.len());
        let mut valid = 0i64;
        let mut sum = 0.0f64;
        let mut sum_squares = 0.0f64;
        for (index, new_value) in values.iter().enumerate() {
            let dropped = if index < window {
                None
            } else {
                values[index - window]
            };
            if window == 0 {
                result_values.push(None);
                continue;
            }
            if let Some(d) = dropped {
                valid -= 1;
                sum -= d;
                sum_squares -= square(d);
            }
            if let Some(v) = new_value {
                valid += 1;
                sum += v;
                sum_squares += square(*v);
            }
            if valid > 0 && valid as f64 / points as f64 >= tolerance {
                let radicand = valid as f64 * sum_squares - square(sum);
                // math.sqrt raises on a negative radicand (rounding), graphite-web gives None.
                result_values.push(if radicand < 0.0 {
                    None
                } else {
                    Some(radicand.sqrt() / valid as f64)
                });
            } else {
                result_values.push(None);
            }
        }
        out.push(copy_named(&series, name, result_values));
    }
    Ok(Value::SeriesList(out))
}

/// Python's `x ** 2`: the C library's `pow`, which is not always the correctly rounded `x * x`.
/// The exponent is hidden from the optimiser, which would otherwise turn the call into `x * x`.
fn square(x: f64) -> f64 {
    x.powf(std::hint::black_box(2.0))
}

// ---------------------------------------------------------------------------------------------
// nPercentile

/// graphite-web's `_getPercentile(points, n)` without interpolation over sorted values: the
/// nearest rank `ceil(n/100 * (len + 1))`, clamped to the first and last value only when the
/// rank is exactly 0 or len + 1; other ranks out of range index from the end the way Python
/// does, or fail.
fn percentile(sorted: &[f64], n: f64) -> Result<Option<f64>, QueryError> {
    if sorted.is_empty() {
        return Ok(None);
    }
    let len = sorted.len() as i64;
    let fractional = (n / 100.0) * (len + 1) as f64;
    if !fractional.is_finite() || fractional.abs() > 1e15 {
        return Err(QueryError::bad(format!(
            "nPercentile: percent {} is out of range",
            float_repr(n)
        )));
    }
    let mut rank = fractional.trunc() as i64;
    let fraction = fractional - rank as f64;
    rank += fraction.ceil() as i64;
    if rank == 0 {
        return Ok(Some(sorted[0]));
    }
    if rank - 1 == len {
        return Ok(Some(sorted[sorted.len() - 1]));
    }
    let mut index = rank - 1;
    if index < 0 {
        index += len;
    }
    match usize::try_from(index).ok().and_then(|i| sorted.get(i)) {
        Some(v) => Ok(Some(*v)),
        None => Err(QueryError::bad(format!(
            "nPercentile: percent {} is out of range for {} values",
            float_repr(n),
            len
        ))),
    }
}

fn n_percentile(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let Some(n) = args.opt_float("n")? else {
        return Err(QueryError::bad(
            "nPercentile: missing required argument \"n\"",
        ));
    };
    if n == 0.0 || n.is_nan() {
        return Err(QueryError::bad(
            "nPercentile: the requested percent is required to be greater than 0",
        ));
    }
    let mut out = Vec::new();
    for mut series in list {
        let mut sorted: Vec<f64> = series.points().into_iter().flatten().collect();
        if sorted.is_empty() {
            continue;
        }
        // graphite-web sorts the values into a copy and `_getPercentile` sorts them again;
        // with a NaN among them (which `<` cannot order) the second sort may move values.
        crate::query::sort::sort_floats(&mut sorted);
        crate::query::sort::sort_floats(&mut sorted);
        let Some(value) = percentile(&sorted, n)? else {
            continue;
        };
        series.set_tag("nPercentile", float_repr(n));
        let name = format!("nPercentile({}, {})", series.name, printf_g(n, 6));
        let count = if series.step > 0 {
            ((series.end - series.start) as f64 / series.step as f64).trunc() as usize
        } else {
            0
        };
        out.push(copy_named(&series, name, vec![Some(value); count]));
    }
    Ok(Value::SeriesList(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round6_matches_python() {
        // Values checked with CPython 3.11's round(x, 6).
        assert_eq!(round6(1.0000005), 1.000001);
        assert_eq!(round6(0.1234565), 0.123456);
        assert_eq!(round6(-2.5e-7), -0.0);
        assert_eq!(round6(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn percentile_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        // fractional rank 0.5 * 6 = 3 -> third value
        assert_eq!(percentile(&v, 50.0), Ok(Some(3.0)));
        // 0.9 * 6 = 5.4 -> rank 6 -> len + 1 -> the last value
        assert_eq!(percentile(&v, 90.0), Ok(Some(5.0)));
        // 0.1 * 6 = 0.6 -> rank 1
        assert_eq!(percentile(&v, 10.0), Ok(Some(1.0)));
        // 2.0 * 6 = 12 -> index 11: Python raises IndexError
        assert!(percentile(&v, 200.0).is_err());
        // -0.1 * 6 = -0.6 -> rank 0 -> first value
        assert_eq!(percentile(&v, -10.0), Ok(Some(1.0)));
        // -0.5 * 6 = -3 -> index -4 -> v[1]
        assert_eq!(percentile(&v, -50.0), Ok(Some(2.0)));
    }

    #[test]
    fn capitalize_like_python() {
        assert_eq!(capitalize("average"), "Average");
        assert_eq!(capitalize("rangeOf"), "Rangeof");
        assert_eq!(capitalize("avg_zero"), "Avg_zero");
    }

    #[test]
    fn align_keeps_the_start_offset() {
        let tz: Zone = "Europe/Amsterdam".parse().unwrap_or(chrono_tz::UTC);
        // 2024-03-31 12:00 CEST (UTC+2), after the 02:00 switch: graphite-web builds midnight
        // with the +02:00 offset, i.e. 2024-03-30 22:00 UTC.
        let from = 1_711_879_200; // 2024-03-31T10:00:00Z
        assert_eq!(align_start(from, tz, Unit::Days, 1), 1_711_836_000);
        assert_eq!(align_start(from, tz, Unit::Hours, 1), from);
        // Sunday, aligned back to Monday 2024-03-25 00:00 at +02:00.
        assert_eq!(
            align_start(from, tz, Unit::Weeks, 1),
            1_711_836_000 - 6 * 86400
        );
    }

    #[test]
    fn unit_prefixes() {
        assert_eq!(unit_of("minutes"), Some(Unit::Minutes));
        assert_eq!(unit_of("months"), Some(Unit::Months));
        assert_eq!(unit_of("m"), None);
        assert_eq!(unit_of("weeks3"), Some(Unit::Weeks));
    }
}
