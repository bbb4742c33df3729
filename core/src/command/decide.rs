//! `decide_unaudited`: the decision for each command, one match arm per [`Command`] variant
//! (the share commands' arms call `share.rs`). [`decide`](fn@super::decide) wraps it to attach
//! the audit record of refusals that name no action.

use crate::actor::Actor;
use crate::authz::Authorization;
use crate::capability::Resource;
use crate::event::Event;
use crate::id::{AgentId, ApprovalId, Entropy, GrantId, TeamId};
use crate::time::Timestamp;
use crate::world::World;

use super::ctx::Ctx;
use super::{
    builtin, share, Command, Decision, Lifecycle, Rejected, Rejection, MAX_PENDING_APPROVALS,
    MAX_REASON,
};

/// [`decide`](fn@super::decide), leaving the audit record of refusals that name no action to the
/// caller.
pub(super) fn decide_unaudited(
    world: &World,
    command: Command,
    actor: &Actor,
    now: Timestamp,
    entropy: &mut dyn Entropy,
) -> Result<Decision, Rejected> {
    let cx = Ctx { world, actor, now };
    let operator_only = |what| Err(Ctx::plain(Rejection::OperatorOnly(what)));
    match command {
        Command::CreateTeam { name } => {
            if !matches!(actor, Actor::Operator(_)) {
                return operator_only("create a team");
            }
            if world.team_named(&name).is_some() {
                return Err(Ctx::plain(Rejection::NameTaken {
                    what: "team name",
                    name: name.to_string(),
                }));
            }
            Ok(Decision {
                team: TeamId::mint(now, entropy),
                expected_version: 0,
                events: vec![Event::TeamCreated { name }],
            })
        }
        Command::Hire {
            team,
            name,
            role,
            spec,
            disk,
            grants,
        } => {
            let t = cx.team(team)?;
            let resource = Resource::team(&t.name);
            if matches!(actor, Actor::Runtime) {
                return operator_only("hire without a hirer");
            }
            let mut events: Vec<Event> = cx
                .builtin(builtin::HIRE, resource.clone())?
                .into_iter()
                .collect();
            if world
                .agent_named(team, &name)
                .is_some_and(|a| !a.is_retired())
            {
                return Err(Ctx::plain(Rejection::NameTaken {
                    what: "agent name",
                    name: format!("{}/{}", t.name, name),
                }));
            }
            let hirer = match actor {
                Actor::Agent(a) => Some(*a),
                _ => None,
            };
            if let Some(why) = hirer.and_then(|h| world.agent(h)).and_then(|h| {
                spec.looser_than(&h.spec)
                    .or_else(|| disk.looser_than(h.disk()))
            }) {
                return Err(cx.reject(Rejection::LooserSpec(why), builtin::HIRE, resource));
            }
            let mut parents = Vec::with_capacity(grants.len());
            for cap in &grants {
                parents.push(cx.covering_grant(hirer, cap, None, builtin::HIRE, &resource)?);
            }
            let agent = AgentId::mint(now, entropy);
            events.push(Event::AgentHired {
                agent,
                name,
                role,
                parent: hirer,
                spec,
            });
            events.push(Event::AgentDiskLimited {
                agent,
                disk_mib: disk.get(),
            });
            for (capability, parent) in grants.into_iter().zip(parents) {
                events.push(Event::GrantIssued {
                    grant: GrantId::mint(now, entropy),
                    holder: agent,
                    capability,
                    parent,
                });
            }
            Ok(Decision {
                team,
                expected_version: t.version,
                events,
            })
        }
        Command::Retire { agent } => {
            let a = cx.live_agent(agent)?;
            let t = cx.team(a.team)?;
            let mut events: Vec<Event> = cx
                .builtin(builtin::RETIRE, Resource::team(&t.name))?
                .into_iter()
                .collect();
            // An agent retires only its own hires (transitively): otherwise a teammate holding
            // `agent.retire` could depose its hirer and void the whole tree above it.
            if let Actor::Agent(h) = actor {
                if !world.hired_below(*h, agent) {
                    return Err(Ctx::plain(Rejection::NotBelow { agent }));
                }
            }
            events.push(Event::AgentRetired { agent });
            Ok(Decision {
                team: t.id,
                expected_version: t.version,
                events,
            })
        }
        Command::Grant {
            to,
            capability,
            from,
            key: _, // `decide` itself keys the call (`keyed.rs`).
        } => {
            let a = cx.live_agent(to)?;
            let t = cx.team(a.team)?;
            let resource = Resource::team(&t.name);
            let (holder, mut events) = match actor {
                Actor::Agent(h) => {
                    let ev = cx.builtin(builtin::DELEGATE, resource.clone())?;
                    (Some(*h), ev.into_iter().collect::<Vec<_>>())
                }
                Actor::Operator(_) => (None, Vec::new()),
                Actor::Runtime => return operator_only("issue a grant"),
            };
            let parent =
                cx.covering_grant(holder, &capability, from, builtin::DELEGATE, &resource)?;
            events.push(Event::GrantIssued {
                grant: GrantId::mint(now, entropy),
                holder: to,
                capability,
                parent,
            });
            Ok(Decision {
                team: t.id,
                expected_version: t.version,
                events,
            })
        }
        Command::Revoke { grant } => {
            let g = world.grant(grant).ok_or_else(|| {
                Ctx::plain(Rejection::NotFound {
                    what: "grant",
                    id: grant.to_string(),
                })
            })?;
            if g.revoked_at.is_some() {
                return Err(Ctx::plain(Rejection::AlreadyRevoked(grant)));
            }
            match actor {
                Actor::Operator(_) => {}
                Actor::Agent(a) => {
                    cx.live_agent(*a)?;
                    let ancestors = world.chain_of(grant);
                    let yours = ancestors
                        .iter()
                        .skip(1)
                        .any(|id| world.grant(*id).is_some_and(|p| p.holder == *a));
                    if !yours {
                        let resource = Resource::entity("grant", grant);
                        return Err(cx.reject(
                            Rejection::NotYours(grant),
                            builtin::REVOKE,
                            resource,
                        ));
                    }
                }
                Actor::Runtime => return operator_only("revoke a grant"),
            }
            let holder = world.agent(g.holder).ok_or_else(|| {
                Ctx::plain(Rejection::NotFound {
                    what: "agent",
                    id: g.holder.to_string(),
                })
            })?;
            let t = cx.team(holder.team)?;
            Ok(Decision {
                team: t.id,
                expected_version: t.version,
                events: vec![Event::GrantRevoked { grant }],
            })
        }
        Command::Act {
            action,
            resource,
            amount,
            args,
            approval,
            key: _, // `decide` itself keys the call (`keyed.rs`).
        } => {
            let Actor::Agent(agent) = actor else {
                return operator_only("act without an agent: only agents act");
            };
            let a = cx.live_agent(*agent)?;
            let t = cx.team(a.team)?;
            let decision = |events| Decision {
                team: t.id,
                expected_version: t.version,
                events,
            };
            let auth = world.authorize(*agent, &action, &resource, amount, now);
            if let Some(id) = approval {
                let ap = world.approval(id).ok_or_else(|| {
                    Ctx::plain(Rejection::NotFound {
                        what: "approval",
                        id: id.to_string(),
                    })
                })?;
                let bad = |why| Ctx::plain(Rejection::Approval { id, why });
                if ap.agent != *agent
                    || ap.action != action
                    || ap.resource != resource
                    || ap.amount != amount
                {
                    return Err(bad(
                        "it was asked for another agent, action, resource or amount",
                    ));
                }
                if !ap.binds_args(&args) {
                    return Err(bad(if ap.args.is_some() {
                        "it was asked for other arguments; an approval is for the exact call \
                         the operator saw"
                    } else {
                        "it was asked without arguments (before approvals bound them); ask \
                         again with these"
                    }));
                }
                match &ap.decision {
                    None => return Err(bad("no one has decided it yet")),
                    Some(d) if !d.approved => return Err(bad("it was refused")),
                    Some(_) if ap.used => {
                        return Err(bad("it was already used; an approval is for one use"))
                    }
                    Some(_) => {}
                }
                return match auth {
                    Authorization::Allow { chain } | Authorization::NeedsApproval { chain } => {
                        Ok(decision(vec![Event::ActionPerformed {
                            agent: *agent,
                            action,
                            resource,
                            amount,
                            chain,
                            approval: Some(id),
                        }]))
                    }
                    Authorization::Deny { reason } => {
                        Err(cx.reject(Rejection::Denied(reason), action.as_str(), resource))
                    }
                };
            }
            match auth {
                Authorization::Allow { chain } => Ok(decision(vec![Event::ActionPerformed {
                    agent: *agent,
                    action,
                    resource,
                    amount,
                    chain,
                    approval: None,
                }])),
                Authorization::NeedsApproval { chain } => {
                    // An operator's queue is not the agent's to flood.
                    let waiting = world.waiting_count(*agent);
                    if waiting >= MAX_PENDING_APPROVALS {
                        return Err(cx.reject(
                            Rejection::TooManyPending(waiting),
                            action.as_str(),
                            resource,
                        ));
                    }
                    Ok(decision(vec![Event::CallApprovalRequested {
                        approval: ApprovalId::mint(now, entropy),
                        agent: *agent,
                        action,
                        resource,
                        amount,
                        chain,
                        args,
                    }]))
                }
                Authorization::Deny { reason } => {
                    Err(cx.reject(Rejection::Denied(reason), action.as_str(), resource))
                }
            }
        }
        Command::DecideApproval {
            approval,
            approved,
            note,
        } => {
            let ap = world.approval(approval).ok_or_else(|| {
                Ctx::plain(Rejection::NotFound {
                    what: "approval",
                    id: approval.to_string(),
                })
            })?;
            if !matches!(actor, Actor::Operator(_)) {
                let resource = Resource::entity("approval", approval);
                return Err(cx.reject(
                    Rejection::OperatorOnly("decide an approval"),
                    builtin::DECIDE,
                    resource,
                ));
            }
            if ap.decision.is_some() {
                return Err(Ctx::plain(Rejection::Approval {
                    id: approval,
                    why: "it was already decided",
                }));
            }
            let a = world.agent(ap.agent).ok_or_else(|| {
                Ctx::plain(Rejection::NotFound {
                    what: "agent",
                    id: ap.agent.to_string(),
                })
            })?;
            let t = cx.team(a.team)?;
            Ok(Decision {
                team: t.id,
                expected_version: t.version,
                events: vec![Event::ApprovalDecided {
                    approval,
                    approved,
                    note,
                }],
            })
        }
        Command::Lifecycle { agent, change } => {
            if matches!(actor, Actor::Agent(_)) {
                return Err(Ctx::plain(Rejection::RuntimeOnly(
                    "record an agent's container starting or stopping",
                )));
            }
            let a = cx.live_agent(agent)?;
            let t = cx.team(a.team)?;
            let event = match change {
                Lifecycle::Started(container) => Event::AgentStarted { agent, container },
                Lifecycle::Stopped(reason) => Event::AgentStopped { agent, reason },
            };
            Ok(Decision {
                team: t.id,
                expected_version: t.version,
                events: vec![event],
            })
        }
        Command::ProposeShare { from, to, topics } => {
            share::propose(&cx, from, to, topics, entropy)
        }
        Command::AcceptShare { share } => share::accept(&cx, share),
        Command::CloseShare { share } => share::close(&cx, share),
        Command::ShareContext {
            to,
            topic,
            digest,
            size,
        } => share::send(&cx, to, topic, digest, size),
        Command::RecordDenial {
            agent,
            action,
            resource,
            reason,
        } => {
            if !matches!(actor, Actor::Runtime) {
                return Err(Ctx::plain(Rejection::RuntimeOnly(
                    "record the refusals it makes",
                )));
            }
            // A retired agent's refusals are still recorded: a message it sent may arrive late.
            let a = world.agent(agent).ok_or_else(|| {
                Ctx::plain(Rejection::NotFound {
                    what: "agent",
                    id: agent.to_string(),
                })
            })?;
            let t = cx.team(a.team)?;
            Ok(Decision {
                team: t.id,
                expected_version: t.version,
                events: vec![Event::AccessDenied {
                    agent,
                    action,
                    resource,
                    reason: truncate_reason(reason),
                }],
            })
        }
    }
}

/// `reason` cut to at most [`MAX_REASON`] bytes on a character boundary, ending with `…` when
/// cut.
fn truncate_reason(mut reason: String) -> String {
    if reason.len() <= MAX_REASON {
        return reason;
    }
    const MORE: &str = "…";
    let mut end = MAX_REASON - MORE.len();
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    reason.push_str(MORE);
    reason
}
