//! Carbide's pickle receiver against carbon 1.1.10 itself.
//!
//! `tests/support/pickle_corpus.py` runs carbon's real `SafeUnpickler.loads` and
//! `MetricPickleReceiver.stringReceived` on CPython 3.11 over ~2,400 payloads: `pickle.dumps`
//! of realistic and odd batches at protocols 0–5, hand-written Python 2 pickles, hostile
//! pickles, every truncation of a valid pickle, random bytes and random mutations. Each
//! answer (loaded object's `ascii()`, or exception type and text; points with exact float
//! bits, log lines, escaping exception) must be reproduced exactly.
//!
//! The rest checks what CPython cannot tell us: that hostile inputs are refused quickly and
//! with small allocations (a per-thread counting allocator measures the peak), that nothing
//! panics on arbitrary input (proptest), and the framing rules.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ops::ControlFlow;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use carbide::ingest::pickle::{
    decode_frame, unpickle, ExcKind, FeedError, FrameDecoder, FrameError, FrameOutcome, Limits,
    DEFAULT_MAX_FRAME_LENGTH,
};
use proptest::prelude::*;
use serde_json::Value;

// ---- allocation accounting -------------------------------------------------------------

/// Counts live bytes per thread while `TRACKING` is set, so parallel tests do not disturb
/// each other's measurements.
struct CountingAlloc;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn account(delta: isize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LIVE.try_with(|l| {
                let now = l.get() + delta;
                l.set(now);
                let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
            });
        }
    });
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        account(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        account(new_size as isize - layout.size() as isize);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f`, returning its result, the peak bytes it had allocated at once, and its time.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    TRACKING.with(|t| t.set(false));
    (out, PEAK.with(|p| p.get()).max(0) as usize, elapsed)
}

// ---- the corpus ------------------------------------------------------------------------

struct Case {
    name: String,
    payload: Vec<u8>,
    load: Value,
    frame: Value,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn corpus() -> &'static [Case] {
    static CORPUS: OnceLock<Vec<Case>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/pickle_corpus.py");
        let out = Command::new(common::python())
            .arg(&script)
            .output()
            .expect("run pickle_corpus.py");
        assert!(
            out.status.success(),
            "pickle_corpus.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8 corpus")
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).expect("corpus json");
                Case {
                    name: v["name"].as_str().unwrap_or_default().to_string(),
                    payload: unhex(v["payload"].as_str().unwrap_or_default()),
                    load: v["load"].clone(),
                    frame: v["frame"].clone(),
                }
            })
            .collect()
    })
}

fn bits_hex(f: f64) -> String {
    format!("{:016x}", f.to_bits())
}

fn same_float(a: &str, b: &str) -> bool {
    let parse = |s: &str| f64::from_bits(u64::from_str_radix(s, 16).unwrap_or(0));
    a == b || (parse(a).is_nan() && parse(b).is_nan())
}

/// Carbide's outcome in the oracle's shape: (points, logs, escaped).
fn frame_shape(o: &FrameOutcome) -> (Vec<[String; 3]>, Vec<String>, Option<[String; 2]>) {
    let points = o
        .points
        .iter()
        .map(|p| {
            [
                hex(p.metric.as_bytes()),
                bits_hex(p.timestamp),
                bits_hex(p.value),
            ]
        })
        .collect();
    let mut logs: Vec<String> = o
        .bad_items
        .iter()
        .map(|e| format!("Error decoding pickle: {e}"))
        .collect();
    let mut escaped = None;
    match &o.error {
        Some(e @ FrameError::Ignored(_)) => logs.extend(e.log_line("peer")),
        Some(FrameError::Closed(e)) => {
            escaped = Some([e.kind.name().to_string(), e.message.clone()])
        }
        None => {}
    }
    (points, logs, escaped)
}

fn check_case(case: &Case) -> Result<(), String> {
    let limits = Limits::default();
    match (unpickle(&case.payload, &limits), &case.load) {
        (Err(e), load) if load.get("exc").is_some() => {
            let want = &load["exc"];
            if want[0] != e.kind.name() || want[1] != e.message.as_str() {
                return Err(format!(
                    "load: want {want}, got {:?}: {:?}",
                    e.kind, e.message
                ));
            }
        }
        (Ok(l), load) if load.get("repr").is_some() => {
            if let Some(want) = load["repr"].as_str() {
                let got = l.arena.ascii_repr(l.root, 500);
                if got.as_deref() != Some(want) {
                    return Err(format!("load: want {want}, got {got:?}"));
                }
            }
        }
        (got, want) => {
            let got = got.map(|l| l.arena.ascii_repr(l.root, 500));
            return Err(format!("load: want {want}, got {got:?}"));
        }
    }
    let outcome = decode_frame(&case.payload, &limits);
    let (points, logs, escaped) = frame_shape(&outcome);
    let want_points: Vec<&Value> = case.frame["points"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // Names with lone surrogates are counted, not delivered, by Carbide.
    let surrogate =
        |p: &Value| std::str::from_utf8(&unhex(p[0].as_str().unwrap_or_default())).is_err();
    let want_surrogates = want_points.iter().filter(|p| surrogate(p)).count();
    let want_points: Vec<&Value> = want_points.into_iter().filter(|p| !surrogate(p)).collect();
    let same_points = want_points.len() == points.len()
        && want_points.iter().zip(&points).all(|(w, g)| {
            w[0] == g[0].as_str()
                && same_float(w[1].as_str().unwrap_or(""), &g[1])
                && same_float(w[2].as_str().unwrap_or(""), &g[2])
        });
    if !same_points || want_surrogates != outcome.surrogate_names {
        return Err(format!("points: want {want_points:?}, got {points:?}"));
    }
    let want_logs: Vec<&str> = case.frame["logs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if want_logs != logs {
        return Err(format!("logs: want {want_logs:?}, got {logs:?}"));
    }
    let want_escaped = &case.frame["escaped"];
    let got_escaped = escaped
        .map(|[k, m]| serde_json::json!([k, m]))
        .unwrap_or(Value::Null);
    if *want_escaped != got_escaped {
        return Err(format!("escaped: want {want_escaped}, got {got_escaped}"));
    }
    Ok(())
}

fn check_group(prefix: &str) {
    let cases: Vec<&Case> = corpus()
        .iter()
        .filter(|c| c.name.starts_with(prefix))
        .collect();
    assert!(!cases.is_empty(), "no corpus cases named {prefix}*");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            check_case(c)
                .err()
                .map(|e| format!("{} [{}]: {e}", c.name, hex(&c.payload)))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from carbon:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn safe_batches_match_carbon_at_every_protocol() {
    for group in [
        "list_of_tuples",
        "tuple_of_lists",
        "int_values",
        "float_values",
        "bool_values",
        "str_values",
        "bytes_values",
        "big_ints",
        "big_int_overflow",
        "unicode_names",
        "memo_reuse",
        "bad_items",
        "bytes_metric",
        "int_metric",
        "none_metric",
        "dict_payload",
        "dict_keys_merge",
        "str_payload",
        "bytes_payload",
        "empty_list",
        "empty_tuple",
        "none_payload",
        "int_payload",
        "float_payload",
        "frozen_single",
        "set_single",
        "nested_tuple_keys",
    ] {
        check_group(&format!("{group}/"));
    }
}

#[test]
fn python2_pickles_match_carbon() {
    check_group("py2/");
}

#[test]
fn hostile_pickles_match_carbon() {
    check_group("hostile/");
}

#[test]
fn truncations_match_carbon() {
    check_group("truncated/");
}

#[test]
fn random_bytes_match_carbon() {
    check_group("random/");
}

#[test]
fn mutations_match_carbon() {
    check_group("mutated/");
}

// ---- resource bounds -------------------------------------------------------------------

/// Decodes `payload` and checks it stays within `max_bytes` of allocation and 2 s.
fn bounded(payload: &[u8], max_bytes: usize) -> FrameOutcome {
    let (outcome, peak, took) = measure(|| decode_frame(payload, &Limits::default()));
    assert!(
        peak <= max_bytes,
        "peak allocation {peak} > {max_bytes} for {} bytes",
        payload.len()
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    outcome
}

fn ignored(o: &FrameOutcome) -> &str {
    match &o.error {
        Some(FrameError::Ignored(e)) => &e.message,
        other => panic!("expected an ignored frame, got {other:?}"),
    }
}

#[test]
fn huge_length_fields_are_refused_without_allocating() {
    let mut p = b"\x80\x05\x8d".to_vec();
    p.extend_from_slice(&(1u64 << 60).to_le_bytes());
    p.extend_from_slice(b"ab");
    assert_eq!(ignored(&bounded(&p, 4096)), "pickle data was truncated");

    let p = b"\x80\x02\x8b\xff\xff\xff\x7f\x01\x01".to_vec();
    assert_eq!(ignored(&bounded(&p, 4096)), "pickle data was truncated");

    let mut p = b"\x80\x05\x8e".to_vec();
    p.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let o = bounded(&p, 4096);
    assert!(matches!(&o.error, Some(FrameError::Closed(e)) if e.kind == ExcKind::MemoryError));

    let p = b"\x80\x02r\xff\xff\xff\xffN.".to_vec();
    assert!(bounded(&p, 4096).error.is_some());
}

#[test]
fn deep_nesting_is_linear_and_iterative() {
    let n = DEFAULT_MAX_FRAME_LENGTH / 2;
    let mut marks = vec![b'('; n];
    marks.extend(std::iter::repeat_n(b'l', n - 1));
    marks.push(b'.');
    let o = bounded(&marks, 64 * marks.len());
    assert_eq!(o.bad_items.len(), 1);

    let mut appends = vec![b']'; n];
    appends.extend(std::iter::repeat_n(b'a', n - 1));
    appends.push(b'.');
    let o = bounded(&appends, 64 * appends.len());
    assert_eq!(o.bad_items.len(), 1);

    let only_marks = vec![b'('; DEFAULT_MAX_FRAME_LENGTH];
    assert_eq!(
        ignored(&bounded(&only_marks, 16 * only_marks.len())),
        "Ran out of input"
    );
}

#[test]
fn many_items_and_shared_objects_stay_linear() {
    // One long str shared by 500k items: unpacking must stop early, not walk the str.
    let mut p = b"\x80\x02]q\x00(X\x00\x00\x01\x00".to_vec();
    p.extend(std::iter::repeat_n(b'a', 65536));
    p.extend_from_slice(b"q\x01");
    p.extend(std::iter::repeat_n(b'2', 400_000));
    p.extend_from_slice(b"e.");
    let o = bounded(&p, 64 * p.len());
    assert_eq!(o.bad_items.len(), 400_001);
}

#[test]
fn equal_distinct_keys_cannot_make_dict_building_quadratic() {
    // Two distinct but equal 30k-element tuples, then 100k SETITEMs alternating them.
    let mut p = b"\x80\x02}q\x00(".to_vec();
    p.extend(std::iter::repeat_n(b'N', 30_000));
    p.extend_from_slice(b"tq\x010(");
    p.extend(std::iter::repeat_n(b'N', 30_000));
    p.extend_from_slice(b"tq\x020");
    for i in 0..100_000 {
        p.extend_from_slice(if i % 2 == 0 { b"h\x01Ns" } else { b"h\x02Ns" });
    }
    p.push(b'.');
    let o = bounded(&p, 64 * p.len());
    // Either finished or stopped by the work limit; both quickly.
    if let Some(e) = &o.error {
        assert_eq!(e.exception().kind, ExcKind::LimitExceeded);
    }
}

// ---- framing -----------------------------------------------------------------------------

fn framed(payloads: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in payloads {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn collect(dec: &mut FrameDecoder, chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Result<(), FeedError>) {
    let mut frames = Vec::new();
    for c in chunks {
        let r = dec.feed(c, |f| {
            frames.push(f.to_vec());
            ControlFlow::Continue(())
        });
        if r.is_err() {
            return (frames, r);
        }
    }
    (frames, Ok(()))
}

#[test]
fn frames_survive_every_split_point() {
    let stream = framed(&[b"", b"abc", &[7u8; 300], b"z"]);
    for split in 0..=stream.len() {
        let mut dec = FrameDecoder::new(1000);
        let (frames, r) = collect(&mut dec, &[&stream[..split], &stream[split..]]);
        assert!(r.is_ok());
        assert_eq!(frames.len(), 4, "split {split}");
        assert_eq!(frames[2], vec![7u8; 300]);
        assert_eq!(dec.buffered(), 0);
    }
    let mut dec = FrameDecoder::new(1000);
    let singles: Vec<&[u8]> = stream.chunks(1).collect();
    let (frames, _) = collect(&mut dec, &singles);
    assert_eq!(frames.len(), 4);
}

#[test]
fn frame_length_limit_is_inclusive_and_closes() {
    let max = 64;
    let ok = vec![1u8; max];
    let mut dec = FrameDecoder::new(max);
    let (frames, r) = collect(&mut dec, &[&framed(&[&ok])]);
    assert!(r.is_ok() && frames.len() == 1);

    // A too-long prefix closes even before its payload arrives; earlier frames in the same
    // chunk were delivered; nothing is accepted afterwards.
    let mut stream = framed(&[b"first"]);
    stream.extend_from_slice(&((max + 1) as u32).to_be_bytes());
    let mut dec = FrameDecoder::new(max);
    let (frames, r) = collect(&mut dec, &[&stream]);
    assert_eq!(frames, vec![b"first".to_vec()]);
    assert_eq!(r, Err(FeedError::TooLong { length: 65, max }));
    assert_eq!(collect(&mut dec, &[b"x"]).1, Err(FeedError::Closed));

    let mut dec = FrameDecoder::new(max);
    let (_, r) = collect(&mut dec, &[&u32::MAX.to_be_bytes()]);
    assert!(matches!(r, Err(FeedError::TooLong { .. })));
}

#[test]
fn a_breaking_handler_stops_the_stream() {
    let stream = framed(&[b"a", b"b", b"c"]);
    let mut dec = FrameDecoder::new(16);
    let mut seen = 0;
    let r = dec.feed(&stream, |_| {
        seen += 1;
        if seen == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(r.is_ok());
    assert_eq!(seen, 2);
    assert_eq!(
        dec.feed(b"", |_| ControlFlow::Continue(())),
        Err(FeedError::Closed)
    );
}

#[test]
fn partial_frames_never_buffer_more_than_the_frame() {
    let max = 1 << 20;
    let mut dec = FrameDecoder::new(max);
    let mut prefix = (max as u32).to_be_bytes().to_vec();
    prefix.extend_from_slice(&[0u8; 1000]);
    let ((), peak, _) = measure(|| {
        let _ = dec.feed(&prefix, |_| ControlFlow::Continue(()));
    });
    assert!(peak < 8192, "buffered {peak} bytes for 1000 received");
    assert_eq!(dec.buffered(), 1004);
}

// ---- never panics ------------------------------------------------------------------------

fn seeds() -> Vec<Vec<u8>> {
    corpus()
        .iter()
        .filter(|c| !c.name.starts_with("random/") && !c.name.starts_with("mutated/"))
        .filter(|c| c.payload.len() < 2000)
        .map(|c| c.payload.clone())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_frame(&data, &Limits::default());
    }

    #[test]
    fn mutated_pickles_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let seeds = seeds();
        let mut data = seed.get(&seeds).clone();
        for (at, byte, kind) in edits {
            if data.is_empty() {
                data.push(byte);
                continue;
            }
            let i = at.index(data.len());
            match kind {
                0 => data[i] = byte,
                1 => data.insert(i, byte),
                _ => { data.remove(i); }
            }
        }
        let _ = decode_frame(&data, &Limits::default());
    }
}
