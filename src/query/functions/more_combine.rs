//! Functions that regroup series or evaluate further targets built from series names (group,
//! mapSeries, reduceSeries, applyByNode, useSeriesAbove, aliasQuery), the legend formatters
//! (legendValue, cactiStyle, whose number formatting follows Python's `%` operator exactly), and
//! the Graph leftovers verticalLine, stacked and events, as graphite-web 1.1.10 does them.
//!
//! mapSeries returns a list of series lists in graphite-web; Carbide's values have no such
//! shape, so it returns the groups concatenated in group order, which is all reduceSeries (the
//! only consumer graphite-web accepts) looks at.

use super::aggfuncs::{safe_last, safe_max, safe_min, AggFunc};
use super::alias::python_re::PyRegex;
use super::alias::{agg_key, node_keys, python_index, python_slice};
use super::{FunctionDef, Param, ParamType};
use crate::python::format::{float_repr, printf_e, printf_f, printf_g};
use crate::query::error::QueryError;
use crate::query::eval::Context;
use crate::query::series::{python_max, Series};
use crate::query::value::{Args, Value};

const SERIES: Param = Param::required("seriesList", ParamType::SeriesList);

const MAP_PARAMS: &[Param] = &[
    SERIES,
    Param::required("mapNodes", ParamType::NodeOrTag).multiple(),
];

const REDUCE_PARAMS: &[Param] = &[
    Param::required("seriesLists", ParamType::SeriesLists),
    Param::required("reduceFunction", ParamType::String),
    Param::required("reduceNode", ParamType::Node),
    Param::required("reduceMatchers", ParamType::String).multiple(),
];

/// legendValue's accepted value types: the aggregation functions, their deprecated `*Series`
/// spellings (accepted, shown as `(?)`) and the unit systems.
const LEGEND_OPTIONS: &[&str] = &[
    "average",
    "averageSeries",
    "avg",
    "avgSeries",
    "avg_zero",
    "avg_zeroSeries",
    "binary",
    "count",
    "countSeries",
    "current",
    "currentSeries",
    "diff",
    "diffSeries",
    "last",
    "lastSeries",
    "max",
    "maxSeries",
    "median",
    "medianSeries",
    "min",
    "minSeries",
    "multiply",
    "multiplySeries",
    "range",
    "rangeOf",
    "rangeOfSeries",
    "rangeSeries",
    "si",
    "stddev",
    "stddevSeries",
    "sum",
    "sumSeries",
    "total",
    "totalSeries",
];

pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "group",
        group: "Combine",
        signature: "group(*seriesLists)",
        description: "Joins any number of series lists into one, so several can be passed where \
                      a function takes a single list.",
        params: &[Param::optional("seriesLists", ParamType::SeriesList).multiple()],
        run: group,
    },
    FunctionDef {
        name: "mapSeries",
        group: "Combine",
        signature: "mapSeries(seriesList, *mapNodes)",
        description: "Groups the series by the given nodes or tags, for reduceSeries (Carbide \
                      returns the groups one after the other).",
        params: MAP_PARAMS,
        run: map_series,
    },
    FunctionDef {
        name: "map",
        group: "Combine",
        signature: "map(seriesList, *mapNodes)",
        description: "Short form of mapSeries: groups the series by the given nodes or tags, \
                      for reduce.",
        params: MAP_PARAMS,
        run: map_series,
    },
    FunctionDef {
        name: "reduceSeries",
        group: "Combine",
        signature: "reduceSeries(seriesLists, reduceFunction, reduceNode, *reduceMatchers)",
        description: "For each prefix before the reduce node, calls the named function with the \
                      series whose reduce node equals each matcher, in matcher order, and names \
                      the result <prefix>.reduce.<function>.",
        params: REDUCE_PARAMS,
        run: reduce_series,
    },
    FunctionDef {
        name: "reduce",
        group: "Combine",
        signature: "reduce(seriesLists, reduceFunction, reduceNode, *reduceMatchers)",
        description: "Short form of reduceSeries: applies the named function to the series \
                      matched per prefix, in matcher order.",
        params: REDUCE_PARAMS,
        run: reduce_series,
    },
    FunctionDef {
        name: "applyByNode",
        group: "Combine",
        signature: "applyByNode(seriesList, nodeNum, templateFunction, newName=None)",
        description: "Evaluates the template target once per distinct name prefix (nodes up to \
                      nodeNum), with % replaced by the prefix; newName renames the results the \
                      same way.",
        params: &[
            SERIES,
            Param::required("nodeNum", ParamType::Node),
            Param::required("templateFunction", ParamType::String),
            Param::optional("newName", ParamType::String),
        ],
        run: apply_by_node,
    },
    FunctionDef {
        name: "useSeriesAbove",
        group: "Filter Series",
        signature: "useSeriesAbove(seriesList, value, search, replace)",
        description: "For each series whose maximum exceeds the value, fetches instead the \
                      series named by a regular expression search and replace on its name.",
        params: &[
            SERIES,
            Param::required("value", ParamType::Float),
            Param::required("search", ParamType::String),
            Param::required("replace", ParamType::String),
        ],
        run: use_series_above,
    },
    FunctionDef {
        name: "aliasQuery",
        group: "Alias",
        signature: "aliasQuery(seriesList, search, replace, newName)",
        description: "Names each series with a printf-style template filled with the last \
                      value of the target its name becomes after a regular expression replace.",
        params: &[
            SERIES,
            Param::required("search", ParamType::String),
            Param::required("replace", ParamType::String),
            Param::required("newName", ParamType::String),
        ],
        run: alias_query,
    },
    FunctionDef {
        name: "cactiStyle",
        group: "Special",
        signature: "cactiStyle(seriesList, system=None, units=None)",
        description: "Appends column-aligned current, maximum and minimum values to each name, \
                      optionally in si or binary units and with a unit suffix.",
        params: &[
            SERIES,
            Param::optional("system", ParamType::String).options(&["binary", "si"]),
            Param::optional("units", ParamType::String),
        ],
        run: cacti_style,
    },
    FunctionDef {
        name: "legendValue",
        group: "Alias",
        signature: "legendValue(seriesList, *valueTypes)",
        description: "Appends aggregate values of each series (last, avg, total, min, max, ...) \
                      to its name; a final si or binary formats them in those units.",
        params: &[
            SERIES,
            Param::optional("valuesTypes", ParamType::String)
                .multiple()
                .options(LEGEND_OPTIONS),
        ],
        run: legend_value,
    },
    FunctionDef {
        name: "stacked",
        group: "Graph",
        signature: "stacked(seriesLists, stackName='__DEFAULT__')",
        description: "Replaces each value with the running total over the series stacked so \
                      far (per stack name), to stack some series of a graph.",
        params: &[SERIES, Param::optional("stack", ParamType::String)],
        run: stacked,
    },
    FunctionDef {
        name: "verticalLine",
        group: "Graph",
        signature: "verticalLine(ts, label=None, color=None)",
        description: "A series marking one moment of the requested range (value 1 at that \
                      time), named after the label.",
        params: &[
            Param::required("ts", ParamType::Date),
            Param::optional("label", ParamType::String),
            Param::optional("color", ParamType::String),
        ],
        run: vertical_line,
    },
    FunctionDef {
        name: "events",
        group: "Special",
        signature: "events(*tags)",
        description: "graphite-web's count of tagged events; Carbide keeps no events database, \
                      so this function always answers 400.",
        params: &[Param::required("tags", ParamType::String).multiple()],
        run: events,
    },
];

fn group(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    Ok(Value::SeriesList(args.series_all("seriesLists")?))
}

fn map_series(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    let keys = node_keys(&args, "mapNodes")?;
    let mut groups: Vec<(String, Vec<Series>)> = Vec::new();
    for s in list {
        let key = agg_key(&s, &keys)?;
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(s),
            None => groups.push((key, vec![s])),
        }
    }
    Ok(Value::SeriesList(
        groups.into_iter().flat_map(|(_, m)| m).collect(),
    ))
}

/// A required string argument (None refused).
fn req_str(args: &Args, name: &str) -> Result<String, QueryError> {
    args.opt_str(name)?.map(str::to_string).ok_or_else(|| {
        QueryError::bad(format!(
            "{}: argument {name:?} must be a string, got None",
            args.function()
        ))
    })
}

