//! One metric's pending points, kept as cheaply as the insert path allows.
//!
//! Points are appended in arrival order and never deduplicated on insert: carbon's
//! "same (metric, timestamp) → last value wins" is applied when the points are read or
//! drained ([`finish`]), because a stable sort at drain time is far cheaper than a lookup
//! per insert. Arrival order is therefore the only "which one is later" information needed.
//!
//! Memory is what bounds the cache, so the layout is chosen for it (at 100k metrics × 10
//! points, about 25 bytes a point all included, see `tests/cache.rs`):
//! - the name and the points share one allocation (one malloc header, one cache miss on an
//!   insert that finds the metric, no separate 16-byte name pointer in the entry);
//! - a point is 12 bytes (`u32` timestamp, `f64` value) while every timestamp key of the
//!   metric is a whole number of seconds that fits `u32`, as collectors send them; the first
//!   other key (fractional, negative, NaN, past 2106) turns the metric's points into 16-byte
//!   `(f64, f64)` for as long as it is cached, so keys are kept exactly as received;
//! - the WAL segment tag is kept out of line as run-length `(segment, count)` runs (segments
//!   roll every many megabytes, so nearly every metric has one run, stored inline);
//! - the buffer grows by 1.5× from 4 points rather than 2×;
//! - the entry itself is 48 bytes, and it lives in the hash table's buckets.

use std::mem::size_of;

/// A cached point: raw timestamp key as received (carbon keeps `1.5` and `1.0` apart;
/// whisper decides later which one of a second wins) and its value.
pub(crate) type Point = (f64, f64);

/// Bytes of a point while the metric's keys are whole `u32` seconds.
const NARROW: usize = 12;
/// Bytes of a point once a key is not.
const WIDE: usize = 16;
/// `seg_count`'s top bit: the points are wide. The count itself uses the other 31 bits.
const WIDE_FLAG: u32 = 1 << 31;
const COUNT_MASK: u32 = WIDE_FLAG - 1;
/// Points a new metric gets room for.
const FIRST_CAPACITY: usize = 4;

pub(crate) struct MetricEntry {
    /// The name's bytes, then the points (`NARROW` or `WIDE` bytes each, native endian).
    buf: Box<[u8]>,
    /// The name's hash; kept so the table can rehash and be searched by index without
    /// re-hashing names, and so name comparisons are skipped on hash mismatch.
    pub(crate) hash: u64,
    /// The name's length, and in the top bit [`ANNOUNCED`].
    name_len: u32,
    /// Points held.
    len: u32,
    /// The current (newest) segment run.
    seg: u32,
    /// Points in the current run (low 31 bits) and `WIDE_FLAG`.
    seg_count: u32,
    /// Older runs, oldest first. Boxed so the common single-run entry pays 8 bytes.
    #[allow(clippy::box_collection)] // 8 bytes in every entry instead of Vec's 24
    older: Option<Box<Vec<(u32, u32)>>>,
}

/// `name_len`'s top bit: a receiver has handed this name to the read side's index since the
/// entry was made, so later points for it need not be (see [`MetricEntry::announce`]).
const ANNOUNCED: u32 = 1 << 31;

/// The key as a narrow timestamp, if it is one: a whole number in `0..=u32::MAX`.
#[inline]
fn narrow_key(ts: f64) -> Option<u32> {
    let t = ts as u32;
    // NaN casts to 0 and compares unequal; -0.0 is normalised to 0.0 by the caller.
    (f64::from(t) == ts).then_some(t)
}

impl MetricEntry {
    /// An entry holding its first point; returns it with the heap bytes it owns. Names
    /// longer than 2^31 - 1 bytes cannot be cached (receivers refuse names over 4 KiB): the
    /// name is then cut, which only costs that metric its own entry.
    pub(crate) fn new(
        name: &str,
        hash: u64,
        ts: f64,
        value: f64,
        segment: u32,
    ) -> (MetricEntry, usize) {
        let name = name.as_bytes();
        let name = &name[..name.len().min((ANNOUNCED - 1) as usize)];
        let wide = narrow_key(ts).is_none();
        let size = if wide { WIDE } else { NARROW };
        let mut buf = vec![0u8; name.len() + FIRST_CAPACITY * size].into_boxed_slice();
        buf[..name.len()].copy_from_slice(name);
        let mut e = MetricEntry {
            buf,
            hash,
            name_len: name.len() as u32,
            len: 0,
            seg: segment,
            seg_count: if wide { WIDE_FLAG } else { 0 },
            older: None,
        };
        let grown = e.push(ts, value, segment);
        let bytes = e.buf.len() + grown;
        (e, bytes)
    }

    #[inline]
    fn is_wide(&self) -> bool {
        self.seg_count & WIDE_FLAG != 0
    }

    #[inline]
    fn name_len(&self) -> usize {
        (self.name_len & !ANNOUNCED) as usize
    }

    /// Marks the name as handed to the index; true the first time, so that the caller hands
    /// it over then.
    #[inline]
    pub(crate) fn announce(&mut self) -> bool {
        let first = self.name_len & ANNOUNCED == 0;
        self.name_len |= ANNOUNCED;
        first
    }

