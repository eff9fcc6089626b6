//! Building the tree from a whisper directory at start.
//!
//! Each directory is listed once and its entries are sorted in one go. What graphite-web's
//! finder would show is kept: directories (empty ones too, symlinks followed) and `.wsp`
//! files. What Carbide cannot have written is left out (module doc of `index`): hidden
//! entries, names with a `.` in a node, non-UTF-8 names, other file types. Under the
//! top-level `_tagged` directory, whose file names are hashes, the layout is kept as it is.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::tree::Tree;
use crate::ingest::name::{check, is_tagged, name_from_relative_path, TAGGED_DIR};

struct Pending {
    abs: PathBuf,
    dir: u32,
    /// The directory's nodes below the root.
    rel: Vec<String>,
    /// (device, inode) of the directory and its ancestors: a symlink back up is not followed.
    seen: Vec<(u64, u64)>,
}

pub fn load(root: &Path) -> io::Result<Tree> {
    let meta = fs::metadata(root)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a directory", root.display()),
        ));
    }
    let mut tree = Tree::new();
    let mut stack = vec![Pending {
        abs: root.to_path_buf(),
        dir: 0,
        rel: Vec::new(),
        seen: vec![(meta.dev(), meta.ino())],
    }];
    while let Some(p) = stack.pop() {
        let entries = match fs::read_dir(&p.abs) {
            Ok(e) => e,
            Err(e) if p.rel.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!("metric index: cannot list {}: {e}", p.abs.display());
                continue;
            }
        };
        let tagged = p.rel.first().map(String::as_str) == Some(TAGGED_DIR);
        let mut listing = Vec::new();
        let mut metas = Vec::new();
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let Ok(mut ft) = entry.file_type() else {
                continue;
            };
            let mut target = None;
            if ft.is_symlink() {
                let Ok(m) = fs::metadata(entry.path()) else {
                    continue;
                };
                ft = m.file_type();
                target = Some(m);
            }
            if ft.is_dir() {
                if dir_ok(&p.rel, name, tagged) {
                    listing.push((name.to_owned(), true, false));
                    metas.push((name.to_owned(), target));
                }
            } else if ft.is_file() {
                if let Some(stem) = name.strip_suffix(".wsp") {
                    if file_ok(&p.rel, name, stem, tagged) {
                        listing.push((stem.to_owned(), false, true));
                    }
                }
            }
        }
        let subdirs = tree.fill(p.dir, listing);
        for (name, id) in subdirs {
            let abs = p.abs.join(&name);
            let meta = match metas.iter().find(|(n, _)| *n == name) {
                Some((_, Some(m))) => Some((m.dev(), m.ino())),
                _ => fs::metadata(&abs).ok().map(|m| (m.dev(), m.ino())),
            };
            let Some(key) = meta else { continue };
            if p.seen.contains(&key) {
                continue;
            }
            let mut seen = p.seen.clone();
            seen.push(key);
            let mut rel = p.rel.clone();
            rel.push(name);
            stack.push(Pending {
                abs,
                dir: id,
                rel,
                seen,
            });
        }
    }
    Ok(tree)
}

fn tagged_node_ok(name: &str) -> bool {
    !name.is_empty() && !name.contains('.') && !name.contains('\0')
}

fn dir_ok(rel: &[String], name: &str, tagged: bool) -> bool {
    if tagged {
        return tagged_node_ok(name);
    }
    if rel.is_empty() && name == TAGGED_DIR {
        return true;
    }
    if name.contains('.') {
        return false;
    }
    let mut full = rel.join(".");
    if !full.is_empty() {
        full.push('.');
    }
    full.push_str(name);
    // Directories obey the rules names do, so every directory can hold a valid name.
    !is_tagged(&full) && check(&full).is_ok()
}

fn file_ok(rel: &[String], file: &str, stem: &str, tagged: bool) -> bool {
    if tagged {
        return tagged_node_ok(stem);
    }
    let mut path: PathBuf = rel.iter().collect();
    path.push(file);
    name_from_relative_path(&path).is_some()
}
