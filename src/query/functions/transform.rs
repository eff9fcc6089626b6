//! Transform: functions that change each series' values or time axis on its own (scale, derivative, summarize, timeShift, null handling).

use super::FunctionDef;

pub const FUNCTIONS: &[FunctionDef] = &[];
