//! The few CPython 3.11 string and number semantics that carbon's config handling leaks into
//! its results: `str.isspace`/`strip`, `repr(str)`, `str.isdigit`/`int(str)` and
//! `float(str)`.
//!
//! They live apart from the parsers so that each parser reads like the carbon code path it
//! mirrors, and so that every Python quirk we reproduce is written down once.

/// `str.isspace` for one character. Rust's `char::is_whitespace` is Unicode `White_Space`;
/// CPython also counts the ASCII information separators U+001C..U+001F as whitespace.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()` with no argument.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `str.rstrip()` with no argument.
pub(crate) fn rstrip(s: &str) -> &str {
    s.trim_end_matches(is_space)
}

/// Format characters CPython's `str.isprintable` rejects that `char::is_control` misses (an
/// approximation: enough that a message never hides an invisible character).
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
        | '\u{feff}')
        || (c != ' ' && c.is_whitespace())
}

/// `repr(str)`, so that messages quote names and lines the way Python tracebacks do.
pub(crate) fn repr(s: &str) -> String {
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
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || is_invisible(c) => {
                let n = u32::from(c);
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
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

/// The value of a Unicode decimal digit (general category Nd), which is what Python's `\d`,
/// `str.isdecimal` and `int(str)` accept. Unicode encodes every Nd digit in a run of ten,
/// zero first, so the value is the distance from the start of the run modulo ten.
pub(crate) fn decimal_value(c: char) -> Option<u32> {
    if let Some(d) = c.to_digit(10) {
        return Some(d);
    }
    if c.is_ascii() || !is_unicode_decimal(c) {
        return None;
    }
    let mut start = u32::from(c);
    while let Some(prev) = start.checked_sub(1).and_then(char::from_u32) {
        if !is_unicode_decimal(prev) {
            break;
        }
        start -= 1;
    }
    Some((u32::from(c) - start) % 10)
}

fn is_unicode_decimal(c: char) -> bool {
    use std::sync::OnceLock;
    static DIGIT: OnceLock<Option<regex::Regex>> = OnceLock::new();
    // `\d` in the regex crate is Unicode Nd, the same class Python uses for str patterns.
    DIGIT
        .get_or_init(|| regex::Regex::new(r"^\d$").ok())
        .as_ref()
        .is_some_and(|re| re.is_match(c.encode_utf8(&mut [0; 4])))
}

/// `s.isdigit()` as far as it leads to a successful `int(s)`: non-empty, all decimal digits.
/// (CPython's `isdigit` also accepts digits such as `²` that `int()` then rejects; carbon fails
/// on both, only with another message.)
pub(crate) fn is_decimal(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| decimal_value(c).is_some())
}

/// `int(s)` for a string that passed [`is_decimal`]; `None` when it does not fit in a u128
/// (Python's ints are unbounded, but nothing that large fits a whisper header either).
pub(crate) fn decimal_to_u128(s: &str) -> Option<u128> {
    s.chars().try_fold(0u128, |acc, c| {
        acc.checked_mul(10)?
            .checked_add(u128::from(decimal_value(c)?))
    })
}

/// `float(s)`: surrounding whitespace, a sign, `_` only between digits, Unicode decimal
/// digits, `nan`/`inf`/`infinity` in any case; overflow gives ±inf. `None` is Python's
/// `ValueError`.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let s = strip(s);
    let mut ascii = String::with_capacity(s.len());
    for c in s.chars() {
        match decimal_value(c) {
            Some(d) => ascii.push(char::from(b'0' + d as u8)),
            None if c.is_ascii() => ascii.push(c),
            None => return None,
        }
    }
    let bytes = ascii.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j));
            let after = bytes.get(i + 1);
            if !before.is_some_and(u8::is_ascii_digit) || !after.is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
    }
    let plain: String = ascii.chars().filter(|&c| c != '_').collect();
    // Rust's grammar is Python's decimal grammar except that Rust also takes `infinity` and
    // `inf` (as Python does) and nothing else beyond it; reject what Python rejects first.
    if plain.is_empty() || plain.contains(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    plain.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_uses_python_whitespace() {
        assert_eq!(strip("\u{1c} a b\u{3000}\t"), "a b");
        assert_eq!(strip("\u{feff}a"), "\u{feff}a");
        assert_eq!(rstrip(" a \n\n"), " a");
    }

    #[test]
    fn repr_quotes() {
        assert_eq!(repr("abc"), "'abc'");
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(repr("x\n\u{1}\\"), "'x\\n\\x01\\\\'");
        assert_eq!(repr("é\u{feff}"), "'é\\ufeff'");
    }

    #[test]
    fn digits() {
        assert!(is_decimal("0123"));
        assert!(is_decimal("\u{661}\u{662}"));
        assert_eq!(decimal_to_u128("\u{661}\u{662}"), Some(12));
        assert_eq!(decimal_to_u128("\u{1d7d9}"), Some(1)); // MATHEMATICAL DOUBLE-STRUCK ONE
        assert!(!is_decimal(""));
        assert!(!is_decimal("²"));
        assert!(!is_decimal("1 "));
        assert_eq!(decimal_to_u128(&"9".repeat(40)), None);
    }

    #[test]
    fn floats() {
        assert_eq!(parse_float(" 0.5\n"), Some(0.5));
        assert_eq!(parse_float("1_0.2_5"), Some(10.25));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert_eq!(parse_float("1."), Some(1.0));
        assert_eq!(parse_float("-1E-1"), Some(-0.1));
        assert_eq!(parse_float("1e400"), Some(f64::INFINITY));
        assert!(parse_float("-NaN").is_some_and(f64::is_nan));
        assert_eq!(parse_float("Infinity"), Some(f64::INFINITY));
        assert_eq!(parse_float("\u{661}.5"), Some(1.5));
        for bad in [
            "", "_1", "1_", "1__0", "1._5", "0x1", "1 0", "abc", ".", "e5", "1e",
        ] {
            assert_eq!(parse_float(bad), None, "{bad:?}");
        }
    }
}
