//! A writer's open whisper files: the most recently written ones stay open, so that writing a
//! hot metric again costs no `openat`/`close` and no header parse.
//!
//! Bounded by a count (descriptors are a process-wide resource) and evicted by CLOCK, an
//! approximation of least-recently-used that costs one flag per hit instead of a list update.
//! Each writer thread owns one: no locking. Whether a kept handle still names the file at its
//! path is the caller's business ([`WhisperFile::revalidate`]).

use std::collections::HashMap;

use crate::whisper::WhisperFile;

struct Slot {
    name: Box<str>,
    file: WhisperFile,
    /// Used since the clock hand last passed: spared once.
    referenced: bool,
}

pub(crate) struct OpenFiles {
    capacity: usize,
    /// foldhash: SipHash's flooding resistance buys nothing for the writer's own names.
    index: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    slots: Vec<Slot>,
    hand: usize,
}

impl OpenFiles {
    /// At most `capacity` open files; 0 keeps none.
    pub(crate) fn new(capacity: usize) -> OpenFiles {
        OpenFiles {
            capacity,
            index: HashMap::default(),
            slots: Vec::new(),
            hand: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Takes `name`'s open file out (the caller puts it back with [`OpenFiles::put`] once it
    /// has written), so that a handle in use is never evicted.
    pub(crate) fn take(&mut self, name: &str) -> Option<WhisperFile> {
        let i = self.index.remove(name)?;
        let slot = self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            if let Some(j) = self.index.get_mut(&moved.name) {
                *j = i;
            }
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
        Some(slot.file)
    }

    /// Keeps `file` open as `name`'s; returns true when another file was closed for room.
    pub(crate) fn put(&mut self, name: &str, file: WhisperFile) -> bool {
        if self.capacity == 0 {
            return false;
        }
        if let Some(&i) = self.index.get(name) {
            // Not expected (callers take before they put), but keep one handle per name.
            self.slots[i].file = file;
            self.slots[i].referenced = true;
            return false;
        }
        let slot = Slot {
            name: name.into(),
            file,
            referenced: true,
        };
        if self.slots.len() < self.capacity {
            self.index.insert(slot.name.clone(), self.slots.len());
            self.slots.push(slot);
            return false;
        }
        // Ends: each pass clears the flags it skips, so the second pass finds one.
        loop {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            if self.slots[i].referenced {
                self.slots[i].referenced = false;
                continue;
            }
            self.index.remove(&self.slots[i].name);
            self.index.insert(slot.name.clone(), i);
            // The old handle is dropped here, which closes its descriptor.
            self.slots[i] = slot;
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whisper::{create, CreateOptions};

    fn file(dir: &std::path::Path, name: &str) -> WhisperFile {
        let path = dir.join(format!("{name}.wsp"));
        if !path.exists() {
            create(&path, &[(60, 10)], &CreateOptions::default()).unwrap();
        }
        WhisperFile::open(&path, true).unwrap()
    }

    #[test]
    fn clock_evicts_the_unreferenced_and_keeps_the_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = OpenFiles::new(3);
        for n in ["a", "b", "c"] {
            assert!(!files.put(n, file(dir.path(), n)));
        }
        assert_eq!(files.len(), 3);
        // A full pass clears every flag, then "a" (first under the hand) goes.
        assert!(files.put("d", file(dir.path(), "d")));
        assert!(files.take("a").is_none());
        // "b" is used again: the next eviction spares it and takes "c".
        let b = files.take("b").unwrap();
        assert!(b.path().ends_with("b.wsp"));
        files.put("b", b);
        assert!(files.put("e", file(dir.path(), "e")));
        assert!(files.take("c").is_none());
        for n in ["b", "d", "e"] {
            assert!(files.take(n).is_some(), "{n}");
        }
        assert_eq!(files.len(), 0);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = OpenFiles::new(0);
        assert!(!files.put("a", file(dir.path(), "a")));
        assert!(files.take("a").is_none());
    }
}
