//! /render end to end in process against graphite-web 1.1.10 over the same whisper files: plain
//! fetches, archive choice, maxDataPoints consolidation, formats, errors.

mod common;

use common::render::RenderCompare;

const NOW: i64 = 1_795_576_320;

fn series(n: i64, step: i64, f: impl Fn(i64) -> Option<f64>) -> Vec<(i64, f64)> {
    (0..n)
        .filter_map(|i| {
            let ts = NOW - i * step;
            f(i).map(|v| (ts, v))
        })
        .collect()
}

#[test]
fn plain_fetch_and_max_data_points() {
    let mut r = RenderCompare::new(NOW);
    r.metric(
        "plain.a",
        "60s:1d,300s:7d",
        &series(2000, 60, |i| Some(i as f64 * 1.5)),
    );
    r.metric(
        "plain.gaps",
        "60s:1d,300s:7d",
        &series(2000, 60, |i| (i % 7 != 3).then_some(i as f64)),
    );
    let from = (NOW - 7200).to_string();
    let until = NOW.to_string();
    let (_, _, body) = r.carbide(&[("target", "plain.a"), ("from", &from), ("format", "json")]);
    assert!(body.contains("[162.0, 1795569840]"), "{body}");
    for target in ["plain.a", "plain.gaps", "plain.nothing"] {
        r.check(target, &from, &until);
        for mdp in ["1", "10", "13", "100", "119", "120", "121", "1000"] {
            r.check_params(&[
                ("target", target),
                ("from", &from),
                ("until", &until),
                ("format", "json"),
                ("maxDataPoints", mdp),
            ]);
        }
    }
    // Two days: whisper answers from the 300 s archive only.
    let from2 = (NOW - 2 * 86400).to_string();
    r.check("plain.a", &from2, &until);
}

/// Metrics with nulls, NaN-free values and two archives, shared by the format tests.
fn formats_fixture() -> RenderCompare {
    let mut r = RenderCompare::new(NOW);
    r.metric(
        "fmt.web1.cpu",
        "60s:1d,300s:7d",
        &series(200, 60, |i| (i % 5 != 2).then_some(100.0 + i as f64 / 3.0)),
    );
    r.metric(
        "fmt.web2.cpu",
        "60s:1d",
        &series(200, 60, |i| Some(-(i as f64) * 0.25)),
    );
    r.metric(
        "fmt.web3.cpu",
        "300s:7d",
        &series(100, 300, |i| Some(i as f64)),
    );
    r.metric("fmt.empty.cpu", "60s:1d", &[]);
    r.metric(
        "fmt.big.cpu",
        "60s:1d",
        &series(20, 60, |i| Some(1e300 * i as f64)),
    );
    r
}

#[test]
fn text_formats_match_graphite_web() {
    let mut r = formats_fixture();
    let from = (NOW - 3600).to_string();
    let until = (NOW - 60).to_string();
    for target in ["fmt.*.cpu", "fmt.web1.cpu", "fmt.nothing"] {
        for format in ["csv", "raw"] {
            for tz in ["", "Europe/Berlin"] {
                let mut params = vec![
                    ("target", target),
                    ("from", from.as_str()),
                    ("until", until.as_str()),
                    ("format", format),
                ];
                if !tz.is_empty() {
                    params.push(("tz", tz));
                }
                let ((cs, cb), (gs, gb)) = r.both(&params);
                assert_eq!((cs, &cb), (gs, &gb), "{params:?}");
            }
        }
    }
}

#[test]
fn pickle_format_loads_like_graphite_webs() {
    let mut r = formats_fixture();
    let from = (NOW - 3600).to_string();
    for target in ["fmt.*.cpu", "fmt.nothing"] {
        let params = [
            ("target", target),
            ("from", from.as_str()),
            ("format", "pickle"),
        ];
        let (cs, ctype, bytes) = r.carbide_bytes(&params);
        assert_eq!((cs, ctype.as_str()), (200, "application/pickle"));
        let ours = r.unpickle(&bytes);
        let (gs, _, theirs) = r.graphite(&params);
        assert_eq!(gs, 200);
        let theirs: serde_json::Value = serde_json::from_str(&theirs).expect("pickle as JSON");
        assert_eq!(ours, theirs, "{target}");
    }
}

#[test]
fn json_options_match_graphite_web() {
    let mut r = formats_fixture();
    let from = (NOW - 3600).to_string();
    let until = NOW.to_string();
    let base = [
        ("from", from.as_str()),
        ("until", until.as_str()),
        ("format", "json"),
    ];
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![("target", "fmt.*.cpu"), ("noNullPoints", "1")],
        vec![
            ("target", "fmt.*.cpu"),
            ("maxDataPoints", "7"),
            ("noNullPoints", ""),
        ],
        vec![
            ("target", "fmt.web1.cpu"),
            ("target", "fmt.web3.cpu"),
            ("maxDataPoints", "20"),
        ],
        vec![("target[]", "fmt.web2.cpu"), ("target[]", "fmt.web1.cpu")],
        vec![
            ("target", "fmt.*.cpu"),
            ("xFilesFactor", "0.9"),
            ("maxDataPoints", "5"),
        ],
        vec![("target", "fmt.big.cpu"), ("maxDataPoints", "3")],
        vec![("target", "fmt.empty.cpu"), ("maxDataPoints", "3")],
        vec![("target", ""), ("target", "fmt.web2.cpu")],
    ];
    for case in cases {
        let mut params = base.to_vec();
        params.extend(case);
        r.check_params(&params);
    }
    // from after until: swapped, as graphite-web does.
    r.check("fmt.web2.cpu", &until, &from);
    // Relative and absolute times, `now` pinned.
    r.check("fmt.web1.cpu", "-2h", "-30min");
    r.check("fmt.web3.cpu", "-3d", "now");
    // jsonp and pretty wrap the same document.
    for extra in [("jsonp", "cb"), ("pretty", "1")] {
        let mut params = base.to_vec();
        params.push(("target", "fmt.web2.cpu"));
        params.push(extra);
        let ((cs, cb), (gs, gb)) = r.both(&params);
        assert_eq!(cs, gs);
        let strip = |s: &str| s.replace([' ', '\n'], "");
        assert_eq!(strip(&cb), strip(&gb), "{extra:?}");
    }
}

