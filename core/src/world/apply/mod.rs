//! [`World::apply`]: folds one event, checking everything before mutating anything, so a
//! refused event ([`FoldError`]) leaves the world unchanged.
//!
//! One function per event kind holds both halves — what must hold, then what changes — so
//! adding a kind adds one function here (and an arm to [`World::apply`]'s dispatch):
//! `people.rs` (teams, hires, home disk quotas, lifecycle, retirement), `grants.rs` (issue,
//! revoke, spend, refusals), `shares.rs` (shares between teams and crossings), `approvals.rs`,
//! `keys.rs` (keyed calls).

use crate::envelope::Envelope;
use crate::event::Event;
use crate::id::{AgentId, GrantId, TeamId};

use super::{Agent, AgentStatus, World};

mod approvals;
mod grants;
mod keys;
mod people;
mod shares;

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
        let r = Refuse { seq };
        let is_new_team = matches!(env.event, Event::TeamCreated { .. });
        if !is_new_team && !self.teams.contains_key(&env.team) {
            return Err(r.unknown("team", env.team));
        }
        let at = env.at;
        match &env.event {
            Event::TeamCreated { name } => self.team_created(&r, env.team, name, at),
            Event::AgentHired {
                agent,
                name,
                role,
                parent,
                spec,
            } => self.agent_hired(&r, env.team, *agent, name, role, *parent, spec, at),
            Event::AgentStarted { agent, container } => {
                self.agent_started(&r, env.team, *agent, container)
            }
            Event::AgentStopped { agent, reason } => {
                self.agent_stopped(&r, env.team, *agent, *reason)
            }
            Event::AgentRetired { agent } => self.agent_retired(&r, env.team, *agent),
            Event::GrantIssued {
                grant,
                holder,
                capability,
                parent,
            } => self.grant_issued(&r, env.team, *grant, *holder, capability, *parent, at),
            Event::GrantRevoked { grant } => self.grant_revoked(&r, env.team, *grant, at),
            Event::AccessDenied { agent, .. } => self.access_denied(&r, env.team, *agent),
            Event::ActionPerformed {
                agent,
                chain,
                amount,
                approval,
                ..
            } => self.action_performed(&r, *agent, chain, *amount, *approval),
            Event::ShareProposed { share, to, topics } => {
                self.share_proposed(&r, env.team, *share, *to, topics)
            }
            Event::ShareAccepted { share } => self.share_accepted(&r, env.team, *share),
            Event::ShareClosed { share } => self.share_closed(&r, env.team, *share),
            Event::ContextShared { share, sender, .. } => self.context_shared(&r, *share, *sender),
            Event::ApprovalRequested {
                approval,
                agent,
                action,
                resource,
                amount,
                chain,
            } => self.approval_requested(
                &r, env.team, *approval, *agent, action, resource, *amount, chain, None, at,
            ),
            Event::CallApprovalRequested {
                approval,
                agent,
                action,
                resource,
                amount,
                chain,
                args,
            } => self.approval_requested(
                &r,
                env.team,
                *approval,
                *agent,
                action,
                resource,
                *amount,
                chain,
                Some(args),
                at,
            ),
            Event::ApprovalDecided {
                approval,
                approved,
                note,
            } => self.approval_decided(&r, *approval, *approved, note, &env.actor, at),
            Event::CallKeyed {
                agent,
                key,
                digest,
                outcome,
            } => self.call_keyed(&r, env.team, *agent, key, *digest, *outcome),
            Event::AgentDiskLimited { agent, disk_mib } => {
                self.agent_disk_limited(&r, env.team, *agent, *disk_mib)
            }
        }?;
        self.next_seq += 1;
        self.last_at = self.last_at.max(env.at);
        if let Some(t) = self.teams.get_mut(&env.team) {
            t.version = env.version;
        }
        Ok(())
    }

    /// The agent, which must be in `team`.
    fn agent_in_team(&self, r: &Refuse, agent: AgentId, team: TeamId) -> Result<&Agent, FoldError> {
        let a = self
            .agents
            .get(&agent)
            .ok_or_else(|| r.unknown("agent", agent))?;
        if a.team != team {
            return Err(r.inconsistent(format!("agent {agent} is not in team {team}")));
        }
        Ok(a)
    }

    /// A chain must start at a grant the agent holds and follow parent links.
    fn check_chain(&self, r: &Refuse, agent: AgentId, chain: &[GrantId]) -> Result<(), FoldError> {
        let Some(first) = chain.first() else {
            return Err(r.inconsistent("empty grant chain".into()));
        };
        match self.grants.get(first) {
            Some(g) if g.holder == agent => {}
            _ => return Err(r.inconsistent(format!("grant {first} is not held by {agent}"))),
        }
        for pair in chain.windows(2) {
            let parent = self.grants.get(&pair[0]).and_then(|g| g.parent);
            if parent != Some(pair[1]) {
                return Err(r.inconsistent(format!(
                    "grant chain breaks: {} is not derived from {}",
                    pair[0], pair[1]
                )));
            }
        }
        Ok(())
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

/// The refusals of the event at position `seq`.
struct Refuse {
    seq: u64,
}

impl Refuse {
    /// It names something that does not exist.
    fn unknown(&self, what: &'static str, id: impl std::fmt::Display) -> FoldError {
        FoldError::Unknown {
            seq: self.seq,
            what,
            id: id.to_string(),
        }
    }

    /// It creates something that already exists.
    fn duplicate(&self, what: &'static str, id: impl std::fmt::Display) -> FoldError {
        FoldError::Duplicate {
            seq: self.seq,
            what,
            id: id.to_string(),
        }
    }

    /// It contradicts the state.
    fn inconsistent(&self, why: String) -> FoldError {
        FoldError::Inconsistent { seq: self.seq, why }
    }
}
