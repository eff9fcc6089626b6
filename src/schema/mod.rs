//! Which retention and aggregation a new metric gets: carbon 1.1.10's storage-schemas.conf and
//! storage-aggregation.conf, read exactly as carbon reads them.
//!
//! Operators bring these files over from carbon unchanged, and the result of reading them is
//! baked into every whisper file created, so a file must mean here what it meant to carbon:
//! the same config dialect (Python's configparser, [`config`]), carbon's retention parser
//! ([`parse_carbon_retention`]), the same sections kept, skipped or refused, first match
//! winning with an unanchored regex search, and carbon's built-in defaults last.
//!
//! Carbide differs on purpose only in reporting: every skipped section is a
//! [`SchemaWarning`] (also logged with `tracing::warn!`) and every problem that stops carbon
//! is a [`SchemaError`], both naming file, line and problem. Patterns use the `regex` crate;
//! see [Patterns](#patterns) for what that changes.
//!
//! # Patterns
//! Python `re` features the `regex` crate lacks (look-around, backreferences, atomic groups,
//! possessive quantifiers, conditionals, `\Z`) make a file fail to load with an error saying
//! so, where carbon would have accepted it.
//!
//! Reloading while the server runs (carbon re-reads both files every 60 s and keeps the old
//! lists when a read fails) is [`reload`]'s job.

pub mod config;
pub mod reload;

mod aggregation;
mod error;
mod pattern;
mod retention;
mod storage;

use std::io;
use std::path::Path;

pub use aggregation::{parse_storage_aggregation, AggregationRule, DEFAULT_AGGREGATION_NAME};
pub use error::{SchemaError, SchemaWarning};
pub use retention::parse_carbon_retention;
pub use storage::{parse_storage_schemas, StorageSchema, DEFAULT_ARCHIVES, DEFAULT_SCHEMA_NAME};

use crate::whisper::AggregationMethod;

/// File name carbon reads retentions from (required).
pub const SCHEMAS_FILE: &str = "storage-schemas.conf";
/// File name carbon reads aggregation rules from (optional).
pub const AGGREGATION_FILE: &str = "storage-aggregation.conf";

/// whisper's create defaults, used when no aggregation rule sets a value.
pub const DEFAULT_X_FILES_FACTOR: f64 = 0.5;
pub const DEFAULT_AGGREGATION_METHOD: AggregationMethod = AggregationMethod::Average;

/// The files shipped in `storage-schemas/`, compiled in.
pub const EMBEDDED_SCHEMAS: &str = include_str!("../../storage-schemas/storage-schemas.conf");
pub const EMBEDDED_AGGREGATION: &str =
    include_str!("../../storage-schemas/storage-aggregation.conf");

/// Both files, loaded: the rules in match order (built-in defaults last) and the sections
/// that were skipped.
#[derive(Clone, Debug)]
pub struct Schemas {
    storage: Vec<StorageSchema>,
    aggregation: Vec<AggregationRule>,
    warnings: Vec<SchemaWarning>,
}

/// What a new whisper file for one metric gets, and which sections said so.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// (seconds per point, points), finest first as whisper's create stores them.
    pub archives: Vec<(u32, u32)>,
    /// The rule's xFilesFactor, or whisper's 0.5 when the rule sets none.
    pub x_files_factor: f64,
    /// The rule's method, or whisper's `average` when the rule sets none.
    pub aggregation_method: AggregationMethod,
    /// Section of storage-schemas.conf that matched (`default` for the built-in one).
    pub schema_name: String,
    /// Section of storage-aggregation.conf that matched (`default` for the built-in one).
    pub aggregation_name: String,
}

/// Reads a config file as UTF-8 text (Python would raise `UnicodeDecodeError`, which carbon
/// does not catch), naming the line of the first bad byte.
fn read_text(path: &Path) -> io::Result<Result<String, SchemaError>> {
    let bytes = std::fs::read(path)?;
    Ok(decode_text(&path.display().to_string(), bytes))
}

/// The text of a config file read as `bytes`; `file` names it in the error.
pub(crate) fn decode_text(file: &str, bytes: Vec<u8>) -> Result<String, SchemaError> {
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = 1 + bytes[..good].iter().filter(|&&b| b == b'\n').count();
        SchemaError::at(
            file,
            line,
            format!("not valid UTF-8 (byte {good} of the file)"),
        )
    })
}

impl Schemas {
    /// carbon with neither file: only the built-in defaults.
    pub fn builtin() -> Schemas {
        Schemas {
            storage: vec![StorageSchema::builtin_default()],
            aggregation: vec![AggregationRule::builtin_default()],
            warnings: Vec::new(),
        }
    }

