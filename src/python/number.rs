//! CPython 3.11's number parsing: `float(str)`, `int(str)`, `int(str, radix)` and optparse's
//! `type="int"` conversion.
//!
//! carbon parses every plaintext value and timestamp with `float()`, whisper.py's scripts
//! their arguments with `float()`, `int()` and optparse, and carbon's config reader its
//! numbers with `int()` and `float()`, so Python's grammar is the contract: `1_000` and
//! fullwidth or Arabic-Indic digits are valid numbers, U+00A0 around a number is stripped but
//! U+001C is not.
//!
//! Both parsers take CPython's path for non-ASCII input
//! (`_PyUnicode_TransformDecimalAndSpaceToASCII`): Unicode whitespace becomes `' '`, Unicode
//! decimal digits become `'0'..'9'`, anything else non-ASCII fails; then underscores, then
//! the C locale's whitespace (`' '`, `\t\n\v\f\r`) is stripped.
//!
//! Hot path: a plain ASCII number is handed straight to `str::parse::<f64>`, whose accepted
//! language is, for strings without whitespace and `_`, the same as CPython's (both take
//! `inf`/`infinity`/`nan` in any case, `1.`, `.5`, signed exponents; both reject hex) and
//! which rounds correctly. Only when that fails do we take the careful path that rewrites
//! the string the way CPython does before parsing it again.

use super::text::{decimal, is_space};

/// Python's `float(s)` for a `str`; `None` where Python raises `ValueError`.
///
/// Overflow gives ±inf and underflow ±0.0, as in Python (no `OverflowError` for strings).
#[inline]
pub fn parse_float(s: &str) -> Option<f64> {
    if let Some(v) = parse_short_decimal(s.as_bytes()) {
        return Some(v);
    }
    match s.parse::<f64>() {
        Ok(v) => Some(v),
        Err(_) => parse_float_slow(s),
    }
}

/// Exact powers of ten up to 10^15, the scales [`parse_short_decimal`] divides by.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// `[+-]digits[.digits]` with at most 15 digits, which is nearly every value and timestamp
/// carbon receives. The digits fit in an f64 exactly, and so does 10^k for k ≤ 15, so one
/// IEEE division is the correctly rounded result (Clinger's fast path); this skips the
/// general parser's set-up, which is most of its cost on such short inputs.
#[inline]
fn parse_short_decimal(b: &[u8]) -> Option<f64> {
    let (neg, digits) = match b.first()? {
        b'-' => (true, b.get(1..)?),
        b'+' => (false, b.get(1..)?),
        _ => (false, b),
    };
    if digits.len() > 16 {
        return None;
    }
    let mut mantissa = 0u64;
    let mut count = 0usize;
    let mut point = None;
    for (i, &c) in digits.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(c - b'0');
                count += 1;
            }
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    if count == 0 || count > 15 {
        return None;
    }
    let scale = point.map_or(0, |p| digits.len() - p - 1);
    let v = mantissa as f64 / *POW10.get(scale)?;
    Some(if neg { -v } else { v })
}

/// The path CPython takes (`PyFloat_FromString`): Unicode digits and spaces to ASCII, then
/// underscores, then ASCII whitespace, then the C-level parser. Each step's order matters
/// only for inputs that fail anyway, but keeping it makes the equivalence easy to check.
#[cold]
fn parse_float_slow(s: &str) -> Option<f64> {
    let mut ascii = to_ascii_number(s)?;
    if ascii.contains(&b'_') {
        ascii = remove_underscores(&ascii, |b| b.is_ascii_digit())?;
    }
    // float_from_string_inner strips only the C locale's isspace set, so U+001C..U+001F
    // (spaces to `str.split()`) are not stripped here and make the number invalid.
    let trimmed = strip_c_space(&ascii);
    if trimmed.is_empty() {
        return None;
    }
    // Still has to be checked: a NUL or other control byte stays in the buffer and must
    // fail, which `str::parse` does.
    std::str::from_utf8(trimmed).ok()?.parse::<f64>().ok()
}

