//! graphite-web's time grammar (`render/attime.py`): from/until/now values and the interval
//! strings functions take (`summarize(x, "1h")`, `timeShift(x, "-1d")`), together with the
//! pytz behaviour it relies on, so that every accepted string gives graphite-web's instant and
//! every string it rejects is rejected.
//!
//! Two pieces of Python leak into the results and are reproduced on purpose:
//! - pytz, not the tz database as such: offsets rounded to whole minutes, transitions only
//!   inside the 32-bit range (1901-12-13 .. 2038-01-19; later instants keep the last offset of
//!   2037), `localize` with `is_dst=False` (a time in a gap takes the offset in force six hours
//!   earlier, one in an overlap the standard-time reading) and its overflow errors near years 1
//!   and 9999;
//! - Python's string and integer rules: `strip`/`lower`, Unicode `isdigit`/`isalpha`, and
//!   `int()` (surrounding whitespace, a sign, any Unicode decimal digits, at most 4300 digits).
//!
//! Times are handled as "naive seconds": seconds since 1970-01-01T00:00 of a wall clock, so one
//! integer stands for a Python `datetime` and an aware one is that plus its UTC offset.
//! Error messages are the text of the exception graphite-web raises (what its render view
//! answers 400 with), as far as they can be reproduced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, NaiveDateTime, Offset, TimeZone};
use chrono_tz::OffsetComponents;

use super::error::QueryError;

/// A time zone from the tz database (graphite-web uses pytz).
pub type Zone = chrono_tz::Tz;

/// `datetime.min` and `datetime.max` (whole seconds) as naive seconds.
const MIN_NAIVE: i64 = -62_135_596_800;
const MAX_NAIVE: i64 = 253_402_300_799;
/// The range of a `timedelta` in whole seconds (|days| <= 999999999).
const TD_MIN: i128 = -999_999_999 * 86_400;
const TD_MAX: i128 = 999_999_999 * 86_400 + 86_399;
/// pytz reads only the 32-bit part of a zone file.
const V1_MIN: i64 = i32::MIN as i64;
const V1_MAX: i64 = i32::MAX as i64;
/// Python refuses to convert longer digit strings to int (`sys.get_int_max_str_digits()`).
const MAX_INT_DIGITS: usize = 4300;
/// Integers are clamped here: every use of a larger one is an error in Python as well.
const INT_CLAMP: i128 = 1_000_000_000_000_000_000_000_000_000;

const DAY: i64 = 86_400;
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// `parseATTime(s, tz, now)` as epoch seconds.
pub fn parse_at_time(s: &str, tz: Zone, now: i64) -> Result<i64, QueryError> {
    let s: Vec<char> = py_lower(py_strip(s))
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    if is_all(&s, py_isdigit) {
        let looks_like_date = s.len() == 8
            && py_int(&s[..4])? > 1900
            && py_int(&s[4..6])? < 13
            && py_int(&s[6..])? < 32;
        if !looks_like_date {
            let epoch = py_int(&s)?;
            return Ok(from_timestamp(tz, epoch)?.epoch());
        }
    }
    let split = s
        .iter()
        .position(|&c| c == '+')
        .or_else(|| s.iter().position(|&c| c == '-'));
    let (reference, offset) = match split {
        Some(at) => s.split_at(at),
        None => (&s[..], &[][..]),
    };
    let base = parse_reference(reference, tz, now)?;
    let delta = offset_seconds(offset)?;
    let wall = checked_naive(base.wall as i128 + delta as i128)?;
    normalize(
        tz,
        Aware {
            wall,
            off: base.off,
        },
    )
}

/// `parseTimeOffset(s)` in seconds (`-5min` is -300; no sign means +). Months are 30 days and
/// years 365. The string is taken as is: unlike from/until it is neither trimmed nor lowered.
pub fn parse_time_offset(s: &str) -> Result<i64, QueryError> {
    let chars: Vec<char> = s.chars().collect();
    offset_seconds(&chars)
}

/// The zone `pytz.timezone(name)` gives, for the `tz` request parameter: case-insensitive,
/// with the old `_plus_`/`_minus_` spellings; `None` where pytz raises UnknownTimeZoneError
/// (graphite-web then keeps its default zone).
pub fn parse_zone(name: &str) -> Option<Zone> {
    if !name.is_ascii() {
        return None;
    }
    if name.eq_ignore_ascii_case("utc") {
        return Some(chrono_tz::UTC);
    }
    let name = name.replace("_plus_", "+").replace("_minus_", "-");
    static BY_LOWER: OnceLock<HashMap<String, Zone>> = OnceLock::new();
    BY_LOWER
        .get_or_init(|| {
            chrono_tz::TZ_VARIANTS
                .iter()
                .map(|tz| (tz.name().to_ascii_lowercase(), *tz))
                .collect()
        })
        .get(&name.to_ascii_lowercase())
        .copied()
}

/// The UTC offset (seconds east) pytz gives `tz` at an instant, as in
/// `datetime.fromtimestamp(epoch, tz).utcoffset()`.
pub fn utc_offset(tz: Zone, epoch: i64) -> i32 {
    ttinfo(tz, epoch).0
}

/// Whether pytz counts the instant as daylight-saving time in `tz` (`bool(dt.dst())`, pytz's
/// own guess from the zone file). Not what `time.localtime(...).tm_isdst` (the C library, in
/// the server's zone) says, which timeShift's alignDST uses.
pub fn is_dst(tz: Zone, epoch: i64) -> bool {
    pytz_dst(tz, epoch)
}

/// The wall clock of `datetime.fromtimestamp(epoch, tz)`; `None` where Python raises (the
/// result would leave years 1..9999).
pub fn local_datetime(tz: Zone, epoch: i64) -> Option<NaiveDateTime> {
    let aware = from_timestamp(tz, epoch.into()).ok()?;
    DateTime::from_timestamp(aware.wall, 0).map(|t| t.naive_utc())
}

/// `tz.localize(naive)` (pytz, `is_dst=False`) as epoch seconds; `None` where pytz raises.
pub fn localize(tz: Zone, naive: NaiveDateTime) -> Option<i64> {
    let wall = naive.and_utc().timestamp();
    if !(MIN_NAIVE..=MAX_NAIVE).contains(&wall) {
        return None;
    }
    localize_naive(tz, wall).ok().map(|a| a.epoch())
}

