//! graphite-web 1.1.10's `/tags` API over the [`TagIndex`]: the listings (`/tags`,
//! `/tags/<tag>`), `findSeries`, Grafana's autocomplete, and the registration endpoints carbon
//! and go-carbon POST new tagged series to (`tagSeries`, `tagMultiSeries`, `delSeries`); also
//! the `seriesByTag(...)` lookup render needs.
//!
//! Answers copy graphite-web's `jsonResponse`: `json.dumps` spacing (`pretty` indents by 2 and
//! sorts keys), `{"error": ...}` with 400 for a `ValueError` and 500 otherwise, an empty 405 for
//! a wrong method, and the Python arithmetic its views and `Store` apply to `limit`.
//!
//! # Where Carbide deliberately differs
//! - `limit=0` on the autocomplete endpoints (which Grafana may send) means the default, 100;
//!   graphite-web answers `[]`.
//! - An invalid regular expression is answered with 500 as in graphite-web, but with the
//!   regex engine's message instead of Python's.

use crate::index::tags::{TagError, TagIndex, AUTOCOMPLETE_LIMIT};
use crate::python::format::json_string;
use crate::python::number::parse_int;
use crate::query::error::QueryError;

use super::reply::{Params, Reply};

/// A JSON value as the tag views return it.
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    List(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    fn strings(items: Vec<String>) -> J {
        J::List(items.into_iter().map(J::Str).collect())
    }

    /// `json.dumps(self)` or, pretty, `json.dumps(self, indent=2, sort_keys=True)`.
    fn dumps(&self, pretty: bool) -> String {
        let mut out = String::new();
        self.write(&mut out, pretty, 0);
        out
    }

    fn write(&self, out: &mut String, pretty: bool, level: usize) {
        let open = |out: &mut String, level: usize, first: bool| {
            if !first {
                out.push(',');
                if !pretty {
                    out.push(' ');
                }
            }
            if pretty {
                out.push('\n');
                out.push_str(&"  ".repeat(level));
            }
        };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => out.push_str(&i.to_string()),
            J::Str(s) => json_string(out, s),
            J::List(items) if items.is_empty() => out.push_str("[]"),
            J::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    open(out, level + 1, i == 0);
                    item.write(out, pretty, level + 1);
                }
                if pretty {
                    out.push('\n');
                    out.push_str(&"  ".repeat(level));
                }
                out.push(']');
            }
            J::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            J::Obj(fields) => {
                let mut order: Vec<&(&str, J)> = fields.iter().collect();
                if pretty {
                    order.sort_by_key(|(k, _)| *k);
                }
                out.push('{');
                for (i, (k, v)) in order.into_iter().enumerate() {
                    open(out, level + 1, i == 0);
                    json_string(out, k);
                    out.push_str(": ");
                    v.write(out, pretty, level + 1);
                }
                if pretty {
                    out.push('\n');
                    out.push_str(&"  ".repeat(level));
                }
                out.push('}');
            }
        }
    }
}

fn pretty(params: &Params) -> bool {
    params.get("pretty").is_some_and(|p| !p.is_empty())
}

fn ok(value: J, params: &Params) -> Reply {
    Reply::json(value.dumps(pretty(params)))
}

fn error(status: u16, message: &str, params: &Params) -> Reply {
    let body = J::Obj(vec![("error", J::Str(message.to_owned()))]).dumps(pretty(params));
    Reply::new(status, "application/json", body)
}

fn tag_error(e: &TagError, params: &Params) -> Reply {
    error(e.status(), e.message(), params)
}

/// Django's bare `HttpResponse(status=405)`.
fn method_not_allowed() -> Reply {
    Reply::new(405, "text/html; charset=utf-8", "")
}

/// `getlist(key)` or else `getlist(key + '[]')`, as the views read repeated parameters.
fn list<'a>(params: &'a Params, key: &str) -> Vec<&'a str> {
    let plain = params.all(key);
    if !plain.is_empty() {
        return plain;
    }
    params.all(&format!("{key}[]"))
}

