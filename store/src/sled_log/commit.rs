//! The committer thread: the durable half of the group commit (see [`super::writer`]).
//!
//! It takes every group the writer has handed over, applies their batches (one atomic
//! `apply_batch` each, in staging order), calls `flush` **once** for all of them, and only
//! then publishes the new length and versions to readers and answers the callers, in order. A
//! group in which every request was refused applies nothing; if nothing was applied, nothing
//! is flushed.
//!
//! If sled fails to apply or flush, the failure is recorded in [`Shared::failed`] *before* any
//! caller hears of it, so a retry is refused too. The callers of that commit get the error;
//! groups staged after it (on top of events that may never exist) are refused whole; the
//! writer refuses everything it is handed from then on. Nothing was published past the last
//! successful flush, so nothing acknowledged or read is affected.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use roster_core::port::LogError;

use super::writer::{broken, Group};
use super::{storage, Shared};

/// Runs until the writer is gone and every group it handed over is answered.
pub(super) fn run(shared: Arc<Shared>, from: Receiver<Group>) {
    while let Ok(first) = from.recv() {
        let mut groups = vec![first];
        groups.extend(from.try_iter());
        commit(&shared, groups);
    }
}

/// Applies, flushes, publishes and answers `groups`.
fn commit(shared: &Shared, mut groups: Vec<Group>) {
    if let Some(why) = shared.failed.get() {
        refuse(groups, why);
        return;
    }
    let written = apply(shared, &mut groups).and_then(|applied| {
        if !applied {
            return Ok(false);
        }
        #[cfg(test)]
        shared.gate.pass()?;
        shared.flush().map(|()| true)
    });
    match written {
        Ok(published) => {
            if published {
                let mut versions = HashMap::new();
                for group in &mut groups {
                    versions.extend(group.versions.drain());
                }
                if let Some(last) = groups.last() {
                    shared.publish(last.len, &versions);
                }
            }
            for group in groups {
                for (reply, result) in group.answers {
                    let _ = reply.send(result);
                }
            }
        }
        Err(e) => {
            let why = e.to_string();
            // Refuse every later append before anyone hears of this failure.
            let _ = shared.failed.set(why.clone());
            for group in groups {
                for (reply, result) in group.answers {
                    let _ = reply.send(result.and_then(|_| {
                        Err(LogError::Storage {
                            op: "commit a group of events",
                            source: why.clone().into(),
                        })
                    }));
                }
            }
        }
    }
}

/// Applies every batch of `groups`, in order; true if any was applied. Stops at the first
/// failure: what follows was staged on top of it.
fn apply(shared: &Shared, groups: &mut [Group]) -> Result<bool, LogError> {
    let mut applied = false;
    for batch in groups.iter_mut().filter_map(|g| g.batch.take()) {
        shared
            .db
            .apply_batch(batch)
            .map_err(storage("write a group of events"))?;
        applied = true;
    }
    Ok(applied)
}

/// Answers every request of `groups` with the earlier storage failure.
fn refuse(groups: Vec<Group>, why: &str) {
    for group in groups {
        for (reply, _) in group.answers {
            let _ = reply.send(Err(broken(why)));
        }
    }
}
