//! The rules of the log, checked when a log comes from elsewhere (`roster import`).
//!
//! The hash chain proves that a log was not altered after it was written; it cannot prove that
//! whoever wrote it played by the rules — anyone can compute BLAKE3. [`World::apply_checked`]
//! folds an event only if it is one that [`crate::command::decide`] could have produced from the
//! world before it: who may cause it, that a spend goes through the whole chain of an active
//! grant that matches and has budget left, that a root grant comes from an operator. A log
//! written by roster always passes; a forged one is refused at the first event that breaks a rule.
//!
//! Shares: `ShareProposed`, `ShareAccepted` and `ShareClosed` are recorded by an operator or by
//! an agent of the stream's team holding an active grant for `share.propose`, `share.accept` or
//! `share.close` on `team:THAT_TEAM`; a share is accepted only in its importing team and only
//! while proposed, and closed only once. The budget of such a grant is charged by the
//! `ActionPerformed` that `decide` writes just before the step, checked like any use; a forged
//! log that leaves that use out is not caught (a rule sees the world, not the previous event). `ContextShared` is recorded by its sender, in
//! service, in its own (the exporting) team, through a share open at that point whose pattern
//! matches the topic. `AccessDenied` is the refused agent's own request, or the runtime's record.
//! `CallKeyed` is recorded by its agent (`World::apply` refuses it for an agent retired, or
//! for a key the agent holds already, whatever the digest: a keyed call is carried out once).
//!
//! `AgentDiskLimited` is recorded by whoever hired the agent (an operator, or its hirer), within
//! [`DiskMib`]'s bounds and, for a teammate an agent hired, no larger than its hirer's
//! [`Agent::disk`] (`World::apply` refuses a second one for the same agent). A forged log that
//! leaves it out is not caught: the agent then has [`DiskMib::DEFAULT`], which may be above its
//! hirer's.
//!
//! [`Agent::disk`]: crate::world::Agent::disk

use crate::actor::Actor;
use crate::authz::ChainCheck;
use crate::capability::{Action, Resource};
use crate::command::builtin;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::id::{AgentId, GrantId, TeamId};
use crate::limits::DiskMib;
use crate::world::{FoldError, ShareState, World};

impl World {
    /// Folds `env` after checking it obeys the rules `decide` enforces; see the module docs.
    pub fn apply_checked(&mut self, env: &Envelope) -> Result<(), FoldError> {
        self.check_rules(env)?;
        self.apply(env)
    }