/// Python's `int(s)`, with its `ValueError` text.
fn python_int(s: &str) -> Result<i64, TagError> {
    parse_int(s).ok_or_else(|| {
        TagError::Invalid(format!(
            "invalid literal for int() with base 10: {}",
            crate::python::text::repr(s)
        ))
    })
}

/// The SQL `LIMIT` of the listings: none for no or empty `limit` or a negative one (SQLite).
fn sql_limit(limit: Option<&str>) -> Result<Option<usize>, TagError> {
    match limit {
        None | Some("") => Ok(None),
        Some(s) => {
            let n = python_int(s)?;
            Ok(usize::try_from(n).ok())
        }
    }
}

/// Answers a request under `/tags`; `rest` is the path after `/tags` (`""`, `/`, `/findSeries`,
/// `/<tag>`), already percent-decoded, routed as graphite-web's `tags/urls.py` does.
pub fn answer(index: &TagIndex, method: &str, rest: &str, params: &Params) -> Reply {
    match rest {
        "/tagSeries" => tag_series(index, method, params),
        "/tagMultiSeries" => tag_multi_series(index, method, params),
        "/delSeries" => del_series(index, method, params),
        "/findSeries" => find_series(index, method, params),
        "/autoComplete/tags" => auto_complete_tags(index, method, params),
        "/autoComplete/values" => auto_complete_values(index, method, params),
        "" | "/" => tag_list(index, method, params),
        other => tag_details(
            index,
            method,
            other.strip_prefix('/').unwrap_or(other),
            params,
        ),
    }
}

/// POST `/tags/tagSeries`: registers `path`, answers its canonical form.
pub fn tag_series(index: &TagIndex, method: &str, params: &Params) -> Reply {
    if method != "POST" {
        return method_not_allowed();
    }
    let Some(path) = params.get("path").filter(|p| !p.is_empty()) else {
        return error(400, "no path specified", params);
    };
    match index.insert(path) {
        Ok(canonical) => ok(J::Str(canonical), params),
        Err(e) => tag_error(&e, params),
    }
}

/// POST `/tags/tagMultiSeries`: registers every `path` (or `path[]`), answers the canonical
/// forms. Series before a bad one stay registered, as with graphite-web's autocommit.
pub fn tag_multi_series(index: &TagIndex, method: &str, params: &Params) -> Reply {
    if method != "POST" {
        return method_not_allowed();
    }
    let paths = list(params, "path");
    if paths.is_empty() {
        return error(400, "no paths specified", params);
    }
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        match index.insert(p) {
            Ok(c) => out.push(c),
            Err(e) => return tag_error(&e, params),
        }
    }
    ok(J::strings(out), params)
}

/// POST `/tags/delSeries`: forgets every `path` (or `path[]`), answers `true`.
pub fn del_series(index: &TagIndex, method: &str, params: &Params) -> Reply {
    if method != "POST" {
        return method_not_allowed();
    }
    let paths = list(params, "path");
    if paths.is_empty() {
        return error(400, "no path specified", params);
    }
    for p in paths {
        if let Err(e) = index.remove(p) {
            return tag_error(&e, params);
        }
    }
    ok(J::Bool(true), params)
}

/// GET or POST `/tags/findSeries?expr=...`: the matching canonical paths, sorted.
pub fn find_series(index: &TagIndex, method: &str, params: &Params) -> Reply {
    if method != "GET" && method != "POST" {
        return method_not_allowed();
    }
    let exprs = list(params, "expr");
    if exprs.is_empty() {
        return error(400, "no tag expressions specified", params);
    }
    match index.find_series(&exprs) {
        Ok(paths) => ok(J::strings(paths), params),
        Err(e) => tag_error(&e, params),
    }
}

