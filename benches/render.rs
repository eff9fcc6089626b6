//! The render path in process (index, whisper reads, evaluation, JSON), per request:
//! (a) one metric, one day at 10 s; (b) sumSeries over a 1,000-metric wildcard, one day.
//! `/metrics/find` on a million names is in benches/index_find.rs; the HTTP comparison with
//! graphite-web is benches/http/compare-graphite-web.sh. Run: `cargo bench --bench render`.
//!
//! For instruction counts, `RENDER_LOOP=<a|b>:<n>` skips criterion and renders case (a) or (b)
//! n times after one warm-up, so a profile is the steady state plus a fixed setup:
//! `RENDER_LOOP=a:100 valgrind --tool=callgrind target/release/deps/render-*`.

#[path = "common/render_data.rs"]
mod render_data;

use carbide::http::render::render;
use carbide::http::reply::Params;
use carbide::query::store::Store;
use criterion::{Criterion, Throughput};
use render_data::{env, NOW};

const CASES: [(&str, &str); 2] = [
    ("one_metric_day_10s", "one.metric"),
    ("sumSeries_1000_metrics_day", "sumSeries(agg.*.cpu)"),
];

/// The whisper tree both cases read; `with_agg` adds the 1,000 metrics of case (b).
fn data(with_agg: bool) -> (tempfile::TempDir, Store) {
    let agg = with_agg.then(render_data::agg_names).into_iter().flatten();
    render_data::tree(std::iter::once("one.metric".to_string()).chain(agg))
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
