//! Acting under permissions, end to end on the real engine: an agent's `act` through its own
//! gateway socket is decided against its grants, waits for an operator when a grant asks for
//! approval, is recorded, and is carried out by a tool provider outside the agent — a program
//! configured in `roster.toml`, or a service on a real `nats-server` — whose answer the agent
//! gets. Each refusal is recorded; an action no provider can carry out is refused before
//! anything is recorded.
//!
//! Needs Docker, the static `roster-agent` and `nats-server` (`scripts/test` provides them);
//! without them these tests fail, loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{last_call, recording_provider, wait_for, Gateway, Served};
use roster_bus::NatsServer;
use serde_json::{json, Value};

/// Long enough for any answer that does not wait for a person.
const ANSWER: Duration = Duration::from_secs(60);

/// The grants of the acting agent.
const GRANTS: &[&str] = &[
    "email.send@mailbox:*,budget=3",
    "deploy.run@env:*,approval",
    "spend.usd@*,budget=10",
    "report.*@*",
];

fn hire_scout(s: &Served) -> String {
    s.ok(&["team", "create", "lab"]);
    let mut args = Vec::new();
    for g in GRANTS {
        args.extend(["--grant", g]);
    }
    s.hire_into("lab", "scout", &args)
}

/// The error object's code and message.
fn error(r: Result<Value, Value>) -> (String, String) {
    let e = r.expect_err("should have failed");
    (
        e["code"].as_str().unwrap().to_owned(),
        e["message"].as_str().unwrap().to_owned(),
    )
}