/// The strings of a `multiple` string parameter.
fn str_all(args: &Args, name: &str) -> Result<Vec<String>, QueryError> {
    args.all(name)
        .iter()
        .map(|v| match v {
            Value::Str(s) => Ok(s.clone()),
            other => Err(QueryError::bad(format!(
                "{}: argument {name:?} must be strings, got {} {}",
                args.function(),
                other.type_name(),
                other.python_repr()
            ))),
        })
        .collect()
}

fn reduce_series(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let function = args.function();
    let list = args.series("seriesLists")?;
    let reduce_name = req_str(&args, "reduceFunction")?;
    let Some(reduce_node) = args.opt_int("reduceNode")? else {
        return Err(QueryError::bad(format!(
            "{function}: argument \"reduceNode\" must be an integer, got None"
        )));
    };
    let matchers = str_all(&args, "reduceMatchers")?;
    let mut groups: Vec<(String, Vec<Option<Series>>)> = Vec::new();
    for s in list {
        let nodes: Vec<&str> = s.name.split('.').collect();
        let Some(at) = python_index(nodes.len(), reduce_node) else {
            return Err(QueryError::bad(format!(
                "{function}: series {} has no node {reduce_node}",
                crate::python::text::repr(&s.name)
            )));
        };
        let node = nodes[at];
        let Some(slot) = matchers.iter().position(|m| m == node) else {
            continue;
        };
        let (a, b) = python_slice(nodes.len(), 0, Some(reduce_node));
        let prefix = if a < b {
            nodes[a..b].join(".")
        } else {
            String::new()
        };
        let key = format!("{prefix}.reduce.{reduce_name}");
        let members = match groups.iter().position(|(k, _)| *k == key) {
            Some(i) => &mut groups[i].1,
            None => {
                groups.push((key, vec![None; matchers.len()]));
                let last = groups.len() - 1;
                &mut groups[last].1
            }
        };
        members[slot] = Some(s);
    }
    if groups.is_empty() {
        return Ok(Value::SeriesList(Vec::new()));
    }
    let Some(def) = super::lookup(&reduce_name) else {
        return Err(QueryError::bad(format!(
            "{function}: unknown reduce function {reduce_name:?}"
        )));
    };
    let mut out = Vec::with_capacity(groups.len());
    for (key, members) in groups {
        let mut positional = Vec::with_capacity(members.len());
        for (matcher, member) in matchers.iter().zip(members) {
            // graphite-web passes None in place of the missing series and the reduce function
            // then fails (a 500); say which series is missing instead.
            let Some(series) = member else {
                return Err(QueryError::bad(format!(
                    "{function}: no series matches {matcher:?} for {key}"
                )));
            };
            positional.push(Value::SeriesList(vec![series]));
        }
        let bound = Args::bind(def.name, def.params, positional, Vec::new())?;
        let result = match (def.run)(ctx, bound)? {
            Value::SeriesList(list) => list.into_iter().next(),
            _ => None,
        };
        let Some(mut series) = result else {
            return Err(QueryError::bad(format!(
                "{function}: {reduce_name} returned no series for {key}"
            )));
        };
        series.name = key;
        out.push(series);
    }
    Ok(Value::SeriesList(out))
}

fn apply_by_node(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let function = args.function();
    let list = args.series("seriesList")?;
    let Some(node) = args.opt_int("nodeNum")? else {
        return Err(QueryError::bad(format!(
            "{function}: argument \"nodeNum\" must be an integer, got None"
        )));
    };
    let template = req_str(&args, "templateFunction")?;
    let new_name = args.opt_str("newName")?.map(str::to_string);
    let mut prefixes: Vec<String> = list
        .iter()
        .map(|s| {
            let nodes: Vec<&str> = s.name.split('.').collect();
            let (a, b) = python_slice(nodes.len(), 0, Some(node.saturating_add(1)));
            if a < b {
                nodes[a..b].join(".")
            } else {
                String::new()
            }
        })
        .collect();
    prefixes.sort();
    prefixes.dedup();
    // graphite-web gives every result the range of the last input series (its loop variable).
    let range = list.last().map(|s| (s.start, s.end));
    let mut out = Vec::new();
    for prefix in prefixes {
        for mut s in ctx.evaluate_target(&template.replace('%', &prefix))? {
            if let Some(n) = new_name.as_deref().filter(|n| !n.is_empty()) {
                s.name = n.replace('%', &prefix);
            }
            s.path_expression = prefix.clone();
            if let Some((start, end)) = range {
                s.start = start;
                s.end = end;
            }
            out.push(s);
        }
    }
    Ok(Value::SeriesList(out))
}

