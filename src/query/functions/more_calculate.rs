//! More of graphite-web 1.1.10's Calculate/Transform functions: Holt-Winters forecasting,
//! linear regression, the point-wise maths (round, exp, logit, sigmoid, powSeries), time
//! slicing and stacking, aggregateLine, weightedAverage, compressPeriodicGaps, and the
//! generated series (identity, time, sin, randomWalk). They are grouped here because several
//! of them re-evaluate the call's first argument for another time range (graphite-web's
//! `requestContext['args'][0]`) and share that plumbing.
//!
//! graphite-web reads the date arguments of timeSlice and linearRegression in the server zone
//! against the wall clock, and turns request times into epochs with `time.mktime` (server zone)
//! in timeSlice, linearRegression, time and sin. The context carries no server zone, so the
//! request's zone and `now` stand in for both: identical answers when the request gives neither
//! `tz` nor `now` (tested in a DST zone), true epochs where graphite-web would mix zones.
//! randomWalk uses a fixed-seed generator: graphite-web's values come from Python's unseeded
//! `random` and cannot be reproduced.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::aggfuncs::{safe_div, safe_mul, safe_pow, safe_sum, AggFunc, AGG_FUNC_NAMES};
use super::calculate::refetch;
use super::combine::agg_key;
use super::transform::SHIFT_SUGGESTIONS;
use super::{FunctionDef, Literal, Param, ParamType};
use crate::python::format::{float_repr, printf_f, printf_g};
use crate::query::consolidate::{normalize, rows};
use crate::query::error::QueryError;
use crate::query::eval::Context;
use crate::query::series::Series;
use crate::query::time::{parse_at_time, parse_time_offset};
use crate::query::value::{Args, Value};

const SERIES_LIST: Param = Param::required("seriesList", ParamType::SeriesList);
const ONLY_SERIES: &[Param] = &[SERIES_LIST];
const NAME: Param = Param::required("name", ParamType::String);
const STEP: Param = Param::optional("step", ParamType::Integer).with_default(Literal::Int(60));

const BOOTSTRAP: Param = Param::optional("bootstrapInterval", ParamType::Interval)
    .with_default(Literal::Str("7d"))
    .suggestions(&[Literal::Str("7d"), Literal::Str("30d")]);
const SEASONALITY: Param = Param::optional("seasonality", ParamType::Interval)
    .with_default(Literal::Str("1d"))
    .suggestions(&[Literal::Str("1d"), Literal::Str("7d")]);
const DELTA: Param = Param::optional("delta", ParamType::Integer).with_default(Literal::Int(3));

const HW_FORECAST_PARAMS: &[Param] = &[SERIES_LIST, BOOTSTRAP, SEASONALITY];
const HW_BAND_PARAMS: &[Param] = &[SERIES_LIST, DELTA, BOOTSTRAP, SEASONALITY];
const ROUND_PARAMS: &[Param] = &[
    SERIES_LIST,
    Param::optional("precision", ParamType::Integer).with_default(Literal::Int(0)),
];
const TIME_SLICE_PARAMS: &[Param] = &[
    SERIES_LIST,
    Param::required("startSliceAt", ParamType::Date),
    Param::optional("endSliceAt", ParamType::Date).with_default(Literal::Str("now")),
];
const TIME_STACK_PARAMS: &[Param] = &[
    SERIES_LIST,
    Param::optional("timeShiftUnit", ParamType::Interval)
        .with_default(Literal::Str("1d"))
        .suggestions(SHIFT_SUGGESTIONS),
    Param::optional("timeShiftStart", ParamType::Integer).with_default(Literal::Int(0)),
    Param::optional("timeShiftEnd", ParamType::Integer).with_default(Literal::Int(7)),
];
const AGGREGATE_LINE_PARAMS: &[Param] = &[
    SERIES_LIST,
    Param::optional("func", ParamType::AggFunc)
        .with_default(Literal::Str("average"))
        .options(AGG_FUNC_NAMES),
    Param::optional("keepStep", ParamType::Boolean).with_default(Literal::Bool(false)),
];
const POW_SERIES_PARAMS: &[Param] = &[SERIES_LIST.multiple()];
const WEIGHTED_AVERAGE_PARAMS: &[Param] = &[
    Param::required("seriesListAvg", ParamType::SeriesList),
    Param::required("seriesListWeight", ParamType::SeriesList),
    Param::optional("nodes", ParamType::NodeOrTag).multiple(),
];
const LINEAR_REGRESSION_PARAMS: &[Param] = &[
    SERIES_LIST,
    Param::optional("startSourceAt", ParamType::Date),
    Param::optional("endSourceAt", ParamType::Date),
];
const IDENTITY_PARAMS: &[Param] = &[NAME];
const TIME_PARAMS: &[Param] = &[NAME, STEP];
const SIN_PARAMS: &[Param] = &[
    NAME,
    Param::optional("amplitude", ParamType::Integer).with_default(Literal::Int(1)),
    STEP,
];

pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "holtWintersForecast",
        group: "Calculate",
        signature: "holtWintersForecast(seriesList, bootstrapInterval='7d', seasonality='1d')",
        description: "The Holt-Winters prediction for each series, bootstrapped from data \
                      fetched bootstrapInterval before the requested range.",
        params: HW_FORECAST_PARAMS,
        run: holt_winters_forecast,
    },
    FunctionDef {
        name: "holtWintersConfidenceBands",
        group: "Calculate",
        signature: "holtWintersConfidenceBands(seriesList, delta=3, bootstrapInterval='7d', \
                    seasonality='1d')",
        description: "Lower and upper bands around the Holt-Winters prediction, delta times the \
                      predicted deviation away from it.",
        params: HW_BAND_PARAMS,
        run: holt_winters_confidence_bands,
    },
    FunctionDef {
        name: "holtWintersConfidenceArea",
        group: "Calculate",
        signature: "holtWintersConfidenceArea(seriesList, delta=3, bootstrapInterval='7d', \
                    seasonality='1d')",
        description: "The Holt-Winters confidence bands of one series drawn as the area between \
                      them.",
        params: HW_BAND_PARAMS,
        run: holt_winters_confidence_area,
    },
    FunctionDef {
        name: "holtWintersAberration",
        group: "Calculate",
        signature: "holtWintersAberration(seriesList, delta=3, bootstrapInterval='7d', \
                    seasonality='1d')",
        description: "How far each value lies outside the Holt-Winters confidence bands (zero \
                      inside them).",
        params: HW_BAND_PARAMS,
        run: holt_winters_aberration,
    },
    FunctionDef {
        name: "linearRegression",
        group: "Calculate",
        signature: "linearRegression(seriesList, startSourceAt=None, endSourceAt=None)",
        description: "The least-squares line through each series' data between two times (the \
                      request's range by default), drawn over the requested range.",
        params: LINEAR_REGRESSION_PARAMS,
        run: linear_regression,
    },
    FunctionDef {
        name: "round",
        group: "Transform",
        signature: "round(seriesList, precision=None)",
        description: "Rounds every value to the given number of decimals (negative rounds to \
                      tens, hundreds, ...), halves to even.",
        params: ROUND_PARAMS,
        run: round_function,
    },
    FunctionDef {
        name: "exp",
        group: "Transform",
        signature: "exp(seriesList)",
        description: "e raised to the power of every value.",
        params: ONLY_SERIES,
        run: exp,
    },
    FunctionDef {
        name: "logit",
        group: "Transform",
        signature: "logit(seriesList)",
        description: "log(x / (1 - x)) of every value, None where it is undefined.",
        params: ONLY_SERIES,
        run: logit,
    },
    FunctionDef {
        name: "sigmoid",
        group: "Transform",
        signature: "sigmoid(seriesList)",
        description: "1 / (1 + exp(-x)) of every value.",
        params: ONLY_SERIES,
        run: sigmoid,
    },
    FunctionDef {
        name: "timeSlice",
        group: "Transform",
        signature: "timeSlice(seriesList, startSliceAt, endSliceAt='now')",
        description: "Keeps only the values between two times (both inclusive); the rest \
                      become None.",
        params: TIME_SLICE_PARAMS,
        run: time_slice,
    },
    FunctionDef {
        name: "timeStack",
        group: "Transform",
        signature: "timeStack(seriesList, timeShiftUnit='1d', timeShiftStart=0, \
                    timeShiftEnd=7)",
        description: "The series fetched again once per multiple of timeShiftUnit from \
                      timeShiftStart up to (not including) timeShiftEnd, each drawn over the \
                      requested range.",
        params: TIME_STACK_PARAMS,
        run: time_stack,
    },
    FunctionDef {
        name: "aggregateLine",
        group: "Calculate",
        signature: "aggregateLine(seriesList, func='average', keepStep=False)",
        description: "A horizontal line at an aggregate (average by default) of each series, \
                      over the request's range or, with keepStep, the series' own points.",
        params: AGGREGATE_LINE_PARAMS,
        run: aggregate_line,
    },
    FunctionDef {
        name: "powSeries",
        group: "Combine",
        signature: "powSeries(*seriesLists)",
        description: "The first series raised to the power of the second, that to the third, \
                      and so on, point by point.",
        params: POW_SERIES_PARAMS,
        run: pow_series,
    },
    FunctionDef {
        name: "weightedAverage",
        group: "Combine",
        signature: "weightedAverage(seriesListAvg, seriesListWeight, *nodes)",
        description: "The average of the first list weighted by the second, series paired by \
                      the given nodes or tags.",
        params: WEIGHTED_AVERAGE_PARAMS,
        run: weighted_average,
    },
    FunctionDef {
        name: "compressPeriodicGaps",
        group: "Transform",
        signature: "compressPeriodicGaps(seriesList)",
        description: "Guesses the real interval of a series stored with regular gaps and \
                      resamples it to that interval (last value per bucket).",
        params: ONLY_SERIES,
        run: compress_periodic_gaps,
    },
    FunctionDef {
        name: "identity",
        group: "Calculate",
        signature: "identity(name)",
        description: "A series whose value at every minute is that minute's timestamp.",
        params: IDENTITY_PARAMS,
        run: identity,
    },
    FunctionDef {
        name: "timeFunction",
        group: "Transform",
        signature: "timeFunction(name, step=60)",
        description: "A series whose value at every step is its timestamp.",
        params: TIME_PARAMS,
        run: time_function,
    },
    FunctionDef {
        name: "time",
        group: "Transform",
        signature: "time(name, step=60)",
        description: "A series whose value at every step is its timestamp.",
        params: TIME_PARAMS,
        run: time_function,
    },
    FunctionDef {
        name: "sinFunction",
        group: "Transform",
        signature: "sinFunction(name, amplitude=1, step=60)",
        description: "The sine of the timestamp at every step, times amplitude.",
        params: SIN_PARAMS,
        run: sin_function,
    },
    FunctionDef {
        name: "sin",
        group: "Transform",
        signature: "sin(name, amplitude=1, step=60)",
        description: "The sine of the timestamp at every step, times amplitude.",
        params: SIN_PARAMS,
        run: sin_function,
    },
    FunctionDef {
        name: "randomWalkFunction",
        group: "Special",
        signature: "randomWalkFunction(name, step=60)",
        description: "A random walk from 0 (steps uniform in [-0.5, 0.5)), for testing without \
                      data; the generator has a fixed seed.",
        params: TIME_PARAMS,
        run: random_walk,
    },
    FunctionDef {
        name: "randomWalk",
        group: "Special",
        signature: "randomWalk(name, step=60)",
        description: "A random walk from 0 (steps uniform in [-0.5, 0.5)), for testing without \
                      data; the generator has a fixed seed.",
        params: TIME_PARAMS,
        run: random_walk,
    },
];

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// Sets the name and the path expression, as graphite-web's in-place functions do.
fn rename(series: &mut Series, name: String) {
    series.path_expression = name.clone();
    series.name = name;
}

