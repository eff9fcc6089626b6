//! The `carbide` binary: the server and the whisper tools.

use std::path::PathBuf;

use carbide::config::{Config, Listen};
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the writers free what the receivers allocated (cached
/// points, names), and glibc's per-arena free lists made that cross-thread traffic about a
/// tenth of the writers' time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Serve(ServeArgs),
    /// Whisper file tools, compatible with whisper.py's whisper-*.py scripts.
    #[command(subcommand)]
    Whisper(carbide::cli::whisper::WhisperCommand),
}

/// `carbide serve`'s flags; each overrides the config file.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A TOML config file; every option in it has a default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory: whisper files under DIR/whisper, the write-ahead log under DIR/wal.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Directory with storage-schemas.conf and storage-aggregation.conf.
    #[arg(long, value_name = "DIR")]
    schemas: Option<PathBuf>,
    /// Plaintext TCP listener (HOST:PORT, :PORT or off).
    #[arg(long, value_name = "ADDR")]
    line_tcp: Option<Listen>,
    /// Plaintext UDP listener (HOST:PORT, :PORT or off).
    #[arg(long, value_name = "ADDR")]
    line_udp: Option<Listen>,
    /// Pickle listener (HOST:PORT, :PORT or off).
    #[arg(long, value_name = "ADDR")]
    pickle: Option<Listen>,
    /// HTTP listener (HOST:PORT, :PORT or off).
    #[arg(long, value_name = "ADDR")]
    http: Option<Listen>,
    /// Cache-query (carbonlink) listener (HOST:PORT, :PORT or off).
    #[arg(long, value_name = "ADDR")]
    cache_query: Option<Listen>,
}

impl ServeArgs {
    fn config(&self) -> Result<Config, String> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(d) = &self.schemas {
            c.schemas_dir = d.clone();
        }
        let l = &mut c.listen;
        for (flag, slot) in [
            (self.line_tcp, &mut l.line_tcp),
            (self.line_udp, &mut l.line_udp),
            (self.pickle, &mut l.pickle),
            (self.http, &mut l.http),
            (self.cache_query, &mut l.cache_query),
        ] {
            if let Some(v) = flag {
                *slot = v;
            }
        }
        Ok(c)
    }
}

fn serve(args: &ServeArgs) -> i32 {
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("carbide serve: {e}");
            return 2;
        }
    };
    init_logging(&config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("carbide serve: cannot start the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(carbide::serve::run(config)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("carbide serve: {e}");
            1
        }
    }
}

/// Logs to stderr through tracing; RUST_LOG, when set, wins over the configured level.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() {
    let cli = Cli::parse();
    let status = match cli.command {
        Command::Serve(args) => serve(&args),
        Command::Whisper(cmd) => {
            init_logging("warn");
            carbide::cli::whisper::run(cmd)
        }
    };
    std::process::exit(status);
}
