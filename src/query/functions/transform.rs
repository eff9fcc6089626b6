//! Transform: functions that change each series' values or time axis on its own (scale,
//! derivatives, integrals, null handling, timeShift, delay), with graphite-web 1.1.10's exact
//! names, tags and None handling. graphite-web writes most of these in place over the series'
//! iteration (consolidated when `valuesPerPoint` > 1) and the others build a copy whose path
//! expression becomes the new name; both shapes are kept so that the names later functions
//! see, and the values, are the same.

use super::{FunctionDef, Literal, Param, ParamType};
use crate::python::format::{float_repr, printf_g};
use crate::query::error::QueryError;
use crate::query::eval::Context;
use crate::query::series::{python_max, python_min, Series};
use crate::query::time::{is_dst, parse_time_offset};
use crate::query::value::{Args, Value};

const SERIES_LIST: Param = Param::required("seriesList", ParamType::SeriesList);
const ONLY_SERIES: &[Param] = &[SERIES_LIST];
const FACTOR: &[Param] = &[SERIES_LIST, Param::required("factor", ParamType::Float)];
const MAX_MIN: &[Param] = &[
    SERIES_LIST,
    Param::optional("maxValue", ParamType::Float),
    Param::optional("minValue", ParamType::Float),
];
const LIMIT: &[Param] = &[
    SERIES_LIST,
    Param::optional("limit", ParamType::IntOrInf).with_default(Literal::Float(f64::INFINITY)),
];
pub(crate) const SHIFT_SUGGESTIONS: &[Literal] = &[
    Literal::Str("1h"),
    Literal::Str("6h"),
    Literal::Str("12h"),
    Literal::Str("1d"),
    Literal::Str("2d"),
    Literal::Str("7d"),
    Literal::Str("14d"),
    Literal::Str("30d"),
];

pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "absolute",
        group: "Transform",
        signature: "absolute(seriesList)",
        description: "Replaces every value with its absolute value.",
        params: ONLY_SERIES,
        run: absolute,
    },
    FunctionDef {
        name: "add",
        group: "Transform",
        signature: "add(seriesList, constant)",
        description: "Adds a constant to every non-null value.",
        params: &[SERIES_LIST, Param::required("constant", ParamType::Float)],
        run: add,
    },
    FunctionDef {
        name: "changed",
        group: "Special",
        signature: "changed(seriesList)",
        description: "Gives 1 where the value differs from the last non-null value seen, \
                      0 elsewhere (nulls included).",
        params: ONLY_SERIES,
        run: changed,
    },
    FunctionDef {
        name: "delay",
        group: "Transform",
        signature: "delay(seriesList, steps)",
        description: "Moves the values later (or, with a negative count, earlier) by a number \
                      of steps, padding the vacated end with nulls.",
        params: &[SERIES_LIST, Param::required("steps", ParamType::Integer)],
        run: delay,
    },
    FunctionDef {
        name: "derivative",
        group: "Transform",
        signature: "derivative(seriesList)",
        description: "The difference between each value and the one before it (null where \
                      either is null); not divided by the step.",
        params: ONLY_SERIES,
        run: derivative,
    },
    FunctionDef {
        name: "integral",
        group: "Transform",
        signature: "integral(seriesList)",
        description: "The running total of the values; nulls stay null and add nothing.",
        params: ONLY_SERIES,
        run: integral,
    },
    FunctionDef {
        name: "integralByInterval",
        group: "Transform",
        signature: "integralByInterval(seriesList, intervalUnit)",
        description: "A running total that restarts from zero every interval, counted from \
                      the start of the requested range.",
        params: &[
            SERIES_LIST,
            Param::required("intervalUnit", ParamType::String),
        ],
        run: integral_by_interval,
    },
    FunctionDef {
        name: "interpolate",
        group: "Transform",
        signature: "interpolate(seriesList, limit=inf)",
        description: "Fills runs of nulls (at most `limit` long) by drawing a straight line \
                      between the values on either side.",
        params: LIMIT,
        run: interpolate,
    },
    FunctionDef {
        name: "invert",
        group: "Transform",
        signature: "invert(seriesList)",
        description: "Replaces every value x with 1/x (null for zero).",
        params: ONLY_SERIES,
        run: invert,
    },
    FunctionDef {
        name: "isNonNull",
        group: "Transform",
        signature: "isNonNull(seriesList)",
        description: "Gives 1 where the series has a value and 0 where it is null.",
        params: ONLY_SERIES,
        run: is_non_null,
    },
    FunctionDef {
        name: "keepLastValue",
        group: "Transform",
        signature: "keepLastValue(seriesList, limit=inf)",
        description: "Fills runs of nulls (at most `limit` long) with the last value before \
                      them.",
        params: LIMIT,
        run: keep_last_value,
    },
    FunctionDef {
        name: "log",
        group: "Transform",
        signature: "log(seriesList, base=10)",
        description: "The logarithm of every value in the given base; null for values that \
                      are not positive.",
        params: &[
            SERIES_LIST,
            Param::optional("base", ParamType::Integer).with_default(Literal::Int(10)),
        ],
        run: log,
    },
    FunctionDef {
        name: "minMax",
        group: "Transform",
        signature: "minMax(seriesList)",
        description: "Rescales each series to [0, 1]: (value - min) / (max - min).",
        params: ONLY_SERIES,
        run: min_max,
    },
    FunctionDef {
        name: "nonNegativeDerivative",
        group: "Transform",
        signature: "nonNegativeDerivative(seriesList, maxValue=None, minValue=None)",
        description: "The increase since the previous value, for counters: a decrease is null, \
                      or a wrap at maxValue / to minValue when those are given.",
        params: MAX_MIN,
        run: non_negative_derivative,
    },
    FunctionDef {
        name: "offset",
        group: "Transform",
        signature: "offset(seriesList, factor)",
        description: "Adds a constant to every non-null value.",
        params: FACTOR,
        run: offset,
    },
    FunctionDef {
        name: "offsetToZero",
        group: "Transform",
        signature: "offsetToZero(seriesList)",
        description: "Subtracts the series' minimum from every value, so its lowest point is 0.",
        params: ONLY_SERIES,
        run: offset_to_zero,
    },
    FunctionDef {
        name: "perSecond",
        group: "Transform",
        signature: "perSecond(seriesList, maxValue=None, minValue=None)",
        description: "nonNegativeDerivative divided by the step: a counter's rate per second, \
                      rounded to 6 decimals.",
        params: MAX_MIN,
        run: per_second,
    },
    FunctionDef {
        name: "pow",
        group: "Transform",
        signature: "pow(seriesList, factor)",
        description: "Raises every value to the given power (null where the result is not a \
                      real number or overflows).",
        params: FACTOR,
        run: pow,
    },
    FunctionDef {
        name: "scale",
        group: "Transform",
        signature: "scale(seriesList, factor)",
        description: "Multiplies every value by a constant.",
        params: FACTOR,
        run: scale,
    },
    FunctionDef {
        name: "scaleToSeconds",
        group: "Transform",
        signature: "scaleToSeconds(seriesList, seconds)",
        description: "Turns a per-step value into a per-`seconds` value (value * seconds / \
                      step), rounded to 6 decimals.",
        params: &[SERIES_LIST, Param::required("seconds", ParamType::Float)],
        run: scale_to_seconds,
    },
    FunctionDef {
        name: "squareRoot",
        group: "Transform",
        signature: "squareRoot(seriesList)",
        description: "The square root of every value (null for negative values).",
        params: ONLY_SERIES,
        run: square_root,
    },
    FunctionDef {
        name: "timeShift",
        group: "Transform",
        signature: "timeShift(seriesList, timeShift, resetEnd=True, alignDST=False)",
        description: "Draws the series as they were at another time: fetched again for the \
                      range moved by the interval (back in time unless it starts with +) and \
                      placed on the requested range.",
        params: &[
            SERIES_LIST,
            Param::required("timeShift", ParamType::Interval).suggestions(SHIFT_SUGGESTIONS),
            Param::optional("resetEnd", ParamType::Boolean).with_default(Literal::Bool(true)),
            Param::optional("alignDst", ParamType::Boolean).with_default(Literal::Bool(false)),
        ],
        run: time_shift,
    },
    FunctionDef {
        name: "transformNull",
        group: "Transform",
        signature: "transformNull(seriesList, default=0, referenceSeries=None)",
        description: "Replaces nulls with a default value; with referenceSeries, only where \
                      one of those series has a value.",
        params: &[
            SERIES_LIST,
            Param::optional("default", ParamType::Float).with_default(Literal::Int(0)),
            Param::optional("referenceSeries", ParamType::SeriesList),
        ],
        run: transform_null,
    },
];

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// graphite-web's in-place loop `for i, v in enumerate(series): series[i] = f(v)`: iteration
/// yields consolidated values when `valuesPerPoint` > 1 while the assignment indexes the raw
/// list.
fn map_in_place(series: &mut Series, mut f: impl FnMut(Option<f64>) -> Option<f64>) {
    let points = series.points();
    for (i, v) in points.into_iter().enumerate() {
        if let Some(slot) = series.values.get_mut(i) {
            *slot = f(v);
        }
    }
}

