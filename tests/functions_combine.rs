//! The Combine functions (sumSeries and the other aggregations, divideSeries, countSeries,
//! percentileOfSeries, groupByNode(s), the *WithWildcards and *SeriesLists forms, asPercent)
//! rendered by Carbide and by graphite-web 1.1.10 over the same whisper files, compared as JSON:
//! names, tags, timestamps and values, exactly.
//!
//! One graphite-web process serves every test (a shared fixture behind a mutex); each group of
//! cases has its own top-level prefix.

mod common;

use std::sync::MutexGuard;

use common::render::{self, RenderCompare};

/// Divisible by 60 but not by 300, so 60 s and 300 s series start at different offsets and
/// graphite-web's normalize() (which does not re-align them) is exercised.
const NOW: i64 = 1_795_576_320;

fn series(n: i64, step: i64, f: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
    render::points_back(NOW, n, step, f)
}

fn fixture() -> MutexGuard<'static, RenderCompare> {
    render::shared(build)
}

fn build() -> RenderCompare {
    let mut r = RenderCompare::new(NOW);
    // `i` counts back from now: small `i` is the end of the window, `i` near 60 its start.
    // Gaps inside, thirds so that summation order shows in the last bits.
    r.metric(
        "cmb.web1.cpu",
        "60s:1d,300s:7d",
        &series(3000, 60, |i| (i % 7 != 3).then_some(i as f64 / 3.0 + 0.1)),
    );
    // Trailing nulls (no data for the last 10 minutes).
    r.metric(
        "cmb.web2.cpu",
        "60s:1d",
        &series(200, 60, |i| (i >= 10).then_some(100.0 - i as f64 * 0.7)),
    );
    // Leading nulls (data only for the last 45 minutes) and zeros, negatives.
    r.metric(
        "cmb.web3.cpu",
        "60s:1d",
        &series(45, 60, |i| Some(((i % 5) as f64 - 2.0) * 1.25)),
    );
    // No data at all.
    r.metric("cmb.web4.cpu", "60s:1d", &[]);
    // A coarser step.
    r.metric(
        "cmb.slow.cpu",
        "300s:7d",
        &series(400, 300, |i| (i % 4 != 1).then_some(7.0 + i as f64 / 7.0)),
    );
    // A 120 s step, to make an lcm that is neither step (120 and 300 give 600).
    r.metric(
        "cmb.mid.cpu",
        "120s:2d",
        &series(400, 120, |i| Some(i as f64 * 0.3)),
    );

    // groupBy and wildcards: dc, host, metric.
    for (dc, host, k) in [
        ("dc1", "web1", 1.0),
        ("dc1", "web2", 2.0),
        ("dc2", "web1", 3.0),
        ("dc2", "web3", 4.0),
    ] {
        for (metric, m) in [("cpu", 1.0), ("mem", 10.0)] {
            r.metric(
                &format!("grp.{dc}.{host}.{metric}"),
                "60s:1d",
                &series(200, 60, |i| {
                    (i % (3 + k as i64) != 0).then_some(k * m + i as f64 / 9.0)
                }),
            );
        }
    }
    r.metric(
        "grp.dc3.web9.cpu",
        "300s:7d",
        &series(100, 300, |i| Some(50.0 + i as f64)),
    );

    // asPercent with nodes: a and b have both, c only `used`, d only `total`; e has two
    // `used` and two `total` series.
    for (host, used, total) in [
        ("a", Some(3.0), Some(12.0)),
        ("b", Some(5.0), Some(0.0)),
        ("c", Some(7.0), None),
        ("d", None, Some(40.0)),
    ] {
        if let Some(u) = used {
            r.metric(
                &format!("pct.{host}.used"),
                "60s:1d",
                &series(200, 60, |i| (i % 6 != 2).then_some(u + i as f64 / 11.0)),
            );
        }
        if let Some(t) = total {
            r.metric(
                &format!("pct.{host}.total"),
                "60s:1d",
                &series(200, 60, |i| Some(t + (i % 3) as f64)),
            );
        }
    }
    r.metric(
        "pct.e.used",
        "60s:1d",
        &series(200, 60, |i| Some(1.0 + i as f64 / 13.0)),
    );
    r.metric(
        "pct.e.used2",
        "300s:7d",
        &series(100, 300, |i| Some(2.0 + i as f64)),
    );
    r.metric(
        "pct.e.total",
        "60s:1d",
        &series(200, 60, |i| Some(30.0 + i as f64)),
    );
    r.metric(
        "pct.e.total2",
        "60s:1d",
        &series(200, 60, |i| (i % 4 != 0).then_some(20.0)),
    );

    // Pairwise lists.
    for (name, k) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
        r.metric(
            &format!("lst.{name}.x"),
            "60s:1d",
            &series(200, 60, |i| (i % 5 != 1).then_some(k + i as f64 / 3.0)),
        );
        r.metric(
            &format!("lst.{name}.y"),
            "60s:1d",
            &series(200, 60, |i| {
                (i % 4 != 2).then_some(k * 2.0 - i as f64 / 7.0)
            }),
        );
    }
    r.metric(
        "lst.s.y",
        "300s:7d",
        &series(100, 300, |i| Some(3.0 + i as f64)),
    );
    r
}

