//! carbon-cache's metric whitelist and blacklist (`USE_WHITELIST`): `whitelist.conf` and
//! `blacklist.conf` in the schemas directory, one Python regular expression a line, re-read when
//! they change. A point whose raw name (before any cleaning) a blacklist pattern is found in is
//! dropped; with a non-empty whitelist, so is a point no whitelist pattern is found in.
//!
//! carbon compiles the lines with Python's `re` and matches with `re.search`. Carbide rewrites
//! each pattern into Rust syntax with the same meaning ([`translate`]: Python's literal `{`,
//! `\Z`, octal escapes, class literals Rust would read as set operators, its error cases...),
//! then compiles it with the `regex` crate, all of a list's patterns in one `RegexSet` so a name
//! costs one search per list; the few patterns that need backtracking (look-around,
//! backreferences, possessive quantifiers, atomic groups) go to `fancy-regex` instead. A line
//! that neither Python nor Carbide can compile is logged and skipped, as carbon does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::python::text::strip;

/// The whitelist's file name in the schemas directory (carbon's CONF_DIR).
pub const WHITELIST_FILE: &str = "whitelist.conf";
/// The blacklist's file name in the schemas directory.
pub const BLACKLIST_FILE: &str = "blacklist.conf";

/// What the lists say about one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// A blacklist pattern matched (carbon's `blacklistMatches`).
    Blacklisted,
    /// The whitelist is not empty and no pattern of it matched (carbon's `whitelistRejects`).
    NotWhitelisted,
}

/// A Python pattern rewritten for Carbide's engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    pub pattern: String,
    /// Needs fancy-regex for something the regex crate would accept with another meaning
    /// (possessive quantifiers) or does not have (backreferences, atomic groups, conditionals).
    /// Look-around is not flagged: the regex crate refuses it, which sends it to fancy-regex.
    pub fancy: bool,
}

/// Rewrites a Python 3.11 `re` pattern into regex/fancy-regex syntax with the same matches, or
/// gives the error Python's `re.compile` raises (or why Carbide cannot take the pattern).
pub fn translate(pattern: &str) -> Result<Translated, String> {
    let mut t = Translator {
        c: pattern.chars().collect(),
        i: 0,
        out: String::with_capacity(pattern.len() + 8),
        fancy: false,
        verbose: false,
        stack: Vec::new(),
        lookaround_at: None,
        drop_quantifier: false,
        groups: Vec::new(),
        names: Vec::new(),
        cond_refs: Vec::new(),
        seen_item: false,
        first_alt: true,
        can_repeat: false,
        repeat: Repeat::None,
    };
    t.run()?;
    Ok(Translated {
        pattern: t.out,
        fancy: t.fancy,
    })
}

/// An open group.
struct Group {
    /// The verbose flag to restore at its `)`.
    verbose: bool,
    lookaround: bool,
    /// Where it starts in the output.
    out_start: usize,
    /// Its number, if it captures.
    capture: Option<usize>,
    /// A conditional `(?(group)yes|no)`, and the `|` seen in it.
    conditional: bool,
    branches: u8,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    None,
    /// Right after a quantifier: `?` makes it lazy, `+` possessive.
    Quantifier,
    /// After a quantifier and its `?`/`+`: any further quantifier is "multiple repeat".
    Modified,
}

/// One member of a character class.
enum ClassItem {
    Char(char),
    /// `\d`, `\w`, ... by their letter.
    Category(char),
}

struct Translator {
    c: Vec<char>,
    i: usize,
    out: String,
    fancy: bool,
    /// Python's verbose flag in force (`(?x)`, `(?x:...)`).
    verbose: bool,
    /// The groups open.
    stack: Vec<Group>,
    /// Where in `out` the look-around group that is the last item starts.
    lookaround_at: Option<usize>,
    /// The quantifier being read applies to a look-around: it is not emitted (fancy-regex
    /// refuses to repeat an assertion; repeating one changes nothing, and with a minimum of
    /// zero it always matches, written `(?:group|)`).
    drop_quantifier: bool,
    /// Capturing groups so far, by number - 1: whether closed (Python refuses a reference
    /// to a group not yet opened or still open).
    groups: Vec<bool>,
    names: Vec<(String, usize)>,
    /// Groups that conditionals test, which must exist by the end.
    cond_refs: Vec<usize>,
    /// Something other than global flags or comments came before (Python allows global
    /// flags only at the very start).
    seen_item: bool,
    first_alt: bool,
    /// The last item is one a quantifier may follow.
    can_repeat: bool,
    repeat: Repeat,
}

fn err_at(msg: impl std::fmt::Display, pos: usize) -> String {
    format!("{msg} at position {pos}")
}

/// A character as an escape both engines read as that one character, in and out of classes
/// and in verbose mode.
fn push_char(out: &mut String, c: char) {
    use std::fmt::Write as _;
    if c.is_ascii_alphanumeric() || "<>;=/:_@!%,'\"`".contains(c) {
        out.push(c);
    } else if regex_syntax_is_meta(c) {
        out.push('\\');
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:x}}}", c as u32);
    }
}

