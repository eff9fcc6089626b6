//! The render target grammar of graphite-web 1.1.10 (`render/grammar_unsafe.py`, a pyparsing
//! grammar), parsed with nom into `ast::Expr`. It accepts exactly the targets graphite-web parses
//! in full and builds the same tree, with pipes desugared the way graphite-web's evaluator does
//! (`a | f(x)` is `f(a, x)`). pyparsing is a PEG parser (ordered choice, no backtracking into a
//! choice that matched), and so is nom, so the rules below follow graphite-web's one for one:
//! that is what makes quirks such as `foo(x, k=)` (a path `k=`) or `foo(true.x)` (an error) come
//! out the same.
//!
//! Deliberate differences (tests/query_parser.rs checks each against graphite-web): where its
//! `parseString` stops at a valid prefix and silently drops the rest (`foo((` evaluates `foo`),
//! this answers 400 naming the problem and its position; tabs are kept as written (pyparsing
//! expands them to spaces, inside strings too); numbers are ASCII digits only (Python's `\d`
//! takes any Unicode digit); integers beyond i64 become floats; trees deeper than `MAX_DEPTH`
//! are refused with a 400 (graphite-web fails with a RecursionError near 36 nested calls).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, digit1, multispace0, one_of, satisfy};
use nom::combinator::{opt, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::multi::{many0_count, many1_count};
use nom::sequence::{pair, preceded, tuple};
use nom::{Err, IResult};

use super::ast::{Call, Expr, Template};
use super::error::QueryError;

/// Deepest expression tree accepted (calls, templates and pipe levels). graphite-web itself hits
/// Python's recursion limit near 36 nested calls; the limit here keeps the recursive parser, the
/// evaluator and the tree's drop within the stack whatever a client sends.
pub const MAX_DEPTH: usize = 100;

/// What a backslash may escape inside a path: the symbols and `=`.
const ESCAPABLE: &str = "(){},.'\"\\|=";

/// Parses one render target. Errors (400) name the problem, its character position and the text
/// found there.
pub fn parse(target: &str) -> Result<Expr, QueryError> {
    Parser::new(target).target().map_err(QueryError::BadRequest)
}

/// nom's error. Committed errors (`Err::Failure`) carry the message for the client; plain
/// `Err::Error`s are the backtracking of ordered choice and carry none: the caller that knows the
/// context words it.
#[derive(Debug)]
struct Fail {
    msg: Option<String>,
}

impl ParseError<&str> for Fail {
    fn from_error_kind(_: &str, _: ErrorKind) -> Self {
        Fail { msg: None }
    }

    fn append(_: &str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type Res<'a, T> = IResult<&'a str, T, Fail>;

/// A call's positional arguments, keyword arguments and tree depth.
type CallBody = (Vec<Expr>, Vec<(String, Expr)>, usize);

fn backtrack() -> Err<Fail> {
    Err::Error(Fail { msg: None })
}

fn fatal(msg: String) -> Err<Fail> {
    Err::Failure(Fail { msg: Some(msg) })
}

/// An expression and the depth of its tree, kept to enforce `MAX_DEPTH`.
#[derive(Debug, Clone)]
struct Node {
    expr: Expr,
    depth: usize,
}

impl Node {
    fn leaf(expr: Expr) -> Node {
        Node { expr, depth: 1 }
    }
}

struct Parser<'a> {
    src: &'a str,
    /// Calls open on the parser's stack: bounds recursion before any tree is built.
    nesting: Cell<usize>,
    /// Templates being tried: while any is, calls are memoised (see `template`).
    templates_open: Cell<usize>,
    /// Call parsed at a byte offset: (end offset, call, depth).
    calls: RefCell<HashMap<usize, (usize, Call, usize)>>,
    /// `template(...)` tried at a byte offset: Some((end offset, node)) or None when it failed.
    templates: RefCell<HashMap<usize, Option<(usize, Node)>>>,
}

/// Whitespace as pyparsing skips it between tokens (space, tab, newline, carriage return).
fn ws(i: &str) -> &str {
    let r: Res<'_, &str> = multispace0(i);
    r.map_or(i, |(rest, _)| rest)
}

fn ident(i: &str) -> Res<'_, &str> {
    recognize(pair(
        satisfy(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))(i)
}

/// pyparsing's `printables` (ASCII 33..126) minus graphite-web's `symbols`, `(){},.'\"\\|`.
fn is_path_char(c: char) -> bool {
    c.is_ascii_graphic()
        && !matches!(
            c,
            '(' | ')' | '{' | '}' | ',' | '.' | '\'' | '"' | '\\' | '|'
        )
}

/// `partialPathElem`: path characters and backslash escapes.
fn partial(i: &str) -> Res<'_, &str> {
    recognize(many1_count(alt((
        take_while1(is_path_char),
        recognize(pair(char('\\'), one_of(ESCAPABLE))),
    ))))(i)
}

/// `matchEnum`: `{a,b}`, whose members are partial elements (so braces do not nest).
fn match_enum(i: &str) -> Res<'_, &str> {
    recognize(tuple((
        char('{'),
        partial,
        many0_count(preceded(char(','), partial)),
        char('}'),
    )))(i)
}

