//! A render target on arbitrary text: `target=` comes straight from any HTTP client, so
//! parsing and evaluating it (every function, every argument type, re-fetches for other time
//! ranges) must never panic and never run for long; a slow input is a finding too (run with
//! `-timeout=2`). `from`/`until` strings are client text as well, so the input also goes
//! through `parse_at_time` and `parse_time_offset`.
//!
//! The series come from a small in-memory source behind the real name tree and tag index (so
//! globs and `seriesByTag` are resolved as the server resolves them): a few plain and tagged
//! names, two steps, values with None, NaN, ±inf, negatives and -0.0, a retention like a whisper
//! file's so a re-fetch for a huge window stays bounded. The evaluation limits are small, as a
//! single request's should be.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use carbide::index::tags::TagIndex;
use carbide::index::Index;
use carbide::query::eval::{Context, Limits, SeriesSource};
use carbide::query::time::{parse_at_time, parse_time_offset, parse_zone, Zone};
use carbide::query::{QueryError, Series};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000;
const FROM: i64 = NOW - 3600;
const UNTIL: i64 = NOW;

/// The repeating values of every series: each kind of value a function must cope with.
const VALUES: [Option<f64>; 12] = [
    Some(1.0),
    None,
    Some(-2.5),
    Some(f64::NAN),
    Some(0.0),
    Some(-0.0),
    Some(f64::INFINITY),
    Some(3.25),
    Some(f64::NEG_INFINITY),
    None,
    Some(1e300),
    Some(-7.0),
];

/// Name, step, retention (seconds), offset into `VALUES`.
const SERIES: [(&str, i64, i64, usize); 8] = [
    ("a.b.c", 60, 86_400, 0),
    ("a.b.d", 60, 86_400, 5),
    ("a.e", 300, 7 * 86_400, 2),
    ("x.y", 300, 7 * 86_400, 7),
    ("x.z.w", 60, 86_400, 11),
    ("a.b.c;dc=east", 60, 86_400, 3),
    ("x.y;dc=west;host=h1", 300, 7 * 86_400, 1),
    ("cpu;dc=east;host=h2", 60, 86_400, 9),
];

struct Memory {
    names: Index,
    tags: TagIndex,
    series: BTreeMap<String, (i64, i64, usize)>,
}

impl Memory {
    fn new() -> Memory {
        let names = Index::new();
        let tags = TagIndex::new();
        let mut series = BTreeMap::new();
        for (name, step, retention, offset) in SERIES {
            let canonical = if name.contains(';') {
                tags.insert(name).expect("a valid tagged name")
            } else {
                name.to_owned()
            };
            names.insert(&canonical);
            series.insert(canonical, (step, retention, offset));
        }
        Memory {
            names,
            tags,
            series,
        }
    }

    /// whisper's fetch window for a file with one archive: `(from, until]` clamped to the
    /// retention, `None` when nothing of it is kept.
    fn window(
        name: &str,
        (step, retention, offset): (i64, i64, usize),
        from: i64,
        until: i64,
        now: i64,
        xff: f64,
    ) -> Option<Series> {
        let oldest = now - retention;
        if from > now || until < oldest || from > until {
            return None;
        }
        let from = from.max(oldest);
        let until = until.min(now);
        let start = from - from.rem_euclid(step) + step;
        let mut end = until - until.rem_euclid(step) + step;
        if start == end {
            end += step;
        }
        let values = (start..end)
            .step_by(step as usize)
            .map(|t| VALUES[((t / step) as usize + offset) % VALUES.len()])
            .collect();
        Some(Series::new(name, start, end, step, values, xff))
    }
}

impl SeriesSource for Memory {
    fn fetch(
        &self,
        pattern: &str,
        from: i64,
        until: i64,
        now: i64,
        x_files_factor: f64,
    ) -> Result<Vec<Series>, QueryError> {
        let mut names = if pattern.starts_with("seriesByTag(") {
            carbide::http::tags::series_by_tag(&self.tags, pattern)?
        } else {
            self.names.expand(pattern)
        };
        names.sort_unstable();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let Some(&spec) = self.series.get(&name) else {
                continue;
            };
            if let Some(mut s) = Memory::window(&name, spec, from, until, now, x_files_factor) {
                s.path_expression = pattern.to_owned();
                out.push(s);
            }
        }
        Ok(out)
    }
}

fn utc() -> Zone {
    parse_zone("UTC").expect("UTC is a zone")
}

fn source() -> &'static Memory {
    static SOURCE: OnceLock<Memory> = OnceLock::new();
    SOURCE.get_or_init(Memory::new)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_at_time(text, utc(), NOW);
    let _ = parse_time_offset(text);
    if carbide::query::parser::parse(text).is_err() {
        return;
    }
    let mut ctx = Context::new(FROM, UNTIL, NOW, utc(), source());
    ctx.limits = Limits {
        max_series: 1_000,
        max_points: 200_000,
    };
    let _ = ctx.evaluate_target(text);
});
