//! Carbide's whisper engine against whisper.py 1.1.10 itself, operation by operation.
//!
//! Operators move whisper files between Carbide and Graphite in both directions, so "close" is
//! not good enough: after every create/update/update_many the two files must be identical to the
//! byte, every fetch must return the same slots and bit-identical values, and every failure must
//! be the same whisper.py exception with the same text. A property test drives both
//! implementations through random archive layouts, xFilesFactors (including ones that are not
//! exact in f32), all eight aggregation methods, and random operation sequences chosen to hit the
//! corners that decide where bytes land: points out of order, duplicates, points in the future
//! and beyond the retention, archive wrap-around (point counts are small), clock jumps longer
//! than the whole retention, timestamps near the epoch (interval 0 and negative intervals).
//! Deterministic cases then pin the update_many quirks of spec §1.10, each also checking on
//! whisper.py's own output that the quirk was really exercised.
//!
//! whisper.py runs in one long-lived driver process (tests/support/whisper_driver.py).
//! A run prints its seed; `CARBIDE_PROPTEST_SEED=<seed>` replays it and
//! `CARBIDE_PROPTEST_CASES=<n>` changes the number of cases. proptest also records failing
//! cases in `tests/whisper_vs_python.proptest-regressions` and replays them first.

mod common;
mod support;

use std::cell::RefCell;
use std::path::Path;

use carbide::whisper::{self, AggregationMethod, CreateOptions, WriteOptions};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};
use serde_json::{json, Value};
use support::{fetch_json, header_json, rs_answer, Answer, PyWhisper};

/// One fetch, all times absolute.
#[derive(Clone, Debug)]
struct Window {
    from: i64,
    until: Option<i64>,
    now: i64,
    archive: Option<i64>,
}

/// One operation, all times absolute, so that a printed failing case can be replayed by hand.
#[derive(Clone, Debug)]
enum Op {
    Update { now: i64, ts: i64, value: f64 },
    UpdateMany { now: i64, points: Vec<(i64, f64)> },
    Fetch(Window),
}

#[derive(Clone, Debug)]
struct Case {
    /// In the order given to create (shuffled: create must sort them).
    archives: Vec<(u32, u32)>,
    xff: f64,
    method: AggregationMethod,
    ops: Vec<Op>,
}

/// Both implementations side by side: one driver, one directory, fresh files per case.
struct Harness {
    py: PyWhisper,
    dir: tempfile::TempDir,
    next_id: u64,
    /// Outcomes seen, by operation: printed at the end so a run shows what it exercised.
    tally: std::collections::BTreeMap<String, u64>,
}

/// What went wrong in a case, with both sides' outputs.
type Mismatch = String;

/// A kept handle must still name its file before an operation, as in the persister, which
/// writes to a file it has just made without that check.
fn revalidated(f: &mut whisper::WhisperFile, just_created: &mut bool) -> Result<(), Mismatch> {
    if std::mem::take(just_created) {
        return Ok(());
    }
    match f.revalidate() {
        Ok(true) => Ok(()),
        Ok(false) => Err("a kept handle no longer names its file".into()),
        Err(e) => Err(format!("revalidate: {e}")),
    }
}

impl Harness {
    fn new() -> Harness {
        Harness {
            py: PyWhisper::start(&support::python()),
            dir: tempfile::tempdir().expect("temp dir"),
            next_id: 0,
            tally: Default::default(),
        }
    }

    /// Runs a case on both sides; returns whisper.py's final file on success.
    fn run(&mut self, case: &Case) -> Result<Vec<u8>, Mismatch> {
        self.next_id += 1;
        let rs_path = self
            .dir
            .path()
            .join(format!("{}-carbide.wsp", self.next_id));
        let py_path = self
            .dir
            .path()
            .join(format!("{}-whisper.wsp", self.next_id));
        let result = self.run_in(case, &rs_path, &py_path);
        let _ = std::fs::remove_file(&rs_path);
        let _ = std::fs::remove_file(&py_path);
        result
    }

