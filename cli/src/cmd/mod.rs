//! One module per group of commands; [`run`] dispatches.

mod grants;
mod history;
mod people;

use std::path::Path;

use roster_core::actor::Actor;
use roster_core::envelope::Envelope;
use roster_core::name::Name;

use crate::app::{App, CliError};
use crate::args::Cmd;
use crate::describe;
use crate::output::Out;
use crate::refs::AgentRef;

/// Everything a command needs from the command line.
#[derive(Debug)]
pub struct Env<'a> {
    /// The data directory.
    pub data_dir: &'a Path,
    /// The operator's name.
    pub operator: Name,
    /// The output mode.
    pub out: Out,
}

impl Env<'_> {
    fn open(&self) -> Result<App, CliError> {
        App::open(self.data_dir, self.operator.clone())
    }
}

/// Runs one command.
pub fn run(cmd: Cmd, env: &Env<'_>) -> anyhow::Result<()> {
    match cmd {
        Cmd::Init => history::init(env),
        Cmd::Team(c) => people::team(c, env),
        Cmd::Hire(a) => people::hire(a, env),
        Cmd::Agents { team, all } => people::agents(team, all, env),
        Cmd::Retire { agent, by } => people::retire(agent, by, env),
        Cmd::Grant {
            agent,
            capability,
            from,
            by,
        } => grants::grant(agent, capability, from, by, env),
        Cmd::Revoke { grant, by } => grants::revoke(grant, by, env),
        Cmd::Grants { agent } => grants::list(agent, env),
        Cmd::Check {
            agent,
            action,
            resource,
            amount,
        } => grants::check(agent, action, resource, amount, env),
        Cmd::Act {
            agent,
            action,
            resource,
            amount,
            approval,
        } => grants::act(agent, action, resource, amount, approval, env),
        Cmd::Approvals { all } => grants::approvals(all, env),
        Cmd::Approve(a) => grants::decide_approval(a, true, env),
        Cmd::Deny(a) => grants::decide_approval(a, false, env),
        Cmd::Log { team, from, follow } => history::log(team, from, follow, env),
        Cmd::Replay { at, team } => history::replay(at, team, env),
        Cmd::Verify => history::verify(env),
        Cmd::Export { file } => history::export(file, env),
        Cmd::Import { file } => history::import(&file, env),
        Cmd::Bench(a) => crate::bench::run(a, env.out),
        Cmd::Demo => crate::demo::run(env.out),
    }
}

/// The actor for a command: the agent named by `--by`, or the operator.
fn actor_for(app: &App, by: Option<AgentRef>) -> Result<Actor, CliError> {
    match by {
        Some(r) => Ok(Actor::Agent(
            r.resolve(&app.world).map_err(CliError::Input)?.id,
        )),
        None => Ok(app.operator_actor()),
    }
}

/// Prints what a mutating command committed: envelopes as JSON lines, or one line each.
fn print_committed(app: &App, envelopes: &[Envelope], out: Out) -> anyhow::Result<()> {
    for e in envelopes {
        if out.json {
            out.json_line(e)?;
        } else {
            out.line(format!(
                "#{:<5} {}",
                e.seq,
                describe::event(&app.world, &e.event)
            ))?;
        }
    }
    Ok(())
}
