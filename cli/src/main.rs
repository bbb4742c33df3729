//! # roster
//!
//! The operator's command line (and, as the runtime grows, the daemon).
//!
//! # Layout
//! - `args`: the clap command tree; every typed value is validated there.
//! - `refs`: agent and team references (`agt_…`, `team/name`).
//! - `app`: one opened data directory; `App::execute` is the only write path (decide → append → fold).
//! - `cmd/`: one module per group of commands.
//! - `describe`, `output`: text for people, JSON lines for programs.
//! - `bench`: `roster bench`, figures next to raw baselines from the same run.
//! - `demo`: `roster demo`, a guided tour in a temporary data directory.
#![forbid(unsafe_code)]

mod app;
mod args;
mod bench;
mod cmd;
mod demo;
mod describe;
#[allow(dead_code)] // wired into the daemon later in this issue
mod gateway;
mod output;
mod refs;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use roster_core::name::Name;

use crate::app::CliError;

/// mimalloc rather than the system allocator: replaying and folding the log allocates many small
/// values (names, chains, capabilities), and glibc's malloc was measured to make the same fold
/// swing by a third depending on the heap's history (`roster bench replay`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use crate::args::Cli;
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
    let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
    let env = cmd::Env {
        data_dir: &data_dir,
        operator: operator_name(cli.operator),
        out: Out { json: cli.json },
    };
    match cmd::run(cli.command, &env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `roster log | head`: the reader left; that is not an error worth a message.
            let broken_pipe = err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            let code = match err.downcast_ref::<CliError>() {
                Some(CliError::Reported(code)) => {
                    return ExitCode::from(u8::try_from(*code).unwrap_or(1))
                }
                Some(e) => e.exit_code(),
                None => 1,
            };
            eprintln!("roster: {}", message(&err));
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}