/// The approvals as `roster --json approvals [--all]` prints them.
fn approvals(s: &Served, all: bool) -> Vec<Value> {
    let mut args = vec!["--json", "approvals"];
    if all {
        args.push("--all");
    }
    s.ok(&args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits until an approval for `resource` waits; its id.
fn waiting_for(s: &Served, resource: &str) -> String {
    let mut id = None;
    wait_for(
        &format!("an approval request on {resource}"),
        Duration::from_secs(30),
        || {
            id = approvals(s, false)
                .into_iter()
                .find(|a| a["resource"] == resource)
                .map(|a| a["id"].as_str().unwrap().to_owned());
            id.is_some()
        },
    );
    id.unwrap()
}

/// A daemon whose programs carry out email.send and deploy.run (each recording its call in
/// `tmp` and answering `{"sent":true}`), fail at report.fail and take too long at
/// report.slow, with `scout` hired under [`GRANTS`] and connected to its gateway.
struct Programs {
    /// Scout's gateway.
    g: Gateway,
    scout: String,
    s: Served,
    /// Where the recording program keeps the last call it got ([`last_call`]).
    tmp: tempfile::TempDir,
}

fn programs() -> Programs {
    let tmp = tempfile::tempdir().unwrap();
    let provider = recording_provider(tmp.path(), r#"{"sent":true}"#);
    let config = format!(
        r#"
[tools."email.send"]
exec = ["/bin/sh", "{provider}"]
[tools."deploy.run"]
exec = ["/bin/sh", "{provider}"]
[tools."report.fail"]
exec = ["/bin/sh", "-c", "echo the printer is on fire >&2; exit 3"]
[tools."report.slow"]
exec = ["/bin/sh", "-c", "sleep 60"]
timeout_secs = 1
"#
    );
    let s = Served::configured(format!("t{:x}", common::rand_u32()), &[], Some(&config));
    let scout = hire_scout(&s);
    let g = Gateway::connect(&s, &scout);
    Programs { g, scout, s, tmp }
}

/// Scout's act of email.send on mailbox:alice, amount 2, with a subject and a recipient.
fn email_alice() -> Value {
    json!({"action": "email.send", "resource": "mailbox:alice", "amount": 2,
           "args": {"subject": "hello", "to": "alice"}})
}

#[test]
fn an_allowed_act_is_recorded_and_the_program_gets_exactly_the_authorized_call() {
    let Programs {
        mut g,
        scout,
        s,
        tmp,
    } = programs();

    // Allowed: recorded, then the provider gets exactly the authorized call and its answer is
    // the result.
    let ok = g.call("act", email_alice()).unwrap();
    assert_eq!(ok["result"], json!({"sent": true}), "{ok}");
    let chain = ok["chain"].as_array().unwrap().clone();
    assert_eq!(chain.len(), 1, "a root grant: {ok}");
    let grant = s
        .ok(&["--json", "grants", "lab/scout"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|g| g["capability"] == "email.send@mailbox:*,budget=3")
        .unwrap();
    assert_eq!(chain[0], grant["id"]);
    assert_eq!(grant["spent"], 2);
    assert_eq!(
        last_call(tmp.path()),
        json!({
            "performed": ok["performed"], "action": "email.send", "resource": "mailbox:alice",
            "amount": 2, "args": {"subject": "hello", "to": "alice"},
            "agent": {"id": scout, "name": "scout", "team": "lab"},
            "chain": chain, "approval": null,
        })
    );
    let performed: Vec<Value> = s
        .events()
        .into_iter()
        .filter(|e| e["event"].get("ActionPerformed").is_some())
        .collect();
    assert_eq!(performed.len(), 1);
    assert_eq!(performed[0]["id"], ok["performed"]);
}

#[test]
fn an_act_over_the_budget_is_refused_recorded_and_never_reaches_the_program() {
    let Programs { mut g, s, tmp, .. } = programs();
    // 2 of the budget of 3 spent.
    g.call("act", email_alice()).unwrap();

    // The budget has 1 left: 2 more is denied, recorded, and never reaches the provider.
    let denials = s.count("AccessDenied");
    let (code, why) = error(g.call(
        "act",
        json!({"action": "email.send", "resource": "mailbox:bob", "amount": 2}),
    ));
    assert_eq!(code, "denied", "{why}");
    assert!(why.contains("budget"), "{why}");
    assert_eq!(s.count("AccessDenied"), denials + 1);
    assert_eq!(last_call(tmp.path())["resource"], "mailbox:alice");

    // What is left can still be spent, from inside the container with roster-agent: the last
    // unit of the budget.
    let out = s.exec(
        "lab/scout",
        &[
            "roster-agent",
            "act",
            "email.send",
            "mailbox:bob",
            "--arg",
            "subject=from inside",
        ],
    );
    let inside: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(inside["result"], json!({"sent": true}), "{inside}");
    assert_eq!(
        last_call(tmp.path())["args"],
        json!({"subject": "from inside"})
    );
    assert_eq!(last_call(tmp.path())["performed"], inside["performed"]);
}

#[test]
fn an_act_that_needs_approval_waits_for_the_operator_and_holds_nothing_meanwhile() {
    let Programs {
        mut g,
        scout,
        s,
        tmp,
    } = programs();

    // Needs approval: the call waits; `roster approvals` shows who, what, where, how much,
    // since when; `roster approve` wakes it and the provider runs with the approval.
    let performed = s.count("ActionPerformed");
    let waiting = g.send(
        "act",
        json!({"action": "deploy.run", "resource": "env:prod", "args": {"tag": "v1"}}),
    );
    let id = waiting_for(&s, "env:prod");
    let listed = approvals(&s, false);
    let ap = listed.iter().find(|a| a["id"] == id.as_str()).unwrap();
    assert_eq!(ap["agent"], scout.as_str());
    assert_eq!(ap["agent_name"], "lab/scout");
    assert_eq!(ap["action"], "deploy.run");
    assert_eq!(ap["amount"], 1);
    assert!(ap["requested_at"].is_string(), "{ap}");
    assert_eq!(ap["state"], "waiting");
    let table = s.ok(&["approvals"]);
    for word in [
        id.as_str(),
        "lab/scout",
        "deploy.run",
        "env:prod",
        "waiting",
    ] {
        assert!(table.contains(word), "{word} not in:\n{table}");
    }
    assert_eq!(
        s.count("ActionPerformed"),
        performed,
        "nothing is carried out while it waits"
    );
    // The waiting call holds nothing: the agent's other connections, and the operator's
    // commands above, are answered meanwhile.
    let mut other = Gateway::connect(&s, &scout);
    assert_eq!(
        other.call("whoami", Value::Null).unwrap()["id"],
        scout.as_str()
    );
    s.ok(&["approve", &id, "--note", "ship it"]);
    let ok = g.answer(waiting, ANSWER).unwrap();
    assert_eq!(ok["approval"], id.as_str());
    assert_eq!(ok["result"], json!({"sent": true}));
    let call = last_call(tmp.path());
    assert_eq!(
        (&call["approval"], &call["action"], &call["args"]),
        (&json!(id), &json!("deploy.run"), &json!({"tag": "v1"}))
    );

    // An operator's refusal answers the waiting call, with the note, and is kept with it.
    let waiting = g.send(
        "act",
        json!({"action": "deploy.run", "resource": "env:staging"}),
    );
    let refused = waiting_for(&s, "env:staging");
    s.ok(&["deny", &refused, "--note", "not on a friday"]);
    let (code, why) = error(g.answer(waiting, ANSWER));
    assert_eq!(code, "denied");
    assert!(
        why.contains("not on a friday") && why.contains(&refused),
        "{why}"
    );
    let no = approvals(&s, true)
        .into_iter()
        .find(|a| a["id"] == refused.as_str())
        .unwrap();
    assert_eq!(
        (&no["state"], &no["note"]),
        (&json!("refused"), &json!("not on a friday"))
    );
}

#[test]
fn an_approval_outlives_a_wait_that_ends_first_and_is_then_used_once() {
    let Programs { mut g, s, tmp, .. } = programs();

    // A wait that ends first answers `pending` with the id; nothing is spent. The agent cannot
    // decide it itself (deciding is the operator's, on the admin socket): `decide_approval` is
    // refused and recorded, and no other name for it exists.
    let (code, why) = error(g.call(
        "act",
        json!({"action": "deploy.run", "resource": "env:prod", "timeout_secs": 0}),
    ));
    assert_eq!(code, "pending", "{why}");
    let pending = waiting_for(&s, "env:prod");
    assert!(why.contains(&pending), "{why}");
    for method in ["approve", "approval_decide"] {
        let (code, _) = error(g.call(method, json!({"approval": pending, "approved": true})));
        assert_eq!(code, "unknown_method");
    }
    let denials = s.count("AccessDenied");
    let (code, why) = error(g.call(
        "decide_approval",
        json!({"approval": pending, "approved": true}),
    ));
    assert_eq!(code, "denied", "{why}");
    assert!(why.contains("only an operator"), "{why}");
    assert_eq!(s.count("AccessDenied"), denials + 1);
    // Waiting again on it, briefly, is still pending.
    let (code, _) = error(g.call(
        "act",
        json!({"action": "deploy.run", "resource": "env:prod", "timeout_secs": 0,
               "approval": pending}),
    ));
    assert_eq!(code, "pending");
    assert_eq!(
        approvals(&s, false).len(),
        1,
        "asking again asks nothing new"
    );
    // Approved meanwhile: acting again with the id uses it.
    s.ok(&["approve", &pending]);
    let again = json!({"action": "deploy.run", "resource": "env:prod", "approval": pending});
    let ok = g.call("act", again.clone()).unwrap();
    assert_eq!(ok["approval"], pending.as_str());
    assert_eq!(last_call(tmp.path())["approval"], pending.as_str());
    // Once: a second use is refused and recorded.
    let denials = s.count("AccessDenied");
    let (code, why) = error(g.call("act", again));
    assert_eq!(code, "denied");
    assert!(why.contains("already used"), "{why}");
    assert_eq!(s.count("AccessDenied"), denials + 1);
    let used = approvals(&s, true)
        .into_iter()
        .find(|a| a["id"] == pending.as_str())
        .unwrap();
    assert_eq!(used["state"], "used");
    assert_eq!(used["decided_by"], "operator:tester");

    // Inside the container, a wait that ends first exits 6 and names the approval.
    let out = s.run(&[
        "exec",
        "lab/scout",
        "--",
        "roster-agent",
        "act",
        "deploy.run",
        "env:qa",
        "--wait",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let qa = waiting_for(&s, "env:qa");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&qa),
        "{out:?}"
    );
}

#[test]
fn an_act_no_program_can_carry_out_records_nothing_and_one_whose_program_fails_stays_recorded() {
    let Programs { mut g, s, .. } = programs();

    // No provider for spend.usd (no program, no NATS bus): refused before deciding, so
    // nothing is recorded — not even the budget's use.
    let before = s.events().len();
    let (code, why) = error(g.call(
        "act",
        json!({"action": "spend.usd", "resource": "vendor:acme", "amount": 5}),
    ));
    assert_eq!(code, "unavailable", "{why}");
    assert!(
        why.contains("[tools.\"spend.usd\"]") && why.contains("NS.tool.spend.usd"),
        "{why}"
    );
    assert_eq!(s.events().len(), before);

    // A provider that fails, or does not answer in time: a clear error; the action was
    // recorded and the spend stands.
    let performed = s.count("ActionPerformed");
    let (code, why) = error(g.call("act", json!({"action": "report.fail", "resource": "x"})));
    assert_eq!(code, "tool_failed", "{why}");
    assert!(
        why.contains("the printer is on fire") && why.contains("recorded"),
        "{why}"
    );
    let (code, why) = error(g.call("act", json!({"action": "report.slow", "resource": "x"})));
    assert_eq!(code, "tool_failed", "{why}");
    assert!(why.contains("within 1 s"), "{why}");
    assert_eq!(s.count("ActionPerformed"), performed + 2);
}

#[test]
fn a_service_on_nats_carries_out_the_action() {
    let nats = NatsServer::start().expect("nats-server is needed: run scripts/setup");
    let url = nats.url();
    let ns = format!("t{:x}", common::rand_u32());
    let s = Served::with(ns.clone(), &["--bus", &url]);
    let scout = hire_scout(&s);
    let mut g = Gateway::connect(&s, &scout);

    // Nobody answers on NS.tool.email.send yet: the action was recorded, the error says so.
    let (code, why) = error(g.call(
        "act",
        json!({"action": "email.send", "resource": "mailbox:alice"}),
    ));
    assert_eq!(code, "tool_failed", "{why}");
    assert!(
        why.contains("no tool provider for email.send")
            && why.contains(&format!("{ns}.tool.email.send")),
        "{why}"
    );
    assert_eq!(s.count("ActionPerformed"), 1);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _responder = rt.block_on(async {
        let client = roster_bus::connect_now(&url.parse().unwrap(), Duration::from_secs(5))
            .await
            .unwrap();
        let ns = roster_core::name::Name::parse(&ns).unwrap();
        let action = roster_core::capability::Action::parse("email.send").unwrap();
        roster_bus::tool::respond(client, &ns, &action, move |call| {
            let answer = json!({"queued": call.resource.to_string()});
            let _ = tx.send(call);
            answer
        })
        .await
        .unwrap()
    });
    let ok = g
        .call(
            "act",
            json!({"action": "email.send", "resource": "mailbox:bob", "args": {"subject": "hi"}}),
        )
        .unwrap();
    assert_eq!(ok["result"], json!({"queued": "mailbox:bob"}), "{ok}");
    let call = rx.recv_timeout(ANSWER).unwrap();
    assert_eq!(
        call.performed.to_string(),
        ok["performed"].as_str().unwrap()
    );
    assert_eq!(call.agent.id.to_string(), scout);
    assert_eq!(call.agent.name.as_str(), "scout");
    assert_eq!(call.agent.team.as_str(), "lab");
    assert_eq!(serde_json::to_value(&call.chain).unwrap(), ok["chain"]);
    assert_eq!(call.args.len(), 1);
    assert_eq!(call.amount.get(), 1);
    assert_eq!(call.approval, None);

    // `roster act` through the daemon reaches the same service, as the agent.
    let out = s.ok(&[
        "--json",
        "act",
        "lab/scout",
        "email.send",
        "mailbox:carol",
        "--arg",
        "subject=from the operator",
    ]);
    let ok: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ok["result"], json!({"queued": "mailbox:carol"}), "{ok}");
    let call = rx.recv_timeout(ANSWER).unwrap();
    assert_eq!(call.agent.id.to_string(), scout);
    assert_eq!(call.args.len(), 1);
    assert_eq!(
        call.performed.to_string(),
        ok["performed"].as_str().unwrap()
    );
}

/// `roster act AGENT …` while a daemon runs: the agent's own `act` on the daemon's lane, with
/// the operator at the keyboard instead of the agent's program.
#[test]
fn operators_act_as_the_agent_through_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let provider = recording_provider(tmp.path(), r#"{"sent":true}"#);
    let config = format!(
        "[tools.\"email.send\"]\nexec = [\"/bin/sh\", \"{provider}\"]\n\
         [tools.\"deploy.run\"]\nexec = [\"/bin/sh\", \"{provider}\"]\n"
    );
    let s = Served::configured(format!("t{:x}", common::rand_u32()), &[], Some(&config));
    // The act needs no container: the agent's grants are in the log.
    s.ok(&["team", "create", "lab"]);
    let mut hire = vec!["hire", "--team", "lab", "--name", "scout"];
    for g in GRANTS {
        hire.extend(["--grant", g]);
    }
    s.ok(&hire);
    let act = |args: &[&str]| {
        let mut argv = vec!["act", "lab/scout"];
        argv.extend_from_slice(args);
        s.run(&argv)
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // No provider for spend.usd on this daemon (no program, no bus): refused, nothing recorded.
    let before = s.events().len();
    let out = act(&["spend.usd", "vendor:acme", "--amount", "5"]);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(
        stderr(&out).contains("[tools.\"spend.usd\"]")
            && stderr(&out).contains("NS.tool.spend.usd"),
        "{out:?}"
    );
    assert_eq!(s.events().len(), before);

    // A program carries it out with exactly the call, and its answer is printed.
    let out = act(&[
        "email.send",
        "mailbox:alice",
        "--amount",
        "2",
        "--arg",
        "subject=hi",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.starts_with("performed email.send on mailbox:alice (amount 2) as lab/scout")
            && text
                .trim_end()
                .ends_with(r#"the provider answered {"sent":true}"#),
        "{text}"
    );
    let call = last_call(tmp.path());
    assert_eq!(
        (&call["agent"]["name"], &call["args"], &call["amount"]),
        (&json!("scout"), &json!({"subject": "hi"}), &json!(2))
    );

    // Over the budget: refused, recorded as the agent's, never reaches the provider.
    let denials = s.count("AccessDenied");
    let out = act(&["email.send", "mailbox:bob", "--amount", "2"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stderr(&out).contains("budget"), "{out:?}");
    assert_eq!(s.count("AccessDenied"), denials + 1);
    assert_eq!(last_call(tmp.path())["resource"], "mailbox:alice");

    // Needs approval: pending at once by default (exit 6, the id named) …
    let out = act(&["deploy.run", "env:prod"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let id = waiting_for(&s, "env:prod");
    assert!(
        stderr(&out).contains(&format!("--approval {id}")),
        "{out:?}"
    );
    // … then acting again with it and --wait is woken by `roster approve` and carried out.
    let waiter = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--data-dir")
        .arg(&s.dir)
        .args([
            "act",
            "lab/scout",
            "deploy.run",
            "env:prod",
            "--approval",
            &id,
        ])
        .args(["--wait", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    s.ok(&["approve", &id]);
    let out = waiter.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("approved in {id}")),
        "{out:?}"
    );
    assert_eq!(last_call(tmp.path())["approval"], id.as_str());
    // Once.
    let out = act(&["deploy.run", "env:prod", "--approval", &id]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stderr(&out).contains("already used"), "{out:?}");

    // An operator who gives up waiting (the client goes away) leaves the approval unused: it
    // is not carried out later with nobody watching.
    let mut waiter = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("--data-dir")
        .arg(&s.dir)
        .args(["act", "lab/scout", "deploy.run", "env:qa", "--wait", "600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let qa = waiting_for(&s, "env:qa");
    waiter.kill().unwrap();
    waiter.wait().unwrap();
    let performed = s.count("ActionPerformed");
    // The daemon looks for its client four times a second.
    std::thread::sleep(Duration::from_secs(2));
    s.ok(&["approve", &qa]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(s.count("ActionPerformed"), performed);
    let ap = approvals(&s, true)
        .into_iter()
        .find(|a| a["id"] == qa.as_str())
        .unwrap();
    assert_eq!(ap["state"], "approved", "{ap}");

    // So does an agent that hangs up on its gateway while it waits.
    s.wait_up("scout");
    let scout = s.agent("scout")["id"].as_str().unwrap().to_owned();
    let mut g = Gateway::connect(&s, &scout);
    g.send(
        "act",
        json!({"action": "deploy.run", "resource": "env:dev", "timeout_secs": 600}),
    );
    let dev = waiting_for(&s, "env:dev");
    drop(g);
    std::thread::sleep(Duration::from_secs(1));
    s.ok(&["approve", &dev]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        s.count("ActionPerformed"),
        performed,
        "carried out for an agent that had hung up"
    );
    let ap = approvals(&s, true)
        .into_iter()
        .find(|a| a["id"] == dev.as_str())
        .unwrap();
    assert_eq!(ap["state"], "approved", "{ap}");
}

/// An agent that lost an answer asks again with the call's key, on another connection: it gets
/// the same outcome, and the provider runs and the budget is charged once. Another call under
/// the key is refused.
#[test]
fn a_keyed_act_asked_again_is_answered_once_through_the_socket() {
    let Programs {
        mut g,
        scout,
        s,
        tmp,
    } = programs();
    let mut keyed = email_alice();
    keyed["key"] = json!("mail-1");
    let first = g.call("act", keyed.clone()).unwrap();
    assert_eq!(first["replayed"], false, "{first}");
    std::fs::remove_file(tmp.path().join("call.json")).unwrap();

    let mut again = Gateway::connect(&s, &scout);
    let second = again.call("act", keyed.clone()).unwrap();
    assert_eq!(second["replayed"], true, "{second}");
    assert_eq!(second["performed"], first["performed"]);
    assert!(
        !tmp.path().join("call.json").exists(),
        "the provider ran again"
    );
    let spent = s
        .ok(&["--json", "grants", "lab/scout"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|g| g["capability"] == "email.send@mailbox:*,budget=3")
        .unwrap()["spent"]
        .clone();
    assert_eq!(
        spent, 2,
        "charged once (twice would be over the budget of 3)"
    );

    keyed["args"]["subject"] = json!("something else");
    let (code, _) = error(again.call("act", keyed));
    assert_eq!(code, "key_reused");
}