/// Sets the name and, as graphite-web does for every function here, the path expression.
fn rename(series: &mut Series, name: String) {
    series.path_expression = name.clone();
    series.name = name;
}

/// `series.copy(name=..., values=...)`: same range, step, tags, consolidation and
/// xFilesFactor; the path expression is the new name.
fn copy_with(series: &Series, name: String, values: Vec<Option<f64>>) -> Series {
    let mut out = series.derive(name.clone(), values);
    out.path_expression = name;
    out
}

/// Python's `str()` of a float argument after graphite-web's validation made it a float.
fn str_float(v: f64) -> String {
    float_repr(v)
}

/// Python's `"%g" % float(v)`.
fn percent_g(v: f64) -> String {
    printf_g(v, 6)
}

/// Python's `"%d" % v` for a float: truncation toward zero, any size; NaN and infinities raise
/// in Python, a 400 here.
fn percent_d(function: &str, arg: &str, v: f64) -> Result<String, QueryError> {
    if !v.is_finite() {
        return Err(QueryError::bad(format!(
            "{function}: argument {arg:?} must be a finite number to name the series, got {}",
            float_repr(v)
        )));
    }
    let t = v.trunc();
    Ok(if t == 0.0 {
        "0".to_string()
    } else {
        format!("{t:.0}")
    })
}

/// Python's `round(x, 6)`: the correctly rounded 6-decimal value (ties to even on the exact
/// binary value), infinities and NaN unchanged.
fn round6(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{x:.6}").parse::<f64>().unwrap_or(x)
}

/// `safe.safePow(a, b)`: Python's `math.pow`, None where it raises (a negative base with a
/// fractional exponent, zero to a negative power, overflow of finite operands).
fn safe_pow(a: Option<f64>, b: f64) -> Option<f64> {
    let a = a?;
    if a.is_finite() && b.is_finite() {
        if a == 0.0 && b < 0.0 {
            return None;
        }
        if a < 0.0 && b.fract() != 0.0 {
            return None;
        }
        let r = a.powf(b);
        if r.is_infinite() {
            return None;
        }
        return Some(r);
    }
    // C99 special cases, which CPython's math.pow returns without raising.
    Some(a.powf(b))
}

/// `safe.safeMin` / `safe.safeMax` over the non-null values (None when there are none).
fn safe_min(values: &[Option<f64>]) -> Option<f64> {
    let usable: Vec<f64> = values.iter().flatten().copied().collect();
    (!usable.is_empty()).then(|| python_min(&usable))
}

fn safe_max(values: &[Option<f64>]) -> Option<f64> {
    let usable: Vec<f64> = values.iter().flatten().copied().collect();
    (!usable.is_empty()).then(|| python_max(&usable))
}

/// An `intOrInf` argument as a comparable limit: an integer, `inf`, or the default `inf`.
fn int_or_inf(args: &Args, name: &str) -> Result<f64, QueryError> {
    match args.get(name) {
        None | Some(Value::None) => Ok(f64::INFINITY),
        Some(Value::Int(i)) => Ok(*i as f64),
        Some(Value::Bool(b)) => Ok(if *b { 1.0 } else { 0.0 }),
        Some(Value::Float(f)) if *f == f64::INFINITY => Ok(*f),
        Some(other) => Err(QueryError::bad(format!(
            "{}: argument {name:?} must be an integer or inf, got {} {}",
            args.function(),
            other.type_name(),
            other.python_repr()
        ))),
    }
}

