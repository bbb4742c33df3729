//! Tomorrow: a team at work is interrupted every way the runtime can be — `roster serve`
//! stopped (SIGTERM), killed (SIGKILL), killed with every container removed (a power cut), and
//! `dockerd` restarted under it — and after each, everything is as it was: every agent runs
//! again with the same identity (its socket answers as itself), the same grants and the
//! budgets already spent, the open share still carries context, the approval that waited still
//! waits (and is usable once decided), and the home holds what was written before.
//!
//! Needs Docker, the static `roster-agent` and `nats-server` (`scripts/test` provides them);
//! without them this test fails, loudly. It restarts `dockerd`, so it runs in the `engine`
//! group (one at a time).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{docker, wait_for, with_engine_stopped, Gateway, Served};
use roster_bus::NatsServer;
use serde_json::{json, Value};

/// Long enough for a message to cross, even on a loaded machine.
const SOON: Duration = Duration::from_secs(10);

/// The team's lasting state, as the operator's commands print it: what must be the same
/// after every interruption.
#[derive(Debug, PartialEq)]
struct Lasting {
    /// Each agent: id, team, name, hirer, spec.
    agents: Vec<Value>,
    /// Each grant: id, holder, capability, parent, spent, active.
    grants: Vec<Value>,
    /// Each share: id, from, to, topics, state.
    shares: Vec<Value>,
    /// Each approval: id, agent, action, resource, state.
    approvals: Vec<Value>,
}

fn pick(v: &Value, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| (k.to_string(), v[*k].clone()))
            .collect(),
    )
}

fn lasting(s: &Served) -> Lasting {
    let agents: Vec<Value> = s
        .json(&["agents", "--all"])
        .iter()
        .map(|a| {
            pick(
                a,
                &["id", "team", "name", "parent", "image", "runtime", "status"],
            )
        })
        .collect();
    let mut grants = Vec::new();
    for a in &agents {
        let who = format!(
            "{}/{}",
            a["team"].as_str().unwrap(),
            a["name"].as_str().unwrap()
        );
        grants.extend(s.json(&["grants", &who]).iter().map(|g| {
            pick(
                g,
                &["id", "holder", "capability", "parent", "spent", "active"],
            )
        }));
    }
    Lasting {
        agents,
        grants,
        shares: s
            .json(&["shares"])
            .iter()
            .map(|x| pick(x, &["id", "from", "to", "topics", "state"]))
            .collect(),
        approvals: s
            .json(&["approvals", "--all"])
            .iter()
            .map(|x| pick(x, &["id", "agent", "action", "resource", "state"]))
            .collect(),
    }
}

/// The agents of the story and what was done before the interruptions.
struct Team {
    lead: String,
    researcher: String,
    plead: String,
    /// The researcher's approval request, still waiting.
    waiting: String,
}

/// A working day: the operator's leads, a researcher hired by the research lead from inside
/// its container, a spend, a note in the home, a share both teams opened, an approval waiting.
fn day(s: &Served) -> Team {
    s.ok(&["team", "create", "research"]);
    s.ok(&["team", "create", "product"]);
    let lead = s.hire_into(
        "research",
        "lead",
        &[
            "--grant",
            "agent.hire@team:research,budget=1",
            "--grant",
            "spend.usd@*,budget=10",
            "--grant",
            "deploy.run@env:*,approval",
            "--grant",
            "share.propose@team:research",
        ],
    );
    let plead = s.hire_into(
        "product",
        "plead",
        &["--grant", "share.accept@team:product"],
    );
    let hired: Value = serde_json::from_str(&s.exec(
        "research/lead",
        &[
            "roster-agent",
            "hire",
            "researcher",
            "--grant",
            "spend.usd@*,budget=5",
            "--grant",
            "deploy.run@env:*,approval",
        ],
    ))
    .unwrap();
    let researcher = hired["agent"].as_str().unwrap().to_owned();
    s.wait_up("researcher");

    let mut g = Gateway::connect(s, &researcher);
    let spent = g
        .call(
            "act",
            json!({"action": "spend.usd", "resource": "vendor:acme", "amount": 3}),
        )
        .unwrap();
    assert!(spent["performed"].is_string(), "{spent}");
    let pending = g
        .call(
            "act",
            json!({"action": "deploy.run", "resource": "env:prod", "timeout_secs": 0}),
        )
        .unwrap_err();
    assert_eq!(pending["code"], "pending", "{pending}");
    let waiting = s
        .json(&["approvals"])
        .into_iter()
        .find(|a| a["resource"] == "env:prod")
        .expect("the deploy waits for approval")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    s.exec(
        "research/researcher",
        &["sh", "-c", "echo 'written yesterday' > /home/agent/notes"],
    );

    let proposed = Gateway::connect(s, &lead)
        .call(
            "share_propose",
            json!({"to": "product", "topics": "findings/**"}),
        )
        .unwrap();
    let share = proposed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["event"]["ShareProposed"]["share"].as_str())
        .unwrap()
        .to_owned();
    Gateway::connect(s, &plead)
        .call("share_accept", json!({ "share": share }))
        .unwrap();
    Team {
        lead,
        researcher,
        plead,
        waiting,
    }
}