/// graphite-web's `for i, v in enumerate(series): series[i] = f(v)`: iteration is consolidated
/// when `valuesPerPoint` > 1, the assignment indexes the raw list.
fn map_in_place(
    series: &mut Series,
    mut f: impl FnMut(Option<f64>) -> Result<Option<f64>, QueryError>,
) -> Result<(), QueryError> {
    let points = series.points();
    for (i, v) in points.into_iter().enumerate() {
        if let Some(slot) = series.values.get_mut(i) {
            *slot = f(v)?;
        }
    }
    Ok(())
}

/// An interval argument (a string) in seconds.
fn interval_arg(args: &Args, name: &str, default: &'static str) -> Result<i64, QueryError> {
    let text = match args.get(name) {
        None | Some(Value::None) => default.to_string(),
        Some(Value::Str(s)) => s.clone(),
        Some(other) => {
            return Err(QueryError::bad(format!(
                "{}: argument {name:?} must be an interval string such as \"1d\", got {}",
                args.function(),
                other.python_repr()
            )))
        }
    };
    parse_time_offset(&text).map_err(|e| {
        QueryError::bad(format!(
            "{}: argument {name:?} is not a valid interval: {}",
            args.function(),
            e.message()
        ))
    })
}

/// A date argument (`parseATTime`) as epoch seconds, in the request's zone and `now`.
fn date_arg(ctx: &Context<'_>, args: &Args, name: &str) -> Result<Option<i64>, QueryError> {
    match args.get(name) {
        None | Some(Value::None) => Ok(None),
        Some(Value::Str(s)) => parse_at_time(s, ctx.tz, ctx.now).map(Some),
        Some(other) => Err(QueryError::bad(format!(
            "{}: argument {name:?} must be a time string such as \"-1d\" or \"00:00 20240101\", \
             got {}",
            args.function(),
            other.python_repr()
        ))),
    }
}

/// A boolean as graphite-web's validation reads it: "true"/"false" in any case, else truthiness.
fn bool_arg(args: &Args, name: &str, default: bool) -> Result<bool, QueryError> {
    match args.get(name) {
        Some(Value::Str(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::Str(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => args.bool(name, default),
    }
}

fn name_arg(args: &Args) -> Result<String, QueryError> {
    match args.get("name") {
        Some(Value::Str(s)) => Ok(s.clone()),
        Some(other) => Err(QueryError::bad(format!(
            "{}: argument \"name\" must be a string, got {}",
            args.function(),
            other.python_repr()
        ))),
        None => Err(QueryError::bad(format!(
            "{}: missing required argument \"name\"",
            args.function()
        ))),
    }
}

/// The number of steps in `[from, until)`, refusing what graphite-web would loop on forever
/// (a step that is not positive) or what would exhaust memory.
fn generated_len(ctx: &Context<'_>, function: &str, step: i64) -> Result<usize, QueryError> {
    if step <= 0 {
        return Err(QueryError::bad(format!(
            "{function}: step must be a positive number of seconds, got {step}"
        )));
    }
    let span = (ctx.until - ctx.from).max(0);
    let n = span / step + i64::from(span % step != 0);
    if n as u64 > ctx.limits.max_points as u64 {
        return Err(QueryError::Limit(format!(
            "{function}: {n} points, more than max_points = {}",
            ctx.limits.max_points
        )));
    }
    Ok(n as usize)
}

/// Python's `round(x, ndigits)` on a float: the correctly rounded decimal (ties to even on the
/// exact binary value).
fn py_round(x: f64, ndigits: i64) -> f64 {
    if !x.is_finite() || ndigits > 323 {
        return x;
    }
    if ndigits < -308 {
        return 0.0 * x;
    }
    if ndigits >= 0 {
        return printf_f(x, ndigits as usize).parse().unwrap_or(x);
    }
    let k = (-ndigits) as usize;
    let a = x.abs();
    let int_part = a.trunc();
    let frac = a - int_part;
    let digits = format!("{int_part:.0}");
    let padded = format!("{digits:0>width$}", width = k + 1);
    let (head, tail) = padded.split_at(padded.len() - k);
    let half = format!("5{}", "0".repeat(k - 1));
    let up = match tail.cmp(half.as_str()) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => frac > 0.0 || head.bytes().last().is_some_and(|d| (d - b'0') % 2 == 1),
    };
    let mut head: Vec<u8> = head.bytes().collect();
    if up {
        let mut i = head.len();
        loop {
            if i == 0 {
                head.insert(0, b'1');
                break;
            }
            i -= 1;
            if head[i] == b'9' {
                head[i] = b'0';
            } else {
                head[i] += 1;
                break;
            }
        }
    }
    let text = format!("{}{}", String::from_utf8_lossy(&head), "0".repeat(k));
    let r: f64 = text.parse().unwrap_or(0.0);
    if x.is_sign_negative() {
        -r
    } else {
        r
    }
}

/// `math.exp`, whose overflow graphite-web does not catch (a 500 there, a 400 here).
fn checked_exp(function: &str, v: f64) -> Result<f64, QueryError> {
    let r = v.exp();
    if r.is_infinite() && v.is_finite() {
        return Err(QueryError::bad(format!(
            "{function}: exp({}) overflows",
            float_repr(v)
        )));
    }
    Ok(r)
}

// ---------------------------------------------------------------------------------------------
// Point-wise maths

fn round_function(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let precision = args.opt_int("precision")?;
    let p = precision.unwrap_or(0);
    for s in &mut list {
        s.set_tag("round", p.to_string());
        let name = match precision {
            None => format!("round({})", s.name),
            Some(p) => format!("round({},{})", s.name, printf_g(p as f64, 6)),
        };
        rename(s, name);
        map_in_place(s, |v| Ok(v.map(|v| py_round(v, p))))?;
    }
    Ok(Value::SeriesList(list))
}

fn exp(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("exp", "e");
        let name = format!("exp({})", s.name);
        rename(s, name);
        map_in_place(s, |v| v.map(|v| checked_exp("exp", v)).transpose())?;
    }
    Ok(Value::SeriesList(list))
}

fn sigmoid(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("sigmoid", "sigmoid");
        let name = format!("sigmoid({})", s.name);
        rename(s, name);
        map_in_place(s, |v| {
            v.map(|v| Ok(1.0 / (1.0 + checked_exp("sigmoid", -v)?)))
                .transpose()
        })?;
    }
    Ok(Value::SeriesList(list))
}

