//! A gate in front of the committer's `flush`, compiled into unit tests only: a test closes it
//! to hold groups applied but not yet durable and looks at what readers and appenders see
//! then, or makes the next flush fail as a full disk would. A closed gate opens by itself after
//! [`HOLD_AT_MOST`], so that a bug fails a test's assertions instead of hanging it.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use roster_core::port::LogError;

/// How long a closed gate holds the committer at most.
const HOLD_AT_MOST: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(super) struct FlushGate {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    /// Whether the committer is waiting at the closed gate.
    waiting: bool,
    fail_next: bool,
}

impl FlushGate {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed
            .wait(guard)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The committer stops before its next flush, with its groups applied.
    pub(super) fn close(&self) {
        self.lock().closed = true;
    }

    /// Lets the committer flush.
    pub(super) fn open(&self) {
        self.lock().closed = false;
        self.changed.notify_all();
    }

    /// The next flush fails instead of flushing.
    pub(super) fn fail_next(&self) {
        self.lock().fail_next = true;
    }

    /// Blocks until the committer waits at the closed gate.
    pub(super) fn await_committer(&self) {
        let mut state = self.lock();
        while !state.waiting {
            state = self.wait(state);
        }
    }

    /// Called by the committer just before it flushes.
    pub(super) fn pass(&self) -> Result<(), LogError> {
        let mut state = self.lock();
        state.waiting = true;
        self.changed.notify_all();
        let deadline = Instant::now() + HOLD_AT_MOST;
        while state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        state.waiting = false;
        if std::mem::take(&mut state.fail_next) {
            return Err(LogError::Storage {
                op: "flush to disk",
                source: "injected by a test".into(),
            });
        }
        Ok(())
    }
}
