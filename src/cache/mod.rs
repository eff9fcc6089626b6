//! The in-memory cache between the receivers and whisper (carbon's `MetricCache`, spec
//! §2.6): metric name → points accepted but not yet written.
//!
//! Receivers insert points after the WAL has them; persister threads drain the cache one
//! metric at a time ([`Cache::pop_next`]) and write each to its whisper file; the render
//! path reads unflushed points with [`Cache::get`]. Points are visible the moment
//! `insert` returns.
//!
//! **Sharding.** The cache is `N` shards (a power of two), each a `parking_lot::Mutex`
//! over a hash table of the metrics whose name hashes there. The name is hashed once per
//! point with a per-process-seeded foldhash (names come from clients: a fixed hash would let
//! them aim every name at one bucket); bits 40.. pick the shard, while hashbrown uses the low
//! bits (bucket) and top 7 (tag) within it, so the three uses do not correlate. A batch
//! insert groups its points by shard and takes each shard's lock once.
//!
//! **Size and duplicates.** [`Cache::len`] counts *appended* points, duplicates included:
//! inserting the same (metric, timestamp) twice appends twice and the later value wins
//! when the metric is read or drained (carbon overwrites in place and counts unique
//! (metric, timestamp) entries). Deduplicating lazily keeps insert to one hash lookup and
//! a push, and a duplicate really does occupy memory until drained, so counting it is what
//! the bound is for. Timestamp keys are compared as floats, as carbon's dict keys are:
//! `1700000000.0` and `1700000000` are one key, `1700000000.5` another; drained points keep
//! the raw key, so whisper's own rule (the smallest fractional key of a second wins, since
//! the points go in ascending) still applies.
//!
//! **Bound and backpressure.** Carbon drops new points once `MAX_CACHE_SIZE` is reached and
//! pauses its TCP receivers. Here a point is never refused — it is already in the WAL when
//! it is inserted — so the bound is applied *before* a receiver reads more: it awaits
//! [`Cache::wait_for_room`], which passes while the cache is below `max_points` and, once
//! the cache has reached it, holds every receiver until the size is below the 95% low
//! watermark (carbon's hysteresis). The size can therefore pass `max_points` by at most the
//! chunks receivers had already read; those points are counted in
//! [`CacheStats::over_limit_points`].
//!
//! **Draining.** [`Strategy`] picks which metric a persister gets next; each popped metric
//! goes to exactly one caller. [`Drained`] carries deduplicated, ascending points and, per
//! WAL segment, how many appended points (superseded duplicates included: the WAL must
//! release those too) the metric held.
//!
//! **In flight.** A persister does not pop a metric outright: it *checks it out*
//! ([`Cache::checkout_next_part`]), which moves the metric's points, under the shard lock, to
//! the shard's in-flight area, and *checks it in* ([`Cache::written`]) once whisper holds them.
//! [`Cache::get`] answers with the in-flight points and the pending ones merged, the later
//! accepted value winning for a timestamp key (what reading the file after the write would
//! give), so a point stays readable from the moment `insert` returns until it can be read from
//! whisper — also while its write is slow, retried after a disk error, or held back by the
//! create limit. In-flight points still hold memory, so they stay in [`Cache::len`] (and in the
//! bound) until checked in. [`Cache::pop_next`], [`Cache::take`] and [`Cache::drain_all`]
//! remove outright, for callers that own the points from then on.

mod entry;
mod shard;

use parking_lot::Mutex;
use std::hash::BuildHasher;
use std::pin::pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use self::entry::{finish, MetricEntry};
use self::shard::{PushOutcome, Shard};

/// Which metric a persister drains next. Orders are per shard: a persister call visits the
/// shards round-robin (each call starts one shard further than the previous one), so
/// there is no exact global order — with names spread evenly by the hash, each shard's head
/// is close to the global one. Where carbon breaks ties by insertion order, these break them
/// by hash-table bucket, i.e. arbitrarily (keeping an insertion sequence would cost memory
/// per metric for an order nobody relies on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Carbon's `max`: each time the metric with the most points. Here the most *within
    /// the visited shard*; a scan of that shard, O(metrics / shards) per pop (carbon scans
    /// every metric).
    Max,
    /// Carbon's `sorted` (its default): a snapshot of (metric, count) drained by count
    /// descending; metrics created meanwhile wait for the next snapshot. Here the snapshot
    /// is per shard, taken when the shard's previous one is used up (or the shard's table
    /// resized, which invalidates it). O(log n) amortised per pop, plus 16 bytes per metric
    /// for the snapshot while a pass runs.
    #[default]
    Sorted,
    /// Carbon's `naive` takes a snapshot of the keys and pops the last inserted first. Here:
    /// a cursor sweeps the shard's hash-table buckets and pops the next occupied one, in
    /// amortised O(1) with no snapshot; a metric created behind the cursor waits for the
    /// next sweep. A metric is drained within one sweep unless a rehash (table growth, or
    /// tombstone reclaim — each needs about as many new metrics as the table has free slots)
    /// reshuffles the buckets mid-sweep, so it waits a few sweeps at worst: no starvation.
    /// The order is the table's, i.e. arbitrary. The cheapest.
    Naive,
}

