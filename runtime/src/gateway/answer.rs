//! The read-only answers of the gateway: `whoami`, `grants`, `history`, `shares`.
//!
//! Pure functions of the projected [`World`] (and, for `history`, the log), so that the daemon's
//! [`Backend`](super::Backend) calls them under whatever lock guards its world and they can be
//! tested without sockets. An agent only ever learns about itself and its own team; an agent the
//! world does not know, or one that is retired, is refused (`denied`): a retired agent's
//! container may still run for a moment, and it must learn nothing more.
//!
//! Each answer is a type of [`roster_core::gateway::answer`]. The operator's `--json` output
//! prints the same types where it shows the same thing: a grant is the [`GrantView`]
//! `roster grants --json` prints, a share the [`ShareView`] of `roster shares --json`, an
//! event the envelope `roster log --json` prints.

use roster_core::gateway::answer::{
    AgentState, Answer, GrantView, Grants, History, ShareState, ShareView, Shares, TeamView, Whoami,
};
use roster_core::gateway::{Call, ErrorCode, GatewayError, HistoryParams};
use roster_core::id::{AgentId, TeamId};
use roster_core::port::LogRead;
use roster_core::time::Timestamp;
use roster_core::world::{Agent, AgentStatus, Grant, Share, World};

use super::Reply;
use crate::describe;

/// The most events one `history` call returns; an agent pages with `from`.
pub const HISTORY_MAX: u32 = 1000;

/// The most bytes of events (as JSON) one `history` page holds, whatever its `limit`: a page
/// stops before the event that would take it past this (it always holds one, so an event larger
/// than this comes alone). Events are up to a mebibyte each (an `act`'s arguments), so a page of
/// 1,000 could be a gigabyte to read, hold and write for one request.
pub const HISTORY_MAX_BYTES: usize = 512 * 1024;

/// The most events read from the log at once for a page: a page of large events is read a few
/// at a time, never a thousand at once to be thrown away past the byte cap.
const HISTORY_READ: usize = 8;

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
) -> Option<Reply> {
    match call {
        Call::History(p) => Some(history(log, world, agent, p).map(Answer::from)),
        _ => from_world(world, agent, call, now),
    }
}

/// The answer to a call the world alone answers (no log, no I/O: microseconds), or `None` for
/// any other. What a backend may answer on a connection's own task (`Backend::call_now`).
pub fn from_world(world: &World, agent: AgentId, call: &Call, now: Timestamp) -> Option<Reply> {
    match call {
        Call::Whoami => Some(whoami(world, agent).map(Answer::from)),
        Call::Grants => Some(grants(world, agent, now).map(Answer::from)),
        Call::Shares => Some(shares(world, agent).map(Answer::from)),
        _ => None,
    }
}

