//! The errors of the commands run here (`serve`, `bench`, `demo`, `sandbox verify`,
//! `subscribe` from NATS) and their exit codes. (Operations answer with their own exit codes:
//! `roster_runtime::AdminError::exit_code`.)

use roster_runtime::{AdminError, ConfigError, ControlError, RuntimeError, StartError};

/// What a command run here failed with beyond the runtime's own errors.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input clap could not catch (an argument given twice, a file that cannot be read),
    /// in words for the operator.
    #[error("{0}")]
    Input(String),
    /// The command already printed its verdict; only the exit code is left to give.
    #[error("")]
    Reported(i32),
    /// The runtime's ledger, store or configuration.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Runtime(e.into())
    }
}

/// The exit code of a failed command: the first error in its chain that says one, else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return match e {
                CliError::Input(_) => 2,
                CliError::Reported(code) => *code,
                CliError::Runtime(e) => i32::from(e.exit_code()),
            };
        }
        if let Some(e) = cause.downcast_ref::<RuntimeError>() {
            return i32::from(e.exit_code());
        }
        if let Some(e) = cause.downcast_ref::<ControlError>() {
            return i32::from(e.exit_code());
        }
        if let Some(e) = cause.downcast_ref::<AdminError>() {
            return i32::from(e.exit_code());
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return 2;
        }
        // A NATS secret file that is unreadable or open to others, or credentials or TLS files
        // the server refuses: the operator's input, which retrying will not fix.
        if let Some(roster_bus::BusError::Secret(_) | roster_bus::BusError::Refused { .. }) =
            cause.downcast_ref::<roster_bus::BusError>()
        {
            return 2;
        }
        if let Some(StartError::Runtime(e)) = cause.downcast_ref::<StartError>() {
            return i32::from(e.exit_code());
        }
    }
    1
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Credentials or TLS files the server refuses are the operator's to fix, like a secret
    /// file open to others: exit code 2, not 1.
    #[test]
    fn a_refused_connection_is_the_operators_input() {
        let refused = roster_bus::BusError::Refused {
            url: "tls://h:4222".into(),
            why: "the server refused roster's credentials".into(),
        };
        assert_eq!(
            exit_code(&anyhow::Error::from(refused).context("subscribe")),
            2
        );
        let unreachable = roster_bus::BusError::Unreachable {
            url: "tls://h:4222".into(),
            why: "no answer".into(),
        };
        assert_eq!(exit_code(&anyhow::Error::from(unreachable)), 1);
    }
}
