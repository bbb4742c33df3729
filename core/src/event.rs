//! Events, version 4: everything that can happen to a team.
//!
//! These types are an on-disk and on-wire format. The log stores them with postcard, which
//! encodes an enum variant by its index: **append new variants and fields only at the end of a new
//! schema version, never reorder or remove** — `store/tests/golden.rs` decodes a log written by
//! version 1 and fails if this file changes incompatibly. Version 2 added
//! [`Event::CallApprovalRequested`] and [`StopReason::EngineRestarted`]; version 3 added
//! [`Event::CallKeyed`]; version 4 added [`Event::AgentDiskLimited`]. A log may hold events of
//! every version, each envelope saying which wrote it.
//!
//! Every event belongs to the team named in its envelope: `AgentHired` hires into that team,
//! `GrantIssued` is recorded in the holder's team, `ShareProposed` in the exporting team and
//! `ShareAccepted` in the importing one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capability::{Action, Amount, Capability, Resource};
use crate::envelope::Hash;
use crate::id::{AgentId, ApprovalId, GrantId, ShareId, TeamId};
use crate::name::{CallKey, ImageRef, Label, Name};
use crate::topic::{Topic, TopicPattern};

/// The schema version written into every new envelope; envelopes of every version from 1 up to
/// it are read.
pub const SCHEMA_VERSION: u16 = 4;

/// Which container runtime isolates an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// The engine's default OCI runtime.
    #[default]
    Runc,
    /// gVisor, a user-space kernel as a second boundary.
    Runsc,
}

impl RuntimeKind {
    /// Its name, as the engine and the JSON spell it (`runc`, `runsc`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Runsc => "runsc",
        }
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What network an agent's container gets. Only `None` exists: agents reach the world through
/// the runtime's gateway, never directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPolicy {
    /// No network interface but loopback.
    #[default]
    None,
}

/// Resource limits of one agent's container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resources {
    /// CPU quota in thousandths of a core.
    pub cpu_millis: u32,
    /// Memory limit (and memory+swap) in MiB.
    pub memory_mib: u32,
    /// Maximum number of processes.
    pub pids: u32,
    /// Size of the tmpfs at /tmp in MiB.
    pub tmpfs_mib: u32,
    /// Wall-clock limit of one run in seconds, if any.
    pub timeout_secs: Option<u32>,
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu_millis: 1000,
            memory_mib: 256,
            pids: 128,
            tmpfs_mib: 64,
            timeout_secs: None,
        }
    }
}

/// How an agent's container is made.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AgentSpec {
    /// The image its process runs from.
    pub image: ImageRef,
    /// The container runtime.
    pub runtime: RuntimeKind,
    /// Its limits.
    pub resources: Resources,
    /// Its network.
    pub network: NetworkPolicy,
}

impl AgentSpec {
    /// The spec of an agent hired without one: the base image the runtime builds itself.
    pub fn base() -> Self {
        Self {
            image: ImageRef::base(),
            runtime: RuntimeKind::Runc,
            resources: Resources::default(),
            network: NetworkPolicy::None,
        }
    }

    /// Why a container made from `self` would be less confined than one made from `hirer`
    /// (a weaker runtime, a larger limit, a longer or no timeout), or `None` when it is not.
    /// An agent may hire only teammates confined at least as tightly as itself; the image is
    /// not a confinement (every image runs under the same hardening).
    pub fn looser_than(&self, hirer: &AgentSpec) -> Option<String> {
        if self.runtime == RuntimeKind::Runc && hirer.runtime == RuntimeKind::Runsc {
            return Some("it would run under runc, its hirer under gVisor (runsc)".into());
        }
        let (mine, theirs) = (&self.resources, &hirer.resources);
        for (what, unit, mine, theirs) in [
            (
                "cpu",
                "thousandths of a core",
                mine.cpu_millis,
                theirs.cpu_millis,
            ),
            ("memory", "MiB", mine.memory_mib, theirs.memory_mib),
            ("processes", "", mine.pids, theirs.pids),
            ("/tmp", "MiB", mine.tmpfs_mib, theirs.tmpfs_mib),
        ] {
            if mine > theirs {
                let unit = if unit.is_empty() {
                    String::new()
                } else {
                    format!(" {unit}")
                };
                return Some(format!(
                    "its {what} limit {mine}{unit} is above its hirer's {theirs}{unit}"
                ));
            }
        }
        match (mine.timeout_secs, theirs.timeout_secs) {
            (None, Some(t)) => Some(format!(
                "it would run without a timeout, its hirer within {t} s"
            )),
            (Some(m), Some(t)) if m > t => {
                Some(format!("its timeout {m} s is above its hirer's {t} s"))
            }
            _ => None,
        }
    }
}

