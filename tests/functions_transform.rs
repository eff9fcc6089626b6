//! The Transform functions (scale, derivatives, integrals, null handling, timeShift, delay and
//! the rest of src/query/functions/transform.rs) against graphite-web 1.1.10 over the same
//! whisper files: names, tags, values, nulls, steps, maxDataPoints; and the cases where Carbide
//! deliberately answers differently (each says so).

mod common;

use carbide::whisper::{self, CreateOptions, WriteOptions};
use common::graphite_web::GraphiteWeb;
use common::render::{self, parse_json, same, RenderCompare};

const NOW: i64 = 1_795_576_320;
/// Two archives: a one-hour window reads the 60 s one, anything older than a day the 300 s one.
const RET: &str = "60s:1d,300s:10d";
/// Ten days of minutes, so day-long shifts still find data.
const N: i64 = 14_400;

/// Points at NOW - i*step for i in 0..n (i = 0 is the newest), None skipped.
fn pts(n: i64, step: i64, f: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
    render::points_back(NOW, n, step, f)
}

/// The same metrics under `p`: gauges with gaps, zeros and negatives, counters (with gaps and
/// resets, wrapping at 1000, huge), a 300 s series, an empty one and one with runs of nulls.
fn fixture(p: &str) -> RenderCompare {
    let mut r = RenderCompare::new(NOW);
    // Newest two points null, every 7th null, a run of nulls at the old end of the last hour.
    r.metric(
        &format!("{p}.g.a"),
        RET,
        &pts(N, 60, |i| {
            let gap = i < 2 || i % 7 == 3 || (55..62).contains(&i);
            (!gap).then(|| ((i * 37) % 101) as f64 * 1.25 - 50.0)
        }),
    );
    // Exact zeros and negatives.
    r.metric(
        &format!("{p}.g.b"),
        RET,
        &pts(N, 60, |i| (i % 11 != 5).then_some((i % 9) as f64 - 4.0)),
    );
    r.metric(&format!("{p}.g.empty"), RET, &[]);
    // A counter (t counts from the oldest point) with resets and gaps.
    r.metric(
        &format!("{p}.c.a"),
        RET,
        &pts(N, 60, |i| {
            let t = N - 1 - i;
            if t % 10 == 7 {
                return None;
            }
            let since_reset = t - (t / 97) * 97;
            Some(
                (0..=since_reset)
                    .map(|k| ((k * 13) % 17) as f64 + 0.5)
                    .sum(),
            )
        }),
    );
    // A counter wrapping at 1000, no gaps.
    r.metric(
        &format!("{p}.c.w"),
        RET,
        &pts(N, 60, |i| Some(((N - 1 - i) as f64 * 37.5) % 1000.0)),
    );
    // A huge counter: per-second rates with many digits before rounding.
    r.metric(
        &format!("{p}.c.big"),
        RET,
        &pts(N, 60, |i| {
            Some((N - 1 - i) as f64 * 1_234_567.891 + 35_184_372_088_832.0)
        }),
    );
    // A 300 s series with a few gaps.
    r.metric(
        &format!("{p}.s.a"),
        "300s:10d",
        &pts(N / 5, 300, |i| (i % 4 != 1).then_some(i as f64 * 0.5)),
    );
    // Runs of 1, 2, 3 and 4 nulls, two trailing, three leading in the last hour.
    r.metric(
        &format!("{p}.n.a"),
        RET,
        &pts(N, 60, |i| {
            let gap = matches!(i, 0 | 1 | 5 | 9 | 10 | 15..=17 | 22..=25 | 57..=59);
            (!gap).then_some(10.0 + i as f64 * 0.75)
        }),
    );
    // Small values (rounding to 6 decimals, %g names).
    r.metric(
        &format!("{p}.g.tiny"),
        RET,
        &pts(N, 60, |i| Some((i % 13) as f64 * 3.3e-7)),
    );
    r
}

