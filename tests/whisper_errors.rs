//! Every way a whisper operation can fail, against whisper.py 1.1.10's own exceptions.
//!
//! Operators' scripts and carbon's logs match on whisper.py's error texts, so where whisper.py
//! raises one of its exceptions Carbide must raise the same class with the same text (spec
//! §1.2, §1.4-1.5, §1.9, §1.11-1.12); each text here comes from running whisper.py through the
//! test venv, never from a copy. Where whisper.py has no sensible answer (it divides by zero,
//! silently grows the file, writes an unreadable NaN xFilesFactor) Carbide refuses instead; those
//! tests check that the refusal is an `Err` naming the file and the problem, and show what
//! whisper.py does. Damaged files (empty, truncated, bad codes, archives past the end) must give
//! errors for info, fetch, update and update_many, never a panic or a crash: random bytes and
//! random truncations and bit flips of real files check that. Those run in a child process with
//! a 2 GiB address-space limit, because a header can ask for an allocation of tens of gigabytes
//! and that must fail the test, not take the machine down.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use carbide::whisper::{
    self, AggregationMethod, CreateOptions, WhisperError, WriteOptions, METADATA_SIZE,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use serde_json::{json, Value};
use support::{fetch_json, header_json, py_class, rs_answer, rs_error, Answer, PyWhisper};

const NOW: i64 = 1_700_000_000;

fn py() -> PyWhisper {
    PyWhisper::start(&support::python())
}

fn create_opts(xff: f64, method: AggregationMethod) -> CreateOptions {
    CreateOptions {
        x_files_factor: xff,
        aggregation_method: method,
        ..CreateOptions::default()
    }
}

fn assert_same(what: &str, rs: &Answer, py: &Answer) {
    assert_eq!(
        rs, py,
        "{what}: carbide (left) and whisper.py (right) disagree"
    );
}

/// Records a disagreement instead of stopping at the first, so one run lists them all.
fn differ(mismatches: &mut Vec<String>, what: &str, rs: &Answer, py: &Answer) {
    if rs != py {
        mismatches.push(format!(
            "{what}:\n  carbide:    {rs:?}\n  whisper.py: {py:?}"
        ));
    }
}

// ---------------------------------------------------------------------------------------------
// Archive lists (§1.4)

fn rs_validate(list: &[(u32, u32)]) -> Answer {
    let mut list = list.to_vec();
    rs_answer(whisper::validate_archive_list(&mut list), |()| json!(list))
}

fn py_validate(py: &mut PyWhisper, list: &[(u32, u32)]) -> Answer {
    py.call(json!({"op": "validate", "archives": list}))
}

#[test]
fn validation_errors_match_whisper_py() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    let mut mismatches = Vec::new();
    let lists: &[&[(u32, u32)]] = &[
        &[],
        &[(60, 5), (60, 10)],
        &[(60, 10), (90, 20)],
        &[(60, 10), (120, 5)],
        &[(60, 10), (120, 4)],
        &[(60, 1), (120, 100)],
        // Sorted first, so the indices in the text are the sorted ones.
        &[(120, 5), (60, 10)],
        &[(3600, 100), (60, 60), (1, 3600)],
        &[(1, 60), (60, 60), (60, 120)],
        &[(10, 6), (60, 10), (3600, 24)],
        &[(10, 8640), (60, 43200), (600, 52560)],
        &[(1, 1)],
        // Zeros whisper.py itself rejects, with its ordinary texts.
        &[(60, 0), (120, 10)],
        &[(60, 10), (120, 0)],
    ];
    for (i, list) in lists.iter().enumerate() {
        let py_answer = py_validate(&mut py, list);
        differ(
            &mut mismatches,
            &format!("validate {list:?}"),
            &rs_validate(list),
            &py_answer,
        );

        // create validates first, so the same texts (or the same success) come out of it.
        let rs_path = dir.path().join(format!("{i}-carbide.wsp"));
        let py_path = dir.path().join(format!("{i}-whisper.wsp"));
        let rs = rs_answer(
            whisper::create(&rs_path, list, &CreateOptions::default()),
            |()| Value::Null,
        );
        let py_answer = py.call(json!({"op": "create", "path": py_path, "archives": list}));
        differ(
            &mut mismatches,
            &format!("create {list:?}"),
            &rs,
            &py_answer,
        );
    }
    assert!(
        mismatches.is_empty(),
        "carbide and whisper.py disagree:\n{}",
        mismatches.join("\n")
    );
}

