//! The supervisor: makes the containers match what the log wants.
//!
//! Level-triggered: on every poke (a command committed, an engine event, a timer, or once a
//! second) it asks the pure policy (`policy::converge`) what to do, given each agent's wanted
//! state — a fold of the log, `Agent::wants_running` — and what it knows of the engine (each
//! slot's [`Run`]), and carries the answer out: starts what should run (after a crash, with
//! exponential backoff), removes the containers of retired agents, stops what ran past its
//! timeout. Everything it does to an agent is recorded through `decide` as the runtime
//! (`Command::Lifecycle`), so the log says what happened and why.
//!
//! One owner per agent: everything decided about an agent's container — start, stop, adopt,
//! record a death, remove, purge — is decided while holding that agent's owner lock, from a
//! fresh look at the log and the engine taken once the lock is held, never from a snapshot
//! taken before it. So an operator's stop waits for a start under way (and then stops what it
//! started), a purge waits for a start (and then removes what it made), and nothing is recorded
//! twice. Engine events are matched to the container they name, so a late death of an old
//! container is never taken for its successor's.
//!
//! Engine restarts: an engine shutting down refuses new requests first, then stops its
//! containers and reports their deaths on the streams already open. A death reported while
//! the engine refuses (`Containers::accepting`), or found by the reconcile that follows among
//! the containers the log had running when it went away, is recorded as `EngineRestarted`, not
//! as a crash; nothing is decided (`policy::Watch::Lost`) and nothing started until a
//! reconcile is whole again.
//!
//! Intent before action: a stop roster makes (an operator's, a timeout) is recorded before the
//! signal is sent. A daemon killed in between finds the stop in the log and carries it out
//! (`Action::Halt`) without recording anything; the container's death is never taken for a
//! crash. The store's lock is only ever taken on blocking threads.
//!
//! `daemon::sim` runs this code against a simulated engine under thousands of seeded schedules
//! of operator commands, deaths, engine restarts and daemon kills.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use futures_util::StreamExt;
use roster_core::actor::Actor;
use roster_core::command::{Command, Lifecycle};
use roster_core::event::StopReason;
use roster_core::id::AgentId;
use roster_core::time::Timestamp;
use roster_core::world::{Agent, AgentStatus};
use roster_sandbox::plan::{plan, HostPaths, STOP_GRACE_SECS};
use roster_sandbox::uid::AgentUid;
use roster_sandbox::{stop_reason, EngineEvent};

use super::containers::Containers;
use super::policy::{self, Action, Run, Watch};
use super::Daemon;
use crate::error::{ControlError, SupervisorError};
use crate::gateway::{Access, AgentGateway};

/// SIGTERM, then this long, then SIGKILL.
const GRACE: Duration = Duration::from_secs(STOP_GRACE_SECS.unsigned_abs());
/// The first restart waits this long; each further crash in a row doubles it.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Restarts never wait longer than this.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run this long resets the backoff.
const STABLE: Duration = Duration::from_secs(60);
/// An engine found refusing requests whose event stream has not ended this long after its
/// last event, and that answers again, was only slow: it is followed again.
const AWAY_CONFIRM: Duration = Duration::from_secs(15);

/// What the supervisor holds for one agent.
#[derive(Debug, Default)]
pub struct Slot {
    /// What it knows of the agent's container: what the policy decides on.
    pub run: Run,
    /// Crashes in a row.
    pub failures: u32,
    /// Its gateway socket, open while it is not retired.
    pub gateway: Option<AgentGateway>,
    /// Why its last start failed, until one succeeds (shown by `roster agents`).
    pub start_error: Option<String>,
}

/// The supervisor's state; shared by its tasks.
#[derive(Debug)]
pub struct Supervisor {
    /// The engine (and with it, this runtime's namespace).
    pub engine: Arc<dyn Containers>,
    /// `DATA/gateways`: one directory per agent, mode 0700 here.
    pub gateways: PathBuf,
    /// The static `roster-agent` mounted into every container.
    pub agent_binary: PathBuf,
    slots: Mutex<HashMap<AgentId, Slot>>,
    /// Each agent's owner: whoever decides anything about an agent's container (start, stop,
    /// adopt, record a death, remove, purge) holds its lock, and looks at the log and the
    /// engine afresh once it has it. Kept for the agent's whole life, slot or no slot.
    owners: Mutex<HashMap<AgentId, Arc<tokio::sync::Mutex<()>>>>,
    /// Wakes the converge loop.
    pub wake: tokio::sync::Notify,
    /// The engine is lost ([`Watch::Lost`]): it refused a request or its event stream ended,
    /// and no reconcile since has been whole. Nothing is decided or started meanwhile.
    lost: AtomicBool,
    /// While the engine is away, the containers it stopped as it went: those whose death it
    /// reported while refusing requests, and those the log had running when it was found
    /// refusing. A death among them, found by a reconcile, is its restart's doing. Emptied
    /// when a reconcile is whole.
    outage: Mutex<HashSet<String>>,
}

