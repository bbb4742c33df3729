//! `stop`, `start`, `logs`, `exec`, `purge` (through the daemon, which owns the containers) and
//! `sandbox verify` (straight to the engine, in a namespace of its own).

use std::path::PathBuf;

use roster_core::event::RuntimeKind;
use roster_core::id::AgentId;
use serde_json::json;

use roster_core::port::LogRead;

use super::Env;
use crate::error::CliError;
use crate::refs::AgentRef;

/// Resolves `agent` and lets go of the store before the daemon acts.
fn resolve(agent: &AgentRef, env: &Env<'_>) -> Result<AgentId, CliError> {
    Ok(agent
        .resolve(env.read()?.world())
        .map_err(CliError::Input)?
        .id)
}

/// `roster status`: the daemon, its namespace and bus, the outbox's progress.
pub(super) fn status(env: &Env<'_>) -> anyhow::Result<()> {
    let Some(d) = env.daemon else {
        let events = env.history()?.len();
        if env.out.json {
            return Ok(env
                .out
                .json_line(&json!({ "serving": false, "events": events }))?);
        }
        return Ok(env.out.line(format!(
            "roster serve is not running on {} ({events} events in the log)",
            env.data_dir.display()
        ))?);
    };
    let (events, running) = {
        let now = d.snapshot()?;
        let running = now
            .world()
            .agents()
            .filter(|a| matches!(a.status, roster_core::world::AgentStatus::Running { .. }))
            .count();
        (now.log().len(), running)
    };
    let ns = d.supervisor().engine.ns().clone();
    let outbox = d.outbox_status();
    if env.out.json {
        return Ok(env.out.json_line(&json!({
            "serving": true,
            "namespace": ns,
            "bus": d.bus().to_string(),
            "events": events,
            "agents_running": running,
            "published": outbox.as_ref().map(|o| o.next),
            "bus_connected": outbox.as_ref().map(|o| o.connected),
            "bus_error": outbox.as_ref().and_then(|o| o.last_error.clone()),
        }))?);
    }
    env.out.line(format!(
        "roster serve is running on {} (namespace {ns}); {running} agent(s) running; {events} events",
        env.data_dir.display()
    ))?;
    let bus = match outbox {
        None => format!(
            "bus: {} (in-process; no outside subscribers but `roster subscribe`)",
            d.bus()
        ),
        Some(o) => format!(
            "bus: {} ({}); {} of {events} events published to JetStream{}",
            d.bus(),
            if o.connected {
                "connected"
            } else {
                "NOT connected: events wait in the log"
            },
            o.next,
            o.last_error
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default()
        ),
    };
    Ok(env.out.line(bus)?)
}

pub(super) fn stop(agent: AgentRef, env: &Env<'_>) -> anyhow::Result<()> {
    let d = env.daemon()?;
    let id = resolve(&agent, env)?;
    d.stop_agent(id, env.operator.clone())?;
    say(env, "stopped", id)
}

pub(super) fn start(agent: AgentRef, env: &Env<'_>) -> anyhow::Result<()> {
    let d = env.daemon()?;
    let id = resolve(&agent, env)?;
    d.start_agent(id)?;
    say(env, "started", id)
}

pub(super) fn purge(agent: AgentRef, env: &Env<'_>) -> anyhow::Result<()> {
    let d = env.daemon()?;
    let id = resolve(&agent, env)?;
    d.purge(id)?;
    say(env, "purged", id)
}

fn say(env: &Env<'_>, what: &str, id: AgentId) -> anyhow::Result<()> {
    if env.out.json {
        Ok(env.out.json_line(&json!({ "agent": id, what: true }))?)
    } else {
        Ok(env.out.line(format!("{what} {id}"))?)
    }
}

pub(super) fn logs(
    agent: AgentRef,
    follow: bool,
    tail: Option<u32>,
    env: &Env<'_>,
) -> anyhow::Result<()> {
    let d = env.daemon()?;
    let id = resolve(&agent, env)?;
    Ok(d.logs(id, follow, tail, &env.out)?)
}

pub(super) fn exec(agent: AgentRef, command: Vec<String>, env: &Env<'_>) -> anyhow::Result<()> {
    let d = env.daemon()?;
    let id = resolve(&agent, env)?;
    let code = d.exec(id, command, &env.out)?;
    if code == 0 {
        Ok(())
    } else {
        Err(CliError::Reported(i32::try_from(code).unwrap_or(1).clamp(1, 255)).into())
    }
}

pub(super) fn verify(
    runtime: RuntimeKind,
    agent_binary: Option<PathBuf>,
    busybox: PathBuf,
    env: &Env<'_>,
) -> anyhow::Result<()> {
    let agent_binary = match agent_binary {
        Some(p) => p,
        None => roster_runtime::daemon::find_agent_binary().ok_or_else(|| {
            CliError::Input(
                "no static roster-agent found: build it with scripts/build-agent and pass \
                 --agent-binary (or set ROSTER_AGENT_BINARY)"
                    .into(),
            )
        })?,
    };
    // The suite mounts it: an absolute path, whatever the working directory.
    let agent_binary = std::path::absolute(&agent_binary)?;
    let busybox = std::path::absolute(&busybox)?;
    let scratch = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let checks = rt.block_on(async {
        let ns = roster_core::name::Name::parse("roster-verify")?;
        let engine = roster_sandbox::Engine::connect(ns).await?;
        anyhow::Ok(
            roster_sandbox::verify::run_suite(
                &engine,
                runtime,
                &agent_binary,
                &busybox,
                scratch.path(),
            )
            .await?,
        )
    })?;
    let failed = checks.iter().filter(|c| !c.passed).count();
    for c in &checks {
        if env.out.json {
            env.out
                .json_line(&json!({"check": c.name, "passed": c.passed, "seen": c.seen}))?;
        } else {
            let mark = if c.passed { "✓" } else { "✗" };
            env.out.line(format!("{mark} {:<32} {}", c.name, c.seen))?;
        }
    }
    if !env.out.json {
        let rt = runtime.as_str();
        env.out.line(format!(
            "{} of {} checks held under {rt}",
            checks.len() - failed,
            checks.len()
        ))?;
    }
    if failed > 0 {
        return Err(CliError::Reported(1).into());
    }
    Ok(())
}
