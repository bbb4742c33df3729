//! The CLI's errors and exit codes: what a command failed with beyond the runtime's own errors
//! (which it wraps), and the exit code every failure maps to.

use std::path::PathBuf;

use roster_core::command::{Rejected, Rejection};
use roster_core::port::LogError;
use roster_core::world::FoldError;
use roster_runtime::{ConfigError, ControlError, RuntimeError, StartError, SupervisorError};
use roster_store::ImportError;

/// What a command failed with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input that clap could not catch (an unknown agent, a team that does not exist, a
    /// file that cannot be read), in words for the operator.
    #[error("{0}")]
    Input(String),
    /// The command already printed its verdict; only the exit code is left to give.
    #[error("")]
    Reported(i32),
    /// The command acts on containers, which only `roster serve` does.
    #[error("no `roster serve` runs on {0}: start it to act on containers (it owns them)")]
    NoDaemon(PathBuf),
    /// The runtime's ledger, store or configuration.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl From<LogError> for CliError {
    fn from(e: LogError) -> Self {
        CliError::Runtime(e.into())
    }
}

impl From<FoldError> for CliError {
    fn from(e: FoldError) -> Self {
        CliError::Runtime(e.into())
    }
}

impl From<Rejected> for CliError {
    fn from(e: Rejected) -> Self {
        CliError::Runtime(e.into())
    }
}

impl From<ImportError> for CliError {
    fn from(e: ImportError) -> Self {
        CliError::Runtime(e.into())
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Runtime(e.into())
    }
}

impl CliError {
    /// 2 for bad input (an id that names nothing included), 3 for a refusal, 4 for a log or an
    /// import that does not verify, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input(_) | CliError::NoDaemon(_) => 2,
            CliError::Reported(code) => *code,
            CliError::Runtime(e) => runtime_exit_code(e),
        }
    }
}

fn runtime_exit_code(e: &RuntimeError) -> i32 {
    match e {
        RuntimeError::NotInitialized(_) | RuntimeError::Config(_) => 2,
        RuntimeError::Refused(r) if matches!(*r.rejection, Rejection::NotFound { .. }) => 2,
        RuntimeError::Refused(_) => 3,
        RuntimeError::Import(ImportError::NotEmpty { .. }) => 2,
        RuntimeError::Import(ImportError::Io(_)) => 1,
        RuntimeError::Import(_) => 4,
        RuntimeError::Log(LogError::Corrupt(_) | LogError::Damaged { .. })
        | RuntimeError::Fold(_) => 4,
        _ => 1,
    }
}

/// The exit code of a failed command: the first error in its chain that says one, else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<RuntimeError>() {
            return runtime_exit_code(e);
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return 2;
        }
        if let Some(e) = cause.downcast_ref::<ControlError>() {
            return match e {
                ControlError::Unknown(_)
                | ControlError::Retired(_)
                | ControlError::NotRetired(_)
                | ControlError::AlreadyRunning(_)
                | ControlError::Unfit(_) => 2,
                ControlError::Runtime(e) => runtime_exit_code(e),
                _ => 1,
            };
        }
        if let Some(e) = cause.downcast_ref::<StartError>() {
            return match e {
                StartError::Runtime(e) => runtime_exit_code(e),
                _ => 1,
            };
        }
        if cause.downcast_ref::<SupervisorError>().is_some() {
            return 1;
        }
    }
    1
}
