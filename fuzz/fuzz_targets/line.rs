//! The plaintext receiver on arbitrary bytes: lines come straight off TCP/UDP port 2003 from
//! any client, so framing, parsing and name cleaning must never panic, buffering must stay
//! within the line limit, and a name the cleaner accepts must map to a file inside the data
//! directory.
//!
//! The input is fed through two `LineFramer`s (`feed` with `parse_line`, and `feed_parsed`) in
//! two chunks split by the first byte (exercising lines that straddle reads), with a small
//! limit so that lines land on both sides of it; both must deliver the same lines with the
//! same results. The raw input is also parsed as one UDP datagram. Every name parsed either
//! way goes through `clean_cow`.
#![no_main]

use std::ops::ControlFlow;
use std::path::Component;

use carbide::ingest::line::{parse_datagram, parse_line, LineFramer};
use carbide::ingest::name::{clean, clean_cow, is_tagged, name_from_relative_path, relative_path};
use carbide::ingest::name::{MAX_NAME_BYTES, TAGGED_DIR};
use libfuzzer_sys::fuzz_target;

/// Small enough that the fuzzer easily writes lines over it.
const MAX_LINE: usize = 64;
const NOW: f64 = 1_700_000_000.0;

/// What a name the cleaner accepts must satisfy.
fn check_name(raw: &str) {
    let Ok(cleaned) = clean_cow(raw) else {
        return;
    };
    let name: &str = &cleaned;
    assert!(!name.is_empty(), "{raw:?} cleaned to the empty name");
    assert!(
        name.len() <= MAX_NAME_BYTES,
        "{raw:?} cleaned to an over-long name"
    );
    assert!(!name.contains('\0'), "{raw:?} -> {name:?} holds NUL");
    if !is_tagged(name) {
        assert!(!name.contains(".."), "{raw:?} -> {name:?} holds ..");
        assert!(!name.contains('/'), "{raw:?} -> {name:?} holds /");
        assert!(
            name.split('.').all(|node| !node.is_empty()),
            "{raw:?} -> {name:?} has an empty node"
        );
    }
    // The file stays inside the data directory, and an untagged file maps back to the name.
    let rel = relative_path(name).unwrap_or_else(|e| panic!("{raw:?} -> {name:?}: {e}"));
    assert!(
        rel.components().all(|c| matches!(c, Component::Normal(_))),
        "{raw:?} -> {rel:?} leaves the data directory"
    );
    if is_tagged(name) {
        assert!(rel.starts_with(TAGGED_DIR), "{raw:?} -> {rel:?}");
    } else {
        assert_eq!(
            name_from_relative_path(&rel).as_deref(),
            Some(name),
            "{raw:?}"
        );
    }
    // The borrowed fast path and the owned one agree.
    assert_eq!(clean(raw).as_deref(), Ok(name), "{raw:?}");
    // A stored name cleans to itself, except in carbon's own two exceptions, which Carbide
    // keeps (so the file is carbon's): an OpenMetrics name whose metric part holds `;`
    // (`a;x=1{c="d"}` -> `a;x=1;c=d`, which parses again as `a;c=d;x=1`), and a canonical
    // name that ends like an OpenMetrics one (`a;b={"};a=1` -> `a;a=1;b={"}`, which does not
    // parse again).
    let openmetrics = raw.ends_with("\"}") || name.contains('{');
    if !openmetrics {
        assert_eq!(clean(name).as_deref(), Ok(name), "{raw:?} -> {name:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |&b| b as usize).min(data.len());

    let mut plain = LineFramer::with_max_line(MAX_LINE);
    let mut parsed = LineFramer::with_max_line(MAX_LINE);
    let mut expect = Vec::new();
    let mut got = Vec::new();
    let mut delivered = Vec::new();
    let (mut plain_ok, mut parsed_ok) = (true, true);
    for chunk in [&data[..split], &data[split..]] {
        if plain_ok {
            let fed = plain.feed(chunk, |line| {
                assert!(line.len() <= MAX_LINE);
                assert!(!line.contains(&b'\n'));
                delivered.extend_from_slice(line);
                delivered.push(b'\n');
                expect.push((line.to_vec(), parse_line(line, NOW)));
                ControlFlow::Continue(())
            });
            plain_ok = fed.is_ok();
            assert!(plain.buffered() <= MAX_LINE);
        }
        if parsed_ok {
            let fed = parsed.feed_parsed(chunk, NOW, |line, p| {
                assert!(line.len() <= MAX_LINE);
                got.push((line.to_vec(), p.map(|p| p.map(|p| p.to_datapoint()))));
                ControlFlow::Continue(())
            });
            parsed_ok = fed.is_ok();
            assert!(parsed.buffered() <= MAX_LINE);
        }
    }
    assert_eq!(plain_ok, parsed_ok);
    assert_eq!(got, expect);
    if plain_ok {
        // Nothing lost or invented: the lines and the unterminated rest are the input.
        let rest = plain.buffered();
        assert_eq!(delivered.len() + rest, data.len());
        assert_eq!(&data[..delivered.len()], &delivered[..]);
        assert_eq!(plain.finish(), rest);
    }
    assert!(plain
        .feed(b"a 1 2\n", |_| ControlFlow::Continue(()))
        .is_err());

    for (_, result) in &expect {
        if let Ok(Some(point)) = result {
            assert!(!point.value.is_nan());
            assert!(point.timestamp.is_finite());
            check_name(&point.name);
        }
    }

    let (points, rejected) = parse_datagram(data, NOW);
    if std::str::from_utf8(data).is_err() {
        assert!(points.is_empty() && rejected.len() == 1);
    }
    for point in &points {
        assert!(!point.value.is_nan());
        assert!(point.timestamp.is_finite());
        check_name(&point.name);
    }
    // Names are also whatever bytes the fuzzer likes, not only the first field of a line.
    if let Ok(text) = std::str::from_utf8(data) {
        check_name(text);
    }
});
