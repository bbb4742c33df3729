//! Agents that try to get more than they were given, end to end on the real engine: each
//! attempt goes through the agent's own gateway socket (its identity) or through `roster-agent`
//! inside its container, and each must be refused with a reason, recorded as an `AccessDenied`
//! naming that agent and what it tried, and change nothing else — no agent, no grant, no
//! spend, no decision.
//!
//! - a lead passing on a wider grant than its own, by hire or delegation, by each trick: a
//!   wider action or resource pattern, a larger or no budget, `approval` dropped, a later or no
//!   expiry, a grant that is not its own, a team that is not its own;
//! - a teammate acting through a grant whose hirer's grant was revoked;
//! - teammates spending one shared budget at once, from many connections;
//! - an agent deciding an approval (its own or a teammate's), or using one that is not its
//!   own, not for this action, or not decided;
//! - hiring, delegating and retiring from inside a container, within a hire budget.
//!
//! (A message through a share after it closed: `context.rs`, on both buses.)
//!
//! Needs Docker and the static `roster-agent` (`scripts/test` provides them); without them
//! these tests fail, loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{wait_for, Gateway, Served};
use serde_json::{json, Value};

/// Long enough for any answer that does not wait for a person.
const ANSWER: Duration = Duration::from_secs(60);

/// A provider for each action the agents may carry out: it reads the call and answers `{}`.
const TOOLS: &str = r#"
[tools."email.send"]
exec = ["/bin/sh", "-c", "cat >/dev/null; echo '{}'"]
[tools."spend.usd"]
exec = ["/bin/sh", "-c", "cat >/dev/null; echo '{}'"]
[tools."deploy.run"]
exec = ["/bin/sh", "-c", "cat >/dev/null; echo '{}'"]
"#;

fn served() -> Served {
    Served::configured(format!("t{:x}", common::rand_u32()), &[], Some(TOOLS))
}

/// The log without the runtime's records of containers starting and stopping, which no call
/// of an agent causes (a container may restart at any moment; that is not a change we look for).
fn decisions(s: &Served) -> Vec<Value> {
    s.events()
        .into_iter()
        .filter(|e| {
            let kind = e["event"]
                .as_object()
                .and_then(|o| o.keys().next().cloned());
            !matches!(kind.as_deref(), Some("AgentStarted" | "AgentStopped"))
        })
        .collect()
}

/// Runs `attempt` and checks it was refused (`denied`) and that the log gained exactly one
/// decision meanwhile: an `AccessDenied` by `agent`, naming `action` on `resource`, whose reason
/// is what the agent was told. Returns that reason.
fn refused(
    s: &Served,
    agent: &str,
    action: &str,
    resource: &str,
    attempt: impl FnOnce() -> Result<Value, Value>,
) -> String {
    let before = decisions(s);
    let e = match attempt() {
        Ok(v) => panic!("{action} on {resource} by {agent} should have been refused: {v}"),
        Err(e) => e,
    };
    assert_eq!(e["code"], "denied", "{e}");
    let why = e["message"].as_str().unwrap().to_owned();
    let after = decisions(s);
    assert_eq!(
        after.len(),
        before.len() + 1,
        "one record and nothing else: {:?}",
        &after[before.len().min(after.len())..]
    );
    assert_eq!(&after[..before.len()], &before[..]);
    let record = &after[before.len()];
    assert_eq!(record["actor"], json!({ "Agent": agent }), "{record}");
    let denied = &record["event"]["AccessDenied"];
    assert_eq!(
        (&denied["agent"], &denied["action"], &denied["resource"]),
        (&json!(agent), &json!(action), &json!(resource)),
        "{record}"
    );
    assert_eq!(denied["reason"], why.as_str(), "{record}");
    why
}

/// Checks that `why` says each of `words`.
fn says(why: &str, words: &[&str]) {
    for w in words {
        assert!(why.contains(w), "`{w}` not in: {why}");
    }
}