/// Python's `re.sub(search, replace, name)` for every name, compiled once.
fn regex_rewriter(
    args: &Args,
    search: &str,
    replace: &str,
) -> Result<impl Fn(&str) -> String, QueryError> {
    let function = args.function();
    let re = PyRegex::compile(search).map_err(|e| QueryError::bad(format!("{function}: {e}")))?;
    let template = re
        .template(replace)
        .map_err(|e| QueryError::bad(format!("{function}: {e}")))?;
    Ok(move |name: &str| re.sub(&template, name))
}

fn use_series_above(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let function = args.function();
    let list = args.series("seriesList")?;
    let Some(value) = args.opt_float("value")? else {
        return Err(QueryError::bad(format!(
            "{function}: argument \"value\" must be a number, got None"
        )));
    };
    let search = req_str(&args, "search")?;
    let replace = req_str(&args, "replace")?;
    if list.is_empty() {
        return Ok(Value::SeriesList(Vec::new()));
    }
    let rewrite = regex_rewriter(&args, &search, &replace)?;
    let mut names = Vec::new();
    for s in &list {
        let new_name = rewrite(&s.name);
        // graphite-web takes Python's max() of the values with the None in them, which fails
        // (a 500) as soon as a series has a gap; Carbide compares the largest non-null value
        // (a series without any is not above).
        let usable: Vec<f64> = s.points().into_iter().flatten().collect();
        if !usable.is_empty() && python_max(&usable) > value {
            names.push(new_name);
        }
    }
    if names.is_empty() {
        return Ok(Value::SeriesList(Vec::new()));
    }
    let found = ctx.evaluate_target(&format!("group({})", names.join(",")))?;
    Ok(Value::SeriesList(
        found.into_iter().filter(|s| !s.values.is_empty()).collect(),
    ))
}

fn alias_query(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let function = args.function();
    let mut list = args.series("seriesList")?;
    let search = req_str(&args, "search")?;
    let replace = req_str(&args, "replace")?;
    let new_name = req_str(&args, "newName")?;
    if list.is_empty() {
        return Ok(Value::SeriesList(list));
    }
    let rewrite = regex_rewriter(&args, &search, &replace)?;
    for s in &mut list {
        let query = rewrite(&s.name);
        let found = ctx.evaluate_target(&query)?;
        let Some(first) = found.first() else {
            return Err(QueryError::bad(format!(
                "No series found with query: {query}"
            )));
        };
        let Some(current) = safe_last(&first.values) else {
            // graphite-web fails building this message (a 500).
            return Err(QueryError::bad(format!(
                "Cannot get last value of series: {}",
                first.name
            )));
        };
        s.name = percent_format(&new_name, current)
            .map_err(|e| QueryError::bad(format!("{function}: newName {new_name:?}: {e}")))?;
    }
    Ok(Value::SeriesList(list))
}

