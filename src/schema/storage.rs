//! storage-schemas.conf: which archives (retentions) a new whisper file gets, as carbon's
//! `loadStorageSchemas` decides it.
//!
//! carbon's per-section outcome is kept exactly, because it decides which schema a metric
//! lands in: a missing `retentions` or `pattern` and an archive list whisper would refuse
//! skip the section (later sections then match instead); a retention it cannot parse, a bad
//! regex or a broken config file refuse the whole file.

use regex::Regex;

use super::config::ConfigFile;
use super::{pattern, retention, SchemaError, SchemaWarning};
use crate::python;

/// Name of carbon's built-in last schema.
pub const DEFAULT_SCHEMA_NAME: &str = "default";

/// carbon's built-in schema for names nothing else matched: one minute for seven days.
pub const DEFAULT_ARCHIVES: [(u32, u32); 1] = [(60, 10080)];

/// One usable section of storage-schemas.conf, or the built-in default.
#[derive(Clone, Debug)]
pub struct StorageSchema {
    name: String,
    line: Option<usize>,
    regex: Option<Regex>,
    archives: Vec<(u32, u32)>,
}

impl StorageSchema {
    /// carbon's `defaultSchema`, which matches every name.
    pub fn builtin_default() -> Self {
        StorageSchema {
            name: DEFAULT_SCHEMA_NAME.to_string(),
            line: None,
            regex: None,
            archives: DEFAULT_ARCHIVES.to_vec(),
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

    /// (seconds per point, points), finest first: the order whisper's create sorts them into
    /// (stable, so this is also the order whisper validated them in).
    pub fn archives(&self) -> &[(u32, u32)] {
        &self.archives
    }

    /// carbon's `regex.search(metric)`: the pattern found anywhere in the name.
    pub fn matches(&self, metric: &str) -> bool {
        self.regex.as_ref().is_none_or(|re| re.is_match(metric))
    }
}

/// Reads storage-schemas.conf text as carbon does. `file` names it in messages. Returns the
/// usable schemas in file order with the built-in default last; skipped sections are pushed
/// to `warnings` (and logged).
pub fn parse_storage_schemas(
    file: &str,
    text: &str,
    warnings: &mut Vec<SchemaWarning>,
) -> Result<Vec<StorageSchema>, SchemaError> {
    let config = ConfigFile::parse(file, text)?;
    let mut schemas = Vec::new();
    for (name, line) in config.section_order() {
        let (name, line) = (name.as_str(), *line);
        let items = config.items(name, line)?;
        let get = |key: &str| items.iter().find(|item| item.key == key);

        let Some(retentions) = get("retentions") else {
            let message = format!("[{name}] missing 'retentions', skipping section");
            SchemaWarning::emit(warnings, file, Some(line), message);
            continue;
        };
        let mut archives = Vec::new();
        for def in retentions.value.split(',') {
            let archive = retention::parse_carbon_retention(def).map_err(|e| {
                SchemaError::at(file, retentions.line, format!("[{name}] retentions: {e}"))
            })?;
            archives.push(archive);
        }

        let Some(pattern) = get("pattern").filter(|p| !p.value.is_empty()) else {
            let at = get("pattern").map_or(line, |p| p.line);
            let message = format!("[{name}] missing 'pattern', skipping section");
            SchemaWarning::emit(warnings, file, Some(at), message);
            continue;
        };
        let regex = pattern::compile(&pattern.value)
            .map_err(|e| SchemaError::at(file, pattern.line, format!("[{name}] pattern: {e}")))?;

        // whisper validates (and sorts) a copy; carbon keeps only sections it accepts.
        archives.sort_by_key(|&(seconds, _)| seconds);
        if let [(0, _), (next, _), ..] = archives.as_slice() {
            if *next != 0 {
                // whisper computes `next % 0` here: a ZeroDivisionError that carbon does not
                // catch, so the file is refused rather than the section skipped.
                return Err(SchemaError::at(
                    file,
                    retentions.line,
                    format!(
                        "[{name}] retentions: integer modulo by zero (a precision of 0 cannot be \
                         combined with other archives)"
                    ),
                ));
            }
        }
        if let Err(e) = crate::whisper::validate_archive_list(&mut archives) {
            let message = format!(
                "[{name}] retentions: invalid archive list {}, skipping section: {e}",
                python::text::repr(&retentions.value)
            );
            SchemaWarning::emit(warnings, file, Some(retentions.line), message);
            continue;
        }
        schemas.push(StorageSchema {
            name: name.to_string(),
            line: Some(line),
            regex: Some(regex),
            archives,
        });
    }
    schemas.push(StorageSchema::builtin_default());
    Ok(schemas)
}
