//! Parsing render targets as Grafana sends them, in bytes/s: every /render request parses each
//! of its targets once. Run: `cargo bench --bench query_parser`.

use carbide::query::parser::parse;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// What Grafana's visual editor writes for a typical panel (render-api.md §4).
const TYPICAL: &str = "aliasByNode(movingAverage(sumSeries(servers.{web1,web2,web3}.cpu.*.value), \
                       '5min'), 1, 3)";
/// A tagged query with pipes and a regex alias, as the text editor allows.
const TAGGED: &str = "seriesByTag('name=disk.used', 'dc=~ams|fra', 'host!=') | \
                      groupByTags('sum', 'dc') | aliasSub('(^.*$)', '\\1 used') | \
                      scale(1e-9)";

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("query_parser");
    for (name, target) in [("typical", TYPICAL), ("tagged_piped", TAGGED)] {
        assert!(parse(target).is_ok(), "{target}");
        g.throughput(Throughput::Bytes(target.len() as u64));
        g.bench_function(name, |b| b.iter(|| parse(black_box(target))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
