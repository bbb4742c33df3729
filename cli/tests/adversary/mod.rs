//! What the adversarial tests (`adversarial.rs`, `adversarial_budgets_and_approvals.rs`)
//! share: a daemon whose programs carry out the actions the agents may take ([`served`]), and
//! [`refused`], which checks that an attempt was refused, recorded as one `AccessDenied` naming
//! the agent and what it tried, and changed nothing else.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, dead_code)]

use serde_json::{json, Value};

use crate::common::{self, Gateway, Served};

/// A provider for each action the agents may carry out: it reads the call and answers `{}`;
/// and the smallest home disks (each is allocated whole).
const TOOLS: &str = r#"
[agent]
disk_mib = 64

[tools."email.send"]
exec = ["/bin/sh", "-c", "cat >/dev/null; echo '{}'"]
[tools."spend.usd"]
exec = ["/bin/sh", "-c", "cat >/dev/null; echo '{}'"]
[tools."deploy.run"]
exec = ["/bin/sh", "-c", "cat >/dev/null; echo '{}'"]
"#;

/// A daemon in a namespace of its own whose programs carry out email.send, spend.usd and
/// deploy.run.
pub fn served() -> Served {
    Served::configured(format!("t{:x}", common::rand_u32()), &[], Some(TOOLS))
}

/// The log without the runtime's records of containers starting and stopping, which no call
/// of an agent causes (a container may restart at any moment; that is not a change we look for).
pub fn decisions(s: &Served) -> Vec<Value> {
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
pub fn refused(
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
pub fn says(why: &str, words: &[&str]) {
    for w in words {
        assert!(why.contains(w), "`{w}` not in: {why}");
    }
}

/// `roster-agent ARGS…` inside `agent`'s container: its JSON answer, or the
/// `{"code","message"}` it printed on failure (exit 3 when `denied`).
pub fn inside(s: &Served, agent: &str, args: &[&str]) -> Result<Value, Value> {
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
pub fn grants(s: &Served, agent: &str) -> Vec<Value> {
    s.ok(&["--json", "grants", agent])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The grant of `agent` whose capability is `capability`.
pub fn grant(s: &Served, agent: &str, capability: &str) -> Value {
    grants(s, agent)
        .into_iter()
        .find(|g| g["capability"] == capability)
        .unwrap_or_else(|| panic!("{agent} holds no {capability}"))
}

/// The events of kind `kind` in a gateway answer (`{"events": [...]}`), their bodies.
pub fn answered(answer: &Value, kind: &str) -> Vec<Value> {
    answer["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {answer}"))
        .iter()
        .filter_map(|e| e["event"].get(kind).cloned())
        .collect()
}

/// The agent an answer hired.
pub fn hired(answer: &Value) -> String {
    let hired = answered(answer, "AgentHired");
    assert_eq!(hired.len(), 1, "{answer}");
    hired[0]["agent"].as_str().unwrap().to_owned()
}

/// The approvals as `roster --json approvals [--all]` prints them.
pub fn approvals(s: &Served, all: bool) -> Vec<Value> {
    s.json(if all {
        &["approvals", "--all"]
    } else {
        &["approvals"]
    })
}

/// The approval `id`, whatever its state.
pub fn approval(s: &Served, id: &str) -> Value {
    approvals(s, true)
        .into_iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("no approval {id}"))
}

/// Asks through `g` to hire `name` holding `caps`.
pub fn hire(g: &mut Gateway, name: &str, caps: &[&str]) -> Result<Value, Value> {
    g.call("hire", json!({ "name": name, "grants": caps }))
}

/// Asks through `g` to delegate `cap` to agent `to`.
pub fn delegate(g: &mut Gateway, to: &str, cap: &str) -> Result<Value, Value> {
    g.call("delegate", json!({ "to": to, "capability": cap }))
}
