//! What the gateway answers: the `ok` value of each method, typed, beside the [`Call`] that asks
//! for it.
//!
//! The runtime builds these from its world and log and the gateway encodes them, so the shape an
//! agent reads is a type that `docs/gateway.md` is checked against (`core/tests/gateway_doc.rs`),
//! not whatever a `json!` happened to say. A client that knows what it asked reads an answer
//! back with [`Answer::decode`].
//!
//! | method | answer |
//! |---|---|
//! | `whoami` | [`Whoami`] |
//! | `grants` | [`Grants`] of [`GrantView`] |
//! | `history` | [`History`] |
//! | `shares` | [`Shares`] of [`ShareView`] |
//! | `hire`, `retire`, `delegate`, `decide_approval`, `share_*` | [`Committed`] |
//! | `act` | [`Performed`] |
//! | `publish` | [`Published`] of [`Delivery`] |
//! | `subscribe` | [`Subscribed`] |
//!
//! # Wire shape
//! - The gateway writes every answer through a `serde_json::Value`, whose keys are sorted, so
//!   its lines have their keys in alphabetical order at every depth. The fields below are
//!   declared in that order too, so that `--json` output that serializes a struct directly
//!   (`roster grants`, `roster shares`, `roster act`) writes the same bytes.
//! - An `Option` is written as `null`, never left out — except [`Committed::agent`], which only
//!   a hire has.
//! - Every struct refuses unknown fields: it describes this runtime's answers exactly, so a
//!   documented example with a field the runtime does not write fails its check. A client that
//!   must read a newer runtime's answers reads them as plain JSON (as `roster-agent` does).
//!
//! [`Call`]: super::Call

use serde::{Deserialize, Serialize};

use crate::capability::Capability;
use crate::envelope::Envelope;
use crate::event::{AgentSpec, StopReason};
use crate::id::{AgentId, ApprovalId, EventId, GrantId, ShareId, TeamId};
use crate::limits::DiskMib;
use crate::name::{Label, Name};
use crate::time::Timestamp;
use crate::topic::{Topic, TopicPattern};

/// The `ok` value of any method: what a backend hands the gateway to encode.
///
/// Untagged on the wire (the request says which method it answers); [`Answer::decode`] reads
/// one back given that method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Answer {
    /// `whoami`.
    Whoami(Whoami),
    /// `grants`.
    Grants(Grants),
    /// `history`.
    History(History),
    /// `shares`.
    Shares(Shares),
    /// Every call decided through the log (`hire`, `retire`, `delegate`, `decide_approval`,
    /// `share_propose`, `share_accept`, `share_close`).
    Committed(Committed),
    /// `act`.
    Performed(Performed),
    /// `publish`.
    Published(Published),
    /// `subscribe`.
    Subscribed(Subscribed),
}

impl Answer {
    /// Reads the `ok` value of an answer to `method` (a name of [`METHODS`](super::METHODS)):
    /// the answer's JSON says nothing of which method it answers, the caller knows.
    pub fn decode(method: &str, ok: serde_json::Value) -> Result<Answer, serde_json::Error> {
        use serde_json::from_value as read;
        Ok(match method {
            "whoami" => Answer::Whoami(read(ok)?),
            "grants" => Answer::Grants(read(ok)?),
            "history" => Answer::History(read(ok)?),
            "shares" => Answer::Shares(read(ok)?),
            "hire" | "retire" | "delegate" | "decide_approval" | "share_propose"
            | "share_accept" | "share_close" => Answer::Committed(read(ok)?),
            "act" => Answer::Performed(read(ok)?),
            "publish" => Answer::Published(read(ok)?),
            "subscribe" => Answer::Subscribed(read(ok)?),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "no method `{other}` answers"
                )))
            }
        })
    }
}

/// Each answer type is one variant: a backend returns the precise type and converts on the way
/// out.
macro_rules! into_answer {
    ($($t:ident),*) => {$(
        impl From<$t> for Answer {
            fn from(a: $t) -> Answer {
                Answer::$t(a)
            }
        }
    )*};
}
into_answer!(Whoami, Grants, History, Shares, Committed, Performed, Published, Subscribed);

