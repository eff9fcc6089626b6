//! CPython 3.11's number output: `repr(float)`, printf-style `%f`/`%e`/`%g`, `str(list)` and
//! `json.dumps`, as whisper.py's scripts print them (whisper-fetch's JSON and value lists,
//! whisper-info, whisper-dump) and as whisper.py puts floats into its error messages.

use std::fmt::Write as _;

/// Python's `repr(float)` (also `str(float)` and `"%s" % float`): shortest round-trip digits,
/// `.0` on integral values, exponent form when the decimal exponent is < -4 or >= 16.
pub fn float_repr(v: f64) -> String {
    let mut buf = ReprBuf::new();
    let n = repr_into(v, &mut buf.0);
    String::from_utf8_lossy(&buf.0[..n]).into_owned()
}

/// [`float_repr`] appended to `out`, with no allocation besides `out`'s own growth.
pub fn push_float_repr(out: &mut Vec<u8>, v: f64) {
    let mut buf = ReprBuf::new();
    let n = repr_into(v, &mut buf.0);
    out.extend_from_slice(&buf.0[..n]);
}

/// [`float_repr`] appended to a `String`.
pub fn push_float_repr_str(out: &mut String, v: f64) {
    let mut buf = ReprBuf::new();
    let n = repr_into(v, &mut buf.0);
    // The buffer holds ASCII only, so this never takes the lossy branch.
    out.push_str(std::str::from_utf8(&buf.0[..n]).unwrap_or("nan"));
}

/// An integer in decimal appended to `out` (what `write!(out, "{i}")` gives, without the
/// formatting machinery).
pub fn push_int(out: &mut Vec<u8>, i: i64) {
    let mut buf = [0u8; 20];
    let start = decimal_digits(i.unsigned_abs(), &mut buf);
    if i < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[start..]);
}

