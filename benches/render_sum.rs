//! Case (b) of the render comparison in process, split into its stages so a profile says where
//! a request's time goes: `fetch` (index expansion and 1,000 whisper reads), `evaluate`
//! (fetch plus sumSeries) and `render` (evaluate plus the JSON reply), each over
//! `agg.*.cpu`, 1,000 metrics with one day at 10 s (8,640 points each).
//! Run: `cargo bench --bench render_sum`.
//!
//! `RENDER_SUM_LOOP=<fetch|evaluate|render>:<n>` skips criterion and runs one stage n times
//! after a warm-up, for instruction counts:
//! `RENDER_SUM_LOOP=evaluate:5 valgrind --tool=callgrind target/release/deps/render_sum-*`.

#[path = "common/render_data.rs"]
mod render_data;

use carbide::http::render::render;
use carbide::http::reply::Params;
use carbide::query::eval::{Context, SeriesSource};
use carbide::query::store::Store;
use criterion::{Criterion, Throughput};
use render_data::{env, NOW};

const FROM: i64 = NOW - 86_400;
const PATTERN: &str = "agg.*.cpu";
const TARGET: &str = "sumSeries(agg.*.cpu)";

fn data() -> (tempfile::TempDir, Store) {
    render_data::tree(render_data::agg_names())
}

fn fetch(store: &Store) -> usize {
    store
        .fetch(PATTERN, FROM, NOW, NOW, 0.0)
        .expect("fetch")
        .len()
}

fn evaluate(store: &Store) -> usize {
    let mut ctx = Context::new(FROM, NOW, NOW, chrono_tz::UTC, store);
    let out = ctx.evaluate_target(TARGET).expect("evaluate");
    out.iter().map(|s| s.values.len()).sum()
}

fn params() -> Params {
    let now = NOW.to_string();
    Params::from_pairs(&[
        ("target", TARGET),
        ("from", "-1d"),
        ("now", &now),
        ("format", "json"),
    ])
}

fn bench(c: &mut Criterion) {
    let (_dir, store) = data();
    assert_eq!(fetch(&store), 1000);
    assert_eq!(evaluate(&store), 8640);
    let env = env(&store);
    let params = params();
    let mut g = c.benchmark_group("render_sum");
    g.throughput(Throughput::Elements(1));
    g.bench_function("fetch", |b| b.iter(|| fetch(&store)));
    g.bench_function("evaluate", |b| b.iter(|| evaluate(&store)));
    g.bench_function("render", |b| b.iter(|| render(&params, &env).body.len()));
    g.finish();
}

fn profile_loop(spec: &str) {
    let (stage, n) = spec.split_once(':').unwrap_or((spec, "5"));
    let n: usize = n.parse().expect("RENDER_SUM_LOOP count");
    let (_dir, store) = data();
    let env = env(&store);
    let params = params();
    let run = || match stage {
        "fetch" => fetch(&store),
        "evaluate" => evaluate(&store),
        "render" => {
            let reply = render(&params, &env);
            assert_eq!(reply.status, 200);
            reply.body.len()
        }
        other => panic!("RENDER_SUM_LOOP stage {other:?}: fetch, evaluate or render"),
    };
    // The peak of the stage alone, not of building the data (Linux: writing 5 to clear_refs
    // resets VmHWM to the current RSS).
    let baseline = vm_kb("VmRSS");
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let first = run();
    let mut total = 0;
    for _ in 0..n {
        total += std::hint::black_box(run());
    }
    eprintln!(
        "{n} x {stage} of {TARGET}: {first} / {}; RSS before {} KB, peak during {} KB",
        total / n.max(1),
        baseline.map_or("?".into(), |k| k.to_string()),
        vm_kb("VmHWM").map_or("?".into(), |k| k.to_string()),
    );
}

/// A `Vm*` line of /proc/self/status, in kB.
fn vm_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    if let Ok(spec) = std::env::var("RENDER_SUM_LOOP") {
        profile_loop(&spec);
        return;
    }
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    bench(&mut c);
    c.final_summary();
}
