//! The outbox's reader: a thread that follows the log (the store's reads and waits block) and
//! hands the publisher ready-made messages — subject, headers (with the publish's condition),
//! JSON — in batches, through a bounded channel, so a slow or absent NATS holds events back in
//! the log, not in memory.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_nats::header::{NATS_EXPECTED_LAST_MESSAGE_ID, NATS_EXPECTED_LAST_SEQUENCE};
use async_nats::HeaderMap;
use bytes::Bytes;
use roster_core::envelope::Envelope;
use roster_core::event::Event;
use roster_core::id::{EventId, TeamId};
use roster_core::name::Name;
use roster_core::port::CheckpointedLog;
use roster_core::subscription::Subscription;
use tokio::sync::mpsc;

use super::reconcile::Plan;
use crate::{subject, wire, BusError};

/// Messages per batch handed to the publisher.
const BATCH: usize = 256;

/// How often a reader with nothing to read checks that it is still wanted.
const POLL: Duration = Duration::from_millis(100);

/// One event, ready to publish.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Its log position.
    pub seq: u64,
    /// The stream sequence it must follow ([`Plan::follows`]).
    pub follows: u64,
    /// `NS.events.TEAM.KIND`.
    pub subject: String,
    /// `Nats-Msg-Id`, `Roster-Seq`, `Nats-Expected-Last-Sequence` = `follows` and, after the
    /// session's first event, `Nats-Expected-Last-Msg-Id` = the previous event's id.
    pub headers: HeaderMap,
    /// The envelope's JSON.
    pub payload: Bytes,
}

/// What the reader sends: a batch in log order, or the error that stopped it.
pub(crate) type Batch = Result<Vec<Outgoing>, BusError>;

/// A running reader; it stops by itself once its receiver is dropped.
#[derive(Debug)]
pub(crate) struct Reader {
    thread: Option<JoinHandle<()>>,
}

impl Reader {
    /// Starts reading `log` at position `plan.start`; batches arrive on the returned receiver.
    pub fn start(
        log: Arc<dyn CheckpointedLog>,
        ns: Name,
        plan: Plan,
        depth: usize,
    ) -> Result<(Reader, mpsc::Receiver<Batch>), BusError> {
        let (tx, rx) = mpsc::channel(depth.max(1));
        let thread = std::thread::Builder::new()
            .name("roster-outbox-read".into())
            .spawn(move || run(&log, &ns, plan, &tx))
            .map_err(BusError::Thread)?;
        Ok((
            Reader {
                thread: Some(thread),
            },
            rx,
        ))
    }

    /// Waits for the thread to end (its receiver must be dropped first).
    pub async fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || t.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the outbox's reader thread panicked");
            }
        }
    }
}

fn run(log: &Arc<dyn CheckpointedLog>, ns: &Name, plan: Plan, tx: &mpsc::Sender<Batch>) {
    let mut names = Names::default();
    let mut prev: Option<EventId> = None;
    let mut sub = Subscription::new(Arc::clone(log), plan.start);
    loop {
        if tx.is_closed() {
            return;
        }
        let mut batch = Vec::new();
        let mut failed = None;
        let mut wait = POLL;
        while batch.len() < BATCH {
            match sub.next_timeout(wait) {
                Ok(Some(envelope)) => match outgoing(&**log, ns, &mut names, plan, prev, &envelope)
                {
                    Ok(o) => {
                        prev = Some(envelope.id);
                        batch.push(o);
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e.into());
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        if !batch.is_empty() && tx.blocking_send(Ok(batch)).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    }
}

fn outgoing(
    log: &dyn CheckpointedLog,
    ns: &Name,
    names: &mut Names,
    plan: Plan,
    prev: Option<EventId>,
    envelope: &Envelope,
) -> Result<Outgoing, BusError> {
    let team = names.of(log, envelope)?;
    let follows = plan.follows(envelope.seq);
    let mut headers = wire::headers(envelope);
    headers.insert(NATS_EXPECTED_LAST_SEQUENCE, follows.to_string());
    // Stream sequences count anyone's messages: a forged publish in between could shift them
    // so that a later event's sequence condition holds by chance while earlier ones failed.
    // The previous event's id cannot be matched by chance.
    if let Some(prev) = prev {
        headers.insert(NATS_EXPECTED_LAST_MESSAGE_ID, prev.to_string());
    }
    Ok(Outgoing {
        seq: envelope.seq,
        follows,
        subject: subject::event(ns, team, envelope.event.kind()),
        headers,
        payload: wire::encode(envelope)?,
    })
}

/// Team names by id: a subject names the team, an envelope carries its id.
#[derive(Debug, Default)]
struct Names(HashMap<TeamId, Name>);

impl Names {
    /// The name of `envelope`'s team, from its `TeamCreated` event (version 1).
    fn of(&mut self, log: &dyn CheckpointedLog, envelope: &Envelope) -> Result<&Name, BusError> {
        match self.0.entry(envelope.team) {
            Entry::Occupied(known) => Ok(known.into_mut()),
            Entry::Vacant(slot) => {
                let name = match (&envelope.event, envelope.version) {
                    (Event::TeamCreated { name }, 1) => Some(name.clone()),
                    _ => match log
                        .read_team(envelope.team, 1, 1)?
                        .first()
                        .map(|e| &e.event)
                    {
                        Some(Event::TeamCreated { name }) => Some(name.clone()),
                        _ => None,
                    },
                };
                let name = name.ok_or_else(|| BusError::UnnamedTeam {
                    seq: envelope.seq,
                    team: envelope.team.to_string(),
                })?;
                Ok(slot.insert(name))
            }
        }
    }
}
