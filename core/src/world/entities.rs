//! The entities of the [`World`](super::World) as they stand after the fold: teams, agents,
//! grants, shares and approval requests. Plain data; only [`World::apply`](super::World::apply)
//! makes or changes them.

use crate::actor::Actor;
use crate::capability::{Action, Amount, Capability, Resource};
use crate::event::{AgentSpec, StopReason};
use crate::id::{AgentId, ApprovalId, GrantId, ShareId, TeamId};
use crate::limits::DiskMib;
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
    /// Its home disk quota in MiB as its `AgentDiskLimited` recorded it; `None` when it has
    /// none (hired before quotas were recorded). [`Agent::disk`] is the quota it has.
    pub disk_mib: Option<u32>,
}

impl Agent {
    /// Its home disk quota: the one recorded, brought within [`DiskMib`]'s bounds should a
    /// log from elsewhere hold one outside them, or [`DiskMib::DEFAULT`] when none was.
    pub fn disk(&self) -> DiskMib {
        self.disk_mib
            .map_or_else(DiskMib::default, DiskMib::clamped)
    }

    /// Retired agents hold nothing and can do nothing.
    pub fn is_retired(&self) -> bool {
        self.status == AgentStatus::Retired
    }

    /// Whether its container should be running: from its hire until it is retired, unless it
    /// was stopped on request or ran past its timeout (both wait for `roster start`). An exit,
    /// a crash or an OOM kill leaves it wanted: the runtime restarts it, with backoff.
    pub fn wants_running(&self) -> bool {
        match &self.status {
            AgentStatus::Hired | AgentStatus::Running { .. } => true,
            AgentStatus::Stopped { reason } => {
                !matches!(reason, StopReason::Requested | StopReason::TimedOut)
            }
            AgentStatus::Retired => false,
        }
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
    /// The arguments of the call it binds; `None` when it was recorded without them (version
    /// 1's `ApprovalRequested`): then it binds a call without arguments.
    pub args: Option<std::collections::BTreeMap<Name, String>>,
    /// When it was asked.
    pub requested_at: Timestamp,
    /// The decision, once made.
    pub decision: Option<ApprovalDecision>,
    /// Whether the one use it allows has happened.
    pub used: bool,
}

impl Approval {
    /// Whether it binds a call with exactly these arguments.
    pub fn binds_args(&self, args: &std::collections::BTreeMap<Name, String>) -> bool {
        match &self.args {
            Some(bound) => bound == args,
            None => args.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    fn approval(args: Option<BTreeMap<Name, String>>) -> Approval {
        Approval {
            id: ApprovalId::from_uuid(Default::default()),
            agent: AgentId::from_uuid(Default::default()),
            action: Action::parse("email.send").unwrap(),
            resource: Resource::parse("mailbox:alice").unwrap(),
            amount: crate::capability::ONE,
            chain: vec![],
            args,
            requested_at: Timestamp::from_millis(0),
            decision: None,
            used: false,
        }
    }

    #[test]
    fn an_approval_binds_exactly_its_arguments_and_an_old_one_none() {
        let body = |b: &str| BTreeMap::from([(Name::parse("body").unwrap(), b.to_string())]);
        let bound = approval(Some(body("lunch at noon?")));
        assert!(bound.binds_args(&body("lunch at noon?")));
        assert!(!bound.binds_args(&body("Please wire 50000 USD")));
        assert!(!bound.binds_args(&BTreeMap::new()));
        // Recorded before approvals bound arguments: good for a call without any, only.
        let old = approval(None);
        assert!(old.binds_args(&BTreeMap::new()));
        assert!(!old.binds_args(&body("lunch at noon?")));
    }
}

/// A keyed call, as the world remembers it ([`World::keyed`](super::World::keyed)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyed {
    /// The digest of what the call asked.
    pub digest: crate::envelope::Hash,
    /// The position of its `CallKeyed` event; its outcome is the `outcome` events after it.
    pub seq: u64,
    /// How many events after `seq` are its outcome.
    pub outcome: u32,
}
