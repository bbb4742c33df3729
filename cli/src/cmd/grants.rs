//! `grant`, `revoke`, `grants`, `check`, `act`, `approvals`, `approve`, `deny`.

use roster_core::actor::Actor;
use roster_core::authz::Authorization;
use roster_core::capability::{Action, Amount, Capability, Resource, ONE};
use roster_core::command::Command;
use roster_core::id::{ApprovalId, GrantId};
use serde_json::json;

use super::{actor_for, print_committed, Env};
use crate::app::{now, CliError};
use crate::args::DecideArgs;
use crate::describe;
use crate::output::{relative, Table};
use crate::refs::AgentRef;

pub(super) fn grant(
    agent: AgentRef,
    capability: Capability,
    from: Option<GrantId>,
    by: Option<AgentRef>,
    env: &Env<'_>,
) -> anyhow::Result<()> {
    let mut app = env.open()?;
    let to = agent.resolve(&app.world).map_err(CliError::Input)?.id;
    let actor = actor_for(&app, by)?;
    let committed = app.execute(
        Command::Grant {
            to,
            capability,
            from,
        },
        &actor,
    )?;
    print_committed(&app, &committed, &env.out)
}

pub(super) fn revoke(grant: GrantId, by: Option<AgentRef>, env: &Env<'_>) -> anyhow::Result<()> {
    let mut app = env.open()?;
    let actor = actor_for(&app, by)?;
    let committed = app.execute(Command::Revoke { grant }, &actor)?;
    let cascaded = app
        .world
        .grants()
        .filter(|g| g.id != grant && app.world.chain_of(g.id).contains(&grant))
        .count();
    print_committed(&app, &committed, &env.out)?;
    if !env.out.json && cascaded > 0 {
        env.out.line(format!(
            "       {cascaded} grant(s) derived from it stop working too"
        ))?;
    }
    Ok(())
}

pub(super) fn list(agent: Option<AgentRef>, env: &Env<'_>) -> anyhow::Result<()> {
    let app = env.open()?;
    let holder = agent
        .map(|a| a.resolve(&app.world).map(|a| a.id))
        .transpose()
        .map_err(CliError::Input)?;
    let now = now();
    let mut table = Table::new(&[
        "grant",
        "holder",
        "capability",
        "status",
        "spent",
        "parent",
        "issued",
    ]);
    for g in app.world.grants() {
        if holder.is_some_and(|h| h != g.holder) {
            continue;
        }
        let st = describe::grant_status(&app.world, g.id, now);
        let budget = g.capability.constraints().budget;
        if env.out.json {
            env.out.json_line(&json!({
                "id": g.id, "holder": g.holder, "holder_name": describe::agent(&app.world, g.holder),
                "capability": g.capability, "status": st, "active": app.world.is_active(g.id, now),
                "spent": g.spent, "budget": budget, "parent": g.parent, "issued_at": g.issued_at,
            }))?;
        }
        table.row(vec![
            g.id.to_string(),
            describe::agent(&app.world, g.holder),
            g.capability.to_string(),
            st,
            match budget {
                Some(b) => format!("{}/{b}", g.spent),
                None => g.spent.to_string(),
            },
            g.parent.map_or_else(|| "root".to_string(), |p| p.short()),
            relative(g.issued_at, now),
        ]);
    }
    if !env.out.json {
        env.out.line(if table.is_empty() {
            "no grants".into()
        } else {
            table.render()
        })?;
    }
    Ok(())
}

