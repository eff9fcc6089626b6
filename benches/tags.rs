//! The tag index at scale: `seriesByTag` with two conditions over 1,000,000 tagged series
//! (100 metric names × 10,000 hosts, 20 data centres, 3 environments).

use criterion::{criterion_group, criterion_main, Criterion};

use carbide::index::tags::TagIndex;

const SERIES: usize = 1_000_000;

fn build() -> TagIndex {
    let idx = TagIndex::new();
    let envs = ["prod", "dev", "staging"];
    for i in 0..SERIES {
        let host = i / 100;
        let name = format!(
            "app.metric{};dc=dc{};env={};host=host{host}",
            i % 100,
            host % 20,
            envs[i % 3]
        );
        if let Err(e) = idx.insert(&name) {
            panic!("{name}: {e}");
        }
    }
    idx
}

/// The process's resident set (Linux), to see what the index costs.
fn resident() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.trim_start_matches("VmRSS:").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn bench(c: &mut Criterion) {
    let start = std::time::Instant::now();
    let idx = build();
    eprintln!(
        "built {} series in {:?}; resident memory {}",
        idx.len(),
        start.elapsed(),
        resident()
    );
    let mut group = c.benchmark_group("seriesByTag_1M");
    group.sample_size(20);
    let cases: [(&str, [&str; 2]); 4] = [
        ("name_eq_and_dc_eq", ["name=app.metric7", "dc=dc3"]),
        (
            "name_eq_and_host_regex",
            ["name=app.metric7", "host=~host1.*5$"],
        ),
        ("dc_eq_and_env_ne", ["dc=dc3", "env!=prod"]),
        ("name_regex_and_dc_eq", ["name=~app.metric(1|2)$", "dc=dc3"]),
    ];
    for (label, exprs) in cases {
        let n = idx.find_series(&exprs).map(|v| v.len()).unwrap_or(0);
        eprintln!("{label}: {n} series");
        group.bench_function(label, |b| b.iter(|| idx.find_series(&exprs)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
