//! Commands and their decisions: `decide(world, command, actor, now, entropy)`.
//!
//! A decision is a pure function of the projected state: it returns the events to append (to one
//! team's stream, at the version the decision was made on), or a [`Rejected`] saying why not —
//! with the `AccessDenied` record to append when an agent asked.

use crate::actor::Actor;
use crate::authz::{Authorization, DenyReason};
use crate::capability::{covers, why_not_covered, Action, Amount, Capability, Resource, ONE};
use crate::event::{AgentSpec, Event};
use crate::id::{AgentId, ApprovalId, Entropy, GrantId, TeamId};
use crate::name::{Label, Name};
use crate::time::Timestamp;
use crate::world::World;

/// The runtime's built-in actions, checked by [`decide`] itself.
pub mod builtin {
    /// Hire an agent into a team: `agent.hire@team:T`.
    pub const HIRE: &str = "agent.hire";
    /// Retire an agent of a team: `agent.retire@team:T`.
    pub const RETIRE: &str = "agent.retire";
    /// Pass an attenuated grant to an agent of a team: `grant.delegate@team:T`.
    pub const DELEGATE: &str = "grant.delegate";
    /// Revoke a grant (agents may revoke only what derives from their own grants).
    pub const REVOKE: &str = "grant.revoke";
    /// Decide an approval request (operators only).
    pub const DECIDE: &str = "approval.decide";
    /// Create a team (operators only; named in the audit record when an agent tries).
    pub const CREATE_TEAM: &str = "team.create";
}

/// Something an operator or an agent asks the runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Create a team.
    CreateTeam {
        /// Its unique name.
        name: Name,
    },
    /// Hire an agent into a team with the given capabilities. An operator's hire issues root
    /// grants; an agent's hire needs `agent.hire@team:T` and each capability covered by one of
    /// its active grants, which becomes the new grant's parent.
    Hire {
        /// The team.
        team: TeamId,
        /// The new agent's name.
        name: Name,
        /// Its role.
        role: Label,
        /// How its container is made.
        spec: AgentSpec,
        /// Its capabilities.
        grants: Vec<Capability>,
    },
    /// Retire an agent (operators, or agents with `agent.retire@team:T`).
    Retire {
        /// The agent.
        agent: AgentId,
    },
    /// Grant a capability. Without `from`, an operator issues a root grant and an agent derives
    /// from the first of its active grants that covers it; with `from`, that grant must cover it.
    Grant {
        /// Who receives it.
        to: AgentId,
        /// What it allows.
        capability: Capability,
        /// The grant to derive from.
        from: Option<GrantId>,
    },
    /// Revoke a grant and, by cascade, everything derived from it.
    Revoke {
        /// The grant.
        grant: GrantId,
    },
    /// An agent uses a capability. `approval` names a granted approval to consume.
    Act {
        /// What it does.
        action: Action,
        /// On what.
        resource: Resource,
        /// How much it spends.
        amount: Amount,
        /// The approval it uses, after a `NeedsApproval`.
        approval: Option<ApprovalId>,
    },
    /// An operator decides an approval request.
    DecideApproval {
        /// The request.
        approval: ApprovalId,
        /// Yes or no.
        approved: bool,
        /// Why.
        note: Option<Label>,
    },
}

