//! Helpers shared by the store's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use roster_core::actor::Actor;
use roster_core::capability::Capability;
use roster_core::command::{decide, Command};
use roster_core::event::AgentSpec;
use roster_core::id::{CountingEntropy, TeamId};
use roster_core::name::{Label, Name};
use roster_core::port::{AppendRequest, EventLog};
use roster_core::time::Timestamp;
use roster_core::world::World;

/// Runs one command through `decide` on the folded log and appends its events.
pub fn run(log: &dyn EventLog, world: &mut World, command: Command, entropy: &mut CountingEntropy) {
    let actor = Actor::Operator(Name::parse("ops").unwrap());
    let now = Timestamp::from_millis(1_800_000_000_000);
    let d = decide(world, command, &actor, now, entropy).unwrap();
    let envs = log
        .append(AppendRequest {
            at: None,
            team: d.team,
            expected_version: d.expected_version,
            events: d.events,
            actor,
            causation: None,
        })
        .unwrap();
    for e in &envs {
        world.apply(e).unwrap();
    }
}

/// A small consistent log: `teams` teams with `agents` agents each, every agent with a grant.
pub fn populate(log: &dyn EventLog, teams: usize, agents: usize) -> World {
    let mut world = World::fold(&log.read(0, usize::MAX).unwrap()).unwrap();
    // Seeded by the log's length, so a second call mints other ids.
    let mut entropy = CountingEntropy::new(1_000_000 * (1 + world.next_seq()));
    for t in 0..teams {
        let name = Name::parse(&format!("team-{t}-{}", world.next_seq())).unwrap();
        run(
            log,
            &mut world,
            Command::CreateTeam { name: name.clone() },
            &mut entropy,
        );
        let team: TeamId = world.team_named(&name).unwrap().id;
        for a in 0..agents {
            run(
                log,
                &mut world,
                Command::Hire {
                    team,
                    name: Name::parse(&format!("agent-{a}")).unwrap(),
                    role: Label::parse("does things").unwrap(),
                    spec: AgentSpec::base(),
                    grants: vec![Capability::parse("spend.usd@*,budget=100").unwrap()],
                },
                &mut entropy,
            );
        }
    }
    world
}
