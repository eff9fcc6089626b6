//! One node of a graphite path expression, matched the way graphite-web's StandardFinder does:
//! `{a,b}` alternatives expanded first (`finders.expand_braces`), then each alternative either
//! looked up as a plain name or, when it holds `*`, `?` or `[`, matched with Python 3.11's
//! `fnmatch` rules (`fnmatch.translate` read as a regex).
//!
//! The matcher is compiled once per request and runs without regexes: a name is walked once
//! with the usual single-backtrack-point glob algorithm, which accepts exactly what
//! `translate`'s regex accepts because every token but `*` consumes exactly one character.

use std::collections::HashSet;

/// The most alternatives one node may expand to. graphite-web has no limit and would try to
/// build every combination of `{..}{..}{..}` in memory; past this the request is refused.
pub const MAX_VARIANTS: usize = 100_000;

/// `expand_braces(s)`: every string `s` denotes, de-duplicated, in no particular order.
/// `Err(())` when there would be more than [`MAX_VARIANTS`].
pub fn expand_braces(s: &str) -> Result<Vec<String>, ()> {
    let mut done: HashSet<String> = HashSet::new();
    let mut todo = vec![s.to_owned()];
    // Intermediate strings count too: `{a,a}{a,a}...` stays small but takes many steps.
    let mut steps = 0usize;
    while let Some(cur) = todo.pop() {
        steps += 1;
        if steps > MAX_VARIANTS.saturating_mul(4) {
            return Err(());
        }
        match first_group(&cur) {
            Some((open, close)) => {
                let (head, rest) = cur.split_at(open);
                let inner = rest.get(1..close - open).unwrap_or_default();
                let tail = rest.get(close - open + 1..).unwrap_or_default();
                for alt in inner.split(',') {
                    todo.push(format!("{head}{alt}{tail}"));
                }
            }
            None => {
                done.insert(cur);
                if done.len() > MAX_VARIANTS {
                    return Err(());
                }
            }
        }
    }
    Ok(done.into_iter().collect())
}

/// Byte offsets of the `{` and `}` of `re.search(r'\{([^{}]*)\}', s)`: the first `{` whose next
/// brace is a `}`.
fn first_group(s: &str) -> Option<(usize, usize)> {
    let mut open = None;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'{' => open = Some(i),
            b'}' => {
                if let Some(o) = open {
                    return Some((o, i));
                }
            }
            _ => {}
        }
    }
    None
}

/// The StandardFinder's test for listing a directory instead of looking one name up.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['[', '*', '?'])
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Char(char),
    /// `?`, or a negated empty class `[!z-a]`.
    Any,
    Star,
    Class {
        negate: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled `fnmatch` pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    toks: Vec<Tok>,
    /// An empty class such as `[z-a]` (`(?!)` in the regex): nothing matches.
    never: bool,
    /// The pattern is `*`, `**`, ...: everything matches.
    all: bool,
    /// The literal characters before the first wildcard, to narrow a sorted listing.
    prefix: String,
}

impl Glob {
    /// `fnmatch.translate(pat)`, kept as tokens.
    pub fn new(pat: &str) -> Glob {
        let p: Vec<char> = pat.chars().collect();
        let n = p.len();
        let mut toks = Vec::new();
        let mut never = false;
        let mut i = 0;
        while i < n {
            let c = p[i];
            i += 1;
            match c {
                '*' => {
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                }
                '?' => toks.push(Tok::Any),
                '[' => {
                    let mut j = i;
                    if j < n && p[j] == '!' {
                        j += 1;
                    }
                    if j < n && p[j] == ']' {
                        j += 1;
                    }
                    while j < n && p[j] != ']' {
                        j += 1;
                    }
                    if j >= n {
                        toks.push(Tok::Char('['));
                    } else {
                        match class(&p[i..j]) {
                            Some(t) => toks.push(t),
                            None => never = true,
                        }
                        i = j + 1;
                    }
                }
                c => toks.push(Tok::Char(c)),
            }
        }
        let prefix = toks
            .iter()
            .map_while(|t| match t {
                Tok::Char(c) => Some(*c),
                _ => None,
            })
            .collect();
        let all = toks == [Tok::Star];
        Glob {
            toks,
            never,
            all,
            prefix,
        }
    }

    /// The literal start every match has.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `fnmatch.fnmatchcase(name, pat)`.
    pub fn matches(&self, name: &str) -> bool {
        if self.never {
            return false;
        }
        if self.all {
            return true;
        }
        let s: &[u8] = name.as_bytes();
        let toks = &self.toks;
        let (mut t, mut i) = (0usize, 0usize);
        // Where the last `*` is: the token after it and the text position it reached.
        let mut star: Option<(usize, usize)> = None;
        loop {
            if let Some(Tok::Star) = toks.get(t) {
                star = Some((t + 1, i));
                t += 1;
                continue;
            }
            let Some(c) = name.get(i..).and_then(|r| r.chars().next()) else {
                // Text used up: only a pattern that is used up too matches (a trailing `*`
                // was consumed above).
                return t == toks.len();
            };
            if let Some(tok) = toks.get(t) {
                if tok_matches(tok, c) {
                    t += 1;
                    i += c.len_utf8();
                    continue;
                }
            }
            match star {
                Some((after, from)) if from < s.len() => {
                    let step = name
                        .get(from..)
                        .and_then(|r| r.chars().next())
                        .map_or(1, char::len_utf8);
                    star = Some((after, from + step));
                    t = after;
                    i = from + step;
                }
                _ => return false,
            }
        }
    }
}

