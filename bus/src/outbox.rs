//! The outbox: every committed event of the log, published to JetStream in log order.
//!
//! It tails the log (any [`CheckpointedLog`]: the daemon's is sled) from its checkpoint ([`CHECKPOINT`], the next position to publish)
//! and publishes each envelope's JSON on `NS.events.TEAM.KIND` with `Nats-Msg-Id` = the event
//! id and `Roster-Seq` = its position. Publishes are pipelined: up to a window of them await
//! their acknowledgement at once, and the checkpoint advances over the contiguous acknowledged
//! prefix only — once per window, or when idle (each write costs a flush).
//!
//! Every publish is conditional: `Nats-Expected-Last-Sequence` names the stream sequence of the
//! event before it (as the session's reconcile found the stream, plus one per event since), and
//! JetStream stores the message only if that is the stream's last sequence. So when a reconnect
//! loses publishes in flight while later ones go out on the new connection, those later ones
//! are refused instead of stored out of order; the outbox sees the refusal (or the lost one's
//! ack timing out) first, ends the session, and the next one starts from the stream's real end.
//! Each acknowledgement must name the stream sequence the event was meant for, duplicate or not
//! (JetStream checks `Nats-Msg-Id` before the condition: a re-publish of a stored id is
//! acknowledged with the sequence it was stored at).
//!
//! A NATS outage never blocks or fails the runtime: events stay in the log, the outbox retries
//! with backoff and resumes by itself. Each (re)start reconciles with the stream first
//! (`reconcile`), so a crash between a publish and its checkpoint re-publishes nothing a
//! consumer sees twice, and a stream that lost events (a new server, a purge) gets them again.
//!
//! - `reader`: the thread that follows the log and prepares messages.
//! - `reconcile`: where a session starts, and which positions it skips.

mod reader;
mod reconcile;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::{Publish, PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, Context};
use async_nats::Client;
use futures_util::stream::{FuturesOrdered, StreamExt};
use roster_core::name::Name;
use roster_core::port::{CheckpointedLog, LogError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::stream::ensure_events_stream;
use crate::BusError;
use reader::{Batch, Outgoing, Reader};
use reconcile::reconcile;

/// The store checkpoint of the outbox: the next log position to publish.
pub const CHECKPOINT: &str = "nats-events";

/// How the outbox publishes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OutboxConfig {
    /// Publishes awaiting their acknowledgement at once (and the checkpoint's stride).
    pub window: usize,
    /// How long one publish waits for its acknowledgement before the outbox reconnects and
    /// reconciles.
    pub ack_timeout: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            window: 512,
            ack_timeout: Duration::from_secs(5),
        }
    }
}

impl OutboxConfig {
    /// This config with another window (at least 1).
    pub fn with_window(mut self, window: usize) -> Self {
        self.window = window.max(1);
        self
    }
}

/// What the outbox is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxStatus {
    /// The next position to publish: every event before it is in the stream (0 until the
    /// outbox first reached the stream and reconciled with it).
    pub next: u64,
    /// Whether the client is connected to NATS now.
    pub connected: bool,
    /// The last failure, until publishing works again.
    pub last_error: Option<String>,
}

/// A running outbox (a task on the tokio runtime it was spawned on, plus a reader thread).
///
/// [`Outbox::stop`] finishes cleanly: in-flight publishes are awaited and the checkpoint is
/// written. Dropping it without `stop` aborts it where it is, like a crash: whatever was
/// published but not checkpointed is found by the next outbox's reconcile (a checkpoint write
/// already under way still completes; it only ever records an acknowledged prefix).
#[derive(Debug)]
pub struct Outbox {
    progress: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    error: Arc<Mutex<Option<String>>>,
    client: Client,
    task: Option<JoinHandle<()>>,
}

impl Outbox {
    /// Starts publishing `log`'s events to namespace `ns` through `client`, on the current
    /// tokio runtime. Never fails: problems show in [`Outbox::status`] and are retried.
    pub fn spawn(log: Arc<dyn CheckpointedLog>, client: Client, ns: Name) -> Outbox {
        Self::spawn_with(log, client, ns, OutboxConfig::default())
    }

    /// [`Outbox::spawn`] with a config.
    pub fn spawn_with(
        log: Arc<dyn CheckpointedLog>,
        client: Client,
        ns: Name,
        config: OutboxConfig,
    ) -> Outbox {
        let (progress_tx, progress) = watch::channel(0);
        let (stop, stop_rx) = watch::channel(false);
        let error = Arc::new(Mutex::new(None));
        let task = Task {
            log,
            client: client.clone(),
            ns,
            window: config.window.max(1),
            ack_timeout: config.ack_timeout,
            next: 0,
            progress: progress_tx,
            error: Arc::clone(&error),
            stop: stop_rx,
            checkpointed: 0,
            writing: None,
        };
        Outbox {
            progress,
            stop,
            error,
            client,
            task: Some(tokio::spawn(task.run())),
        }
    }

