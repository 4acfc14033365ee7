//! `nanny`: runs the pools of programs a TOML file describes, with the
//! `nanny` library (README.md, "The `nanny` command").
//!
//! This slice has one verb, `nanny run FILE`, with its REST API and live
//! dashboard; the other verbs and metrics come later (issue 12).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod api;
mod config;
mod dashboard;
mod logs;
mod metrics;
mod run;

/// Runs pools of programs from a config file, balances their connections
/// and keeps them alive.
#[derive(Debug, Parser)]
#[command(name = "nanny", version)]
struct Cli {
    /// The format of nanny's own log lines (on stderr).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pools and listeners of a config file until stopped
    ///
    /// Starts everything FILE describes, waits until every worker is ready
    /// and supervises them: SIGTERM, SIGINT or SIGQUIT stops gracefully (a
    /// second one hard-kills), SIGHUP reloads every pool, one worker after
    /// the other.
    ///
    /// Exit codes: 0 after a graceful stop, 78 for a refused config file,
    /// 69 when it could not start, 128+N after a hard kill by signal N.
    Run {
        /// The config file (TOML).
        file: PathBuf,
    },
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run { file } => nanny::exit::code(run::run(&file, cli.log_format == LogFormat::Json)),
    }
}

/// nanny's logs go to stderr, filtered by `NANNY_LOG` (`tracing`'s
/// `EnvFilter` syntax; default `info`).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NANNY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
