//! The render path in process (index, whisper reads, evaluation, JSON), per request:
//! (a) one metric, one day at 10 s; (b) sumSeries over a 1,000-metric wildcard, one day.
//! `/metrics/find` on a million names is in benches/index_find.rs; the HTTP comparison with
//! graphite-web is benches/http/compare-graphite-web.sh. Run: `cargo bench --bench render`.
//!
//! For instruction counts, `RENDER_LOOP=<a|b>:<n>` skips criterion and renders case (a) or (b)
//! n times after one warm-up, so a profile is the steady state plus a fixed setup:
//! `RENDER_LOOP=a:100 valgrind --tool=callgrind target/release/deps/render-*`.

use std::path::Path;
use std::sync::Arc;

use carbide::http::render::{render, RenderEnv};
use carbide::http::reply::Params;
use carbide::index::Index;
use carbide::query::eval::Limits;
use carbide::query::store::{Names, Store};
use carbide::whisper::{self, CreateOptions, WriteOptions};
use criterion::{Criterion, Throughput};

const NOW: i64 = 1_700_000_000;

const CASES: [(&str, &str); 2] = [
    ("one_metric_day_10s", "one.metric"),
    ("sumSeries_1000_metrics_day", "sumSeries(agg.*.cpu)"),
];

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

/// The whisper tree both cases read; `with_agg` adds the 1,000 metrics of case (b).
fn data(with_agg: bool) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    metric(dir.path(), "one.metric");
    if with_agg {
        for h in 0..1000 {
            metric(dir.path(), &format!("agg.host{h:04}.cpu"));
        }
    }
    let index = Index::load_dir(dir.path()).expect("index");
    let store = Store::new(dir.path(), Arc::new(IndexNames(index)));
    (dir, store)
}

fn env(store: &Store) -> RenderEnv<'_> {
    RenderEnv {
        source: store,
        default_zone: chrono_tz::UTC,
        limits: Limits::default(),
        max_targets: 100,
        now: NOW,
    }
}

fn params(target: &str) -> Params {
    let now = NOW.to_string();
    Params::from_pairs(&[
        ("target", target),
        ("from", "-1d"),
        ("now", &now),
        ("format", "json"),
    ])
}

fn bench(c: &mut Criterion) {
    let (_dir, store) = data(true);
    let env = env(&store);
    let mut g = c.benchmark_group("render");
    g.throughput(Throughput::Elements(1));
    for (name, target) in CASES {
        let params = params(target);
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

/// `RENDER_LOOP=<case>:<n>`: n renders of one case, no criterion, for callgrind or perf.
fn profile_loop(spec: &str) {
    let (case, n) = spec.split_once(':').unwrap_or((spec, "100"));
    let n: usize = n.parse().expect("RENDER_LOOP count");
    let target = match case {
        "a" => CASES[0].1,
        "b" => CASES[1].1,
        other => panic!("RENDER_LOOP case {other:?}: a or b"),
    };
    let (_dir, store) = data(case == "b");
    let env = env(&store);
    let params = params(target);
    let first = render(&params, &env);
    assert_eq!(first.status, 200);
    let mut bytes = 0;
    for _ in 0..n {
        bytes += std::hint::black_box(render(&params, &env)).body.len();
    }
    eprintln!("{n} renders of {target}, {} bytes each", bytes / n.max(1));
}

fn main() {
    if let Ok(spec) = std::env::var("RENDER_LOOP") {
        profile_loop(&spec);
        return;
    }
    let mut c = Criterion::default().sample_size(20).configure_from_args();
    bench(&mut c);
    c.final_summary();
}
