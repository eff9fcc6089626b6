//! The functions of src/query/functions/more_calculate.rs (Holt-Winters, linearRegression,
//! round/exp/logit/sigmoid/powSeries, timeSlice/timeStack, aggregateLine, weightedAverage,
//! compressPeriodicGaps and the generated series) rendered by Carbide and by graphite-web 1.1.10
//! over the same whisper files, JSON compared exactly.
//!
//! Date arguments are absolute here: graphite-web reads them against the wall clock, ignoring
//! the request's `now` that these tests pin (Carbide uses the request's `now`, a deliberate
//! difference; the two agree whenever `now` is not given). randomWalk cannot match Python's
//! unseeded `random`, so only its shape is compared.

mod common;

use std::sync::MutexGuard;

use carbide::whisper::{self, CreateOptions, WriteOptions};
use common::graphite_web::GraphiteWeb;
use common::render::{self, parse_json, wobble, RenderCompare};

/// A fixed clock (2026-11-25 03:12:00 UTC): a multiple of 60 but not of 300 or 3600.
const NOW: i64 = 1_795_576_320;

fn shared() -> MutexGuard<'static, RenderCompare> {
    render::shared(|| RenderCompare::new(NOW))
}

fn points(n: i64, step: i64, f: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
    render::points_oldest_first(NOW, n, step, f)
}

fn ago(seconds: i64) -> String {
    (NOW - seconds).to_string()
}

/// Series under `prefix` (see `RenderCompare::wobbly_series`).
fn fixture(r: &mut RenderCompare, prefix: &str) {
    r.wobbly_series(prefix);
}

fn check_all(r: &mut RenderCompare, targets: &[&str], froms: &[&str]) {
    for from in froms {
        for target in targets {
            r.check(target, from, "now");
        }
    }
}

fn check_mdp(r: &mut RenderCompare, target: &str, from: &str, mdps: &[&str]) {
    for mdp in mdps {
        r.check_params(&[
            ("target", target),
            ("from", from),
            ("until", "now"),
            ("format", "json"),
            ("maxDataPoints", mdp),
        ]);
    }
}

/// Both answer with an error: graphite-web with `gw_status`, Carbide with 400.
fn check_error(r: &mut RenderCompare, target: &str, from: &str, gw_status: u16) {
    let params = [
        ("target", target),
        ("from", from),
        ("until", "now"),
        ("format", "json"),
    ];
    let ((cs, cb), (gs, gb)) = r.both(&params);
    assert_eq!(gs, gw_status, "graphite-web for {target}: {gb}");
    assert_eq!(cs, 400, "carbide for {target}: {cb}");
}

/// A float for an integer parameter: Carbide refuses it (400), as graphite-web does with
/// ENFORCE_INPUT_VALIDATION; graphite-web's default only logs the validation error and runs the
/// function anyway (with varying results), so its answer is not compared.
fn check_rejected(r: &mut RenderCompare, target: &str) {
    let params = [
        ("target", target),
        ("from", "-1h"),
        ("until", "now"),
        ("format", "json"),
    ];
    let (cs, _, cb) = r.carbide(&params);
    assert_eq!(cs, 400, "carbide for {target}: {cb}");
}

#[test]
fn round_conformance() {
    let mut r = shared();
    fixture(&mut r, "rd");
    r.metric(
        "rd2.ties",
        "60s:1d",
        &points(10, 60, |i| {
            Some(
                [
                    0.5, 1.5, 2.5, -0.5, 2.675, 1250.0, 1350.0, -1251.0, 0.125, 1e20,
                ][i as usize],
            )
        }),
    );
    check_all(
        &mut r,
        &[
            "round(rd.*)",
            "round(rd.*, 1)",
            "round(rd.*, 0)",
            "round(rd.*, 3)",
            "round(rd.*, -1)",
            "round(rd.*, precision=2)",
            "round(rd2.ties)",
            "round(rd2.ties, 2)",
            "round(rd2.ties, -2)",
            "round(rd2.ties, -3)",
            "round(rd2.ties, 1)",
            "round(rd2.ties, 20)",
            "round(rd2.ties, 1234567)",
            "round(rd.nothing)",
            "round(scale(rd.full, 0.001), 2)",
        ],
        &["-1h", "-3d"],
    );
    check_mdp(&mut r, "round(rd.*, 1)", "-6h", &["7", "100"]);
}