/// Checks `targets` over the last hour, the last half hour, two days (300 s archive) and the
/// last hour with maxDataPoints 7.
fn check_all(r: &mut RenderCompare, targets: &[String]) {
    for t in targets {
        r.check(t, "-1h", "now");
        r.check(t, "-30min", "now");
        r.check(t, "-2d", "now");
        r.check_params(&[
            ("target", t),
            ("from", "-1h"),
            ("until", "now"),
            ("format", "json"),
            ("maxDataPoints", "7"),
        ]);
    }
}

fn targets(p: &str, forms: &[&str]) -> Vec<String> {
    forms.iter().map(|f| f.replace("$p", p)).collect()
}

#[test]
fn arithmetic_matches_graphite_web() {
    let mut r = fixture("ar");
    let t = targets(
        "ar",
        &[
            "scale($p.g.*,2)",
            "scale($p.g.a,0.5)",
            "scale($p.g.a,-1.5e10)",
            "scale($p.g.tiny,1e-7)",
            "scale($p.g.empty,3)",
            "scale($p.nothing.*,3)",
            "$p.g.a|scale(3)",
            "scale(scale($p.g.b,2),0.25)",
            "scaleToSeconds($p.c.a,1)",
            "scaleToSeconds($p.g.*,60)",
            "scaleToSeconds($p.g.tiny,2.5)",
            "scaleToSeconds($p.s.a,7)",
            "offset($p.g.*,10)",
            "offset($p.g.a,-100)",
            "offset($p.g.a,0.25)",
            "offset($p.g.empty,1)",
            "add($p.g.*,10)",
            "add($p.g.a,-2.5)",
            "add($p.g.a,0.75)",
            "absolute($p.g.*)",
            "invert($p.g.*)",
            "invert($p.g.tiny)",
            "pow($p.g.*,2)",
            "pow($p.g.b,0.5)",
            "pow($p.g.b,-1)",
            "pow($p.g.a,3.5)",
            "pow($p.c.big,30)",
            "squareRoot($p.g.*)",
            "squareRoot($p.c.a)",
            "log($p.g.*)",
            "log($p.c.a,2)",
            "log($p.g.tiny,10)",
            "log($p.s.a,3)",
            "offsetToZero($p.g.*)",
            "offsetToZero($p.s.a)",
            "minMax($p.g.*)",
            "minMax($p.s.a)",
            "minMax(offset(scale($p.g.b,0),1))",
        ],
    );
    check_all(&mut r, &t);
}

#[test]
fn derivatives_and_integrals_match_graphite_web() {
    let mut r = fixture("dv");
    let t = targets(
        "dv",
        &[
            "derivative($p.c.*)",
            "derivative($p.g.*)",
            "derivative($p.s.a)",
            "nonNegativeDerivative($p.c.*)",
            "nonNegativeDerivative($p.g.*)",
            "perSecond($p.c.*)",
            "perSecond($p.g.*)",
            "perSecond($p.s.a)",
            "perSecond($p.nothing)",
            "integral($p.g.*)",
            "integral($p.c.a)",
            "integral($p.s.a)",
            "integral(perSecond($p.c.a))",
            "scaleToSeconds(nonNegativeDerivative($p.c.a),1)",
        ],
    );
    check_all(&mut r, &t);
    // With maxValue/minValue graphite-web fails on any null (see
    // derivative_bounds_with_gaps_give_nulls), and the 300 s archive has one at its edge: these
    // run over ranges without nulls.
    for t in targets(
        "dv",
        &[
            "nonNegativeDerivative($p.c.w,999)",
            "nonNegativeDerivative($p.c.w,minValue=100)",
            "nonNegativeDerivative($p.c.w,maxValue=999,minValue=10)",
            "nonNegativeDerivative($p.c.w,500)",
            "perSecond($p.c.w,999)",
            "perSecond($p.c.w,None,200)",
            "perSecond($p.c.w,maxValue=999,minValue=1)",
        ],
    ) {
        r.check(&t, "-1h", "now");
        r.check(&t, "-30min", "now");
        r.check_params(&[
            ("target", &t),
            ("from", "-1h"),
            ("until", "now"),
            ("format", "json"),
            ("maxDataPoints", "7"),
        ]);
    }
    // integralByInterval resets on boundaries counted from `from`, so unaligned ranges matter.
    for t in targets(
        "dv",
        &[
            "integralByInterval($p.g.a,'10min')",
            "integralByInterval($p.n.a,'7min')",
            "integralByInterval($p.s.a,'1h')",
            "integralByInterval($p.c.w,'1d')",
        ],
    ) {
        r.check(&t, "-1h", "now");
        r.check(&t, "-47min", "now");
        r.check(&t, "-2d", "-3h");
        r.check(&t, &(NOW - 3599).to_string(), &(NOW - 7).to_string());
        r.check_params(&[
            ("target", &t),
            ("from", "-1h"),
            ("until", "now"),
            ("format", "json"),
            ("maxDataPoints", "5"),
        ]);
    }
}

