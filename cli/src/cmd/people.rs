//! `team create|list`, `hire`, `agents`, `retire`.

use roster_core::command::Command;
use roster_core::event::{AgentSpec, Event};
use roster_core::name::ImageRef;
use roster_core::world::AgentStatus;
use serde_json::json;

use super::{actor_for, print_committed, Env};
use crate::app::{now, CliError};
use crate::args::{HireArgs, TeamCmd};
use crate::describe;
use crate::output::{relative, Table};
use crate::refs::{AgentRef, TeamRef};

pub(super) fn team(cmd: TeamCmd, env: &Env<'_>) -> anyhow::Result<()> {
    let mut app = env.open()?;
    match cmd {
        TeamCmd::Create { name } => {
            let actor = app.operator_actor();
            let committed = app.execute(Command::CreateTeam { name }, &actor)?;
            print_committed(&app, &committed, env.out)
        }
        TeamCmd::List => {
            let now = now();
            let mut table = Table::new(&["team", "agents", "events", "created", "id"]);
            for t in app.world.teams() {
                let agents = app
                    .world
                    .agents()
                    .filter(|a| a.team == t.id && !a.is_retired())
                    .count();
                if env.out.json {
                    env.out.json_line(&json!({
                        "id": t.id, "name": t.name, "agents": agents,
                        "version": t.version, "created_at": t.created_at,
                    }))?;
                }
                table.row(vec![
                    t.name.to_string(),
                    agents.to_string(),
                    t.version.to_string(),
                    relative(t.created_at, now),
                    t.id.to_string(),
                ]);
            }
            if !env.out.json {
                env.out.line(if table.is_empty() {
                    "no teams yet".into()
                } else {
                    table.render()
                })?;
            }
            Ok(())
        }
    }
}

pub(super) fn hire(a: HireArgs, env: &Env<'_>) -> anyhow::Result<()> {
    let mut app = env.open()?;
    let team = a.team.resolve(&app.world).map_err(CliError::Input)?.id;
    let actor = actor_for(&app, a.by)?;
    let mut spec = AgentSpec::base();
    spec.image = a.image.unwrap_or_else(ImageRef::base);
    spec.runtime = a.runtime.into();
    let cmd = Command::Hire {
        team,
        name: a.name,
        role: a.role,
        spec,
        grants: a.grants,
    };
    let committed = app.execute(cmd, &actor)?;
    if !env.out.json {
        if let Some(id) = committed.iter().find_map(|e| match &e.event {
            Event::AgentHired { agent, .. } => Some(*agent),
            _ => None,
        }) {
            env.out
                .line(format!("hired {} as {id}", describe::agent(&app.world, id)))?;
        }
    }
    print_committed(&app, &committed, env.out)
}

pub(super) fn agents(team: Option<TeamRef>, all: bool, env: &Env<'_>) -> anyhow::Result<()> {
    let app = env.open()?;
    let team = team
        .map(|t| t.resolve(&app.world).map(|t| t.id))
        .transpose()
        .map_err(CliError::Input)?;
    let now = now();
    let mut table = Table::new(&["agent", "role", "status", "grants", "hired", "by", "id"]);
    for ag in app.world.agents() {
        if team.is_some_and(|t| t != ag.team) || (!all && ag.is_retired()) {
            continue;
        }
        let active = app.world.active_grants_of(ag.id, now).len();
        let status = match &ag.status {
            AgentStatus::Hired => "hired".to_string(),
            AgentStatus::Running { .. } => "running".to_string(),
            AgentStatus::Stopped { reason } => format!("stopped ({reason:?})"),
            AgentStatus::Retired => "retired".to_string(),
        };
        let by = ag.parent.map_or_else(
            || "operator".to_string(),
            |p| describe::agent(&app.world, p),
        );
        if env.out.json {
            env.out.json_line(&json!({
                "id": ag.id, "team": describe::team(&app.world, ag.team), "name": ag.name,
                "role": ag.role, "status": status, "active_grants": active,
                "parent": ag.parent, "image": ag.spec.image, "runtime": ag.spec.runtime,
                "hired_at": ag.hired_at,
            }))?;
        }
        table.row(vec![
            describe::agent(&app.world, ag.id),
            ag.role.to_string(),
            status,
            active.to_string(),
            relative(ag.hired_at, now),
            by,
            ag.id.to_string(),
        ]);
    }
    if !env.out.json {
        env.out.line(if table.is_empty() {
            "no agents".into()
        } else {
            table.render()
        })?;
    }
    Ok(())
}

pub(super) fn retire(agent: AgentRef, by: Option<AgentRef>, env: &Env<'_>) -> anyhow::Result<()> {
    let mut app = env.open()?;
    let id = agent.resolve(&app.world).map_err(CliError::Input)?.id;
    let actor = actor_for(&app, by)?;
    let committed = app.execute(Command::Retire { agent: id }, &actor)?;
    print_committed(&app, &committed, env.out)
}
