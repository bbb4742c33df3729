//! `act`, as an agent asks it through its gateway and as `roster act` asks it for an agent:
//! decide as the agent, wait for a human when the grant asks for one, record the spend, have
//! the tool provider carry it out, answer with its result.
//!
//! ```text
//! provider possible? ──no──► unavailable (nothing recorded)
//!   │ yes
//! decide Act ──Deny──► denied (AccessDenied recorded by decide)
//!   ├─ NeedsApproval ─► CallApprovalRequested recorded ─► wait (no lock held) until decided or timeout
//!   │                      ├─ approved ─► decide Act { approval } ─► ActionPerformed
//!   │                      ├─ refused  ─► denied, with the operator's note
//!   │                      └─ timeout  ─► pending, naming the approval (act again with it)
//!   └─ Allow ─► ActionPerformed recorded
//!                 └─► the provider gets the ToolCall ─► {"performed","chain","approval","result"}
//!                       (its failure: tool_failed; the spend stands)
//! ```
//!
//! A keyed call (`key`) that the world holds for the same call is answered, in whichever
//! decision would carry it out (the first, or the one after an approval), with the use recorded
//! the first time (`replayed`, `result` null): the provider does not run again (`keyed.rs`).
//!
//! Where it is decided is a [`Lane`]: the daemon's one decision lane (an agent's gateway, and
//! `roster act` forwarded to `roster serve`), or a data directory that `roster act` opened
//! itself because no daemon runs. There nobody can decide an approval meanwhile (this command
//! holds the log), so it never waits, and only the programs of `roster.toml` can carry the
//! action out ([`Tools::without_daemon`]).
//!
//! The wait holds neither the daemon's lock nor a thread: it awaits the `App`'s decision
//! counter ([`App::watch_decisions`](crate::app::App::watch_decisions)), which every committed
//! `ApprovalDecided` bumps — from `roster approve`/`deny` through the admin socket or anything
//! else that commits through the daemon.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use roster_core::actor::Actor;
use roster_core::capability::{Action, ONE};
use roster_core::command::{act_digest, Command, Rejected, Rejection};
use roster_core::envelope::Envelope;
use roster_core::event::Event;
use roster_core::gateway::answer::Performed;
use roster_core::gateway::{ActParams, ErrorCode, GatewayError};
use roster_core::id::{AgentId, ApprovalId};
use roster_core::tool::ToolCall;
use roster_core::world::World;
use serde_json::Value;

use super::tools::Tools;
use super::Daemon;
use crate::app::{App, RuntimeError};
use crate::config::ExecTool;

/// Where an `act` is decided, and who can carry it out.
enum Lane<'a> {
    /// The daemon's one decision lane and its providers (programs, and NATS with a bus).
    Daemon(Arc<Daemon>),
    /// A data directory this command opened while no daemon runs, and the programs of its
    /// `roster.toml`.
    Here {
        /// The opened data directory.
        app: &'a mut App,
        /// Its programs.
        tools: &'a Tools,
    },
}

impl Lane<'_> {
    fn tools(&self) -> &Tools {
        match self {
            Lane::Daemon(d) => &d.tools,
            Lane::Here { tools, .. } => tools,
        }
    }

    /// How long `p` may wait for a human: never where nobody else can decide meanwhile.
    fn wait(&self, p: &ActParams) -> Duration {
        match self {
            Lane::Daemon(_) => p.wait(),
            Lane::Here { .. } => Duration::ZERO,
        }
    }

    /// Runs `f` on the `App`: the daemon's, locked, on the blocking pool (a decision appends
    /// and flushes); or this command's, at once (nothing else runs beside it).
    async fn locked<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut App) -> Result<T, ActError> + Send + 'static,
    ) -> Result<T, ActError> {
        let d = match self {
            Lane::Here { app, .. } => return f(app),
            Lane::Daemon(d) => d.clone(),
        };
        let run =
            tokio::task::spawn_blocking(move || d.decide(f).map_err(internal).and_then(|r| r));
        match run.await {
            Ok(result) => result,
            Err(e) => {
                tracing::error!("act failed: {e}");
                Err(ActError::Other(GatewayError::new(
                    ErrorCode::Internal,
                    "the runtime failed to answer; the request may be retried",
                )))
            }
        }
    }
}

/// An action carried out.
#[derive(Debug)]
pub struct Acted {
    /// The call its provider got (the recorded `ActionPerformed`, the chain, the approval).
    pub call: ToolCall,
    /// The provider's answer (`null` when `replayed`: it is not kept).
    pub result: Value,
    /// Carried out earlier under the call's key: answered again from the log, the provider not
    /// run.
    pub replayed: bool,
}