fn check(target: &str) {
    fixture().check(target, "-1h", "now");
}

fn check_params(params: &[(&str, &str)]) {
    fixture().check_params(params);
}

/// graphite-web refuses with a 400 (InputParameterError) and so does Carbide.
fn both_refuse(target: &str) {
    let ((cs, cb), (gs, gb)) = fixture().both(&[("target", target), ("from", "-1h")]);
    assert_eq!(
        (cs, gs),
        (400, 400),
        "{target}\ncarbide: {cb}\ngraphite-web: {gb}"
    );
}

/// graphite-web fails with a 500 (a Python exception); Carbide answers 400 with a message
/// (a deliberate improvement).
fn graphite_fails_carbide_refuses(target: &str) {
    let ((cs, cb), (gs, gb)) = fixture().both(&[("target", target), ("from", "-1h")]);
    assert_eq!(gs, 500, "{target}: graphite-web answered {gs}: {gb}");
    assert_eq!(cs, 400, "{target}: carbide answered {cs}: {cb}");
}

#[test]
fn sum_series() {
    for t in [
        "sumSeries(cmb.web*.cpu)",
        "sum(cmb.web*.cpu)",
        "sumSeries(cmb.web1.cpu,cmb.web2.cpu)",
        "sumSeries(cmb.web1.cpu,cmb.web1.cpu)",
        "sumSeries(cmb.web{1,2}.cpu,cmb.web3.cpu)",
        // One series: its name stays in the tags.
        "sumSeries(cmb.web1.cpu)",
        "sumSeries(cmb.web4.cpu)",
        "sumSeries(cmb.web3.cpu,cmb.web4.cpu)",
        // Nothing matched: [] (also when one of several patterns matches nothing).
        "sumSeries(cmb.nothing.*)",
        "sumSeries(cmb.nothing.*,cmb.none)",
        "sumSeries(cmb.nothing.*,cmb.web2.cpu)",
        // Nested: the inner aggregate's name is its path expression.
        "sumSeries(sumSeries(cmb.web*.cpu),cmb.web1.cpu)",
        "sum(cmb.web1.cpu)|sumSeries(cmb.web2.cpu)",
    ] {
        check(t);
    }
}

/// Different steps: normalize() consolidates to the lcm of the steps and combines by index.
/// graphite-web does not re-align series whose starts differ (a 60 s series and a 300 s series
/// keep the earliest start); Carbide keeps that quirk so the answers are identical.
#[test]
fn different_steps_are_combined_by_index() {
    for t in [
        "sumSeries(cmb.web1.cpu,cmb.slow.cpu)",
        "sumSeries(cmb.slow.cpu,cmb.web1.cpu)",
        "sumSeries(cmb.*.cpu)",
        "averageSeries(cmb.mid.cpu,cmb.slow.cpu,cmb.web2.cpu)",
        "maxSeries(cmb.mid.cpu,cmb.web3.cpu)",
        "divideSeries(cmb.web1.cpu,cmb.slow.cpu)",
        "divideSeries(cmb.slow.cpu,cmb.mid.cpu)",
        "countSeries(cmb.*.cpu)",
        "percentileOfSeries(cmb.*.cpu,50)",
        "diffSeries(cmb.web2.cpu,cmb.mid.cpu)",
    ] {
        check(t);
    }
    // The 60 s archive of web1 ends after 1 d: over 2 d it comes from the 300 s archive.
    fixture().check(
        "sumSeries(cmb.web1.cpu,cmb.web2.cpu,cmb.slow.cpu)",
        "-2d",
        "now",
    );
}