/// Random lists, valid and not, of up to 4 archives with small numbers so that every rule
/// fires. Where whisper.py raises InvalidConfiguration, Carbide must give the same text; where
/// it accepts, so must Carbide, except for a precision or point count of 0, which Carbide
/// refuses on purpose (whisper.py accepts it, then divides by zero on the first write).
#[test]
fn validation_of_random_lists_matches_whisper_py() {
    let mut py = py();
    let mut runner = TestRunner::new(Config {
        cases: 1500,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    });
    let list = vec(
        (
            prop_oneof![5 => 1u32..8, 1 => Just(0u32), 1 => select(vec![10u32, 60, 120])],
            0u32..8,
        ),
        0..=4,
    );
    let py = std::cell::RefCell::new(&mut py);
    let result = runner.run(&list, |list| {
        let rs = rs_validate(&list);
        let py_answer = py_validate(&mut py.borrow_mut(), &list);
        let has_zero = list.iter().any(|&(s, p)| s == 0 || p == 0);
        match &py_answer {
            Err(e) if e["type"] == "InvalidConfiguration" => prop_assert_eq!(&rs, &py_answer),
            Ok(_) if !has_zero => prop_assert_eq!(&rs, &py_answer),
            // whisper.py accepts zeros, or divides by zero on them: Carbide must refuse.
            _ => {
                prop_assert!(has_zero, "whisper.py failed without a zero: {py_answer:?}");
                prop_assert!(
                    matches!(&rs, Err(e) if e["type"] == "InvalidConfiguration"),
                    "carbide accepted {list:?}: {rs:?}"
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn zero_precision_or_points_is_refused() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    for (i, list) in [[(0u32, 5u32)], [(60, 0)]].iter().enumerate() {
        let err = rs_validate(list).expect_err("carbide must refuse a zero");
        assert_eq!(err["type"], "InvalidConfiguration", "{list:?}: {err}");
        // Why: whisper.py accepts the list, then cannot use the file it made.
        assert!(
            py_validate(&mut py, list).is_ok(),
            "whisper.py refuses {list:?} now"
        );
        let path = dir.path().join(format!("zero-{i}.wsp"));
        py.call(json!({"op": "create", "path": path, "archives": list}))
            .expect("whisper.py create");
        let update = py.call(json!({"op": "update", "path": path, "value_bits": 1.0f64.to_bits(), "ts": NOW - 1, "now": NOW}));
        assert!(
            update.is_err(),
            "whisper.py wrote into {list:?}: {update:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// create, setAggregationMethod, setXFilesFactor (§1.5, §1.12)

#[test]
fn create_refuses_an_existing_file_with_whisper_py_text() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exists.wsp");
    std::fs::write(&path, b"anything").unwrap();
    let rs = rs_answer(
        whisper::create(&path, &[(60, 10)], &CreateOptions::default()),
        |()| Value::Null,
    );
    let py_answer = py.call(json!({"op": "create", "path": path, "archives": [[60, 10]]}));
    assert_same("create over an existing file", &rs, &py_answer);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"anything",
        "the existing file was touched"
    );
}

#[test]
fn bad_aggregation_method_matches_whisper_py() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.wsp");
    whisper::create(&path, &[(60, 10)], &CreateOptions::default()).unwrap();
    for name in ["median", "Average", "", "avg zero"] {
        let rs = name
            .parse::<AggregationMethod>()
            .map(|m| json!(m.name()))
            .map_err(|e| rs_error(&e));
        let py_create = py.call(json!({
            "op": "create", "path": dir.path().join(format!("bad-{name}.wsp")),
            "archives": [[60, 10]], "method": name,
        }));
        assert_same(&format!("create with method {name:?}"), &rs, &py_create);
        let py_set = py.call(json!({"op": "set_method", "path": path, "method": name}));
        assert_same(&format!("setAggregationMethod {name:?}"), &rs, &py_set);
    }
}

#[test]
fn bad_x_files_factor_matches_whisper_py() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("x.wsp");
    whisper::create(&target, &[(60, 10)], &CreateOptions::default()).unwrap();
    let mut mismatches = Vec::new();
    let values = [
        2.0,
        -0.5,
        1.0000001,
        -1e-9,
        1.5e300,
        1e16,
        -1e-5,
        123456.789,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for (i, &x) in values.iter().enumerate() {
        let what = format!("xFilesFactor {x:e}");
        let rs_path = dir.path().join(format!("{i}-carbide.wsp"));
        let py_path = dir.path().join(format!("{i}-whisper.wsp"));
        let rs = rs_answer(
            whisper::create(
                &rs_path,
                &[(60, 10)],
                &create_opts(x, AggregationMethod::Average),
            ),
            |()| Value::Null,
        );
        let py_answer = py.call(json!({"op": "create", "path": py_path, "archives": [[60, 10]], "xff_bits": x.to_bits()}));
        differ(
            &mut mismatches,
            &format!("create with {what}"),
            &rs,
            &py_answer,
        );

        let rs = rs_answer(
            whisper::set_x_files_factor(&target, x, WriteOptions::default()),
            |old| json!(f64::from(old).to_bits()),
        );
        let py_answer = py.call(json!({"op": "set_xff", "path": target, "xff_bits": x.to_bits()}));
        differ(
            &mut mismatches,
            &format!("setXFilesFactor {what}"),
            &rs,
            &py_answer,
        );

        let rs = rs_answer(
            whisper::set_aggregation_method(
                &target,
                AggregationMethod::Sum,
                Some(x),
                WriteOptions::default(),
            ),
            |old| json!(old.name()),
        );
        let py_answer = py.call(
            json!({"op": "set_method", "path": target, "method": "sum", "xff_bits": x.to_bits()}),
        );
        differ(
            &mut mismatches,
            &format!("setAggregationMethod with {what}"),
            &rs,
            &py_answer,
        );
    }
    assert!(
        mismatches.is_empty(),
        "carbide and whisper.py disagree:\n{}",
        mismatches.join("\n")
    );
    // Accepted edge values: the same old value back and the same bytes written.
    for x in [0.0, -0.0, 1.0, 0.1, 0.3] {
        let copy = dir.path().join("x-py.wsp");
        std::fs::copy(&target, &copy).unwrap();
        let rs = rs_answer(
            whisper::set_x_files_factor(&target, x, WriteOptions::default()),
            |old| json!(f64::from(old).to_bits()),
        );
        let py_answer = py.call(json!({"op": "set_xff", "path": copy, "xff_bits": x.to_bits()}));
        assert_same(&format!("setXFilesFactor {x:e}"), &rs, &py_answer);
        assert!(
            std::fs::read(&target).unwrap() == std::fs::read(&copy).unwrap(),
            "xFilesFactor {x:e}: files differ"
        );
    }
}

#[test]
fn nan_x_files_factor_is_refused() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.wsp");
    let err = whisper::create(
        &path,
        &[(60, 10)],
        &create_opts(f64::NAN, AggregationMethod::Average),
    )
    .expect_err("carbide must refuse a NaN xFilesFactor");
    assert!(matches!(err, WhisperError::InvalidXFilesFactor(_)), "{err}");
    assert!(err.to_string().contains("nan"), "{err}");
    // Why: whisper.py writes it, then cannot read its own file.
    let py_path = dir.path().join("nan-py.wsp");
    py.call(json!({"op": "create", "path": py_path, "archives": [[60, 10]], "xff_bits": f64::NAN.to_bits()}))
        .expect("whisper.py accepts NaN");
    let info = py.call(json!({"op": "info", "path": py_path}));
    assert_eq!(info.unwrap_err()["type"], "CorruptWhisperFile");
}

// ---------------------------------------------------------------------------------------------
// update and fetch (§1.9, §1.11)

#[test]
fn timestamp_not_covered_matches_whisper_py() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.wsp");
    whisper::create(&path, &[(10, 6), (60, 10)], &CreateOptions::default()).unwrap();
    // Future, age = maxRetention, far past, and (for contrast) the oldest covered second.
    for ts in [NOW + 1, NOW - 600, NOW - 10_000_000, NOW - 599] {
        let before = std::fs::read(&path).unwrap();
        let rs = rs_answer(
            whisper::update(&path, 1.0, Some(ts), Some(NOW), WriteOptions::default()),
            |()| Value::Null,
        );
        std::fs::write(&path, &before).unwrap();
        let py_answer = py.call(json!({"op": "update", "path": path, "value_bits": 1.0f64.to_bits(), "ts": ts, "now": NOW}));
        assert_same(&format!("update at now{:+}", ts - NOW), &rs, &py_answer);
    }
}

#[test]
fn invalid_time_interval_and_granularity_match_whisper_py() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.wsp");
    whisper::create(&path, &[(10, 6), (60, 10)], &CreateOptions::default()).unwrap();
    let windows: &[(i64, Option<i64>, Option<i64>)] = &[
        (NOW, Some(NOW - 1), None),
        (NOW + 100, None, None),
        (NOW - 100, Some(NOW), Some(7)),
        (NOW - 100, Some(NOW), Some(3600)),
        (NOW - 100, Some(NOW), Some(60)),
        (NOW - 100, Some(NOW), Some(0)),
        (-5, Some(-10), Some(7)),
    ];
    for &(from, until, archive) in windows {
        let rs = rs_answer(
            whisper::fetch(&path, from, until, Some(NOW), archive),
            fetch_json,
        );
        let py_answer = py.call(json!({"op": "fetch", "path": path, "from": from, "until": until, "now": NOW, "archive": archive}));
        assert_same(
            &format!("fetch({from}, {until:?}, archive {archive:?})"),
            &rs,
            &py_answer,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Damaged files

/// A real file with data in every archive: 3 archives, the last one small.
fn valid_file(dir: &Path) -> Vec<u8> {
    let path = dir.join("valid.wsp");
    whisper::create(
        &path,
        &[(1, 10), (5, 12), (60, 4)],
        &CreateOptions::default(),
    )
    .unwrap();
    let points: Vec<(i64, f64)> = (0..200).map(|k| (NOW - 3 * k, k as f64)).collect();
    whisper::update_many(&path, &points, Some(NOW), WriteOptions::default()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

fn patch_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[derive(Clone, Copy, Debug)]
enum FileOp {
    Info,
    Fetch,
    FetchCoarsest,
    Update,
    UpdateMany,
}

const FILE_OPS: [FileOp; 5] = [
    FileOp::Info,
    FileOp::Fetch,
    FileOp::FetchCoarsest,
    FileOp::Update,
    FileOp::UpdateMany,
];

fn many_points() -> Vec<(i64, f64)> {
    (0..40).map(|k| (NOW - 7 * k, -(k as f64))).collect()
}

fn rs_file_op(path: &Path, op: FileOp) -> Answer {
    match op {
        FileOp::Info => rs_answer(whisper::info(path), header_json),
        FileOp::Fetch => rs_answer(
            whisper::fetch(path, NOW - 8, Some(NOW), Some(NOW), None),
            fetch_json,
        ),
        FileOp::FetchCoarsest => rs_answer(
            whisper::fetch(path, NOW - 200, Some(NOW), Some(NOW), None),
            fetch_json,
        ),
        FileOp::Update => rs_answer(
            whisper::update(path, 2.5, Some(NOW - 1), Some(NOW), WriteOptions::default()),
            |()| Value::Null,
        ),
        FileOp::UpdateMany => rs_answer(
            whisper::update_many(path, &many_points(), Some(NOW), WriteOptions::default()),
            |()| Value::Null,
        ),
    }
}

fn py_file_op(py: &mut PyWhisper, path: &Path, op: FileOp) -> Answer {
    match op {
        FileOp::Info => py.call(json!({"op": "info", "path": path})),
        FileOp::Fetch => py.call(json!({"op": "fetch", "path": path, "from": NOW - 8, "until": NOW, "now": NOW})),
        FileOp::FetchCoarsest => py.call(json!({"op": "fetch", "path": path, "from": NOW - 200, "until": NOW, "now": NOW})),
        FileOp::Update => py.call(json!({"op": "update", "path": path, "value_bits": 2.5f64.to_bits(), "ts": NOW - 1, "now": NOW})),
        FileOp::UpdateMany => {
            let wire: Vec<(i64, u64)> = many_points().iter().map(|&(t, v)| (t, v.to_bits())).collect();
            py.call(json!({"op": "update_many", "path": path, "points": wire, "now": NOW}))
        }
    }
}

/// Runs `op` on `bytes` with Carbide, then on the same bytes at the same path with whisper.py.
fn both_on(py: &mut PyWhisper, path: &Path, bytes: &[u8], op: FileOp) -> (Answer, Answer) {
    std::fs::write(path, bytes).unwrap();
    let rs = rs_file_op(path, op);
    std::fs::write(path, bytes).unwrap();
    let py_answer = py_file_op(py, path, op);
    (rs, py_answer)
}

/// Headers whisper.py itself recognises as corrupt: Carbide must say exactly what it says,
/// for every operation.
#[test]
fn corrupt_headers_match_whisper_py() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    let valid = valid_file(dir.path());
    let path = dir.path().join("corrupt.wsp");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty file", vec![]),
        ("10 bytes of metadata", valid[..10].to_vec()),
        ("metadata only, 15 bytes", valid[..15].to_vec()),
        (
            "metadata but no archive records",
            valid[..METADATA_SIZE].to_vec(),
        ),
        ("archive record 1 cut short", valid[..16 + 12 + 5].to_vec()),
        ("archive record 2 cut short", valid[..16 + 24 + 11].to_vec()),
    ];
    for (name, code) in [
        ("method code 0", 0u32),
        ("method code 9", 9),
        ("method code 0xffffffff", u32::MAX),
    ] {
        let mut b = valid.clone();
        patch_u32(&mut b, 0, code);
        cases.push((name, b));
    }
    for (name, xff) in [
        ("xff NaN", f32::NAN),
        ("xff 1.5", 1.5),
        ("xff -0.1", -0.1),
        ("xff inf", f32::INFINITY),
    ] {
        let mut b = valid.clone();
        patch_u32(&mut b, 8, xff.to_bits());
        cases.push((name, b));
    }
    // An archive count far beyond the records: the data is read as more records until the
    // file ends.
    let mut b = valid.clone();
    patch_u32(&mut b, 12, u32::MAX);
    cases.push(("archive count 2^32-1", b));
    let mut b = valid.clone();
    patch_u32(&mut b, 12, 1000);
    cases.push(("archive count 1000", b));

    for (name, bytes) in &cases {
        for op in FILE_OPS {
            let (rs, py_answer) = both_on(&mut py, &path, bytes, op);
            assert_same(&format!("{name}, {op:?}"), &rs, &py_answer);
            assert!(
                py_answer.is_err(),
                "{name}, {op:?}: whisper.py accepted the file"
            );
        }
    }
}

/// Damage whisper.py does not notice in its header (it then reads short data, divides by zero
/// or grows the file): info must still match whisper.py, and every data operation must be an
/// error that names the file and the problem.
#[test]
fn corrupt_archives_are_errors_naming_the_file() {
    let mut py = py();
    let dir = tempfile::tempdir().unwrap();
    let valid = valid_file(dir.path());
    let path = dir.path().join("damaged.wsp");
    let rec = |i: usize| 16 + 12 * i;
    let len = valid.len() as u32;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "data cut in the middle of archive 2",
            valid[..valid.len() - 30].to_vec(),
        ),
        (
            "data cut in the middle of a point",
            valid[..valid.len() - 5].to_vec(),
        ),
        (
            "data cut at the end of the header",
            valid[..16 + 36].to_vec(),
        ),
    ];
    let edits: Vec<(&str, usize, u32)> = vec![
        ("archive 0 offset past the end", rec(0), len + 100),
        ("archive 2 offset past the end", rec(2), len),
        ("archive 1 offset u32::MAX", rec(1), u32::MAX),
        ("archive 2 size past the end", rec(2) + 8, 1000),
        ("archive 0 size past the end", rec(0) + 8, u32::MAX),
        ("archive 1 with 0 seconds per point", rec(1) + 4, 0),
        ("archive 0 with 0 seconds per point", rec(0) + 4, 0),
        ("archive 2 with 0 points", rec(2) + 8, 0),
        ("archive 0 with 0 points", rec(0) + 8, 0),
    ];
    for (name, at, v) in edits {
        let mut b = valid.clone();
        patch_u32(&mut b, at, v);
        cases.push((name, b));
    }
    let mut no_archives = valid.clone();
    patch_u32(&mut no_archives, 12, 0);
    cases.push(("archive count 0", no_archives));

    let shown = path.display().to_string();
    let mut report = Vec::new();
    for (name, bytes) in &cases {
        for op in FILE_OPS {
            let (rs, py_answer) = both_on(&mut py, &path, bytes, op);
            if let FileOp::Info = op {
                assert_same(&format!("{name}, info"), &rs, &py_answer);
                continue;
            }
            match &rs {
                Err(e) => {
                    let msg = e["msg"].as_str().unwrap_or_default();
                    assert_eq!(e["type"], "CorruptWhisperFile", "{name}, {op:?}: {e}");
                    assert!(
                        msg.contains(&shown) && msg.len() > shown.len() + 10,
                        "{name}, {op:?}: the error must name the file and the problem: {msg:?}"
                    );
                }
                Ok(v) => panic!("{name}, {op:?}: carbide accepted a damaged file: {v}; whisper.py: {py_answer:?}"),
            }
            report.push(format!(
                "{name}, {op:?}: carbide {rs:?} | whisper.py {py_answer:?}"
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// A header whose maxRetention is far larger than its archives: fetch over the whole claimed
/// retention of a never-written archive. whisper.py would build a list of ~1.7e9 Nones; Carbide
/// must not exhaust memory: a bounded result, or an error that names the damaged file.
#[test]
fn huge_max_retention_fetch_does_not_crash() {
    run_isolated("isolated_huge_max_retention_fetch");
}

#[test]
#[ignore = "run by huge_max_retention_fetch_does_not_crash under a memory limit"]
fn isolated_huge_max_retention_fetch() {
    if !isolated() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.wsp");
    whisper::create(&path, &[(1, 10)], &CreateOptions::default()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    patch_u32(&mut bytes, 4, u32::MAX);
    std::fs::write(&path, &bytes).unwrap();
    // The header is damaged (maxRetention far beyond every archive's retention), so an
    // error must say so and name the file, like every other damaged-file error.
    let shown = path.display().to_string();
    for archive in [None, Some(1)] {
        match whisper::fetch(&path, 0, Some(NOW), Some(NOW), archive) {
            Ok(r) => {
                let n = r.map_or(0, |r| r.values.len());
                eprintln!("archive {archive:?}: Ok, {n} values");
            }
            Err(e) => {
                eprintln!("archive {archive:?}: Err {e}");
                assert!(
                    e.to_string().contains(&shown),
                    "archive {archive:?}: the error does not name the file: {e}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fuzzing: random bytes, random truncations and bit flips of real files

#[test]
fn damaged_files_never_panic() {
    run_isolated("isolated_damaged_files_never_panic");
}

fn fuzz_input(valid: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let flips = (
        select(valid.clone()),
        vec((any::<prop::sample::Index>(), 0u8..8), 1..6),
    )
        .prop_map(|(mut b, flips)| {
            for (at, bit) in flips {
                let i = at.index(b.len());
                b[i] ^= 1 << bit;
            }
            b
        });
    let cut = (select(valid.clone()), any::<prop::sample::Index>())
        .prop_map(|(b, at)| b[..at.index(b.len() + 1)].to_vec());
    // Headers that pass whisper's own checks, with random archive records and data: these
    // reach the code past the header.
    let plausible = (
        1u32..=8,
        prop_oneof![any::<u32>(), 0u32..5000],
        0.0f32..=1.0,
        vec(
            (prop_oneof![any::<u32>(), 0u32..2000], 0u32..100, 0u32..60),
            0..5,
        ),
        prop_oneof![
            vec(any::<u8>(), 0..1500),
            (0usize..1500).prop_map(|n| vec![0u8; n])
        ],
    )
        .prop_map(|(method, max_ret, xff, archives, data)| {
            let mut b = Vec::new();
            for w in [method, max_ret, xff.to_bits(), archives.len() as u32] {
                b.extend(w.to_be_bytes());
            }
            for (offset, spp, points) in archives {
                for w in [offset, spp, points] {
                    b.extend(w.to_be_bytes());
                }
            }
            b.extend(data);
            b
        });
    prop_oneof![1 => vec(any::<u8>(), 0..300), 3 => flips, 2 => cut, 3 => plausible]
}

#[test]
#[ignore = "run by damaged_files_never_panic under a memory limit"]
fn isolated_damaged_files_never_panic() {
    if !isolated() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut valid = vec![valid_file(dir.path())];
    for (i, (archives, points)) in [
        (&[(60u32, 5u32)][..], 3i64),
        (&[(1, 6), (2, 6), (6, 4)][..], 40),
    ]
    .iter()
    .enumerate()
    {
        let path = dir.path().join(format!("v{i}.wsp"));
        whisper::create(
            &path,
            archives,
            &create_opts(0.0, AggregationMethod::AvgZero),
        )
        .unwrap();
        let pts: Vec<(i64, f64)> = (0..*points).map(|k| (NOW - k, k as f64)).collect();
        whisper::update_many(&path, &pts, Some(NOW), WriteOptions::default()).unwrap();
        valid.push(std::fs::read(&path).unwrap());
    }
    let path = dir.path().join("fuzz.wsp");
    let shown = path.display().to_string();
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    });
    let last_input = std::env::var_os(LAST_INPUT).map(PathBuf::from);
    let result = runner.run(&fuzz_input(valid), |bytes| {
        // An abort kills this process before proptest can report: leave the input behind.
        if let Some(p) = &last_input {
            std::fs::write(p, &bytes).unwrap();
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut results: Vec<Result<(), WhisperError>> = vec![whisper::info(&path).map(drop)];
        for (from, until, now, archive) in [
            (NOW - 8, Some(NOW), NOW, None),
            (0, None, NOW, None),
            (NOW - 300, Some(NOW), NOW, Some(60)),
            (0, Some(50), 100, None),
        ] {
            results.push(whisper::fetch(&path, from, until, Some(now), archive).map(drop));
        }
        results.push(whisper::update(
            &path,
            1.0,
            Some(NOW - 1),
            Some(NOW),
            WriteOptions::default(),
        ));
        results.push(whisper::update_many(
            &path,
            &many_points(),
            Some(NOW),
            WriteOptions::default(),
        ));
        results.push(whisper::update_many(
            &path,
            &[(3, 1.0), (90, 2.0), (0, 3.0)],
            Some(100),
            WriteOptions::default(),
        ));
        results.push(whisper::fetch(&path, NOW - 300, Some(NOW), Some(NOW), None).map(drop));
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            if py_class(e) == "CorruptWhisperFile" {
                prop_assert!(
                    e.to_string().contains(&shown),
                    "error without the file name: {e}"
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Child processes under a memory limit

const ISOLATED: &str = "CARBIDE_ISOLATED_CHILD";
/// Where a child leaves the input it is working on, for the parent to show after a crash.
const LAST_INPUT: &str = "CARBIDE_ISOLATED_LAST_INPUT";

fn isolated() -> bool {
    let yes = std::env::var_os(ISOLATED).is_some();
    if !yes {
        eprintln!("skipped: runs only as a child of its parent test");
    }
    yes
}

/// Runs one `#[ignore]`d test of this binary in a child whose address space is limited to
/// 2 GiB, so that a runaway allocation aborts the child (failing this test) instead of
/// swallowing the machine's memory.
fn run_isolated(test: &str) {
    use std::os::unix::process::CommandExt;
    const LIMIT: libc::rlim_t = 2 << 30;
    let exe: PathBuf = std::env::current_exe().expect("test binary path");
    let scratch = tempfile::tempdir().expect("temp dir");
    let last_input = scratch.path().join("last-input.bin");
    let mut cmd = Command::new(exe);
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ISOLATED, "1")
    .env(LAST_INPUT, &last_input);
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: LIMIT,
                rlim_max: LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run the isolated test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let input = match std::fs::read(&last_input) {
        Ok(b) => format!("{} bytes: {b:02x?}", b.len()),
        Err(_) => "none".to_string(),
    };
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} failed in its child process ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n\
         --- last input\n{input}",
        out.status
    );
    eprintln!("{stderr}");
}