/// "00" to "99", so digits come out two at a time.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// `u` in decimal at the start of `dst` (which has room for its up to 20 digits); returns the
/// length. Written in place from the right, so there is no copy of a variable length.
fn write_decimal(mut u: u64, dst: &mut [u8]) -> usize {
    let mut len = 1;
    let mut t = u;
    while t >= 10 {
        t /= 10;
        len += 1;
    }
    let mut pos = len;
    while u >= 100 {
        let pair = (u % 100) as usize * 2;
        u /= 100;
        pos -= 2;
        dst[pos..pos + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if u >= 10 {
        let pair = u as usize * 2;
        dst[pos - 2..pos].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        dst[pos - 1] = b'0' + u as u8;
    }
    len
}

/// `u` in decimal, right-aligned in `buf`; returns where its first digit is.
fn decimal_digits(mut u: u64, buf: &mut [u8; 20]) -> usize {
    let mut pos = buf.len();
    while u >= 100 {
        let pair = (u % 100) as usize * 2;
        u /= 100;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if u >= 10 {
        let pair = u as usize * 2;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        pos -= 1;
        buf[pos] = b'0' + u as u8;
    }
    pos
}

/// The longest repr is `-1.7976931348623157e+308` (24 bytes).
struct ReprBuf([u8; 32]);

impl ReprBuf {
    fn new() -> ReprBuf {
        ReprBuf([0; 32])
    }
}

/// Powers of ten that an f64 holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Writes `repr(v)` at the start of `buf` and returns its length: [`float_repr`] for writers
/// that place it themselves (the render JSON writer copies fixed-size blocks).
pub fn float_repr_into(v: f64, buf: &mut [u8; 32]) -> usize {
    repr_into(v, buf)
}

fn repr_into(v: f64, buf: &mut [u8; 32]) -> usize {
    if v.is_nan() {
        buf[..3].copy_from_slice(b"nan");
        return 3;
    }
    let neg = v.is_sign_negative();
    let a = v.abs();
    if a.is_infinite() {
        return put_signed(buf, neg, b"inf");
    }
    if a == 0.0 {
        return put_signed(buf, neg, b"0.0");
    }
    // Integral values below 10^15 (counters, gauges) are their digits and ".0".
    if a < 1e15 && (a as u64) as f64 == a {
        let mut n = 0;
        if neg {
            buf[0] = b'-';
            n = 1;
        }
        n += write_decimal(a as u64, &mut buf[n..]);
        buf[n..n + 2].copy_from_slice(b".0");
        return n + 2;
    }
    let mut digits = [0u8; 20];
    let (start, exp) = match short_decimal(a) {
        Some((d, k)) => {
            let pos = decimal_digits(d, &mut digits);
            let n = (digits.len() - pos) as i32;
            (pos, n - 1 - k as i32)
        }
        None => match shortest_digits(a, &mut digits) {
            Some((n, exp)) => {
                let (n, exp) = settle_tie(a, &mut digits, n, exp);
                // Shift to the tail of `digits` so both branches share the layout below.
                let at = digits.len() - n;
                digits.copy_within(..n, at);
                (at, exp)
            }
            // Unreachable for finite non-zero values; kept total rather than panicking.
            None => return put_signed(buf, neg, b"nan"),
        },
    };
    layout(buf, neg, &digits[start..], exp)
}

fn put_signed(buf: &mut [u8; 32], neg: bool, text: &[u8]) -> usize {
    let mut n = 0;
    if neg {
        buf[0] = b'-';
        n = 1;
    }
    buf[n..n + text.len()].copy_from_slice(text);
    n + text.len()
}

/// The shortest round-trip decimal of a positive finite `a` as `(d, k)` with `a = d / 10^k`,
/// when it has at most 15 significant digits and `k <= 22`; otherwise `None`.
///
/// Why this is exact: for `d < 2^53` and `k <= 22` both `d` and `10^k` are exact f64s, so the
/// one IEEE division `d / 10^k` is the correctly rounded value of the decimal, i.e. the
/// decimal reads back as `a` exactly when the division gives `a`. A double's rounding interval
/// is narrower (relative width <= 2^-52) than the gap between two decimals of at most 15
/// significant digits (relative >= 10^-15), so a 15-digit decimal that reads back as `a` is
/// the only one of that length or shorter: it is the shortest, which is what repr prints. The
/// first `k` that works has no trailing zero in `d` (else `k - 1` would have worked). Finding
/// `d` by `round(a * 10^k)` is safe: the product is off by at most ~2.3e-16 * d < 0.5.
fn short_decimal(a: f64) -> Option<(u64, u32)> {
    for (k, p) in POW10.iter().enumerate() {
        let m = a * p;
        if m >= 1e15 {
            return None;
        }
        let d = m.round();
        if d / p == a {
            return Some((d as u64, k as u32));
        }
    }
    None
}

/// A `fmt::Write` into a fixed stack buffer (Rust's `{:e}` of an f64 fits in 32 bytes).
struct StackWriter {
    buf: [u8; 32],
    len: usize,
}

impl std::fmt::Write for StackWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(std::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Shortest round-trip digits of a positive finite `a` from Rust's `{:e}` (the same digits as
/// Python's repr), written to the start of `digits`: `(count, decimal exponent)`.
fn shortest_digits(a: f64, digits: &mut [u8; 20]) -> Option<(usize, i32)> {
    let mut w = StackWriter {
        buf: [0; 32],
        len: 0,
    };
    write!(w, "{a:e}").ok()?;
    let text = &w.buf[..w.len];
    let e_at = text.iter().position(|&b| b == b'e')?;
    let mut n = 0;
    for &b in &text[..e_at] {
        if b.is_ascii_digit() {
            *digits.get_mut(n)? = b;
            n += 1;
        }
    }
    let exp: i32 = std::str::from_utf8(&text[e_at + 1..]).ok()?.parse().ok()?;
    (n > 0).then_some((n, exp))
}

/// `a` exactly as `n * 10^p` when that takes at most 18 significant digits (`n` has no
/// trailing zero), from its binary form `m * 2^e`.
fn exact_short_decimal(a: f64) -> Option<(u64, i32)> {
    const LIMIT: u128 = 1_000_000_000_000_000_000;
    let bits = a.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (mut m, mut e) = if biased == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), biased - 1075)
    };
    if m == 0 {
        return None;
    }
    let tz = m.trailing_zeros();
    m >>= tz;
    e += tz as i32;
    // m is odd now, so a product with powers of five has no trailing decimal zero.
    let (n, p) = if e >= 0 {
        let mut fives = 0;
        while m % 5 == 0 {
            m /= 5;
            fives += 1;
        }
        if e >= fives {
            let shift = (e - fives) as u32;
            if shift >= 64 {
                return None;
            }
            ((m as u128) << shift, fives)
        } else {
            (m as u128 * 5u128.pow((fives - e) as u32), e)
        }
    } else {
        let k = -e;
        // 5^27 alone has 19 digits.
        if k > 26 {
            return None;
        }
        (m as u128 * 5u128.pow(k as u32), e)
    };
    (n < LIMIT).then_some((n as u64, p))
}

/// Rust's shortest digits break an exact tie between two equally short, equally close
/// decimals upwards; CPython's dtoa takes the one with the even last digit. A tie needs `a`'s
/// exact decimal to be one digit longer than the shortest and end in 5, which only happens
/// for values that need 16 or 17 digits (e.g. 1000000000000000.25 is "1000000000000000.2").
fn settle_tie(a: f64, digits: &mut [u8; 20], n: usize, exp: i32) -> (usize, i32) {
    let Some((exact, p)) = exact_short_decimal(a) else {
        return (n, exp);
    };
    if exact % 10 != 5 || decimal_len(exact) != n + 1 {
        return (n, exp);
    }
    let below = exact / 10;
    let above = below + 1;
    let reads_back = |c: u64| {
        let mut w = StackWriter {
            buf: [0; 32],
            len: 0,
        };
        write!(w, "{c}e{}", p + 1).is_ok()
            && std::str::from_utf8(&w.buf[..w.len])
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                == Some(a)
    };
    let chosen = match (reads_back(below), reads_back(above)) {
        (true, true) if below % 2 == 0 => below,
        (true, true) => above,
        (true, false) => below,
        (false, true) => above,
        (false, false) => return (n, exp),
    };
    let mut c = chosen;
    let mut q = p + 1;
    while c % 10 == 0 && c != 0 {
        c /= 10;
        q += 1;
    }
    let len = decimal_len(c);
    let mut u = c;
    for slot in digits[..len].iter_mut().rev() {
        *slot = b'0' + (u % 10) as u8;
        u /= 10;
    }
    (len, len as i32 - 1 + q)
}

fn decimal_len(mut u: u64) -> usize {
    let mut len = 1;
    while u >= 10 {
        u /= 10;
        len += 1;
    }
    len
}

/// Python's layout of significant `digits` (no trailing zeros past the point) whose first digit
/// has decimal exponent `exp`.
fn layout(buf: &mut [u8; 32], neg: bool, digits: &[u8], exp: i32) -> usize {
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        buf[n..n + bytes.len()].copy_from_slice(bytes);
        n += bytes.len();
    };
    if neg {
        put(b"-");
    }
    let count = digits.len() as i32;
    if !(-4..16).contains(&exp) {
        put(&digits[..1]);
        if count > 1 {
            put(b".");
            put(&digits[1..]);
        }
        put(if exp < 0 { b"e-" } else { b"e+" });
        let e = exp.unsigned_abs();
        if e >= 100 {
            put(&[b'0' + (e / 100) as u8]);
        }
        put(&[b'0' + (e / 10 % 10) as u8, b'0' + (e % 10) as u8]);
    } else if exp < 0 {
        put(b"0.");
        for _ in 0..(-exp - 1) {
            put(b"0");
        }
        put(digits);
    } else if exp + 1 >= count {
        put(digits);
        for _ in 0..(exp + 1 - count) {
            put(b"0");
        }
        put(b".0");
    } else {
        let (int_part, frac) = digits.split_at((exp + 1) as usize);
        put(int_part);
        put(b".");
        put(frac);
    }
    n
}