#[test]
fn request_errors_are_client_errors() {
    let mut r = formats_fixture();
    // An empty range is refused by both with a 400.
    let ((cs, cb), (gs, _)) = r.both(&[
        ("target", "fmt.web1.cpu"),
        ("from", "-1h"),
        ("until", "-1h"),
    ]);
    assert_eq!((cs, gs), (400, 400));
    assert!(cb.contains("Invalid empty time range"), "{cb}");
    // maxDataPoints=0 (Grafana's backend for "unset"): graphite-web fails with a 500; Carbide
    // treats it as no limit (a deliberate difference, README).
    let params = [
        ("target", "fmt.web2.cpu"),
        ("from", "-1h"),
        ("format", "json"),
        ("maxDataPoints", "0"),
    ];
    let ((cs, _), (gs, _)) = r.both(&params);
    assert_eq!((cs, gs), (200, 500));
    let (_, _, with_zero) = r.carbide(&params);
    let (_, _, without) = r.carbide(&params[..3]);
    assert_eq!(with_zero, without);
    // Image formats are not drawn: a 400 that says so (graphite-web draws a PNG).
    let (cs, _, cb) = r.carbide(&[("target", "fmt.web2.cpu"), ("format", "png")]);
    assert_eq!(cs, 400);
    assert!(cb.contains("png"), "{cb}");
    // A bad time is a 400 naming it.
    let (cs, _, cb) = r.carbide(&[("target", "fmt.web2.cpu"), ("from", "-1fortnight")]);
    assert_eq!(cs, 400, "{cb}");
}

#[test]
fn limits_refuse_with_a_status_that_names_them() {
    use carbide::query::eval::Limits;
    let r = formats_fixture();
    let from = (NOW - 3600).to_string();
    let base = [("from", from.as_str()), ("format", "json")];
    let ask = |extra: &[(&str, &str)], limits: Limits, max_targets: usize| {
        let mut params = base.to_vec();
        params.extend_from_slice(extra);
        let (status, _, body) = r.carbide_limited(&params, limits, max_targets);
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    let roomy = Limits::default();
    let two_targets = [("target", "fmt.web1.cpu"), ("target", "fmt.web2.cpu")];
    let (s, body) = ask(&two_targets, roomy, 1);
    assert_eq!(s, 422, "{body}");
    assert!(body.contains("max_targets"), "{body}");
    assert_eq!(ask(&two_targets, roomy, 2).0, 200);

    let few_series = Limits {
        max_series: 2,
        ..roomy
    };
    let (s, body) = ask(&[("target", "fmt.*.cpu")], few_series, 10);
    assert_eq!(s, 422, "{body}");
    assert!(body.contains("max_series"), "{body}");
    assert_eq!(ask(&[("target", "fmt.web1.cpu")], few_series, 10).0, 200);

    let few_points = Limits {
        max_points: 100,
        ..roomy
    };
    let (s, body) = ask(&[("target", "fmt.*.cpu")], few_points, 10);
    assert_eq!(s, 422, "{body}");
    assert!(body.contains("max_points"), "{body}");
}

#[test]
fn error_messages_read_like_graphite_webs() {
    let mut r = formats_fixture();
    // Bad parameters: the same text, without targets (graphite-web parses options first).
    for params in [
        vec![
            ("target", "fmt.web1.cpu"),
            ("from", "-1fortnight"),
            ("format", "json"),
        ],
        vec![
            ("target", "fmt.web1.cpu"),
            ("from", "-1h"),
            ("until", "-1h"),
            ("format", "json"),
        ],
        vec![
            ("target", "fmt.web1.cpu"),
            ("from", "noon yesterday xyz"),
            ("format", "json"),
        ],
    ] {
        let ((cs, cb), (gs, gb)) = r.both(&params);
        assert_eq!((cs, cb.trim()), (gs, gb.trim()), "{params:?}");
    }
    // An unknown function: graphite-web's words, then where it is, then the targets.
    let params = [
        ("target", "fmt.web1.cpu"),
        ("target", "foo(fmt.web1.cpu)"),
        ("format", "json"),
    ];
    let ((cs, cb), (gs, gb)) = r.both(&params);
    assert_eq!((cs, gs), (400, 400));
    assert_eq!(
        gb,
        "Invalid parameters (Received request for unknown function: foo); targets: \"fmt.web1.cpu, foo(fmt.web1.cpu)\""
    );
    assert_eq!(
        cb.trim(),
        "Invalid parameters (Received request for unknown function: foo (at position 0)); targets: \"fmt.web1.cpu, foo(fmt.web1.cpu)\""
    );
    // A syntax error: graphite-web evaluates the valid prefix (`fmt.web1.cpu`) and ignores the
    // rest; Carbide refuses the target and says where it stops making sense.
    let params = [("target", "sumSeries(fmt.*.cpu"), ("format", "json")];
    let ((cs, cb), (gs, _)) = r.both(&params);
    assert_eq!((cs, gs), (400, 200), "{cb}");
    assert!(cb.contains("position"), "{cb}");
}
