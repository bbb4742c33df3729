//! Context messages: what agents publish on topics, carried to the members of one team.
//!
//! A message travels on `NS.ctx.TEAM.TOPIC` where `TEAM` is the team whose members receive it
//! (the sender's own team, or — for a message that crossed a share — the importing team). The
//! bus only carries: whether a message may cross is decided by the runtime before it is
//! published (`ShareContext`, recorded as `ContextShared`) and checked again by the receiving
//! runtime against its world before any agent sees it.
//!
//! Two carriers with the same semantics, at most once: [`CtxBus::memory`] (one process, a
//! broadcast channel per team) and [`CtxBus::nats`] (core NATS, one subscription per team
//! drained by a task into a bounded queue). Either way a receiver that does not keep up loses
//! the messages its backlog cannot hold, and is told how many ([`Delivery::Dropped`]) where
//! they were lost; what one team receives, or misses, is never counted against another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use roster_core::id::{AgentId, EventId, ShareId};
use roster_core::name::Name;
use roster_core::time::Timestamp;
use roster_core::topic::Topic;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::subject;

/// The most bytes of text one context message may carry (the gateway's limit).
pub use roster_core::gateway::MAX_MESSAGE;

/// How many messages the in-process bus holds for a receiver that is behind.
const MEMORY_BACKLOG: usize = 4096;

/// How many messages a NATS feed holds for a receiver that is behind.
const NATS_BACKLOG: usize = 1024;

/// One context message, as it travels (JSON on NATS). Every field is a validated type, so a
/// message read from the wire is checked like any other input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextMessage {
    /// The team whose members receive it.
    pub to: Name,
    /// The sender's team.
    pub from: Name,
    /// The sending agent.
    pub sender: AgentId,
    /// The topic, in the sending team's topic space.
    pub topic: Topic,
    /// The text.
    pub message: String,
    /// The share it crossed, when `from` is not `to`.
    pub share: Option<ShareId>,
    /// The `ContextShared` record of the crossing, when it crossed.
    pub record: Option<EventId>,
    /// When it was sent.
    pub at: Timestamp,
}

impl ContextMessage {
    /// True when it crossed a team boundary.
    pub fn crossed(&self) -> bool {
        self.from != self.to
    }

    /// The structural checks every message must pass, wherever it comes from: its size, and a
    /// crossing names its share and record (and only a crossing does).
    pub fn check(&self) -> Result<(), CtxError> {
        if self.message.len() > MAX_MESSAGE {
            return Err(CtxError::Invalid(format!(
                "a context message is at most {MAX_MESSAGE} bytes; this one is {}",
                self.message.len()
            )));
        }
        if self.crossed() != (self.share.is_some() && self.record.is_some()) {
            return Err(CtxError::Invalid(
                "a message names a share and its record exactly when it crosses teams".into(),
            ));
        }
        Ok(())
    }
}

/// What went wrong on the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CtxError {
    /// A message that breaks the rules of the wire.
    #[error("invalid context message: {0}")]
    Invalid(String),
    /// NATS refused or failed.
    #[error("NATS: {0}")]
    Nats(String),
}

/// What a team's subscription yields.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A message for the team.
    Message(Arc<ContextMessage>),
    /// This many messages were lost because the receiver did not keep up.
    Dropped(u64),
}

/// The carrier of context messages.
#[derive(Debug, Clone)]
pub enum CtxBus {
    /// In this process.
    Memory(MemoryBus),
    /// Over NATS, in namespace `ns`.
    Nats {
        /// The connection.
        client: async_nats::Client,
        /// The namespace of the subjects.
        ns: Name,
    },
}

impl CtxBus {
    /// The in-process bus.
    pub fn memory() -> Self {
        Self::Memory(MemoryBus::default())
    }

    /// The bus over a NATS connection.
    pub fn nats(client: async_nats::Client, ns: Name) -> Self {
        Self::Nats { client, ns }
    }

    /// Sends `msg` to the members of `msg.to`. With no receiver it is lost, as on any bus.
    pub async fn publish(&self, msg: ContextMessage) -> Result<(), CtxError> {
        msg.check()?;
        match self {
            Self::Memory(bus) => {
                bus.publish(Arc::new(msg));
                Ok(())
            }
            Self::Nats { client, ns } => {
                let payload =
                    serde_json::to_vec(&msg).map_err(|e| CtxError::Invalid(e.to_string()))?;
                client
                    .publish(subject::ctx(ns, &msg.to, &msg.topic), payload.into())
                    .await
                    .map_err(|e| CtxError::Nats(e.to_string()))
            }
        }
    }

    /// Receives every message for the members of `team`, from now on.
    pub async fn subscribe(&self, team: &Name) -> Result<TeamFeed, CtxError> {
        Ok(match self {
            Self::Memory(bus) => TeamFeed::Memory {
                rx: bus.subscribe(team),
                team: team.clone(),
            },
            Self::Nats { client, ns } => {
                let sub = client
                    .subscribe(subject::ctx_team(ns, team))
                    .await
                    .map_err(|e| CtxError::Nats(e.to_string()))?;
                TeamFeed::Nats(NatsFeed::start(sub, ns.clone(), team.clone()))
            }
        })
    }
}

/// The in-process carrier: one broadcast channel per team, created when the team's first
/// receiver subscribes, so a receiver's backlog and its drop counts hold its own team's
/// messages only. A message for a team nobody listens to is dropped, as on any bus.
#[derive(Debug, Clone, Default)]
pub struct MemoryBus {
    teams: Arc<Mutex<HashMap<Name, broadcast::Sender<Arc<ContextMessage>>>>>,
}

