//! carbon's retention parser (`carbon.util.parseRetentionDef`), which storage-schemas.conf
//! uses. It is stricter than whisper.py's (`crate::whisper::retention`): exactly one `:`,
//! single-letter units only, so `1min:1d` that whisper accepts stops carbon at startup. Both
//! parsers are kept so that each front end accepts exactly what its Python original did.

use crate::python;

/// Seconds per carbon unit letter.
fn unit_seconds(unit: &str) -> Option<u128> {
    Some(match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        "w" => 604800,
        "y" => 31536000,
        _ => return None,
    })
}

/// A number, or a number and a unit, as carbon reads either half of a retention.
enum Amount {
    /// Digits only (`str.isdigit`).
    Plain(Option<u128>),
    /// `^(\d+)([a-z]+)$`: the count, and the unit's length in seconds.
    Timed(Option<u128>, u128),
}

/// Reads one half. `None` means it has neither shape (carbon's "Invalid ... specification").
fn amount(text: &str) -> Option<Result<Amount, String>> {
    if python::text::is_decimal(text) {
        return Some(Ok(Amount::Plain(python::number::decimal_to_u128(text))));
    }
    // Python's `$` also matches before one final newline, which a multi-line value can put
    // at the end of the precision: `retentions = 1s` + an indented `:1d` is accepted by carbon.
    let body = text.strip_suffix('\n').unwrap_or(text);
    let digits_end = body
        .char_indices()
        .find(|&(_, c)| python::text::decimal(c).is_none())?
        .0;
    let (count, unit) = body.split_at(digits_end);
    if count.is_empty() || unit.is_empty() || !unit.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    let Some(seconds) = unit_seconds(unit) else {
        return Some(Err(format!("Invalid unit '{unit}'")));
    };
    Some(Ok(Amount::Timed(
        python::number::decimal_to_u128(count),
        seconds,
    )))
}

/// `int(a / b)` where `/` is Python's true division: the quotient correctly rounded to an f64,
/// then truncated. Done in integers because the rounding can carry into the next integer
/// (e.g. when `b` is above 2^22 and the remainder is within 2^-22 of it).
fn python_int_true_div(a: u128, b: u128) -> u128 {
    let (q, r) = (a / b, a % b);
    if q == 0 || r == 0 || q >= 1 << 53 {
        // Below 1 the gap to 1 is far wider than f64 rounding for any b that fits u32 (b is a
        // precision); from 2^53 on the result is out of whisper's range anyway.
        return q;
    }
    // The f64 grid around q has spacing 2^-k; a / b rounds up to q + 1 when it is within half
    // a step of it (a tie rounds up too: q + 1 is the even neighbour).
    let k = 52 - (127 - q.leading_zeros());
    let gap = b - r;
    match gap.checked_shl(k + 1) {
        Some(scaled) if scaled <= b && scaled >> (k + 1) == gap => q + 1,
        _ => q,
    }
}

