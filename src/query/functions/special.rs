//! Special: consolidateBy, constantLine and the other functions that set how series are drawn or made.

use super::FunctionDef;

pub const FUNCTIONS: &[FunctionDef] = &[];