/// `_PyUnicode_TransformDecimalAndSpaceToASCII`: below U+007F kept as is; whitespace to
/// `' '`; decimal digits to `'0'..'9'`; anything else ends the string with `'?'`, which can
/// never parse, so we stop right there with `None`.
fn to_ascii_number(s: &str) -> Option<Vec<u8>> {
    let mut ascii: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.chars() {
        let cp = c as u32;
        if cp < 0x7f {
            ascii.push(cp as u8);
        } else if is_space(c) {
            ascii.push(b' ');
        } else if let Some(d) = decimal(c) {
            ascii.push(b'0' + d);
        } else {
            return None;
        }
    }
    Some(ascii)
}

/// Strips `Py_ISSPACE`, the C locale's whitespace: `' '` and `\t\n\v\f\r`.
fn strip_c_space(b: &[u8]) -> &[u8] {
    let is_c_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    match b.iter().position(|b| !is_c_space(b)) {
        Some(start) => {
            let end = b
                .iter()
                .rposition(|b| !is_c_space(b))
                .map_or(start, |e| e + 1);
            b.get(start..end).unwrap_or_default()
        }
        None => &[],
    }
}

/// Removes the `_` between digits (`_Py_string_to_number_with_underscores` for floats,
/// `long_from_string` for ints): each `_` must sit between two bytes `is_digit` accepts.
fn remove_underscores(s: &[u8], is_digit: impl Fn(u8) -> bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut prev = 0u8;
    for &b in s {
        if b == b'_' {
            if !is_digit(prev) {
                return None;
            }
        } else {
            if prev == b'_' && !is_digit(b) {
                return None;
            }
            out.push(b);
        }
        prev = b;
    }
    if prev == b'_' {
        return None;
    }
    Some(out)
}

/// `int(x) == -1` for a float, without the exceptions: Python's `int()` truncates toward
/// zero, so this holds for −2 < x ≤ −1. NaN and ±inf are false here (Python raises).
#[inline]
pub fn int_is_minus_one(x: f64) -> bool {
    x > -2.0 && x <= -1.0
}

/// Integers beyond this are clamped: every timestamp that large is equally out of range, and
/// clamping keeps the arithmetic downstream free of overflow.
const INT_CLAMP: i128 = 1 << 62;

/// Python's `int(s, radix)` for radix 2, 8, 10 or 16 (a matching `0x`/`0o`/`0b` prefix is
/// allowed for 2, 8, 16), clamped to ±2^62. Unicode decimal digits and whitespace count as
/// their ASCII counterparts, as in [`parse_float`].
pub fn parse_int_radix(s: &str, radix: u32) -> Option<i64> {
    let ascii = to_ascii_number(s)?;
    let t = strip_c_space(&ascii);
    let (neg, mut body) = match t.first() {
        Some(b'-') => (true, t.get(1..)?),
        Some(b'+') => (false, t.get(1..)?),
        _ => (false, t),
    };
    let prefix: Option<&[u8]> = match radix {
        16 => Some(b"0x"),
        8 => Some(b"0o"),
        2 => Some(b"0b"),
        _ => None,
    };
    if let Some(p) = prefix {
        if body.len() >= 2 && body[..2].eq_ignore_ascii_case(p) {
            body = &body[2..];
            // After a base prefix Python allows one `_` before the first digit.
            if let Some(rest) = body.strip_prefix(b"_") {
                body = rest;
            }
        }
    }
    let is_digit = |b: u8| char::from(b).is_digit(radix);
    let cleaned = remove_underscores(body, is_digit)?;
    if cleaned.is_empty() {
        return None;
    }
    let mut acc: i128 = 0;
    for b in cleaned {
        let d = char::from(b).to_digit(radix)?;
        acc = (acc * i128::from(radix) + i128::from(d)).min(INT_CLAMP);
    }
    let v = if neg { -acc } else { acc };
    i64::try_from(v.clamp(-INT_CLAMP, INT_CLAMP)).ok()
}

