//! The time grammar (`carbide::query::time`) against graphite-web 1.1.10 itself: `parseATTime`
//! and `parseTimeOffset` over a generated corpus (every unit spelling, signs, combinations,
//! absolute forms, garbage) in several zones and at several `now` values chosen near DST changes,
//! month ends and leap days, values and error messages alike; pytz's zone model (offsets, DST
//! flags, `localize`, zone names) for every zone pytz knows; and no panic on arbitrary input.

mod common;

use std::process::Command;

use carbide::query::time::{
    is_dst, local_datetime, localize, parse_at_time, parse_time_offset, parse_zone, utc_offset,
    Zone,
};
use chrono::{DateTime, NaiveDateTime};
use common::graphite_web::GraphiteWeb;
use proptest::prelude::*;
use serde_json::Value;

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];

/// `now` values: ordinary, either side of the 2024 DST changes of Berlin, New York and Lord
/// Howe, leap day and month/year ends, before 1901 and after 2037 (pytz's data range), and
/// close to years 1 and 9999.
const NOWS: &[i64] = &[
    1_700_000_000,
    1_711_846_800 - 1_800,
    1_711_846_800 + 1_800,
    1_729_990_800 - 1_800,
    1_729_990_800 + 1_800,
    1_710_054_000 - 1_800,
    1_710_054_000 + 1_800,
    1_730_613_600 - 1_800,
    1_730_613_600 + 1_800,
    1_712_415_600 - 900,
    1_712_415_600 + 900,
    1_728_142_200 - 900,
    1_728_142_200 + 900,
    1_709_208_000,
    1_709_249_400,
    1_709_253_000,
    1_704_065_400,
    1_706_738_400,
    2_224_756_800,
    -2_208_988_800,
    253_402_286_400,
    -62_135_586_000,
];

/// splitmix64: a fixed-seed generator, so the corpus is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Every unit spelling attime accepts (it matches by prefix, so odd words count too), and
/// ones it rejects.
const UNITS: &[&str] = &[
    "s", "sec", "secs", "second", "seconds", "min", "mins", "minute", "minutes", "h", "hr", "hrs",
    "hour", "hours", "d", "day", "days", "w", "wk", "week", "weeks", "mon", "mons", "month",
    "months", "y", "yr", "yrs", "year", "years", "sxyz", "minimum", "monday", "yes", "m", "mo",
    "ms", "mn", "x", "", "q", "MIN", "Hours", "µs",
];

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "5",
    "7",
    "15",
    "30",
    "59",
    "60",
    "90",
    "100",
    "1000",
    "123456",
    "00012",
    "99999999999",
    "86399999999999",
];

/// References: now, times of day, day names, dates in every form.
const REFERENCES: &[&str] = &[
    "",
    "now",
    "NOW",
    " now ",
    "today",
    "yesterday",
    "tomorrow",
    "midnight",
    "noon",
    "teatime",
    "noon yesterday",
    "midnight tomorrow",
    "teatime today",
    "noon_today",
    "midnight_yesterday",
    "6pm today",
    "6am",
    "6am_tomorrow",
    "12am",
    "12pm",
    "0am",
    "0pm",
    "11pm",
    "13pm",
    "99pm",
    "24am",
    "9:30",
    "9:30am",
    "9:30pm",
    "11:59pm",
    "12:00am",
    "12:00pm",
    "23:59",
    "00:00",
    "24:00",
    "7:60",
    "10:15 pm yesterday",
    "1:5",
    "1:",
    ":30",
    "123:45",
    "4:00 20110501",
    "04:00_20110501",
    "20110501",
    "19700101",
    "19000101",
    "19010101",
    "20240229",
    "20230229",
    "20241301",
    "20240132",
    "20240230",
    "20240001",
    "99991231",
    "00010101",
    "jan1",
    "jan 1",
    "feb14",
    "feb 29",
    "feb30",
    "march 31",
    "april31",
    "dec25",
    "dec 31",
    "january 15",
    "jan",
    "jan0",
    "jan32",
    "janx5",
    "monday",
    "mon",
    "sun",
    "sunday",
    "tue",
    "wednesday",
    "thu",
    "fri",
    "sat",
    "saturday",
    "12/25/2020",
    "1/1/70",
    "1/1/69",
    "1/1/0",
    "1/1/99",
    "02/29/2024",
    "02/29/2023",
    "13/01/2020",
    "12/31/9999",
    "1/1/1",
    "noon 12/25/2020",
    "6pm friday",
    "teatime jan 5",
    "11:00 mon",
    "8am 20240331",
    "noon tomorrow",
];

