//! `grant`, `revoke`, `grants`, `check`, `act`, `approvals`, `approve`, `deny`.

use std::time::Duration;

use roster_core::authz::Authorization;
use roster_core::capability::{Action, Amount, Capability, Resource, ONE};
use roster_core::command::Command;
use roster_core::gateway::answer::Performed;
use roster_core::gateway::{arg_map, ActParams, ErrorCode};
use roster_core::id::{AgentId, ApprovalId, GrantId};
use roster_core::world::World;
use roster_runtime::app::{now, App};
use roster_runtime::config::Config;
use roster_runtime::daemon::act::{act_here, ActError, Acted};
use roster_runtime::describe;
use roster_runtime::gateway::answer::grant_view;
use serde_json::json;

use super::{print_committed, Env};
use crate::args::{ActArgs, DecideArgs};
use crate::error::CliError;
use crate::output::{relative, Stream, Table};
use crate::refs::AgentRef;

pub(super) fn grant(
    agent: AgentRef,
    capability: Capability,
    from: Option<GrantId>,
    by: Option<AgentRef>,
    env: &Env<'_>,
) -> anyhow::Result<()> {
    let (committed, after) = env.decide(|app| {
        let to = agent.resolve(app.world()).map_err(CliError::Input)?.id;
        let actor = env.actor(app.world(), by)?;
        let command = Command::Grant {
            to,
            capability,
            from,
        };
        Ok((app.execute(command, &actor)?, app.snapshot()))
    })?;
    print_committed(after.world(), &committed, &env.out)
}

pub(super) fn revoke(grant: GrantId, by: Option<AgentRef>, env: &Env<'_>) -> anyhow::Result<()> {
    let (committed, app) = env.decide(|app| {
        let actor = env.actor(app.world(), by)?;
        Ok((
            app.execute(Command::Revoke { grant }, &actor)?,
            app.snapshot(),
        ))
    })?;
    let cascaded = app
        .world()
        .grants()
        .filter(|g| g.id != grant && app.world().chain_of(g.id).contains(&grant))
        .count();
    print_committed(app.world(), &committed, &env.out)?;
    if !env.out.json && cascaded > 0 {
        env.out.line(format!(
            "       {cascaded} grant(s) derived from it stop working too"
        ))?;
    }
    Ok(())
}

