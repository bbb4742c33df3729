//! Teammates that try to get more than they were given by acting at once, or to decide what
//! only an operator decides, end to end on the real engine. As in `adversarial.rs`, each
//! attempt goes through the agent's own gateway socket or through `roster-agent` inside its
//! container, and each must be refused with a reason, recorded as an `AccessDenied` naming that
//! agent and what it tried, and change nothing else.
//!
//! - teammates spending one shared budget at once, from many connections;
//! - hiring at once, from many connections, within a hire budget;
//! - an agent deciding an approval (its own or a teammate's), or using one that is not its
//!   own, not for this action, or not decided; and one granted approval used at once, from
//!   many connections.
//!
//! Needs Docker and the static `roster-agent` (`scripts/test` provides them); without them
//! these tests fail, loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod adversary;
mod common;

use std::time::Duration;

use adversary::{
    answered, approval, approvals, decisions, grant, hire, hired, inside, refused, says, served,
};
use common::{Gateway, Served};
use serde_json::{json, Value};

/// Long enough for any answer that does not wait for a person.
const ANSWER: Duration = Duration::from_secs(60);

/// A team lab whose `lead` (a hire grant, `spend.usd@*,budget=10` and
/// `deploy.run@env:*,approval`) has hired `a` and `b` with both of the latter, now running;
/// the teammates' ids.
struct Pair {
    a: String,
    b: String,
    s: Served,
}

fn pair() -> Pair {
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
    Pair { a, b, s }
}

/// Through `ga` (agent a's gateway), asks to deploy to env:prod without waiting: the answer is
/// `pending`, naming the one approval now waiting, whose id this returns.
fn ask_for_prod(s: &Served, ga: &mut Gateway) -> String {
    let prod = json!({ "action": "deploy.run", "resource": "env:prod", "timeout_secs": 0 });
    let e = ga.call("act", prod).unwrap_err();
    assert_eq!(e["code"], "pending", "{e}");
    let waiting = approvals(s, false);
    assert_eq!(waiting.len(), 1);
    let id = waiting[0]["id"].as_str().unwrap().to_owned();
    says(e["message"].as_str().unwrap(), &[&id]);
    id
}

/// An act of deploy.run on `resource` that uses approval `id`, not waiting.
fn with(id: &str, resource: &str) -> Value {
    json!({ "action": "deploy.run", "resource": resource, "approval": id, "timeout_secs": 0 })
}

#[test]
fn teammates_spending_one_budget_at_once_never_spend_more_than_it_holds() {
    let Pair { a, b, s, .. } = pair();

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
}

#[test]
fn hires_at_once_from_many_connections_never_exceed_a_hire_budget() {
    let s = served();
    s.ok(&["team", "create", "lab"]);

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
            "AgentDiskLimited",
            "AgentHired"
        ],
        "one hire (its use of the grant, the agent, its disk) and two refusals: {new:?}"
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
}

#[test]
fn only_an_operator_decides_an_approval() {
    let Pair { a, b, s, .. } = pair();
    let mut ga = Gateway::connect(&s, &a);
    let mut gb = Gateway::connect(&s, &b);

    // An approval is the operator's to decide: the asking agent cannot approve it, a teammate
    // cannot refuse it, and neither is anything but a recorded refusal.
    let id = ask_for_prod(&s, &mut ga);
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

    // Once the operator granted it, the agent cannot take the decision back either.
    s.ok(&["approve", &id]);
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
}

#[test]
fn an_approval_serves_only_the_agent_action_and_resource_it_was_asked_for() {
    let Pair { a, b, s, .. } = pair();
    let mut ga = Gateway::connect(&s, &a);
    let mut gb = Gateway::connect(&s, &b);
    let id = ask_for_prod(&s, &mut ga);

    // Using an approval that is not one's own, or for something else: refused and recorded,
    // whether it still waits or was granted, and it stays unused.
    let why = refused(&s, &b, "deploy.run", "env:prod", || {
        gb.call("act", with(&id, "env:prod"))
    });
    says(&why, &["another agent, action, resource or amount"]);
    let why = refused(&s, &a, "deploy.run", "env:staging", || {
        ga.call("act", with(&id, "env:staging"))
    });
    says(&why, &["another agent, action, resource or amount"]);
    // Its own, still waiting, for exactly what it asked: pending again, nothing recorded.
    let log = decisions(&s);
    let e = ga.call("act", with(&id, "env:prod")).unwrap_err();
    assert_eq!(e["code"], "pending", "{e}");
    assert_eq!(decisions(&s), log);
    s.ok(&["approve", &id]);
    let why = refused(&s, &b, "deploy.run", "env:prod", || {
        gb.call("act", with(&id, "env:prod"))
    });
    says(&why, &["another agent"]);
    let why = refused(&s, &a, "deploy.run", "env:staging", || {
        ga.call("act", with(&id, "env:staging"))
    });
    says(&why, &["another agent, action, resource or amount"]);
    let ap = approval(&s, &id);
    assert_eq!(
        (&ap["state"], &ap["decided_by"]),
        (&json!("approved"), &json!("operator:tester"))
    );
}

#[test]
fn a_granted_approval_is_used_once_even_from_many_connections_at_once() {
    let Pair { a, s, .. } = pair();
    let mut ga = Gateway::connect(&s, &a);
    let id = ask_for_prod(&s, &mut ga);
    s.ok(&["approve", &id]);

    // The one it was granted for works, once: used from several connections at once, one use
    // is performed and the others are refused as used, each recorded.
    let before = decisions(&s).len();
    let conns: Vec<Gateway> = (0..3).map(|_| Gateway::connect(&s, &a)).collect();
    let start = std::sync::Barrier::new(conns.len());
    let answers: Vec<Result<Value, Value>> = std::thread::scope(|scope| {
        let threads: Vec<_> = conns
            .into_iter()
            .map(|mut conn| {
                let (start, use_it) = (&start, with(&id, "env:prod"));
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
