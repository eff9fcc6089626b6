//! Which segments are still needed: a count, per segment, of acknowledged points that
//! whisper does not hold yet, and the deletion of segments nobody needs.
//!
//! Segments are deleted strictly oldest first, and only when every older segment is gone
//! too. That keeps the log a suffix of history, so a replay re-applies points in the
//! order they arrived: a newer value for a timestamp is always replayed after the older
//! one. Deleting a fully persisted segment out of order would let a replay of an older,
//! still-live segment put an old value back over a newer one already in whisper.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::segment_path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    outstanding: u64,
    /// No record will be added any more: the writer moved on, or it is a replayed segment.
    sealed: bool,
}

/// A live segment, as reported by [`super::Wal::segments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    pub seq: u64,
    /// Acknowledged points in this segment not yet reported persisted.
    pub outstanding: u64,
    /// Whether the writer has moved past it (only sealed segments are deleted).
    pub sealed: bool,
}

pub(crate) struct SegmentTable {
    dir: PathBuf,
    map: Mutex<BTreeMap<u64, State>>,
    /// Serialises deletions so that two threads releasing points at once still unlink in
    /// sequence order: a crash between two unlinks must leave a suffix behind.
    gc: Mutex<()>,
    pub(crate) deleted: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain counters behind, still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SegmentTable {
    pub(crate) fn new(dir: &Path) -> SegmentTable {
        SegmentTable {
            dir: dir.to_path_buf(),
            map: Mutex::new(BTreeMap::new()),
            gc: Mutex::new(()),
            deleted: AtomicU64::new(0),
        }
    }

    pub(crate) fn insert(&self, seq: u64, outstanding: u64, sealed: bool) {
        lock(&self.map).insert(
            seq,
            State {
                outstanding,
                sealed,
            },
        );
    }

    /// Counts points of a record just made durable. Called by the writer before the
    /// record is acknowledged, so the persister can never release points not yet counted.
    pub(crate) fn add(&self, seq: u64, points: u64) {
        if let Some(s) = lock(&self.map).get_mut(&seq) {
            s.outstanding += points;
        }
    }

    pub(crate) fn seal(&self, seq: u64) {
        if let Some(s) = lock(&self.map).get_mut(&seq) {
            s.sealed = true;
        }
        self.collect();
    }

    pub(crate) fn release(&self, seq: u64, points: u64) {
        {
            let mut map = lock(&self.map);
            match map.get_mut(&seq) {
                Some(s) if s.outstanding >= points => s.outstanding -= points,
                Some(s) => {
                    // A caller bug: more released than appended. Clamping risks deleting
                    // the segment early, but it is the caller's count that is wrong.
                    tracing::error!(
                        segment = seq,
                        outstanding = s.outstanding,
                        released = points,
                        "wal: more points reported persisted than the segment holds"
                    );
                    s.outstanding = 0;
                }
                None => {
                    tracing::error!(
                        segment = seq,
                        released = points,
                        "wal: points reported persisted for a segment that is not live"
                    );
                    return;
                }
            }
        }
        self.collect();
    }

    pub(crate) fn snapshot(&self) -> Vec<SegmentInfo> {
        lock(&self.map)
            .iter()
            .map(|(&seq, s)| SegmentInfo {
                seq,
                outstanding: s.outstanding,
                sealed: s.sealed,
            })
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Deletes the longest prefix of sealed segments with nothing outstanding.
    pub(crate) fn collect(&self) {
        let _gc = lock(&self.gc);
        let victims: Vec<u64> = lock(&self.map)
            .iter()
            .take_while(|(_, s)| s.sealed && s.outstanding == 0)
            .map(|(&seq, _)| seq)
            .collect();
        for seq in victims {
            let path = segment_path(&self.dir, seq);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Stop here: deleting a later segment while this one stays would break
                    // the suffix property. The next release retries.
                    tracing::warn!(file = %path.display(), error = %e, "wal: cannot delete persisted segment");
                    return;
                }
            }
            lock(&self.map).remove(&seq);
            self.deleted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(file = %path.display(), "wal: deleted fully persisted segment");
        }
    }
}
