//! The bucketing and window functions (summarize, smartSummarize, hitcount, movingWindow and the
//! moving* family, exponentialMovingAverage, stdev, nPercentile) rendered by Carbide and by
//! graphite-web 1.1.10 over the same whisper files, JSON compared exactly.
//!
//! One graphite-web process serves every test here (it takes seconds to start); each test uses
//! its own top-level metric prefix.

mod common;

use std::sync::MutexGuard;

use common::render::{self, RenderCompare};

/// A fixed clock: a multiple of 60 but not of 300 or 3600, so alignment matters.
const NOW: i64 = 1_795_576_320;

fn shared() -> MutexGuard<'static, RenderCompare> {
    render::shared(|| RenderCompare::new(NOW))
}

fn ago(seconds: i64) -> String {
    (NOW - seconds).to_string()
}

const AGG_FUNCS: &[&str] = &[
    "sum", "total", "average", "avg", "avg_zero", "median", "min", "max", "diff", "stddev",
    "count", "range", "rangeOf", "multiply", "last", "current",
];

/// Series under `prefix` (see `RenderCompare::wobbly_series`).
fn fixture(r: &mut RenderCompare, prefix: &str) {
    r.wobbly_series(prefix);
}

#[test]
fn summarize_conformance() {
    let mut r = shared();
    fixture(&mut r, "sz");
    let now = NOW.to_string();
    for from in [ago(3600), ago(7200 + 17), "-100min".to_string()] {
        for target in [
            "summarize(sz.*, \"5min\")",
            "summarize(sz.*, '1h')",
            "summarize(sz.*, '7min', 'avg')",
            "summarize(sz.*, '90s', 'max')",
            "summarize(sz.*, \"10min\", \"sum\", true)",
            "summarize(sz.*, '13min', 'average', alignToFrom=true)",
            "summarize(sz.*, '1d', 'last')",
            "summarize(sz.full, '30s')",
            "summarize(sz.nothing.*, '5min')",
            "summarize(sz.nothing.*, '5min', 'bogus')",
        ] {
            r.check(target, &from, &now);
        }
        for func in AGG_FUNCS {
            r.check(&format!("summarize(sz.*, '15min', '{func}')"), &from, &now);
            r.check(
                &format!("summarize(sz.*, '15min', '{func}', true)"),
                &from,
                &now,
            );
        }
    }
    // Three days: the 300 s archive, and the coarse series' own step.
    for target in [
        "summarize(sz.*, '1h')",
        "summarize(sz.*, '1h', 'avg', true)",
        "summarize(sz.*, '12min', 'median')",
    ] {
        r.check(target, "-3d", "now");
    }
    // xFilesFactor of the request applies to each bucket.
    for xff in ["0.5", "1"] {
        r.check_params(&[
            ("target", "summarize(sz.*, '10min', 'avg')"),
            ("from", "-2h"),
            ("until", "now"),
            ("format", "json"),
            ("xFilesFactor", xff),
        ]);
    }
    for mdp in ["5", "17", "100"] {
        r.check_params(&[
            ("target", "summarize(sz.*, '5min')"),
            ("from", "-6h"),
            ("until", "now"),
            ("format", "json"),
            ("maxDataPoints", mdp),
        ]);
    }
}

#[test]
fn smart_summarize_conformance() {
    let mut r = shared();
    fixture(&mut r, "ss");
    let now = NOW.to_string();
    for from in [ago(3600 + 17), ago(6 * 3600 + 1234)] {
        for target in [
            "smartSummarize(ss.*, '5min')",
            "smartSummarize(ss.*, '1h', 'avg')",
            "smartSummarize(ss.*, '7min', 'max', 'minutes')",
            "smartSummarize(ss.*, '1h', 'sum', 'hours')",
            "smartSummarize(ss.*, '1h', 'sum', alignTo='days')",
            "smartSummarize(ss.*, '10min', 'average', true)",
            "smartSummarize(ss.*, '10min', 'average', false)",
            "smartSummarize(ss.*, '10min', 'average', 'seconds')",
            "smartSummarize(ss.nothing, '10min')",
        ] {
            r.check(target, &from, &now);
        }
        for func in AGG_FUNCS {
            r.check(
                &format!("smartSummarize(ss.*, '20min', '{func}')"),
                &from,
                &now,
            );
        }
    }
    for target in [
        "smartSummarize(ss.*, '1d', 'sum', 'weeks')",
        "smartSummarize(ss.*, '1d', 'avg', 'months')",
        "smartSummarize(ss.*, '1d', 'avg', 'years')",
        "smartSummarize(ss.*, '1h', 'avg', 'days')",
    ] {
        r.check(target, "-3d", "now");
    }
    // Alignment happens in the request's time zone.
    for tz in ["Europe/Amsterdam", "America/St_Johns", "Asia/Kolkata"] {
        r.check_params(&[
            ("target", "smartSummarize(ss.*, '1h', 'sum', 'days')"),
            ("from", "-20h"),
            ("until", "now"),
            ("format", "json"),
            ("tz", tz),
        ]);
    }
}