/// The characters the regex crate gives a meaning somewhere (escaping them is always allowed).
fn regex_syntax_is_meta(c: char) -> bool {
    "\\.+*?()|[]{}^$#&-~".contains(c)
}

impl Translator {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.c.get(self.i + k).copied()
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(ch) = self.peek() {
            if self.verbose {
                if matches!(ch, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c') {
                    self.i += 1;
                    self.skipped();
                    continue;
                }
                if ch == '#' {
                    self.skipped();
                    while let Some(c) = self.peek() {
                        self.i += 1;
                        if c == '\n' {
                            break;
                        }
                    }
                    continue;
                }
            }
            match ch {
                '\\' => self.escape()?,
                '[' => self.class()?,
                '(' => {
                    if self.open_group()? {
                        // Global flags and comments are not items.
                        continue;
                    }
                }
                ')' => {
                    let Some(g) = self.stack.pop() else {
                        return Err(err_at("unbalanced parenthesis", self.i));
                    };
                    self.verbose = g.verbose;
                    if let Some(closed) = g.capture.and_then(|n| self.groups.get_mut(n - 1)) {
                        *closed = true;
                    }
                    self.out.push(')');
                    self.i += 1;
                    self.item(true);
                    if g.lookaround {
                        self.lookaround_at = Some(g.out_start);
                    }
                }
                '|' => {
                    if self.stack.is_empty() {
                        self.first_alt = false;
                    }
                    if let Some(g) = self.stack.last_mut().filter(|g| g.conditional) {
                        if g.branches > 0 {
                            return Err(err_at(
                                "conditional backref with more than two branches",
                                self.i,
                            ));
                        }
                        g.branches += 1;
                    }
                    self.out.push('|');
                    self.i += 1;
                    self.item(false);
                }
                '*' | '+' | '?' => {
                    if self.quantifier(ch, ch != '+')? {
                        self.out.push(ch);
                    }
                    self.i += 1;
                }
                '{' => self.brace()?,
                '^' | '$' => {
                    self.out.push(ch);
                    self.i += 1;
                    self.item(false);
                }
                '.' => {
                    self.out.push('.');
                    self.i += 1;
                    self.item(true);
                }
                ']' | '}' | '#' | '&' | '-' | '~' => {
                    push_char(&mut self.out, ch);
                    self.i += 1;
                    self.item(true);
                }
                _ => {
                    if ch.is_whitespace() {
                        // Literal in Python outside verbose mode; escaped so that no engine
                        // flag can make it insignificant.
                        push_char(&mut self.out, ch);
                    } else {
                        self.out.push(ch);
                    }
                    self.i += 1;
                    self.item(true);
                }
            }
            self.seen_item = true;
        }
        if !self.stack.is_empty() {
            return Err(err_at("missing ), unterminated subpattern", self.c.len()));
        }
        if let Some(n) = self.cond_refs.iter().find(|&&n| n > self.groups.len()) {
            return Err(format!("invalid group reference {n}"));
        }
        Ok(())
    }

    /// After text Python skips (a comment, blanks in verbose mode): a quantifier's `?` or `+`
    /// must follow it at once, so what comes next cannot modify it.
    fn skipped(&mut self) {
        if self.repeat == Repeat::Quantifier {
            self.repeat = Repeat::Modified;
        }
    }

    /// After an item: whether a quantifier may follow it.
    fn item(&mut self, can_repeat: bool) {
        self.can_repeat = can_repeat;
        self.repeat = Repeat::None;
        self.lookaround_at = None;
        self.drop_quantifier = false;
    }

    /// Checks a quantifier (or its `?`/`+` modifier) at the current position as Python does;
    /// `min_zero` when it allows zero repetitions. False when it is not to be emitted.
    fn quantifier(&mut self, ch: char, min_zero: bool) -> Result<bool, String> {
        match self.repeat {
            Repeat::Quantifier if ch == '?' || ch == '+' => {
                self.repeat = Repeat::Modified;
                if ch == '+' && !self.drop_quantifier {
                    self.fancy = true;
                }
                Ok(!self.drop_quantifier)
            }
            Repeat::Quantifier | Repeat::Modified => Err(err_at("multiple repeat", self.i)),
            Repeat::None if !self.can_repeat => Err(err_at("nothing to repeat", self.i)),
            Repeat::None => {
                self.repeat = Repeat::Quantifier;
                if let Some(start) = self.lookaround_at.take() {
                    if min_zero {
                        // Optional: it always matches, yet stays for the look-behind check.
                        self.out.insert_str(start, "(?:");
                        self.out.push_str("|)");
                    }
                    self.drop_quantifier = true;
                    return Ok(false);
                }
                Ok(true)
            }
        }
    }

    /// `{`: a quantifier if it reads `{m}`, `{m,}`, `{,n}`, `{m,n}` or `{,}`, else a literal.
    fn brace(&mut self) -> Result<(), String> {
        let start = self.i;
        let mut j = self.i + 1;
        let digits = |j: &mut usize, c: &[char]| {
            let s = *j;
            while c.get(*j).is_some_and(|c| c.is_ascii_digit()) {
                *j += 1;
            }
            c[s..*j].iter().collect::<String>()
        };
        let quant = if self.c.get(j) == Some(&'}') {
            None
        } else {
            let lo = digits(&mut j, &self.c);
            let hi = if self.c.get(j) == Some(&',') {
                j += 1;
                Some(digits(&mut j, &self.c))
            } else {
                None
            };
            if self.c.get(j) == Some(&'}') {
                Some((lo, hi, j + 1))
            } else {
                None
            }
        };
        let Some((lo, hi, end)) = quant else {
            push_char(&mut self.out, '{');
            self.i += 1;
            self.item(true);
            return Ok(());
        };
        let parse = |s: &str| -> Result<u64, String> {
            s.parse::<u64>()
                .ok()
                .filter(|&n| n < 4_294_967_295)
                .ok_or_else(|| "the repetition number is too large".to_string())
        };
        let lo_n = if lo.is_empty() { 0 } else { parse(&lo)? };
        let hi_n = match &hi {
            Some(h) if !h.is_empty() => Some(parse(h)?),
            _ => None,
        };
        if hi_n.is_some_and(|h| h < lo_n) {
            return Err(err_at("min repeat greater than max repeat", start + 1));
        }
        if !self.quantifier('{', lo_n == 0)? {
            self.i = end;
            return Ok(());
        }
        match &hi {
            None => self.out.push_str(&format!("{{{lo_n}}}")),
            Some(h) if h.is_empty() => self.out.push_str(&format!("{{{lo_n},}}")),
            Some(_) => {
                let hi_n = hi_n.unwrap_or(lo_n);
                self.out.push_str(&format!("{{{lo_n},{hi_n}}}"));
            }
        }
        self.i = end;
        Ok(())
    }

    /// `(`: a group, or one of Python's `(?...)` forms. True when nothing was emitted that
    /// counts as an item (global flags, comments).
    fn open_group(&mut self) -> Result<bool, String> {
        let start = self.i;
        if self.peek_at(1) != Some('?') {
            self.groups.push(false);
            self.stack.push(Group {
                verbose: self.verbose,
                lookaround: false,
                out_start: self.out.len(),
                capture: Some(self.groups.len()),
                conditional: false,
                branches: 0,
            });
            self.out.push('(');
            self.i += 1;
            self.item(false);
            return Ok(false);
        }
        let Some(kind) = self.peek_at(2) else {
            return Err(err_at("unexpected end of pattern", start + 2));
        };
        match kind {
            ':' | '=' | '!' | '>' => {
                if kind == '>' {
                    self.fancy = true;
                }
                self.open(&format!("(?{kind}"), 3);
            }
            '<' => match self.peek_at(3) {
                Some(c @ ('=' | '!')) => self.open(&format!("(?<{c}"), 4),
                Some(c) => return Err(err_at(format!("unknown extension ?<{c}"), start + 1)),
                None => return Err(err_at("unexpected end of pattern", start + 3)),
            },
            'P' => match self.peek_at(3) {
                Some('<') => {
                    let name = self.name_until(start + 4, '>')?;
                    if self.names.iter().any(|(n, _)| *n == name) {
                        return Err(err_at(
                            format!("redefinition of group name {name:?}"),
                            start + 4,
                        ));
                    }
                    let len = 5 + name.chars().count();
                    self.open(&format!("(?P<{name}>"), len);
                    self.groups.push(false);
                    let number = self.groups.len();
                    self.names.push((name, number));
                    if let Some(g) = self.stack.last_mut() {
                        g.capture = Some(number);
                    }
                }
                Some('=') => {
                    let name = self.name_until(start + 4, ')')?;
                    let Some(&(_, number)) = self.names.iter().find(|(n, _)| *n == name) else {
                        return Err(err_at(format!("unknown group name '{name}'"), start + 4));
                    };
                    self.check_reference(number, start + 4)?;
                    self.out.push_str(&format!("(?P={name})"));
                    self.i = start + 5 + name.chars().count();
                    self.fancy = true;
                    self.item(true);
                }
                _ => {
                    let c: String = self.peek_at(3).into_iter().collect();
                    return Err(err_at(format!("unknown extension ?P{c}"), start + 1));
                }
            },
            '#' => {
                let mut j = start + 3;
                loop {
                    match self.c.get(j) {
                        Some(')') => break,
                        Some(_) => j += 1,
                        None => {
                            return Err(err_at("missing ), unterminated comment", start));
                        }
                    }
                }
                self.i = j + 1;
                self.skipped();
                return Ok(true);
            }
            '(' => {
                // A conditional `(?(group)yes|no)`: the condition is copied as written.
                let mut j = start + 3;
                while self.c.get(j).is_some_and(|&c| c != ')') {
                    j += 1;
                }
                if j >= self.c.len() {
                    return Err(err_at("missing ), unterminated name", start + 3));
                }
                let cond: String = self.c[start + 3..j].iter().collect();
                if !cond.is_empty() && cond.chars().all(|c| c.is_ascii_digit()) {
                    match cond.parse::<usize>() {
                        Ok(0) => return Err(err_at("bad group number", start + 3)),
                        // Checked at the end: Python lets it name a later group.
                        Ok(n) => self.cond_refs.push(n),
                        Err(_) => return Err(err_at("invalid group reference", start + 3)),
                    }
                } else if !self.names.iter().any(|(n, _)| *n == cond) {
                    return Err(err_at(format!("unknown group name '{cond}'"), start + 3));
                }
                self.fancy = true;
                // fancy-regex reads a bare name as a pattern to try: names go in `<>`.
                let cond = if cond.starts_with(|c: char| c.is_ascii_digit()) {
                    cond
                } else {
                    format!("<{cond}>")
                };
                self.open(&format!("(?({cond})"), j + 1 - start);
                if let Some(g) = self.stack.last_mut() {
                    g.conditional = true;
                }
            }
            c if "aiLmsux-".contains(c) => return self.flags(start),
            c => return Err(err_at(format!("unknown extension ?{c}"), start + 1)),
        }
        Ok(false)
    }

    /// A reference to capturing group `number` (which exists) must come after its `)`.
    fn check_reference(&self, number: usize, pos: usize) -> Result<(), String> {
        match self.groups.get(number.wrapping_sub(1)) {
            Some(true) => Ok(()),
            _ => Err(err_at("cannot refer to an open group", pos)),
        }
    }

    /// Emits an opening group form and enters it.
    fn open(&mut self, text: &str, consumed: usize) {
        self.stack.push(Group {
            verbose: self.verbose,
            lookaround: ["(?=", "(?!", "(?<=", "(?<!"].contains(&text),
            out_start: self.out.len(),
            capture: None,
            conditional: false,
            branches: 0,
        });
        self.out.push_str(text);
        self.i += consumed;
        self.item(false);
    }

    /// The group name after `(?P<` or `(?P=`, up to `end`.
    fn name_until(&self, from: usize, end: char) -> Result<String, String> {
        let mut j = from;
        while self.c.get(j).is_some_and(|&c| c != end) {
            j += 1;
        }
        if j >= self.c.len() {
            return Err(err_at("missing >, unterminated name", from));
        }
        let name: String = self.c[from..j].iter().collect();
        let mut chars = name.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
        if name.is_empty() {
            return Err(err_at("missing group name", from));
        }
        if !ok {
            // Python takes any identifier; Carbide's engines only ASCII ones.
            return Err(err_at(
                format!("bad character in group name {name:?}"),
                from,
            ));
        }
        Ok(name)
    }

    /// `(?flags)` (global, only at the start) or `(?flags-flags:...)` (scoped).
    fn flags(&mut self, start: usize) -> Result<bool, String> {
        let mut j = start + 2;
        let mut on = String::new();
        let mut off = String::new();
        let mut minus = false;
        loop {
            match self.c.get(j) {
                Some('-') if !minus => minus = true,
                Some(&c) if "aiLmsux".contains(c) => {
                    if c == 'L' {
                        return Err(err_at(
                            "bad inline flags: cannot use 'L' flag with a str pattern",
                            j + 1,
                        ));
                    }
                    if minus && "aLu".contains(c) {
                        return Err(err_at(
                            "bad inline flags: cannot turn off flags 'a', 'u' and 'L'",
                            j + 1,
                        ));
                    }
                    if c == 'a' {
                        // Python's ASCII-only classes have no equivalent in either engine.
                        return Err(err_at("the ASCII-only flag (?a) is not supported", j));
                    }
                    if minus { &mut off } else { &mut on }.push(c);
                }
                Some(')') if !minus => break,
                Some(')') => return Err(err_at("missing :", j)),
                Some(':') => break,
                Some(c) => {
                    return Err(err_at(
                        if c.is_alphabetic() {
                            "unknown flag"
                        } else {
                            "missing -, : or )"
                        },
                        j,
                    ));
                }
                None => return Err(err_at("missing -, : or )", j)),
            }
            j += 1;
        }
        let keep = |s: &str| s.chars().filter(|c| "ims".contains(*c)).collect::<String>();
        if self.c.get(j) == Some(&')') {
            if !self.stack.is_empty() || !self.first_alt || self.seen_item {
                return Err(err_at(
                    "global flags not at the start of the expression",
                    start,
                ));
            }
            if on.contains('x') {
                self.verbose = true;
            }
            let f = keep(&on);
            if !f.is_empty() {
                self.out.push_str(&format!("(?{f})"));
            }
            self.i = j + 1;
            return Ok(true);
        }
        if on.is_empty() && off.is_empty() {
            return Err(err_at("missing flag", j));
        }
        self.stack.push(Group {
            verbose: self.verbose,
            lookaround: false,
            out_start: self.out.len(),
            capture: None,
            conditional: false,
            branches: 0,
        });
        if on.contains('x') {
            self.verbose = true;
        }
        if off.contains('x') {
            self.verbose = false;
        }
        let (f_on, f_off) = (keep(&on), keep(&off));
        if f_off.is_empty() {
            self.out.push_str(&format!("(?{f_on}:"));
        } else {
            self.out.push_str(&format!("(?{f_on}-{f_off}:"));
        }
        self.i = j + 1;
        self.item(false);
        Ok(false)
    }

    /// `\x`, `\u`, `\U`: exactly 2, 4 or 8 hex digits after `self.i + 1`.
    fn hex_escape(&self, n: usize) -> Result<char, String> {
        let start = self.i + 2;
        let digits: String = self.c.get(start..start + n).unwrap_or(&[]).iter().collect();
        let letter = self.c.get(self.i + 1).copied().unwrap_or('x');
        if digits.chars().count() != n || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            let seen: String = self.c[start..]
                .iter()
                .take(n)
                .take_while(|c| c.is_ascii_hexdigit())
                .collect();
            return Err(err_at(
                format!("incomplete escape \\{letter}{seen}"),
                self.i,
            ));
        }
        let v = u32::from_str_radix(&digits, 16).map_err(|e| e.to_string())?;
        char::from_u32(v).ok_or_else(|| {
            if v > 0x10ffff {
                err_at(format!("bad escape \\{letter}{digits}"), self.i)
            } else {
                // A lone surrogate: Python takes it, but no name can hold one.
                err_at(
                    format!("surrogate escape \\{letter}{digits} is not supported"),
                    self.i,
                )
            }
        })
    }

    /// An escape outside a class.
    fn escape(&mut self) -> Result<(), String> {
        let Some(n) = self.peek_at(1) else {
            return Err(err_at("bad escape (end of pattern)", self.i));
        };
        match n {
            'A' | 'b' | 'B' | 'Z' => {
                // Python's `\Z` is the very end, which is `\z` to both engines.
                self.out.push('\\');
                self.out.push(if n == 'Z' { 'z' } else { n });
                self.i += 2;
                self.item(false);
                return Ok(());
            }
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.out.push_str(category(n, false));
                self.i += 2;
            }
            'a' | 'f' | 'n' | 'r' | 't' | 'v' => {
                push_char(&mut self.out, control(n));
                self.i += 2;
            }
            'x' | 'u' | 'U' => {
                let len = match n {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let c = self.hex_escape(len)?;
                push_char(&mut self.out, c);
                self.i += 2 + len;
            }
            'N' => {
                return Err(err_at(
                    "named character escapes (\\N{...}) are not supported",
                    self.i,
                ))
            }
            '0' => {
                let mut j = self.i + 2;
                let mut v = 0u32;
                while j < self.i + 4 && self.c.get(j).is_some_and(|c| ('0'..='7').contains(c)) {
                    v = v * 8 + (self.c[j] as u32 - '0' as u32);
                    j += 1;
                }
                push_char(&mut self.out, char::from_u32(v).unwrap_or('\0'));
                self.i = j;
            }
            '1'..='9' => {
                let octal = |c: Option<&char>| c.is_some_and(|c| ('0'..='7').contains(c));
                let d2 = self.c.get(self.i + 2).filter(|c| c.is_ascii_digit());
                if let Some(&d2) = d2 {
                    if octal(Some(&n)) && octal(Some(&d2)) && octal(self.c.get(self.i + 3)) {
                        let v = (n as u32 - 48) * 64
                            + (d2 as u32 - 48) * 8
                            + (self.c[self.i + 3] as u32 - 48);
                        if v > 0o377 {
                            return Err(err_at(
                                format!(
                                    "octal escape value \\{n}{d2}{} outside of range 0-0o377",
                                    self.c[self.i + 3]
                                ),
                                self.i,
                            ));
                        }
                        push_char(&mut self.out, char::from_u32(v).unwrap_or('\0'));
                        self.i += 4;
                        self.item(true);
                        return Ok(());
                    }
                }
                let digits: String = std::iter::once(n).chain(d2.copied()).collect();
                let number: usize = digits.parse().unwrap_or(usize::MAX);
                if number > self.groups.len() {
                    return Err(err_at(
                        format!("invalid group reference {digits}"),
                        self.i + 1,
                    ));
                }
                self.check_reference(number, self.i + 1)?;
                self.out.push_str(&format!("(?:\\{digits})"));
                self.fancy = true;
                self.i += 1 + digits.len();
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(err_at(format!("bad escape \\{c}"), self.i));
            }
            c => {
                push_char(&mut self.out, c);
                self.i += 2;
            }
        }
        self.item(true);
        Ok(())
    }

    /// An escape inside a class.
    fn class_escape(&mut self) -> Result<ClassItem, String> {
        let Some(n) = self.peek_at(1) else {
            return Err(err_at("bad escape (end of pattern)", self.i));
        };
        let item = match n {
            'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                self.i += 2;
                ClassItem::Category(n)
            }
            'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' => {
                self.i += 2;
                ClassItem::Char(if n == 'b' { '\x08' } else { control(n) })
            }
            'x' | 'u' | 'U' => {
                let len = match n {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let c = self.hex_escape(len)?;
                self.i += 2 + len;
                ClassItem::Char(c)
            }
            'N' => {
                return Err(err_at(
                    "named character escapes (\\N{...}) are not supported",
                    self.i,
                ))
            }
            '0'..='7' => {
                let mut j = self.i + 1;
                let mut v = 0u32;
                while j < self.i + 4 && self.c.get(j).is_some_and(|c| ('0'..='7').contains(c)) {
                    v = v * 8 + (self.c[j] as u32 - '0' as u32);
                    j += 1;
                }
                if v > 0o377 {
                    let text: String = self.c[self.i..j].iter().collect();
                    return Err(err_at(
                        format!("octal escape value {text} outside of range 0-0o377"),
                        self.i,
                    ));
                }
                self.i = j;
                ClassItem::Char(char::from_u32(v).unwrap_or('\0'))
            }
            c if c.is_ascii_alphanumeric() => {
                return Err(err_at(format!("bad escape \\{c}"), self.i));
            }
            c => {
                self.i += 2;
                ClassItem::Char(c)
            }
        };
        Ok(item)
    }

    /// `[...]`, re-emitted with every literal escaped, so that what Python reads literally
    /// (`[`, `&&`, `--`, `~~`, blanks in verbose mode) stays literal.
    fn class(&mut self) -> Result<(), String> {
        let start = self.i;
        self.i += 1;
        let negate = self.peek() == Some('^');
        if negate {
            self.i += 1;
        }
        let unterminated = || err_at("unterminated character set", start);
        let mut body = String::new();
        let mut items = 0usize;
        loop {
            let Some(this) = self.peek() else {
                return Err(unterminated());
            };
            let item_start = self.i;
            if this == ']' && items > 0 {
                self.i += 1;
                break;
            }
            let code1 = if this == '\\' {
                self.class_escape()?
            } else {
                self.i += 1;
                ClassItem::Char(this)
            };
            items += 1;
            if self.peek() == Some('-') {
                self.i += 1;
                let Some(that) = self.peek() else {
                    return Err(unterminated());
                };
                if that == ']' {
                    self.i += 1;
                    push_item(&mut body, &code1);
                    push_char(&mut body, '-');
                    break;
                }
                let code2 = if that == '\\' {
                    self.class_escape()?
                } else {
                    self.i += 1;
                    ClassItem::Char(that)
                };
                let text: String = self.c[item_start..self.i].iter().collect();
                match (code1, code2) {
                    (ClassItem::Char(lo), ClassItem::Char(hi)) if lo <= hi => {
                        push_char(&mut body, lo);
                        body.push('-');
                        push_char(&mut body, hi);
                    }
                    _ => return Err(err_at(format!("bad character range {text}"), item_start)),
                }
            } else {
                push_item(&mut body, &code1);
            }
        }
        self.out.push('[');
        if negate {
            self.out.push('^');
        }
        self.out.push_str(&body);
        self.out.push(']');
        self.item(true);
        Ok(())
    }
}

