//! `carbide whisper <command>`: the whisper-*.py tools, same arguments and output.

use clap::Subcommand;

/// The whisper tools.
#[derive(Debug, Subcommand)]
pub enum WhisperCommand {}

/// Runs one tool; returns the process exit status.
pub fn run(command: WhisperCommand) -> i32 {
    match command {}
}
