//! Commands and their decisions: `decide(world, command, actor, now, entropy)`.
//!
//! A decision is a pure function of the projected state: it returns the events to append (to one
//! team's stream, at the version the decision was made on), or a [`Rejected`] saying why not —
//! with the `AccessDenied` record to append when an agent asked.
//!
//! This file holds the command and decision types, the [`builtin`] actions and
//! [`decide`](fn@decide), which attaches the audit record to refusals; `decide.rs` decides each
//! command (people, grants, approvals, lifecycles, the runtime's `RecordDenial`); `share.rs` the
//! shares between teams (propose, accept, close) and the context that crosses them; `ctx.rs`
//! holds what a decision reads (the world, the actor, the instant) and the checks and refusals it
//! is made of.

use crate::actor::Actor;
use crate::authz::DenyReason;
use crate::capability::{Action, Amount, Capability, Resource};
use crate::envelope::Hash;
use crate::event::{AgentSpec, Event};
use crate::id::{AgentId, ApprovalId, Entropy, GrantId, ShareId, TeamId};
use crate::limits::DiskMib;
use crate::name::{CallKey, Label, Name};
use crate::time::Timestamp;
use crate::topic::{Topic, TopicPattern};
use crate::world::World;

mod ctx;
mod decide;
mod keyed;
mod share;

pub use keyed::{act_digest, delegate_digest};

use ctx::Ctx;
use decide::decide_unaudited;

/// The runtime's built-in actions, checked by [`decide`](fn@decide) itself.
pub mod builtin {
    /// Hire an agent into a team: `agent.hire@team:T`.
    pub const HIRE: &str = "agent.hire";
    /// Retire an agent of a team: `agent.retire@team:T`.
    pub const RETIRE: &str = "agent.retire";
    /// Pass an attenuated grant to an agent of a team: `grant.delegate@team:T`.
    pub const DELEGATE: &str = "grant.delegate";
    /// Revoke a grant (agents may revoke only what derives from their own grants).
    pub const REVOKE: &str = "grant.revoke";
    /// Decide an approval request (operators only).
    pub const DECIDE: &str = "approval.decide";
    /// Create a team (operators only; named in the audit record when an agent tries).
    pub const CREATE_TEAM: &str = "team.create";
    /// Recording a container's start or stop (the runtime's alone; refused to every agent).
    pub const LIFECYCLE: &str = "agent.lifecycle";
    /// Offer a team's context to another team: `share.propose@team:FROM` (agents of `FROM`).
    pub const SHARE_PROPOSE: &str = "share.propose";
    /// Accept a share offered to a team: `share.accept@team:TO` (agents of `TO`).
    pub const SHARE_ACCEPT: &str = "share.accept";
    /// Close a share from either side: `share.close@team:T` (agents of `T`, a side of it).
    pub const SHARE_CLOSE: &str = "share.close";
    /// Send a context message to another team through an open share. Needs no grant (the share
    /// is both teams' consent); named in the audit record of a refused send, on `team:TO`.
    pub const CONTEXT_SHARE: &str = "context.share";
    /// Recording a refusal on the runtime's behalf (the runtime's alone; named in the audit
    /// record when an agent tries).
    pub const RECORD_DENIAL: &str = "audit.record";

    /// Every built-in action above.
    pub const ALL: [&str; 12] = [
        HIRE,
        RETIRE,
        DELEGATE,
        REVOKE,
        DECIDE,
        CREATE_TEAM,
        LIFECYCLE,
        SHARE_PROPOSE,
        SHARE_ACCEPT,
        SHARE_CLOSE,
        CONTEXT_SHARE,
        RECORD_DENIAL,
    ];

    /// A built-in action (one of the constants above) as a typed [`Action`], for the runtime's
    /// own records of what an agent tried.
    pub fn action(name: &'static str) -> super::Action {
        #[allow(clippy::expect_used)] // a provable invariant: every built-in parses (tested)
        super::Action::parse(name).expect("a built-in action is a valid action name")
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn every_built_in_action_parses() {
            for name in super::ALL {
                assert_eq!(super::action(name).to_string(), name);
            }
        }
    }
}

/// The longest `reason` a [`Command::RecordDenial`] records, in bytes; longer ones are cut on a
/// character boundary and end with `…`.
pub const MAX_REASON: usize = 512;

/// The most approvals one agent may have waiting for an operator at once: another ask is
/// refused (and recorded) until one is decided.
pub const MAX_PENDING_APPROVALS: usize = 16;