/// Python's `int(s)`.
pub fn parse_int(s: &str) -> Option<i64> {
    parse_int_radix(s, 10)
}

/// optparse's `type="int"` conversion: `0x` hex, `0b` binary, a leading `0` octal, else
/// decimal.
pub fn parse_optparse_int(s: &str) -> Option<i64> {
    let head = s.get(..2).map(str::to_ascii_lowercase);
    match head.as_deref() {
        Some("0x") => parse_int_radix(s, 16),
        Some("0b") => {
            let rest = &s[2..];
            parse_int_radix(if rest.is_empty() { "0" } else { rest }, 2)
        }
        _ if s.starts_with('0') => parse_int_radix(s, 8),
        _ => parse_int_radix(s, 10),
    }
}

/// `int(s)` for a string that passed [`super::text::is_decimal`], unbounded as Python's ints
/// are up to u128; `None` when it does not fit (nothing that large fits a whisper header
/// either) or when a character is not a decimal digit.
pub fn decimal_to_u128(s: &str) -> Option<u128> {
    s.chars().try_fold(0u128, |acc, c| {
        acc.checked_mul(10)?.checked_add(u128::from(decimal(c)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        assert_eq!(parse_float(" 0.5\n"), Some(0.5));
        assert_eq!(parse_float(" 1_000.5\n"), Some(1000.5));
        assert_eq!(parse_float("1_0.2_5"), Some(10.25));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("5."), Some(5.0));
        assert_eq!(parse_float("-1E-1"), Some(-0.1));
        assert_eq!(parse_float("1e999"), Some(f64::INFINITY));
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(parse_float("nan").is_some_and(f64::is_nan));
        assert!(parse_float("-NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_float("\u{661}.5"), Some(1.5));
        assert_eq!(parse_float("\u{661}_\u{660}"), Some(10.0));
        assert_eq!(parse_float(" 1\u{a0}"), Some(1.0));
        for bad in [
            "",
            "_1",
            "1_",
            "1__0",
            "1._5",
            "1_e5",
            "0x1",
            "0x10",
            "1 0",
            "abc",
            ".",
            "e5",
            "1e",
            "1\u{1c}",
            "\u{1c}1",
            "1\u{200b}",
        ] {
            assert_eq!(parse_float(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn ints() {
        assert_eq!(parse_int(" +12 "), Some(12));
        assert_eq!(parse_int("1_0"), Some(10));
        assert_eq!(parse_int("1.5"), None);
        assert_eq!(parse_int("99999999999999999999999"), Some(1 << 62));
        assert_eq!(parse_int("\u{661}\u{662}"), Some(12));
        assert_eq!(parse_int("\u{ff11}\u{ff12}"), Some(12));
        assert_eq!(parse_int("\u{a0}-1"), Some(-1));
        assert_eq!(parse_int("1\u{1c}"), None);
        assert_eq!(parse_int("\u{661}.5"), None);
        assert_eq!(parse_int_radix("f_f", 16), Some(255));
        assert_eq!(parse_int_radix("0x_f", 16), Some(15));
        assert_eq!(parse_int_radix("0x", 16), None);
        assert_eq!(parse_optparse_int("0x1f"), Some(31));
        assert_eq!(parse_optparse_int("017"), Some(15));
        assert_eq!(parse_optparse_int("08"), None);
        assert_eq!(parse_optparse_int("0b101"), Some(5));
        assert_eq!(parse_optparse_int("0"), Some(0));
        assert_eq!(parse_optparse_int("-5"), Some(-5));
        assert_eq!(parse_optparse_int("abc"), None);
    }

    #[test]
    fn decimal_strings() {
        assert_eq!(decimal_to_u128("0123"), Some(123));
        assert_eq!(decimal_to_u128("\u{661}\u{662}"), Some(12));
        assert_eq!(decimal_to_u128("\u{1d7d9}"), Some(1)); // MATHEMATICAL DOUBLE-STRUCK ONE
        assert_eq!(decimal_to_u128(&"9".repeat(40)), None);
    }
}
