//! An independent model of authorization, fed the same events as the world: the design's rules
//! written out plainly (a use is allowed through the first matching grant whose every link is
//! unrevoked, unexpired, held by an agent in service and has budget left; approval if any link
//! asks for it), for the world's answers to be compared against.

use std::collections::{BTreeMap, BTreeSet};

use roster_core::authz::Authorization;
use roster_core::capability::{Action, Capability, Resource};
use roster_core::envelope::Envelope;
use roster_core::event::Event;
use roster_core::id::{AgentId, GrantId};
use roster_core::time::Timestamp;

use crate::common::CapSpec;

/// A grant as the model knows it.
#[derive(Debug, Clone)]
pub struct MGrant {
    pub holder: AgentId,
    pub parent: Option<GrantId>,
    pub cap: Capability,
    pub spec: CapSpec,
    pub revoked: bool,
    pub spent: u64,
}

/// What `authorize` should answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Allow(Vec<GrantId>),
    NeedsApproval(Vec<GrantId>),
    Deny,
}

impl Expected {
    /// The model's form of an answer.
    pub fn of(a: &Authorization) -> Expected {
        match a {
            Authorization::Allow { chain } => Expected::Allow(chain.clone()),
            Authorization::NeedsApproval { chain } => Expected::NeedsApproval(chain.clone()),
            Authorization::Deny { .. } => Expected::Deny,
        }
    }
}

/// Agents, grants and spends, from the events.
#[derive(Debug, Default, Clone)]
pub struct Model {
    /// Agent → retired?
    pub agents: BTreeMap<AgentId, bool>,
    pub grants: BTreeMap<GrantId, MGrant>,
    /// Each agent's grants in issue order.
    pub holdings: BTreeMap<AgentId, Vec<GrantId>>,
}

impl Model {
    /// Takes in one committed event.
    pub fn observe(&mut self, env: &Envelope) {
        match &env.event {
            Event::AgentHired { agent, .. } => {
                self.agents.insert(*agent, false);
            }
            Event::AgentRetired { agent } => {
                self.agents.insert(*agent, true);
            }
            Event::GrantIssued {
                grant,
                holder,
                capability,
                parent,
            } => {
                self.grants.insert(
                    *grant,
                    MGrant {
                        holder: *holder,
                        parent: *parent,
                        cap: capability.clone(),
                        spec: CapSpec::of(capability),
                        revoked: false,
                        spent: 0,
                    },
                );
                self.holdings.entry(*holder).or_default().push(*grant);
            }
            Event::GrantRevoked { grant } => {
                if let Some(g) = self.grants.get_mut(grant) {
                    g.revoked = true;
                }
            }
            Event::ActionPerformed { chain, amount, .. } => {
                for g in chain {
                    if let Some(g) = self.grants.get_mut(g) {
                        g.spent += amount.get();
                    }
                }
            }
            _ => {}
        }
    }

    /// The grant and its ancestors, holder's first.
    pub fn chain(&self, g: GrantId) -> Vec<GrantId> {
        let mut out = vec![g];
        let mut link = self.grants.get(&g).and_then(|g| g.parent);
        while let Some(p) = link {
            out.push(p);
            link = self.grants.get(&p).and_then(|g| g.parent);
        }
        out
    }

    /// This link alone is in force: not revoked, not expired, its holder in service.
    pub fn link_ok(&self, g: GrantId, now: Timestamp) -> bool {
        let g = &self.grants[&g];
        !g.revoked
            && g.spec.expires.is_none_or(|e| now < e)
            && self.agents.get(&g.holder) == Some(&false)
    }

    /// Every link of the grant's chain is in force.
    pub fn active(&self, g: GrantId, now: Timestamp) -> bool {
        self.chain(g).into_iter().all(|l| self.link_ok(l, now))
    }

    /// The grants whose chain runs through one of `roots` (the roots included).
    pub fn descendants_of(&self, roots: &BTreeSet<GrantId>) -> BTreeSet<GrantId> {
        self.grants
            .keys()
            .copied()
            .filter(|g| self.chain(*g).iter().any(|l| roots.contains(l)))
            .collect()
    }

    /// What `authorize(agent, action, resource, amount, now)` should say.
    pub fn expect(
        &self,
        agent: AgentId,
        action: &Action,
        resource: &Resource,
        amount: u64,
        now: Timestamp,
    ) -> Expected {
        if self.agents.get(&agent) != Some(&false) {
            return Expected::Deny;
        }
        let mut approval_chain = None;
        for g in self.holdings.get(&agent).into_iter().flatten() {
            if !self.grants[g].cap.matches(action, resource) {
                continue;
            }
            let chain = self.chain(*g);
            let usable = chain.iter().all(|l| {
                let m = &self.grants[l];
                self.link_ok(*l, now) && m.spec.budget.is_none_or(|b| m.spent + amount <= b)
            });
            if !usable {
                continue;
            }
            if chain.iter().any(|l| self.grants[l].spec.approval) {
                approval_chain.get_or_insert(chain);
            } else {
                return Expected::Allow(chain);
            }
        }
        approval_chain.map_or(Expected::Deny, Expected::NeedsApproval)
    }
}