/// graphite-web's `format_units(v, system=...)` (glyph.py): the value scaled to the largest
/// prefix it reaches and the prefix (with the units appended when given), near-integral
/// values above 1 rounded down.
/// An infinite or NaN value is an error: glyph.py's `math.floor` raises on it (a 500 there).
fn format_units(v: f64, binary: bool, units: Option<&str>) -> Result<(f64, String), String> {
    if !v.is_finite() {
        return Err(format!(
            "cannot format the value {} in units",
            float_repr(v)
        ));
    }
    const SI: [(&str, f64); 5] = [("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)];
    const BINARY: [(&str, f64); 5] = [
        ("Pi", 1125899906842624.0),
        ("Ti", 1099511627776.0),
        ("Gi", 1073741824.0),
        ("Mi", 1048576.0),
        ("Ki", 1024.0),
    ];
    let table = if binary { &BINARY } else { &SI };
    let units = units.unwrap_or("");
    for (prefix, size) in table {
        if v.abs() >= *size {
            let mut v2 = v / size;
            if (v2 - v2.floor()) < 0.00000000001 && v > 1.0 {
                v2 = v2.floor();
            }
            return Ok((v2, format!("{prefix}{units}")));
        }
    }
    let mut v = v;
    if (v - v.floor()) < 0.00000000001 && v > 1.0 {
        v = v.floor();
    }
    Ok((v, units.to_string()))
}

/// Python's `"%*s" % (width, s)`: a negative width pads on the right, by characters.
fn pad(s: &str, width: i64) -> String {
    let len = s.chars().count() as i64;
    let fill = " ".repeat((width.abs() - len).max(0) as usize);
    if width < 0 {
        format!("{s}{fill}")
    } else {
        format!("{fill}{s}")
    }
}

fn cacti_style(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let function = args.function();
    let mut list = args.series("seriesList")?;
    let system = args.opt_str("system")?.map(str::to_string);
    let units = args.opt_str("units")?.map(str::to_string);
    if list.is_empty() {
        return Ok(Value::SeriesList(list));
    }
    if let Some(s) = system.as_deref() {
        // graphite-web does not check the option; its format_units fails on another system.
        if s != "si" && s != "binary" {
            return Err(invalid_option(function, "system", s));
        }
    }
    let units = units.filter(|u| !u.is_empty());
    let fmt = |x: f64| -> Result<String, QueryError> {
        let units_err = |e: String| QueryError::bad(format!("{function}: {e}"));
        Ok(match (system.as_deref(), units.as_deref()) {
            (Some(sys), Some(u)) => {
                let (v, p) = format_units(x, sys == "binary", Some(u)).map_err(units_err)?;
                format!("{} {p}", printf_f(v, 2))
            }
            (Some(sys), None) => {
                let (v, p) = format_units(x, sys == "binary", None).map_err(units_err)?;
                format!("{}{p}", printf_f(v, 2))
            }
            (None, Some(u)) => format!("{} {u}", printf_f(x, 2)),
            (None, None) => printf_f(x, 2),
        })
    };
    // The column widths come from the values truncated to integers, a missing or zero value
    // counting as 3 (`int(x or 3)`).
    let width_of = |v: Option<f64>| -> Result<i64, QueryError> {
        let v = v.filter(|x| *x != 0.0).unwrap_or(3.0);
        if !v.is_finite() {
            // int() of an infinity or NaN raises in graphite-web (a 500).
            return Err(QueryError::bad(format!(
                "{function}: cannot align the non-finite value {}",
                float_repr(v)
            )));
        }
        Ok(fmt(v.trunc())?.chars().count() as i64)
    };
    let mut name_len = 0;
    let (mut last_len, mut max_len, mut min_len) = (0, 0, 0);
    let mut stats = Vec::with_capacity(list.len());
    for s in &list {
        let points = s.points();
        let st = (safe_last(&s.values), safe_max(&points), safe_min(&points));
        name_len = name_len.max(s.name.chars().count() as i64);
        last_len = last_len.max(width_of(st.0)?);
        max_len = max_len.max(width_of(st.1)?);
        min_len = min_len.max(width_of(st.2)?);
        stats.push(st);
    }
    let (last_len, max_len, min_len) = (last_len + 3, max_len + 3, min_len + 3);
    let shown = |v: Option<f64>| v.map_or_else(|| Ok("nan".to_string()), fmt);
    for (s, (last, max, min)) in list.iter_mut().zip(stats) {
        s.name = format!(
            "{} Current:{} Max:{} Min:{} ",
            pad(&s.name, -name_len),
            pad(&shown(last)?, -last_len),
            pad(&shown(max)?, -max_len),
            pad(&shown(min)?, -min_len)
        );
    }
    Ok(Value::SeriesList(list))
}

fn invalid_option(function: &str, param: &str, value: &str) -> QueryError {
    QueryError::bad(format!(
        "Invalid option specified for function \"{function}\" parameter \"{param}\": {}",
        crate::python::text::repr(value)
    ))
}

fn legend_value(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let function = args.function();
    let mut list = args.series("seriesList")?;
    // Python's str() of each value: graphite-web does not check the type either, and a
    // number is simply an unknown value type.
    let mut types: Vec<String> = args
        .all("valuesTypes")
        .iter()
        .map(|v| match v {
            Value::Str(s) => Ok(s.clone()),
            Value::SeriesList(_) => Err(QueryError::bad(format!(
                "{function}: argument \"valuesTypes\" must be strings, got a series list"
            ))),
            other => Ok(other.python_repr()),
        })
        .collect::<Result<_, _>>()?;
    // graphite-web lists the options but does not enforce them: an unknown type shows `(?)`.
    let Some(last) = types.last() else {
        // graphite-web reads valueTypes[-1] unconditionally (a 500).
        return Err(QueryError::bad(format!(
            "{function}: at least one value type is required"
        )));
    };
    let binary = match last.as_str() {
        "si" => Some(false),
        "binary" => Some(true),
        _ => None,
    };
    if binary.is_some() {
        types.pop();
    }
    for t in &types {
        let agg = AggFunc::from_name(t);
        for s in &mut list {
            // The value as Python's `%s` shows it: count is an int, the rest floats, an
            // unknown type the string `(?)`.
            let value = agg.map(|a| {
                let v = if a == AggFunc::Last {
                    a.apply(&s.values)
                } else {
                    a.apply(&s.points())
                };
                (a, v)
            });
            match binary {
                None => {
                    let text = match value {
                        None => "(?)".to_string(),
                        Some((_, None)) => "None".to_string(),
                        Some((AggFunc::Count, Some(v))) => format!("{}", v as i64),
                        Some((_, Some(v))) => float_repr(v),
                    };
                    s.name = format!("{} ({t}: {text})", s.name);
                }
                Some(binary) => {
                    let text = match value {
                        None => "(?)".to_string(),
                        Some((_, None)) => "None".to_string(),
                        Some((_, Some(v))) => {
                            let (v, p) = format_units(v, binary, None)
                                .map_err(|e| QueryError::bad(format!("{function}: {e}")))?;
                            format!("{}{p}", printf_f(v, 2))
                        }
                    };
                    s.name = format!("{}{}{}", pad(&s.name, -20), pad(t, -5), pad(&text, -10));
                }
            }
        }
    }
    Ok(Value::SeriesList(list))
}

/// Adds `list` onto the running totals of one stack, as graphite-web's stacked does with the
/// request's `totalStack[stackName]`: each non-null value becomes the total so far at its
/// position, nulls stay null. `stack` None is the default stack (the name becomes
/// `stacked(<name>)` and the series gets a `stacked` tag); an explicit name keeps names.
pub fn stack_series(totals: &mut Vec<f64>, list: Vec<Series>, stack: Option<&str>) -> Vec<Series> {
    let mut out = Vec::with_capacity(list.len());
    for mut s in list {
        let mut values = Vec::with_capacity(s.values.len());
        for (i, v) in s.values.iter().enumerate() {
            if totals.len() <= i {
                totals.push(0.0);
            }
            match v {
                Some(x) => {
                    totals[i] += x;
                    values.push(Some(totals[i]));
                }
                None => values.push(None),
            }
        }
        let name = if stack.is_none() {
            s.set_tag("stacked", "__DEFAULT__");
            format!("stacked({})", s.name)
        } else {
            s.name.clone()
        };
        let mut stacked = s.derive(name.clone(), values);
        stacked.path_expression = name;
        out.push(stacked);
    }
    out
}

fn stacked(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let list = args.series("seriesList")?;
    // Absent means the default stack; an explicit None is a stack of its own in graphite-web
    // (named None), which keeps the names.
    let stack = match args.get("stack") {
        None => None,
        Some(Value::Str(s)) if s == "__DEFAULT__" => None,
        Some(Value::Str(s)) => Some(s.clone()),
        Some(Value::None) => Some("None".to_string()),
        Some(_) => {
            args.opt_str("stack")?;
            None
        }
    };
    let totals = ctx.stacks.entry(stack.clone()).or_default();
    Ok(Value::SeriesList(stack_series(
        totals,
        list,
        stack.as_deref(),
    )))
}

fn vertical_line(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let function = args.function();
    let Some(ts) = args.opt_str("ts")? else {
        return Err(QueryError::bad(format!(
            "{function}: argument \"ts\" must be a time string, got None"
        )));
    };
    let label = args.opt_str("label")?.map(str::to_string);
    args.opt_str("color")?;
    let ts = crate::query::time::parse_at_time(ts, ctx.tz, ctx.now)?;
    let (start, end) = (ctx.from.min(ctx.until), ctx.from.max(ctx.until));
    if ts < start {
        return Err(QueryError::bad(format!(
            "verticalLine(): timestamp {ts} exists before start of range"
        )));
    }
    if ts > end {
        return Err(QueryError::bad(format!(
            "verticalLine(): timestamp {ts} exists after end of range"
        )));
    }
    // Without a label graphite-web's series is named None (null in JSON, "None" elsewhere).
    let name = label.unwrap_or_else(|| "None".to_string());
    let mut series = Series::new(
        name.clone(),
        ts,
        ts,
        1,
        vec![Some(1.0), Some(1.0)],
        ctx.x_files_factor,
    );
    series.tags = [("name".to_string(), name)].into_iter().collect();
    Ok(Value::SeriesList(vec![series]))
}

fn events(_ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    Err(QueryError::bad(format!(
        "{}: Carbide keeps no events, so events() is not supported",
        args.function()
    )))
}

/// The widest field [`percent_format`] pads to (and the largest precision it expands).
const MAX_FORMAT_WIDTH: usize = 1_000_000;

/// Python's `fmt % value` for one float: the conversions d i u f F e E g G s r a and `%%`,
/// with flags, width and precision. Anything Python would refuse (no conversion, two, `%x` of a
/// float, a mapping key, `*`) is an error saying why.
pub fn percent_format(fmt: &str, value: f64) -> Result<String, String> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut used = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(&next) = chars.get(i) else {
            return Err("incomplete format".into());
        };
        if next == '%' {
            out.push('%');
            i += 1;
            continue;
        }
        if next == '(' {
            return Err("format requires a mapping".into());
        }
        let (mut left, mut zero, mut plus, mut space, mut alt) =
            (false, false, false, false, false);
        while let Some(&f) = chars.get(i) {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                ' ' => space = true,
                '#' => alt = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        if chars.get(i) == Some(&'*') {
            return Err("* wants int".into());
        }
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            width = width.saturating_mul(10).saturating_add(d as usize);
            i += 1;
        }
        let mut precision = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            if chars.get(i) == Some(&'*') {
                return Err("* wants int".into());
            }
            let mut p = 0usize;
            while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                p = p.saturating_mul(10).saturating_add(d as usize);
                i += 1;
            }
            precision = Some(p);
        }
        // Python pads to any width it has memory for (a MemoryError, graphite-web's 500,
        // beyond); a legend a million characters wide is refused before it is built.
        if width.max(precision.unwrap_or(0)) > MAX_FORMAT_WIDTH {
            return Err(format!(
                "width or precision over {MAX_FORMAT_WIDTH} in a format"
            ));
        }
        // Length modifiers are accepted and ignored, as in Python.
        while matches!(chars.get(i), Some('h' | 'l' | 'L')) {
            i += 1;
        }
        let Some(&conv) = chars.get(i) else {
            return Err("incomplete format".into());
        };
        i += 1;
        if used {
            return Err("not enough arguments for format string".into());
        }
        used = true;
        let finite = value.is_finite();
        let body = match conv {
            's' | 'r' | 'a' => {
                let mut s = float_repr(value);
                if let Some(p) = precision {
                    s = s.chars().take(p).collect();
                }
                out.push_str(&pad(&s, if left { -(width as i64) } else { width as i64 }));
                continue;
            }
            'd' | 'i' | 'u' => {
                if value.is_nan() {
                    return Err("cannot convert float NaN to integer".into());
                }
                if value.is_infinite() {
                    return Err("cannot convert float infinity to integer".into());
                }
                let mut digits = format!("{:.0}", value.trunc().abs());
                if let Some(p) = precision {
                    if digits.len() < p {
                        digits = format!("{}{digits}", "0".repeat(p - digits.len()));
                    }
                }
                let neg = value.trunc() < 0.0;
                (neg, digits)
            }
            'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
                let p = precision.unwrap_or(6);
                let s = match conv {
                    'f' | 'F' => {
                        let mut s = printf_f(value.abs(), p);
                        if alt && p == 0 && finite {
                            s.push('.');
                        }
                        s
                    }
                    'e' | 'E' => printf_e(value.abs(), p),
                    _ => {
                        if alt {
                            return Err("the # flag with %g is not supported".into());
                        }
                        printf_g(value.abs(), p)
                    }
                };
                let s = if conv.is_ascii_uppercase() {
                    s.to_uppercase()
                } else {
                    s
                };
                (value.is_sign_negative() && !value.is_nan(), s)
            }
            'x' | 'X' | 'o' => {
                return Err(format!("%{conv} format: an integer is required, not float"))
            }
            'c' => return Err("%c requires int or char".into()),
            other => {
                return Err(format!(
                    "unsupported format character {:?} ({:#x})",
                    other, other as u32
                ))
            }
        };
        let (neg, digits) = body;
        let sign = if neg {
            "-"
        } else if plus {
            "+"
        } else if space {
            " "
        } else {
            ""
        };
        let len = sign.len() + digits.chars().count();
        let fill = width.saturating_sub(len);
        if left {
            out.push_str(sign);
            out.push_str(&digits);
            out.push_str(&" ".repeat(fill));
        } else if zero {
            out.push_str(sign);
            out.push_str(&"0".repeat(fill));
            out.push_str(&digits);
        } else {
            out.push_str(&" ".repeat(fill));
            out.push_str(sign);
            out.push_str(&digits);
        }
    }
    if !used {
        return Err("not all arguments converted during string formatting".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_formats_like_python() {
        assert_eq!(
            percent_format("Channel %d MHz", 2412.7).as_deref(),
            Ok("Channel 2412 MHz")
        );
        assert_eq!(percent_format("%d", -3.9).as_deref(), Ok("-3"));
        assert_eq!(percent_format("%5.1f|", 2.71).as_deref(), Ok("  2.7|"));
        assert_eq!(percent_format("%-6.2f|", -1.0).as_deref(), Ok("-1.00 |"));
        assert_eq!(percent_format("%06.1f", -2.5).as_deref(), Ok("-002.5"));
        assert_eq!(percent_format("%s%%", 0.1).as_deref(), Ok("0.1%"));
        assert_eq!(percent_format("%+.3d", 7.0).as_deref(), Ok("+007"));
        assert_eq!(percent_format("%g", 1e-5).as_deref(), Ok("1e-05"));
        // Found by the `render` fuzz target: aliasQuery(a.b.c,"x","y","%73599999999e") tried
        // to allocate 73 GB (graphite-web: MemoryError, a 500).
        assert!(percent_format("%73599999999e", 1.0).is_err());
        assert!(percent_format("%.73599999999f", 1.0).is_err());
        assert_eq!(percent_format("%12e", 1.0).as_deref(), Ok("1.000000e+00"));
        assert_eq!(
            percent_format("%E", 12345.678).as_deref(),
            Ok("1.234568E+04")
        );
        assert_eq!(
            percent_format("%d", 1e20).as_deref(),
            Ok("100000000000000000000")
        );
        assert!(percent_format("no conversion", 1.0).is_err());
        assert!(percent_format("%d %d", 1.0).is_err());
        assert!(percent_format("%x", 1.0).is_err());
        assert!(percent_format("%d", f64::NAN).is_err());
    }

    #[test]
    fn units_like_glyph() {
        assert_eq!(
            format_units(1500.0, false, None),
            Ok((1.5, "k".to_string()))
        );
        assert!(format_units(f64::INFINITY, false, None).is_err());
        assert_eq!(
            format_units(2048.0, true, Some("B")),
            Ok((2.0, "KiB".to_string()))
        );
        assert_eq!(
            format_units(0.5, false, Some("b")),
            Ok((0.5, "b".to_string()))
        );
        assert_eq!(format_units(-2e6, false, None), Ok((-2.0, "M".to_string())));
    }

    #[test]
    fn pads_like_star_s() {
        assert_eq!(pad("ab", -4), "ab  ");
        assert_eq!(pad("ab", 4), "  ab");
        assert_eq!(pad("abcdef", -4), "abcdef");
    }
}
