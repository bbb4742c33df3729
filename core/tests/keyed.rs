//! Keyed calls: `decide` records `CallKeyed` first in the decision that carries a keyed `act`
//! or `delegate` out, refuses a key the agent holds, and the fold keeps an agent's last
//! `MAX_KEYS` keys (dropping them at retirement); an imported log's `CallKeyed` obeys the
//! rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use common::{cap, operator, seal_decision, Harness};
use roster_core::actor::Actor;
use roster_core::capability::{Action, Amount, Resource};
use roster_core::command::{act_digest, delegate_digest, Command, Decision, Rejection};
use roster_core::envelope::Hash;
use roster_core::event::Event;
use roster_core::id::{AgentId, ApprovalId, TeamId};
use roster_core::name::CallKey;
use roster_core::world::{FoldError, MAX_KEYS};

fn key(s: &str) -> CallKey {
    CallKey::parse(s).unwrap()
}

fn act(res: &str, n: u64, key: Option<CallKey>, approval: Option<ApprovalId>) -> Command {
    Command::Act {
        action: Action::parse("spend.usd").unwrap(),
        resource: Resource::parse(res).unwrap(),
        amount: Amount::new(n).unwrap(),
        args: BTreeMap::new(),
        approval,
        key,
    }
}

fn digest(res: &str, n: u64) -> Hash {
    act_digest(
        &Action::parse("spend.usd").unwrap(),
        &Resource::parse(res).unwrap(),
        Amount::new(n).unwrap(),
        &BTreeMap::new(),
    )
}

/// A team with `lead` (spend, delegate, hire; approval for `vendor:big`) and its hire `mate`.
fn setup() -> (Harness, TeamId, AgentId, AgentId) {
    let mut h = Harness::new();
    let team = h.team("research");
    let lead = h.hire_as(
        &operator(),
        team,
        "lead",
        &[
            "spend.usd@vendor:acme,budget=100",
            "spend.usd@vendor:big,approval",
            "grant.delegate@team:research",
            "agent.hire@team:research",
        ],
    );
    let mate = h.hire_as(&Actor::Agent(lead), team, "mate", &[]);
    (h, team, lead, mate)
}