#[test]
fn null_handling_matches_graphite_web() {
    let mut r = fixture("nl");
    let t = targets(
        "nl",
        &[
            "keepLastValue($p.n.a)",
            "keepLastValue($p.n.a,1)",
            "keepLastValue($p.n.a,2)",
            "keepLastValue($p.n.a,3)",
            "keepLastValue($p.n.a,0)",
            "keepLastValue($p.n.a,-1)",
            "keepLastValue($p.n.a,inf)",
            "keepLastValue($p.g.*)",
            "keepLastValue($p.s.a,limit=1)",
            "interpolate($p.n.a)",
            "interpolate($p.n.a,2)",
            "interpolate($p.n.a,3)",
            "interpolate($p.n.a,0)",
            "interpolate($p.g.*)",
            "interpolate($p.s.a)",
            "transformNull($p.n.a)",
            "transformNull($p.n.a,-1)",
            "transformNull($p.n.a,2.5)",
            "transformNull($p.n.a,default=0)",
            "transformNull($p.g.*,7)",
            "transformNull($p.n.a,-1,$p.g.a)",
            "transformNull($p.g.a,0,$p.s.a)",
            "transformNull($p.g.a,0,$p.nothing)",
            "transformNull($p.g.a,0,$p.g.empty)",
            "isNonNull($p.n.a)",
            "isNonNull($p.g.*)",
            "isNonNull($p.s.a)",
            "changed($p.g.*)",
            "changed($p.n.a)",
            "changed(keepLastValue($p.n.a))",
            "changed($p.s.a)",
        ],
    );
    check_all(&mut r, &t);
}

#[test]
fn time_axis_matches_graphite_web() {
    let mut r = fixture("ta");
    let t = targets(
        "ta",
        &[
            "delay($p.g.*,1)",
            "delay($p.n.a,3)",
            "delay($p.n.a,-2)",
            "delay($p.n.a,1000)",
            "delay($p.n.a,-1000)",
            "delay($p.s.a,2)",
            "timeShift($p.g.a,'1h')",
            "timeShift($p.g.*,\"-1h\")",
            "timeShift($p.g.a,'+1h')",
            "timeShift($p.g.a,'+30min')",
            "timeShift($p.n.a,'5min')",
            "timeShift($p.n.a,'1d')",
            "timeShift($p.n.a,'7d')",
            "timeShift($p.n.a,'1w')",
            "timeShift($p.s.a,'1d')",
            "timeShift($p.g.a,'1h',false)",
            "timeShift($p.g.a,'1d',resetEnd=false)",
            "timeShift($p.g.a,'1d',true,true)",
            "timeShift($p.nothing,'1d')",
            "timeShift(scale($p.g.*,2),'1h')",
            "timeShift(perSecond($p.c.a),'2h')",
            "scale(timeShift($p.g.a,'1h'),2)",
            "$p.g.a|timeShift('1h')",
        ],
    );
    check_all(&mut r, &t);
    // delay(x, 0) has no values at all (graphite-web slices `series[:-0]`). Alone in a request
    // graphite-web's JSON view answers `[]` for it (`any(data)` is false), which is the
    // renderer's business; next to a series with values it is listed with no datapoints.
    for t in ["delay(ta.n.a,0)", "delay(ta.g.*,0)"] {
        r.check_params(&[
            ("target", t),
            ("target", "ta.n.a"),
            ("from", "-1h"),
            ("until", "now"),
            ("format", "json"),
        ]);
    }
    // A range reaching into the future: the shifted fetch goes past now.
    for t in targets(
        "ta",
        &["timeShift($p.g.a,'+2h')", "timeShift($p.g.a,'-2h',false)"],
    ) {
        r.check(&t, "-1h", "+1h");
        r.check(&t, "-3h", "-1h");
    }
}

