//! The tree itself: one sorted child list per directory, node names interned once.
//!
//! A million metrics typically share a few thousand distinct node names (`cpu`, `mean`,
//! `count` under every host), so each distinct name is stored once in one string arena and a
//! child is 12 bytes: its name's number, its directory's number (if it is one) and whether a
//! `.wsp` file of that name exists. Full names are never stored; they are rebuilt from the
//! path walked when a query reports them.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// A child that is not a directory.
pub const NO_DIR: u32 = u32::MAX;

/// One entry of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    /// The node name, in [`Names`].
    pub name: u32,
    /// The directory of that name, or [`NO_DIR`].
    pub dir: u32,
    /// Whether `<name>.wsp` exists.
    pub leaf: bool,
}

impl Child {
    pub fn is_dir(&self) -> bool {
        self.dir != NO_DIR
    }
}

/// Interned node names.
pub struct Names {
    text: String,
    spans: Vec<(u32, u32)>,
    table: HashTable<u32>,
    // Names come from clients: a per-process seed keeps them from aiming at one bucket.
    state: foldhash::fast::RandomState,
}

impl Names {
    fn new() -> Names {
        Names {
            text: String::new(),
            spans: Vec::new(),
            table: HashTable::new(),
            state: foldhash::fast::RandomState::default(),
        }
    }

    pub fn get(&self, id: u32) -> &str {
        self.spans
            .get(id as usize)
            .and_then(|&(start, len)| self.text.get(start as usize..(start + len) as usize))
            .unwrap_or_default()
    }

    /// `None` when the arena would pass 4 GiB.
    fn intern(&mut self, s: &str) -> Option<u32> {
        let hash = self.state.hash_one(s);
        if let Some(&id) = self.table.find(hash, |&id| self.get(id) == s) {
            return Some(id);
        }
        let start = u32::try_from(self.text.len()).ok()?;
        let len = u32::try_from(s.len()).ok()?;
        start.checked_add(len)?;
        let id = u32::try_from(self.spans.len()).ok()?;
        self.text.push_str(s);
        self.spans.push((start, len));
        let (text, spans, state) = (&self.text, &self.spans, &self.state);
        let name_of = |id: &u32| {
            spans
                .get(*id as usize)
                .and_then(|&(st, l)| text.get(st as usize..(st + l) as usize))
                .unwrap_or_default()
        };
        self.table
            .insert_unique(hash, id, |id| state.hash_one(name_of(id)));
        Some(id)
    }

    /// Bytes held, for the memory report.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.spans.capacity() * 8 + self.table.capacity() * 5
    }
}