impl FromStr for Strategy {
    type Err = String;

    /// Carbon's `CACHE_WRITE_STRATEGY` values that this cache implements.
    fn from_str(s: &str) -> Result<Strategy, String> {
        match s {
            "max" => Ok(Strategy::Max),
            "sorted" => Ok(Strategy::Sorted),
            "naive" => Ok(Strategy::Naive),
            other => Err(format!(
                "unsupported cache write strategy {other:?} (expected max, sorted or naive)"
            )),
        }
    }
}

/// A point as a receiver holds it, so a batch can be inserted without converting it: the same
/// view the write-ahead log encodes from.
pub use crate::wal::PointRef as CachePoint;

#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Rounded up to a power of two, clamped to 1..=65536.
    pub shards: usize,
    /// Points the cache aims to hold at most (carbon's `MAX_CACHE_SIZE`); 0 = unbounded.
    pub max_points: u64,
}

impl CacheConfig {
    pub const DEFAULT_SHARDS: usize = 64;
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            shards: Self::DEFAULT_SHARDS,
            max_points: 0,
        }
    }
}

/// One metric taken out of the cache for writing.
#[derive(Debug, Clone, PartialEq)]
pub struct Drained {
    pub name: String,
    /// `(timestamp key as received, value)`, ascending, one per key, the last inserted
    /// value for each key.
    pub points: Vec<(f64, f64)>,
    /// `(WAL segment, points)` ascending by segment; the counts add up to every point
    /// inserted for this metric, including duplicates that `points` no longer holds.
    pub segments: Vec<(u32, u32)>,
    /// The in-flight batch these points are (0: popped outright).
    ticket: u64,
}

impl Drained {
    /// Whether the points are checked out (and must be given back with [`Cache::written`]).
    pub fn is_in_flight(&self) -> bool {
        self.ticket != 0
    }

    /// The points as whisper's `update_many` takes them: Python's `int()` of the key
    /// (truncation toward zero; out-of-range keys saturate). Ascending, so among keys of
    /// one second whisper keeps the smallest, as carbon's writer does.
    pub fn whisper_points(&self) -> Vec<(i64, f64)> {
        self.points.iter().map(|&(t, v)| (t as i64, v)).collect()
    }

    /// Points inserted for this metric (the sum of `segments`).
    pub fn inserted(&self) -> u64 {
        self.segments.iter().map(|s| u64::from(s.1)).sum()
    }
}

/// A snapshot of the counters. Counters are cumulative since start; self-metrics that
/// want carbon's per-interval values subtract the previous snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheStats {
    /// Points held (appended points, duplicates included), in flight ones included.
    pub size: u64,
    /// Of `size`, the points checked out to writers and not yet written.
    pub inflight_points: u64,
    /// Checked-out batches not yet written (a metric can have several).
    pub inflight_batches: u64,
    /// Metrics held (carbon's `cache.queues`).
    pub metrics: u64,
    pub max_points: u64,
    /// Points inserted.
    pub inserts: u64,
    /// `get` calls (carbon's `cache.queries`).
    pub queries: u64,
    /// Metrics handed to persisters (or taken at shutdown).
    pub pops: u64,
    /// Points handed out after deduplication.
    pub drained_points: u64,
    /// Points dropped at drain because a later one had the same timestamp key.
    pub superseded_points: u64,
    /// Times the cache went from "has room" to "full" (receivers paused).
    pub backpressure_events: u64,
    /// `wait_for_room` calls that found the cache full.
    pub backpressure_waits: u64,
    /// Points inserted while the size was already at or over `max_points`.
    pub over_limit_points: u64,
    /// Total time spent full, the current stretch included.
    pub time_full: Duration,
    /// Full right now (receivers should not read).
    pub full: bool,
    /// Heap bytes from capacities: names, points, segment runs, tables, slabs.
    pub bytes: u64,
}

/// Heap bytes by use, as [`Cache::memory`] computes them (requested sizes: the allocator's
/// own per-allocation overhead comes on top).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheMemory {
    /// Point storage, capacity included (12 bytes a point while a metric's timestamps are
    /// whole seconds, 16 otherwise; see `entry.rs`).
    pub points: u64,
    /// Metric names, once each (in the same allocation as their points).
    pub names: u64,
    /// Out-of-line WAL segment runs (only for metrics whose points span segments).
    pub segment_runs: u64,
    /// Per-shard hash tables (49 bytes per bucket: the entry and its control byte) and
    /// sort snapshots.
    pub structures: u64,
    /// The shard array itself.
    pub shards: u64,
}

