//! The supervisor: makes the containers match what the log wants.
//!
//! Level-triggered: on every poke (a command committed, an engine event, a timer, or once a
//! second) it compares each agent's wanted state — a fold of the log, `Agent::wants_running` —
//! with what it knows of the engine, and converges: starts what should run (after a crash, with
//! exponential backoff), removes the containers of retired agents, stops what ran past its
//! timeout. Everything it does to an agent is recorded through `decide` as the runtime
//! (`Command::Lifecycle`), so the log says what happened and why.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use roster_core::actor::Actor;
use roster_core::command::{Command, Lifecycle};
use roster_core::event::StopReason;
use roster_core::id::AgentId;
use roster_core::name::Name;
use roster_core::world::{AgentStatus, World};
use roster_sandbox::plan::{plan, HostPaths, STOP_GRACE_SECS};
use roster_sandbox::{stop_reason, Engine, EngineEvent};

/// SIGTERM, then this long, then SIGKILL.
const GRACE: Duration = Duration::from_secs(STOP_GRACE_SECS.unsigned_abs());

use super::Daemon;
use crate::gateway::AgentGateway;

/// The first restart waits this long; each further crash in a row doubles it.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Restarts never wait longer than this.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run this long resets the backoff.
const STABLE: Duration = Duration::from_secs(60);

/// What the supervisor knows of one agent's container.
#[derive(Debug, Default)]
pub struct Slot {
    /// Its container runs (as far as the engine told us).
    pub running: bool,
    /// When it last started.
    pub started: Option<Instant>,
    /// We are stopping it ourselves for this reason: its death is not a crash.
    pub stopping: Option<StopReason>,
    /// Crashes in a row.
    pub failures: u32,
    /// Not before this instant may it be started again.
    pub not_before: Option<Instant>,
    /// A start is under way.
    pub starting: bool,
    /// Its gateway socket, open while it is not retired.
    pub gateway: Option<AgentGateway>,
    /// The timeout watch of the current run.
    pub timeout: Option<tokio::task::JoinHandle<()>>,
}

/// The supervisor's state; shared by its tasks.
#[derive(Debug)]
pub struct Supervisor {
    /// The engine.
    pub engine: Engine,
    /// This runtime's namespace.
    pub ns: Name,
    /// `DATA/gateways`: one directory per agent, mode 0700 here.
    pub gateways: PathBuf,
    /// The static `roster-agent` mounted into every container.
    pub agent_binary: PathBuf,
    slots: Mutex<HashMap<AgentId, Slot>>,
    /// Wakes the converge loop.
    pub wake: tokio::sync::Notify,
}