    fn run_in(&mut self, case: &Case, rs_path: &Path, py_path: &Path) -> Result<Vec<u8>, Mismatch> {
        let opts = CreateOptions {
            x_files_factor: case.xff,
            aggregation_method: case.method,
            ..CreateOptions::default()
        };
        // Odd cases run Carbide's side as the persister does: the file made by
        // `WhisperFile::create_new` (whose first update reads nothing from disk) and then kept
        // open, revalidated before each later operation. Even cases open the path per
        // operation.
        let mut kept: Option<whisper::WhisperFile> = None;
        let mut just_created = true;
        let rs = if self.next_id % 2 == 1 {
            rs_answer(
                whisper::WhisperFile::create_new(rs_path, &case.archives, &opts),
                |f| {
                    kept = Some(f);
                    Value::Null
                },
            )
        } else {
            rs_answer(whisper::create(rs_path, &case.archives, &opts), |()| {
                Value::Null
            })
        };
        let py = self.py.call(json!({
            "op": "create", "path": py_path, "archives": case.archives,
            "xff_bits": case.xff.to_bits(), "method": case.method.name(),
        }));
        same("create", &rs, &py)?;
        same_files("create", rs_path, py_path)?;
        let rs = rs_answer(whisper::info(rs_path), header_json);
        let py = self.py.call(json!({"op": "info", "path": py_path}));
        same("info", &rs, &py)?;

        let header = whisper::info(rs_path).map_err(|e| format!("info: {e}"))?;
        let mut last_now = 0;
        for (i, op) in case.ops.iter().enumerate() {
            let step = format!("op {i} {op:?}");
            match op {
                Op::Update { now, ts, value } => {
                    last_now = *now;
                    let written = match kept.as_mut() {
                        Some(f) => {
                            revalidated(f, &mut just_created)?;
                            f.update(*value, Some(*ts), Some(*now))
                        }
                        None => whisper::update(
                            rs_path,
                            *value,
                            Some(*ts),
                            Some(*now),
                            WriteOptions::default(),
                        ),
                    };
                    let rs = rs_answer(written, |()| Value::Null);
                    let py = self.py.call(json!({
                        "op": "update", "path": py_path, "value_bits": value.to_bits(),
                        "ts": ts, "now": now,
                    }));
                    self.count("update", &py);
                    same(&step, &rs, &py)?;
                    same_files(&step, rs_path, py_path)?;
                }
                Op::UpdateMany { now, points } => {
                    last_now = *now;
                    let written = match kept.as_mut() {
                        Some(f) => {
                            revalidated(f, &mut just_created)?;
                            f.update_many(points, Some(*now))
                        }
                        None => whisper::update_many(
                            rs_path,
                            points,
                            Some(*now),
                            WriteOptions::default(),
                        ),
                    };
                    let rs = rs_answer(written, |()| Value::Null);
                    let wire: Vec<(i64, u64)> =
                        points.iter().map(|&(t, v)| (t, v.to_bits())).collect();
                    let py = self.py.call(json!({
                        "op": "update_many", "path": py_path, "points": wire, "now": now,
                    }));
                    self.count("update_many", &py);
                    same(&step, &rs, &py)?;
                    same_files(&step, rs_path, py_path)?;
                }
                Op::Fetch(w) => self.same_fetch(&step, rs_path, py_path, w)?,
            }
        }

        // Every archive read over its whole retention, chosen by age and by precision, plus
        // windows reaching past both ends.
        let r = i64::from(header.max_retention);
        let mut windows = vec![
            Window {
                from: last_now - r,
                until: Some(last_now),
                now: last_now,
                archive: None,
            },
            Window {
                from: last_now - r - 97,
                until: Some(last_now + 31),
                now: last_now,
                archive: None,
            },
            Window {
                from: last_now - 1,
                until: None,
                now: last_now,
                archive: None,
            },
        ];
        for a in &header.archives {
            let spp = i64::from(a.seconds_per_point);
            let ret = a.retention as i64;
            windows.push(Window {
                from: last_now - ret,
                until: Some(last_now),
                now: last_now,
                archive: None,
            });
            windows.push(Window {
                from: last_now - r,
                until: Some(last_now),
                now: last_now,
                archive: Some(spp),
            });
        }
        for (i, w) in windows.iter().enumerate() {
            self.same_fetch(&format!("final fetch {i} {w:?}"), rs_path, py_path, w)?;
        }
        std::fs::read(py_path).map_err(|e| format!("read whisper.py's file: {e}"))
    }