/// Why an agent's container stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Someone asked it to stop.
    Requested,
    /// Its process exited on its own with this code.
    Exited {
        /// Exit code.
        code: i64,
    },
    /// It died abnormally (signal, engine error), with this code.
    Crashed {
        /// Exit code.
        code: i64,
    },
    /// The kernel killed it for exceeding its memory limit.
    OomKilled,
    /// It ran past its timeout.
    TimedOut,
    /// Its container disappeared while the runtime was not watching (removed from outside, or
    /// lost with the machine); the runtime noticed at its next reconcile.
    Vanished,
    /// The container engine stopped it while shutting down (it restarted, or went away): not
    /// the agent's doing, so it is started again once the engine is back, without a backoff.
    EngineRestarted,
}

/// Something that happened to a team. New variants go at the end (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// A team was created; the envelope's team is its id.
    TeamCreated {
        /// Its unique name.
        name: Name,
    },
    /// An agent was hired into the envelope's team.
    AgentHired {
        /// Its new identity.
        agent: AgentId,
        /// Its name, unique within the team.
        name: Name,
        /// What it is for, for people.
        role: Label,
        /// The agent that hired it; `None` when an operator did.
        parent: Option<AgentId>,
        /// How its container is made.
        spec: AgentSpec,
    },
    /// An agent's container started.
    AgentStarted {
        /// The agent.
        agent: AgentId,
        /// The engine's container id.
        container: String,
    },
    /// An agent's container stopped.
    AgentStopped {
        /// The agent.
        agent: AgentId,
        /// Why.
        reason: StopReason,
    },
    /// An agent was retired: its grants and every grant derived from them are void.
    AgentRetired {
        /// The agent.
        agent: AgentId,
    },
    /// A capability was granted to an agent.
    GrantIssued {
        /// The new grant.
        grant: GrantId,
        /// Who holds it.
        holder: AgentId,
        /// What it allows.
        capability: Capability,
        /// The grant it was derived from; `None` for a root grant issued by an operator.
        parent: Option<GrantId>,
    },
    /// A grant was revoked: it and every grant derived from it are void.
    GrantRevoked {
        /// The grant.
        grant: GrantId,
    },
    /// The envelope's team offers context on matching topics to another team.
    ShareProposed {
        /// The share.
        share: ShareId,
        /// The importing team.
        to: TeamId,
        /// Which topics of the exporting team flow.
        topics: TopicPattern,
    },
    /// The importing team (the envelope's) accepted a share.
    ShareAccepted {
        /// The share.
        share: ShareId,
    },
    /// A share was closed by either side; nothing more flows through it.
    ShareClosed {
        /// The share.
        share: ShareId,
    },
    /// Audit record of one message that crossed a team boundary (not its payload).
    ContextShared {
        /// The share it crossed.
        share: ShareId,
        /// Who sent it.
        sender: AgentId,
        /// On which topic of the exporting team.
        topic: Topic,
        /// BLAKE3 digest of the payload.
        digest: Hash,
        /// Payload size in bytes.
        size: u64,
    },
    /// An agent asked for something and was refused.
    AccessDenied {
        /// Who asked.
        agent: AgentId,
        /// What it tried.
        action: Action,
        /// On what.
        resource: Resource,
        /// Why it was refused, for people.
        reason: String,
    },
    /// An action needs a human's approval before it may happen (version 1: without its
    /// arguments, so such an approval is good only for a call without any; version 2 records
    /// [`Event::CallApprovalRequested`] instead).
    ApprovalRequested {
        /// The request.
        approval: ApprovalId,
        /// Who asks.
        agent: AgentId,
        /// What for.
        action: Action,
        /// On what.
        resource: Resource,
        /// How much it would spend.
        amount: Amount,
        /// The grants that would authorize it, holder's first.
        chain: Vec<GrantId>,
    },
    /// A human decided an approval request.
    ApprovalDecided {
        /// The request.
        approval: ApprovalId,
        /// Yes or no.
        approved: bool,
        /// Why, if they said.
        note: Option<Label>,
    },
    /// An agent used a capability; the amount is charged to every grant of the chain.
    ActionPerformed {
        /// Who acted.
        agent: AgentId,
        /// What it did.
        action: Action,
        /// On what.
        resource: Resource,
        /// How much it spent.
        amount: Amount,
        /// The grants that authorized it, holder's first, root last.
        chain: Vec<GrantId>,
        /// The approval it consumed, if one was needed.
        approval: Option<ApprovalId>,
    },
    /// A call needs a human's approval before it may happen. The approval binds the exact
    /// call: this agent, action, resource, amount and these arguments; any other is refused.
    CallApprovalRequested {
        /// The request.
        approval: ApprovalId,
        /// Who asks.
        agent: AgentId,
        /// What for.
        action: Action,
        /// On what.
        resource: Resource,
        /// How much it would spend.
        amount: Amount,
        /// The grants that would authorize it, holder's first.
        chain: Vec<GrantId>,
        /// The arguments for the tool provider, exactly as asked.
        args: BTreeMap<Name, String>,
    },
    /// An agent's keyed call was carried out: the first event of the decision that did it, the
    /// `outcome` events after it being the call's outcome (an `act`'s `ActionPerformed`; a
    /// `delegate`'s `GrantIssued` and the use of `grant.delegate` before it). Asked again with
    /// the same key, the runtime answers with that outcome instead of deciding anew; with
    /// another call, it refuses. Version 3.
    CallKeyed {
        /// Who called.
        agent: AgentId,
        /// The key it chose.
        key: CallKey,
        /// BLAKE3 digest of what the call asked, canonically encoded
        /// ([`Command::call_key`](crate::command::Command::call_key)): an `act`'s action,
        /// resource, amount and arguments; a `delegate`'s receiver, capability and parent.
        digest: Hash,
        /// How many events after this one, in the same decision, are the call's outcome.
        outcome: u32,
    },
    /// An agent's home disk quota, in MiB: the size of the filesystem its home lives in.
    /// Recorded with its hire (right after `AgentHired`); an agent without one has
    /// [`DiskMib::DEFAULT`](crate::limits::DiskMib::DEFAULT). Version 4.
    AgentDiskLimited {
        /// The agent.
        agent: AgentId,
        /// Its quota in MiB, within [`DiskMib`](crate::limits::DiskMib)'s bounds.
        disk_mib: u32,
    },
}

