//! The text conversions CPython's C unpickler applies to protocol-0 arguments and strings.
//!
//! Protocol 0 encodes numbers and strings as text lines, and CPython decodes them with a mix
//! of C library and CPython internals (`strtol` with base 0, `PyLong_FromString`,
//! `PyOS_string_to_double`, bytes escapes, `raw-unicode-escape`, UTF-8 with or without
//! `surrogatepass`). Their exact acceptance rules and error texts are what carbon logs, so
//! each is reproduced here on its own terms rather than with Rust's parsers.

use super::bigint::{from_pow2_digits, Int, MagBuilder};
use super::{ExcKind, PyException};

/// CPython's `sys.get_int_max_str_digits()` default (3.11.7): decimal strings longer than
/// this are refused with `ValueError`.
const MAX_STR_DIGITS: usize = 4300;

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn digit_value(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => (b - b'0') as u32,
        b'a'..=b'z' => (b - b'a') as u32 + 10,
        b'A'..=b'Z' => (b - b'A') as u32 + 10,
        _ => 99,
    }
}

/// The part of a line a C string function sees: up to the first NUL.
pub(crate) fn c_str(line: &[u8]) -> &[u8] {
    match line.iter().position(|&b| b == 0) {
        Some(n) => &line[..n],
        None => line,
    }
}

/// Skips leading C whitespace and one sign, as strtol and PyLong_FromString both do: returns
/// where the digits start and whether the number is negative.
fn space_and_sign(s: &[u8]) -> (usize, bool) {
    let mut i = 0;
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    let negative = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    (i, negative)
}

/// glibc `strtol(s, &end, 0)`: returns the value (`None` on `ERANGE`) and the end offset
/// (0 when nothing was converted).
pub(crate) fn c_strtol(s: &[u8]) -> (Option<i64>, usize) {
    let (mut i, negative) = space_and_sign(s);
    let mut base = 10;
    if s.get(i) == Some(&b'0') {
        if matches!(s.get(i + 1), Some(b'x' | b'X'))
            && s.get(i + 2).is_some_and(|&b| digit_value(b) < 16)
        {
            base = 16;
            i += 2;
        } else {
            base = 8;
        }
    }
    let start = i;
    let mut acc: u128 = 0;
    let mut overflow = false;
    while i < s.len() && digit_value(s[i]) < base {
        acc = acc * base as u128 + digit_value(s[i]) as u128;
        if acc > 1u128 << 63 {
            overflow = true;
            acc = 1u128 << 63;
        }
        i += 1;
    }
    if i == start {
        return (Some(0), 0);
    }
    let limit = if negative {
        1u128 << 63
    } else {
        (1u128 << 63) - 1
    };
    if overflow || acc > limit {
        return (None, i);
    }
    let v = if negative {
        (acc as i128).wrapping_neg() as i64
    } else {
        acc as i64
    };
    (Some(v), i)
}

/// `PyLong_FromString(s, NULL, base)` for base 0 or 10, on a C string (`s` holds no NUL).
pub(crate) fn py_long(s: &[u8], base: u32) -> Result<Int, PyException> {
    let orig = s;
    let mut base = base;
    let error = |base: u32| -> PyException {
        let shown = &orig[..orig.len().min(200)];
        match std::str::from_utf8(shown) {
            Ok(text) => {
                let repr: String = crate::python::text::repr(text).chars().take(200).collect();
                PyException::new(
                    ExcKind::ValueError,
                    format!("invalid literal for int() with base {base}: {repr}"),
                )
            }
            Err(e) => utf8_error(shown, e.valid_up_to(), e.error_len()),
        }
    };
    let (mut i, negative) = space_and_sign(s);
    let mut error_if_nonzero = false;
    let second = s.get(i + 1).copied().unwrap_or(0).to_ascii_lowercase();
    if base == 0 {
        base = if s.get(i) != Some(&b'0') {
            10
        } else {
            match second {
                b'x' => 16,
                b'o' => 8,
                b'b' => 2,
                _ => {
                    error_if_nonzero = true;
                    10
                }
            }
        };
    }
    if s.get(i) == Some(&b'0')
        && ((base == 16 && second == b'x')
            || (base == 8 && second == b'o')
            || (base == 2 && second == b'b'))
    {
        i += 2;
        if s.get(i) == Some(&b'_') {
            i += 1;
        }
    }
    if s.get(i) == Some(&b'_') {
        return Err(error(base));
    }
    let mut digits = Vec::new();
    let mut prev = 0u8;
    while i < s.len() && (digit_value(s[i]) < base || s[i] == b'_') {
        if s[i] == b'_' {
            if prev == b'_' {
                return Err(error(base));
            }
        } else {
            digits.push(digit_value(s[i]) as u8);
        }
        prev = s[i];
        i += 1;
    }
    if prev == b'_' || digits.is_empty() {
        return Err(error(base));
    }
    if base == 10 && digits.len() > MAX_STR_DIGITS {
        return Err(PyException::new(
            ExcKind::ValueError,
            format!(
                "Exceeds the limit ({MAX_STR_DIGITS} digits) for integer string conversion: \
                 value has {} digits; use sys.set_int_max_str_digits() to increase the limit",
                digits.len()
            ),
        ));
    }
    let value = match base {
        2 | 8 | 16 => Int::from_mag(negative, from_pow2_digits(&digits, base.trailing_zeros())),
        _ => {
            let mut b = MagBuilder::new();
            for &d in &digits {
                b.mul_add(base, d as u32);
            }
            b.finish(negative)
        }
    };
    if error_if_nonzero {
        base = 0;
        if value != Int::Small(0) {
            return Err(error(base));
        }
    }
    while i < s.len() && is_c_space(s[i]) {
        i += 1;
    }
    if i != s.len() {
        return Err(error(base));
    }
    Ok(value)
}