const OFFSETS: &[&str] = &[
    "",
    "+1d",
    "-2h",
    "-1w",
    "+30min",
    "-1mon",
    "+1y",
    "-6h",
    "-1d12h",
    "+",
    "-",
    "-0s",
    "+1d-1h",
    "-5min",
    "+1h30min",
    "-1year",
    "+2weeks",
    "-90seconds",
    "-1m",
    "+1x",
    "-99999999999d",
    "+1hour1minute1second",
];

/// Fragments the garbage generator glues together.
const TOKENS: &[&str] = &[
    "now",
    "today",
    "noon",
    "midnight",
    "teatime",
    "yesterday",
    "tomorrow",
    "am",
    "pm",
    "jan",
    "feb",
    "sep",
    "mon",
    "sun",
    "fri",
    "1",
    "12",
    "30",
    "2024",
    "20240101",
    "0",
    "9",
    "59",
    ":",
    "/",
    "+",
    "-",
    " ",
    "_",
    ",",
    "d",
    "h",
    "min",
    "s",
    "w",
    "y",
    "mon",
    "m",
    "x",
    "é",
    "²",
    "١",
    "٣",
    "İ",
    "Σ",
    "\u{a0}",
    "\t",
    "\u{1c}",
    "\u{3000}",
    "🙂",
    "\0",
    ".",
    "e",
    "E",
    "+-",
    "--",
    "++",
    "::",
    "//",
    "１２",
    "ǅ",
    "Ⅻ",
    "ſ",
    "\u{301}",
];

