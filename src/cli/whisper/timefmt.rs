//! Local-time rendering for `--pretty`, as Python's `time.ctime` and `time.strftime` do it.
//!
//! whisper-fetch.py and whisper-dump.py print timestamps through the C library's local time
//! (TZ, /etc/localtime); calling the same libc functions is the only way to agree with them on
//! every zone rule, so this wraps `localtime_r` and `strftime`.

use std::ffi::CString;

extern "C" {
    // Not exported by the libc crate; POSIX, and what CPython's time module calls at import.
    fn tzset();
}

fn local_tm(t: i64) -> Option<libc::tm> {
    let t = libc::time_t::try_from(t).ok()?;
    // SAFETY: tzset only reads TZ and the zone files; localtime_r writes into our own `tm`,
    // which is plain data and valid when zeroed.
    unsafe {
        tzset();
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        Some(tm)
    }
}

/// Python's `time.ctime(t)`: `Thu Jan  1 00:00:00 1970`, English names, year unpadded.
pub fn ctime(t: i64) -> Option<String> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let tm = local_tm(t)?;
    Some(format!(
        "{} {}{:>3} {:02}:{:02}:{:02} {}",
        DAYS.get(tm.tm_wday as usize)?,
        MONTHS.get(tm.tm_mon as usize)?,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        i64::from(tm.tm_year) + 1900
    ))
}

/// Python's `time.strftime(fmt, time.localtime(t))`: the buffer doubles from 1024 bytes until
/// the result is non-empty or reaches 256 times the format's length, so a format that renders
/// to nothing gives "".
pub fn strftime(fmt: &str, t: i64) -> Option<String> {
    let tm = local_tm(t)?;
    let cfmt = CString::new(fmt).ok()?;
    let limit = 256 * fmt.len();
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` has `size` writable bytes, `cfmt` is NUL-terminated and `tm` was filled
        // by localtime_r.
        let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), size, cfmt.as_ptr(), &tm) };
        if n > 0 || size >= limit {
            buf.truncate(n);
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        size += size;
    }
}
