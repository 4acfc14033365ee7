//! `nanny`: runs the pools of programs a TOML file describes, with the
//! `nanny` library (README.md, "The `nanny` command").
//!
//! `nanny run FILE` supervises, with its REST API and live dashboard
//! ([`run`]); the other verbs talk to that API ([`verbs`], over
//! [`client`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod api;
mod client;
mod config;
mod dashboard;
mod logs;
mod metrics;
mod reload;
mod run;
mod signals;
mod systemd;
mod upgrade;
mod verbs;

/// `nanny --help`'s closing text: examples, how the API is found, exit codes.
const AFTER_HELP: &str = "\
Examples:
  nanny run nanny.toml          supervise the pools of nanny.toml
  nanny status                  the workers of the nanny started here
  nanny scale web 4             resize pool web to 4 workers
  nanny restart web:02          replace one worker
  nanny reload web              roll new workers in, one at a time
  nanny logs web --follow       follow pool web's output
  nanny -c /srv/nanny.toml stop-all

Finding the API: --api URL and --token-file PATH, or NANNY_API_URL and
NANNY_API_TOKEN, else the api.json that `nanny run` writes in its state
directory (--state-dir DIR; -c FILE for the one of that config file; by
default the nearest .nanny/api.json in this directory or its parents).

Exit codes of the verbs: 0 ok, 1 the operation failed or conflicted,
2 usage error, 3 unknown worker or pool, 69 no nanny API to talk to,
75 no answer in time (--timeout; it may still be under way), 77 the
token was refused.";

/// Runs pools of programs from a config file, balances their connections
/// and keeps them alive.
///
/// `nanny run FILE` starts and supervises the pools FILE describes, with a
/// REST API (127.0.0.1:8887 by default) and a live dashboard. The other
/// verbs control that running nanny through its API: status, scale,
/// start/stop/restart/remove/reset workers, reload, logs, shutdown.
#[derive(Debug, Parser)]
#[command(name = "nanny", version, after_help = AFTER_HELP)]
struct Cli {
    /// Where the API of the running nanny is.
    #[command(flatten)]
    place: client::Where,
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
    /// second one hard-kills), SIGHUP re-reads FILE and rolls the pools it
    /// changes, one worker after the other (a bad file changes nothing).
    /// SIGUSR2 upgrades nanny itself: the binary is started again over the
    /// same listening sockets, and this one hands over once the new one is
    /// ready (a new one that fails changes nothing). Under systemd it takes
    /// its sockets from LISTEN_FDS and notifies READY, WATCHDOG, STOPPING.
    ///
    /// Exit codes: 0 after a graceful stop, 78 for a refused config file,
    /// 69 when it could not start, 128+N after a hard kill by signal N.
    Run {
        /// The config file (TOML).
        file: PathBuf,
    },
    #[command(flatten)]
    Verb(verbs::Verb),
    /// Print a shell completion script
    ///
    /// For bash: `nanny completions bash > ~/.local/share/bash-completion/completions/nanny`;
    /// zsh: `nanny completions zsh > ~/.zfunc/_nanny`; fish:
    /// `nanny completions fish > ~/.config/fish/completions/nanny.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
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
        Command::Verb(verb) => exit(verbs::run(verb, &cli.place)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "nanny", &mut script);
            exit(verbs::out(&String::from_utf8_lossy(&script)))
        }
    }
}

/// A verb's exit: 0, or its error on stderr and its code.
fn exit(result: Result<(), client::CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nanny: {e}");
            ExitCode::from(e.code())
        }
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