/// The events a command produces, for one team's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The team whose stream they go to.
    pub team: TeamId,
    /// The team's version the decision was made on (optimistic concurrency).
    pub expected_version: u64,
    /// The events, in order.
    pub events: Vec<Event>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Something named does not exist.
    #[error("{what} {id} does not exist")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its id or name.
        id: String,
    },
    /// A name is already used.
    #[error("{what} `{name}` is already taken")]
    NameTaken {
        /// What kind of name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The agent is retired.
    #[error("agent {0} is retired")]
    Retired(AgentId),
    /// Only an operator may do this.
    #[error("only an operator may {0}")]
    OperatorOnly(&'static str),
    /// The actor's grants do not allow it.
    #[error("access denied: {0}")]
    Denied(DenyReason),
    /// A requested capability is not covered by any of the actor's active grants.
    #[error("cannot grant `{capability}`: {why}")]
    NotCovered {
        /// The capability asked for.
        capability: Capability,
        /// Why no grant covers it.
        why: String,
    },
    /// The command needs a human's approval, which this command cannot wait for.
    #[error("{0} needs a human's approval for each use; ask an operator to do it instead")]
    NeedsApproval(&'static str),
    /// The grant is already revoked.
    #[error("grant {0} is already revoked")]
    AlreadyRevoked(GrantId),
    /// An approval is not in a state that allows this.
    #[error("approval {id}: {why}")]
    Approval {
        /// The approval.
        id: ApprovalId,
        /// What is wrong.
        why: &'static str,
    },
    /// An agent may revoke only grants derived from its own.
    #[error("grant {0} does not derive from any grant of the asking agent")]
    NotYours(GrantId),
    /// An agent may retire only agents it hired, directly or through its hires.
    #[error("agent {agent} was not hired by the asking agent or by anyone it hired")]
    NotBelow {
        /// The agent it tried to retire.
        agent: AgentId,
    },
}

/// A refusal, with the audit record to append when the asker was an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rejection}")]
pub struct Rejected {
    /// Why.
    pub rejection: Box<Rejection>,
    /// The `AccessDenied` event to record, in the asking agent's own team. Present for every
    /// refusal of an agent the world knows — whatever the cause, since an agent probing for
    /// ids, replaying an approval or acting after retirement is exactly what the log must show —
    /// and absent for operators, the runtime, and agent ids the world does not know (there is
    /// no team to record them in).
    pub audit: Option<Box<Decision>>,
}

struct Ctx<'a> {
    world: &'a World,
    actor: &'a Actor,
    now: Timestamp,
}

impl Ctx<'_> {
    /// The `AccessDenied` record of a refusal, when a known agent asked: in its own team.
    fn audit(
        &self,
        rejection: &Rejection,
        action: Action,
        resource: Resource,
    ) -> Option<Box<Decision>> {
        let Actor::Agent(a) = self.actor else {
            return None;
        };
        let agent = self.world.agent(*a)?;
        Some(Box::new(Decision {
            team: agent.team,
            expected_version: self.world.team_version(agent.team),
            events: vec![Event::AccessDenied {
                agent: *a,
                action,
                resource,
                reason: rejection.to_string(),
            }],
        }))
    }

    /// Refuses; when an agent asked, attaches an `AccessDenied` naming `action` on `resource`.
    fn reject(&self, rejection: Rejection, action: &str, resource: Resource) -> Rejected {
        let audit = Action::parse(action)
            .ok()
            .and_then(|action| self.audit(&rejection, action, resource));
        Rejected {
            rejection: Box::new(rejection),
            audit,
        }
    }

    /// Refuses without naming what was tried; [`decide`] attaches the agent's `AccessDenied`
    /// with the command's own action and resource (see [`attempted`]).
    fn plain(rejection: Rejection) -> Rejected {
        Rejected {
            rejection: Box::new(rejection),
            audit: None,
        }
    }

    fn team(&self, id: TeamId) -> Result<&crate::world::Team, Rejected> {
        self.world.team(id).ok_or_else(|| {
            Self::plain(Rejection::NotFound {
                what: "team",
                id: id.to_string(),
            })
        })
    }

    fn live_agent(&self, id: AgentId) -> Result<&crate::world::Agent, Rejected> {
        let a = self.world.agent(id).ok_or_else(|| {
            Self::plain(Rejection::NotFound {
                what: "agent",
                id: id.to_string(),
            })
        })?;
        if a.is_retired() {
            return Err(Self::plain(Rejection::Retired(id)));
        }
        Ok(a)
    }

    /// Checks a built-in action for an agent actor; returns the `ActionPerformed` that records
    /// the use (operators and the runtime need no grant and spend nothing).
    fn builtin(&self, action: &'static str, resource: Resource) -> Result<Option<Event>, Rejected> {
        let agent = match self.actor {
            Actor::Agent(a) => *a,
            _ => return Ok(None),
        };
        self.live_agent(agent)?;
        let act = Action::parse(action)
            .map_err(|_| Self::plain(Rejection::OperatorOnly("use an unknown built-in")))?;
        match self.world.authorize(agent, &act, &resource, ONE, self.now) {
            Authorization::Allow { chain } => Ok(Some(Event::ActionPerformed {
                agent,
                action: act,
                resource,
                amount: ONE,
                chain,
                approval: None,
            })),
            Authorization::NeedsApproval { .. } => {
                Err(self.reject(Rejection::NeedsApproval(action), action, resource))
            }
            Authorization::Deny { reason } => {
                Err(self.reject(Rejection::Denied(reason), action, resource))
            }
        }
    }

    /// The parent grant for `capability` given by `holder` (an agent actor, or an operator
    /// deriving `from` a grant): `from` if given and it covers, else the first covering active
    /// grant of `holder`.
    fn covering_grant(
        &self,
        holder: Option<AgentId>,
        capability: &Capability,
        from: Option<GrantId>,
        audit_action: &'static str,
        audit_resource: &Resource,
    ) -> Result<Option<GrantId>, Rejected> {
        let not_covered = |why: String| {
            self.reject(
                Rejection::NotCovered {
                    capability: capability.clone(),
                    why,
                },
                audit_action,
                audit_resource.clone(),
            )
        };
        if let Some(f) = from {
            let g = self.world.grant(f).ok_or_else(|| {
                Self::plain(Rejection::NotFound {
                    what: "grant",
                    id: f.to_string(),
                })
            })?;
            if let Some(h) = holder {
                if g.holder != h {
                    return Err(not_covered(format!("grant {f} is not held by {h}")));
                }
            }
            if let Some(r) = self.world.inactive_reason(f, self.now) {
                return Err(not_covered(r.to_string()));
            }
            return match why_not_covered(&g.capability, capability) {
                None => Ok(Some(f)),
                Some(why) => Err(not_covered(why)),
            };
        }
        let Some(h) = holder else { return Ok(None) };
        let active = self.world.active_grants_of(h, self.now);
        if let Some(g) = active.iter().find(|g| covers(&g.capability, capability)) {
            return Ok(Some(g.id));
        }
        // Explain with the closest grant: first one whose patterns cover but whose limits do
        // not, then one about the same kind of action, else say none comes close.
        let family = |c: &Capability| c.pattern_text().split(['.', '@']).next().map(str::to_owned);
        let limits = active.iter().find_map(|g| {
            let why = why_not_covered(&g.capability, capability)?;
            (!why.contains("asks for more than")).then_some(why)
        });
        let same_family = || {
            active
                .iter()
                .filter(|g| family(&g.capability) == family(capability))
                .find_map(|g| why_not_covered(&g.capability, capability))
        };
        // A grant that would cover it but is no longer in force says why better than silence.
        let inactive = || {
            self.world
                .grants_of(h)
                .filter(|g| covers(&g.capability, capability))
                .find_map(|g| self.world.inactive_reason(g.id, self.now))
                .map(|r| format!("the grant that would cover it is not in force: {r}"))
        };
        let why = limits.or_else(inactive).or_else(same_family).unwrap_or_else(|| {
            "none of the asking agent's active grants covers it (a grant passed on must be equal or narrower, never wider)".to_string()
        });
        Err(not_covered(why))
    }
}

