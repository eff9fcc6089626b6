//! carbon's config-file dialect: Python 3.11 `configparser.ConfigParser` with its defaults, plus
//! carbon's `OrderedConfigParser` section order.
//!
//! Both schema files are read by this one dialect, and its corners decide what a file means:
//! an indented line continues the previous value (even after a blank line, so an indented
//! `retentions =` can silently become part of `pattern`), keys are lowercased, `%` is
//! interpolation, and the sections carbon visits come from a separate line scan that can
//! disagree with the parser. Reproducing the parser's state machine line by line is the only
//! way to get the same answers, so this module follows it closely and keeps the line number of
//! every section and key for messages.
//!
//! Where Carbide's message differs from Python's exception text it still names the same
//! problem; which error wins when a file has several follows Python (duplicates and a missing
//! first section header stop the read at once, malformed lines are reported after the scan).

use std::collections::{HashMap, HashSet};

use super::SchemaError;
use crate::python;

/// configparser's `MAX_INTERPOLATION_DEPTH`.
const MAX_INTERPOLATION_DEPTH: usize = 10;

/// Python would build an interpolated value of any size (and exhaust memory on a file whose
/// keys each reference the next one many times); Carbide stops at this length instead.
const MAX_INTERPOLATED_LEN: usize = 1 << 20;

/// The name configparser reserves for values inherited by every section.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// One `key = value` after continuation lines are joined (`\n`) and the whole is right-stripped;
/// not yet interpolated.
#[derive(Clone, Debug)]
struct RawOption {
    key: String,
    value: String,
    line: usize,
}

#[derive(Clone, Debug)]
struct ParsedSection {
    options: Vec<RawOption>,
}

/// A parsed file: configparser's sections and defaults, and carbon's own section order.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    file: String,
    defaults: Vec<RawOption>,
    sections: Vec<ParsedSection>,
    /// Section name → index in `sections`, so large files stay linear.
    index: HashMap<String, usize>,
    order: Vec<(String, usize)>,
}

/// One interpolated value of a section, with the line of the key that gave it (a `[DEFAULT]`
/// line when the section inherits it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// Splits text into lines the way Python's text files iterate with universal newlines
/// (`\n`, `\r\n` and a lone `\r` all end a line). Yields (1-based number, line without its end).
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text;
    let mut number = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        number += 1;
        let (line, next) = match rest.find(['\n', '\r']) {
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                (&rest[..i], &rest[i + skip..])
            }
            None => (rest, ""),
        };
        rest = next;
        Some((number, line))
    })
}

/// configparser's `SECTCRE` (`\[(?P<header>.+)\]`, matched at the start of the stripped line):
/// greedy, so the header runs to the **last** `]` and anything after it is ignored.
fn section_header(value: &str) -> Option<&str> {
    let body = value.strip_prefix('[')?;
    let end = body.rfind(']')?;
    (end > 0).then(|| &body[..end])
}

/// Where the parser is writing: `[DEFAULT]` or the i-th section.
#[derive(Clone, Copy)]
enum Target {
    Defaults,
    Section(usize),
}

