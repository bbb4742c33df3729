//! The end of the log as an appender sees it (length, last hash, last time, team versions), and
//! the staging of a group of appends against it. [`crate::MemLog`] and [`crate::SledLog`] share
//! this code, so both assign positions, versions, times and hashes by the same rules.
//!
//! A [`Stage`] validates requests one after the other, each against the head *plus* the
//! requests staged before it; a refused request leaves the stage as it was, so in a group commit
//! a conflicting request fails alone. Nothing touches the [`Head`] until the caller has made the
//! staged events durable and calls [`Head::advance`].

use std::collections::HashMap;

use roster_core::envelope::{Body, ChainError, Envelope, Hash};
use roster_core::event::SCHEMA_VERSION;
use roster_core::id::{Entropy, EventId, TeamId};
use roster_core::port::{AppendRequest, LogError};
use roster_core::time::Timestamp;

/// The committed end of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// Number of committed events (the next position).
    pub(crate) len: u64,
    /// Hash of the last committed event ([`Hash::ZERO`] when empty).
    pub(crate) last_hash: Hash,
    /// Time of the last committed event; new events are never earlier.
    pub(crate) last_at: Timestamp,
    /// Version of every team that has events.
    pub(crate) versions: HashMap<TeamId, u64>,
}

/// What a durable group changed; applied to the head with [`Head::advance`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advance {
    pub(crate) len: u64,
    pub(crate) last_hash: Hash,
    pub(crate) last_at: Timestamp,
    /// New versions of the teams the group wrote to.
    pub(crate) versions: HashMap<TeamId, u64>,
}

impl Head {
    /// The head of an empty log.
    pub(crate) fn empty() -> Self {
        Self {
            len: 0,
            last_hash: Hash::ZERO,
            last_at: Timestamp::EPOCH,
            versions: HashMap::new(),
        }
    }

    /// `team`'s committed version (0 without events).
    pub(crate) fn version(&self, team: TeamId) -> u64 {
        self.versions.get(&team).copied().unwrap_or(0)
    }

    /// Starts staging a group on top of this head.
    pub(crate) fn stage(&self) -> Stage<'_> {
        Stage {
            head: self,
            len: self.len,
            last_hash: self.last_hash,
            last_at: self.last_at,
            versions: HashMap::new(),
        }
    }

    /// Moves the head past a group that is now durable.
    pub(crate) fn advance(&mut self, advance: Advance) {
        self.len = advance.len;
        self.last_hash = advance.last_hash;
        self.last_at = advance.last_at;
        self.versions.extend(advance.versions);
    }
}

/// What [`Stage::seal`] made of one request: its envelopes and, for each, the canonical bytes
/// of its body — what the hash covers and what the record stores, so nothing is encoded twice.
#[derive(Debug)]
pub(crate) struct Sealed {
    pub(crate) envelopes: Vec<Envelope>,
    pub(crate) canonical: Vec<Vec<u8>>,
}

/// A group of appends being validated and sealed on top of a [`Head`].
#[derive(Debug)]
pub(crate) struct Stage<'h> {
    head: &'h Head,
    len: u64,
    last_hash: Hash,
    last_at: Timestamp,
    versions: HashMap<TeamId, u64>,
}