/// `_nonNegativeDelta(val, prev, maxValue, minValue)` -> (delta, new prev).
///
/// graphite-web compares a None value with maxValue/minValue, which raises TypeError on
/// Python 3 (a 500 for any series with a gap once either bound is given). Here a None value
/// skips those checks; the result, (None, None), is what the comparison gave on Python 2.
fn non_negative_delta(
    val: Option<f64>,
    prev: Option<f64>,
    max_value: Option<f64>,
    min_value: Option<f64>,
) -> (Option<f64>, Option<f64>) {
    if let Some(v) = val {
        if max_value.is_some_and(|m| v > m) || min_value.is_some_and(|m| v < m) {
            return (None, None);
        }
    }
    let (Some(v), Some(p)) = (val, prev) else {
        return (None, val);
    };
    if v >= p {
        return (Some(v - p), val);
    }
    if let Some(max) = max_value {
        return (Some(max + 1.0 + v - p - min_value.unwrap_or(0.0)), val);
    }
    if let Some(min) = min_value {
        return (Some(v - min), val);
    }
    (None, val)
}

// ---------------------------------------------------------------------------------------------
// Point-wise arithmetic (in place)

fn scale(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let factor = args.float("factor", 0.0)?;
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("scale", str_float(factor));
        rename(s, format!("scale({},{})", s.name, percent_g(factor)));
        map_in_place(s, |v| v.map(|x| x * factor));
    }
    Ok(Value::SeriesList(list))
}

fn scale_to_seconds(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let seconds = args.float("seconds", 0.0)?;
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("scaleToSeconds", str_float(seconds));
        let name = format!(
            "scaleToSeconds({},{})",
            s.name,
            percent_d("scaleToSeconds", "seconds", seconds)?
        );
        rename(s, name);
        let factor = seconds / s.step as f64;
        map_in_place(s, |v| v.map(|x| round6(x * factor)));
    }
    Ok(Value::SeriesList(list))
}

fn offset(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let factor = args.float("factor", 0.0)?;
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("offset", str_float(factor));
        rename(s, format!("offset({},{})", s.name, percent_g(factor)));
        // Only non-null points are written back.
        let points = s.points();
        for (i, v) in points.into_iter().enumerate() {
            if let (Some(x), Some(slot)) = (v, s.values.get_mut(i)) {
                *slot = Some(x + factor);
            }
        }
    }
    Ok(Value::SeriesList(list))
}

fn add(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let constant = args.float("constant", 0.0)?;
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("add", str_float(constant));
        let name = format!(
            "add({},{})",
            s.name,
            percent_d("add", "constant", constant)?
        );
        rename(s, name);
        map_in_place(s, |v| v.map(|x| x + constant));
    }
    Ok(Value::SeriesList(list))
}

fn offset_to_zero(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        let points = s.points();
        let minimum = safe_min(&points);
        s.set_tag(
            "offsetToZero",
            minimum.map_or_else(|| "None".to_string(), float_repr),
        );
        rename(s, format!("offsetToZero({})", s.name));
        if let Some(m) = minimum {
            for (i, v) in points.into_iter().enumerate() {
                if let (Some(x), Some(slot)) = (v, s.values.get_mut(i)) {
                    *slot = Some(x - m);
                }
            }
        }
    }
    Ok(Value::SeriesList(list))
}

fn absolute(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("absolute", "1");
        rename(s, format!("absolute({})", s.name));
        map_in_place(s, |v| v.map(f64::abs));
    }
    Ok(Value::SeriesList(list))
}

fn invert(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("invert", "1");
        rename(s, format!("invert({})", s.name));
        map_in_place(s, |v| safe_pow(v, -1.0));
    }
    Ok(Value::SeriesList(list))
}

fn pow(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let factor = args.float("factor", 0.0)?;
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("pow", str_float(factor));
        rename(s, format!("pow({},{})", s.name, percent_g(factor)));
        map_in_place(s, |v| safe_pow(v, factor));
    }
    Ok(Value::SeriesList(list))
}