impl ConfigFile {
    /// Parses `text` as `ConfigParser.read` followed by carbon's section scan would. `file`
    /// names the file in messages.
    pub fn parse(file: &str, text: &str) -> Result<ConfigFile, SchemaError> {
        let mut config = ConfigFile {
            file: file.to_string(),
            defaults: Vec::new(),
            sections: Vec::new(),
            index: HashMap::new(),
            order: Vec::new(),
        };
        // Continuation lines are collected per option and joined at the end, as configparser does.
        let mut pending: Vec<(Target, usize, Vec<String>)> = Vec::new();
        let mut target: Option<Target> = None;
        let mut section_name = String::new();
        // Index into `pending` of the option continuation lines go to; `None` after a header.
        // An option with an empty name never takes continuations (Python tests it for truth).
        let mut option: Option<(usize, bool)> = None;
        let mut indent_level = 0usize;
        let mut seen_options: HashSet<(String, String)> = HashSet::new();
        let mut bad_lines: Vec<(usize, &str)> = Vec::new();

        for (number, line) in lines(text) {
            let stripped = python::text::strip(line);
            let is_comment = stripped.starts_with('#') || stripped.starts_with(';');
            let value = if is_comment { "" } else { stripped };
            if value.is_empty() {
                // A blank line inside a value is kept (and trailing ones stripped at the end);
                // a comment line is dropped without ending the value.
                if !is_comment && target.is_some() {
                    if let Some((i, true)) = option {
                        pending[i].2.push(String::new());
                    }
                }
                continue;
            }
            let indent = line
                .chars()
                .take_while(|&c| python::text::is_space(c))
                .count();
            if let (Some(_), Some((i, true))) = (target, option) {
                if indent > indent_level {
                    pending[i].2.push(value.to_string());
                    continue;
                }
            }
            indent_level = indent;
            if let Some(name) = section_header(value) {
                // A single read sees each section once; configparser's strict mode refuses a
                // second header for it (but not for DEFAULT, which is not a section to it).
                if config.index.contains_key(name) {
                    return Err(SchemaError::at(
                        file,
                        number,
                        format!("section {} already exists", python::text::repr(name)),
                    ));
                } else if name == DEFAULT_SECTION {
                    target = Some(Target::Defaults);
                } else {
                    config.sections.push(ParsedSection {
                        options: Vec::new(),
                    });
                    config
                        .index
                        .insert(name.to_string(), config.sections.len() - 1);
                    target = Some(Target::Section(config.sections.len() - 1));
                }
                section_name = name.to_string();
                option = None;
                continue;
            }
            let Some(current) = target else {
                return Err(SchemaError::at(
                    file,
                    number,
                    format!(
                        "File contains no section headers: {} comes before any [section]",
                        python::text::repr(line)
                    ),
                ));
            };
            let Some(delimiter) = value.find(['=', ':']) else {
                bad_lines.push((number, line));
                continue;
            };
            let raw_key = python::text::rstrip(&value[..delimiter]);
            if raw_key.is_empty() {
                // Python records the error, then carries on and stores the option anyway.
                bad_lines.push((number, line));
            }
            let key = raw_key.to_lowercase();
            if !seen_options.insert((section_name.clone(), key.clone())) {
                return Err(SchemaError::at(
                    file,
                    number,
                    format!(
                        "option {} in section {} already exists",
                        python::text::repr(&key),
                        python::text::repr(&section_name)
                    ),
                ));
            }
            let first = python::text::strip(&value[delimiter + 1..]).to_string();
            let options = match current {
                Target::Defaults => &mut config.defaults,
                Target::Section(i) => &mut config.sections[i].options,
            };
            options.push(RawOption {
                key: key.clone(),
                value: String::new(),
                line: number,
            });
            pending.push((current, options.len() - 1, vec![first]));
            option = Some((pending.len() - 1, !key.is_empty()));
        }

        for (target, index, parts) in pending {
            let options = match target {
                Target::Defaults => &mut config.defaults,
                Target::Section(i) => &mut config.sections[i].options,
            };
            if let Some(option) = options.get_mut(index) {
                option.value = python::text::rstrip(&parts.join("\n")).to_string();
            }
        }

        if let Some(&(number, line)) = bad_lines.first() {
            let more = match bad_lines.len() {
                1 => String::new(),
                2 => " (and 1 more bad line)".to_string(),
                n => format!(" (and {} more bad lines)", n - 1),
            };
            return Err(SchemaError::at(
                file,
                number,
                format!(
                    "parsing error: {} is not a [section], key = value, comment or indented \
                     continuation{more}",
                    python::text::repr(line)
                ),
            ));
        }

        // carbon's OrderedConfigParser: the sections it visits, in order, are every stripped
        // line that starts with `[` and ends with `]`, whatever configparser made of it.
        config.order = lines(text)
            .filter_map(|(number, line)| {
                let s = python::text::strip(line);
                let inner = s.strip_prefix('[')?.strip_suffix(']')?;
                Some((inner.to_string(), number))
            })
            .collect();
        Ok(config)
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// carbon's `sections()`: (name, line of the `[name]` line) in file order. May name
    /// `DEFAULT`, and may name a "section" configparser never saw, for which [`Self::items`]
    /// fails as carbon does.
    pub fn section_order(&self) -> &[(String, usize)] {
        &self.order
    }

    /// `ConfigParser.items(section)`: the section's keys over the `[DEFAULT]` ones, each
    /// interpolated (`%%` → `%`, `%(key)s` → that key's value). `line` is the section's line,
    /// used when the section itself is the problem.
    pub fn items(&self, section: &str, line: usize) -> Result<Vec<Item>, SchemaError> {
        let own: &[RawOption] = if section == DEFAULT_SECTION {
            &[]
        } else {
            match self.index.get(section).and_then(|&i| self.sections.get(i)) {
                Some(s) => &s.options,
                None => {
                    return Err(SchemaError::at(
                        &self.file,
                        line,
                        format!(
                            "No section: {} (configparser reads this line as a continuation \
                             of the value above it; unindent it)",
                            python::text::repr(section)
                        ),
                    ))
                }
            }
        };
        // Python's dict: defaults in their order, overridden in place, then the section's own.
        let mut merged: Vec<&RawOption> = self.defaults.iter().collect();
        let mut position: HashMap<&str, usize> = merged
            .iter()
            .enumerate()
            .map(|(i, o)| (o.key.as_str(), i))
            .collect();
        for option in own {
            match position.get(option.key.as_str()) {
                Some(&i) => merged[i] = option,
                None => {
                    position.insert(&option.key, merged.len());
                    merged.push(option);
                }
            }
        }
        merged
            .iter()
            .map(|option| {
                let mut out = String::new();
                self.interpolate(section, option, &option.value, &merged, 1, &mut out)?;
                Ok(Item {
                    key: option.key.clone(),
                    value: out,
                    line: option.line,
                })
            })
            .collect()
    }

    /// `BasicInterpolation._interpolate_some`.
    fn interpolate(
        &self,
        section: &str,
        option: &RawOption,
        mut rest: &str,
        map: &[&RawOption],
        depth: usize,
        out: &mut String,
    ) -> Result<(), SchemaError> {
        let fail = |message: String| {
            SchemaError::at(
                &self.file,
                option.line,
                format!("[{section}] {}: {message}", option.key),
            )
        };
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(fail(format!(
                "Recursion limit exceeded in value substitution: option {} in section {} \
                 contains an interpolation key which cannot be substituted in {} steps. Raw \
                 value: {}",
                python::text::repr(&option.key),
                python::text::repr(section),
                MAX_INTERPOLATION_DEPTH,
                python::text::repr(&option.value)
            )));
        }
        while !rest.is_empty() {
            let Some(p) = rest.find('%') else {
                out.push_str(rest);
                break;
            };
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            if let Some(after) = rest.strip_prefix("%%") {
                out.push('%');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("%(") {
                // `%\(([^)]+)\)s`
                let name_len = after.find(')').filter(|&n| n > 0);
                let Some(n) = name_len.filter(|&n| after[n..].starts_with(")s")) else {
                    return Err(fail(format!(
                        "bad interpolation variable reference {}",
                        python::text::repr(rest)
                    )));
                };
                let reference = after[..n].to_lowercase();
                rest = &after[n + 2..];
                let Some(found) = map.iter().find(|o| o.key == reference) else {
                    return Err(fail(format!(
                        "Bad value substitution: option {} in section {} contains an \
                         interpolation key {} which is not a valid option name. Raw value: {}",
                        python::text::repr(&option.key),
                        python::text::repr(section),
                        python::text::repr(&reference),
                        python::text::repr(&option.value)
                    )));
                };
                if found.value.contains('%') {
                    self.interpolate(section, option, &found.value, map, depth + 1, out)?;
                } else {
                    out.push_str(&found.value);
                }
            } else {
                return Err(fail(format!(
                    "'%' must be followed by '%' or '(', found: {}",
                    python::text::repr(rest)
                )));
            }
            if out.len() > MAX_INTERPOLATED_LEN {
                return Err(fail(format!(
                    "value is longer than {MAX_INTERPOLATED_LEN} bytes after interpolation"
                )));
            }
        }
        if out.len() > MAX_INTERPOLATED_LEN {
            return Err(fail(format!(
                "value is longer than {MAX_INTERPOLATED_LEN} bytes after interpolation"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str, section: &str) -> Vec<(String, String, usize)> {
        let config = ConfigFile::parse("f.conf", text).expect("parses");
        config
            .items(section, 0)
            .expect("items")
            .into_iter()
            .map(|i| (i.key, i.value, i.line))
            .collect()
    }

    fn err(text: &str) -> String {
        ConfigFile::parse("f.conf", text)
            .expect_err("fails")
            .to_string()
    }

    fn kv(k: &str, v: &str, line: usize) -> (String, String, usize) {
        (k.to_string(), v.to_string(), line)
    }

    #[test]
    fn keys_delimiters_and_values() {
        // An indented key line is a continuation of the key above it.
        let text = "[s]\nk2: c\n  k3 = \n";
        assert_eq!(items(text, "s"), vec![kv("k2", "c\nk3 =", 2)]);
        let text = "[s]\nKey One = a = b\nk2: c : d\nk3   =   \nk4 = x ; not a comment\n";
        assert_eq!(
            items(text, "s"),
            vec![
                kv("key one", "a = b", 2),
                kv("k2", "c : d", 3),
                kv("k3", "", 4),
                kv("k4", "x ; not a comment", 5),
            ]
        );
    }

    #[test]
    fn continuation_lines() {
        let text = "[s]\na = one\n  two\n\n  # dropped\n\n   three\n\n\nb = x\n";
        assert_eq!(
            items(text, "s"),
            vec![kv("a", "one\ntwo\n\n\nthree", 2), kv("b", "x", 10)]
        );
        // Deeper indentation of the key line itself raises the bar for continuations.
        let text = "[s]\n  a = 1\n  b = 2\n   c\n";
        assert_eq!(items(text, "s"), vec![kv("a", "1", 2), kv("b", "2\nc", 3)]);
    }

    #[test]
    fn universal_newlines() {
        assert_eq!(
            items("[s]\r\na = 1\rb = 2\r\n", "s"),
            vec![kv("a", "1", 2), kv("b", "2", 3)]
        );
    }

    #[test]
    fn default_inheritance_and_order() {
        let text = "[DEFAULT]\nx = 1\ny = 2\n[s]\ny = 3\nz = 4\n";
        assert_eq!(
            items(text, "s"),
            vec![kv("x", "1", 2), kv("y", "3", 5), kv("z", "4", 6)]
        );
        assert_eq!(
            items(text, "DEFAULT"),
            vec![kv("x", "1", 2), kv("y", "2", 3)]
        );
        let config = ConfigFile::parse("f.conf", text).unwrap();
        assert_eq!(
            config.section_order(),
            &[("DEFAULT".to_string(), 1), ("s".to_string(), 4)]
        );
    }

    #[test]
    fn interpolation() {
        let text = "[DEFAULT]\nbase = carbon\n[s]\np = ^%(BASE)s\\.%%\nq = %(p)s!\n";
        assert_eq!(
            items(text, "s"),
            vec![
                kv("base", "carbon", 2),
                kv("p", "^carbon\\.%", 4),
                kv("q", "^carbon\\.%!", 5)
            ]
        );
        let config = ConfigFile::parse("f.conf", "[s]\na = 5%\n").unwrap();
        assert_eq!(
            config.items("s", 1).unwrap_err().to_string(),
            "f.conf:2: [s] a: '%' must be followed by '%' or '(', found: '%'"
        );
        let config = ConfigFile::parse("f.conf", "[s]\na = %(b)s\n").unwrap();
        assert_eq!(
            config.items("s", 1).unwrap_err().to_string(),
            "f.conf:2: [s] a: Bad value substitution: option 'a' in section 's' contains an \
             interpolation key 'b' which is not a valid option name. Raw value: '%(b)s'"
        );
        let config = ConfigFile::parse("f.conf", "[s]\na = %(a)s\n").unwrap();
        assert!(config.items("s", 1).unwrap_err().to_string().starts_with(
            "f.conf:2: [s] a: Recursion limit exceeded in value substitution: option 'a'"
        ));
        let config = ConfigFile::parse("f.conf", "[s]\na = x%(\n").unwrap();
        assert_eq!(
            config.items("s", 1).unwrap_err().to_string(),
            "f.conf:2: [s] a: bad interpolation variable reference '%('"
        );
    }

    #[test]
    fn interpolation_blowup_is_bounded() {
        let mut text = String::from("[s]\n");
        for i in 0..9 {
            text.push_str(&format!(
                "k{i} = {}\n",
                format!("%(k{})s", i + 1).repeat(40)
            ));
        }
        text.push_str("k9 = xxxxxxxx\n");
        let config = ConfigFile::parse("f.conf", &text).unwrap();
        let e = config.items("s", 1).unwrap_err().to_string();
        assert!(e.contains("after interpolation"), "{e}");
    }

    #[test]
    fn section_headers() {
        // The header runs to the last `]`; carbon's scan only sees lines ending in `]`.
        let config = ConfigFile::parse("f.conf", "[a] x\ny=1\n[b]]\nz=2\n").unwrap();
        assert_eq!(config.section_order(), &[("b]".to_string(), 3)]);
        assert_eq!(config.items("a", 1).unwrap()[0].value, "1");
        // An indented header under a value is a continuation to configparser only.
        let config = ConfigFile::parse("f.conf", "[a]\np = x\n  [b]\n").unwrap();
        assert_eq!(config.items("a", 1).unwrap()[0].value, "x\n[b]");
        assert_eq!(
            config.items("b", 3).unwrap_err().to_string(),
            "f.conf:3: No section: 'b' (configparser reads this line as a continuation of the \
             value above it; unindent it)"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            err("[a]\nx=1\n[a]\n"),
            "f.conf:3: section 'a' already exists"
        );
        assert_eq!(
            err("[a]\nx=1\nX=2\n"),
            "f.conf:3: option 'x' in section 'a' already exists"
        );
        assert_eq!(
            err("# c\nx=1\n"),
            "f.conf:2: File contains no section headers: 'x=1' comes before any [section]"
        );
        assert_eq!(
            err("[a]\nfoo\n[b]\n= y\n"),
            "f.conf:2: parsing error: 'foo' is not a [section], key = value, comment or \
             indented continuation (and 1 more bad line)"
        );
        // Duplicates stop the read at once, so they win over an earlier malformed line.
        assert_eq!(
            err("[a]\nfoo\n[b]\n[b]\n"),
            "f.conf:4: section 'b' already exists"
        );
        // Two [DEFAULT] blocks are allowed, repeating a key across them is not.
        assert!(ConfigFile::parse("f.conf", "[DEFAULT]\na=1\n[DEFAULT]\nb=2\n").is_ok());
        assert_eq!(
            err("[DEFAULT]\na=1\n[DEFAULT]\na=2\n"),
            "f.conf:4: option 'a' in section 'DEFAULT' already exists"
        );
    }
}