impl CacheMemory {
    pub fn total(&self) -> u64 {
        self.points + self.names + self.segment_runs + self.structures + self.shards
    }
}

/// Keeps counters that different threads hammer on different cache lines.
#[repr(align(128))]
#[derive(Default)]
struct Padded<T>(T);

#[derive(Default)]
struct InsertCounters {
    size: AtomicU64,
    inserts: AtomicU64,
    metrics: AtomicI64,
}

#[derive(Default)]
struct DrainCounters {
    cursor: AtomicUsize,
    inflight_points: AtomicU64,
    inflight_batches: AtomicU64,
    pops: AtomicU64,
    drained_points: AtomicU64,
    superseded_points: AtomicU64,
}

#[derive(Default)]
struct Flow {
    /// Set when the size reached `max_points`, cleared below the low watermark. All
    /// transitions happen under `since`, so the time accounting stays consistent.
    full: AtomicBool,
    since: Mutex<Option<Instant>>,
    room: Notify,
    events: AtomicU64,
    waits: AtomicU64,
    full_nanos: AtomicU64,
    over_limit: AtomicU64,
    queries: AtomicU64,
}

pub struct Cache {
    shards: Box<[Padded<Mutex<Shard>>]>,
    mask: usize,
    hasher: foldhash::quality::RandomState,
    max_points: u64,
    low_watermark: u64,
    ins: Padded<InsertCounters>,
    drain: Padded<DrainCounters>,
    flow: Padded<Flow>,
}

impl Cache {
    pub fn new(config: CacheConfig) -> Cache {
        let n = config.shards.clamp(1, 1 << 16).next_power_of_two();
        let max_points = config.max_points;
        Cache {
            shards: (0..n).map(|_| Padded::default()).collect(),
            mask: n - 1,
            hasher: foldhash::quality::RandomState::default(),
            max_points,
            // carbon: `size < 0.95 * MAX_CACHE_SIZE`.
            low_watermark: ((max_points as f64) * 0.95).ceil() as u64,
            ins: Padded::default(),
            drain: Padded::default(),
            flow: Padded::default(),
        }
    }

