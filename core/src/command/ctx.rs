//! `Ctx`: what a decision reads (the world, who asks, and when), and the steps decisions share —
//! looking up a team or a live agent, checking a built-in action, finding the grant a new one
//! derives from, and refusing, with the `AccessDenied` record when an agent asked.

use crate::actor::Actor;
use crate::authz::Authorization;
use crate::capability::{covers, why_not_covered, Action, Capability, Resource, ONE};
use crate::event::Event;
use crate::id::{AgentId, GrantId, TeamId};
use crate::time::Timestamp;
use crate::world::World;

use super::{Decision, Rejected, Rejection};

/// What a decision reads: the projected world, who asks, and the decision's instant.
pub(super) struct Ctx<'a> {
    pub(super) world: &'a World,
    pub(super) actor: &'a Actor,
    pub(super) now: Timestamp,
}

impl Ctx<'_> {
    /// The `AccessDenied` record of a refusal, when a known agent asked: in its own team.
    pub(super) fn audit(
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
    pub(super) fn reject(
        &self,
        rejection: Rejection,
        action: &str,
        resource: Resource,
    ) -> Rejected {
        let audit = Action::parse(action)
            .ok()
            .and_then(|action| self.audit(&rejection, action, resource));
        Rejected {
            rejection: Box::new(rejection),
            audit,
        }
    }

    /// Refuses without naming what was tried; [`decide`](fn@super::decide) attaches the agent's
    /// `AccessDenied` with the command's own action and resource (see
    /// [`attempted`](super::attempted)).
    pub(super) fn plain(rejection: Rejection) -> Rejected {
        Rejected {
            rejection: Box::new(rejection),
            audit: None,
        }
    }

    pub(super) fn team(&self, id: TeamId) -> Result<&crate::world::Team, Rejected> {
        self.world.team(id).ok_or_else(|| {
            Self::plain(Rejection::NotFound {
                what: "team",
                id: id.to_string(),
            })
        })
    }

    pub(super) fn live_agent(&self, id: AgentId) -> Result<&crate::world::Agent, Rejected> {
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
    pub(super) fn builtin(
        &self,
        action: &'static str,
        resource: Resource,
    ) -> Result<Option<Event>, Rejected> {
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

    /// Checks that the asker may use the built-in `action` for `team` (on `team:NAME`):
    /// operators may; an agent must be in service, one of `team`'s agents, and allowed by its
    /// grants — the returned `ActionPerformed` records that use; the runtime acts for no team.
    /// `what` completes the refusal of an agent from another team ("only that team's agents
    /// may …").
    pub(super) fn for_team(
        &self,
        action: &'static str,
        team: &crate::world::Team,
        what: &'static str,
    ) -> Result<Vec<Event>, Rejected> {
        match self.actor {
            Actor::Operator(_) => return Ok(Vec::new()),
            Actor::Runtime => {
                return Err(Self::plain(Rejection::OperatorOnly(
                    "propose, accept or close a share without an agent of the team",
                )))
            }
            Actor::Agent(a) => {
                if self.live_agent(*a)?.team != team.id {
                    return Err(Self::plain(Rejection::NotInTeam {
                        agent: *a,
                        team: team.name.clone(),
                        what,
                    }));
                }
            }
        }
        Ok(self
            .builtin(action, Resource::team(&team.name))?
            .into_iter()
            .collect())
    }

    /// The parent grant for `capability` given by `holder` (an agent actor, or an operator
    /// deriving `from` a grant): `from` if given and it covers, else the first covering active
    /// grant of `holder`.
    pub(super) fn covering_grant(
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
