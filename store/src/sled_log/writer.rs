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
//! If sled fails to write or flush, the callers of that commit get the error, and appends are
//! refused until the committer has reopened sled and taken back its disk reserve (see the
//! parent module's docs). The writer asks for that with [`ToCommitter::Recover`] when it has
//! work while appends are refused, and then stages on top of the durable head the committer
//! hands back — never on top of groups that failed. Acknowledged events are never affected.

use std::sync::mpsc::{self, Receiver, SendError, SyncSender};
use std::sync::Arc;

use roster_core::envelope::Envelope;
use roster_core::port::{AppendRequest, LogError};
use roster_core::signed::SignedHead;

use super::index::Runs;
use super::{Shared, StoreFault};
use crate::clock::{self, OsEntropy};
use crate::head::{Advance, Head};
use crate::{keys, record};

/// The most requests one group stages.
pub(super) const MAX_GROUP: usize = 1024;

/// What a caller asks the writer to do.
#[derive(Debug)]
pub(super) enum Work {
    /// Seal and append these events.
    Append(AppendRequest),
    /// Append envelopes sealed elsewhere, unchanged, with the signed heads that came with them
    /// (an import), in the same batch.
    Sealed(Vec<Envelope>, Vec<SignedHead>),
    /// Record a consumer's checkpoint (answered with no envelopes).
    Checkpoint {
        /// The consumer.
        name: String,
        /// The position it has handled everything before.
        seq: u64,
    },
    /// Keep a signed head (answered with no envelopes).
    SignedHead(SignedHead),
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
    /// What the durable head becomes once this group is durable.
    pub(super) advance: Advance,
    /// Each request's answer, in order: the envelopes (sent once durable) or its refusal.
    pub(super) answers: Vec<(Reply, Result<Vec<Envelope>, LogError>)>,
}

/// What the writer hands the committer.
#[derive(Debug)]
pub(super) enum ToCommitter {
    /// A staged group to make durable.
    Group(Group),
    /// Appends are refused: reopen sled if it needs it and take back the reserve, then answer
    /// with the durable head to stage on, or with why appends are still refused.
    Recover(SyncSender<Result<Head, LogError>>),
}

/// Runs until every sender is gone and the queue is drained, then lets the committer finish.
pub(super) fn run(
    shared: Arc<Shared>,
    queue: Receiver<Job>,
    mut head: Head,
    to: SyncSender<ToCommitter>,
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
        if shared.fault().is_some() {
            match recover(&to) {
                // Everything handed over before is answered: stage on what is durable.
                Ok(durable) => head = durable,
                Err(e) => {
                    let why = StoreFault::classify(&shared.dir, &e);
                    for job in jobs {
                        let _ = job.reply.send(Err(why.error(job.work.op())));
                    }
                    continue;
                }
            }
        }
        let group = stage(&mut head, &mut entropy, jobs);
        if let Err(SendError(ToCommitter::Group(group))) = to.send(ToCommitter::Group(group)) {
            // The committer is gone (it can only have panicked): nothing becomes durable now.
            for (reply, _) in group.answers {
                let _ = reply.send(Err(LogError::Closed));
            }
        }
    }
}

impl Work {
    /// What a refused request was, for its error.
    pub(super) fn op(&self) -> &'static str {
        match self {
            Work::Append(_) | Work::Sealed(..) => "append",
            Work::Checkpoint { .. } => "write a checkpoint",
            Work::SignedHead(_) => "keep a signed head",
        }
    }
}

/// Asks the committer to recover; the durable head to stage on, or why appends are refused.
fn recover(to: &SyncSender<ToCommitter>) -> Result<Head, LogError> {
    let (reply, answer) = mpsc::sync_channel(1);
    to.send(ToCommitter::Recover(reply))
        .map_err(|_| LogError::Closed)?;
    answer.recv().map_err(|_| LogError::Closed)?
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
                Work::Sealed(..) | Work::Checkpoint { .. } | Work::SignedHead(_) => 0,
            })
            .sum(),
    );
    let mut stage = head.stage();
    let mut batch = sled::Batch::default();
    let mut runs = Runs::default();
    let mut answers = Vec::with_capacity(jobs.len());
    // Writes beside the log (checkpoints, signed heads), which move no head.
    let mut beside = false;
    for job in jobs {
        let result = match job.work {
            Work::Append(request) => stage.seal(request, now, entropy).map(|sealed| {
                for (env, canonical) in sealed.envelopes.iter().zip(&sealed.canonical) {
                    let record = record::encode_parts(env.prev_hash(), env.hash(), canonical);
                    batch.insert(&keys::event(env.seq), record);
                }
                sealed.envelopes
            }),
            Work::Sealed(envelopes, heads) => stage.accept(&envelopes).map(|()| {
                for env in &envelopes {
                    batch.insert(&keys::event(env.seq), record::encode(env));
                }
                for head in &heads {
                    insert_head(&mut batch, head);
                }
                beside |= !heads.is_empty();
                envelopes
            }),
            Work::Checkpoint { name, seq } => {
                batch.insert(keys::checkpoint(&name), &seq.to_be_bytes());
                beside = true;
                Ok(Vec::new())
            }
            Work::SignedHead(head) => {
                insert_head(&mut batch, &head);
                beside = true;
                Ok(Vec::new())
            }
        };
        for env in result.iter().flatten() {
            runs.push(env.team, env.version, env.seq);
        }
        answers.push((job.reply, result));
    }
    let staged = !stage.is_empty() || beside;
    runs.write(&mut batch);
    let advance = stage.finish();
    for (team, version) in &advance.versions {
        batch.insert(&keys::version(*team), &version.to_be_bytes());
    }
    head.advance(advance.clone());
    Group {
        batch: staged.then_some(batch),
        advance,
        answers,
    }
}

/// Adds `head` to `batch` under its position and key.
fn insert_head(batch: &mut sled::Batch, head: &SignedHead) {
    batch.insert(
        &keys::signed_head(head.seq, &head.public_key.to_bytes())[..],
        &head.to_bytes()[..],
    );
}
