//! `grant`, `revoke`, `grants`, `check`, `act`, `approvals`, `approve`, `deny`.

use std::time::Duration;

use roster_core::authz::Authorization;
use roster_core::capability::{Action, Amount, Capability, Resource, ONE};
use roster_core::command::Command;
use roster_core::gateway::{ActParams, ErrorCode};
use roster_core::id::{AgentId, ApprovalId, GrantId};
use roster_core::name::Label;
use roster_core::refs::{AgentRef, IdRef};
use roster_core::world::World;

use super::{AdminError, ApprovalRow, CheckItem, CheckRow, Ctx, Item, Verdict};
use crate::app::{now, App};
use crate::config::Config;
use crate::daemon::act::{act_here, ActError, Acted};
use crate::describe;
use crate::gateway::answer::grant_view;

pub(super) fn grant(
    agent: &AgentRef,
    capability: Capability,
    from: Option<&IdRef<GrantId>>,
    by: Option<&AgentRef>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    ctx.commit(|world| {
        let to = agent.resolve(world)?.id;
        let from = from.map(|f| resolve_grant(f, world)).transpose()?;
        let command = Command::Grant {
            to,
            capability,
            from,
            key: None,
        };
        Ok((command, ctx.actor(world, by)?))
    })?;
    Ok(())
}

/// The grant `grant` names among the world's.
fn resolve_grant(grant: &IdRef<GrantId>, world: &World) -> Result<GrantId, AdminError> {
    Ok(grant.resolve(world.grants().map(|g| g.id))?)
}

/// The approval `approval` names among the world's.
fn resolve_approval(approval: &IdRef<ApprovalId>, world: &World) -> Result<ApprovalId, AdminError> {
    Ok(approval.resolve(world.approvals().map(|a| a.id))?)
}

pub(super) fn revoke(
    grant: &IdRef<GrantId>,
    by: Option<&AgentRef>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    let mut revoked = None;
    let (_, after) = ctx.commit(|world| {
        let grant = resolve_grant(grant, world)?;
        revoked = Some(grant);
        Ok((Command::Revoke { grant }, ctx.actor(world, by)?))
    })?;
    let Some(grant) = revoked else {
        return Ok(());
    };
    let world = after.world();
    let cascaded = world
        .grants()
        .filter(|g| g.id != grant && world.chain_of(g.id).contains(&grant))
        .count();
    if cascaded > 0 {
        ctx.reply.send(Item::Cascaded {
            grants: cascaded as u64,
        })?;
    }
    Ok(())
}

pub(super) fn list(agent: Option<AgentRef>, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let app = ctx.read()?;
    let holder = agent
        .map(|a| a.resolve(app.world()).map(|a| a.id))
        .transpose()?;
    let now = now();
    for g in app.world().grants() {
        if holder.is_some_and(|h| h != g.holder) {
            continue;
        }
        // The grant as the gateway's `grants` gives it: one type, one shape.
        ctx.reply
            .send(Item::Grant(grant_view(app.world(), g, now)))?;
    }
    Ok(())
}

/// Each grant of `chain` as people read it: `grt_… capability (holder)`.
fn links(world: &World, chain: &[GrantId]) -> Vec<String> {
    chain
        .iter()
        .filter_map(|g| world.grant(*g))
        .map(|g| {
            format!(
                "{} {} ({})",
                g.id.short(),
                g.capability,
                describe::agent(world, g.holder)
            )
        })
        .collect()
}

pub(super) fn check(
    agent: &AgentRef,
    action: Action,
    resource: Resource,
    amount: Option<Amount>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    let app = ctx.read()?;
    let world = app.world();
    let a = agent.resolve(world)?;
    let amount = amount.unwrap_or(ONE);
    let (decision, chain, reason) = match world.authorize(a.id, &action, &resource, amount, now()) {
        Authorization::Allow { chain } => (Verdict::Allow, chain, None),
        Authorization::NeedsApproval { chain } => (Verdict::NeedsApproval, chain, None),
        Authorization::Deny { reason } => (Verdict::Deny, Vec::new(), Some(reason.to_string())),
    };
    ctx.reply.send(Item::Check(CheckItem {
        address: describe::agent(world, a.id),
        links: links(world, &chain),
        row: CheckRow {
            agent: a.id,
            action,
            resource,
            amount,
            decision,
            chain,
            reason,
        },
    }))?;
    if decision == Verdict::Deny {
        return Err(AdminError::Reported(3));
    }
    Ok(())
}

