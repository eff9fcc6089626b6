//! `/metrics/find`, `/metrics/expand` and `/metrics/index.json`: graphite-web 1.1.10's metrics
//! views (`metrics/views.py`) over the name index, byte for byte where the answer is
//! deterministic: parameter checks and their messages, the treejson, completer, json,
//! nodelist, pickle and msgpack shapes, jsonp, `pretty`, and the ASCII escaping that depends on
//! the `Accept` header.
//!
//! graphite-web shuffles the nodes it finds before a stable sort by last node, so the order
//! of nodes sharing a last node, and which of them treejson keeps, is left to chance there.
//! Here it is fixed: by path, branch before leaf, and treejson keeps the branch when a name is
//! both (so a tree browser can still open it).
//!
//! `from` and `until` are checked as graphite-web checks them but do not filter: the index has
//! no times, and graphite-web only uses them to choose between duplicate leaves of several
//! stores. Leaves' `intervals` (json, pickle, msgpack formats) come from the whisper headers
//! when the caller passes a reader ([`whisper_intervals`]); graphite-web reads them the same
//! way.

use std::fmt::Write as _;
use std::path::Path;

use super::reply::{Params, Reply};
use crate::index::{Found, Index};
use crate::python::format::json_float;
use crate::python::number::parse_int;
use crate::python::text::repr;
use crate::query::time::{parse_at_time, parse_zone, Zone};

/// A leaf's `(start, end)`, given its file relative to the data directory.
pub type IntervalsFn<'a> = &'a (dyn Fn(&Path) -> Option<(f64, f64)> + Sync);

/// What the views need besides the parameters.
pub struct MetricsEnv<'a> {
    /// graphite-web's TIME_ZONE setting.
    pub default_zone: Zone,
    /// The clock, epoch seconds.
    pub now: i64,
    /// The request's `Accept` header: graphite-web escapes non-ASCII JSON only when it is
    /// exactly `application/json` (or absent) and says `;charset=utf-8` otherwise.
    pub accept: Option<&'a str>,
    /// Reads a leaf's interval; without it leaves carry no interval.
    pub intervals: Option<IntervalsFn<'a>>,
}

impl MetricsEnv<'_> {
    /// UTC, the current time, no `Accept` header, no intervals.
    pub fn new(default_zone: Zone) -> MetricsEnv<'static> {
        MetricsEnv {
            default_zone,
            now: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            accept: None,
            intervals: None,
        }
    }
}

/// graphite-web's `WhisperReader.get_intervals`: from `now - maxRetention` to the file's
/// modification time (or the start, if older). `None` if the file cannot be read.
pub fn whisper_intervals(root: &Path, rel: &Path, now: f64) -> Option<(f64, f64)> {
    let path = root.join(rel);
    let header = crate::whisper::info(&path).ok()?;
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    let d = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    // Python's st_mtime: seconds plus nanoseconds times 1e-9, in double precision.
    let mtime = d.as_secs() as f64 + f64::from(d.subsec_nanos()) * 1e-9;
    let start = now - f64::from(header.max_retention);
    Some((start, if mtime >= start { mtime } else { start }))
}

/// The seconds since the epoch as Python's `time.time()` gives them.
pub fn time_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

enum Fail {
    /// `InputParameterError`: 400 with graphite-web's text.
    Param(String),
    /// An exception graphite-web lets through: 500.
    Internal(String),
}

impl Fail {
    fn reply(self) -> Reply {
        match self {
            Fail::Param(msg) => Reply::new(
                400,
                "text/html; charset=utf-8",
                format!("Invalid parameters ({msg})"),
            ),
            Fail::Internal(msg) => Reply::text(500, msg),
        }
    }
}

/// Python's `ValueError` text for `int(s)`.
fn int_error(s: &str) -> String {
    let r: String = repr(s).chars().take(200).collect();
    format!("invalid literal for int() with base 10: {r}")
}

/// `queryParamAsInt`.
fn int_param(params: &Params, name: &str, default: i64) -> Result<i64, Fail> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => parse_int(v).ok_or_else(|| {
            Fail::Param(format!(
                "Invalid int value {} for param {name}: {}",
                repr(v),
                int_error(v)
            ))
        }),
    }
}

