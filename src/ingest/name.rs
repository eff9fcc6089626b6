//! Metric names: carbon's tag canonicalisation (`TaggedSeries.parse(name).path`), the whisper
//! file a name maps to, and the reverse mapping a directory walk needs.
//!
//! carbon's cache processor rewrites every received name to its canonical form before it
//! reaches the cache, so `a;z=1;y=2` and `a;y=2;z=1`, or `x{a="1"}` and `x;a=1`, are one
//! series and one file (spec §2.5). [`canonicalize`] does exactly that, error texts included,
//! so logs read like carbon's.
//!
//! # Where Carbide deliberately differs
//! carbon keeps a name it cannot parse as tags (`a;`, `a;b=~x`, `~~~`) and stores it raw, and
//! otherwise trusts the OS with the file path: `a..b` and `a.b` share a file, `.a.b` and
//! `/a/b` land in `a/b.wsp`, `a.b.` writes `a/b/.wsp`, an over-long node fails at create
//! time, and an untagged `_tagged.17e.0c4.<hash>` would overwrite a tagged series' file.
//! [`clean`] refuses all of these with a reason instead, so that one name is one file,
//! every file maps back to one name, and nothing can be written outside `_tagged` that the
//! tag scheme owns or outside the data directory at all. Refused are: names carbon fails to
//! parse as tags, empty names, empty nodes (`a..b`, a leading or trailing `.`), `/` and NUL,
//! `.`/`..` nodes, names over 4096 bytes, nodes over 255 bytes (the last node over 251,
//! as it gets `.wsp`), and untagged names whose first node is `_tagged`.
//!
//! Only carbon's default `TAG_HASH_FILENAMES = True` layout is produced for tagged series.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// The longest name accepted, in bytes (Linux `PATH_MAX`, before the data directory).
pub const MAX_NAME_BYTES: usize = 4096;

/// The longest path component, in bytes (`NAME_MAX` on common filesystems).
pub const MAX_NODE_BYTES: usize = 255;

/// The extension of whisper files.
const WSP: &str = ".wsp";

/// The directory tagged series are stored under.
pub const TAGGED_DIR: &str = "_tagged";

/// The exception text carbon's `TaggedSeries.parse` raises, word for word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError(String);

impl TagError {
    /// carbon's message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TagError {}

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// carbon cannot parse the tags (carbon itself would log this and keep the raw name).
    #[error("{0}")]
    Tag(TagError),
    /// The empty name.
    #[error("empty metric name")]
    Empty,
    /// `a..b`, `.a`, `a.`: carbon would merge it with another name or write a `.wsp` file.
    #[error("empty node in metric name {0:?}")]
    EmptyNode(String),
    /// A node `.` or `..`, which would be a relative directory reference.
    #[error("node {node:?} not allowed in metric name {name:?}")]
    DotNode {
        /// The name.
        name: String,
        /// The node.
        node: String,
    },
    /// `/` or NUL: a path separator or the end of a C string.
    #[error("character {ch:?} not allowed in metric name {name:?}")]
    ForbiddenChar {
        /// The name.
        name: String,
        /// The character.
        ch: char,
    },
    /// Longer than [`MAX_NAME_BYTES`].
    #[error("metric name of {0} bytes is longer than {MAX_NAME_BYTES}")]
    TooLong(usize),
    /// A node longer than the filesystem allows.
    #[error("node of {len} bytes is longer than {max} in metric name {name:?}")]
    NodeTooLong {
        /// The name.
        name: String,
        /// The node's length in bytes.
        len: usize,
        /// The limit for this node (less for the last one, which gets `.wsp`).
        max: usize,
    },
    /// An untagged name inside the tree tagged series are hashed into.
    #[error(
        "untagged metric name {0:?} would be stored under {TAGGED_DIR}/, which tagged series own"
    )]
    Reserved(String),
}

/// A parsed `TaggedSeries`: the metric as written and all tags, `name` included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedSeries {
    /// The name part as received (before `~` stripping).
    pub metric: String,
    /// Every tag, last occurrence winning; `name` is the metric without leading `~`.
    pub tags: BTreeMap<String, String>,
}

impl TaggedSeries {
    /// `TaggedSeries.parse(path)`: OpenMetrics form if the name ends with `"}` and has a `{`,
    /// carbon form (`name;tag=value`) otherwise.
    pub fn parse(path: &str) -> Result<TaggedSeries, TagError> {
        if path.ends_with("\"}") && path.contains('{') {
            parse_openmetrics(path)
        } else {
            parse_carbon(path)
        }
    }