/// carbon's `parseRetentionDef`: `precision:points`, each a number or a number with one of
/// the units `s m h d w y`; points with a unit are a duration divided by the precision.
/// Returns (seconds per point, points) or carbon's error text (`Invalid unit 'x'`, `Invalid
/// precision specification '…'`, `Invalid retention specification '…'`, Python's unpacking
/// errors for a wrong number of `:`). Two failures are Carbide's own: a precision of 0 with
/// points in time units (`division by zero`, Python's ZeroDivisionError) and values that do
/// not fit whisper's 32-bit header fields (Python would accept them here and fail at create).
pub fn parse_carbon_retention(def: &str) -> Result<(u32, u32), String> {
    let parts: Vec<&str> = python::text::strip(def).split(':').collect();
    let (precision_text, points_text) = match parts.as_slice() {
        [precision, points] => (*precision, *points),
        [_] => return Err("not enough values to unpack (expected 2, got 1)".to_string()),
        _ => return Err("too many values to unpack (expected 2)".to_string()),
    };
    let precision = match amount(precision_text) {
        Some(Ok(Amount::Plain(n))) => n,
        Some(Ok(Amount::Timed(n, unit))) => n.and_then(|n| n.checked_mul(unit)),
        Some(Err(e)) => return Err(e),
        None => {
            return Err(format!(
                "Invalid precision specification '{precision_text}'"
            ))
        }
    };
    let points = match amount(points_text) {
        Some(Ok(Amount::Plain(n))) => n,
        Some(Ok(Amount::Timed(n, unit))) => match precision {
            Some(0) => return Err("division by zero".to_string()),
            Some(p) => n
                .and_then(|n| n.checked_mul(unit))
                .map(|d| python_int_true_div(d, p)),
            None => None,
        },
        Some(Err(e)) => return Err(e),
        None => return Err(format!("Invalid retention specification '{points_text}'")),
    };
    let fits = |n: Option<u128>| n.and_then(|n| u32::try_from(n).ok());
    let precision = fits(precision).ok_or_else(|| {
        format!("precision '{precision_text}' is more than whisper's 4294967295 seconds")
    })?;
    let points = fits(points)
        .ok_or_else(|| format!("'{points_text}' is more than whisper's 4294967295 points"))?;
    Ok((precision, points))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carbon_forms() {
        assert_eq!(parse_carbon_retention("60:1440"), Ok((60, 1440)));
        assert_eq!(parse_carbon_retention(" 10s:1d "), Ok((10, 8640)));
        assert_eq!(parse_carbon_retention("60s:1d"), Ok((60, 1440)));
        assert_eq!(parse_carbon_retention("7s:1m"), Ok((7, 8)));
        assert_eq!(parse_carbon_retention("1h:5y"), Ok((3600, 43800)));
        assert_eq!(parse_carbon_retention("1w:520"), Ok((604800, 520)));
        assert_eq!(parse_carbon_retention("060:01"), Ok((60, 1)));
        assert_eq!(parse_carbon_retention("1s\n:1d"), Ok((1, 86400)));
        assert_eq!(parse_carbon_retention("\u{661}m:\u{662}h"), Ok((60, 120)));
    }

    #[test]
    fn carbon_errors() {
        let err = |s: &str| parse_carbon_retention(s).unwrap_err();
        assert_eq!(err("1min:1d"), "Invalid unit 'min'");
        assert_eq!(err("1M:1d"), "Invalid precision specification '1M'");
        assert_eq!(err("60:1mo"), "Invalid unit 'mo'");
        assert_eq!(err("60:1D"), "Invalid retention specification '1D'");
        assert_eq!(err("60 : 1d"), "Invalid precision specification '60 '");
        assert_eq!(err("60\n:1d"), "Invalid precision specification '60\n'");
        assert_eq!(err(""), "not enough values to unpack (expected 2, got 1)");
        assert_eq!(err("60"), "not enough values to unpack (expected 2, got 1)");
        assert_eq!(err("1:2:3"), "too many values to unpack (expected 2)");
        assert_eq!(err(":1"), "Invalid precision specification ''");
        assert_eq!(err("-1:1"), "Invalid precision specification '-1'");
        assert_eq!(err("0:1d"), "division by zero");
        assert_eq!(err("0s:1d"), "division by zero");
        assert_eq!(err("1y:1x"), "Invalid unit 'x'");
        assert_eq!(err("1x:1y"), "Invalid unit 'x'");
        assert_eq!(
            err("4294967296:1"),
            "precision '4294967296' is more than whisper's 4294967295 seconds"
        );
        assert_eq!(
            err("1:4294967296"),
            "'4294967296' is more than whisper's 4294967295 points"
        );
        assert_eq!(
            err("1:200y"),
            "'200y' is more than whisper's 4294967295 points"
        );
        assert_eq!(parse_carbon_retention("0:5"), Ok((0, 5)));
    }

    #[test]
    fn true_division_rounding() {
        assert_eq!(python_int_true_div(60, 7), 8);
        assert_eq!(python_int_true_div(86400, 60), 1440);
        // (2^53 - 1) / (2^22 + 1)... exercised against Python's int(a / b):
        let cases: [(u128, u128, u128); 4] = [
            (9_007_199_254_740_991, 4_194_305, 2_147_483_136),
            (18_014_398_509_481_983, 4_294_967_295, 4_194_304),
            (
                4_294_967_295 * 4_294_967_295 - 1,
                4_294_967_295,
                4_294_967_295,
            ),
            (31_536_000 * 7, 31_536_001, 6),
        ];
        for (a, b, want) in cases {
            assert_eq!(python_int_true_div(a, b), want, "{a}/{b}");
        }
    }
}