/// `roster act`: the agent's own `act` (`daemon::act`), decided as the agent — through the
/// daemon when one runs (its providers, its approval waits), else on this data directory with
/// the programs of its roster.toml.
pub(super) fn act(
    agent: &AgentRef,
    mut params: ActParams,
    approval: Option<&IdRef<ApprovalId>>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    params.check().map_err(AdminError::BadRequest)?;
    if approval.is_some() && params.approval.is_some() {
        return Err(AdminError::BadRequest(
            "the approval is given twice: give it as `approval` or as `params.approval`, not both"
                .into(),
        ));
    }
    let wait = params.timeout_secs.unwrap_or(0);
    let (action, resource, amount) = (
        params.action.clone(),
        params.resource.clone(),
        params.amount,
    );
    let asked = Asked {
        action: &action,
        resource: &resource,
        amount,
        wait,
    };
    let item = match ctx.daemon {
        Some(d) => {
            let agent = {
                let snapshot = d.snapshot()?;
                let agent = agent.resolve(snapshot.world())?.id;
                if let Some(a) = approval {
                    params.approval = Some(resolve_approval(a, snapshot.world())?);
                }
                agent
            };
            let reply = ctx.reply.clone();
            let left = async move {
                while !reply.gone() {
                    tokio::time::sleep(CLIENT_POLL).await;
                }
            };
            let acted = d.act_for_operator(agent, params, left);
            // Described from a snapshot: a slow client never holds the daemon.
            report(d.snapshot()?.world(), agent, &asked, acted, false)
        }
        None => {
            let exec = Config::load(ctx.data_dir)?.tools;
            let mut app = App::open(ctx.data_dir)?;
            let agent = agent.resolve(app.world())?.id;
            if let Some(a) = approval {
                params.approval = Some(resolve_approval(a, app.world())?);
            }
            let before = app.log().len();
            let acted = act_here(&mut app, exec, agent, params);
            if app.log().len() > before {
                ctx.sign_here(&**app.log());
            }
            report(app.world(), agent, &asked, acted, true)
        }
    };
    let (item, exit) = item;
    ctx.reply.send(item)?;
    match exit {
        0 => Ok(()),
        code => Err(AdminError::Reported(code)),
    }
}

/// How often a waiting `roster act` looks whether its client is still there.
const CLIENT_POLL: Duration = Duration::from_millis(250);

/// What an `act` asked for, to say it back.
struct Asked<'a> {
    action: &'a Action,
    resource: &'a Resource,
    amount: Option<Amount>,
    wait: u32,
}

/// The answer to `agent`'s act and the exit code it makes; `here` when no daemon ran it.
fn report(
    world: &World,
    agent: AgentId,
    a: &Asked<'_>,
    acted: Result<Acted, ActError>,
    here: bool,
) -> (Item, u8) {
    match acted {
        Ok(acted) => {
            let c = &acted.call;
            let chain = links(world, &c.chain).join(" from ");
            let approval = c
                .approval
                .map_or_else(String::new, |id| format!(", approved in {id}"));
            let answered = if acted.replayed {
                "carried out earlier under this call key: the provider was not run again".into()
            } else {
                format!("the provider answered {}", acted.result)
            };
            let text = format!(
                "performed {} on {} (amount {}) as {} through {chain}{approval}; recorded as {}; \
                 {answered}",
                c.action,
                c.resource,
                c.amount,
                describe::agent(world, agent),
                c.performed,
            );
            let item = Item::Performed {
                answer: acted.answer(),
                text,
            };
            (item, 0)
        }
        Err(ActError::Refused { rejected, why }) => {
            let item = Item::ActFailed {
                code: crate::daemon::act::refused(&rejected),
                message: format!("refused: {why}"),
                approval: None,
            };
            (item, AdminError::from(*rejected).exit_code())
        }
        Err(ActError::Pending { approval, waited }) => {
            let amount = a
                .amount
                .map_or_else(String::new, |n| format!(" --amount {n}"));
            let why = if here && a.wait > 0 {
                " (no `roster serve` runs, so nobody could decide while this command held the \
                 log: --wait needs it)"
                    .to_string()
            } else if waited.is_zero() {
                String::new()
            } else {
                format!(" (no decision within {} s)", waited.as_secs())
            };
            let item = Item::ActFailed {
                code: ErrorCode::Pending,
                message: format!(
                    "approval {approval} waits for an operator{why}; nothing was spent. Once \
                     `roster approve {approval}` grants it, carry the action out with \
                     `roster act {} {} {}{amount} --approval {approval}`",
                    describe::agent(world, agent),
                    a.action,
                    a.resource
                ),
                approval: Some(approval),
            };
            (item, ErrorCode::Pending.exit_code())
        }
        Err(ActError::Other(e)) => {
            let exit = e.code.exit_code();
            let item = Item::ActFailed {
                code: e.code,
                message: e.message,
                approval: None,
            };
            (item, exit)
        }
    }
}