/// Everything that must hold after an interruption, checked from the agents' side.
fn as_before(s: &Served, t: &Team, before: &Lasting, after: &str) {
    for name in ["lead", "researcher", "plead"] {
        s.wait_up(name);
    }
    assert_eq!(
        &lasting(s),
        before,
        "after {after}, the team is not as it was"
    );

    // Identity: each socket answers as its own agent.
    for (id, name) in [
        (&t.lead, "lead"),
        (&t.researcher, "researcher"),
        (&t.plead, "plead"),
    ] {
        let me = Gateway::connect(s, id).call("whoami", Value::Null).unwrap();
        assert_eq!(
            (me["id"].as_str(), me["name"].as_str()),
            (Some(id.as_str()), Some(name))
        );
    }
    let me: Value =
        serde_json::from_str(&s.exec("research/researcher", &["roster-agent", "whoami"])).unwrap();
    assert_eq!(me["id"], t.researcher.as_str(), "after {after}");
    assert_eq!(me["parent"], t.lead.as_str(), "after {after}");

    // The home.
    assert_eq!(
        s.exec("research/researcher", &["cat", "/home/agent/notes"])
            .trim(),
        "written yesterday",
        "after {after}"
    );

    // The budget already spent: 3 of 5, so 3 more is refused (and recorded).
    let denials = s.count("AccessDenied");
    let mut g = Gateway::connect(s, &t.researcher);
    let e = g
        .call(
            "act",
            json!({"action": "spend.usd", "resource": "vendor:acme", "amount": 3}),
        )
        .unwrap_err();
    assert_eq!(e["code"], "denied", "after {after}: {e}");
    assert!(
        e["message"].as_str().unwrap().contains("spent 3 of 5"),
        "after {after}: {e}"
    );
    assert_eq!(s.count("AccessDenied"), denials + 1, "after {after}");

    // The waiting approval still waits, and is not usable yet.
    let e = g
        .call(
            "act",
            json!({"action": "deploy.run", "resource": "env:prod",
                   "approval": t.waiting, "timeout_secs": 0}),
        )
        .unwrap_err();
    assert_eq!(e["code"], "pending", "after {after}: {e}");

    // The open share still carries a finding across.
    let mut listener = Gateway::connect(s, &t.plead);
    listener
        .call("subscribe", json!({"topics": ["findings/**"]}))
        .unwrap();
    let text = format!("still here after {after}");
    g.call(
        "publish",
        json!({"topic": "findings/daily", "message": text}),
    )
    .unwrap();
    let got = listener
        .push(SOON)
        .unwrap_or_else(|| panic!("after {after}, nothing crossed the share"));
    assert_eq!(
        (&got["kind"], &got["team"], &got["sender"], &got["message"]),
        (
            &json!("message"),
            &json!("research"),
            &json!(t.researcher),
            &json!(text)
        ),
        "after {after}"
    );
}