/// `math.log(v / (1 - v))`, None where Python raises (division by zero, log of zero or of a
/// negative number).
fn logit_value(v: f64) -> Option<f64> {
    let denominator = 1.0 - v;
    if denominator == 0.0 {
        return None;
    }
    let q = v / denominator;
    if q <= 0.0 {
        return None;
    }
    Some(q.ln())
}

fn logit(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("logit", "logit");
        let name = format!("logit({})", s.name);
        rename(s, name);
        map_in_place(s, |v| Ok(v.and_then(logit_value)))?;
    }
    Ok(Value::SeriesList(list))
}

fn pow_series(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series_all("seriesList")?;
    let Some((list, start, end, step)) = normalize(&list) else {
        return Ok(Value::SeriesList(Vec::new()));
    };
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    let name = format!("powSeries({})", names.join(","));
    let values = rows(&list)
        .into_iter()
        .map(|row| {
            let mut it = row.into_iter();
            let first = it.next().flatten();
            it.fold(first, safe_pow)
        })
        .collect();
    Ok(Value::SeriesList(vec![Series::new(
        name,
        start,
        end,
        step,
        values,
        ctx.x_files_factor,
    )]))
}

// ---------------------------------------------------------------------------------------------
// Time slicing and stacking

fn time_slice(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let Some(start) = date_arg(ctx, &args, "startSliceAt")? else {
        return Err(QueryError::bad(
            "timeSlice: missing required argument \"startSliceAt\"",
        ));
    };
    let end = match date_arg(ctx, &args, "endSliceAt")? {
        Some(end) => end,
        None if args.get("endSliceAt").is_none() => parse_at_time("now", ctx.tz, ctx.now)?,
        None => {
            return Err(QueryError::bad(
                "timeSlice: argument \"endSliceAt\" must be a time string, got None",
            ))
        }
    };
    for s in &mut list {
        s.set_tag("timeSliceStart", start.to_string());
        s.set_tag("timeSliceEnd", end.to_string());
        s.name = format!("timeSlice({}, {start}, {end})", s.name);
        // graphite-web walks from the request's start, not the series' first timestamp.
        let mut curr = ctx.from;
        let points = s.points();
        for (i, v) in points.iter().enumerate() {
            if v.is_none() || curr < start || curr > end {
                if let Some(slot) = s.values.get_mut(i) {
                    *slot = None;
                }
            }
            curr += s.step;
        }
    }
    Ok(Value::SeriesList(list))
}

fn time_stack(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let mut unit = match args.get("timeShiftUnit") {
        None => "1d".to_string(),
        Some(Value::Str(s)) => s.clone(),
        Some(other) => {
            return Err(QueryError::bad(format!(
                "timeStack: argument \"timeShiftUnit\" must be an interval string such as \
                 \"1d\", got {}",
                other.python_repr()
            )))
        }
    };
    match unit.chars().next() {
        None => {
            return Err(QueryError::bad(
                "timeStack: argument \"timeShiftUnit\" must not be empty",
            ))
        }
        // Without a sign the shift goes back in time.
        Some(c) if c.is_numeric() => unit.insert(0, '-'),
        Some(_) => {}
    }
    let delta = parse_time_offset(&unit).map_err(|e| {
        QueryError::bad(format!(
            "timeStack: argument \"timeShiftUnit\" is not a valid interval: {}",
            e.message()
        ))
    })?;
    let first = args.int("timeShiftStart", 0)?;
    let last = args.int("timeShiftEnd", 7)?;
    let Some(base) = list.first() else {
        return Ok(Value::SeriesList(Vec::new()));
    };
    let (start, end) = (base.start, base.end);
    let mut results = Vec::new();
    for shift in first..last {
        let inner = delta
            .checked_mul(shift)
            .and_then(|d| Some((ctx.from.checked_add(d)?, ctx.until.checked_add(d)?)))
            .ok_or_else(|| QueryError::bad(format!("timeStack: shift {shift} is out of range")))?;
        for mut shifted in refetch(ctx, &list, inner.0, inner.1)? {
            shifted.set_tag("timeShiftUnit", unit.clone());
            shifted.set_tag("timeShift", shift.to_string());
            let name = format!("timeShift({}, {unit}, {shift})", shifted.name);
            rename(&mut shifted, name);
            shifted.start = start;
            shifted.end = end;
            results.push(shifted);
        }
    }
    Ok(Value::SeriesList(results))
}

// ---------------------------------------------------------------------------------------------
// aggregateLine, weightedAverage

