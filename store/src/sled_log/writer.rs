//! The write path: a group commit pipelined over two threads.
//!
//! - The **writer** (this module) takes everything queued (up to [`MAX_GROUP`] requests),
//!   validates and seals each request in order against the *staged* head — the durable head
//!   plus every group staged before, durable or not — encodes the records, and builds **one**
//!   sled `Batch` for the group (one tree, so atomic): a record per event, a team-index entry
//!   per run (usually one per request, see [`super::index`]), a version per team. It hands the group to the committer and
//!   goes on with the next one at once.
//! - The **committer** ([`super::commit`]) applies the batches handed to it, calls `flush` once
//!   for all of them, and only then publishes the new head to readers and answers the callers.
//!
//! So while group N is written and flushed, group N+1 is already being staged, and one flush
//! covers every group handed over meanwhile. Applying stays with the thread that flushes:
//! sled 0.34 cannot apply a batch while another thread is inside `flush` (its concurrency
//! control gives `apply_batch` the write side and `flush` the read side of one lock, held
//! until the fsync ends), so a flusher thread of its own would only make the writer wait.
//!
//! A refused request (a conflict) fails alone: it adds nothing to the batch. Its answer still
//! travels with its group, so it is sent only once everything staged before it is durable —
//! the version a conflict reports is one a reader can already see.
//!
//! If sled fails to write or flush, the callers of that commit get the error, and every later
//! append is refused (see [`super::commit`]): what reached the disk is unknown, and only
//! reopening the store (which re-checks it) finds out. Acknowledged events are never affected.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SendError, SyncSender};
use std::sync::Arc;

use roster_core::envelope::Envelope;
use roster_core::id::TeamId;
use roster_core::port::{AppendRequest, LogError};

use super::index::Runs;
use super::Shared;
use crate::clock::{self, OsEntropy};
use crate::head::Head;
use crate::{keys, record};

/// The most requests one group stages.
pub(super) const MAX_GROUP: usize = 1024;

/// What a caller asks the writer to do.
#[derive(Debug)]
pub(super) enum Work {
    /// Seal and append these events.
    Append(AppendRequest),
    /// Append envelopes sealed elsewhere, unchanged.
    Sealed(Vec<Envelope>),
}

/// Where the answer to one request goes.
pub(super) type Reply = SyncSender<Result<Vec<Envelope>, LogError>>;

/// One queued request and where its answer goes.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) work: Work,
    pub(super) reply: Reply,
}

/// A staged group, on its way to the committer.
#[derive(Debug)]
pub(super) struct Group {
    /// The writes of every accepted request; `None` when every request was refused.
    pub(super) batch: Option<sled::Batch>,
    /// The log's length once this group is durable.
    pub(super) len: u64,
    /// The team versions this group moves.
    pub(super) versions: HashMap<TeamId, u64>,
    /// Each request's answer, in order: the envelopes (sent once durable) or its refusal.
    pub(super) answers: Vec<(Reply, Result<Vec<Envelope>, LogError>)>,
}

/// Runs until every sender is gone and the queue is drained, then lets the committer finish.
pub(super) fn run(
    shared: Arc<Shared>,
    queue: Receiver<Job>,
    mut head: Head,
    to: SyncSender<Group>,
) {
    let mut entropy = OsEntropy::new();
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if let Some(why) = shared.failed.get() {
            for job in jobs {
                let _ = job.reply.send(Err(broken(why)));
            }
            continue;
        }
        let group = stage(&mut head, &mut entropy, jobs);
        if let Err(SendError(group)) = to.send(group) {
            // The committer is gone (it can only have panicked): nothing becomes durable now.
            for (reply, _) in group.answers {
                let _ = reply.send(Err(LogError::Closed));
            }
        }
    }
}

/// The error of every append after a storage failure.
pub(super) fn broken(why: &str) -> LogError {
    LogError::Storage {
        op: "append after an earlier storage failure (reopen the store)",
        source: why.into(),
    }
}

/// Validates, seals and encodes one group on top of `head`, and moves `head` past it: the next
/// group is staged on top of this one before this one is durable.
fn stage(head: &mut Head, entropy: &mut OsEntropy, jobs: Vec<Job>) -> Group {
    let now = clock::now();
    // One draw of OS randomness for every id of the group.
    entropy.reserve(
        jobs.iter()
            .map(|job| match &job.work {
                Work::Append(request) => request.events.len(),
                Work::Sealed(_) => 0,
            })
            .sum(),
    );
    let mut stage = head.stage();
    let mut batch = sled::Batch::default();
    let mut runs = Runs::default();
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        let result = match job.work {
            Work::Append(request) => stage.seal(request, now, entropy).map(|sealed| {
                for (env, canonical) in sealed.envelopes.iter().zip(&sealed.canonical) {
                    let record = record::encode_parts(env.prev_hash(), env.hash(), canonical);
                    batch.insert(&keys::event(env.seq), record);
                }
                sealed.envelopes
            }),
            Work::Sealed(envelopes) => stage.accept(&envelopes).map(|()| {
                for env in &envelopes {
                    batch.insert(&keys::event(env.seq), record::encode(env));
                }
                envelopes
            }),
        };
        for env in result.iter().flatten() {
            runs.push(env.team, env.version, env.seq);
        }
        answers.push((job.reply, result));
    }
    let staged = !stage.is_empty();
    runs.write(&mut batch);
    let advance = stage.finish();
    for (team, version) in &advance.versions {
        batch.insert(&keys::version(*team), &version.to_be_bytes());
    }
    let group = Group {
        batch: staged.then_some(batch),
        len: advance.len,
        versions: advance.versions.clone(),
        answers,
    };
    head.advance(advance);
    group
}
