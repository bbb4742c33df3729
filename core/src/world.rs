//! The projection: the state of every team as a pure fold over the log.
//!
//! [`World::apply`] is the only way state changes, and it changes nothing when it refuses an
//! event (every check runs before any mutation). Folding the same log twice gives equal worlds.

use std::collections::{BTreeMap, HashMap};

use crate::actor::Actor;
use crate::capability::{covers, Action, Amount, Capability, Resource};
use crate::envelope::Envelope;
use crate::event::{AgentSpec, Event, StopReason};
use crate::id::{AgentId, ApprovalId, GrantId, ShareId, TeamId};
use crate::name::{Label, Name};
use crate::time::Timestamp;
use crate::topic::TopicPattern;

/// A team as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    /// Its id.
    pub id: TeamId,
    /// Its unique name.
    pub name: Name,
    /// The version of its stream (events so far).
    pub version: u64,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Where an agent is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStatus {
    /// Recorded, no container yet.
    Hired,
    /// Its container runs.
    Running {
        /// The engine's container id.
        container: String,
    },
    /// Its container stopped.
    Stopped {
        /// Why.
        reason: StopReason,
    },
    /// Retired for good; its grants are void.
    Retired,
}

/// An agent as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Its team.
    pub team: TeamId,
    /// Its name within the team.
    pub name: Name,
    /// Its role, for people.
    pub role: Label,
    /// Who hired it (`None`: an operator).
    pub parent: Option<AgentId>,
    /// How its container is made.
    pub spec: AgentSpec,
    /// When it was hired.
    pub hired_at: Timestamp,
    /// Where it is in its life.
    pub status: AgentStatus,
}

impl Agent {
    /// Retired agents hold nothing and can do nothing.
    pub fn is_retired(&self) -> bool {
        self.status == AgentStatus::Retired
    }
}

/// A grant as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Its id.
    pub id: GrantId,
    /// Who holds it.
    pub holder: AgentId,
    /// What it allows.
    pub capability: Capability,
    /// What it was derived from.
    pub parent: Option<GrantId>,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// Sum of the amounts of every use through it or any grant derived from it.
    pub spent: u64,
}

/// Where a share is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareState {
    /// Offered by the exporting team, not yet accepted.
    Proposed,
    /// Both sides consented: context flows.
    Open,
    /// Closed by either side.
    Closed,
}

/// A share as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Its id.
    pub id: ShareId,
    /// The exporting team.
    pub from: TeamId,
    /// The importing team.
    pub to: TeamId,
    /// Which of the exporting team's topics flow.
    pub topics: TopicPattern,
    /// Where it is in its life.
    pub state: ShareState,
    /// Messages that crossed it.
    pub crossings: u64,
}

/// A human's decision on an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalDecision {
    /// Yes or no.
    pub approved: bool,
    /// Who decided.
    pub by: Actor,
    /// When.
    pub at: Timestamp,
    /// Why, if they said.
    pub note: Option<Label>,
}

/// An approval request as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// Its id.
    pub id: ApprovalId,
    /// Who asks.
    pub agent: AgentId,
    /// What for.
    pub action: Action,
    /// On what.
    pub resource: Resource,
    /// How much.
    pub amount: Amount,
    /// The grants that would authorize it.
    pub chain: Vec<GrantId>,
    /// When it was asked.
    pub requested_at: Timestamp,
    /// The decision, once made.
    pub decision: Option<ApprovalDecision>,
    /// Whether the one use it allows has happened.
    pub used: bool,
}

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

/// The state of every team, as a fold over the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    next_seq: u64,
    last_at: Timestamp,
    pub(crate) teams: BTreeMap<TeamId, Team>,
    team_names: BTreeMap<Name, TeamId>,
    // Hash maps for what `authorize` looks up per grant and per link (a B-tree lookup among
    // 10,000 grants costs more than the rest of the check); listings sort by id instead.
    pub(crate) agents: HashMap<AgentId, Agent>,
    pub(crate) grants: HashMap<GrantId, Grant>,
    pub(crate) holdings: HashMap<AgentId, Vec<GrantId>>,
    shares: BTreeMap<ShareId, Share>,
    approvals: BTreeMap<ApprovalId, Approval>,
}

