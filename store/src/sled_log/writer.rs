//! The one writer thread: group commit.
//!
//! Appends from any number of threads are queued here. The writer takes everything queued (up
//! to [`MAX_GROUP`] requests), validates each request in order against its head plus the
//! requests before it in the group, writes every accepted one in **one** sled `Batch` (one
//! tree, so atomic), does **one** `flush`, and only then publishes the new head to readers and
//! answers every caller. A refused request fails alone; the others commit.
//!
//! If sled fails to write or flush, the callers of that group get the error and the writer
//! refuses every later append: what reached the disk is unknown, and only reopening the store
//! (which re-checks it) finds out. Acknowledged events are never affected.

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use roster_core::envelope::Envelope;
use roster_core::port::{AppendRequest, LogError};

use super::{storage, Shared};
use crate::clock::{self, OsEntropy};
use crate::head::Head;
use crate::{keys, record};

/// The most requests one group commits.
pub(super) const MAX_GROUP: usize = 1024;

/// What a caller asks the writer to do.
#[derive(Debug)]
pub(super) enum Work {
    /// Seal and append these events.
    Append(AppendRequest),
    /// Append envelopes sealed elsewhere, unchanged.
    Sealed(Vec<Envelope>),
}

/// One queued request and where its answer goes.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) work: Work,
    pub(super) reply: SyncSender<Result<Vec<Envelope>, LogError>>,
}

/// Runs until every sender is gone and the queue is drained.
pub(super) fn run(shared: Arc<Shared>, queue: Receiver<Job>, mut head: Head) {
    let mut failed: Option<String> = None;
    let mut entropy = OsEntropy::new();
    while let Ok(first) = queue.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if let Some(why) = &failed {
            for job in jobs {
                let _ = job.reply.send(Err(broken(why)));
            }
            continue;
        }
        if let Err(why) = commit_group(&shared, &mut head, &mut entropy, jobs) {
            failed = Some(why);
        }
    }
}

fn broken(why: &str) -> LogError {
    LogError::Storage {
        op: "append after an earlier storage failure (reopen the store)",
        source: why.into(),
    }
}

/// Stages, writes, flushes and answers one group. Returns the storage failure, if any.
fn commit_group(
    shared: &Shared,
    head: &mut Head,
    entropy: &mut OsEntropy,
    jobs: Vec<Job>,
) -> Result<(), String> {
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
        if let Ok(envelopes) = &result {
            for env in envelopes {
                batch.insert(&keys::team(env.team, env.version), &env.seq.to_be_bytes());
            }
        }
        answers.push((job.reply, result));
    }
    if stage.is_empty() {
        for (reply, result) in answers {
            let _ = reply.send(result);
        }
        return Ok(());
    }
    let advance = stage.finish();
    for (team, version) in &advance.versions {
        batch.insert(&keys::version(*team), &version.to_be_bytes());
    }
    let written = shared
        .db
        .apply_batch(batch)
        .map_err(storage("write a group of events"))
        .and_then(|()| shared.flush());
    match written {
        Ok(()) => {
            shared.publish(advance.len, &advance.versions);
            head.advance(advance);
            for (reply, result) in answers {
                let _ = reply.send(result);
            }
            Ok(())
        }
        Err(e) => {
            let why = e.to_string();
            for (reply, result) in answers {
                let _ = reply.send(result.and_then(|_| {
                    Err(LogError::Storage {
                        op: "commit a group of events",
                        source: why.clone().into(),
                    })
                }));
            }
            Err(why)
        }
    }
}
