//! [`Subscription`]: read a log from any position, then follow it live.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crate::envelope::{ChainError, Envelope, Hash};
use crate::port::{LogError, LogRead};

/// How many envelopes one storage read fetches.
const BATCH: usize = 256;

/// Catch-up-then-live reading of a log from a position.
///
/// Reads storage in batches of committed events; when caught up it waits with
/// [`LogRead::wait_longer_than`] and reads again from its own position, so no event is ever
/// skipped or delivered twice, however appends and waits interleave. It also checks that each
/// delivered envelope links to the one delivered before it.
///
/// Works with `Arc<SledLog>`, `Arc<MemLog>` and `Arc<dyn LogRead>`.
#[derive(Debug)]
pub struct Subscription<L: LogRead + ?Sized = dyn LogRead> {
    log: Arc<L>,
    /// The position of the next envelope to fetch from storage.
    fetched: u64,
    /// The hash of the last fetched envelope, once known.
    last_hash: Option<Hash>,
    buffer: VecDeque<Envelope>,
}

impl<L: LogRead + ?Sized> Subscription<L> {
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
        if let Some(env) = self.next_read()? {
            return Ok(Some(env));
        }
        // The log says when it grows past what was fetched; the read after it finds what did.
        self.log.wait_longer_than(self.fetched, timeout);
        self.next_read()
    }

    /// The next envelope already committed, if any.
    fn next_read(&mut self) -> Result<Option<Envelope>, LogError> {
        if self.buffer.is_empty() {
            self.fill()?;
        }
        Ok(self.buffer.pop_front())
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

impl<L: LogRead + ?Sized> Iterator for Subscription<L> {
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
