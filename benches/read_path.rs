//! Why whisper reads are positional: a fetch of one day at 10 s (8,640 points, ~100 KiB) read
//! with `pread` into a buffer versus through a fresh `memmap2` map of the file, each including
//! the open and the decode, as a request pays them. Run: `cargo bench --bench read_path`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use carbide::whisper::{self, CreateOptions, WriteOptions};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

const NOW: i64 = 1_700_000_000;

fn decode(bytes: &[u8], start: i64, step: i64) -> usize {
    let mut known = 0;
    let mut expected = start;
    for c in bytes.chunks_exact(12) {
        let t = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        let v = f64::from_be_bytes([c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]]);
        if i64::from(t) == expected {
            known += 1;
            black_box(v);
        }
        expected += step;
    }
    known
}

fn setup(path: &Path) {
    let archives = [(10, 8640), (60, 43200), (600, 52560)];
    whisper::create(path, &archives, &CreateOptions::default()).expect("create");
    let points: Vec<(i64, f64)> = (0..8640).map(|i| (NOW - i * 10, i as f64)).collect();
    whisper::update_many(path, &points, Some(NOW), WriteOptions::default()).expect("fill");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m.wsp");
    setup(&path);
    let header = whisper::info(&path).expect("info");
    let a = header.archives[0];
    let (offset, len) = (u64::from(a.offset), a.size as usize);
    let mut g = c.benchmark_group("fetch_day_10s_read_path");
    g.bench_function("pread", |b| {
        b.iter(|| {
            let f = File::open(&path).expect("open");
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, offset).expect("read");
            decode(&buf, NOW - 86390, 10)
        })
    });
    g.bench_function("mmap", |b| {
        b.iter(|| {
            let f = File::open(&path).expect("open");
            // SAFETY: the file is not modified while mapped in this benchmark.
            let map = unsafe { memmap2::Mmap::map(&f) }.expect("map");
            decode(
                &map[offset as usize..offset as usize + len],
                NOW - 86390,
                10,
            )
        })
    });
    g.bench_function("whisper_fetch", |b| {
        b.iter(|| whisper::fetch(&path, NOW - 86400, Some(NOW), Some(NOW), None).expect("fetch"))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3)).warm_up_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
