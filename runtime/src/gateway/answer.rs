//! The read-only answers of the gateway: `whoami`, `grants`, `history`.
//!
//! Pure functions of the projected [`World`] (and, for `history`, the log), so that the daemon's
//! [`Backend`](super::Backend) calls them under whatever lock guards its world and they can be
//! tested without sockets. An agent only ever learns about itself and its own team; an agent the
//! world does not know, or one that is retired, is refused (`denied`): a retired agent's
//! container may still run for a moment, and it must learn nothing more.
//!
//! The shapes follow the operator's `--json` output: a grant is the object `roster grants --json`
//! prints, an event is the envelope `roster log --json` prints.

use roster_core::envelope::Envelope;
use roster_core::gateway::{Call, ErrorCode, GatewayError, HistoryParams};
use roster_core::id::{AgentId, TeamId};
use roster_core::port::LogRead;
use roster_core::time::Timestamp;
use roster_core::world::{Agent, AgentStatus, Grant, World};
use serde_json::{json, Value};

use crate::describe;

/// The most events one `history` call returns; an agent pages with `from`.
pub const HISTORY_MAX: u32 = 1000;

/// The events one `history` call returns when it names no `limit`.
pub const HISTORY_DEFAULT: u32 = 100;

/// The answer to a call that only reads, or `None` for a call that changes something (those
/// go through `decide`, which is the daemon's to run). The daemon's backend starts with this.
pub fn read_only(
    log: &dyn LogRead,
    world: &World,
    agent: AgentId,
    call: &Call,
    now: Timestamp,
) -> Option<Result<Value, GatewayError>> {
    match call {
        Call::History(p) => Some(history(log, world, agent, p)),
        _ => from_world(world, agent, call, now),
    }
}

/// The answer to a call the world alone answers (no log, no I/O: microseconds), or `None` for
/// any other. What a backend may answer on a connection's own task (`Backend::call_now`).
pub fn from_world(
    world: &World,
    agent: AgentId,
    call: &Call,
    now: Timestamp,
) -> Option<Result<Value, GatewayError>> {
    match call {
        Call::Whoami => Some(whoami(world, agent)),
        Call::Grants => Some(grants(world, agent, now)),
        Call::Shares => Some(shares(world, agent)),
        _ => None,
    }
}

/// The agent asking, if it may still ask anything.
fn in_service(world: &World, agent: AgentId) -> Result<&Agent, GatewayError> {
    match world.agent(agent) {
        Some(a) if !a.is_retired() => Ok(a),
        Some(_) => Err(GatewayError::new(
            ErrorCode::Denied,
            format!("agent {agent} is retired"),
        )),
        None => Err(GatewayError::new(
            ErrorCode::Denied,
            format!("agent {agent} is not known to the runtime"),
        )),
    }
}

/// `shares`: the shares my team offers or receives, with their state.
pub fn shares(world: &World, agent: AgentId) -> Result<Value, GatewayError> {
    let team = in_service(world, agent)?.team;
    let name = |t| world.team(t).map(|t| t.name.to_string());
    let list: Vec<Value> = world
        .shares_of(team)
        .map(|s| {
            json!({
                "id": s.id,
                "from": name(s.from),
                "to": name(s.to),
                "topics": s.topics,
                "state": match s.state {
                    roster_core::world::ShareState::Proposed => "proposed",
                    roster_core::world::ShareState::Open => "open",
                    roster_core::world::ShareState::Closed => "closed",
                },
                "crossings": s.crossings,
            })
        })
        .collect();
    Ok(json!({ "shares": list }))
}

/// `whoami`: the agent's identity, team, role, who hired it, its container spec and its state.
pub fn whoami(world: &World, agent: AgentId) -> Result<Value, GatewayError> {
    let a = in_service(world, agent)?;
    let (status, stopped) = match &a.status {
        AgentStatus::Hired => ("hired", None),
        AgentStatus::Running { .. } => ("running", None),
        AgentStatus::Stopped { reason } => ("stopped", Some(reason)),
        AgentStatus::Retired => ("retired", None),
    };
    Ok(json!({
        "id": a.id,
        "name": a.name,
        "address": describe::agent(world, a.id),
        "team": { "id": a.team, "name": describe::team(world, a.team) },
        "role": a.role,
        "parent": a.parent,
        "parent_name": a.parent.map(|p| describe::agent(world, p)),
        "spec": a.spec,
        "status": status,
        "stopped": stopped,
        "hired_at": a.hired_at,
    }))
}

