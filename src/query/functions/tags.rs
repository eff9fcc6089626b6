//! Tagged series: `groupByTags`, and the registry entry of `seriesByTag` so that `/functions`
//! lists it.
//!
//! `seriesByTag(...)` is not evaluated like other calls: the evaluator hands the call text, as
//! written, to the series source, which resolves it through the tag index (graphite-web does the
//! same in `STORE.fetch`, and the call text becomes the series' path expression). The entry here
//! only carries graphite-web's metadata; its implementation is reached solely when another
//! function looks a callback up by name, and then fetches the same way.
//!
//! groupByTags groups series by the values of some tags and names each group
//! `<name>;tag=value;...`, where `<name>` is the series' common `name` tag, or the callback when
//! they differ (or, when grouping by `name` itself, each group's own name). Each group's result
//! is re-tagged from that key with graphite-web's `TaggedSeries.parse`, so a series lacking one
//! of the tags makes a key graphite-web cannot parse (an empty tag value): graphite-web answers
//! that with a 500, Carbide with a 400 naming the series and the tag.

use super::{FunctionDef, Param, ParamType};
use crate::ingest::name::TaggedSeries;
use crate::query::error::QueryError;
use crate::query::eval::Context;
use crate::query::series::Series;
use crate::query::value::{Args, Value};

pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "seriesByTag",
        group: "Special",
        signature: "seriesByTag(*tagExpressions)",
        description: "The series whose tags satisfy every expression: tag=value, tag!=value, \
                      tag=~regex or tag!=~regex (regular expressions anchored at the start of \
                      the value; an expression matching the empty value also matches series \
                      without the tag). At least one expression must require a non-empty value.",
        params: &[Param::required("tagExpressions", ParamType::String).multiple()],
        run: series_by_tag,
    },
    FunctionDef {
        name: "groupByTags",
        group: "Combine",
        signature: "groupByTags(seriesList, callback, *tags)",
        description: "Groups the series by the values of the given tags and combines each \
                      group with an aggregation or an aggregating series function; each result \
                      is named and tagged `<name>;tag=value;...`.",
        params: &[
            Param::required("seriesList", ParamType::SeriesList),
            Param::required("callback", ParamType::AggOrSeriesFunc)
                .options(super::combine::AGG_OR_SERIES_FUNC_NAMES),
            Param::required("tags", ParamType::Tag).multiple(),
        ],
        run: group_by_tags,
    },
];

/// Only reached when a function runs `seriesByTag` as a callback (the evaluator fetches
/// `seriesByTag(...)` calls itself): rebuilds the call text from the string arguments and
/// fetches it like the evaluator does.
fn series_by_tag(ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    let mut exprs = Vec::new();
    for v in args.all("tagExpressions") {
        match v {
            Value::Str(s) => exprs.push(quote(s)),
            other => {
                return Err(QueryError::bad(format!(
                    "seriesByTag: tag expressions must be strings, got {} {}",
                    other.type_name(),
                    other.python_repr()
                )))
            }
        }
    }
    if exprs.is_empty() {
        return Err(QueryError::bad(
            "seriesByTag: at least one tag expression is required",
        ));
    }
    let call = format!("seriesByTag({})", exprs.join(","));
    Ok(Value::SeriesList(ctx.fetch(&call)?))
}

/// A string literal the grammar reads back as `s`: single quotes unless `s` has one.
fn quote(s: &str) -> String {
    if s.contains('\'') {
        format!("\"{s}\"")
    } else {
        format!("'{s}'")
    }
}