    #[inline]
    pub(crate) fn name_bytes(&self) -> &[u8] {
        self.buf.get(..self.name_len()).unwrap_or_default()
    }

    /// Whether this is `name`'s entry. The hash and length are compared before the bytes,
    /// which are behind a pointer (another cache miss).
    #[inline]
    pub(crate) fn is(&self, hash: u64, name: &str) -> bool {
        self.hash == hash
            && self.name_len() == name.len()
            && self.buf.get(..name.len()) == Some(name.as_bytes())
    }

    /// The name. The bytes came from a `&str`, so the fallback never happens.
    pub(crate) fn name(&self) -> &str {
        std::str::from_utf8(self.name_bytes()).unwrap_or_default()
    }

    /// Points held.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Bytes the points may use (held and spare).
    pub(crate) fn point_bytes(&self) -> usize {
        self.buf.len() - self.name_len()
    }

    /// Appends one point; returns the heap bytes this added (0 unless something grew).
    #[inline]
    pub(crate) fn push(&mut self, ts: f64, value: f64, segment: u32) -> usize {
        let mut grown = 0;
        // The common case first, with constant sizes so the copies are plain stores.
        let narrow = match narrow_key(ts) {
            Some(t) if !self.is_wide() => Some(t),
            Some(_) => None,
            None => {
                if !self.is_wide() {
                    grown += self.widen();
                }
                None
            }
        };
        let at = self.name_len() + self.len as usize * if narrow.is_some() { NARROW } else { WIDE };
        match narrow {
            Some(t) => {
                if at + NARROW > self.buf.len() {
                    grown += self.grow(NARROW);
                }
                if let Some(slot) = self.buf.get_mut(at..at + NARROW) {
                    let mut point = [0u8; NARROW];
                    point[..4].copy_from_slice(&t.to_ne_bytes());
                    point[4..].copy_from_slice(&value.to_ne_bytes());
                    slot.copy_from_slice(&point);
                }
            }
            None => {
                if at + WIDE > self.buf.len() {
                    grown += self.grow(WIDE);
                }
                if let Some(slot) = self.buf.get_mut(at..at + WIDE) {
                    let mut point = [0u8; WIDE];
                    point[..8].copy_from_slice(&ts.to_ne_bytes());
                    point[8..].copy_from_slice(&value.to_ne_bytes());
                    slot.copy_from_slice(&point);
                }
            }
        }
        self.len += 1;
        let count = self.seg_count & COUNT_MASK;
        if count != 0 && (self.seg != segment || count == COUNT_MASK) {
            grown += self.new_run();
        }
        self.seg = segment;
        self.seg_count += 1;
        grown
    }

    /// Moves the current segment run out of line; returns the bytes added.
    #[cold]
    fn new_run(&mut self) -> usize {
        let mut grown = 0;
        let older = self.older.get_or_insert_with(|| {
            grown += size_of::<Vec<(u32, u32)>>();
            Box::default()
        });
        let before = older.capacity();
        older.push((self.seg, self.seg_count & COUNT_MASK));
        grown += (older.capacity() - before) * size_of::<(u32, u32)>();
        self.seg_count &= WIDE_FLAG;
        grown
    }

    /// Room for 1.5× the points (4 at least); returns the bytes added.
    #[cold]
    fn grow(&mut self, size: usize) -> usize {
        let cap = self.point_bytes() / size;
        let new_cap = (cap + cap / 2).max(FIRST_CAPACITY);
        self.reallocate(size, new_cap)
    }

    /// Rewrites the points as wide ones, in a buffer of the same capacity in points;
    /// returns the bytes added.
    #[cold]
    fn widen(&mut self) -> usize {
        let cap = self.point_bytes() / NARROW;
        let points = self.points();
        let name_len = self.name_len();
        let mut buf = vec![0u8; name_len + cap * WIDE].into_boxed_slice();
        buf[..name_len].copy_from_slice(self.name_bytes());
        for (i, (t, v)) in points.into_iter().enumerate() {
            let at = name_len + i * WIDE;
            buf[at..at + 8].copy_from_slice(&t.to_ne_bytes());
            buf[at + 8..at + 16].copy_from_slice(&v.to_ne_bytes());
        }
        let before = self.buf.len();
        self.buf = buf;
        self.seg_count |= WIDE_FLAG;
        self.buf.len() - before
    }

    /// A buffer with room for `cap` points of `size` bytes (at least the points held), the
    /// name and points copied over; returns the bytes added.
    fn reallocate(&mut self, size: usize, cap: usize) -> usize {
        let cap = cap.max(self.len as usize);
        let keep = self.name_len() + self.len as usize * size;
        let mut buf = vec![0u8; self.name_len() + cap * size].into_boxed_slice();
        let keep = keep.min(self.buf.len());
        buf[..keep].copy_from_slice(&self.buf[..keep]);
        let before = self.buf.len();
        self.buf = buf;
        self.buf.len().saturating_sub(before)
    }