#[test]
fn hitcount_conformance() {
    let mut r = shared();
    fixture(&mut r, "hc");
    let now = NOW.to_string();
    for from in [ago(3600), ago(7200 + 17), ago(5 * 3600 + 300)] {
        for target in [
            "hitcount(hc.*, '5min')",
            "hitcount(hc.*, \"1h\")",
            "hitcount(hc.*, '7min')",
            "hitcount(hc.*, '90s')",
            "hitcount(hc.*, '30s')",
            "hitcount(hc.*, '5min', true)",
            "hitcount(hc.*, '1h', alignToInterval=true)",
            "hitcount(hc.*, '7min', true)",
            "hitcount(hc.*, '45s', true)",
            "hitcount(hc.*, '1d', true)",
            "hitcount(hc.nothing, '1h')",
        ] {
            r.check(target, &from, &now);
        }
    }
    for target in ["hitcount(hc.*, '1h')", "hitcount(hc.*, '1d', true)"] {
        r.check(target, "-3d", "now");
    }
    r.check_params(&[
        ("target", "hitcount(hc.*, '10min', true)"),
        ("from", "-5h"),
        ("until", "now"),
        ("format", "json"),
        ("tz", "Asia/Kolkata"),
    ]);
    r.check_params(&[
        ("target", "hitcount(hc.*, '1min')"),
        ("from", "-6h"),
        ("until", "now"),
        ("format", "json"),
        ("maxDataPoints", "40"),
    ]);
}

#[test]
fn moving_conformance() {
    let mut r = shared();
    fixture(&mut r, "mv");
    let now = NOW.to_string();
    for from in [ago(3600), ago(3 * 3600 + 17)] {
        for f in [
            "movingAverage",
            "movingSum",
            "movingMedian",
            "movingMin",
            "movingMax",
        ] {
            for window in ["5", "1", "0", "'5min'", "\"10min\"", "'1h'", "'90s'", "7.5"] {
                r.check(&format!("{f}(mv.*, {window})"), &from, &now);
            }
            r.check(&format!("{f}(mv.*, 10, 0.5)"), &from, &now);
            r.check(&format!("{f}(mv.*, '10min', xFilesFactor=1)"), &from, &now);
            r.check(&format!("{f}(mv.nothing, 5)"), &from, &now);
        }
        for func in AGG_FUNCS {
            r.check(&format!("movingWindow(mv.*, 6, '{func}')"), &from, &now);
            r.check(
                &format!("movingWindow(mv.*, '12min', '{func}', 0.3)"),
                &from,
                &now,
            );
        }
        r.check("movingWindow(mv.*, 4)", &from, &now);
    }
    // The earlier start crosses the 1 d boundary of the fine archive: the whole fetch comes from
    // the 300 s archive, and an interval window counts points of that step.
    for target in [
        "movingAverage(mv.*, '1h')",
        "movingAverage(mv.*, 20)",
        "movingSum(mv.full, '30min')",
    ] {
        r.check(target, "-23h50min", "now");
    }
    r.check("movingAverage(mv.*, '2h')", "-3d", "now");
    r.check_params(&[
        ("target", "movingAverage(mv.*, '10min')"),
        ("from", "-6h"),
        ("until", "now"),
        ("format", "json"),
        ("maxDataPoints", "50"),
    ]);
    r.check_params(&[
        ("target", "movingMax(mv.gaps, 3)"),
        ("from", "-3h"),
        ("until", "now"),
        ("format", "json"),
        ("xFilesFactor", "0.6"),
    ]);
}

