//! [`MemLog`]: the log in memory. A real implementation with the same rules as [`crate::SledLog`]
//! (it shares [`crate::head`]), for unit tests of other crates and for throwaway runs — not a
//! mock. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use roster_core::envelope::Envelope;
use roster_core::id::TeamId;
use roster_core::port::{AppendRequest, Checkpoints, EventLog, LogError, LogRead, SignedHeads};
use roster_core::signed::{PublicKey, SignedHead};

use crate::clock::{self, OsEntropy};
use crate::head::Head;

#[derive(Debug)]
struct State {
    head: Head,
    entropy: OsEntropy,
    events: Vec<Envelope>,
    /// Positions of each team's events, in version order (derivable from `events`).
    by_team: HashMap<TeamId, Vec<u64>>,
    /// Consumers' positions ([`Checkpoints`]).
    checkpoints: HashMap<String, u64>,
    /// Signed heads ([`SignedHeads`]), by position and key.
    heads: BTreeMap<(u64, [u8; 32]), SignedHead>,
}

/// The event log in memory. Appends are serialized by one lock; `append` returns once the
/// events are visible to readers (memory is as durable as it gets).
#[derive(Debug)]
pub struct MemLog {
    state: Mutex<State>,
    grown: Condvar,
}

impl Default for MemLog {
    fn default() -> Self {
        Self::new()
    }
}

impl MemLog {
    /// An empty log.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                head: Head::empty(),
                entropy: OsEntropy::new(),
                events: Vec::new(),
                by_team: HashMap::new(),
                checkpoints: HashMap::new(),
                heads: BTreeMap::new(),
            }),
            grown: Condvar::new(),
        }
    }

    /// A poisoned lock only means another thread panicked while holding it; every mutation
    /// below is applied after all checks, so the state is still consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends envelopes sealed elsewhere (import, fixtures), unchanged. They must continue the
    /// log exactly: next position, linked to the last hash, each team's next version.
    pub fn append_sealed(&self, envelopes: Vec<Envelope>) -> Result<(), LogError> {
        self.append_sealed_signed(envelopes, Vec::new())
    }

    /// [`MemLog::append_sealed`], keeping `heads` (signed heads of these envelopes, checked by
    /// the caller) at the same time.
    pub fn append_sealed_signed(
        &self,
        envelopes: Vec<Envelope>,
        heads: Vec<SignedHead>,
    ) -> Result<(), LogError> {
        let mut st = self.lock();
        let mut stage = st.head.stage();
        stage.accept(&envelopes)?;
        let advance = stage.finish();
        st.head.advance(advance);
        st.push(envelopes);
        for head in heads {
            st.heads
                .insert((head.seq, head.public_key.to_bytes()), head);
        }
        drop(st);
        self.grown.notify_all();
        Ok(())
    }
}

impl State {
    fn push(&mut self, envelopes: Vec<Envelope>) {
        for env in envelopes {
            self.by_team.entry(env.team).or_default().push(env.seq);
            self.events.push(env);
        }
    }
}

fn index(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl Checkpoints for MemLog {
    fn checkpoint(&self, name: &str) -> Result<Option<u64>, LogError> {
        Ok(self.lock().checkpoints.get(name).copied())
    }

    fn set_checkpoint(&self, name: &str, seq: u64) -> Result<(), LogError> {
        self.lock().checkpoints.insert(name.to_owned(), seq);
        Ok(())
    }
}

impl SignedHeads for MemLog {
    fn signed_heads(&self) -> Result<Vec<SignedHead>, LogError> {
        Ok(self.lock().heads.values().copied().collect())
    }

    fn last_signed_head(&self) -> Result<Option<SignedHead>, LogError> {
        Ok(self.lock().heads.values().next_back().copied())
    }

    fn signed_head(&self, seq: u64, key: &PublicKey) -> Result<Option<SignedHead>, LogError> {
        Ok(self.lock().heads.get(&(seq, key.to_bytes())).copied())
    }

    fn keep_signed_head(&self, head: SignedHead) -> Result<(), LogError> {
        self.lock()
            .heads
            .insert((head.seq, head.public_key.to_bytes()), head);
        Ok(())
    }
}

impl EventLog for MemLog {
    fn append(&self, request: AppendRequest) -> Result<Vec<Envelope>, LogError> {
        let mut guard = self.lock();
        // Borrow the fields apart: the stage reads `head` while sealing draws from `entropy`.
        let st = &mut *guard;
        st.entropy.reserve(request.events.len());
        let mut stage = st.head.stage();
        let sealed = stage
            .seal(request, clock::now(), &mut st.entropy)?
            .envelopes;
        let advance = stage.finish();
        st.head.advance(advance);
        st.push(sealed.clone());
        drop(guard);
        self.grown.notify_all();
        Ok(sealed)
    }
}

impl LogRead for MemLog {
    fn len(&self) -> u64 {
        self.lock().head.len
    }

    fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, LogError> {
        let st = self.lock();
        let from = index(from).min(st.events.len());
        let end = from.saturating_add(limit).min(st.events.len());
        Ok(st.events[from..end].to_vec())
    }

    fn read_team(
        &self,
        team: TeamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, LogError> {
        let st = self.lock();
        let Some(seqs) = st.by_team.get(&team) else {
            return Ok(Vec::new());
        };
        let skip = index(from_version.max(1) - 1);
        Ok(seqs
            .iter()
            .skip(skip)
            .take(limit)
            .filter_map(|s| st.events.get(index(*s)).cloned())
            .collect())
    }

    fn team_version(&self, team: TeamId) -> Result<u64, LogError> {
        Ok(self.lock().head.version(team))
    }

    fn wait_longer_than(&self, len: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        while st.head.len <= len {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = match self.grown.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        st.head.len
    }

    fn verify(&self) -> Result<u64, LogError> {
        let st = self.lock();
        let mut prev: Option<&Envelope> = None;
        for env in &st.events {
            // An `Envelope` always carries the hash of its body; only the links can be wrong.
            env.follows(prev)?;
            prev = Some(env);
        }
        Ok(st.head.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::req;
    use roster_core::id::CountingEntropy;
    use roster_core::time::Timestamp;
    use std::sync::Arc;

    #[test]
    fn appends_reads_and_conflicts() {
        let log = MemLog::new();
        let t = TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(1));
        let u = TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(2));
        log.append(req(t, 0, 2)).unwrap();
        log.append(req(u, 0, 1)).unwrap();
        assert!(matches!(
            log.append(req(t, 1, 1)),
            Err(LogError::Conflict { actual: 2, .. })
        ));
        log.append(req(t, 2, 1)).unwrap();
        assert_eq!(log.len(), 4);
        assert_eq!(log.team_version(t).unwrap(), 3);
        let team: Vec<u64> = log
            .read_team(t, 2, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(team, [1, 3]);
        assert_eq!(log.read(3, 10).unwrap().len(), 1);
        assert!(log.read(9, 10).unwrap().is_empty());
        assert_eq!(log.verify().unwrap(), 4);
        // Ids are fresh (OS randomness), times monotonic.
        let all = log.read(0, 10).unwrap();
        assert_ne!(all[0].id, all[1].id);
        assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn waiters_wake_on_append() {
        let log = Arc::new(MemLog::new());
        let t = TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(1));
        let l2 = Arc::clone(&log);
        let waiter = std::thread::spawn(move || l2.wait_longer_than(0, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(20));
        log.append(req(t, 0, 1)).unwrap();
        assert_eq!(waiter.join().unwrap(), 1);
        assert_eq!(log.wait_longer_than(1, Duration::from_millis(10)), 1);
    }
}
