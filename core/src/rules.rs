//! The rules of the log, checked when a log comes from elsewhere (`roster import`).
//!
//! The hash chain proves that a log was not altered after it was written; it cannot prove that
//! whoever wrote it played by the rules — anyone can compute BLAKE3. [`World::apply_checked`]
//! folds an event only if it is one that [`crate::command::decide`] could have produced from the
//! world before it: who may cause it, that a spend goes through the whole chain of an active
//! grant that matches and has budget left, that a root grant comes from an operator. A log
//! written by roster always passes; a forged one is refused at the first event that breaks a rule.
//!
//! Events of the later issues (lifecycle, shares, context) are checked structurally only.

use crate::actor::Actor;
use crate::authz::ChainCheck;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::id::{AgentId, GrantId};
use crate::world::{FoldError, World};

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
            Event::AccessDenied { agent, .. } if !by_agent(*agent) => broken(format!(
                "a refusal of {agent} must be recorded as its own request"
            )),
            Event::ApprovalRequested {
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