    /// `TaggedSeries.format(tags)`: the name tag, then every other `;tag=value` sorted as
    /// whole strings (so `;a.b=3` sorts before `;a=1`, unlike sorting by tag).
    pub fn path(&self) -> String {
        let mut rest: Vec<String> = self
            .tags
            .iter()
            .filter(|(t, _)| t.as_str() != "name")
            .map(|(t, v)| format!(";{t}={v}"))
            .collect();
        rest.sort_unstable();
        let mut out = self.tags.get("name").cloned().unwrap_or_default();
        for s in rest {
            out.push_str(&s);
        }
        out
    }
}

fn parse_carbon(path: &str) -> Result<TaggedSeries, TagError> {
    let mut segments = path.split(';');
    let metric = segments.next().unwrap_or_default();
    if metric.is_empty() {
        return Err(no_metric(path));
    }
    let mut tags = BTreeMap::new();
    for segment in segments {
        let (tag, value) = match segment.split_once('=') {
            Some((t, v)) if !t.is_empty() => (t, v),
            _ => {
                return Err(TagError(format!(
                    "Cannot parse path {path}, invalid segment {segment}"
                )))
            }
        };
        validate_tag_and_value(tag, value)?;
        tags.insert(tag.to_owned(), value.to_owned());
    }
    tags.insert("name".to_owned(), sanitize_name_as_tag_value(metric)?);
    Ok(TaggedSeries {
        metric: metric.to_owned(),
        tags,
    })
}

fn parse_openmetrics(path: &str) -> Result<TaggedSeries, TagError> {
    // `path[0:-1].split('{', 2)` unpacked into two names: a second `{` is a ValueError.
    let body = path.strip_suffix('}').unwrap_or(path);
    let mut parts = body.splitn(3, '{');
    let (Some(metric), Some(mut rawtags), None) = (parts.next(), parts.next(), parts.next()) else {
        // Only a second `{` gets here: the caller saw a `{` before the final `"}`.
        return Err(TagError(
            "too many values to unpack (expected 2)".to_owned(),
        ));
    };
    if metric.is_empty() {
        return Err(no_metric(path));
    }
    let mut tags = BTreeMap::new();
    while !rawtags.is_empty() {
        let Some((tag, raw_value, consumed)) = match_openmetrics_tag(rawtags) else {
            return Err(TagError(format!(
                "Cannot parse path {path}, invalid segment {rawtags}"
            )));
        };
        // Two plain replaces in sequence, as carbon does (not a real unescape).
        let value = raw_value.replace("\\\"", "\"").replace("\\\\", "\\");
        validate_tag_and_value(tag, &value)?;
        tags.insert(tag.to_owned(), value);
        rawtags = rawtags.get(consumed..).unwrap_or_default();
    }
    tags.insert("name".to_owned(), sanitize_name_as_tag_value(metric)?);
    Ok(TaggedSeries {
        metric: metric.to_owned(),
        tags,
    })
}

/// `re.match(r'([^=]+)="((?:[\\]["\\]|[^"\\])+)"(:?,|$)', s)`, written out: returns the tag,
/// the raw value and the match length. The regex has exactly one way to match (the tag ends
/// at the first `=`, a backslash always pairs with the next character, the value ends at the
/// first unpaired `"`), so a single left-to-right scan is equivalent. `$` could also match
/// before a final `\n`, but `s` always ends with `"` here.
fn match_openmetrics_tag(s: &str) -> Option<(&str, &str, usize)> {
    let eq = s.find('=')?;
    if eq == 0 {
        return None;
    }
    let tag = s.get(..eq)?;
    let after = s.get(eq + 1..)?;
    let body = after.strip_prefix('"')?;
    let bytes = body.as_bytes();
    let mut i = 0;
    loop {
        match bytes.get(i) {
            Some(b'\\') => match bytes.get(i + 1) {
                Some(b'"') | Some(b'\\') => i += 2,
                _ => break,
            },
            Some(b'"') | None => break,
            Some(_) => i += 1,
        }
    }
    if i == 0 || bytes.get(i) != Some(&b'"') {
        return None;
    }
    let value = body.get(..i)?;
    let tail = bytes.get(i + 1..)?;
    let sep = if tail.starts_with(b",") {
        1
    } else if tail.starts_with(b":,") {
        2
    } else if tail.is_empty() {
        0
    } else {
        return None;
    };
    // tag, `="`, value, `"`, separator; all boundaries are ASCII so the sum is a char boundary.
    Some((tag, value, eq + 2 + i + 1 + sep))
}

