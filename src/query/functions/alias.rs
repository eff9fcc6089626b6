//! Alias: functions that rename series (the legend Grafana shows).

use super::FunctionDef;

pub const FUNCTIONS: &[FunctionDef] = &[];