#[test]
fn the_team_is_all_there_after_a_stop_a_kill_a_power_cut_and_an_engine_restart() {
    let nats = NatsServer::start().expect("nats-server is needed: run scripts/setup");
    let config = "[tools.\"spend.usd\"]\nexec = [\"/bin/sh\", \"-c\", \"cat > /dev/null; echo '{}'\"]\n\n\
                  [tools.\"deploy.run\"]\nexec = [\"/bin/sh\", \"-c\", \"cat > /dev/null; echo '{\\\"deployed\\\":true}'\"]\n";
    let mut s = Served::configured(
        format!("t{:x}", common::rand_u32()),
        &["--bus", &nats.url()],
        Some(config),
    );
    let t = day(&s);
    let before = lasting(&s);
    assert_eq!(before.agents.len(), 3);
    assert_eq!(before.shares[0]["state"], "open", "{:?}", before.shares);
    assert!(
        before
            .grants
            .iter()
            .any(|g| g["holder"] == t.researcher.as_str()
                && g["capability"] == "spend.usd@*,budget=5"
                && g["spent"] == 3),
        "{:?}",
        before.grants
    );

    // 1. Stopped by its operator, started again: the agents kept running and are adopted.
    s.stop();
    s.start();
    as_before(&s, &t, &before, "a stop");

    // 2. Killed: no goodbye at all.
    s.kill();
    s.start();
    as_before(&s, &t, &before, "SIGKILL");

    // 3. A power cut: killed, and every container gone; only the data and the homes remain.
    s.kill();
    let label = format!("label=roster.ns={}", s.ns);
    let ids = docker(&["ps", "-aq", "--filter", &label]);
    let ids: Vec<&str> = std::str::from_utf8(&ids.stdout)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(ids.len(), 3, "one container per agent");
    for id in &ids {
        assert!(docker(&["rm", "-f", id]).status.success());
    }
    let vanished = s.count("AgentStopped");
    s.start();
    as_before(&s, &t, &before, "a power cut");
    assert_eq!(
        s.count("AgentStopped"),
        vanished + 3,
        "each vanished container is recorded"
    );
    assert!(s
        .events()
        .iter()
        .any(|e| e["event"]["AgentStopped"]["reason"] == "vanished"));

    // 4. The engine restarts under the running daemon: the containers die with it; the
    // daemon records it and starts them again — each death and each start once.
    let started = s.count("AgentStarted");
    let stopped = s.count("AgentStopped");
    with_engine_stopped(|| {
        // While the engine is away, the team is still the log's to list: every agent, its
        // container unknown.
        let listed = s.json(&["agents", "--all"]);
        let ids: Vec<&str> = listed.iter().filter_map(|a| a["id"].as_str()).collect();
        for id in [&t.lead, &t.researcher, &t.plead] {
            assert!(ids.contains(&id.as_str()), "{id} not listed: {listed:?}");
        }
        for a in &listed {
            let container = a["container"].as_str().unwrap_or_default();
            assert!(
                container == "unknown" || container == "-",
                "{}: {container}",
                a["name"]
            );
        }
    });
    wait_for(
        "every agent to be started again after the engine came back",
        Duration::from_secs(120),
        || s.count("AgentStarted") >= started + 3,
    );
    as_before(&s, &t, &before, "a dockerd restart");
    // A second record of a death or a start would come within the supervisor's next passes.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.count("AgentStarted"), started + 3, "one start per agent");
    assert_eq!(s.count("AgentStopped"), stopped + 3, "one death per agent");
    let by_engine = s
        .events()
        .iter()
        .filter(|e| e["event"]["AgentStopped"]["reason"] == "engine_restarted")
        .count();
    assert_eq!(by_engine, 3, "each death recorded as the engine's restart");
    once_each(&s);

    // The approval that waited through all of it is decided now, and used once.
    s.ok(&["approve", &t.waiting, "--note", "after the night"]);
    let mut g = Gateway::connect(&s, &t.researcher);
    let done = g
        .call(
            "act",
            json!({"action": "deploy.run", "resource": "env:prod", "approval": t.waiting}),
        )
        .unwrap();
    assert_eq!(done["result"], json!({"deployed": true}), "{done}");
    let again = g
        .call(
            "act",
            json!({"action": "deploy.run", "resource": "env:prod", "approval": t.waiting}),
        )
        .unwrap_err();
    assert_eq!(again["code"], "denied", "{again}");
    s.ok(&["verify"]);
}

/// Each agent's starts and stops alternate on the log: no start is recorded while the log has
/// the agent running already.
fn once_each(s: &Served) {
    let mut running: std::collections::HashMap<String, String> = Default::default();
    for e in s.events() {
        if let Some(started) = e["event"].get("AgentStarted") {
            let agent = started["agent"].as_str().unwrap().to_owned();
            let container = started["container"].as_str().unwrap().to_owned();
            if let Some(before) = running.insert(agent.clone(), container.clone()) {
                panic!(
                    "#{}: {agent} started as {container} while running as {before}",
                    e["seq"]
                );
            }
        }
        if let Some(stopped) = e["event"].get("AgentStopped") {
            running.remove(stopped["agent"].as_str().unwrap());
        }
    }
}