/// `int(queryParams.get(name, 0))`, whose failure is a 500.
fn plain_int(params: &Params, name: &str) -> Result<i64, Fail> {
    match params.get(name) {
        None => Ok(0),
        Some(v) => parse_int(v).ok_or_else(|| Fail::Internal(int_error(v))),
    }
}

/// `queryParams.get('jsonp', False)`, as a condition.
fn jsonp(params: &Params) -> Option<&str> {
    params.get("jsonp").filter(|s| !s.is_empty())
}

/// `/metrics/find`.
pub fn find(index: &Index, params: &Params, env: &MetricsEnv<'_>) -> Reply {
    find_view(index, params, env).unwrap_or_else(Fail::reply)
}

fn find_view(index: &Index, params: &Params, env: &MetricsEnv<'_>) -> Result<Reply, Fail> {
    let format = params.get("format").unwrap_or("treejson");
    let leaves_only = int_param(params, "leavesOnly", 0)? != 0;
    int_param(params, "local", 0)?;
    let wildcards = int_param(params, "wildcards", 0)? != 0;
    let zone = match params.get("tz") {
        Some(name) => parse_zone(name).unwrap_or(env.default_zone),
        None => env.default_zone,
    };
    let time_error = |name: &str, value: &str, err: &str| {
        Fail::Param(format!(
            "Invalid value {} for param {name}: {err}",
            repr(value)
        ))
    };
    let now = match params.get("now") {
        Some(v) => {
            parse_at_time(v, zone, env.now).map_err(|e| time_error("now", v, e.message()))?
        }
        None => env.now,
    };
    for name in ["from", "until"] {
        if let Some(v) = params.get(name).filter(|v| *v != "-1") {
            parse_at_time(v, zone, now).map_err(|e| time_error(name, v, e.message()))?;
        }
    }
    let position = int_param(params, "position", -1)?;
    let jsonp = jsonp(params);
    let automatic_variants = int_param(params, "automatic_variants", 0)? != 0;
    let Some(query) = params.get("query") else {
        return Err(Fail::Param("Missing required parameter 'query'".into()));
    };
    if query.is_empty() {
        return Err(Fail::Param("Required parameter 'query' is empty".into()));
    }
    let base_path = match query.rsplit_once('.') {
        Some((head, _)) => format!("{head}."),
        None => String::new(),
    };
    let mut query = query.to_owned();
    if format == "completer" {
        query = query.replace("..", "*.");
        if !query.ends_with('*') {
            query.push('*');
        }
        if automatic_variants {
            query = query
                .split('.')
                .map(|p| {
                    if p.contains(',') && !p.contains('{') {
                        format!("{{{p}}}")
                    } else {
                        p.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(".");
        }
    }
    let mut matches = index
        .find_with_files(&query)
        .map_err(|e| Fail::Internal(e.to_string()))?;
    if leaves_only {
        matches.retain(|f| f.node.is_leaf);
    }
    let out = JsonOut::new(params, env, jsonp);
    let reply = match format {
        "treejson" => out.reply(&tree_json(&matches, &base_path, wildcards)),
        "nodelist" => out.reply(&nodes_by_position(&matches, position)?),
        "pickle" => Reply::new(200, "application/pickle", pickle_nodes(&matches, env)),
        "msgpack" => Reply::new(200, "application/x-msgpack", msgpack_nodes(&matches, env)),
        "json" => out.reply(&json_nodes(&matches, env)),
        "completer" => out.reply(&completer(&matches, wildcards)),
        _ => Reply::new(400, "text/plain", "Invalid value for 'format' parameter"),
    };
    Ok(reply)
}

fn tree_json(matches: &[Found], base_path: &str, wildcards: bool) -> J {
    let flags = |leaf: bool| {
        let (a, b) = if leaf { (0, 1) } else { (1, 0) };
        [
            ("allowChildren", J::Int(a)),
            ("expandable", J::Int(a)),
            ("leaf", J::Int(b)),
        ]
    };
    let mut results = Vec::new();
    if matches.len() > 1 && wildcards {
        let any_branch = matches.iter().any(|f| !f.node.is_leaf);
        let mut fields = vec![
            ("text", J::str("*")),
            ("id", J::Str(format!("{base_path}*"))),
        ];
        fields.extend(flags(!any_branch));
        results.push(J::obj(fields));
    }
    let mut branches = Vec::new();
    let mut leaves = Vec::new();
    let mut i = 0;
    while i < matches.len() {
        let name = matches[i].node.name();
        let mut end = i + 1;
        while end < matches.len() && matches[end].node.name() == name {
            end += 1;
        }
        let leaf = matches[i..end].iter().all(|f| f.node.is_leaf);
        let mut fields = vec![
            ("text", J::Str(unquote_plus(name))),
            ("id", J::Str(format!("{base_path}{name}"))),
        ];
        fields.extend(flags(leaf));
        if leaf {
            leaves.push(J::obj(fields));
        } else {
            branches.push(J::obj(fields));
        }
        i = end;
    }
    results.extend(branches);
    results.extend(leaves);
    J::List(results)
}

fn nodes_by_position(matches: &[Found], position: i64) -> Result<J, Fail> {
    let mut found: Vec<String> = Vec::new();
    for f in matches {
        let nodes: Vec<&str> = f.node.path.split('.').collect();
        let n = nodes.len() as i64;
        let i = if position < 0 { position + n } else { position };
        let node = usize::try_from(i)
            .ok()
            .and_then(|i| nodes.get(i))
            .ok_or_else(|| Fail::Internal("list index out of range".into()))?;
        found.push((*node).to_owned());
    }
    found.sort_unstable();
    found.dedup();
    Ok(J::obj(vec![(
        "nodes",
        J::List(found.into_iter().map(J::Str).collect()),
    )]))
}

fn leaf_interval(f: &Found, env: &MetricsEnv<'_>) -> Option<(f64, f64)> {
    let get = env.intervals?;
    get(f.file.as_deref()?)
}

fn json_nodes(matches: &[Found], env: &MetricsEnv<'_>) -> J {
    let mut sorted: Vec<&Found> = matches.iter().collect();
    sorted.sort_by(|a, b| a.node.path.cmp(&b.node.path));
    J::List(
        sorted
            .into_iter()
            .map(|f| {
                let mut fields = vec![
                    ("path", J::Str(f.node.path.clone())),
                    ("is_leaf", J::Bool(f.node.is_leaf)),
                ];
                if f.node.is_leaf {
                    let list = leaf_interval(f, env)
                        .map(|(s, e)| J::obj(vec![("start", J::Float(s)), ("end", J::Float(e))]))
                        .into_iter()
                        .collect();
                    fields.push(("intervals", J::List(list)));
                }
                J::obj(fields)
            })
            .collect(),
    )
}

fn completer(matches: &[Found], wildcards: bool) -> J {
    let mut results: Vec<J> = matches
        .iter()
        .map(|f| {
            let mut path = f.node.path.clone();
            if !f.node.is_leaf {
                path.push('.');
            }
            J::obj(vec![
                ("path", J::Str(path)),
                ("name", J::str(f.node.name())),
                ("is_leaf", J::str(if f.node.is_leaf { "1" } else { "0" })),
            ])
        })
        .collect();
    if results.len() > 1 && wildcards {
        results.push(J::obj(vec![("name", J::str("*"))]));
    }
    J::obj(vec![("metrics", J::List(results))])
}

/// `/metrics/expand`.
pub fn expand(index: &Index, params: &Params, env: &MetricsEnv<'_>) -> Reply {
    expand_view(index, params, env).unwrap_or_else(Fail::reply)
}

fn expand_view(index: &Index, params: &Params, env: &MetricsEnv<'_>) -> Result<Reply, Fail> {
    plain_int(params, "local")?;
    let group_by_expr = plain_int(params, "groupByExpr")? != 0;
    let leaves_only = plain_int(params, "leavesOnly")? != 0;
    let jsonp = jsonp(params);
    // Each query once, where it first appears (a dict keyed by query).
    let mut results: Vec<(&str, Vec<String>)> = Vec::new();
    for query in params.all("query") {
        let nodes = index
            .try_find(query)
            .map_err(|e| Fail::Internal(e.to_string()))?;
        let mut paths: Vec<String> = nodes
            .into_iter()
            .filter(|n| n.is_leaf || !leaves_only)
            .map(|n| n.path)
            .collect();
        paths.sort_unstable();
        paths.dedup();
        match results.iter_mut().find(|(q, _)| *q == query) {
            Some((_, p)) => *p = paths,
            None => results.push((query, paths)),
        }
    }
    let strings = |v: Vec<String>| J::List(v.into_iter().map(J::Str).collect());
    let body = if group_by_expr {
        J::Map(
            results
                .into_iter()
                .map(|(q, p)| (q.to_owned(), strings(p)))
                .collect(),
        )
    } else {
        let mut all: Vec<String> = results.into_iter().flat_map(|(_, p)| p).collect();
        all.sort_unstable();
        all.dedup();
        strings(all)
    };
    Ok(JsonOut::new(params, env, jsonp).reply(&J::obj(vec![("results", body)])))
}

/// `/metrics/index.json`.
pub fn index_json(index: &Index, params: &Params, env: &MetricsEnv<'_>) -> Reply {
    let out = JsonOut::new(params, env, jsonp(params));
    if plain_int(params, "local").is_err() {
        let mut reply = out.reply(&J::List(Vec::new()));
        reply.status = 500;
        return reply;
    }
    out.reply(&J::List(
        index.all_leaves().into_iter().map(J::Str).collect(),
    ))
}

/// `json_response_for`'s choices.
struct JsonOut<'a> {
    ensure_ascii: bool,
    pretty: bool,
    jsonp: Option<&'a str>,
}

impl<'a> JsonOut<'a> {
    fn new(params: &Params, env: &MetricsEnv<'_>, jsonp: Option<&'a str>) -> JsonOut<'a> {
        JsonOut {
            ensure_ascii: env.accept.unwrap_or("application/json") == "application/json",
            pretty: params.get("pretty").is_some_and(|v| !v.is_empty()),
            jsonp,
        }
    }

    fn reply(&self, data: &J) -> Reply {
        let mut body = String::new();
        data.write(&mut body, self.pretty.then_some(0), self.ensure_ascii);
        let mut content_type = String::from("application/json");
        if let Some(cb) = self.jsonp {
            body = format!("{cb}({body})");
            content_type = "text/javascript".into();
        }
        if !self.ensure_ascii {
            content_type.push_str(";charset=utf-8");
        }
        Reply::new(200, &content_type, body)
    }
}

/// A value as Python's `json.dumps` writes it; objects keep their order.
enum J {
    Str(String),
    Int(i64),
    Bool(bool),
    Float(f64),
    List(Vec<J>),
    Obj(Vec<(&'static str, J)>),
    Map(Vec<(String, J)>),
}

impl J {
    fn str(s: &str) -> J {
        J::Str(s.to_owned())
    }

    fn obj(fields: Vec<(&'static str, J)>) -> J {
        J::Obj(fields)
    }

    /// `json.dumps(self, ensure_ascii=.., indent=2 if pretty else None)`; `level` is `Some`
    /// (the depth) when indenting.
    fn write(&self, out: &mut String, level: Option<usize>, ascii: bool) {
        let open = |out: &mut String, c: char, lv: Option<usize>| {
            out.push(c);
            if let Some(l) = lv {
                out.push('\n');
                out.push_str(&"  ".repeat(l + 1));
            }
        };
        let sep = |out: &mut String, lv: Option<usize>| match lv {
            Some(l) => {
                out.push_str(",\n");
                out.push_str(&"  ".repeat(l + 1));
            }
            None => out.push_str(", "),
        };
        let close = |out: &mut String, c: char, lv: Option<usize>| {
            if let Some(l) = lv {
                out.push('\n');
                out.push_str(&"  ".repeat(l));
            }
            out.push(c);
        };
        let inner = level.map(|l| l + 1);
        match self {
            J::Str(s) => json_str(out, s, ascii),
            J::Int(i) => {
                let _ = write!(out, "{i}");
            }
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Float(f) => out.push_str(&json_float(*f)),
            J::List(items) if items.is_empty() => out.push_str("[]"),
            J::List(items) => {
                open(out, '[', level);
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        sep(out, level);
                    }
                    item.write(out, inner, ascii);
                }
                close(out, ']', level);
            }
            J::Obj(fields) if fields.is_empty() => out.push_str("{}"),
            J::Map(fields) if fields.is_empty() => out.push_str("{}"),
            J::Obj(_) | J::Map(_) => {
                let fields: Vec<(&str, &J)> = match self {
                    J::Obj(f) => f.iter().map(|(k, v)| (*k, v)).collect(),
                    J::Map(f) => f.iter().map(|(k, v)| (k.as_str(), v)).collect(),
                    _ => Vec::new(),
                };
                open(out, '{', level);
                for (n, (k, v)) in fields.into_iter().enumerate() {
                    if n > 0 {
                        sep(out, level);
                    }
                    json_str(out, k, ascii);
                    out.push_str(": ");
                    v.write(out, inner, ascii);
                }
                close(out, '}', level);
            }
        }
    }
}

/// A JSON string as Python's encoder writes it: with `ensure_ascii`, everything outside
/// printable ASCII as `\uXXXX` (UTF-16 pairs beyond the BMP); without, only control
/// characters, `"` and `\`.
fn json_str(out: &mut String, s: &str, ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ascii && (c as u32) > 0x7e) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `urllib.parse.unquote_plus(s)`: `+` as space, `%XX` decoded as UTF-8 with invalid bytes
/// replaced. Like Python, runs of non-ASCII characters are left alone and each run of ASCII
/// is decoded on its own.
fn unquote_plus(s: &str) -> String {
    let s = s.replace('+', " ");
    if !s.contains('%') {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while !rest.is_empty() {
        let ascii_len = rest.bytes().take_while(u8::is_ascii).count();
        let (ascii, tail) = rest.split_at(ascii_len);
        out.push_str(&String::from_utf8_lossy(&percent_decode(ascii.as_bytes())));
        let other_len = tail
            .char_indices()
            .find(|(_, c)| c.is_ascii())
            .map_or(tail.len(), |(i, _)| i);
        let (other, tail) = tail.split_at(other_len);
        out.push_str(other);
        rest = tail;
    }
    out
}

fn percent_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| char::from(c).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// `pickle.dumps(nodes_info, protocol=-1)` as CPython 3.11's C pickler writes it (protocol 5,
/// 64 KiB frames, every `str` and container memoized; the few strings graphite-web passes
/// as one shared object, such as dict keys, referenced back with BINGET).
fn pickle_nodes(matches: &[Found], env: &MetricsEnv<'_>) -> Vec<u8> {
    let mut p = Pickler::new();
    p.boundary();
    p.write(b"]");
    p.memoize();
    let save = |p: &mut Pickler, f: &Found| {
        p.boundary();
        p.write(b"}");
        p.memoize();
        p.write(b"(");
        p.str_shared(Slot::Path, "path");
        p.path_str(&f.node.path);
        p.str_shared(Slot::IsLeaf, "is_leaf");
        p.boundary();
        p.write(if f.node.is_leaf { b"\x88" } else { b"\x89" });
        if f.node.is_leaf {
            p.str_shared(Slot::Intervals, "intervals");
            p.interval_set(leaf_interval(f, env));
        }
        p.write(b"u");
    };
    match matches {
        [] => {}
        [one] => {
            save(&mut p, one);
            p.write(b"a");
        }
        many => {
            for batch in many.chunks(1000) {
                p.write(b"(");
                for f in batch {
                    save(&mut p, f);
                }
                p.write(b"e");
            }
        }
    }
    p.finish()
}

#[derive(Clone, Copy)]
enum Slot {
    Path,
    IsLeaf,
    Intervals,
    Start,
    End,
    Tuple,
    Size,
    Module,
    IntervalSetName,
    IntervalName,
    IntervalSetClass,
    IntervalClass,
}

const FRAME_TARGET: usize = 64 * 1024;
const FRAME_HEADER: usize = 9;

struct Pickler {
    out: Vec<u8>,
    frame_start: Option<usize>,
    framing: bool,
    memo: u32,
    slots: [Option<u32>; 12],
    /// The one-character and empty strings CPython keeps as single objects.
    singletons: std::collections::HashMap<String, u32>,
}

impl Pickler {
    fn new() -> Pickler {
        Pickler {
            out: vec![0x80, 5],
            frame_start: None,
            framing: true,
            memo: 0,
            slots: [None; 12],
            singletons: std::collections::HashMap::new(),
        }
    }

    fn write(&mut self, b: &[u8]) {
        if self.framing && self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend_from_slice(&[0; FRAME_HEADER]);
        }
        self.out.extend_from_slice(b);
    }

    fn commit_frame(&mut self) {
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let len = self.out.len() - start - FRAME_HEADER;
        if len >= 4 {
            self.out[start] = 0x95;
            self.out[start + 1..start + FRAME_HEADER].copy_from_slice(&(len as u64).to_le_bytes());
        } else {
            self.out.drain(start..start + FRAME_HEADER);
        }
    }

    /// The start of every `save()`: a frame that reached the target size is closed.
    fn boundary(&mut self) {
        if let Some(start) = self.frame_start {
            if self.out.len() - start - FRAME_HEADER >= FRAME_TARGET {
                self.commit_frame();
            }
        }
    }

    fn memoize(&mut self) -> u32 {
        self.write(b"\x94");
        self.memo += 1;
        self.memo - 1
    }

    fn get(&mut self, i: u32) {
        match u8::try_from(i) {
            Ok(b) => self.write(&[b'h', b]),
            Err(_) => {
                let mut op = vec![b'j'];
                op.extend_from_slice(&i.to_le_bytes());
                self.write(&op);
            }
        }
    }

    /// A new `str` object (the boundary already passed).
    fn new_str(&mut self, s: &str) -> u32 {
        let b = s.as_bytes();
        let mut head = Vec::with_capacity(9);
        if b.len() < 256 {
            head.extend_from_slice(&[0x8c, b.len() as u8]);
        } else if let Ok(n) = u32::try_from(b.len()) {
            head.push(b'X');
            head.extend_from_slice(&n.to_le_bytes());
        } else {
            head.push(0x8d);
            head.extend_from_slice(&(b.len() as u64).to_le_bytes());
        }
        if b.len() >= FRAME_TARGET {
            // Large payloads go between frames.
            self.commit_frame();
            self.framing = false;
            self.write(&head);
            self.write(b);
            self.framing = true;
        } else {
            self.write(&head);
            self.write(b);
        }
        self.memoize()
    }

    fn str_shared(&mut self, slot: Slot, s: &str) {
        self.boundary();
        match self.slots[slot as usize] {
            Some(i) => self.get(i),
            None => self.slots[slot as usize] = Some(self.new_str(s)),
        }
    }

    fn path_str(&mut self, s: &str) {
        self.boundary();
        let mut chars = s.chars();
        let single = match (chars.next(), chars.next()) {
            (None, _) => true,
            (Some(c), None) => (c as u32) < 256,
            _ => false,
        };
        if !single {
            self.new_str(s);
            return;
        }
        match self.singletons.get(s) {
            Some(&i) => self.get(i),
            None => {
                let i = self.new_str(s);
                self.singletons.insert(s.to_owned(), i);
            }
        }
    }

    fn float(&mut self, f: f64) {
        self.boundary();
        let mut op = vec![b'G'];
        op.extend_from_slice(&f.to_be_bytes());
        self.write(&op);
    }

    /// `save_global` for a class of `graphite.intervals`, then NEWOBJ with no arguments.
    fn new_object(&mut self, class: Slot, name_slot: Slot, name: &str) {
        self.boundary();
        self.boundary();
        match self.slots[class as usize] {
            Some(i) => self.get(i),
            None => {
                self.str_shared(Slot::Module, "graphite.intervals");
                self.str_shared(name_slot, name);
                self.write(b"\x93");
                self.slots[class as usize] = Some(self.memoize());
            }
        }
        self.boundary();
        self.write(b")\x81");
        self.memoize();
    }

    /// An `IntervalSet` of at most one `Interval`, as `WhisperReader.get_intervals` makes.
    fn interval_set(&mut self, interval: Option<(f64, f64)>) {
        self.new_object(Slot::IntervalSetClass, Slot::IntervalSetName, "IntervalSet");
        self.boundary();
        self.write(b"}");
        self.memoize();
        self.write(b"(");
        self.str_shared(Slot::Intervals, "intervals");
        self.boundary();
        self.write(b"]");
        self.memoize();
        if let Some((start, end)) = interval {
            self.new_object(Slot::IntervalClass, Slot::IntervalName, "Interval");
            self.boundary();
            self.write(b"}");
            self.memoize();
            self.write(b"(");
            self.str_shared(Slot::Start, "start");
            self.float(start);
            self.str_shared(Slot::End, "end");
            self.float(end);
            self.str_shared(Slot::Tuple, "tuple");
            self.boundary();
            self.float(start);
            self.float(end);
            self.write(b"\x86");
            self.memoize();
            self.str_shared(Slot::Size, "size");
            self.float(end - start);
            self.write(b"ub");
            self.write(b"a");
        }
        self.str_shared(Slot::Size, "size");
        match interval {
            // sum() starts from the int 0.
            Some((start, end)) => self.float(0.0 + (end - start)),
            None => {
                self.boundary();
                self.write(b"K\x00");
            }
        }
        self.write(b"ub");
    }

    fn finish(mut self) -> Vec<u8> {
        self.write(b".");
        self.commit_frame();
        self.out
    }
}

/// `umsgpack.dumps(nodes_info)`.
fn msgpack_nodes(matches: &[Found], env: &MetricsEnv<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    mp_len(&mut out, matches.len(), 0x90, 0xdc);
    for f in matches {
        mp_len(&mut out, if f.node.is_leaf { 3 } else { 2 }, 0x80, 0xde);
        mp_str(&mut out, "path");
        mp_str(&mut out, &f.node.path);
        mp_str(&mut out, "is_leaf");
        out.push(if f.node.is_leaf { 0xc3 } else { 0xc2 });
        if f.node.is_leaf {
            mp_str(&mut out, "intervals");
            match leaf_interval(f, env) {
                Some((s, e)) => {
                    out.extend_from_slice(&[0x91, 0x92, 0xcb]);
                    out.extend_from_slice(&s.to_be_bytes());
                    out.push(0xcb);
                    out.extend_from_slice(&e.to_be_bytes());
                }
                None => out.push(0x90),
            }
        }
    }
    out
}

/// An array or map header: fix form below 16, then 16 and 32 bit lengths.
fn mp_len(out: &mut Vec<u8>, n: usize, fix: u8, wide: u8) {
    if n < 16 {
        out.push(fix | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(wide);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(wide + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn mp_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    if b.len() < 32 {
        out.push(0xa0 | b.len() as u8);
    } else if b.len() < 256 {
        out.extend_from_slice(&[0xd9, b.len() as u8]);
    } else if let Ok(n) = u16::try_from(b.len()) {
        out.push(0xda);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote() {
        assert_eq!(unquote_plus("a+b"), "a b");
        assert_eq!(unquote_plus("c%41"), "cA");
        assert_eq!(unquote_plus("%e2%82"), "\u{fffd}");
        assert_eq!(unquote_plus("é%41"), "éA");
        assert_eq!(unquote_plus("%zz%4"), "%zz%4");
        assert_eq!(unquote_plus("%C3%A9"), "é");
    }

    #[test]
    fn json_text() {
        let v = J::obj(vec![
            ("a", J::List(vec![J::Int(1), J::str("é😀")])),
            ("b", J::List(vec![])),
        ]);
        let mut s = String::new();
        v.write(&mut s, None, true);
        assert_eq!(s, r#"{"a": [1, "\u00e9\ud83d\ude00"], "b": []}"#);
        let mut s = String::new();
        v.write(&mut s, Some(0), false);
        assert_eq!(
            s,
            "{\n  \"a\": [\n    1,\n    \"é😀\"\n  ],\n  \"b\": []\n}"
        );
    }
}
