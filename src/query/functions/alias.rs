//! Alias: functions that rename series (the legend Grafana shows): alias, aliasByNode,
//! aliasByTags, aliasByMetric and aliasSub, as graphite-web 1.1.10 names them.
//!
//! aliasSub runs Python's `re.sub` on every name, and Grafana 11.6 and later wraps every target in
//! `aliasSub(T, "(^.*$)", "\1 A")`, so Python's regex dialect, its replacement templates and its
//! handling of empty matches are reproduced by [`python_re`] (also used by grep and exclude).

use super::{FunctionDef, Param, ParamType};
use crate::query::ast::Expr;
use crate::query::error::QueryError;
use crate::query::eval::Context;
use crate::query::series::Series;
use crate::query::value::{Args, Value};

pub const FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "alias",
        group: "Alias",
        signature: "alias(seriesList, newName)",
        description: "Replaces the name of every series with the given string.",
        params: &[
            Param::required("seriesList", ParamType::SeriesList),
            Param::required("newName", ParamType::String),
        ],
        run: alias,
    },
    FunctionDef {
        name: "aliasByNode",
        group: "Alias",
        signature: "aliasByNode(seriesList, *nodes)",
        description: "Names each series after one or more of its path nodes (0-based, negative \
                      from the end) or tag values, joined with dots.",
        params: &[
            Param::required("seriesList", ParamType::SeriesList),
            Param::required("nodes", ParamType::NodeOrTag).multiple(),
        ],
        run: alias_by_node,
    },
    FunctionDef {
        name: "aliasByTags",
        group: "Alias",
        signature: "aliasByTags(seriesList, *tags)",
        description: "Names each series after one or more of its tag values or path nodes, \
                      joined with dots (the same as aliasByNode).",
        params: &[
            Param::required("seriesList", ParamType::SeriesList),
            Param::required("tags", ParamType::NodeOrTag).multiple(),
        ],
        run: alias_by_tags,
    },
    FunctionDef {
        name: "aliasByMetric",
        group: "Alias",
        signature: "aliasByMetric(seriesList)",
        description: "Names each series after the last node of its metric path.",
        params: &[Param::required("seriesList", ParamType::SeriesList)],
        run: alias_by_metric,
    },
    FunctionDef {
        name: "upper",
        group: "Alias",
        signature: "upper(seriesList, *pos)",
        description: "Upper-cases the series names, or only the characters at the given \
                      positions (negative from the end).",
        params: &[
            Param::required("seriesList", ParamType::SeriesList),
            Param::optional("pos", ParamType::Integer).multiple(),
        ],
        run: |_, a| change_case(a, true),
    },
    FunctionDef {
        name: "lower",
        group: "Alias",
        signature: "lower(seriesList, *pos)",
        description: "Lower-cases the series names, or only the characters at the given \
                      positions (negative from the end).",
        params: &[
            Param::required("seriesList", ParamType::SeriesList),
            Param::optional("pos", ParamType::Integer).multiple(),
        ],
        run: |_, a| change_case(a, false),
    },
    FunctionDef {
        name: "aliasSub",
        group: "Alias",
        signature: "aliasSub(seriesList, search, replace)",
        description: "Rewrites each series name with a regular expression search and replace \
                      (Python re.sub syntax, \\1 or \\g<name> in the replacement).",
        params: &[
            Param::required("seriesList", ParamType::SeriesList),
            Param::required("search", ParamType::String),
            Param::required("replace", ParamType::String),
        ],
        run: alias_sub,
    },
];

fn alias(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let name = string_arg(&args, "newName")?;
    for s in &mut list {
        s.name = name.clone();
    }
    Ok(Value::SeriesList(list))
}

/// A required string argument.
fn string_arg(args: &Args, name: &str) -> Result<String, QueryError> {
    match args.opt_str(name)? {
        Some(s) => Ok(s.to_string()),
        None => Err(QueryError::bad(format!(
            "{}: argument {name:?} must be a string, got None",
            args.function()
        ))),
    }
}

fn alias_by_node(_ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    alias_by_nodes(args, "nodes")
}

fn alias_by_tags(_ctx: &mut Context<'_>, args: Args) -> Result<Value, QueryError> {
    alias_by_nodes(args, "tags")
}

fn alias_by_nodes(mut args: Args, param: &str) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let keys = node_keys(&args, param)?;
    for s in &mut list {
        s.name = agg_key(s, &keys)?;
    }
    Ok(Value::SeriesList(list))
}

/// One element of a `nodeOrTag` argument: a node index or a tag name.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKey {
    Node(i64),
    Tag(String),
}

/// The `nodeOrTag` values of a multiple parameter, judged as graphite-web's `getNodeOrTag` does
/// (`n == int(n)` decides node or tag). A float with an integral value would make graphite-web
/// index a list with a float (a 500), and so would None; those are refused here.
pub fn node_keys(args: &Args, param: &str) -> Result<Vec<NodeKey>, QueryError> {
    let mut keys = Vec::new();
    for v in args.all(param) {
        keys.push(match v {
            Value::Int(i) => NodeKey::Node(*i),
            Value::Bool(b) => NodeKey::Node(*b as i64),
            Value::Str(s) => NodeKey::Tag(s.clone()),
            Value::Float(f) if f.is_nan() => NodeKey::Tag("nan".into()),
            Value::Float(f) if f.is_finite() && f.fract() != 0.0 => {
                NodeKey::Tag(crate::python::format::float_repr(*f))
            }
            other => {
                return Err(QueryError::bad(format!(
                    "{}: argument {param:?} must be node numbers or tag names, got {} {}",
                    args.function(),
                    other.type_name(),
                    other.python_repr()
                )))
            }
        });
    }
    Ok(keys)
}

/// graphite-web's `aggKey`: the chosen nodes or tags of a series joined with dots. A name that
/// ends with `)` is a function call's name, whose first path expression gives the nodes.
pub fn agg_key(series: &Series, keys: &[NodeKey]) -> Result<String, QueryError> {
    if series.name.is_empty() {
        // graphite-web reads the name's last character first (a 500 for an empty name).
        return Err(QueryError::bad(
            "cannot take nodes or tags of a series with an empty name",
        ));
    }
    let path = if series.name.ends_with(')') {
        first_path_expression(&series.name)?
    } else {
        None
    };
    let base = path.as_deref().unwrap_or(&series.name);
    let parts: Vec<String> = keys.iter().map(|k| node_or_tag(series, k, base)).collect();
    Ok(parts.join("."))
}

