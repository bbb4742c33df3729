//! The committer thread: the durable half of the group commit (see [`super::writer`]), and the
//! only thread that writes to sled or reopens it.
//!
//! It takes every group the writer has handed over, applies their batches (one atomic
//! `apply_batch` each, in staging order), calls `flush` **once** for all of them, and only
//! then publishes the new length and versions to readers and answers the callers, in order. A
//! group in which every request was refused applies nothing; if nothing was applied, nothing
//! is flushed.
//!
//! If sled fails to apply or flush, the fault is recorded in [`Shared::fault`] *before* any
//! caller hears of it, so a retry is refused too. The callers of that commit get the error;
//! groups staged after it (on top of events that may never exist) are refused whole. Nothing
//! was published past the last successful flush, so nothing acknowledged or read is affected.
//! Then it reopens sled (freeing the disk reserve first on a full disk) and removes whatever of
//! the failed groups reached the disk, so that readers get a working handle back at once; it
//! takes the reserve back, and so accepts appends again, when the writer asks
//! ([`ToCommitter::Recover`]). See the parent module's docs.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, PoisonError};

use roster_core::port::LogError;

use super::fault::{reserve_fault, Reserve};
use super::writer::{Group, ToCommitter};
use super::{open, open_db, storage, Shared, StoreFault};
use crate::head::Head;

/// The committer's own state.
struct Committer {
    shared: Arc<Shared>,
    /// The end of the log as acknowledged: what a reopened sled must hold, exactly.
    durable: Head,
    reserve: Reserve,
    /// Whether sled must be reopened before anything is written again.
    reopen: bool,
}

/// Runs until the writer is gone and every group it handed over is answered.
pub(super) fn run(
    shared: Arc<Shared>,
    from: Receiver<ToCommitter>,
    durable: Head,
    reserve: Reserve,
) {
    let mut committer = Committer {
        shared,
        durable,
        reserve,
        reopen: false,
    };
    while let Ok(first) = from.recv() {
        let mut groups = Vec::new();
        for message in std::iter::once(first).chain(from.try_iter()) {
            match message {
                ToCommitter::Group(group) => groups.push(group),
                ToCommitter::Recover(reply) => {
                    // Everything handed over before is answered first.
                    if !groups.is_empty() {
                        committer.commit(std::mem::take(&mut groups));
                    }
                    let _ = reply.send(committer.recover());
                }
            }
        }
        if !groups.is_empty() {
            committer.commit(groups);
        }
    }
}

impl Committer {
    /// Applies, flushes, publishes and answers `groups`.
    fn commit(&mut self, mut groups: Vec<Group>) {
        if let Some(fault) = self.shared.fault() {
            refuse(groups, &fault);
            return;
        }
        let written = apply(&self.shared, &mut groups).and_then(|applied| {
            if !applied {
                return Ok(false);
            }
            #[cfg(test)]
            self.shared.gate.pass()?;
            self.shared.flush().map(|()| true)
        });
        match written {
            Ok(published) => {
                if published {
                    let mut versions = HashMap::new();
                    for group in &groups {
                        versions.extend(group.advance.versions.iter().map(|(t, v)| (*t, *v)));
                        self.durable.advance(group.advance.clone());
                    }
                    self.shared.publish(self.durable.len, &versions);
                }
                for group in groups {
                    for (reply, result) in group.answers {
                        let _ = reply.send(result);
                    }
                }
            }
            Err(e) => {
                let fault = StoreFault::classify(&self.shared.dir, &e);
                tracing::error!("appends refused: {fault}");
                // Refuse every later append before anyone hears of this failure.
                self.shared.set_fault(Some(fault.clone()));
                for group in groups {
                    for (reply, result) in group.answers {
                        let _ = reply.send(result.and_then(|_| Err(fault.error("append"))));
                    }
                }
                self.reopen = true;
                self.reopen();
            }
        }
    }

    /// Reopens sled after a failed write (see the parent module's docs); true if it is open.
    /// On failure sled stays closed, and the fault says why.
    fn reopen(&mut self) -> bool {
        let dir = self.shared.dir.clone();
        let mut slot = self
            .shared
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        // Readers are out (the lock); dropping the last handle releases sled's file lock.
        drop(slot.take());
        if self.shared.fault().is_some_and(|f| f.is_disk_full()) {
            self.reserve.free();
        }
        let reopened = open_db(&dir).and_then(|db| {
            open::truncate_to(&db, &self.durable)?;
            Ok(db)
        });
        match reopened {
            Ok(db) => {
                *slot = Some(db);
                self.reopen = false;
                tracing::info!("the store reopened after a failed write; reads work again");
                true
            }
            Err(e) => {
                let fault = StoreFault::classify(&dir, &e);
                tracing::error!("the store could not reopen after a failed write: {e}");
                self.shared.set_fault(Some(fault));
                false
            }
        }
    }

    /// Ends a fault if it can: sled reopened, the reserve back. The durable head to stage on,
    /// or why appends are still refused.
    fn recover(&mut self) -> Result<Head, LogError> {
        let Some(fault) = self.shared.fault() else {
            return Ok(self.durable.clone());
        };
        if self.reopen && !self.reopen() {
            let fault = self.shared.fault().unwrap_or(fault);
            return Err(fault.error("reopen the store"));
        }
        if let Err(e) = self.reserve.take() {
            let fault = reserve_fault(&self.shared.dir, &e);
            self.shared.set_fault(Some(fault.clone()));
            return Err(fault.error("append"));
        }
        self.shared.set_fault(None);
        tracing::info!("appends accepted again after: {fault}");
        Ok(self.durable.clone())
    }
}

/// Applies every batch of `groups`, in order; true if any was applied. Stops at the first
/// failure: what follows was staged on top of it.
fn apply(shared: &Shared, groups: &mut [Group]) -> Result<bool, LogError> {
    let mut applied = false;
    for batch in groups.iter_mut().filter_map(|g| g.batch.take()) {
        shared.with_db("write a group of events", |db| {
            db.apply_batch(batch)
                .map_err(storage("write a group of events"))
        })?;
        applied = true;
    }
    Ok(applied)
}

/// Answers every request of `groups` with the fault that refuses appends.
fn refuse(groups: Vec<Group>, fault: &StoreFault) {
    for group in groups {
        for (reply, _) in group.answers {
            let _ = reply.send(Err(fault.error("append")));
        }
    }
}