#[test]
fn time_slice_conformance() {
    let mut r = shared();
    fixture(&mut r, "tsl");
    let a = ago(1800);
    let b = ago(600);
    let c = ago(3000 + 17);
    let targets = [
        format!("timeSlice(tsl.*, '{a}', '{b}')"),
        format!("timeSlice(tsl.*, '{c}', '{b}')"),
        format!("timeSlice(tsl.*, '{b}', '{a}')"),
        "timeSlice(tsl.*, '02:30 20261125', '03:00 20261125')".to_string(),
        "timeSlice(tsl.*, '20261124', '02:00_20261125')".to_string(),
        format!("timeSlice(tsl.nothing, '{a}', '{b}')"),
        format!("timeSlice(tsl.full, startSliceAt='{a}', endSliceAt='{b}')"),
        format!("timeSlice(scale(tsl.gaps, 2), '{a}', '{b}')"),
    ];
    for from in [ago(3600), ago(3600 + 17), ago(5 * 86400)] {
        for t in &targets {
            r.check(t, &from, "now");
        }
    }
    // The default end is "now", which graphite-web reads from the wall clock: only the
    // datapoints can be compared.
    for from in [ago(3600), ago(3600 + 17)] {
        let target = format!("timeSlice(tsl.*, '{a}')");
        let params = [
            ("target", target.as_str()),
            ("from", from.as_str()),
            ("until", "now"),
            ("format", "json"),
        ];
        let ((cs, cb), (gs, gb)) = r.both(&params);
        assert_eq!((cs, gs), (200, 200), "{cb}\n{gb}");
        let (c, g) = (parse_json(&cb), parse_json(&gb));
        let (c, g) = (c.as_array().unwrap(), g.as_array().unwrap());
        assert_eq!(c.len(), g.len());
        for (x, y) in c.iter().zip(g) {
            assert_eq!(x["datapoints"], y["datapoints"]);
            let prefix = format!("timeSlice({}, {a}, ", x["tags"]["name"].as_str().unwrap());
            assert!(x["target"].as_str().unwrap().starts_with(&prefix));
            assert!(y["target"].as_str().unwrap().starts_with(&prefix));
        }
    }
    // A number instead of a time string: graphite-web calls .strip() on it (a 500).
    check_error(
        &mut r,
        &format!("timeSlice(tsl.*, {a}, {b})"),
        &ago(3600),
        500,
    );
    check_mdp(
        &mut r,
        &format!("timeSlice(tsl.*, '{c}', '{b}')"),
        &ago(3600),
        &["7", "100"],
    );
}

#[test]
fn time_stack_conformance() {
    let mut r = shared();
    fixture(&mut r, "tst");
    check_all(
        &mut r,
        &[
            "timeStack(tst.*, '1h', 0, 3)",
            "timeStack(tst.full, '10min', 1, 4)",
            "timeStack(tst.*, '-30min', 0, 2)",
            "timeStack(tst.*, '+30min', 0, 2)",
            "timeStack(tst.gaps, '1d', 0, 2)",
            "timeStack(tst.full)",
            "timeStack(tst.full, '1h', 3, 1)",
            "timeStack(tst.full, timeShiftUnit='2h', timeShiftEnd=2)",
            "timeStack(tst.nothing, '1h', 0, 3)",
            "timeStack(scale(tst.full, 2), '1h', 0, 2)",
            "tst.gaps|timeStack('1h', 0, 2)",
        ],
        &["-1h", "-2h"],
    );
    check_mdp(&mut r, "timeStack(tst.*, '1h', 0, 3)", "-3h", &["10", "50"]);
}