/// `pathElement`: partial elements and brace groups, back to back.
fn element(i: &str) -> Res<'_, &str> {
    recognize(many1_count(alt((partial, match_enum))))(i)
}

/// `pathExpression`: elements joined by dots, no whitespace inside; a dot not followed by an
/// element ends the path before the dot. graphite-web drops the backslash of each escape, so
/// `a\.b` names the node `a.b`.
fn path(i: &str) -> Res<'_, String> {
    let (rest, text) = recognize(pair(element, many0_count(preceded(char('.'), element))))(i)?;
    if !text.contains('\\') {
        return Ok((rest, text.to_string()));
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        // Inside a matched path every backslash is followed by the character it escapes.
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    Ok((rest, out))
}

/// `CaselessKeyword`: the word in any (ASCII) case, not followed by an identifier character;
/// returns the rest.
fn keyword<'i>(i: &'i str, word: &str) -> Option<&'i str> {
    let head = i.get(..word.len())?;
    let rest = &i[word.len()..];
    let joined = rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    (head.eq_ignore_ascii_case(word) && !joined).then_some(rest)
}

/// Numbers: `-?\d+(\.\d+)?` with an optional `e-?\d+`, counted as a number only when followed by
/// `,`, `)` or the end of the target (otherwise `1e5x` or `1.5.6` are paths). Integers beyond
/// i64 become floats (graphite-web keeps a Python int).
fn number(i: &str) -> Res<'_, Node> {
    let (rest, text) = recognize(tuple((
        opt(char('-')),
        digit1,
        opt(pair(char('.'), digit1)),
        opt(tuple((one_of("eE"), opt(char('-')), digit1))),
    )))(i)?;
    let after = ws(rest);
    if !(after.is_empty() || after.starts_with([',', ')'])) {
        return Err(backtrack());
    }
    let expr = if text.contains(['.', 'e', 'E']) {
        Expr::Float(text.parse().map_err(|_| backtrack())?)
    } else {
        match text.parse::<i64>() {
            Ok(n) => Expr::Int(n),
            Err(_) => Expr::Float(text.parse().map_err(|_| backtrack())?),
        }
    };
    Ok((rest, Node::leaf(expr)))
}

/// What is wrong with a quoted string that does not close.
enum StringProblem {
    NeverClosed,
    LineBreak(usize),
    BadHexEscape(usize),
}

