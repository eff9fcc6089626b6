//! Behaviour of `carbide::cache` as receivers, persisters and the render path see it:
//! carbon's last-value-wins and ordering, the bound with its backpressure, the drain
//! strategies' orders, exact accounting under concurrent inserts and drains, points checked
//! out to writers staying readable until written, and the memory a cached point costs
//! (measured with a counting allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use carbide::cache::{Cache, CacheConfig, Drained, Strategy};

/// Counts the bytes live per thread, so a measurement is not disturbed by tests running
/// on other threads.
struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|c| c.set(c.get() + l.size() as isize));
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get() - l.size() as isize));
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let _ = LIVE.try_with(|c| c.set(c.get() + new as isize - l.size() as isize));
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.with(|c| c.get())
}

fn cache(shards: usize, max_points: u64) -> Cache {
    Cache::new(CacheConfig { shards, max_points })
}

#[test]
fn last_insert_wins_sorted_on_get_and_pop() {
    let c = Cache::unbounded();
    c.insert("a.b", 30.0, 1.0, 1);
    c.insert("a.b", 10.0, 2.0, 1);
    c.insert("a.b", 30.0, 3.0, 2);
    c.insert("a.b", 20.0, 4.0, 2);
    c.insert("a.b", 10.0, 5.0, 2);
    let want = vec![(10.0, 5.0), (20.0, 4.0), (30.0, 3.0)];
    assert_eq!(c.get("a.b"), want);
    // get() removes nothing: same answer, same size.
    assert_eq!(c.get("a.b"), want);
    assert_eq!(c.len(), 5);
    assert!(c.contains("a.b"));
    assert!(!c.contains("a.c"));
    assert_eq!(c.get("a.c"), vec![]);

    let d = c.pop_next(Strategy::Naive).expect("one metric");
    assert_eq!(d.name, "a.b");
    assert_eq!(d.points, want);
    // Superseded points are still reported to their segments.
    assert_eq!(d.segments, vec![(1, 2), (2, 3)]);
    assert_eq!(d.inserted(), 5);
    assert_eq!(c.len(), 0);
    assert_eq!(c.metric_count(), 0);
    assert!(c.pop_next(Strategy::Naive).is_none());
    let s = c.stats();
    assert_eq!((s.inserts, s.pops, s.drained_points), (5, 1, 3));
    assert_eq!((s.superseded_points, s.queries), (2, 3));
}

#[test]
fn timestamp_keys_are_python_float_keys() {
    let c = Cache::unbounded();
    c.insert("m", 1700000000.0, 1.0, 0);
    c.insert("m", 1700000000.5, 2.0, 0);
    c.insert("m", 1700000000.0, 3.0, 0); // same key as the first: replaces it
    c.insert("m", -0.0, 4.0, 0);
    c.insert("m", 0.0, 5.0, 0); // 0.0 == -0.0
    let d = c.take("m").expect("held");
    assert_eq!(
        d.points,
        vec![(0.0, 5.0), (1700000000.0, 3.0), (1700000000.5, 2.0)]
    );
    // int() truncation; whisper keeps the first of a second, i.e. the smallest key.
    assert_eq!(
        d.whisper_points(),
        vec![(0, 5.0), (1700000000, 3.0), (1700000000, 2.0)]
    );
}

#[test]
fn batch_insert_matches_single_inserts() {
    let pts: Vec<(String, f64, f64)> = (0..5000)
        .map(|i| (format!("m.{}", i % 97), (i / 97) as f64, i as f64))
        .collect();
    let a = Cache::unbounded();
    a.insert_batch(&pts, 7);
    let b = Cache::unbounded();
    for p in &pts {
        b.insert(&p.0, p.1, p.2, 7);
    }
    assert_eq!(a.len(), 5000);
    assert_eq!(a.metric_count(), 97);
    let mut names = a.names();
    names.sort();
    let mut names_b = b.names();
    names_b.sort();
    assert_eq!(names, names_b);
    for n in &names {
        assert_eq!(a.get(n), b.get(n));
    }
    // The WAL's own point type goes in unchanged.
    let wal = vec![
        carbide::wal::Point {
            name: "w".into(),
            timestamp: 1.0,
            value: 2.0,
        },
        carbide::wal::Point {
            name: "w".into(),
            timestamp: 1.0,
            value: 3.0,
        },
    ];
    a.insert_batch(&wal, 9);
    assert_eq!(a.get("w"), vec![(1.0, 3.0)]);
    let d = a.take("w").expect("held");
    assert_eq!(d.segments, vec![(9, 2)]);
    a.insert_batch::<(&str, f64, f64)>(&[], 0);
    assert_eq!(a.len(), 5000);
}

