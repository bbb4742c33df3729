//! Approvals: an agent's use waiting for a human, and the human's decision.

use std::collections::BTreeMap;

use crate::actor::Actor;
use crate::capability::{Action, Amount, Resource};
use crate::id::{AgentId, ApprovalId, GrantId, TeamId};
use crate::name::{Label, Name};
use crate::time::Timestamp;
use crate::world::{Approval, ApprovalDecision, World};

use super::{FoldError, Refuse};

impl World {
    /// Asked by an agent of the team, through a chain it holds.
    #[allow(clippy::too_many_arguments)] // one per field of the event
    pub(super) fn approval_requested(
        &mut self,
        r: &Refuse,
        team: TeamId,
        approval: ApprovalId,
        agent: AgentId,
        action: &Action,
        resource: &Resource,
        amount: Amount,
        chain: &[GrantId],
        args: Option<&BTreeMap<Name, String>>,
        at: Timestamp,
    ) -> Result<(), FoldError> {
        if self.approvals.contains_key(&approval) {
            return Err(r.duplicate("approval", approval));
        }
        self.agent_in_team(r, agent, team)?;
        self.check_chain(r, agent, chain)?;
        self.approvals.insert(
            approval,
            Approval {
                id: approval,
                agent,
                action: action.clone(),
                resource: resource.clone(),
                amount,
                chain: chain.to_vec(),
                args: args.cloned(),
                requested_at: at,
                decision: None,
                used: false,
            },
        );
        self.waiting.entry(agent).or_default().insert(approval);
        Ok(())
    }

    /// Decided, once.
    pub(super) fn approval_decided(
        &mut self,
        r: &Refuse,
        approval: ApprovalId,
        approved: bool,
        note: &Option<Label>,
        by: &Actor,
        at: Timestamp,
    ) -> Result<(), FoldError> {
        let a = self
            .approvals
            .get_mut(&approval)
            .ok_or_else(|| r.unknown("approval", approval))?;
        if a.decision.is_some() {
            return Err(r.inconsistent(format!("approval {approval} was already decided")));
        }
        a.decision = Some(ApprovalDecision {
            approved,
            by: by.clone(),
            at,
            note: note.clone(),
        });
        let agent = a.agent;
        if let Some(ids) = self.waiting.get_mut(&agent) {
            ids.remove(&approval);
            if ids.is_empty() {
                self.waiting.remove(&agent);
            }
        }
        Ok(())
    }
}