impl World {
    /// An empty world (before the first event).
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds a whole log.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a Envelope>) -> Result<Self, FoldError> {
        let mut w = World::new();
        for e in events {
            w.apply(e)?;
        }
        Ok(w)
    }

    /// The world as it stood after the event at position `seq` (folds the prefix `0..=seq`).
    pub fn at<'a>(
        events: impl IntoIterator<Item = &'a Envelope>,
        seq: u64,
    ) -> Result<Self, FoldError> {
        let mut w = World::new();
        for e in events.into_iter().take_while(|e| e.seq <= seq) {
            w.apply(e)?;
        }
        Ok(w)
    }

    /// The number of events folded (the position of the next one).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// When the last folded event was committed.
    pub fn last_at(&self) -> Timestamp {
        self.last_at
    }

    /// Every team, oldest first.
    pub fn teams(&self) -> impl Iterator<Item = &Team> {
        self.teams.values()
    }

    /// A team by id.
    pub fn team(&self, id: TeamId) -> Option<&Team> {
        self.teams.get(&id)
    }

    /// A team by name.
    pub fn team_named(&self, name: &Name) -> Option<&Team> {
        self.team_names.get(name).and_then(|id| self.teams.get(id))
    }

    /// The current version of a team's stream (0 for an unknown team).
    pub fn team_version(&self, id: TeamId) -> u64 {
        self.teams.get(&id).map_or(0, |t| t.version)
    }

    /// Every agent, oldest first (ids are time-ordered).
    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        let mut all: Vec<&Agent> = self.agents.values().collect();
        all.sort_unstable_by_key(|a| a.id);
        all.into_iter()
    }

    /// An agent by id.
    pub fn agent(&self, id: AgentId) -> Option<&Agent> {
        self.agents.get(&id)
    }

    /// The agent called `name` in `team`: the one not retired if there is one, else the most
    /// recently hired.
    pub fn agent_named(&self, team: TeamId, name: &Name) -> Option<&Agent> {
        let mut found: Option<&Agent> = None;
        for a in self
            .agents
            .values()
            .filter(|a| a.team == team && &a.name == name)
        {
            if !a.is_retired() {
                return Some(a);
            }
            if found.is_none_or(|f| f.id < a.id) {
                found = Some(a);
            }
        }
        found
    }

    /// Was `agent` hired by `ancestor`, directly or through a chain of hires?
    pub fn hired_below(&self, ancestor: AgentId, agent: AgentId) -> bool {
        let mut next = self.agents.get(&agent).and_then(|a| a.parent);
        // Parents are hired before their children, so the walk ends; the bound guards a
        // corrupted world anyway.
        for _ in 0..self.agents.len() {
            match next {
                Some(p) if p == ancestor => return true,
                Some(p) => next = self.agents.get(&p).and_then(|a| a.parent),
                None => return false,
            }
        }
        false
    }

    /// Every grant, oldest first (ids are time-ordered).
    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        let mut all: Vec<&Grant> = self.grants.values().collect();
        all.sort_unstable_by_key(|g| g.id);
        all.into_iter()
    }

    /// A grant by id.
    pub fn grant(&self, id: GrantId) -> Option<&Grant> {
        self.grants.get(&id)
    }

    /// The grants an agent holds (active or not), oldest first.
    pub fn grants_of(&self, agent: AgentId) -> impl Iterator<Item = &Grant> {
        self.holdings
            .get(&agent)
            .into_iter()
            .flatten()
            .filter_map(|g| self.grants.get(g))
    }

    /// Every share.
    pub fn shares(&self) -> impl Iterator<Item = &Share> {
        self.shares.values()
    }

    /// A share by id.
    pub fn share(&self, id: ShareId) -> Option<&Share> {
        self.shares.get(&id)
    }

    /// Every approval request.
    pub fn approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals.values()
    }

    /// An approval request by id.
    pub fn approval(&self, id: ApprovalId) -> Option<&Approval> {
        self.approvals.get(&id)
    }

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