/// Python's `%` handling of NaN and infinities for the f/e/g conversions (no sign on NaN).
fn non_finite(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("nan".to_string())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "inf" } else { "-inf" }.to_string())
    } else {
        None
    }
}

/// printf `%.<prec>f`. Rust's fixed-precision formatting is exact and rounds ties to even on
/// the binary value, as glibc and CPython do.
pub fn printf_f(v: f64, prec: usize) -> String {
    non_finite(v).unwrap_or_else(|| format!("{v:.prec$}"))
}

/// printf `%.<prec>e`: at least two exponent digits, always signed.
pub fn printf_e(v: f64, prec: usize) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    let s = format!("{v:.prec$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    format!(
        "{mantissa}e{}{:02}",
        if exp < 0 { '-' } else { '+' },
        exp.abs()
    )
}

/// printf `%.<prec>g` (without `#`): `%e` or `%f` by the exponent after rounding, trailing
/// zeros removed.
pub fn printf_g(v: f64, prec: usize) -> String {
    if let Some(s) = non_finite(v) {
        return s;
    }
    let p = prec.max(1);
    let exp: i64 = if v == 0.0 {
        0
    } else {
        let s = format!("{:.*e}", p - 1, v);
        s.split_once('e')
            .and_then(|(_, e)| e.parse().ok())
            .unwrap_or(0)
    };
    if exp >= -4 && exp < p as i64 {
        let s = format!("{:.*}", (p as i64 - 1 - exp) as usize, v);
        strip_fraction_zeros(&s).to_string()
    } else {
        let s = printf_e(v, p - 1);
        match s.split_once('e') {
            Some((m, e)) => format!("{}e{}", strip_fraction_zeros(m), e),
            None => s,
        }
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A value as Python's `json.dumps` sees it; objects keep their insertion order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// `json.dumps(value, indent=indent, separators=(item_sep, key_sep))` with the default
    /// `ensure_ascii=True` and `allow_nan=True`.
    pub fn dumps(&self, indent: usize, item_sep: &str, key_sep: &str) -> String {
        let mut out = String::new();
        self.write(&mut out, 0, indent, item_sep, key_sep);
        out
    }

    fn write(&self, out: &mut String, level: usize, indent: usize, item_sep: &str, key_sep: &str) {
        let newline = |out: &mut String, level: usize| {
            out.push('\n');
            out.push_str(&" ".repeat(indent * level));
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Int(i) => out.push_str(&i.to_string()),
            Json::Float(f) if f.is_finite() => push_float_repr_str(out, *f),
            Json::Float(f) => out.push_str(&json_float(*f)),
            Json::Str(s) => json_string(out, s),
            Json::List(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(item_sep);
                    }
                    newline(out, level + 1);
                    item.write(out, level + 1, indent, item_sep, key_sep);
                }
                newline(out, level);
                out.push(']');
            }
            Json::Object(fields) => {
                if fields.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(item_sep);
                    }
                    newline(out, level + 1);
                    json_string(out, k);
                    out.push_str(key_sep);
                    v.write(out, level + 1, indent, item_sep, key_sep);
                }
                newline(out, level);
                out.push('}');
            }
        }
    }
}

