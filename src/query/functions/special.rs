//! Special and Graph: consolidateBy and cumulative (how maxDataPoints merges values),
//! constantLine and threshold (series made from the request's range), and the Graph functions
//! whose effect on graphite-web's JSON is a new name and tag (dashed, secondYAxis,
//! drawAsInfinite) or nothing at all (color, alpha, lineWidth only style PNG graphs).

use super::filter::{py_int, req_float, series_only};
use super::{FunctionDef, Literal, Param, ParamType};
use crate::python::format::{float_repr, printf_g};
use crate::query::error::QueryError;
use crate::query::eval::Context;
use crate::query::series::{Consolidation, Series};
use crate::query::value::{Args, Value};

const SERIES: Param = Param::required("seriesList", ParamType::SeriesList);

pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "consolidateBy",
        group: "Special",
        signature: "consolidateBy(seriesList, consolidationFunc)",
        description: "Sets the function that merges values when a series has more points than \
                      maxDataPoints allows (average by default).",
        params: &[
            SERIES,
            Param::required("consolidationFunc", ParamType::String).options(&[
                "average", "avg", "avg_zero", "first", "last", "max", "min", "sum",
            ]),
        ],
        run: consolidate_by,
    },
    FunctionDef {
        name: "cumulative",
        group: "Special",
        signature: "cumulative(seriesList)",
        description: "Makes maxDataPoints merge values by summing them (consolidateBy sum).",
        params: &[SERIES],
        run: cumulative,
    },
    FunctionDef {
        name: "constantLine",
        group: "Special",
        signature: "constantLine(value)",
        description: "A series with the given value at the start, middle and end of the \
                      requested range.",
        params: &[Param::required("value", ParamType::Float)],
        run: constant_line,
    },
    FunctionDef {
        name: "threshold",
        group: "Graph",
        signature: "threshold(value, label=None, color=None)",
        description: "A constant line at the given value, named by the label when one is given.",
        params: &[
            Param::required("value", ParamType::Float),
            Param::optional("label", ParamType::String),
            Param::optional("color", ParamType::String),
        ],
        run: threshold,
    },
    FunctionDef {
        name: "color",
        group: "Graph",
        signature: "color(seriesList, theColor)",
        description: "Sets the series' color in rendered graphs; data and names are unchanged.",
        params: &[SERIES, Param::required("theColor", ParamType::String)],
        run: |_, a| pass_through(a, "theColor", ArgKind::Str),
    },
    FunctionDef {
        name: "alpha",
        group: "Graph",
        signature: "alpha(seriesList, alpha)",
        description: "Sets the series' transparency in rendered graphs; data and names are \
                      unchanged.",
        params: &[SERIES, Param::required("alpha", ParamType::Float)],
        run: |_, a| pass_through(a, "alpha", ArgKind::Float),
    },
    FunctionDef {
        name: "lineWidth",
        group: "Graph",
        signature: "lineWidth(seriesList, width)",
        description: "Sets the series' line width in rendered graphs; data and names are \
                      unchanged.",
        params: &[SERIES, Param::required("width", ParamType::Float)],
        run: |_, a| pass_through(a, "width", ArgKind::Float),
    },
    FunctionDef {
        name: "dashed",
        group: "Graph",
        signature: "dashed(seriesList, dashLength=5)",
        description: "Draws the series dashed in rendered graphs; the name records the dash \
                      length.",
        params: &[
            SERIES,
            Param::optional("dashLength", ParamType::Integer).with_default(Literal::Int(5)),
        ],
        run: dashed,
    },
    FunctionDef {
        name: "substr",
        group: "Special",
        signature: "substr(seriesList, start=0, stop=0)",
        description: "Names each series after the dot-separated nodes start to stop (stop 0: to \
                      the end) of its metric path.",
        params: &[
            SERIES,
            Param::optional("start", ParamType::Node).with_default(Literal::Int(0)),
            Param::optional("stop", ParamType::Node).with_default(Literal::Int(0)),
        ],
        run: substr,
    },
    FunctionDef {
        name: "setXFilesFactor",
        group: "Special",
        signature: "setXFilesFactor(seriesList, xFilesFactor)",
        description: "Sets the fraction of non-null values a consolidated point needs, for these \
                      series and for everything the request fetches afterwards.",
        params: &[SERIES, Param::required("xFilesFactor", ParamType::Float)],
        run: set_x_files_factor,
    },
    FunctionDef {
        name: "xFilesFactor",
        group: "Special",
        signature: "xFilesFactor(seriesList, xFilesFactor)",
        description: "Sets the fraction of non-null values a consolidated point needs, for these \
                      series and for everything the request fetches afterwards.",
        params: &[SERIES, Param::required("xFilesFactor", ParamType::Float)],
        run: set_x_files_factor,
    },
    FunctionDef {
        name: "fallbackSeries",
        group: "Special",
        signature: "fallbackSeries(seriesList, fallback)",
        description: "The series list, or the fallback series when the list is empty.",
        params: &[SERIES, Param::required("fallback", ParamType::SeriesList)],
        run: fallback_series,
    },
    FunctionDef {
        name: "areaBetween",
        group: "Graph",
        signature: "areaBetween(seriesList)",
        description: "Marks exactly two series as the bounds of an area; both take the name \
                      and tags of the second.",
        params: &[SERIES],
        run: area_between,
    },
    series_only!(
        "Graph",
        "secondYAxis",
        "Draws the series against the second Y axis in rendered graphs.",
        |_, a| wrap_name(a, "secondYAxis")
    ),
    series_only!(
        "Graph",
        "drawAsInfinite",
        "Draws positive values as vertical lines across rendered graphs.",
        |_, a| wrap_name(a, "drawAsInfinite")
    ),
];