fn no_metric(path: &str) -> TagError {
    TagError(format!("Cannot parse path {path}, no metric found"))
}

fn validate_tag_and_value(tag: &str, value: &str) -> Result<(), TagError> {
    if tag.is_empty() {
        return Err(TagError("Tag may not be empty".to_owned()));
    }
    if value.is_empty() {
        return Err(TagError(format!(
            "Value for tag \"{tag}\" may not be empty"
        )));
    }
    for ch in [';', '!', '^', '='] {
        if tag.contains(ch) {
            return Err(TagError(format!(
                "Character \"{ch}\" is not allowed in tag \"{tag}\""
            )));
        }
    }
    if value.contains(';') {
        return Err(TagError(format!(
            "Character \";\" is not allowed in value \"{value}\" of tag {tag}"
        )));
    }
    if value.starts_with('~') {
        return Err(TagError(format!(
            "Tag values are not allowed to start with \"~\" in tag \"{tag}\""
        )));
    }
    Ok(())
}

fn sanitize_name_as_tag_value(name: &str) -> Result<String, TagError> {
    let sanitized = name.trim_start_matches('~');
    if sanitized.is_empty() {
        return Err(TagError(format!(
            "Cannot use metric name {name} as tag value, results in an empty string"
        )));
    }
    Ok(sanitized.to_owned())
}

/// `TaggedSeries.parse(raw).path`: carbon's canonical name, or carbon's exception text.
pub fn canonicalize(raw: &str) -> Result<String, TagError> {
    TaggedSeries::parse(raw).map(|s| s.path())
}

/// carbon's log line when [`canonicalize`] fails: `Error parsing metric <name>: <err>`.
pub fn parse_error_message(raw: &str, err: &TagError) -> String {
    format!("Error parsing metric {raw}: {err}")
}

/// The name Carbide stores a received name under: carbon's canonical form, refused where
/// carbon would keep an unparseable name or map it to a surprising file (module doc).
pub fn clean(raw: &str) -> Result<String, NameError> {
    clean_cow(raw).map(Cow::into_owned)
}

/// [`clean`] without allocating for a name that is already canonical and valid, which is
/// nearly every name a receiver sees: the hot path of ingestion calls this once per point.
pub fn clean_cow(raw: &str) -> Result<Cow<'_, str>, NameError> {
    if is_plain_valid(raw.as_bytes()) {
        return Ok(Cow::Borrowed(raw));
    }
    // Checked first so a huge name is not parsed and formatted before being refused.
    if raw.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(raw.len()));
    }
    let canonical = canonicalize(raw).map_err(NameError::Tag)?;
    check(&canonical)?;
    Ok(Cow::Owned(canonical))
}

/// One pass over a name that settles the common case: true only when the name is untagged
/// and its own canonical form (no `;`, no `{`, no leading `~`, so carbon's parse returns it
/// unchanged) and [`check`] accepts it. Anything else, valid or not, is left to the full
/// path, which also words the error.
#[inline]
fn is_plain_valid(b: &[u8]) -> bool {
    if b.is_empty() || b.len() > MAX_NAME_BYTES || b[0] == b'~' {
        return false;
    }
    if b.len() <= MAX_NODE_BYTES - WSP.len() {
        return is_plain_valid_short(b);
    }
    let mut node_start = 0usize;
    for (i, &c) in b.iter().enumerate() {
        match PLAIN_CLASS[usize::from(c)] {
            0 => {}
            1 => {
                let len = i - node_start;
                if len == 0 || len > MAX_NODE_BYTES {
                    return false;
                }
                // `_tagged.…`: the reserved tree (the full path words the refusal).
                if node_start == 0 && &b[..i] == TAGGED_DIR.as_bytes() {
                    return false;
                }
                node_start = i + 1;
            }
            _ => return false,
        }
    }
    let last = b.len() - node_start;
    last != 0 && last <= MAX_NODE_BYTES - WSP.len()
}

/// [`is_plain_valid`] for a name no longer than the last node may be, where no node can be
/// too long: what is left to find are the forbidden bytes and empty nodes (a `.` first, last
/// or next to another), which branch-free folds over the bytes find without a loop-carried
/// state, so the compiler can take many bytes at a time.
#[inline]
fn is_plain_valid_short(b: &[u8]) -> bool {
    let forbidden = b.iter().fold(false, |acc, &c| {
        acc | (c == b';') | (c == b'{') | (c == b'/') | (c == 0)
    });
    let tail = b.get(1..).unwrap_or_default();
    let double_dot = b
        .iter()
        .zip(tail)
        .fold(false, |acc, (&x, &y)| acc | ((x == b'.') & (y == b'.')));
    let reserved = b.len() > TAGGED_DIR.len()
        && b.starts_with(TAGGED_DIR.as_bytes())
        && b.get(TAGGED_DIR.len()) == Some(&b'.');
    !(forbidden || double_dot || reserved || b.first() == Some(&b'.') || b.last() == Some(&b'.'))
}