/// Where graphite-web 1.1.10 answers 500 (an exception inside the function) Carbide answers 400
/// with a message naming the function and argument: deliberate.
#[test]
fn bad_arguments_are_client_errors() {
    let mut r = fixture("er");
    let cases = [
        "scale(er.g.a,'x')",
        "offset(er.g.a,'x')",
        "pow(er.g.a,'x')",
        "log(er.g.a,1)",
        "log(er.g.a,0)",
        "log(er.g.a,-2)",
        "timeShift(er.g.a,'')",
        "timeShift(er.g.a,'1x')",
        "timeShift(er.g.a,'x')",
        "timeShift(er.g.a,1)",
        "integralByInterval(er.g.a,'0s')",
        "integralByInterval(er.g.a,'x')",
        "scaleToSeconds(er.g.a,inf)",
        "add(er.g.a,inf)",
        "delay(er.g.a,'x')",
    ];
    for target in cases {
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
    // A bad base only fails once a positive value reaches the logarithm, in both.
    r.check("log(er.g.empty,1)", "-1h", "now");
    r.check("log(er.nothing,-1)", "-1h", "now");
}

/// graphite-web compares a null value with maxValue/minValue, which raises TypeError under
/// Python 3: any gap in the range gives a 500. Carbide gives the null Python 2 gave: a null
/// value gives null and restarts the delta, as without bounds. Deliberate. On a counter that
/// never leaves the bounds, the bounded answer must then equal graphite-web's unbounded one.
#[test]
fn derivative_bounds_with_gaps_give_nulls() {
    let mut r = fixture("bd");
    // Increasing, far below the bounds, a gap every 10 minutes.
    r.metric(
        "bd.c.m",
        RET,
        &pts(N, 60, |i| {
            let t = N - 1 - i;
            (t % 10 != 7).then(|| (t * 10 + t % 5) as f64 * 0.5)
        }),
    );
    for (bounded, plain) in [
        ("perSecond(bd.c.m,1000000)", "perSecond(bd.c.m)"),
        ("perSecond(bd.c.m,None,0)", "perSecond(bd.c.m)"),
        (
            "nonNegativeDerivative(bd.c.m,minValue=0)",
            "nonNegativeDerivative(bd.c.m)",
        ),
        (
            "nonNegativeDerivative(bd.c.m,maxValue=1e9,minValue=-5)",
            "nonNegativeDerivative(bd.c.m)",
        ),
    ] {
        let with = |t: &'static str| {
            [
                ("target", t),
                ("from", "-1h"),
                ("until", "now"),
                ("format", "json"),
            ]
        };
        let ((cs, cb), (gs, _)) = r.both(&with(bounded));
        assert_eq!(gs, 500, "graphite-web for {bounded}");
        assert_eq!(cs, 200, "carbide for {bounded}: {cb}");
        let (_, _, gb) = r.graphite(&with(plain));
        if let Err(why) = same(&parse_json(&cb), &parse_json(&gb), 0.0, "$") {
            panic!("{bounded} against {plain}: {why}\ncarbide:      {cb}\ngraphite-web: {gb}");
        }
    }
    // Without gaps in the range both agree.
    r.check("perSecond(bd.c.w,999,0)", "-1h", "now");
    r.check("nonNegativeDerivative(bd.c.w,999)", "-1h", "now");
}