/// graphite-web's `getNodeOrTag`: node `n` of the untagged part of `path` (Python indexing, so
/// negative counts from the end), else the tag of that name, else empty.
pub fn node_or_tag(series: &Series, key: &NodeKey, path: &str) -> String {
    let tag = match key {
        NodeKey::Node(n) => {
            let untagged = path.split(';').next().unwrap_or("");
            let nodes: Vec<&str> = untagged.split('.').collect();
            if let Some(i) = python_index(nodes.len(), *n) {
                return nodes[i].to_string();
            }
            n.to_string()
        }
        NodeKey::Tag(t) => t.clone(),
    };
    series.tags.get(&tag).cloned().unwrap_or_default()
}

/// The position Python's `list[n]` reads in a list of `len` items, if any.
pub fn python_index(len: usize, n: i64) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let i = if n < 0 { n.checked_add(len)? } else { n };
    (0..len).contains(&i).then_some(i as usize)
}

/// graphite-web's `_getFirstPathExpression`: the series name parsed as a target, descending
/// into first arguments until a path expression shows up (None when the first argument is a
/// literal). A name that does not parse is an error, as it is in graphite-web.
fn first_path_expression(name: &str) -> Result<Option<String>, QueryError> {
    let mut expr = crate::query::parser::parse(name).map_err(|e| {
        QueryError::bad(format!(
            "cannot find the metric path in series name {}: {}",
            crate::python::text::repr(name),
            e.message()
        ))
    })?;
    loop {
        match expr {
            Expr::Path(p) => return Ok(Some(p)),
            Expr::Call(call) if call.args.is_empty() => {
                // graphite-web reads the first argument of a call without any (a 500).
                return Err(QueryError::bad(format!(
                    "cannot find the metric path in series name {}: {}() has no arguments",
                    crate::python::text::repr(name),
                    call.name
                )));
            }
            Expr::Call(mut call) => expr = call.args.swap_remove(0),
            _ => return Ok(None),
        }
    }
}

fn alias_by_metric(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    for s in &mut list {
        s.name = last_metric_node(&s.name);
    }
    Ok(Value::SeriesList(list))
}

/// graphite-web's `substr(name, -1, 0)`.
fn last_metric_node(name: &str) -> String {
    substr_name(name, -1, 0)
}

/// graphite-web's `substr` on one name: the text between the last `(` and the first `)` (the
/// whole name without them), its dot-separated nodes `[start:stop]` (`[start:]` when stop is
/// 0, Python slicing), joined and cut at the first comma the way `re.sub(',.*$', '', name)`
/// does.
pub fn substr_name(name: &str, start: i64, stop: i64) -> String {
    let left = name.rfind('(').map_or(0, |i| i + 1);
    let right = name.find(')').unwrap_or(name.len());
    let clean = if right >= left {
        &name[left..right]
    } else {
        ""
    };
    let nodes: Vec<&str> = clean.split('.').collect();
    let (a, b) = python_slice(nodes.len(), start, (stop != 0).then_some(stop));
    let joined = if a < b {
        nodes[a..b].join(".")
    } else {
        String::new()
    };
    cut_at_comma(&joined)
}

/// The bounds Python's `list[start:stop]` reads in a list of `len` items (stop None: to the
/// end); empty when the second is not above the first.
pub fn python_slice(len: usize, start: i64, stop: Option<i64>) -> (usize, usize) {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |i: i64| {
        let i = if i < 0 { i.saturating_add(len_i) } else { i };
        usize::try_from(i.clamp(0, len_i)).unwrap_or(0)
    };
    (clamp(start), stop.map_or(len, clamp))
}

/// `re.sub(',.*$', '', s)`: `.` stops at a newline and `$` also matches before a final
/// newline, so the match is the first comma after which only a final newline may follow.
fn cut_at_comma(s: &str) -> String {
    for (i, _) in s.match_indices(',') {
        let rest = &s[i + 1..];
        match rest.find('\n') {
            None => return s[..i].to_string(),
            Some(j) if j == rest.len() - 1 => return format!("{}\n", &s[..i]),
            Some(_) => {}
        }
    }
    s.to_string()
}

/// toUpperCase / toLowerCase: the whole name, or the characters at the given positions
/// (Python indexing; positions past the end are ignored).
fn change_case(mut args: Args, upper: bool) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let mut positions = Vec::new();
    for v in args.all("pos") {
        match v {
            Value::Int(i) => positions.push(*i),
            Value::Bool(b) => positions.push(*b as i64),
            other => {
                return Err(QueryError::bad(format!(
                    "{}: argument \"pos\" must be integers, got {} {}",
                    args.function(),
                    other.type_name(),
                    other.python_repr()
                )))
            }
        }
    }
    let convert = |c: &str| {
        if upper {
            c.to_uppercase()
        } else {
            c.to_lowercase()
        }
    };
    for s in &mut list {
        if positions.is_empty() {
            s.name = convert(&s.name);
            continue;
        }
        // Python's list(name): one item per character, and an item may grow (ß -> SS).
        let mut chars: Vec<String> = s.name.chars().map(String::from).collect();
        for &p in &positions {
            if let Some(i) = python_index(chars.len(), p) {
                chars[i] = convert(&chars[i]);
            }
        }
        s.name = chars.concat();
    }
    Ok(Value::SeriesList(list))
}

fn alias_sub(_ctx: &mut Context<'_>, mut args: Args) -> Result<Value, QueryError> {
    let mut list = args.series("seriesList")?;
    let search = string_arg(&args, "search")?;
    let replace = string_arg(&args, "replace")?;
    // graphite-web compiles the pattern per series, so an empty list never sees a bad pattern.
    if list.is_empty() {
        return Ok(Value::SeriesList(list));
    }
    let function = args.function();
    let re = python_re::PyRegex::compile(&search)
        .map_err(|e| QueryError::bad(format!("{function}: {e}")))?;
    let template = re
        .template(&replace)
        .map_err(|e| QueryError::bad(format!("{function}: {e}")))?;
    for s in &mut list {
        s.name = re.sub(&template, &s.name);
    }
    Ok(Value::SeriesList(list))
}