impl Acted {
    /// The answer as the gateway gives it (and `roster act --json` prints it): the record of
    /// the use and the provider's answer, without what the agent already knows it asked.
    pub fn answer(&self) -> Performed {
        Performed {
            approval: self.call.approval,
            chain: self.call.chain.clone(),
            performed: self.call.performed,
            replayed: self.replayed,
            result: self.result.clone(),
        }
    }
}

/// Why an `act` carried nothing out (or, for `tool_failed`, carried it out without an answer).
#[derive(Debug)]
pub enum ActError {
    /// `decide` refused, and its `AccessDenied` is recorded: the sentence, with the operator's
    /// note when it was their refusal of the approval.
    Refused {
        /// The refusal.
        rejected: Box<Rejected>,
        /// What to say.
        why: String,
    },
    /// The approval still waits for an operator's decision after `waited`; nothing was spent.
    Pending {
        /// The approval to act again with.
        approval: ApprovalId,
        /// How long this call waited.
        waited: Duration,
    },
    /// Anything else, as the gateway answers it (`unavailable`, `tool_failed`, an operator's
    /// refusal of the awaited approval as `denied`, `internal`).
    Other(GatewayError),
}

impl From<ActError> for GatewayError {
    fn from(e: ActError) -> Self {
        match e {
            ActError::Refused { why, rejected } => GatewayError::new(refused(&rejected), why),
            ActError::Pending { approval, waited } => pending(approval, waited.as_secs()),
            ActError::Other(e) => e,
        }
    }
}

/// Answers an agent's `act` through its gateway; a wait for an approval ends when the agent
/// hangs up (`hung_up` resolves).
pub(super) async fn for_agent(
    d: Arc<Daemon>,
    agent: AgentId,
    p: ActParams,
    hung_up: crate::gateway::HungUp,
) -> Result<Performed, GatewayError> {
    let left = async move {
        let _ = hung_up.await;
    };
    act(&mut Lane::Daemon(d), agent, p, left)
        .await
        .map(|a| a.answer())
        .map_err(GatewayError::from)
}

impl Daemon {
    /// `roster act` forwarded to the daemon: the agent's own `act`, from a command's blocking
    /// thread. Its wait for an approval also ends (as `pending`) when `left` resolves: the
    /// operator's client went away, and nobody would see the action carried out.
    pub fn act_for_operator(
        &self,
        agent: AgentId,
        p: ActParams,
        left: impl Future<Output = ()>,
    ) -> Result<Acted, ActError> {
        let d = self.arc().map_err(internal)?;
        let acted = self.rt.block_on(act(&mut Lane::Daemon(d), agent, p, left));
        self.poke();
        acted
    }
}

/// `roster act` while no daemon runs: the same `act` on `app`, carried out by the programs of
/// `roster.toml` (`exec`). It never waits for an approval: nobody can decide one while this
/// command holds the log.
pub fn act_here(
    app: &mut App,
    exec: HashMap<Action, ExecTool>,
    agent: AgentId,
    p: ActParams,
) -> Result<Acted, ActError> {
    let tools = Tools::without_daemon(exec);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(internal)?;
    let mut lane = Lane::Here { app, tools: &tools };
    rt.block_on(act(&mut lane, agent, p, std::future::pending()))
}