fn aggregate_line(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let func = match args.get("func") {
        None => "average".to_string(),
        Some(Value::Str(s)) => s.clone(),
        Some(other) => {
            return Err(QueryError::bad(format!(
                "aggregateLine: argument \"func\" must be the name of an aggregation function, \
                 got {}",
                other.python_repr()
            )))
        }
    };
    let agg = AggFunc::parse(&func)?;
    let keep_step = bool_arg(&args, "keepStep", false)?;
    let mut results = Vec::with_capacity(list.len());
    for s in &list {
        let points = s.points();
        if agg == AggFunc::Multiply && points.is_empty() {
            // reduce() of nothing raises in graphite-web.
            return Err(QueryError::bad(format!(
                "aggregateLine: cannot multiply the values of {}, it has none",
                s.name
            )));
        }
        let value = agg.apply(&points);
        let name = match value {
            Some(v) => format!("aggregateLine({}, {})", s.name, printf_g(v, 6)),
            None => format!("aggregateLine({}, None)", s.name),
        };
        if keep_step {
            let mut out = s.derive(name.clone(), vec![value; s.values.len()]);
            out.path_expression = name;
            results.push(out);
        } else {
            // constantLine: three points over the request's range, named str(value) (count is
            // an int in Python).
            let text = match value {
                None => "None".to_string(),
                Some(v) if agg == AggFunc::Count => format!("{}", v as i64),
                Some(v) => float_repr(v),
            };
            let step = ((ctx.until - ctx.from) as f64 / 2.0) as i64;
            if step <= 0 {
                return Err(QueryError::bad(format!(
                    "aggregateLine: the requested range ({} to {}) is too short for a line",
                    ctx.from, ctx.until
                )));
            }
            let mut out = Series::new(
                text,
                ctx.from,
                ctx.until,
                step,
                vec![value; 3],
                ctx.x_files_factor,
            );
            out.name = name.clone();
            out.path_expression = name;
            results.push(out);
        }
    }
    Ok(Value::SeriesList(results))
}

/// Python's `str()` of a node argument.
fn node_str(n: &Value) -> String {
    match n {
        Value::Str(s) => s.clone(),
        Value::Float(f) => float_repr(*f),
        Value::Int(i) => i.to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::None => "None".to_string(),
        Value::SeriesList(_) => String::new(),
    }
}

/// `sumSeries(list)[0]`'s values and bounds (graphite-web's `aggregate` with `sum`).
fn sum_series(ctx: &Context<'_>, list: &[Series]) -> Option<(i64, i64, i64, Vec<Option<f64>>)> {
    let (norm, start, end, step) = normalize(list)?;
    let xff = ctx.x_files_factor;
    let values = rows(&norm)
        .iter()
        .map(|row| {
            let non_null = row.iter().flatten().count();
            if non_null > 0 && (non_null as f64 / row.len() as f64) >= xff {
                safe_sum(row)
            } else {
                None
            }
        })
        .collect();
    Some((start, end, step, values))
}

/// `izip_longest(a, b)` mapped by `f`.
fn zip_longest(
    a: &[Option<f64>],
    b: &[Option<f64>],
    f: impl Fn(Option<f64>, Option<f64>) -> Option<f64>,
) -> Vec<Option<f64>> {
    (0..a.len().max(b.len()))
        .map(|i| f(a.get(i).copied().flatten(), b.get(i).copied().flatten()))
        .collect()
}

fn weighted_average(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let avg = args.series("seriesListAvg")?;
    let weight = args.series("seriesListWeight")?;
    let nodes = args.all("nodes").to_vec();
    if avg.len() != weight.len() {
        return Err(QueryError::bad(format!(
            "weightedAverage must receive the same number of series for seriesListAvg and \
             seriesListWeight but received respectively {} and {}",
            avg.len(),
            weight.len()
        )));
    }
    // Keys in first-seen order, as a Python dict keeps them.
    let mut keyed: Vec<(Option<usize>, Option<usize>)> = Vec::new();
    let mut positions: HashMap<String, usize> = HashMap::new();
    for (i, (a, w)) in avg.iter().zip(&weight).enumerate() {
        for (key, is_avg) in [
            (agg_key("weightedAverage", a, &nodes)?, true),
            (agg_key("weightedAverage", w, &nodes)?, false),
        ] {
            let pos = *positions.entry(key).or_insert_with(|| {
                keyed.push((None, None));
                keyed.len() - 1
            });
            if is_avg {
                keyed[pos].0 = Some(i);
            } else {
                keyed[pos].1 = Some(i);
            }
        }
    }
    let mut products = Vec::new();
    for (a, w) in &keyed {
        let (Some(a), Some(w)) = (a, w) else {
            continue;
        };
        let (a, w) = (&avg[*a], &weight[*w]);
        let values = zip_longest(&a.points(), &w.points(), |x, y| safe_mul(&[x, y]));
        products.push(Series::new(
            format!("product({},{})", w.name, a.name),
            a.start,
            a.end,
            a.step,
            values,
            ctx.x_files_factor,
        ));
    }
    let Some((start, end, step, products)) = sum_series(ctx, &products) else {
        return Ok(Value::SeriesList(Vec::new()));
    };
    let weights = sum_series(ctx, &weight)
        .map(|(_, _, _, v)| v)
        .unwrap_or_default();
    let values = zip_longest(&products, &weights, safe_div);
    let sorted_paths = |list: &[Series]| {
        let mut paths: Vec<&str> = list.iter().map(|s| s.path_expression.as_str()).collect();
        paths.sort();
        paths.dedup();
        paths.join(",")
    };
    let name = format!(
        "weightedAverage({}, {}, {})",
        sorted_paths(&avg),
        sorted_paths(&weight),
        nodes.iter().map(node_str).collect::<Vec<_>>().join(",")
    );
    Ok(Value::SeriesList(vec![Series::new(
        name,
        start,
        end,
        step,
        values,
        ctx.x_files_factor,
    )]))
}

// ---------------------------------------------------------------------------------------------
// linearRegression