/// `grants`: every grant the agent holds, active or not (and why not), with its budget.
pub fn grants(world: &World, agent: AgentId, now: Timestamp) -> Result<Value, GatewayError> {
    in_service(world, agent)?;
    let list: Vec<Value> = world
        .grants_of(agent)
        .map(|g| grant_json(world, g, now))
        .collect();
    Ok(json!({ "grants": list }))
}

/// One grant as `roster grants --json` prints it, plus what is left of its budget.
pub(crate) fn grant_json(world: &World, g: &Grant, now: Timestamp) -> Value {
    let budget = g.capability.constraints().budget;
    json!({
        "id": g.id, "holder": g.holder, "holder_name": describe::agent(world, g.holder),
        "capability": g.capability, "status": describe::grant_status(world, g.id, now),
        "active": world.is_active(g.id, now), "spent": g.spent, "budget": budget,
        "left": budget.map(|b| b.saturating_sub(g.spent)), "parent": g.parent,
        "issued_at": g.issued_at,
    })
}

/// `history`: the agent's own team's events from team version `from` (default 1), at most
/// `limit` (default [`HISTORY_DEFAULT`], capped at [`HISTORY_MAX`]), each as the envelope
/// `roster log --json` prints; `next` is the `from` of the following page, `version` the
/// team's version now.
pub fn history(
    log: &dyn LogRead,
    world: &World,
    agent: AgentId,
    params: &HistoryParams,
) -> Result<Value, GatewayError> {
    team_history(log, history_team(world, agent)?, params)
}

/// The team whose history `agent` may read: its own, while it is in service.
pub fn history_team(world: &World, agent: AgentId) -> Result<TeamId, GatewayError> {
    Ok(in_service(world, agent)?.team)
}

