//! `repr(float)` (src/python/format.rs: a fast path for values of up to 15 significant digits,
//! Rust's shortest digits with CPython's tie rule for the rest) against CPython's own `repr`
//! over millions of random and edge-case doubles. Every render format writes values through
//! it, so one wrong digit would be a wrong data point in every answer.
//!
//! `CARBIDE_REPR_CASES=<n>` sets how many random values are drawn (default 3,000,000; CPython
//! prints about a million a second).

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use carbide::python::format::{float_repr, push_float_repr, push_float_repr_str, push_int, Json};

/// splitmix64: deterministic, so a failure names a reproducible value.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `bits` moved by `delta` ulps (neighbours of boundaries).
fn nudge(v: f64, delta: i64) -> f64 {
    f64::from_bits(v.to_bits().wrapping_add_signed(delta))
}

/// One value from a mix of shapes: metric-like decimals (the fast path), arbitrary bit
/// patterns, integers around 2^53, subnormals, results of decimal arithmetic, f32 widened,
/// and the neighbours of every layout boundary (1e-5/1e-4, 1e15/1e16, powers of ten).
fn draw(rng: &mut Rng) -> f64 {
    let v = match rng.below(12) {
        0 => f64::from_bits(rng.next()),
        1 => {
            // Few-digit decimals: d / 10^k, exactly as a parser would read them.
            let digits = rng.below(16) as u32 + 1;
            let d = rng.below(10u64.pow(digits)) as f64;
            d / 10f64.powi(rng.below(23) as i32)
        }
        2 => {
            // The same decimals built by multiplication: often not the nearest double.
            let d = rng.below(1_000_000) as f64;
            d * 10f64.powi(-(rng.below(30) as i32))
        }
        3 => (rng.below(1 << 54)) as f64,
        4 => rng.next() as f64 * 2f64.powi(rng.below(40) as i32),
        5 => f64::from_bits(rng.below(1 << 52)), // subnormal
        6 => {
            let a = rng.below(1000) as f64 / 10.0;
            let b = rng.below(1000) as f64 / 100.0;
            match rng.below(4) {
                0 => a + b,
                1 => a - b,
                2 => a * b,
                _ => a / (b + 0.01),
            }
        }
        7 => f64::from(f32::from_bits(rng.next() as u32)),
        8 => {
            let p = 10f64.powi(rng.below(50) as i32 - 25);
            nudge(p, rng.below(9) as i64 - 4)
        }
        9 => {
            let edges = [1e-5, 1e-4, 1e15, 1e16, 2f64.powi(53), 1e17, 1e22, 1e23];
            let e = edges[rng.below(edges.len() as u64) as usize];
            nudge(e, rng.below(2001) as i64 - 1000)
        }
        10 => {
            // Near 1e15..1e16, where repr switches layouts and 17-digit ties live.
            let frac = rng.below(8) as f64 / 8.0;
            (1e15 + rng.below(9_000_000_000_000_000) as f64).floor() + frac
        }
        _ => (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi(rng.below(9) as i32),
    };
    if rng.below(2) == 0 {
        -v
    } else {
        v
    }
}

fn specials() -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        5e-324,
        1e-323,
        0.1 + 0.2,
        1.0 / 3.0,
        2.0 / 3.0,
        9007199254740992.0,
        9007199254740993.0,
        999999999999999.9,
        9999999999999998.0,
        1e16 - 2.0,
        0.0001,
        0.00009999999999999999,
        0.00001,
        123456789012345.6,
        12345678901234.56,
    ];
    for e in -30..=30 {
        let p = 10f64.powi(e);
        for d in -3..=3 {
            v.push(nudge(p, d));
        }
        for m in 1..=9 {
            v.push(m as f64 * p);
        }
    }
    v
}

/// CPython's `repr` of each value, one per line.
fn cpython_reprs(values: &[f64]) -> Vec<String> {
    let script = "import sys, struct\n\
                  w = sys.stdout.write\n\
                  for l in sys.stdin:\n    \
                  w(repr(struct.unpack('>d', bytes.fromhex(l[:16]))[0]) + '\\n')\n";
    let mut child = Command::new(common::python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python");
    let mut input = String::with_capacity(values.len() * 17);
    for v in values {
        input.push_str(&format!("{:016x}\n", v.to_bits()));
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python output");
    feeder.join().expect("feeder").expect("write to python");
    assert!(out.status.success(), "python failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<String> = text.lines().map(String::from).collect();
    assert_eq!(lines.len(), values.len());
    lines
}

/// Every entry point against CPython's repr of the same values.
fn check_all(values: &[f64]) {
    let want = cpython_reprs(values);
    let mut bytes = Vec::new();
    let mut text = String::new();
    for (v, want) in values.iter().zip(&want) {
        assert_eq!(&float_repr(*v), want, "bits {:#018x}", v.to_bits());
        bytes.clear();
        push_float_repr(&mut bytes, *v);
        assert_eq!(bytes, want.as_bytes(), "bits {:#018x}", v.to_bits());
        text.clear();
        push_float_repr_str(&mut text, *v);
        assert_eq!(&text, want, "bits {:#018x}", v.to_bits());
    }
}

#[test]
fn repr_matches_cpython_on_random_values() {
    let n: usize = std::env::var("CARBIDE_REPR_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000_000);
    let mut rng = Rng(0x5eed_0001);
    // Chunks keep the two processes' buffers bounded for large counts.
    let mut left = n;
    while left > 0 {
        let chunk = left.min(1_000_000);
        let values: Vec<f64> = (0..chunk).map(|_| draw(&mut rng)).collect();
        check_all(&values);
        left -= chunk;
    }
}

#[test]
fn repr_matches_cpython_on_edges() {
    let mut values = specials();
    values.extend(specials().iter().map(|v| -v));
    // Integers, tenths by division and by multiplication (the usual metric values).
    for i in 0..300_000u32 {
        values.push(f64::from(i));
        values.push(f64::from(i) / 10.0);
        values.push(f64::from(i) * 0.1);
    }
    // Exact ties between two shortest candidates: k/4 and k/8 just above 2^49 and 2^50.
    for base in [2f64.powi(49), 1e15, 2f64.powi(50), 2f64.powi(51)] {
        for k in 0..20_000 {
            values.push(base + f64::from(k) * 0.125);
        }
    }
    // Every double next to the layout boundaries.
    for edge in [1e-5, 1e-4, 1e15, 1e16, 2f64.powi(53)] {
        for d in -20_000..=20_000 {
            values.push(nudge(edge, d));
        }
    }
    check_all(&values);
}

#[test]
fn json_floats_and_ints() {
    let v = Json::List(vec![
        Json::Float(0.1),
        Json::Float(f64::NAN),
        Json::Float(-f64::INFINITY),
        Json::Float(1e16),
        Json::Float(-0.0),
    ]);
    assert_eq!(
        v.dumps(0, ", ", ": ").replace('\n', ""),
        "[0.1, NaN, -Infinity, 1e+16, -0.0]"
    );
    let mut rng = Rng(7);
    let mut ints = vec![0, 1, -1, 9, 10, -10, i64::MAX, i64::MIN, 1_700_000_000];
    ints.extend((0..10_000).map(|_| rng.next() as i64 >> rng.below(64)));
    for i in ints {
        let mut out = Vec::new();
        push_int(&mut out, i);
        assert_eq!(out, i.to_string().into_bytes());
    }
}
