//! storage-aggregation.conf: the xFilesFactor and aggregation method a new whisper file gets,
//! as carbon's `loadAggregationSchemas` decides it.
//!
//! Either value may be left out of a section; carbon then passes `None` to whisper's create,
//! which means 0.5 / `average`, so the rule keeps the `Option` and only [`super::Resolved`]
//! applies the defaults. As in carbon, an xFilesFactor that is not a number and a missing
//! pattern skip the section, while an out-of-range xFilesFactor, an unknown method or a bad
//! regex refuse the whole file.

use regex::Regex;

use super::config::ConfigFile;
use super::{pattern, SchemaError, SchemaWarning};
use crate::python;
use crate::whisper::AggregationMethod;

/// Name of carbon's built-in last aggregation rule.
pub const DEFAULT_AGGREGATION_NAME: &str = "default";

/// One usable section of storage-aggregation.conf, or the built-in default.
#[derive(Clone, Debug)]
pub struct AggregationRule {
    name: String,
    line: Option<usize>,
    regex: Option<Regex>,
    x_files_factor: Option<f64>,
    aggregation_method: Option<AggregationMethod>,
}

impl AggregationRule {
    /// carbon's `defaultAggregation`: matches every name, sets neither value.
    pub fn builtin_default() -> Self {
        AggregationRule {
            name: DEFAULT_AGGREGATION_NAME.to_string(),
            line: None,
            regex: None,
            x_files_factor: None,
            aggregation_method: None,
        }
    }

    /// The section name (`default` for the built-in one).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Line of the `[section]` header; `None` for the built-in default.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The pattern as written (after interpolation); `None` for the built-in default.
    pub fn pattern(&self) -> Option<&str> {
        self.regex.as_ref().map(Regex::as_str)
    }

    /// `xFilesFactor` as given, `None` when the section does not set it.
    pub fn x_files_factor(&self) -> Option<f64> {
        self.x_files_factor
    }

    /// `aggregationMethod` as given, `None` when the section does not set it.
    pub fn aggregation_method(&self) -> Option<AggregationMethod> {
        self.aggregation_method
    }

    /// carbon's `regex.search(metric)`: the pattern found anywhere in the name.
    pub fn matches(&self, metric: &str) -> bool {
        self.regex.as_ref().is_none_or(|re| re.is_match(metric))
    }
}

/// Reads storage-aggregation.conf text as carbon does. `file` names it in messages. Returns
/// the usable rules in file order with the built-in default last; skipped sections are pushed
/// to `warnings` (and logged).
pub fn parse_storage_aggregation(
    file: &str,
    text: &str,
    warnings: &mut Vec<SchemaWarning>,
) -> Result<Vec<AggregationRule>, SchemaError> {
    let config = ConfigFile::parse(file, text)?;
    let mut rules = Vec::new();
    for (name, line) in config.section_order() {
        let (name, line) = (name.as_str(), *line);
        let items = config.items(name, line)?;
        let get = |key: &str| items.iter().find(|item| item.key == key);

        let x_files_factor = match get("xfilesfactor") {
            None => None,
            Some(item) => {
                let Some(xff) = python::number::parse_float(&item.value) else {
                    let message = format!(
                        "[{name}] xfilesfactor: could not convert string to float: {}, \
                         skipping section",
                        python::text::repr(&item.value)
                    );
                    SchemaWarning::emit(warnings, file, Some(item.line), message);
                    continue;
                };
                // NaN fails this too, as `0 <= nan <= 1` does in Python.
                if !(0.0..=1.0).contains(&xff) {
                    return Err(SchemaError::at(
                        file,
                        item.line,
                        format!(
                            "[{name}] xfilesfactor: {} is out of [0, 1]",
                            python::text::repr(&item.value)
                        ),
                    ));
                }
                Some(xff)
            }
        };
        let aggregation_method = match get("aggregationmethod") {
            None => None,
            Some(item) => Some(AggregationMethod::from_name(&item.value).ok_or_else(|| {
                let names: Vec<&str> = AggregationMethod::ALL.iter().map(|m| m.name()).collect();
                SchemaError::at(
                    file,
                    item.line,
                    format!(
                        "[{name}] aggregationmethod: {} is not one of whisper's methods ({})",
                        python::text::repr(&item.value),
                        names.join(", ")
                    ),
                )
            })?),
        };

        let Some(pattern) = get("pattern").filter(|p| !p.value.is_empty()) else {
            let at = get("pattern").map_or(line, |p| p.line);
            let message = format!("[{name}] missing 'pattern', skipping section");
            SchemaWarning::emit(warnings, file, Some(at), message);
            continue;
        };
        let regex = pattern::compile(&pattern.value)
            .map_err(|e| SchemaError::at(file, pattern.line, format!("[{name}] pattern: {e}")))?;
        rules.push(AggregationRule {
            name: name.to_string(),
            line: Some(line),
            regex: Some(regex),
            x_files_factor,
            aggregation_method,
        });
    }
    rules.push(AggregationRule::builtin_default());
    Ok(rules)
}