#[test]
fn other_shorthands() {
    for f in [
        "averageSeries",
        "avg",
        "minSeries",
        "maxSeries",
        "diffSeries",
        "multiplySeries",
        "stddevSeries",
        "rangeOfSeries",
    ] {
        for args in [
            "cmb.web*.cpu",
            "cmb.web1.cpu,cmb.web2.cpu",
            "cmb.web3.cpu,cmb.web1.cpu",
            "cmb.web1.cpu",
            "cmb.web4.cpu",
            "cmb.nothing.*",
            "cmb.web1.cpu,cmb.slow.cpu",
        ] {
            check(&format!("{f}({args})"));
        }
    }
    // multiplySeries hands a single series back as it is, even inside a list of lists.
    check("multiplySeries(cmb.web2.cpu,cmb.nothing)");
}

#[test]
fn aggregate_every_function() {
    for func in [
        "average",
        "avg",
        "avg_zero",
        "median",
        "sum",
        "total",
        "min",
        "max",
        "diff",
        "stddev",
        "count",
        "range",
        "rangeOf",
        "multiply",
        "last",
        "current",
        // The deprecated *Series spellings: the suffix is dropped.
        "sumSeries",
        "avgSeries",
        "rangeOfSeries",
        "medianSeries",
    ] {
        check(&format!("aggregate(cmb.web*.cpu,\"{func}\")"));
        check(&format!("aggregate(cmb.web{{2,3}}.cpu,'{func}')"));
    }
    check("aggregate(cmb.nothing,'sum')");
    check("aggregate(cmb.web1.cpu,'median')");
    check("aggregate(cmb.web*.cpu,'avg_zero',0)");
    check("aggregate(cmb.*.cpu,'median')");
    check("aggregate(cmb.web*.cpu,func='max')");
}

/// xFilesFactor: the argument of aggregate, else the request's.
#[test]
fn x_files_factor() {
    for xff in ["0", "0.25", "0.5", "0.75", "1"] {
        check(&format!("aggregate(cmb.web*.cpu,'sum',{xff})"));
        check(&format!("aggregate(cmb.web*.cpu,'avg_zero',{xff})"));
        check(&format!(
            "aggregate(cmb.web1.cpu,'count',xFilesFactor={xff})"
        ));
        for t in [
            "sumSeries(cmb.web*.cpu)",
            "countSeries(cmb.web*.cpu)",
            "divideSeries(cmb.web1.cpu,cmb.web2.cpu)",
            // The per-series consolidation in normalize uses the request's factor too.
            "sumSeries(cmb.web2.cpu,cmb.slow.cpu)",
            "asPercent(cmb.web*.cpu)",
            "percentileOfSeries(cmb.web*.cpu,50)",
        ] {
            check_params(&[
                ("target", t),
                ("from", "-1h"),
                ("format", "json"),
                ("xFilesFactor", xff),
            ]);
        }
    }
}

#[test]
fn max_data_points() {
    for t in [
        "sumSeries(cmb.web*.cpu)",
        "sumSeries(cmb.web1.cpu,cmb.slow.cpu)",
        "asPercent(cmb.web*.cpu)",
        "asPercent(cmb.web1.cpu,cmb.slow.cpu)",
        "groupByNode(grp.*.*.cpu,1,'sum')",
        "divideSeries(cmb.web*.cpu,cmb.web2.cpu)",
        "multiplySeries(cmb.web1.cpu)",
        "countSeries()",
    ] {
        for mdp in ["1", "7", "20", "100"] {
            check_params(&[
                ("target", t),
                ("from", "-3h"),
                ("format", "json"),
                ("maxDataPoints", mdp),
            ]);
        }
    }
}

#[test]
fn count_series() {
    check("countSeries(cmb.web*.cpu)");
    check("countSeries(cmb.web1.cpu,cmb.web*.cpu)");
    check("countSeries(cmb.nothing)");
    check("countSeries(cmb.web4.cpu)");
    // No argument: constantLine(0), three points from `from` to `until`.
    check("countSeries()");
    fixture().check("countSeries()", "-7h", "-1h");
}