#[test]
fn n_percentile_conformance() {
    let mut r = shared();
    fixture(&mut r, "np");
    for from in ["-1h", "-5h", "-3d"] {
        for n in [
            "50", "95", "99.9", "100", "1", "0.5", "33.3333", "-50", "-10",
        ] {
            r.check(&format!("nPercentile(np.*, {n})"), from, "now");
        }
        r.check("nPercentile(np.nothing, 50)", from, "now");
    }
    r.check_params(&[
        ("target", "nPercentile(np.*, 90)"),
        ("from", "-6h"),
        ("until", "now"),
        ("format", "json"),
        ("maxDataPoints", "7"),
    ]);
}

#[test]
fn exponential_moving_average_conformance() {
    let mut r = shared();
    fixture(&mut r, "ema");
    for from in ["-1h", "-4h"] {
        for window in ["5", "1", "0", "20", "'5min'", "'1h'", "\"90s\""] {
            r.check(
                &format!("exponentialMovingAverage(ema.*, {window})"),
                from,
                "now",
            );
        }
        r.check("exponentialMovingAverage(ema.nothing, 5)", from, "now");
    }
    r.check("exponentialMovingAverage(ema.*, '1h')", "-23h30min", "now");
}

#[test]
fn stdev_conformance() {
    let mut r = shared();
    fixture(&mut r, "sd");
    for from in ["-1h", "-5h", "-3d"] {
        for target in [
            "stdev(sd.*, 5)",
            "stdev(sd.*, 1)",
            "stdev(sd.*, 0)",
            "stdev(sd.*, 10, 0.0)",
            "stdev(sd.*, 10, 0.5)",
            "stdev(sd.*, 30, windowTolerance=1)",
            "stdev(sd.nothing, 5)",
        ] {
            r.check(target, from, "now");
        }
    }
}

/// Arguments graphite-web fails on with a 500 (division by zero, IndexError, an exception from
/// the interval parser) are 400s here, a deliberate difference.
#[test]
fn errors() {
    let mut r = shared();
    fixture(&mut r, "er");
    for target in [
        "summarize(er.full, '0min')",
        "summarize(er.full, 'xyz')",
        "hitcount(er.full, '0s')",
        "smartSummarize(er.full, '1h', 'sum', 'fortnight')",
        "movingAverage(er.full, 'bogus')",
        "nPercentile(er.full, 0)",
        "nPercentile(er.full, 250)",
        "exponentialMovingAverage(er.full, 'bogus')",
        "exponentialMovingAverage(er.full, -1)",
        "stdev(er.full, -3)",
        "smartSummarize(er.full, '1h', 'sum', 1)",
    ] {
        let params = [
            ("target", target),
            ("from", "-1h"),
            ("until", "now"),
            ("format", "json"),
        ];
        let ((cs, cb), (gs, gb)) = r.both(&params);
        assert_eq!(gs, 500, "graphite-web for {target}: {gb}");
        assert_eq!(cs, 400, "carbide for {target}: {cb}");
    }
    // An unknown aggregation function is graphite-web's own 400.
    for target in [
        "summarize(er.full, '5min', 'bogus')",
        "movingWindow(er.full, 5, 'bogus')",
    ] {
        let params = [
            ("target", target),
            ("from", "-1h"),
            ("until", "now"),
            ("format", "json"),
        ];
        let ((cs, cb), (gs, gb)) = r.both(&params);
        assert_eq!(gs, 400, "graphite-web for {target}: {gb}");
        assert_eq!(cs, 400, "carbide for {target}: {cb}");
    }
}

/// graphite-web re-evaluates the call's first argument expression, whatever it is, with the
/// earlier start: nested calls included.
#[test]
fn refetch_of_nested_arguments() {
    let mut r = shared();
    fixture(&mut r, "nest");
    for target in [
        "movingAverage(scale(nest.gaps, 2), '5min')",
        "movingAverage(movingAverage(nest.full, 5), 5)",
        "movingAverage(aggregate(nest.*, 'sum'), 3)",
        "summarize(alias(nest.full, 'renamed'), '5min')",
    ] {
        r.check(target, "-2h", "now");
    }
}

/// First arguments whose series names differ from their path expressions: the re-fetch must
/// evaluate the argument's expression, not the series' path expressions.
#[test]
fn refetch_of_renaming_arguments() {
    let mut r = shared();
    fixture(&mut r, "ren");
    for target in [
        "movingMax(alias(ren.full, 'renamed'), 5)",
        "movingAverage(aliasByNode(ren.*, 1), '10min')",
        "exponentialMovingAverage(alias(ren.gaps, 'renamed'), 4)",
        "smartSummarize(aliasByNode(ren.*, 1), '1h', 'sum', 'hours')",
        "hitcount(alias(ren.full, 'renamed'), '5min', true)",
    ] {
        r.check(target, "-2h", "now");
    }
}