/// Something an operator or an agent asks the runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Create a team.
    CreateTeam {
        /// Its unique name.
        name: Name,
    },
    /// Hire an agent into a team with the given capabilities. An operator's hire issues root
    /// grants; an agent's hire needs `agent.hire@team:T` and each capability covered by one of
    /// its active grants, which becomes the new grant's parent, and confines the new agent at
    /// least as tightly as itself (its spec and its home disk).
    Hire {
        /// The team.
        team: TeamId,
        /// The new agent's name.
        name: Name,
        /// Its role.
        role: Label,
        /// How its container is made.
        spec: AgentSpec,
        /// Its home disk quota, recorded by `AgentDiskLimited` right after `AgentHired`.
        disk: DiskMib,
        /// Its capabilities.
        grants: Vec<Capability>,
    },
    /// Retire an agent (operators, or agents with `agent.retire@team:T`).
    Retire {
        /// The agent.
        agent: AgentId,
    },
    /// Grant a capability. Without `from`, an operator issues a root grant and an agent derives
    /// from the first of its active grants that covers it; with `from`, that grant must cover it.
    Grant {
        /// Who receives it.
        to: AgentId,
        /// What it allows.
        capability: Capability,
        /// The grant to derive from.
        from: Option<GrantId>,
        /// The agent's idempotency key, if it gave one (see `keyed.rs`): the decision then
        /// begins with `CallKeyed`, and the key is refused while the agent holds it.
        key: Option<CallKey>,
    },
    /// Revoke a grant and, by cascade, everything derived from it.
    Revoke {
        /// The grant.
        grant: GrantId,
    },
    /// An agent uses a capability. `approval` names a granted approval to consume.
    Act {
        /// What it does.
        action: Action,
        /// On what.
        resource: Resource,
        /// How much it spends.
        amount: Amount,
        /// The arguments for the tool provider: an approval binds them.
        args: std::collections::BTreeMap<crate::name::Name, String>,
        /// The approval it uses, after a `NeedsApproval`.
        approval: Option<ApprovalId>,
        /// The agent's idempotency key, if it gave one (see `keyed.rs`): recorded by the
        /// decision that performs the call, not by one that asks for an approval.
        key: Option<CallKey>,
    },
    /// An operator decides an approval request.
    DecideApproval {
        /// The request.
        approval: ApprovalId,
        /// Yes or no.
        approved: bool,
        /// Why.
        note: Option<Label>,
    },
    /// The runtime (or an operator stopping an agent) records what happened to an agent's
    /// container. Agents never record their own lifecycle; a retired agent has none.
    Lifecycle {
        /// The agent.
        agent: AgentId,
        /// What happened.
        change: Lifecycle,
    },
    /// Offer `from`'s context on topics matching `topics` to team `to` (`ShareProposed`, in
    /// `from`'s stream). Operators, or an agent of `from` with `share.propose@team:FROM`.
    ProposeShare {
        /// The exporting team.
        from: TeamId,
        /// The importing team.
        to: TeamId,
        /// Which of `from`'s topics would flow.
        topics: TopicPattern,
    },
    /// Accept a proposed share (`ShareAccepted`, in the importing team's stream). Operators, or
    /// an agent of the importing team with `share.accept@team:TO`.
    AcceptShare {
        /// The share.
        share: ShareId,
    },
    /// Close a share, proposed or open (`ShareClosed`, in the closer's team; an operator's close
    /// goes to the exporting team). Operators, or an agent of either side with
    /// `share.close@team:ITS_TEAM`.
    CloseShare {
        /// The share.
        share: ShareId,
    },
    /// An agent sends a context message to another team (`ContextShared`, the audit record of
    /// the crossing, in the sender's team). Allowed by the first open share from the sender's
    /// team to `to` whose pattern matches `topic`; no grant is needed, the share is both teams'
    /// consent. Only agents send.
    ShareContext {
        /// The importing team.
        to: TeamId,
        /// The topic, in the sender's team.
        topic: Topic,
        /// BLAKE3 digest of the message.
        digest: Hash,
        /// The message's size in bytes.
        size: u64,
    },
    /// The runtime records a refusal it made itself (a message arriving after its share closed,
    /// a tool provider's refusal) as an `AccessDenied` in `agent`'s team. The runtime's alone.
    RecordDenial {
        /// Who was refused.
        agent: AgentId,
        /// What it tried.
        action: Action,
        /// On what.
        resource: Resource,
        /// Why, for people (cut to [`MAX_REASON`] bytes).
        reason: String,
    },
}