/// Live inserts name each metric to the index once per cache entry: the first point of a new
/// metric, the first live point into an entry the log's replay made, the first point after a
/// drain; never a point whose entry has announced its name already.
#[test]
fn live_inserts_announce_each_name_once_per_entry() {
    fn announced(c: &Cache, pts: &[(&str, f64, f64)]) -> Vec<String> {
        let mut idx = Vec::new();
        c.insert_batch_announcing(pts, 1, &mut idx);
        idx.sort_unstable();
        idx.iter().map(|&i| pts[i as usize].0.to_string()).collect()
    }
    let c = cache(4, 0);
    let first = [
        ("a", 1.0, 1.0),
        ("b", 1.0, 1.0),
        ("a", 2.0, 2.0),
        ("c", 1.0, 1.0),
    ];
    assert_eq!(announced(&c, &first), ["a", "b", "c"]);
    assert!(announced(&c, &first).is_empty());
    // An entry made by replay (plain insert_batch) announces on its first live point.
    c.insert_batch(&[("r", 1.0, 1.0)], 0);
    assert_eq!(announced(&c, &[("r", 2.0, 2.0), ("a", 3.0, 3.0)]), ["r"]);
    assert!(announced(&c, &[("r", 3.0, 3.0)]).is_empty());
    // A drained metric's next point makes a new entry, which announces again.
    assert!(c.take("b").is_some());
    assert_eq!(announced(&c, &[("b", 5.0, 5.0), ("c", 5.0, 5.0)]), ["b"]);
    // One point alone goes the same way.
    assert_eq!(announced(&c, &[("d", 1.0, 1.0)]), ["d"]);
    assert!(announced(&c, &[("d", 2.0, 2.0)]).is_empty());
    // The points all landed, announced or not.
    assert_eq!(c.get("a"), vec![(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]);
    assert_eq!(c.get("r"), vec![(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]);
}

/// One shard, so the per-shard orders are the global ones. Counts are distinct: ties are
/// broken by hash-table bucket, which depends on the per-process hash seed.
fn ordered(strategy: Strategy) -> Vec<String> {
    let c = cache(1, 0);
    for (name, n) in [("a", 3), ("b", 5), ("c", 1), ("d", 4)] {
        for t in 0..n {
            c.insert(name, t as f64, 0.0, 0);
        }
    }
    let mut out = vec![c.pop_next(strategy).expect("first").name];
    // Inserted after the drain began.
    for t in 0..10 {
        c.insert("e", t as f64, 0.0, 0);
    }
    while let Some(d) = c.pop_next(strategy) {
        out.push(d.name);
    }
    out
}

#[test]
fn strategies_order_as_documented() {
    // max: most points each time, new metrics included at once.
    assert_eq!(ordered(Strategy::Max), ["b", "e", "d", "a", "c"]);
    // sorted: count descending from a snapshot; e waits for the next one.
    assert_eq!(ordered(Strategy::Sorted), ["b", "d", "a", "c", "e"]);
    // naive: table order; every metric exactly once.
    let mut naive = ordered(Strategy::Naive);
    naive.sort();
    assert_eq!(naive, ["a", "b", "c", "d", "e"]);
    assert_eq!("sorted".parse::<Strategy>(), Ok(Strategy::Sorted));
    assert_eq!("max".parse::<Strategy>(), Ok(Strategy::Max));
    assert_eq!("naive".parse::<Strategy>(), Ok(Strategy::Naive));
    assert!("timesorted".parse::<Strategy>().is_err());
}

/// Naive's sweep does not starve old metrics while new ones keep arriving as fast as they
/// are drained. A sweep visits every bucket once, so without a rehash an old metric is
/// drained within one sweep; a rehash (growth, or reclaiming tombstones in place) reshuffles
/// the buckets mid-sweep, but needs about as many new-metric inserts as the table has free
/// slots, so it cannot recur within a sweep more than a couple of times.
#[test]
fn naive_does_not_starve() {
    let c = cache(1, 0);
    for i in 0..2000 {
        c.insert(&format!("old.{i}"), 1.0, 0.0, 0);
    }
    // 2000 entries need 4096 buckets, growing to 8192 when tombstones fill the first.
    let (mut old_left, mut pops, mut fresh) = (2000, 0, 0);
    while old_left > 0 {
        c.insert(&format!("new.{fresh}"), 1.0, 0.0, 0);
        fresh += 1;
        let d = c.pop_next(Strategy::Naive).expect("not empty");
        pops += 1;
        if d.name.starts_with("old.") {
            old_left -= 1;
        }
        assert!(
            pops <= 4096,
            "old metrics starved: {old_left} left after {pops} pops"
        );
    }
}

#[test]
fn every_strategy_drains_everything_across_shards() {
    for strategy in [Strategy::Max, Strategy::Sorted, Strategy::Naive] {
        let c = cache(8, 0);
        for i in 0..1000 {
            for t in 0..(i % 5 + 1) {
                c.insert(&format!("m.{i}"), t as f64, 0.0, 0);
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut points = 0;
        while let Some(d) = c.pop_next(strategy) {
            points += d.points.len();
            assert!(seen.insert(d.name));
        }
        assert_eq!((seen.len(), points), (1000, 3000));
        assert_eq!((c.len(), c.metric_count()), (0, 0));
    }
}

#[test]
fn drain_all_takes_everything() {
    let c = Cache::unbounded();
    for i in 0..100 {
        c.insert(&format!("m.{i}"), 1.0, i as f64, 3);
    }
    let all = c.drain_all();
    assert_eq!(all.len(), 100);
    assert!(all
        .iter()
        .all(|d| d.points.len() == 1 && d.segments == [(3, 1)]));
    assert!(c.is_empty());
    assert!(c.names().is_empty());
}

#[tokio::test]
async fn wait_for_room_blocks_when_full_and_wakes_below_watermark() {
    let c = Arc::new(cache(4, 100));
    assert_eq!(c.low_watermark(), 95);
    c.wait_for_room().await; // empty: passes at once
    for i in 0..99 {
        c.insert(&format!("m.{i}"), 1.0, 1.0, 0);
    }
    assert!(!c.is_full());
    c.wait_for_room().await;
    // A point already read is never refused, even over the bound.
    for t in 0..3 {
        c.insert("big", t as f64, 1.0, 0);
    }
    assert_eq!(c.len(), 102);
    assert!(c.is_full());
    let s = c.stats();
    assert_eq!((s.backpressure_events, s.over_limit_points), (1, 2));
    assert!(s.full);

    let woke = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (c, woke) = (c.clone(), woke.clone());
        tokio::spawn(async move {
            c.wait_for_room().await;
            woke.store(true, Ordering::SeqCst);
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!woke.load(Ordering::SeqCst));

    // Below the bound but not below the watermark: still paused (hysteresis).
    let big = c.take("big").expect("held");
    assert_eq!(big.points.len(), 3);
    assert_eq!(c.len(), 99);
    assert!(c.is_full());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!woke.load(Ordering::SeqCst));

    // Drain to 94 < 95: the waiter wakes.
    for _ in 0..5 {
        c.pop_next(Strategy::Naive).expect("held");
    }
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .expect("task");
    assert!(woke.load(Ordering::SeqCst));
    assert!(!c.is_full());
    c.wait_for_room().await;
    let s = c.stats();
    assert!(!s.full);
    assert_eq!(s.backpressure_events, 1);
    assert_eq!(s.backpressure_waits, 1);
    assert!(
        s.time_full >= Duration::from_millis(100),
        "{:?}",
        s.time_full
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_all_wake_and_unbounded_never_waits() {
    let c = Arc::new(cache(4, 10));
    for i in 0..10 {
        c.insert(&format!("m.{i}"), 1.0, 1.0, 0);
    }
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.wait_for_room().await })
        })
        .collect();
    let drainer = {
        let c = c.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            while c.pop_next(Strategy::Sorted).is_some() {}
        })
    };
    for w in waiters {
        tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("woken")
            .expect("task");
    }
    drainer.join().expect("drainer");

    let u = Cache::unbounded();
    for t in 0..10_000 {
        u.insert("m", t as f64, 0.0, 0);
    }
    assert!(!u.is_full());
    u.wait_for_room().await;
    assert_eq!(u.stats().backpressure_events, 0);
}

