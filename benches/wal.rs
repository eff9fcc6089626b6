//! What the write-ahead log costs per point: appends of 1000-point batches with no fsync
//! (the encoding, the crc and the write), and with policy `batch` under four concurrent
//! producers, where group commit shares each fsync among whoever queued during the last
//! one. Segments are released as soon as they are written so the disk use stays flat, as a
//! persister keeping up would. Run: `cargo bench --bench wal`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use carbide::wal::{Point, SyncPolicy, Wal, WalConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const POINTS: usize = 1000;

/// A carbon-like batch: 50 metrics, 20 consecutive points each.
fn batch(seed: u64) -> Vec<Point> {
    (0..POINTS)
        .map(|k| Point {
            name: format!("servers.host{:03}.cpu.core{}.user", seed % 100, k / 20),
            timestamp: 1_700_000_000.0 + (k % 20) as f64 * 10.0,
            value: k as f64 * 0.5,
        })
        .collect()
}

fn open(dir: &std::path::Path, sync: SyncPolicy) -> Arc<Wal> {
    let mut config = WalConfig::new(dir);
    config.sync = sync;
    Arc::new(Wal::open(config).expect("open wal").0)
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_append");
    group.throughput(Throughput::Elements(POINTS as u64));
    group.measurement_time(Duration::from_secs(5));

    {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = open(dir.path(), SyncPolicy::Off);
        let points = batch(1);
        group.bench_function("off_1000_points", |b| {
            b.iter(|| {
                let lsn = wal.append_blocking(&points).expect("append");
                wal.mark_persisted(lsn.segment, POINTS as u64);
            })
        });
    }

    for producers in [1u64, 4] {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = open(dir.path(), SyncPolicy::Batch);
        let name = format!("batch_1000_points_{producers}_producers");
        group.bench_function(name, |b| {
            // One iteration is one batch, whichever producer appends it.
            b.iter_custom(|iters| {
                let per_producer = iters.div_ceil(producers);
                let start = Instant::now();
                let threads: Vec<_> = (0..producers)
                    .map(|t| {
                        let wal = Arc::clone(&wal);
                        std::thread::spawn(move || {
                            let points = batch(t);
                            for _ in 0..per_producer {
                                let lsn = wal.append_blocking(&points).expect("append");
                                wal.mark_persisted(lsn.segment, POINTS as u64);
                            }
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().expect("producer");
                }
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_producer * producers) as f64)
            })
        });
        let s = wal.stats();
        eprintln!(
            "{producers} producer(s): {} batches, {} fsyncs, {:.1} batches per fsync",
            s.records,
            s.fsyncs,
            s.records as f64 / s.fsyncs.max(1) as f64
        );
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