/// A change of an agent's container, as the runtime saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// Its container started (the engine's container id).
    Started(String),
    /// Its container stopped, for this reason.
    Stopped(crate::event::StopReason),
}

/// The events a command produces, for one team's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The team whose stream they go to.
    pub team: TeamId,
    /// The team's version the decision was made on (optimistic concurrency).
    pub expected_version: u64,
    /// The events, in order.
    pub events: Vec<Event>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Something named does not exist.
    #[error("{what} {id} does not exist")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its id or name.
        id: String,
    },
    /// A name is already used.
    #[error("{what} `{name}` is already taken")]
    NameTaken {
        /// What kind of name.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The agent is retired.
    #[error("agent {0} is retired")]
    Retired(AgentId),
    /// Only an operator may do this.
    #[error("only an operator may {0}")]
    OperatorOnly(&'static str),
    /// Only the runtime may do this (a container lifecycle: an operator too), never an agent.
    #[error("only the runtime may {0}")]
    RuntimeOnly(&'static str),
    /// The actor's grants do not allow it.
    #[error("access denied: {0}")]
    Denied(DenyReason),
    /// A requested capability is not covered by any of the actor's active grants.
    #[error("cannot grant `{capability}`: {why}")]
    NotCovered {
        /// The capability asked for.
        capability: Capability,
        /// Why no grant covers it.
        why: String,
    },
    /// The command needs a human's approval, which this command cannot wait for.
    #[error("{0} needs a human's approval for each use; ask an operator to do it instead")]
    NeedsApproval(&'static str),
    /// The grant is already revoked.
    #[error("grant {0} is already revoked")]
    AlreadyRevoked(GrantId),
    /// An approval is not in a state that allows this.
    #[error("approval {id}: {why}")]
    Approval {
        /// The approval.
        id: ApprovalId,
        /// What is wrong.
        why: &'static str,
    },
    /// An agent may revoke only grants derived from its own.
    #[error("grant {0} does not derive from any grant of the asking agent")]
    NotYours(GrantId),
    /// An agent may retire only agents it hired, directly or through its hires.
    #[error("agent {agent} was not hired by the asking agent or by anyone it hired")]
    NotBelow {
        /// The agent it tried to retire.
        agent: AgentId,
    },
    /// Only an agent may do this (operators and the runtime never send as a team).
    #[error("only an agent may {0}")]
    AgentOnly(&'static str),
    /// An agent acts for a team only when it is one of its agents.
    #[error("agent {agent} is not in team {team}; only that team's agents may {what}")]
    NotInTeam {
        /// The asking agent.
        agent: AgentId,
        /// The team it tried to act for.
        team: Name,
        /// What it tried.
        what: &'static str,
    },
    /// An agent may hire only teammates confined at least as tightly as itself (its spec and
    /// its home disk).
    #[error("cannot hire a teammate less confined than its hirer: {0}")]
    LooserSpec(String),
    /// The agent used this call key already (at event `seq`): a key names one call, carried out
    /// once. `same` when it was for this very call (its outcome stands: the runtime answers a
    /// repeat with it); otherwise the agent reused a key for another call.
    #[error("{}", key_reused(key, *seq, *same))]
    KeyReused {
        /// The key.
        key: CallKey,
        /// The position of its `CallKeyed` event.
        seq: u64,
        /// Whether it keyed this same call.
        same: bool,
    },
    /// A share goes from one team to another, never to the same team.
    #[error("team {0} is on both sides: a share goes from one team to another (inside a team, agents share freely)")]
    SameTeam(Name),
    /// A share is not in a state, or not between the teams, that allows this.
    #[error("share {id}: {why}")]
    Share {
        /// The share.
        id: ShareId,
        /// What is wrong.
        why: &'static str,
    },
    /// The agent has as many approvals waiting for an operator as it may.
    #[error(
        "{0} approvals of this agent wait for an operator already; ask again once one is decided"
    )]
    TooManyPending(usize),
    /// No open share lets a context message cross.
    #[error("no open share from team {from} to team {to} covers topic `{topic}`")]
    NoOpenShare {
        /// The sender's team.
        from: Name,
        /// The team it was sent to.
        to: Name,
        /// The topic.
        topic: Topic,
    },
}

fn key_reused(key: &CallKey, seq: u64, same: bool) -> String {
    if same {
        format!("call key `{key}` already carried out this call (event {seq}); its outcome stands")
    } else {
        format!(
            "call key `{key}` was used for another call (event {seq}); a key names one call: \
             choose a new key for a new call"
        )
    }
}

/// A refusal, with the audit record to append when the asker was an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rejection}")]
pub struct Rejected {
    /// Why.
    pub rejection: Box<Rejection>,
    /// The `AccessDenied` event to record, in the asking agent's own team. Present for every
    /// refusal of an agent the world knows — whatever the cause, since an agent probing for
    /// ids, replaying an approval or acting after retirement is exactly what the log must show —
    /// and absent for operators, the runtime, and agent ids the world does not know (there is
    /// no team to record them in).
    pub audit: Option<Box<Decision>>,
}

/// What a command tries, for the audit record of its refusal: the built-in action it needs (or,
/// for `Act`, the action it asks for) on the resource it names. Names that do not resolve are
/// recorded by id (`team:team_…`, `agent:agt_…`, `share:shr_…`).
fn attempted(world: &World, command: &Command, actor: &Actor) -> Option<(Action, Resource)> {
    let team_of = |agent: AgentId| {
        world
            .agent(agent)
            .and_then(|a| world.team(a.team))
            .map_or_else(
                || Resource::entity("agent", agent),
                |t| Resource::team(&t.name),
            )
    };
    let team = |id: TeamId| {
        world
            .team(id)
            .map_or_else(|| Resource::entity("team", id), |t| Resource::team(&t.name))
    };
    let (action, resource) = match command {
        Command::CreateTeam { name } => (builtin::CREATE_TEAM, Resource::team(name)),
        Command::Hire { team: t, .. } => (builtin::HIRE, team(*t)),
        Command::Retire { agent } => (builtin::RETIRE, team_of(*agent)),
        Command::Grant { to, .. } => (builtin::DELEGATE, team_of(*to)),
        Command::Revoke { grant } => (builtin::REVOKE, Resource::entity("grant", grant)),
        Command::Act {
            action, resource, ..
        } => return Some((action.clone(), resource.clone())),
        Command::DecideApproval { approval, .. } => {
            (builtin::DECIDE, Resource::entity("approval", approval))
        }
        Command::Lifecycle { agent, .. } => (builtin::LIFECYCLE, team_of(*agent)),
        Command::ProposeShare { from, .. } => (builtin::SHARE_PROPOSE, team(*from)),
        Command::AcceptShare { share } => (
            builtin::SHARE_ACCEPT,
            world
                .share(*share)
                .map_or_else(|| Resource::entity("share", share), |s| team(s.to)),
        ),
        // An agent closes for its own team; the resource its grant must match names it.
        Command::CloseShare { share } => match actor {
            Actor::Agent(a) => (builtin::SHARE_CLOSE, team_of(*a)),
            _ => (builtin::SHARE_CLOSE, Resource::entity("share", share)),
        },
        Command::ShareContext { to, .. } => (builtin::CONTEXT_SHARE, team(*to)),
        Command::RecordDenial { agent, .. } => (builtin::RECORD_DENIAL, team_of(*agent)),
    };
    Action::parse(action).ok().map(|a| (a, resource))
}

/// Decides `command` asked by `actor` at `now`. Pure: the same inputs give the same output.
///
/// Every refusal of a known agent carries its `AccessDenied` record ([`Rejected::audit`]).
pub fn decide(
    world: &World,
    command: Command,
    actor: &Actor,
    now: Timestamp,
    entropy: &mut dyn Entropy,
) -> Result<Decision, Rejected> {
    let tried = attempted(world, &command, actor);
    let keyed = command
        .call_key()
        .map(|(key, digest)| (key.clone(), digest));
    let decided = match keyed {
        None => decide_unaudited(world, command, actor, now, entropy),
        Some((key, digest)) => keyed::check(world, actor, &key, digest).and_then(|agent| {
            decide_unaudited(world, command, actor, now, entropy)
                .map(|d| keyed::record(d, agent, key, digest))
        }),
    };
    decided.map_err(|mut r| {
        if r.audit.is_none() {
            let cx = Ctx { world, actor, now };
            r.audit = tried.and_then(|(action, resource)| cx.audit(&r.rejection, action, resource));
        }
        r
    })
}
