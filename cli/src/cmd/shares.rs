//! `share propose|accept|close`, `shares`: consent to context crossing team boundaries.

use roster_core::command::Command;
use roster_core::world::{Share, ShareState, World};
use roster_runtime::gateway::answer::share_view;

use super::{poke, print_committed, Env};
use crate::args::ShareCmd;
use crate::error::CliError;
use crate::output::Table;
use crate::refs::TeamRef;

/// `roster share …`
pub fn share(cmd: ShareCmd, env: &Env<'_>) -> anyhow::Result<()> {
    let (committed, after) = env.decide(|app| {
        let (command, by) = match cmd {
            ShareCmd::Propose {
                from,
                to,
                topics,
                by,
            } => {
                let from = from.resolve(app.world()).map_err(CliError::Input)?.id;
                let to = to.resolve(app.world()).map_err(CliError::Input)?.id;
                (Command::ProposeShare { from, to, topics }, by)
            }
            ShareCmd::Accept { share, by } => (Command::AcceptShare { share }, by),
            ShareCmd::Close { share, by } => (Command::CloseShare { share }, by),
        };
        let actor = env.actor(app.world(), by)?;
        Ok((app.execute(command, &actor)?, app.snapshot()))
    })?;
    poke(env);
    print_committed(after.world(), &committed, &env.out)?;
    Ok(())
}

fn state(s: &Share) -> &'static str {
    match s.state {
        ShareState::Proposed => "proposed",
        ShareState::Open => "open",
        ShareState::Closed => "closed",
    }
}

fn team_name(world: &World, id: roster_core::id::TeamId) -> String {
    world
        .team(id)
        .map_or_else(|| id.to_string(), |t| t.name.to_string())
}

/// `roster shares`
pub fn list(team: Option<TeamRef>, env: &Env<'_>) -> anyhow::Result<()> {
    let app = env.read()?;
    let team = team
        .map(|t| t.resolve(app.world()).map(|t| t.id))
        .transpose()
        .map_err(CliError::Input)?;
    let mut table = Table::new(&["share", "from", "to", "topics", "state", "crossed"]);
    for s in app.world().shares() {
        if team.is_some_and(|t| t != s.from && t != s.to) {
            continue;
        }
        if env.out.json {
            // The share as the gateway's `shares` gives it: one type, one shape.
            env.out.json_line(&share_view(app.world(), s))?;
        } else {
            table.row(vec![
                s.id.to_string(),
                team_name(app.world(), s.from),
                team_name(app.world(), s.to),
                s.topics.as_str().to_owned(),
                state(s).to_owned(),
                s.crossings.to_string(),
            ]);
        }
    }
    if !env.out.json {
        env.out.line(if table.is_empty() {
            "no shares".into()
        } else {
            table.render()
        })?;
    }
    Ok(())
}