#[test]
fn divide_series() {
    for t in [
        "divideSeries(cmb.web*.cpu,cmb.web3.cpu)",
        "divideSeries(cmb.web1.cpu,cmb.web2.cpu)",
        "divideSeries(cmb.web4.cpu,cmb.web1.cpu)",
        // No divisor: the dividends renamed with MISSING, all nulls, tags unchanged.
        "divideSeries(cmb.web*.cpu,cmb.nothing)",
        "divideSeries(cmb.nothing,cmb.web1.cpu)",
        "divideSeries(cmb.nothing,cmb.none)",
        "sumSeries(divideSeries(cmb.web1.cpu,cmb.nothing))",
    ] {
        check(t);
    }
    both_refuse("divideSeries(cmb.web1.cpu,cmb.web*.cpu)");
}

#[test]
fn with_wildcards() {
    for t in [
        "sumSeriesWithWildcards(grp.*.*.cpu,1)",
        "sumSeriesWithWildcards(grp.*.*.*,1,2)",
        "sumSeriesWithWildcards(grp.*.*.*,2)",
        "sumSeriesWithWildcards(grp.*.*.*)",
        "sumSeriesWithWildcards(grp.*.*.*,0,1,2,3)",
        "sumSeriesWithWildcards(grp.*.*.*,9)",
        "sumSeriesWithWildcards(grp.nothing.*,1)",
        "averageSeriesWithWildcards(grp.*.*.cpu,1)",
        "averageSeriesWithWildcards(grp.*.*.*,2,3)",
        "multiplySeriesWithWildcards(grp.*.*.*,3)",
        "multiplySeriesWithWildcards(grp.dc1.*.cpu,2)",
        "aggregateWithWildcards(grp.*.*.*,'median',1)",
        "aggregateWithWildcards(grp.*.*.*,'sumSeries',1,2)",
        "aggregateWithWildcards(grp.*.*.*,'count',1)",
        "aggregateWithWildcards(grp.*.*.*,'avg',2)",
        // Wildcards work on the names, so an aggregate's name is split as it is.
        "sumSeriesWithWildcards(sumSeries(grp.*.*.cpu),0)",
        // Positions are compared with ==, so 1.0 is position 1; negative ones match nothing.
        "sumSeriesWithWildcards(grp.*.*.*,1.0)",
        "sumSeriesWithWildcards(grp.*.*.*,-1)",
    ] {
        check(t);
    }
    both_refuse("aggregateWithWildcards(grp.*.*.*,'bogus',1)");
    // An unknown function over nothing is never called, so no error.
    check("aggregateWithWildcards(grp.nothing,'bogus',1)");
}

#[test]
fn group_by_node() {
    for t in [
        "groupByNode(grp.*.*.cpu,1)",
        "groupByNode(grp.*.*.cpu,1,'sum')",
        "groupByNode(grp.*.*.*,3,'max')",
        "groupByNode(grp.*.*.*,-1,'min')",
        "groupByNode(grp.*.*.*,-4,'sum')",
        // Past the last node: the number becomes a tag name, missing, so one group ''.
        "groupByNode(grp.*.*.*,7,'sum')",
        "groupByNode(grp.*.*.*,'name','sum')",
        "groupByNode(grp.*.*.*,'dc','sum')",
        "groupByNode(grp.*.*.cpu,2,'median')",
        "groupByNode(grp.*.*.cpu,1,'avg_zero')",
        "groupByNode(grp.*.*.cpu,1,'count')",
        "groupByNode(grp.*.*.cpu,1,'last')",
        // Series function callbacks: called with the group, first series renamed.
        "groupByNode(grp.*.*.cpu,1,'sumSeries')",
        "groupByNode(grp.*.*.cpu,1,'sum')",
        "groupByNode(grp.*.*.cpu,1,'avg')",
        "groupByNode(grp.*.*.cpu,1,'averageSeries')",
        "groupByNode(grp.*.*.cpu,1,'maxSeries')",
        "groupByNode(grp.*.*.cpu,1,'diffSeries')",
        "groupByNode(grp.*.*.cpu,1,'stddevSeries')",
        "groupByNode(grp.*.*.cpu,1,'rangeOfSeries')",
        "groupByNode(grp.*.*.cpu,1,'countSeries')",
        "groupByNode(grp.*.*.cpu,2,'multiplySeries')",
        "groupByNode(grp.*.*.cpu,1,'multiplySeries')",
        "groupByNode(grp.*.*.cpu,1,'asPercent')",
        // Aggregation names with the Series suffix that are not series functions.
        "groupByNode(grp.*.*.cpu,1,'medianSeries')",
        "groupByNode(grp.nothing.*,1,'sum')",
        // Different steps within a group (dc3's 300 s series).
        "groupByNode(grp.*.*.cpu,3,'sum')",
        // A name that is a call: the nodes are read from its first path expression.
        "groupByNode(sumSeries(grp.*.*.cpu),1,'sum')",
        "groupByNode(sumSeries(grp.dc1.*.cpu,grp.dc2.*.cpu),1,'sum')",
        "groupByNode(sumSeriesWithWildcards(grp.*.*.cpu,1),1,'sum')",
        "groupByNode(grp.*.*.cpu,callback='sum',nodeNum=1)",
        // A fractional number names a (missing) tag.
        "groupByNode(grp.*.*.cpu,1.5,'sum')",
    ] {
        check(t);
    }
    both_refuse("groupByNode(grp.*.*.cpu,1,'bogus')");
    // An integral float node: graphite-web indexes the node list with the float (TypeError,
    // 500); Carbide takes it as the node number (a deliberate difference).
    let mut r = fixture();
    let one_point_oh = [
        ("target", "groupByNode(grp.*.*.cpu,1.0,'sum')"),
        ("from", "-1h"),
        ("format", "json"),
    ];
    let ((cs, cb), (gs, _)) = r.both(&one_point_oh);
    assert_eq!((cs, gs), (200, 500));
    let ((_, one), _) = r.both(&[
        ("target", "groupByNode(grp.*.*.cpu,1,'sum')"),
        ("from", "-1h"),
        ("format", "json"),
    ]);
    assert_eq!(cb, one);
    drop(r);
    both_refuse("groupByNode(grp.*.*.cpu,1,'bogusSeries')");
}