fn square_root(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("squareRoot", "1");
        rename(s, format!("squareRoot({})", s.name));
        // math.pow(x, 0.5), not sqrt: the two can differ in the last bit.
        map_in_place(s, |v| safe_pow(v, 0.5));
    }
    Ok(Value::SeriesList(list))
}

fn log(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let base = args.int("base", 10)?;
    let mut list = args.series("seriesList")?;
    // math.log(x, base) is log(x) / log(base); graphite-web only fails on a bad base when a
    // positive value reaches it, so the check waits for one.
    let denominator = if base > 0 { (base as f64).ln() } else { 0.0 };
    let mut out = Vec::with_capacity(list.len());
    for s in &mut list {
        let mut values = Vec::with_capacity(s.values.len());
        for v in s.points() {
            match v {
                // NaN is not <= 0, so it reaches the logarithm.
                Some(x) if x > 0.0 || x.is_nan() => {
                    if denominator == 0.0 {
                        return Err(QueryError::bad(format!(
                            "log: argument \"base\" must be a positive integer other than 1, \
                             got {base}"
                        )));
                    }
                    values.push(Some(x.ln() / denominator));
                }
                _ => values.push(None),
            }
        }
        s.set_tag("log", base.to_string());
        out.push(copy_with(s, format!("log({}, {base})", s.name), values));
    }
    Ok(Value::SeriesList(out))
}

fn min_max(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        rename(s, format!("minMax({})", s.name));
        let points = s.points();
        let lo = safe_min(&points).unwrap_or(0.0);
        let hi = safe_max(&points).unwrap_or(0.0);
        for (i, v) in points.into_iter().enumerate() {
            let Some(slot) = s.values.get_mut(i) else {
                break;
            };
            if let (Some(_), Some(x)) = (*slot, v) {
                let range = hi - lo;
                // Python's float division by zero raises; graphite-web answers 0.0 then.
                *slot = Some(if range == 0.0 { 0.0 } else { (x - lo) / range });
            }
        }
    }
    Ok(Value::SeriesList(list))
}

// ---------------------------------------------------------------------------------------------
// Derivatives and integrals (new series)

fn derivative(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let mut out = Vec::with_capacity(list.len());
    for s in &mut list {
        let mut prev: Option<f64> = None;
        let values = s
            .points()
            .into_iter()
            .map(|v| {
                let d = match (prev, v) {
                    (Some(p), Some(x)) => Some(x - p),
                    _ => None,
                };
                prev = v;
                d
            })
            .collect();
        s.set_tag("derivative", "1");
        out.push(copy_with(s, format!("derivative({})", s.name), values));
    }
    Ok(Value::SeriesList(out))
}

fn non_negative_derivative(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let max_value = args.opt_float("maxValue")?;
    let min_value = args.opt_float("minValue")?;
    let mut list = args.series("seriesList")?;
    let mut out = Vec::with_capacity(list.len());
    for s in &mut list {
        let mut prev = None;
        let values = s
            .points()
            .into_iter()
            .map(|v| {
                let (delta, p) = non_negative_delta(v, prev, max_value, min_value);
                prev = p;
                delta
            })
            .collect();
        s.set_tag("nonNegativeDerivative", "1");
        out.push(copy_with(
            s,
            format!("nonNegativeDerivative({})", s.name),
            values,
        ));
    }
    Ok(Value::SeriesList(out))
}

fn per_second(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let max_value = args.opt_float("maxValue")?;
    let min_value = args.opt_float("minValue")?;
    let mut list = args.series("seriesList")?;
    let mut out = Vec::with_capacity(list.len());
    for s in &mut list {
        let step = s.step as f64;
        let mut prev = None;
        let values = s
            .points()
            .into_iter()
            .map(|v| {
                let (delta, p) = non_negative_delta(v, prev, max_value, min_value);
                prev = p;
                delta.map(|d| round6(d / step))
            })
            .collect();
        s.set_tag("perSecond", "1");
        out.push(copy_with(s, format!("perSecond({})", s.name), values));
    }
    Ok(Value::SeriesList(out))
}

