//! The plaintext receiver's parsing layer against the real thing: CPython 3.11's `float()`,
//! `str.split()`/`strip()`/`splitlines()`/`repr()` and carbon 1.1.10's own line and datagram
//! receivers, driven through `tests/support/carbon_line_oracle.py` in the test venv.
//!
//! Inputs are hand-written edge cases plus strings from a fixed-seed generator, so a failure
//! reproduces; nothing here copies an expected value from carbon's source.

mod common;

use std::ops::ControlFlow;

use carbide::ingest::line::{
    datagram_lines, invalid_datagram_line_message, invalid_line_message, parse_datagram,
    parse_datagram_line, parse_line, parse_line_ref, LineError, LineFramer,
};
use carbide::python::{number, text};
use common::oracle::{Oracle, Rng};
use serde_json::{json, Value};

fn bits(v: &Value) -> u64 {
    v.as_u64().expect("float bits")
}

const FLOAT_CASES: &[&str] = &[
    "",
    " ",
    "0",
    "-0",
    "+0",
    "1",
    "-1",
    "1.",
    ".5",
    ".",
    "-.5e-3",
    "1e5",
    "1E+5",
    "1e",
    "e5",
    "1e400",
    "-1e400",
    "1e-400",
    "4.9e-324",
    "2.4703282292062328e-324",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "nan",
    "NaN",
    "-nan",
    "+nan",
    "inf",
    "-inf",
    "+Inf",
    "infinity",
    "-Infinity",
    "INFINITY",
    "infinit",
    "infinityy",
    "nana",
    "0x10",
    "0X1p3",
    "1_000",
    "_1",
    "1_",
    "1__0",
    "1_0.0_1",
    "1_.0",
    "1._0",
    "1e1_0",
    "1e_10",
    "1_e10",
    " 1_0 ",
    "1,0",
    "1 0",
    "\u{ff11}\u{ff12}",
    "\u{661}\u{662}.\u{663}",
    "\u{ff11}_\u{ff12}",
    "\u{a0}1\u{a0}",
    "\u{2028}1",
    "1\u{1c}",
    "\u{1c}1",
    "\u{1f}",
    "1\u{85}",
    "\u{3000}-2.5\u{3000}",
    "1\0",
    "\t\n\x0b\x0c\r7\r",
    "٣",
    "1\u{7f}",
    "1é",
    "¹",
    "½",
    "𝟏𝟎",
    "1e\u{ff15}",
    "00000000000000000000000000001",
    "123456789012345678901234567890",
    "0.1",
    "0.30000000000000004",
    "9007199254740993",
    "1700000000",
    "1700000000.5",
    "-1.0",
    "12.5",
    "  +1.5e+3  ",
    "1.5e+03_0",
    "0.000000000000000000000000000000000000000000001e-290",
];