#[test]
fn group_by_nodes() {
    for t in [
        "groupByNodes(grp.*.*.*,'sum',1,3)",
        "groupByNodes(grp.*.*.*,'average',3,1)",
        "groupByNodes(grp.*.*.*,'sumSeries',2)",
        "groupByNodes(grp.*.*.*,'max',1,'name')",
        "groupByNodes(grp.*.*.*,'sum')",
        "groupByNodes(grp.*.*.*,'sum',0,1,2,3)",
        "groupByNodes(grp.*.*.*,'range',-2)",
        "groupByNodes(grp.*.*.*,'median',1,1)",
        "groupByNodes(grp.nothing,'sum',1)",
    ] {
        check(t);
    }
}

#[test]
fn as_percent_without_nodes() {
    for t in [
        // Total: the sum of the list.
        "asPercent(cmb.web*.cpu)",
        "pct(cmb.web*.cpu)",
        "asPercent(cmb.web1.cpu)",
        "asPercent(cmb.web4.cpu)",
        "asPercent(cmb.web*.cpu,None)",
        // A number.
        "asPercent(cmb.web*.cpu,100)",
        "asPercent(cmb.web*.cpu,1.5)",
        "asPercent(cmb.web*.cpu,0)",
        "asPercent(cmb.web*.cpu,-2.5e3)",
        // Python divides by True as by 1; False counts as zero.
        "asPercent(cmb.web*.cpu,true)",
        "asPercent(cmb.web*.cpu,false)",
        // One series.
        "asPercent(cmb.web*.cpu,cmb.web2.cpu)",
        "asPercent(cmb.web*.cpu,cmb.web3.cpu)",
        "asPercent(cmb.web1.cpu,cmb.web4.cpu)",
        "asPercent(cmb.web*.cpu,sumSeries(cmb.web*.cpu))",
        // As many series: paired by sorted name.
        "asPercent(lst.*.x,lst.{a,b,c}.y)",
        "asPercent(lst.{c,a,b}.x,lst.{b,a,c}.y)",
        "asPercent(cmb.web1.cpu,cmb.web2.cpu)",
        // Nothing: [] whatever the total.
        "asPercent(cmb.nothing)",
        "asPercent(cmb.nothing,100)",
        "asPercent(cmb.nothing,cmb.web1.cpu)",
    ] {
        check(t);
    }
    both_refuse("asPercent(cmb.web*.cpu,lst.*.x)");
    both_refuse("asPercent(cmb.web*.cpu,cmb.nothing)");
    // graphite-web divides by the string (TypeError, 500); Carbide refuses it.
    graphite_fails_carbide_refuses("asPercent(cmb.web1.cpu,'abc')");
}