/// A pytz-aware datetime: its wall clock (naive seconds) and the UTC offset of its tzinfo,
/// which pytz leaves stale after arithmetic until `normalize`.
#[derive(Clone, Copy, Debug)]
struct Aware {
    wall: i64,
    off: i32,
}

impl Aware {
    fn epoch(self) -> i64 {
        self.wall - self.off as i64
    }
}

fn out_of_range() -> QueryError {
    QueryError::bad("date value out of range")
}

fn checked_naive(t: i128) -> Result<i64, QueryError> {
    if (MIN_NAIVE as i128..=MAX_NAIVE as i128).contains(&t) {
        Ok(t as i64)
    } else {
        Err(out_of_range())
    }
}

/// pytz builds `StaticTzInfo` (no transitions, so none of `localize`'s probing) for the
/// fixed-offset zones.
fn is_static(tz: Zone) -> bool {
    let name = tz.name();
    name.starts_with("Etc/")
        || matches!(
            name,
            "GMT" | "GMT+0" | "GMT-0" | "GMT0" | "Greenwich" | "UCT" | "UTC" | "Universal" | "Zulu"
        )
}

/// The tz database entry pytz uses at a UTC instant (naive seconds): before the 32-bit range
/// the zone's first (local mean time) entry, after it the last entry of 2037.
fn entry(tz: Zone, utc: i64) -> chrono_tz::TzOffset {
    let probe = if utc < V1_MIN && !is_static(tz) {
        NaiveDateTime::MIN
    } else {
        match DateTime::from_timestamp(utc.clamp(V1_MIN, V1_MAX), 0) {
            Some(t) => t.naive_utc(),
            None => NaiveDateTime::MIN,
        }
    };
    tz.offset_from_utc_datetime(&probe)
}

/// pytz rounds offsets to whole minutes (floor of +30 s).
fn round_to_minute(seconds: i64) -> i64 {
    (seconds + 30).div_euclid(60) * 60
}

/// pytz's UTC offset at an instant, and whether the zone file flags it as DST.
fn ttinfo(tz: Zone, utc: i64) -> (i32, bool) {
    let e = entry(tz, utc);
    let off = round_to_minute(e.fix().local_minus_utc() as i64) as i32;
    (off, e.dst_offset().num_seconds() != 0)
}

/// One entry of pytz's transition list: from `start` (UTC) on, `off` (unrounded) and the file's
/// DST flag.
#[derive(Clone, Copy, PartialEq)]
struct Span {
    start: i64,
    off: i32,
    isdst: bool,
}

/// What tells entries apart for pytz's DST guess (a change of name alone does not matter).
fn span_key(tz: Zone, utc: i64) -> (i32, i64) {
    let e = entry(tz, utc);
    (e.fix().local_minus_utc(), e.dst_offset().num_seconds())
}

/// pytz's transition list of a zone, rebuilt from chrono-tz (which does not expose its own): the
/// first standard entry, then every change inside the 32-bit range. Changes are found by
/// stepping at most `STEP` seconds and bisecting, so a period shorter than that between two
/// identical ones would be missed; the shortest in the tz database since 1901 lasts 6.9 days.
fn spans(tz: Zone) -> Arc<Vec<Span>> {
    const STEP: i64 = 3 * 86_400;
    static CACHE: OnceLock<Mutex<HashMap<Zone, Arc<Vec<Span>>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(found) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&tz) {
        return found.clone();
    }
    let span = |start: i64| {
        let e = entry(tz, start);
        Span {
            start,
            off: e.fix().local_minus_utc(),
            isdst: e.dst_offset().num_seconds() != 0,
        }
    };
    let mut list = vec![span(V1_MIN - 1)];
    let mut lo = V1_MIN;
    let mut current = span_key(tz, V1_MIN - 1);
    if span_key(tz, lo) != current {
        current = span_key(tz, lo);
        list.push(span(lo));
    }
    while lo < V1_MAX {
        let hi = (lo + STEP).min(V1_MAX);
        if span_key(tz, hi) == current {
            lo = hi;
            continue;
        }
        // The first second in (lo, hi] with another entry.
        let (mut a, mut b) = (lo, hi);
        while b - a > 1 {
            let mid = a + (b - a) / 2;
            if span_key(tz, mid) == current {
                a = mid;
            } else {
                b = mid;
            }
        }
        current = span_key(tz, b);
        list.push(span(b));
        lo = b;
    }
    let list = Arc::new(list);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(tz, list.clone());
    list
}

/// pytz's `bool(dst())` at an instant. pytz does not read the DST amount from the file; it takes
/// the offset minus the previous standard offset, or, when that is not in (0, 3h], minus the
/// first later standard offset that is (or else the last one tried), rounded to the minute.
fn pytz_dst(tz: Zone, utc: i64) -> bool {
    if !ttinfo(tz, utc).1 {
        return false;
    }
    let list = spans(tz);
    let i = list
        .partition_point(|s| s.start <= utc.clamp(V1_MIN, V1_MAX))
        .saturating_sub(1);
    let Some(here) = list.get(i) else {
        return true;
    };
    let previous_standard = list[..i]
        .iter()
        .rev()
        .find(|s| !s.isdst)
        .or(list.first())
        .map_or(0, |s| s.off);
    let mut dst = here.off as i64 - previous_standard as i64;
    if dst <= 0 || dst > 3 * 3600 {
        for later in list[i + 1..].iter().filter(|s| !s.isdst) {
            dst = here.off as i64 - later.off as i64;
            if dst != 0 && dst.abs() <= 3 * 3600 {
                break;
            }
        }
    }
    round_to_minute(dst) != 0
}

/// `tz.fromutc(utc)`.
fn from_utc(tz: Zone, utc: i64) -> Result<Aware, QueryError> {
    let (off, _) = ttinfo(tz, utc);
    let wall = checked_naive(utc as i128 + off as i128)?;
    Ok(Aware { wall, off })
}

/// `datetime.fromtimestamp(epoch, tz)`.
fn from_timestamp(tz: Zone, epoch: i128) -> Result<Aware, QueryError> {
    let Ok(epoch) = i64::try_from(epoch) else {
        return Err(QueryError::bad(
            "timestamp out of range for platform time_t",
        ));
    };
    if !(MIN_NAIVE..=MAX_NAIVE).contains(&epoch) {
        let (year, _, _) = civil_from_days(epoch.div_euclid(DAY));
        return Err(QueryError::bad(if i32::try_from(year - 1900).is_ok() {
            format!("year {year} is out of range")
        } else {
            "[Errno 75] Value too large for defined data type".to_string()
        }));
    }
    from_utc(tz, epoch)
}