impl MemoryBus {
    fn publish(&self, msg: Arc<ContextMessage>) {
        let mut teams = self.teams.lock().unwrap_or_else(PoisonError::into_inner);
        let to = msg.to.clone();
        if let Some(tx) = teams.get(&to) {
            // An error means its last receiver is gone: the channel goes too.
            if tx.send(msg).is_err() {
                teams.remove(&to);
            }
        }
    }

    fn subscribe(&self, team: &Name) -> broadcast::Receiver<Arc<ContextMessage>> {
        let mut teams = self.teams.lock().unwrap_or_else(PoisonError::into_inner);
        // Channels whose receivers are all gone and that saw no publish since.
        teams.retain(|_, tx| tx.receiver_count() > 0);
        teams
            .entry(team.clone())
            .or_insert_with(|| broadcast::channel(MEMORY_BACKLOG).0)
            .subscribe()
    }
}

/// What a NATS feed's queue holds: a message as it arrived, or how many were lost at this point.
#[derive(Debug)]
enum Queued {
    Message(async_nats::Message),
    Dropped(u64),
}

/// One team's subscription on NATS. A task drains the subscription as fast as it can into a
/// bounded queue of 1024 messages (so async-nats's own buffer, which drops without a word when
/// full, stays empty), counts what does not fit, and puts the count in the queue where the loss
/// happened as soon as there is room. Dropping the feed ends the task and the subscription.
#[derive(Debug)]
pub struct NatsFeed {
    queue: mpsc::Receiver<Queued>,
    drainer: JoinHandle<()>,
    ns: Name,
    team: Name,
}

impl NatsFeed {
    /// Starts draining `sub` (on the current tokio runtime).
    fn start(sub: async_nats::Subscriber, ns: Name, team: Name) -> NatsFeed {
        let (tx, queue) = mpsc::channel(NATS_BACKLOG);
        NatsFeed {
            queue,
            drainer: tokio::spawn(drain(sub, tx)),
            ns,
            team,
        }
    }

    /// The next message or drop count; `None` once the subscription ended and all is read.
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            match self.queue.recv().await? {
                Queued::Dropped(n) => return Some(Delivery::Dropped(n)),
                Queued::Message(msg) => match decode(&msg, &self.ns, &self.team) {
                    Ok(m) => return Some(Delivery::Message(Arc::new(m))),
                    Err(e) => tracing::warn!(subject = %msg.subject, "dropped: {e}"),
                },
            }
        }
    }
}

impl Drop for NatsFeed {
    fn drop(&mut self) {
        self.drainer.abort();
    }
}

/// Moves `sub`'s messages into `tx` without ever waiting for the receiver: what does not fit is
/// counted, and the count queued (before anything newer) once there is room.
async fn drain(mut sub: async_nats::Subscriber, tx: mpsc::Sender<Queued>) {
    let mut lost: u64 = 0;
    loop {
        tokio::select! {
            biased;
            permit = tx.reserve(), if lost > 0 => match permit {
                Ok(permit) => {
                    permit.send(Queued::Dropped(lost));
                    lost = 0;
                }
                Err(_) => return,
            },
            next = sub.next() => {
                let Some(msg) = next else {
                    // The subscription ended (the client closed): the last count, then the end.
                    if lost > 0 {
                        let _ = tx.send(Queued::Dropped(lost)).await;
                    }
                    return;
                };
                if lost > 0 {
                    match tx.try_reserve() {
                        Ok(permit) => {
                            permit.send(Queued::Dropped(lost));
                            lost = 0;
                        }
                        Err(TrySendError::Full(())) => {
                            lost += 1;
                            continue;
                        }
                        Err(TrySendError::Closed(())) => return,
                    }
                }
                match tx.try_send(Queued::Message(msg)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => lost += 1,
                    Err(TrySendError::Closed(_)) => return,
                }
            }
        }
    }
}

/// One team's incoming messages.
#[derive(Debug)]
pub enum TeamFeed {
    /// From the in-process bus.
    Memory {
        /// The receiver.
        rx: broadcast::Receiver<Arc<ContextMessage>>,
        /// The team.
        team: Name,
    },
    /// From NATS: the subscription to `NS.ctx.TEAM.>`, drained into a bounded queue.
    Nats(NatsFeed),
}

impl TeamFeed {
    /// The next delivery; `None` when the bus is gone. Messages that do not decode, break the
    /// wire's rules or arrived on a subject that is not theirs are dropped (and logged): a
    /// receiver never sees them. On NATS, such messages lost for want of room are counted in
    /// [`Delivery::Dropped`] like any other (they are only decoded when read).
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            match self {
                Self::Memory { rx, team } => match rx.recv().await {
                    Ok(m) if &m.to == team => return Some(Delivery::Message(m)),
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some(Delivery::Dropped(n))
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                Self::Nats(feed) => return feed.next().await,
            }
        }
    }
}

fn decode(msg: &async_nats::Message, ns: &Name, team: &Name) -> Result<ContextMessage, CtxError> {
    // JSON escaping at most sextuples the text (`\u001f`); the rest of the fields fit in 4 KiB.
    if msg.payload.len() > MAX_MESSAGE * 6 + 4096 {
        return Err(CtxError::Invalid("oversized payload".into()));
    }
    let m: ContextMessage =
        serde_json::from_slice(&msg.payload).map_err(|e| CtxError::Invalid(e.to_string()))?;
    m.check()?;
    if &m.to != team || msg.subject.as_str() != subject::ctx(ns, &m.to, &m.topic) {
        return Err(CtxError::Invalid(format!(
            "a message for team {} on topic {} does not belong on {}",
            m.to,
            m.topic.as_str(),
            msg.subject
        )));
    }
    Ok(m)
}