    /// The points in arrival order.
    pub(crate) fn points(&self) -> Vec<Point> {
        let mut out = Vec::with_capacity(self.len as usize);
        self.extend_points(&mut out);
        out
    }

    /// Appends the points, in arrival order, to `out`.
    pub(crate) fn extend_points(&self, out: &mut Vec<Point>) {
        let data = &self.buf[self.name_len()..];
        let word = |b: &[u8]| f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        if self.is_wide() {
            out.extend(
                data.chunks_exact(WIDE)
                    .take(self.len as usize)
                    .map(|p| (word(&p[..8]), word(&p[8..]))),
            );
        } else {
            out.extend(data.chunks_exact(NARROW).take(self.len as usize).map(|p| {
                let t = u32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
                (f64::from(t), word(&p[4..]))
            }));
        }
    }

    /// Heap bytes owned by this entry (name and points, segment runs), from capacities.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buf.len() + self.run_bytes()
    }

    /// Heap bytes of the out-of-line segment runs.
    pub(crate) fn run_bytes(&self) -> usize {
        self.older.as_ref().map_or(0, |o| {
            size_of::<Vec<(u32, u32)>>() + o.capacity() * size_of::<(u32, u32)>()
        })
    }

    /// Points per WAL segment, ascending by segment, every appended point counted (also the
    /// ones a later value for the same timestamp supersedes: the WAL must release those too).
    pub(crate) fn segments(&self) -> Vec<(u32, u32)> {
        let current = (self.seg, self.seg_count & COUNT_MASK);
        let mut runs: Vec<(u32, u32)> = match &self.older {
            None => return vec![current],
            Some(o) => o.to_vec(),
        };
        runs.push(current);
        runs.sort_unstable_by_key(|r| r.0);
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(runs.len());
        for (seg, n) in runs {
            match out.last_mut() {
                // A run split only because its count hit the maximum may not merge back.
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

    fn entry(points: &[(f64, f64)]) -> MetricEntry {
        let (mut e, mut bytes) = MetricEntry::new("a.b", 0, points[0].0, points[0].1, 0);
        for &(t, v) in &points[1..] {
            bytes += e.push(t, v, 0);
        }
        assert_eq!(bytes, e.heap_bytes());
        e
    }

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
        let (mut e, _) = MetricEntry::new("a", 0, 0.0, 0.0, 1);
        for seg in [1, 1, 2, 2, 2, 1, 3] {
            e.push(0.0, 0.0, seg);
        }
        assert_eq!(e.segments(), vec![(1, 4), (2, 3), (3, 1)]);
        let (e, _) = MetricEntry::new("a", 0, 0.0, 0.0, 7);
        assert_eq!(e.segments(), vec![(7, 1)]);
    }

    #[test]
    fn growth_is_one_and_a_half_in_narrow_points() {
        let points: Vec<(f64, f64)> = (0..10).map(|i| (1.7e9 + f64::from(i), 0.5)).collect();
        let e = entry(&points);
        assert!(!e.is_wide());
        assert_eq!(e.point_bytes(), 13 * NARROW);
        assert_eq!(e.heap_bytes(), 3 + 13 * NARROW);
        assert_eq!(e.points(), points);
        assert_eq!(e.name(), "a.b");
        assert_eq!(size_of::<MetricEntry>(), 48);
    }

    #[test]
    fn keys_that_are_not_whole_u32_seconds_widen_exactly() {
        for odd in [
            1.5,
            -1.0,
            f64::NAN,
            4294967296.0,
            4294967295.5,
            f64::INFINITY,
            1e300,
        ] {
            let points = [
                (1.0, 1.0),
                (2.0, 2.0),
                (3.0, 3.0),
                (4.0, 4.0),
                (odd, 5.0),
                (4294967295.0, 6.0),
            ];
            let e = entry(&points);
            assert!(e.is_wide());
            let got = e.points();
            assert_eq!(got.len(), points.len());
            for (g, p) in got.iter().zip(&points) {
                assert_eq!((g.0.to_bits(), g.1), (p.0.to_bits(), p.1), "{odd}");
            }
            // Room for 4 then 6 points, the 5th arriving wide.
            assert_eq!(e.point_bytes(), 6 * WIDE);
            assert_eq!(e.segments(), vec![(0, 6)]);
        }
        // Wide from the first point.
        let e = entry(&[(0.25, 1.0), (7.0, 2.0)]);
        assert_eq!(e.points(), vec![(0.25, 1.0), (7.0, 2.0)]);
        assert_eq!(e.point_bytes(), 4 * WIDE);
    }

    #[test]
    fn segment_counts_keep_the_width_flag_apart() {
        let (mut e, _) = MetricEntry::new("a", 0, 0.5, 0.0, 3);
        e.seg_count = WIDE_FLAG | (COUNT_MASK - 1);
        e.push(1.0, 0.0, 3);
        e.push(2.0, 0.0, 3);
        assert!(e.is_wide());
        // The run was split at the 31-bit count; the two halves add up again in u32.
        assert_eq!(e.segments(), vec![(3, COUNT_MASK + 1)]);
        assert_eq!(e.older.as_deref(), Some(&vec![(3, COUNT_MASK)]));
    }
}