fn group_by_tags(ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let series = args.series("seriesList")?;
    // Like graphite-web (which does not enforce its parameter options), any name is tried:
    // a registered function first, then an aggregation (`medianSeries` works as `median`).
    let callback = match args.get("callback") {
        Some(Value::Str(s)) => s.clone(),
        Some(other) => {
            return Err(QueryError::bad(format!(
                "groupByTags: callback must be the name of an aggregation or series function, \
                 got {} {}",
                other.type_name(),
                other.python_repr()
            )))
        }
        None => {
            return Err(QueryError::bad(
                "groupByTags: missing required argument \"callback\"",
            ))
        }
    };
    let mut tags = Vec::new();
    for v in args.all("tags") {
        match v {
            Value::Str(s) => tags.push(s.clone()),
            other => {
                return Err(QueryError::bad(format!(
                    "groupByTags: tags must be tag names (strings), got {} {}",
                    other.type_name(),
                    other.python_repr()
                )))
            }
        }
    }
    if tags.is_empty() {
        return Err(QueryError::bad("groupByTags(): no tags specified"));
    }
    let by_name = tags.iter().any(|t| t == "name");

    // Without `name` among the tags, every key starts with one shared name: the series' common
    // `name` tag, or the callback when they differ.
    let shared_name = if by_name {
        String::new()
    } else {
        let mut names = series.iter().map(name_tag);
        match names.next() {
            Some(first) => {
                let first = first?;
                let mut all_same = true;
                for n in names {
                    if n? != first {
                        all_same = false;
                    }
                }
                if all_same {
                    first.to_string()
                } else {
                    callback.clone()
                }
            }
            None => callback.clone(),
        }
    };

    let mut keys: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<String, Vec<Series>> =
        std::collections::HashMap::new();
    for s in series {
        let head = if by_name {
            name_tag(&s)?.to_string()
        } else {
            shared_name.clone()
        };
        let mut parts: Vec<String> = tags
            .iter()
            .filter(|t| !by_name || t.as_str() != "name")
            .map(|t| format!("{t}={}", s.tags.get(t).map(String::as_str).unwrap_or("")))
            .collect();
        parts.sort();
        let key = std::iter::once(head)
            .chain(parts)
            .collect::<Vec<_>>()
            .join(";");
        match groups.get_mut(&key) {
            Some(g) => g.push(s),
            None => {
                keys.push(key.clone());
                groups.insert(key, vec![s]);
            }
        }
    }

    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        let group = groups.remove(&key).unwrap_or_default();
        // Parsed before the callback runs so that the error names a series of the group.
        let parsed = TaggedSeries::parse(&key).map_err(|e| {
            let missing = tags
                .iter()
                .find(|t| group.first().is_some_and(|s| !s.tags.contains_key(*t)));
            match (missing, group.first()) {
                (Some(tag), Some(s)) => QueryError::bad(format!(
                    "groupByTags: series {} has no tag {tag:?}, so its group cannot be named \
                     ({key}: {e})",
                    s.name
                )),
                _ => QueryError::bad(format!(
                    "groupByTags: the group key {key} is not a valid tagged name: {e}"
                )),
            }
        })?;
        let mut result = apply_callback(ctx, &callback, group)?;
        result.name = key.clone();
        result.path_expression = key;
        result.tags = parsed.tags;
        out.push(result);
    }
    Ok(Value::SeriesList(out))
}

/// A series' `name` tag (always present on series graphite-web builds).
fn name_tag(s: &Series) -> Result<&str, QueryError> {
    s.tags
        .get("name")
        .map(String::as_str)
        .ok_or_else(|| QueryError::Internal(format!("series {} has no name tag", s.name)))
}