impl Supervisor {
    /// A supervisor over `engine`.
    pub fn new(engine: Engine, ns: Name, gateways: PathBuf, agent_binary: PathBuf) -> Self {
        Self {
            engine,
            ns,
            gateways,
            agent_binary,
            slots: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// The slots, locked. Never held across an await.
    pub fn slots(&self) -> MutexGuard<'_, HashMap<AgentId, Slot>> {
        // A panic while holding it would be a bug; the map stays usable either way.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes every agent's gateway and waits for their connections to end (the daemon is
    /// stopping).
    pub async fn close_gateways(&self) {
        let open: Vec<AgentGateway> = self
            .slots()
            .values_mut()
            .filter_map(|s| s.gateway.take())
            .collect();
        for gw in open {
            tracing::debug!(
                "closing the gateway of {} at {}",
                gw.agent(),
                gw.path().display()
            );
            gw.close().await;
        }
    }

    /// The gateway directory of `agent`.
    pub fn gateway_dir(&self, agent: AgentId) -> PathBuf {
        self.gateways.join(agent.to_string())
    }
}

/// How long to wait before restart number `failures` (1 = the first).
pub fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    BACKOFF_FIRST.saturating_mul(1 << shift).min(BACKOFF_MAX)
}

/// Records a lifecycle change as `actor` (the runtime, or the operator who stopped it).
pub fn record(d: &Daemon, agent: AgentId, change: Lifecycle, actor: &Actor) {
    let result = d
        .app()
        .and_then(|mut app| app.execute(Command::Lifecycle { agent, change }, actor));
    if let Err(e) = result {
        tracing::warn!("cannot record the lifecycle of {agent}: {e}");
    }
}

/// Adopts what the engine has at daemon start: removes containers the log does not know or
/// retired, adopts running ones, and records the deaths it missed while no daemon ran.
pub async fn reconcile(d: &Arc<Daemon>, sup: &Arc<Supervisor>) -> anyhow::Result<()> {
    let found = sup.engine.list().await?;
    let world = d.app()?.world.clone();
    let mut seen = std::collections::HashSet::new();
    for f in found {
        let known = f
            .agent
            .clone()
            .ok()
            .and_then(|a| world.agent(a).map(|ag| (a, ag)));
        let Some((agent, ag)) = known.filter(|(_, ag)| !ag.is_retired()) else {
            tracing::info!("removing container {} that the log does not want", f.name);
            sup.engine.remove_named(&f.name).await?;
            continue;
        };
        seen.insert(agent);
        let state = sup.engine.inspect(agent).await?;
        match state {
            Some(s) if s.running => {
                open_gateway(d, sup, agent).await?;
                {
                    let mut slots = sup.slots();
                    let slot = slots.entry(agent).or_default();
                    slot.running = true;
                    slot.started = Some(Instant::now());
                    if let Some(secs) = ag.spec.resources.timeout_secs {
                        // The time it ran before the daemon restarted is not known exactly:
                        // the agent gets its full timeout again from now.
                        slot.timeout = Some(watch_timeout(d.clone(), sup.clone(), agent, secs));
                    }
                }
                if !matches!(ag.status, AgentStatus::Running { .. }) {
                    let dd = d.clone();
                    let id = s.id.clone();
                    tokio::task::spawn_blocking(move || {
                        record(&dd, agent, Lifecycle::Started(id), &Actor::Runtime)
                    })
                    .await?;
                }
            }
            Some(s) => {
                if matches!(ag.status, AgentStatus::Running { .. }) {
                    let reason = stop_reason(s.exit_code.unwrap_or(-1), s.oom_killed, false, false);
                    let dd = d.clone();
                    tokio::task::spawn_blocking(move || {
                        record(&dd, agent, Lifecycle::Stopped(reason), &Actor::Runtime)
                    })
                    .await?;
                }
            }
            None => {}
        }
    }
    // Agents the log says run but whose container is gone altogether.
    for ag in world.agents() {
        if matches!(ag.status, AgentStatus::Running { .. }) && !seen.contains(&ag.id) {
            let (dd, agent) = (d.clone(), ag.id);
            tokio::task::spawn_blocking(move || {
                record(
                    &dd,
                    agent,
                    Lifecycle::Stopped(StopReason::Crashed { code: -1 }),
                    &Actor::Runtime,
                )
            })
            .await?;
        }
    }
    Ok(())
}

/// Converges forever: on every wake, and at least once a second.
pub async fn converge_loop(d: Arc<Daemon>, sup: Arc<Supervisor>) {
    loop {
        converge(&d, &sup);
        tokio::select! {
            _ = sup.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One pass: spawn a start for each agent that should run and does not, a removal for each
/// retired agent that still has a container or a gateway.
fn converge(d: &Arc<Daemon>, sup: &Arc<Supervisor>) {
    let world: World = match d.app() {
        Ok(app) => app.world.clone(),
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    let now = Instant::now();
    let mut slots = sup.slots();
    for ag in world.agents() {
        if ag.is_retired() {
            if let Some(mut slot) = slots.remove(&ag.id) {
                if let Some(t) = slot.timeout.take() {
                    t.abort();
                }
                slot.gateway.take();
                tokio::spawn(remove_retired(sup.clone(), ag.id));
            }
            continue;
        }
        if !ag.wants_running() {
            continue;
        }
        let slot = slots.entry(ag.id).or_default();
        if slot.running || slot.starting || slot.not_before.is_some_and(|t| t > now) {
            continue;
        }
        slot.starting = true;
        tokio::spawn(start(d.clone(), sup.clone(), ag.id));
    }
}

/// Opens `agent`'s gateway socket if it is not open.
async fn open_gateway(
    d: &Arc<Daemon>,
    sup: &Arc<Supervisor>,
    agent: AgentId,
) -> anyhow::Result<()> {
    if sup.slots().get(&agent).is_some_and(|s| s.gateway.is_some()) {
        return Ok(());
    }
    let gw = crate::gateway::serve_agent(
        &sup.gateway_dir(agent),
        agent,
        d.backend(),
        crate::gateway::Limits::default(),
    )
    .await?;
    sup.slots().entry(agent).or_default().gateway = Some(gw);
    Ok(())
}

/// Starts `agent`'s container now, for an operator's `roster start`: its backoff is forgotten.
pub async fn start_now(
    d: &Arc<Daemon>,
    sup: &Arc<Supervisor>,
    agent: AgentId,
) -> anyhow::Result<()> {
    {
        let mut slots = sup.slots();
        let slot = slots.entry(agent).or_default();
        if slot.starting {
            anyhow::bail!("{agent} is being started already");
        }
        slot.starting = true;
        slot.failures = 0;
        slot.not_before = None;
    }
    let result = start_inner(d, sup, agent).await;
    sup.slots().entry(agent).or_default().starting = false;
    result
}

/// Starts `agent`'s container: a fresh one from its recorded spec (its home persists in its
/// volume), its gateway open first so it can call at once.
pub async fn start(d: Arc<Daemon>, sup: Arc<Supervisor>, agent: AgentId) {
    let result = start_inner(&d, &sup, agent).await;
    let mut slots = sup.slots();
    let slot = slots.entry(agent).or_default();
    slot.starting = false;
    if let Err(e) = result {
        slot.failures = slot.failures.saturating_add(1);
        let wait = backoff(slot.failures);
        slot.not_before = Some(Instant::now() + wait);
        tracing::warn!("cannot start {agent} (retrying in {wait:?}): {e:#}");
    }
}

async fn start_inner(d: &Arc<Daemon>, sup: &Arc<Supervisor>, agent: AgentId) -> anyhow::Result<()> {
    let (team, spec) = {
        let app = d.app()?;
        let ag = app
            .world
            .agent(agent)
            .ok_or_else(|| anyhow::anyhow!("{agent} is not in the log"))?;
        (ag.team, ag.spec.clone())
    };
    open_gateway(d, sup, agent).await?;
    let paths = HostPaths {
        gateway_dir: sup.gateway_dir(agent),
        agent_binary: sup.agent_binary.clone(),
    };
    let p = plan(&sup.ns, &team, agent, &spec, &paths)?;
    sup.engine.remove(agent).await?;
    sup.engine.ensure_home(&p).await?;
    let id = sup.engine.create(&p).await?;
    sup.engine.start(agent).await?;
    {
        let mut slots = sup.slots();
        let slot = slots.entry(agent).or_default();
        slot.running = true;
        slot.started = Some(Instant::now());
        slot.stopping = None;
        if let Some(secs) = spec.resources.timeout_secs {
            slot.timeout = Some(watch_timeout(d.clone(), sup.clone(), agent, secs));
        }
    }
    let dd = d.clone();
    tokio::task::spawn_blocking(move || {
        record(&dd, agent, Lifecycle::Started(id), &Actor::Runtime)
    })
    .await?;
    Ok(())
}

fn watch_timeout(
    d: Arc<Daemon>,
    sup: Arc<Supervisor>,
    agent: AgentId,
    secs: u32,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(secs))).await;
        if let Err(e) = stop(&d, &sup, agent, StopReason::TimedOut, Actor::Runtime).await {
            tracing::warn!("cannot stop {agent} at its timeout: {e:#}");
        }
    })
}

/// Stops `agent`'s container for `reason` (SIGTERM, grace, SIGKILL) and records it as `actor`.
pub async fn stop(
    d: &Arc<Daemon>,
    sup: &Arc<Supervisor>,
    agent: AgentId,
    reason: StopReason,
    actor: Actor,
) -> anyhow::Result<()> {
    {
        let mut slots = sup.slots();
        let slot = slots.entry(agent).or_default();
        slot.stopping = Some(reason);
        if let Some(t) = slot.timeout.take() {
            if reason != StopReason::TimedOut {
                t.abort();
            }
        }
    }
    sup.engine.stop(agent, GRACE).await?;
    {
        let mut slots = sup.slots();
        let slot = slots.entry(agent).or_default();
        slot.running = false;
    }
    let dd = d.clone();
    tokio::task::spawn_blocking(move || record(&dd, agent, Lifecycle::Stopped(reason), &actor))
        .await?;
    sup.wake.notify_one();
    Ok(())
}

async fn remove_retired(sup: Arc<Supervisor>, agent: AgentId) {
    let stopped = sup.engine.stop(agent, GRACE).await;
    let removed = sup.engine.remove(agent).await;
    if let Err(e) = stopped.and(removed) {
        tracing::warn!("cannot remove the container of retired {agent}: {e}");
    }
    let _ = std::fs::remove_dir_all(sup.gateway_dir(agent));
}

/// Follows the engine's events for this namespace, reconnecting (and reconciling again) when
/// the engine goes away and comes back.
pub async fn watch_engine(d: Arc<Daemon>, sup: Arc<Supervisor>) {
    loop {
        let mut events = Box::pin(sup.engine.events());
        while let Some(event) = events.next().await {
            match event {
                Ok(EngineEvent::Died {
                    agent,
                    exit_code,
                    oom_killed,
                }) => died(&d, &sup, agent, exit_code, oom_killed).await,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("engine events: {e}");
                    break;
                }
            }
        }
        // The stream ended: the engine restarted or went away. Try again, then reconcile what
        // changed meanwhile (containers stopped by an engine restart are restarted).
        tokio::time::sleep(Duration::from_secs(1)).await;
        {
            let mut slots = sup.slots();
            for slot in slots.values_mut() {
                slot.running = false;
            }
        }
        if let Err(e) = reconcile(&d, &sup).await {
            tracing::warn!("reconcile after an engine outage: {e:#}");
        }
        sup.wake.notify_one();
    }
}