fn corpus() -> Vec<String> {
    let mut rng = Rng(0x5EED_0A77_1E00_0001);
    let mut specs: Vec<String> = Vec::new();

    // Relative offsets: every unit spelling, with and without a sign (RELATIVE_SPECS of them).
    for sign in ["-", "+", ""] {
        for unit in UNITS {
            specs.push(format!("{sign}{}{unit}", rng.pick(NUMBERS)));
        }
    }
    assert_eq!(specs.len(), RELATIVE_SPECS);
    for sign in ["-", "+", ""] {
        for unit in UNITS {
            for _ in 0..2 {
                specs.push(format!("{sign}{}{unit}", rng.pick(NUMBERS)));
            }
            specs.push(format!("now{sign}1{unit}"));
        }
    }
    // Several groups behind one sign, with spaces, underscores and commas (removed by attime).
    for _ in 0..200 {
        let mut s = String::from(rng.pick(&["-", "+", "now-", "now+", "", "NOW -"]));
        for _ in 0..1 + rng.below(3) {
            s.push_str(rng.pick(&NUMBERS[..12]));
            if rng.chance(20) {
                s.push_str(rng.pick(&[" ", "_", ","]));
            }
            s.push_str(rng.pick(&UNITS[..34]));
        }
        specs.push(s);
    }
    // References with offsets.
    for reference in REFERENCES {
        for offset in OFFSETS {
            specs.push(format!("{reference}{offset}"));
        }
    }
    // Absolute forms with random, partly invalid, fields.
    for _ in 0..250 {
        let (h, m) = (rng.below(27), rng.below(63));
        let (y, mo, d) = (1895 + rng.below(150), rng.below(14), rng.below(33));
        specs.push(format!("{h:02}:{m:02}_{y:04}{mo:02}{d:02}"));
        specs.push(format!("{h}:{m:02} {y:04}{mo:02}{d:02}"));
        specs.push(format!("{mo}/{d}/{}", rng.below(120)));
        specs.push(format!("{mo:02}/{d:02}/{y}"));
        specs.push(format!("{}{}", rng.pick(MONTH_WORDS), d));
        specs.push(format!(
            "{}{} {}",
            rng.below(15),
            rng.pick(&["am", "pm", ""]),
            rng.pick(WEEKDAY_WORDS)
        ));
        specs.push(format!(
            "{}{}",
            rng.pick(&["noon", "midnight", "teatime", "3am", "10pm", "17:45", ""]),
            rng.pick(&["", "yesterday", "today", "tomorrow"])
        ));
    }
    // Times in the DST gaps and overlaps of the zones, and around them.
    for day in [
        "20240331", "20241027", "20240310", "20241103", "20240407", "20241006", "20371025",
        "20400701", "20401028", "19160430", "18930401",
    ] {
        for time in [
            "00:30", "01:00", "01:30", "01:59", "02:00", "02:15", "02:30", "03:00", "03:30",
        ] {
            specs.push(format!("{time}_{day}"));
            specs.push(format!("{time}_{day}+1d"));
            specs.push(format!("{time}_{day}-6h"));
        }
    }
    // Epoch seconds, and all-digit strings that are or are not taken as YYYYMMDD.
    for s in [
        "0",
        "1",
        "86400",
        "1700000000",
        "0001700000000",
        "19700101",
        "19001231",
        "19011301",
        "19991232",
        "20240000",
        "12345678",
        "253402300799",
        "253402300800",
        "253402297200",
        "253402297199",
        "99999999999999999999",
        "1234567890123",
        "2147483647",
        "2147483648",
    ] {
        specs.push(s.to_string());
    }
    for _ in 0..150 {
        specs.push((rng.next() % 4_000_000_000).to_string());
        specs.push(format!(
            "{}{:02}{:02}",
            1890 + rng.below(120),
            rng.below(15),
            rng.below(35)
        ));
    }
    // Python's Unicode rules: other decimal digits, superscripts, letters, spaces and case.
    for s in [
        "١٧٠٠٠٠٠٠٠٠",
        "２０２４０１０１",
        "２０２４１３０１",
        "-１h",
        "-1hé",
        "-1ｈ",
        "-1é",
        "noon tomorrow\u{a0}",
        "\u{1c}now",
        "\u{3000}-1d\u{85}",
        "1\u{a0}:05",
        "1\u{1c}:05",
        "１:30",
        "١١:٣٠pm",
        "jan١",
        "jan²",
        "12²",
        "²",
        "-²h",
        "-1d\t",
        "-1\td",
        "\tnoon",
        "noon\ttoday",
        "NOON+1D",
        "İ",
        "-1Hİ",
        "MİDNİGHT",
        "-1ΣΣ",
        "-1ſ",
        "-1ǅ",
        "-1Ⅻ",
        "-1h\u{301}",
        "-1m\u{301}in",
        "feb\u{a0}1",
        "1/\u{a0}2/2020",
        "1/2/\u{1c}2020",
        "+1/2/2020",
        "1:00+1h",
        "-0:30+1h",
        "-5pm+1h",
        "-1:00+1h",
        "1:-5+1h",
        "12/-1/2020+0s",
        "1/1/-1999+0s",
        "1/1/-1900+0s",
        "1/1/-1901+0s",
        "12/31/9999+1d",
    ] {
        specs.push(s.to_string());
    }
    specs.push("1".repeat(4301));
    specs.push(format!("-{}1s", "0".repeat(4300)));
    specs.push(format!("-{}1s", "0".repeat(4299)));
    // Garbage.
    for _ in 0..900 {
        let mut s = String::new();
        for _ in 0..1 + rng.below(6) {
            s.push_str(rng.pick(TOKENS));
        }
        specs.push(s);
    }
    let mut seen = std::collections::HashSet::new();
    specs.retain(|s| seen.insert(s.clone()));
    specs
}

/// How many specs open the corpus (one per sign and unit spelling); they are tried at every
/// `now`.
const RELATIVE_SPECS: usize = 3 * UNITS.len();

const MONTH_WORDS: &[&str] = &[
    "jan", "feb", "March", "apr", "june", "sep", "Oct", "december",
];
const WEEKDAY_WORDS: &[&str] = &[
    "mon", "Tuesday", "wed", "thursday", "fri", "sat", "sun", "xyz",
];

/// Error messages: ours must be the text of graphite-web's exception, which its render view
/// answers 400 with.
#[derive(Default)]
struct Messages {
    errors: usize,
    identical: usize,
    examples: Vec<String>,
}

