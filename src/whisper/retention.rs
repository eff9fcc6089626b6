//! whisper.py's retention parser (`parseRetentionDef`), used by the `carbide whisper` tools.
//! carbon's schema files use a stricter parser of their own, in `crate::schema`.

const UNITS: [(&str, u32); 6] = [
    ("seconds", 1),
    ("minutes", 60),
    ("hours", 3600),
    ("days", 86400),
    ("weeks", 604800),
    ("years", 31536000),
];

/// Seconds in the unit whose name starts with `unit` (`s`, `min`, `h`, `d`, `w`, `y`, ...).
pub fn unit_seconds(unit: &str) -> Option<u32> {
    if unit.is_empty() {
        return None;
    }
    UNITS
        .iter()
        .find(|(name, _)| name.starts_with(unit))
        .map(|&(_, s)| s)
}

/// Splits `123abc` into (123, "abc") when it has that shape (`^(\d+)([a-z]+)$`).
fn number_and_unit(s: &str) -> Option<(u64, &str)> {
    let digits = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(digits);
    if n.is_empty() || unit.is_empty() || !unit.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    Some((n.parse().ok()?, unit))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parses `precision:points` as whisper.py does: `60:1440`, `1m:1d`, `10s:30`.
/// Returns (seconds per point, points) or whisper.py's error text.
pub fn parse_retention_def(def: &str) -> Result<(u32, u32), String> {
    let def = def.trim();
    let (precision, points) = def
        .split_once(':')
        .ok_or_else(|| format!("Invalid retention definition '{def}'"))?;
    let precision_secs: u64 = if is_digits(precision) {
        precision
            .parse()
            .map_err(|_| format!("Invalid precision specification '{precision}'"))?
    } else {
        let (n, unit) = number_and_unit(precision)
            .ok_or_else(|| format!("Invalid precision specification '{precision}'"))?;
        let secs = unit_seconds(unit).ok_or_else(|| format!("Invalid unit '{unit}'"))?;
        n.saturating_mul(u64::from(secs))
    };
    let points_n: u64 = if is_digits(points) {
        points
            .parse()
            .map_err(|_| format!("Invalid retention specification '{points}'"))?
    } else {
        let (n, unit) = number_and_unit(points)
            .ok_or_else(|| format!("Invalid retention specification '{points}'"))?;
        let secs = unit_seconds(unit).ok_or_else(|| format!("Invalid unit '{unit}'"))?;
        if precision_secs == 0 {
            return Err(format!("Invalid precision specification '{precision}'"));
        }
        n.saturating_mul(u64::from(secs)) / precision_secs
    };
    let precision_secs = u32::try_from(precision_secs)
        .map_err(|_| format!("Invalid precision specification '{precision}'"))?;
    let points_n = u32::try_from(points_n)
        .map_err(|_| format!("Invalid retention specification '{points}'"))?;
    Ok((precision_secs, points_n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whisper_forms() {
        assert_eq!(parse_retention_def("60:1440"), Ok((60, 1440)));
        assert_eq!(parse_retention_def(" 1m:1d "), Ok((60, 1440)));
        assert_eq!(parse_retention_def("10s:1h"), Ok((10, 360)));
        assert_eq!(parse_retention_def("1min:1y"), Ok((60, 525600)));
        assert_eq!(parse_retention_def("7s:1m"), Ok((7, 8)));
        assert_eq!(
            parse_retention_def("60"),
            Err("Invalid retention definition '60'".into())
        );
        assert_eq!(
            parse_retention_def("1mo:1d"),
            Err("Invalid unit 'mo'".into())
        );
        assert_eq!(
            parse_retention_def("1:2:3"),
            Err("Invalid retention specification '2:3'".into())
        );
        assert_eq!(
            parse_retention_def("1M:1d"),
            Err("Invalid precision specification '1M'".into())
        );
    }
}
