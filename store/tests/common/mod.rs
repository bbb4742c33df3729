//! Helpers shared by the store's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use roster_core::actor::Actor;
use roster_core::capability::Capability;
use roster_core::command::Command;
use roster_core::event::AgentSpec;
use roster_core::id::{CountingEntropy, TeamId};
use roster_core::ledger::Ledger;
use roster_core::name::{Label, Name};
use roster_core::port::EventLog;
use roster_core::time::Timestamp;
use roster_core::world::World;

/// A small consistent log: `teams` teams with `agents` agents each, every agent with a grant.
pub fn populate<L: EventLog + ?Sized>(log: &Arc<L>, teams: usize, agents: usize) -> World {
    let mut ledger = Ledger::open(Arc::clone(log)).unwrap();
    let actor = Actor::Operator(Name::parse("ops").unwrap());
    let now = Timestamp::from_millis(1_800_000_000_000);
    let run = |ledger: &mut Ledger<L>, command, entropy: &mut CountingEntropy| {
        ledger.execute(command, &actor, now, entropy).unwrap();
    };
    // Seeded by the log's length, so a second call mints other ids.
    let mut entropy = CountingEntropy::new(1_000_000 * (1 + ledger.world().next_seq()));
    for t in 0..teams {
        let name = Name::parse(&format!("team-{t}-{}", ledger.world().next_seq())).unwrap();
        run(
            &mut ledger,
            Command::CreateTeam { name: name.clone() },
            &mut entropy,
        );
        let team: TeamId = ledger.world().team_named(&name).unwrap().id;
        for a in 0..agents {
            run(
                &mut ledger,
                Command::Hire {
                    team,
                    name: Name::parse(&format!("agent-{a}")).unwrap(),
                    role: Label::parse("does things").unwrap(),
                    spec: AgentSpec::base(),
                    disk: roster_core::limits::DiskMib::default(),
                    grants: vec![Capability::parse("spend.usd@*,budget=100").unwrap()],
                },
                &mut entropy,
            );
        }
    }
    ledger.world().clone()
}