    /// An unbounded cache with the default shard count.
    pub fn unbounded() -> Cache {
        Cache::new(CacheConfig::default())
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn max_points(&self) -> u64 {
        self.max_points
    }

    /// The size below which a full cache lets receivers read again (95% of the maximum).
    pub fn low_watermark(&self) -> u64 {
        self.low_watermark
    }

    #[inline]
    fn hash(&self, name: &str) -> u64 {
        self.hasher.hash_one(name)
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        (hash >> 40) as usize & self.mask
    }

    /// Inserts one point. `ts` is the timestamp key as received (see the module doc);
    /// `segment` is the WAL segment holding the point.
    pub fn insert(&self, name: &str, ts: f64, value: f64, segment: u32) {
        let hash = self.hash(name);
        // Counted before the point is visible, so a drain can never take the size below 0.
        let size = self.ins.0.size.fetch_add(1, Ordering::SeqCst) + 1;
        let mut out = PushOutcome::default();
        self.shards[self.shard_index(hash)].0.lock().push(
            hash,
            name,
            ts + 0.0, // -0.0 → 0.0: one key, as in a Python dict
            value,
            segment,
            false,
            &mut out,
        );
        self.after_insert(size, 1, out);
    }

    /// Inserts the points of one read or frame, all from WAL segment `segment`, taking each
    /// shard's lock once.
    pub fn insert_batch<P: CachePoint>(&self, points: &[P], segment: u32) {
        self.insert_points(points, segment, None);
    }

    /// [`Cache::insert_batch`] for live points: adds to `announce` the indices of the points
    /// whose name is to be handed to the read side's index, at most one a name and only when
    /// the name's entry has not announced it since it was made (a new metric, an entry made by
    /// the log's replay, an entry made again after a drain). Every other point's name has
    /// been handed over already, so the index is not asked about it. The indices come in
    /// shard order, not the batch's.
    pub fn insert_batch_announcing<P: CachePoint>(
        &self,
        points: &[P],
        segment: u32,
        announce: &mut Vec<u32>,
    ) {
        self.insert_points(points, segment, Some(announce));
    }

    fn insert_points<P: CachePoint>(
        &self,
        points: &[P],
        segment: u32,
        mut announce: Option<&mut Vec<u32>>,
    ) {
        let n = points.len();
        match n {
            0 => return,
            1 if announce.is_none() => {
                let p = &points[0];
                return self.insert(p.name(), p.timestamp(), p.value(), segment);
            }
            _ => {}
        }
        let hashes: Vec<u64> = points.iter().map(|p| self.hash(p.name())).collect();
        // Counting sort of the point indices by shard.
        let mut ends = vec![0usize; self.shards.len()];
        for &h in &hashes {
            ends[self.shard_index(h)] += 1;
        }
        let mut start = 0;
        for e in ends.iter_mut() {
            let count = *e;
            *e = start;
            start += count;
        }
        let mut order = vec![0u32; n];
        for (i, &h) in hashes.iter().enumerate() {
            let s = self.shard_index(h);
            order[ends[s]] = i as u32;
            ends[s] += 1; // ends up as the end of shard s's range
        }
        let size = self.ins.0.size.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
        let mut out = PushOutcome::default();
        let mut begin = 0;
        for (s, &end) in ends.iter().enumerate() {
            if end == begin {
                continue;
            }
            let mut shard = self.shards[s].0.lock();
            for &i in &order[begin..end] {
                let (i, p) = (i as usize, &points[i as usize]);
                let fresh = shard.push(
                    hashes[i],
                    p.name(),
                    p.timestamp() + 0.0,
                    p.value(),
                    segment,
                    announce.is_some(),
                    &mut out,
                );
                if fresh {
                    if let Some(a) = announce.as_deref_mut() {
                        a.push(i as u32);
                    }
                }
            }
            drop(shard);
            begin = end;
        }
        self.after_insert(size, n as u64, out);
    }

    #[inline]
    fn after_insert(&self, size: u64, n: u64, out: PushOutcome) {
        let c = &self.ins.0;
        c.inserts.fetch_add(n, Ordering::Relaxed);
        if out.new_metrics != 0 {
            c.metrics
                .fetch_add(out.new_metrics as i64, Ordering::Relaxed);
        }
        if self.max_points != 0 && size >= self.max_points {
            // Points that arrived while the size was already at the bound before them.
            let over = (size - self.max_points).min(n);
            if over != 0 {
                self.flow.0.over_limit.fetch_add(over, Ordering::Relaxed);
            }
            self.engage();
        }
    }

    /// Points held (appended points; duplicates count until drained), pending and in flight.
    pub fn len(&self) -> u64 {
        self.ins.0.size.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Metrics held.
    pub fn metric_count(&self) -> u64 {
        self.ins.0.metrics.load(Ordering::Relaxed).max(0) as u64
    }

    /// Whether receivers should stop reading: the size reached `max_points`, and has not
    /// yet fallen below the low watermark since.
    pub fn is_full(&self) -> bool {
        self.max_points != 0
            && (self.flow.0.full.load(Ordering::Relaxed)
                || self.ins.0.size.load(Ordering::Relaxed) >= self.max_points)
    }

    /// Resolves at once while the cache has room; once it is full, resolves when the size
    /// has fallen below the low watermark. Receivers await it before reading the next
    /// chunk. Cancel-safe.
    pub async fn wait_for_room(&self) {
        if !self.is_full() {
            return;
        }
        let flow = &self.flow.0;
        flow.waits.fetch_add(1, Ordering::Relaxed);
        loop {
            // Registered before the checks, so a release between check and await is seen.
            let mut notified = pin!(flow.room.notified());
            notified.as_mut().enable();
            if !flow.full.load(Ordering::SeqCst) {
                if self.ins.0.size.load(Ordering::SeqCst) < self.max_points {
                    return;
                }
                self.engage();
                continue;
            }
            if self.ins.0.size.load(Ordering::SeqCst) < self.low_watermark {
                self.release();
                continue;
            }
            notified.await;
        }
    }

    fn engage(&self) {
        let flow = &self.flow.0;
        if flow.full.load(Ordering::Relaxed) {
            return;
        }
        let mut since = flow.since.lock();
        if flow.full.load(Ordering::SeqCst)
            || self.ins.0.size.load(Ordering::SeqCst) < self.max_points
        {
            return;
        }
        flow.full.store(true, Ordering::SeqCst);
        *since = Some(Instant::now());
        flow.events.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(size = self.len(), "cache full: receivers paused");
    }

    fn release(&self) {
        let flow = &self.flow.0;
        {
            let mut since = flow.since.lock();
            if !flow.full.load(Ordering::SeqCst)
                || self.ins.0.size.load(Ordering::SeqCst) >= self.low_watermark
            {
                return;
            }
            flow.full.store(false, Ordering::SeqCst);
            if let Some(t) = since.take() {
                let ns = t.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                flow.full_nanos.fetch_add(ns, Ordering::Relaxed);
            }
        }
        tracing::debug!(
            size = self.len(),
            "cache below watermark: receivers resumed"
        );
        flow.room.notify_waiters();
    }

    /// The metric's points not yet readable from whisper — pending and in flight: ascending,
    /// one per timestamp key, the last accepted value winning. Empty when the cache holds
    /// nothing for it. Does not remove anything.
    pub fn get(&self, name: &str) -> Vec<(f64, f64)> {
        self.flow.0.queries.fetch_add(1, Ordering::Relaxed);
        let hash = self.hash(name);
        let mut points = Vec::new();
        {
            let shard = self.shards[self.shard_index(hash)].0.lock();
            // In-flight batches were accepted before anything still pending.
            shard.extend_in_flight(hash, name, &mut points);
            if let Some(e) = shard.get(hash, name) {
                points.reserve_exact(e.len());
                e.extend_points(&mut points);
            }
        }
        finish(&mut points);
        points
    }

    /// Whether [`Cache::get`] has points for `name`.
    pub fn contains(&self, name: &str) -> bool {
        let hash = self.hash(name);
        let shard = self.shards[self.shard_index(hash)].0.lock();
        shard.get(hash, name).is_some() || shard.in_flight(hash, name)
    }

    /// Names of the metrics pending right now, not those only in flight (each shard's lock is
    /// taken in turn, so this is not an atomic snapshot of the whole cache).
    pub fn names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.metric_count() as usize);
        self.for_each_name(|n| out.push(n.to_owned()));
        out
    }

