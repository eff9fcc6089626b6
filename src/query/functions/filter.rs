//! Filter Series and Sorting: functions that choose, drop or reorder whole series.

use super::FunctionDef;

pub const FUNCTIONS: &[FunctionDef] = &[];
