//! The metric name tree: every metric the store holds, built from the whisper directory at start
//! and kept current as new metrics arrive, so that `/metrics/find`, `/metrics/expand` and the
//! globs in render targets never walk the directory per request.
//!
//! The tree mirrors carbon's layout (`a/b/c.wsp` is `a.b.c`, tagged series under
//! `_tagged/<h[0:3]>/<h[3:6]>/<hash>.wsp`) and answers path expressions exactly as
//! graphite-web 1.1.10's StandardFinder answers them over that directory (`find.rs` lists the
//! quirks kept), so a Grafana pointed at Carbide sees the same tree it saw before.
//!
//! # Where Carbide deliberately differs
//! Entries Carbide cannot have written are not in the tree, where graphite-web would list them:
//! hidden files and directories (graphite-web hides them only as the last node: `*.*` lists
//! `.hidden.x`), names with a `.` inside a node (graphite-web reports `a.b.wsp` as `a`),
//! names with `;` outside `_tagged`, non-UTF-8 names, `.wsp.gz` and `.rrd` files. A node with
//! `/` never matches (graphite-web joins it into the file path, so `a/b.c` finds `a.b.c` and
//! `../x` reads outside the data directory). One node may expand to at most
//! 100,000 alternatives and one query may do at most 20 million steps (about a second);
//! beyond, the query fails instead of running for hours. A `**` reached through an empty node (`.**`) is
//! walked like any other, where graphite-web's path arithmetic cuts a character off each
//! name; so is a `**` at the top with the data directory configured with a trailing slash
//! (graphite-web's default WHISPER_DIR), which is what makes graphite-web's `**` unusable
//! at the top.

mod find;
mod glob;
mod load;
pub mod tag_log;
pub mod tags;
mod tree;

use std::io;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::ingest::name::{check, is_tagged, relative_path};
use tree::Tree;

/// A node a find reports: a directory (branch) or a `.wsp` file (leaf). A name that is both
/// is reported twice, once of each kind, as graphite-web does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    pub path: String,
    pub is_leaf: bool,
}

impl Node {
    /// The last node of the path (graphite-web's `node.name`).
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or_default()
    }
}

/// A node and, for a leaf, the whisper file behind it relative to the data directory. The
/// file is what a reader opens: it is not the reported path for tagged series (hashed) or
/// escaped nodes (`a\*b` reports `a*b` for the file `aXb.wsp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub node: Node,
    pub file: Option<PathBuf>,
}

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("pattern node {node:?} expands to more than {max} alternatives")]
    TooManyVariants { node: String, max: usize },
    #[error("pattern {pattern:?} needs too much work to resolve")]
    TooExpensive { pattern: String },
    /// graphite-web's IndexError when an escaped node lies beyond the path found (`**.a\*`).
    #[error("list assignment index out of range")]
    EscapedField,
}

/// The metric name tree, shared by the HTTP handlers and the ingest path.
pub struct Index {
    tree: RwLock<Tree>,
}

impl Default for Index {
    fn default() -> Self {
        Index::new()
    }
}

impl Index {
    /// An empty tree.
    pub fn new() -> Index {
        Index {
            tree: RwLock::new(Tree::new()),
        }
    }

    /// Every `.wsp` file and directory under `root`. Fails if `root` cannot be listed;
    /// unreadable subdirectories are logged and skipped.
    pub fn load_dir(root: &Path) -> io::Result<Index> {
        Ok(Index {
            tree: RwLock::new(load::load(root)?),
        })
    }

    /// Adds a (canonical) metric name as a leaf, creating its directories; `false` if it was
    /// there already or is not a name Carbide stores (`ingest::name::check`).
    pub fn insert(&self, name: &str) -> bool {
        let Some(nodes) = file_nodes(name) else {
            return false;
        };
        let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
        // Most calls are for names already known: answer those under the shared lock.
        if self.tree.read().has_leaf(nodes.iter().copied()) {
            return false;
        }
        self.tree.write().insert(&nodes, true)
    }