#[test]
fn a_keyed_act_records_its_key_first_and_is_refused_again() {
    let (mut h, _team, lead, _) = setup();
    let by = Actor::Agent(lead);
    let envs = h.ok(act("vendor:acme", 2, Some(key("k-1")), None), &by);
    assert_eq!(envs.len(), 2);
    match &envs[0].event {
        Event::CallKeyed {
            agent,
            key: k,
            digest: d,
            outcome,
        } => {
            assert_eq!((*agent, k, *outcome), (lead, &key("k-1"), 1));
            assert_eq!(*d, digest("vendor:acme", 2));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(envs[1].event, Event::ActionPerformed { .. }));
    let held = h.world.keyed(lead, &key("k-1")).unwrap();
    assert_eq!((held.seq, held.outcome), (envs[0].seq, 1));

    // The same call again: refused (the runtime answers it from the log before deciding), and
    // nothing spent.
    let spent = h.world.grants_of(lead).map(|g| g.spent).sum::<u64>();
    let r = h
        .run(act("vendor:acme", 2, Some(key("k-1")), None), &by)
        .unwrap_err();
    assert!(
        matches!(*r.rejection, Rejection::KeyReused { same: true, .. }),
        "{r}"
    );
    // Another call under the key: refused, and the refusal recorded.
    let before = h.log.len();
    let r = h
        .run(act("vendor:acme", 3, Some(key("k-1")), None), &by)
        .unwrap_err();
    assert!(
        matches!(*r.rejection, Rejection::KeyReused { same: false, .. }),
        "{r}"
    );
    assert!(r.to_string().contains("used for another call"), "{r}");
    assert!(matches!(
        &h.log[before].event,
        Event::AccessDenied { agent, action, .. } if *agent == lead && action.as_str() == "spend.usd"
    ));
    assert_eq!(h.world.grants_of(lead).map(|g| g.spent).sum::<u64>(), spent);
    // Without a key, or with another, the call is carried out as usual.
    h.ok(act("vendor:acme", 2, None, None), &by);
    h.ok(act("vendor:acme", 2, Some(key("k-2")), None), &by);
}

#[test]
fn a_keyed_act_waiting_for_approval_records_its_key_when_performed() {
    let (mut h, _team, lead, _) = setup();
    let by = Actor::Agent(lead);
    let envs = h.ok(act("vendor:big", 1, Some(key("big")), None), &by);
    let Event::CallApprovalRequested { approval, .. } = envs[0].event else {
        panic!("{:?}", envs[0].event);
    };
    assert_eq!(envs.len(), 1, "no key for a call only asked for");
    assert!(h.world.keyed(lead, &key("big")).is_none());
    h.ok(
        Command::DecideApproval {
            approval,
            approved: true,
            note: None,
        },
        &operator(),
    );
    let envs = h.ok(act("vendor:big", 1, Some(key("big")), Some(approval)), &by);
    assert!(matches!(envs[0].event, Event::CallKeyed { outcome: 1, .. }));
    assert!(matches!(
        envs[1].event,
        Event::ActionPerformed { approval: Some(a), .. } if a == approval
    ));
    // The digest leaves the approval out: the same call without it is the same call.
    assert_eq!(
        h.world.keyed(lead, &key("big")).unwrap().digest,
        digest("vendor:big", 1)
    );
}

#[test]
fn a_keyed_delegate_keys_its_use_and_its_grant() {
    let (mut h, _team, lead, mate) = setup();
    let by = Actor::Agent(lead);
    let grant = |k: Option<CallKey>| Command::Grant {
        to: mate,
        capability: cap("spend.usd@vendor:acme,budget=5"),
        from: None,
        key: k,
    };
    let envs = h.ok(grant(Some(key("d-1"))), &by);
    assert_eq!(envs.len(), 3);
    match &envs[0].event {
        Event::CallKeyed {
            digest, outcome, ..
        } => {
            assert_eq!(*outcome, 2);
            assert_eq!(
                *digest,
                delegate_digest(mate, &cap("spend.usd@vendor:acme,budget=5"), None)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(envs[1].event, Event::ActionPerformed { .. }));
    assert!(matches!(envs[2].event, Event::GrantIssued { .. }));
    let r = h.run(grant(Some(key("d-1"))), &by).unwrap_err();
    assert!(matches!(
        *r.rejection,
        Rejection::KeyReused { same: true, .. }
    ));
    // One key space per agent across methods: an act under a delegate's key is another call.
    let r = h
        .run(act("vendor:acme", 1, Some(key("d-1")), None), &by)
        .unwrap_err();
    assert!(matches!(
        *r.rejection,
        Rejection::KeyReused { same: false, .. }
    ));
    // Only an agent keys a call.
    let r = h.run(grant(Some(key("op"))), &operator()).unwrap_err();
    assert!(matches!(*r.rejection, Rejection::AgentOnly(_)), "{r}");
}

#[test]
fn a_refused_keyed_call_holds_no_key() {
    let (mut h, _team, lead, _) = setup();
    let by = Actor::Agent(lead);
    h.run(act("vendor:acme", 1000, Some(key("k")), None), &by)
        .unwrap_err();
    assert!(h.world.keyed(lead, &key("k")).is_none());
    h.ok(act("vendor:acme", 1, Some(key("k")), None), &by);
}

#[test]
fn the_fold_keeps_an_agents_last_keys_and_drops_them_at_retirement() {
    let (mut h, team, _lead, mate) = setup();
    // Forged straight into the fold (no budget needed for a key): MAX_KEYS + 1 keys by `mate`.
    let by = Actor::Agent(mate);
    for i in 0..=MAX_KEYS {
        let decision = Decision {
            team,
            expected_version: h.world.team_version(team),
            events: vec![Event::CallKeyed {
                agent: mate,
                key: key(&format!("k{i}")),
                digest: Hash([1; 32]),
                outcome: 0,
            }],
        };
        h.commit(&decision, &by);
    }
    assert_eq!(h.world.keys_held(mate), MAX_KEYS);
    assert!(h.world.keyed(mate, &key("k0")).is_none(), "the oldest goes");
    assert!(h.world.keyed(mate, &key("k1")).is_some());
    assert!(h.world.keyed(mate, &key(&format!("k{MAX_KEYS}"))).is_some());
    // A forgotten key is a new key again.
    h.commit(
        &Decision {
            team,
            expected_version: h.world.team_version(team),
            events: vec![Event::CallKeyed {
                agent: mate,
                key: key("k0"),
                digest: Hash([2; 32]),
                outcome: 0,
            }],
        },
        &by,
    );
    assert!(h.world.keyed(mate, &key("k1")).is_none());
    // Folding the same log again gives the same keys.
    let refolded = roster_core::world::World::fold(&h.log).unwrap();
    assert_eq!(refolded, h.world);

    h.ok(Command::Retire { agent: mate }, &operator());
    assert_eq!(h.world.keys_held(mate), 0);
    assert!(h.world.keyed(mate, &key("k0")).is_none());
}

/// Seals `events` for `team` by `actor` after the harness's log and checks them on a copy.
fn forged(h: &mut Harness, team: TeamId, actor: &Actor, event: Event) -> Result<(), FoldError> {
    let decision = Decision {
        team,
        expected_version: h.world.team_version(team),
        events: vec![event],
    };
    let envs = seal_decision(
        &h.world,
        h.log.last(),
        &decision,
        actor,
        h.now,
        &mut h.entropy,
    );
    let mut world = h.world.clone();
    for env in &envs {
        world.apply_checked(env)?;
    }
    Ok(())
}

#[test]
fn forged_call_keys_are_refused() {
    let (mut h, team, lead, mate) = setup();
    h.ok(
        act("vendor:acme", 1, Some(key("k")), None),
        &Actor::Agent(lead),
    );
    let keyed = |agent, k: &str, d: u8| Event::CallKeyed {
        agent,
        key: key(k),
        digest: Hash([d; 32]),
        outcome: 1,
    };
    let says = |r: Result<(), FoldError>, needle: &str| match r {
        Err(e) => assert!(e.to_string().contains(needle), "`{e}` lacks `{needle}`"),
        Ok(()) => panic!("a forged CallKeyed was accepted ({needle})"),
    };
    // Recorded by another agent, by an operator, by the runtime.
    for actor in [Actor::Agent(mate), operator(), Actor::Runtime] {
        says(
            forged(&mut h, team, &actor, keyed(lead, "new", 1)),
            "keys its own calls",
        );
    }
    // A key the agent holds, with another digest (or the same: a call is carried out once).
    let held = h.world.keyed(lead, &key("k")).unwrap().digest;
    says(
        forged(&mut h, team, &Actor::Agent(lead), keyed(lead, "k", 9)),
        "already exists",
    );
    says(
        forged(
            &mut h,
            team,
            &Actor::Agent(lead),
            Event::CallKeyed {
                agent: lead,
                key: key("k"),
                digest: held,
                outcome: 1,
            },
        ),
        "already exists",
    );
    // The agent's own, with a new key: fine.
    forged(&mut h, team, &Actor::Agent(lead), keyed(lead, "new", 1)).unwrap();
    // A retired agent calls nothing.
    h.ok(Command::Retire { agent: mate }, &operator());
    says(
        forged(&mut h, team, &Actor::Agent(mate), keyed(mate, "late", 1)),
        "retired",
    );
}
