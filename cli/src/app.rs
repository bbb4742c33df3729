//! The operator's view of one data directory: the log, the world folded from it, and the one
//! path by which anything changes (`execute`: decide, append, fold).

use std::path::{Path, PathBuf};

use roster_core::actor::Actor;
use roster_core::command::{decide, Command, Decision, Rejected, Rejection};
use roster_core::envelope::Envelope;
use roster_core::event::Event;
use roster_core::name::Name;
use roster_core::port::{AppendRequest, EventLog, LogError};
use roster_core::time::Timestamp;
use roster_core::world::{FoldError, World};
pub use roster_store::now;
use roster_store::{ImportError, OsEntropy, SledLog};

/// Errors the CLI reports, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
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

impl CliError {
    /// 2 for bad input (an id that names nothing included), 3 for a refusal, 4 for a log or an
    /// import that does not verify, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input(_) | CliError::NotInitialized(_) | CliError::NoDaemon(_) => 2,
            CliError::Refused(r) if matches!(*r.rejection, Rejection::NotFound { .. }) => 2,
            CliError::Refused(_) => 3,
            CliError::Import(ImportError::NotEmpty { .. }) => 2,
            CliError::Import(ImportError::Io(_)) => 1,
            CliError::Import(_) => 4,
            CliError::Log(LogError::Corrupt(_) | LogError::Damaged { .. }) | CliError::Fold(_) => 4,
            CliError::Log(_) | CliError::Engine(_) => 1,
            CliError::Reported(code) => *code,
        }
    }
}

/// The directory of the sled log inside a data directory.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

/// An opened data directory.
#[derive(Debug)]
pub struct App {
    /// The log.
    pub log: std::sync::Arc<SledLog>,
    /// The world as of the log's head.
    pub world: World,
    /// The operator at the keyboard.
    pub operator: Name,
    /// Counts the `ApprovalDecided` events committed through this `App`, so that an `act`
    /// waiting for a human wakes when one is (see [`App::watch_decisions`]).
    decisions: tokio::sync::watch::Sender<u64>,
}

impl App {
    /// Opens an existing data directory's log without folding it (for commands that read
    /// history only).
    pub fn open_log(data_dir: &Path) -> Result<SledLog, CliError> {
        let dir = log_dir(data_dir);
        if !dir.exists() {
            return Err(CliError::NotInitialized(data_dir.to_owned()));
        }
        Ok(SledLog::open(&dir)?)
    }

    /// Opens an existing data directory and folds its log.
    pub fn open(data_dir: &Path, operator: Name) -> Result<App, CliError> {
        let dir = log_dir(data_dir);
        if !dir.exists() {
            return Err(CliError::NotInitialized(data_dir.to_owned()));
        }
        let log = std::sync::Arc::new(SledLog::open(&dir)?);
        let mut app = App {
            log,
            world: World::new(),
            operator,
            decisions: tokio::sync::watch::Sender::new(0),
        };
        app.refold()?;
        Ok(app)
    }

    /// Folds the whole log again (after an import into an empty log).
    pub fn refold(&mut self) -> Result<(), CliError> {
        let mut world = World::new();
        for_each(&*self.log, 0, u64::MAX, |e| {
            world.apply(&e).map_err(CliError::from)
        })?;
        self.world = world;
        Ok(())
    }

    /// A receiver that changes each time an approval decision is committed here. Take it
    /// before looking at the approval, then wait for a change: no decision falls in between.
    pub fn watch_decisions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.decisions.subscribe()
    }

    /// The operator as an actor.
    pub fn operator_actor(&self) -> Actor {
        Actor::Operator(self.operator.clone())
    }

    /// Whether `command` by `actor` would be accepted now (nothing is recorded): lets a caller
    /// make a slow outside check (the engine's) only for what the rules allow, and without
    /// holding the daemon's lock meanwhile.
    pub fn would_accept(&self, command: &Command, actor: &Actor) -> bool {
        let at = now().max(self.world.last_at());
        decide(
            &self.world,
            command.clone(),
            actor,
            at,
            &mut OsEntropy::new(),
        )
        .is_ok()
    }

    /// Decides `command` as `actor`, appends the events and folds them. A refusal of an agent
    /// still appends its `AccessDenied` record before the error is returned.
    ///
    /// The decision and its record share one instant, never earlier than the last event: what
    /// was checked (expiries) is what the log says was checked.
    pub fn execute(&mut self, command: Command, actor: &Actor) -> Result<Vec<Envelope>, CliError> {
        let at = now().max(self.world.last_at());
        match decide(&self.world, command, actor, at, &mut OsEntropy::new()) {
            Ok(decision) => self.commit(decision, actor, at),
            Err(rejected) => {
                if let Some(audit) = &rejected.audit {
                    self.commit((**audit).clone(), actor, at)?;
                }
                Err(CliError::Refused(rejected))
            }
        }
    }

    fn commit(
        &mut self,
        d: Decision,
        actor: &Actor,
        at: Timestamp,
    ) -> Result<Vec<Envelope>, CliError> {
        let envelopes = self.log.append(AppendRequest {
            at: Some(at),
            team: d.team,
            expected_version: d.expected_version,
            events: d.events,
            actor: actor.clone(),
            causation: None,
        })?;
        for e in &envelopes {
            self.world.apply(e)?;
        }
        let decided = envelopes
            .iter()
            .any(|e| matches!(e.body().event, Event::ApprovalDecided { .. }));
        if decided {
            self.decisions.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(envelopes)
    }
}

/// The opened data directory a command works on: its own (no daemon runs), or the daemon's,
/// held for the command's duration — one decision at a time, whoever asks.
#[derive(Debug)]
pub enum AppRef<'a> {
    /// Opened by this process.
    Owned(Box<App>),
    /// The daemon's, locked.
    Shared(std::sync::RwLockWriteGuard<'a, App>),
}

impl std::ops::Deref for AppRef<'_> {
    type Target = App;
    fn deref(&self) -> &App {
        match self {
            AppRef::Owned(a) => a,
            AppRef::Shared(g) => g,
        }
    }
}

impl std::ops::DerefMut for AppRef<'_> {
    fn deref_mut(&mut self) -> &mut App {
        match self {
            AppRef::Owned(a) => a,
            AppRef::Shared(g) => g,
        }
    }
}

/// Calls `f` on every envelope from `from` up to (not including) `to` or the head, in chunks;
/// returns the position after the last one.
pub fn for_each(
    log: &dyn EventLog,
    from: u64,
    to: u64,
    mut f: impl FnMut(Envelope) -> Result<(), CliError>,
) -> Result<u64, CliError> {
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
