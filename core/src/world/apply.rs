//! [`World::apply`]: folds one event, checking everything before mutating anything, so a
//! refused event ([`FoldError`]) leaves the world unchanged.

use crate::capability::covers;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::id::{AgentId, GrantId, TeamId};

use super::{
    Agent, AgentStatus, Approval, ApprovalDecision, Grant, Share, ShareState, Team, World,
};

/// Why an event could not be folded. The world is unchanged when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FoldError {
    /// The event's position is not the next one.
    #[error("expected the event at position {expected}, got position {found}")]
    OutOfOrder {
        /// The next position.
        expected: u64,
        /// The position given.
        found: u64,
    },
    /// The event's team version is not the team's next one.
    #[error("event {seq}: team version {found} does not follow {current}")]
    TeamVersion {
        /// Where.
        seq: u64,
        /// The team's version.
        current: u64,
        /// The version given.
        found: u64,
    },
    /// It refers to something that does not exist.
    #[error("event {seq}: unknown {what} {id}")]
    Unknown {
        /// Where.
        seq: u64,
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// It creates something that already exists.
    #[error("event {seq}: {what} {id} already exists")]
    Duplicate {
        /// Where.
        seq: u64,
        /// What kind of thing.
        what: &'static str,
        /// Its id or name.
        id: String,
    },
    /// It contradicts the state (a derived grant wider than its parent, a spend through a broken
    /// chain, an agent event filed under another team).
    #[error("event {seq}: {why}")]
    Inconsistent {
        /// Where.
        seq: u64,
        /// What is wrong.
        why: String,
    },
}

impl World {
    /// Folds one event. Checks everything first; on error the world is unchanged.
    pub fn apply(&mut self, env: &Envelope) -> Result<(), FoldError> {
        let seq = env.seq;
        if seq != self.next_seq {
            return Err(FoldError::OutOfOrder {
                expected: self.next_seq,
                found: seq,
            });
        }
        let current = self.team_version(env.team);
        if env.version != current + 1 {
            return Err(FoldError::TeamVersion {
                seq,
                current,
                found: env.version,
            });
        }
        let unknown = |what: &'static str, id: String| FoldError::Unknown { seq, what, id };
        let inconsistent = |why: String| FoldError::Inconsistent { seq, why };
        let is_new_team = matches!(env.event, Event::TeamCreated { .. });
        if !is_new_team && !self.teams.contains_key(&env.team) {
            return Err(unknown("team", env.team.to_string()));
        }
        self.check(env, &unknown, &inconsistent)?;
        self.mutate(env);
        self.next_seq += 1;
        self.last_at = self.last_at.max(env.at);
        if let Some(t) = self.teams.get_mut(&env.team) {
            t.version = env.version;
        }
        Ok(())
    }