/// `_linearRegressionAnalysis`: (factor, offset) of the least-squares line over the non-null
/// values, None when they do not determine one. Integer sums are exact, as Python's are.
fn regression(series: &Series) -> Option<(f64, f64)> {
    let mut n: i128 = 0;
    let (mut sum_i, mut sum_ii): (i128, i128) = (0, 0);
    let (mut sum_v, mut sum_iv) = (0.0f64, 0.0f64);
    for (i, v) in series.points().into_iter().enumerate() {
        let Some(v) = v else { continue };
        let i = i as i128;
        n += 1;
        sum_i += i;
        sum_ii += i * i;
        sum_v += v;
        sum_iv += i as f64 * v;
    }
    let denominator = (n * sum_ii - sum_i * sum_i) as f64;
    if denominator == 0.0 {
        return None;
    }
    let factor = (n as f64 * sum_iv - sum_i as f64 * sum_v) / denominator / series.step as f64;
    let offset = (sum_ii as f64 * sum_v - sum_iv * sum_i as f64) / denominator
        - factor * series.start as f64;
    Some((factor, offset))
}

fn linear_regression(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let from = date_arg(ctx, &args, "startSourceAt")?.unwrap_or(ctx.from);
    let until = date_arg(ctx, &args, "endSourceAt")?.unwrap_or(ctx.until);
    let sources = refetch(ctx, &list, from, until)?;
    let mut results = Vec::new();
    for (source, series) in sources.iter().zip(list) {
        let Some((factor, offset)) = regression(source) else {
            continue;
        };
        let name = format!("linearRegression({}, {from}, {until})", series.name);
        let values = (0..series.values.len() as i64)
            .map(|i| Some(offset + (series.start + i * series.step) as f64 * factor))
            .collect();
        let mut out = Series::new(
            name.clone(),
            series.start,
            series.end,
            series.step,
            values,
            series.x_files_factor,
        );
        out.tags = series.tags;
        out.set_tag("linearRegressions", format!("{from}, {until}"));
        results.push(out);
    }
    Ok(Value::SeriesList(results))
}

// ---------------------------------------------------------------------------------------------
// Holt-Winters

const HW_ALPHA: f64 = 0.1;
const HW_GAMMA: f64 = 0.1;
const HW_BETA: f64 = 0.0035;

/// `holtWintersAnalysis`: the predictions and deviations for each value.
fn hw_analysis(
    function: &str,
    values: &[Option<f64>],
    season_length: i64,
) -> Result<(Vec<Option<f64>>, Vec<f64>), QueryError> {
    let n = values.len();
    let mut intercepts: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut slopes: Vec<f64> = Vec::with_capacity(n);
    let mut seasonals: Vec<f64> = Vec::with_capacity(n);
    let mut predictions: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut deviations: Vec<f64> = Vec::with_capacity(n);
    // graphite-web indexes past what it has computed (an IndexError) when a season is shorter
    // than two points.
    let too_short = || {
        QueryError::bad(format!(
            "{function}: seasonality must cover at least two points of the series"
        ))
    };
    let last = |list: &[f64], i: i64| -> Result<f64, QueryError> {
        let j = i - season_length;
        if j < 0 {
            return Ok(0.0);
        }
        list.get(j as usize).copied().ok_or_else(too_short)
    };
    let mut next_pred: Option<f64> = None;
    for (i, actual) in values.iter().enumerate() {
        let Some(actual) = *actual else {
            intercepts.push(None);
            slopes.push(0.0);
            seasonals.push(0.0);
            predictions.push(next_pred);
            deviations.push(0.0);
            next_pred = None;
            continue;
        };
        let (last_intercept, last_slope, prediction) = if i == 0 {
            (actual, 0.0, Some(actual))
        } else {
            let li = intercepts.last().copied().flatten().unwrap_or(actual);
            (li, slopes.last().copied().unwrap_or(0.0), next_pred)
        };
        let i = i as i64;
        let last_seasonal = last(&seasonals, i)?;
        let next_last_seasonal = last(&seasonals, i + 1)?;
        let last_seasonal_dev = last(&deviations, i)?;
        let intercept =
            HW_ALPHA * (actual - last_seasonal) + (1.0 - HW_ALPHA) * (last_intercept + last_slope);
        let slope = HW_BETA * (intercept - last_intercept) + (1.0 - HW_BETA) * last_slope;
        let seasonal = HW_GAMMA * (actual - intercept) + (1.0 - HW_GAMMA) * last_seasonal;
        next_pred = Some(intercept + slope + next_last_seasonal);
        let deviation = HW_GAMMA * (actual - prediction.unwrap_or(0.0)).abs()
            + (1.0 - HW_GAMMA) * last_seasonal_dev;
        intercepts.push(Some(intercept));
        slopes.push(slope);
        seasonals.push(seasonal);
        predictions.push(prediction);
        deviations.push(deviation);
    }
    Ok((predictions, deviations))
}

/// One re-fetched series with its analysis cut to the requested range.
struct HwResult {
    series: Series,
    start: i64,
    forecast: Vec<Option<f64>>,
    deviation: Vec<f64>,
}

/// The shared part of the Holt-Winters functions: the first argument fetched again with
/// `bootstrapInterval` more history, analysed, and cut back (`[windowPoints:]`).
fn hw_run(ctx: &mut Context<'_>, args: &mut Args) -> Result<Vec<HwResult>, QueryError> {
    let function = args.function();
    let list = args.series("seriesList")?;
    let preview = interval_arg(args, "bootstrapInterval", "7d")?;
    let seasonality = interval_arg(args, "seasonality", "1d")?;
    if preview < 0 {
        return Err(QueryError::bad(format!(
            "{function}: bootstrapInterval must not be negative"
        )));
    }
    let from = ctx
        .from
        .checked_sub(preview)
        .ok_or_else(|| QueryError::bad(format!("{function}: bootstrapInterval is too large")))?;
    let mut out = Vec::new();
    for mut series in refetch(ctx, &list, from, ctx.until)? {
        let points = series.points();
        let season_length = seasonality.div_euclid(series.step.max(1));
        let (predictions, deviations) = hw_analysis(function, &points, season_length)?;
        let window = (preview.div_euclid(series.step.max(1)) as usize).min(predictions.len());
        series.set_tag("holtWintersForecast", "1");
        series.set_tag("holtWintersDeviation", "1");
        out.push(HwResult {
            start: series.start + preview,
            forecast: predictions[window..].to_vec(),
            deviation: deviations[window..].to_vec(),
            series,
        });
    }
    Ok(out)
}