/// `whoami`: everything an agent may know about itself, so that it never needs to ask an
/// operator who it is, whom it answers to or how it is confined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Whoami {
    /// `TEAM/NAME`, the form people and `roster` commands use.
    pub address: String,
    /// Its home disk quota in MiB: a hire it makes gets at most as much.
    pub disk_mib: DiskMib,
    /// When it was hired.
    pub hired_at: Timestamp,
    /// Its id, what every other answer and event names it by.
    pub id: AgentId,
    /// Its name in its team.
    pub name: Name,
    /// The agent that hired it; `None` when an operator did (no agent can retire it then).
    pub parent: Option<AgentId>,
    /// The hirer's address, so that an agent can say who it answers to without another call.
    pub parent_name: Option<String>,
    /// What it was hired for.
    pub role: Label,
    /// The container it runs in: a hire it makes is confined at least as tightly.
    pub spec: AgentSpec,
    /// Its container's state.
    pub status: AgentState,
    /// Why its container stopped, while `status` is `stopped`.
    pub stopped: Option<StopReason>,
    /// Its team.
    pub team: TeamView,
}

/// A team as answers name it: the id events carry, the name people and `publish` use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamView {
    /// Its id.
    pub id: TeamId,
    /// Its name (its id, should the runtime not know it).
    pub name: String,
}

/// Where an agent's container is in its life, as `whoami` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentState {
    /// Recorded; no container yet.
    Hired,
    /// Its container runs.
    Running,
    /// Its container stopped ([`Whoami::stopped`] says why).
    Stopped,
    /// Retired for good (a retired agent is refused before it is answered; kept for
    /// completeness of the wire values).
    Retired,
}

/// `grants`: every grant the agent holds, in force or not, so that it can tell what it may do
/// before trying (and being refused on the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// The grants, oldest first.
    pub grants: Vec<GrantView>,
}

/// One grant with its state and budget: the gateway's `grants` entry and one line of
/// `roster grants --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantView {
    /// Whether it is in force now (`status` says why not).
    pub active: bool,
    /// Its budget, if it has one.
    pub budget: Option<u64>,
    /// What it allows.
    pub capability: Capability,
    /// Its holder.
    pub holder: AgentId,
    /// The holder's address.
    pub holder_name: String,
    /// Its id.
    pub id: GrantId,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// What is left of this grant's own budget (its parents' budgets may leave less).
    pub left: Option<u64>,
    /// The grant it derives from; `None` for an operator's root grant.
    pub parent: Option<GrantId>,
    /// What was charged to it, its derived grants' spending included.
    pub spent: u64,
    /// `active`, or why not, for people (`revoked`, `void (via grt_…)`, …).
    pub status: String,
}

/// `history`: one page of the agent's own team's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct History {
    /// The events, oldest first, as `roster log --json` prints them (read back, each one's
    /// hash is checked against its body).
    pub events: Vec<Envelope>,
    /// The `from` of the next page (the page's `from` when it is empty): where a page cut
    /// short by its size goes on.
    pub next: u64,
    /// The team's version now: `next > version` means the agent has seen everything.
    pub version: u64,
}

/// `shares`: the shares the agent's team is a side of, so that it knows where its context may
/// go and what reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shares {
    /// The shares.
    pub shares: Vec<ShareView>,
}

/// One share with its state: the gateway's `shares` entry and one line of
/// `roster shares --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareView {
    /// How many messages crossed it.
    pub crossings: u64,
    /// The offering team's name (`None` should the runtime not know it).
    pub from: Option<Name>,
    /// Its id, what `share_accept` and `share_close` take.
    pub id: ShareId,
    /// Where it is in its life.
    pub state: ShareState,
    /// The receiving team's name (`None` should the runtime not know it).
    pub to: Option<Name>,
    /// Which of the offering team's topics may cross.
    pub topics: TopicPattern,
}

/// Where a share is in its life, as answers say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ShareState {
    /// Offered, not yet accepted.
    Proposed,
    /// Accepted: context flows.
    Open,
    /// Closed by either side.
    Closed,
}

/// The answer to a call decided through the log: what it recorded, so that an agent learns
/// the ids it made (a share's, a grant's) without reading its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Committed {
    /// The new agent's id, for a hire only (left out otherwise): what the hirer asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentId>,
    /// The events recorded, as `roster log --json` prints them.
    pub events: Vec<Envelope>,
}

/// `act`, carried out: the record of the use and the provider's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Performed {
    /// The approval used, if one was needed.
    pub approval: Option<ApprovalId>,
    /// The grants that allowed it, the agent's first, the root last.
    pub chain: Vec<GrantId>,
    /// The `ActionPerformed` that recorded it: unique per use, so a provider can recognise a
    /// call it already carried out.
    pub performed: EventId,
    /// Whether this answers a keyed call carried out earlier (`act` with a `key` it used
    /// already, for the same call): the use recorded then, without running the provider again.
    /// The provider's answer is not kept, so `result` is then `null`.
    #[serde(default)]
    pub replayed: bool,
    /// The tool provider's answer, any JSON value, unchanged (`null` when `replayed`).
    pub result: serde_json::Value,
}

