//! Metric-name cleaning against carbon 1.1.10 itself: `TaggedSeries.parse(name).path` (or the
//! exception text) and `TaggedSeries.encode(..., hash_only=True)` for the file, through
//! `tests/support/carbon_line_oracle.py` in the test venv; SHA-256 from Python's hashlib.

mod common;

use std::path::{Path, PathBuf};

use carbide::ingest::name::{
    canonicalize, check, clean, name_from_relative_path, relative_path, tag_hash, NameError,
};
use common::oracle::{Oracle, Rng};
use serde_json::json;

const NAMES: &[&str] = &[
    "",
    "a.b",
    "~a.b",
    "~~~",
    "~",
    "a.b;z=1;y=2;a.b=3",
    "a;name=x;b=2",
    "a;name=",
    "a;name=~x",
    "a;b=1;b=2",
    "a;",
    ";",
    ";a=b",
    "a;=1",
    "a;b=",
    "a;b=~x",
    "a;b=x~",
    "a;b!=1",
    "a;b^=1",
    "a;b=1=2",
    "a;b",
    "~a;b=1",
    "~~~;b=1",
    "~~~;b=",
    "a;b=1;;c=2",
    "a..b",
    ".a.b",
    "a.b.",
    "/a/b",
    "a/b.c",
    "a.b;t=v.1",
    "a;x=1;xy=1;x.y=1;x_=1;X=1",
    "é.ü;ü=é",
    "x{a=\"1\",b=\"q\\\"z\"}",
    "x{b=\"2\":,a=\"1\"}",
    "x{a=\"1\"}{b=\"2\"}",
    "x{a=\"1\"}",
    "{a=\"1\"}",
    "x{}",
    "x{a=\"\"}",
    "x{a=1}",
    "x{a=\"1\",}",
    "x{a=\"1\";b=\"2\"}",
    "x{a=\"1\" ,b=\"2\"}",
    "x{a=\"v;w\"}",
    "x{a=\"~v\"}",
    "x{a!=\"v\"}",
    "x{a=\"\\\\\"}",
    "x{a=\"\\\\\\\"\"}",
    "x{a=\"\\n\"}",
    "x{name=\"y\"}",
    "~x{a=\"1\"}",
    "~{a=\"1\"}",
    "x;t=1{a=\"1\"}",
    "x{a=\"1\",a=\"2\"}",
    "x{a=\"}\"}",
    "x{a=\"1\"\"}",
    "x{=\"1\"}",
    "x{a=\"1\"}\n",
    "x{a=\"\n\"}",
    "_tagged.17e.0c4.x",
];

#[test]
fn canonical_names_match_carbon() {
    let mut py = Oracle::start();
    let mut cases: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    let pieces = [
        "a", "b", "name", ".", ";", "=", "~", "!", "^", "{", "}", "\"", "\\", ",", ":", "x=", "1",
        " ", "é", "=\"", "\",", "\"}", "/",
    ];
    let mut rng = Rng(0xa11c_e5ee_d00d_f00d);
    for _ in 0..4000 {
        let n = 1 + rng.below(10);
        let mut s: String = (0..n).map(|_| pieces[rng.below(pieces.len())]).collect();
        if rng.below(3) == 0 {
            s.push_str("\"}");
        }
        cases.push(s);
    }
    let mut failures = Vec::new();
    for raw in &cases {
        let want = py.ask(json!({"op": "tagged", "s": raw}));
        let got = match canonicalize(raw) {
            Ok(path) => json!({"ok": true, "path": path}),
            Err(e) => json!({"ok": false, "error": e.message()}),
        };
        let want_cmp = if want["ok"] == true {
            json!({"ok": true, "path": want["path"]})
        } else {
            want.clone()
        };
        if got != want_cmp {
            failures.push(format!("{raw:?}: carbide {got}, carbon {want_cmp}"));
            continue;
        }
        // Where Carbide accepts the name, its file is carbon's; where it refuses a name
        // carbon parses, the reason is one of the documented safety rules.
        match clean(raw) {
            Ok(name) => {
                assert_eq!(json!(name), want["path"]);
                assert_eq!(json!(tag_hash(&name)), want["sha256"]);
                let file = relative_path(&name).expect("clean names have paths");
                assert_eq!(json!(file.to_str().expect("utf-8 path")), want["file"]);
            }
            Err(NameError::Tag(e)) => assert_eq!(json!(e.message()), want["error"]),
            Err(e) => {
                assert_eq!(want["ok"], true, "{raw:?}");
                let canonical = want["path"].as_str().expect("path");
                assert_eq!(check(canonical), Err(e));
            }
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
fn safety_rules() {
    let refused = [
        ("a..b", "empty node"),
        (".a.b", "empty node"),
        ("a.b.", "empty node"),
        ("/a/b", "character '/'"),
        ("a/b.c", "character '/'"),
        ("a\0b", "character '\\0'"),
        ("_tagged.17e.0c4.x", "_tagged"),
        ("a;b=", "may not be empty"),
        ("~~~", "empty string"),
    ];
    for (raw, why) in refused {
        let e = clean(raw).expect_err(raw).to_string();
        assert!(e.contains(why), "{raw:?}: {e}");
    }
    assert!(clean(&"x".repeat(4097)).is_err());
    assert!(clean(&format!("a;t={}", "x".repeat(4000))).is_ok());
    assert!(clean(&format!("a;t={}", "x".repeat(4100))).is_err());
    assert!(clean(&format!("{}.b", "n".repeat(256))).is_err());
    // Tagged series are hashed, so their name part may hold what a path may not.
    assert!(clean("a..b/c;t=1").is_ok());
}

#[test]
fn file_walk_round_trips() {
    for name in [
        "a",
        "a.b.c",
        "servers.web-01.cpu_user",
        "é.ü",
        "a b.c d",
        "_tagged",
    ] {
        let p = relative_path(name).expect(name);
        assert_eq!(name_from_relative_path(&p).as_deref(), Some(name));
    }
    for p in [
        "a.b/c.wsp",
        "a/.wsp",
        "a//b.wsp",
        "/a/b.wsp",
        "a/../b.wsp",
        "./a.wsp",
        "a/b.wsp.tmp",
        "_tagged/17e/0c4/17e0c45670f520f545150fb1946a9e498ff91faba9a632e3ebc2b368464c4286.wsp",
        "a;t=1.wsp",
    ] {
        let back = name_from_relative_path(&PathBuf::from(p));
        // `a//b.wsp` normalises to `a/b.wsp` in Path::components, so it maps to `a.b`, the
        // one file that name owns.
        if p == "a//b.wsp" {
            assert_eq!(back.as_deref(), Some("a.b"));
        } else {
            assert_eq!(back, None, "{p}");
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the input, cleaning does not panic, and an accepted name maps to a
        /// relative path with only normal components that walks back to the same name.
        #[test]
        fn cleaning_is_total_and_contained(s in "[a-z.;=~!^{}\"\\\\,:/ é\\x00]{0,24}") {
            if let Ok(name) = clean(&s) {
                let p = relative_path(&name).expect("a clean name has a path");
                prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_))));
                if !name.contains(';') {
                    prop_assert_eq!(name_from_relative_path(&p), Some(name));
                }
            }
        }

        #[test]
        fn any_string_is_handled(s in "\\PC*") {
            let _ = clean(&s);
            let _ = relative_path(&s);
            let _ = name_from_relative_path(Path::new(&s));
        }
    }
}