fn consolidate_by(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let func = match args.opt_str("consolidationFunc")? {
        Some(f) => f.to_string(),
        None => {
            return Err(QueryError::bad(
                "consolidateBy: argument \"consolidationFunc\" must be a string, got None",
            ))
        }
    };
    set_consolidation(list, &func)
}

fn cumulative(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    set_consolidation(list, "sum")
}

/// consolidateBy: the name keeps the function as written (`avg` stays `avg`).
fn set_consolidation(mut list: Vec<Series>, func: &str) -> Result<Value, QueryError> {
    let Some(cf) = Consolidation::from_name(func) else {
        // graphite-web stores any string and fails only when it must consolidate (a 500).
        return Err(QueryError::bad(format!(
            "consolidateBy: invalid consolidation function {}; use one of sum, average, avg, \
             avg_zero, min, max, first, last",
            crate::python::text::repr(func)
        )));
    };
    for s in &mut list {
        s.consolidation = cf;
        s.set_tag("consolidateBy", func);
        s.name = format!("consolidateBy({},\"{func}\")", s.name);
        s.path_expression = s.name.clone();
    }
    Ok(Value::SeriesList(list))
}

/// graphite-web's constantLine: three points, at `from`, half-way (rounded down) and the end
/// of the request's range, named `str(value)`.
fn constant_series(ctx: &Context<'_>, value: f64) -> Result<Series, QueryError> {
    let (start, end) = (ctx.from, ctx.until);
    let step = ((end - start) as f64 / 2.0) as i64;
    if step <= 0 {
        // graphite-web fails with a zero step (a 500).
        return Err(QueryError::bad(format!(
            "constantLine: the requested range ({start} to {end}) is too short for a line"
        )));
    }
    let text = float_repr(value);
    let mut series = Series::new(
        text.clone(),
        start,
        end,
        step,
        vec![Some(value); 3],
        ctx.x_files_factor,
    );
    series.path_expression = format!("constantLine({text})");
    Ok(series)
}