fn integral(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let mut out = Vec::with_capacity(list.len());
    for s in &mut list {
        let mut current = 0.0;
        let values = s
            .points()
            .into_iter()
            .map(|v| {
                v.map(|x| {
                    current += x;
                    current
                })
            })
            .collect();
        s.set_tag("integral", "1");
        out.push(copy_with(s, format!("integral({})", s.name), values));
    }
    Ok(Value::SeriesList(out))
}

fn integral_by_interval(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let unit = args.str("intervalUnit", "")?;
    let duration = parse_time_offset(&unit)?.abs();
    if duration == 0 {
        return Err(QueryError::bad(format!(
            "integralByInterval: argument \"intervalUnit\" must be a non-zero interval, \
             got {unit:?}"
        )));
    }
    let start_time = ctx.from;
    let mut list = args.series("seriesList")?;
    let mut out = Vec::with_capacity(list.len());
    for s in &mut list {
        let step = s.step;
        let mut t = s.start;
        let mut current = 0.0;
        let mut values = Vec::with_capacity(s.values.len());
        for v in s.points() {
            let here = (t - start_time).div_euclid(duration);
            let before = (t - start_time - step).div_euclid(duration);
            if here != before {
                current = 0.0;
            }
            // A null keeps the running total (which may just have been reset) as its value.
            if let Some(x) = v {
                current += x;
            }
            values.push(Some(current));
            t += step;
        }
        s.set_tag("integralByInterval", unit.clone());
        out.push(copy_with(
            s,
            format!("integralByInterval({},'{unit}')", s.name),
            values,
        ));
    }
    Ok(Value::SeriesList(out))
}

// ---------------------------------------------------------------------------------------------
// Null handling

fn keep_last_value(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let limit = int_or_inf(&args, "limit")?;
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        rename(s, format!("keepLastValue({})", s.name));
        let points = s.points();
        let mut nones = 0usize;
        let mut last: Option<f64> = None;
        let fills = |n: usize| n > 0 && (n as f64) <= limit;
        for (i, v) in points.iter().enumerate() {
            match v {
                None => nones += 1,
                Some(x) => {
                    if fills(nones) && last.is_some() {
                        for slot in &mut s.values[i - nones..i] {
                            *slot = last;
                        }
                    }
                    nones = 0;
                    last = Some(*x);
                }
            }
        }
        // A trailing run is filled by position from the end of the raw list.
        if fills(nones) && last.is_some() {
            let len = s.values.len();
            for slot in &mut s.values[len.saturating_sub(nones)..] {
                *slot = last;
            }
        }
    }
    Ok(Value::SeriesList(list))
}

fn interpolate(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let limit = int_or_inf(&args, "limit")?;
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        rename(s, format!("interpolate({})", s.name));
        let points = s.points();
        let vals = &mut s.values;
        let mut nones = 0usize;
        for (i, value) in points.into_iter().enumerate() {
            if i >= vals.len() {
                break;
            }
            vals[i] = value;
            if i == 0 {
                continue;
            }
            let Some(x) = value else {
                nones += 1;
                continue;
            };
            if nones == 0 {
                continue;
            }
            // The run started after index 0 (that value is never counted), so this is >= 0.
            let before = i - nones - 1;
            let Some(anchor) = vals.get(before).copied().flatten() else {
                nones = 0;
                continue;
            };
            if (nones as f64) <= limit {
                let divisor = (nones + 1) as f64;
                for (k, slot) in (1..).zip(&mut vals[i - nones..i]) {
                    *slot = Some(anchor + f64::from(k) * (x - anchor) / divisor);
                }
            }
            nones = 0;
        }
    }
    Ok(Value::SeriesList(list))
}