impl Event {
    /// Every kind [`Event::kind`] returns, in declaration order.
    pub const KINDS: &'static [&'static str] = &[
        "TeamCreated",
        "AgentHired",
        "AgentStarted",
        "AgentStopped",
        "AgentRetired",
        "GrantIssued",
        "GrantRevoked",
        "ShareProposed",
        "ShareAccepted",
        "ShareClosed",
        "ContextShared",
        "AccessDenied",
        "ApprovalRequested",
        "ApprovalDecided",
        "ActionPerformed",
        "CallApprovalRequested",
        "CallKeyed",
        "AgentDiskLimited",
    ];

    /// The variant's name, as used in NATS subjects and `--type` filters.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::TeamCreated { .. } => "TeamCreated",
            Event::AgentHired { .. } => "AgentHired",
            Event::AgentStarted { .. } => "AgentStarted",
            Event::AgentStopped { .. } => "AgentStopped",
            Event::AgentRetired { .. } => "AgentRetired",
            Event::GrantIssued { .. } => "GrantIssued",
            Event::GrantRevoked { .. } => "GrantRevoked",
            Event::ShareProposed { .. } => "ShareProposed",
            Event::ShareAccepted { .. } => "ShareAccepted",
            Event::ShareClosed { .. } => "ShareClosed",
            Event::ContextShared { .. } => "ContextShared",
            Event::AccessDenied { .. } => "AccessDenied",
            Event::ApprovalRequested { .. } => "ApprovalRequested",
            Event::ApprovalDecided { .. } => "ApprovalDecided",
            Event::ActionPerformed { .. } => "ActionPerformed",
            Event::CallApprovalRequested { .. } => "CallApprovalRequested",
            Event::CallKeyed { .. } => "CallKeyed",
            Event::AgentDiskLimited { .. } => "AgentDiskLimited",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_image_is_valid() {
        assert!(ImageRef::parse(crate::BASE_IMAGE).is_ok());
        assert_eq!(AgentSpec::base().image.as_str(), crate::BASE_IMAGE);
    }
}