impl Supervisor {
    /// A supervisor over `engine`.
    pub fn new(engine: Arc<dyn Containers>, gateways: PathBuf, agent_binary: PathBuf) -> Self {
        Self {
            engine,
            gateways,
            agent_binary,
            slots: Mutex::new(HashMap::new()),
            owners: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            lost: AtomicBool::new(false),
            outage: Mutex::new(HashSet::new()),
        }
    }

    /// The slots, locked. Never held across an await.
    pub fn slots(&self) -> MutexGuard<'_, HashMap<AgentId, Slot>> {
        // A panic while holding it would be a bug; the map stays usable either way.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lock of `agent`'s owner (see `owners`).
    fn op(&self, agent: AgentId) -> Arc<tokio::sync::Mutex<()>> {
        self.owners
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(agent)
            .or_default()
            .clone()
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

    /// The containers the engine stopped as it went away (see `outage`), locked.
    fn outage(&self) -> MutexGuard<'_, HashSet<String>> {
        self.outage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What is known of the engine as a whole.
    pub fn watch(&self) -> Watch {
        if self.lost.load(Ordering::SeqCst) {
            Watch::Lost
        } else {
            Watch::Followed
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

/// Records a lifecycle change as `actor` (the runtime, or the operator who stopped it), on a
/// blocking thread (the store's lock is never taken on the async workers). True once recorded.
pub async fn record(d: &Arc<Daemon>, agent: AgentId, change: Lifecycle, actor: Actor) -> bool {
    let done = off_workers(d, move |lane| {
        lane.decide(|app| app.execute(Command::Lifecycle { agent, change }, &actor))
            .and_then(|r| r)
    })
    .await;
    match done {
        Ok(Ok(_)) => return true,
        // The store failed: the log and the containers would drift apart from here on.
        Ok(Err(e @ crate::app::RuntimeError::Log(_))) => {
            tracing::error!("cannot record the lifecycle of {agent}: {e}");
            d.fail(format!(
                "the store failed while recording {agent}'s lifecycle: {e}"
            ));
        }
        // Refused (say, retired meanwhile): nothing happened that the log must show.
        Ok(Err(e)) => tracing::warn!("not recording the lifecycle of {agent}: {e}"),
        Err(e) => tracing::warn!("cannot record the lifecycle of {agent}: {e}"),
    }
    false
}

/// Runs `f` (a decision, or a short look at the world) on a blocking thread: the store's lock
/// is never taken on the async workers. A simulated daemon runs it here, so that its schedule
/// is the simulation's alone.
pub(crate) async fn off_workers<T: Send + 'static>(
    d: &Arc<Daemon>,
    f: impl FnOnce(&Daemon) -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    if d.sim_clock.is_some() {
        return Ok(f(d));
    }
    let d = d.clone();
    tokio::task::spawn_blocking(move || f(&d)).await
}

/// Every agent the log knows, read on a blocking thread.
async fn agents(d: &Arc<Daemon>) -> Result<HashMap<AgentId, Agent>, SupervisorError> {
    Ok(off_workers(d, |d| {
        d.read(|app| app.world().agents().map(|a| (a.id, a.clone())).collect())
    })
    .await??)
}

/// One agent as the log knows it, read on a blocking thread.
async fn agent(d: &Arc<Daemon>, id: AgentId) -> Result<Option<Agent>, SupervisorError> {
    Ok(off_workers(d, move |d| d.read(|app| app.world().agent(id).cloned())).await??)
}

/// Makes the supervisor's picture match the engine's: removes containers the log does not know,
/// adopts running ones, records the deaths it missed (while no daemon ran, or while the engine
/// was away). Each agent is looked at by its owner, afresh (`adopt`). One agent's trouble is
/// logged and skipped; the agents left unreconciled are returned, for the caller to try again.
pub async fn reconcile(
    d: &Arc<Daemon>,
    sup: &Arc<Supervisor>,
) -> Result<Vec<AgentId>, SupervisorError> {
    let found = sup.engine.list().await?;
    let known = agents(d).await?;
    let mut ids: Vec<AgentId> = known
        .values()
        // A retired agent is looked at only if a container of it is left.
        .filter(|a| !a.is_retired() || found.iter().any(|f| f.agent.as_ref().ok() == Some(&a.id)))
        .map(|a| a.id)
        .collect();
    ids.sort();
    for f in found {
        if f.agent.as_ref().ok().is_some_and(|a| known.contains_key(a)) {
            continue;
        }
        tracing::info!("removing container {} that the log does not know", f.name);
        if let Err(e) = sup.engine.remove_container(&f.name).await {
            tracing::warn!("cannot remove {}: {e}", f.name);
        }
    }
    let mut left = Vec::new();
    for id in ids {
        if let Err(e) = adopt(d, sup, id).await {
            tracing::warn!("cannot reconcile the container of {id}: {e:#}");
            unknown(sup, id);
            left.push(id);
        }
    }
    // Whatever failed while the engine was away is not the agents' fault.
    for slot in sup.slots().values_mut() {
        slot.failures = 0;
        if let Run::Down { retry } = &mut slot.run {
            *retry = None;
        }
    }
    Ok(left)
}

/// Takes over `id`'s container as its owner, from a fresh look at the log and the engine:
/// - running and wanted: adopted (its gateway open, its timeout counted from its start), and
///   its start recorded unless the log already has it;
/// - running but not wanted (the log says it stopped: a stop decided before a daemon was
///   killed): stopped, nothing recorded;
/// - stopped, or gone, while the log has it running: its death recorded (`Vanished` when the
///   engine has no container at all);
/// - retired: its container removed (its home stays until a purge).
async fn adopt(d: &Arc<Daemon>, sup: &Arc<Supervisor>, id: AgentId) -> Result<(), SupervisorError> {
    let op = sup.op(id);
    let _owner = op.lock().await;
    adopt_owned(d, sup, id).await
}

/// [`adopt`], by a caller that holds the agent's owner lock.
async fn adopt_owned(
    d: &Arc<Daemon>,
    sup: &Arc<Supervisor>,
    id: AgentId,
) -> Result<(), SupervisorError> {
    let Some(ag) = agent(d, id).await? else {
        return Ok(());
    };
    if ag.is_retired() {
        if let Err(e) = sup.engine.remove(id).await {
            // Held in a slot, so that the converge loop asks for the removal again.
            sup.slots().entry(id).or_default();
            return Err(e.into());
        }
        sup.slots().remove(&id);
        let _ = std::fs::remove_dir_all(sup.gateway_dir(id));
        return Ok(());
    }
    let state = sup.engine.inspect(id).await?;
    let logged = match &ag.status {
        AgentStatus::Running { container } => Some(container.clone()),
        _ => None,
    };
    match state {
        Some(state) if state.running && ag.wants_running() => {
            open_gateway(d, sup, id, state.uid()).await?;
            let ran_for = state
                .started_at
                .map(|t| {
                    Duration::from_micros(
                        d.now()
                            .as_micros()
                            .saturating_sub(t.as_micros())
                            .unsigned_abs(),
                    )
                })
                .unwrap_or_default();
            {
                let mut slots = sup.slots();
                let slot = slots.entry(id).or_default();
                if slot.run.container() != Some(state.id.as_str()) {
                    // Its timeout counts from when the engine started it.
                    let since = Instant::now()
                        .checked_sub(ran_for)
                        .unwrap_or_else(Instant::now);
                    slot.run = Run::Up {
                        container: state.id.clone(),
                        since,
                        stopping: None,
                    };
                }
            }
            if logged.as_deref() != Some(state.id.as_str()) {
                if logged.is_some() {
                    // The log's container is gone; this one replaced it unrecorded.
                    record(
                        d,
                        id,
                        Lifecycle::Stopped(StopReason::Vanished),
                        Actor::Runtime,
                    )
                    .await;
                }
                record(d, id, Lifecycle::Started(state.id), Actor::Runtime).await;
            }
        }
        Some(state) if state.running => {
            // A stop the log already holds, not carried out: carry it out.
            let why = match &ag.status {
                AgentStatus::Stopped { reason } => *reason,
                _ => StopReason::Requested,
            };
            sup.slots().entry(id).or_default().run = Run::Up {
                container: state.id.clone(),
                since: Instant::now(),
                stopping: Some(why),
            };
            let stopped = sup.engine.stop(id, GRACE).await;
            sup.slots().entry(id).or_default().run = match &stopped {
                Ok(()) => Run::Down { retry: None },
                // Still running: the next pass halts it again.
                Err(_) => Run::Up {
                    container: state.id.clone(),
                    since: Instant::now(),
                    stopping: None,
                },
            };
            stopped?;
        }
        other => {
            sup.slots().entry(id).or_default().run = Run::Down { retry: None };
            if logged.is_some() {
                // The engine's flag of an OOM kill is sticky (any process of the container, at
                // any time): without the event of the death, it cannot say the main process
                // died of it, so the exit code alone speaks.
                let restarted = logged.as_ref().is_some_and(|c| sup.outage().contains(c));
                let reason = match other {
                    Some(_) if restarted => StopReason::EngineRestarted,
                    Some(state) => stop_reason(state.exit_code.unwrap_or(-1), false, false, false),
                    None => StopReason::Vanished,
                };
                record(d, id, Lifecycle::Stopped(reason), Actor::Runtime).await;
            }
        }
    }
    Ok(())
}

/// Converges forever: on every wake, and at least once a second.
pub async fn converge_loop(d: Arc<Daemon>, sup: Arc<Supervisor>) {
    loop {
        if let Err(e) = converge(&d, &sup).await {
            tracing::error!("{e:#}");
        }
        // Biased: the order of branches is the code's, not a random draw (a simulated
        // schedule replays exactly).
        tokio::select! {
            biased;
            _ = sup.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One pass: asks the policy what to do now and carries it out, each action on a task of its
/// own (an agent's are serialized by its `op` lock).
async fn converge(d: &Arc<Daemon>, sup: &Arc<Supervisor>) -> Result<(), SupervisorError> {
    // Decided on a blocking thread, under a short read of the world (a decision may hold it
    // while it flushes) and the slots' lock: each action is marked in its slot in the same
    // breath, so no other start or stop falls between the decision and its mark.
    let supervisor = sup.clone();
    let decided = off_workers(d, move |lane| {
        lane.read(|app| {
            let mut slots = supervisor.slots();
            let actions = policy::converge(
                app.world(),
                supervisor.watch(),
                |id| slots.get(&id).map(|s| &s.run),
                Instant::now(),
            );
            actions
                .into_iter()
                .map(|action| {
                    let removed = mark(&mut slots, &action);
                    (action, removed)
                })
                .collect::<Vec<_>>()
        })
    })
    .await??;
    for (action, removed) in decided {
        match action {
            Action::Start(id) => {
                tokio::spawn(start_for_policy(d.clone(), sup.clone(), id));
            }
            Action::TimeOut(id) => {
                let (d, sup) = (d.clone(), sup.clone());
                tokio::spawn(async move {
                    let stopped = stop(&d, &sup, id, StopReason::TimedOut, Actor::Runtime).await;
                    if let Err(e) = stopped {
                        tracing::warn!("cannot stop {id} at its timeout: {e:#}");
                    }
                });
            }
            Action::Halt(id) => {
                tokio::spawn(halt(d.clone(), sup.clone(), id));
            }
            Action::Adopt(id) => {
                let (d, sup) = (d.clone(), sup.clone());
                tokio::spawn(async move {
                    if let Err(e) = adopt(&d, &sup, id).await {
                        tracing::warn!("cannot look at the container of {id} (again later): {e}");
                        unknown(&sup, id);
                    }
                });
            }
            Action::Remove(id) => {
                if let Some(mut slot) = removed {
                    slot.gateway.take();
                    tokio::spawn(remove_retired(sup.clone(), id));
                }
            }
        }
    }
    Ok(())
}

/// Marks `action` in its agent's slot before it is carried out, so the next pass does not ask
/// for it again: a start makes the run `Starting`, a timeout makes it `stopping`, a removal
/// takes the slot out (and returns it, for its gateway and its lock).
fn mark(slots: &mut HashMap<AgentId, Slot>, action: &Action) -> Option<Slot> {
    match *action {
        Action::Start(id) => {
            slots.entry(id).or_default().run = Run::Starting;
            None
        }
        Action::TimeOut(id) => {
            if let Some(Run::Up { stopping, .. }) = slots.get_mut(&id).map(|s| &mut s.run) {
                *stopping = Some(StopReason::TimedOut);
            }
            None
        }
        Action::Halt(id) => {
            // Ours to stop: the reason is the log's already.
            if let Some(Run::Up { stopping, .. }) = slots.get_mut(&id).map(|s| &mut s.run) {
                *stopping = Some(StopReason::Requested);
            }
            None
        }
        Action::Adopt(id) => {
            // Asked once a second at most while the engine fails.
            slots.entry(id).or_default().run = Run::Unknown {
                retry: Instant::now() + Duration::from_secs(1),
            };
            None
        }
        Action::Remove(id) => slots.remove(&id),
    }
}

/// Marks `agent`'s container as not known (an engine call failed, maybe after it acted): its
/// owner looks at it again at the next pass (`Action::Adopt`).
fn unknown(sup: &Supervisor, agent: AgentId) {
    sup.slots().entry(agent).or_default().run = Run::Unknown {
        retry: Instant::now() + Duration::from_secs(1),
    };
    sup.wake.notify_one();
}

/// Stops a container the log already says is stopped (see [`Action::Halt`]), as its owner:
/// nothing is recorded, the decision is in the log.
async fn halt(d: Arc<Daemon>, sup: Arc<Supervisor>, id: AgentId) {
    let op = sup.op(id);
    let _owner = op.lock().await;
    let wanted = agent(&d, id)
        .await
        .ok()
        .flatten()
        .map(|a| a.wants_running());
    if wanted != Some(false) || !sup.slots().get(&id).is_some_and(|s| s.run.is_up()) {
        // Wanted again meanwhile (or gone): nothing to carry out.
        if let Some(Run::Up { stopping, .. }) = sup.slots().get_mut(&id).map(|s| &mut s.run) {
            *stopping = None;
        }
        return;
    }
    match sup.engine.stop(id, GRACE).await {
        Ok(()) => sup.slots().entry(id).or_default().run = Run::Down { retry: None },
        Err(e) => {
            tracing::warn!("cannot stop {id}, which the log says is stopped: {e}");
            if let Some(Run::Up { stopping, .. }) = sup.slots().get_mut(&id).map(|s| &mut s.run) {
                *stopping = None;
            }
        }
    }
}

/// A start the policy asked for; a failure waits out a backoff before the next.
async fn start_for_policy(d: Arc<Daemon>, sup: Arc<Supervisor>, id: AgentId) {
    let result = start(&d, &sup, id, false).await;
    let mut slots = sup.slots();
    let slot = slots.entry(id).or_default();
    match result {
        // Started, or not wanted any more (retired or stopped meanwhile): `start` left the run
        // as it found it, or up.
        Ok(()) => {
            slot.start_error = None;
            if slot.run == Run::Starting {
                slot.run = Run::Down { retry: None };
            }
        }
        Err(e) => {
            slot.start_error = Some(format!("{e:#}"));
            slot.failures = slot.failures.saturating_add(1);
            let wait = backoff(slot.failures);
            // (Not when it is to be looked at again: that look comes first.)
            if !slot.run.is_up() && !matches!(slot.run, Run::Unknown { .. }) {
                slot.run = Run::Down {
                    retry: Some(Instant::now() + wait),
                };
            }
            tracing::warn!("cannot start {id} (retrying in {wait:?}): {e:#}");
        }
    }
}

/// Who may connect to the gateway of an agent that runs as `uid`: that uid alone when the daemon
/// is root (which can give it the socket), else any user reaching the daemon's 0700 data
/// directory ([`open_to_agents_only`]). A container of an older roster, running as 1000 without
/// a uid of its own, is `None`: open, until its next start gives it one (and reopens it).
fn access(uid: Option<AgentUid>) -> Access {
    match uid {
        Some(uid) if open_to_agents_only() => Access::Agent(uid),
        _ => Access::Open,
    }
}

/// Whether each gateway socket can be given to its agent's uid alone: only a daemon run by
/// root can (`roster serve` says so at start when it cannot).
pub fn open_to_agents_only() -> bool {
    rustix::process::geteuid().is_root()
}

/// Opens `agent`'s gateway socket, for `uid`, if it is not open.
async fn open_gateway(
    d: &Arc<Daemon>,
    sup: &Arc<Supervisor>,
    agent: AgentId,
    uid: Option<AgentUid>,
) -> Result<(), SupervisorError> {
    let access = access(uid);
    let open = sup
        .slots()
        .get_mut(&agent)
        .and_then(|s| s.gateway.take_if(|g| g.access() != access));
    if let Some(old) = open {
        // Opened to another uid than the agent runs as now (a container of an older roster
        // adopted, or a uid given up): closed, and opened again to this one.
        old.close().await;
    } else if sup.slots().get(&agent).is_some_and(|s| s.gateway.is_some()) {
        return Ok(());
    }
    let gw = crate::gateway::serve_agent(
        &sup.gateway_dir(agent),
        agent,
        d.backend(),
        crate::gateway::Limits::default(),
        access,
    )
    .await
    .map_err(|source| SupervisorError::Gateway { agent, source })?;
    // A retirement decided while it was being opened closed nothing yet: its socket is not
    // opened again for a retired agent (its calls would be refused anyway).
    if self::agent(d, agent).await?.is_none_or(|a| a.is_retired()) {
        drop(gw);
        return Ok(());
    }
    sup.slots().entry(agent).or_default().gateway = Some(gw);
    Ok(())
}

/// Starts `agent`'s container: a fresh one from its recorded spec (its home persists in its
/// volume), its gateway open first so that it can call at once. Without `forced` (an operator's
/// `roster start`), only an agent the log wants running is started.
pub async fn start(
    d: &Arc<Daemon>,
    sup: &Arc<Supervisor>,
    id: AgentId,
    forced: bool,
) -> Result<(), SupervisorError> {
    let op = sup.op(id);
    let _owner = op.lock().await;
    if sup.watch() == Watch::Lost {
        // Whatever runs is looked at first, and a start now would race the engine's shutdown.
        return Err(SupervisorError::EngineLost);
    }
    let Some(ag) = agent(d, id).await? else {
        return Err(SupervisorError::NotInLog(id));
    };
    let running = sup.slots().get(&id).is_some_and(|s| s.run.is_up());
    if ag.is_retired() || (running && ag.wants_running()) || (!forced && !ag.wants_running()) {
        // Retired, stopped meanwhile, or started by someone else meanwhile.
        return Ok(());
    }
    if running {
        // A stop on the log whose container still runs (its signal pending): carried out
        // first, so that the agent ends as the stop said, then it starts afresh.
        sup.engine.stop(id, GRACE).await?;
        sup.slots().entry(id).or_default().run = Run::Down { retry: None };
    }
    let unsure = sup
        .slots()
        .get(&id)
        .is_some_and(|s| matches!(s.run, Run::Unknown { .. }));
    if unsure || matches!(ag.status, AgentStatus::Running { .. }) {
        // The log has a container running that this supervisor does not hold (a reconcile
        // that failed for it): look at it first — adopted if it runs, its death recorded if
        // not (the next pass starts a new one).
        return adopt_owned(d, sup, id).await;
    }
    let home = sup.engine.home(&ag.team, id, ag.disk().get()).await?;
    open_gateway(d, sup, id, Some(home.uid)).await?;
    let paths = HostPaths {
        gateway_dir: sup.gateway_dir(id),
        agent_binary: sup.agent_binary.clone(),
    };
    let p = plan(sup.engine.ns(), &ag.team, id, &ag.spec, &paths, home.uid)?;
    sup.engine.remove(id).await?;
    let container = sup.engine.create(&p).await?;
    // Marked before it starts, so that even an immediate death is matched to it.
    sup.slots().entry(id).or_default().run = Run::Up {
        container: container.clone(),
        since: Instant::now(),
        stopping: None,
    };
    if let Err(e) = sup.engine.start(id).await {
        // It may have started all the same: looked at again.
        unknown(sup, id);
        return Err(e.into());
    }
    record(d, id, Lifecycle::Started(container), Actor::Runtime).await;
    Ok(())
}

/// Stops `agent`'s container for `reason` as `actor`: the stop is recorded first, then carried
/// out (SIGTERM, grace, SIGKILL). A daemon killed in between finds the decision in the log and
/// finishes it ([`Action::Halt`]); the container's death is never taken for a crash.
pub async fn stop(
    d: &Arc<Daemon>,
    sup: &Arc<Supervisor>,
    agent: AgentId,
    reason: StopReason,
    actor: Actor,
) -> Result<(), SupervisorError> {
    let op = sup.op(agent);
    let _owner = op.lock().await;
    let up = sup.slots().get(&agent).is_some_and(|s| s.run.is_up());
    let Some(ag) = self::agent(d, agent).await? else {
        return Err(SupervisorError::NotInLog(agent));
    };
    let set_stopping = |why: Option<StopReason>| {
        if let Some(Run::Up { stopping, .. }) = sup.slots().get_mut(&agent).map(|s| &mut s.run) {
            *stopping = why;
        }
    };
    if ag.is_retired() || (!ag.wants_running() && !up) {
        // Stopped already (or retired): nothing to decide.
        return Err(SupervisorError::NotRunning(agent));
    }
    if ag.wants_running() {
        // Its death from here on is ours, not a crash.
        set_stopping(Some(reason));
        if !record(d, agent, Lifecycle::Stopped(reason), actor).await {
            set_stopping(None);
            return Err(SupervisorError::NotRunning(agent));
        }
    }
    // Recorded (now or before, its signal pending): carried out. The engine's stop is a no-op
    // for a container that is not running, so it is sent whatever the slot says.
    match sup.engine.stop(agent, GRACE).await {
        Ok(()) => sup.slots().entry(agent).or_default().run = Run::Down { retry: None },
        Err(e) => {
            // On the log already: the converge loop carries it out (`Action::Halt`, or a new
            // look first), and its death is not recorded as a crash (`died`: the log does not
            // want it running).
            tracing::warn!("cannot signal {agent} to stop (the stop stands; trying again): {e}");
            if up {
                set_stopping(None);
            } else {
                unknown(sup, agent);
            }
        }
    }
    sup.wake.notify_one();
    Ok(())
}

/// Deletes a retired agent's container, home volume and gateway directory.
pub async fn purge(
    d: &Arc<Daemon>,
    sup: &Arc<Supervisor>,
    agent: AgentId,
) -> Result<(), ControlError> {
    let op = sup.op(agent);
    let _owner = op.lock().await;
    match self::agent(d, agent).await {
        Ok(Some(a)) if a.is_retired() => {}
        Ok(Some(_)) => return Err(ControlError::NotRetired(agent)),
        Ok(None) => return Err(ControlError::Unknown(agent)),
        Err(e) => return Err(e.into()),
    }
    let removed = async {
        sup.engine.remove(agent).await?;
        sup.engine.remove_home(agent).await?;
        let _ = std::fs::remove_dir_all(sup.gateway_dir(agent));
        Ok(())
    };
    removed.await.map_err(ControlError::Engine)?;
    sup.slots().remove(&agent);
    Ok(())
}

async fn remove_retired(sup: Arc<Supervisor>, agent: AgentId) {
    let op = sup.op(agent);
    let _owner = op.lock().await;
    let stopped = sup.engine.stop(agent, GRACE).await;
    let removed = sup.engine.remove(agent).await;
    if let Err(e) = stopped.and(removed) {
        tracing::warn!("cannot remove the container of retired {agent} (trying again): {e}");
        // Held in a slot again, so that the converge loop asks for the removal again.
        sup.slots().entry(agent).or_default();
        return;
    }
    let _ = std::fs::remove_dir_all(sup.gateway_dir(agent));
}

/// Follows the engine's events for this namespace from `since` (taken before the reconcile
/// that preceded it, so that no death falls between the two), reconnecting — and reconciling
/// again — when the engine goes away and comes back.
pub async fn watch_engine(
    d: Arc<Daemon>,
    sup: Arc<Supervisor>,
    mut since: Timestamp,
    mut unreconciled: bool,
) {
    loop {
        if unreconciled {
            since = reconcile_until_whole(&d, &sup).await;
            unreconciled = false;
        }
        // The containers whose death this stream reported, and whether the engine was found
        // refusing requests (it is going away: it stays so until this stream ends).
        let (mut reported, mut away) = (HashSet::new(), false);
        let mut events = Box::pin(sup.engine.events_since(since));
        loop {
            let event = if away {
                // An engine going away ends its stream once its containers are stopped; one
                // that stays quiet this long while answering again was only slow to answer.
                match tokio::time::timeout(AWAY_CONFIRM, events.next()).await {
                    Ok(event) => event,
                    Err(_) if sup.engine.accepting().await.is_ok() => {
                        tracing::warn!("the container engine answers again: it was not going away");
                        away = false;
                        sup.outage().clear();
                        sup.lost.store(false, Ordering::SeqCst);
                        sup.wake.notify_one();
                        continue;
                    }
                    Err(_) => continue,
                }
            } else {
                events.next().await
            };
            let Some(event) = event else { break };
            match event {
                Ok(EngineEvent::Died {
                    agent,
                    container,
                    exit_code,
                    oom_killed,
                }) => {
                    let seen_at = Instant::now();
                    if !away && sup.engine.accepting().await.is_err() {
                        away = true;
                        went_away(&d, &sup, &reported).await;
                    }
                    if away {
                        sup.outage().insert(container.clone());
                    }
                    reported.insert(container.clone());
                    let death = Death {
                        container,
                        code: exit_code,
                        oom: oom_killed,
                        by_engine: away,
                        seen_at,
                    };
                    // Accounted for by the agent's owner (which may be busy starting or
                    // stopping it: the events of the others go on meanwhile).
                    tokio::spawn(died(d.clone(), sup.clone(), agent, death));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("engine events: {e}");
                    break;
                }
            }
        }
        // The stream ended: the engine restarted or went away. Nothing is decided until a
        // reconcile is whole (containers an engine restart stopped are started again then).
        sup.lost.store(true, Ordering::SeqCst);
        if !away && sup.engine.accepting().await.is_err() {
            went_away(&d, &sup, &reported).await;
        }
        since = reconcile_until_whole(&d, &sup).await;
    }
}

/// The engine was found refusing requests: it is going away, and stops every container as it
/// goes (or, crashed, as it comes back). The containers running — as the log has it, or as a
/// start under way has it — but for those whose death was `reported` already, by an engine
/// that still answered, are its to stop: their deaths are found by the reconcile.
///
/// Its limit: a container that dies on its own after the stream ended, before the engine
/// stops it, is recorded as stopped by the engine restart (nothing tells the two apart).
async fn went_away(d: &Arc<Daemon>, sup: &Arc<Supervisor>, reported: &HashSet<String>) {
    sup.lost.store(true, Ordering::SeqCst);
    tracing::warn!("the container engine refuses requests: it is going away");
    let mut running: HashSet<String> = match agents(d).await {
        Ok(known) => known
            .into_values()
            .filter_map(|a| match a.status {
                AgentStatus::Running { container } => Some(container),
                _ => None,
            })
            .collect(),
        Err(e) => {
            tracing::warn!("cannot read which agents run: {e}");
            HashSet::new()
        }
    };
    running.extend(sup.slots().values().filter_map(|s| match &s.run {
        Run::Up {
            container,
            stopping: None,
            ..
        } => Some(container.clone()),
        _ => None,
    }));
    sup.outage()
        .extend(running.into_iter().filter(|c| !reported.contains(c)));
}

/// Reconciles every second until every agent is (a stream that opens again says nothing of
/// what was missed); the time from which the engine's events are to be read next. The engine
/// is lost meanwhile; once whole, it is followed again.
async fn reconcile_until_whole(d: &Arc<Daemon>, sup: &Arc<Supervisor>) -> Timestamp {
    sup.lost.store(true, Ordering::SeqCst);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let since = d.now();
        match reconcile(d, sup).await {
            Ok(left) if left.is_empty() => {
                sup.outage().clear();
                sup.lost.store(false, Ordering::SeqCst);
                sup.wake.notify_one();
                return since;
            }
            Ok(left) => tracing::warn!("{} agent(s) left unreconciled; trying again", left.len()),
            Err(e) => tracing::warn!("reconcile after an engine outage: {e:#}"),
        }
    }
}

/// A container's death, as the engine's events reported it.
#[derive(Debug)]
struct Death {
    /// The engine's id of the container.
    container: String,
    /// Its exit code.
    code: i64,
    /// Whether an OOM kill of it came right before.
    oom: bool,
    /// Reported while the engine refused requests: it stopped the container as it went away.
    by_engine: bool,
    /// When its event was read.
    seen_at: Instant,
}

/// Accounts for `agent`'s container's death, as its owner: recorded (and its restart timed)
/// unless roster stopped it, the log already says it stopped, or it was an earlier container.
async fn died(d: Arc<Daemon>, sup: Arc<Supervisor>, agent: AgentId, death: Death) {
    let (d, sup) = (&d, &sup);
    let op = sup.op(agent);
    let _owner = op.lock().await;
    let wanted = match self::agent(d, agent).await {
        Ok(Some(a)) if !a.is_retired() => a.wants_running(),
        // Retired (its removal is under way), or not ours.
        _ => return,
    };
    if !wanted {
        // The log says it stopped (its stop was recorded before its signal): this death is
        // that stop carried out, not a crash.
        let mut slots = sup.slots();
        if let Some(slot) = slots.get_mut(&agent) {
            if slot.run.container() == Some(death.container.as_str()) {
                slot.run = Run::Down { retry: None };
            }
        }
        return;
    }
    let wait = {
        let mut slots = sup.slots();
        let slot = slots.entry(agent).or_default();
        let Run::Up {
            container: current,
            since,
            stopping,
        } = &slot.run
        else {
            // A death already accounted for.
            return;
        };
        if *current != death.container {
            // An earlier container of the agent.
            return;
        }
        let (lasted, ours) = (
            death.seen_at.saturating_duration_since(*since),
            stopping.is_some(),
        );
        if ours {
            // We stopped it; the stop records itself.
            slot.run = Run::Down { retry: None };
            return;
        }
        if death.by_engine {
            // Not the agent's failure: started again once the engine is back and reconciled.
            slot.run = Run::Down { retry: None };
            None
        } else {
            if lasted >= STABLE {
                slot.failures = 0;
            }
            slot.failures = slot.failures.saturating_add(1);
            let wait = backoff(slot.failures);
            slot.run = Run::Down {
                retry: Some(Instant::now() + wait),
            };
            Some(wait)
        }
    };
    let reason = if death.by_engine {
        StopReason::EngineRestarted
    } else {
        stop_reason(death.code, death.oom, false, false)
    };
    record(d, agent, Lifecycle::Stopped(reason), Actor::Runtime).await;
    // Wake the converge loop when the backoff is over.
    if let Some(wait) = wait {
        let s = sup.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            s.wake.notify_one();
        });
    }
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