impl Messages {
    fn note<T>(
        &mut self,
        ours: &Result<T, carbide::query::QueryError>,
        theirs: &Result<T, String>,
    ) {
        if let (Err(ours), Err(theirs)) = (ours, theirs) {
            self.errors += 1;
            let text = theirs.split_once(": ").map_or(theirs.as_str(), |(_, t)| t);
            if ours.message() == text {
                self.identical += 1;
            } else if self.examples.len() < 40 {
                self.examples.push(format!(
                    "ours {:?}, graphite-web {theirs:?}",
                    ours.message()
                ));
            }
        }
    }

    fn report(&self) {
        println!(
            "error messages identical to graphite-web's in {} of {} errors",
            self.identical, self.errors
        );
        assert!(self.examples.is_empty(), "{}", self.examples.join("\n"));
    }
}

fn same(ours: &Result<i64, carbide::query::QueryError>, theirs: &Result<i64, String>) -> bool {
    match (ours, theirs) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

#[test]
fn parse_at_time_matches_graphite_web() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut gw = GraphiteWeb::start(dir.path());
    let specs = corpus();
    // The driver turns `now` into a datetime in the zone first; near years 1 and 9999 that
    // overflows in some zones, and then there is nothing of graphite-web's to compare with.
    let mut usable: Vec<(usize, i64)> = Vec::new();
    for (z, &zone) in ZONES.iter().enumerate() {
        let tz: Zone = zone.parse().expect("zone");
        for &now in NOWS {
            match gw.attime("now", Some(zone), now) {
                Ok(t) => {
                    assert_eq!(parse_at_time("now", tz, now).ok(), Some(t), "{zone} {now}");
                    usable.push((z, now));
                }
                Err(_) => assert!(parse_at_time("now", tz, now).is_err(), "{zone} {now}"),
            }
        }
    }
    let mut rng = Rng(0x000A_771E);
    let (mut compared, mut accepted) = (0usize, 0usize);
    let mut messages = Messages::default();
    let mut mismatches: Vec<String> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        // Every spec in every zone; the relative ones (first in the corpus) at every `now`, the
        // others at one `now` each, in turn.
        let pairs: Vec<(usize, i64)> = if i < RELATIVE_SPECS {
            usable.clone()
        } else {
            let now = NOWS[rng.below(NOWS.len())];
            usable.iter().copied().filter(|&(_, n)| n == now).collect()
        };
        for (z, now) in pairs {
            let zone = ZONES[z];
            let tz: Zone = zone.parse().expect("zone");
            let ours = parse_at_time(spec, tz, now);
            let theirs = gw.attime(spec, Some(zone), now);
            compared += 1;
            accepted += usize::from(theirs.is_ok());
            messages.note(&ours, &theirs);
            if !same(&ours, &theirs) && mismatches.len() < 40 {
                mismatches.push(format!(
                    "{spec:?} tz={zone} now={now}: ours {ours:?}, graphite-web {theirs:?}"
                ));
            }
        }
    }
    println!(
        "parseATTime: {compared} cases compared ({} distinct specs, {} zones, {} nows; \
         {accepted} accepted by graphite-web, the rest rejected by both)",
        specs.len(),
        ZONES.len(),
        NOWS.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    messages.report();
}

#[test]
fn parse_time_offset_matches_graphite_web() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut gw = GraphiteWeb::start(dir.path());
    let mut rng = Rng(0x0FF5E7);
    let mut specs: Vec<String> = Vec::new();
    for sign in ["-", "+", "", " ", "*"] {
        for unit in UNITS {
            for _ in 0..2 {
                specs.push(format!("{sign}{}{unit}", rng.pick(NUMBERS)));
            }
        }
    }
    for offset in OFFSETS {
        specs.push(offset.to_string());
        specs.push(offset.to_uppercase());
    }
    for _ in 0..500 {
        let mut s = String::new();
        for _ in 0..1 + rng.below(5) {
            s.push_str(rng.pick(TOKENS));
        }
        specs.push(s);
    }
    specs.push("1".repeat(4301) + "s");
    let mut compared = 0;
    let mut mismatches = Vec::new();
    let mut messages = Messages::default();
    for spec in &specs {
        let ours = parse_time_offset(spec);
        let theirs = gw.offset(spec);
        compared += 1;
        messages.note(&ours.clone().map(|v| v as f64), &theirs);
        let ok = match (&ours, &theirs) {
            (Ok(a), Ok(b)) => *a as f64 == *b,
            (Err(_), Err(_)) => true,
            _ => false,
        };
        if !ok && mismatches.len() < 40 {
            mismatches.push(format!("{spec:?}: ours {ours:?}, graphite-web {theirs:?}"));
        }
    }
    println!("parseTimeOffset: {compared} cases compared");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    messages.report();
}