    /// Calls `f` with each held name, without copying; `f` runs under a shard lock, so it
    /// must be quick and must not call back into the cache.
    pub fn for_each_name(&self, mut f: impl FnMut(&str)) {
        for shard in self.shards.iter() {
            for e in shard.0.lock().iter() {
                f(e.name());
            }
        }
    }

    /// Takes the next metric to write, chosen by `strategy`; `None` when the cache is
    /// empty. Safe to call from several persister threads: each metric goes to one caller.
    pub fn pop_next(&self, strategy: Strategy) -> Option<Drained> {
        self.next_part(strategy, 0, 1, false)
    }

    /// [`Cache::pop_next`] for one of `parts` persisters that share the work: part `part`
    /// looks first at its own shards (those whose index is `part` modulo `parts`), then at
    /// the others. While every persister keeps up, a metric is therefore always written by
    /// the same one, which lets each keep its own files open and keeps two persisters from
    /// writing one file at once; a persister held up (a failing disk) leaves its shards to
    /// the others instead of stalling them.
    pub fn pop_next_part(&self, strategy: Strategy, part: usize, parts: usize) -> Option<Drained> {
        self.next_part(strategy, part, parts, false)
    }

    /// [`Cache::pop_next_part`] for a writer: the metric's points stay readable, in flight,
    /// until the writer hands the result to [`Cache::written`].
    pub fn checkout_next_part(
        &self,
        strategy: Strategy,
        part: usize,
        parts: usize,
    ) -> Option<Drained> {
        self.next_part(strategy, part, parts, true)
    }

    /// Checks in a checked-out metric whose points whisper now holds (or that were dropped):
    /// they stop being in the cache. Does nothing for points that were popped outright or
    /// already checked in.
    pub fn written(&self, drained: &Drained) {
        if !drained.is_in_flight() {
            return;
        }
        let hash = self.hash(&drained.name);
        let removed = self.shards[self.shard_index(hash)].0.lock().check_in(
            hash,
            &drained.name,
            drained.ticket,
        );
        let Some(e) = removed else { return };
        let held = e.len() as u64;
        drop(e);
        let d = &self.drain.0;
        d.inflight_points.fetch_sub(held, Ordering::Relaxed);
        d.inflight_batches.fetch_sub(1, Ordering::Relaxed);
        self.shrink(held);
    }

    fn next_part(
        &self,
        strategy: Strategy,
        part: usize,
        parts: usize,
        keep: bool,
    ) -> Option<Drained> {
        let n = self.shards.len();
        if self.ins.0.size.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let first = self.drain.0.cursor.fetch_add(1, Ordering::Relaxed);
        if parts <= 1 || parts > n {
            for k in 0..n {
                let s = first.wrapping_add(k) & self.mask;
                if let Some(d) = self.take_from(s, keep, |sh| sh.pop(strategy, keep)) {
                    return Some(d);
                }
            }
            return None;
        }
        let part = part % parts;
        let own = (n - part).div_ceil(parts);
        for k in 0..own {
            let s = part + (first.wrapping_add(k) % own) * parts;
            if let Some(d) = self.take_from(s, keep, |sh| sh.pop(strategy, keep)) {
                return Some(d);
            }
        }
        for k in 0..n {
            let s = first.wrapping_add(k) & self.mask;
            if s % parts == part {
                continue;
            }
            if let Some(d) = self.take_from(s, keep, |sh| sh.pop(strategy, keep)) {
                return Some(d);
            }
        }
        None
    }

