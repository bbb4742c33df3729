//! `team create|list`, `hire`, `agents`, `retire`.

use roster_core::command::Command;
use roster_core::event::{AgentSpec, Event};
use roster_core::name::{ImageRef, Name};
use roster_core::refs::{AgentRef, TeamRef};
use roster_core::time::Timestamp;
use roster_core::world::AgentStatus;

use super::{AdminError, AgentItem, AgentRow, Ctx, Hire, Item, TeamRow};
use crate::app::now;
use crate::describe;

pub(super) fn create_team(name: Name, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    ctx.commit(|_| Ok((Command::CreateTeam { name }, ctx.operator())))?;
    Ok(())
}

pub(super) fn teams(ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let app = ctx.read()?;
    for t in app.world().teams() {
        let agents = app
            .world()
            .agents()
            .filter(|a| a.team == t.id && !a.is_retired())
            .count();
        ctx.reply.send(Item::Team(TeamRow {
            id: t.id,
            name: t.name.clone(),
            agents: agents as u64,
            version: t.version,
            created_at: t.created_at,
        }))?;
    }
    Ok(())
}

pub(super) fn hire(h: Hire, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let (team, actor) = {
        let app = ctx.read()?;
        let team = h.team.resolve(app.world())?.id;
        (team, ctx.actor(app.world(), h.by.as_ref())?)
    };
    let mut spec = AgentSpec::base();
    spec.image = h.image.unwrap_or_else(ImageRef::base);
    let defaults = crate::config::Config::load(ctx.data_dir)?.agent;
    spec.runtime = h.runtime.or(defaults.runtime).unwrap_or(spec.runtime);
    let r = &mut spec.resources;
    r.cpu_millis = h.cpus.or(defaults.cpus).map_or(r.cpu_millis, u32::from);
    r.memory_mib = h
        .memory
        .or(defaults.memory_mib)
        .map_or(r.memory_mib, u32::from);
    r.pids = h.pids.or(defaults.pids).map_or(r.pids, u32::from);
    r.tmpfs_mib = h
        .tmpfs
        .or(defaults.tmpfs_mib)
        .map_or(r.tmpfs_mib, u32::from);
    r.timeout_secs = h
        .timeout
        .or(defaults.timeout_secs)
        .map(u32::from)
        .or(r.timeout_secs);
    let disk = h.disk.or(defaults.disk_mib).unwrap_or_default();
    let cmd = Command::Hire {
        team,
        name: h.name,
        role: h.role,
        spec: spec.clone(),
        disk,
        grants: h.grants,
    };
    // Under the daemon, a hire the rules allow but no container could be made for is refused
    // before it is recorded; the engine is asked without holding the daemon's lock. (Without a
    // daemon, the daemon refuses to start it at its next start, and says why.)
    if let Some(d) = ctx.daemon {
        if d.read(|app| app.would_accept(&cmd, &actor))? {
            d.admit(&spec, disk)?;
        }
    }
    let (committed, after) = ctx.decide(|app| Ok((app.execute(cmd, &actor)?, app.snapshot())))?;
    ctx.poke();
    if let Some(agent) = committed.iter().find_map(|e| match &e.event {
        Event::AgentHired { agent, .. } => Some(*agent),
        _ => None,
    }) {
        ctx.reply.send(Item::Hired {
            agent,
            address: describe::agent(after.world(), agent),
        })?;
    }
    super::send_committed(&ctx.reply, after.world(), &committed)?;
    Ok(())
}

/// "5m" for a start five minutes before `now`.
fn since(t: Timestamp, now: Timestamp) -> String {
    crate::describe::relative(t, now)
        .trim_end_matches(" ago")
        .to_string()
}

pub(super) fn agents(team: Option<TeamRef>, all: bool, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let app = ctx.read()?;
    let team = team
        .map(|t| t.resolve(app.world()).map(|t| t.id))
        .transpose()?;
    let now = now();
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
        let address = describe::agent(app.world(), ag.id);
        let team = describe::team(app.world(), ag.team);
        rows.push((ag.clone(), active, by, address, team));
    }
    // The engine is asked without holding the world: agents' gateway calls go on meanwhile.
    drop(app);
    let mut engine_error = None;
    for (ag, active, by, address, team) in rows {
        let mut status = match &ag.status {
            AgentStatus::Hired => "hired".to_string(),
            AgentStatus::Running { .. } => "running".to_string(),
            AgentStatus::Stopped { reason } => {
                format!("stopped ({})", describe::stop_reason(reason))
            }
            AgentStatus::Retired => "retired".to_string(),
        };
        // A start that fails (tried again with a backoff) is said, with why.
        if ag.wants_running() && !matches!(ag.status, AgentStatus::Running { .. }) {
            if let Some(why) = ctx.daemon.and_then(|d| d.start_error(ag.id)) {
                status = format!("{status}; cannot start: {why}");
            }
        }
        let (container, running_since) = match ctx.daemon {
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
        ctx.reply.send(Item::Agent(AgentItem {
            row: AgentRow {
                id: ag.id,
                team,
                name: ag.name.clone(),
                role: ag.role.clone(),
                status,
                container,
                running_since,
                active_grants: active as u64,
                parent: ag.parent,
                image: ag.spec.image.clone(),
                runtime: ag.spec.runtime,
                hired_at: ag.hired_at,
            },
            address,
            by,
        }))?;
    }
    if let Some(e) = engine_error {
        ctx.reply.note(format!(
            "the container engine does not answer ({e}): containers shown as unknown"
        ))?;
    }
    Ok(())
}

pub(super) fn retire(
    agent: &AgentRef,
    by: Option<&AgentRef>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    ctx.commit(|world| {
        let id = agent.resolve(world)?.id;
        Ok((Command::Retire { agent: id }, ctx.actor(world, by)?))
    })?;
    Ok(())
}