fn push_item(out: &mut String, item: &ClassItem) {
    match item {
        ClassItem::Char(c) => push_char(out, *c),
        ClassItem::Category(c) => out.push_str(category(*c, true)),
    }
}

/// Python's `\d`, `\s`, `\w` (and negations) for `str` patterns, outside or inside a class.
/// `\s` is `str.isspace()`, which adds U+001C..U+001F to Unicode's White_Space; `\w` is
/// `str.isalnum()` or `_`: letters and numbers, where Rust's `\w` also takes marks and all
/// connector punctuation but not U+2460-style numbers.
fn category(c: char, in_class: bool) -> &'static str {
    match (c, in_class) {
        ('d', _) => "\\d",
        ('D', _) => "\\D",
        ('s', false) => "[\\s\\x{1c}-\\x{1f}]",
        ('s', true) => "\\s\\x{1c}-\\x{1f}",
        ('S', _) => "[^\\s\\x{1c}-\\x{1f}]",
        ('w', false) => "[\\p{L}\\p{N}_]",
        ('w', true) => "\\p{L}\\p{N}_",
        _ => "[^\\p{L}\\p{N}_]",
    }
}

/// The character of Python's one-letter control escapes.
fn control(letter: char) -> char {
    match letter {
        'a' => '\x07',
        'f' => '\x0c',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        _ => '\x0b',
    }
}