#[test]
fn aggregate_line_conformance() {
    let mut r = shared();
    fixture(&mut r, "agl");
    let mut targets = vec![
        "aggregateLine(agl.*)".to_string(),
        "aggregateLine(agl.*, keepStep=true)".to_string(),
        "aggregateLine(agl.nothing)".to_string(),
    ];
    for func in [
        "sum", "total", "average", "avg", "avg_zero", "median", "min", "max", "diff", "stddev",
        "count", "range", "rangeOf", "multiply", "last", "current",
    ] {
        targets.push(format!("aggregateLine(agl.*, '{func}')"));
        targets.push(format!("aggregateLine(agl.*, '{func}', true)"));
    }
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    check_all(&mut r, &targets, &["-1h", "-3d"]);
    check_mdp(&mut r, "aggregateLine(agl.*, 'max', true)", "-6h", &["7"]);
    check_error(&mut r, "aggregateLine(agl.*, 'bogus')", "-1h", 400);
    check_rejected(&mut r, "round(agl.*, 1.5)");
    check_rejected(&mut r, "timeStack(agl.full, '1h', 0.5)");
}

#[test]
fn pow_series_conformance() {
    let mut r = shared();
    fixture(&mut r, "pws");
    r.metric(
        "pws2.base",
        "60s:1d",
        &points(60, 60, |i| (i % 5 != 2).then_some((i % 7) as f64 - 2.5)),
    );
    r.metric(
        "pws2.exp",
        "60s:1d",
        &points(60, 60, |i| {
            (i % 6 != 1).then_some((i % 4) as f64 * 0.5 - 0.5)
        }),
    );
    check_all(
        &mut r,
        &[
            "powSeries(pws.full, pws.gaps)",
            "powSeries(pws.*)",
            "powSeries(pws.coarse, pws.full)",
            "powSeries(pws2.base, pws2.exp)",
            "powSeries(pws2.exp, pws2.base)",
            "powSeries(pws2.base, pws2.exp, pws2.base)",
            "powSeries(pws2.base)",
            "powSeries(pws.nothing)",
            "powSeries(pws.nothing, pws2.base)",
        ],
        &["-1h", "-3d"],
    );
    check_mdp(&mut r, "powSeries(pws2.base, pws2.exp)", "-1h", &["7"]);
}

#[test]
fn weighted_average_conformance() {
    let mut r = shared();
    for host in ["a", "b", "c"] {
        let k = host.as_bytes()[0] as i64;
        r.metric(
            &format!("wav.{host}.mean"),
            "60s:1d,300s:7d",
            &points(600, 60, |i| ((i + k) % 13 != 3).then(|| wobble(i + k))),
        );
        r.metric(
            &format!("wav.{host}.count"),
            "60s:1d,300s:7d",
            &points(600, 60, |i| {
                ((i * k) % 11 != 2).then(|| ((i + k) % 17) as f64)
            }),
        );
    }
    r.metric(
        "wav.d.count",
        "300s:7d",
        &points(100, 300, |i| Some((i % 5) as f64)),
    );
    r.metric("wav.e.mean", "60s:1d", &[]);
    check_all(
        &mut r,
        &[
            "weightedAverage(wav.{a,b,c}.mean, wav.{a,b,c}.count, 1)",
            "weightedAverage(wav.{c,a,b}.mean, wav.{b,c,a}.count, 1)",
            "weightedAverage(wav.{a,b,c}.mean, wav.{a,b,c}.count, 0)",
            "weightedAverage(wav.{a,b,c}.mean, wav.{a,b,c}.count)",
            "weightedAverage(wav.{a,b,c}.mean, wav.{a,b,c}.count, 1, 0)",
            "weightedAverage(wav.{a,b}.mean, wav.{a,d}.count, 1)",
            "weightedAverage(wav.{b,e}.mean, wav.{b,d}.count, 1)",
            "weightedAverage(wav.{a,b,c}.mean, wav.{a,b,c}.count, 'name')",
            "weightedAverage(scale(wav.{a,b,c}.mean, 2), wav.{a,b,c}.count, 1)",
            "weightedAverage(wav.nothing, wav.nothing, 1)",
        ],
        &["-1h", "-2d"],
    );
    check_error(
        &mut r,
        "weightedAverage(wav.{a,b}.mean, wav.*.count, 1)",
        "-1h",
        400,
    );
    check_error(
        &mut r,
        "weightedAverage(wav.*.mean, wav.{a,b,c}.count, 1)",
        "-1h",
        400,
    );
    for xff in ["0.5", "1"] {
        r.check_params(&[
            (
                "target",
                "weightedAverage(wav.{a,b,c}.mean, wav.{a,b,c}.count, 1)",
            ),
            ("from", "-1h"),
            ("until", "now"),
            ("format", "json"),
            ("xFilesFactor", xff),
        ]);
    }
}

