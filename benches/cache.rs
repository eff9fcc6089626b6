//! Throughput of `carbide::cache`: single-point and batch inserts, inserts from 4 threads
//! while a persister drains, and draining with each strategy; before the benchmarks, the
//! memory a cached point costs (from the cache's capacities and from glibc's own count,
//! which includes malloc's per-chunk overhead).
//!
//! `cargo bench --bench cache` (add `-- insert` etc. to pick a group).
//!
//! `CACHE_BENCH_ONCE=insert|existing|drain|get` runs one workload once and exits, for
//! instruction counts that do not depend on what else the machine runs:
//! `valgrind --tool=callgrind --toggle-collect='*measured*' target/release/deps/cache-*`
//! (only the `measured` call is counted, not the set-up).

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use carbide::cache::{Cache, CacheConfig, Strategy};
use criterion::{BatchSize, Criterion, Throughput};

const METRICS: usize = 100_000;
const PER_METRIC: usize = 10;
const BATCH: usize = 1000;

fn names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("servers.host{:04}.app.requests.metric{i:06}", i % 1000))
        .collect()
}

fn new_cache() -> Cache {
    Cache::new(CacheConfig::default())
}

/// The points of 10 collection intervals of 100k metrics, in arrival order (interval by
/// interval), as `(name, ts, value)`.
fn points(names: &[String]) -> Vec<(&str, f64, f64)> {
    (0..PER_METRIC)
        .flat_map(|t| {
            names
                .iter()
                .map(move |n| (n.as_str(), (1_700_000_000 + 60 * t) as f64, t as f64))
        })
        .collect()
}

fn fill(c: &Cache, pts: &[(&str, f64, f64)]) {
    for chunk in pts.chunks(BATCH) {
        c.insert_batch(chunk, 1);
    }
}

fn bench_insert(c: &mut Criterion) {
    let names = names(METRICS);
    let pts = points(&names);
    let mut g = c.benchmark_group("insert");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(pts.len() as u64));
    g.bench_function("single/100k_metrics_x10", |b| {
        b.iter_batched(
            new_cache,
            |cache| {
                for &(n, t, v) in &pts {
                    cache.insert(n, t, v, 1);
                }
                cache
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("batch1000/100k_metrics_x10", |b| {
        b.iter_batched(
            new_cache,
            |cache| {
                fill(&cache, &pts);
                cache
            },
            BatchSize::PerIteration,
        )
    });
    // Steady state: the metrics are already known (entries exist), as between drains
    // of a busy cache; the cost is then lookup + append.
    let warm = new_cache();
    fill(&warm, &pts[..METRICS]);
    let hot: Vec<_> = pts[..METRICS].to_vec();
    g.throughput(Throughput::Elements(hot.len() as u64));
    g.bench_function("batch1000/existing_metrics", |b| {
        b.iter(|| {
            for chunk in hot.chunks(BATCH) {
                warm.insert_batch(chunk, 1);
            }
        })
    });
    drop(warm);
    g.finish();
}

/// 4 inserting threads (batches of 1000) and one draining thread (Naive): the time for the
/// inserters to put 4 × 1M points in.
fn bench_concurrent(c: &mut Criterion) {
    const THREADS: usize = 4;
    let names: Vec<Vec<String>> = (0..THREADS)
        .map(|k| {
            names(METRICS / THREADS)
                .into_iter()
                .map(|n| format!("t{k}.{n}"))
                .collect()
        })
        .collect();
    let per_thread: usize = METRICS / THREADS * PER_METRIC;
    let mut g = c.benchmark_group("concurrent");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements((per_thread * THREADS) as u64));
    g.bench_function("4_inserters_1_drainer", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let cache = Arc::new(new_cache());
                let start = Arc::new(Barrier::new(THREADS + 2));
                let done = Arc::new(AtomicBool::new(false));
                let drainer = {
                    let (cache, start, done) = (cache.clone(), start.clone(), done.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        let mut drained = 0usize;
                        while !done.load(Ordering::Relaxed) {
                            match cache.pop_next(Strategy::Naive) {
                                Some(d) => drained += d.points.len(),
                                None => std::thread::yield_now(),
                            }
                        }
                        drained
                    })
                };
                let inserters: Vec<_> = names
                    .iter()
                    .map(|names| {
                        let (cache, start) = (cache.clone(), start.clone());
                        let names = names.clone();
                        std::thread::spawn(move || {
                            let pts = points(&names);
                            start.wait();
                            fill(&cache, &pts);
                        })
                    })
                    .collect();
                start.wait();
                let t0 = Instant::now();
                for h in inserters {
                    h.join().expect("inserter");
                }
                total += t0.elapsed();
                done.store(true, Ordering::Relaxed);
                black_box(drainer.join().expect("drainer"));
            }
            total
        })
    });
    g.finish();
}

