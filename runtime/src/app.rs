//! The operator's view of one data directory: the log, the world folded from it, and the one
//! path by which anything changes (`execute`: decide, append, fold).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use roster_core::actor::Actor;
use roster_core::command::Command;
use roster_core::envelope::Envelope;
use roster_core::ledger::{decides_approval, Ledger};
use roster_core::port::{CheckpointedLog, Checkpoints, EventLog, SignedHeads};
use roster_core::time::Timestamp;
use roster_core::world::World;
pub use roster_store::now;
use roster_store::{AppendSealed, OsEntropy, SledLog};

pub use crate::error::RuntimeError;

/// The directory of the sled log inside a data directory.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

/// What the runtime keeps its log in, through the ports only: an event log, its consumers'
/// checkpoints, its signed heads, and the append of envelopes sealed elsewhere (an import). A
/// data directory's is a `SledLog`; a `MemLog` drives the same runtime in tests.
pub trait Store:
    EventLog + CheckpointedLog + SignedHeads + AppendSealed + std::fmt::Debug + 'static
{
}

impl<T: EventLog + Checkpoints + SignedHeads + AppendSealed + std::fmt::Debug + 'static> Store
    for T
{
}

/// The world at one position and the log to read, held by a reader instead of the [`App`].
pub type Snapshot = roster_core::ledger::Snapshot<dyn Store>;

/// An opened data directory: its [`Ledger`] (the one write path) and what waits on it.
#[derive(Debug)]
pub struct App {
    ledger: Ledger<dyn Store>,
    /// Counts the `ApprovalDecided` events committed through this `App`, so that an `act`
    /// waiting for a human wakes when one is (see [`App::watch_decisions`]).
    decisions: tokio::sync::watch::Sender<u64>,
    /// The supervisor's simulation's clock and ids (virtual time, counted ids), so that a
    /// schedule replays exactly; `None`: the wall clock and the OS's entropy.
    simulated: Option<(crate::daemon::SimClock, roster_core::id::CountingEntropy)>,
    /// How often each agent's refusals are written to the log.
    refusals: crate::refusals::Refusals,
}

impl App {
    /// Opens an existing data directory's log without folding it (for commands that read
    /// history only). Every opening (the daemon's start, a command run without a daemon) first
    /// makes the log owner-only again, or refuses (see `private`).
    pub fn open_log(data_dir: &Path) -> Result<SledLog, RuntimeError> {
        let dir = log_dir(data_dir);
        if !dir.exists() {
            return Err(RuntimeError::NotInitialized(data_dir.to_owned()));
        }
        crate::private::open_log(&dir)
    }

    /// Opens an existing data directory and folds its log.
    pub fn open(data_dir: &Path) -> Result<App, RuntimeError> {
        App::over(Arc::new(App::open_log(data_dir)?))
    }

    /// Folds `log`, whatever keeps it.
    pub fn over(log: Arc<dyn Store>) -> Result<App, RuntimeError> {
        Ok(App {
            ledger: Ledger::open(log)?,
            decisions: tokio::sync::watch::Sender::new(0),
            simulated: None,
            refusals: crate::refusals::Refusals::default(),
        })
    }

    /// Folds `log` for the supervisor's simulation: decisions are stamped by `clock` and ids
    /// counted from `seed`.
    #[cfg(test)]
    pub(crate) fn simulated(
        log: Arc<dyn Store>,
        clock: crate::daemon::SimClock,
        seed: u64,
    ) -> Result<App, RuntimeError> {
        let mut app = App::over(log)?;
        app.simulated = Some((clock, roster_core::id::CountingEntropy::new(seed)));
        Ok(app)
    }

    /// The world as of the log's head.
    pub fn world(&self) -> &World {
        self.ledger.world()
    }

    /// The log.
    pub fn log(&self) -> &Arc<dyn Store> {
        self.ledger.log()
    }

    /// The log, as a consumer that tails it from a checkpoint needs it (the outbox).
    pub fn tail(&self) -> Arc<dyn CheckpointedLog> {
        Arc::clone(self.ledger.log()) as Arc<dyn CheckpointedLog>
    }

    /// The world now and the log to read, to hold without holding this `App`.
    pub fn snapshot(&self) -> Snapshot {
        self.ledger.snapshot()
    }

    /// Folds the whole log again (after an import into an empty log).
    pub fn refold(&mut self) -> Result<(), RuntimeError> {
        Ok(self.ledger.refold()?)
    }

    /// A receiver that changes each time an approval decision is committed here. Take it
    /// before looking at the approval, then wait for a change: no decision falls in between.
    pub fn watch_decisions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.decisions.subscribe()
    }

    /// Whether `command` by `actor` would be accepted now (nothing is recorded); see
    /// [`Ledger::would_accept`].
    pub fn would_accept(&self, command: &Command, actor: &Actor) -> bool {
        match &self.simulated {
            Some((clock, entropy)) => {
                self.ledger
                    .would_accept(command, actor, (clock.0)(), &mut entropy.clone())
            }
            None => self
                .ledger
                .would_accept(command, actor, now(), &mut OsEntropy::new()),
        }
    }

    /// Now, as this `App` tells time (the simulation's clock, or the wall clock).
    fn now(&self) -> Timestamp {
        match &self.simulated {
            Some((clock, _)) => (clock.0)(),
            None => now(),
        }
    }

    /// Records, as the runtime, the refusals left out that the agents' budgets allow now (all
    /// of them with `all`: the daemon is stopping); how many records were made.
    pub fn record_left_out(&mut self, all: bool) -> Result<usize, RuntimeError> {
        let at = self.now();
        let due = self.refusals.due(at, all);
        for d in &due {
            let command = Command::RecordDenial {
                agent: d.agent,
                action: d.action.clone(),
                resource: d.resource.clone(),
                reason: d.reason.clone(),
            };
            match &mut self.simulated {
                Some((_, entropy)) => self.ledger.execute(command, &Actor::Runtime, at, entropy)?,
                None => self
                    .ledger
                    .execute(command, &Actor::Runtime, at, &mut OsEntropy::new())?,
            };
        }
        Ok(due.len())
    }

    /// Decides `command` as `actor` now, appends the events and folds them; see
    /// [`Ledger::execute`].
    pub fn execute(
        &mut self,
        mut command: Command,
        actor: &Actor,
    ) -> Result<Vec<Envelope>, RuntimeError> {
        let at = self.now();
        // An agent's refusals are written at most at its budget's rate (`refusals`): those
        // the rules make, and those the runtime records itself.
        let refusals = &mut self.refusals;
        if let Command::RecordDenial {
            agent,
            action,
            resource,
            reason,
        } = &mut command
        {
            if !refusals.admit(*agent, (action, resource), at, reason) {
                return Ok(Vec::new());
            }
        }
        let audit = |record: &mut roster_core::command::Decision, at: Timestamp| match record
            .events
            .first_mut()
        {
            Some(roster_core::event::Event::AccessDenied {
                agent,
                action,
                resource,
                reason,
            }) => refusals.admit(*agent, (action, resource), at, reason),
            _ => true,
        };
        let envelopes = match &mut self.simulated {
            Some((_, entropy)) => self
                .ledger
                .execute_audited(command, actor, at, entropy, audit)?,
            None => {
                self.ledger
                    .execute_audited(command, actor, at, &mut OsEntropy::new(), audit)?
            }
        };
        if decides_approval(&envelopes) {
            self.decisions.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(envelopes)
    }
}