    /// What it is doing now.
    pub fn status(&self) -> OutboxStatus {
        OutboxStatus {
            next: *self.progress.borrow(),
            connected: self.client.connection_state() == State::Connected,
            last_error: self
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }

    /// Waits until every position below `len` is in the stream (`log.len()`: everything
    /// committed so far). Fails only if the outbox stopped first.
    pub async fn published(&self, len: u64) -> Result<(), BusError> {
        let mut progress = self.progress.clone();
        progress
            .wait_for(|next| *next >= len)
            .await
            .map(drop)
            .map_err(|_| BusError::Stopped)
    }

    /// Stops: awaits the publishes in flight, writes the checkpoint, joins the reader.
    pub async fn stop(mut self) -> OutboxStatus {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            if task.await.is_err() {
                tracing::error!("the outbox's task panicked");
            }
        }
        self.status()
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Exponential backoff between failed sessions.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        d
    }
}

/// An acknowledgement awaited: the position, the stream sequence it must follow, and how its
/// publish went.
type Ack = Pin<Box<dyn Future<Output = (u64, u64, Result<PublishAck, PublishError>)> + Send>>;

/// Whether the event at position `seq` was stored right after stream sequence `follows`.
fn stored(seq: u64, follows: u64, acked: Result<PublishAck, PublishError>) -> Result<(), BusError> {
    match acked {
        // A duplicate at its own place: a previous session's publish of it landed there.
        Ok(ack) if ack.sequence == follows.saturating_add(1) => Ok(()),
        Ok(ack) if ack.duplicate => Err(BusError::OutOfStep {
            seq,
            why: format!(
                "JetStream acknowledged it as a duplicate of stream message {}, not as message                  {}: the stream was purged or changed within its duplicate window; it is                  published again once the window has passed",
                ack.sequence,
                follows.saturating_add(1)
            ),
        }),
        Ok(ack) => Err(BusError::OutOfStep {
            seq,
            why: format!(
                "JetStream stored it as stream message {}, not {} (a server that ignores                  Nats-Expected-Last-Sequence?)",
                ack.sequence,
                follows.saturating_add(1)
            ),
        }),
        Err(e)
            if matches!(
                e.kind(),
                PublishErrorKind::WrongLastSequence | PublishErrorKind::WrongLastMessageId
            ) =>
        {
            Err(BusError::OutOfStep {
                seq,
                why: format!("the server refused it after stream message {follows}: {e}"),
            })
        }
        Err(e) => Err(BusError::from_nats("publish an event")(e)),
    }
}

/// A checkpoint write in flight: the position written, and how it went.
type Write = JoinHandle<(u64, Result<(), LogError>)>;

/// The outbox's task.
struct Task {
    log: Arc<dyn CheckpointedLog>,
    client: Client,
    ns: Name,
    window: usize,
    ack_timeout: Duration,
    /// The next position to publish: everything before it is in the stream (from the
    /// checkpoint until the first reconcile confirms it).
    next: u64,
    /// `next`, shown once a reconcile confirmed it.
    progress: watch::Sender<u64>,
    error: Arc<Mutex<Option<String>>>,
    stop: watch::Receiver<bool>,
    /// The position durably recorded in the checkpoint.
    checkpointed: u64,
    writing: Option<Write>,
}