/// What a command tries, for the audit record of its refusal: the built-in action it needs (or,
/// for `Act`, the action it asks for) on the resource it names. Names that do not resolve are
/// recorded by id (`team:team_…`, `agent:agt_…`).
fn attempted(world: &World, command: &Command) -> Option<(Action, Resource)> {
    let team_of = |agent: AgentId| {
        world
            .agent(agent)
            .and_then(|a| world.team(a.team))
            .map_or_else(
                || Resource::entity("agent", agent),
                |t| Resource::team(&t.name),
            )
    };
    let (action, resource) = match command {
        Command::CreateTeam { name } => (builtin::CREATE_TEAM, Resource::team(name)),
        Command::Hire { team, .. } => (
            builtin::HIRE,
            world.team(*team).map_or_else(
                || Resource::entity("team", team),
                |t| Resource::team(&t.name),
            ),
        ),
        Command::Retire { agent } => (builtin::RETIRE, team_of(*agent)),
        Command::Grant { to, .. } => (builtin::DELEGATE, team_of(*to)),
        Command::Revoke { grant } => (builtin::REVOKE, Resource::entity("grant", grant)),
        Command::Act {
            action, resource, ..
        } => return Some((action.clone(), resource.clone())),
        Command::DecideApproval { approval, .. } => {
            (builtin::DECIDE, Resource::entity("approval", approval))
        }
    };
    Action::parse(action).ok().map(|a| (a, resource))
}

/// Decides `command` asked by `actor` at `now`. Pure: the same inputs give the same output.
///
/// Every refusal of a known agent carries its `AccessDenied` record ([`Rejected::audit`]).
pub fn decide(
    world: &World,
    command: Command,
    actor: &Actor,
    now: Timestamp,
    entropy: &mut dyn Entropy,
) -> Result<Decision, Rejected> {
    let tried = attempted(world, &command);
    decide_unaudited(world, command, actor, now, entropy).map_err(|mut r| {
        if r.audit.is_none() {
            let cx = Ctx { world, actor, now };
            r.audit = tried.and_then(|(action, resource)| cx.audit(&r.rejection, action, resource));
        }
        r
    })
}

/// [`decide`], leaving the audit record of refusals that name no action to the caller.
fn decide_unaudited(
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
            approval,
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
                    Ok(decision(vec![Event::ApprovalRequested {
                        approval: ApprovalId::mint(now, entropy),
                        agent: *agent,
                        action,
                        resource,
                        amount,
                        chain,
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
    }
}