/// The directories; number 0 is the data directory itself.
pub struct Tree {
    pub names: Names,
    dirs: Vec<Vec<Child>>,
    leaves: usize,
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            names: Names::new(),
            dirs: vec![Vec::new()],
            leaves: 0,
        }
    }

    pub fn leaves(&self) -> usize {
        self.leaves
    }

    pub fn children(&self, dir: u32) -> &[Child] {
        self.dirs.get(dir as usize).map_or(&[], Vec::as_slice)
    }

    fn find_pos(&self, dir: u32, name: &str) -> Result<usize, usize> {
        self.children(dir)
            .binary_search_by(|c| self.names.get(c.name).cmp(name))
    }

    /// The child called `name`.
    pub fn child(&self, dir: u32, name: &str) -> Option<Child> {
        let pos = self.find_pos(dir, name).ok()?;
        self.children(dir).get(pos).copied()
    }

    /// The children whose names start with `prefix` (a sorted run of the listing).
    pub fn children_with_prefix(&self, dir: u32, prefix: &str) -> &[Child] {
        let all = self.children(dir);
        if prefix.is_empty() {
            return all;
        }
        let start = all.partition_point(|c| self.names.get(c.name) < prefix);
        let rest = all.get(start..).unwrap_or_default();
        let len = rest.partition_point(|c| self.names.get(c.name).starts_with(prefix));
        rest.get(..len).unwrap_or_default()
    }

    /// Whether `nodes` names an existing `.wsp` file.
    pub fn has_leaf<'a>(&self, nodes: impl IntoIterator<Item = &'a str>) -> bool {
        let mut dir = 0u32;
        let mut last: Option<Child> = None;
        for node in nodes {
            if let Some(prev) = last {
                if !prev.is_dir() {
                    return false;
                }
                dir = prev.dir;
            }
            match self.child(dir, node) {
                Some(c) => last = Some(c),
                None => return false,
            }
        }
        last.is_some_and(|c| c.leaf)
    }

    fn new_dir(&mut self) -> Option<u32> {
        let id = u32::try_from(self.dirs.len())
            .ok()
            .filter(|&id| id != NO_DIR)?;
        self.dirs.push(Vec::new());
        Some(id)
    }

    /// Adds directories `nodes[..n-1]` and `nodes[n-1]` as a directory or, with `leaf`, a
    /// `.wsp` file (carbon creates the directories of a new file). `true` if something was
    /// added.
    pub fn insert(&mut self, nodes: &[&str], leaf: bool) -> bool {
        let mut dir = 0u32;
        let mut added = false;
        for (k, node) in nodes.iter().enumerate() {
            let last = k + 1 == nodes.len();
            let pos = match self.find_pos(dir, node) {
                Ok(p) => p,
                Err(p) => {
                    let Some(name) = self.names.intern(node) else {
                        return added;
                    };
                    let Some(list) = self.dirs.get_mut(dir as usize) else {
                        return added;
                    };
                    list.insert(
                        p,
                        Child {
                            name,
                            dir: NO_DIR,
                            leaf: false,
                        },
                    );
                    added = true;
                    p
                }
            };
            let Some(child) = self
                .dirs
                .get(dir as usize)
                .and_then(|l| l.get(pos))
                .copied()
            else {
                return added;
            };
            if last && leaf {
                if !child.leaf {
                    self.set(dir, pos, |c| c.leaf = true);
                    self.leaves += 1;
                    added = true;
                }
            } else if child.is_dir() {
                dir = child.dir;
            } else {
                let Some(new) = self.new_dir() else {
                    return added;
                };
                self.set(dir, pos, |c| c.dir = new);
                added = true;
                dir = new;
            }
        }
        added
    }

    fn set(&mut self, dir: u32, pos: usize, f: impl FnOnce(&mut Child)) {
        if let Some(c) = self.dirs.get_mut(dir as usize).and_then(|l| l.get_mut(pos)) {
            f(c);
        }
    }

    /// Fills an empty directory from a listing of `(name, is_dir, is_leaf)`, in any order and
    /// possibly naming one node twice (a directory and a file). Returns the new directories.
    pub fn fill(&mut self, dir: u32, mut listing: Vec<(String, bool, bool)>) -> Vec<(String, u32)> {
        listing.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<Child> = Vec::with_capacity(listing.len());
        let mut subdirs = Vec::new();
        let mut prev: Option<String> = None;
        for (name, is_dir, is_leaf) in listing {
            let same = prev.as_deref() == Some(name.as_str());
            if !same {
                let Some(id) = self.names.intern(&name) else {
                    continue;
                };
                out.push(Child {
                    name: id,
                    dir: NO_DIR,
                    leaf: false,
                });
            }
            let Some(c) = out.last_mut() else { continue };
            if is_leaf && !c.leaf {
                c.leaf = true;
                self.leaves += 1;
            }
            if is_dir && c.dir == NO_DIR {
                let id = u32::try_from(self.dirs.len()).unwrap_or(NO_DIR);
                if id != NO_DIR {
                    self.dirs.push(Vec::new());
                    c.dir = id;
                    subdirs.push((name.clone(), id));
                }
            }
            prev = Some(name);
        }
        if let Some(list) = self.dirs.get_mut(dir as usize) {
            if list.is_empty() {
                *list = out;
            } else {
                // Not expected (directories are filled once); keep both, sorted.
                list.extend(out);
                let names = &self.names;
                list.sort_by(|a, b| names.get(a.name).cmp(names.get(b.name)));
            }
        }
        subdirs
    }

    /// Every `.wsp` file as its node list, in no particular order.
    pub fn for_each_leaf(&self, mut f: impl FnMut(&[u32], u32)) {
        let mut stack: Vec<(u32, usize)> = vec![(0, 0)];
        let mut path: Vec<u32> = Vec::new();
        while let Some((dir, idx)) = stack.pop() {
            path.truncate(stack.len());
            let Some(c) = self.children(dir).get(idx).copied() else {
                continue;
            };
            stack.push((dir, idx + 1));
            if c.leaf {
                f(&path, c.name);
            }
            if c.is_dir() {
                path.push(c.name);
                stack.push((c.dir, 0));
            }
        }
    }

    /// Approximate heap use, for the memory report.
    pub fn heap_bytes(&self) -> usize {
        self.names.heap_bytes()
            + self.dirs.capacity() * std::mem::size_of::<Vec<Child>>()
            + self
                .dirs
                .iter()
                .map(|d| d.capacity() * std::mem::size_of::<Child>())
                .sum::<usize>()
    }
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_lookup() {
        let mut t = Tree::new();
        assert!(t.insert(&["a", "b", "c"], true));
        assert!(!t.insert(&["a", "b", "c"], true));
        assert!(t.insert(&["a", "b"], true));
        assert!(t.has_leaf(["a", "b", "c"]));
        assert!(t.has_leaf(["a", "b"]));
        assert!(!t.has_leaf(["a"]));
        assert_eq!(t.leaves(), 2);
        let b = t.child(0, "a").and_then(|a| t.child(a.dir, "b")).unwrap();
        assert!(b.leaf && b.is_dir());
        t.insert(&["a", "x1"], true);
        t.insert(&["a", "x2"], true);
        t.insert(&["a", "y"], true);
        let a = t.child(0, "a").unwrap().dir;
        let names: Vec<&str> = t
            .children_with_prefix(a, "x")
            .iter()
            .map(|c| t.names.get(c.name))
            .collect();
        assert_eq!(names, ["x1", "x2"]);
        let mut all = Vec::new();
        t.for_each_leaf(|p, n| {
            let mut s: Vec<&str> = p.iter().map(|&i| t.names.get(i)).collect();
            s.push(t.names.get(n));
            all.push(s.join("."));
        });
        all.sort();
        assert_eq!(all, ["a.b", "a.b.c", "a.x1", "a.x2", "a.y"]);
    }
}