/// pyparsing's `quotedString`: `'...'` or `"..."` where a backslash escapes any character (but
/// `\x` needs hex digits), the quote may be doubled, and no line break may appear unescaped.
/// Returns the length including both quotes.
fn scan_string(i: &str) -> Result<usize, StringProblem> {
    let b = i.as_bytes();
    let Some(&q) = b.first() else {
        return Err(StringProblem::NeverClosed);
    };
    let mut k = 1;
    loop {
        match b.get(k) {
            None => return Err(StringProblem::NeverClosed),
            Some(&c) if c == q => {
                if b.get(k + 1) == Some(&q) {
                    k += 2;
                } else {
                    return Ok(k + 1);
                }
            }
            Some(b'\n') | Some(b'\r') => return Err(StringProblem::LineBreak(k)),
            Some(b'\\') => match b.get(k + 1) {
                None => return Err(StringProblem::NeverClosed),
                Some(b'x') => {
                    let hex = b[k + 2..]
                        .iter()
                        .take_while(|c| c.is_ascii_hexdigit())
                        .count();
                    if hex == 0 {
                        return Err(StringProblem::BadHexEscape(k));
                    }
                    k += 2 + hex;
                }
                // Multi-byte characters need no care: continuation bytes are never special.
                Some(_) => k += 2,
            },
            Some(_) => k += 1,
        }
    }
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Parser<'a> {
        Parser {
            src,
            nesting: Cell::new(0),
            templates_open: Cell::new(0),
            calls: RefCell::new(HashMap::new()),
            templates: RefCell::new(HashMap::new()),
        }
    }

    fn off(&self, i: &str) -> usize {
        self.src.len() - i.len()
    }

    /// Character position of a byte offset, for messages.
    fn chars_to(&self, off: usize) -> usize {
        self.src.get(..off).map_or(off, |s| s.chars().count())
    }

    fn pos(&self, i: &str) -> usize {
        self.chars_to(self.off(i))
    }

    fn check_depth(&self, depth: usize, at: &'a str) -> Result<(), Err<Fail>> {
        if depth > MAX_DEPTH {
            return Err(fatal(format!(
                "expression nested too deeply: more than {MAX_DEPTH} levels at position {}",
                self.pos(at)
            )));
        }
        Ok(())
    }

    fn target(&self) -> Result<Expr, String> {
        let i = ws(self.src);
        if i.is_empty() {
            return Err("empty target".to_string());
        }
        match self.expression(i) {
            Ok((rest, node)) => {
                let rest = ws(rest);
                if rest.is_empty() {
                    Ok(node.expr)
                } else if rest.starts_with(')') {
                    Err(format!(
                        "unbalanced parenthesis: \")\" at position {} has no matching \"(\"",
                        self.pos(rest)
                    ))
                } else {
                    Err(self.unexpected(rest, " after the end of the expression"))
                }
            }
            Err(Err::Error(Fail { msg: Some(m) })) | Err(Err::Failure(Fail { msg: Some(m) })) => {
                Err(m)
            }
            Err(Err::Error(_)) | Err(Err::Failure(_)) => Err(self.unexpected(
                i,
                ": a target is a path expression, a function call or template()",
            )),
            Err(Err::Incomplete(_)) => Err("incomplete target".to_string()),
        }
    }

    /// The message for text the grammar cannot take at `i` (never whitespace).
    fn unexpected(&self, i: &'a str, context: &str) -> String {
        let at = self.pos(i);
        if i.starts_with(['\'', '"']) {
            return match scan_string(i) {
                Ok(len) => format!(
                    "unexpected string {:?} at position {at}{context}",
                    &i[..len]
                ),
                Err(problem) => self.string_problem(i, problem),
            };
        }
        if let Some(after) = i.strip_prefix('|') {
            return format!(
                "the pipe \"|\" at position {at} must be followed by a function call, found {:?}",
                snippet(ws(after))
            );
        }
        if i.is_empty() {
            return format!("unexpected end of target at position {at}{context}");
        }
        // A path stops before a non-ASCII character, or before the dot in front of one.
        let node = i.strip_prefix('.').unwrap_or(i);
        if let Some(c) = node.chars().next().filter(|c| !c.is_ascii()) {
            // graphite-web's UTF8_METRICS setting, off by default, is what would allow them.
            return format!(
                "unexpected non-ASCII character {c:?} at position {}{context} (only quoted \
                 strings may hold non-ASCII characters)",
                self.pos(node)
            );
        }
        format!("unexpected {:?} at position {at}{context}", snippet(i))
    }

    fn string_problem(&self, i: &'a str, problem: StringProblem) -> String {
        let quote = &i[..1];
        let at = self.pos(i);
        let off = self.off(i);
        match problem {
            StringProblem::NeverClosed => {
                format!("unbalanced quotes: {quote:?} at position {at} is never closed")
            }
            StringProblem::LineBreak(k) => format!(
                "unbalanced quotes: {quote:?} at position {at} is not closed before the line \
                 break at position {}",
                self.chars_to(off + k)
            ),
            StringProblem::BadHexEscape(k) => format!(
                "invalid escape \"\\x\" at position {} in the string at position {at}: it must be \
                 followed by hexadecimal digits",
                self.chars_to(off + k)
            ),
        }
    }

    /// `pipedExpression`: a template, call or path, then `| call` any number of times. Each piped
    /// call takes the value so far as its first positional argument.
    fn expression(&self, i: &'a str) -> Res<'a, Node> {
        let i = ws(i);
        let (mut i, mut node) = alt((
            |i| self.template(i),
            |i| self.call_node(i),
            |i| path(i).map(|(rest, p)| (rest, Node::leaf(Expr::Path(p)))),
        ))(i)?;
        while let Some(after) = ws(i).strip_prefix('|') {
            let at = ws(after);
            match self.call(at) {
                Ok((rest, (mut call, depth))) => {
                    let depth = depth.max(node.depth + 1);
                    self.check_depth(depth, at)?;
                    call.args.insert(0, node.expr);
                    node = Node {
                        expr: Expr::Call(call),
                        depth,
                    };
                    i = rest;
                }
                // Not a call: the expression ends before the pipe, as in graphite-web.
                Err(Err::Error(_)) => break,
                Err(e) => return Err(e),
            }
        }
        Ok((i, node))
    }

    fn call_node(&self, i: &'a str) -> Res<'a, Node> {
        let (rest, (call, depth)) = self.call(i)?;
        Ok((
            rest,
            Node {
                expr: Expr::Call(call),
                depth,
            },
        ))
    }

    /// `call`: `name(args, kw=value)`, whitespace allowed before the parenthesis. Once `name (`
    /// has matched, any failure inside is committed (`Err::Failure`): no other reading of the
    /// text could succeed from there in graphite-web's grammar either, and committing gives the
    /// error at the innermost call that went wrong.
    fn call(&self, i: &'a str) -> Res<'a, (Call, usize)> {
        let start = self.off(i);
        let hit = {
            let calls = self.calls.borrow();
            if calls.is_empty() {
                None
            } else {
                calls.get(&start).cloned()
            }
        };
        if let Some((end, call, depth)) = hit {
            return Ok((&self.src[end..], (call, depth)));
        }
        let (j, name) = ident(i)?;
        let (j, _) = char('(')(ws(j))?;
        let open = self.off(j) - 1;
        let nesting = self.nesting.get() + 1;
        if nesting > MAX_DEPTH {
            return Err(fatal(format!(
                "expression nested too deeply: more than {MAX_DEPTH} levels at position {}",
                self.pos(i)
            )));
        }
        self.nesting.set(nesting);
        let body = self.call_body(j, name, open);
        self.nesting.set(nesting - 1);
        let (rest, (args, kwargs, depth)) = body?;
        self.check_depth(depth, i)?;
        let end = self.off(rest);
        let call = Call {
            name: name.to_string(),
            args,
            kwargs,
            raw: self.src[start..end].to_string(),
            position: start,
        };
        if self.templates_open.get() > 0 {
            self.calls
                .borrow_mut()
                .insert(start, (end, call.clone(), depth));
        }
        Ok((rest, (call, depth)))
    }

    /// Inside a call's parentheses: positional arguments, then keyword arguments, then `)`.
    /// graphite-web checks each positional one with a lookahead that it is not `name=value`, so
    /// the first keyword argument ends the positional ones, and a call cannot start with one.
    fn call_body(&self, i: &'a str, name: &str, open: usize) -> Res<'a, CallBody> {
        let mut args = Vec::new();
        let mut kwargs: Vec<(String, Expr)> = Vec::new();
        let mut depth = 1;
        let i = ws(i);
        if let Some(rest) = i.strip_prefix(')') {
            return Ok((rest, (args, kwargs, depth)));
        }
        match self.kwarg(i) {
            Ok((rest, _)) => {
                return Err(fatal(format!(
                    "keyword argument {:?} at position {} in {name}() comes before any \
                         positional argument (graphite-web needs one positional argument first)",
                    snippet(&i[..i.len() - rest.len()]),
                    self.pos(i)
                )))
            }
            Err(Err::Error(_)) => {}
            Err(e) => return Err(e),
        }
        let mut i = match self.arg(i) {
            Ok((rest, node)) => {
                depth = depth.max(node.depth + 1);
                args.push(node.expr);
                rest
            }
            Err(Err::Error(_)) => return Err(self.bad_argument(i, name, open)),
            Err(e) => return Err(e),
        };
        loop {
            let j = ws(i);
            if let Some(rest) = j.strip_prefix(')') {
                return Ok((rest, (args, kwargs, depth)));
            }
            let Some(after) = j.strip_prefix(',') else {
                if j.is_empty() {
                    return Err(self.never_closed(open));
                }
                return Err(fatal(self.unexpected(
                    j,
                    &format!(" in the arguments of {name}(): expected \",\" or \")\""),
                )));
            };
            let a = ws(after);
            match self.kwarg(a) {
                Ok((rest, (key, node))) => {
                    depth = depth.max(node.depth + 1);
                    kwargs.push((key, node.expr));
                    i = rest;
                    continue;
                }
                Err(Err::Error(_)) => {}
                Err(e) => return Err(e),
            }
            match self.arg(a) {
                Ok((rest, _)) if !kwargs.is_empty() => {
                    return Err(fatal(format!(
                        "positional argument {:?} at position {} in {name}() comes after a \
                             keyword argument",
                        snippet(&a[..a.len() - rest.len()]),
                        self.pos(a)
                    )))
                }
                Ok((rest, node)) => {
                    depth = depth.max(node.depth + 1);
                    args.push(node.expr);
                    i = rest;
                }
                Err(Err::Error(_)) => return Err(self.bad_argument(a, name, open)),
                Err(e) => return Err(e),
            }
        }
    }

    fn never_closed(&self, open: usize) -> Err<Fail> {
        fatal(format!(
            "unbalanced parenthesis: \"(\" at position {} is never closed",
            self.chars_to(open)
        ))
    }

    /// The error where an argument should start but none does.
    fn bad_argument(&self, a: &'a str, name: &str, open: usize) -> Err<Fail> {
        if a.is_empty() {
            return self.never_closed(open);
        }
        if a.starts_with([',', ')']) {
            return fatal(format!(
                "empty argument at position {} in {name}(): found {:?}",
                self.pos(a),
                snippet(a)
            ));
        }
        fatal(self.unexpected(
            a,
            &format!(" in the arguments of {name}(): expected an argument"),
        ))
    }

    /// `kwarg`: `name = value`.
    fn kwarg(&self, i: &'a str) -> Res<'a, (String, Node)> {
        let (j, key) = ident(i)?;
        let (j, _) = char('=')(ws(j))?;
        let (j, value) = self.arg(ws(j))?;
        Ok((j, (key.to_string(), value)))
    }

    /// `arg`: boolean, number, None, string, inf, or an expression, tried in that order. The
    /// first five start with distinct characters, so the first one picks the candidate.
    fn arg(&self, i: &'a str) -> Res<'a, Node> {
        let leaf = |rest, expr| Ok((rest, Node::leaf(expr)));
        match i.as_bytes().first() {
            Some(b't' | b'T') => {
                if let Some(rest) = keyword(i, "true") {
                    return leaf(rest, Expr::Bool(true));
                }
            }
            Some(b'f' | b'F') => {
                if let Some(rest) = keyword(i, "false") {
                    return leaf(rest, Expr::Bool(false));
                }
            }
            Some(b'n' | b'N') => {
                if let Some(rest) = keyword(i, "none") {
                    return leaf(rest, Expr::None);
                }
            }
            Some(b'i' | b'I') => {
                if let Some(rest) = keyword(i, "inf") {
                    return leaf(rest, Expr::Float(f64::INFINITY));
                }
            }
            Some(b'-' | b'0'..=b'9') => match number(i) {
                Err(Err::Error(_)) => {}
                result => return result,
            },
            Some(b'\'' | b'"') => return self.string(i),
            _ => {}
        }
        self.expression(i)
    }

    /// A quoted string, its quotes removed and its escapes kept. A quote that does not close is
    /// committed: nothing else in the grammar starts with a quote.
    fn string(&self, i: &'a str) -> Res<'a, Node> {
        if !i.starts_with(['\'', '"']) {
            return Err(backtrack());
        }
        match scan_string(i) {
            Ok(len) => Ok((&i[len..], Node::leaf(Expr::Str(i[1..len - 1].to_string())))),
            Err(problem) => Err(fatal(self.string_problem(i, problem))),
        }
    }

    /// `template(call or path, literals)`, where the literals are all positional or all keyword
    /// numbers and strings. When that does not match, graphite-web reads the same text as a call
    /// named `template` (which its evaluator then refuses), so the inner call would be parsed
    /// twice, and nested templates would make that exponential: results are memoised by offset.
    fn template(&self, i: &'a str) -> Res<'a, Node> {
        if !i.starts_with("template") {
            return Err(backtrack());
        }
        let start = self.off(i);
        let hit = self.templates.borrow().get(&start).cloned();
        if let Some(result) = hit {
            return match result {
                Some((end, node)) => Ok((&self.src[end..], node)),
                None => Err(backtrack()),
            };
        }
        self.templates_open.set(self.templates_open.get() + 1);
        let result = self.template_uncached(i);
        self.templates_open.set(self.templates_open.get() - 1);
        match &result {
            Ok((rest, node)) => {
                let end = self.off(rest);
                self.templates
                    .borrow_mut()
                    .insert(start, Some((end, node.clone())));
            }
            Err(Err::Error(_)) => {
                self.templates.borrow_mut().insert(start, None);
            }
            Err(_) => {}
        }
        result
    }

    fn template_uncached(&self, i: &'a str) -> Res<'a, Node> {
        let (j, _) = tag("template")(i)?;
        let (j, _) = char('(')(ws(j))?;
        let (j, inner) = alt((
            |i| self.call_node(i),
            |i| path(i).map(|(rest, p)| (rest, Node::leaf(Expr::Path(p)))),
        ))(ws(j))?;
        let depth = inner.depth + 1;
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        let mut j = j;
        if let Some(after) = ws(j).strip_prefix(',') {
            match self.literals(ws(after), |i| self.literal(i)) {
                Ok((rest, lits)) => {
                    args = lits.into_iter().map(|n| n.expr).collect();
                    j = rest;
                }
                Err(Err::Error(_)) => match self.literals(ws(after), |i| self.literal_kwarg(i)) {
                    Ok((rest, lits)) => {
                        kwargs = lits.into_iter().map(|(k, n)| (k, n.expr)).collect();
                        j = rest;
                    }
                    Err(Err::Error(_)) => {}
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
        let (j, _) = char(')')(ws(j))?;
        self.check_depth(depth, i)?;
        Ok((
            j,
            Node {
                expr: Expr::Template(Template {
                    inner: Box::new(inner.expr),
                    args,
                    kwargs,
                }),
                depth,
            },
        ))
    }

    /// `delimitedList(item)`: one item, then `, item` while it matches. A committed failure of an
    /// item (an unclosed quote) is passed on.
    fn literals<T>(
        &self,
        i: &'a str,
        item: impl Fn(&'a str) -> Res<'a, T>,
    ) -> Result<(&'a str, Vec<T>), Err<Fail>> {
        let (mut i, first) = item(i)?;
        let mut out = vec![first];
        while let Some(after) = ws(i).strip_prefix(',') {
            match item(ws(after)) {
                Ok((rest, x)) => {
                    out.push(x);
                    i = rest;
                }
                Err(Err::Error(_)) => break,
                Err(e) => return Err(e),
            }
        }
        Ok((i, out))
    }

    /// `litarg`: a number or a string.
    fn literal(&self, i: &'a str) -> Res<'a, Node> {
        alt((number, |i| self.string(i)))(i)
    }

    /// `litkwarg`: `name = number or string`.
    fn literal_kwarg(&self, i: &'a str) -> Res<'a, (String, Node)> {
        let (j, key) = ident(i)?;
        let (j, _) = char('=')(ws(j))?;
        let (j, value) = self.literal(ws(j))?;
        Ok((j, (key.to_string(), value)))
    }
}

/// The text at an error position, cut to a readable length.
fn snippet(i: &str) -> String {
    const MAX: usize = 24;
    match i.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &i[..cut]),
        None => i.to_string(),
    }
}
