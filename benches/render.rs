//! The render path in process (index, whisper reads, evaluation, JSON), per request:
//! (a) one metric, one day at 10 s; (b) sumSeries over a 1,000-metric wildcard, one day.
//! `/metrics/find` on a million names is in benches/index_find.rs; the HTTP comparison with
//! graphite-web is benches/http/compare-graphite-web.sh. Run: `cargo bench --bench render`.

use std::path::Path;
use std::sync::Arc;

use carbide::http::render::{render, RenderEnv};
use carbide::http::reply::Params;
use carbide::index::Index;
use carbide::query::eval::Limits;
use carbide::query::store::{Names, Store};
use carbide::whisper::{self, CreateOptions, WriteOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const NOW: i64 = 1_700_000_000;

struct IndexNames(Index);

impl Names for IndexNames {
    fn expand(&self, pattern: &str) -> Vec<String> {
        self.0.expand(pattern)
    }
}

fn metric(root: &Path, name: &str) {
    let path = root.join(format!("{}.wsp", name.replace('.', "/")));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let opts = CreateOptions {
        sparse: true,
        ..CreateOptions::default()
    };
    whisper::create(&path, &[(10, 8640)], &opts).expect("create");
    let points: Vec<(i64, f64)> = (0..8640).map(|i| (NOW - i * 10, (i % 97) as f64)).collect();
    whisper::update_many(&path, &points, Some(NOW), WriteOptions::default()).expect("fill");
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    metric(dir.path(), "one.metric");
    for h in 0..1000 {
        metric(dir.path(), &format!("agg.host{h:04}.cpu"));
    }
    let index = Index::load_dir(dir.path()).expect("index");
    let store = Store::new(dir.path(), Arc::new(IndexNames(index)));
    let env = RenderEnv {
        source: &store,
        default_zone: chrono_tz::UTC,
        limits: Limits::default(),
        max_targets: 100,
        now: NOW,
    };
    let now = NOW.to_string();
    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Elements(1));
    for (name, target) in [
        ("one_metric_day_10s", "one.metric"),
        ("sumSeries_1000_metrics_day", "sumSeries(agg.*.cpu)"),
    ] {
        let params = Params::from_pairs(&[
            ("target", target),
            ("from", "-1d"),
            ("now", &now),
            ("format", "json"),
        ]);
        let reply = render(&params, &env);
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        g.bench_function(name, |b| b.iter(|| render(&params, &env)));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
