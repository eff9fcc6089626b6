//! CPython 3.11's number output: `repr(float)`, printf-style `%f`/`%e`/`%g`, `str(list)` and
//! `json.dumps`, as whisper.py's scripts print them (whisper-fetch's JSON and value lists,
//! whisper-info, whisper-dump) and as whisper.py puts floats into its error messages.

use std::fmt::Write as _;

/// Python's `repr(float)` (also `str(float)` and `"%s" % float`): shortest round-trip digits,
/// `.0` on integral values, exponent form when the decimal exponent is < -4 or >= 16.
pub fn float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits as Python's repr.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if v < 0.0 { "-" } else { "" };
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let mant = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        return format!(
            "{sign}{mant}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    let n = digits.len() as i32;
    let body = if exp < 0 {
        format!("0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    } else if exp + 1 >= n {
        format!("{}{}.0", digits, "0".repeat((exp + 1 - n) as usize))
    } else {
        let (int_part, frac) = digits.split_at((exp + 1) as usize);
        format!("{int_part}.{frac}")
    };
    format!("{sign}{body}")
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

fn json_string(out: &mut String, s: &str) {
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
    let items: Vec<String> = values
        .iter()
        .map(|v| v.map_or_else(|| "None".to_string(), float_repr))
        .collect();
    format!("[{}]", items.join(", "))
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
