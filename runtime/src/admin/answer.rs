//! What operations answer: [`Item`]s, each a typed value. A row's own fields are what
//! `--json` prints for it (one object per line); what only people read (an address, a
//! description) travels beside it.

use std::path::PathBuf;

use roster_core::capability::{Action, Amount, Capability, Resource};
use roster_core::envelope::Envelope;
use roster_core::event::RuntimeKind;
use roster_core::gateway::answer::{GrantView, Performed, ShareView};
use roster_core::gateway::ErrorCode;
use roster_core::id::{AgentId, ApprovalId, GrantId, TeamId};
use roster_core::name::{ImageRef, Label, Name};
use roster_core::signed::{Coverage, PublicKey, SignedHead};
use roster_core::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Which of a command's streams raw text belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Results (standard output).
    Out,
    /// Notes and warnings (standard error).
    Err,
}

/// One piece of an operation's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "item", content = "value", rename_all = "snake_case")]
pub enum Item {
    /// An event the operation committed, and what it means.
    Committed {
        /// The event as recorded.
        envelope: Envelope,
        /// A sentence for people.
        text: String,
    },
    /// `hire`: the new agent.
    Hired {
        /// Its id.
        agent: AgentId,
        /// Its address (`team/name`).
        address: String,
    },
    /// `revoke`: how many grants derived from the revoked one stop working with it.
    Cascaded {
        /// How many.
        grants: u64,
    },
    /// `team list`: one team.
    Team(TeamRow),
    /// `agents`: one agent.
    Agent(AgentItem),
    /// `grants`: one grant, as the gateway's `grants` gives it.
    Grant(GrantView),
    /// `check`: the verdict.
    Check(CheckItem),
    /// `act`: carried out.
    Performed {
        /// The gateway's answer.
        answer: Performed,
        /// A sentence for people.
        text: String,
    },
    /// `act`: not carried out (or carried out without an answer).
    ActFailed {
        /// The gateway's error code.
        code: ErrorCode,
        /// A sentence for people.
        message: String,
        /// The approval a `pending` names.
        approval: Option<ApprovalId>,
    },
    /// `approvals`: one approval.
    Approval(ApprovalRow),
    /// `log`: one event.
    Event(EventLine),
    /// `replay`: the world after a position.
    Replayed(Replayed),
    /// `verify`: the verdict.
    Verified(Verified),
    /// `import`: what was imported.
    Imported {
        /// How many events.
        imported: u64,
        /// The hash of the last (`-` for none).
        head_hash: String,
        /// How far the export's signed heads (every one checked) cover it; `unsigned` is all
        /// of it for an export without heads.
        signed: Coverage,
        /// The data directory's own key, which signed the imported head once everything was
        /// checked (it vouches for nothing before this import).
        countersigned: Option<PublicKey>,
    },
    /// `head`: the log's signed head, for a witness to keep.
    Head(HeadItem),
    /// `init`: the data directory.
    Initialized(Initialized),
    /// `status`.
    Status(Status),
    /// `stop`, `start`, `purge`: done.
    Control {
        /// Whose container.
        agent: AgentId,
        /// What was done.
        done: Done,
    },
    /// `shares`: one share, as the gateway's `shares` gives it.
    Share(ShareView),
    /// Text for standard output as it is (`export`, `subscribe`).
    Text(String),
    /// A container's output (`logs`, `exec`).
    Output {
        /// Which stream.
        stream: Stream,
        /// The text.
        text: String,
    },
    /// A note for people (standard error).
    Note(String),
}

/// `team list`: one team. (The rows' fields are in alphabetical order, as `--json` has always
/// printed them.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRow {
    /// Its agents in service.
    pub agents: u64,
    /// When it was made.
    pub created_at: Timestamp,
    /// Its id.
    pub id: TeamId,
    /// Its name.
    pub name: Name,
    /// Its version (how many events it has).
    pub version: u64,
}

/// `agents`: one agent — its row, and what people read beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentItem {
    /// What `--json` prints.
    pub row: AgentRow,
    /// Its address.
    pub address: String,
    /// Who hired it, as people read it.
    pub by: String,
}

/// `agents --json`: one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRow {
    /// Its grants in force.
    pub active_grants: u64,
    /// Its container as the engine says (`up 5m`, `exited (0)`, `none`, `unknown`, …).
    pub container: String,
    /// When it was hired.
    pub hired_at: Timestamp,
    /// Its id.
    pub id: AgentId,
    /// Its image.
    pub image: ImageRef,
    /// Its name.
    pub name: Name,
    /// Who hired it (`None`: the operator).
    pub parent: Option<AgentId>,
    /// Its role.
    pub role: Label,
    /// When its container started, while it runs.
    pub running_since: Option<Timestamp>,
    /// Its container runtime.
    pub runtime: RuntimeKind,
    /// `hired`, `running`, `stopped (why)` or `retired`.
    pub status: String,
    /// Its team's name.
    pub team: String,
}

/// `check`: the verdict, and its chain as people read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckItem {
    /// What `--json` prints.
    pub row: CheckRow,
    /// The agent's address.
    pub address: String,
    /// Each grant of the chain: `grt_… capability (holder)`.
    pub links: Vec<String>,
}

/// `check --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRow {
    /// What.
    pub action: Action,
    /// Who.
    pub agent: AgentId,
    /// How much.
    pub amount: Amount,
    /// The grants that allow it, the agent's first.
    pub chain: Vec<GrantId>,
    /// `allow`, `needs-approval` or `deny`.
    pub decision: Verdict,
    /// Why not, when denied.
    pub reason: Option<String>,
    /// On what.
    pub resource: Resource,
}

