//! Helpers shared by the store's unit tests.

use roster_core::actor::Actor;
use roster_core::event::Event;
use roster_core::id::{AgentId, CountingEntropy, TeamId};
use roster_core::port::AppendRequest;
use roster_core::time::Timestamp;

/// A team id made from `n` (equal `n`, equal team).
pub(crate) fn team(n: u64) -> TeamId {
    TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(n))
}

/// An append of `n` events to `team`, decided at version `expected`.
pub(crate) fn req(team: TeamId, expected: u64, n: usize) -> AppendRequest {
    let agent = AgentId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(9));
    AppendRequest {
        at: None,
        team,
        expected_version: expected,
        events: vec![Event::AgentRetired { agent }; n],
        actor: Actor::Runtime,
        causation: None,
    }
}