fn transform_null(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    // Absent, graphite-web's default is the int 0 (tag "0"); given, validation made it a float.
    let given = args.has("default");
    let default = args.float("default", 0.0)?;
    let reference = if args.has("referenceSeries") {
        args.series("referenceSeries")?
    } else {
        Vec::new()
    };
    let mut list = args.series("seriesList")?;
    // Rows of the reference series by index (izip_longest): the default applies where any of
    // them has a value, None elsewhere.
    let defaults: Vec<Option<f64>> = if reference.is_empty() {
        Vec::new()
    } else {
        let points: Vec<Vec<Option<f64>>> = reference.iter().map(Series::points).collect();
        let len = points.iter().map(Vec::len).max().unwrap_or(0);
        (0..len)
            .map(|i| {
                points
                    .iter()
                    .any(|p| p.get(i).copied().flatten().is_some())
                    .then_some(default)
            })
            .collect()
    };
    let tag = if given {
        float_repr(default)
    } else {
        "0".to_string()
    };
    for s in &mut list {
        s.set_tag("transformNull", tag.clone());
        let name = if reference.is_empty() {
            format!("transformNull({},{})", s.name, percent_g(default))
        } else {
            s.set_tag("referenceSeries", "1");
            format!(
                "transformNull({},{},referenceSeries)",
                s.name,
                percent_g(default)
            )
        };
        rename(s, name);
        let points = s.points();
        s.values = if defaults.is_empty() {
            points.into_iter().map(|v| v.or(Some(default))).collect()
        } else {
            // The longer of the two decides the length, as izip_longest does.
            let len = points.len().max(defaults.len());
            (0..len)
                .map(|i| {
                    points
                        .get(i)
                        .copied()
                        .flatten()
                        .or_else(|| defaults.get(i).copied().flatten())
                })
                .collect()
        };
    }
    Ok(Value::SeriesList(list))
}

fn is_non_null(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag("isNonNull", "1");
        rename(s, format!("isNonNull({})", s.name));
        s.values = s
            .points()
            .into_iter()
            .map(|v| Some(if v.is_some() { 1.0 } else { 0.0 }))
            .collect();
    }
    Ok(Value::SeriesList(list))
}

fn changed(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        rename(s, format!("changed({})", s.name));
        let mut previous: Option<f64> = None;
        map_in_place(s, |v| match (previous, v) {
            (None, _) => {
                previous = v;
                Some(0.0)
            }
            (Some(p), Some(x)) if p != x => {
                previous = v;
                Some(1.0)
            }
            _ => Some(0.0),
        });
    }
    Ok(Value::SeriesList(list))
}

// ---------------------------------------------------------------------------------------------
// Time axis

fn delay(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let steps = args.int("steps", 0)?;
    let mut list = args.series("seriesList")?;
    let mut out = Vec::with_capacity(list.len());
    for s in &mut list {
        let values = delayed(&s.values, steps);
        s.set_tag("delay", steps.to_string());
        out.push(copy_with(s, format!("delay({},{steps})", s.name), values));
    }
    Ok(Value::SeriesList(out))
}

/// graphite-web's list slicing for delay, on the raw values. `delay(x, 0)` slices
/// `series[:-0]`, which is empty, so the result has no values at all; kept as is.
fn delayed(values: &[Option<f64>], steps: i64) -> Vec<Option<f64>> {
    let len = values.len();
    let n = steps.unsigned_abs().min(len as u64) as usize;
    if steps < 0 {
        let mut v = values[n..].to_vec();
        v.extend(std::iter::repeat_n(None, n));
        v
    } else if steps == 0 {
        Vec::new()
    } else {
        let mut v = vec![None; n];
        v.extend_from_slice(&values[..len - n]);
        v
    }
}

