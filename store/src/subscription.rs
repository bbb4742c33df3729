//! [`Subscription`]: read a log from any position, then follow it live.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roster_core::envelope::{ChainError, Envelope, Hash};
use roster_core::port::{EventLog, LogError};

/// How many envelopes one storage read fetches.
const BATCH: usize = 256;

/// Catch-up-then-live reading of a log from a position.
///
/// Reads storage in batches of committed events; when caught up it waits with
/// [`EventLog::wait_longer_than`] and reads again from its own position, so no event is ever
/// skipped or delivered twice, however appends and waits interleave. It also checks that each
/// delivered envelope links to the one delivered before it.
///
/// Works with `Arc<SledLog>`, `Arc<MemLog>` and `Arc<dyn EventLog>`.
#[derive(Debug)]
pub struct Subscription<L: EventLog + ?Sized = dyn EventLog> {
    log: Arc<L>,
    /// The position of the next envelope to fetch from storage.
    fetched: u64,
    /// The hash of the last fetched envelope, once known.
    last_hash: Option<Hash>,
    buffer: VecDeque<Envelope>,
}

impl<L: EventLog + ?Sized> Subscription<L> {
    /// Starts reading `log` at position `from` (0 for everything).
    pub fn new(log: Arc<L>, from: u64) -> Self {
        Self {
            log,
            fetched: from,
            last_hash: (from == 0).then_some(Hash::ZERO),
            buffer: VecDeque::new(),
        }
    }

    /// The position of the next envelope this subscription delivers.
    pub fn position(&self) -> u64 {
        self.fetched - self.buffer.len() as u64
    }

    /// The next envelope, waiting up to `timeout` for one to be committed; `None` if none came.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Envelope>, LogError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(env) = self.buffer.pop_front() {
                return Ok(Some(env));
            }
            if self.fill()? {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.log.wait_longer_than(self.fetched, left);
        }
    }

    /// Reads the next batch from storage; false when there was nothing new.
    fn fill(&mut self) -> Result<bool, LogError> {
        // A batch that fails (a damaged record in it) is re-read one record at a time, so that
        // everything before the damage is delivered and the error names its exact position.
        let batch = match self.log.read(self.fetched, BATCH) {
            Ok(batch) => batch,
            Err(_) => self.log.read(self.fetched, 1)?,
        };
        if batch.is_empty() {
            return Ok(false);
        }
        for env in batch {
            if env.seq != self.fetched {
                return Err(ChainError::Gap {
                    expected: self.fetched,
                    found: env.seq,
                }
                .into());
            }
            if self.last_hash.is_some_and(|h| h != env.prev_hash()) {
                return Err(ChainError::BrokenLink { seq: env.seq }.into());
            }
            self.last_hash = Some(env.hash());
            self.fetched += 1;
            self.buffer.push_back(env);
        }
        Ok(true)
    }
}

impl<L: EventLog + ?Sized> Iterator for Subscription<L> {
    type Item = Result<Envelope, LogError>;

    /// Blocks until the next envelope is committed (never returns `None`).
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(env)) => return Some(Ok(env)),
                Ok(None) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemLog;
    use roster_core::actor::Actor;
    use roster_core::event::Event;
    use roster_core::id::{AgentId, CountingEntropy, TeamId};
    use roster_core::port::AppendRequest;
    use roster_core::time::Timestamp;

    fn append(log: &dyn EventLog, team: TeamId, n: usize) {
        let agent = AgentId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(5));
        log.append(AppendRequest {
            at: None,
            team,
            expected_version: log.team_version(team).unwrap(),
            events: vec![Event::AgentRetired { agent }; n],
            actor: Actor::Runtime,
            causation: None,
        })
        .unwrap();
    }

    #[test]
    fn catches_up_then_follows_live_without_skipping() {
        let log = Arc::new(MemLog::new());
        let team = TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(1));
        append(&*log, team, 600);
        let dynlog: Arc<dyn EventLog> = log.clone();
        let mut sub = Subscription::new(dynlog, 10);
        let writer = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    append(&*log, team, 3);
                }
            })
        };
        let mut seen = Vec::new();
        while seen.len() < 590 + 150 {
            let env = sub.next().unwrap().unwrap();
            seen.push(env.seq);
        }
        writer.join().unwrap();
        assert_eq!(seen, (10..750).collect::<Vec<_>>());
        assert_eq!(sub.position(), 750);
        assert!(sub
            .next_timeout(Duration::from_millis(20))
            .unwrap()
            .is_none());
    }
}