#[test]
fn exp_logit_sigmoid_conformance() {
    let mut r = shared();
    fixture(&mut r, "els");
    r.metric(
        "els2.unit",
        "60s:1d",
        &points(20, 60, |i| {
            (i != 7)
                .then(|| [0.0, 1.0, 0.5, 0.25, -0.5, 2.0, 0.999, 0.0, 1e-9, 0.75][i as usize % 10])
        }),
    );
    check_all(
        &mut r,
        &[
            "exp(els.*)",
            "exp(scale(els.full, 0.1))",
            "exp(els2.unit)",
            "logit(els.*)",
            "logit(els2.unit)",
            "sigmoid(els.*)",
            "sigmoid(els2.unit)",
            "exp(els.nothing)",
            "logit(sigmoid(els.full))",
        ],
        &["-1h", "-3d"],
    );
    check_mdp(&mut r, "sigmoid(els.*)", "-6h", &["7"]);
    // exp() overflow is an uncaught OverflowError in graphite-web.
    check_error(&mut r, "exp(scale(els.full, 1000))", "-1h", 500);
}

#[test]
fn generated_series_conformance() {
    let mut r = shared();
    check_all(
        &mut r,
        &[
            "identity('the.time')",
            "identity(\"a.b;tag=v\")",
            "time('t.series')",
            "timeFunction('t.series', 300)",
            "time('t', step=7)",
            "sin('s.series')",
            "sinFunction('s', 3)",
            "sin('s', 2, 17)",
            "sinFunction('s', amplitude=-4, step=600)",
        ],
        &["-1h", &ago(3600 + 17), "-2d"],
    );
    check_mdp(&mut r, "sin('s', 2, 17)", "-1h", &["10"]);
    for target in ["sin('s', 1.5)", "time('t', 2.5)", "identity(5)"] {
        check_rejected(&mut r, target);
    }
    // randomWalk: shape, name and step only (the values come from Python's unseeded random).
    for target in [
        "randomWalk('rw')",
        "randomWalkFunction('rw', 120)",
        "randomWalk('rw', 7)",
    ] {
        let params = [
            ("target", target),
            ("from", "-1h"),
            ("until", "now"),
            ("format", "json"),
        ];
        let ((cs, cb), (gs, gb)) = r.both(&params);
        assert_eq!((cs, gs), (200, 200), "{cb}\n{gb}");
        let (c, g) = (parse_json(&cb), parse_json(&gb));
        assert_eq!(c[0]["target"], g[0]["target"]);
        assert_eq!(c[0]["tags"], g[0]["tags"]);
        let (cp, gp) = (
            c[0]["datapoints"].as_array().unwrap(),
            g[0]["datapoints"].as_array().unwrap(),
        );
        assert_eq!(cp.len(), gp.len());
        assert_eq!(cp[0][0].as_f64(), Some(0.0));
        for (x, y) in cp.iter().zip(gp) {
            assert_eq!(x[1], y[1], "timestamps");
            assert!(x[0].as_f64().is_some(), "a value at every point");
        }
        for w in cp.windows(2) {
            let d = w[1][0].as_f64().unwrap() - w[0][0].as_f64().unwrap();
            assert!((-0.5..0.5).contains(&d), "walk step {d}");
        }
    }
}