    fn check_rules(&self, env: &Envelope) -> Result<(), FoldError> {
        let seq = env.seq;
        let broken = |why: String| Err(FoldError::Inconsistent { seq, why });
        let operator = matches!(env.actor, Actor::Operator(_));
        let by_agent = |a: AgentId| env.actor == Actor::Agent(a);
        match &env.event {
            Event::TeamCreated { .. } if !operator => {
                broken("only an operator creates a team".into())
            }
            Event::AgentHired { parent: None, .. } if !operator => {
                broken("an agent without a hirer must be hired by an operator".into())
            }
            Event::AgentHired {
                parent: Some(h), ..
            } if !by_agent(*h) => broken(format!("an agent hired by {h} must be recorded by {h}")),
            Event::AgentHired {
                parent: Some(h),
                spec,
                ..
            } => match self
                .agent(*h)
                .and_then(|hirer| spec.looser_than(&hirer.spec))
            {
                Some(why) => broken(format!(
                    "{h} hired a teammate less confined than itself: {why}"
                )),
                None => Ok(()),
            },
            Event::GrantIssued { parent: None, .. } if !operator => {
                broken("only an operator issues a root grant".into())
            }
            Event::GrantIssued {
                parent: Some(p), ..
            } => self.check_derivation(env, *p),
            Event::GrantRevoked { grant } => match &env.actor {
                Actor::Operator(_) => Ok(()),
                Actor::Agent(a) if self.derives_from_own(*grant, *a) => Ok(()),
                _ => broken(format!("{} may not revoke {grant}", env.actor)),
            },
            Event::AgentStarted { agent, .. } | Event::AgentStopped { agent, .. } => {
                if matches!(env.actor, Actor::Agent(_)) {
                    broken(format!(
                        "an agent may not record {agent}'s container lifecycle"
                    ))
                } else if self.agent(*agent).is_some_and(|a| a.is_retired()) {
                    broken(format!("{agent} is retired: it has no container any more"))
                } else {
                    Ok(())
                }
            }
            Event::AgentRetired { agent } => match &env.actor {
                Actor::Operator(_) | Actor::Runtime => Ok(()),
                Actor::Agent(a) if self.hired_below(*a, *agent) => Ok(()),
                _ => broken(format!("{} may not retire {agent}", env.actor)),
            },
            Event::ApprovalDecided { .. } if !operator => {
                broken("only an operator decides an approval".into())
            }
            Event::AccessDenied { agent, .. }
                if !by_agent(*agent) && env.actor != Actor::Runtime =>
            {
                broken(format!(
                    "a refusal of {agent} must be recorded as its own request or by the runtime"
                ))
            }
            Event::ShareProposed { to, .. } => {
                if *to == env.team {
                    return broken("a team does not share with itself".into());
                }
                self.check_share_step(env, builtin::SHARE_PROPOSE, env.team)
            }
            Event::ShareAccepted { share } => {
                let Some(s) = self.share(*share) else {
                    return Ok(()); // `apply` refuses an unknown share.
                };
                if env.team != s.to {
                    return broken(format!(
                        "share {share} is accepted in its importing team's stream only"
                    ));
                }
                if s.state != ShareState::Proposed {
                    return broken(format!("share {share} is not waiting to be accepted"));
                }
                self.check_share_step(env, builtin::SHARE_ACCEPT, env.team)
            }
            Event::ShareClosed { share } => {
                if self
                    .share(*share)
                    .is_some_and(|s| s.state == ShareState::Closed)
                {
                    return broken(format!("share {share} is already closed"));
                }
                self.check_share_step(env, builtin::SHARE_CLOSE, env.team)
            }
            Event::ContextShared {
                share,
                sender,
                topic,
                ..
            } => {
                if !by_agent(*sender) {
                    return broken(format!("only {sender} records what it sent"));
                }
                if self.agent(*sender).is_some_and(|a| a.is_retired()) {
                    return broken(format!("{sender} is retired: it sends nothing"));
                }
                let Some(s) = self.share(*share) else {
                    return Ok(()); // `apply` refuses an unknown share.
                };
                if env.team != s.from {
                    return broken(format!(
                        "a crossing of share {share} is recorded in its exporting team"
                    ));
                }
                match self.crossing_allowed(*share, s.from, s.to, topic) {
                    Ok(()) => Ok(()),
                    Err(why) => broken(format!("context crossed where it may not: {why}")),
                }
            }
            Event::CallKeyed { agent, .. } if !by_agent(*agent) => {
                broken(format!("only {agent} keys its own calls"))
            }
            Event::AgentDiskLimited { agent, disk_mib } => {
                let disk = match DiskMib::new(*disk_mib) {
                    Ok(disk) => disk,
                    Err(e) => return broken(format!("the home disk quota of {agent}: {e}")),
                };
                let Some(a) = self.agent(*agent) else {
                    return Ok(()); // `apply` refuses an unknown agent.
                };
                match a.parent.map(|h| (h, self.agent(h))) {
                    None if !operator => broken(format!(
                        "{agent} was hired by an operator: an operator records its home disk"
                    )),
                    Some((h, _)) if !by_agent(h) => broken(format!(
                        "the home disk of {agent} is recorded by its hirer {h}"
                    )),
                    Some((h, Some(hirer))) => match disk.looser_than(hirer.disk()) {
                        Some(why) => broken(format!(
                            "{h} hired a teammate less confined than itself: {why}"
                        )),
                        None => Ok(()),
                    },
                    _ => Ok(()),
                }
            }
            Event::ApprovalRequested {
                agent,
                action,
                resource,
                amount,
                chain,
                ..
            }
            | Event::CallApprovalRequested {
                agent,
                action,
                resource,
                amount,
                chain,
                ..
            } => {
                if !by_agent(*agent) {
                    return broken(format!("only {agent} asks approval for itself"));
                }
                match self.replay_use(env, chain, action, resource, amount.get())? {
                    true => Ok(()),
                    false => broken("an approval was asked for a use that needs none".into()),
                }
            }
            Event::ActionPerformed {
                agent,
                action,
                resource,
                amount,
                chain,
                approval,
            } => {
                if !by_agent(*agent) {
                    return broken(format!("only {agent} acts for itself"));
                }
                let needs_approval = self.replay_use(env, chain, action, resource, amount.get())?;
                match approval.and_then(|id| self.approval(id)) {
                    None if needs_approval => {
                        broken("a use that needs approval was performed without one".into())
                    }
                    Some(a)
                        if a.agent != *agent
                            || &a.action != action
                            || &a.resource != resource
                            || a.amount != *amount =>
                    {
                        broken("the approval used was asked for another use".into())
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// A share step for `team`: by an operator, or by an agent of `team` in service holding a
    /// grant in force (without approval) that matches `action@team:NAME` at the event's time.
    fn check_share_step(
        &self,
        env: &Envelope,
        action: &str,
        team: TeamId,
    ) -> Result<(), FoldError> {
        let broken = |why: String| Err(FoldError::Inconsistent { seq: env.seq, why });
        let agent = match &env.actor {
            Actor::Operator(_) => return Ok(()),
            Actor::Runtime => return broken(format!("the runtime may not {action}")),
            Actor::Agent(a) => *a,
        };
        let (Some(a), Some(t)) = (self.agent(agent), self.team(team)) else {
            return broken(format!("{agent} is not an agent of team {team}"));
        };
        if a.team != team || a.is_retired() {
            return broken(format!("{agent} may not {action} for team {}", t.name));
        }
        let resource = Resource::team(&t.name);
        let allowed = Action::parse(action).is_ok_and(|action| {
            self.grants_of(agent).any(|g| {
                g.capability.matches(&action, &resource)
                    && matches!(
                        self.check_chain_of(g, None, env.at),
                        ChainCheck::Ok {
                            approval: false,
                            ..
                        }
                    )
            })
        });
        if !allowed {
            return broken(format!(
                "{agent} holds no grant in force for {action} on {resource}"
            ));
        }
        Ok(())
    }

    /// A derived grant: its parent is in force, and an agent derives only from its own grants.
    fn check_derivation(&self, env: &Envelope, parent: GrantId) -> Result<(), FoldError> {
        let seq = env.seq;
        if let Some(reason) = self.inactive_reason(parent, env.at) {
            return Err(FoldError::Inconsistent {
                seq,
                why: format!("derived from {parent}, which is not in force: {reason}"),
            });
        }
        match (&env.actor, self.grant(parent)) {
            (Actor::Operator(_), _) => Ok(()),
            (Actor::Agent(a), Some(p)) if p.holder == *a => Ok(()),
            _ => Err(FoldError::Inconsistent {
                seq,
                why: format!("{} may not derive from {parent}", env.actor),
            }),
        }
    }

    fn derives_from_own(&self, grant: GrantId, agent: AgentId) -> bool {
        self.chain_of(grant)
            .iter()
            .skip(1)
            .any(|g| self.grant(*g).is_some_and(|g| g.holder == agent))
    }

    /// Re-authorizes a recorded use at its own time: the chain is the grant's whole chain to its
    /// root, the grant matches, every link is in force with budget left. Returns whether the
    /// chain needs approval.
    fn replay_use(
        &self,
        env: &Envelope,
        chain: &[GrantId],
        action: &crate::capability::Action,
        resource: &crate::capability::Resource,
        amount: u64,
    ) -> Result<bool, FoldError> {
        let seq = env.seq;
        let broken = |why: String| FoldError::Inconsistent { seq, why };
        let first = chain.first().and_then(|g| self.grant(*g));
        let Some(grant) = first else {
            return Err(broken("a use without a grant".into()));
        };
        if self.chain_of(grant.id) != chain {
            return Err(broken(format!(
                "the chain of {} is not its whole chain to the root",
                grant.id
            )));
        }
        if !grant.capability.matches(action, resource) {
            return Err(broken(format!(
                "{} does not allow {action} on {resource}",
                grant.id
            )));
        }
        match self.check_chain_of(grant, Some(amount), env.at) {
            ChainCheck::Ok { approval, .. } => Ok(approval),
            ChainCheck::Refused(reason) => {
                Err(broken(format!("the use was not allowed: {reason}")))
            }
        }
    }
}