fn bench_pop(c: &mut Criterion) {
    let names = names(METRICS);
    let pts = points(&names);
    let mut g = c.benchmark_group("pop_next");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(METRICS as u64));
    for (label, strategy) in [
        ("naive", Strategy::Naive),
        ("sorted", Strategy::Sorted),
        ("max", Strategy::Max),
    ] {
        g.bench_function(format!("{label}/100k_metrics_x10"), |b| {
            b.iter_batched(
                || {
                    let cache = new_cache();
                    fill(&cache, &pts);
                    cache
                },
                |cache| {
                    while let Some(d) = cache.pop_next(strategy) {
                        black_box(d);
                    }
                    cache
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
    let mut g = c.benchmark_group("get");
    let cache = new_cache();
    fill(&cache, &pts);
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("10_points", |b| {
        b.iter(|| {
            i = (i + 7919) % METRICS;
            black_box(cache.get(&names[i]))
        })
    });
    // The same with a working set that fits in cache: the difference is memory latency.
    let small = new_cache();
    let small_names = &names[..1000];
    for t in 0..PER_METRIC {
        for n in small_names {
            small.insert(n, (1_700_000_000 + 60 * t) as f64, 1.0, 1);
        }
    }
    g.bench_function("10_points/1k_metrics", |b| {
        b.iter(|| {
            i = (i + 7919) % 1000;
            black_box(small.get(&small_names[i]))
        })
    });
    g.finish();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_in_use() -> Option<u64> {
    // SAFETY: mallinfo2 only reads glibc's allocator statistics.
    let m = unsafe { libc::mallinfo2() };
    Some((m.uordblks + m.hblkhd) as u64)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_in_use() -> Option<u64> {
    None
}

fn report_memory() {
    for (metrics, per_metric) in [(100_000, 10), (1_000, 1_000)] {
        let names = names(metrics);
        let before = malloc_in_use();
        let cache = new_cache();
        for t in 0..per_metric {
            for n in &names {
                cache.insert(n, (1_700_000_000 + 60 * t) as f64, 1.0, 1);
            }
        }
        let after = malloc_in_use();
        let m = cache.memory();
        let pts = (metrics * per_metric) as f64;
        let malloc = match (before, after) {
            (Some(b), Some(a)) => format!("{:.1}", (a as f64 - b as f64) / pts),
            _ => "n/a".into(),
        };
        println!(
            "memory {metrics} metrics x {per_metric} points: point storage {:.1} B/point; \
             total {:.1} B/point requested, {malloc} B/point in glibc chunks; per-metric \
             overhead {:.1} B (names {:.1}, structures {:.1})",
            m.points as f64 / pts,
            m.total() as f64 / pts,
            (m.total() - m.points) as f64 / metrics as f64,
            m.names as f64 / metrics as f64,
            m.structures as f64 / metrics as f64,
        );
    }
}

/// The workload that `CACHE_BENCH_ONCE` counts; everything else is set-up.
#[inline(never)]
fn measured(work: &mut dyn FnMut()) {
    work();
}

fn once(what: &str) {
    let names = names(METRICS);
    let pts = points(&names);
    let cache = new_cache();
    match what {
        // 1M points of 100k new metrics, in batches of 1000.
        "insert" => measured(&mut || fill(&cache, &pts)),
        // 100k points of 100k metrics already cached.
        "existing" => {
            fill(&cache, &pts[..METRICS]);
            measured(&mut || fill(&cache, &pts[..METRICS]));
        }
        // Every metric drained (naive).
        "drain" => {
            fill(&cache, &pts);
            measured(&mut || {
                while let Some(d) = cache.pop_next(Strategy::Naive) {
                    black_box(d);
                }
            });
        }
        // 100k gets of 10-point metrics.
        "get" => {
            fill(&cache, &pts);
            measured(&mut || {
                for n in &names {
                    black_box(cache.get(n));
                }
            });
        }
        other => {
            eprintln!(
                "CACHE_BENCH_ONCE: unknown workload {other:?} (insert, existing, drain, get)"
            );
            std::process::exit(2);
        }
    }
    black_box(&cache);
}

fn main() {
    if let Ok(what) = std::env::var("CACHE_BENCH_ONCE") {
        once(&what);
        return;
    }
    report_memory();
    let mut c = Criterion::default().configure_from_args();
    bench_insert(&mut c);
    bench_concurrent(&mut c);
    bench_pop(&mut c);
    c.final_summary();
}