/// `PyOS_string_to_double(s, &end, OverflowError)`: the longest float prefix of `s` (no
/// leading whitespace, no underscores). `Ok((value, end))`, or the exception it raises.
pub(crate) fn float_prefix(s: &[u8]) -> Result<(f64, usize), PyException> {
    let shown = || String::from_utf8_lossy(&s[..s.len().min(200)]).into_owned();
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let int_start = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa_digits = i - int_start;
    if s.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        let mut j = frac_start;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        if mantissa_digits > 0 || j > frac_start {
            mantissa_digits += j - frac_start;
            i = j;
        }
    }
    if mantissa_digits == 0 {
        // Not a number: maybe inf/infinity/nan, case-insensitively, after an optional sign.
        let rest = &s[int_start..];
        let lower: Vec<u8> = rest
            .iter()
            .take(8)
            .map(|b| b.to_ascii_lowercase())
            .collect();
        let negative = s.first() == Some(&b'-');
        let (v, n) = if lower.starts_with(b"infinity") {
            (f64::INFINITY, 8)
        } else if lower.starts_with(b"inf") {
            (f64::INFINITY, 3)
        } else if lower.starts_with(b"nan") {
            (f64::NAN, 3)
        } else {
            return Err(PyException::new(
                ExcKind::ValueError,
                format!("could not convert string to float: '{}'", shown()),
            ));
        };
        return Ok((if negative { -v } else { v }, int_start + n));
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_start = j;
        while j < s.len() && s[j].is_ascii_digit() {
            j += 1;
        }
        if j > exp_start {
            i = j;
        }
    }
    let text = std::str::from_utf8(&s[..i]).unwrap_or("0");
    let v: f64 = text.parse().unwrap_or(0.0);
    if v.is_infinite() {
        return Err(PyException::new(
            ExcKind::OverflowError,
            format!("value too large to convert to float: '{}'", shown()),
        ));
    }
    Ok((v, i))
}

/// Python's UTF-8 `UnicodeDecodeError` for an invalid sequence at `start` (`len` bytes, or
/// `None` when the input ends inside a sequence).
pub(crate) fn utf8_error(b: &[u8], start: usize, len: Option<usize>) -> PyException {
    let (end, reason) = match len {
        None => (b.len(), "unexpected end of data"),
        Some(1) if !matches!(b[start], 0xc2..=0xf4) => (start + 1, "invalid start byte"),
        Some(n) => (start + n, "invalid continuation byte"),
    };
    let msg = if end - start == 1 {
        format!(
            "'utf-8' codec can't decode byte 0x{:02x} in position {start}: {reason}",
            b[start]
        )
    } else {
        format!(
            "'utf-8' codec can't decode bytes in position {start}-{}: {reason}",
            end - 1
        )
    };
    PyException::new(ExcKind::UnicodeDecodeError, msg)
}

fn is_encoded_surrogate(b: &[u8]) -> bool {
    b.len() >= 3 && b[0] == 0xed && (0xa0..=0xbf).contains(&b[1]) && (0x80..=0xbf).contains(&b[2])
}

/// Checks `b` is UTF-8 (with `surrogatepass`, lone surrogates too), as CPython decodes it.
pub(crate) fn check_utf8(b: &[u8], surrogatepass: bool) -> Result<(), PyException> {
    let mut at = 0;
    loop {
        match std::str::from_utf8(&b[at..]) {
            Ok(_) => return Ok(()),
            Err(e) => {
                let pos = at + e.valid_up_to();
                if surrogatepass && is_encoded_surrogate(&b[pos..]) {
                    at = pos + 3;
                    continue;
                }
                return Err(utf8_error(b, pos, e.error_len()));
            }
        }
    }
}

/// `bytes.decode('ascii')` error text, for `INST` names.
pub(crate) fn check_ascii(b: &[u8]) -> Result<(), PyException> {
    match b.iter().position(|&c| c >= 0x80) {
        None => Ok(()),
        Some(p) => Err(PyException::new(
            ExcKind::UnicodeDecodeError,
            format!(
                "'ascii' codec can't decode byte 0x{:02x} in position {p}: ordinal not in range(128)",
                b[p]
            ),
        )),
    }
}

