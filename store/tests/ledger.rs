//! The ledger (`roster_core::ledger`) over the real logs: the one write path keeps the world
//! equal to a fold of the log whatever happens, refusals are recorded, a failed append changes
//! nothing, and a snapshot stays as it was taken while the ledger moves on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use roster_core::actor::Actor;
use roster_core::capability::{Action, Amount, Capability, Resource};
use roster_core::command::Command;
use roster_core::event::{AgentSpec, Event};
use roster_core::id::{AgentId, CountingEntropy, TeamId};
use roster_core::ledger::{ExecuteError, Ledger};
use roster_core::name::{Label, Name};
use roster_core::port::{EventLog, LogError, LogRead};
use roster_core::time::Timestamp;
use roster_core::world::World;
use roster_store::{MemLog, SledLog};

fn op() -> Actor {
    Actor::Operator(Name::parse("op").unwrap())
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn folded<L: LogRead + ?Sized>(log: &L) -> World {
    World::fold(&log.read(0, usize::MAX).unwrap()).unwrap()
}

/// A team with one agent holding `email.send@mailbox:*,budget=5`.
fn team<L: EventLog + ?Sized>(
    ledger: &mut Ledger<L>,
    e: &mut CountingEntropy,
) -> (TeamId, AgentId) {
    let created = ledger
        .execute(
            Command::CreateTeam {
                name: Name::parse("research").unwrap(),
            },
            &op(),
            at(0),
            e,
        )
        .unwrap();
    let team = created[0].team;
    let hired = ledger
        .execute(
            Command::Hire {
                team,
                name: Name::parse("scout").unwrap(),
                role: Label::default(),
                spec: AgentSpec::base(),
                disk: roster_core::limits::DiskMib::default(),
                grants: vec![Capability::parse("email.send@mailbox:*,budget=5").unwrap()],
            },
            &op(),
            at(1),
            e,
        )
        .unwrap();
    let agent = hired
        .iter()
        .find_map(|e| match e.event {
            Event::AgentHired { agent, .. } => Some(agent),
            _ => None,
        })
        .unwrap();
    (team, agent)
}

fn send(n: u64) -> Command {
    Command::Act {
        action: Action::parse("email.send").unwrap(),
        resource: Resource::parse("mailbox:alice").unwrap(),
        amount: Amount::new(n).unwrap(),
        args: Default::default(),
        approval: None,
        key: None,
    }
}

#[test]
fn the_world_is_the_fold_of_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SledLog::open(dir.path()).unwrap());
    let mut ledger = Ledger::open(Arc::clone(&log)).unwrap();
    let mut e = CountingEntropy::new(1);
    let (_, agent) = team(&mut ledger, &mut e);
    ledger
        .execute(send(2), &Actor::Agent(agent), at(2), &mut e)
        .unwrap();
    assert_eq!(ledger.world(), &folded(&*log));
    // Opened again, the ledger folds to the same world.
    drop(ledger);
    let again = Ledger::open(log).unwrap();
    assert_eq!(again.world().grants_of(agent).next().unwrap().spent, 2);
}

#[test]
fn an_agents_refusal_is_recorded_and_returned() {
    let log = Arc::new(MemLog::new());
    let mut ledger = Ledger::open(Arc::clone(&log)).unwrap();
    let mut e = CountingEntropy::new(2);
    let (_, agent) = team(&mut ledger, &mut e);
    let before = log.len();
    let refused = ledger.execute(send(6), &Actor::Agent(agent), at(2), &mut e);
    assert!(
        matches!(refused, Err(ExecuteError::Refused(_))),
        "{refused:?}"
    );
    let recorded = log.read(before, 10).unwrap();
    assert_eq!(recorded.len(), 1);
    assert!(matches!(recorded[0].event, Event::AccessDenied { .. }));
    assert_eq!(ledger.world(), &folded(&*log));
    assert_eq!(ledger.world().grants_of(agent).next().unwrap().spent, 0);
}

#[test]
fn a_failed_append_changes_nothing() {
    let log = Arc::new(MemLog::new());
    let mut ledger = Ledger::open(Arc::clone(&log)).unwrap();
    let mut e = CountingEntropy::new(3);
    let (_, agent) = team(&mut ledger, &mut e);
    // A second writer on the same log moves the team on behind the ledger's back: the ledger's
    // next decision was made on a stale version and its append is refused whole.
    let mut other = Ledger::open(Arc::clone(&log)).unwrap();
    other
        .execute(send(1), &Actor::Agent(agent), at(2), &mut e)
        .unwrap();
    let world = ledger.world().clone();
    let len = log.len();
    let failed = ledger.execute(send(1), &Actor::Agent(agent), at(3), &mut e);
    assert!(
        matches!(failed, Err(ExecuteError::Log(LogError::Conflict { .. }))),
        "{failed:?}"
    );
    assert_eq!(ledger.world(), &world);
    assert_eq!(log.len(), len);
}

#[test]
fn a_snapshot_stays_as_it_was_taken() {
    let log = Arc::new(MemLog::new());
    let mut ledger = Ledger::open(Arc::clone(&log)).unwrap();
    let mut e = CountingEntropy::new(4);
    let (_, agent) = team(&mut ledger, &mut e);
    let snapshot = ledger.snapshot();
    let then = ledger.world().clone();
    ledger
        .execute(send(3), &Actor::Agent(agent), at(2), &mut e)
        .unwrap();
    // The ledger moved on (copying the world the snapshot still holds) …
    assert_eq!(ledger.world().grants_of(agent).next().unwrap().spent, 3);
    // … and the snapshot did not, though its log reads what was appended since.
    assert_eq!(snapshot.world(), &then);
    assert_eq!(snapshot.log().len(), log.len());
    assert_eq!(ledger.world(), &folded(snapshot.log()));
}

#[test]
fn would_accept_records_nothing() {
    let log = Arc::new(MemLog::new());
    let mut ledger = Ledger::open(Arc::clone(&log)).unwrap();
    let mut e = CountingEntropy::new(5);
    let (_, agent) = team(&mut ledger, &mut e);
    let len = log.len();
    let scout = Actor::Agent(agent);
    assert!(ledger.would_accept(&send(5), &scout, at(2), &mut e));
    assert!(!ledger.would_accept(&send(6), &scout, at(2), &mut e));
    assert_eq!(log.len(), len);
}
