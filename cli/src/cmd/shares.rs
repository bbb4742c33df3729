//! `share propose|accept|close`, `shares`: consent to context crossing team boundaries.

use super::Env;
use crate::app::CliError;
use crate::args::ShareCmd;
use crate::refs::TeamRef;

/// `roster share …`
pub fn share(_cmd: ShareCmd, _env: &Env<'_>) -> anyhow::Result<()> {
    Err(CliError::Input("`roster share` is being built (issue 4)".into()).into())
}

/// `roster shares`
pub fn list(_team: Option<TeamRef>, _env: &Env<'_>) -> anyhow::Result<()> {
    Err(CliError::Input("`roster shares` is being built (issue 4)".into()).into())
}