/// GET `/tags`: `[{"id", "tag"}]`, with `filter` (regex) and `limit`.
pub fn tag_list(index: &TagIndex, method: &str, params: &Params) -> Reply {
    if method != "GET" {
        return method_not_allowed();
    }
    let result = sql_limit(params.get("limit"))
        .and_then(|limit| index.list_tags(params.get("filter"), limit));
    match result {
        Ok(tags) => ok(
            J::List(
                tags.into_iter()
                    .map(|t| J::Obj(vec![("id", J::Int(t.id.into())), ("tag", J::Str(t.tag))]))
                    .collect(),
            ),
            params,
        ),
        Err(e) => tag_error(&e, params),
    }
}

/// GET `/tags/<tag>`: `{"id", "tag", "values": [{"id", "value", "count"}]}` or `null`.
pub fn tag_details(index: &TagIndex, method: &str, tag: &str, params: &Params) -> Reply {
    if method != "GET" {
        return method_not_allowed();
    }
    // graphite-web converts `limit` only once it knows the tag.
    let result = if index.get_tag(tag, None, Some(0)).ok().flatten().is_none() {
        Ok(None)
    } else {
        sql_limit(params.get("limit"))
            .and_then(|limit| index.get_tag(tag, params.get("filter"), limit))
    };
    match result {
        Ok(None) => ok(J::Null, params),
        Ok(Some(d)) => {
            let values = d
                .values
                .into_iter()
                .map(|v| {
                    J::Obj(vec![
                        ("id", J::Int(v.id.into())),
                        ("value", J::Str(v.value)),
                        ("count", J::Int(i64::try_from(v.count).unwrap_or(i64::MAX))),
                    ])
                })
                .collect();
            ok(
                J::Obj(vec![
                    ("id", J::Int(d.id.into())),
                    ("tag", J::Str(d.tag)),
                    ("values", J::List(values)),
                ]),
                params,
            )
        }
        Err(e) => tag_error(&e, params),
    }
}

/// What `limit` makes of an autocomplete: the TagDB's own limit and the `Store`'s final slice.
enum AutoLimit {
    /// At most this many (None: all).
    Take(Option<usize>),
    /// Python's `results[:-n]` after an unlimited listing.
    DropLast(usize),
}

fn auto_limit(limit: Option<&str>) -> Result<AutoLimit, TagError> {
    let Some(s) = limit else {
        return Ok(AutoLimit::Take(Some(AUTOCOMPLETE_LIMIT)));
    };
    let n = python_int(s)?;
    Ok(match n {
        0 => AutoLimit::Take(Some(AUTOCOMPLETE_LIMIT)),
        n if n > 0 => AutoLimit::Take(Some(usize::try_from(n).unwrap_or(usize::MAX))),
        n => AutoLimit::DropLast(usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX)),
    })
}

fn apply_auto_limit(
    limit: AutoLimit,
    with_exprs: bool,
    run: impl FnOnce(Option<usize>) -> Result<Vec<String>, TagError>,
) -> Result<Vec<String>, TagError> {
    match limit {
        AutoLimit::Take(n) => run(n),
        AutoLimit::DropLast(_) if with_exprs => Ok(Vec::new()),
        AutoLimit::DropLast(k) => {
            let mut all = run(None)?;
            all.truncate(all.len().saturating_sub(k));
            Ok(all)
        }
    }
}

/// GET or POST `/tags/autoComplete/tags`: `expr`, `tagPrefix`, `limit`.
pub fn auto_complete_tags(index: &TagIndex, method: &str, params: &Params) -> Reply {
    if method != "GET" && method != "POST" {
        return method_not_allowed();
    }
    let exprs = list(params, "expr");
    let prefix = params.get("tagPrefix").filter(|p| !p.is_empty());
    let result = auto_limit(params.get("limit")).and_then(|limit| {
        apply_auto_limit(limit, !exprs.is_empty(), |n| {
            index.auto_complete_tags(&exprs, prefix, n)
        })
    });
    match result {
        Ok(tags) => ok(J::strings(tags), params),
        Err(e) => tag_error(&e, params),
    }
}