/// What [`is_plain_valid`] makes of each byte: 0 ordinary, 1 the node separator `.`, 2 a
/// byte that needs the full path (`;`, `{`, `/`, NUL). One table load a byte instead of a
/// chain of comparisons.
const PLAIN_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'.' as usize] = 1;
    t[b';' as usize] = 2;
    t[b'{' as usize] = 2;
    t[b'/' as usize] = 2;
    t[0] = 2;
    t
};

/// Is this (canonical) name a tagged series? carbon's test: it contains `;`.
pub fn is_tagged(name: &str) -> bool {
    name.contains(';')
}

/// Carbide's safety rules for a canonical name (module doc). Tagged names are stored under
/// their hash, so only the length and NUL rules apply to them.
pub fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong(name.len()));
    }
    if name.contains('\0') {
        return Err(forbidden(name, '\0'));
    }
    if is_tagged(name) {
        return Ok(());
    }
    if name.contains('/') {
        return Err(forbidden(name, '/'));
    }
    let mut nodes = name.split('.').peekable();
    let mut first = true;
    while let Some(node) = nodes.next() {
        if node.is_empty() {
            return Err(NameError::EmptyNode(name.to_owned()));
        }
        // Unreachable after splitting on `.`, but the rule is cheap and states the intent.
        if node == "." || node == ".." {
            return Err(NameError::DotNode {
                name: name.to_owned(),
                node: node.to_owned(),
            });
        }
        if first && node == TAGGED_DIR && nodes.peek().is_some() {
            return Err(NameError::Reserved(name.to_owned()));
        }
        first = false;
        let max = if nodes.peek().is_none() {
            MAX_NODE_BYTES - WSP.len()
        } else {
            MAX_NODE_BYTES
        };
        if node.len() > max {
            return Err(NameError::NodeTooLong {
                name: name.to_owned(),
                len: node.len(),
                max,
            });
        }
    }
    Ok(())
}

fn forbidden(name: &str, ch: char) -> NameError {
    NameError::ForbiddenChar {
        name: name.to_owned(),
        ch,
    }
}