    /// Removes the entry `pick` chooses from shard `s`, outright or (`keep`) into the shard's
    /// in-flight area within the same lock hold, so that readers never miss its points.
    fn take_from(
        &self,
        s: usize,
        keep: bool,
        pick: impl FnOnce(&mut Shard) -> Option<MetricEntry>,
    ) -> Option<Drained> {
        let mut shard = self.shards[s].0.lock();
        let e = pick(&mut shard)?;
        if !keep {
            drop(shard);
            return Some(self.hand_out(e));
        }
        let held = e.len() as u64;
        let (name, points, segments) = (e.name().to_owned(), e.points(), e.segments());
        let ticket = shard.check_out(e);
        drop(shard);
        let d = &self.drain.0;
        d.inflight_points.fetch_add(held, Ordering::Relaxed);
        d.inflight_batches.fetch_add(1, Ordering::Relaxed);
        self.ins.0.metrics.fetch_sub(1, Ordering::Relaxed);
        Some(self.finish_out(name, points, segments, held, ticket))
    }

    /// Takes one metric by name (carbon's `pop(metric)`).
    pub fn take(&self, name: &str) -> Option<Drained> {
        let hash = self.hash(name);
        let e = self.shards[self.shard_index(hash)]
            .0
            .lock()
            .take(hash, name)?;
        Some(self.hand_out(e))
    }

    /// Takes everything, for shutdown.
    pub fn drain_all(&self) -> Vec<Drained> {
        let mut out = Vec::with_capacity(self.metric_count() as usize);
        for shard in self.shards.iter() {
            let entries = shard.0.lock().take_all();
            out.extend(entries.into_iter().map(|e| self.hand_out(e)));
        }
        out
    }

    /// Accounts for an entry removed outright and turns it into what a persister writes.
    /// The sort and dedupe run here, outside the shard lock.
    fn hand_out(&self, e: MetricEntry) -> Drained {
        let held = e.len() as u64;
        self.ins.0.metrics.fetch_sub(1, Ordering::Relaxed);
        self.shrink(held);
        let segments = e.segments();
        let points = e.points();
        let name = e.name().to_owned();
        drop(e);
        self.finish_out(name, points, segments, held, 0)
    }

    /// Takes `held` points off the size, releasing receivers below the low watermark.
    fn shrink(&self, held: u64) {
        let size = self.ins.0.size.fetch_sub(held, Ordering::SeqCst) - held;
        if self.flow.0.full.load(Ordering::SeqCst) && size < self.low_watermark {
            self.release();
        }
    }

    fn finish_out(
        &self,
        name: String,
        mut points: Vec<entry::Point>,
        segments: Vec<(u32, u32)>,
        held: u64,
        ticket: u64,
    ) -> Drained {
        finish(&mut points);
        let d = &self.drain.0;
        d.pops.fetch_add(1, Ordering::Relaxed);
        d.drained_points
            .fetch_add(points.len() as u64, Ordering::Relaxed);
        let superseded = held - points.len() as u64;
        if superseded != 0 {
            d.superseded_points.fetch_add(superseded, Ordering::Relaxed);
        }
        Drained {
            name,
            points,
            segments,
            ticket,
        }
    }