impl Task {
    async fn run(mut self) {
        let mut backoff = Backoff(Backoff::FIRST);
        loop {
            let log = Arc::clone(&self.log);
            let read = tokio::task::spawn_blocking(move || log.checkpoint(CHECKPOINT)).await;
            match read {
                Ok(Ok(cp)) => {
                    let cp = cp.unwrap_or(0);
                    self.checkpointed = cp;
                    let len = self.log.len();
                    if cp > len {
                        tracing::warn!(
                            "the outbox's checkpoint is {cp} but the log holds {len} events: \
                             reconciling from {len}"
                        );
                    }
                    self.next = cp.min(len);
                    break;
                }
                Ok(Err(e)) => self.failed(&e.into()),
                Err(e) => self.failed(&BusError::Thread(std::io::Error::other(e))),
            }
            if self.pause(backoff.next()).await {
                return;
            }
        }
        loop {
            if self.stopping() {
                break;
            }
            if self.client.connection_state() != State::Connected {
                if self.pause(Duration::from_millis(100)).await {
                    break;
                }
                continue;
            }
            let before = self.next;
            match self.session().await {
                Ok(()) => break,
                Err(e) => {
                    self.failed(&e);
                    if self.next != before {
                        backoff = Backoff(Backoff::FIRST);
                    }
                    if self.pause(backoff.next()).await {
                        break;
                    }
                }
            }
        }
        self.final_checkpoint().await;
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d`, or less if asked to stop; true when asked to stop.
    async fn pause(&mut self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = async { let _ = stop.wait_for(|s| *s).await; } => true,
            () = tokio::time::sleep(d) => self.stopping(),
        }
    }

    fn failed(&self, e: &BusError) {
        tracing::warn!("event outbox: {e}; retrying");
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
    }

    fn recovered(&self) {
        let mut error = self.error.lock().unwrap_or_else(PoisonError::into_inner);
        if error.take().is_some() {
            tracing::info!("event outbox: publishing again");
        }
    }

    /// One connection's worth of publishing: ensure the stream, reconcile, then publish until
    /// stopped (`Ok`) or something fails.
    async fn session(&mut self) -> Result<(), BusError> {
        let mut js = jetstream::new(self.client.clone());
        js.set_timeout(self.ack_timeout);
        let stream = ensure_events_stream(&js, &self.ns).await?;
        let scan = self.window.saturating_mul(4).max(256);
        let plan = reconcile(&stream, &*self.log, self.next, scan).await?;
        self.advance(plan.start);
        let (reader, mut batches) = Reader::start(
            Arc::clone(&self.log),
            self.ns.clone(),
            plan,
            self.window.div_ceil(256).max(2),
        )?;
        let result = self.pump(&js, &mut batches).await;
        drop(batches);
        reader.join().await;
        result
    }

    /// Publishes what the reader hands over, up to a window of acknowledgements at a time.
    async fn pump(
        &mut self,
        js: &Context,
        batches: &mut mpsc::Receiver<Batch>,
    ) -> Result<(), BusError> {
        let mut in_flight: FuturesOrdered<Ack> = FuturesOrdered::new();
        let mut pending: VecDeque<Outgoing> = VecDeque::new();
        let mut stop = self.stop.clone();
        let mut clean = false;
        loop {
            while in_flight.len() < self.window {
                let Some(o) = pending.pop_front() else {
                    break;
                };
                let (seq, follows) = (o.seq, o.follows);
                let publish = Publish::build().payload(o.payload).headers(o.headers);
                let ack = js
                    .send_publish(o.subject, publish)
                    .await
                    .map_err(BusError::from_nats("publish an event"))?;
                in_flight.push_back(Box::pin(async move { (seq, follows, ack.await) }));
            }
            let writing = self.writing.is_some();
            tokio::select! {
                biased;
                () = async { let _ = stop.wait_for(|s| *s).await; } => {
                    return self.drain(in_flight).await;
                }
                Some((seq, follows, acked)) = in_flight.next(), if !in_flight.is_empty() => {
                    stored(seq, follows, acked)?;
                    self.advance(seq + 1);
                    if !clean {
                        self.recovered();
                        clean = true;
                    }
                }
                batch = batches.recv(), if pending.len() < self.window => match batch {
                    Some(Ok(batch)) => pending.extend(batch),
                    Some(Err(e)) => return Err(e),
                    None => return Err(BusError::Stopped),
                },
                written = async {
                    match self.writing.as_mut() {
                        Some(w) => w.await,
                        None => std::future::pending().await,
                    }
                }, if writing => {
                    self.writing = None;
                    self.written(written);
                }
            }
            let idle = in_flight.is_empty() && pending.is_empty();
            self.maybe_checkpoint(idle);
        }
    }

    /// After a stop: awaits the acknowledgements in flight (each bounded by the ack timeout)
    /// and advances over the ones that arrived in order.
    async fn drain(&mut self, mut in_flight: FuturesOrdered<Ack>) -> Result<(), BusError> {
        while let Some((seq, follows, acked)) = in_flight.next().await {
            if stored(seq, follows, acked).is_err() {
                break;
            }
            self.advance(seq + 1);
        }
        Ok(())
    }

    /// Everything before `next` is in the stream.
    fn advance(&mut self, next: u64) {
        self.next = next;
        self.progress.send_replace(next);
    }

    /// Starts a checkpoint write when a window's worth was acknowledged since the last one, or
    /// when nothing is in flight; one write at a time, never awaited by the publishing.
    fn maybe_checkpoint(&mut self, idle: bool) {
        if self.writing.is_some() {
            return;
        }
        let next = self.next;
        let moved = next.abs_diff(self.checkpointed);
        if moved == 0 || (!idle && moved < self.window as u64) {
            return;
        }
        let log = Arc::clone(&self.log);
        self.writing = Some(tokio::task::spawn_blocking(move || {
            (next, log.set_checkpoint(CHECKPOINT, next))
        }));
    }

    fn written(&mut self, written: Result<(u64, Result<(), LogError>), tokio::task::JoinError>) {
        match written {
            Ok((at, Ok(()))) => self.checkpointed = at,
            Ok((_, Err(e))) => self.failed(&e.into()),
            Err(e) => self.failed(&BusError::Thread(std::io::Error::other(e))),
        }
    }

    /// At the end: the write in flight, then the final position.
    async fn final_checkpoint(&mut self) {
        if let Some(w) = self.writing.take() {
            let written = w.await;
            self.written(written);
        }
        let next = self.next;
        if next != self.checkpointed {
            let log = Arc::clone(&self.log);
            let written =
                tokio::task::spawn_blocking(move || (next, log.set_checkpoint(CHECKPOINT, next)))
                    .await;
            self.written(written);
        }
    }
}
