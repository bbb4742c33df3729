//! # roster
//!
//! The operator's command line. The daemon (`roster serve`) is `roster_runtime`; this binary
//! parses arguments, runs commands against a data directory (or forwards them to the daemon
//! that owns it, over the admin socket), and prints.
//!
//! # Layout
//! - `args`: the clap command tree; every typed value is validated there.
//! - `refs`: agent and team references (`agt_…`, `team/name`).
//! - `cmd/`: one module per group of commands.
//! - `output`: tables and relative times for people (JSON lines for programs go through
//!   `roster_runtime::out::Out`).
//! - `bench`: `roster bench`, figures next to raw baselines from the same run.
//! - `demo`: `roster demo`, a guided tour in a temporary data directory.
#![forbid(unsafe_code)]

mod args;
mod bench;
mod cmd;
mod demo;
mod error;
mod output;
mod refs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use roster_core::name::Name;

use crate::error::CliError;

/// mimalloc rather than the system allocator: replaying and folding the log allocates many small
/// values (names, chains, capabilities), and glibc's malloc was measured to make the same fold
/// swing by a third depending on the heap's history (`roster bench replay`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crate::args::{Cli, Cmd};
use crate::output::Out;

/// `$XDG_DATA_HOME/roster`, else `~/.local/share/roster`, else `./.roster`.
fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("roster");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/roster");
    }
    PathBuf::from(".roster")
}

/// The operator's name: `--as`, else `$USER` when it is a valid name, else `operator`.
fn operator_name(given: Option<Name>) -> Name {
    given
        .or_else(|| {
            std::env::var("USER")
                .ok()
                .and_then(|u| Name::parse(&u.to_lowercase()).ok())
        })
        .unwrap_or_else(default_operator)
}

#[allow(clippy::expect_used)] // a provable invariant: the literal is a valid name
fn default_operator() -> Name {
    Name::parse("operator").expect("`operator` is a valid name")
}

/// The error and its causes in one sentence, skipping a cause the message already quotes.
fn message(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // Quiet by default: what goes wrong is said once, in roster's own words; the storage
        // engine's own logs are there with ROSTER_LOG=sled=debug.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROSTER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sled=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Absolute, so that the daemon, its clients and the paths it mounts agree whatever the
    // working directory.
    let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
    let data_dir = std::path::absolute(&data_dir).unwrap_or(data_dir);
    let operator = operator_name(cli.operator);
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    // While `roster serve` runs on the data directory, it owns the store: commands go to it.
    if forwarded(&cli.command, &data_dir) {
        if let Some(stream) = roster_runtime::daemon::admin::connect(&data_dir) {
            let argv: Option<Vec<String>> = std::env::args_os()
                .skip(1)
                .map(|a| a.into_string().ok())
                .collect();
            let Some(argv) = argv else {
                eprintln!("roster: an argument is not UTF-8; `roster serve` takes text only");
                return ExitCode::from(2);
            };
            let request = roster_runtime::daemon::admin::AdminRequest {
                argv,
                operator,
                json: cli.json,
                cwd,
            };
            return match roster_runtime::daemon::admin::forward(stream, &request) {
                Ok(code) => ExitCode::from(code),
                Err(e) => {
                    eprintln!("roster: {e}");
                    ExitCode::from(1)
                }
            };
        }
    }
    let env = cmd::Env {
        data_dir: &data_dir,
        operator,
        out: Out::local(cli.json),
        cwd,
        daemon: None,
    };
    ExitCode::from(execute(cli.command, &env))
}

/// Commands that a running daemon answers; the rest run here (they make their own data
/// directories, or talk to the engine themselves, or are the daemon). `subscribe` goes to the
/// daemon only on the in-process bus, where it reads the daemon's log; with NATS it reads the
/// stream from here (and an unreadable roster.toml is reported here too).
fn forwarded(cmd: &Cmd, data_dir: &std::path::Path) -> bool {
    match cmd {
        Cmd::Serve(_) | Cmd::Demo { .. } | Cmd::Bench(_) | Cmd::Sandbox(_) => false,
        Cmd::Subscribe(args) => cmd::subscribe::bus(args, data_dir).is_ok_and(|b| b.is_memory()),
        _ => true,
    }
}

/// Runs one command and returns its exit code, saying what went wrong on `env.out`'s error
/// stream.
fn execute(cmd: Cmd, env: &cmd::Env<'_>) -> u8 {
    match cmd::run(cmd, env) {
        Ok(()) => 0,
        Err(err) => {
            // `roster log | head`: the reader left; that is not an error worth a message.
            let broken_pipe = err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return 0;
            }
            if let Some(CliError::Reported(code)) = err.downcast_ref::<CliError>() {
                return u8::try_from(*code).unwrap_or(1);
            }
            let code = error::exit_code(&err);
            // If even the error cannot be written, the exit code still says it.
            let _ = env.out.note(message(&err));
            u8::try_from(code).unwrap_or(1)
        }
    }
}

/// Runs a command a client of the admin socket sent, inside the daemon.
fn run_for_client(
    d: &roster_runtime::daemon::Daemon,
    req: roster_runtime::daemon::admin::AdminRequest,
    out: Out,
) -> u8 {
    let argv = std::iter::once("roster".to_string()).chain(req.argv);
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = out.write(output::Stream::Err, &e.render().to_string());
            return 2;
        }
    };
    let env = cmd::Env {
        data_dir: d.data_dir(),
        operator: req.operator,
        out,
        cwd: req.cwd,
        daemon: Some(d),
    };
    execute(cli.command, &env)
}