/// Python 3.11's `re` for `str` patterns, on top of the `regex` crate: a pattern is parsed with
/// Python's grammar and rewritten in the crate's syntax (or refused, with a reason, where Python
/// has a feature the crate lacks), and `sub` walks the matches the way CPython does.
///
/// Reproduced: Python's escapes (`\Z`, octal, `\x`/`\u`/`\U`, unknown-letter errors, literal
/// punctuation), classes (`]` first, `[` and `&&`/`--`/`~~` literal inside), `{` as a literal
/// when it is not a quantifier and `{,n}`, inline flags (`i m s x a u`, global ones only at the
/// start, scoped `(?i:...)`), `(?P<name>...)`, `(?#...)`, lazy quantifiers, `\d` (Unicode
/// decimals), `\s` (str.isspace), `\w` (letters, numbers and `_`), replacement templates (`\1`,
/// `\g<1>`, `\g<name>`, `\n` and friends, unmatched groups as empty, errors for bad references)
/// and empty matches next to a previous match (`re.sub('x*', '-', 'abxd')` is `-a-b--d-`).
///
/// Refused with an error, where Python accepts: look-ahead and look-behind, backreferences
/// (`\1`, `(?P=name)`), conditionals `(?(1)...)`, atomic groups and possessive quantifiers,
/// `\N{name}`. Known differences among accepted patterns: in a subject with several newlines,
/// `$` does not match before the final one (with at most one newline it does, and `\B` never
/// matches in an empty subject, as in Python); `\b` uses the crate's word characters (which add
/// combining marks and connector punctuation); after an empty match, a non-empty match at the
/// same place that Python finds by backtracking into a lazy or empty-first alternative is
/// missed.
pub mod python_re {
    use regex::{CaptureLocations, Regex};

    /// Python's `sre_constants.MAXREPEAT` (64-bit builds).
    const MAXREPEAT: u64 = 4_294_967_295;

    /// A compiled Python pattern.
    #[derive(Debug, Clone)]
    pub struct PyRegex {
        re: Regex,
        /// For an empty subject, where Python's `\B` never matches (the crate's does), the
        /// pattern with `\B` made impossible; None when the pattern has no `\B`.
        on_empty: Option<Regex>,
        /// For a subject whose only newline is its last character, where Python's `$` also
        /// matches before that newline: the pattern with such `$` written `(?m:$)`; None when
        /// the pattern has no `$` outside multi-line mode.
        on_final_newline: Option<Regex>,
        groups: usize,
        names: Vec<(String, usize)>,
    }

    /// A parsed replacement template.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Template {
        pieces: Vec<Piece>,
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Piece {
        Literal(String),
        Group(usize),
    }

    impl PyRegex {
        /// `re.compile(pattern)`; the error says what is wrong (one line).
        pub fn compile(pattern: &str) -> Result<PyRegex, String> {
            let fail = |msg: String| {
                format!(
                    "invalid regular expression {}: {msg}",
                    crate::python::text::repr(pattern)
                )
            };
            let translated = Translator::new(pattern, Mode::default())
                .run()
                .map_err(&fail)?;
            let build = |p: &str| {
                Regex::new(p).map_err(|e| {
                    let text = e.to_string();
                    let reason = text
                        .lines()
                        .rev()
                        .find_map(|l| l.strip_prefix("error: "))
                        .unwrap_or(text.trim())
                        .to_string();
                    fail(reason)
                })
            };
            let re = build(&translated.pattern)?;
            let variant = |mode: Mode| -> Result<Regex, String> {
                build(&Translator::new(pattern, mode).run().map_err(&fail)?.pattern)
            };
            let on_empty = if translated.non_boundary {
                Some(variant(Mode {
                    never_non_boundary: true,
                    ..Mode::default()
                })?)
            } else {
                None
            };
            let on_final_newline = if translated.dollar {
                Some(variant(Mode {
                    dollar_before_final_newline: true,
                    ..Mode::default()
                })?)
            } else {
                None
            };
            Ok(PyRegex {
                re,
                on_empty,
                on_final_newline,
                groups: translated.groups,
                names: translated.names,
            })
        }

        /// The crate's pattern this Python pattern became.
        pub fn as_str(&self) -> &str {
            self.re.as_str()
        }

        /// `bool(regex.search(s))`.
        pub fn search(&self, s: &str) -> bool {
            self.regex_for(s).is_match(s)
        }

        fn regex_for(&self, s: &str) -> &Regex {
            let final_newline_only = s
                .strip_suffix('\n')
                .is_some_and(|head| !head.contains('\n'));
            match (&self.on_empty, &self.on_final_newline) {
                (Some(re), _) if s.is_empty() => re,
                (_, Some(re)) if final_newline_only => re,
                _ => &self.re,
            }
        }

        /// Parses a replacement as `re.sub` does before it matches anything, so a bad template
        /// is an error even where nothing would be replaced.
        pub fn template(&self, repl: &str) -> Result<Template, String> {
            parse_template(repl, self.groups, &self.names).map_err(|e| {
                format!(
                    "invalid replacement {}: {e}",
                    crate::python::text::repr(repl)
                )
            })
        }

        /// `regex.sub(template, s)`: every match replaced, scanning as CPython 3.7+ does (an
        /// empty match may follow a non-empty one directly; after an empty match the scan
        /// moves on).
        pub fn sub(&self, template: &Template, s: &str) -> String {
            let re = self.regex_for(s);
            let mut out = String::with_capacity(s.len());
            let mut locs = re.capture_locations();
            let mut copied = 0;
            let mut pos = 0;
            let mut must_advance = false;
            while pos <= s.len() {
                let Some(m) = re.captures_read_at(&mut locs, s, pos) else {
                    break;
                };
                let (start, end) = (m.start(), m.end());
                if must_advance && start == end && start == pos {
                    match s[pos..].chars().next() {
                        Some(c) => pos += c.len_utf8(),
                        None => break,
                    }
                    must_advance = false;
                    continue;
                }
                out.push_str(&s[copied..start]);
                expand(template, &locs, s, &mut out);
                copied = end;
                must_advance = start == end;
                pos = end;
            }
            out.push_str(&s[copied..]);
            out
        }
    }