/// GET or POST `/tags/autoComplete/values`: `tag` (required), `expr`, `valuePrefix`, `limit`.
pub fn auto_complete_values(index: &TagIndex, method: &str, params: &Params) -> Reply {
    if method != "GET" && method != "POST" {
        return method_not_allowed();
    }
    let exprs = list(params, "expr");
    let Some(tag) = params.get("tag").filter(|t| !t.is_empty()) else {
        return error(400, "no tag specified", params);
    };
    let prefix = params.get("valuePrefix").filter(|p| !p.is_empty());
    let result = auto_limit(params.get("limit")).and_then(|limit| {
        apply_auto_limit(limit, !exprs.is_empty(), |n| {
            index.auto_complete_values(&exprs, tag, prefix, n)
        })
    });
    match result {
        Ok(values) => ok(J::strings(values), params),
        Err(e) => tag_error(&e, params),
    }
}

/// The canonical names `seriesByTag(...)` stands for: `call_text` is the call as written
/// (`seriesByTag('name=a', "dc!=~x")`); its string arguments are the tagspecs, taken raw
/// between the quotes as graphite-web takes them. Any failure is a 500, as in graphite-web's
/// render.
pub fn series_by_tag(index: &TagIndex, call_text: &str) -> Result<Vec<String>, QueryError> {
    let exprs = call_string_args(call_text).map_err(QueryError::Internal)?;
    index
        .find_series(&exprs)
        .map_err(|e| QueryError::Internal(e.message().to_owned()))
}

/// The string arguments of a call, raw (escapes and doubled quotes left as written, as
/// pyparsing's `quotedString` token minus its quotes); other arguments are skipped.
fn call_string_args(text: &str) -> Result<Vec<&str>, String> {
    let bad = || format!("cannot read the arguments of {text}");
    let open = text.find('(').ok_or_else(bad)?;
    let bytes = text.as_bytes();
    let mut i = open + 1;
    let mut out = Vec::new();
    let skip_ws = |mut i: usize| {
        while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        match bytes.get(i) {
            None => return Err(bad()),
            Some(b')') => return Ok(out),
            Some(&q) if q == b'\'' || q == b'"' => {
                let end = string_end(bytes, i).ok_or_else(bad)?;
                out.push(text.get(i + 1..end).ok_or_else(bad)?);
                i = end + 1;
            }
            Some(_) => {
                // A number, name or nested call: skip to the next top-level `,` or `)`.
                let mut depth = 0usize;
                loop {
                    match bytes.get(i) {
                        None => return Err(bad()),
                        Some(b'\'') | Some(b'"') => i = string_end(bytes, i).ok_or_else(bad)? + 1,
                        Some(b'(') => {
                            depth += 1;
                            i += 1;
                        }
                        Some(b')') if depth > 0 => {
                            depth -= 1;
                            i += 1;
                        }
                        Some(b')') | Some(b',') if depth == 0 => break,
                        Some(_) => i += 1,
                    }
                }
            }
        }
        i = skip_ws(i);
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b')') => return Ok(out),
            _ => return Err(bad()),
        }
    }
}

/// The index of the quote closing the string opened at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let q = *bytes.get(start)?;
    let mut i = start + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            &c if c == q => {
                if bytes.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_args() {
        assert_eq!(
            call_string_args(r#"seriesByTag('a=b', "c!=~d\"e", 3, 'x''y')"#).ok(),
            Some(vec!["a=b", r#"c!=~d\"e"#, "x''y"])
        );
        assert_eq!(call_string_args("seriesByTag()").ok(), Some(vec![]));
        assert!(call_string_args("seriesByTag('a").is_err());
    }

    #[test]
    fn dumps() {
        let v = J::Obj(vec![("tag", J::Str("é".into())), ("id", J::Int(1))]);
        assert_eq!(v.dumps(false), r#"{"tag": "\u00e9", "id": 1}"#);
        assert_eq!(v.dumps(true), "{\n  \"id\": 1,\n  \"tag\": \"\\u00e9\"\n}");
    }
}
