//! One shard of the cache: the metrics whose name hashes to it, and the per-shard state
//! of the drain strategies. Everything here runs under the shard's lock.
//!
//! The entries live in the hash table's buckets themselves (`hashbrown::HashTable`), not
//! behind an index: with 100k metrics an insert is bound by memory latency, and every
//! indirection is one more cache/TLB miss (a slab + index table measured ~25% slower).
//! `HashTable` also lets the name be hashed once per point (the same hash picks the shard
//! and the bucket) and exposes bucket indices, which the strategies use as cheap, stable
//! (until the table resizes) positions:
//! - `Naive` sweeps a cursor over the buckets, popping the next occupied one: amortised
//!   O(1), every metric visited once per sweep (a rehash mid-sweep reshuffles, which
//!   only delays), so none starves;
//! - `Max` scans the occupied buckets for the largest entry;
//! - `Sorted` snapshots (count, bucket, hash) and pops from it, re-validating each item.

use hashbrown::HashTable;
use std::mem::size_of;

use super::entry::MetricEntry;
use super::Strategy;

#[derive(Default)]
pub(crate) struct Shard {
    table: HashTable<MetricEntry>,
    /// `Naive`: the next bucket to look at.
    naive_cursor: usize,
    /// `Sorted`: the current pass's snapshot, `(bucket, hash)`, next one last.
    sorted: Vec<(usize, u64)>,
    /// The table's bucket count when `sorted` was taken; a resize moves every entry, which
    /// makes the snapshot useless.
    sorted_buckets: usize,
    /// Heap bytes owned by the entries (names, points, segment runs).
    pub(crate) entry_bytes: usize,
}

/// What pushes did, for the cache's counters.
#[derive(Default, Clone, Copy)]
pub(crate) struct PushOutcome {
    pub(crate) new_metrics: usize,
}

impl Shard {
    /// Appends a point to `name`'s entry, creating it if needed.
    #[inline]
    pub(crate) fn push(
        &mut self,
        hash: u64,
        name: &str,
        ts: f64,
        value: f64,
        segment: u32,
        out: &mut PushOutcome,
    ) {
        // A lookup, then an insert only for a new metric: most points are for metrics the
        // cache holds, and this keeps that path small enough to inline.
        if let Some(e) = self.table.find_mut(hash, |e| e.is(hash, name)) {
            self.entry_bytes += e.push(ts, value, segment);
            return;
        }
        let (e, bytes) = MetricEntry::new(name, hash, ts, value, segment);
        self.entry_bytes += bytes;
        self.table.insert_unique(hash, e, |e| e.hash);
        out.new_metrics += 1;
    }

    pub(crate) fn get(&self, hash: u64, name: &str) -> Option<&MetricEntry> {
        self.table.find(hash, |e| e.is(hash, name))
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &MetricEntry> {
        self.table.iter()
    }

    fn remove_bucket(&mut self, bucket: usize) -> Option<MetricEntry> {
        let e = self.table.get_bucket_entry(bucket).ok()?.remove().0;
        self.entry_bytes -= e.heap_bytes();
        Some(e)
    }

    /// Removes `name`'s entry.
    pub(crate) fn take(&mut self, hash: u64, name: &str) -> Option<MetricEntry> {
        let bucket = self.table.find_bucket_index(hash, |e| {
            e.hash == hash && e.name_bytes() == name.as_bytes()
        })?;
        self.remove_bucket(bucket)
    }

    /// Removes the next entry `strategy` picks in this shard, if any.
    pub(crate) fn pop(&mut self, strategy: Strategy) -> Option<MetricEntry> {
        if self.table.is_empty() {
            return None;
        }
        let buckets = self.table.num_buckets();
        let bucket = match strategy {
            Strategy::Naive => loop {
                // Ends: the table is not empty, so one of `buckets` steps finds an entry.
                if self.naive_cursor >= buckets {
                    self.naive_cursor = 0;
                }
                let i = self.naive_cursor;
                self.naive_cursor += 1;
                if self.table.get_bucket(i).is_some() {
                    break i;
                }
            },
            Strategy::Max => {
                let mut best = None;
                let mut best_n = 0;
                for i in self.table.iter_buckets() {
                    if let Some(e) = self.table.get_bucket(i) {
                        // Strictly greater: ties go to the first bucket.
                        if best.is_none() || e.len() > best_n {
                            best_n = e.len();
                            best = Some(i);
                        }
                    }
                }
                best?
            }
            Strategy::Sorted => loop {
                if self.sorted_buckets != buckets {
                    self.sorted.clear();
                }
                match self.sorted.pop() {
                    // Re-validated: the entry may have been taken since, and its bucket
                    // reused. A stale item is skipped; its metric waits for the next pass.
                    Some((i, h)) => {
                        if self.table.get_bucket(i).is_some_and(|e| e.hash == h) {
                            break i;
                        }
                    }
                    None => self.snapshot_sorted(),
                }
            },
        };
        self.remove_bucket(bucket)
    }

    /// Carbon's `sorted` pass: ascending by (count, bucket) so that `pop()` gives the
    /// largest count first.
    fn snapshot_sorted(&mut self) {
        let mut v: Vec<(usize, usize, u64)> = self
            .table
            .iter_buckets()
            .filter_map(|i| self.table.get_bucket(i).map(|e| (e.len(), i, e.hash)))
            .collect();
        v.sort_unstable();
        self.sorted.clear();
        self.sorted.extend(v.into_iter().map(|(_, i, h)| (i, h)));
        self.sorted_buckets = self.table.num_buckets();
    }

    /// Removes every entry.
    pub(crate) fn take_all(&mut self) -> Vec<MetricEntry> {
        self.sorted = Vec::new();
        self.naive_cursor = 0;
        self.entry_bytes = 0;
        self.table.drain().collect()
    }

    /// Bytes of the shard's own structures (table, snapshot), excluding entry heaps.
    pub(crate) fn structure_bytes(&self) -> usize {
        self.table.allocation_size() + self.sorted.capacity() * size_of::<(usize, u64)>()
    }

    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        for e in self.table.iter() {
            assert!(self.get(e.hash, e.name()).is_some());
        }
        let bytes: usize = self.table.iter().map(|e| e.heap_bytes()).sum();
        assert_eq!(bytes, self.entry_bytes);
    }
}