/// One compiled pattern.
enum Single {
    Plain(regex::Regex),
    Fancy(fancy_regex::Regex),
}

impl Single {
    fn is_match(&self, name: &str) -> bool {
        match self {
            Single::Plain(r) => r.is_match(name),
            // A backtracking limit hit counts as no match (Python would go on searching).
            Single::Fancy(r) => r.is_match(name).unwrap_or(false),
        }
    }
}

/// Compiles one pattern as Python's `re.compile` would take it; the error says why not.
fn compile(pattern: &str) -> Result<Single, String> {
    let t = translate(pattern)?;
    // A cheap pre-check (a literal `(` is emitted escaped); the parse tree decides.
    if t.pattern.contains("(?<=") || t.pattern.contains("(?<!") {
        let tree = fancy_regex::Expr::parse_tree(&t.pattern).map_err(|e| e.to_string())?;
        if !lookbehinds_fixed(&tree.expr) {
            return Err("look-behind requires fixed-width pattern".to_string());
        }
    }
    let plain = if t.fancy {
        None
    } else {
        match regex::Regex::new(&t.pattern) {
            Ok(r) => return Ok(Single::Plain(r)),
            Err(e) => Some(e),
        }
    };
    match fancy_regex::Regex::new(&t.pattern) {
        Ok(r) => Ok(Single::Fancy(r)),
        Err(fe) => Err(match plain {
            // The regex crate's message is the clearer one for a pattern without fancy parts.
            Some(regex::Error::Syntax(s)) if !s.contains("look-around") => s
                .lines()
                .last()
                .unwrap_or(&s)
                .trim_start_matches("error: ")
                .to_string(),
            _ => fe.to_string(),
        }),
    }
}