/// pytz itself, for every zone it knows: its transitions (offset and DST flag either side),
/// `localize` at wall times around each transition and at the ends of the datetime range, and
/// the names `pytz.timezone` accepts.
const PYTZ_DUMP: &str = r#"
import json, sys, pytz
from datetime import datetime, timedelta
EPOCH = datetime(1970, 1, 1)
def secs(dt):
    return int((dt - EPOCH).total_seconds())
FULL = set(sys.argv[1:])
def loc(tz, wall):
    try:
        return int(tz.localize(EPOCH + timedelta(seconds=wall)).timestamp())
    except Exception:
        return None
out = {}
for name in pytz.all_timezones:
    tz = pytz.timezone(name)
    trans = []
    probes = [secs(datetime(1, 1, 1)), secs(datetime(1, 1, 1, 12)), secs(datetime(1, 1, 2, 3)),
              secs(datetime(9999, 12, 31)), secs(datetime(9999, 12, 31, 23, 59)),
              secs(datetime(9999, 12, 30, 20)), secs(datetime(2040, 7, 1, 12)),
              secs(datetime(1850, 3, 1)), secs(datetime(2100, 1, 1))]
    if hasattr(tz, '_utc_transition_times'):
        infos = tz._transition_info
        n = len(infos)
        for i, (t, inf) in enumerate(zip(tz._utc_transition_times, infos)):
            if i == 0:
                continue
            before, after = int(infos[i-1][0].total_seconds()), int(inf[0].total_seconds())
            at = secs(t)
            trans.append([at, before, bool(infos[i-1][1]), after, bool(inf[1])])
            # Every transition of the zones in FULL, a sample of the others' (localize is slow).
            if name in FULL:
                walls = {at + before - 1, at + before, at + after - 1, at + after,
                         at + (before + after) // 2, at + min(before, after) - 60}
            elif i % 9 == 0 or i >= n - 3 or before - after > 3600 or after - before > 3600:
                walls = {at + (before + after) // 2, at + max(before, after)}
            else:
                walls = set()
            probes.extend(sorted(walls))
    walls = []
    for t in [secs(datetime(1, 1, 1)), secs(datetime(1, 1, 1, 15)), 0, 2**31, -2**31 - 1,
              secs(datetime(9999, 12, 31, 9)), secs(datetime(9999, 12, 31, 23, 59, 59)),
              secs(datetime(2040, 7, 1, 12))]:
        try:
            walls.append([t, secs(datetime.fromtimestamp(t, tz).replace(tzinfo=None))])
        except Exception:
            walls.append([t, None])
    names = [name, name.lower(), name.upper(), name.replace('+', '_plus_').replace('-', '_minus_')]
    out[name] = {
        'first': int(tz._transition_info[0][0].total_seconds()) if trans else
                 int(tz.utcoffset(datetime(2000, 1, 1)).total_seconds()),
        'transitions': trans,
        'fromtimestamp': walls,
        'localize': [[w, loc(tz, w)] for w in probes],
        'names': [[n, pytz.timezone(n).zone] for n in names],
    }
for n in ['', 'utc', 'Utc', 'nowhere', 'Europe/Nowhere', 'europe/berlin ', 'UTC+1', 'Etc/GMT_plus_5',
          'etc/gmt_minus_14', 'US/Pacific-New', 'Asia/Calcutta', 'EST5EDT', 'Berlin', 'é']:
    try:
        z = pytz.timezone(n).zone
    except Exception:
        z = None
    out.setdefault('', {'names': [], 'version': pytz.OLSON_VERSION})['names'].append([n, z])
json.dump(out, sys.stdout)
"#;

/// Zones whose every transition is probed (the others get a sample): the corpus zones, and
/// ones with negative DST, double summer time, week-long DST, skipped days, 30-minute and
/// 2-hour shifts, and pytz's DST-flag guesswork (Argentina, Paris 1944, Louisville 1974).
const FULL_ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Europe/Dublin",
    "Europe/London",
    "America/Noronha",
    "Pacific/Apia",
    "Antarctica/Troll",
    "Europe/Moscow",
    "Africa/Tunis",
    "America/Argentina/Buenos_Aires",
    "America/Argentina/Tucuman",
    "Europe/Paris",
    "America/Louisville",
    "America/St_Johns",
    "Pacific/Kiritimati",
    "Europe/Vienna",
    "Asia/Kathmandu",
];

#[test]
fn zone_model_matches_pytz_for_every_zone() {
    let out = Command::new(common::python())
        .arg("-c")
        .arg(PYTZ_DUMP)
        .args(FULL_ZONES)
        .output()
        .expect("run the venv's python");
    assert!(
        out.status.success(),
        "pytz dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump: Value = serde_json::from_slice(&out.stdout).expect("pytz dump is JSON");
    let dump = dump.as_object().expect("object");
    let pytz_version = dump[""]["version"].as_str().unwrap_or_default();
    let mut compared = 0usize;
    let mut mismatches: Vec<String> = Vec::new();
    let mut other_data: Vec<&str> = Vec::new();
    for (name, zone) in dump {
        for pair in zone["names"].as_array().expect("names") {
            let (asked, want) = (pair[0].as_str().unwrap_or_default(), pair[1].as_str());
            let got = parse_zone(asked).map(|tz| tz.name());
            compared += 1;
            if got != want {
                mismatches.push(format!(
                    "parse_zone({asked:?}): ours {got:?}, pytz {want:?}"
                ));
            }
        }
        if name.is_empty() {
            continue;
        }
        let tz: Zone = name.parse().expect("pytz zone known to chrono-tz");
        let transitions = zone["transitions"].as_array().expect("transitions");
        // Where chrono-tz's own data (not our model of pytz) disagrees with pytz's offsets, the
        // two carry different releases of the tz database: nothing to compare.
        if pytz_version != chrono_tz::IANA_TZDB_VERSION && raw_offsets_differ(tz, transitions) {
            other_data.push(name);
            continue;
        }
        let full = FULL_ZONES.contains(&name.as_str());
        for t in transitions {
            let at = t[0].as_i64().expect("at");
            let before = (
                t[1].as_i64().expect("before") as i32,
                t[2].as_bool() == Some(true),
            );
            let after = (
                t[3].as_i64().expect("after") as i32,
                t[4].as_bool() == Some(true),
            );
            for (when, want) in [(at - 1, before), (at, after)] {
                compared += 1;
                // pytz's DST flag (its own guess) is checked in full for the FULL zones; for the
                // others it shows in localize, where alone it matters.
                let got = if full {
                    (utc_offset(tz, when), is_dst(tz, when))
                } else {
                    (utc_offset(tz, when), want.1)
                };
                if got != want {
                    mismatches.push(format!("{name} at {when}: ours {got:?}, pytz {want:?}"));
                }
            }
        }
        // Between transitions, before the first and after the last (pytz stops in 2037).
        let spans: Vec<(i64, i32)> = transitions
            .iter()
            .map(|t| {
                (
                    t[0].as_i64().expect("at"),
                    t[3].as_i64().expect("after") as i32,
                )
            })
            .collect();
        let first = zone["first"].as_i64().expect("first") as i32;
        let mut probes = vec![(-5_000_000_000, first), (-62_000_000_000, first)];
        for (i, &(at, off)) in spans.iter().enumerate() {
            let next = spans.get(i + 1).map_or(at + 3_000_000_000, |n| n.0);
            probes.push((at + (next - at) / 2, off));
            probes.push((next - 1, off));
        }
        if let Some(&(_, last)) = spans.last() {
            probes.push((253_402_000_000, last));
        }
        for (when, want) in probes {
            compared += 1;
            let got = utc_offset(tz, when);
            if got != want {
                mismatches.push(format!("{name} offset at {when}: ours {got}, pytz {want}"));
            }
        }
        for probe in zone["fromtimestamp"].as_array().expect("fromtimestamp") {
            let epoch = probe[0].as_i64().expect("epoch");
            let want = probe[1].as_i64().map(naive);
            let got = local_datetime(tz, epoch);
            compared += 1;
            if got != want {
                mismatches.push(format!(
                    "{name} fromtimestamp({epoch}): ours {got:?}, pytz {want:?}"
                ));
            }
        }
        for probe in zone["localize"].as_array().expect("localize") {
            let wall = probe[0].as_i64().expect("wall");
            let want = probe[1].as_i64();
            let got = localize(tz, naive(wall));
            compared += 1;
            if got != want {
                mismatches.push(format!(
                    "{name} localize({}): ours {got:?}, pytz {want:?}",
                    naive(wall)
                ));
            }
        }
    }
    println!(
        "pytz zone model: {compared} cases compared over {} zones",
        dump.len() - 1 - other_data.len()
    );
    if !other_data.is_empty() {
        println!(
            "not compared: {} zones whose history differs between chrono-tz's tz database \
             ({}) and pytz's ({pytz_version}): {}",
            other_data.len(),
            chrono_tz::IANA_TZDB_VERSION,
            other_data.join(" ")
        );
    }
    // A handful of zones change per release; many would mean the comparison itself broke.
    assert!(
        other_data.len() < 80,
        "too many zones differ: {other_data:?}"
    );
    for zone in ZONES {
        assert!(!other_data.contains(zone), "{zone} must be compared");
    }
    mismatches.truncate(40);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// Whether chrono-tz's own offsets (rounded as pytz rounds) differ from pytz's anywhere inside
/// the 32-bit range pytz reads: either side of each transition, and between them.
fn raw_offsets_differ(tz: Zone, transitions: &[Value]) -> bool {
    use chrono::{Offset, TimeZone};
    let raw = |when: i64| {
        let off = tz
            .offset_from_utc_datetime(&naive(when))
            .fix()
            .local_minus_utc() as i64;
        (off + 30).div_euclid(60) * 60
    };
    let v1 = i32::MIN as i64..=i32::MAX as i64;
    let mut edges: Vec<(i64, i64)> = vec![(i32::MIN as i64, i64::MIN)];
    for t in transitions {
        let at = t[0].as_i64().unwrap_or_default();
        // pytz's entry at -2**31 stands for the whole time before it, unlike chrono-tz's.
        if at > i32::MIN as i64 && raw(at - 1) != t[1].as_i64().unwrap_or_default() {
            return true;
        }
        edges.push((at, t[3].as_i64().unwrap_or_default()));
    }
    edges.push((i32::MAX as i64, i64::MIN));
    edges.windows(2).any(|w| {
        let ((from, off), (to, _)) = (w[0], w[1]);
        off != i64::MIN
            && [0, 1, 2, 3].iter().any(|k| {
                let when = from + (to - from) * k / 4;
                v1.contains(&when) && raw(when) != off
            })
    })
}

/// A naive datetime from naive seconds.
fn naive(t: i64) -> NaiveDateTime {
    DateTime::from_timestamp(t, 0)
        .expect("in range")
        .naive_utc()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_panic_on_any_input(s in ".{0,40}", now in any::<i64>(), zone in 0usize..ZONES.len()) {
        let tz: Zone = ZONES[zone].parse().expect("zone");
        let _ = parse_at_time(&s, tz, now);
        let _ = parse_at_time(&s, tz, 1_700_000_000);
        let _ = parse_time_offset(&s);
        let _ = parse_zone(&s);
    }

    #[test]
    fn no_panic_on_grammar_like_input(
        s in "[-+0-9a-z:/ _,.\u{a0}\u{1c}²١]{0,30}",
        now in -62_135_596_800i64..253_402_300_800,
    ) {
        let _ = parse_at_time(&s, "Australia/Lord_Howe".parse().expect("zone"), now);
        let _ = parse_time_offset(&s);
    }
}
