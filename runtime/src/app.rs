//! The operator's view of one data directory: the log, the world folded from it, and the one
//! path by which anything changes (`execute`: decide, append, fold).

use std::path::{Path, PathBuf};

use roster_core::actor::Actor;
use roster_core::command::{Command, Rejected, Rejection};
use roster_core::envelope::Envelope;
use roster_core::ledger::{decides_approval, ExecuteError, Ledger, OpenError};
use roster_core::port::LogError;
use roster_core::world::{FoldError, World};
pub use roster_store::now;
use roster_store::{ImportError, OsEntropy, SledLog};

/// Errors the CLI reports, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Bad input that clap could not catch (an unknown agent, a team that does not exist).
    #[error("{0}")]
    Input(String),
    /// The runtime refused: access denied, not covered, name taken.
    #[error("refused: {0}")]
    Refused(#[from] Rejected),
    /// The log failed or does not verify.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The log's events contradict each other.
    #[error("the log does not fold: {0}")]
    Fold(#[from] FoldError),
    /// The command already printed its verdict; only the exit code is left to give.
    #[error("")]
    Reported(i32),
    /// An import file that does not verify, or a target that is not empty.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The container engine failed (not the request's fault).
    #[error("{0}")]
    Engine(String),
    /// The command acts on containers, which only `roster serve` does.
    #[error("no `roster serve` runs on {0}: start it to act on containers (it owns them)")]
    NoDaemon(PathBuf),
    /// There is no data directory yet.
    #[error("no roster data directory at {0}: run `roster init` first (or pass --data-dir)")]
    NotInitialized(PathBuf),
}

impl From<ExecuteError> for RuntimeError {
    fn from(e: ExecuteError) -> Self {
        match e {
            ExecuteError::Refused(r) => RuntimeError::Refused(r),
            ExecuteError::Log(e) => RuntimeError::Log(e),
            ExecuteError::Fold(e) => RuntimeError::Fold(e),
            // `ExecuteError` is non-exhaustive; a new cause is a log failure until it has a
            // code of its own.
            other => RuntimeError::Input(other.to_string()),
        }
    }
}

impl From<OpenError> for RuntimeError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Log(e) => RuntimeError::Log(e),
            OpenError::Fold(e) => RuntimeError::Fold(e),
            other => RuntimeError::Input(other.to_string()),
        }
    }
}

impl RuntimeError {
    /// 2 for bad input (an id that names nothing included), 3 for a refusal, 4 for a log or an
    /// import that does not verify, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::Input(_)
            | RuntimeError::NotInitialized(_)
            | RuntimeError::NoDaemon(_) => 2,
            RuntimeError::Refused(r) if matches!(*r.rejection, Rejection::NotFound { .. }) => 2,
            RuntimeError::Refused(_) => 3,
            RuntimeError::Import(ImportError::NotEmpty { .. }) => 2,
            RuntimeError::Import(ImportError::Io(_)) => 1,
            RuntimeError::Import(_) => 4,
            RuntimeError::Log(LogError::Corrupt(_) | LogError::Damaged { .. })
            | RuntimeError::Fold(_) => 4,
            RuntimeError::Log(_) | RuntimeError::Engine(_) => 1,
            RuntimeError::Reported(code) => *code,
        }
    }
}

/// The directory of the sled log inside a data directory.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

/// The ledger of the data directory's log: the log and the world folded from it.
pub type Snapshot = roster_core::ledger::Snapshot<SledLog>;

/// An opened data directory: its [`Ledger`] (the one write path) and what waits on it.
#[derive(Debug)]
pub struct App {
    ledger: Ledger<SledLog>,
    /// Counts the `ApprovalDecided` events committed through this `App`, so that an `act`
    /// waiting for a human wakes when one is (see [`App::watch_decisions`]).
    decisions: tokio::sync::watch::Sender<u64>,
}

impl App {
    /// Opens an existing data directory's log without folding it (for commands that read
    /// history only).
    pub fn open_log(data_dir: &Path) -> Result<SledLog, RuntimeError> {
        let dir = log_dir(data_dir);
        if !dir.exists() {
            return Err(RuntimeError::NotInitialized(data_dir.to_owned()));
        }
        Ok(SledLog::open(&dir)?)
    }

    /// Opens an existing data directory and folds its log.
    pub fn open(data_dir: &Path) -> Result<App, RuntimeError> {
        let log = std::sync::Arc::new(App::open_log(data_dir)?);
        Ok(App {
            ledger: Ledger::open(log)?,
            decisions: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The world as of the log's head.
    pub fn world(&self) -> &World {
        self.ledger.world()
    }

    /// The log.
    pub fn log(&self) -> &std::sync::Arc<SledLog> {
        self.ledger.log()
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
        self.ledger
            .would_accept(command, actor, now(), &mut OsEntropy::new())
    }

    /// Decides `command` as `actor` now, appends the events and folds them; see
    /// [`Ledger::execute`].
    pub fn execute(
        &mut self,
        command: Command,
        actor: &Actor,
    ) -> Result<Vec<Envelope>, RuntimeError> {
        let envelopes = self
            .ledger
            .execute(command, actor, now(), &mut OsEntropy::new())?;
        if decides_approval(&envelopes) {
            self.decisions.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(envelopes)
    }
}
