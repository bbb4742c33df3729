//! Authorization: one pure function over the projected state decides every use.
//!
//! Default deny. A grant authorizes a use when its capability matches and every link of its chain
//! (the grant, its parent, …, the root) is active and has budget left for the amount. A grant is
//! inactive once it or any ancestor is revoked, expired, or held by a retired agent — revocation
//! cascades without any event per descendant.

use std::fmt;

use crate::capability::{Action, Amount, Resource};
use crate::id::{AgentId, GrantId};
use crate::time::Timestamp;
use crate::world::{Grant, World};

/// The answer to "may this agent do this now?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// Yes, through this chain (holder's grant first, root last).
    Allow {
        /// The grants used.
        chain: Vec<GrantId>,
    },
    /// Yes once a human approves, through this chain.
    NeedsApproval {
        /// The grants that would be used.
        chain: Vec<GrantId>,
    },
    /// No.
    Deny {
        /// Why.
        reason: DenyReason,
    },
}

/// Why a use was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// The agent does not exist.
    UnknownAgent(AgentId),
    /// The agent is retired.
    Retired(AgentId),
    /// No grant of the agent matches the action and resource.
    NoGrant {
        /// What was asked.
        action: Action,
        /// On what.
        resource: Resource,
    },
    /// The matching grant, or one it derives from, was revoked.
    Revoked(GrantId),
    /// The matching grant, or one it derives from, expired.
    Expired(GrantId),
    /// The matching grant derives from a grant of a retired agent.
    HolderRetired(GrantId),
    /// A grant of the chain has not enough budget left.
    BudgetExhausted {
        /// The grant whose budget is short.
        grant: GrantId,
        /// Its budget.
        budget: u64,
        /// Already spent through it.
        spent: u64,
        /// The amount asked.
        amount: u64,
    },
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::UnknownAgent(a) => write!(f, "agent {a} does not exist"),
            DenyReason::Retired(a) => write!(f, "agent {a} is retired"),
            DenyReason::NoGrant { action, resource } => {
                write!(f, "no grant allows {action} on {resource}")
            }
            DenyReason::Revoked(g) => write!(f, "grant {g} (or one it derives from) was revoked"),
            DenyReason::Expired(g) => write!(f, "grant {g} (or one it derives from) has expired"),
            DenyReason::HolderRetired(g) => {
                write!(f, "grant {g} derives from a grant of a retired agent")
            }
            DenyReason::BudgetExhausted { grant, budget, spent, amount } => write!(
                f,
                "budget exhausted: grant {grant} has spent {spent} of {budget}, {amount} more does not fit"
            ),
        }
    }
}

/// What a chain check found.
pub(crate) enum ChainCheck {
    Ok { chain: Vec<GrantId>, approval: bool },
    Refused(DenyReason),
}

impl World {
    /// Walks from `grant` to its root; checks every link is active at `now` and has room for
    /// `amount` (`None`: activity only).
    pub(crate) fn check_chain_of(
        &self,
        grant: &Grant,
        amount: Option<u64>,
        now: Timestamp,
    ) -> ChainCheck {
        let mut chain = Vec::with_capacity(4);
        let mut approval = false;
        let mut link = Some(grant);
        while let Some(g) = link {
            if g.revoked_at.is_some() {
                return ChainCheck::Refused(DenyReason::Revoked(g.id));
            }
            if g.capability.expired_at(now) {
                return ChainCheck::Refused(DenyReason::Expired(g.id));
            }
            if self.agents.get(&g.holder).is_none_or(|a| a.is_retired()) {
                return ChainCheck::Refused(DenyReason::HolderRetired(g.id));
            }
            let c = g.capability.constraints();
            if let (Some(budget), Some(amount)) = (c.budget, amount) {
                if g.spent.saturating_add(amount) > budget {
                    return ChainCheck::Refused(DenyReason::BudgetExhausted {
                        grant: g.id,
                        budget,
                        spent: g.spent,
                        amount,
                    });
                }
            }
            approval |= c.approval;
            chain.push(g.id);
            link = g.parent.and_then(|p| self.grants.get(&p));
        }
        ChainCheck::Ok { chain, approval }
    }

    /// Is `grant` in force at `now` (it and every ancestor unrevoked, unexpired, held by an
    /// agent still in service)?
    pub fn is_active(&self, grant: GrantId, now: Timestamp) -> bool {
        self.grants
            .get(&grant)
            .is_some_and(|g| matches!(self.check_chain_of(g, None, now), ChainCheck::Ok { .. }))
    }

    /// Why `grant` is not in force at `now`, if it is not.
    pub fn inactive_reason(&self, grant: GrantId, now: Timestamp) -> Option<DenyReason> {
        let g = self.grants.get(&grant)?;
        match self.check_chain_of(g, None, now) {
            ChainCheck::Ok { .. } => None,
            ChainCheck::Refused(r) => Some(r),
        }
    }

    /// The grants `agent` holds that are in force at `now`.
    pub fn active_grants_of(&self, agent: AgentId, now: Timestamp) -> Vec<&Grant> {
        self.grants_of(agent)
            .filter(|g| self.is_active(g.id, now))
            .collect()
    }

    /// The chain from `grant` to its root (whether active or not).
    pub fn chain_of(&self, grant: GrantId) -> Vec<GrantId> {
        let mut out = Vec::new();
        let mut link = self.grants.get(&grant);
        while let Some(g) = link {
            out.push(g.id);
            link = g.parent.and_then(|p| self.grants.get(&p));
        }
        out
    }

    /// `authorize(agent, action, resource, amount, now)`: default deny.
    ///
    /// Prefers a chain that needs no approval; among refusals it reports the one of the first
    /// matching grant, so that "budget exhausted" is said rather than "no grant".
    pub fn authorize(
        &self,
        agent: AgentId,
        action: &Action,
        resource: &Resource,
        amount: Amount,
        now: Timestamp,
    ) -> Authorization {
        let Some(a) = self.agents.get(&agent) else {
            return Authorization::Deny {
                reason: DenyReason::UnknownAgent(agent),
            };
        };
        if a.is_retired() {
            return Authorization::Deny {
                reason: DenyReason::Retired(agent),
            };
        }
        let mut needs_approval = None;
        let mut refusal = None;
        for g in self.grants_of(agent) {
            if !g.capability.matches(action, resource) {
                continue;
            }
            match self.check_chain_of(g, Some(amount.get()), now) {
                ChainCheck::Ok {
                    chain,
                    approval: false,
                } => return Authorization::Allow { chain },
                ChainCheck::Ok {
                    chain,
                    approval: true,
                } => {
                    needs_approval.get_or_insert(chain);
                }
                ChainCheck::Refused(r) => {
                    refusal.get_or_insert(r);
                }
            }
        }
        if let Some(chain) = needs_approval {
            return Authorization::NeedsApproval { chain };
        }
        Authorization::Deny {
            reason: refusal.unwrap_or_else(|| DenyReason::NoGrant {
                action: action.clone(),
                resource: resource.clone(),
            }),
        }
    }
}