/// The agent asking, if it may still ask anything.
pub(crate) fn in_service(world: &World, agent: AgentId) -> Result<&Agent, GatewayError> {
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
pub fn shares(world: &World, agent: AgentId) -> Result<Shares, GatewayError> {
    let team = in_service(world, agent)?.team;
    Ok(Shares {
        shares: world
            .shares_of(team)
            .map(|s| share_view(world, s))
            .collect(),
    })
}

/// One share as the gateway's `shares` and `roster shares --json` give it.
pub fn share_view(world: &World, s: &Share) -> ShareView {
    let name = |t| world.team(t).map(|t| t.name.clone());
    ShareView {
        crossings: s.crossings,
        from: name(s.from),
        id: s.id,
        state: match s.state {
            roster_core::world::ShareState::Proposed => ShareState::Proposed,
            roster_core::world::ShareState::Open => ShareState::Open,
            roster_core::world::ShareState::Closed => ShareState::Closed,
        },
        to: name(s.to),
        topics: s.topics.clone(),
    }
}

/// `whoami`: the agent's identity, team, role, who hired it, its container spec, its home disk
/// quota and its state.
pub fn whoami(world: &World, agent: AgentId) -> Result<Whoami, GatewayError> {
    let a = in_service(world, agent)?;
    let (status, stopped) = match &a.status {
        AgentStatus::Hired => (AgentState::Hired, None),
        AgentStatus::Running { .. } => (AgentState::Running, None),
        AgentStatus::Stopped { reason } => (AgentState::Stopped, Some(*reason)),
        AgentStatus::Retired => (AgentState::Retired, None),
    };
    Ok(Whoami {
        address: describe::agent(world, a.id),
        disk_mib: a.disk(),
        hired_at: a.hired_at,
        id: a.id,
        name: a.name.clone(),
        parent: a.parent,
        parent_name: a.parent.map(|p| describe::agent(world, p)),
        role: a.role.clone(),
        spec: a.spec.clone(),
        status,
        stopped,
        team: TeamView {
            id: a.team,
            name: describe::team(world, a.team),
        },
    })
}

/// `grants`: every grant the agent holds, active or not (and why not), with its budget.
pub fn grants(world: &World, agent: AgentId, now: Timestamp) -> Result<Grants, GatewayError> {
    in_service(world, agent)?;
    Ok(Grants {
        grants: world
            .grants_of(agent)
            .map(|g| grant_view(world, g, now))
            .collect(),
    })
}

/// One grant as the gateway's `grants` and `roster grants --json` give it, with what is left of
/// its budget.
pub fn grant_view(world: &World, g: &Grant, now: Timestamp) -> GrantView {
    let budget = g.capability.constraints().budget;
    GrantView {
        active: world.is_active(g.id, now),
        budget,
        capability: g.capability.clone(),
        holder: g.holder,
        holder_name: describe::agent(world, g.holder),
        id: g.id,
        issued_at: g.issued_at,
        left: budget.map(|b| b.saturating_sub(g.spent)),
        parent: g.parent,
        spent: g.spent,
        status: describe::grant_status(world, g.id, now),
    }
}

/// `history`: the agent's own team's events from team version `from` (default 1), at most
/// `limit` (default [`HISTORY_DEFAULT`], capped at [`HISTORY_MAX`]) and at most
/// [`HISTORY_MAX_BYTES`] of them, each as the envelope `roster log --json` prints; `next` is
/// the `from` of the following page (where a page cut short by its size goes on), `version`
/// the team's version now.
pub fn history(
    log: &dyn LogRead,
    world: &World,
    agent: AgentId,
    params: &HistoryParams,
) -> Result<History, GatewayError> {
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
) -> Result<History, GatewayError> {
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
    let want = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut events = Vec::new();
    // The page's bytes so far, and its largest event's.
    let (mut bytes, mut largest) = (0, 0);
    let mut at = from;
    'page: while events.len() < want {
        // No more at once than may still fit, judging by the largest event so far.
        let fit = HISTORY_MAX_BYTES.saturating_sub(bytes) / largest.max(1) + 1;
        let ask = (want - events.len()).min(fit).min(HISTORY_READ);
        let read = log.read_team(team, at, ask).map_err(failed)?;
        let ended = read.len() < ask;
        for e in read {
            let size = json_len(&e);
            if !events.is_empty() && bytes + size > HISTORY_MAX_BYTES {
                break 'page;
            }
            (bytes, largest) = (bytes + size, largest.max(size));
            at = e.version + 1;
            events.push(e);
        }
        if ended {
            break;
        }
    }
    let next = events.last().map_or(from, |e| e.version + 1);
    Ok(History {
        events,
        next,
        version,
    })
}

