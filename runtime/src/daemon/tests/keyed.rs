//! Keyed `act` and `delegate` through the daemon's gateway backend (the code the agent's
//! socket calls), over a real in-memory log, a real program as the tool provider and the
//! simulated engine (no container is involved): asked again, a keyed call is answered with its
//! first outcome and carried out once — also when two calls with one key race — and another
//! call under the key is refused and recorded.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use roster_core::actor::Actor;
use roster_core::capability::{Action, Capability, Resource};
use roster_core::command::Command;
use roster_core::event::{AgentSpec, Event};
use roster_core::gateway::answer::{Answer, Performed};
use roster_core::gateway::{ActParams, Call, DelegateParams, ErrorCode, GatewayError};
use roster_core::id::AgentId;
use roster_core::name::{CallKey, Label, Name};
use roster_store::MemLog;

use super::backend::DaemonBackend;
use super::sim::SimEngine;
use super::Daemon;
use crate::app::App;
use crate::config::ExecTool;
use crate::gateway::Backend;

/// A daemon whose `spend.usd` provider is a program that counts its runs in `dir/runs`.
fn daemon(dir: &Path) -> Arc<Daemon> {
    let app = App::over(Arc::new(MemLog::new())).unwrap();
    let engine = Arc::new(SimEngine::new(0, 0, 0));
    let script = format!(
        "cat > /dev/null; echo run >> '{}/runs'; sleep 0.2; printf '{{\"ok\":true}}'",
        dir.display()
    );
    let exec = HashMap::from([(
        Action::parse("spend.usd").unwrap(),
        ExecTool {
            exec: vec!["/bin/sh".into(), "-c".into(), script],
            timeout_secs: None,
        },
    )]);
    super::sim::assemble(app, dir, engine, super::tools::Tools::new(exec, None), None)
}

fn runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs")).map_or(0, |s| s.lines().count())
}

