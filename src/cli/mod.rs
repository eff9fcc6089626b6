//! Command-line front ends: `carbide serve` and the `carbide whisper` tools.

pub mod whisper;