    /// Heap bytes held, from capacities (takes every shard's lock in turn).
    pub fn heap_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| {
                let s = s.0.lock();
                (s.entry_bytes + s.structure_bytes()) as u64
            })
            .sum::<u64>()
            + (self.shards.len() * std::mem::size_of::<Padded<Mutex<Shard>>>()) as u64
    }

    /// Where the heap bytes are, from capacities. Walks every entry (under each shard's
    /// lock in turn): a diagnostic, not for a hot path.
    pub fn memory(&self) -> CacheMemory {
        let mut m = CacheMemory {
            shards: (self.shards.len() * std::mem::size_of::<Padded<Mutex<Shard>>>()) as u64,
            ..CacheMemory::default()
        };
        for shard in self.shards.iter() {
            let s = shard.0.lock();
            m.structures += s.structure_bytes() as u64;
            for e in s.iter().chain(s.iter_in_flight().map(|f| &f.entry)) {
                m.points += e.point_bytes() as u64;
                m.names += e.name_bytes().len() as u64;
                m.segment_runs += e.run_bytes() as u64;
            }
        }
        m
    }

    pub fn stats(&self) -> CacheStats {
        let flow = &self.flow.0;
        let d = &self.drain.0;
        let mut time_full = Duration::from_nanos(flow.full_nanos.load(Ordering::Relaxed));
        let full = {
            let since = flow.since.lock();
            if let Some(t) = *since {
                time_full += t.elapsed();
            }
            flow.full.load(Ordering::Relaxed)
        };
        CacheStats {
            size: self.len(),
            inflight_points: d.inflight_points.load(Ordering::Relaxed),
            inflight_batches: d.inflight_batches.load(Ordering::Relaxed),
            metrics: self.metric_count(),
            max_points: self.max_points,
            inserts: self.ins.0.inserts.load(Ordering::Relaxed),
            queries: flow.queries.load(Ordering::Relaxed),
            pops: d.pops.load(Ordering::Relaxed),
            drained_points: d.drained_points.load(Ordering::Relaxed),
            superseded_points: d.superseded_points.load(Ordering::Relaxed),
            backpressure_events: flow.events.load(Ordering::Relaxed),
            backpressure_waits: flow.waits.load(Ordering::Relaxed),
            over_limit_points: flow.over_limit.load(Ordering::Relaxed),
            time_full,
            full,
            bytes: self.heap_bytes(),
        }
    }

    /// Metrics per shard, to check the spread of the hash.
    pub fn shard_metric_counts(&self) -> Vec<usize> {
        self.shards.iter().map(|s| s.0.lock().len()).collect()
    }
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("shards", &self.shards.len())
            .field("max_points", &self.max_points)
            .field("size", &self.len())
            .field("metrics", &self.metric_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(c: &Cache) {
        for s in c.shards.iter() {
            s.0.lock().check_invariants();
        }
    }

    #[test]
    fn shard_index_uses_middle_bits() {
        let c = Cache::new(CacheConfig {
            shards: 64,
            max_points: 0,
        });
        assert_eq!(c.shard_index(0x0000_3f00_0000_0000), 63);
        assert_eq!(c.shard_index(0xffff_c0ff_ffff_ffff), 0);
    }

    #[test]
    fn shards_rounded_to_power_of_two() {
        for (asked, got) in [
            (0, 1),
            (1, 1),
            (3, 4),
            (64, 64),
            (100, 128),
            (1 << 20, 1 << 16),
        ] {
            let c = Cache::new(CacheConfig {
                shards: asked,
                max_points: 0,
            });
            assert_eq!(c.shard_count(), got);
        }
    }

    #[test]
    fn invariants_hold_through_mixed_removals() {
        let c = Cache::new(CacheConfig {
            shards: 2,
            max_points: 0,
        });
        for round in 0..5 {
            for i in 0..300 {
                for t in 0..(i % 7 + 1) {
                    c.insert(&format!("m.{i}"), (t + round) as f64, 1.0, round as u32);
                }
            }
            check(&c);
            for k in 0..250 {
                let s = [Strategy::Naive, Strategy::Max, Strategy::Sorted][k % 3];
                assert!(c.pop_next(s).is_some());
                if k % 10 == 0 {
                    let _ = c.take(&format!("m.{k}"));
                }
                check(&c);
            }
        }
        let rest = c.drain_all();
        assert!(!rest.is_empty());
        check(&c);
        assert_eq!(c.len(), 0);
        assert_eq!(c.metric_count(), 0);
        assert_eq!(c.heap_bytes(), c.heap_bytes());
    }

    #[test]
    fn parts_take_their_own_shards_first_then_steal() {
        let c = Cache::new(CacheConfig {
            shards: 8,
            max_points: 0,
        });
        for i in 0..400 {
            c.insert(&format!("m.{i}"), 1.0, 1.0, 0);
        }
        let shard_of = |name: &str| c.shard_index(c.hash(name));
        // Part 1 of 3 owns shards 1, 4 and 7: it drains them all before anything else.
        let own: usize = [1, 4, 7].iter().map(|&s| c.shards[s].0.lock().len()).sum();
        for _ in 0..own {
            let d = c.pop_next_part(Strategy::Naive, 1, 3).expect("own metric");
            assert_eq!(shard_of(&d.name) % 3, 1, "{}", d.name);
        }
        // Then it takes the others' metrics rather than idling.
        let d = c
            .pop_next_part(Strategy::Sorted, 1, 3)
            .expect("stolen metric");
        assert_ne!(shard_of(&d.name) % 3, 1);
        let mut rest = 1;
        while c.pop_next_part(Strategy::Max, 2, 3).is_some() {
            rest += 1;
        }
        assert_eq!(own + rest, 400);
        assert!(c.is_empty());
        // More parts than shards: every part takes from everywhere.
        c.insert("x", 1.0, 1.0, 0);
        assert!(c.pop_next_part(Strategy::Naive, 20, 30).is_some());
    }

    #[test]
    fn checked_out_points_stay_readable_until_written() {
        let c = Cache::new(CacheConfig {
            shards: 2,
            max_points: 10,
        });
        for t in 0..4 {
            c.insert("m", f64::from(t), f64::from(t), 1);
        }
        c.insert("m", 1.0, 10.0, 1); // a duplicate: the later value wins
        let d = c.checkout_next_part(Strategy::Sorted, 0, 1).expect("held");
        assert!(d.is_in_flight());
        assert_eq!(
            d.points,
            vec![(0.0, 0.0), (1.0, 10.0), (2.0, 2.0), (3.0, 3.0)]
        );
        // Nothing pending, but every point still readable and still held.
        assert_eq!(c.metric_count(), 0);
        assert!(c.contains("m"));
        assert_eq!(c.get("m"), d.points);
        assert_eq!(c.len(), 5);
        // Newer points for the same key win over the in-flight ones.
        c.insert("m", 3.0, 30.0, 2);
        c.insert("m", 4.0, 4.0, 2);
        let want = vec![(0.0, 0.0), (1.0, 10.0), (2.0, 2.0), (3.0, 30.0), (4.0, 4.0)];
        assert_eq!(c.get("m"), want);
        // The newer points wait for the batch in flight, whatever the strategy: one metric's
        // writes never overlap.
        for strategy in [Strategy::Naive, Strategy::Max, Strategy::Sorted] {
            assert!(c.checkout_next_part(strategy, 0, 1).is_none());
            assert!(c.checkout_next_part(strategy, 1, 2).is_none());
        }
        let s = c.stats();
        assert_eq!((s.size, s.inflight_points, s.inflight_batches), (7, 5, 1));
        check(&c);
        // In-flight points count toward the bound.
        assert!(!c.is_full());
        for t in 10..13 {
            c.insert("other", f64::from(t), 0.0, 2);
        }
        assert!(c.is_full());
        let o = c.checkout_next_part(Strategy::Max, 0, 1).expect("other");
        assert_eq!(o.name, "other");
        // Checking in the first batch leaves the pending points; the bound counts them.
        c.written(&d);
        c.written(&d); // twice: nothing more
        assert_eq!(c.len(), 5);
        assert_eq!(c.get("m"), vec![(3.0, 30.0), (4.0, 4.0)]);
        assert!(!c.is_full(), "below the low watermark: released");
        let d2 = c
            .checkout_next_part(Strategy::Naive, 1, 2)
            .expect("m again");
        assert_eq!(d2.points, vec![(3.0, 30.0), (4.0, 4.0)]);
        assert_eq!(c.get("m"), d2.points);
        c.written(&d2);
        assert!(c.get("m").is_empty() && !c.contains("m"));
        // Popped outright: nothing to check in.
        c.insert("m", 5.0, 5.0, 3);
        let rest = c.take("m").expect("pending");
        assert!(!rest.is_in_flight());
        c.written(&rest);
        assert_eq!(c.len(), 3);
        check(&c);
        c.written(&o);
        assert!(c.is_empty());
        assert!(!c.contains("other"));
        let s = c.stats();
        assert_eq!((s.inflight_points, s.inflight_batches), (0, 0));
        check(&c);
        assert_eq!(c.memory().points, 0);
    }

    #[test]
    fn many_metrics_in_flight_are_each_readable() {
        let c = Cache::new(CacheConfig {
            shards: 4,
            max_points: 0,
        });
        for i in 0..500 {
            c.insert(&format!("m.{i}"), 1.0, f64::from(i), 0);
        }
        let out: Vec<Drained> =
            std::iter::from_fn(|| c.checkout_next_part(Strategy::Sorted, 0, 2)).collect();
        assert_eq!(out.len(), 500);
        assert_eq!(c.metric_count(), 0);
        assert_eq!(c.len(), 500);
        for i in 0..500 {
            assert_eq!(c.get(&format!("m.{i}")), vec![(1.0, f64::from(i))]);
        }
        check(&c);
        for d in &out {
            c.written(d);
        }
        assert!(c.is_empty());
        check(&c);
    }

    #[test]
    fn names_spread_over_shards() {
        let c = Cache::new(CacheConfig {
            shards: 64,
            max_points: 0,
        });
        for i in 0..64_000 {
            c.insert(&format!("servers.host{i}.cpu.user"), 1.0, 1.0, 0);
        }
        let counts = c.shard_metric_counts();
        let (min, max) = (counts.iter().min().copied(), counts.iter().max().copied());
        // Expect 1000 ± a few sigma (σ ≈ 31).
        assert!(
            min.unwrap_or(0) > 850 && max.unwrap_or(0) < 1150,
            "{counts:?}"
        );
    }
}