/// `tz.normalize(dt)` as the epoch it stands for; for the fixed-offset zones pytz returns `dt`
/// untouched, otherwise it converts through UTC and can overflow.
fn normalize(tz: Zone, dt: Aware) -> Result<i64, QueryError> {
    if !is_static(tz) {
        let utc = checked_naive(dt.wall as i128 - dt.off as i128)?;
        from_utc(tz, utc)?;
    }
    Ok(dt.epoch())
}

/// pytz `localize(dt, is_dst=False)` of a naive wall clock.
fn localize_naive(tz: Zone, dt: i64) -> Result<Aware, QueryError> {
    if is_static(tz) {
        return Ok(Aware {
            wall: dt,
            off: ttinfo(tz, dt).0,
        });
    }
    // A wall time in a gap is tried six hours earlier, repeatedly, and keeps that offset.
    let mut probe = dt;
    for _ in 0..1000 {
        // The instants (UTC) of the readings of the wall clock that map back onto it, taking
        // the offsets in force a day before and a day after (pytz's way of finding them).
        let mut found: Vec<i64> = Vec::with_capacity(2);
        for delta in [-DAY, DAY] {
            let Ok(near) = checked_naive(probe as i128 + delta as i128) else {
                continue;
            };
            let (off, _) = ttinfo(tz, near);
            let utc = checked_naive(probe as i128 - off as i128)?;
            let back = from_utc(tz, utc)?;
            if back.wall == probe && !found.contains(&utc) {
                found.push(utc);
            }
        }
        let utc = match found[..] {
            [] => {
                probe = checked_naive(probe as i128 - 6 * 3600)?;
                continue;
            }
            [one] => one,
            // pytz keeps the reading that is not DST if exactly one is, else the later one; so
            // the earlier wins only when it is standard time and the later DST (negative DST).
            [a, b, ..] => {
                let (earlier, later) = (a.min(b), a.max(b));
                if pytz_dst(tz, later) && !pytz_dst(tz, earlier) {
                    earlier
                } else {
                    later
                }
            }
        };
        return Ok(Aware {
            wall: dt,
            off: (probe - utc) as i32,
        });
    }
    Err(QueryError::bad("time zone gap too long to resolve"))
}

/// `parseTimeReference(ref, tz, now)`: the part of a time string before its offset.
fn parse_reference(reference: &[char], tz: Zone, now: i64) -> Result<Aware, QueryError> {
    let now = from_timestamp(tz, now.into())?;
    if reference.is_empty() || is(reference, "now") {
        return Ok(now);
    }
    let raw: String = reference.iter().collect();
    let mut r = reference;
    let (mut hour, mut minute) = (0i128, 0i128);

    if let Some(i) = find(r, ":").filter(|&i| 0 < i && i < 3) {
        hour = py_int(&r[..i])?;
        minute = py_int(slice(r, i + 1, i + 3))?;
        r = slice(r, i + 3, r.len());
        if starts_with(r, "am") {
            r = &r[2..];
        } else if starts_with(r, "pm") {
            hour = (hour + 12).rem_euclid(24);
            r = &r[2..];
        }
    }
    if let Some(i) = find(r, "am").filter(|&i| 0 < i && i < 3) {
        hour = py_int(&r[..i])?;
        r = &r[i + 2..];
    }
    if let Some(i) = find(r, "pm").filter(|&i| 0 < i && i < 3) {
        hour = (py_int(&r[..i])? + 12).rem_euclid(24);
        r = &r[i + 2..];
    }
    for (word, h) in [("noon", 12), ("midnight", 0), ("teatime", 16)] {
        if starts_with(r, word) {
            (hour, minute) = (h, 0);
            r = &r[word.len()..];
            break;
        }
    }
    if !(0..24).contains(&hour) {
        return Err(QueryError::bad("hour must be in 0..23"));
    }
    if !(0..60).contains(&minute) {
        return Err(QueryError::bad("minute must be in 0..59"));
    }
    let today = now.wall.div_euclid(DAY) * DAY;
    let mut ref_date = today + hour as i64 * 3600 + minute as i64 * 60;

    let prefix: String = r.iter().take(3).collect();
    if is(r, "yesterday") {
        ref_date = checked_naive(ref_date as i128 - DAY as i128)?;
    } else if is(r, "today") {
    } else if is(r, "tomorrow") {
        ref_date = checked_naive(ref_date as i128 + DAY as i128)?;
    } else if r.iter().filter(|&&c| c == '/').count() == 2 {
        let parts: Vec<&[char]> = r.split(|&c| c == '/').collect();
        let (m, d, mut y) = (py_int(parts[0])?, py_int(parts[1])?, py_int(parts[2])?);
        if y < 1900 {
            y += 1900;
        }
        if y < 1970 {
            y += 100;
        }
        ref_date = make_datetime(y, m, d, hour, minute)?;
    } else if r.len() == 8 && is_all(r, py_isdigit) {
        ref_date = make_datetime(
            py_int(&r[..4])?,
            py_int(&r[4..6])?,
            py_int(&r[6..])?,
            hour,
            minute,
        )?;
    } else if let Some(month) = MONTHS.iter().position(|&m| m == prefix) {
        let n = r.len();
        let day = if is_all(&r[n - 2..], py_isdigit) {
            py_int(&r[n - 2..])?
        } else if is_all(&r[n - 1..], py_isdigit) {
            py_int(&r[n - 1..])?
        } else {
            return Err(QueryError::bad("Day of month required after month name"));
        };
        let (year, _, _) = civil_from_days(ref_date.div_euclid(DAY));
        ref_date = make_datetime(year as i128, month as i128 + 1, day, hour, minute)?;
    } else if let Some(target) = WEEKDAYS.iter().position(|&w| w == prefix) {
        let today = (ref_date.div_euclid(DAY) + 4).rem_euclid(7);
        let back = (today - target as i64).rem_euclid(7);
        ref_date = checked_naive(ref_date as i128 - (back * DAY) as i128)?;
    } else if !r.is_empty() {
        return Err(QueryError::bad(format!("Unknown day reference: {raw}")));
    }
    localize_naive(tz, ref_date)
}