/// 4 inserting threads (single and batch inserts, several segments, some duplicate keys)
/// and 2 draining threads: every inserted point is handed out exactly once, per metric
/// and per segment.
#[test]
fn concurrent_inserts_and_two_drainers_lose_and_duplicate_nothing() {
    const WRITERS: usize = 4;
    const METRICS: usize = 500;
    const ROUNDS: usize = 200;
    let c = Arc::new(cache(16, 0));
    let done = Arc::new(AtomicBool::new(false));

    let drainers: Vec<_> = [Strategy::Naive, Strategy::Max]
        .into_iter()
        .enumerate()
        .map(|(k, strategy)| {
            let (c, done) = (c.clone(), done.clone());
            std::thread::spawn(move || {
                let strategy = if k == 0 { strategy } else { Strategy::Sorted };
                let mut got: Vec<Drained> = Vec::new();
                loop {
                    match c.pop_next(strategy) {
                        Some(d) => got.push(d),
                        None if done.load(Ordering::SeqCst) => match c.pop_next(strategy) {
                            Some(d) => got.push(d),
                            None => break,
                        },
                        None => std::thread::yield_now(),
                    }
                }
                got
            })
        })
        .collect();

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let c = c.clone();
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    let segment = (r / 50) as u32;
                    // Timestamps unique per (writer, round); values identify the point.
                    let ts = (r * WRITERS + w) as f64;
                    if r % 2 == 0 {
                        let batch: Vec<(String, f64, f64)> = (0..METRICS)
                            .map(|m| (format!("m.{m}"), ts, (w * 1_000_000 + r) as f64))
                            .collect();
                        c.insert_batch(&batch, segment);
                    } else {
                        for m in 0..METRICS {
                            c.insert(&format!("m.{m}"), ts, (w * 1_000_000 + r) as f64, segment);
                        }
                    }
                    if r % 25 == 0 {
                        // A duplicate key: inserted twice, the later value must be the one
                        // handed out unless the two land in different drains.
                        c.insert("dup", ts, -1.0, segment);
                        c.insert("dup", ts, ts, segment);
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    done.store(true, Ordering::SeqCst);
    let mut all: Vec<Drained> = Vec::new();
    for d in drainers {
        all.extend(d.join().expect("drainer"));
    }
    all.extend(c.drain_all());

    let total_inserted = (WRITERS * ROUNDS * METRICS + WRITERS * (ROUNDS / 25) * 2) as u64;
    assert_eq!(c.stats().inserts, total_inserted);
    assert_eq!(c.len(), 0);
    assert_eq!(c.metric_count(), 0);

    let mut per_segment: HashMap<u32, u64> = HashMap::new();
    let mut points: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    let mut inserted = 0;
    for d in &all {
        for &(s, n) in &d.segments {
            *per_segment.entry(s).or_default() += u64::from(n);
        }
        inserted += d.inserted();
        assert!(
            d.points.windows(2).all(|w| w[0].0 < w[1].0),
            "ascending, unique"
        );
        points
            .entry(d.name.clone())
            .or_default()
            .extend(d.points.iter().copied());
    }
    assert_eq!(inserted, total_inserted);
    // Each segment holds 50 rounds of each writer.
    for s in 0..4u32 {
        let want = (WRITERS * 50 * METRICS + WRITERS * 2 * 2) as u64;
        assert_eq!(per_segment.get(&s).copied(), Some(want), "segment {s}");
    }
    for m in 0..METRICS {
        let mut p = points.remove(&format!("m.{m}")).expect("metric drained");
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(p.len(), WRITERS * ROUNDS, "m.{m}: no loss, no duplicate");
        for (i, &(ts, v)) in p.iter().enumerate() {
            let (r, w) = (i / WRITERS, i % WRITERS);
            assert_eq!((ts, v), (i as f64, (w * 1_000_000 + r) as f64));
        }
    }
    let dup = points.remove("dup").expect("dup drained");
    // Each key appears once or twice (if its two inserts straddled a drain), and the last
    // value handed out for it is the later insert.
    let mut last: HashMap<u64, f64> = HashMap::new();
    for (ts, v) in dup {
        last.insert(ts.to_bits(), v);
    }
    assert_eq!(last.len(), WRITERS * ROUNDS / 25);
    assert!(last
        .iter()
        .all(|(k, &v)| v == f64::from_bits(*k) || v == -1.0));
    assert!(points.is_empty());
}

/// Bytes per cached point, from the allocator (requested sizes; malloc's own chunk overhead
/// comes on top) and from the cache's own capacity accounting.
fn measure(metrics: usize, per_metric: usize) -> (f64, f64, f64) {
    let names: Vec<String> = (0..metrics)
        .map(|i| format!("carbon.agents.host{:03}.metric{i:06}", i % 100))
        .collect();
    let before = live();
    let c = cache(64, 0);
    for t in 0..per_metric {
        for n in &names {
            c.insert(n, (1_700_000_000 + t * 60) as f64, t as f64, 1);
        }
    }
    let total = (live() - before) as f64;
    let mem = c.memory();
    // The cache's own accounting is exact (the `Cache` itself lives on the stack here).
    assert_eq!(mem.total() as f64, total);
    let pts = (metrics * per_metric) as f64;
    let per_point = mem.points as f64 / pts;
    let per_metric_overhead = (total - mem.points as f64) / metrics as f64;
    eprintln!(
        "{metrics} metrics x {per_metric} points: {:.1} B/point total, {per_point:.1} B/point \
         in point storage, {per_metric_overhead:.1} B/metric overhead ({mem:?})",
        total / pts
    );
    (total / pts, per_point, per_metric_overhead)
}

#[test]
fn memory_per_point() {
    let (total, points, _) = measure(100_000, 10);
    assert!(points <= 32.0, "{points} B/point at 10 points per metric");
    assert!(
        total <= 40.0,
        "{total} B/point including per-metric overhead"
    );
    let (total, points, _) = measure(1_000, 1_000);
    assert!(
        points <= 32.0 && total <= 32.0,
        "{points} / {total} B/point"
    );
}

/// Checked-out points stay readable until written: a reader that looks at the cache and then
/// at "whisper" (as the render path does) finds every point accepted before it looked, while
/// two writers check metrics out, store them, and check them in.
#[test]
fn checked_out_points_are_never_unreadable() {
    use std::collections::BTreeSet;
    use std::sync::atomic::AtomicUsize;
    const METRICS: usize = 40;
    const ROUNDS: usize = 400;
    let c = Arc::new(cache(8, 0));
    let progress: Arc<Vec<AtomicUsize>> =
        Arc::new((0..METRICS).map(|_| AtomicUsize::new(0)).collect());
    let disk: Arc<parking_lot::Mutex<HashMap<String, BTreeSet<u64>>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..2)
        .map(|part| {
            let (c, disk, done) = (c.clone(), disk.clone(), done.clone());
            std::thread::spawn(move || {
                let mut writes = 0;
                loop {
                    let Some(d) = c.checkout_next_part(Strategy::Sorted, part, 2) else {
                        if done.load(Ordering::SeqCst) && c.is_empty() {
                            return writes;
                        }
                        std::thread::yield_now();
                        continue;
                    };
                    assert!(d.is_in_flight());
                    // A slow write: the points are neither pending nor on "disk" meanwhile.
                    std::thread::sleep(Duration::from_micros(50));
                    disk.lock()
                        .entry(d.name.clone())
                        .or_default()
                        .extend(d.points.iter().map(|p| p.0 as u64));
                    c.written(&d);
                    writes += 1;
                }
            })
        })
        .collect();
    let reader = {
        let (c, disk, done, progress) = (c.clone(), disk.clone(), done.clone(), progress.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                for m in 0..METRICS {
                    let name = format!("m.{m}");
                    let accepted = progress[m].load(Ordering::SeqCst);
                    let mut seen: BTreeSet<u64> = c.get(&name).iter().map(|p| p.0 as u64).collect();
                    if let Some(on_disk) = disk.lock().get(&name) {
                        seen.extend(on_disk.iter().copied());
                    }
                    for t in 0..accepted as u64 {
                        assert!(seen.contains(&t), "{name}: point {t} unreadable");
                    }
                    reads += 1;
                }
            }
            reads
        })
    };
    for r in 0..ROUNDS {
        for (m, p) in progress.iter().enumerate() {
            c.insert(&format!("m.{m}"), r as f64, 1.0, 0);
            p.store(r + 1, Ordering::SeqCst);
        }
        if r % 50 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    done.store(true, Ordering::SeqCst);
    let reads = reader.join().expect("reader");
    let writes: usize = writers.into_iter().map(|w| w.join().expect("writer")).sum();
    assert!(reads > 0 && writes > 0);
    assert_eq!(c.len(), 0);
    assert_eq!(c.stats().inflight_batches, 0);
    let disk = disk.lock();
    assert_eq!(disk.len(), METRICS);
    assert!(disk.values().all(|s| s.len() == ROUNDS));
}