/// Python takes a look-behind only when its body has one width (fancy-regex also takes
/// alternatives of different constant widths).
fn lookbehinds_fixed(e: &fancy_regex::Expr) -> bool {
    use fancy_regex::{Expr, LookAround};
    match e {
        Expr::LookAround(body, LookAround::LookBehind | LookAround::LookBehindNeg) => {
            matches!(width(body), Some((lo, hi)) if lo == hi) && lookbehinds_fixed(body)
        }
        _ => e.children_iter().all(lookbehinds_fixed),
    }
}

/// The (shortest, longest) match of an expression in characters, as Python's `getwidth`;
/// None for what Carbide does not measure (backreferences...).
fn width(e: &fancy_regex::Expr) -> Option<(usize, usize)> {
    use fancy_regex::Expr;
    Some(match e {
        Expr::Empty | Expr::Assertion(_) | Expr::LookAround(..) => (0, 0),
        Expr::Any { .. } | Expr::Delegate { .. } => (1, 1),
        Expr::Literal { val, .. } => {
            let n = val.chars().count();
            (n, n)
        }
        Expr::Concat(v) => v.iter().try_fold((0usize, 0usize), |(lo, hi), e| {
            let (a, b) = width(e)?;
            Some((lo.saturating_add(a), hi.saturating_add(b)))
        })?,
        Expr::Alt(v) => {
            let mut ws = v.iter().map(width);
            let first = ws.next()??;
            ws.try_fold(first, |(lo, hi), w| {
                let (a, b) = w?;
                Some((lo.min(a), hi.max(b)))
            })?
        }
        Expr::Group(e) => width(e)?,
        Expr::AtomicGroup(e) => width(e)?,
        Expr::Repeat { child, lo, hi, .. } => {
            let (a, b) = width(child)?;
            (a.saturating_mul(*lo), b.saturating_mul(*hi))
        }
        _ => return None,
    })
}