pub(super) fn check(
    agent: AgentRef,
    action: Action,
    resource: Resource,
    amount: Option<Amount>,
    env: &Env<'_>,
) -> anyhow::Result<()> {
    let app = env.open()?;
    let a = agent.resolve(&app.world).map_err(CliError::Input)?;
    let amount = amount.unwrap_or(ONE);
    let decision = app.world.authorize(a.id, &action, &resource, amount, now());
    let name = describe::agent(&app.world, a.id);
    let chain_text = |chain: &[GrantId]| {
        chain
            .iter()
            .filter_map(|g| app.world.grant(*g))
            .map(|g| {
                format!(
                    "{} {} ({})",
                    g.id.short(),
                    g.capability,
                    describe::agent(&app.world, g.holder)
                )
            })
            .collect::<Vec<_>>()
    };
    let (verdict, chain, reason) = match &decision {
        Authorization::Allow { chain } => ("allow", chain_text(chain), None),
        Authorization::NeedsApproval { chain } => ("needs-approval", chain_text(chain), None),
        Authorization::Deny { reason } => ("deny", Vec::new(), Some(reason.to_string())),
    };
    if env.out.json {
        let ids = match &decision {
            Authorization::Allow { chain } | Authorization::NeedsApproval { chain } => {
                chain.clone()
            }
            Authorization::Deny { .. } => Vec::new(),
        };
        env.out.json_line(&json!({
            "agent": a.id, "action": action, "resource": resource, "amount": amount,
            "decision": verdict, "chain": ids, "reason": reason,
        }))?;
    } else {
        let head = match verdict {
            "allow" => format!("ALLOW: {name} may {action} on {resource} (amount {amount})"),
            "needs-approval" => {
                format!("NEEDS APPROVAL: {name} may {action} on {resource} once a human approves")
            }
            _ => format!(
                "DENY: {name} may not {action} on {resource}: {}",
                reason.unwrap_or_default()
            ),
        };
        env.out.line(head)?;
        for (i, link) in chain.iter().enumerate() {
            env.out
                .line(format!("  {} {link}", if i == 0 { "via " } else { "from" }))?;
        }
    }
    if verdict == "deny" {
        return Err(CliError::Reported(3).into());
    }
    Ok(())
}

pub(super) fn act(
    agent: AgentRef,
    action: Action,
    resource: Resource,
    amount: Option<Amount>,
    approval: Option<ApprovalId>,
    env: &Env<'_>,
) -> anyhow::Result<()> {
    let mut app = env.open()?;
    let id = agent.resolve(&app.world).map_err(CliError::Input)?.id;
    let cmd = Command::Act {
        action,
        resource,
        amount: amount.unwrap_or(ONE),
        approval,
    };
    let committed = app.execute(cmd, &Actor::Agent(id))?;
    print_committed(&app, &committed, &env.out)
}

pub(super) fn approvals(all: bool, env: &Env<'_>) -> anyhow::Result<()> {
    let app = env.open()?;
    let now = now();
    let mut table = Table::new(&[
        "approval", "agent", "action", "resource", "amount", "since", "state",
    ]);
    for ap in app.world.approvals() {
        let state = match (&ap.decision, ap.used) {
            (None, _) => "waiting",
            (Some(d), false) if d.approved => "approved",
            (Some(d), true) if d.approved => "used",
            (Some(_), _) => "refused",
        };
        if !all && state != "waiting" {
            continue;
        }
        if env.out.json {
            env.out.json_line(&json!({
                "id": ap.id, "agent": ap.agent, "agent_name": describe::agent(&app.world, ap.agent),
                "action": ap.action, "resource": ap.resource, "amount": ap.amount,
                "requested_at": ap.requested_at, "state": state,
                "decided_by": ap.decision.as_ref().map(|d| d.by.to_string()),
                "decided_at": ap.decision.as_ref().map(|d| d.at),
                "note": ap.decision.as_ref().and_then(|d| d.note.as_ref()),
            }))?;
        }
        table.row(vec![
            ap.id.to_string(),
            describe::agent(&app.world, ap.agent),
            ap.action.to_string(),
            ap.resource.to_string(),
            ap.amount.to_string(),
            relative(ap.requested_at, now),
            state.to_string(),
        ]);
    }
    if !env.out.json {
        env.out.line(if table.is_empty() {
            "nothing waits for approval".into()
        } else {
            table.render()
        })?;
    }
    Ok(())
}

pub(super) fn decide_approval(a: DecideArgs, approved: bool, env: &Env<'_>) -> anyhow::Result<()> {
    let mut app = env.open()?;
    let actor = app.operator_actor();
    let cmd = Command::DecideApproval {
        approval: a.approval,
        approved,
        note: a.note,
    };
    let committed = app.execute(cmd, &actor)?;
    print_committed(&app, &committed, &env.out)
}
