//! graphite-web's time grammar (`render/attime.py`): from/until/now values and the interval
//! strings functions take (`summarize(x, "1h")`, `timeShift(x, "-1d")`).

use super::error::QueryError;

/// A time zone from the tz database (graphite-web uses pytz).
pub type Zone = chrono_tz::Tz;

/// `parseATTime(s, tz, now)` as epoch seconds.
pub fn parse_at_time(s: &str, tz: Zone, now: i64) -> Result<i64, QueryError> {
    let _ = tz;
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    s.parse::<i64>()
        .map_err(|_| QueryError::bad(format!("unsupported time {s:?}")))
}

/// `parseTimeOffset(s)` in seconds (`-5min` is -300; no sign means +).
pub fn parse_time_offset(s: &str) -> Result<i64, QueryError> {
    Err(QueryError::bad(format!("unsupported offset {s:?}")))
}
