//! Calculate: moving windows and percentiles computed along each series.

use super::FunctionDef;

pub const FUNCTIONS: &[FunctionDef] = &[];
