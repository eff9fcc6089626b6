//! One metric's pending points, kept as cheaply as the insert path allows.
//!
//! Points are appended in arrival order and never deduplicated on insert: carbon's
//! "same (metric, timestamp) → last value wins" is applied when the points are read or
//! drained ([`finish`]), because a stable sort at drain time is far cheaper than a lookup
//! per insert. Arrival order is therefore the only "which one is later" information needed.
//!
//! Memory is what bounds the cache, so the layout is chosen for it: a point is 16 bytes
//! (`f64` timestamp, `f64` value) with the WAL segment tag kept out of line as run-length
//! `(segment, count)` runs — segments roll every many megabytes, so nearly every metric has
//! a single run, stored inline. The points vector grows by 1.5× (from 4) rather than 2×:
//! at 10 points per metric that is 13 slots (208 B, 20.8 B/point) instead of 16 (25.6).

use std::mem::size_of;

/// A cached point: raw timestamp key as received (carbon keeps `1.5` and `1.0` apart;
/// whisper decides later which one of a second wins) and its value.
pub(crate) type Point = (f64, f64);

pub(crate) const POINT_BYTES: usize = size_of::<Point>();

pub(crate) struct MetricEntry {
    pub(crate) name: Box<str>,
    /// The name's hash; kept so the table can rehash and be searched by index without
    /// re-hashing names, and so name comparisons are skipped on hash mismatch.
    pub(crate) hash: u64,
    pub(crate) points: Vec<Point>,
    /// The current (newest) segment run; `seg_count == 0` only before the first point.
    seg: u32,
    seg_count: u32,
    /// Older runs, oldest first. Boxed so the common single-run entry pays 8 bytes.
    #[allow(clippy::box_collection)] // 8 bytes in every entry instead of Vec's 24
    older: Option<Box<Vec<(u32, u32)>>>,
}

impl MetricEntry {
    /// An entry with no points yet; returns it with the heap bytes it owns.
    pub(crate) fn new(name: &str, hash: u64) -> (MetricEntry, usize) {
        let e = MetricEntry {
            name: name.into(),
            hash,
            points: Vec::new(),
            seg: 0,
            seg_count: 0,
            older: None,
        };
        (e, name.len())
    }

    /// Appends one point; returns the heap bytes this added (0 unless something grew).
    #[inline]
    pub(crate) fn push(&mut self, ts: f64, value: f64, segment: u32) -> usize {
        let mut grown = 0;
        let len = self.points.len();
        let cap = self.points.capacity();
        if len == cap {
            // Vec's own growth doubles; 1.5× keeps small entries ≤ 32 B/point.
            let new_cap = (cap + cap / 2).max(4);
            self.points.reserve_exact(new_cap - len);
            grown += (self.points.capacity() - cap) * POINT_BYTES;
        }
        self.points.push((ts, value));
        if self.seg_count != 0 && (self.seg != segment || self.seg_count == u32::MAX) {
            let older = self.older.get_or_insert_with(|| {
                grown += size_of::<Vec<(u32, u32)>>();
                Box::default()
            });
            let before = older.capacity();
            older.push((self.seg, self.seg_count));
            grown += (older.capacity() - before) * size_of::<(u32, u32)>();
            self.seg_count = 0;
        }
        self.seg = segment;
        self.seg_count += 1;
        grown
    }

    /// Heap bytes owned by this entry (name, points, segment runs), from capacities.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.name.len()
            + self.points.capacity() * POINT_BYTES
            + self.older.as_ref().map_or(0, |o| {
                size_of::<Vec<(u32, u32)>>() + o.capacity() * size_of::<(u32, u32)>()
            })
    }

    /// Points per WAL segment, ascending by segment, every appended point counted (also the
    /// ones a later value for the same timestamp supersedes: the WAL must release those too).
    pub(crate) fn segments(&self) -> Vec<(u32, u32)> {
        let mut runs: Vec<(u32, u32)> = match &self.older {
            None => return vec![(self.seg, self.seg_count)],
            Some(o) => o.to_vec(),
        };
        runs.push((self.seg, self.seg_count));
        runs.sort_unstable_by_key(|r| r.0);
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(runs.len());
        for (seg, n) in runs {
            match out.last_mut() {
                // A run split only because its count hit u32::MAX may not merge back.
                Some(last) if last.0 == seg && last.1.checked_add(n).is_some() => last.1 += n,
                _ => out.push((seg, n)),
            }
        }
        out
    }
}

/// Turns points in arrival order into what a reader or whisper wants: ascending by
/// timestamp, one point per timestamp key, the last one to arrive winning.
///
/// Timestamps are compared as floats with `-0.0 == 0.0` (normalised on insert), as Python
/// dict keys are. A NaN timestamp (receivers filter them) sorts last and is never merged.
pub(crate) fn finish(points: &mut Vec<Point>) {
    // Points usually arrive in time order, one per timestamp: then there is nothing to do.
    if points.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    // Stable, so among equal timestamps arrival order is kept and the last one is the winner.
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    // `dedup_by` keeps the first of a run; carrying the later value into it keeps the last.
    points.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 = later.1;
            true
        } else {
            false
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_sorts_and_keeps_last() {
        let mut p = vec![(3.0, 1.0), (1.0, 2.0), (3.0, 3.0), (2.0, 4.0), (1.0, 5.0)];
        finish(&mut p);
        assert_eq!(p, vec![(1.0, 5.0), (2.0, 4.0), (3.0, 3.0)]);
    }

    #[test]
    fn finish_keeps_fractional_keys_apart() {
        let mut p = vec![(10.5, 1.0), (10.0, 2.0), (10.5, 3.0)];
        finish(&mut p);
        assert_eq!(p, vec![(10.0, 2.0), (10.5, 3.0)]);
    }

    #[test]
    fn finish_fast_path_untouched() {
        let mut p = vec![(1.0, 1.0), (2.0, 2.0)];
        finish(&mut p);
        assert_eq!(p, vec![(1.0, 1.0), (2.0, 2.0)]);
    }

    #[test]
    fn segment_runs_merge_per_segment() {
        let (mut e, _) = MetricEntry::new("a", 0);
        for seg in [1, 1, 2, 2, 2, 1, 3] {
            e.push(0.0, 0.0, seg);
        }
        assert_eq!(e.segments(), vec![(1, 3), (2, 3), (3, 1)]);
        let (mut e, _) = MetricEntry::new("a", 0);
        e.push(0.0, 0.0, 7);
        assert_eq!(e.segments(), vec![(7, 1)]);
    }

    #[test]
    fn growth_is_one_and_a_half() {
        let (mut e, _) = MetricEntry::new("a", 0);
        let mut bytes = 0;
        for i in 0..10 {
            bytes += e.push(i as f64, 0.0, 0);
        }
        assert_eq!(e.points.capacity(), 13);
        assert_eq!(bytes, 13 * POINT_BYTES);
        assert_eq!(size_of::<MetricEntry>(), 64);
    }
}
