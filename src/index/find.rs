//! Resolving a path expression against the tree, step for step as graphite-web's
//! `StandardFinder.find_nodes` and `_find_paths` walk the whisper directory.
//!
//! Quirks kept, because clients see them: the whole pattern loses its backslashes before it
//! is split on `.`, so `a\*b` is a wildcard, and the node it escaped is reported as written
//! (`a*b`) in place of the name that matched; an empty node (`a..b`, `a.`) stays in the
//! directory reached so far, so `servers.` reports the branch `servers.` itself and `.a`
//! finds `a`; `**` is any number of directory levels (none included), followed by `*` when it
//! ends the pattern; a pattern with `;` not under `_tagged.` is a tagged series, found by
//! looking up the file its hash names and reported as the pattern itself.

use std::path::PathBuf;

use super::glob::{expand_braces, has_wildcard, Glob};
use super::tree::{Child, Tree};
use super::{Found, IndexError, Node};
use crate::ingest::name::{tag_hash, TAGGED_DIR};

/// Work one query may do (directory entries looked at and steps of the walk), about a second.
/// graphite-web has no bound; patterns like `{a,}.{a,}.{a,}...` over a deep tree would
/// otherwise keep a request busy for hours. `**` over a million names takes about a million.
pub const MAX_STEPS: usize = 20_000_000;

enum Variant {
    Exact(String),
    Glob(Glob),
    GlobStar,
}

struct Part(Vec<Variant>);

fn compile(raw: &str) -> Result<Part, IndexError> {
    let variants = expand_braces(raw).map_err(|()| IndexError::TooManyVariants {
        node: raw.chars().take(200).collect(),
        max: super::glob::MAX_VARIANTS,
    })?;
    let mut out = Vec::with_capacity(variants.len());
    for v in variants {
        out.push(if v == "**" {
            Variant::GlobStar
        } else if has_wildcard(&v) {
            Variant::Glob(Glob::new(&v))
        } else {
            Variant::Exact(v)
        });
    }
    Ok(Part(out))
}

/// One node found, before the reported path is built.
struct Hit {
    /// Real node names from the root.
    nodes: Vec<u32>,
    /// Reached through an empty last node: the directory itself, reported with a trailing `.`.
    itself: bool,
    leaf: bool,
}

struct Item {
    dir: u32,
    part: usize,
    prefix: Vec<u32>,
    /// Walking the `*` a final `**` stands for.
    tail: bool,
}

/// The nodes `pattern` finds, sorted by path (branch before leaf), each once; leaves carry their
/// file when `with_files`.
pub fn find(tree: &Tree, pattern: &str, with_files: bool) -> Result<Vec<Found>, IndexError> {
    find_limited(tree, pattern, with_files, MAX_STEPS)
}

fn find_limited(
    tree: &Tree,
    pattern: &str,
    with_files: bool,
    max_steps: usize,
) -> Result<Vec<Found>, IndexError> {
    if !pattern.starts_with("_tagged.") && pattern.contains(';') {
        return Ok(find_tagged(tree, pattern));
    }
    let clean = pattern.replace('\\', "");
    let clean_parts: Vec<&str> = clean.split('.').collect();
    let parts = clean_parts
        .iter()
        .map(|p| compile(p))
        .collect::<Result<Vec<Part>, _>>()?;
    let star = [Part(vec![Variant::Glob(Glob::new("*"))])];
    let mut hits = Vec::new();
    let mut steps = 0usize;
    let mut stack = vec![Item {
        dir: 0,
        part: 0,
        prefix: Vec::new(),
        tail: false,
    }];
    let too_much = || IndexError::TooExpensive {
        pattern: pattern.chars().take(200).collect(),
    };
    while let Some(item) = stack.pop() {
        steps += 1;
        if steps > max_steps {
            return Err(too_much());
        }
        let list: &[Part] = if item.tail { &star } else { &parts };
        let Some(Part(variants)) = list.get(item.part) else {
            continue;
        };
        let last = item.part + 1 == list.len();
        let child = |c: Child, stack: &mut Vec<Item>, hits: &mut Vec<Hit>| {
            let mut nodes = item.prefix.clone();
            nodes.push(c.name);
            if last {
                if c.leaf {
                    hits.push(Hit {
                        nodes: nodes.clone(),
                        itself: false,
                        leaf: true,
                    });
                }
                if c.is_dir() {
                    hits.push(Hit {
                        nodes,
                        itself: false,
                        leaf: false,
                    });
                }
            } else if c.is_dir() {
                stack.push(Item {
                    dir: c.dir,
                    part: item.part + 1,
                    prefix: nodes,
                    tail: item.tail,
                });
            }
        };
        for v in variants {
            match v {
                Variant::Exact(name) if name.is_empty() => {
                    if last {
                        hits.push(Hit {
                            nodes: item.prefix.clone(),
                            itself: true,
                            leaf: false,
                        });
                    } else {
                        stack.push(Item {
                            dir: item.dir,
                            part: item.part + 1,
                            prefix: item.prefix.clone(),
                            tail: item.tail,
                        });
                    }
                }
                Variant::Exact(name) => {
                    if let Some(c) = tree.child(item.dir, name) {
                        child(c, &mut stack, &mut hits);
                    }
                }
                Variant::Glob(g) => {
                    let candidates = tree.children_with_prefix(item.dir, g.prefix());
                    steps += candidates.len();
                    if steps > max_steps {
                        return Err(too_much());
                    }
                    for &c in candidates {
                        if g.matches(tree.names.get(c.name)) {
                            child(c, &mut stack, &mut hits);
                        }
                    }
                }
                Variant::GlobStar => {
                    // Every directory below this one, this one included, as `os.walk` lists
                    // them; the rest of the pattern (or `*`) applies in each.
                    let mut walk: Vec<(u32, Vec<u32>)> = vec![(item.dir, item.prefix.clone())];
                    while let Some((dir, prefix)) = walk.pop() {
                        steps += 1;
                        if steps > max_steps {
                            return Err(too_much());
                        }
                        for c in tree.children(dir) {
                            if c.is_dir() {
                                let mut p = prefix.clone();
                                p.push(c.name);
                                walk.push((c.dir, p));
                            }
                        }
                        stack.push(if last {
                            Item {
                                dir,
                                part: 0,
                                prefix,
                                tail: true,
                            }
                        } else {
                            Item {
                                dir,
                                part: item.part + 1,
                                prefix,
                                tail: item.tail,
                            }
                        });
                    }
                }
            }
        }
    }
    let escaped = escaped_fields(pattern);
    let mut out = Vec::with_capacity(hits.len());
    for hit in hits {
        let mut path = String::new();
        for (k, &n) in hit.nodes.iter().enumerate() {
            if k > 0 {
                path.push('.');
            }
            path.push_str(tree.names.get(n));
        }
        if hit.itself && !hit.nodes.is_empty() {
            path.push('.');
        }
        let file = (with_files && hit.leaf).then(|| {
            let mut f = String::new();
            for &n in &hit.nodes {
                f.push_str(tree.names.get(n));
                f.push('/');
            }
            f.pop();
            f.push_str(".wsp");
            PathBuf::from(f)
        });
        if !escaped.is_empty() {
            let mut fields: Vec<&str> = path.split('.').collect();
            for &i in &escaped {
                let slot = fields.get_mut(i).ok_or(IndexError::EscapedField)?;
                *slot = clean_parts.get(i).copied().unwrap_or_default();
            }
            path = fields.join(".");
        }
        out.push(Found {
            node: Node {
                path,
                is_leaf: hit.leaf,
            },
            file,
        });
    }
    // One node per reported path and kind, as `Store._list_nodes` merges them.
    out.sort_unstable_by(|a, b| {
        (&a.node.path, a.node.is_leaf, &a.file).cmp(&(&b.node.path, b.node.is_leaf, &b.file))
    });
    out.dedup_by(|b, a| a.node == b.node);
    Ok(out)
}

