//! # roster
//!
//! The operator's command line. The daemon (`roster serve`) is `roster_runtime`; this binary
//! parses arguments into typed operations, has them carried out (by the daemon that owns the
//! data directory, over the admin socket, or here), and renders what they answer.
//!
//! # Layout
//! - `args`: the clap command tree; every typed value is validated there.
//! - `cmd/`: from a command line to a typed operation (`roster_runtime::admin::Request`), carried
//!   out by the daemon or here; and the commands that only run here.
//! - `render`: an operation's items as tables and sentences for people, or JSON lines.
//! - `output`: tables, and the output of the commands run here.
//! - `bench`: `roster bench`, figures next to raw baselines from the same run.
//! - `demo`: `roster demo`, a guided tour in a temporary data directory.
#![forbid(unsafe_code)]

mod args;
mod bench;
mod cmd;
mod demo;
mod error;
mod output;
mod render;

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
    let raw = matches!(
        cli.command,
        Cmd::Logs { raw: true, .. } | Cmd::Exec { raw: true, .. }
    );
    let caller = cmd::Caller {
        data_dir,
        operator: operator_name(cli.operator),
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        json: cli.json,
        raw,
    };
    match cmd::plan(cli.command, &caller.data_dir) {
        Ok(cmd::Plan::Operate(request)) => ExitCode::from(cmd::operate(request, caller)),
        Ok(cmd::Plan::Here(local)) => ExitCode::from(failed(cmd::here(local, &caller))),
        Err(e) => ExitCode::from(failed(Err(e.into()))),
    }
}

/// The exit code of a command run here, saying what went wrong on standard error.
fn failed(result: anyhow::Result<()>) -> u8 {
    let Err(err) = result else { return 0 };
    // `roster subscribe | head`: the reader left; that is not an error worth a message.
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
    // If even the error cannot be written, the exit code still says it.
    let _ = render::note(&message(&err));
    u8::try_from(error::exit_code(&err)).unwrap_or(1)
}