/// A result series as graphite-web's `TimeSeries(name, start, end, step, values, tags=...)`.
fn hw_series(r: &HwResult, name: String, values: Vec<Option<f64>>) -> Series {
    let mut s = Series::new(
        name,
        r.start,
        r.series.end,
        r.series.step,
        values,
        r.series.x_files_factor,
    );
    s.tags = r.series.tags.clone();
    s
}

fn holt_winters_forecast(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let results = hw_run(ctx, &mut args)?;
    let list = results
        .iter()
        .map(|r| {
            let name = format!("holtWintersForecast({})", r.series.name);
            hw_series(r, name, r.forecast.clone())
        })
        .collect();
    Ok(Value::SeriesList(list))
}

/// The lower and upper bands, in that order, for each re-fetched series.
fn confidence_bands(ctx: &mut Context<'_>, args: &mut Args) -> Result<Vec<Series>, QueryError> {
    let delta = args.int("delta", 3)? as f64;
    let mut out = Vec::new();
    for mut r in hw_run(ctx, args)? {
        // graphite-web's bands share the series' tags, so both carry both marks.
        r.series.set_tag("holtWintersConfidenceUpper", "1");
        r.series.set_tag("holtWintersConfidenceLower", "1");
        let (mut lower, mut upper) = (Vec::new(), Vec::new());
        for (f, d) in r.forecast.iter().zip(&r.deviation) {
            match f {
                Some(f) => {
                    let scaled = delta * d;
                    upper.push(Some(f + scaled));
                    lower.push(Some(f - scaled));
                }
                None => {
                    upper.push(None);
                    lower.push(None);
                }
            }
        }
        let mut lower = hw_series(
            &r,
            format!("holtWintersConfidenceLower({})", r.series.name),
            lower,
        );
        let mut upper = hw_series(
            &r,
            format!("holtWintersConfidenceUpper({})", r.series.name),
            upper,
        );
        lower.path_expression = r.series.path_expression.clone();
        upper.path_expression = r.series.path_expression.clone();
        out.push(lower);
        out.push(upper);
    }
    Ok(out)
}

fn holt_winters_confidence_bands(
    ctx: &mut Context<'_>,
    mut args: Args,
) -> Result<Value, QueryError> {
    Ok(Value::SeriesList(confidence_bands(ctx, &mut args)?))
}

fn holt_winters_confidence_area(
    ctx: &mut Context<'_>,
    mut args: Args,
) -> Result<Value, QueryError> {
    let mut bands = confidence_bands(ctx, &mut args)?;
    if bands.len() != 2 {
        return Err(QueryError::bad(format!(
            "holtWintersConfidenceArea: the series list must be exactly one series (it gives \
             {} bands, areaBetween needs exactly 2)",
            bands.len()
        )));
    }
    let name = format!("areaBetween({})", bands[1].path_expression)
        .replace("areaBetween", "holtWintersConfidenceArea");
    let mut tags = bands[1].tags.clone();
    tags.remove("areaBetween");
    tags.insert("holtWintersConfidenceArea".to_string(), "1".to_string());
    for b in &mut bands {
        b.tags = tags.clone();
        rename(b, name.clone());
    }
    Ok(Value::SeriesList(bands))
}

fn holt_winters_aberration(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = match args.get("seriesList") {
        Some(Value::SeriesList(l)) => l.clone(),
        _ => args.series("seriesList")?,
    };
    let bands = confidence_bands(ctx, &mut args)?;
    // A dict by name in graphite-web: the last band of a name wins.
    let by_name: HashMap<&str, &Series> = bands.iter().map(|b| (b.name.as_str(), b)).collect();
    let find = |name: String| {
        by_name.get(name.as_str()).copied().ok_or_else(|| {
            QueryError::bad(format!(
                "holtWintersAberration: no band {name} (the series fetched again do not \
                     match the input)"
            ))
        })
    };
    let mut results = Vec::with_capacity(list.len());
    for series in list {
        let lower = find(format!("holtWintersConfidenceLower({})", series.name))?;
        let upper = find(format!("holtWintersConfidenceUpper({})", series.name))?;
        let mut aberration = Vec::with_capacity(series.values.len());
        for i in 0..series.points().len() {
            let Some(actual) = series.values.get(i).copied().flatten() else {
                aberration.push(Some(0.0));
                continue;
            };
            let band = |b: &Series| -> Result<Option<f64>, QueryError> {
                b.values.get(i).copied().ok_or_else(|| {
                    QueryError::bad(format!(
                        "holtWintersAberration: {} has fewer points than {} (the series fetched \
                         with the bootstrap interval came from another archive)",
                        b.name, series.name
                    ))
                })
            };
            let (up, low) = (band(upper)?, band(lower)?);
            aberration.push(Some(match (up, low) {
                (Some(u), _) if actual > u => actual - u,
                (_, Some(l)) if actual < l => actual - l,
                _ => 0.0,
            }));
        }
        let name = format!("holtWintersAberration({})", series.name);
        let mut out = Series::new(
            name,
            series.start,
            series.end,
            series.step,
            aberration,
            series.x_files_factor,
        );
        out.tags = series.tags;
        out.set_tag("holtWintersAberration", "1");
        results.push(out);
    }
    Ok(Value::SeriesList(results))
}

// ---------------------------------------------------------------------------------------------
// compressPeriodicGaps