/// Python 2 string escapes (`PyBytes_DecodeEscape`), for the `STRING` opcode.
pub(crate) fn bytes_escape_decode(s: &[u8]) -> Result<Vec<u8>, PyException> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = s.get(i) else {
            return Err(PyException::new(
                ExcKind::ValueError,
                "Trailing \\ in string",
            ));
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(11),
            b'a' => out.push(7),
            b'0'..=b'7' => {
                let mut v = (e - b'0') as u32;
                for _ in 0..2 {
                    match s.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let hex = (s.get(i), s.get(i + 1));
                match hex {
                    (Some(&a), Some(&b)) if digit_value(a) < 16 && digit_value(b) < 16 => {
                        out.push((digit_value(a) * 16 + digit_value(b)) as u8);
                        i += 2;
                    }
                    _ => {
                        return Err(PyException::new(
                            ExcKind::ValueError,
                            format!("invalid \\x escape at position {}", i - 2),
                        ))
                    }
                }
            }
            _ => {
                out.push(b'\\');
                i -= 1;
            }
        }
    }
    Ok(out)
}

/// Appends one code point (surrogates allowed) as WTF-8.
pub(crate) fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    match cp {
        0..=0x7f => out.push(cp as u8),
        0x80..=0x7ff => out.extend_from_slice(&[0xc0 | (cp >> 6) as u8, 0x80 | (cp & 0x3f) as u8]),
        0x800..=0xffff => out.extend_from_slice(&[
            0xe0 | (cp >> 12) as u8,
            0x80 | (cp >> 6 & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]),
        _ => out.extend_from_slice(&[
            0xf0 | (cp >> 18) as u8,
            0x80 | (cp >> 12 & 0x3f) as u8,
            0x80 | (cp >> 6 & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]),
    }
}

/// The `raw-unicode-escape` codec (the `UNICODE` opcode): bytes are Latin-1 code points
/// except `\uXXXX` and `\UXXXXXXXX`; the result is WTF-8.
pub(crate) fn raw_unicode_escape_decode(s: &[u8]) -> Result<Vec<u8>, PyException> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if c != b'\\' || i >= s.len() {
            push_code_point(&mut out, c as u32);
            continue;
        }
        let start = i - 1;
        let e = s[i];
        i += 1;
        let (count, message) = match e {
            b'u' => (4, "truncated \\uXXXX escape"),
            b'U' => (8, "truncated \\UXXXXXXXX escape"),
            _ => {
                out.push(b'\\');
                push_code_point(&mut out, e as u32);
                continue;
            }
        };
        let mut cp: u32 = 0;
        for _ in 0..count {
            match s.get(i).map(|&b| digit_value(b)) {
                Some(d) if d < 16 => {
                    cp = cp << 4 | d;
                    i += 1;
                }
                _ => return Err(raw_escape_error(start, i, message)),
            }
        }
        if cp > 0x10ffff {
            return Err(raw_escape_error(start, i, "\\Uxxxxxxxx out of range"));
        }
        push_code_point(&mut out, cp);
    }
    Ok(out)
}

fn raw_escape_error(start: usize, end: usize, message: &str) -> PyException {
    let span = if end - start == 1 {
        format!("byte 0x5c in position {start}")
    } else {
        format!("bytes in position {start}-{}", end - 1)
    };
    PyException::new(
        ExcKind::UnicodeDecodeError,
        format!("'rawunicodeescape' codec can't decode {span}: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_like_glibc() {
        assert_eq!(c_strtol(b"010\n"), (Some(8), 3));
        assert_eq!(c_strtol(b"0x10\n"), (Some(16), 4));
        assert_eq!(c_strtol(b" +1\n"), (Some(1), 3));
        assert_eq!(c_strtol(b"0x\n"), (Some(0), 1));
        assert_eq!(c_strtol(b"x\n").1, 0);
        assert_eq!(c_strtol(b"99999999999999999999\n").0, None);
        assert_eq!(c_strtol(b"-9223372036854775808\n").0, Some(i64::MIN));
    }

    #[test]
    fn py_long_messages() {
        assert_eq!(py_long(b"0b1_1\n", 0).ok(), Some(Int::Small(3)));
        assert_eq!(
            py_long(b"010\n", 0).err().map(|e| e.message),
            Some("invalid literal for int() with base 0: '010\\n'".to_string())
        );
        assert_eq!(
            py_long(b"x\n", 0).err().map(|e| e.message),
            Some("invalid literal for int() with base 10: 'x\\n'".to_string())
        );
        assert_eq!(py_long(b" 1 \n", 0).ok(), Some(Int::Small(1)));
    }

    #[test]
    fn float_prefixes() {
        assert_eq!(float_prefix(b"1.5\n").ok(), Some((1.5, 3)));
        assert_eq!(float_prefix(b"1.\n").ok(), Some((1.0, 2)));
        assert_eq!(float_prefix(b"1e\n").ok(), Some((1.0, 1)));
        assert_eq!(
            float_prefix(b"-Infinity\n").ok(),
            Some((f64::NEG_INFINITY, 9))
        );
        assert!(float_prefix(b" 1\n").is_err());
        assert_eq!(
            float_prefix(b"1e999\n").err().map(|e| e.kind),
            Some(ExcKind::OverflowError)
        );
    }
}