    fn same_fetch(
        &mut self,
        step: &str,
        rs_path: &Path,
        py_path: &Path,
        w: &Window,
    ) -> Result<(), Mismatch> {
        let rs = rs_answer(
            whisper::fetch(rs_path, w.from, w.until, Some(w.now), w.archive),
            fetch_json,
        );
        let py = self.py.call(json!({
            "op": "fetch", "path": py_path, "from": w.from, "until": w.until, "now": w.now,
            "archive": w.archive,
        }));
        self.count("fetch", &py);
        same(step, &rs, &py)
    }

    fn count(&mut self, op: &str, answer: &Answer) {
        let outcome = match answer {
            Err(e) => format!("{op}: {}", e["type"].as_str().unwrap_or("?")),
            Ok(Value::Null) if op == "fetch" => format!("{op}: None"),
            Ok(v) if op == "fetch" => {
                let known = v["values"]
                    .as_array()
                    .map_or(0, |a| a.iter().filter(|x| !x.is_null()).count());
                format!(
                    "{op}: {}",
                    if known > 0 { "some values" } else { "all None" }
                )
            }
            Ok(_) => format!("{op}: ok"),
        };
        *self.tally.entry(outcome).or_default() += 1;
    }
}

fn same(step: &str, rs: &Answer, py: &Answer) -> Result<(), Mismatch> {
    if rs == py {
        Ok(())
    } else {
        Err(format!(
            "{step}:\n  carbide:    {rs:?}\n  whisper.py: {py:?}"
        ))
    }
}

fn same_files(step: &str, rs: &Path, py: &Path) -> Result<(), Mismatch> {
    let read = |p: &Path| std::fs::read(p).ok();
    match (read(rs), read(py)) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "{step}: files differ: {}",
            support::describe_file_diff(&a, &b)
        )),
        (Some(_), None) | (None, Some(_)) => Err(format!("{step}: only one side has a file")),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// Valid archive lists, sorted: 1-4 archives, each precision a multiple of the previous one,
/// point counts as small as validation allows plus a little, so that wrapping is common.
fn archives_strategy() -> impl Strategy<Value = Vec<(u32, u32)>> {
    (
        select(vec![1u32, 2, 3, 5, 10, 60]),
        vec((select(vec![2u32, 3, 4, 5, 6]), 0u32..6), 1..=4),
    )
        .prop_map(|(spp0, specs)| {
            let mut spps = vec![spp0];
            for s in &specs[1..] {
                spps.push(spps[spps.len() - 1] * s.0);
            }
            let mut out: Vec<(u32, u32)> = Vec::new();
            for i in 0..specs.len() {
                let mut points = 1;
                if i + 1 < specs.len() {
                    points = points.max(spps[i + 1] / spps[i]);
                }
                if let Some(&(ps, pp)) = out.last() {
                    points = points.max(ps * pp / spps[i] + 1);
                }
                out.push((spps[i], points + specs[i].1));
            }
            out
        })
}

fn value_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => -1000.0..1000.0f64,
        3 => (-20i32..20).prop_map(f64::from),
        2 => select(vec![
            0.0, -0.0, 0.1, 0.3, -2.5, 1e300, -1e300, f64::MAX, f64::MIN, 1e-300, 5e-324, -5e-324,
            2.2250738585072014e-308, 9007199254740993.0, 1e16,
        ]),
        // Anything at all: subnormals, infinities, NaN.
        1 => any::<f64>(),
    ]
}

/// The shape of one case's timeline, derived from its archives.
#[derive(Clone, Copy, Debug)]
struct Span {
    /// maxRetention.
    r: i64,
    /// Finest precision, retention and point count.
    s0: i64,
    ret0: i64,
    p0: i64,
}

impl Span {
    fn of(sorted: &[(u32, u32)]) -> Span {
        let (s0, p0) = (i64::from(sorted[0].0), i64::from(sorted[0].1));
        let r = sorted
            .iter()
            .map(|&(s, p)| i64::from(s) * i64::from(p))
            .max()
            .unwrap_or(0);
        Span {
            r,
            s0,
            ret0: s0 * p0,
            p0,
        }
    }
}

