//! Carbide's whisper operations at the sizes carbon and graphite-web use them, to set beside
//! whisper.py's timings of the very same operations (`benches/whisper_py.py`); run both and
//! print the comparison with `scripts/bench-whisper`, or this half alone with
//! `cargo bench --bench whisper`.
//!
//! The file is a common production schema, `10s:1d,1m:30d,10m:1y`, holding a day of data, so
//! that updates propagate through real neighbours and the fetch decodes real points. Every
//! operation opens the file by path, as whisper.py's module functions and carbon's writer do.
//! Measurement windows are short: the point is a ratio against Python, not nanosecond precision.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use carbide::whisper::{self, CreateOptions, WriteOptions};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

/// A fixed clock, so that runs (and the Python half) see the same file states.
const NOW: i64 = 1_700_000_000;
const ARCHIVES: [(u32, u32); 3] = [(10, 8640), (60, 43200), (600, 52560)];

/// A day of points at 10 s, newest at NOW.
fn day_of_data() -> Vec<(i64, f64)> {
    (0..8640)
        .map(|i| (NOW - i * 10, (i % 97) as f64 * 0.5))
        .collect()
}

fn filled_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    whisper::create(&path, &ARCHIVES, &CreateOptions::default()).expect("create");
    whisper::update_many(&path, &day_of_data(), Some(NOW), WriteOptions::default()).expect("fill");
    path
}

/// `n` recent points as carbon's cache flushes them: one per 10 s, the newest a few seconds
/// old, within the last interval of the finest archive.
fn recent_points(n: i64) -> Vec<(i64, f64)> {
    (0..n)
        .map(|k| (NOW - 3 - 10 * k, 42.0 + k as f64 * 0.25))
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("whisper");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);

    for n in [1, 10, 100] {
        let path = filled_file(dir.path(), &format!("update-{n}.wsp"));
        let points = recent_points(n);
        g.bench_function(format!("update_many_{n}"), |b| {
            b.iter(|| {
                whisper::update_many(
                    &path,
                    black_box(&points),
                    Some(NOW),
                    WriteOptions::default(),
                )
                .expect("update_many")
            })
        });
    }

    let path = filled_file(dir.path(), "fetch.wsp");
    g.bench_function("fetch_day_10s", |b| {
        b.iter(|| {
            let r = whisper::fetch(&path, black_box(NOW - 86400), Some(NOW), Some(NOW), None)
                .expect("fetch")
                .expect("in range");
            assert_eq!(r.values.len(), 8640);
            r
        })
    });

    // Each iteration creates a new 1.2 MiB file and unlinks it, so the directory stays small;
    // the Python half measures the same pair.
    let serial = AtomicU64::new(0);
    g.bench_function("create_and_unlink", |b| {
        b.iter(|| {
            let path = dir.path().join(format!(
                "new-{}.wsp",
                serial.fetch_add(1, Ordering::Relaxed)
            ));
            whisper::create(&path, &ARCHIVES, &CreateOptions::default()).expect("create");
            std::fs::remove_file(&path).expect("unlink");
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