/// `_summarizeValues(series, 'last', interval, newStart, series.end)`.
fn summarize_last(series: &Series, interval: i64, new_start: i64) -> Vec<Option<f64>> {
    let datapoints = series.points();
    let timestamps: Vec<i64> = (series.start..series.end)
        .step_by(series.step.max(1) as usize)
        .collect();
    let interval_points = interval as f64 / series.step as f64;
    let num_points = timestamps.len().min(datapoints.len());
    let mut out = Vec::new();
    let mut i = 0;
    let mut ts = new_start;
    while ts < series.end {
        let mut s = i;
        let mut non_null = 0usize;
        while i < num_points && timestamps[i] < ts + interval {
            if timestamps[i] <= ts {
                s = i;
            }
            if timestamps[i] >= ts && datapoints[i].is_some() {
                non_null += 1;
            }
            i += 1;
        }
        let keep = non_null > 0
            && interval_points != 0.0
            && non_null as f64 / interval_points >= series.x_files_factor;
        out.push(if keep {
            datapoints[s..i].iter().rev().flatten().next().copied()
        } else {
            None
        });
        ts += interval;
    }
    out
}

fn compress(series: Series) -> Series {
    // Python truthiness: zeros count as missing.
    let truthy = |v: Option<f64>| v.is_some_and(|v| v != 0.0);
    let points = series.points();
    let (mut first_seen, mut second_seen) = (0usize, 0usize);
    for (i, v) in points.iter().enumerate() {
        if truthy(*v) {
            if first_seen > 0 {
                second_seen = i;
                break;
            }
            first_seen = i;
        }
    }
    let guess = second_seen as i64 - first_seen as i64;
    let third = second_seen as i64 + guess;
    let len = series.values.len() as i64;
    let raw = |i: i64| series.values.get(i as usize).copied().flatten();
    let periodic = guess > 1
        && third <= len - 2
        && truthy(raw(third))
        && raw(third - 1).is_none()
        && raw(third + 1).is_none();
    if !periodic {
        return series;
    }
    let interval = guess * series.step;
    let new_start = series.start + first_seen as i64 * series.step;
    let values = summarize_last(&series, interval, new_start);
    let mut out = series.derive(series.name.clone(), values);
    out.start = new_start;
    out.end = new_start + interval * (out.values.len() as i64 - 1);
    out.step = interval;
    out
}

fn compress_periodic_gaps(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let out = list
        .into_iter()
        .map(|mut s| {
            let name = format!("compressPeriodicGaps({})", s.name);
            rename(&mut s, name);
            compress(s)
        })
        .collect();
    Ok(Value::SeriesList(out))
}

// ---------------------------------------------------------------------------------------------
// Generated series

fn identity(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let name = name_arg(&args)?;
    let n = generated_len(ctx, "identity", 60)?;
    let values = (0..n as i64)
        .map(|k| Some((ctx.from + k * 60) as f64))
        .collect();
    let mut s = Series::new(
        name.clone(),
        ctx.from,
        ctx.until,
        60,
        values,
        ctx.x_files_factor,
    );
    s.path_expression = format!("identity(\"{name}\")");
    Ok(Value::SeriesList(vec![s]))
}

fn time_function(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let name = name_arg(&args)?;
    let step = args.int("step", 60)?;
    let n = generated_len(ctx, args.function(), step)?;
    let values = (0..n as i64)
        .map(|k| Some((ctx.from + k * step) as f64))
        .collect();
    let s = Series::new(name, ctx.from, ctx.until, step, values, ctx.x_files_factor);
    Ok(Value::SeriesList(vec![s]))
}

fn sin_function(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let name = name_arg(&args)?;
    let amplitude = args.int("amplitude", 1)? as f64;
    let step = args.int("step", 60)?;
    let n = generated_len(ctx, args.function(), step)?;
    let values = (0..n as i64)
        .map(|k| Some(((ctx.from + k * step) as f64).sin() * amplitude))
        .collect();
    let s = Series::new(name, ctx.from, ctx.until, step, values, ctx.x_files_factor);
    Ok(Value::SeriesList(vec![s]))
}

/// splitmix64 with a fixed seed: deterministic, so the same request draws the same walk.
struct Walk(u64);

impl Walk {
    /// A float uniform in [0, 1) from the top 53 bits.
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn random_walk(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let name = name_arg(&args)?;
    let step = args.int("step", 60)?;
    let n = generated_len(ctx, args.function(), step)?;
    let mut rng = Walk(0x6361_7262_6964_6521);
    let mut current = 0.0;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(Some(current));
        current += rng.next() - 0.5;
    }
    let s = Series::new(name, ctx.from, ctx.until, step, values, ctx.x_files_factor);
    Ok(Value::SeriesList(vec![s]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_round() {
        assert_eq!(py_round(2.675, 2), 2.67);
        assert_eq!(py_round(1250.0, -2), 1200.0);
        assert_eq!(py_round(1350.0, -2), 1400.0);
        assert_eq!(py_round(1250.5, -2), 1300.0);
        assert_eq!(py_round(-1251.0, -2), -1300.0);
        assert_eq!(py_round(999.0, -3), 1000.0);
        assert_eq!(py_round(499.0, -3), 0.0);
        assert_eq!(py_round(500.0, -3), 0.0);
        assert_eq!(py_round(1500.0, -3), 2000.0);
        assert_eq!(py_round(123.456, -400), 0.0);
        assert_eq!(py_round(0.5, 0), 0.0);
        assert_eq!(py_round(1.5, 0), 2.0);
        assert!(py_round(-0.4, 0).is_sign_negative());
    }

    #[test]
    fn logit_domain() {
        assert_eq!(logit_value(1.0), None);
        assert_eq!(logit_value(0.0), None);
        assert_eq!(logit_value(2.0), None);
        assert_eq!(logit_value(0.5), Some(0.0));
    }
}
