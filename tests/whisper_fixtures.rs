//! The reference fixtures in ../shared/fixtures/whisper, written by whisper.py 1.1.10: Carbide
//! must read each one back exactly (info, fetch at the recorded `now` values), and replaying
//! the recorded operations on a file Carbide creates must give the same bytes.

mod common;

use std::path::{Path, PathBuf};

use carbide::whisper::{self, AggregationMethod, CreateOptions, WriteOptions};
use serde_json::Value;

fn fixtures() -> Vec<(String, PathBuf, Value)> {
    let dir = common::shared_dir().join("fixtures/whisper");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixtures directory") {
        let path = entry.expect("dir entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".expected.json") else {
            continue;
        };
        let text = std::fs::read_to_string(&path).expect("read expected json");
        let expected: Value = serde_json::from_str(&text).expect("parse expected json");
        out.push((stem.to_string(), dir.join(format!("{stem}.wsp")), expected));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 11,
        "expected at least 11 fixtures in {}",
        dir.display()
    );
    out
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

#[test]
fn info_matches_whisper_py() {
    for (name, wsp, expected) in fixtures() {
        let header = whisper::info(&wsp).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut got = serde_json::to_value(&header).expect("serialize header");
        let exp = &expected["info"];
        // whisper.py's xFilesFactor is the stored f32 widened to a double.
        assert_eq!(
            f64::from(header.x_files_factor),
            exp["xFilesFactor"].as_f64().expect("xff"),
            "{name}: xFilesFactor"
        );
        got["xFilesFactor"] = exp["xFilesFactor"].clone();
        assert_eq!(&got, exp, "{name}: info");
        let size = std::fs::metadata(&wsp).expect("stat").len();
        assert_eq!(size as i64, int(&expected["fileSize"]), "{name}: file size");
    }
}

#[test]
fn fetch_matches_whisper_py() {
    for (name, wsp, expected) in fixtures() {
        for f in expected["fetch"].as_array().expect("fetch list") {
            let (from, until, now) = (int(&f["from"]), int(&f["until"]), int(&f["now"]));
            let got = whisper::fetch(&wsp, from, Some(until), Some(now), None)
                .unwrap_or_else(|e| panic!("{name}: fetch({from}, {until}, now={now}): {e}"));
            let exp = &f["result"];
            match got {
                None => assert!(exp.is_null(), "{name}: fetch({from}, {until}) gave None"),
                Some(r) => {
                    assert_eq!(r.start, int(&exp["start"]), "{name}: start");
                    assert_eq!(r.end, int(&exp["end"]), "{name}: end");
                    assert_eq!(r.step, int(&exp["step"]), "{name}: step");
                    let values: Vec<Option<f64>> = exp["values"]
                        .as_array()
                        .expect("values")
                        .iter()
                        .map(|v| v.as_f64())
                        .collect();
                    assert_eq!(r.values.len(), values.len(), "{name}: value count");
                    for (i, (g, e)) in r.values.iter().zip(&values).enumerate() {
                        assert_eq!(
                            g.map(f64::to_bits),
                            e.map(f64::to_bits),
                            "{name}: fetch({from}, {until}) value {i}: {g:?} vs {e:?}"
                        );
                    }
                }
            }
        }
    }
}

fn replay(path: &Path, expected: &Value) {
    let archives: Vec<(u32, u32)> = expected["archives"]
        .as_array()
        .expect("archives")
        .iter()
        .map(|a| (int(&a[0]) as u32, int(&a[1]) as u32))
        .collect();
    let opts = CreateOptions {
        x_files_factor: expected["xFilesFactor"].as_f64().expect("xff"),
        aggregation_method: expected["aggregationMethod"]
            .as_str()
            .expect("method")
            .parse::<AggregationMethod>()
            .expect("known method"),
        ..CreateOptions::default()
    };
    whisper::create(path, &archives, &opts).expect("create");
    for op in expected["operations"].as_array().expect("operations") {
        let now = int(&op["now"]);
        match op["op"].as_str() {
            Some("update_many") => {
                let points: Vec<(i64, f64)> = op["points"]
                    .as_array()
                    .expect("points")
                    .iter()
                    .map(|p| (int(&p[0]), p[1].as_f64().expect("value")))
                    .collect();
                whisper::update_many(path, &points, Some(now), WriteOptions::default())
                    .expect("update_many");
            }
            Some("update") => {
                let ts = int(&op["timestamp"]);
                let value = op["value"].as_f64().expect("value");
                whisper::update(path, value, Some(ts), Some(now), WriteOptions::default())
                    .expect("update");
            }
            other => panic!("unknown op {other:?}"),
        }
    }
}

#[test]
fn replayed_operations_give_identical_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, wsp, expected) in fixtures() {
        let ours = dir.path().join(format!("{name}.wsp"));
        replay(&ours, &expected);
        let a = std::fs::read(&ours).expect("read ours");
        let b = std::fs::read(&wsp).expect("read fixture");
        assert_eq!(a.len(), b.len(), "{name}: file length");
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            panic!("{name}: first differing byte at offset {i}");
        }
    }
}
