//! The `carbide` binary: the server and the whisper tools.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "carbide",
    version,
    about = "A Graphite-compatible time-series storage server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (carbon receivers, cache, writer and render API).
    Serve,
    /// Whisper file tools, compatible with whisper.py's whisper-*.py scripts.
    #[command(subcommand)]
    Whisper(carbide::cli::whisper::WhisperCommand),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Serve => {
            eprintln!(
                "carbide serve: the receivers and render API are not there yet; \
                 `carbide whisper` works on whisper files today"
            );
            2
        }
        Command::Whisper(cmd) => carbide::cli::whisper::run(cmd),
    };
    std::process::exit(status);
}