/// `roster-agent ARGS…` inside `agent`'s container: its JSON answer, or the
/// `{"code","message"}` it printed on failure (exit 3 when `denied`).
fn inside(s: &Served, agent: &str, args: &[&str]) -> Result<Value, Value> {
    let mut cmd = vec!["exec", agent, "--", "roster-agent"];
    cmd.extend_from_slice(args);
    let out = s.run(&cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return Ok(serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("roster-agent {args:?}: {e}; stderr: {stderr}")));
    }
    let line = stderr.lines().rev().find(|l| l.starts_with('{'));
    let e: Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("roster-agent {args:?} failed without an error: {stderr}"));
    if e["code"] == "denied" {
        assert_eq!(out.status.code(), Some(3), "{stderr}");
    }
    Err(e)
}

/// The grants of `agent` (`team/name`) as `roster --json grants` prints them.
fn grants(s: &Served, agent: &str) -> Vec<Value> {
    s.ok(&["--json", "grants", agent])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The grant of `agent` whose capability is `capability`.
fn grant(s: &Served, agent: &str, capability: &str) -> Value {
    grants(s, agent)
        .into_iter()
        .find(|g| g["capability"] == capability)
        .unwrap_or_else(|| panic!("{agent} holds no {capability}"))
}

/// The events of kind `kind` in a gateway answer (`{"events": [...]}`), their bodies.
fn answered(answer: &Value, kind: &str) -> Vec<Value> {
    answer["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {answer}"))
        .iter()
        .filter_map(|e| e["event"].get(kind).cloned())
        .collect()
}

/// The agent an answer hired.
fn hired(answer: &Value) -> String {
    let hired = answered(answer, "AgentHired");
    assert_eq!(hired.len(), 1, "{answer}");
    hired[0]["agent"].as_str().unwrap().to_owned()
}

/// The approvals as `roster --json approvals [--all]` prints them.
fn approvals(s: &Served, all: bool) -> Vec<Value> {
    s.json(if all {
        &["approvals", "--all"]
    } else {
        &["approvals"]
    })
}

fn approval(s: &Served, id: &str) -> Value {
    approvals(s, true)
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("no approval {id}"))
}

fn hire(g: &mut Gateway, name: &str, caps: &[&str]) -> Result<Value, Value> {
    g.call("hire", json!({ "name": name, "grants": caps }))
}

fn delegate(g: &mut Gateway, to: &str, cap: &str) -> Result<Value, Value> {
    g.call("delegate", json!({ "to": to, "capability": cap }))
}

/// The grants of the lead in the first test.
const LEAD: &[&str] = &[
    "agent.hire@team:lab",
    "grant.delegate@team:lab",
    "email.send@mailbox:alice",
    "report.read@doc:*",
    "spend.usd@*,budget=10",
    "deploy.run@env:*,approval",
    "audit.read@log:*,expires=2099-01-01T00:00:00Z",
];