/// now − timestamp for one point: mostly covered, some in the future, some past the
/// retention, and the exact archive boundaries.
fn age_strategy(sp: Span, sorted: &[(u32, u32)]) -> BoxedStrategy<i64> {
    let mut edges = vec![-1, 0, 1, sp.r - 1, sp.r, sp.r + 1];
    for &(s, p) in sorted {
        let ret = i64::from(s) * i64::from(p);
        edges.extend([ret - 1, ret, ret + 1, ret - i64::from(s)]);
    }
    prop_oneof![
        5 => 0..=sp.ret0,
        4 => 0..=sp.r,
        1 => -(3 * sp.s0)..=-1,
        1 => (sp.r + 1)..=(2 * sp.r + sp.s0),
        2 => select(edges),
    ]
    .boxed()
}

/// How far the clock moves before an operation: not at all, a little, a lot, past the whole
/// retention, or (clock skew) a little backwards.
fn advance_strategy(sp: Span) -> BoxedStrategy<i64> {
    prop_oneof![
        3 => Just(0i64),
        4 => 1..=(3 * sp.s0),
        2 => 0..=sp.r,
        1 => sp.r..=(3 * sp.r),
        1 => -(2 * sp.s0)..=-1,
    ]
    .boxed()
}

#[derive(Clone, Debug)]
enum RawOp {
    Update {
        advance: i64,
        age: i64,
        value: f64,
    },
    Many {
        advance: i64,
        scattered: Vec<(i64, f64)>,
        run: Option<Run>,
        dups: Vec<(usize, f64)>,
        order: Vec<u32>,
    },
    Fetch {
        now_delta: i64,
        until_age: i64,
        span: i64,
        reversed: bool,
        until_none: bool,
        archive: Option<i64>,
    },
}

/// A run of evenly spaced points, to fill archives, wrap them and (far enough in the future)
/// spill past archive 0's end.
#[derive(Clone, Debug)]
struct Run {
    start_age: i64,
    step: i64,
    values: Vec<f64>,
}

fn raw_op_strategy(sp: Span, sorted: &[(u32, u32)]) -> BoxedStrategy<RawOp> {
    let age = age_strategy(sp, sorted);
    let spps: Vec<i64> = sorted.iter().map(|a| i64::from(a.0)).collect();
    let mut steps = vec![sp.s0, 1, 2 * sp.s0];
    steps.extend(spps.get(1).copied());
    let run = (
        prop_oneof![4 => 0..=sp.r, 1 => -(2 * sp.p0 * sp.s0 + 2 * sp.s0)..=0],
        select(steps),
        vec(value_strategy(), 1..=(2 * sp.p0 as usize + 3)),
    )
        .prop_map(|(start_age, step, values)| Run {
            start_age,
            step,
            values,
        });
    let mut granularities: Vec<Option<i64>> = spps.iter().map(|&s| Some(s)).collect();
    granularities.extend([Some(7), Some(0)]);
    let update =
        (advance_strategy(sp), age.clone(), value_strategy()).prop_map(|(advance, age, value)| {
            RawOp::Update {
                advance,
                age,
                value,
            }
        });
    let many = (
        advance_strategy(sp),
        vec((age, value_strategy()), 0..10),
        proptest::option::weighted(0.5, run),
        vec((any::<usize>(), value_strategy()), 0..4),
        vec(any::<u32>(), 40),
    )
        .prop_map(|(advance, scattered, run, dups, order)| RawOp::Many {
            advance,
            scattered,
            run,
            dups,
            order,
        });
    let fetch = (
        prop_oneof![3 => Just(0i64), 1 => -sp.r..=sp.r],
        prop_oneof![3 => -(3 * sp.s0)..=(sp.r + sp.s0), 1 => select(vec![0, sp.ret0, sp.r])],
        prop_oneof![2 => 0..=sp.r, 2 => 0..=(3 * sp.s0), 1 => sp.r..=(2 * sp.r)],
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.1),
        prop_oneof![5 => Just(None), 2 => select(granularities)],
    )
        .prop_map(
            |(now_delta, until_age, span, reversed, until_none, archive)| RawOp::Fetch {
                now_delta,
                until_age,
                span,
                reversed,
                until_none,
                archive,
            },
        );
    prop_oneof![3 => update, 5 => many, 2 => fetch].boxed()
}