/// `datetime(year, month, day, hour, minute)` as naive seconds.
fn make_datetime(
    year: i128,
    month: i128,
    day: i128,
    hour: i128,
    minute: i128,
) -> Result<i64, QueryError> {
    // Python converts every argument to a C int before it checks any range.
    for v in [year, month, day] {
        c_int(v)?;
    }
    if !(1..=9999).contains(&year) {
        return Err(QueryError::bad(format!("year {year} is out of range")));
    }
    if !(1..=12).contains(&month) {
        return Err(QueryError::bad("month must be in 1..12"));
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=month_days).contains(&day) {
        return Err(QueryError::bad("day is out of range for month"));
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    Ok(days * DAY + hour as i64 * 3600 + minute as i64 * 60)
}

/// Python's errors for an int argument that does not fit a C int.
fn c_int(v: i128) -> Result<i32, QueryError> {
    if let Ok(v) = i32::try_from(v) {
        return Ok(v);
    }
    Err(QueryError::bad(if i64::try_from(v).is_err() {
        "Python int too large to convert to C long"
    } else if v > 0 {
        "signed integer is greater than maximum"
    } else {
        "signed integer is less than minimum"
    }))
}

/// `timedelta`'s error when a value leaves its range.
fn timedelta_overflow(seconds: i128) -> QueryError {
    let days = seconds.div_euclid(86_400);
    QueryError::bad(match i32::try_from(days) {
        Ok(days) => format!("days={days}; must have magnitude <= 999999999"),
        Err(_) => "Python int too large to convert to C int".to_string(),
    })
}

/// The offset part: a sign (or a digit, meaning +) and `<int><unit>` groups.
fn offset_seconds(offset: &[char]) -> Result<i64, QueryError> {
    let Some(&first) = offset.first() else {
        return Ok(0);
    };
    let (sign, mut rest) = if py_isdigit(first) {
        (1i128, offset)
    } else {
        match first {
            '+' => (1, &offset[1..]),
            '-' => (-1, &offset[1..]),
            _ => {
                // A KeyError, whose text is the repr of its message.
                let text: String = offset.iter().collect();
                return Err(QueryError::bad(py_repr(&format!("Invalid offset: {text}"))));
            }
        }
    };
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let digits = rest.iter().take_while(|&&c| py_isdigit(c)).count();
        let num = py_int(&rest[..digits])?;
        rest = &rest[digits..];
        let letters = rest.iter().take_while(|&&c| py_isalpha(c)).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let delta = sign * num * unit_seconds(unit)?;
        if !(TD_MIN..=TD_MAX).contains(&delta) {
            return Err(timedelta_overflow(delta));
        }
        total += delta;
        if !(TD_MIN..=TD_MAX).contains(&total) {
            return Err(timedelta_overflow(total));
        }
    }
    Ok(total as i64)
}

/// attime's `getUnitString`, by prefix, months and years as 30 and 365 days.
fn unit_seconds(unit: &[char]) -> Result<i128, QueryError> {
    let seconds = if starts_with(unit, "s") {
        1
    } else if starts_with(unit, "min") {
        60
    } else if starts_with(unit, "h") {
        3600
    } else if starts_with(unit, "d") {
        86_400
    } else if starts_with(unit, "w") {
        7 * 86_400
    } else if starts_with(unit, "mon") {
        30 * 86_400
    } else if starts_with(unit, "y") {
        365 * 86_400
    } else {
        let unit: String = unit.iter().collect();
        return Err(QueryError::bad(format!("Invalid offset unit '{unit}'")));
    };
    Ok(seconds)
}

fn is(chars: &[char], word: &str) -> bool {
    chars.iter().copied().eq(word.chars())
}

fn starts_with(chars: &[char], word: &str) -> bool {
    let n = word.chars().count();
    chars.len() >= n && is(&chars[..n], word)
}

/// `str.find`: the first index where `word` starts.
fn find(chars: &[char], word: &str) -> Option<usize> {
    let n = word.chars().count();
    (0..=chars.len().saturating_sub(n)).find(|&i| starts_with(&chars[i..], word))
}

/// `s[from:to]` with Python's clamping.
fn slice(chars: &[char], from: usize, to: usize) -> &[char] {
    let to = to.min(chars.len());
    &chars[from.min(to)..to]
}

/// `str.isdigit()` and friends: true for a non-empty string of such characters.
fn is_all(chars: &[char], class: fn(char) -> bool) -> bool {
    !chars.is_empty() && chars.iter().all(|&c| class(c))
}

/// Python's `int(s)` for base 10 (clamped to ±1e30).
fn py_int(chars: &[char]) -> Result<i128, QueryError> {
    let invalid = || {
        let text: String = chars.iter().collect();
        QueryError::bad(format!(
            "invalid literal for int() with base 10: {}",
            py_repr(&text)
        ))
    };
    // Inside int() only ASCII whitespace and the non-ASCII Unicode spaces count.
    let space = |c: char| py_isspace(c) && !('\x1c'..='\x1f').contains(&c);
    let start = chars.iter().position(|&c| !space(c)).unwrap_or(chars.len());
    let end = chars
        .iter()
        .rposition(|&c| !space(c))
        .map_or(start, |i| i + 1);
    let mut body = &chars[start..end];
    let negative = match body.first() {
        Some('-') => {
            body = &body[1..];
            true
        }
        Some('+') => {
            body = &body[1..];
            false
        }
        _ => false,
    };
    let mut value: i128 = 0;
    let mut digits = 0usize;
    let mut previous_underscore = true;
    for &c in body {
        if c == '_' {
            if previous_underscore {
                return Err(invalid());
            }
            previous_underscore = true;
            continue;
        }
        let d = py_decimal(c).ok_or_else(invalid)?;
        digits += 1;
        previous_underscore = false;
        value = (value * 10 + d as i128).min(INT_CLAMP);
    }
    if digits == 0 || previous_underscore {
        return Err(invalid());
    }
    if digits > MAX_INT_DIGITS {
        return Err(QueryError::bad(format!(
            "Exceeds the limit ({MAX_INT_DIGITS} digits) for integer string conversion: value \
             has {digits} digits; use sys.set_int_max_str_digits() to increase the limit"
        )));
    }
    Ok(if negative { -value } else { value })
}