    /// Reads `storage-schemas.conf` and `storage-aggregation.conf` from `dir`, as carbon reads
    /// them from its CONF_DIR. The schemas file is required (carbon exits with `missing
    /// required config`); a missing or unreadable aggregation file gives the defaults and a
    /// warning, as carbon logs `not found or wrong perms, ignoring.`.
    pub fn load(dir: &Path) -> Result<Schemas, SchemaError> {
        let schemas_path = dir.join(SCHEMAS_FILE);
        let schemas_name = schemas_path.display().to_string();
        let schemas_text = match read_text(&schemas_path) {
            Ok(text) => text?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SchemaError::file(&schemas_name, "missing required config"))
            }
            Err(e) => {
                return Err(SchemaError::file(
                    &schemas_name,
                    format!("cannot read: {e}"),
                ))
            }
        };
        let mut warnings = Vec::new();
        let storage = parse_storage_schemas(&schemas_name, &schemas_text, &mut warnings)?;

        let aggregation_path = dir.join(AGGREGATION_FILE);
        let aggregation_name = aggregation_path.display().to_string();
        let aggregation = match read_text(&aggregation_path) {
            Ok(text) => parse_storage_aggregation(&aggregation_name, &text?, &mut warnings)?,
            Err(e) => {
                let message = format!("not found or wrong perms, ignoring ({e})");
                SchemaWarning::emit(&mut warnings, &aggregation_name, None, message);
                vec![AggregationRule::builtin_default()]
            }
        };
        Ok(Schemas {
            storage,
            aggregation,
            warnings,
        })
    }

    /// Reads the two files' contents; `None` for the aggregation file behaves as a missing
    /// one (defaults, without a warning). Messages name the files `storage-schemas.conf` and
    /// `storage-aggregation.conf`.
    pub fn from_strs(schemas: &str, aggregation: Option<&str>) -> Result<Schemas, SchemaError> {
        let mut warnings = Vec::new();
        let storage = parse_storage_schemas(SCHEMAS_FILE, schemas, &mut warnings)?;
        let aggregation = match aggregation {
            Some(text) => parse_storage_aggregation(AGGREGATION_FILE, text, &mut warnings)?,
            None => vec![AggregationRule::builtin_default()],
        };
        Ok(Schemas {
            storage,
            aggregation,
            warnings,
        })
    }

    /// The files shipped in `storage-schemas/` (compiled in): the configuration a fresh
    /// install uses. Cannot fail for the shipped files; a test guards that.
    pub fn embedded() -> Result<Schemas, SchemaError> {
        Schemas::from_strs(EMBEDDED_SCHEMAS, Some(EMBEDDED_AGGREGATION))
    }

    /// What a new whisper file named `metric` gets: the first matching schema and the first
    /// matching aggregation rule (the built-in defaults match everything).
    pub fn resolve(&self, metric: &str) -> Resolved {
        let builtin_schema;
        let schema = match self.storage.iter().find(|s| s.matches(metric)) {
            Some(s) => s,
            None => {
                builtin_schema = StorageSchema::builtin_default();
                &builtin_schema
            }
        };
        let builtin_rule;
        let rule = match self.aggregation.iter().find(|r| r.matches(metric)) {
            Some(r) => r,
            None => {
                builtin_rule = AggregationRule::builtin_default();
                &builtin_rule
            }
        };
        Resolved {
            archives: schema.archives().to_vec(),
            x_files_factor: rule.x_files_factor().unwrap_or(DEFAULT_X_FILES_FACTOR),
            aggregation_method: rule
                .aggregation_method()
                .unwrap_or(DEFAULT_AGGREGATION_METHOD),
            schema_name: schema.name().to_string(),
            aggregation_name: rule.name().to_string(),
        }
    }

    /// Both lists as parsed (each ending with its built-in default) and the warnings of both.
    pub(crate) fn from_parts(
        storage: Vec<StorageSchema>,
        aggregation: Vec<AggregationRule>,
        warnings: Vec<SchemaWarning>,
    ) -> Schemas {
        Schemas {
            storage,
            aggregation,
            warnings,
        }
    }

    /// The storage schemas in match order, built-in `default` last.
    pub fn storage_schemas(&self) -> &[StorageSchema] {
        &self.storage
    }

    /// The aggregation rules in match order, built-in `default` last.
    pub fn aggregation_rules(&self) -> &[AggregationRule] {
        &self.aggregation
    }

    /// Sections skipped while loading (each was also logged).
    pub fn warnings(&self) -> &[SchemaWarning] {
        &self.warnings
    }
}