/// The bytes `value` takes as JSON, counted without keeping them.
fn json_len(value: &impl serde::Serialize) -> usize {
    #[derive(Debug)]
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut n = Count(0);
    // Writing to a counter fails only if the value cannot be JSON, which an envelope can:
    // then it counts what it wrote.
    let _ = serde_json::to_writer(&mut n, value);
    n.0
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::gateway::testing::Team;

    /// An answer as the agent reads it.
    fn wire<T: serde::Serialize>(answer: T) -> Value {
        serde_json::to_value(answer).unwrap()
    }

    #[test]
    fn whoami_names_the_agent_its_team_and_its_hirer() {
        let t = Team::new();
        let w = t.world();
        let me = wire(whoami(w, t.scout).unwrap());
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
        assert_eq!(
            me["disk_mib"],
            roster_core::limits::DiskMib::DEFAULT,
            "{me}"
        );
    }

    #[test]
    fn grants_say_which_are_active_why_not_and_what_is_left() {
        let t = Team::new();
        let w = t.world();
        let mine = wire(grants(w, t.lead, roster_store::now()).unwrap());
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
        let scout = wire(grants(w, t.scout, roster_store::now()).unwrap());
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
        let all = wire(history(t.log(), w, t.scout, &HistoryParams::default()).unwrap());
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

        let page = wire(
            history(
                t.log(),
                w,
                t.scout,
                &HistoryParams {
                    from: Some(2),
                    limit: Some(2),
                },
            )
            .unwrap(),
        );
        let got: Vec<u64> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["version"].as_u64().unwrap())
            .collect();
        assert_eq!(got, [2, 3]);
        assert_eq!(page["next"], 4);
        let past = wire(
            history(
                t.log(),
                w,
                t.scout,
                &HistoryParams {
                    from: Some(1000),
                    limit: None,
                },
            )
            .unwrap(),
        );
        assert_eq!(past["events"], json!([]));
        assert_eq!(past["next"], 1000);
        let none = wire(
            history(
                t.log(),
                w,
                t.scout,
                &HistoryParams {
                    from: None,
                    limit: Some(0),
                },
            )
            .unwrap(),
        );
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
        let page = |from: u64, limit: u32| {
            wire(
                history(
                    big.log(),
                    w,
                    big.lead,
                    &HistoryParams {
                        from: Some(from),
                        limit: Some(limit),
                    },
                )
                .unwrap(),
            )
        };
        // A `limit` past the cap is read as the cap; these events (~570 bytes each) reach the
        // byte cap first.
        let first = page(1, u32::MAX);
        let events = first["events"].as_array().unwrap();
        let bytes: usize = events.iter().map(|e| e.to_string().len()).sum();
        assert!(events.len() < HISTORY_MAX as usize, "{}", events.len());
        assert!(bytes <= HISTORY_MAX_BYTES, "{bytes}");
        let one_more = page(events.len() as u64 + 1, 1)["events"][0]
            .to_string()
            .len();
        assert!(
            bytes + one_more > HISTORY_MAX_BYTES,
            "cut before it was full"
        );
        // Paged with `next`, every event comes once, in order.
        let (mut versions, mut from) = (Vec::new(), 1);
        let last = w.team_version(w.agent(big.lead).unwrap().team);
        while from <= last {
            let p = page(from, HISTORY_MAX);
            let got = p["events"].as_array().unwrap();
            assert!(!got.is_empty() && got.len() <= HISTORY_MAX as usize);
            versions.extend(got.iter().map(|e| e["version"].as_u64().unwrap()));
            from = p["next"].as_u64().unwrap();
        }
        assert_eq!(versions, (1..=last).collect::<Vec<_>>());
        // Small pages are cut by their count.
        assert_eq!(page(1, 7)["events"].as_array().unwrap().len(), 7);
        let default = wire(history(big.log(), w, big.lead, &HistoryParams::default()).unwrap());
        assert_eq!(
            default["events"].as_array().unwrap().len(),
            HISTORY_DEFAULT as usize
        );
    }

    #[test]
    fn an_event_larger_than_a_page_comes_alone_and_the_next_page_goes_on() {
        use roster_core::capability::{Action, Amount, Capability, Resource};
        use roster_core::command::Command;
        use roster_core::name::Name;
        let mut t = Team::new();
        let lead = t.lead;
        t.exec(
            Command::Grant {
                to: lead,
                capability: Capability::parse("report.file@*,approval").unwrap(),
                from: None,
                key: None,
            },
            &crate::gateway::testing::operator(),
        );
        // Each waits for an approval, its 300 KB argument recorded with it.
        for i in 0..3 {
            let arg = "x".repeat(300_000 + i);
            t.exec(
                Command::Act {
                    action: Action::parse("report.file").unwrap(),
                    resource: Resource::parse("desk:q3").unwrap(),
                    amount: Amount::new(1).unwrap(),
                    args: [(Name::parse("body").unwrap(), arg)].into(),
                    approval: None,
                    key: None,
                },
                &roster_core::actor::Actor::Agent(lead),
            );
        }
        let w = t.world();
        let last = w.team_version(w.agent(lead).unwrap().team);
        let page = |from| {
            let params = HistoryParams {
                from: Some(from),
                limit: None,
            };
            wire(history(t.log(), w, lead, &params).unwrap())
        };
        // Any two of them are more than a page: one at a time, each whole.
        for (i, from) in [last - 2, last - 1, last].into_iter().enumerate() {
            let p = page(from);
            let events = p["events"].as_array().unwrap();
            assert_eq!(events.len(), 1, "{from}");
            let body = &events[0]["event"]["CallApprovalRequested"]["args"]["body"];
            assert_eq!(body.as_str().map(str::len), Some(300_000 + i));
            assert_eq!(p["next"], from + 1);
        }
        // From the start, the small events and the first large one fit; the second does not.
        assert_eq!(page(1)["next"], last - 1);
    }

    #[test]
    fn retired_and_unknown_agents_are_denied_everything() {
        let t = Team::new();
        let w = t.world();
        let stranger = t.stranger();
        for agent in [t.retired, stranger] {
            let now = roster_store::now();
            let refusals = [
                whoami(w, agent).unwrap_err(),
                grants(w, agent, now).unwrap_err(),
                history(t.log(), w, agent, &HistoryParams::default()).unwrap_err(),
                shares(w, agent).unwrap_err(),
            ];
            for e in refusals {
                assert_eq!(e.code, ErrorCode::Denied);
            }
        }
    }

    #[test]
    fn the_typed_answers_write_the_bytes_the_json_answers_wrote() {
        // The shapes as `json!` built them before the answers were typed: the wire must not
        // have moved, to the byte.
        use roster_core::gateway::encode_response;
        let mut t = Team::new();
        let research = t.world().agent(t.lead).unwrap().team;
        let ops = t.world().agent(t.other).unwrap().team;
        t.exec(
            roster_core::command::Command::ProposeShare {
                from: research,
                to: ops,
                topics: roster_core::topic::TopicPattern::parse("findings/**").unwrap(),
            },
            &crate::gateway::testing::operator(),
        );
        let (w, now) = (t.world(), roster_store::now());
        let line = |v: Value| json!({"id": 1, "ok": v}).to_string();
        let typed = |a: Reply| encode_response(Some(1), &a);

        let a = w.agent(t.scout).unwrap();
        let before = json!({
            "id": a.id, "name": a.name, "address": describe::agent(w, a.id),
            "team": { "id": a.team, "name": describe::team(w, a.team) },
            "role": a.role, "parent": a.parent,
            "parent_name": a.parent.map(|p| describe::agent(w, p)),
            "spec": a.spec, "status": "hired", "stopped": null, "hired_at": a.hired_at,
            // Added since, with home disk quotas.
            "disk_mib": a.disk(),
        });
        let now_typed = typed(from_world(w, t.scout, &Call::Whoami, now).unwrap());
        assert_eq!(now_typed, line(before));

        let before: Vec<Value> = w
            .grants_of(t.lead)
            .map(|g| {
                let budget = g.capability.constraints().budget;
                json!({
                    "id": g.id, "holder": g.holder, "holder_name": describe::agent(w, g.holder),
                    "capability": g.capability, "status": describe::grant_status(w, g.id, now),
                    "active": w.is_active(g.id, now), "spent": g.spent, "budget": budget,
                    "left": budget.map(|b| b.saturating_sub(g.spent)), "parent": g.parent,
                    "issued_at": g.issued_at,
                })
            })
            .collect();
        assert!(before.len() > 1);
        let now_typed = typed(from_world(w, t.lead, &Call::Grants, now).unwrap());
        assert_eq!(now_typed, line(json!({ "grants": before })));

        let before: Vec<Value> = w
            .shares_of(research)
            .map(|s| {
                json!({
                    "id": s.id, "from": "research", "to": "ops", "topics": s.topics,
                    "state": "proposed", "crossings": s.crossings,
                })
            })
            .collect();
        assert_eq!(before.len(), 1);
        let now_typed = typed(from_world(w, t.lead, &Call::Shares, now).unwrap());
        assert_eq!(now_typed, line(json!({ "shares": before })));

        let p = HistoryParams {
            from: Some(2),
            limit: Some(3),
        };
        let events = t.log().read_team(research, 2, 3).unwrap();
        let before = json!({
            "events": serde_json::to_value(&events).unwrap(), "next": 5,
            "version": w.team_version(research),
        });
        let call = Call::History(p);
        let now_typed = typed(read_only(t.log(), w, t.lead, &call, now).unwrap());
        assert_eq!(now_typed, line(before));
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