/// Lowercase hex SHA-256 of the name's UTF-8 bytes, the file name of a tagged series.
pub fn tag_hash(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(name.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// The whisper file of a canonical name, relative to the data directory: `a.b.c` →
/// `a/b/c.wsp`; tagged → `_tagged/<h[0:3]>/<h[3:6]>/<h>.wsp` with h = [`tag_hash`]. The name
/// is checked with [`check`] first, so no result can leave the data directory. Tags must
/// already be in canonical order ([`clean`]); an unsorted name hashes to another file.
pub fn relative_path(canonical: &str) -> Result<PathBuf, NameError> {
    check(canonical)?;
    let mut path = PathBuf::new();
    if is_tagged(canonical) {
        let h = tag_hash(canonical);
        path.push(TAGGED_DIR);
        path.push(h.get(0..3).unwrap_or_default());
        path.push(h.get(3..6).unwrap_or_default());
        path.push(format!("{h}{WSP}"));
    } else {
        path.push(format!("{}{WSP}", canonical.replace('.', "/")));
    }
    Ok(path)
}

/// The untagged name of a whisper file found by walking the data directory: `a/b/c.wsp` →
/// `a.b.c`. `None` for anything [`relative_path`] cannot have produced: not ending in `.wsp`,
/// a node containing `.`, absolute or `..` paths, non-UTF-8 names, the `_tagged` tree (whose
/// hashed names cannot be reversed; its series are known from the tag index).
pub fn name_from_relative_path(path: &Path) -> Option<String> {
    let mut nodes = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(s) => nodes.push(s.to_str()?),
            _ => return None,
        }
    }
    let last = nodes.pop()?.strip_suffix(WSP)?;
    nodes.push(last);
    if nodes.iter().any(|n| n.contains('.')) {
        return None;
    }
    let name = nodes.join(".");
    check(&name).ok()?;
    if is_tagged(&name) {
        return None;
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> Result<String, String> {
        canonicalize(s).map_err(|e| e.to_string())
    }

    #[test]
    fn spec_examples() {
        assert_eq!(canon("a.b").as_deref(), Ok("a.b"));
        assert_eq!(canon("~a.b").as_deref(), Ok("a.b"));
        assert_eq!(
            canon("a.b;z=1;y=2;a.b=3").as_deref(),
            Ok("a.b;a.b=3;y=2;z=1")
        );
        assert_eq!(canon("a;name=x;b=2").as_deref(), Ok("a;b=2"));
        assert_eq!(canon(r#"x{a="1",b="q\"z"}"#).as_deref(), Ok("x;a=1;b=q\"z"));
        assert_eq!(canon(r#"x{b="2":,a="1"}"#).as_deref(), Ok("x;a=1;b=2"));
        for bad in ["a;", "a;=1", "a;b=", "a;b=~x", "a;b!=1", "~~~", ";a=b"] {
            assert!(canonicalize(bad).is_err(), "{bad}");
        }
        assert_eq!(
            canon("a;b=").unwrap_err(),
            "Value for tag \"b\" may not be empty"
        );
        assert_eq!(
            canon("a;").unwrap_err(),
            "Cannot parse path a;, invalid segment "
        );
        assert_eq!(
            canon(r#"x{a="1"}{b="2"}"#).unwrap_err(),
            "too many values to unpack (expected 2)"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(relative_path("a.b.c").unwrap(), PathBuf::from("a/b/c.wsp"));
        assert_eq!(
            relative_path("a.b;t=v.1").unwrap(),
            PathBuf::from(
                "_tagged/17e/0c4/17e0c45670f520f545150fb1946a9e498ff91faba9a632e3ebc2b368464c4286.wsp"
            )
        );
        for bad in ["", "a..b", ".a", "a.", "a/b", "a\0b", "_tagged.x", "."] {
            assert!(relative_path(bad).is_err(), "{bad:?}");
        }
        assert!(relative_path("_tagged").is_ok());
        assert!(check(&"x".repeat(251)).is_ok());
        assert!(check(&"x".repeat(252)).is_err());
        assert!(check(&format!("{}.a", "x".repeat(255))).is_ok());
        assert!(check(&format!("{}.a", "x".repeat(256))).is_err());
        assert!(clean(&"a.".repeat(3000)).is_err());
    }

    #[test]
    fn fast_path_agrees_with_the_full_one() {
        let long_node = "x".repeat(255);
        let long_last = "x".repeat(252);
        let names = [
            "a.b",
            "a",
            "~a.b",
            "a..b",
            ".a",
            "a.",
            "a/b",
            "a\0b",
            "_tagged.x",
            "_tagged",
            "x._tagged.y",
            "_taggedx.y",
            "_tagged.",
            ".",
            "..",
            "a.b..",
            "a.b.c.d.e.f.g.h.i.j",
            "servers.web01.cpu;x=1",
            "a.b/c",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa..b",
            "~",
            "a~.b",
            "a;b=1",
            "x{a=\"1\"}",
            "x{y",
            "é.ü",
            "a b.c",
            "",
        ];
        let mut all: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        all.push(format!("{long_node}.a"));
        all.push(format!("{long_node}x.a"));
        all.push(long_last.clone());
        all.push(long_last[1..].to_string());
        all.push("a.".repeat(2049));
        all.push(format!("{}b", "a.".repeat(2047)));
        for name in &all {
            let full = canonicalize(name)
                .map_err(NameError::Tag)
                .and_then(|c| check(&c).map(|()| c));
            let full = if name.len() > MAX_NAME_BYTES {
                Err(NameError::TooLong(name.len()))
            } else {
                full
            };
            assert_eq!(clean(name), full, "{name:?}");
            if is_plain_valid(name.as_bytes()) {
                assert_eq!(full.as_deref(), Ok(name.as_str()), "{name:?}");
            }
        }
    }

    #[test]
    fn reverse() {
        let back = |p: &str| name_from_relative_path(Path::new(p));
        assert_eq!(back("a/b/c.wsp").as_deref(), Some("a.b.c"));
        assert_eq!(back("c.wsp").as_deref(), Some("c"));
        assert_eq!(back("a.b/c.wsp"), None);
        assert_eq!(back("a/b/c.txt"), None);
        assert_eq!(back("/a/c.wsp"), None);
        assert_eq!(back("../c.wsp"), None);
        assert_eq!(back("_tagged/17e/0c4/x.wsp"), None);
        assert_eq!(back(".wsp"), None);
        for name in ["a.b.c", "x", "a b.c"] {
            let p = relative_path(name).unwrap();
            assert_eq!(name_from_relative_path(&p).as_deref(), Some(name));
        }
    }
}