/// A line of a list file that was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line number.
    pub line: usize,
    /// The stripped line.
    pub pattern: String,
    pub reason: String,
}

/// The patterns of a list file's text, as carbon's `read_list` takes them: lines end at `\n`,
/// `\r\n` or `\r` (Python's universal newlines), a line starting with `#` (in its first
/// column) is a comment, the rest is stripped of Python whitespace and skipped when empty.
/// Yields (1-based line number, pattern).
pub fn patterns(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text;
    let mut line_no = 0usize;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        let line = &rest[..end];
        let mut next = end;
        if rest[end..].starts_with("\r\n") {
            next += 2;
        } else if end < rest.len() {
            next += 1;
        }
        rest = &rest[next..];
        line_no += 1;
        if line.starts_with('#') {
            continue;
        }
        let p = strip(line);
        if !p.is_empty() {
            return Some((line_no, p));
        }
    })
}

/// One list: the patterns the regex crate compiles, in one set, and the others one by one.
#[derive(Default)]
pub struct RegexList {
    set: Option<regex::RegexSet>,
    singles: Vec<Single>,
    len: usize,
}

impl std::fmt::Debug for RegexList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegexList").field("len", &self.len).finish()
    }
}

impl RegexList {
    /// Compiles a list file's text; lines that do not compile are returned, not taken.
    pub fn parse(text: &str) -> (RegexList, Vec<Rejected>) {
        let mut plain = Vec::new();
        let mut singles = Vec::new();
        let mut rejected = Vec::new();
        for (line, pattern) in patterns(text) {
            match compile(pattern) {
                Ok(Single::Plain(r)) => plain.push(r),
                Ok(s) => singles.push(s),
                Err(reason) => rejected.push(Rejected {
                    line,
                    pattern: pattern.to_string(),
                    reason,
                }),
            }
        }
        let len = plain.len() + singles.len();
        let set = match plain.len() {
            0 => None,
            // One pattern searches faster alone than as a set.
            1 => {
                singles.extend(plain.drain(..).map(Single::Plain));
                None
            }
            _ => match regex::RegexSetBuilder::new(plain.iter().map(|r| r.as_str()))
                .size_limit(256 << 20)
                .build()
            {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::debug!("list patterns searched one by one: {e}");
                    singles.extend(plain.drain(..).map(Single::Plain));
                    None
                }
            },
        };
        (RegexList { set, singles, len }, rejected)
    }

    /// Patterns in force.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether some pattern is found anywhere in `name` (Python's `re.search`).
    pub fn matches(&self, name: &str) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(name))
            || self.singles.iter().any(|r| r.is_match(name))
    }
}