/// `publish`: where the message went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    /// One entry per team it went to.
    pub delivered: Vec<Delivery>,
    /// The topic it was published on.
    pub topic: Topic,
}

/// One team a published message went to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delivery {
    /// For a crossing, the `ContextShared` event that recorded it (`None` within the team).
    pub record: Option<EventId>,
    /// For a crossing, the share it went through (`None` within the team).
    pub share: Option<ShareId>,
    /// The team's name.
    pub team: Name,
}

/// `subscribe`: what the subscription listens to, before its first push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribed {
    /// The agent's team, whose inbox it reads.
    pub team: Name,
    /// The patterns it matches.
    pub topics: Vec<TopicPattern>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::METHODS;

    #[test]
    fn every_method_has_an_answer_type() {
        for method in METHODS {
            // An empty object is no method's answer, but the error must be the type's own
            // (a missing field), not an unknown method.
            let e = Answer::decode(method, serde_json::json!({})).unwrap_err();
            assert!(!e.to_string().contains("no method"), "{method}: {e}");
        }
        let e = Answer::decode("sudo", serde_json::json!({})).unwrap_err();
        assert!(e.to_string().contains("no method `sudo`"), "{e}");
    }

    #[test]
    fn fields_are_written_in_the_order_the_gateway_writes_them() {
        // Direct serialization (what `--json` does) and the gateway's (through a `Value`,
        // whose keys are sorted) give the same bytes.
        let grant = GrantView {
            active: true,
            budget: Some(5),
            capability: Capability::parse("spend.usd@*,budget=5").unwrap(),
            holder: "agt_0192f0c0000070008000000000000001".parse().unwrap(),
            holder_name: "lab/scout".into(),
            id: "grt_0192f0c0000070008000000000000001".parse().unwrap(),
            issued_at: "2026-11-23T11:10:36.095449Z".parse().unwrap(),
            left: Some(3),
            parent: None,
            spent: 2,
            status: "active".into(),
        };
        let share = ShareView {
            crossings: 1,
            from: Some(Name::parse("lab").unwrap()),
            id: "shr_0192f0c0000070008000000000000001".parse().unwrap(),
            state: ShareState::Open,
            to: None,
            topics: TopicPattern::parse("findings/**").unwrap(),
        };
        let performed = Performed {
            approval: None,
            chain: vec![grant.id],
            performed: "evt_0192f0c0000070008000000000000001".parse().unwrap(),
            replayed: false,
            result: serde_json::json!({"sent": true, "id": "m-1"}),
        };
        let hired = Committed {
            agent: Some(grant.holder),
            events: Vec::new(),
        };
        fn same<T: Serialize>(t: &T) -> String {
            let direct = serde_json::to_string(t).unwrap();
            assert_eq!(direct, serde_json::to_value(t).unwrap().to_string());
            direct
        }
        same(&grant);
        assert!(same(&share).contains(r#""to":null"#));
        same(&performed);
        same(&hired);
        let delivery = Delivery {
            record: None,
            share: None,
            team: Name::parse("lab").unwrap(),
        };
        assert_eq!(
            same(&delivery),
            r#"{"record":null,"share":null,"team":"lab"}"#
        );
        // Only a hire names an agent.
        let retired = Committed {
            agent: None,
            events: Vec::new(),
        };
        assert_eq!(same(&retired), r#"{"events":[]}"#);
        let back: Committed = serde_json::from_str(r#"{"events":[]}"#).unwrap();
        assert_eq!(back, retired);
    }

    #[test]
    fn states_are_written_in_lowercase() {
        let s = serde_json::to_string(&[AgentState::Hired, AgentState::Running]).unwrap();
        assert_eq!(s, r#"["hired","running"]"#);
        let s = serde_json::to_string(&[ShareState::Proposed, ShareState::Closed]).unwrap();
        assert_eq!(s, r#"["proposed","closed"]"#);
        // As `stopped` says it: the event's own spelling.
        let s = serde_json::to_string(&[StopReason::Requested, StopReason::OomKilled]).unwrap();
        assert_eq!(s, r#"["requested","oom_killed"]"#);
        let s = serde_json::to_string(&StopReason::Exited { code: 0 }).unwrap();
        assert_eq!(s, r#"{"exited":{"code":0}}"#);
    }
}
