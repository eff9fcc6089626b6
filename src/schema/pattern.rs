//! Section patterns: carbon compiles them with Python's `re` and uses `regex.search(metric)`
//! (found anywhere in the name, not anchored). Carbide compiles them with the `regex` crate.
//!
//! The two dialects agree on what storage schemas use in practice (literals, `.`, `\.`, `^`,
//! `$`, classes, alternation, repetition, groups, `(?P<name>…)`, `(?i)`, Unicode `\d \w \s \b`).
//! Python features the `regex` crate does not support make loading fail with an error that
//! says so, where carbon would have accepted the file:
//! - look-around: `(?=…)`, `(?!…)`, `(?<=…)`, `(?<!…)`;
//! - backreferences: `\1`, `(?P=name)`;
//! - atomic groups `(?>…)`, possessive quantifiers `a*+`, conditionals `(?(1)…|…)`;
//! - `\Z` (write `\z` or `$`), the `(?a)`/`(?L)` flags, `{` as a literal outside a quantifier.
//!
//! Known differences among patterns both accept: Python's `$` also matches before a final
//! `\n` (metric names never contain one); the `regex` crate also accepts syntax Python
//! rejects or reads literally (`\p{…}`, `[[:alpha:]]`, `[a&&b]`, `(?<name>…)`); and it refuses
//! patterns whose compiled size exceeds its limit (e.g. `a{1000}{1000}`) that Python compiles.

use regex::Regex;

/// Compiles a section's pattern, or explains (on one line) why it cannot.
pub(crate) fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| {
        let text = e.to_string();
        // The crate's syntax errors span several lines (pattern, caret, "error: …"); keep the
        // last, which says what is wrong.
        let reason = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or(text.trim())
            .to_string();
        let python_only = ["look-around", "backreferences"]
            .iter()
            .any(|k| reason.contains(k));
        let hint = if python_only {
            " (Python's re supports this but Carbide's regex engine does not; rewrite the \
             pattern without it)"
        } else {
            ""
        };
        format!(
            "invalid regular expression {}: {reason}{hint}",
            crate::python::text::repr(pattern)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line() {
        assert_eq!(
            compile("^a(?=b)").unwrap_err(),
            "invalid regular expression '^a(?=b)': look-around, including look-ahead and \
             look-behind, is not supported (Python's re supports this but Carbide's regex \
             engine does not; rewrite the pattern without it)"
        );
        assert_eq!(
            compile("(a)\\1").unwrap_err(),
            "invalid regular expression '(a)\\\\1': backreferences are not supported (Python's \
             re supports this but Carbide's regex engine does not; rewrite the pattern without \
             it)"
        );
        assert_eq!(
            compile("carbon.(").unwrap_err(),
            "invalid regular expression 'carbon.(': unclosed group"
        );
        assert!(compile("^carbon\\.agents\\.[^.]+\\.(?P<m>cpu|mem)$").is_ok());
    }
}