/// With different steps graphite-web consolidates the values to the common step but labels
/// them with each series' own start and step (its asPercent builds the result from the input
/// series' bounds after normalize() changed only how they iterate). Carbide copies that.
#[test]
fn as_percent_different_steps() {
    for t in [
        "asPercent(cmb.{web1,slow}.cpu)",
        "asPercent(cmb.{web1,slow}.cpu,50)",
        "asPercent(cmb.web*.cpu,cmb.slow.cpu)",
        "asPercent(cmb.slow.cpu,cmb.web1.cpu)",
        "asPercent(cmb.{mid,slow}.cpu,cmb.{web1,web2}.cpu)",
        "asPercent(pct.e.*,None,1)",
        "asPercent(pct.e.used*,pct.e.total*,1)",
    ] {
        check(t);
    }
}

#[test]
fn as_percent_with_nodes() {
    for t in [
        // Totals from the groups themselves.
        "asPercent(pct.*.*,None,1)",
        "asPercent(pct.*.used,None,1)",
        "asPercent(pct.*.*,None,'name')",
        "asPercent(pct.*.*,None,0)",
        // Totals from a list; unmatched series and totals become MISSING with null values.
        "asPercent(pct.*.used,pct.*.total,1)",
        "asPercent(pct.*.used*,pct.*.total*,1)",
        "asPercent(pct.{a,b}.used,pct.{a,b}.total,1)",
        "asPercent(pct.{a,c}.used,pct.{a,d}.total,1)",
        "pct(pct.*.used,pct.*.total,1)",
        "asPercent(pct.nothing,pct.*.total,1)",
    ] {
        check(t);
    }
    // A number total with nodes is refused.
    both_refuse("asPercent(pct.*.used,100,1)");
    // Series and totals that never pair leave graphite-web without bounds for the MISSING
    // series (an UnboundLocalError, 500); Carbide says so with a 400.
    graphite_fails_carbide_refuses("asPercent(pct.c.used,pct.d.total,1)");
    graphite_fails_carbide_refuses("asPercent(pct.*.used,pct.*.total,1,2)");
}

#[test]
fn percentile_of_series() {
    for t in [
        "percentileOfSeries(cmb.web*.cpu,50)",
        "percentileOfSeries(cmb.web*.cpu,50,true)",
        "percentileOfSeries(cmb.web*.cpu,95)",
        "percentileOfSeries(cmb.web*.cpu,99.9)",
        "percentileOfSeries(cmb.web*.cpu,12.34567)",
        "percentileOfSeries(cmb.web*.cpu,0.5,True)",
        "percentileOfSeries(cmb.web*.cpu,100)",
        "percentileOfSeries(cmb.web1.cpu,30,interpolate=true)",
        "percentileOfSeries(cmb.web4.cpu,50)",
        "percentileOfSeries(grp.*.*.*,25,true)",
        "percentileOfSeries(cmb.nothing,50)",
        "percentileOfSeries(cmb.nothing,50,true)",
    ] {
        check(t);
    }
    both_refuse("percentileOfSeries(cmb.web*.cpu,0)");
    both_refuse("percentileOfSeries(cmb.web*.cpu,-5)");
    // graphite-web indexes past the sorted values (IndexError, 500); Carbide answers 400.
    graphite_fails_carbide_refuses("percentileOfSeries(cmb.web*.cpu,100,true)");
    graphite_fails_carbide_refuses("percentileOfSeries(cmb.web*.cpu,150)");
}

