//! `team create|list`, `hire`, `agents`, `retire`.

use roster_core::command::Command;
use roster_core::event::{AgentSpec, Event, RuntimeKind};
use roster_core::name::ImageRef;
use roster_core::world::AgentStatus;
use roster_runtime::app::now;
use roster_runtime::describe;
use serde_json::json;

use super::{poke, print_committed, Env};
use crate::args::{HireArgs, TeamCmd};
use crate::error::CliError;
use crate::output::{relative, Table};
use crate::refs::{AgentRef, TeamRef};

pub(super) fn team(cmd: TeamCmd, env: &Env<'_>) -> anyhow::Result<()> {
    match cmd {
        TeamCmd::Create { name } => {
            let (committed, after) = env.decide(|app| {
                let committed = app.execute(Command::CreateTeam { name }, &env.operator())?;
                Ok((committed, app.snapshot()))
            })?;
            print_committed(after.world(), &committed, &env.out)
        }
        TeamCmd::List => {
            let app = env.read()?;
            let now = now();
            let mut table = Table::new(&["team", "agents", "events", "created", "id"]);
            for t in app.world().teams() {
                let agents = app
                    .world()
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
    let (team, actor) = {
        let app = env.read()?;
        let team = a.team.resolve(app.world()).map_err(CliError::Input)?.id;
        (team, env.actor(app.world(), a.by)?)
    };
    let mut spec = AgentSpec::base();
    spec.image = a.image.unwrap_or_else(ImageRef::base);
    let defaults = roster_runtime::config::Config::load(env.data_dir)?.agent;
    spec.runtime = a
        .runtime
        .map(RuntimeKind::from)
        .or(defaults.runtime)
        .unwrap_or(spec.runtime);
    let r = &mut spec.resources;
    let cpus = defaults.cpu_millis().map_err(CliError::Input)?;
    r.cpu_millis = a.cpus.or(cpus).unwrap_or(r.cpu_millis);
    r.memory_mib = a.memory.or(defaults.memory_mib).unwrap_or(r.memory_mib);
    r.pids = a.pids.or(defaults.pids).unwrap_or(r.pids);
    r.tmpfs_mib = a.tmpfs.or(defaults.tmpfs_mib).unwrap_or(r.tmpfs_mib);
    r.timeout_secs = a.timeout.or(defaults.timeout_secs).or(r.timeout_secs);
    let cmd = Command::Hire {
        team,
        name: a.name,
        role: a.role,
        spec: spec.clone(),
        grants: a.grants,
    };
    // Under the daemon, a hire the rules allow but no container could be made for is refused
    // before it is recorded; the engine is asked without holding the daemon's lock. (Without a
    // daemon, the daemon refuses to start it at its next start, and says why.)
    if let Some(d) = env.daemon {
        if d.read(|app| app.would_accept(&cmd, &actor))? {
            d.admit(&spec)?;
        }
    }
    let (committed, app) = env.decide(|app| Ok((app.execute(cmd, &actor)?, app.snapshot())))?;
    poke(env);
    if !env.out.json {
        if let Some(id) = committed.iter().find_map(|e| match &e.event {
            Event::AgentHired { agent, .. } => Some(*agent),
            _ => None,
        }) {
            env.out.line(format!(
                "hired {} as {id}",
                describe::agent(app.world(), id)
            ))?;
        }
    }
    print_committed(app.world(), &committed, &env.out)
}

/// "5m" for a start five minutes before `now`.
fn since(t: roster_core::time::Timestamp, now: roster_core::time::Timestamp) -> String {
    relative(t, now).trim_end_matches(" ago").to_string()
}

pub(super) fn agents(team: Option<TeamRef>, all: bool, env: &Env<'_>) -> anyhow::Result<()> {
    let app = env.read()?;
    let team = team
        .map(|t| t.resolve(app.world()).map(|t| t.id))
        .transpose()
        .map_err(CliError::Input)?;
    let now = now();
    let mut table = Table::new(&[
        "agent",
        "role",
        "status",
        "container",
        "runtime",
        "grants",
        "hired",
        "by",
        "id",
    ]);
    let mut rows = Vec::new();
    for ag in app.world().agents() {
        if team.is_some_and(|t| t != ag.team) || (!all && ag.is_retired()) {
            continue;
        }
        let active = app.world().active_grants_of(ag.id, now).len();
        let by = ag.parent.map_or_else(
            || "operator".to_string(),
            |p| describe::agent(app.world(), p),
        );
        let name = describe::agent(app.world(), ag.id);
        let team = describe::team(app.world(), ag.team);
        rows.push((ag.clone(), active, by, name, team));
    }
    // The engine is asked without holding the store: agents' gateway calls go on meanwhile.
    drop(app);
    let mut engine_error = None;
    for (ag, active, by, name, team) in rows {
        let status = match &ag.status {
            AgentStatus::Hired => "hired".to_string(),
            AgentStatus::Running { .. } => "running".to_string(),
            AgentStatus::Stopped { reason } => {
                format!("stopped ({})", describe::stop_reason(reason))
            }
            AgentStatus::Retired => "retired".to_string(),
        };
        let (container, uptime) = match env.daemon {
            None => ("(no daemon)".to_string(), None),
            Some(_) if ag.is_retired() => ("-".to_string(), None),
            Some(d) => match d.container(ag.id) {
                // The list is the log's: an engine that does not answer (restarting, stopped)
                // leaves the containers unknown, said once, and the agents listed.
                Err(e) => {
                    if engine_error.is_none() {
                        engine_error = Some(e.to_string());
                    }
                    ("unknown".to_string(), None)
                }
                Ok(None) => ("none".to_string(), None),
                Ok(Some(c)) if c.running => (
                    format!(
                        "up {}",
                        c.started_at.map_or_else(|| "?".into(), |t| since(t, now))
                    ),
                    c.started_at,
                ),
                Ok(Some(c)) => (
                    match c.exit_code {
                        Some(code) if c.oom_killed => format!("{} (oom, {code})", c.status),
                        Some(code) => format!("{} ({code})", c.status),
                        None => c.status.to_string(),
                    },
                    None,
                ),
            },
        };
        let runtime = ag.spec.runtime.as_str();
        if env.out.json {
            env.out.json_line(&json!({
                "id": ag.id, "team": team, "name": ag.name,
                "role": ag.role, "status": status, "container": container,
                "running_since": uptime, "active_grants": active,
                "parent": ag.parent, "image": ag.spec.image, "runtime": ag.spec.runtime,
                "hired_at": ag.hired_at,
            }))?;
        }
        table.row(vec![
            name,
            ag.role.to_string(),
            status,
            container,
            runtime.to_string(),
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
    if let Some(e) = engine_error {
        env.out.note(format!(
            "the container engine does not answer ({e}): containers shown as unknown"
        ))?;
    }
    Ok(())
}

pub(super) fn retire(agent: AgentRef, by: Option<AgentRef>, env: &Env<'_>) -> anyhow::Result<()> {
    let (committed, after) = env.decide(|app| {
        let id = agent.resolve(app.world()).map_err(CliError::Input)?.id;
        let actor = env.actor(app.world(), by)?;
        Ok((
            app.execute(Command::Retire { agent: id }, &actor)?,
            app.snapshot(),
        ))
    })?;
    poke(env);
    print_committed(after.world(), &committed, &env.out)
}