pub(super) fn approvals(all: bool, ctx: &Ctx<'_>) -> Result<(), AdminError> {
    let app = ctx.read()?;
    let world = app.world();
    for ap in world.approvals() {
        let state = match (&ap.decision, ap.used) {
            (None, _) => "waiting",
            (Some(d), false) if d.approved => "approved",
            (Some(d), true) if d.approved => "used",
            (Some(_), _) => "refused",
        };
        if !all && state != "waiting" {
            continue;
        }
        ctx.reply.send(Item::Approval(ApprovalRow {
            id: ap.id,
            agent: ap.agent,
            agent_name: describe::agent(world, ap.agent),
            action: ap.action.clone(),
            resource: ap.resource.clone(),
            amount: ap.amount,
            args: ap.args.clone(),
            requested_at: ap.requested_at,
            state: state.to_owned(),
            decided_by: ap.decision.as_ref().map(|d| d.by.to_string()),
            decided_at: ap.decision.as_ref().map(|d| d.at),
            note: ap.decision.as_ref().and_then(|d| d.note.clone()),
        }))?;
    }
    Ok(())
}

/// Refuses every approval waiting now (only `agent`'s, if given) with `note`, in one hold of
/// the ledger: an agent flooding the operator's queue is answered at once. Each refusal is its
/// own decision (approvals of several teams cannot commit as one): one that fails (a full data
/// disk) stops the rest, and what was refused before it is shown before the error.
pub(super) fn deny_waiting(
    agent: Option<&AgentRef>,
    note: Option<Label>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    let operator = ctx.operator();
    let (committed, after) = ctx.decide(|app| {
        let agent = agent
            .map(|a| a.resolve(app.world()).map(|a| a.id))
            .transpose()?;
        let waiting: Vec<ApprovalId> = app
            .world()
            .waiting_approvals(agent)
            .iter()
            .map(|ap| ap.id)
            .collect();
        let mut committed = Vec::new();
        let mut failed = None;
        for approval in waiting {
            let command = Command::DecideApproval {
                approval,
                approved: false,
                note: note.clone(),
            };
            match app.execute(command, &operator) {
                Ok(events) => committed.extend(events),
                Err(e) => {
                    failed = Some(AdminError::from(e));
                    break;
                }
            }
        }
        Ok(((committed, failed), app.snapshot()))
    })?;
    let (committed, failed) = committed;
    ctx.poke();
    super::send_committed(&ctx.reply, after.world(), &committed)?;
    failed.map_or(Ok(()), Err)
}

pub(super) fn decide(
    approval: &IdRef<ApprovalId>,
    approved: bool,
    note: Option<Label>,
    ctx: &Ctx<'_>,
) -> Result<(), AdminError> {
    ctx.commit(|world| {
        let command = Command::DecideApproval {
            approval: resolve_approval(approval, world)?,
            approved,
            note,
        };
        Ok((command, ctx.operator()))
    })?;
    Ok(())
}