impl Stage<'_> {
    /// `team`'s version including what was staged.
    pub(crate) fn version(&self, team: TeamId) -> u64 {
        self.versions
            .get(&team)
            .copied()
            .unwrap_or_else(|| self.head.version(team))
    }

    /// Whether anything was staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == self.head.len
    }

    /// Validates `request` and seals its events: positions after the staged ones, versions
    /// after the team's, time `max(request.at or now, last time)`, fresh ids from `entropy`. On error the
    /// stage is unchanged.
    pub(crate) fn seal(
        &mut self,
        request: AppendRequest,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<Sealed, LogError> {
        if request.events.is_empty() {
            return Err(LogError::EmptyBatch);
        }
        let actual = self.version(request.team);
        if actual != request.expected_version {
            return Err(LogError::Conflict {
                team: request.team,
                expected: request.expected_version,
                actual,
            });
        }
        let at = request.at.unwrap_or(now).max(self.last_at);
        let mut out = Sealed {
            envelopes: Vec::with_capacity(request.events.len()),
            canonical: Vec::with_capacity(request.events.len()),
        };
        let mut version = actual;
        for event in request.events {
            version += 1;
            let body = Body {
                seq: self.len,
                id: EventId::mint(at, entropy),
                team: request.team,
                version,
                at,
                actor: request.actor.clone(),
                causation: request.causation,
                schema: SCHEMA_VERSION,
                event,
            };
            let (env, canonical) = Envelope::seal_canonical(body, self.last_hash);
            self.last_hash = env.hash();
            self.len += 1;
            out.envelopes.push(env);
            out.canonical.push(canonical);
        }
        self.last_at = at;
        self.versions.insert(request.team, version);
        Ok(out)
    }

    /// Accepts envelopes sealed elsewhere (import, fixtures): they must continue the staged
    /// log exactly — next position, linked to the last hash, each team's next version. On error
    /// the stage is unchanged.
    pub(crate) fn accept(&mut self, envelopes: &[Envelope]) -> Result<(), LogError> {
        let (mut len, mut last_hash, mut last_at) = (self.len, self.last_hash, self.last_at);
        let mut versions: HashMap<TeamId, u64> = HashMap::new();
        for env in envelopes {
            if env.seq != len {
                return Err(ChainError::Gap {
                    expected: len,
                    found: env.seq,
                }
                .into());
            }
            if env.prev_hash() != last_hash {
                return Err(ChainError::BrokenLink { seq: env.seq }.into());
            }
            let current = versions
                .get(&env.team)
                .copied()
                .unwrap_or_else(|| self.version(env.team));
            if env.version != current + 1 {
                return Err(LogError::Conflict {
                    team: env.team,
                    expected: env.version.saturating_sub(1),
                    actual: current,
                });
            }
            versions.insert(env.team, env.version);
            len += 1;
            last_hash = env.hash();
            last_at = last_at.max(env.at);
        }
        self.len = len;
        self.last_hash = last_hash;
        self.last_at = last_at;
        self.versions.extend(versions);
        Ok(())
    }

    /// What the head becomes once the staged events are durable.
    pub(crate) fn finish(self) -> Advance {
        Advance {
            len: self.len,
            last_hash: self.last_hash,
            last_at: self.last_at,
            versions: self.versions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{req, team};
    use roster_core::id::CountingEntropy;

    #[test]
    fn a_conflict_in_a_group_fails_alone() {
        let head = Head::empty();
        let (a, b) = (team(1), team(2));
        let mut e = CountingEntropy::new(0);
        let now = Timestamp::from_millis(5);
        let mut stage = head.stage();
        let first = stage.seal(req(a, 0, 2), now, &mut e).unwrap().envelopes;
        assert!(matches!(
            stage.seal(req(a, 0, 1), now, &mut e),
            Err(LogError::Conflict {
                expected: 0,
                actual: 2,
                ..
            })
        ));
        assert!(matches!(
            stage.seal(req(b, 0, 0), now, &mut e),
            Err(LogError::EmptyBatch)
        ));
        let second = stage.seal(req(b, 0, 1), now, &mut e).unwrap().envelopes;
        let third = stage.seal(req(a, 2, 1), now, &mut e).unwrap().envelopes;
        assert_eq!(
            [first[0].seq, first[1].seq, second[0].seq, third[0].seq],
            [0, 1, 2, 3]
        );
        assert_eq!(third[0].version, 3);
        assert_eq!(second[0].prev_hash(), first[1].hash());
        assert_eq!(first[0].prev_hash(), Hash::ZERO);
        let adv = stage.finish();
        let mut head = head.clone();
        head.advance(adv);
        assert_eq!((head.len, head.version(a), head.version(b)), (4, 3, 1));
        assert_eq!(head.last_hash, third[0].hash());
    }

    #[test]
    fn time_never_goes_back() {
        let mut head = Head::empty();
        head.last_at = Timestamp::from_millis(100);
        let mut stage = head.stage();
        let envs = stage
            .seal(
                req(team(1), 0, 1),
                Timestamp::from_millis(50),
                &mut CountingEntropy::new(0),
            )
            .unwrap()
            .envelopes;
        assert_eq!(envs[0].at, Timestamp::from_millis(100));
    }

    #[test]
    fn accept_checks_position_link_and_version_and_is_all_or_nothing() {
        let head = Head::empty();
        let a = team(1);
        let mut e = CountingEntropy::new(0);
        let envs = head
            .stage()
            .seal(req(a, 0, 3), Timestamp::from_millis(5), &mut e)
            .unwrap()
            .envelopes;
        let mut stage = head.stage();
        assert!(matches!(
            stage.accept(&envs[1..]),
            Err(LogError::Corrupt(ChainError::Gap {
                expected: 0,
                found: 1
            }))
        ));
        let mut swapped = envs.clone();
        swapped.swap(1, 2);
        assert!(stage.accept(&swapped).is_err());
        assert!(stage.is_empty());
        stage.accept(&envs).unwrap();
        assert_eq!(stage.version(a), 3);
    }
}