/// graphite-web's groupByTags callback: a registered series function called with the group
/// alone (its first result), otherwise `aggregate(group, callback)`.
fn apply_callback(
    ctx: &mut Context<'_>,
    callback: &str,
    group: Vec<Series>,
) -> Result<Series, QueryError> {
    let (def, positional) = match super::lookup(callback) {
        Some(def) => (def, vec![Value::SeriesList(group)]),
        None => {
            let aggregate = super::lookup("aggregate").ok_or_else(|| {
                QueryError::Internal("groupByTags: aggregate is not registered".into())
            })?;
            (
                aggregate,
                vec![Value::SeriesList(group), Value::Str(callback.to_string())],
            )
        }
    };
    let args = Args::bind(def.name, def.params, positional, Vec::new())?;
    match (def.run)(ctx, args)? {
        Value::SeriesList(list) => list.into_iter().next().ok_or_else(|| {
            QueryError::bad(format!(
                "groupByTags: callback {callback} gave no series for a group"
            ))
        }),
        other => Err(QueryError::bad(format!(
            "groupByTags: callback {callback} gave a {}, not series",
            other.type_name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::eval::SeriesSource;
    use std::sync::Mutex;

    /// Records the patterns it is asked for and answers one series per pattern.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl SeriesSource for Recorder {
        fn fetch(
            &self,
            pattern: &str,
            from: i64,
            until: i64,
            _now: i64,
            xff: f64,
        ) -> Result<Vec<Series>, QueryError> {
            if let Ok(mut seen) = self.0.lock() {
                seen.push(pattern.to_string());
            }
            let mut s = Series::new("a.b;dc=x", from, until, 60, vec![Some(1.0)], xff);
            s.path_expression = pattern.to_string();
            Ok(vec![s])
        }
    }

    fn strs(v: &[&str]) -> Vec<Value> {
        v.iter().map(|s| Value::Str(s.to_string())).collect()
    }

    /// The registry entry, when a function runs it by name, fetches the call the evaluator
    /// would have fetched; anything but strings is refused, never a panic.
    #[test]
    fn series_by_tag_entry_fetches_through_the_source() {
        let source = Recorder::default();
        let mut ctx = Context::new(0, 600, 600, chrono_tz::UTC, &source);
        let def = &FUNCTIONS[0];
        assert_eq!(def.name, "seriesByTag");
        let args = Args::bind(def.name, def.params, strs(&["name=a.b", "o'k=1"]), vec![]);
        let got = args.and_then(|a| (def.run)(&mut ctx, a));
        let Ok(Value::SeriesList(list)) = got else {
            panic!("{got:?}");
        };
        assert_eq!(list.len(), 1);
        let seen = source.0.lock().map(|s| s.clone()).unwrap_or_default();
        assert_eq!(seen, vec!["seriesByTag('name=a.b',\"o'k=1\")".to_string()]);

        let list = vec![Value::SeriesList(Vec::new())];
        let args = Args::bind(def.name, def.params, list, vec![]);
        let got = args.and_then(|a| (def.run)(&mut ctx, a));
        assert!(matches!(got, Err(QueryError::BadRequest(_))), "{got:?}");
    }

    fn tagged(name: &str, v: f64) -> Series {
        Series::new(name, 0, 120, 60, vec![Some(v), None], 0.0)
    }

    fn run_group(series: Vec<Series>, rest: &[&str]) -> Result<Vec<Series>, QueryError> {
        let source = Recorder::default();
        let mut ctx = Context::new(0, 120, 120, chrono_tz::UTC, &source);
        let def = &FUNCTIONS[1];
        let mut positional = vec![Value::SeriesList(series)];
        positional.extend(strs(rest));
        let args = Args::bind(def.name, def.params, positional, vec![])?;
        match (def.run)(&mut ctx, args)? {
            Value::SeriesList(list) => Ok(list),
            other => panic!("{other:?}"),
        }
    }

    /// Keys: the shared name or the callback, then sorted `tag=value`; the `name` tag makes
    /// each group keep its own name; result tags are parsed back from the key.
    #[test]
    fn group_keys_and_tags() {
        let input = || {
            vec![
                tagged("cpu;dc=b;host=1", 1.0),
                tagged("cpu;dc=a;host=2", 2.0),
                tagged("mem;dc=a;host=1", 4.0),
            ]
        };
        let names = |list: &[Series]| list.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        let out = run_group(input(), &["sum", "host", "dc"]).unwrap_or_default();
        assert_eq!(
            names(&out),
            ["sum;dc=b;host=1", "sum;dc=a;host=2", "sum;dc=a;host=1"]
        );
        let out = run_group(input(), &["max", "name"]).unwrap_or_default();
        assert_eq!(names(&out), ["cpu", "mem"]);
        assert_eq!(out[0].values, vec![Some(2.0), None]);
        assert_eq!(out[0].path_expression, "cpu");
        let out = run_group(input()[..2].to_vec(), &["sum", "dc"]).unwrap_or_default();
        assert_eq!(names(&out), ["cpu;dc=b", "cpu;dc=a"]);
        let tags: Vec<_> = out[1]
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(tags, ["dc=a", "name=cpu"]);
        // A tag some series lack: a clear 400.
        let got = run_group(input(), &["sum", "rack"]);
        assert!(
            matches!(&got, Err(QueryError::BadRequest(m)) if m.contains("has no tag \"rack\"")),
            "{got:?}"
        );
        assert_eq!(
            run_group(Vec::new(), &["sum", "dc"]).map(|l| l.len()).ok(),
            Some(0)
        );
    }
}