/// Integer and inf limits, as graphite-web validates them. A float where an integer is declared
/// is refused with a 400, where graphite-web (validation not enforced) computes with it.
/// Deliberate.
#[test]
fn int_or_inf_limits() {
    let mut r = fixture("li");
    r.check("keepLastValue(li.n.a,1e9999)", "-1h", "now");
    let params = [
        ("target", "keepLastValue(li.n.a,1.5)"),
        ("from", "-1h"),
        ("until", "now"),
        ("format", "json"),
    ];
    let ((cs, _), (gs, _)) = r.both(&params);
    assert_eq!((cs, gs), (400, 200));
    // The same for log's integer base: graphite-web computes with 2.5.
    let params = [
        ("target", "log(li.g.a,2.5)"),
        ("from", "-1h"),
        ("until", "now"),
        ("format", "json"),
    ];
    let ((cs, _), (gs, _)) = r.both(&params);
    assert_eq!((cs, gs), (400, 200));
}

/// graphite-web re-evaluates timeShift's first argument as written; Carbide re-evaluates the
/// series' path expressions until the evaluator hands functions their raw arguments, which
/// differs where a function keeps the path expression but renames the series.
#[test]
fn time_shift_reevaluates_its_argument() {
    let mut r = fixture("ra");
    r.check("timeShift(alias(ra.g.a,'x'),'1h')", "-1h", "now");
    r.check("timeShift(timeShift(ra.g.a,'1h'),'1h')", "-1h", "now");
    r.check("timeShift(aliasByNode(ra.g.*,2),'1h')", "-1h", "now");
}

/// `/functions` calls timeShift's last parameter `alignDst` while the Python function takes
/// `alignDST`: graphite-web accepts the keyword `alignDST=` (its validation is not enforced) and
/// fails with a TypeError on `alignDst=`. Carbide binds keywords by the `/functions` names, so
/// it takes `alignDst=` and refuses `alignDST=` until the binder knows the alias.
#[test]
fn time_shift_takes_the_python_keyword() {
    let mut r = fixture("kw");
    r.check("timeShift(kw.g.a,'1h',alignDST=true)", "-1h", "now");
    r.check(
        "timeShift(kw.g.a,'1h',resetEnd=false,alignDST=false)",
        "-1h",
        "now",
    );
}

// ---------------------------------------------------------------------------------------------
// alignDST needs a server time zone with DST: its own small comparison, both sides in
// Europe/Berlin (graphite-web decides DST in its process zone, TIME_ZONE).

#[test]
fn time_shift_align_dst_matches_graphite_web() {
    // 2026-07-01T12:00Z: summer time in Berlin; 150 days earlier is winter time.
    let now: i64 = 1_782_907_200;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dst/a.wsp");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let archives = [(600u32, 60_000u32)];
    whisper::create(
        &path,
        &archives,
        &CreateOptions {
            sparse: true,
            ..CreateOptions::default()
        },
    )
    .expect("create");
    let points: Vec<(i64, f64)> = (0..50_000i64)
        .map(|i| (now - i * 600, (i % 144) as f64))
        .collect();
    whisper::update_many(&path, &points, Some(now), WriteOptions::default()).expect("update");
    let mut gw = GraphiteWeb::start_in_zone(dir.path(), "Europe/Berlin");
    let zone = chrono_tz::Europe::Berlin;
    let cases = [
        // Summer request, winter shifted range: one hour of correction.
        ("timeShift(dst.a,'150d',true,true)", "-6h", "now"),
        ("timeShift(dst.a,'150d',true,false)", "-6h", "now"),
        ("timeShift(dst.a,'150d',false,true)", "-6h", "now"),
        // Winter request, summer shifted range: the other way.
        ("timeShift(dst.a,'150d',true,true)", "-160d", "-159d"),
        ("timeShift(dst.a,'+150d',true,true)", "-200d", "-199d"),
        // A request straddling the change of 2026-03-29: no correction.
        ("timeShift(dst.a,'30d',true,true)", "20260328", "20260331"),
        // Both in the same season: no correction.
        ("timeShift(dst.a,'7d',true,true)", "-6h", "now"),
    ];
    render::check_in_zone(&mut gw, dir.path(), zone, now, &cases);
}

/// Each function's `/functions/<name>` entry (parameters, types, defaults, suggestions, group,
/// signature) equals graphite-web's; only the description is our own.
#[test]
fn function_descriptions_match_graphite_web() {
    render::functions_match_graphite_web(carbide::query::functions::transform::FUNCTIONS);
}