/// [`history`] once the team is known: reads the log only, so the daemon answers it without
/// holding its world (a page of events is the costliest read an agent can ask for).
pub fn team_history(
    log: &dyn LogRead,
    team: TeamId,
    params: &HistoryParams,
) -> Result<Value, GatewayError> {
    let from = params.from.unwrap_or(1);
    if from == 0 {
        return Err(GatewayError::new(
            ErrorCode::BadParams,
            "history: `from` is a team version, the first event being 1",
        ));
    }
    let limit = params.limit.unwrap_or(HISTORY_DEFAULT).min(HISTORY_MAX);
    let failed = |e: roster_core::port::LogError| {
        GatewayError::new(ErrorCode::Internal, format!("cannot read the log: {e}"))
    };
    let version = log.team_version(team).map_err(failed)?;
    let events: Vec<Envelope> = if limit == 0 {
        Vec::new()
    } else {
        let n = usize::try_from(limit).unwrap_or(usize::MAX);
        log.read_team(team, from, n).map_err(failed)?
    };
    let next = events.last().map_or(from, |e| e.version + 1);
    let events = serde_json::to_value(&events).map_err(|e| {
        GatewayError::new(ErrorCode::Internal, format!("cannot encode events: {e}"))
    })?;
    Ok(json!({ "events": events, "next": next, "version": version }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::testing::Team;

    #[test]
    fn whoami_names_the_agent_its_team_and_its_hirer() {
        let t = Team::new();
        let w = t.world();
        let me = whoami(w, t.scout).unwrap();
        assert_eq!(me["id"], json!(t.scout));
        assert_eq!(me["name"], "scout");
        assert_eq!(me["address"], "research/scout");
        assert_eq!(me["team"]["name"], "research");
        assert_eq!(me["role"], "finds things");
        assert_eq!(me["parent"], json!(t.lead));
        assert_eq!(me["parent_name"], "research/lead");
        assert_eq!(me["status"], "hired");
        assert_eq!(
            me["spec"]["runtime"],
            json!(w.agent(t.scout).unwrap().spec.runtime)
        );
        assert!(me["spec"]["resources"]["memory_mib"].is_u64(), "{me}");
    }

    #[test]
    fn grants_say_which_are_active_why_not_and_what_is_left() {
        let t = Team::new();
        let w = t.world();
        let mine = grants(w, t.lead, roster_store::now()).unwrap();
        let list = mine["grants"].as_array().unwrap();
        let mail = list
            .iter()
            .find(|g| g["capability"] == "email.send@mailbox:*,budget=10")
            .unwrap();
        assert_eq!(mail["active"], true);
        assert_eq!(mail["status"], "active");
        assert_eq!(mail["spent"], 3);
        assert_eq!(mail["left"], 7);
        assert_eq!(mail["holder_name"], "research/lead");
        let revoked = list
            .iter()
            .find(|g| g["capability"] == "email.read@mailbox:*")
            .unwrap();
        assert_eq!(
            (revoked["active"].clone(), revoked["status"].clone()),
            (json!(false), json!("revoked"))
        );
        // The scout's grant derives from the lead's: it shares the spend, and only its own
        // grants are listed.
        let scout = grants(w, t.scout, roster_store::now()).unwrap();
        let list = scout["grants"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{scout}");
        assert_eq!(list[0]["capability"], "email.send@mailbox:team,budget=5");
        assert_eq!(list[0]["parent"], mail["id"]);
        assert_eq!(list[0]["left"], 5);
    }

    #[test]
    fn history_is_the_own_teams_events_as_log_json_prints_them() {
        let t = Team::new();
        let w = t.world();
        let all = history(t.log(), w, t.scout, &HistoryParams::default()).unwrap();
        let events = all["events"].as_array().unwrap();
        let version = w.team_version(w.agent(t.scout).unwrap().team);
        assert_eq!(events.len() as u64, version);
        assert_eq!(all["version"], version);
        assert_eq!(all["next"], version + 1);
        let team = json!(w.agent(t.scout).unwrap().team);
        assert!(
            events.iter().all(|e| e["team"] == team),
            "another team's event leaked"
        );
        // Same JSON as `roster log --json`: the envelope's own serialization.
        let first = t
            .log()
            .read_team(w.agent(t.scout).unwrap().team, 1, 1)
            .unwrap();
        assert_eq!(events[0], serde_json::to_value(&first[0]).unwrap());
        assert!(events[0]["hash"].is_string() && events[0]["prev_hash"].is_string());

        let page = history(
            t.log(),
            w,
            t.scout,
            &HistoryParams {
                from: Some(2),
                limit: Some(2),
            },
        )
        .unwrap();
        let got: Vec<u64> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["version"].as_u64().unwrap())
            .collect();
        assert_eq!(got, [2, 3]);
        assert_eq!(page["next"], 4);
        let past = history(
            t.log(),
            w,
            t.scout,
            &HistoryParams {
                from: Some(1000),
                limit: None,
            },
        )
        .unwrap();
        assert_eq!(past["events"], json!([]));
        assert_eq!(past["next"], 1000);
        let none = history(
            t.log(),
            w,
            t.scout,
            &HistoryParams {
                from: None,
                limit: Some(0),
            },
        )
        .unwrap();
        assert_eq!(none["events"], json!([]));
    }

    #[test]
    fn history_caps_the_page_and_refuses_version_zero() {
        let t = Team::new();
        let w = t.world();
        let e = history(
            t.log(),
            w,
            t.scout,
            &HistoryParams {
                from: Some(0),
                limit: None,
            },
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::BadParams);
        let mut big = Team::new();
        for i in 0..(HISTORY_MAX + 5) {
            big.act_as_lead(i % 2 == 0);
        }
        let w = big.world();
        let page = history(
            big.log(),
            w,
            big.lead,
            &HistoryParams {
                from: None,
                limit: Some(u32::MAX),
            },
        )
        .unwrap();
        assert_eq!(
            page["events"].as_array().unwrap().len(),
            HISTORY_MAX as usize
        );
        let default = history(big.log(), w, big.lead, &HistoryParams::default()).unwrap();
        assert_eq!(
            default["events"].as_array().unwrap().len(),
            HISTORY_DEFAULT as usize
        );
    }

    #[test]
    fn retired_and_unknown_agents_are_denied_everything() {
        let t = Team::new();
        let w = t.world();
        let stranger = t.stranger();
        for agent in [t.retired, stranger] {
            let now = roster_store::now();
            let answers = [
                whoami(w, agent),
                grants(w, agent, now),
                history(t.log(), w, agent, &HistoryParams::default()),
            ];
            for a in answers {
                assert_eq!(a.unwrap_err().code, ErrorCode::Denied);
            }
        }
    }

    #[test]
    fn calls_that_change_something_are_left_to_the_daemon() {
        let t = Team::new();
        let w = t.world();
        let now = roster_store::now();
        assert!(read_only(t.log(), w, t.lead, &Call::Whoami, now).is_some());
        let sub = Call::Subscribe(roster_core::gateway::SubscribeParams { topics: vec![] });
        assert!(read_only(t.log(), w, t.lead, &sub, now).is_none());
    }
}