/// What `authorize` answers, as `check` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Allowed now.
    Allow,
    /// Allowed once a human approves.
    NeedsApproval,
    /// Refused.
    Deny,
}

/// `approvals --json`: one approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRow {
    /// What.
    pub action: Action,
    /// The agent that asked.
    pub agent: AgentId,
    /// Its address.
    pub agent_name: String,
    /// How much.
    pub amount: Amount,
    /// The arguments of the call it binds (`None`: recorded without them, by a version 1
    /// `ApprovalRequested`; it binds a call without arguments).
    pub args: Option<std::collections::BTreeMap<roster_core::name::Name, String>>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// Its id.
    pub id: ApprovalId,
    /// The decider's note.
    pub note: Option<Label>,
    /// When it was asked for.
    pub requested_at: Timestamp,
    /// On what.
    pub resource: Resource,
    /// `waiting`, `approved`, `used` or `refused`.
    pub state: String,
}

/// `log`: one event, and its parts as people read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    /// The event as recorded (what `--json` prints).
    pub envelope: Envelope,
    /// Its team's name.
    pub team: String,
    /// Who did it.
    pub actor: String,
    /// What it means.
    pub text: String,
}

/// `replay`: the world as it stood after a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// The position.
    pub at: u64,
    /// When its event was recorded.
    pub when: Timestamp,
    /// The teams.
    pub teams: Vec<ReplayedTeam>,
    /// The agents.
    pub agents: Vec<ReplayedAgent>,
    /// The grants (of the teams shown).
    pub grants: Vec<ReplayedGrant>,
    /// Shares open then.
    pub open_shares: u64,
    /// Approvals waiting then.
    pub waiting: u64,
}

/// A team in a [`Replayed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayedTeam {
    /// Its id.
    pub id: TeamId,
    /// Its name.
    pub name: Name,
    /// Its version then.
    pub version: u64,
    /// Its agents in service then.
    pub agents: u64,
}

/// An agent in a [`Replayed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayedAgent {
    /// Its id.
    pub id: AgentId,
    /// Its address.
    pub name: String,
    /// Retired by then.
    pub retired: bool,
    /// Who hired it.
    pub parent: Option<AgentId>,
    /// What its grants in force then allowed.
    pub active: Vec<Capability>,
}

/// A grant in a [`Replayed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayedGrant {
    /// Its id.
    pub id: GrantId,
    /// Its holder.
    pub holder: AgentId,
    /// What it allowed.
    pub capability: Capability,
    /// In force then.
    pub active: bool,
    /// What was charged to it by then.
    pub spent: u64,
}

/// `verify`: the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verified {
    /// Every hash and link holds, and every signed head (kept, or a witness's) with it.
    Intact {
        /// How many events.
        events: u64,
        /// The last one's hash (`-` for none).
        head_hash: String,
        /// How far signed heads cover the log, for the trusted key.
        signed: Coverage,
        /// Where the trusted key came from.
        trust: Trust,
        /// How many of a witness's heads (`--head`) were checked against the log.
        witnessed: u64,
    },
    /// Something was altered or is unreadable (exit 4).
    Altered {
        /// What.
        error: String,
    },
    /// The chain holds by itself, but a signed head contradicts it or does not verify: the
    /// history was rewritten after that head was signed, or the head was forged (exit 9).
    Contradicted {
        /// How many events.
        events: u64,
        /// The last one's hash.
        head_hash: String,
        /// What.
        error: String,
    },
}

/// Where `verify` took the key it counts signed events for. Only a key from outside the data
/// directory checks anything against whoever can write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Given with `--key`.
    Pinned,
    /// The key of the witness's heads (`--head`).
    Witness,
    /// The data directory's own key, read from where roster.toml says: whoever can write the
    /// data directory can change both.
    DataDir,
    /// The signer of the latest head kept: nothing is trusted.
    Latest,
}

/// `head`: the log's signed head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadItem {
    /// The head (what `--json` prints, and what `verify --head` reads back).
    pub head: SignedHead,
    /// Signed by this command (`false`: the latest head kept, when no key was at hand).
    pub signed_now: bool,
    /// Events after it that no head covers.
    pub unsigned: u64,
}

/// `init`: the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Initialized {
    /// Where.
    pub data_dir: PathBuf,
    /// How many events its log holds.
    pub events: u64,
    /// Made now (not there before).
    pub created: bool,
    /// A daemon runs on it.
    pub serving: bool,
    /// The public half of its signing key: what a witness pins.
    pub public_key: Option<PublicKey>,
    /// The key file.
    pub key_file: Option<PathBuf>,
    /// The key was made now.
    pub key_made: bool,
}

/// `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The data directory.
    pub data_dir: PathBuf,
    /// How many events the log holds.
    pub events: u64,
    /// The daemon, when one runs.
    pub serving: Option<Serving>,
}

/// `status` of a running daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serving {
    /// The namespace of its containers.
    pub namespace: Name,
    /// Its bus.
    pub bus: String,
    /// Agents whose container runs.
    pub agents_running: u64,
    /// The outbox, with a NATS bus.
    pub outbox: Option<Outbox>,
}

/// The outbox's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outbox {
    /// Every event before this position is in the stream.
    pub next: u64,
    /// Connected to NATS now.
    pub connected: bool,
    /// The last failure, until publishing works again.
    pub last_error: Option<String>,
}

/// What `stop`, `start` and `purge` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Done {
    /// The container stopped.
    Stopped,
    /// The container started.
    Started,
    /// The container and home are gone.
    Purged,
}

impl Done {
    /// The word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Done::Stopped => "stopped",
            Done::Started => "started",
            Done::Purged => "purged",
        }
    }
}
