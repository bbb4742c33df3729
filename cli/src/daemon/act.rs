//! The gateway's `act`: decide as the agent, wait for a human when the grant asks for one,
//! record the spend, have the tool provider carry it out, answer with its result.
//!
//! ```text
//! provider possible? ──no──► unavailable (nothing recorded)
//!   │ yes
//! decide Act ──Deny──► denied (AccessDenied recorded by decide)
//!   ├─ NeedsApproval ─► ApprovalRequested recorded ─► wait (no lock held) until decided or timeout
//!   │                      ├─ approved ─► decide Act { approval } ─► ActionPerformed
//!   │                      ├─ refused  ─► denied, with the operator's note
//!   │                      └─ timeout  ─► pending, naming the approval (act again with it)
//!   └─ Allow ─► ActionPerformed recorded
//!                 └─► the provider gets the ToolCall ─► {"performed","chain","approval","result"}
//!                       (its failure: tool_failed; the spend stands)
//! ```
//!
//! The wait holds neither the daemon's lock nor a thread: it awaits the `App`'s decision
//! counter ([`App::watch_decisions`](crate::app::App::watch_decisions)), which every committed
//! `ApprovalDecided` bumps — from `roster approve`/`deny` through the admin socket or anything
//! else that commits through the daemon.

use std::sync::Arc;

use roster_core::actor::Actor;
use roster_core::capability::ONE;
use roster_core::command::{Command, Rejected};
use roster_core::envelope::Envelope;
use roster_core::event::Event;
use roster_core::gateway::{ActParams, ErrorCode, GatewayError};
use roster_core::id::{AgentId, ApprovalId};
use roster_core::tool::ToolCall;
use roster_core::world::World;
use serde_json::{json, Value};

use super::Daemon;
use crate::app::{App, CliError};

/// Where a decision left the call.
enum Step {
    /// Recorded as performed: the call for the provider.
    Performed(Box<ToolCall>),
    /// Waiting for a human's decision on this approval.
    Waiting(ApprovalId),
}

/// Answers `act` for `agent`.
pub(super) async fn act(
    d: Arc<Daemon>,
    agent: AgentId,
    p: ActParams,
) -> Result<Value, GatewayError> {
    let unavailable = |why: String| GatewayError::new(ErrorCode::Unavailable, why);
    d.tools.check(&p.action).map_err(unavailable)?;
    let wait = p.wait();
    // Taken before the first look at the approval: a decision committed after it changes it.
    let mut decisions = locked(&d, |app| Ok(app.watch_decisions())).await?;
    let first = {
        let p = p.clone();
        locked(&d, move |app| first_step(app, agent, &p)).await?
    };
    let call = match first {
        Step::Performed(call) => call,
        Step::Waiting(id) => {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let p = p.clone();
                let d2 = d.clone();
                let step = locked(&d, move |app| after_decision(&d2, app, agent, &p, id)).await?;
                if let Some(call) = step {
                    break call;
                }
                let changed = tokio::time::timeout_at(deadline, decisions.changed()).await;
                match changed {
                    Ok(Ok(())) => continue,
                    // The daemon's `App` is gone: it is shutting down.
                    Ok(Err(_)) => {
                        return Err(GatewayError::new(
                            ErrorCode::Internal,
                            format!("the runtime is stopping; approval {id} still waits"),
                        ))
                    }
                    Err(_) => return Err(pending(id, wait.as_secs())),
                }
            }
        }
    };
    let performed = call.performed;
    let result = d.tools.call(&call).await.map_err(|why| {
        tracing::warn!(%agent, %performed, action = %call.action, "tool provider failed: {why}");
        GatewayError::new(
            ErrorCode::ToolFailed,
            format!(
                "{} on {} was authorized and recorded as performed ({performed}; the spend \
                 stands), but its tool provider failed: {why}",
                call.action, call.resource
            ),
        )
    })?;
    Ok(json!({
        "performed": performed,
        "chain": call.chain,
        "approval": call.approval,
        "result": result,
    }))
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

/// Runs `f` on the daemon's `App`, locked, on the blocking pool (a decision appends and
/// flushes).
async fn locked<T: Send + 'static>(
    d: &Arc<Daemon>,
    f: impl FnOnce(&mut App) -> Result<T, GatewayError> + Send + 'static,
) -> Result<T, GatewayError> {
    let d = d.clone();
    let run = tokio::task::spawn_blocking(move || {
        let mut app = d.app().map_err(internal)?;
        f(&mut app)
    });
    match run.await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!("act failed: {e}");
            Err(GatewayError::new(
                ErrorCode::Internal,
                "the runtime failed to answer; the request may be retried",
            ))
        }
    }
}