#[test]
fn linear_regression_conformance() {
    let mut r = shared();
    fixture(&mut r, "lr");
    r.metric(
        "lr2.line",
        "60s:1d",
        &points(200, 60, |i| (i % 10 != 3).then_some(3.5 * i as f64 - 17.0)),
    );
    r.metric("lr2.single", "60s:1d", &[(NOW - 600, 5.0)]);
    let a = ago(7200);
    let b = ago(1800);
    let targets = [
        "linearRegression(lr.*)".to_string(),
        "linearRegression(lr2.*)".to_string(),
        format!("linearRegression(lr.*, '{a}')"),
        format!("linearRegression(lr.*, '{a}', '{b}')"),
        format!("linearRegression(lr2.line, '{a}', '{b}')"),
        "linearRegression(lr.full, '00:00 20261125', '02:00 20261125')".to_string(),
        format!("linearRegression(lr.nothing, '{a}')"),
        format!("linearRegression(scale(lr.gaps, 3), endSourceAt='{b}')"),
    ];
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    check_all(&mut r, &targets, &["-1h", &ago(3600 + 17), "-3d"]);
    check_mdp(&mut r, "linearRegression(lr.*)", "-6h", &["7"]);
    r.check("lr.gaps|linearRegression()", "-1h", "now");
}

#[test]
fn holt_winters_conformance() {
    let mut r = shared();
    // One archive long enough for the bootstrap, with a daily shape, gaps and a spike.
    r.metric(
        "hw.daily",
        "300s:30d",
        &points(12 * 24 * 12, 300, |i| {
            let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
            let spike = if i % 997 == 5 { 40.0 } else { 0.0 };
            (i % 31 != 7).then(|| 50.0 + 20.0 * phase.sin() + wobble(i) + spike)
        }),
    );
    r.metric(
        "hw.flat",
        "300s:30d",
        &points(12 * 24 * 9, 300, |i| {
            (i > 200).then_some(10.0 + (i % 3) as f64)
        }),
    );
    r.metric("hw.empty", "300s:30d", &[]);
    fixture(&mut r, "hwf");
    let targets = [
        "holtWintersForecast(hw.*)",
        "holtWintersForecast(hw.daily, '3d')",
        "holtWintersForecast(hw.daily, '2d', '12h')",
        "holtWintersForecast(hw.*, bootstrapInterval='1d', seasonality='2h')",
        "holtWintersConfidenceBands(hw.*)",
        "holtWintersConfidenceBands(hw.daily, 2)",
        "holtWintersConfidenceBands(hw.daily, 5, '2d', '6h')",
        "holtWintersConfidenceArea(hw.daily)",
        "holtWintersConfidenceArea(hw.flat, 2, '3d')",
        "holtWintersAberration(hw.*)",
        "holtWintersAberration(hw.daily, 1, '2d')",
        "holtWintersAberration(hw.daily, 2, '1d', '3h')",
        "holtWintersForecast(hw.nothing)",
        "holtWintersForecast(scale(hw.daily, 2), '2d')",
        // Short bootstrap on the 60 s fixture (the preview stays in the 60 s archive).
        "holtWintersForecast(hwf.*, '2h', '1h')",
        "holtWintersConfidenceBands(hwf.*, 3, '2h', '30min')",
        "holtWintersAberration(hwf.*, 1, '2h', '30min')",
        "holtWintersConfidenceArea(hwf.gaps, 3, '1h', '20min')",
    ];
    check_all(&mut r, &targets, &["-6h", &ago(86400 + 17)]);
    check_mdp(
        &mut r,
        "holtWintersConfidenceBands(hw.daily)",
        "-1d",
        &["20"],
    );
    // Areas need exactly one series; a season shorter than two points indexes past the end.
    check_error(&mut r, "holtWintersConfidenceArea(hw.*)", "-6h", 500);
    check_error(
        &mut r,
        "holtWintersForecast(hw.daily, '1d', '5min')",
        "-6h",
        500,
    );
    // The 7 d bootstrap of a 60 s series comes from the 300 s archive: the bands are shorter
    // than the series and graphite-web indexes past their end.
    check_error(&mut r, "holtWintersAberration(hwf.full)", "-6h", 500);
    check_rejected(&mut r, "holtWintersConfidenceBands(hw.daily, 1.5)");
    // Piped input is the first argument graphite-web evaluates again.
    check_all(
        &mut r,
        &[
            "hw.daily|holtWintersForecast('2d')",
            "hwf.*|holtWintersConfidenceBands(3, '2h', '30min')",
            "holtWintersForecast(hwf.*)",
            "holtWintersConfidenceBands(hwf.full)",
        ],
        &["-6h"],
    );
}

