//! The two kinds of diagnostics the schema loaders produce, both pointing at a file and line.
//!
//! carbon either stops (a fatal exception at startup) or logs and skips a section. Carbide keeps
//! each outcome but says exactly where: a [`SchemaError`] is carbon's fatal case, a
//! [`SchemaWarning`] its "log and skip" case.

use std::fmt;

/// A problem that makes carbon refuse the whole file. Displays as `file:line: problem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    /// The file as the caller named it (a path for [`crate::schema::Schemas::load`], the bare
    /// file name for [`crate::schema::Schemas::from_strs`]).
    pub file: String,
    /// 1-based line; `None` when the problem is the file itself (missing, unreadable).
    pub line: Option<usize>,
    pub message: String,
}

impl SchemaError {
    pub(crate) fn at(file: &str, line: usize, message: impl Into<String>) -> Self {
        SchemaError {
            file: file.to_string(),
            line: Some(line),
            message: message.into(),
        }
    }

    pub(crate) fn file(file: &str, message: impl Into<String>) -> Self {
        SchemaError {
            file: file.to_string(),
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for SchemaError {}

/// A section carbon logs and skips (or a missing optional file). Also emitted as a
/// `tracing::warn!` when it is produced. Displays as `file:line: problem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaWarning {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl SchemaWarning {
    /// Records the warning and logs it, so no skip is ever silent.
    pub(crate) fn emit(
        out: &mut Vec<SchemaWarning>,
        file: &str,
        line: Option<usize>,
        message: String,
    ) {
        let warning = SchemaWarning {
            file: file.to_string(),
            line,
            message,
        };
        tracing::warn!("{warning}");
        out.push(warning);
    }
}

impl fmt::Display for SchemaWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}