    fn expand(template: &Template, locs: &CaptureLocations, s: &str, out: &mut String) {
        for piece in &template.pieces {
            match piece {
                Piece::Literal(l) => out.push_str(l),
                Piece::Group(i) => {
                    if let Some((a, b)) = locs.get(*i) {
                        out.push_str(&s[a..b]);
                    }
                }
            }
        }
    }

    /// One token of Python's `Tokenizer`: a character, or a backslash and the next character.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Tok {
        Char(char),
        Escape(char),
    }

    fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
        let mut out = Vec::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some(n) => out.push(Tok::Escape(n)),
                    None => return Err("bad escape (end of pattern)".into()),
                }
            } else {
                out.push(Tok::Char(c));
            }
        }
        Ok(out)
    }

    /// Python's `parse_template` (re/_parser.py, 3.11).
    fn parse_template(
        repl: &str,
        groups: usize,
        names: &[(String, usize)],
    ) -> Result<Template, String> {
        let toks = tokenize(repl)?;
        let mut pieces: Vec<Piece> = Vec::new();
        let mut literal = String::new();
        let mut add_group = |index: usize, literal: &mut String| -> Result<(), String> {
            if index > groups {
                return Err(format!("invalid group reference {index}"));
            }
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(literal)));
            }
            pieces.push(Piece::Group(index));
            Ok(())
        };
        let octal = |t: Option<&Tok>| match t {
            Some(Tok::Char(c)) if ('0'..='7').contains(c) => Some(*c),
            _ => None,
        };
        let digit = |t: Option<&Tok>| match t {
            Some(Tok::Char(c)) if c.is_ascii_digit() => Some(*c),
            _ => None,
        };
        let mut i = 0;
        while i < toks.len() {
            let tok = toks[i];
            i += 1;
            let c = match tok {
                Tok::Char(c) => {
                    literal.push(c);
                    continue;
                }
                Tok::Escape(c) => c,
            };
            match c {
                'g' => {
                    if toks.get(i) != Some(&Tok::Char('<')) {
                        return Err("missing <".into());
                    }
                    i += 1;
                    let mut name = String::new();
                    loop {
                        match toks.get(i) {
                            None if name.is_empty() => return Err("missing group name".into()),
                            None => return Err("missing >, unterminated name".into()),
                            Some(Tok::Char('>')) => {
                                i += 1;
                                break;
                            }
                            Some(Tok::Char(c)) => name.push(*c),
                            Some(Tok::Escape(c)) => {
                                name.push('\\');
                                name.push(*c);
                            }
                        }
                        i += 1;
                    }
                    if name.is_empty() {
                        return Err("missing group name".into());
                    }
                    let index = if is_identifier(&name) {
                        match names.iter().find(|(n, _)| *n == name) {
                            Some((_, idx)) => *idx,
                            None => {
                                return Err(format!(
                                    "unknown group name {}",
                                    crate::python::text::repr(&name)
                                ))
                            }
                        }
                    } else {
                        match crate::python::number::parse_int(&name) {
                            Some(n) if n >= 0 => n as usize,
                            _ => {
                                return Err(format!(
                                    "bad character in group name {}",
                                    crate::python::text::repr(&name)
                                ))
                            }
                        }
                    };
                    add_group(index, &mut literal)?;
                }
                '0' => {
                    let mut digits = String::from("0");
                    for _ in 0..2 {
                        match octal(toks.get(i)) {
                            Some(d) => {
                                digits.push(d);
                                i += 1;
                            }
                            None => break,
                        }
                    }
                    let v = u32::from_str_radix(&digits, 8).unwrap_or(0) & 0xff;
                    literal.push(char::from_u32(v).unwrap_or('\0'));
                }
                '1'..='9' => {
                    let mut digits = String::from(c);
                    let mut is_octal = false;
                    if let Some(d2) = digit(toks.get(i)) {
                        digits.push(d2);
                        i += 1;
                        if c <= '7' && d2 <= '7' {
                            if let Some(d3) = octal(toks.get(i)) {
                                digits.push(d3);
                                i += 1;
                                is_octal = true;
                                let v = u32::from_str_radix(&digits, 8).unwrap_or(0);
                                if v > 0o377 {
                                    return Err(format!(
                                        "octal escape value \\{digits} outside of range 0-0o377"
                                    ));
                                }
                                literal.push(char::from_u32(v).unwrap_or('\0'));
                            }
                        }
                    }
                    if !is_octal {
                        add_group(digits.parse().unwrap_or(usize::MAX), &mut literal)?;
                    }
                }
                _ => match simple_escape(c) {
                    Some(e) => literal.push(e),
                    None if c.is_ascii_alphabetic() => return Err(format!("bad escape \\{c}")),
                    None => {
                        literal.push('\\');
                        literal.push(c);
                    }
                },
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Template { pieces })
    }

    /// Python's `ESCAPES` table (outside classes `\b` is a word boundary instead).
    fn simple_escape(c: char) -> Option<char> {
        Some(match c {
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '\\' => '\\',
            _ => return None,
        })
    }

    /// `str.isidentifier()`, approximated with Unicode alphabetic and alphanumeric.
    fn is_identifier(s: &str) -> bool {
        let mut chars = s.chars();
        match chars.next() {
            Some(c) if c == '_' || c.is_alphabetic() => {}
            _ => return false,
        }
        chars.all(|c| c == '_' || c.is_alphanumeric())
    }

    struct Translated {
        pattern: String,
        /// Whether the pattern has `\B`.
        non_boundary: bool,
        /// Whether the pattern has `$` outside multi-line mode.
        dollar: bool,
        groups: usize,
        names: Vec<(String, usize)>,
    }

    /// What the current branch of the current group last produced (Python's repeat checks).
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Last {
        Nothing,
        Atom,
        Assertion,
        Repeat,
    }

    /// Variants of the translation for subjects where the crate's anchors differ from Python's.
    #[derive(Debug, Clone, Copy, Default)]
    struct Mode {
        /// `\B` never matches (Python, in an empty string).
        never_non_boundary: bool,
        /// `$` also matches before a newline (Python, before a final newline).
        dollar_before_final_newline: bool,
    }

    #[derive(Debug, Clone, Copy)]
    struct Frame {
        multiline: bool,
        verbose: bool,
        ascii: bool,
        open_at: usize,
    }

    #[derive(Debug, Clone, Copy)]
    enum Category {
        Digit,
        Space,
        Word,
    }

    #[derive(Debug, Clone, Copy)]
    enum ClassItem {
        Char(char),
        Range(char, char),
        Category(Category, bool, bool),
    }

    struct Translator {
        chars: Vec<char>,
        pos: usize,
        out: String,
        global_flags: String,
        groups: usize,
        names: Vec<(String, usize)>,
        verbose: bool,
        ascii: bool,
        stack: Vec<Frame>,
        last: Last,
        /// Still at the start of the top level's first branch (global flags allowed).
        at_start: bool,
        /// Translate `\B` as never matching (for an empty subject).
        mode: Mode,
        non_boundary: bool,
        dollar: bool,
        multiline: bool,
    }

    impl Translator {
        fn new(pattern: &str, mode: Mode) -> Translator {
            Translator {
                chars: pattern.chars().collect(),
                pos: 0,
                out: String::new(),
                global_flags: String::new(),
                groups: 0,
                names: Vec::new(),
                verbose: false,
                ascii: false,
                stack: Vec::new(),
                last: Last::Nothing,
                at_start: true,
                mode,
                non_boundary: false,
                dollar: false,
                multiline: false,
            }
        }

        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }

        fn peek_at(&self, off: usize) -> Option<char> {
            self.chars.get(self.pos + off).copied()
        }

        fn eat(&mut self, c: char) -> bool {
            if self.peek() == Some(c) {
                self.pos += 1;
                true
            } else {
                false
            }
        }

        fn err<T>(&self, msg: impl Into<String>, at: usize) -> Result<T, String> {
            Err(format!("{} at position {at}", msg.into()))
        }

        fn unsupported<T>(&self, what: &str, at: usize) -> Result<T, String> {
            Err(format!(
                "{what} at position {at} is not supported (Python's re has it, Carbide's regex \
                 engine does not; rewrite the pattern without it)"
            ))
        }

        fn item(&mut self, kind: Last) {
            self.last = kind;
            self.at_start = false;
        }

        fn run(mut self) -> Result<Translated, String> {
            while let Some(c) = self.peek() {
                let at = self.pos;
                self.pos += 1;
                if self.verbose {
                    if matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
                        continue;
                    }
                    if c == '#' {
                        while let Some(n) = self.peek() {
                            self.pos += 1;
                            if n == '\n' {
                                break;
                            }
                        }
                        continue;
                    }
                }
                match c {
                    '|' => {
                        self.out.push('|');
                        self.last = Last::Nothing;
                        self.at_start = false;
                    }
                    '(' => self.open_group(at)?,
                    ')' => {
                        let Some(frame) = self.stack.pop() else {
                            return self.err("unbalanced parenthesis", at);
                        };
                        self.verbose = frame.verbose;
                        self.multiline = frame.multiline;
                        self.ascii = frame.ascii;
                        self.out.push(')');
                        self.item(Last::Atom);
                    }
                    '$' if !self.multiline => {
                        self.dollar = true;
                        if self.mode.dollar_before_final_newline {
                            self.out.push_str("(?m:$)");
                        } else {
                            self.out.push('$');
                        }
                        self.item(Last::Assertion);
                    }
                    '^' | '$' => {
                        self.out.push(c);
                        self.item(Last::Assertion);
                    }
                    '.' => {
                        self.out.push('.');
                        self.item(Last::Atom);
                    }
                    '[' => {
                        self.class(at)?;
                        self.item(Last::Atom);
                    }
                    '\\' => self.escape(at)?,
                    '*' | '+' | '?' => {
                        let q = match c {
                            '*' => "*",
                            '+' => "+",
                            _ => "?",
                        };
                        self.repeat(q, at)?;
                    }
                    '{' => self.brace(at)?,
                    _ => {
                        push_literal(&mut self.out, c);
                        self.item(Last::Atom);
                    }
                }
            }
            if let Some(frame) = self.stack.last() {
                return self.err("missing ), unterminated subpattern", frame.open_at);
            }
            let pattern = if self.global_flags.is_empty() {
                self.out
            } else {
                format!("(?{}){}", self.global_flags, self.out)
            };
            Ok(Translated {
                pattern,
                non_boundary: self.non_boundary,
                dollar: self.dollar,
                groups: self.groups,
                names: self.names,
            })
        }

        fn repeat(&mut self, q: &str, at: usize) -> Result<(), String> {
            match self.last {
                Last::Nothing | Last::Assertion => return self.err("nothing to repeat", at),
                Last::Repeat => return self.err("multiple repeat", at),
                Last::Atom => {}
            }
            self.out.push_str(q);
            if self.eat('?') {
                self.out.push('?');
            } else if self.peek() == Some('+') {
                return self.unsupported("a possessive quantifier", at);
            }
            self.item(Last::Repeat);
            Ok(())
        }

        /// `{m,n}` and its variants; anything else makes `{` a literal, as in Python.
        fn brace(&mut self, at: usize) -> Result<(), String> {
            let literal = |t: &mut Translator| {
                push_literal(&mut t.out, '{');
                t.item(Last::Atom);
                Ok(())
            };
            if self.peek() == Some('}') {
                return literal(self);
            }
            let start = self.pos;
            let digits = |t: &mut Translator| {
                let mut s = String::new();
                while let Some(d) = t.peek().filter(char::is_ascii_digit) {
                    s.push(d);
                    t.pos += 1;
                }
                s
            };
            let lo = digits(self);
            let hi = if self.eat(',') {
                Some(digits(self))
            } else {
                None
            };
            if !self.eat('}') {
                self.pos = start;
                return literal(self);
            }
            let number = |s: &str| -> Result<u64, String> {
                match s.parse::<u64>() {
                    Ok(n) if n < MAXREPEAT => Ok(n),
                    _ => Err("the repetition number is too large".to_string()),
                }
            };
            let min = if lo.is_empty() { 0 } else { number(&lo)? };
            let max = match &hi {
                None => Some(min),
                Some(h) if h.is_empty() => None,
                Some(h) => Some(number(h)?),
            };
            if let Some(max) = max {
                if max < min {
                    return self.err("min repeat greater than max repeat", start);
                }
            }
            let q = match max {
                Some(max) if max == min => format!("{{{min}}}"),
                Some(max) => format!("{{{min},{max}}}"),
                None => format!("{{{min},}}"),
            };
            self.repeat(&q, at)
        }

        fn open_group(&mut self, at: usize) -> Result<(), String> {
            let frame = Frame {
                multiline: self.multiline,
                verbose: self.verbose,
                ascii: self.ascii,
                open_at: at,
            };
            if !self.eat('?') {
                self.groups += 1;
                self.out.push('(');
                self.stack.push(frame);
                self.last = Last::Nothing;
                self.at_start = false;
                return Ok(());
            }
            let Some(c) = self.peek() else {
                return self.err("unexpected end of pattern", self.pos);
            };
            self.pos += 1;
            match c {
                ':' => {
                    self.out.push_str("(?:");
                }
                'P' => {
                    if self.eat('<') {
                        let name = self.until('>', "group name")?;
                        if !is_identifier(&name) {
                            return self.err(
                                format!(
                                    "bad character in group name {}",
                                    crate::python::text::repr(&name)
                                ),
                                at + 4,
                            );
                        }
                        if self.names.iter().any(|(n, _)| *n == name) {
                            return self.err(
                                format!(
                                    "redefinition of group name {}",
                                    crate::python::text::repr(&name)
                                ),
                                at + 4,
                            );
                        }
                        self.groups += 1;
                        self.names.push((name, self.groups));
                        // Names are resolved here, so the crate only sees a numbered group.
                        self.out.push('(');
                    } else if self.eat('=') {
                        return self.unsupported("a backreference (?P=...)", at);
                    } else {
                        return match self.peek() {
                            Some(n) => self.err(format!("unknown extension ?P{n}"), at + 1),
                            None => self.err("unexpected end of pattern", self.pos),
                        };
                    }
                }
                '#' => {
                    loop {
                        match self.peek() {
                            None => return self.err("missing ), unterminated comment", at),
                            Some(')') => {
                                self.pos += 1;
                                break;
                            }
                            Some(_) => self.pos += 1,
                        }
                    }
                    return Ok(());
                }
                '=' | '!' => return self.unsupported("look-ahead", at),
                '<' => {
                    return match self.peek() {
                        Some('=') | Some('!') => self.unsupported("look-behind", at),
                        Some(n) => self.err(format!("unknown extension ?<{n}"), at + 1),
                        None => self.err("unexpected end of pattern", self.pos),
                    };
                }
                '>' => return self.unsupported("an atomic group (?>...)", at),
                '(' => return self.unsupported("a conditional group (?(...)...)", at),
                c if "aiLmsuxt-".contains(c) => {
                    self.pos -= 1;
                    return self.flags(at, frame);
                }
                c => return self.err(format!("unknown extension ?{c}"), at + 1),
            }
            self.stack.push(frame);
            self.last = Last::Nothing;
            self.at_start = false;
            Ok(())
        }

        /// `(?flags)` (global, only at the start) or `(?on-off:...)` (scoped).
        fn flags(&mut self, at: usize, frame: Frame) -> Result<(), String> {
            let mut on = String::new();
            while let Some(c) = self.peek().filter(|c| "aiLmsuxt".contains(*c)) {
                on.push(c);
                self.pos += 1;
            }
            if on.contains('L') {
                return self.err(
                    "bad inline flag: cannot use 'L' flag with a str pattern",
                    at,
                );
            }
            if on.contains('a') && on.contains('u') {
                return self.err(
                    "bad inline flag: flags 'a', 'u' and 'L' are incompatible",
                    at,
                );
            }
            if self.eat(')') {
                if !self.at_start || !self.stack.is_empty() {
                    return self.err("global flags not at the start of the expression", at);
                }
                for f in on.chars() {
                    match f {
                        'i' | 'm' | 's' if !self.global_flags.contains(f) => {
                            self.global_flags.push(f)
                        }
                        'x' => self.verbose = true,
                        'a' => self.ascii = true,
                        _ => {}
                    }
                }
                self.multiline |= on.contains('m');
                return Ok(());
            }
            let mut off = String::new();
            if self.eat('-') {
                while let Some(c) = self.peek().filter(|c| c.is_ascii_alphabetic()) {
                    if !"imsx".contains(c) {
                        return if "aLu".contains(c) {
                            self.err(
                                "bad inline flag: cannot turn off flags 'a', 'u' and 'L'",
                                self.pos,
                            )
                        } else {
                            self.err("unknown flag", self.pos)
                        };
                    }
                    off.push(c);
                    self.pos += 1;
                }
                if off.is_empty() {
                    return self.err("missing flag", self.pos);
                }
            }
            if !self.eat(':') {
                return match self.peek() {
                    Some(c) if c.is_alphabetic() || c == '-' => self.err("unknown flag", self.pos),
                    Some(_) => self.err("missing :", self.pos),
                    None => self.err("missing -, : or )", self.pos),
                };
            }
            if off.chars().any(|c| on.contains(c)) {
                return self.err("bad inline flag: flag turned on and off", at);
            }
            let crate_on: String = on.chars().filter(|c| "ims".contains(*c)).collect();
            let crate_off: String = off.chars().filter(|c| "ims".contains(*c)).collect();
            self.out.push_str("(?");
            self.out.push_str(&crate_on);
            if !crate_off.is_empty() {
                self.out.push('-');
                self.out.push_str(&crate_off);
            }
            self.out.push(':');
            self.stack.push(frame);
            if on.contains('x') {
                self.verbose = true;
            }
            if on.contains('m') {
                self.multiline = true;
            }
            if off.contains('m') {
                self.multiline = false;
            }
            if off.contains('x') {
                self.verbose = false;
            }
            if on.contains('a') {
                self.ascii = true;
            }
            if on.contains('u') {
                self.ascii = false;
            }
            self.last = Last::Nothing;
            self.at_start = false;
            Ok(())
        }

        fn until(&mut self, end: char, what: &str) -> Result<String, String> {
            let mut s = String::new();
            loop {
                match self.peek() {
                    None if s.is_empty() => return self.err(format!("missing {what}"), self.pos),
                    None => return self.err(format!("missing {end}, unterminated name"), self.pos),
                    Some(c) if c == end => {
                        self.pos += 1;
                        if s.is_empty() {
                            return self.err(format!("missing {what}"), self.pos - 1);
                        }
                        return Ok(s);
                    }
                    Some(c) => {
                        s.push(c);
                        self.pos += 1;
                    }
                }
            }
        }

        /// `\x`, `\u`, `\U`: exactly `n` hex digits.
        fn hex(&mut self, n: usize, at: usize, kind: char) -> Result<char, String> {
            let mut s = String::new();
            while s.len() < n {
                match self.peek().filter(char::is_ascii_hexdigit) {
                    Some(d) => {
                        s.push(d);
                        self.pos += 1;
                    }
                    None => break,
                }
            }
            if s.len() != n {
                return self.err(format!("incomplete escape \\{kind}{s}"), at);
            }
            let v = u32::from_str_radix(&s, 16).unwrap_or(u32::MAX);
            match char::from_u32(v) {
                Some(c) => Ok(c),
                None => self.err(format!("bad escape \\{kind}{s}"), at),
            }
        }

        fn octal_digits(&mut self, first: char, max: usize) -> String {
            let mut s = String::from(first);
            while s.len() < max {
                match self.peek().filter(|c| ('0'..='7').contains(c)) {
                    Some(d) => {
                        s.push(d);
                        self.pos += 1;
                    }
                    None => break,
                }
            }
            s
        }

        fn octal_char(&self, digits: &str, at: usize) -> Result<char, String> {
            let v = u32::from_str_radix(digits, 8).unwrap_or(u32::MAX);
            if v > 0o377 {
                return self.err(
                    format!("octal escape value \\{digits} outside of range 0-0o377"),
                    at,
                );
            }
            Ok(char::from_u32(v).unwrap_or('\0'))
        }

        /// An escape outside a class (Python's `_escape`).
        fn escape(&mut self, at: usize) -> Result<(), String> {
            let Some(c) = self.peek() else {
                return self.err("bad escape (end of pattern)", at);
            };
            self.pos += 1;
            let lit = match c {
                'A' => {
                    self.out.push_str("\\A");
                    self.item(Last::Assertion);
                    return Ok(());
                }
                'Z' => {
                    self.out.push_str("\\z");
                    self.item(Last::Assertion);
                    return Ok(());
                }
                'B' if self.mode.never_non_boundary => {
                    self.non_boundary = true;
                    self.out.push_str("[^\\s\\S]");
                    self.item(Last::Assertion);
                    return Ok(());
                }
                'b' | 'B' => {
                    self.non_boundary |= c == 'B';
                    if self.ascii {
                        self.out
                            .push_str(if c == 'b' { "(?-u:\\b)" } else { "(?-u:\\B)" });
                    } else {
                        self.out.push('\\');
                        self.out.push(c);
                    }
                    self.item(Last::Assertion);
                    return Ok(());
                }
                'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                    let item = category_item(c, self.ascii);
                    push_class(&mut self.out, false, &[item]);
                    self.item(Last::Atom);
                    return Ok(());
                }
                'x' => self.hex(2, at, 'x')?,
                'u' => self.hex(4, at, 'u')?,
                'U' => self.hex(8, at, 'U')?,
                'N' => return self.unsupported("a named character \\N{...}", at),
                '0' => {
                    let digits = self.octal_digits('0', 3);
                    self.octal_char(&digits, at)?
                }
                '1'..='9' => {
                    if let Some(d2) = self.peek().filter(char::is_ascii_digit) {
                        if let Some(d3) = self.peek_at(1).filter(|d| ('0'..='7').contains(d)) {
                            if c <= '7' && d2 <= '7' {
                                self.pos += 2;
                                let digits: String = [c, d2, d3].iter().collect();
                                let ch = self.octal_char(&digits, at)?;
                                push_literal(&mut self.out, ch);
                                self.item(Last::Atom);
                                return Ok(());
                            }
                        }
                    }
                    return self.unsupported("a backreference", at);
                }
                c => match simple_escape(c) {
                    Some(e) => e,
                    None if c.is_ascii_alphabetic() => {
                        return self.err(format!("bad escape \\{c}"), at)
                    }
                    None => c,
                },
            };
            push_literal(&mut self.out, lit);
            self.item(Last::Atom);
            Ok(())
        }

        /// An escape inside a class (Python's `_class_escape`).
        fn class_escape(&mut self, at: usize) -> Result<ClassItem, String> {
            let Some(c) = self.peek() else {
                return self.err("unterminated character set", at);
            };
            self.pos += 1;
            Ok(ClassItem::Char(match c {
                'd' | 'D' | 's' | 'S' | 'w' | 'W' => return Ok(category_item(c, self.ascii)),
                'x' => self.hex(2, at, 'x')?,
                'u' => self.hex(4, at, 'u')?,
                'U' => self.hex(8, at, 'U')?,
                'N' => return self.unsupported("a named character \\N{...}", at),
                '0'..='7' => {
                    let digits = self.octal_digits(c, 3);
                    self.octal_char(&digits, at)?
                }
                '8' | '9' => return self.err(format!("bad escape \\{c}"), at),
                c => match simple_escape(c) {
                    Some(e) => e,
                    None if c.is_ascii_alphabetic() => {
                        return self.err(format!("bad escape \\{c}"), at)
                    }
                    None => c,
                },
            }))
        }

        /// A class, after its `[` (Python's set parsing; verbose mode does not apply inside).
        fn class(&mut self, open: usize) -> Result<(), String> {
            let negate = self.eat('^');
            let mut items: Vec<ClassItem> = Vec::new();
            loop {
                let at = self.pos;
                let Some(c) = self.peek() else {
                    return self.err("unterminated character set", open);
                };
                self.pos += 1;
                if c == ']' && !items.is_empty() {
                    break;
                }
                let first = if c == '\\' {
                    self.class_escape(at)?
                } else {
                    ClassItem::Char(c)
                };
                if self.eat('-') {
                    let at2 = self.pos;
                    let Some(c2) = self.peek() else {
                        return self.err("unterminated character set", open);
                    };
                    self.pos += 1;
                    if c2 == ']' {
                        items.push(first);
                        items.push(ClassItem::Char('-'));
                        break;
                    }
                    let second = if c2 == '\\' {
                        self.class_escape(at2)?
                    } else {
                        ClassItem::Char(c2)
                    };
                    match (first, second) {
                        (ClassItem::Char(a), ClassItem::Char(b)) if a <= b => {
                            items.push(ClassItem::Range(a, b))
                        }
                        _ => {
                            let text: String = self.chars[at..self.pos].iter().collect();
                            return self.err(format!("bad character range {text}"), at);
                        }
                    }
                } else {
                    items.push(first);
                }
            }
            push_class(&mut self.out, negate, &items);
            Ok(())
        }
    }

    fn category_item(c: char, ascii: bool) -> ClassItem {
        let cat = match c.to_ascii_lowercase() {
            'd' => Category::Digit,
            's' => Category::Space,
            _ => Category::Word,
        };
        ClassItem::Category(cat, c.is_ascii_uppercase(), ascii)
    }

    /// The members of a positive category, as class contents.
    fn category_body(cat: Category, ascii: bool) -> &'static str {
        match (cat, ascii) {
            (Category::Digit, false) => "\\d",
            (Category::Digit, true) => "0-9",
            // str.isspace() is White_Space plus the four information separators.
            (Category::Space, false) => "\\s\\x{1C}-\\x{1F}",
            (Category::Space, true) => " \\t\\n\\r\\x{0B}\\x{0C}",
            // str.isalnum() (letters and numbers) and the underscore.
            (Category::Word, false) => "\\p{L}\\p{N}_",
            (Category::Word, true) => "0-9A-Za-z_",
        }
    }

    fn push_class(out: &mut String, negate: bool, items: &[ClassItem]) {
        out.push('[');
        if negate {
            out.push('^');
        }
        for item in items {
            match *item {
                ClassItem::Char(c) => push_class_char(out, c),
                ClassItem::Range(a, b) => {
                    push_class_char(out, a);
                    out.push('-');
                    push_class_char(out, b);
                }
                ClassItem::Category(cat, negated, ascii) => {
                    if negated {
                        out.push_str("[^");
                        out.push_str(category_body(cat, ascii));
                        out.push(']');
                    } else {
                        out.push_str(category_body(cat, ascii));
                    }
                }
            }
        }
        out.push(']');
    }

    fn push_class_char(out: &mut String, c: char) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
        }
    }

    fn push_literal(out: &mut String, c: char) {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if c.is_ascii_punctuation() || c.is_control() || c.is_whitespace() {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::python_re::PyRegex;
    use super::*;

    fn sub(p: &str, r: &str, s: &str) -> Result<String, String> {
        let re = PyRegex::compile(p)?;
        let t = re.template(r)?;
        Ok(re.sub(&t, s))
    }

    #[test]
    fn python_sub_semantics() {
        assert_eq!(sub("(^.*$)", "\\1 A", "a.b.c").unwrap(), "a.b.c A");
        assert_eq!(sub("x*", "-", "abxd").unwrap(), "-a-b--d-");
        assert_eq!(sub("a|(b)", "[\\1]", "ab").unwrap(), "[][b]");
        assert_eq!(sub("(a)", "\\.\\&", "a").unwrap(), "\\.\\&");
        assert_eq!(sub("(?P<n>a)", "\\g<n>\\g<1>\\g<0>", "xa").unwrap(), "xaaa");
        assert_eq!(sub("^.*TCP(\\d+)", "\\1", "ip.TCP80.x").unwrap(), "80.x");
        assert_eq!(sub("[]a]", "-", "a]b").unwrap(), "--b");
        assert_eq!(sub("[[]", "-", "a[b").unwrap(), "a-b");
        assert_eq!(sub("a{,2}", "-", "aaa").unwrap(), "---");
        assert_eq!(sub("a{", "-", "a{").unwrap(), "-");
        assert_eq!(sub("(?x) a b # c", "-", "ab").unwrap(), "-");
        assert_eq!(sub("(?i)A", "-", "a").unwrap(), "-");
        assert_eq!(sub("(^.*$)", "\\1 A", "abc\n").unwrap(), "abc A\n");
        assert_eq!(sub("c$", "-", "abc\n").unwrap(), "ab-\n");
        assert_eq!(sub("(?m)c$", "-", "c\nc\n").unwrap(), "-\n-\n");
        assert_eq!(sub("c$", "-", "c\nc\n").unwrap(), "c\nc\n");
        assert_eq!(sub("\\B", "-", "").unwrap(), "");
        assert!(sub("(a)", "\\2", "b")
            .unwrap_err()
            .contains("invalid group reference 2"));
        assert!(sub("a(?=b)", "", "ab").unwrap_err().contains("look-ahead"));
        assert!(sub("(a)\\1", "", "aa")
            .unwrap_err()
            .contains("backreference"));
        assert!(sub("\\q", "", "a").unwrap_err().contains("bad escape \\q"));
        assert!(sub("a", "\\q", "a").unwrap_err().contains("bad escape \\q"));
        assert!(sub("a**", "", "a").unwrap_err().contains("multiple repeat"));
        assert!(sub("*a", "", "a")
            .unwrap_err()
            .contains("nothing to repeat"));
    }

    /// Tagged names: nodes come from the part before the first `;`, names are tag lookups and
    /// a node past the end looks up a tag named after the number (graphite-web's getNodeOrTag).
    #[test]
    fn nodes_and_tags_of_tagged_series() {
        let s = Series::new("cpu.load;dc=x;server=web1", 0, 60, 60, vec![None], 0.0);
        let keys = [
            NodeKey::Tag("dc".into()),
            NodeKey::Node(1),
            NodeKey::Node(-1),
            NodeKey::Tag("server".into()),
            NodeKey::Node(5),
            NodeKey::Tag("nosuch".into()),
        ];
        assert_eq!(agg_key(&s, &keys).unwrap(), "x.load.load.web1..");
        assert_eq!(
            agg_key(&s, &[NodeKey::Tag("name".into())]).unwrap(),
            "cpu.load"
        );
    }

    #[test]
    fn metric_node() {
        assert_eq!(last_metric_node("a.b.c"), "c");
        assert_eq!(last_metric_node("sumSeries(a.b.c)"), "c");
        assert_eq!(last_metric_node("scale(a.b.c,2)"), "c");
        assert_eq!(last_metric_node("x)y(z"), "");
    }
}