#[test]
fn no_agent_passes_on_more_than_it_holds_and_a_revoked_grant_voids_what_derives_from_it() {
    let s = served();
    s.ok(&["team", "create", "lab"]);
    s.ok(&["team", "create", "ops"]);
    let mut args = Vec::new();
    for g in LEAD {
        args.extend(["--grant", g]);
    }
    let lead = s.hire_into("lab", "lead", &args);
    let outsider = s.hire_into("ops", "outsider", &[]);
    let mut g = Gateway::connect(&s, &lead);

    // A hire within the lead's grants works, and its grant derives from the lead's.
    let ok = hire(&mut g, "mate", &["email.send@mailbox:alice"]).unwrap();
    let mate = hired(&ok);
    let lead_email = grant(&s, "lab/lead", "email.send@mailbox:alice")["id"].clone();
    assert_eq!(
        grant(&s, "lab/mate", "email.send@mailbox:alice")["parent"],
        lead_email
    );
    s.wait_up("mate");

    // Hiring with a wider grant than the lead's, by each trick: refused, recorded, nobody
    // hired, no grant issued, the hire grant's budget untouched.
    let hire_grant = grant(&s, "lab/lead", "agent.hire@team:lab");
    assert_eq!(hire_grant["spent"], 1);
    let tricks: &[(&[&str], &[&str])] = &[
        (&["email.*@mailbox:alice"], &["asks for more than"]),
        (&["email.send@mailbox:*"], &["asks for more than"]),
        (&["report.read@doc:**"], &["asks for more than"]),
        (&["report.read@**"], &["asks for more than"]),
        (
            &["spend.usd@*,budget=11"],
            &["budget=11 is above the budget=10"],
        ),
        (&["spend.usd@*"], &["must keep a budget of at most 10"]),
        (&["deploy.run@env:prod"], &["must keep `approval`"]),
        (
            &["audit.read@log:x,expires=2100-01-01T00:00:00Z"],
            &["is later than the expiry"],
        ),
        (&["audit.read@log:x"], &["must expire no later"]),
        // Its own built-ins, wider: another team's, or without the team.
        (&["agent.hire@team:ops"], &["asks for more than"]),
        (&["grant.delegate@**"], &["asks for more than"]),
        // One wide grant among narrow ones refuses the whole hire.
        (
            &[
                "email.send@mailbox:alice",
                "report.read@doc:x",
                "email.*@**",
            ],
            &["email.*@**"],
        ),
    ];
    for (caps, words) in tricks {
        let why = refused(&s, &lead, "agent.hire", "team:lab", || {
            hire(&mut g, "wide", caps)
        });
        says(&why, words);
    }
    assert!(s
        .ok(&["--json", "agents", "--all"])
        .lines()
        .all(|l| !l.contains("\"wide\"")));
    assert_eq!(grant(&s, "lab/lead", "agent.hire@team:lab")["spent"], 1);

    // Delegating to a teammate, by the same tricks: refused, recorded, no grant issued.
    let delegations: &[(&str, &[&str])] = &[
        ("email.*@mailbox:alice", &["asks for more than"]),
        ("report.read@doc:**", &["asks for more than"]),
        ("spend.usd@*,budget=11", &["above the budget=10"]),
        ("spend.usd@*", &["must keep a budget"]),
        ("deploy.run@env:prod", &["must keep `approval`"]),
        (
            "audit.read@log:x,expires=2100-01-01T00:00:00Z",
            &["later than the expiry"],
        ),
        ("audit.read@log:x", &["must expire no later"]),
    ];
    for (cap, words) in delegations {
        let why = refused(&s, &lead, "grant.delegate", "team:lab", || {
            delegate(&mut g, &mate, cap)
        });
        says(&why, words);
    }
    // From a grant that is not its own (the teammate's, derived from its own).
    let mates = grant(&s, "lab/mate", "email.send@mailbox:alice")["id"].clone();
    let why = refused(&s, &lead, "grant.delegate", "team:lab", || {
        g.call(
            "delegate",
            json!({ "to": mate, "capability": "email.send@mailbox:alice", "from": mates }),
        )
    });
    says(&why, &["is not held by", &lead]);
    // Into another team, even what it holds.
    let why = refused(&s, &lead, "grant.delegate", "team:ops", || {
        delegate(&mut g, &outsider, "report.read@doc:x")
    });
    says(&why, &["grant.delegate on team:ops"]);
    assert_eq!(grants(&s, "lab/mate").len(), 1);
    assert!(grants(&s, "ops/outsider").is_empty());
    // Within its grants, delegating works.
    let ok = delegate(&mut g, &mate, "report.read@doc:x").unwrap();
    assert_eq!(
        answered(&ok, "GrantIssued")[0]["parent"],
        grant(&s, "lab/lead", "report.read@doc:*")["id"]
    );

    // The teammate holds no hire grant: it cannot hire at all.
    let mut m = Gateway::connect(&s, &mate);
    let why = refused(&s, &mate, "agent.hire", "team:lab", || {
        hire(&mut m, "sub", &["email.send@mailbox:alice"])
    });
    says(&why, &["no grant allows agent.hire on team:lab"]);

    // Revoking the lead's grant voids the teammate's derived one: its next act is refused and
    // recorded, nothing is performed; its other grant (derived from another of the lead's)
    // still holds.
    let act = json!({ "action": "email.send", "resource": "mailbox:alice" });
    m.call("act", act.clone()).unwrap();
    s.ok(&["revoke", lead_email.as_str().unwrap()]);
    let why = refused(&s, &mate, "email.send", "mailbox:alice", || {
        m.call("act", act.clone())
    });
    says(&why, &["revoked", lead_email.as_str().unwrap()]);
    assert_eq!(
        grant(&s, "lab/mate", "email.send@mailbox:alice")["active"],
        false
    );
    assert_eq!(grant(&s, "lab/mate", "report.read@doc:x")["active"], true);
    // The lead cannot pass the revoked grant on either.
    let why = refused(&s, &lead, "grant.delegate", "team:lab", || {
        delegate(&mut g, &mate, "email.send@mailbox:alice")
    });
    says(&why, &["not in force", "revoked"]);

    // From inside a container: a boss that may hire once.
    let boss = s.hire_into(
        "lab",
        "boss",
        &[
            "--grant",
            "agent.hire@team:lab,budget=1",
            "--grant",
            "grant.delegate@team:lab",
            "--grant",
            "agent.retire@team:lab",
            "--grant",
            "email.send@mailbox:*,budget=5",
        ],
    );
    let boss_email = grant(&s, "lab/boss", "email.send@mailbox:*,budget=5")["id"].clone();
    let out = inside(
        &s,
        "lab/boss",
        &[
            "hire",
            "helper",
            "--role",
            "helper",
            "--grant",
            "email.send@mailbox:team,budget=2",
            "--grant",
            "agent.hire@team:lab,budget=1",
        ],
    )
    .unwrap();
    let helper = hired(&out);
    assert_eq!(
        grant(&s, "lab/helper", "email.send@mailbox:team,budget=2")["parent"],
        boss_email
    );
    let boss_hire = grant(&s, "lab/boss", "agent.hire@team:lab,budget=1");
    assert_eq!(boss_hire["spent"], 1);
    assert_eq!(
        grant(&s, "lab/helper", "agent.hire@team:lab,budget=1")["parent"],
        boss_hire["id"]
    );
    s.wait_up("helper");
    let h = s.agent("helper");
    assert_eq!(h["id"], helper.as_str());
    assert_eq!((&h["parent"], &h["role"]), (&json!(boss), &json!("helper")));
    let volume = format!("roster-{}-{helper}-home", s.ns);
    assert!(
        common::docker(&["volume", "inspect", &volume])
            .status
            .success(),
        "no home volume {volume}"
    );
    // Its one hire is spent: a second is refused by the budget, and recorded.
    let why = refused(&s, &boss, "agent.hire", "team:lab", || {
        inside(
            &s,
            "lab/boss",
            &["hire", "helper2", "--grant", "email.send@mailbox:team"],
        )
    });
    says(&why, &["budget exhausted"]);
    // Nor can it hire through its hire: the helper's hire grant draws on the boss's, spent.
    let why = refused(&s, &helper, "agent.hire", "team:lab", || {
        inside(&s, "lab/helper", &["hire", "helper2"])
    });
    says(
        &why,
        &["budget exhausted", boss_hire["id"].as_str().unwrap()],
    );
    assert!(s
        .ok(&["--json", "agents", "--all"])
        .lines()
        .all(|l| !l.contains("\"helper2\"")));
    // Delegating from inside: within its grant, yes; without the budget, no.
    let out = inside(
        &s,
        "lab/boss",
        &["delegate", &helper, "email.send@mailbox:bob,budget=1"],
    )
    .unwrap();
    assert_eq!(answered(&out, "GrantIssued")[0]["parent"], boss_email);
    let why = refused(&s, &boss, "grant.delegate", "team:lab", || {
        inside(
            &s,
            "lab/boss",
            &["delegate", &helper, "email.send@mailbox:bob"],
        )
    });
    says(&why, &["must keep a budget"]);
    // The hire cannot depose its hirer.
    let why = refused(&s, &helper, "agent.retire", "team:lab", || {
        inside(&s, "lab/helper", &["retire", &boss])
    });
    says(&why, &["no grant allows agent.retire on team:lab"]);
    // Revoking the boss's grant voids both of the helper's grants derived from it, and its
    // acts; the one derived from another grant of the boss's stays in force.
    s.ok(&["revoke", boss_email.as_str().unwrap()]);
    let held = grants(&s, "lab/helper");
    assert_eq!(held.len(), 3, "{held:?}");
    for g in held {
        let email = g["capability"].as_str().unwrap().starts_with("email.send@");
        assert_eq!(g["active"], !email, "{g}");
    }
    let why = refused(&s, &helper, "email.send", "mailbox:team", || {
        inside(&s, "lab/helper", &["act", "email.send", "mailbox:team"])
    });
    says(&why, &["revoked"]);
    // The boss retires its hire from inside: its container goes away.
    let out = inside(&s, "lab/boss", &["retire", &helper]).unwrap();
    assert_eq!(answered(&out, "AgentRetired").len(), 1, "{out}");
    assert_eq!(s.agent("helper")["status"], "retired");
    wait_for("helper's container to go", Duration::from_secs(60), || {
        !s.agent("helper")["container"]
            .as_str()
            .is_some_and(|c| c.starts_with("up"))
    });
}