/// Acts for `agent` in `lane`. A wait for an approval ends at the call's deadline, or when
/// `stop` resolves (nothing is in flight then: stopping is safe).
async fn act(
    lane: &mut Lane<'_>,
    agent: AgentId,
    p: ActParams,
    stop: impl Future<Output = ()>,
) -> Result<Acted, ActError> {
    lane.tools()
        .check(&p.action)
        .map_err(|why| ActError::Other(GatewayError::new(ErrorCode::Unavailable, why)))?;
    let wait = lane.wait(&p);
    // Taken before the first look at the approval: a decision committed after it changes it.
    let mut decisions = lane.locked(|app| Ok(app.watch_decisions())).await?;
    let first = {
        let p = p.clone();
        lane.locked(move |app| first_step(app, agent, &p)).await?
    };
    let call = match first {
        Step::Performed(call) => call,
        Step::Replayed(call) => return Ok(replayed(*call)),
        Step::Waiting(id) => {
            let deadline = tokio::time::Instant::now() + wait;
            let mut stop = std::pin::pin!(stop);
            loop {
                let p2 = p.clone();
                // Looked at now: an approved approval is used by the next decision, so a
                // provider must still be there first, or an unreachable bus uses it up for
                // nothing.
                let reachable = lane.tools().check(&p.action);
                let step = lane
                    .locked(move |app| after_decision(app, agent, &p2, id, reachable))
                    .await?;
                match step {
                    Some(Step::Performed(call)) => break call,
                    Some(Step::Replayed(call)) => return Ok(replayed(*call)),
                    Some(Step::Waiting(_)) | None => {}
                }
                let woke = tokio::select! {
                    changed = tokio::time::timeout_at(deadline, decisions.changed()) => Some(changed),
                    () = &mut stop => None,
                };
                match woke {
                    Some(Ok(Ok(()))) => continue,
                    // The daemon's `App` is gone: it is shutting down.
                    Some(Ok(Err(_))) => {
                        return Err(internal(format!(
                            "the runtime is stopping; approval {id} still waits"
                        )))
                    }
                    Some(Err(_)) | None => {
                        return Err(ActError::Pending {
                            approval: id,
                            waited: wait,
                        })
                    }
                }
            }
        }
    };
    let performed = call.performed;
    let result = lane.tools().call(&call).await.map_err(|why| {
        if matches!(lane, Lane::Daemon(_)) {
            tracing::warn!(%agent, %performed, action = %call.action, "tool provider failed: {why}");
        }
        ActError::Other(GatewayError::new(
            ErrorCode::ToolFailed,
            format!(
                "{} on {} was authorized and recorded as performed ({performed}; the spend \
                 stands), but its tool provider failed: {why}",
                call.action, call.resource
            ),
        ))
    })?;
    Ok(Acted {
        call: *call,
        result,
        replayed: false,
    })
}

/// The answer to a keyed call carried out earlier.
fn replayed(call: ToolCall) -> Acted {
    Acted {
        call,
        result: Value::Null,
        replayed: true,
    }
}

/// Where a decision left the call.
enum Step {
    /// Recorded as performed: the call for the provider.
    Performed(Box<ToolCall>),
    /// Carried out earlier under its key: the call as recorded then, not to be run again.
    Replayed(Box<ToolCall>),
    /// Waiting for a human's decision on this approval.
    Waiting(ApprovalId),
}

/// The `pending` answer for approval `id` after waiting `secs`.
fn pending(id: ApprovalId, secs: u64) -> GatewayError {
    GatewayError::new(
        ErrorCode::Pending,
        format!(
            "approval {id} is waiting for an operator (roster approve {id}); no decision \
             within {secs} s. Call act again with approval {id} to wait again or, once it is \
             granted, to use it; nothing was spent"
        ),
    )
}

/// The code of a refusal by `decide`: `key_reused` for a call key used for another call,
/// `denied` for everything else.
pub(crate) fn refused(r: &Rejected) -> ErrorCode {
    match *r.rejection {
        Rejection::KeyReused { .. } => ErrorCode::KeyReused,
        _ => ErrorCode::Denied,
    }
}

fn internal(e: impl std::fmt::Display) -> ActError {
    ActError::Other(GatewayError::new(ErrorCode::Internal, e.to_string()))
}

/// The first decision: with an earlier approval that still waits, wait for it (nothing is
/// recorded); otherwise decide `Act` as the agent.
fn first_step(app: &mut App, agent: AgentId, p: &ActParams) -> Result<Step, ActError> {
    if let Some(call) = replay(app, agent, p)? {
        return Ok(Step::Replayed(call));
    }
    if let Some(id) = p.approval {
        let ours = app.world().approval(id).is_some_and(|ap| {
            ap.decision.is_none()
                && ap.agent == agent
                && ap.action == p.action
                && ap.resource == p.resource
                && ap.amount == p.amount.unwrap_or(ONE)
                && ap.binds_args(&p.args)
        });
        if ours {
            return Ok(Step::Waiting(id));
        }
        // Anything else (not its own, decided, used, refused) is for `decide` to rule on and
        // record.
    }
    let envelopes = execute(app, agent, p, p.approval)?;
    step_of(app.world(), &envelopes, p)
}