/// `repr(s)` of a Python string: quoted, with backslash escapes for what Python does not print
/// (control characters and the non-ASCII spaces, format characters and the like).
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c == ' ' || (c.is_ascii() && !c.is_ascii_control()) => out.push(c),
            c if c.is_control()
                || (py_isspace(c) && !c.is_ascii())
                || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                    | '\u{2060}'..='\u{2064}' | '\u{feff}' | '\u{e000}'..='\u{f8ff}') =>
            {
                let n = c as u32;
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// `str.lower()`: full Unicode lowercasing, final sigma included, as Rust's.
fn py_lower(s: &str) -> String {
    s.to_lowercase()
}

/// `str.isspace()` for one character.
fn py_isspace(c: char) -> bool {
    matches!(c,
        '\t'..='\r' | '\x1c'..=' ' | '\u{85}' | '\u{a0}' | '\u{1680}' | '\u{2000}'..='\u{200a}'
        | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

/// The value of a Unicode decimal digit (what `int()` reads).
fn py_decimal(c: char) -> Option<u32> {
    let c = c as u32;
    let i = unicode::DECIMAL_ZEROS.partition_point(|&z| z <= c);
    let zero = *unicode::DECIMAL_ZEROS.get(i.checked_sub(1)?)?;
    (c - zero < 10).then_some(c - zero)
}

/// `str.isdigit()` for one character: decimals and the other digits (superscripts, circled).
fn py_isdigit(c: char) -> bool {
    py_decimal(c).is_some() || in_ranges(unicode::OTHER_DIGITS, c)
}

/// `str.isalpha()` for one character (categories L*).
fn py_isalpha(c: char) -> bool {
    c.is_ascii_alphabetic() || (!c.is_ascii() && in_ranges(unicode::ALPHA, c))
}

/// Whether `c` is in one of the inclusive ranges of a flat `[start, end, start, end, ...]` list.
fn in_ranges(ranges: &[u32], c: char) -> bool {
    let c = c as u32;
    let i = ranges.partition_point(|&x| x <= c);
    // An odd count of bounds at or below c means c is inside a range, or on its end.
    i % 2 == 1 || (i > 0 && ranges[i - 1] == c)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Character classes of Python 3.11 (`unicodedata` 14.0.0), which graphite-web's string tests
/// use; generated from `str.isdecimal`, `str.isdigit` and `str.isalpha` over all code points.
mod unicode {
    /// The zero of every run of ten decimal digits.
    pub(super) const DECIMAL_ZEROS: &[u32] = &[
        0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
        0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
        0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
        0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
        0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0,
        0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
    ];
    /// Inclusive [start, end] pairs of the digits that are not decimals.
    pub(super) const OTHER_DIGITS: &[u32] = &[
        0xB2, 0xB3, 0xB9, 0xB9, 0x1369, 0x1371, 0x19DA, 0x19DA, 0x2070, 0x2070, 0x2074, 0x2079,
        0x2080, 0x2089, 0x2460, 0x2468, 0x2474, 0x247C, 0x2488, 0x2490, 0x24EA, 0x24EA, 0x24F5,
        0x24FD, 0x24FF, 0x24FF, 0x2776, 0x277E, 0x2780, 0x2788, 0x278A, 0x2792, 0x10A40, 0x10A43,
        0x10E60, 0x10E68, 0x11052, 0x1105A, 0x1F100, 0x1F10A,
    ];
    /// Inclusive [start, end] pairs of the letters.
    pub(super) const ALPHA: &[u32] = &[
        0x41, 0x5A, 0x61, 0x7A, 0xAA, 0xAA, 0xB5, 0xB5, 0xBA, 0xBA, 0xC0, 0xD6, 0xD8, 0xF6, 0xF8,
        0x2C1, 0x2C6, 0x2D1, 0x2E0, 0x2E4, 0x2EC, 0x2EC, 0x2EE, 0x2EE, 0x370, 0x374, 0x376, 0x377,
        0x37A, 0x37D, 0x37F, 0x37F, 0x386, 0x386, 0x388, 0x38A, 0x38C, 0x38C, 0x38E, 0x3A1, 0x3A3,
        0x3F5, 0x3F7, 0x481, 0x48A, 0x52F, 0x531, 0x556, 0x559, 0x559, 0x560, 0x588, 0x5D0, 0x5EA,
        0x5EF, 0x5F2, 0x620, 0x64A, 0x66E, 0x66F, 0x671, 0x6D3, 0x6D5, 0x6D5, 0x6E5, 0x6E6, 0x6EE,
        0x6EF, 0x6FA, 0x6FC, 0x6FF, 0x6FF, 0x710, 0x710, 0x712, 0x72F, 0x74D, 0x7A5, 0x7B1, 0x7B1,
        0x7CA, 0x7EA, 0x7F4, 0x7F5, 0x7FA, 0x7FA, 0x800, 0x815, 0x81A, 0x81A, 0x824, 0x824, 0x828,
        0x828, 0x840, 0x858, 0x860, 0x86A, 0x870, 0x887, 0x889, 0x88E, 0x8A0, 0x8C9, 0x904, 0x939,
        0x93D, 0x93D, 0x950, 0x950, 0x958, 0x961, 0x971, 0x980, 0x985, 0x98C, 0x98F, 0x990, 0x993,
        0x9A8, 0x9AA, 0x9B0, 0x9B2, 0x9B2, 0x9B6, 0x9B9, 0x9BD, 0x9BD, 0x9CE, 0x9CE, 0x9DC, 0x9DD,
        0x9DF, 0x9E1, 0x9F0, 0x9F1, 0x9FC, 0x9FC, 0xA05, 0xA0A, 0xA0F, 0xA10, 0xA13, 0xA28, 0xA2A,
        0xA30, 0xA32, 0xA33, 0xA35, 0xA36, 0xA38, 0xA39, 0xA59, 0xA5C, 0xA5E, 0xA5E, 0xA72, 0xA74,
        0xA85, 0xA8D, 0xA8F, 0xA91, 0xA93, 0xAA8, 0xAAA, 0xAB0, 0xAB2, 0xAB3, 0xAB5, 0xAB9, 0xABD,
        0xABD, 0xAD0, 0xAD0, 0xAE0, 0xAE1, 0xAF9, 0xAF9, 0xB05, 0xB0C, 0xB0F, 0xB10, 0xB13, 0xB28,
        0xB2A, 0xB30, 0xB32, 0xB33, 0xB35, 0xB39, 0xB3D, 0xB3D, 0xB5C, 0xB5D, 0xB5F, 0xB61, 0xB71,
        0xB71, 0xB83, 0xB83, 0xB85, 0xB8A, 0xB8E, 0xB90, 0xB92, 0xB95, 0xB99, 0xB9A, 0xB9C, 0xB9C,
        0xB9E, 0xB9F, 0xBA3, 0xBA4, 0xBA8, 0xBAA, 0xBAE, 0xBB9, 0xBD0, 0xBD0, 0xC05, 0xC0C, 0xC0E,
        0xC10, 0xC12, 0xC28, 0xC2A, 0xC39, 0xC3D, 0xC3D, 0xC58, 0xC5A, 0xC5D, 0xC5D, 0xC60, 0xC61,
        0xC80, 0xC80, 0xC85, 0xC8C, 0xC8E, 0xC90, 0xC92, 0xCA8, 0xCAA, 0xCB3, 0xCB5, 0xCB9, 0xCBD,
        0xCBD, 0xCDD, 0xCDE, 0xCE0, 0xCE1, 0xCF1, 0xCF2, 0xD04, 0xD0C, 0xD0E, 0xD10, 0xD12, 0xD3A,
        0xD3D, 0xD3D, 0xD4E, 0xD4E, 0xD54, 0xD56, 0xD5F, 0xD61, 0xD7A, 0xD7F, 0xD85, 0xD96, 0xD9A,
        0xDB1, 0xDB3, 0xDBB, 0xDBD, 0xDBD, 0xDC0, 0xDC6, 0xE01, 0xE30, 0xE32, 0xE33, 0xE40, 0xE46,
        0xE81, 0xE82, 0xE84, 0xE84, 0xE86, 0xE8A, 0xE8C, 0xEA3, 0xEA5, 0xEA5, 0xEA7, 0xEB0, 0xEB2,
        0xEB3, 0xEBD, 0xEBD, 0xEC0, 0xEC4, 0xEC6, 0xEC6, 0xEDC, 0xEDF, 0xF00, 0xF00, 0xF40, 0xF47,
        0xF49, 0xF6C, 0xF88, 0xF8C, 0x1000, 0x102A, 0x103F, 0x103F, 0x1050, 0x1055, 0x105A, 0x105D,
        0x1061, 0x1061, 0x1065, 0x1066, 0x106E, 0x1070, 0x1075, 0x1081, 0x108E, 0x108E, 0x10A0,
        0x10C5, 0x10C7, 0x10C7, 0x10CD, 0x10CD, 0x10D0, 0x10FA, 0x10FC, 0x1248, 0x124A, 0x124D,
        0x1250, 0x1256, 0x1258, 0x1258, 0x125A, 0x125D, 0x1260, 0x1288, 0x128A, 0x128D, 0x1290,
        0x12B0, 0x12B2, 0x12B5, 0x12B8, 0x12BE, 0x12C0, 0x12C0, 0x12C2, 0x12C5, 0x12C8, 0x12D6,
        0x12D8, 0x1310, 0x1312, 0x1315, 0x1318, 0x135A, 0x1380, 0x138F, 0x13A0, 0x13F5, 0x13F8,
        0x13FD, 0x1401, 0x166C, 0x166F, 0x167F, 0x1681, 0x169A, 0x16A0, 0x16EA, 0x16F1, 0x16F8,
        0x1700, 0x1711, 0x171F, 0x1731, 0x1740, 0x1751, 0x1760, 0x176C, 0x176E, 0x1770, 0x1780,
        0x17B3, 0x17D7, 0x17D7, 0x17DC, 0x17DC, 0x1820, 0x1878, 0x1880, 0x1884, 0x1887, 0x18A8,
        0x18AA, 0x18AA, 0x18B0, 0x18F5, 0x1900, 0x191E, 0x1950, 0x196D, 0x1970, 0x1974, 0x1980,
        0x19AB, 0x19B0, 0x19C9, 0x1A00, 0x1A16, 0x1A20, 0x1A54, 0x1AA7, 0x1AA7, 0x1B05, 0x1B33,
        0x1B45, 0x1B4C, 0x1B83, 0x1BA0, 0x1BAE, 0x1BAF, 0x1BBA, 0x1BE5, 0x1C00, 0x1C23, 0x1C4D,
        0x1C4F, 0x1C5A, 0x1C7D, 0x1C80, 0x1C88, 0x1C90, 0x1CBA, 0x1CBD, 0x1CBF, 0x1CE9, 0x1CEC,
        0x1CEE, 0x1CF3, 0x1CF5, 0x1CF6, 0x1CFA, 0x1CFA, 0x1D00, 0x1DBF, 0x1E00, 0x1F15, 0x1F18,
        0x1F1D, 0x1F20, 0x1F45, 0x1F48, 0x1F4D, 0x1F50, 0x1F57, 0x1F59, 0x1F59, 0x1F5B, 0x1F5B,
        0x1F5D, 0x1F5D, 0x1F5F, 0x1F7D, 0x1F80, 0x1FB4, 0x1FB6, 0x1FBC, 0x1FBE, 0x1FBE, 0x1FC2,
        0x1FC4, 0x1FC6, 0x1FCC, 0x1FD0, 0x1FD3, 0x1FD6, 0x1FDB, 0x1FE0, 0x1FEC, 0x1FF2, 0x1FF4,
        0x1FF6, 0x1FFC, 0x2071, 0x2071, 0x207F, 0x207F, 0x2090, 0x209C, 0x2102, 0x2102, 0x2107,
        0x2107, 0x210A, 0x2113, 0x2115, 0x2115, 0x2119, 0x211D, 0x2124, 0x2124, 0x2126, 0x2126,
        0x2128, 0x2128, 0x212A, 0x212D, 0x212F, 0x2139, 0x213C, 0x213F, 0x2145, 0x2149, 0x214E,
        0x214E, 0x2183, 0x2184, 0x2C00, 0x2CE4, 0x2CEB, 0x2CEE, 0x2CF2, 0x2CF3, 0x2D00, 0x2D25,
        0x2D27, 0x2D27, 0x2D2D, 0x2D2D, 0x2D30, 0x2D67, 0x2D6F, 0x2D6F, 0x2D80, 0x2D96, 0x2DA0,
        0x2DA6, 0x2DA8, 0x2DAE, 0x2DB0, 0x2DB6, 0x2DB8, 0x2DBE, 0x2DC0, 0x2DC6, 0x2DC8, 0x2DCE,
        0x2DD0, 0x2DD6, 0x2DD8, 0x2DDE, 0x2E2F, 0x2E2F, 0x3005, 0x3006, 0x3031, 0x3035, 0x303B,
        0x303C, 0x3041, 0x3096, 0x309D, 0x309F, 0x30A1, 0x30FA, 0x30FC, 0x30FF, 0x3105, 0x312F,
        0x3131, 0x318E, 0x31A0, 0x31BF, 0x31F0, 0x31FF, 0x3400, 0x4DBF, 0x4E00, 0xA48C, 0xA4D0,
        0xA4FD, 0xA500, 0xA60C, 0xA610, 0xA61F, 0xA62A, 0xA62B, 0xA640, 0xA66E, 0xA67F, 0xA69D,
        0xA6A0, 0xA6E5, 0xA717, 0xA71F, 0xA722, 0xA788, 0xA78B, 0xA7CA, 0xA7D0, 0xA7D1, 0xA7D3,
        0xA7D3, 0xA7D5, 0xA7D9, 0xA7F2, 0xA801, 0xA803, 0xA805, 0xA807, 0xA80A, 0xA80C, 0xA822,
        0xA840, 0xA873, 0xA882, 0xA8B3, 0xA8F2, 0xA8F7, 0xA8FB, 0xA8FB, 0xA8FD, 0xA8FE, 0xA90A,
        0xA925, 0xA930, 0xA946, 0xA960, 0xA97C, 0xA984, 0xA9B2, 0xA9CF, 0xA9CF, 0xA9E0, 0xA9E4,
        0xA9E6, 0xA9EF, 0xA9FA, 0xA9FE, 0xAA00, 0xAA28, 0xAA40, 0xAA42, 0xAA44, 0xAA4B, 0xAA60,
        0xAA76, 0xAA7A, 0xAA7A, 0xAA7E, 0xAAAF, 0xAAB1, 0xAAB1, 0xAAB5, 0xAAB6, 0xAAB9, 0xAABD,
        0xAAC0, 0xAAC0, 0xAAC2, 0xAAC2, 0xAADB, 0xAADD, 0xAAE0, 0xAAEA, 0xAAF2, 0xAAF4, 0xAB01,
        0xAB06, 0xAB09, 0xAB0E, 0xAB11, 0xAB16, 0xAB20, 0xAB26, 0xAB28, 0xAB2E, 0xAB30, 0xAB5A,
        0xAB5C, 0xAB69, 0xAB70, 0xABE2, 0xAC00, 0xD7A3, 0xD7B0, 0xD7C6, 0xD7CB, 0xD7FB, 0xF900,
        0xFA6D, 0xFA70, 0xFAD9, 0xFB00, 0xFB06, 0xFB13, 0xFB17, 0xFB1D, 0xFB1D, 0xFB1F, 0xFB28,
        0xFB2A, 0xFB36, 0xFB38, 0xFB3C, 0xFB3E, 0xFB3E, 0xFB40, 0xFB41, 0xFB43, 0xFB44, 0xFB46,
        0xFBB1, 0xFBD3, 0xFD3D, 0xFD50, 0xFD8F, 0xFD92, 0xFDC7, 0xFDF0, 0xFDFB, 0xFE70, 0xFE74,
        0xFE76, 0xFEFC, 0xFF21, 0xFF3A, 0xFF41, 0xFF5A, 0xFF66, 0xFFBE, 0xFFC2, 0xFFC7, 0xFFCA,
        0xFFCF, 0xFFD2, 0xFFD7, 0xFFDA, 0xFFDC, 0x10000, 0x1000B, 0x1000D, 0x10026, 0x10028,
        0x1003A, 0x1003C, 0x1003D, 0x1003F, 0x1004D, 0x10050, 0x1005D, 0x10080, 0x100FA, 0x10280,
        0x1029C, 0x102A0, 0x102D0, 0x10300, 0x1031F, 0x1032D, 0x10340, 0x10342, 0x10349, 0x10350,
        0x10375, 0x10380, 0x1039D, 0x103A0, 0x103C3, 0x103C8, 0x103CF, 0x10400, 0x1049D, 0x104B0,
        0x104D3, 0x104D8, 0x104FB, 0x10500, 0x10527, 0x10530, 0x10563, 0x10570, 0x1057A, 0x1057C,
        0x1058A, 0x1058C, 0x10592, 0x10594, 0x10595, 0x10597, 0x105A1, 0x105A3, 0x105B1, 0x105B3,
        0x105B9, 0x105BB, 0x105BC, 0x10600, 0x10736, 0x10740, 0x10755, 0x10760, 0x10767, 0x10780,
        0x10785, 0x10787, 0x107B0, 0x107B2, 0x107BA, 0x10800, 0x10805, 0x10808, 0x10808, 0x1080A,
        0x10835, 0x10837, 0x10838, 0x1083C, 0x1083C, 0x1083F, 0x10855, 0x10860, 0x10876, 0x10880,
        0x1089E, 0x108E0, 0x108F2, 0x108F4, 0x108F5, 0x10900, 0x10915, 0x10920, 0x10939, 0x10980,
        0x109B7, 0x109BE, 0x109BF, 0x10A00, 0x10A00, 0x10A10, 0x10A13, 0x10A15, 0x10A17, 0x10A19,
        0x10A35, 0x10A60, 0x10A7C, 0x10A80, 0x10A9C, 0x10AC0, 0x10AC7, 0x10AC9, 0x10AE4, 0x10B00,
        0x10B35, 0x10B40, 0x10B55, 0x10B60, 0x10B72, 0x10B80, 0x10B91, 0x10C00, 0x10C48, 0x10C80,
        0x10CB2, 0x10CC0, 0x10CF2, 0x10D00, 0x10D23, 0x10E80, 0x10EA9, 0x10EB0, 0x10EB1, 0x10F00,
        0x10F1C, 0x10F27, 0x10F27, 0x10F30, 0x10F45, 0x10F70, 0x10F81, 0x10FB0, 0x10FC4, 0x10FE0,
        0x10FF6, 0x11003, 0x11037, 0x11071, 0x11072, 0x11075, 0x11075, 0x11083, 0x110AF, 0x110D0,
        0x110E8, 0x11103, 0x11126, 0x11144, 0x11144, 0x11147, 0x11147, 0x11150, 0x11172, 0x11176,
        0x11176, 0x11183, 0x111B2, 0x111C1, 0x111C4, 0x111DA, 0x111DA, 0x111DC, 0x111DC, 0x11200,
        0x11211, 0x11213, 0x1122B, 0x11280, 0x11286, 0x11288, 0x11288, 0x1128A, 0x1128D, 0x1128F,
        0x1129D, 0x1129F, 0x112A8, 0x112B0, 0x112DE, 0x11305, 0x1130C, 0x1130F, 0x11310, 0x11313,
        0x11328, 0x1132A, 0x11330, 0x11332, 0x11333, 0x11335, 0x11339, 0x1133D, 0x1133D, 0x11350,
        0x11350, 0x1135D, 0x11361, 0x11400, 0x11434, 0x11447, 0x1144A, 0x1145F, 0x11461, 0x11480,
        0x114AF, 0x114C4, 0x114C5, 0x114C7, 0x114C7, 0x11580, 0x115AE, 0x115D8, 0x115DB, 0x11600,
        0x1162F, 0x11644, 0x11644, 0x11680, 0x116AA, 0x116B8, 0x116B8, 0x11700, 0x1171A, 0x11740,
        0x11746, 0x11800, 0x1182B, 0x118A0, 0x118DF, 0x118FF, 0x11906, 0x11909, 0x11909, 0x1190C,
        0x11913, 0x11915, 0x11916, 0x11918, 0x1192F, 0x1193F, 0x1193F, 0x11941, 0x11941, 0x119A0,
        0x119A7, 0x119AA, 0x119D0, 0x119E1, 0x119E1, 0x119E3, 0x119E3, 0x11A00, 0x11A00, 0x11A0B,
        0x11A32, 0x11A3A, 0x11A3A, 0x11A50, 0x11A50, 0x11A5C, 0x11A89, 0x11A9D, 0x11A9D, 0x11AB0,
        0x11AF8, 0x11C00, 0x11C08, 0x11C0A, 0x11C2E, 0x11C40, 0x11C40, 0x11C72, 0x11C8F, 0x11D00,
        0x11D06, 0x11D08, 0x11D09, 0x11D0B, 0x11D30, 0x11D46, 0x11D46, 0x11D60, 0x11D65, 0x11D67,
        0x11D68, 0x11D6A, 0x11D89, 0x11D98, 0x11D98, 0x11EE0, 0x11EF2, 0x11FB0, 0x11FB0, 0x12000,
        0x12399, 0x12480, 0x12543, 0x12F90, 0x12FF0, 0x13000, 0x1342E, 0x14400, 0x14646, 0x16800,
        0x16A38, 0x16A40, 0x16A5E, 0x16A70, 0x16ABE, 0x16AD0, 0x16AED, 0x16B00, 0x16B2F, 0x16B40,
        0x16B43, 0x16B63, 0x16B77, 0x16B7D, 0x16B8F, 0x16E40, 0x16E7F, 0x16F00, 0x16F4A, 0x16F50,
        0x16F50, 0x16F93, 0x16F9F, 0x16FE0, 0x16FE1, 0x16FE3, 0x16FE3, 0x17000, 0x187F7, 0x18800,
        0x18CD5, 0x18D00, 0x18D08, 0x1AFF0, 0x1AFF3, 0x1AFF5, 0x1AFFB, 0x1AFFD, 0x1AFFE, 0x1B000,
        0x1B122, 0x1B150, 0x1B152, 0x1B164, 0x1B167, 0x1B170, 0x1B2FB, 0x1BC00, 0x1BC6A, 0x1BC70,
        0x1BC7C, 0x1BC80, 0x1BC88, 0x1BC90, 0x1BC99, 0x1D400, 0x1D454, 0x1D456, 0x1D49C, 0x1D49E,
        0x1D49F, 0x1D4A2, 0x1D4A2, 0x1D4A5, 0x1D4A6, 0x1D4A9, 0x1D4AC, 0x1D4AE, 0x1D4B9, 0x1D4BB,
        0x1D4BB, 0x1D4BD, 0x1D4C3, 0x1D4C5, 0x1D505, 0x1D507, 0x1D50A, 0x1D50D, 0x1D514, 0x1D516,
        0x1D51C, 0x1D51E, 0x1D539, 0x1D53B, 0x1D53E, 0x1D540, 0x1D544, 0x1D546, 0x1D546, 0x1D54A,
        0x1D550, 0x1D552, 0x1D6A5, 0x1D6A8, 0x1D6C0, 0x1D6C2, 0x1D6DA, 0x1D6DC, 0x1D6FA, 0x1D6FC,
        0x1D714, 0x1D716, 0x1D734, 0x1D736, 0x1D74E, 0x1D750, 0x1D76E, 0x1D770, 0x1D788, 0x1D78A,
        0x1D7A8, 0x1D7AA, 0x1D7C2, 0x1D7C4, 0x1D7CB, 0x1DF00, 0x1DF1E, 0x1E100, 0x1E12C, 0x1E137,
        0x1E13D, 0x1E14E, 0x1E14E, 0x1E290, 0x1E2AD, 0x1E2C0, 0x1E2EB, 0x1E7E0, 0x1E7E6, 0x1E7E8,
        0x1E7EB, 0x1E7ED, 0x1E7EE, 0x1E7F0, 0x1E7FE, 0x1E800, 0x1E8C4, 0x1E900, 0x1E943, 0x1E94B,
        0x1E94B, 0x1EE00, 0x1EE03, 0x1EE05, 0x1EE1F, 0x1EE21, 0x1EE22, 0x1EE24, 0x1EE24, 0x1EE27,
        0x1EE27, 0x1EE29, 0x1EE32, 0x1EE34, 0x1EE37, 0x1EE39, 0x1EE39, 0x1EE3B, 0x1EE3B, 0x1EE42,
        0x1EE42, 0x1EE47, 0x1EE47, 0x1EE49, 0x1EE49, 0x1EE4B, 0x1EE4B, 0x1EE4D, 0x1EE4F, 0x1EE51,
        0x1EE52, 0x1EE54, 0x1EE54, 0x1EE57, 0x1EE57, 0x1EE59, 0x1EE59, 0x1EE5B, 0x1EE5B, 0x1EE5D,
        0x1EE5D, 0x1EE5F, 0x1EE5F, 0x1EE61, 0x1EE62, 0x1EE64, 0x1EE64, 0x1EE67, 0x1EE6A, 0x1EE6C,
        0x1EE72, 0x1EE74, 0x1EE77, 0x1EE79, 0x1EE7C, 0x1EE7E, 0x1EE7E, 0x1EE80, 0x1EE89, 0x1EE8B,
        0x1EE9B, 0x1EEA1, 0x1EEA3, 0x1EEA5, 0x1EEA9, 0x1EEAB, 0x1EEBB, 0x20000, 0x2A6DF, 0x2A700,
        0x2B738, 0x2B740, 0x2B81D, 0x2B820, 0x2CEA1, 0x2CEB0, 0x2EBE0, 0x2F800, 0x2FA1D, 0x30000,
        0x3134A,
    ];
}