pub(super) fn list(agent: Option<AgentRef>, env: &Env<'_>) -> anyhow::Result<()> {
    let app = env.read()?;
    let holder = agent
        .map(|a| a.resolve(app.world()).map(|a| a.id))
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
    for g in app.world().grants() {
        if holder.is_some_and(|h| h != g.holder) {
            continue;
        }
        // The grant as the gateway's `grants` gives it: one type, one shape.
        let view = grant_view(app.world(), g, now);
        if env.out.json {
            env.out.json_line(&view)?;
        }
        table.row(vec![
            g.id.to_string(),
            view.holder_name,
            g.capability.to_string(),
            view.status,
            match view.budget {
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
    let app = env.read()?;
    let a = agent.resolve(app.world()).map_err(CliError::Input)?;
    let amount = amount.unwrap_or(ONE);
    let decision = app
        .world()
        .authorize(a.id, &action, &resource, amount, now());
    let name = describe::agent(app.world(), a.id);
    let chain_text = |chain: &[GrantId]| {
        chain
            .iter()
            .filter_map(|g| app.world().grant(*g))
            .map(|g| {
                format!(
                    "{} {} ({})",
                    g.id.short(),
                    g.capability,
                    describe::agent(app.world(), g.holder)
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

/// `roster act`: the agent's own `act` (`daemon::act`), decided as the agent — through the
/// daemon when one runs (its providers, its approval waits), else on this data directory with
/// the programs of its roster.toml.
pub(super) fn act(a: ActArgs, env: &Env<'_>) -> anyhow::Result<()> {
    let params = ActParams {
        action: a.action.clone(),
        resource: a.resource.clone(),
        amount: a.amount,
        args: arg_map(a.args.clone()).map_err(CliError::Input)?,
        timeout_secs: Some(a.wait),
        approval: a.approval,
    };
    let report = match env.daemon {
        Some(d) => {
            let agent = a
                .agent
                .resolve(d.snapshot()?.world())
                .map_err(CliError::Input)?
                .id;
            let out = env.out.clone();
            let left = async move {
                while !out.gone() {
                    tokio::time::sleep(CLIENT_POLL).await;
                }
            };
            let acted = d.act_for_operator(agent, params, left);
            // Described from a snapshot: a slow client never holds the daemon.
            report(d.snapshot()?.world(), agent, &a, acted, false)
        }
        None => {
            let exec = Config::load(env.data_dir)?.tools;
            let mut app = App::open(env.data_dir)?;
            let agent = a.agent.resolve(app.world()).map_err(CliError::Input)?.id;
            let acted = act_here(&mut app, exec, agent, params);
            report(app.world(), agent, &a, acted, true)
        }
    };
    match report {
        Report::Done { text, answer } => {
            if env.out.json {
                Ok(env.out.json_line(&answer)?)
            } else {
                Ok(env.out.line(text)?)
            }
        }
        Report::Failed {
            exit,
            code,
            message,
            approval,
        } => {
            if env.out.json {
                let mut e = json!({ "code": code, "message": message });
                if let Some(id) = approval {
                    e["approval"] = json!(id);
                }
                env.out.write(Stream::Err, &format!("{e}\n"))?;
            } else {
                env.out.note(message)?;
            }
            Err(CliError::Reported(exit).into())
        }
    }
}

/// How often a waiting `roster act` looks whether its client is still there.
const CLIENT_POLL: Duration = Duration::from_millis(250);

/// What `roster act` prints.
enum Report {
    /// Carried out: a line for people, the gateway's answer for programs.
    Done { text: String, answer: Performed },
    /// Not carried out (or without an answer): the exit code, the gateway's error code, the
    /// sentence, and the approval a `pending` names.
    Failed {
        exit: i32,
        code: ErrorCode,
        message: String,
        approval: Option<ApprovalId>,
    },
}

/// The report of `agent`'s act `a`; `here` when no daemon ran it.
fn report(
    world: &World,
    agent: AgentId,
    a: &ActArgs,
    acted: Result<Acted, ActError>,
    here: bool,
) -> Report {
    match acted {
        Ok(acted) => {
            let c = &acted.call;
            let chain = c
                .chain
                .iter()
                .filter_map(|g| world.grant(*g))
                .map(|g| {
                    let holder = describe::agent(world, g.holder);
                    format!("{} {} ({holder})", g.id.short(), g.capability)
                })
                .collect::<Vec<_>>()
                .join(" from ");
            let approval = c
                .approval
                .map_or_else(String::new, |id| format!(", approved in {id}"));
            let text = format!(
                "performed {} on {} (amount {}) as {} through {chain}{approval}; recorded as {}; \
                 the provider answered {}",
                c.action,
                c.resource,
                c.amount,
                describe::agent(world, agent),
                c.performed,
                acted.result
            );
            Report::Done {
                text,
                answer: acted.answer(),
            }
        }
        Err(ActError::Refused { rejected, why }) => Report::Failed {
            exit: CliError::from(*rejected).exit_code(),
            code: ErrorCode::Denied,
            message: format!("refused: {why}"),
            approval: None,
        },
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
            Report::Failed {
                exit: i32::from(ErrorCode::Pending.exit_code()),
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
            }
        }
        Err(ActError::Other(e)) => Report::Failed {
            exit: i32::from(e.code.exit_code()),
            code: e.code,
            message: e.message,
            approval: None,
        },
    }
}

pub(super) fn approvals(all: bool, env: &Env<'_>) -> anyhow::Result<()> {
    let app = env.read()?;
    let now = now();
    let mut table = Table::new(&[
        "approval", "agent", "action", "resource", "amount", "since", "state",
    ]);
    for ap in app.world().approvals() {
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
                "id": ap.id, "agent": ap.agent, "agent_name": describe::agent(app.world(), ap.agent),
                "action": ap.action, "resource": ap.resource, "amount": ap.amount,
                "requested_at": ap.requested_at, "state": state,
                "decided_by": ap.decision.as_ref().map(|d| d.by.to_string()),
                "decided_at": ap.decision.as_ref().map(|d| d.at),
                "note": ap.decision.as_ref().and_then(|d| d.note.as_ref()),
            }))?;
        }
        table.row(vec![
            ap.id.to_string(),
            describe::agent(app.world(), ap.agent),
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
    let cmd = Command::DecideApproval {
        approval: a.approval,
        approved,
        note: a.note,
    };
    let (committed, after) =
        env.decide(|app| Ok((app.execute(cmd, &env.operator())?, app.snapshot())))?;
    print_committed(after.world(), &committed, &env.out)
}