#[test]
fn series_lists() {
    for t in [
        "sumSeriesLists(lst.*.x,lst.{a,b,c}.y)",
        "diffSeriesLists(lst.*.x,lst.{a,b,c}.y)",
        "multiplySeriesLists(lst.*.x,lst.{a,b,c}.y)",
        "divideSeriesLists(lst.*.x,lst.{a,b,c}.y)",
        "divideSeriesLists(lst.{a,b}.x,lst.{b,s}.y)",
        "sumSeriesLists(lst.{a,b}.x,lst.{b,s}.y)",
        "sumSeriesLists(lst.a.x,lst.a.x)",
        "aggregateSeriesLists(lst.*.x,lst.{a,b,c}.y,'average')",
        "aggregateSeriesLists(lst.*.x,lst.{a,b,c}.y,'avg')",
        "aggregateSeriesLists(lst.*.x,lst.{a,b,c}.y,'rangeOfSeries')",
        "aggregateSeriesLists(lst.*.x,lst.{a,b,c}.y,'avg_zero',0.6)",
        "aggregateSeriesLists(lst.*.x,lst.{a,b,c}.y,'count',xFilesFactor=1)",
        "aggregateSeriesLists(lst.nothing,lst.none,'bogus')",
        "sumSeriesLists(lst.nothing,lst.none)",
        "divideSeriesLists(lst.nothing,lst.none)",
        "sumSeries(sumSeriesLists(lst.*.x,lst.{a,b,c}.y))",
    ] {
        check(t);
    }
    both_refuse("sumSeriesLists(lst.*.x,lst.a.y)");
    both_refuse("divideSeriesLists(lst.*.x,lst.a.y)");
    both_refuse("aggregateSeriesLists(lst.*.x,lst.{a,b,c}.y,'bogus')");
}

#[test]
fn errors() {
    both_refuse("aggregate(cmb.web*.cpu,'bogus')");
    both_refuse("aggregate(cmb.nothing,'bogus')");
    // A function that is not a string: graphite-web slices it (TypeError, 500).
    graphite_fails_carbide_refuses("aggregate(cmb.web1.cpu,5)");
    // Without arguments graphite-web does not enforce the required parameter (input validation
    // only logs) and answers []; Carbide refuses the call (a deliberate difference).
    let ((cs, _), (gs, gb)) = fixture().both(&[("target", "sumSeries()"), ("format", "json")]);
    assert_eq!((cs, gs, gb.as_str()), (400, 200, "[]"));
    graphite_fails_carbide_refuses("groupByNode(grp.*.*.cpu)");
}

/// Every Combine function and alias is described in `/functions` exactly as graphite-web 1.1.10
/// describes it (signature, group, parameters), except the description, which is our own.
#[test]
fn functions_metadata_matches_graphite_web() {
    let names = [
        "aggregate",
        "aggregateSeriesLists",
        "aggregateWithWildcards",
        "asPercent",
        "averageSeries",
        "averageSeriesWithWildcards",
        "avg",
        "countSeries",
        "diffSeries",
        "diffSeriesLists",
        "divideSeries",
        "divideSeriesLists",
        "groupByNode",
        "groupByNodes",
        "maxSeries",
        "minSeries",
        "multiplySeries",
        "multiplySeriesLists",
        "multiplySeriesWithWildcards",
        "pct",
        "percentileOfSeries",
        "rangeOfSeries",
        "stddevSeries",
        "sum",
        "sumSeries",
        "sumSeriesLists",
        "sumSeriesWithWildcards",
    ];
    let ours: Vec<&str> = carbide::query::functions::combine::FUNCTIONS
        .iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(ours, names, "the Combine table");
    let defs = names
        .iter()
        .map(|name| carbide::query::functions::lookup(name).expect("registered"));
    assert_eq!(render::metadata_matches_spec(defs), names.len());
}

/// percentileOfSeries over rows holding NaN (stored in the files), which CPython's sort leaves
/// where its `<` comparisons put them; Carbide's sort once panicked on such rows (found by the
/// `render` fuzz target).
#[test]
fn percentile_of_series_with_nan_values() {
    let mut r = fixture();
    for k in 0..9i64 {
        r.metric(
            &format!("pnan.s{k}.v"),
            "60s:1d",
            &series(120, 60, |i| {
                Some(match (i + k * 5) % 11 {
                    1 | 8 => f64::NAN,
                    3 => f64::INFINITY,
                    5 => -(i as f64) / 3.0,
                    _ => (i * k) as f64 / 7.0 - 4.0,
                })
            }),
        );
    }
    for n in ["1", "10", "25", "50", "75", "90", "100"] {
        r.check(&format!("percentileOfSeries(pnan.*.v,{n})"), "-1h", "now");
        if n != "100" {
            // 100 with interpolation is graphite-web's IndexError (a 500).
            r.check(
                &format!("percentileOfSeries(pnan.*.v,{n},true)"),
                "-1h",
                "now",
            );
        }
    }
    r.check("aggregate(pnan.*.v,'median')", "-1h", "now");
    r.check("aggregate(pnan.*.v,'median')", "-90min", "now");
}