async fn died(d: &Arc<Daemon>, sup: &Arc<Supervisor>, agent: AgentId, code: i64, oom: bool) {
    let retired = d
        .app()
        .map(|app| app.world.agent(agent).is_none_or(|a| a.is_retired()))
        .unwrap_or(true);
    if retired {
        // Its removal is under way (or it is not ours to restart).
        return;
    }
    let reason = {
        let mut slots = sup.slots();
        let slot = slots.entry(agent).or_default();
        slot.running = false;
        if let Some(t) = slot.timeout.take() {
            t.abort();
        }
        if slot.stopping.take().is_some() {
            // We stopped it; the stop records itself.
            return;
        }
        if slot.started.is_some_and(|s| s.elapsed() >= STABLE) {
            slot.failures = 0;
        }
        slot.failures = slot.failures.saturating_add(1);
        slot.not_before = Some(Instant::now() + backoff(slot.failures));
        stop_reason(code, oom, false, false)
    };
    let dd = d.clone();
    let _ = tokio::task::spawn_blocking(move || {
        record(&dd, agent, Lifecycle::Stopped(reason), &Actor::Runtime)
    })
    .await;
    // Wake the converge loop when the backoff is over.
    let s = sup.clone();
    let wait = sup
        .slots()
        .get(&agent)
        .and_then(|slot| slot.not_before)
        .map(|t| t.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        s.wake.notify_one();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(7), Duration::from_secs(60));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(60));
    }
}