fn constant_line(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let value = req_float(&args, "value")?;
    Ok(Value::SeriesList(vec![constant_series(ctx, value)?]))
}

fn threshold(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let value = req_float(&args, "value")?;
    let mut series = constant_series(ctx, value)?;
    if let Some(label) = args.opt_str("label")? {
        if !label.is_empty() {
            series.name = label.to_string();
        }
    }
    args.opt_str("color")?;
    Ok(Value::SeriesList(vec![series]))
}

enum ArgKind {
    Str,
    Float,
}

/// color, alpha, lineWidth: graphite-web sets drawing options its JSON does not show.
fn pass_through(mut args: Args, param: &str, kind: ArgKind) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    match kind {
        ArgKind::Str => {
            args.opt_str(param)?;
        }
        ArgKind::Float => {
            req_float(&args, param)?;
        }
    }
    Ok(Value::SeriesList(list))
}

fn dashed(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    // A float fails graphite-web's integer validation and is then used as given.
    let (shown, tag) = match args.get("dashLength") {
        None => (printf_g(5.0, 6), "5".to_string()),
        Some(Value::Float(f)) => (printf_g(*f, 6), float_repr(*f)),
        Some(_) => match py_int(&args, "dashLength")? {
            Some(n) => (printf_g(n as f64, 6), n.to_string()),
            None => {
                return Err(QueryError::bad(
                    "dashed: argument \"dashLength\" must be a number, got None",
                ))
            }
        },
    };
    for s in &mut list {
        s.set_tag("dashed", tag.clone());
        s.name = format!("dashed({}, {shown})", s.name);
    }
    Ok(Value::SeriesList(list))
}

/// secondYAxis, drawAsInfinite: the name wrapped and a tag set to 1.
fn wrap_name(mut args: Args, fname: &str) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.set_tag(fname, "1");
        s.name = format!("{fname}({})", s.name);
    }
    Ok(Value::SeriesList(list))
}

/// `int(n)` of a `node` argument: integers (and numeric strings) as validated, or a float that
/// failed validation and is then truncated by graphite-web's `int()`.
fn node_arg(args: &Args, name: &str, default: i64) -> Result<i64, QueryError> {
    match args.get(name) {
        None | Some(Value::None) => Ok(default),
        Some(Value::Float(f)) if f.is_finite() => Ok(f.trunc() as i64),
        Some(_) => Ok(py_int(args, name)?.unwrap_or(default)),
    }
}

fn substr(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let start = node_arg(&args, "start", 0)?;
    let stop = node_arg(&args, "stop", 0)?;
    for s in &mut list {
        s.name = super::alias::substr_name(&s.name, start, stop);
    }
    Ok(Value::SeriesList(list))
}

/// setXFilesFactor: graphite-web also stores the value in the request context, so series
/// fetched later in the request (later arguments, later targets) get it too.
fn set_x_files_factor(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let xff = req_float(&args, "xFilesFactor")?;
    ctx.x_files_factor = xff;
    for s in &mut list {
        s.x_files_factor = xff;
        s.set_tag("xFilesFactor", float_repr(xff));
    }
    Ok(Value::SeriesList(list))
}

fn fallback_series(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let fallback = args.series("fallback")?;
    Ok(Value::SeriesList(if list.is_empty() {
        fallback
    } else {
        list
    }))
}

/// areaBetween: the lower series takes the upper one's tags (which gain `areaBetween=1`) and
/// both are named after the upper one's path expression.
fn area_between(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    if list.len() != 2 {
        return Err(QueryError::bad(format!(
            "areaBetween: the series list must hold exactly 2 series, not {}",
            list.len()
        )));
    }
    list[1].set_tag("areaBetween", "1");
    let name = format!("areaBetween({})", list[1].path_expression);
    let tags = list[1].tags.clone();
    for s in &mut list {
        s.tags = tags.clone();
        s.name = name.clone();
    }
    Ok(Value::SeriesList(list))
}