/// Both lists.
#[derive(Debug, Default)]
pub struct Lists {
    pub white: RegexList,
    pub black: RegexList,
}

impl Lists {
    /// carbon's `metricReceived`: the blacklist first, then a non-empty whitelist.
    pub fn check(&self, name: &str) -> Verdict {
        if !self.black.is_empty() && self.black.matches(name) {
            Verdict::Blacklisted
        } else if !self.white.is_empty() && !self.white.matches(name) {
            Verdict::NotWhitelisted
        } else {
            Verdict::Keep
        }
    }
}

/// What carbon's `RegexList.read_list` remembers about its file.
#[derive(Debug)]
struct FileState {
    path: PathBuf,
    /// The modification time of the text in force; None when the file is absent.
    mtime: Option<SystemTime>,
    /// The last read failure logged, so that a persistent one is logged once.
    failure: Option<String>,
}

enum Reread {
    Unchanged,
    Replace(RegexList),
}

impl FileState {
    fn new(path: PathBuf) -> FileState {
        FileState {
            path,
            mtime: None,
            failure: None,
        }
    }

    fn fail(&mut self, msg: String) -> Reread {
        if self.failure.as_deref() != Some(&msg) {
            tracing::error!("{msg}; keeping the previous list");
            self.failure = Some(msg);
        }
        Reread::Unchanged
    }

