//! The metric index on a 1,000,000-name tree (`host.hNNN.cNNN.mNNN`, 100 x 100 x 100): finds
//! Grafana's tree browser and render targets issue, and the expand of a 1,000-leaf wildcard.
//! Building the tree (one `insert` per name) and its heap size are printed once.

use std::time::Instant;

use carbide::index::Index;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn build() -> Index {
    let index = Index::new();
    let start = Instant::now();
    for h in 0..100 {
        for c in 0..100 {
            for m in 0..100 {
                index.insert(&format!("host.h{h:03}.c{c:03}.m{m:03}"));
            }
        }
    }
    eprintln!(
        "index: {} names inserted in {:.2?}, ~{} MiB of heap",
        index.len(),
        start.elapsed(),
        index.heap_bytes() >> 20
    );
    index
}

fn bench(c: &mut Criterion) {
    let index = build();
    let cases: &[(&str, &str, usize)] = &[
        ("find *", "*", 1),
        ("find a.*", "host.*", 100),
        ("find a.b.*", "host.h042.*", 100),
        ("find a.*.c", "host.*.c042", 100),
        ("find a.{x,y}*.c", "host.{h01,h02}*.c042", 20),
        ("find a.b.c.*", "host.h042.c042.*", 100),
        ("find a.b.c.[0-4]?[!9]", "host.h042.c042.m[0-4]?[!9]", 90),
    ];
    for &(label, query, expect) in cases {
        assert_eq!(index.find(query).len(), expect, "{query}");
        c.bench_function(label, |b| b.iter(|| index.find(black_box(query))));
    }
    let wide = "host.*.c042.m04*";
    assert_eq!(index.expand(wide).len(), 1000);
    c.bench_function("expand 1000 leaves (a.*.c.d*)", |b| {
        b.iter(|| index.expand(black_box(wide)))
    });
    let many = "host.h0[0-4]*.*.m042";
    assert_eq!(index.expand(many).len(), 5000);
    c.bench_function("expand 5000 leaves (a.b*.*.d)", |b| {
        b.iter(|| index.expand(black_box(many)))
    });
    c.bench_function("insert existing name", |b| {
        b.iter(|| index.insert(black_box("host.h042.c042.m042")))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