#[test]
fn teammates_never_overspend_a_shared_budget_and_never_decide_an_approval() {
    let s = served();
    s.ok(&["team", "create", "lab"]);
    let lead = s.hire_into(
        "lab",
        "lead",
        &[
            "--grant",
            "agent.hire@team:lab",
            "--grant",
            "spend.usd@*,budget=10",
            "--grant",
            "deploy.run@env:*,approval",
        ],
    );
    let mut g = Gateway::connect(&s, &lead);
    let caps = ["spend.usd@*,budget=10", "deploy.run@env:*,approval"];
    let a = hired(&hire(&mut g, "a", &caps).unwrap());
    let b = hired(&hire(&mut g, "b", &caps).unwrap());
    s.wait_up("a");
    s.wait_up("b");

    // Both spend at once from many connections, far past the lead's budget of 10 that both
    // grants derive from: exactly 10 units are performed, every other call is refused for
    // the budget and recorded.
    const CONNECTIONS: usize = 4;
    const CALLS: usize = 6;
    let before = decisions(&s).len();
    let mut conns = Vec::new();
    for agent in [&a, &b] {
        for _ in 0..CONNECTIONS {
            conns.push((agent.clone(), Gateway::connect(&s, agent)));
        }
    }
    let start = std::sync::Barrier::new(conns.len());
    let outcomes: Vec<(String, Result<Value, Value>)> = std::thread::scope(|scope| {
        let threads: Vec<_> = conns
            .into_iter()
            .map(|(agent, mut conn)| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let ids: Vec<u64> = (0..CALLS)
                        .map(|i| {
                            conn.send(
                                "act",
                                json!({ "action": "spend.usd", "resource": format!("vendor:v{i}") }),
                            )
                        })
                        .collect();
                    ids.into_iter()
                        .map(|id| (agent.clone(), conn.answer(id, ANSWER)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    let total = 2 * CONNECTIONS * CALLS;
    let performed = outcomes.iter().filter(|(_, r)| r.is_ok()).count();
    assert_eq!(performed, 10, "{outcomes:?}");
    for (_, r) in &outcomes {
        if let Err(e) = r {
            assert_eq!(e["code"], "denied", "{e}");
            says(e["message"].as_str().unwrap(), &["budget exhausted"]);
        }
    }
    let new: Vec<Value> = decisions(&s).into_iter().skip(before).collect();
    let of = |kind: &str| {
        new.iter()
            .filter_map(|e| e["event"].get(kind).cloned())
            .collect::<Vec<_>>()
    };
    let spent: u64 = of("ActionPerformed")
        .iter()
        .map(|p| {
            assert_eq!(p["action"], "spend.usd", "{p}");
            p["amount"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(spent, 10);
    let denials = of("AccessDenied");
    assert_eq!(denials.len(), total - 10, "every refusal is recorded");
    for agent in [&a, &b] {
        let told = outcomes
            .iter()
            .filter(|(who, r)| who == agent && r.is_err())
            .count();
        let recorded = denials.iter().filter(|d| d["agent"] == agent.as_str());
        assert_eq!(recorded.count(), told, "the refusals of {agent}");
    }
    assert_eq!(
        new.len(),
        total,
        "nothing but the uses and the refusals: {new:?}"
    );
    assert_eq!(grant(&s, "lab/lead", "spend.usd@*,budget=10")["spent"], 10);
    let both = grant(&s, "lab/a", "spend.usd@*,budget=10")["spent"]
        .as_u64()
        .unwrap()
        + grant(&s, "lab/b", "spend.usd@*,budget=10")["spent"]
            .as_u64()
            .unwrap();
    assert_eq!(both, 10);

    // Hires at once from several connections against a hire budget of 1: one is hired, the
    // others are refused and recorded.
    let recruiter = s.hire_into(
        "lab",
        "recruiter",
        &["--grant", "agent.hire@team:lab,budget=1"],
    );
    let before = decisions(&s).len();
    let conns: Vec<Gateway> = (0..3).map(|_| Gateway::connect(&s, &recruiter)).collect();
    let start = std::sync::Barrier::new(conns.len());
    let answers: Vec<Result<Value, Value>> = std::thread::scope(|scope| {
        let threads: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut conn)| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    hire(&mut conn, &format!("r{i}"), &[])
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let winners: Vec<&Value> = answers.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    for e in answers.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e["code"], "denied", "{e}");
        says(e["message"].as_str().unwrap(), &["budget exhausted"]);
    }
    let new: Vec<Value> = decisions(&s).into_iter().skip(before).collect();
    let mut kinds: Vec<&str> = new
        .iter()
        .filter_map(|e| e["event"].as_object()?.keys().next().map(String::as_str))
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "AccessDenied",
            "AccessDenied",
            "ActionPerformed",
            "AgentHired"
        ],
        "one hire (its use of the grant, the agent) and two refusals: {new:?}"
    );
    for d in new.iter().filter_map(|e| e["event"].get("AccessDenied")) {
        assert_eq!(
            (&d["agent"], &d["action"], &d["resource"]),
            (&json!(recruiter), &json!("agent.hire"), &json!("team:lab")),
            "{d}"
        );
    }
    assert_eq!(
        grant(&s, "lab/recruiter", "agent.hire@team:lab,budget=1")["spent"],
        1
    );
    let winner = answered(winners[0], "AgentHired")[0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    s.wait_up(&winner);

    // An approval is the operator's to decide: the asking agent cannot approve it, a teammate
    // cannot refuse it, and neither is anything but a recorded refusal.
    let mut ga = Gateway::connect(&s, &a);
    let mut gb = Gateway::connect(&s, &b);
    let prod = json!({ "action": "deploy.run", "resource": "env:prod", "timeout_secs": 0 });
    let e = ga.call("act", prod.clone()).unwrap_err();
    assert_eq!(e["code"], "pending", "{e}");
    let waiting = approvals(&s, false);
    assert_eq!(waiting.len(), 1);
    let id = waiting[0]["id"].as_str().unwrap().to_owned();
    says(e["message"].as_str().unwrap(), &[&id]);
    let on_it = format!("approval:{id}");
    let why = refused(&s, &a, "approval.decide", &on_it, || {
        ga.call(
            "decide_approval",
            json!({ "approval": id, "approved": true }),
        )
    });
    says(&why, &["only an operator may decide an approval"]);
    let why = refused(&s, &b, "approval.decide", &on_it, || {
        gb.call(
            "decide_approval",
            json!({ "approval": id, "approved": false, "note": "mine now" }),
        )
    });
    says(&why, &["only an operator"]);
    // From inside the container, with roster-agent's generic call.
    let params = json!({ "approval": id, "approved": true }).to_string();
    let why = refused(&s, &a, "approval.decide", &on_it, || {
        inside(&s, "lab/a", &["call", "decide_approval", &params])
    });
    says(&why, &["only an operator"]);
    // An id the runtime never issued: refused, recorded all the same.
    let unknown = "apr_0192f0c0000070008000000000000001";
    let why = refused(
        &s,
        &a,
        "approval.decide",
        &format!("approval:{unknown}"),
        || {
            ga.call(
                "decide_approval",
                json!({ "approval": unknown, "approved": true }),
            )
        },
    );
    says(&why, &["does not exist"]);
    let ap = approval(&s, &id);
    assert_eq!(
        (&ap["state"], &ap["decided_by"]),
        (&json!("waiting"), &Value::Null)
    );

    // Using an approval that is not one's own, or for something else: refused and recorded,
    // whether it still waits or was granted, and it stays unused.
    let with = |resource: &str| json!({ "action": "deploy.run", "resource": resource, "approval": id, "timeout_secs": 0 });
    let why = refused(&s, &b, "deploy.run", "env:prod", || {
        gb.call("act", with("env:prod"))
    });
    says(&why, &["another agent, action, resource or amount"]);
    let why = refused(&s, &a, "deploy.run", "env:staging", || {
        ga.call("act", with("env:staging"))
    });
    says(&why, &["another agent, action, resource or amount"]);
    // Its own, still waiting, for exactly what it asked: pending again, nothing recorded.
    let log = decisions(&s);
    let e = ga.call("act", with("env:prod")).unwrap_err();
    assert_eq!(e["code"], "pending", "{e}");
    assert_eq!(decisions(&s), log);
    s.ok(&["approve", &id]);
    let why = refused(&s, &b, "deploy.run", "env:prod", || {
        gb.call("act", with("env:prod"))
    });
    says(&why, &["another agent"]);
    let why = refused(&s, &a, "deploy.run", "env:staging", || {
        ga.call("act", with("env:staging"))
    });
    says(&why, &["another agent, action, resource or amount"]);
    let why = refused(&s, &a, "approval.decide", &on_it, || {
        ga.call(
            "decide_approval",
            json!({ "approval": id, "approved": false }),
        )
    });
    says(&why, &["only an operator"]);
    let ap = approval(&s, &id);
    assert_eq!(
        (&ap["state"], &ap["decided_by"]),
        (&json!("approved"), &json!("operator:tester"))
    );
    // The one it was granted for still works, once: used from several connections at once,
    // one use is performed and the others are refused as used, each recorded.
    let before = decisions(&s).len();
    let conns: Vec<Gateway> = (0..3).map(|_| Gateway::connect(&s, &a)).collect();
    let start = std::sync::Barrier::new(conns.len());
    let answers: Vec<Result<Value, Value>> = std::thread::scope(|scope| {
        let threads: Vec<_> = conns
            .into_iter()
            .map(|mut conn| {
                let (start, use_it) = (&start, with("env:prod"));
                scope.spawn(move || {
                    start.wait();
                    conn.call("act", use_it)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let used: Vec<&Value> = answers.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(used.len(), 1, "{answers:?}");
    assert_eq!(used[0]["approval"], id.as_str(), "{answers:?}");
    let new: Vec<Value> = decisions(&s).into_iter().skip(before).collect();
    let performed: Vec<&Value> = new
        .iter()
        .filter_map(|e| e["event"].get("ActionPerformed"))
        .collect();
    assert_eq!(performed.len(), 1, "{new:?}");
    assert_eq!(performed[0]["approval"], id.as_str());
    for e in answers.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(e["code"], "denied", "{e}");
        says(e["message"].as_str().unwrap(), &["already used"]);
    }
    let denials: Vec<&Value> = new
        .iter()
        .filter_map(|e| e["event"].get("AccessDenied"))
        .collect();
    assert_eq!((denials.len(), new.len()), (2, 3), "{new:?}");
    for d in denials {
        assert_eq!(
            (&d["agent"], &d["action"], &d["resource"]),
            (&json!(a), &json!("deploy.run"), &json!("env:prod")),
            "{d}"
        );
    }
    assert_eq!(approval(&s, &id)["state"], "used");
}