    fn agent_in_team(
        &self,
        agent: AgentId,
        team: TeamId,
        unknown: &dyn Fn(&'static str, String) -> FoldError,
        inconsistent: &dyn Fn(String) -> FoldError,
    ) -> Result<&Agent, FoldError> {
        let a = self
            .agents
            .get(&agent)
            .ok_or_else(|| unknown("agent", agent.to_string()))?;
        if a.team != team {
            return Err(inconsistent(format!("agent {agent} is not in team {team}")));
        }
        Ok(a)
    }

    fn check(
        &self,
        env: &Envelope,
        unknown: &dyn Fn(&'static str, String) -> FoldError,
        inconsistent: &dyn Fn(String) -> FoldError,
    ) -> Result<(), FoldError> {
        let seq = env.seq;
        let dup = |what: &'static str, id: String| FoldError::Duplicate { seq, what, id };
        match &env.event {
            Event::TeamCreated { name } => {
                if self.teams.contains_key(&env.team) {
                    return Err(dup("team", env.team.to_string()));
                }
                if self.team_names.contains_key(name) {
                    return Err(dup("team name", name.to_string()));
                }
            }
            Event::AgentHired {
                agent,
                name,
                parent,
                ..
            } => {
                if self.agents.contains_key(agent) {
                    return Err(dup("agent", agent.to_string()));
                }
                if self
                    .agent_named(env.team, name)
                    .is_some_and(|a| !a.is_retired())
                {
                    return Err(dup("agent name", name.to_string()));
                }
                if let Some(p) = parent {
                    if !self.agents.contains_key(p) {
                        return Err(unknown("agent", p.to_string()));
                    }
                }
            }
            Event::AgentStarted { agent, .. }
            | Event::AgentStopped { agent, .. }
            | Event::AgentRetired { agent } => {
                self.agent_in_team(*agent, env.team, unknown, inconsistent)?;
            }
            Event::GrantIssued {
                grant,
                holder,
                capability,
                parent,
            } => {
                if self.grants.contains_key(grant) {
                    return Err(dup("grant", grant.to_string()));
                }
                self.agent_in_team(*holder, env.team, unknown, inconsistent)?;
                if let Some(p) = parent {
                    let pg = self
                        .grants
                        .get(p)
                        .ok_or_else(|| unknown("grant", p.to_string()))?;
                    if !covers(&pg.capability, capability) {
                        return Err(inconsistent(format!(
                            "grant {grant} ({capability}) is wider than its parent {p} ({})",
                            pg.capability
                        )));
                    }
                }
            }
            Event::GrantRevoked { grant } => {
                let g = self
                    .grants
                    .get(grant)
                    .ok_or_else(|| unknown("grant", grant.to_string()))?;
                self.agent_in_team(g.holder, env.team, unknown, inconsistent)?;
            }
            Event::ShareProposed { share, to, .. } => {
                if self.shares.contains_key(share) {
                    return Err(dup("share", share.to_string()));
                }
                if !self.teams.contains_key(to) {
                    return Err(unknown("team", to.to_string()));
                }
            }
            Event::ShareAccepted { share } | Event::ShareClosed { share } => {
                let s = self
                    .shares
                    .get(share)
                    .ok_or_else(|| unknown("share", share.to_string()))?;
                if s.from != env.team && s.to != env.team {
                    return Err(inconsistent(format!(
                        "share {share} does not involve this team"
                    )));
                }
            }
            Event::ContextShared { share, sender, .. } => {
                let s = self
                    .shares
                    .get(share)
                    .ok_or_else(|| unknown("share", share.to_string()))?;
                self.agent_in_team(*sender, s.from, unknown, inconsistent)?;
            }
            Event::AccessDenied { agent, .. } => {
                self.agent_in_team(*agent, env.team, unknown, inconsistent)?;
            }
            Event::ApprovalRequested {
                approval,
                agent,
                chain,
                ..
            } => {
                if self.approvals.contains_key(approval) {
                    return Err(dup("approval", approval.to_string()));
                }
                self.agent_in_team(*agent, env.team, unknown, inconsistent)?;
                self.check_chain(*agent, chain, inconsistent)?;
            }
            Event::ApprovalDecided { approval, .. } => {
                let a = self
                    .approvals
                    .get(approval)
                    .ok_or_else(|| unknown("approval", approval.to_string()))?;
                if a.decision.is_some() {
                    return Err(inconsistent(format!(
                        "approval {approval} was already decided"
                    )));
                }
            }
            Event::ActionPerformed {
                agent,
                chain,
                approval,
                ..
            } => {
                if !self.agents.contains_key(agent) {
                    return Err(unknown("agent", agent.to_string()));
                }
                self.check_chain(*agent, chain, inconsistent)?;
                if let Some(id) = approval {
                    let a = self
                        .approvals
                        .get(id)
                        .ok_or_else(|| unknown("approval", id.to_string()))?;
                    if a.used || !a.decision.as_ref().is_some_and(|d| d.approved) {
                        return Err(inconsistent(format!(
                            "approval {id} is used up or was not granted"
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// A chain must start at a grant the agent holds and follow parent links.
    fn check_chain(
        &self,
        agent: AgentId,
        chain: &[GrantId],
        inconsistent: &dyn Fn(String) -> FoldError,
    ) -> Result<(), FoldError> {
        let Some(first) = chain.first() else {
            return Err(inconsistent("empty grant chain".into()));
        };
        match self.grants.get(first) {
            Some(g) if g.holder == agent => {}
            _ => {
                return Err(inconsistent(format!(
                    "grant {first} is not held by {agent}"
                )))
            }
        }
        for pair in chain.windows(2) {
            let parent = self.grants.get(&pair[0]).and_then(|g| g.parent);
            if parent != Some(pair[1]) {
                return Err(inconsistent(format!(
                    "grant chain breaks: {} is not derived from {}",
                    pair[0], pair[1]
                )));
            }
        }
        Ok(())
    }

    fn mutate(&mut self, env: &Envelope) {
        let at = env.at;
        match &env.event {
            Event::TeamCreated { name } => {
                self.teams.insert(
                    env.team,
                    Team {
                        id: env.team,
                        name: name.clone(),
                        version: 0,
                        created_at: at,
                    },
                );
                self.team_names.insert(name.clone(), env.team);
            }
            Event::AgentHired {
                agent,
                name,
                role,
                parent,
                spec,
            } => {
                self.agents.insert(
                    *agent,
                    Agent {
                        id: *agent,
                        team: env.team,
                        name: name.clone(),
                        role: role.clone(),
                        parent: *parent,
                        spec: spec.clone(),
                        hired_at: at,
                        status: AgentStatus::Hired,
                    },
                );
            }
            Event::AgentStarted { agent, container } => {
                self.set_status(
                    *agent,
                    AgentStatus::Running {
                        container: container.clone(),
                    },
                );
            }
            Event::AgentStopped { agent, reason } => {
                self.set_status(*agent, AgentStatus::Stopped { reason: *reason });
            }
            Event::AgentRetired { agent } => self.set_status(*agent, AgentStatus::Retired),
            Event::GrantIssued {
                grant,
                holder,
                capability,
                parent,
            } => {
                self.grants.insert(
                    *grant,
                    Grant {
                        id: *grant,
                        holder: *holder,
                        capability: capability.clone(),
                        parent: *parent,
                        issued_at: at,
                        revoked_at: None,
                        spent: 0,
                    },
                );
                self.holdings.entry(*holder).or_default().push(*grant);
            }
            Event::GrantRevoked { grant } => {
                if let Some(g) = self.grants.get_mut(grant) {
                    g.revoked_at.get_or_insert(at);
                }
            }
            Event::ShareProposed { share, to, topics } => {
                self.shares.insert(
                    *share,
                    Share {
                        id: *share,
                        from: env.team,
                        to: *to,
                        topics: topics.clone(),
                        state: ShareState::Proposed,
                        crossings: 0,
                    },
                );
            }
            Event::ShareAccepted { share } => {
                if let Some(s) = self.shares.get_mut(share) {
                    if s.state == ShareState::Proposed {
                        s.state = ShareState::Open;
                    }
                }
            }
            Event::ShareClosed { share } => {
                if let Some(s) = self.shares.get_mut(share) {
                    s.state = ShareState::Closed;
                }
            }
            Event::ContextShared { share, .. } => {
                if let Some(s) = self.shares.get_mut(share) {
                    s.crossings += 1;
                }
            }
            Event::AccessDenied { .. } => {}
            Event::ApprovalRequested {
                approval,
                agent,
                action,
                resource,
                amount,
                chain,
            } => {
                self.approvals.insert(
                    *approval,
                    Approval {
                        id: *approval,
                        agent: *agent,
                        action: action.clone(),
                        resource: resource.clone(),
                        amount: *amount,
                        chain: chain.clone(),
                        requested_at: at,
                        decision: None,
                        used: false,
                    },
                );
            }
            Event::ApprovalDecided {
                approval,
                approved,
                note,
            } => {
                if let Some(a) = self.approvals.get_mut(approval) {
                    a.decision = Some(ApprovalDecision {
                        approved: *approved,
                        by: env.actor.clone(),
                        at,
                        note: note.clone(),
                    });
                }
            }
            Event::ActionPerformed {
                chain,
                amount,
                approval,
                ..
            } => {
                for g in chain {
                    if let Some(g) = self.grants.get_mut(g) {
                        g.spent = g.spent.saturating_add(amount.get());
                    }
                }
                if let Some(id) = approval {
                    if let Some(a) = self.approvals.get_mut(id) {
                        a.used = true;
                    }
                }
            }
        }
    }

    fn set_status(&mut self, agent: AgentId, status: AgentStatus) {
        if let Some(a) = self.agents.get_mut(&agent) {
            // Retirement is final: a late lifecycle event never brings an agent back.
            if !a.is_retired() {
                a.status = status;
            }
        }
    }
}
