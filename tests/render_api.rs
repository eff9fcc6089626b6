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
