//! `roster subscribe`: committed events as JSON lines, as an outside subscriber sees them.

use super::Env;
use crate::app::CliError;
use crate::args::SubscribeArgs;

/// `roster subscribe`
pub fn run(_args: SubscribeArgs, _env: &Env<'_>) -> anyhow::Result<()> {
    Err(CliError::Input("`roster subscribe` is being built (issue 4)".into()).into())
}