/// The re-fetch happens without the template's replacements, as in graphite-web, so
/// `template(movingAverage(a.$x, 5), x=...)` finds nothing there.
#[test]
fn refetch_inside_template() {
    let mut r = shared();
    fixture(&mut r, "tpl");
    r.check("template(movingAverage(tpl.$x, 5), x='full')", "-2h", "now");
    r.check(
        "template(summarize(tpl.$x, '5min'), x='full')",
        "-2h",
        "now",
    );
}

/// A deliberate difference: graphite-web's evaluator consumes the piped calls of the expression
/// it hands to the function, so the re-fetch sees only the head of the pipe
/// (`x | scale(3) | movingSum(4)` sums the unscaled x and is named `movingSum(x,4)`). Carbide
/// answers as the equivalent nested target.
#[test]
fn refetch_after_pipe_keeps_the_pipe() {
    let mut r = shared();
    fixture(&mut r, "qk");
    let params = |target| {
        [
            ("target", target),
            ("from", "-2h"),
            ("until", "now"),
            ("format", "json"),
        ]
    };
    let piped = "qk.full | scale(3) | movingSum(4)";
    let nested = "movingSum(scale(qk.full,3),4)";
    let (cs, _, carbide) = r.carbide(&params(piped));
    let (gs, _, graphite) = r.graphite(&params(piped));
    let (es, _, expected) = r.graphite(&params(nested));
    assert_eq!((cs, gs, es), (200, 200, 200));
    let graphite = common::render::parse_json(&graphite);
    assert_eq!(
        graphite[0]["target"], "movingSum(qk.full,4)",
        "graphite-web's quirk"
    );
    let same = common::render::same(
        &common::render::parse_json(&carbide),
        &common::render::parse_json(&expected),
        0.0,
        "$",
    );
    assert!(same.is_ok(), "{same:?}\n{carbide}\n{expected}");
}

/// A negative window count: graphite-web slices with it (Python's negative indexing) and answers
/// shifted nonsense; Carbide refuses it, a deliberate difference.
#[test]
fn negative_window_refused() {
    let mut r = shared();
    fixture(&mut r, "neg");
    for target in [
        "movingAverage(neg.full, -2)",
        "movingWindow(neg.full, -3, 'sum')",
    ] {
        let params = [
            ("target", target),
            ("from", "-1h"),
            ("until", "now"),
            ("format", "json"),
        ];
        let ((cs, cb), (gs, gb)) = r.both(&params);
        assert_eq!(gs, 200, "graphite-web for {target}: {gb}");
        assert_eq!(cs, 400, "carbide for {target}: {cb}");
    }
}

/// Values Python's `<` cannot order (NaN, stored in the file) among finite and infinite ones:
/// graphite-web sorts them with CPython's timsort, which leaves NaN where its comparisons put
/// it, and the percentile picks whatever lands at its rank. Carbide once panicked here (Rust's
/// sort refuses a comparison that is not a total order; found by the `render` fuzz target with
/// `nPercentile(a.b.*, 90)`).
#[test]
fn n_percentile_with_nan_values() {
    let mut r = shared();
    let nan_among = |i: i64| -> Option<f64> {
        Some(match i % 9 {
            2 => f64::NAN,
            4 => f64::INFINITY,
            6 => -render::wobble(i),
            7 => f64::NEG_INFINITY,
            _ => render::wobble(i),
        })
    };
    let pts = render::points_oldest_first(NOW, 600, 60, nan_among);
    r.metric("npnan.mixed", "60s:1d", &pts);
    let pts = render::points_oldest_first(NOW, 80, 60, |i| {
        Some(if i == 3 { f64::NAN } else { 50.0 - i as f64 })
    });
    r.metric("npnan.down", "60s:1d", &pts);
    for from in ["-1h", "-2h", "-10min", "-70min"] {
        for n in ["1", "10", "25", "50", "75", "90", "99", "100"] {
            r.check(&format!("nPercentile(npnan.*, {n})"), from, "now");
        }
        r.check("summarize(npnan.*, '7min', 'median')", from, "now");
        r.check("aggregate(npnan.*, 'median')", from, "now");
    }
}
