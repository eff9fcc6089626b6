//! Combine: sumSeries and the other aggregations of several series into one, grouping by node or wildcard, percentages of a total.

use super::FunctionDef;

pub const FUNCTIONS: &[FunctionDef] = &[];