/// A team `lab`: `lead` (spends on `vendor:acme`, delegates) and `mate`, its hire.
fn team(d: &Daemon) -> (AgentId, AgentId) {
    let op = Actor::Operator(Name::parse("op").unwrap());
    let run = |c: Command, by: &Actor| {
        d.decide(|app| app.execute(c, by))
            .unwrap()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let team = run(
        Command::CreateTeam {
            name: Name::parse("lab").unwrap(),
        },
        &op,
    )[0]
    .team;
    let hire = |name: &str, grants: &[&str], by: &Actor| {
        let envs = run(
            Command::Hire {
                team,
                name: Name::parse(name).unwrap(),
                role: Label::default(),
                spec: AgentSpec::base(),
                disk: roster_core::limits::DiskMib::default(),
                grants: grants
                    .iter()
                    .map(|g| Capability::parse(g).unwrap())
                    .collect(),
            },
            by,
        );
        envs.iter()
            .find_map(|e| match e.event {
                Event::AgentHired { agent, .. } => Some(agent),
                _ => None,
            })
            .unwrap()
    };
    let lead = hire(
        "lead",
        &[
            "spend.usd@vendor:acme,budget=100",
            "grant.delegate@team:lab",
            "agent.hire@team:lab",
        ],
        &op,
    );
    let mate = hire("mate", &[], &Actor::Agent(lead));
    (lead, mate)
}

fn spend(amount: u64, key: &str) -> ActParams {
    ActParams {
        action: Action::parse("spend.usd").unwrap(),
        resource: Resource::parse("vendor:acme").unwrap(),
        amount: Some(amount.try_into().unwrap()),
        args: Default::default(),
        timeout_secs: None,
        approval: None,
        key: Some(CallKey::parse(key).unwrap()),
    }
}

async fn act(b: &DaemonBackend, agent: AgentId, p: ActParams) -> Result<Performed, GatewayError> {
    // Kept open: the agent stays.
    let (_tx, hung_up) = tokio::sync::oneshot::channel();
    let answer = b.act(agent, p, hung_up).await;
    drop(_tx);
    answer
}

fn count(d: &Daemon, kind: &str) -> usize {
    d.read(|app| {
        app.log()
            .read(0, 10_000)
            .unwrap()
            .iter()
            .filter(|e| e.event.kind() == kind)
            .count()
    })
    .unwrap()
}

/// What `agent`'s `spend.usd` grant has spent.
fn spent(d: &Daemon, agent: AgentId) -> u64 {
    d.read(|app| {
        app.world()
            .grants_of(agent)
            .filter(|g| g.capability.to_string().starts_with("spend.usd"))
            .map(|g| g.spent)
            .sum()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_act_asked_again_is_answered_with_its_first_use_and_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let (lead, _) = team(&d);
    let b = DaemonBackend(Arc::downgrade(&d));

    let first = act(&b, lead, spend(2, "order-1")).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(first.result, serde_json::json!({"ok": true}));
    assert_eq!((runs(dir.path()), spent(&d, lead)), (1, 2));

    // The same call again, with another wait: the same use, the provider not run again.
    let mut again = spend(2, "order-1");
    again.timeout_secs = Some(5);
    let replay = act(&b, lead, again).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.result, serde_json::Value::Null);
    assert_eq!(
        (replay.performed, &replay.chain, replay.approval),
        (first.performed, &first.chain, first.approval)
    );
    assert_eq!((runs(dir.path()), spent(&d, lead)), (1, 2));
    assert_eq!(count(&d, "ActionPerformed"), 2, "the hire's and the spend");
    assert_eq!(count(&d, "CallKeyed"), 1);

    // Another call under the key: `key_reused`, recorded, nothing spent or run.
    let denied = count(&d, "AccessDenied");
    let e = act(&b, lead, spend(3, "order-1")).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyReused, "{e}");
    assert!(e.message.contains("another call"), "{e}");
    assert_eq!(count(&d, "AccessDenied"), denied + 1);
    assert_eq!((runs(dir.path()), spent(&d, lead)), (1, 2));

    // A new key is a new call.
    let other = act(&b, lead, spend(2, "order-2")).await.unwrap();
    assert_ne!(other.performed, first.performed);
    assert_eq!((runs(dir.path()), spent(&d, lead)), (2, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_calls_racing_with_one_key_are_carried_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let (lead, _) = team(&d);
    for round in 0..8 {
        let key = format!("race-{round}");
        let (b1, b2) = (
            DaemonBackend(Arc::downgrade(&d)),
            DaemonBackend(Arc::downgrade(&d)),
        );
        let (p1, p2) = (spend(1, &key), spend(1, &key));
        let one = tokio::spawn(async move { act(&b1, lead, p1).await });
        let two = tokio::spawn(async move { act(&b2, lead, p2).await });
        let (one, two) = (one.await.unwrap().unwrap(), two.await.unwrap().unwrap());
        assert_eq!(one.performed, two.performed, "round {round}");
        assert_eq!(
            [one.replayed, two.replayed].iter().filter(|r| **r).count(),
            1,
            "round {round}: exactly one replayed"
        );
    }
    assert_eq!(
        count(&d, "ActionPerformed"),
        1 + 8,
        "the hire's and the spends"
    );
    assert_eq!(count(&d, "CallKeyed"), 8);
    assert_eq!((runs(dir.path()), spent(&d, lead)), (8, 8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_delegate_asked_again_gets_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path());
    let (lead, mate) = team(&d);
    let delegate = |cap: &str, key: &str| {
        Call::Delegate(DelegateParams {
            to: mate,
            capability: Capability::parse(cap).unwrap(),
            from: None,
            key: Some(CallKey::parse(key).unwrap()),
        })
    };
    let call = |c: Call| {
        let b = DaemonBackend(Arc::downgrade(&d));
        tokio::task::block_in_place(|| b.call(lead, c))
    };
    let Answer::Committed(first) = call(delegate("spend.usd@vendor:acme,budget=5", "g-1")).unwrap()
    else {
        panic!("not a committed answer");
    };
    let kinds: Vec<_> = first.events.iter().map(|e| e.event.kind()).collect();
    assert_eq!(kinds, ["CallKeyed", "ActionPerformed", "GrantIssued"]);
    let Answer::Committed(again) = call(delegate("spend.usd@vendor:acme,budget=5", "g-1")).unwrap()
    else {
        panic!("not a committed answer");
    };
    assert_eq!(again.events, first.events);
    assert_eq!(
        count(&d, "GrantIssued"),
        4,
        "the lead's three and one delegated"
    );

    let e = call(delegate("spend.usd@vendor:acme,budget=4", "g-1")).unwrap_err();
    assert_eq!(e.code, ErrorCode::KeyReused, "{e}");
    assert_eq!(count(&d, "GrantIssued"), 4);
    assert_eq!(count(&d, "AccessDenied"), 1);
}