fn internal(e: impl std::fmt::Display) -> GatewayError {
    GatewayError::new(ErrorCode::Internal, e.to_string())
}

/// The first decision: with an earlier approval that still waits, wait for it (nothing is
/// recorded); otherwise decide `Act` as the agent.
fn first_step(app: &mut App, agent: AgentId, p: &ActParams) -> Result<Step, GatewayError> {
    if let Some(id) = p.approval {
        let ours = app.world.approval(id).is_some_and(|ap| {
            ap.decision.is_none()
                && ap.agent == agent
                && ap.action == p.action
                && ap.resource == p.resource
                && ap.amount == p.amount.unwrap_or(ONE)
        });
        if ours {
            return Ok(Step::Waiting(id));
        }
        // Anything else (not its own, decided, used, refused) is for `decide` to rule on and
        // record.
    }
    let envelopes = execute(app, agent, p, p.approval)?;
    step_of(&app.world, &envelopes, p)
}

/// After a wake-up: the approval's decision, acted on; `None` while nobody has decided.
fn after_decision(
    d: &Daemon,
    app: &mut App,
    agent: AgentId,
    p: &ActParams,
    id: ApprovalId,
) -> Result<Option<Box<ToolCall>>, GatewayError> {
    let Some(ap) = app.world.approval(id) else {
        return Err(internal(format!("approval {id} is not in the log")));
    };
    match &ap.decision {
        None => Ok(None),
        Some(dec) if !dec.approved => {
            let note = dec
                .note
                .as_ref()
                .map_or_else(String::new, |n| format!(": {n}"));
            Err(GatewayError::new(
                ErrorCode::Denied,
                format!("approval {id} was refused by {}{note}", dec.by),
            ))
        }
        Some(_) => {
            // The approval is used by the next decision: make sure a provider is still there
            // first, so that an unreachable bus does not use it up for nothing.
            d.tools.check(&p.action).map_err(|why| {
                GatewayError::new(
                    ErrorCode::Unavailable,
                    format!("{why}; approval {id} is granted and still unused: act again with it"),
                )
            })?;
            let envelopes = execute(app, agent, p, Some(id))?;
            match step_of(&app.world, &envelopes, p)? {
                Step::Performed(call) => Ok(Some(call)),
                Step::Waiting(other) => Err(internal(format!(
                    "using approval {id} asked for another approval, {other}"
                ))),
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
) -> Result<Vec<Envelope>, GatewayError> {
    let command = Command::Act {
        action: p.action.clone(),
        resource: p.resource.clone(),
        amount: p.amount.unwrap_or(ONE),
        approval,
    };
    match app.execute(command, &Actor::Agent(agent)) {
        Ok(envelopes) => Ok(envelopes),
        Err(CliError::Refused(r)) => Err(denied(&app.world, &r, approval)),
        Err(e) => Err(internal(e)),
    }
}

/// The `denied` answer for `r`, with the operator's note when they refused `approval`.
fn denied(world: &World, r: &Rejected, approval: Option<ApprovalId>) -> GatewayError {
    let note = approval
        .and_then(|id| world.approval(id))
        .and_then(|ap| ap.decision.as_ref())
        .filter(|dec| !dec.approved)
        .and_then(|dec| dec.note.as_ref())
        .map_or_else(String::new, |n| format!(" (the operator's note: {n})"));
    GatewayError::new(ErrorCode::Denied, format!("{}{note}", r.rejection))
}

/// What the committed `envelopes` of an `Act` mean for the call.
fn step_of(world: &World, envelopes: &[Envelope], p: &ActParams) -> Result<Step, GatewayError> {
    let Some(first) = envelopes.first() else {
        return Err(internal("the decision recorded nothing"));
    };
    match &first.body().event {
        Event::ApprovalRequested { approval, .. } => Ok(Step::Waiting(*approval)),
        Event::ActionPerformed { .. } => ToolCall::of(first, world, p.args.clone())
            .map(|c| Step::Performed(Box::new(c)))
            .ok_or_else(|| internal("the performed action names an unknown agent")),
        other => Err(internal(format!(
            "an act recorded {} instead of ActionPerformed",
            other.kind()
        ))),
    }
}
