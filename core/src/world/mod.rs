//! The projection: the state of every team as a pure fold over the log.
//!
//! [`World::apply`] is the only way state changes, and it changes nothing when it refuses an
//! event (every check runs before any mutation). Folding the same log twice gives equal worlds.
//!
//! This file holds [`World`] itself, its folds ([`World::fold`], [`World::at`]) and its read
//! accessors; `entities.rs` the entities it holds ([`Team`], [`Agent`], [`Grant`], [`Share`],
//! [`Approval`], [`Keyed`]); `apply.rs` [`World::apply`] (check, then mutate) and [`FoldError`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::envelope::Envelope;
use crate::id::{AgentId, ApprovalId, GrantId, ShareId, TeamId};
use crate::name::{CallKey, Name};
use crate::time::Timestamp;
use crate::topic::Topic;

mod apply;
mod entities;

pub use apply::FoldError;
pub use entities::{
    Agent, AgentStatus, Approval, ApprovalDecision, Grant, Keyed, Share, ShareState, Team,
};

/// How many call keys the world holds per agent: its last ones, by log order. An agent that
/// retries a call after more than this many keyed calls since gets it carried out again.
pub const MAX_KEYS: usize = 1024;

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
    /// The approvals waiting for a decision, by the agent that asked: what the cap on an
    /// agent's waiting requests and `roster deny` look at, without walking every approval
    /// ever asked.
    waiting: HashMap<AgentId, BTreeSet<ApprovalId>>,
    keys: HashMap<AgentId, KeyRing>,
}

/// One agent's call keys: what each keyed, and the order they came in (oldest first), to
/// forget the oldest past [`MAX_KEYS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyRing {
    held: HashMap<CallKey, Keyed>,
    order: VecDeque<CallKey>,
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

    /// Every share, oldest first (ids are time-ordered).
    pub fn shares(&self) -> impl Iterator<Item = &Share> {
        self.shares.values()
    }

    /// A share by id.
    pub fn share(&self, id: ShareId) -> Option<&Share> {
        self.shares.get(&id)
    }

    /// The shares `team` is a side of (exporting or importing), oldest first.
    pub fn shares_of(&self, team: TeamId) -> impl Iterator<Item = &Share> {
        self.shares
            .values()
            .filter(move |s| s.from == team || s.to == team)
    }

    /// The open share a message from `from` to `to` on `topic` leaves through: the first, in
    /// [`World::shares`] order, whose pattern matches `topic`.
    pub fn open_share_for(&self, from: TeamId, to: TeamId, topic: &Topic) -> Option<&Share> {
        self.shares.values().find(|s| {
            s.state == ShareState::Open && s.from == from && s.to == to && s.topics.matches(topic)
        })
    }

    /// The check where a message arrives: may a message from `from` to `to` on `topic`, sent
    /// through `share`, still cross now? Pure; the sentence says why not, for the runtime's
    /// record of the refusal.
    pub fn crossing_allowed(
        &self,
        share: ShareId,
        from: TeamId,
        to: TeamId,
        topic: &Topic,
    ) -> Result<(), String> {
        let name = |t: TeamId| {
            self.team(t)
                .map_or_else(|| t.to_string(), |t| format!("team {}", t.name))
        };
        let Some(s) = self.shares.get(&share) else {
            return Err(format!("share {share} does not exist"));
        };
        match s.state {
            ShareState::Open => {}
            ShareState::Proposed => return Err(format!("share {share} was never accepted")),
            ShareState::Closed => return Err(format!("share {share} is closed")),
        }
        if s.from != from || s.to != to {
            return Err(format!(
                "share {share} goes from {} to {}, not from {} to {}",
                name(s.from),
                name(s.to),
                name(from),
                name(to)
            ));
        }
        if !s.topics.matches(topic) {
            return Err(format!(
                "share {share} covers topics `{}`, not `{topic}`",
                s.topics
            ));
        }
        Ok(())
    }

    /// Every approval request.
    pub fn approvals(&self) -> impl Iterator<Item = &Approval> {
        self.approvals.values()
    }

    /// The approval requests waiting for a decision, `agent`'s alone if given, oldest id first
    /// for each agent.
    pub fn waiting_approvals(&self, agent: Option<AgentId>) -> Vec<&Approval> {
        let ids: Box<dyn Iterator<Item = &ApprovalId>> = match agent {
            Some(a) => Box::new(self.waiting.get(&a).into_iter().flatten()),
            None => Box::new(self.waiting.values().flatten()),
        };
        ids.filter_map(|id| self.approvals.get(id)).collect()
    }

    /// How many approval requests of `agent` wait for a decision.
    pub fn waiting_count(&self, agent: AgentId) -> usize {
        self.waiting.get(&agent).map_or(0, BTreeSet::len)
    }

    /// An approval request by id.
    pub fn approval(&self, id: ApprovalId) -> Option<&Approval> {
        self.approvals.get(&id)
    }

    /// The call `agent` made with `key`, while the world holds it (its last [`MAX_KEYS`] keys,
    /// until it retires).
    pub fn keyed(&self, agent: AgentId, key: &CallKey) -> Option<&Keyed> {
        self.keys.get(&agent).and_then(|ring| ring.held.get(key))
    }

    /// How many call keys the world holds for `agent`.
    pub fn keys_held(&self, agent: AgentId) -> usize {
        self.keys.get(&agent).map_or(0, |ring| ring.held.len())
    }
}