#[test]
fn compress_periodic_gaps_conformance() {
    let mut r = shared();
    fixture(&mut r, "cpg");
    // Values every 5th minute in a 60 s archive; one with a zero in it, one irregular.
    r.metric(
        "cpg2.every5",
        "60s:1d",
        &points(120, 60, |i| (i % 5 == 2).then(|| wobble(i))),
    );
    r.metric(
        "cpg2.zeros",
        "60s:1d",
        &points(120, 60, |i| (i % 3 == 0).then_some((i % 4) as f64)),
    );
    r.metric(
        "cpg2.irregular",
        "60s:1d",
        &points(120, 60, |i| (i % 7 == 0 || i % 5 == 0).then_some(i as f64)),
    );
    check_all(
        &mut r,
        &[
            "compressPeriodicGaps(cpg.*)",
            "compressPeriodicGaps(cpg2.*)",
            "compressPeriodicGaps(cpg.nothing)",
        ],
        &["-1h", &ago(3600 + 17), "-2h"],
    );
    check_mdp(&mut r, "compressPeriodicGaps(cpg2.*)", "-2h", &["7"]);
}

/// Each function's `/functions/<name>` entry (parameters, types, defaults, suggestions, group,
/// signature) equals graphite-web's; only the description is our own.
#[test]
fn function_descriptions_match_graphite_web() {
    render::functions_match_graphite_web(carbide::query::functions::more_calculate::FUNCTIONS);
}

// ---------------------------------------------------------------------------------------------
// The date arguments and generated series read the server zone (graphite-web's TIME_ZONE and
// `time.mktime`): both sides in Europe/Berlin, requests without `tz`, ranges across the DST
// change of 2026-10-25.

#[test]
fn server_zone_matches_graphite_web() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bz/a.wsp");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    whisper::create(
        &path,
        &[(600u32, 10_000u32)],
        &CreateOptions {
            sparse: true,
            ..CreateOptions::default()
        },
    )
    .expect("create");
    let points: Vec<(i64, f64)> = (0..5_000i64)
        .filter(|i| i % 13 != 4)
        .map(|i| (NOW - i * 600, wobble(i)))
        .collect();
    whisper::update_many(&path, &points, Some(NOW), WriteOptions::default()).expect("update");
    let mut gw = GraphiteWeb::start_in_zone(dir.path(), "Europe/Berlin");
    let zone = chrono_tz::Europe::Berlin;
    let cases = [
        (
            "timeSlice(bz.a, '12:00 20261024', '06:00 20261025')",
            "20261024",
            "20261026",
        ),
        (
            "timeSlice(bz.a, '20261025', '03:30 20261025')",
            "20261024",
            "20261026",
        ),
        ("timeSlice(bz.a, '1795500000', '1795560000')", "-1d", "now"),
        (
            "linearRegression(bz.a, '20261020', '20261026')",
            "20261024",
            "20261026",
        ),
        ("linearRegression(bz.a)", "-2d", "now"),
        ("time('t', 600)", "20261024", "20261026"),
        ("time('t', 3600)", "22:00 20261024", "04:00 20261025"),
        ("sin('s', 2, 1800)", "20261024", "20261026"),
        ("identity('i')", "01:00 20261025", "04:00 20261025"),
        ("timeStack(bz.a, '1d', 0, 3)", "20261025", "20261026"),
    ];
    render::check_in_zone(&mut gw, dir.path(), zone, NOW, &cases);
}