fn case_strategy() -> impl Strategy<Value = Case> {
    archives_strategy()
        .prop_flat_map(|sorted| {
            let sp = Span::of(&sorted);
            (
                Just(sorted.clone()).prop_shuffle(),
                prop_oneof![
                    4 => select(vec![0.0, 1.0, 0.5, 0.1, 0.3, 0.2, 0.25, 0.6, 0.7, 0.9, 1.0 / 3.0, 2.0 / 3.0]),
                    1 => 0.0..=1.0f64,
                ],
                select(AggregationMethod::ALL.to_vec()),
                // Mostly realistic clocks; sometimes one near the epoch, where intervals of 0
                // and negative timestamps appear.
                prop_oneof![8 => 1_400_000_000i64..1_900_000_000, 1 => 0..=(2 * sp.r + 10)],
                vec(raw_op_strategy(sp, &sorted), 1..14),
            )
        })
        .prop_map(|(archives, xff, method, start, raw)| Case { archives, xff, method, ops: resolve(start, &raw) })
}

/// Turns relative operations into absolute ones.
fn resolve(start: i64, raw: &[RawOp]) -> Vec<Op> {
    let mut now = start;
    raw.iter()
        .map(|op| match op {
            RawOp::Update {
                advance,
                age,
                value,
            } => {
                now += advance;
                Op::Update {
                    now,
                    ts: now - age,
                    value: *value,
                }
            }
            RawOp::Many {
                advance,
                scattered,
                run,
                dups,
                order,
            } => {
                now += advance;
                let mut points: Vec<(i64, f64)> =
                    scattered.iter().map(|&(age, v)| (now - age, v)).collect();
                if let Some(run) = run {
                    let first = now - run.start_age;
                    points.extend(
                        run.values
                            .iter()
                            .enumerate()
                            .map(|(k, &v)| (first + k as i64 * run.step, v)),
                    );
                }
                if !points.is_empty() {
                    for &(i, v) in dups {
                        points.push((points[i % points.len()].0, v));
                    }
                }
                // Shuffle by sort keys (a stable sort: shrinking the keys to 0 restores order).
                let mut keyed: Vec<(u32, (i64, f64))> = points
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (order[i % order.len()], p))
                    .collect();
                keyed.sort_by_key(|k| k.0);
                Op::UpdateMany {
                    now,
                    points: keyed.into_iter().map(|k| k.1).collect(),
                }
            }
            RawOp::Fetch {
                now_delta,
                until_age,
                span,
                reversed,
                until_none,
                archive,
            } => {
                let at = now + now_delta;
                let until = at - until_age;
                let from = if *reversed {
                    until + 1 + span
                } else {
                    until - span
                };
                let until = if *until_none { None } else { Some(until) };
                Op::Fetch(Window {
                    from,
                    until,
                    now: at,
                    archive: *archive,
                })
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The property test

fn seed() -> u64 {
    match std::env::var("CARBIDE_PROPTEST_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .expect("CARBIDE_PROPTEST_SEED must be a u64"),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32)
        }
    }
}

#[test]
fn random_operations_match_whisper_py() {
    let seed = seed();
    let cases = std::env::var("CARBIDE_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    eprintln!("random_operations_match_whisper_py: seed {seed} (CARBIDE_PROPTEST_SEED={seed} replays it), {cases} cases");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        source_file: Some(file!()),
        // Next to this file (the default looks for lib.rs/main.rs and finds none under tests/).
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let harness = RefCell::new(Harness::new());
    let started = std::time::Instant::now();
    let result = runner.run(&case_strategy(), |case| {
        harness
            .borrow_mut()
            .run(&case)
            .map(drop)
            .map_err(|m| TestCaseError::fail(format!("{m}\ncase: {case:?}")))
    });
    eprintln!(
        "random_operations_match_whisper_py: {:?}, outcomes:",
        started.elapsed()
    );
    for (outcome, n) in &harness.borrow().tally {
        eprintln!("  {outcome}: {n}");
    }
    if let Err(e) = result {
        panic!("seed {seed}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic cases for the update_many quirks of spec §1.10

fn run_fixed(case: Case) -> Vec<u8> {
    let mut h = Harness::new();
    match h.run(&case) {
        Ok(bytes) => bytes,
        Err(m) => panic!("{m}\ncase: {case:?}"),
    }
}

/// The (interval, value) records of archive `index` in a whisper file, as whisper.py wrote them.
fn records(file: &[u8], index: usize) -> Vec<(u32, f64)> {
    let word = |o: usize| u32::from_be_bytes(file[o..o + 4].try_into().unwrap());
    let rec = 16 + 12 * index;
    let (offset, points) = (word(rec) as usize, word(rec + 8) as usize);
    (0..points)
        .map(|k| {
            let o = offset + 12 * k;
            (
                word(o),
                f64::from_be_bytes(file[o + 4..o + 12].try_into().unwrap()),
            )
        })
        .collect()
}

fn case(archives: &[(u32, u32)], method: AggregationMethod, ops: Vec<Op>) -> Case {
    Case {
        archives: archives.to_vec(),
        xff: 0.5,
        method,
        ops,
    }
}

#[test]
fn future_points_are_written_into_archive_0() {
    let now = 1_000_000;
    let py = run_fixed(case(
        &[(1, 5), (5, 10)],
        AggregationMethod::Average,
        vec![Op::UpdateMany {
            now,
            points: vec![(now + 3, 1.0), (now + 1, 2.0), (now - 1, 3.0)],
        }],
    ));
    assert!(
        records(&py, 0).contains(&(now as u32 + 3, 1.0)),
        "whisper.py did not store the future point"
    );
}

#[test]
fn largest_raw_timestamp_wins_within_an_interval() {
    let now = 1_000_010;
    let py = run_fixed(case(
        &[(10, 6), (60, 10)],
        AggregationMethod::Sum,
        vec![Op::UpdateMany {
            now,
            points: vec![(now - 5, 1.0), (now - 1, 2.0), (now - 9, 3.0)],
        }],
    ));
    assert_eq!(
        records(&py, 0)[0],
        (1_000_000, 2.0),
        "the latest raw timestamp (value 2.0) should win"
    );
}

#[test]
fn first_in_list_wins_among_identical_timestamps() {
    let now = 1_000_010;
    let py = run_fixed(case(
        &[(10, 6), (60, 10)],
        AggregationMethod::Last,
        vec![Op::UpdateMany {
            now,
            points: vec![(now - 5, 1.0), (now - 5, 2.0), (now - 5, 3.0)],
        }],
    ));
    assert_eq!(
        records(&py, 0)[0],
        (1_000_000, 1.0),
        "the first of identical timestamps should win"
    );
}

#[test]
fn base_is_fixed_by_the_first_write() {
    let now = 1_000_000;
    let py = run_fixed(case(
        &[(10, 6), (60, 10)],
        AggregationMethod::Max,
        vec![
            Op::Update {
                now,
                ts: now - 20,
                value: 1.0,
            },
            // Later and earlier writes, and one after a jump past the whole retention: none
            // of them moves slot 0's interval.
            Op::UpdateMany {
                now: now + 30,
                points: vec![(now + 10, 2.0), (now - 30, 3.0)],
            },
            Op::UpdateMany {
                now: now + 5000,
                points: vec![(now + 4990, 4.0), (now + 4000, 5.0)],
            },
            Op::Fetch(Window {
                from: now + 4000,
                until: Some(now + 5000),
                now: now + 5000,
                archive: Some(60),
            }),
        ],
    ));
    let archive0 = records(&py, 0);
    assert_eq!(
        archive0[0].0 as i64,
        now - 20,
        "slot 0 must keep the first write's interval"
    );
    assert!(
        archive0.iter().any(|r| r.0 as i64 == now + 4990),
        "the late point was not written"
    );
}

#[test]
fn a_run_longer_than_archive_0_spills_into_archive_1() {
    // 13 consecutive points, 12 of them in the future, all in archive 0 (4 slots): the 9
    // points beyond the first wrap are written from slot 0 in one piece, over archive 1.
    let now = 1_000_000;
    let points: Vec<(i64, f64)> = (0..13).map(|k| (now + k, k as f64 + 0.5)).collect();
    let py = run_fixed(case(
        &[(1, 4), (2, 6)],
        AggregationMethod::Average,
        vec![
            Op::UpdateMany { now, points },
            Op::Fetch(Window {
                from: now - 12,
                until: Some(now),
                now,
                archive: Some(2),
            }),
        ],
    ));
    // Archive 1's first slots hold points 8.. (propagation into it only reaches the slots of
    // the intervals archive 0 still holds, 4..7).
    let spilled = records(&py, 1);
    assert!(
        spilled.contains(&(now as u32 + 8, 8.5)),
        "whisper.py did not spill into archive 1: {spilled:?}"
    );
}

#[test]
fn a_run_longer_than_the_last_archive_grows_the_file() {
    let now = 1_000_000;
    let points: Vec<(i64, f64)> = (0..11).map(|k| (now + k, -(k as f64))).collect();
    let py = run_fixed(case(
        &[(1, 4)],
        AggregationMethod::Min,
        vec![Op::UpdateMany { now, points }],
    ));
    assert!(
        py.len() > 16 + 12 + 4 * 12,
        "whisper.py's file did not grow: {} bytes",
        py.len()
    );
}

#[test]
fn interval_zero_counts_as_no_previous_interval() {
    // A point at interval 0 and one at 30 form one "run" (whisper.py's `not previousInterval`),
    // so 30 lands in the slot after 0's instead of its own.
    let now = 35;
    let py = run_fixed(case(
        &[(10, 5), (20, 10)],
        AggregationMethod::AbsMax,
        vec![
            Op::UpdateMany {
                now,
                points: vec![(0, 1.0), (31, 2.0)],
            },
            Op::Fetch(Window {
                from: 0,
                until: Some(35),
                now,
                archive: None,
            }),
        ],
    ));
    assert_eq!(
        records(&py, 0)[..2],
        [(0, 1.0), (30, 2.0)],
        "interval 30 should follow interval 0"
    );
}

#[test]
fn interval_zero_in_slot_0_reads_as_an_empty_archive() {
    // Slot 0 holding interval 0 looks like "never written", so the next batch picks a new
    // base: its first run starts at slot 0 again.
    let now = 35;
    let py = run_fixed(case(
        &[(10, 5), (20, 10)],
        AggregationMethod::Average,
        vec![
            Op::UpdateMany {
                now,
                points: vec![(0, 1.0), (31, 2.0)],
            },
            Op::UpdateMany {
                now: now + 10,
                points: vec![(now + 3, 3.0), (0, 4.0), (12, -5.0)],
            },
            Op::Fetch(Window {
                from: 0,
                until: Some(45),
                now: 45,
                archive: None,
            }),
        ],
    ));
    assert_eq!(
        records(&py, 0)[..2],
        [(0, 4.0), (10, -5.0)],
        "the second batch should restart at slot 0"
    );
}

#[test]
fn propagating_interval_zero_into_slot_0_empties_the_lower_archive() {
    // Found by the property test (seed 1795845872419221246). The 960 s archive gets 1920 at
    // slot 0 from the first batch; the second batch propagates 0 (slot 0 again, so its base now
    // reads as "never written") and then 960, which therefore lands in slot 0 too, not slot 1.
    let py = run_fixed(Case {
        archives: vec![(10, 9), (40, 4), (160, 11), (960, 2)],
        xff: 0.2,
        method: AggregationMethod::Average,
        ops: vec![Op::UpdateMany {
            now: 2069,
            points: vec![
                (2069, 0.0),
                (2080, 0.0),
                (959, 0.0),
                (1419, 0.0),
                (1439, 0.0),
                (1459, 0.0),
            ],
        }],
    });
    assert_eq!(records(&py, 3), [(960, 0.0), (0, 0.0)]);
}

#[test]
fn a_negative_interval_fails_its_batch_only() {
    // The finest archive's batch is packed and written, then the coarser batch holding a
    // negative timestamp fails to pack (struct.error): both sides must stop at the same byte.
    let now = 25;
    let py = run_fixed(case(
        &[(1, 10), (5, 20)],
        AggregationMethod::Sum,
        vec![
            Op::UpdateMany {
                now,
                points: vec![(now - 1, 1.0), (now - 2, 2.0), (-7, 3.0), (now - 30, 4.0)],
            },
            Op::Update {
                now,
                ts: -3,
                value: 5.0,
            },
        ],
    ));
    assert!(
        records(&py, 0).iter().any(|r| r.0 == 24),
        "the finest batch was not written"
    );
}