    /// How many metrics (leaves) the tree holds.
    pub fn len(&self) -> usize {
        self.tree.read().leaves()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the metric `name` has a file (a tagged name is looked up by its hash); no
    /// wildcards.
    pub fn contains(&self, name: &str) -> bool {
        file_nodes(name)
            .is_some_and(|nodes| self.tree.read().has_leaf(nodes.iter().map(String::as_str)))
    }

    /// Every leaf matching `pattern`, sorted and de-duplicated: what a render target fetches.
    /// A refused pattern matches nothing (see [`Index::try_expand`]).
    pub fn expand(&self, pattern: &str) -> Vec<String> {
        self.try_expand(pattern).unwrap_or_default()
    }

    pub fn try_expand(&self, pattern: &str) -> Result<Vec<String>, IndexError> {
        let found = find::find(&self.tree.read(), pattern, false)?;
        // Already sorted by path, each leaf once.
        Ok(found
            .into_iter()
            .filter(|f| f.node.is_leaf)
            .map(|f| f.node.path)
            .collect())
    }

    /// The leaves matching `pattern` with their files, sorted by path.
    pub fn leaves(&self, pattern: &str) -> Result<Vec<Found>, IndexError> {
        Ok(find::find(&self.tree.read(), pattern, true)?
            .into_iter()
            .filter(|f| f.node.is_leaf)
            .collect())
    }

    /// What `/metrics/find` lists for `query`, in graphite-web's order: by last node, then
    /// (where graphite-web leaves the order to chance) by path, branch before leaf.
    /// A refused query lists nothing (see [`Index::try_find`]).
    pub fn find(&self, query: &str) -> Vec<Node> {
        self.try_find(query).unwrap_or_default()
    }

    pub fn try_find(&self, query: &str) -> Result<Vec<Node>, IndexError> {
        Ok(self
            .find_ordered(query, false)?
            .into_iter()
            .map(|f| f.node)
            .collect())
    }

    /// [`Index::try_find`] with the file behind each leaf.
    pub fn find_with_files(&self, query: &str) -> Result<Vec<Found>, IndexError> {
        self.find_ordered(query, true)
    }

    fn find_ordered(&self, query: &str, with_files: bool) -> Result<Vec<Found>, IndexError> {
        let mut found = find::find(&self.tree.read(), query, with_files)?;
        // Sorted by path already: a stable sort by last node gives (name, path, kind).
        found.sort_by(|a, b| a.node.name().cmp(b.node.name()));
        Ok(found)
    }

    /// Every leaf's path, sorted (`/metrics/index.json`); tagged series appear under their
    /// hashed file names as graphite-web lists them.
    pub fn all_leaves(&self) -> Vec<String> {
        let tree = self.tree.read();
        let mut out = Vec::with_capacity(tree.leaves());
        tree.for_each_leaf(|dirs, leaf| {
            let mut s = String::new();
            for &d in dirs {
                s.push_str(tree.names.get(d));
                s.push('.');
            }
            s.push_str(tree.names.get(leaf));
            out.push(s);
        });
        out.sort_unstable();
        out
    }

    /// Approximate heap bytes the tree uses.
    pub fn heap_bytes(&self) -> usize {
        self.tree.read().heap_bytes()
    }
}

/// The nodes of the file a metric name is stored in (carbon's layout), `None` for a name
/// Carbide does not store.
fn file_nodes(name: &str) -> Option<Vec<String>> {
    if is_tagged(name) {
        let rel = relative_path(name).ok()?;
        let mut nodes: Vec<String> = rel
            .iter()
            .map(|c| c.to_str().map(String::from))
            .collect::<Option<_>>()?;
        let last = nodes.last_mut()?;
        *last = last.strip_suffix(".wsp")?.to_owned();
        Some(nodes)
    } else {
        check(name).ok()?;
        Some(name.split('.').map(String::from).collect())
    }
}

impl crate::query::store::Names for Index {
    fn expand(&self, pattern: &str) -> Vec<String> {
        Index::expand(self, pattern)
    }
}
