//! One module per group of commands; [`run`] dispatches.

mod containers;
mod grants;
mod history;
mod people;
mod shares;
pub(crate) mod subscribe;

use std::path::{Path, PathBuf};

use roster_core::actor::Actor;
use roster_core::envelope::Envelope;
use roster_core::ledger::LogReader;
use roster_core::name::Name;
use roster_core::world::World;
use roster_runtime::app::{App, Snapshot, Store};
use roster_runtime::daemon::Daemon;
use roster_runtime::describe;

use crate::args::Cmd;
use crate::error::CliError;
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
    /// The directory relative file arguments are relative to (the client's, under the daemon).
    pub cwd: PathBuf,
    /// The daemon, when the command runs inside `roster serve`.
    pub daemon: Option<&'a Daemon>,
}

impl Env<'_> {
    /// The world as it stands and the log to read: the daemon's (held without holding
    /// anything a decision waits for, so a client that reads slowly slows nobody else), or
    /// opened here.
    fn read(&self) -> Result<Snapshot, CliError> {
        match self.daemon {
            Some(d) => Ok(d.snapshot()?),
            None => Ok(App::open(self.data_dir)?.snapshot()),
        }
    }

    /// The log to read history from: the daemon's (without holding its world), or opened here
    /// without folding it.
    fn history(&self) -> Result<LogReader<dyn Store>, CliError> {
        match self.daemon {
            Some(d) => Ok(d.snapshot()?.log().clone()),
            None => {
                let log: std::sync::Arc<dyn Store> =
                    std::sync::Arc::new(App::open_log(self.data_dir)?);
                Ok(LogReader::new(log))
            }
        }
    }

    /// Runs `f` on the data directory for a decision: the daemon's, held exclusively for the
    /// length of `f` (which must write nothing to the client), or opened here.
    fn decide<T>(&self, f: impl FnOnce(&mut App) -> Result<T, CliError>) -> Result<T, CliError> {
        match self.daemon {
            Some(d) => d.decide(f)?,
            None => f(&mut App::open(self.data_dir)?),
        }
    }

    /// The operator at the keyboard, as an actor.
    fn operator(&self) -> Actor {
        Actor::Operator(self.operator.clone())
    }

    /// The actor for a command: the agent named by `--by`, or the operator.
    fn actor(&self, world: &World, by: Option<AgentRef>) -> Result<Actor, CliError> {
        match by {
            Some(r) => Ok(Actor::Agent(r.resolve(world).map_err(CliError::Input)?.id)),
            None => Ok(self.operator()),
        }
    }

    /// The daemon, for commands that act on containers.
    fn daemon(&self) -> Result<&Daemon, CliError> {
        self.daemon
            .ok_or_else(|| CliError::NoDaemon(self.data_dir.to_owned()))
    }

    /// `path` made absolute against the caller's directory.
    fn path(&self, path: &Path) -> PathBuf {
        self.cwd.join(path)
    }
}

/// Creates a data directory with an empty log (what `roster init` does), for the benches.
pub fn init_data_dir(dir: &Path) -> anyhow::Result<()> {
    history::create_data_dir(dir)?;
    roster_store::SledLog::open(&roster_runtime::app::log_dir(dir))?;
    Ok(())
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
        Cmd::Act(a) => grants::act(a, env),
        Cmd::Approvals { all } => grants::approvals(all, env),
        Cmd::Approve(a) => grants::decide_approval(a, true, env),
        Cmd::Deny(a) => grants::decide_approval(a, false, env),
        Cmd::Log { team, from, follow } => history::log(team, from, follow, env),
        Cmd::Replay { at, team } => history::replay(at, team, env),
        Cmd::Verify => history::verify(env),
        Cmd::Export { file } => history::export(file, env),
        Cmd::Import { file } => history::import(&file, env),
        Cmd::Serve(a) => Ok(roster_runtime::daemon::serve(
            env.data_dir,
            a.into(),
            crate::run_for_client,
        )?),
        Cmd::Status => containers::status(env),
        Cmd::Stop { agent } => containers::stop(agent, env),
        Cmd::Start { agent } => containers::start(agent, env),
        Cmd::Logs {
            agent,
            follow,
            tail,
        } => containers::logs(agent, follow, tail, env),
        Cmd::Purge { agent } => containers::purge(agent, env),
        Cmd::Exec { agent, command } => containers::exec(agent, command, env),
        Cmd::Sandbox(crate::args::SandboxCmd::Verify {
            runtime,
            agent_binary,
            busybox,
        }) => containers::verify(runtime.into(), agent_binary, busybox, env),
        Cmd::Share(c) => shares::share(c, env),
        Cmd::Shares { team } => shares::list(team, env),
        Cmd::Subscribe(a) => subscribe::run(a, env),
        Cmd::Bench(a) => crate::bench::run(a, env.out.clone()),
        Cmd::Demo { bus, verbose } => crate::demo::run(bus.unwrap_or_default(), verbose),
    }
}

/// Tells the daemon, if this runs in one, that the log moved: it starts, stops or removes
/// containers to match. (It also looks by itself every second.)
fn poke(env: &Env<'_>) {
    if let Some(d) = env.daemon {
        d.poke();
    }
}

/// Prints what a mutating command committed: envelopes as JSON lines, or one line each. Given
/// the world after them (a snapshot: nothing is held while the client reads).
fn print_committed(world: &World, envelopes: &[Envelope], out: &Out) -> anyhow::Result<()> {
    for e in envelopes {
        if out.json {
            out.json_line(e)?;
        } else {
            out.line(format!(
                "#{:<5} {}",
                e.seq,
                describe::event(world, &e.event)
            ))?;
        }
    }
    Ok(())
}
