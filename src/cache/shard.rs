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
//!
//! A metric checked out to a writer moves, under the same lock hold, from the table to the
//! shard's in-flight table, where readers still find it until the writer checks it back in
//! (its points are then in whisper). A checkout passes over metrics already in flight, so a
//! metric has one batch in flight at a time; the table would still read several correctly
//! (tickets grow with checkout order, which is the order of arrival).

use hashbrown::HashTable;
use std::mem::size_of;

use super::entry::{MetricEntry, Point};
use super::Strategy;

/// One checked-out batch of a metric's points.
pub(crate) struct InFlight {
    pub(crate) ticket: u64,
    pub(crate) entry: MetricEntry,
}

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
    /// Heap bytes owned by the entries (names, points, segment runs), in flight ones included.
    pub(crate) entry_bytes: usize,
    /// Checked-out batches, by their metric's hash.
    inflight: HashTable<InFlight>,
    /// The last ticket handed out.
    last_ticket: u64,
}

/// What pushes did, for the cache's counters.
#[derive(Default, Clone, Copy)]
pub(crate) struct PushOutcome {
    pub(crate) new_metrics: usize,
}

impl Shard {
    /// Appends a point to `name`'s entry, creating it if needed. With `announce` (a live
    /// point, not a replayed one) returns true when the name has not been announced since the
    /// entry was made: the caller hands it to the read side's index, which then need not be
    /// asked about every point.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push(
        &mut self,
        hash: u64,
        name: &str,
        ts: f64,
        value: f64,
        segment: u32,
        announce: bool,
        out: &mut PushOutcome,
    ) -> bool {
        // A lookup, then an insert only for a new metric: most points are for metrics the
        // cache holds, and this keeps that path small enough to inline.
        if let Some(e) = self.table.find_mut(hash, |e| e.is(hash, name)) {
            self.entry_bytes += e.push(ts, value, segment);
            return announce && e.announce();
        }
        let (mut e, bytes) = MetricEntry::new(name, hash, ts, value, segment);
        let announced = announce && e.announce();
        self.entry_bytes += bytes;
        self.table.insert_unique(hash, e, |e| e.hash);
        out.new_metrics += 1;
        announced
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

    /// Removes the next entry `strategy` picks in this shard, if any. With `one_in_flight`, a
    /// metric that has a batch in flight is passed over: its newer points wait until the
    /// older ones are written, so one metric's writes never overlap or go out of order.
    pub(crate) fn pop(&mut self, strategy: Strategy, one_in_flight: bool) -> Option<MetricEntry> {
        if self.table.is_empty() {
            return None;
        }
        let skip = one_in_flight && !self.inflight.is_empty();
        let buckets = self.table.num_buckets();
        let bucket = match strategy {
            Strategy::Naive => {
                let mut found = None;
                // One sweep at most: every entry may be passed over.
                for _ in 0..buckets {
                    if self.naive_cursor >= buckets {
                        self.naive_cursor = 0;
                    }
                    let i = self.naive_cursor;
                    self.naive_cursor += 1;
                    if let Some(e) = self.table.get_bucket(i) {
                        if !skip || !self.entry_in_flight(e) {
                            found = Some(i);
                            break;
                        }
                    }
                }
                found?
            }
            Strategy::Max => {
                let mut best = None;
                let mut best_n = 0;
                for i in self.table.iter_buckets() {
                    if let Some(e) = self.table.get_bucket(i) {
                        // Strictly greater: ties go to the first bucket.
                        if (best.is_none() || e.len() > best_n)
                            && (!skip || !self.entry_in_flight(e))
                        {
                            best_n = e.len();
                            best = Some(i);
                        }
                    }
                }
                best?
            }
            Strategy::Sorted => {
                let mut fresh = false;
                loop {
                    if self.sorted_buckets != buckets {
                        self.sorted.clear();
                    }
                    match self.sorted.pop() {
                        // Re-validated: the entry may have been taken since, and its bucket
                        // reused, or be in flight now. A skipped item's metric waits for the
                        // next pass.
                        Some((i, h)) => {
                            if let Some(e) = self.table.get_bucket(i) {
                                if e.hash == h && (!skip || !self.entry_in_flight(e)) {
                                    break i;
                                }
                            }
                        }
                        // A fresh snapshot holds only entries that can go: if it is empty,
                        // nothing can.
                        None if fresh => return None,
                        None => {
                            self.snapshot_sorted(skip);
                            fresh = true;
                        }
                    }
                }
            }
        };
        self.remove_bucket(bucket)
    }

    /// Whether `e`'s metric has a batch in flight.
    fn entry_in_flight(&self, e: &MetricEntry) -> bool {
        self.inflight
            .find(e.hash, |f| {
                f.entry.hash == e.hash && f.entry.name_bytes() == e.name_bytes()
            })
            .is_some()
    }

    /// Carbon's `sorted` pass: ascending by (count, bucket) so that `pop()` gives the
    /// largest count first; without the metrics in flight when `skip`.
    fn snapshot_sorted(&mut self, skip: bool) {
        let mut v: Vec<(usize, usize, u64)> = self
            .table
            .iter_buckets()
            .filter_map(|i| {
                let e = self.table.get_bucket(i)?;
                (!skip || !self.entry_in_flight(e)).then(|| (e.len(), i, e.hash))
            })
            .collect();
        v.sort_unstable();
        self.sorted.clear();
        self.sorted.extend(v.into_iter().map(|(_, i, h)| (i, h)));
        self.sorted_buckets = self.table.num_buckets();
    }

    /// Removes every pending entry (in-flight batches stay with their writers).
    pub(crate) fn take_all(&mut self) -> Vec<MetricEntry> {
        self.sorted = Vec::new();
        self.naive_cursor = 0;
        let taken: Vec<MetricEntry> = self.table.drain().collect();
        self.entry_bytes -= taken.iter().map(MetricEntry::heap_bytes).sum::<usize>();
        taken
    }

    /// Puts a removed entry in flight; returns its ticket.
    pub(crate) fn check_out(&mut self, entry: MetricEntry) -> u64 {
        self.last_ticket += 1;
        let ticket = self.last_ticket;
        self.entry_bytes += entry.heap_bytes();
        self.inflight
            .insert_unique(entry.hash, InFlight { ticket, entry }, |f| f.entry.hash);
        ticket
    }

    /// Removes `name`'s in-flight batch `ticket`, if it is there.
    pub(crate) fn check_in(&mut self, hash: u64, name: &str, ticket: u64) -> Option<MetricEntry> {
        let found = self
            .inflight
            .find_entry(hash, |f| f.ticket == ticket && f.entry.is(hash, name))
            .ok()?;
        let entry = found.remove().0.entry;
        self.entry_bytes -= entry.heap_bytes();
        Some(entry)
    }

    /// Whether `name` has a batch in flight.
    pub(crate) fn in_flight(&self, hash: u64, name: &str) -> bool {
        !self.inflight.is_empty()
            && self
                .inflight
                .find(hash, |f| f.entry.is(hash, name))
                .is_some()
    }

    /// Appends `name`'s in-flight points to `out`, oldest batch first, each batch in arrival
    /// order.
    pub(crate) fn extend_in_flight(&self, hash: u64, name: &str, out: &mut Vec<Point>) {
        if self.inflight.is_empty() {
            return;
        }
        let mut batches: Vec<&InFlight> = self
            .inflight
            .iter_hash(hash)
            .filter(|f| f.entry.is(hash, name))
            .collect();
        batches.sort_unstable_by_key(|f| f.ticket);
        for f in batches {
            f.entry.extend_points(out);
        }
    }

    pub(crate) fn iter_in_flight(&self) -> impl Iterator<Item = &InFlight> {
        self.inflight.iter()
    }

    /// Bytes of the shard's own structures (tables, snapshot), excluding entry heaps.
    pub(crate) fn structure_bytes(&self) -> usize {
        self.table.allocation_size()
            + self.inflight.allocation_size()
            + self.sorted.capacity() * size_of::<(usize, u64)>()
    }

    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        for e in self.table.iter() {
            assert!(self.get(e.hash, e.name()).is_some());
        }
        for f in self.inflight.iter() {
            assert!(self.in_flight(f.entry.hash, f.entry.name()));
        }
        let bytes: usize = self.table.iter().map(|e| e.heap_bytes()).sum::<usize>()
            + self
                .inflight
                .iter()
                .map(|f| f.entry.heap_bytes())
                .sum::<usize>();
        assert_eq!(bytes, self.entry_bytes);
    }
}
