//! Grants: issued (a derived one never wider than its parent), revoked, used by an action;
//! and the record of a refusal.

use crate::capability::{covers, Amount, Capability};
use crate::id::{AgentId, ApprovalId, GrantId, TeamId};
use crate::time::Timestamp;
use crate::world::{Grant, World};

use super::{FoldError, Refuse};

impl World {
    /// A grant to an agent of the team; a derived one is covered by its parent.
    #[allow(clippy::too_many_arguments)] // one per field of the event
    pub(super) fn grant_issued(
        &mut self,
        r: &Refuse,
        team: TeamId,
        grant: GrantId,
        holder: AgentId,
        capability: &Capability,
        parent: Option<GrantId>,
        at: Timestamp,
    ) -> Result<(), FoldError> {
        if self.grants.contains_key(&grant) {
            return Err(r.duplicate("grant", grant));
        }
        self.agent_in_team(r, holder, team)?;
        if let Some(p) = parent {
            let pg = self.grants.get(&p).ok_or_else(|| r.unknown("grant", p))?;
            if !covers(&pg.capability, capability) {
                return Err(r.inconsistent(format!(
                    "grant {grant} ({capability}) is wider than its parent {p} ({})",
                    pg.capability
                )));
            }
        }
        self.grants.insert(
            grant,
            Grant {
                id: grant,
                holder,
                capability: capability.clone(),
                parent,
                issued_at: at,
                revoked_at: None,
                spent: 0,
            },
        );
        self.holdings.entry(holder).or_default().push(grant);
        Ok(())
    }

    /// Revoked (the first revocation's time stands).
    pub(super) fn grant_revoked(
        &mut self,
        r: &Refuse,
        team: TeamId,
        grant: GrantId,
        at: Timestamp,
    ) -> Result<(), FoldError> {
        let holder = self
            .grants
            .get(&grant)
            .ok_or_else(|| r.unknown("grant", grant))?
            .holder;
        self.agent_in_team(r, holder, team)?;
        if let Some(g) = self.grants.get_mut(&grant) {
            g.revoked_at.get_or_insert(at);
        }
        Ok(())
    }

    /// A refusal recorded: changes nothing but must name an agent of the team.
    pub(super) fn access_denied(
        &mut self,
        r: &Refuse,
        team: TeamId,
        agent: AgentId,
    ) -> Result<(), FoldError> {
        self.agent_in_team(r, agent, team)?;
        Ok(())
    }

    /// An action carried out through `chain`: its amount is charged to every grant of the
    /// chain, and the approval it used (granted, unused) is used up.
    pub(super) fn action_performed(
        &mut self,
        r: &Refuse,
        agent: AgentId,
        chain: &[GrantId],
        amount: Amount,
        approval: Option<ApprovalId>,
    ) -> Result<(), FoldError> {
        if !self.agents.contains_key(&agent) {
            return Err(r.unknown("agent", agent));
        }
        self.check_chain(r, agent, chain)?;
        if let Some(id) = approval {
            let a = self
                .approvals
                .get(&id)
                .ok_or_else(|| r.unknown("approval", id))?;
            if a.used || !a.decision.as_ref().is_some_and(|d| d.approved) {
                return Err(r.inconsistent(format!("approval {id} is used up or was not granted")));
            }
        }
        for g in chain {
            if let Some(g) = self.grants.get_mut(g) {
                g.spent = g.spent.saturating_add(amount.get());
            }
        }
        if let Some(id) = approval {
            if let Some(a) = self.approvals.get_mut(&id) {
                a.used = true;
            }
        }
        Ok(())
    }
}