#[test]
fn parse_float_matches_python_float() {
    let mut py = Oracle::start();
    let mut cases: Vec<String> = FLOAT_CASES.iter().map(|s| s.to_string()).collect();
    let pieces = [
        "0",
        "1",
        "5",
        "9",
        ".",
        "e",
        "E",
        "+",
        "-",
        "_",
        " ",
        "\t",
        "i",
        "n",
        "f",
        "a",
        "N",
        "inity",
        "x",
        "\u{a0}",
        "\u{1c}",
        "\u{ff11}",
        "\u{661}",
        "\u{2028}",
        "\u{85}",
        "\x0b",
        "é",
        "\0",
        "\u{1d7ce}",
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..3000 {
        let n = rng.below(9);
        let s: String = (0..n).map(|_| rng.pick(&pieces)).collect();
        cases.push(s);
    }
    // Correct rounding on the fast path: random decimal literals of every length.
    for _ in 0..2000 {
        let digits = 1 + rng.below(30);
        let mut s: String = (0..digits)
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect();
        if rng.below(2) == 0 {
            let at = rng.below(s.len() + 1);
            s.insert(at, '.');
        }
        if rng.below(2) == 0 {
            s.push_str(&format!("e{}", rng.below(700) as i64 - 350));
        }
        cases.push(s);
    }
    let mut failures = Vec::new();
    for s in &cases {
        let want = py.ask(json!({"op": "float", "s": s}));
        let want = if want["ok"].as_bool() == Some(true) {
            Some(bits(&want["bits"]))
        } else {
            None
        };
        let got = number::parse_float(s).map(f64::to_bits);
        if got != want {
            failures.push(format!("{s:?}: carbide {got:?}, python {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn str_methods_match_python() {
    let mut py = Oracle::start();
    let pieces = [
        "a",
        "b",
        "7",
        " ",
        "  ",
        "\t",
        "\n",
        "\r",
        "\r\n",
        "\x0b",
        "\x0c",
        "\x1c",
        "\x1d",
        "\x1e",
        "\x1f",
        "\u{85}",
        "\u{a0}",
        "\u{1680}",
        "\u{2000}",
        "\u{200a}",
        "\u{200b}",
        "\u{2028}",
        "\u{2029}",
        "\u{202f}",
        "\u{205f}",
        "\u{3000}",
        "\u{feff}",
        "'",
        "\"",
        "\\",
        "\0",
        "\x01",
        "\x7f",
        "\u{ad}",
        "\u{378}",
        "\u{e000}",
        "é",
        "\u{1f600}",
        "\u{10ffff}",
        "\u{e0001}",
        "\u{ff11}",
    ];
    let mut rng = Rng(0xfeed_beef_0bad_cafe);
    let mut cases = vec![String::new()];
    for _ in 0..1500 {
        let n = rng.below(10);
        cases.push((0..n).map(|_| rng.pick(&pieces)).collect());
    }
    for s in &cases {
        let want = py.ask(json!({"op": "strings", "s": s}));
        let split: Vec<&str> = text::split(s).collect();
        let lines: Vec<&str> = datagram_lines(s).collect();
        assert_eq!(json!(split), want["split"], "split {s:?}");
        assert_eq!(json!(text::strip(s)), want["strip"], "strip {s:?}");
        assert_eq!(json!(lines), want["splitlines"], "splitlines {s:?}");
        assert_eq!(json!(text::repr_unquoted(s)), want["repr"], "repr {s:?}");
    }
}

#[test]
fn unicode_tables_match_python() {
    let mut py = Oracle::start();
    let t = py.ask(json!({"op": "tables"}));
    assert_eq!(t["unidata"], "14.0.0");
    let list = |k: &str| -> Vec<u32> {
        t[k].as_array()
            .expect(k)
            .iter()
            .map(|v| v.as_u64().expect("cp") as u32)
            .collect()
    };
    let zeros = list("zeros");
    let space = list("space");
    let breaks = list("linebreaks");
    let mut nonprint = vec![false; 0x110000];
    for r in t["nonprint"].as_array().expect("nonprint") {
        let (a, b) = (r[0].as_u64().expect("a"), r[1].as_u64().expect("b"));
        for c in a..=b {
            nonprint[c as usize] = true;
        }
    }
    let mut want_decimal = vec![None; 0x110000];
    for z in zeros {
        for d in 0..10u8 {
            want_decimal[(z + u32::from(d)) as usize] = Some(d);
        }
    }
    for cp in 0..0x110000u32 {
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        assert_eq!(text::is_space(c), space.contains(&cp), "isspace U+{cp:04X}");
        assert_eq!(
            text::decimal(c),
            want_decimal[cp as usize],
            "decimal U+{cp:04X}"
        );
        assert_eq!(
            text::is_printable(c),
            !nonprint[cp as usize],
            "isprintable U+{cp:04X}"
        );
        assert_eq!(
            text::is_line_boundary(c),
            breaks.contains(&cp),
            "splitlines U+{cp:04X}"
        );
    }
}

/// What Carbide would do in carbon's place, strictly: closing on fatal lines.
fn carbide_tcp(chunks: &[Vec<u8>], peer: &str, now: f64) -> (Vec<Value>, bool) {
    let mut framer = LineFramer::new();
    let mut events = Vec::new();
    for chunk in chunks {
        let r = framer.feed(chunk, |line| match parse_line(line, now) {
            Ok(Some(p)) => {
                events.push(json!([
                    "point",
                    p.name,
                    p.timestamp.to_bits(),
                    p.value.to_bits()
                ]));
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(LineError::Invalid(_)) => {
                events.push(json!(["log", invalid_line_message(peer, line)]));
                ControlFlow::Continue(())
            }
            Err(LineError::Fatal(_)) => ControlFlow::Break(()),
        });
        if r.is_err() || framer.is_closed() {
            return (events, true);
        }
    }
    (events, false)
}

fn random_line(rng: &mut Rng) -> Vec<u8> {
    let names = ["a.b.c", "servers.web01.cpu", "x", "é.ü", "a;t=v", "q'\"\\"];
    let values = [
        "1", "12.5", "-0", "nan", "NaN", "inf", "-inf", "1_0", "1e400", "bad", "\u{ff11}", "0x1",
        "",
    ];
    let stamps = [
        "1700000000",
        "1700000000.5",
        "-1",
        "-1.5",
        "-2",
        "-0.9",
        "nan",
        "inf",
        "-inf",
        "1e400",
        "1_7",
        "x",
        "\u{661}",
    ];
    let seps = [" ", "  ", "\t", "\u{a0}", "\x1c", "\u{3000}"];
    let mut s = String::new();
    if rng.below(8) == 0 {
        s.push_str(rng.pick(&seps));
    }
    s.push_str(rng.pick(&names));
    s.push_str(rng.pick(&seps));
    s.push_str(rng.pick(&values));
    s.push_str(rng.pick(&seps));
    s.push_str(rng.pick(&stamps));
    match rng.below(10) {
        0 => {
            s.push_str(rng.pick(&seps));
            s.push_str("extra");
        }
        1 => s.push('\r'),
        2 => s.clear(),
        _ => {}
    }
    let mut b = s.into_bytes();
    if rng.below(25) == 0 {
        let at = rng.below(b.len() + 1);
        b.insert(at, 0xff);
    }
    if rng.below(60) == 0 {
        b = vec![b'z'; 16380 + rng.below(10)];
    }
    b
}

#[test]
fn tcp_lines_match_carbon() {
    let mut py = Oracle::start();
    let peer = "10.0.0.1:40000";
    let now = 1_700_000_123.25;
    let mut scenarios: Vec<Vec<Vec<u8>>> = vec![
        vec![b"a 1 2\n".to_vec()],
        vec![b"a 1 2".to_vec()],
        vec![b"a 1 2\nb 2".to_vec(), b" 3\n".to_vec()],
        vec![b"\n\n  \r\n".to_vec()],
        vec![b"a 1 2\nb 1 nan\nc 1 2\n".to_vec()],
        vec![b"a nan nan\nb 1 inf\nc 1 2\n".to_vec()],
        vec![b"a 1 2\n\xff 1 2\nc 1 2\n".to_vec()],
        vec![[vec![b'x'; 16384], b"\nok 1 2\n".to_vec()].concat()],
        vec![[vec![b'x'; 16385], b"\nok 1 2\n".to_vec()].concat()],
        vec![[b"ok 1 2\n".to_vec(), vec![b'x'; 16385]].concat()],
        vec![vec![b'x'; 16384], b"\nok 1 2\n".to_vec()],
        vec![vec![b'x'; 10000], vec![b'x'; 6385], b"\n".to_vec()],
        vec![vec![b'x'; 10000], vec![b'x'; 6384], b"\nok 1 2\n".to_vec()],
        vec![[b" \t".to_vec(), vec![b'y'; 500], b" \n".to_vec()].concat()],
        vec!["a 1 2\u{85}\n".as_bytes().to_vec()],
        vec![b"a 1 -1\na 1 -1.99\na 1 -2\n".to_vec()],
    ];
    let mut rng = Rng(0x0ddc_0ffe);
    for _ in 0..300 {
        let mut stream = Vec::new();
        for _ in 0..rng.below(12) {
            stream.extend(random_line(&mut rng));
            stream.push(b'\n');
        }
        if rng.below(3) == 0 {
            stream.extend(random_line(&mut rng));
        }
        let mut chunks = Vec::new();
        let mut rest = stream.as_slice();
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(100));
            let n = if rng.below(3) == 0 { rest.len() } else { n };
            chunks.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        scenarios.push(chunks);
    }
    for chunks in &scenarios {
        let hex: Vec<String> = chunks.iter().map(|c| to_hex(c)).collect();
        let want = py.ask(json!({"op": "tcp", "chunks": hex, "peer": peer, "now": now}));
        let (events, closed) = carbide_tcp(chunks, peer, now);
        assert_eq!(
            json!({"events": events, "closed": closed}),
            want,
            "stream {:?}",
            String::from_utf8_lossy(&chunks.concat())
        );
    }
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Carbon's datagram behaviour, strictly: stop at a fatal line, drop a non-UTF-8 datagram.
fn carbide_udp(data: &[u8], host: &str, now: f64) -> (Vec<Value>, bool) {
    let Ok(text) = std::str::from_utf8(data) else {
        return (Vec::new(), true);
    };
    let mut events = Vec::new();
    for line in datagram_lines(text) {
        match parse_datagram_line(line, now) {
            Ok(Some(p)) => events.push(json!([
                "point",
                p.name,
                p.timestamp.to_bits(),
                p.value.to_bits()
            ])),
            Ok(None) => {}
            Err(LineError::Invalid(_)) => {
                events.push(json!(["log", invalid_datagram_line_message(host, line)]))
            }
            Err(LineError::Fatal(_)) => return (events, true),
        }
    }
    (events, false)
}

#[test]
fn udp_datagrams_match_carbon() {
    let mut py = Oracle::start();
    let host = "192.0.2.7";
    let now = 1_700_000_999.0;
    let ends = [
        "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\u{85}", "\u{2028}",
    ];
    let mut datagrams: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"a 1 2".to_vec(),
        b"a 1 2\n\nb 1 nan\nc 1 inf\nd 1 2".to_vec(),
        b"a 1 2\n\xff".to_vec(),
        "a\u{2029}1 2\x1fb 1 2".as_bytes().to_vec(),
    ];
    let mut rng = Rng(0x5eed_0fda_7a70);
    for _ in 0..300 {
        let mut d = Vec::new();
        for _ in 0..rng.below(8) {
            d.extend(random_line(&mut rng));
            d.extend(rng.pick(&ends).as_bytes());
        }
        if rng.below(2) == 0 {
            d.extend(random_line(&mut rng));
        }
        datagrams.push(d);
    }
    for d in &datagrams {
        let want = py.ask(json!({"op": "udp", "data": to_hex(d), "host": host, "now": now}));
        let (events, stopped) = carbide_udp(d, host, now);
        assert_eq!(
            json!(events),
            want["events"],
            "datagram {:?}",
            String::from_utf8_lossy(d)
        );
        assert_eq!(stopped, !want["escaped"].is_null(), "datagram {d:?}");
        // Carbide's own rule keeps every good line; up to a fatal line it agrees with carbon.
        let (points, rejected) = parse_datagram(d, now);
        if !stopped {
            let ours: Vec<Value> = points
                .iter()
                .map(|p| json!(["point", p.name, p.timestamp.to_bits(), p.value.to_bits()]))
                .collect();
            let theirs: Vec<&Value> = events.iter().filter(|e| e[0] == "point").collect();
            assert_eq!(ours.iter().collect::<Vec<_>>(), theirs);
            assert!(rejected.iter().all(|r| !r.error.is_fatal()));
        }
    }
}

#[test]
fn min_resolution_matches_python() {
    let mut py = Oracle::start();
    for ts in [0.0, 7.9, -7.9, -0.5, 1_700_000_007.9, -1e18, 3.5e30, 1e300] {
        for res in [1u64, 5, 60, 86_400] {
            let want = py.ask(json!({"op": "minres", "ts": ts, "res": res}));
            let got = carbide::ingest::line::apply_min_resolution(ts, res);
            if ts.abs() < 1.7e38 {
                assert_eq!(got.to_bits(), bits(&want["bits"]), "{ts} // {res}");
            }
        }
    }
}

#[test]
fn borrowed_and_owned_agree() {
    let line = b"servers.web01.cpu.user 12.5 1700000000";
    let p = parse_line_ref(line, 0.0).unwrap().unwrap();
    assert_eq!(Some(p.to_datapoint()), parse_line(line, 0.0).unwrap());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn frame_all(chunks: &[&[u8]], max: usize) -> (Vec<Vec<u8>>, bool) {
        let mut framer = LineFramer::with_max_line(max);
        let mut lines = Vec::new();
        for chunk in chunks {
            let r = framer.feed(chunk, |l| {
                lines.push(l.to_vec());
                ControlFlow::Continue(())
            });
            if r.is_err() {
                return (lines, true);
            }
        }
        (lines, false)
    }

    proptest! {
        /// How a stream is cut into reads never changes which lines come out, nor whether
        /// the stream fails.
        #[test]
        fn framing_ignores_chunking(
            data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'a'), any::<u8>()], 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..8),
            max in 1usize..20,
        ) {
            let whole = frame_all(&[&data], max);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                chunks.push(&data[prev..c]);
                prev = c;
            }
            prop_assert_eq!(frame_all(&chunks, max), whole);
        }

        #[test]
        fn parsing_never_panics(line in proptest::collection::vec(any::<u8>(), 0..64), now in any::<f64>()) {
            let _ = parse_line(&line, now);
            let _ = parse_datagram(&line, now);
            let _ = invalid_line_message("p:1", &line);
            if let Ok(s) = std::str::from_utf8(&line) {
                let _ = number::parse_float(s);
                let _ = text::repr_unquoted(s);
            }
        }

        #[test]
        fn unicode_parsing_never_panics(s in "\\PC*", now in any::<f64>()) {
            let _ = parse_line(s.as_bytes(), now);
            let _ = number::parse_float(&s);
            let _ = carbide::ingest::line::quote_line(&s);
        }
    }
}