    /// Re-reads the file if it changed. Absent (or not stat-able, as `os.path.exists`
    /// says): the list is emptied. A file that cannot be read or is not UTF-8 keeps the list
    /// in force (carbon raises there, which stops its reload loop, or its start).
    fn reread(&mut self) -> Reread {
        let path = self.path.display();
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(_) => {
                self.failure = None;
                if self.mtime.take().is_some() {
                    tracing::info!("{path} is gone: its list is now empty");
                    return Reread::Replace(RegexList::default());
                }
                return Reread::Unchanged;
            }
        };
        let mtime = match meta.modified() {
            Ok(t) => t,
            Err(e) => return self.fail(format!("Failed to get mtime of {path}: {e}")),
        };
        if self.mtime == Some(mtime) {
            return Reread::Unchanged;
        }
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) => return self.fail(format!("cannot read {path}: {e}")),
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => return self.fail(format!("{path} is not UTF-8: {e}")),
        };
        let (list, rejected) = RegexList::parse(text);
        for r in &rejected {
            tracing::error!(
                "Failed to parse '{}' in '{path}'. Ignoring line {}: {}",
                r.pattern,
                r.line,
                r.reason
            );
        }
        tracing::info!("{path}: {} patterns", list.len());
        self.mtime = Some(mtime);
        self.failure = None;
        Reread::Replace(list)
    }
}

/// The lists of one server, read from `<dir>/whitelist.conf` and `<dir>/blacklist.conf`.
pub struct MetricFilter {
    lists: RwLock<Lists>,
    /// White, then black.
    files: Mutex<[FileState; 2]>,
}

impl std::fmt::Debug for MetricFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricFilter")
            .field("lists", &*self.lists.read())
            .finish()
    }
}

impl MetricFilter {
    /// Reads both files now (a missing one is an empty list).
    pub fn load(dir: &Path) -> MetricFilter {
        let f = MetricFilter {
            lists: RwLock::new(Lists::default()),
            files: Mutex::new([
                FileState::new(dir.join(WHITELIST_FILE)),
                FileState::new(dir.join(BLACKLIST_FILE)),
            ]),
        };
        f.reload();
        f
    }

    /// Re-reads the files that changed; true when a list was replaced.
    pub fn reload(&self) -> bool {
        let mut files = self.files.lock();
        let [white, black] = &mut *files;
        let (w, b) = (white.reread(), black.reread());
        let mut changed = false;
        if let Reread::Replace(l) = w {
            self.lists.write().white = l;
            changed = true;
        }
        if let Reread::Replace(l) = b {
            self.lists.write().black = l;
            changed = true;
        }
        changed
    }

    /// The verdict for a raw metric name.
    #[inline]
    pub fn check(&self, name: &str) -> Verdict {
        self.lists.read().check(name)
    }

    /// Patterns in force: (whitelist, blacklist).
    pub fn sizes(&self) -> (usize, usize) {
        let l = self.lists.read();
        (l.white.len(), l.black.len())
    }
}

/// Re-reads the lists every `interval` until `shutdown` (carbon: every 10 s, the first one
/// interval after the start).
pub async fn reload_loop(
    filter: Arc<MetricFilter>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = interval.max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let f = filter.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || f.reload()).await {
            tracing::error!("reloading the metric lists: {e}");
        }
    }
}
