//! `status`, and `stop`, `start`, `logs`, `exec`, `purge` (through the daemon, which owns the
//! containers).

use roster_core::id::AgentId;
use roster_core::port::LogRead;
use roster_core::refs::AgentRef;
use roster_core::world::AgentStatus;

use super::{AdminError, Ctx, Done, Item, Outbox, Serving, Status};

/// Resolves `agent` and lets go of the world before the daemon acts.
fn resolve(agent: &AgentRef, ctx: &Ctx<'_>) -> Result<AgentId, AdminError> {
    Ok(agent.resolve(ctx.read()?.world())?.id)
}

/// The exit code of `roster status` when no daemon runs on the data directory (`roster-agent`
/// says 5 when its gateway cannot be reached, too): a script waits for a daemon with
/// `until roster status; do sleep 1; done`.
pub const NOT_SERVING: u8 = 5;

/// `roster status`: the daemon, its namespace and bus, the outbox's progress; exit
/// [`NOT_SERVING`] when no daemon runs.
pub(super) fn status(ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let Some(d) = ctx.daemon else {
        let events = ctx.history()?.len();
        ctx.reply.send(Item::Status(Status {
            data_dir: ctx.data_dir.to_owned(),
            events,
            serving: None,
        }))?;
        return Err(AdminError::Reported(NOT_SERVING));
    };
    let (events, running) = {
        let now = d.snapshot()?;
        let running = now
            .world()
            .agents()
            .filter(|a| matches!(a.status, AgentStatus::Running { .. }))
            .count();
        (now.log().len(), running as u64)
    };
    ctx.reply.send(Item::Status(Status {
        data_dir: ctx.data_dir.to_owned(),
        events,
        serving: Some(Serving {
            namespace: d.supervisor().engine.ns().clone(),
            bus: d.bus().to_string(),
            agents_running: running,
            outbox: d.outbox_status().map(|o| Outbox {
                next: o.next,
                connected: o.connected,
                last_error: o.last_error,
            }),
        }),
    }))?;
    Ok(())
}

pub(super) fn stop(agent: &AgentRef, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let d = ctx.daemon()?;
    let id = resolve(agent, ctx)?;
    d.stop_agent(id, ctx.operator.clone())?;
    done(ctx, id, Done::Stopped)
}

pub(super) fn start(agent: &AgentRef, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let d = ctx.daemon()?;
    let id = resolve(agent, ctx)?;
    d.start_agent(id)?;
    done(ctx, id, Done::Started)
}

pub(super) fn purge(agent: &AgentRef, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let d = ctx.daemon()?;
    let id = resolve(agent, ctx)?;
    d.purge(id)?;
    done(ctx, id, Done::Purged)
}

fn done(ctx: &Ctx<'_>, agent: AgentId, done: Done) -> Result<(), AdminError> {
    ctx.reply.send(Item::Control { agent, done })?;
    Ok(())
}

pub(super) fn logs(
    agent: &AgentRef,
    follow: bool,
    tail: Option<u32>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    let d = ctx.daemon()?;
    let id = resolve(agent, ctx)?;
    Ok(d.logs(id, follow, tail, &ctx.reply)?)
}

pub(super) fn exec(
    agent: &AgentRef,
    command: Vec<String>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    let d = ctx.daemon()?;
    let id = resolve(agent, ctx)?;
    if command.is_empty() {
        return Err(AdminError::BadRequest(
            "exec: give the command to run".into(),
        ));
    }
    match d.exec(id, command, &ctx.reply)? {
        0 => Ok(()),
        code => Err(AdminError::Reported(
            u8::try_from(code.clamp(1, 255)).unwrap_or(1),
        )),
    }
}
