//! A writer's open whisper files: the ones it wrote recently stay open, so that writing a
//! metric again costs no `openat`/`close` and no header parse.
//!
//! Bounded by a count (descriptors are a process-wide resource). A writer goes round its
//! metrics in cycles, and when a cycle holds more metrics than the bound, least-recently-used
//! eviction keeps nothing useful: each file is evicted just before its next write comes round.
//! So when the set is full a file is let in only in place of one idle for [`IDLE`]; otherwise
//! it is closed after its write. In a cycle of N metrics over a bound of C, C of every N
//! writes then find their file open instead of none, and files of metrics that stopped
//! arriving still make room after a minute. Each writer thread owns one: no locking. Whether a
//! kept handle still names the file at its path is the caller's business
//! ([`WhisperFile::revalidate`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::whisper::WhisperFile;

/// How long an open file must have gone unused before a new one may take its place.
pub(crate) const IDLE: Duration = Duration::from_secs(60);

/// Slots looked at for the longest idle one when the set is full: a sample, not a full scan,
/// so that a put stays O(1).
const PROBES: usize = 8;

struct Slot {
    name: Box<str>,
    file: WhisperFile,
    used: Instant,
}

pub(crate) struct OpenFiles {
    capacity: usize,
    /// foldhash: SipHash's flooding resistance buys nothing for the writer's own names.
    index: HashMap<Box<str>, usize, foldhash::fast::RandomState>,
    slots: Vec<Slot>,
    /// Where the next sample of slots starts.
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

    /// Keeps `file` open as `name`'s; returns true when a file was closed for lack of room
    /// (an idle one, or `file` itself).
    pub(crate) fn put(&mut self, name: &str, file: WhisperFile) -> bool {
        self.put_at(name, file, Instant::now())
    }

    pub(crate) fn put_at(&mut self, name: &str, file: WhisperFile, now: Instant) -> bool {
        if self.capacity == 0 {
            return false;
        }
        if let Some(&i) = self.index.get(name) {
            // Not expected (callers take before they put), but keep one handle per name.
            self.slots[i].file = file;
            self.slots[i].used = now;
            return false;
        }
        let slot = Slot {
            name: name.into(),
            file,
            used: now,
        };
        if self.slots.len() < self.capacity {
            self.index.insert(slot.name.clone(), self.slots.len());
            self.slots.push(slot);
            return false;
        }
        let n = self.slots.len();
        let mut oldest = self.hand % n;
        for k in 1..PROBES.min(n) {
            let i = (self.hand + k) % n;
            if self.slots[i].used < self.slots[oldest].used {
                oldest = i;
            }
        }
        self.hand = (self.hand + PROBES) % n;
        if now.saturating_duration_since(self.slots[oldest].used) < IDLE {
            // Everything sampled is in use: `file` is closed as it is dropped here.
            return true;
        }
        self.index.remove(&self.slots[oldest].name);
        self.index.insert(slot.name.clone(), oldest);
        // The idle handle is dropped here, which closes its descriptor.
        self.slots[oldest] = slot;
        true
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

    /// Writes `name` as the persister does: take the open file or open it, then put it back.
    fn write(files: &mut OpenFiles, dir: &std::path::Path, name: &str, now: Instant) -> bool {
        let (f, hit) = match files.take(name) {
            Some(f) => (f, true),
            None => (file(dir, name), false),
        };
        files.put_at(name, f, now);
        hit
    }

    #[test]
    fn a_cycle_longer_than_the_bound_keeps_a_stable_set_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = OpenFiles::new(3);
        let names = ["a", "b", "c", "d", "e"];
        let start = Instant::now();
        let mut hits = 0;
        for round in 0..10u32 {
            let now = start + Duration::from_secs(u64::from(round));
            for n in names {
                hits += usize::from(write(&mut files, dir.path(), n, now));
            }
        }
        // Least-recently-used would find nothing open; here 3 of 5 writes a round, after the
        // first.
        assert_eq!(hits, 9 * 3);
        assert_eq!(files.len(), 3);
    }

    #[test]
    fn an_idle_file_makes_room() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = OpenFiles::new(2);
        let start = Instant::now();
        write(&mut files, dir.path(), "a", start);
        write(&mut files, dir.path(), "b", start + Duration::from_secs(30));
        // Both in use within the minute: "c" is not kept.
        let t = start + Duration::from_secs(59);
        assert!(!write(&mut files, dir.path(), "c", t));
        assert!(files.take("c").is_none());
        // "a" has been idle a minute: "c" takes its place, "b" stays.
        let t = start + IDLE;
        assert!(!write(&mut files, dir.path(), "c", t));
        assert!(files.take("a").is_none());
        assert!(files.take("b").is_some());
        assert!(files.take("c").is_some());
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
