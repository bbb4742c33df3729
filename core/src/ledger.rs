//! The one write path: [`Ledger::execute`] decides a command over the folded world, appends the
//! decision to the log, and folds what was committed — in that order, written once, whoever
//! drives it (the daemon, a command on a stopped store, the benches, the tests).
//!
//! A [`Snapshot`] is what a reader takes instead: the world as of one position and a handle
//! on the log that can read but not append. It is two reference counts, so it is taken in
//! nanoseconds and can be held for as long as a slow client takes to read an answer without
//! holding anything a writer waits for; the ledger's next change copies the world once
//! (copy-on-write) instead of waiting.
//!
//! No I/O of its own: the log is the [`EventLog`] port, time and randomness are arguments.

use std::sync::Arc;
use std::time::Duration;

use crate::actor::Actor;
use crate::command::{decide, Command, Decision, Rejected};
use crate::envelope::Envelope;
use crate::event::Event;
use crate::id::{Entropy, TeamId};
use crate::port::{AppendRequest, Checkpoints, EventLog, LogError, LogRead, SignedHeads};
use crate::signed::SignedHead;
use crate::time::Timestamp;
use crate::world::{FoldError, World};

/// Why [`Ledger::execute`] changed nothing (beyond, for a refused agent, its `AccessDenied`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecuteError {
    /// The rules refused the command; an agent's refusal was recorded before this was returned.
    #[error("refused: {0}")]
    Refused(#[from] Rejected),
    /// The log refused or failed the append: nothing of the decision was recorded.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The log committed events the world cannot fold: the log and the rules disagree.
    #[error("the log does not fold: {0}")]
    Fold(#[from] FoldError),
}

/// Why a log could not be opened as a ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The log could not be read.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The log's events contradict each other.
    #[error("the log does not fold: {0}")]
    Fold(#[from] FoldError),
}

/// A log and the world folded from it, changed only by [`Ledger::execute`] (or
/// [`Ledger::commit`]) so the two never disagree.
#[derive(Debug)]
pub struct Ledger<L: ?Sized> {
    log: Arc<L>,
    /// Shared with the snapshots taken since the last change; copied on the next change if any
    /// is still held.
    world: Arc<World>,
}

impl<L: EventLog + ?Sized> Ledger<L> {
    /// Folds `log` from its start.
    pub fn open(log: Arc<L>) -> Result<Self, OpenError> {
        let mut world = World::new();
        for_each(&*log, 0, u64::MAX, |e| {
            world.apply(&e).map_err(OpenError::from)
        })?;
        Ok(Ledger {
            log,
            world: Arc::new(world),
        })
    }

    /// The world as of the log's head.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The log, for those that tail it (the outbox) or read history.
    pub fn log(&self) -> &Arc<L> {
        &self.log
    }

    /// The world as it stands now and a read-only handle on the log, to read from without
    /// holding the ledger.
    pub fn snapshot(&self) -> Snapshot<L> {
        Snapshot {
            world: Arc::clone(&self.world),
            log: LogReader(Arc::clone(&self.log)),
        }
    }

    /// Folds the whole log again (after an import into an empty log).
    pub fn refold(&mut self) -> Result<(), OpenError> {
        *self = Ledger::open(Arc::clone(&self.log))?;
        Ok(())
    }

    /// Whether `command` by `actor` would be accepted at `now` (nothing is recorded): lets a
    /// caller make a slow outside check (the engine's) only for what the rules allow, and
    /// without holding the ledger meanwhile.
    pub fn would_accept(
        &self,
        command: &Command,
        actor: &Actor,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> bool {
        let at = now.max(self.world.last_at());
        decide(&self.world, command.clone(), actor, at, entropy).is_ok()
    }

    /// Decides `command` as `actor`, appends the events and folds them. A refusal of an agent
    /// still appends its `AccessDenied` record before the error is returned.
    ///
    /// The decision and its record share one instant, never earlier than the last event
    /// (`max(now, last)`): what was checked (expiries) is what the log says was checked.
    pub fn execute(
        &mut self,
        command: Command,
        actor: &Actor,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<Vec<Envelope>, ExecuteError> {
        self.execute_audited(command, actor, now, entropy, |_, _| true)
    }

    /// [`Ledger::execute`], with a say in the record of a refusal: `audit` gets the agent's
    /// `AccessDenied` decision (and its instant) before it is appended, may amend it, and
    /// returns whether to append it at all (a runtime keeping an agent's refusals from writing
    /// the log at line rate). The refusal is returned either way.
    pub fn execute_audited(
        &mut self,
        command: Command,
        actor: &Actor,
        now: Timestamp,
        entropy: &mut dyn Entropy,
        audit: impl FnOnce(&mut Decision, Timestamp) -> bool,
    ) -> Result<Vec<Envelope>, ExecuteError> {
        let at = now.max(self.world.last_at());
        match decide(&self.world, command, actor, at, entropy) {
            Ok(decision) => self.commit(decision, actor, at),
            Err(rejected) => {
                if let Some(record) = &rejected.audit {
                    let mut record = (**record).clone();
                    if audit(&mut record, at) {
                        self.commit(record, actor, at)?;
                    }
                }
                Err(ExecuteError::Refused(rejected))
            }
        }
    }

    /// Appends a decision already made (by `decide` over this ledger's world, at `at`) and folds
    /// it: for a caller that batches several decisions into one append (the benches).
    pub fn commit(
        &mut self,
        decision: Decision,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<Vec<Envelope>, ExecuteError> {
        let envelopes = self.log.append(AppendRequest {
            at: Some(at),
            team: decision.team,
            expected_version: decision.expected_version,
            events: decision.events,
            actor: actor.clone(),
            causation: None,
        })?;
        let world = Arc::make_mut(&mut self.world);
        for e in &envelopes {
            world.apply(e)?;
        }
        Ok(envelopes)
    }
}

/// True when `envelopes` hold a human's decision on an approval (what an `act` waiting for one
/// waits for).
pub fn decides_approval(envelopes: &[Envelope]) -> bool {
    envelopes
        .iter()
        .any(|e| matches!(e.body().event, Event::ApprovalDecided { .. }))
}

/// The world at one position and the log to read from, held by a reader without holding the
/// ledger. It cannot append: its log is a [`LogReader`].
#[derive(Debug)]
pub struct Snapshot<L: ?Sized> {
    world: Arc<World>,
    log: LogReader<L>,
}

impl<L: ?Sized> Clone for Snapshot<L> {
    fn clone(&self) -> Self {
        Snapshot {
            world: Arc::clone(&self.world),
            log: self.log.clone(),
        }
    }
}

impl<L: LogRead + ?Sized> Snapshot<L> {
    /// The world as it stood when the snapshot was taken.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The log, for reading (it may have grown since).
    pub fn log(&self) -> &LogReader<L> {
        &self.log
    }
}

/// A log with only its reading half ([`LogRead`], and a reader's own [`Checkpoints`]): what a
/// snapshot hands out, so a reader holds no way to append.
#[derive(Debug)]
pub struct LogReader<L: ?Sized>(Arc<L>);

impl<L: ?Sized> Clone for LogReader<L> {
    fn clone(&self) -> Self {
        LogReader(Arc::clone(&self.0))
    }
}

impl<L: LogRead + ?Sized> LogReader<L> {
    /// A read-only handle on `log`.
    pub fn new(log: Arc<L>) -> Self {
        LogReader(log)
    }

    /// Calls `f` on every envelope from `from` up to (not including) `to` or the head; see
    /// [`for_each`].
    pub fn for_each<E: From<LogError>>(
        &self,
        from: u64,
        to: u64,
        f: impl FnMut(Envelope) -> Result<(), E>,
    ) -> Result<u64, E> {
        for_each(&*self.0, from, to, f)
    }
}

impl<L: LogRead + ?Sized> LogRead for LogReader<L> {
    fn len(&self) -> u64 {
        self.0.len()
    }

    fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, LogError> {
        self.0.read(from, limit)
    }

    fn read_team(
        &self,
        team: TeamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, LogError> {
        self.0.read_team(team, from_version, limit)
    }

    fn team_version(&self, team: TeamId) -> Result<u64, LogError> {
        self.0.team_version(team)
    }

    fn wait_longer_than(&self, len: u64, timeout: Duration) -> u64 {
        self.0.wait_longer_than(len, timeout)
    }

    fn verify(&self) -> Result<u64, LogError> {
        self.0.verify()
    }
}

impl<L: Checkpoints + ?Sized> LogReader<L> {
    /// See [`Checkpoints::checkpoint`].
    pub fn checkpoint(&self, name: &str) -> Result<Option<u64>, LogError> {
        self.0.checkpoint(name)
    }

    /// Records a reader's own position (beside the log, never in it): see
    /// [`Checkpoints::set_checkpoint`].
    pub fn set_checkpoint(&self, name: &str, seq: u64) -> Result<(), LogError> {
        self.0.set_checkpoint(name, seq)
    }
}

impl<L: SignedHeads + ?Sized> LogReader<L> {
    /// See [`SignedHeads::signed_heads`].
    pub fn signed_heads(&self) -> Result<Vec<SignedHead>, LogError> {
        self.0.signed_heads()
    }

    /// See [`SignedHeads::last_signed_head`].
    pub fn last_signed_head(&self) -> Result<Option<SignedHead>, LogError> {
        self.0.last_signed_head()
    }

    /// See [`SignedHeads::signed_head`].
    pub fn signed_head(
        &self,
        seq: u64,
        key: &crate::signed::PublicKey,
    ) -> Result<Option<SignedHead>, LogError> {
        self.0.signed_head(seq, key)
    }
}

/// Calls `f` on every envelope from `from` up to (not including) `to` or the head, reading in
/// chunks so a long log never sits in memory whole; returns the position after the last one.
pub fn for_each<L: LogRead + ?Sized, E: From<LogError>>(
    log: &L,
    from: u64,
    to: u64,
    mut f: impl FnMut(Envelope) -> Result<(), E>,
) -> Result<u64, E> {
    let mut next = from;
    loop {
        let want = usize::try_from(to.saturating_sub(next))
            .unwrap_or(usize::MAX)
            .min(4096);
        if want == 0 {
            return Ok(next);
        }
        let chunk = log.read(next, want)?;
        if chunk.is_empty() {
            return Ok(next);
        }
        for e in chunk {
            next = e.seq + 1;
            f(e)?;
        }
    }
}