/// `json`'s float encoding: `float.__repr__`, or `NaN`/`Infinity`/`-Infinity`.
pub fn json_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        float_repr(f)
    }
}

/// `json.dumps` string encoding with `ensure_ascii=True`.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `str(list)` of optional floats, as whisper-fetch.py prints values before it
/// replaces `None` with `null`.
pub fn list_repr(values: &[Option<f64>]) -> String {
    let mut out = String::with_capacity(2 + values.len() * 8);
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match v {
            Some(x) => push_float_repr_str(&mut out, *x),
            None => out.push_str("None"),
        }
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases: [(f64, &str); 16] = [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (f64::NAN, "nan"),
            (f64::NEG_INFINITY, "-inf"),
            (5e-324, "5e-324"),
            (f64::from(0.1_f32), "0.10000000149011612"),
            (1e22, "1e+22"),
            (-355.325502, "-355.325502"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (12.5, "12.5"),
        ];
        for (v, want) in cases {
            assert_eq!(float_repr(v), want, "{v:e}");
        }
    }

    #[test]
    fn printf_matches_c() {
        assert_eq!(printf_f(0.1, 6), "0.100000");
        assert_eq!(printf_f(-0.0, 6), "-0.000000");
        assert_eq!(printf_f(-0.01, 1), "-0.0");
        assert_eq!(printf_f(0.125, 2), "0.12");
        assert_eq!(printf_f(-f64::NAN, 6), "nan");
        assert_eq!(printf_f(f64::NEG_INFINITY, 6), "-inf");
        assert_eq!(printf_f(1756.0 / 1024.0, 3), "1.715");
        assert_eq!(printf_g(f64::from(0.1_f32), 6), "0.1");
        assert_eq!(printf_g(0.5, 6), "0.5");
        assert_eq!(printf_g(0.0, 6), "0");
        assert_eq!(printf_g(5.0, 35), "5");
        assert_eq!(printf_g(0.1, 35), "0.1000000000000000055511151231257827");
        assert_eq!(
            printf_g(1e300, 35),
            "1.0000000000000000525047602552044202e+300"
        );
        assert_eq!(
            printf_g(1e-5, 35),
            "1.0000000000000000818030539140313095e-05"
        );
        assert_eq!(printf_g(1e35, 35), "99999999999999996863366107917975552");
        assert_eq!(
            printf_g(1e36, 35),
            "1.000000000000000042420637374017962e+36"
        );
        assert_eq!(printf_g(123456.0, 6), "123456");
        assert_eq!(printf_g(1234567.0, 6), "1.23457e+06");
        assert_eq!(printf_g(0.0001, 6), "0.0001");
        assert_eq!(printf_g(f64::INFINITY, 35), "inf");
        assert_eq!(printf_e(1.0, 2), "1.00e+00");
    }

    #[test]
    fn list_and_json() {
        assert_eq!(
            list_repr(&[None, Some(1e17), Some(0.1)]),
            "[None, 1e+17, 0.1]"
        );
        let v = Json::Object(vec![
            (
                "a".into(),
                Json::List(vec![Json::Float(f64::NAN), Json::Int(1)]),
            ),
            ("b".into(), Json::List(vec![])),
            ("c".into(), Json::Str("é\u{1}".into())),
        ]);
        assert_eq!(
            v.dumps(2, ",", ": "),
            "{\n  \"a\": [\n    NaN,\n    1\n  ],\n  \"b\": [],\n  \"c\": \"\\u00e9\\u0001\"\n}"
        );
    }
}