/// `find_escaped_pattern_fields`: the nodes whose first `*`, `?`, `[` or `{` has a backslash
/// before it.
fn escaped_fields(pattern: &str) -> Vec<usize> {
    pattern
        .split('.')
        .enumerate()
        .filter(|(_, part)| {
            ['*', '?', '[', '{'].iter().any(|&sym| {
                part.find(sym)
                    .is_some_and(|i| i > 0 && part.as_bytes().get(i - 1) == Some(&b'\\'))
            })
        })
        .map(|(i, _)| i)
        .collect()
}

/// carbon's two file names for a tagged series, hashed and readable; either one counts.
fn find_tagged(tree: &Tree, pattern: &str) -> Vec<Found> {
    let h = tag_hash(pattern);
    let (a, b) = (
        h.get(0..3).unwrap_or_default(),
        h.get(3..6).unwrap_or_default(),
    );
    let readable = pattern.replace('.', "_DOT_");
    for last in [h.as_str(), readable.as_str()] {
        if tree.has_leaf([TAGGED_DIR, a, b, last]) {
            let file: PathBuf = [TAGGED_DIR, a, b, &format!("{last}.wsp")].iter().collect();
            return vec![Found {
                node: Node {
                    path: pattern.to_owned(),
                    is_leaf: true,
                },
                file: Some(file),
            }];
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(names: &[&str]) -> Tree {
        let mut t = Tree::new();
        for n in names {
            let nodes: Vec<&str> = n.split('.').collect();
            t.insert(&nodes, true);
        }
        t
    }

    fn paths(t: &Tree, q: &str) -> Vec<(String, bool)> {
        find(t, q, false)
            .unwrap()
            .into_iter()
            .map(|f| (f.node.path, f.node.is_leaf))
            .collect()
    }

    #[test]
    fn quirks() {
        let t = tree(&["a.b.c", "a.b", "x.y"]);
        assert_eq!(paths(&t, "a."), [("a.".to_string(), false)]);
        assert_eq!(
            paths(&t, "a..b"),
            [("a.b".into(), false), ("a.b".into(), true)]
        );
        assert_eq!(paths(&t, ".x"), [("x".to_string(), false)]);
        assert_eq!(paths(&t, "."), [(String::new(), false)]);
        let mut all = [paths(&t, "*"), paths(&t, "*.*"), paths(&t, "*.*.*")].concat();
        all.sort();
        assert_eq!(paths(&t, "**"), all);
        assert_eq!(
            paths(&t, "a.\\*"),
            [("a.*".into(), false), ("a.*".into(), true)]
        );
        assert_eq!(find(&t, "**.\\*.\\*", false), Err(IndexError::EscapedField));
    }

    #[test]
    fn refuses_runaway_patterns() {
        let t = tree(&[&vec!["a"; 30].join(".")]);
        let braces = "{a,b,c,d,e,f,g,h,i,j}".repeat(6);
        assert!(matches!(
            find(&t, &braces, false),
            Err(IndexError::TooManyVariants { .. })
        ));
        let empties = vec!["{a,}"; 400].join(".");
        assert!(matches!(
            find_limited(&t, &empties, false, 100_000),
            Err(IndexError::TooExpensive { .. })
        ));
    }
}