fn time_shift(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut shift = args.str("timeShift", "")?;
    let reset_end = args.bool("resetEnd", true)?;
    let align_dst = args.bool("alignDst", false)?;
    let Some(first) = shift.chars().next() else {
        return Err(QueryError::bad(
            "timeShift: argument \"timeShift\" must not be empty",
        ));
    };
    // Unlike from/until, an unsigned shift means the past. graphite-web adds the '-' when the
    // first character is a (Unicode) digit; any other first character but a sign fails to
    // parse with or without it, so every unsigned string gets it.
    if first != '+' && first != '-' {
        shift.insert(0, '-');
    }
    let delta = parse_time_offset(&shift)?;
    let mut from = ctx.from + delta;
    let mut until = ctx.until + delta;
    if align_dst {
        let request = (is_dst(ctx.tz, ctx.from), is_dst(ctx.tz, ctx.until));
        let shifted = (is_dst(ctx.tz, from), is_dst(ctx.tz, until));
        // Only a range wholly on one side of DST moved to one wholly on the other is corrected.
        let correction = match (request, shifted) {
            ((true, true), (false, false)) => 3600,
            ((false, false), (true, true)) => -3600,
            _ => 0,
        };
        from += correction;
        until += correction;
    }
    let list = args.series("seriesList")?;
    let Some(reference) = list.first() else {
        return Ok(Value::SeriesList(Vec::new()));
    };
    let (start, end) = (reference.start, reference.end);
    // graphite-web evaluates its first argument again, as written, over the shifted range.
    let Some(first) = ctx.raw_args().first().cloned() else {
        return Ok(Value::SeriesList(Vec::new()));
    };
    let mut out = Vec::new();
    for mut s in ctx.evaluate_expr_in(&first, from, until)? {
        s.set_tag("timeShift", shift.clone());
        s.name = format!("timeShift({}, \"{shift}\")", s.name);
        s.end = if reset_end {
            end
        } else {
            s.end - s.start + start
        };
        s.start = start;
        out.push(s);
    }
    Ok(Value::SeriesList(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round6_matches_python() {
        // Values checked against CPython 3.11's round(x, 6).
        assert_eq!(round6(1.0 / 6.0), 0.166667);
        assert_eq!(round6(0.0078125), 0.007812);
        assert_eq!(round6(0.0234375), 0.023438);
        assert_eq!(round6(-1e-7).to_bits(), (-0.0f64).to_bits());
        assert_eq!(round6(2.5e-6), 3e-6);
        assert_eq!(round6(1e300), 1e300);
        assert!(round6(f64::NAN).is_nan());
        assert_eq!(round6(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn safe_pow_matches_math_pow() {
        assert_eq!(safe_pow(Some(-8.0), 1.0 / 3.0), None);
        assert_eq!(safe_pow(Some(0.0), -1.0), None);
        assert_eq!(safe_pow(Some(-2.0), 3.0), Some(-8.0));
        assert_eq!(safe_pow(Some(10.0), 400.0), None);
        assert_eq!(safe_pow(Some(f64::INFINITY), 2.0), Some(f64::INFINITY));
        assert_eq!(safe_pow(Some(1.0), f64::NAN), Some(1.0));
        assert_eq!(safe_pow(Some(f64::NAN), 0.0), Some(1.0));
        assert_eq!(safe_pow(None, 2.0), None);
    }

    #[test]
    fn percent_d_truncates() {
        assert_eq!(percent_d("f", "a", 1.9).unwrap(), "1");
        assert_eq!(percent_d("f", "a", -0.5).unwrap(), "0");
        assert_eq!(percent_d("f", "a", -2.5).unwrap(), "-2");
        assert_eq!(percent_d("f", "a", 1e20).unwrap(), "100000000000000000000");
        assert!(percent_d("f", "a", f64::INFINITY).is_err());
    }

    #[test]
    fn delay_slices_like_python() {
        let v = [Some(1.0), Some(2.0), Some(3.0)];
        assert_eq!(delayed(&v, 1), vec![None, Some(1.0), Some(2.0)]);
        assert_eq!(delayed(&v, -1), vec![Some(2.0), Some(3.0), None]);
        assert_eq!(delayed(&v, 5), vec![None, None, None]);
        assert_eq!(delayed(&v, -5), vec![None, None, None]);
        assert_eq!(delayed(&v, 0), Vec::<Option<f64>>::new());
    }

    #[test]
    fn wrap_handling() {
        // Counter wrapped at 255: 250 -> 4 is 255 + 1 + 4 - 250 = 10.
        assert_eq!(
            non_negative_delta(Some(4.0), Some(250.0), Some(255.0), None),
            (Some(10.0), Some(4.0))
        );
        assert_eq!(
            non_negative_delta(Some(4.0), Some(250.0), None, Some(2.0)),
            (Some(2.0), Some(4.0))
        );
        assert_eq!(
            non_negative_delta(Some(4.0), Some(250.0), None, None),
            (None, Some(4.0))
        );
        assert_eq!(
            non_negative_delta(Some(300.0), Some(250.0), Some(255.0), None),
            (None, None)
        );
        assert_eq!(
            non_negative_delta(None, Some(250.0), Some(255.0), None),
            (None, None)
        );
    }
}