/// The call recorded earlier under `p`'s key, when the world holds it for this same call.
fn replay(app: &App, agent: AgentId, p: &ActParams) -> Result<Option<Box<ToolCall>>, ActError> {
    let Some(key) = &p.key else {
        return Ok(None);
    };
    let digest = act_digest(&p.action, &p.resource, p.amount.unwrap_or(ONE), &p.args);
    let Some(events) = super::keyed::replay(app, agent, key, digest).map_err(ActError::Other)?
    else {
        return Ok(None);
    };
    let performed = events
        .iter()
        .find(|e| matches!(e.event, Event::ActionPerformed { agent: a, .. } if a == agent))
        .ok_or_else(|| internal(format!("call key `{key}` recorded no ActionPerformed")))?;
    ToolCall::of(performed, app.world(), p.args.clone())
        .map(|c| Some(Box::new(c)))
        .ok_or_else(|| internal("the performed action names an unknown agent"))
}

/// After a wake-up: the approval's decision, acted on; `None` while nobody has decided. A
/// keyed call that another call with its key carried out meanwhile is answered with that.
fn after_decision(
    app: &mut App,
    agent: AgentId,
    p: &ActParams,
    id: ApprovalId,
    reachable: Result<(), String>,
) -> Result<Option<Step>, ActError> {
    if let Some(call) = replay(app, agent, p)? {
        return Ok(Some(Step::Replayed(call)));
    }
    let Some(ap) = app.world().approval(id) else {
        return Err(internal(format!("approval {id} is not in the log")));
    };
    match &ap.decision {
        None => Ok(None),
        Some(dec) if !dec.approved => {
            let note = dec
                .note
                .as_ref()
                .map_or_else(String::new, |n| format!(": {n}"));
            Err(ActError::Other(GatewayError::new(
                ErrorCode::Denied,
                format!("approval {id} was refused by {}{note}", dec.by),
            )))
        }
        Some(_) => {
            // The approval is used by the next decision: a provider must still be there.
            reachable.map_err(|why| {
                ActError::Other(GatewayError::new(
                    ErrorCode::Unavailable,
                    format!("{why}; approval {id} is granted and still unused: act again with it"),
                ))
            })?;
            let envelopes = execute(app, agent, p, Some(id))?;
            match step_of(app.world(), &envelopes, p)? {
                Step::Waiting(other) => Err(internal(format!(
                    "using approval {id} asked for another approval, {other}"
                ))),
                step => Ok(Some(step)),
            }
        }
    }
}

/// Decides `Act` as `agent` and commits it; a refusal (already recorded by `execute`) is
/// `denied`, with the operator's note when it was their refusal of the approval.
fn execute(
    app: &mut App,
    agent: AgentId,
    p: &ActParams,
    approval: Option<ApprovalId>,
) -> Result<Vec<Envelope>, ActError> {
    let command = Command::Act {
        action: p.action.clone(),
        resource: p.resource.clone(),
        amount: p.amount.unwrap_or(ONE),
        args: p.args.clone(),
        approval,
        key: p.key.clone(),
    };
    match app.execute(command, &Actor::Agent(agent)) {
        Ok(envelopes) => Ok(envelopes),
        Err(RuntimeError::Refused(r)) => Err(denied(app.world(), r, approval)),
        Err(e) => Err(ActError::Other(super::backend::failure(e))),
    }
}

/// The refusal `r`, with the operator's note when they refused `approval`.
fn denied(world: &World, r: Rejected, approval: Option<ApprovalId>) -> ActError {
    let note = approval
        .and_then(|id| world.approval(id))
        .and_then(|ap| ap.decision.as_ref())
        .filter(|dec| !dec.approved)
        .and_then(|dec| dec.note.as_ref())
        .map_or_else(String::new, |n| format!(" (the operator's note: {n})"));
    ActError::Refused {
        why: format!("{}{note}", r.rejection),
        rejected: Box::new(r),
    }
}

/// What the committed `envelopes` of an `Act` mean for the call (a keyed call's `CallKeyed`
/// first, then its outcome).
fn step_of(world: &World, envelopes: &[Envelope], p: &ActParams) -> Result<Step, ActError> {
    let envelopes = match envelopes.first().map(|e| &e.event) {
        Some(Event::CallKeyed { .. }) => envelopes.get(1..).unwrap_or_default(),
        _ => envelopes,
    };
    let Some(first) = envelopes.first() else {
        return Err(internal("the decision recorded nothing"));
    };
    match &first.body().event {
        Event::ApprovalRequested { approval, .. }
        | Event::CallApprovalRequested { approval, .. } => Ok(Step::Waiting(*approval)),
        Event::ActionPerformed { .. } => ToolCall::of(first, world, p.args.clone())
            .map(|c| Step::Performed(Box::new(c)))
            .ok_or_else(|| internal("the performed action names an unknown agent")),
        other => Err(internal(format!(
            "an act recorded {} instead of ActionPerformed",
            other.kind()
        ))),
    }
}