fn tok_matches(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Char(x) => *x == c,
        Tok::Any => true,
        Tok::Star => false,
        Tok::Class { negate, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate
        }
    }
}

/// The class between `[` and `]` (`stuff` in `translate`, the `!` included); `None` for an
/// empty class, which never matches.
fn class(stuff: &[char]) -> Option<Tok> {
    // Each item is a character; `true` marks the unescaped `-` translate joins chunks with,
    // which the regex reads as a range.
    let mut items: Vec<(char, bool)> = Vec::new();
    if !stuff.contains(&'-') {
        items.extend(stuff.iter().map(|&c| (c, false)));
    } else {
        let mut chunks: Vec<Vec<char>> = Vec::new();
        let mut i = 0usize;
        let mut k = if stuff.first() == Some(&'!') { 2 } else { 1 };
        while let Some(found) = stuff
            .get(k..)
            .and_then(|r| r.iter().position(|&c| c == '-'))
        {
            let at = k + found;
            chunks.push(stuff[i..at].to_vec());
            i = at + 1;
            k = at + 3;
        }
        let chunk = stuff.get(i..).unwrap_or_default();
        if !chunk.is_empty() {
            chunks.push(chunk.to_vec());
        } else if let Some(last) = chunks.last_mut() {
            last.push('-');
        }
        // Ranges running backwards are dropped with their end points, as translate does.
        let mut k = chunks.len();
        while k > 1 {
            k -= 1;
            let (a, b) = (chunks[k - 1].last().copied(), chunks[k].first().copied());
            if let (Some(a), Some(b)) = (a, b) {
                if a > b {
                    let mut merged = chunks[k - 1].clone();
                    merged.pop();
                    merged.extend_from_slice(chunks[k].get(1..).unwrap_or_default());
                    chunks[k - 1] = merged;
                    chunks.remove(k);
                }
            }
        }
        for (n, chunk) in chunks.iter().enumerate() {
            if n > 0 {
                items.push(('-', true));
            }
            items.extend(chunk.iter().map(|&c| (c, false)));
        }
    }
    if items.is_empty() {
        return None;
    }
    if items.len() == 1 && items[0] == ('!', false) {
        return Some(Tok::Any);
    }
    let negate = items[0] == ('!', false);
    let body = if negate { &items[1..] } else { &items[..] };
    // The regex's reading: an item, an unescaped `-` and an item make a range.
    let mut ranges = Vec::new();
    let mut j = 0;
    while j < body.len() {
        let (lo, _) = body[j];
        if let (Some(&(_, true)), Some(&(hi, false))) = (body.get(j + 1), body.get(j + 2)) {
            if lo <= hi {
                ranges.push((lo, hi));
            }
            j += 3;
        } else {
            ranges.push((lo, lo));
            j += 1;
        }
    }
    Some(Tok::Class { negate, ranges })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pat: &str, name: &str) -> bool {
        Glob::new(pat).matches(name)
    }

    #[test]
    fn fnmatch_basics() {
        assert!(m("*", ""));
        assert!(m("*", "abc"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abcd"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*a*b*", "xaxxbx"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[a-c]x", "dx"));
        assert!(m("[!a-c]x", "dx"));
        assert!(m("[^a]", "^"));
        assert!(!m("[^a]", "b"));
        assert!(m("[]]", "]"));
        assert!(m("[!]]", "a"));
        assert!(m("a[", "a["));
        assert!(m("[", "["));
        assert!(m("[]", "[]"));
        assert!(!m("[z-a]", "z"));
        assert!(m("[!z-a]", "q"));
        assert!(m("[a-]", "-"));
        assert!(m("[-a]", "-"));
        assert!(m("[a--z]", "z"));
        assert!(!m("[a--z]", "a"));
        assert!(m("é?", "éé"));
        assert!(m("*é", "aé"));
        assert!(m("cpu[0-9]*", "cpu1x"));
    }

    #[test]
    fn braces() {
        let mut v = expand_braces("{a,b}{c,d}").unwrap();
        v.sort();
        assert_eq!(v, ["ac", "ad", "bc", "bd"]);
        let mut v = expand_braces("{web{1,2},x}").unwrap();
        v.sort();
        assert_eq!(v, ["web1", "web2", "x"]);
        assert_eq!(expand_braces("{a").unwrap(), ["{a"]);
        assert_eq!(expand_braces("{}").unwrap(), [""]);
        let mut v = expand_braces("{a,}").unwrap();
        v.sort();
        assert_eq!(v, ["", "a"]);
        assert!(expand_braces(&"{a,b,c,d,e,f,g,h,i,j}".repeat(8)).is_err());
    }
}
