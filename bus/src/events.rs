//! Reading the events stream as an outside subscriber: [`EventSubscription`].
//!
//! Every message is checked before it is delivered (`crate::verify`): a sealed envelope whose
//! headers agree with it, after the last position read, linked to the event before it when
//! every event is read. What fails is refused with its reason ([`Received::Refused`]) and never
//! delivered; positions the stream lacks, or a change of branch after a forgery, come with the
//! next event as a [`Notice`]. What is delivered is the checked envelope encoded again
//! ([`crate::wire::encode`]: one line of canonical JSON), never the message's bytes as sent.
//!
//! By default an ordered consumer (ephemeral, no acks; the client recreates it at the right
//! place after a gap or an outage). With a durable name, a durable pull consumer with explicit
//! acks that resumes where it stopped; each event is acknowledged (and the server confirms the
//! acknowledgement) only when the caller says it is handled, so a subscriber that dies before
//! printing an event gets it again. A durable has one reader at a time: opening it while the
//! server still holds events handed to an earlier reader and never acknowledged (it died, or
//! they reached it as it stopped) starts it again right after the last event acknowledged, so
//! they come first and in order instead of after the server's ack wait. A reader the server
//! lets read the durable and nothing else (one an operator made for it, `docs/nats.md`) cannot
//! start it again: it waits for the earlier reader's pulls to expire and for the ack wait, and
//! then gets those events first. It needs no permission to create a consumer.
//!
//! Starting at a log position: the stream's sequence of an event is its position + 1 only while
//! the stream holds every event exactly once (the outbox's normal state). That is checked by
//! reading the `Roster-Seq` of the message at the computed sequence; when it does not match,
//! delivery starts at the beginning and earlier events are dropped here.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::{self, Batch, Ordered};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream::{ConsumerErrorKind, Stream};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, AckKind};
use async_nats::Client;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use roster_core::event::Event;
use roster_core::name::Name;

use crate::stream::{ensure_events_stream, roster_seq_at};
use crate::verify::{Checker, Notice, Refusal};
use crate::wire;
use crate::{subject, BusError};

/// How many messages one pull of a durable subscription asks for at most.
const PULL: usize = 64;

/// How long one pull waits on the server for messages before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// How long the server has to answer a reset of a durable: it answers at once unless it drops
/// the request, as it does one its permissions deny.
const RESET_TIMEOUT: Duration = Duration::from_secs(2);

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct SubscribeOptions {
    /// Only this team's events.
    pub team: Option<Name>,
    /// Only events of this kind (one of [`Event::KINDS`]).
    pub kind: Option<String>,
    /// The first log position to deliver (for a durable: only when it is created).
    pub from: u64,
    /// Resume the durable subscription of this name (created if missing).
    pub durable: Option<Name>,
    /// Deliver at most this many events (a durable never pulls more than it will deliver).
    pub limit: Option<u64>,
}

/// What [`EventSubscription::receive`] read.
// Returned once per message and matched at once: boxing the event would cost an allocation
// per event to save a few hundred bytes on the stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Received {
    /// An event that passed every check.
    Event(Delivery),
    /// A message refused, not delivered.
    Refused(Refused),
}

/// A message of the events stream that failed the checks of `crate::verify`: forged, replayed,
/// or out of the chain. It is not delivered (a durable acknowledges it, so it never comes again).
#[derive(Debug, Clone, thiserror::Error)]
#[error("refused message {stream_seq} of the events stream (subject {subject}): {why}")]
pub struct Refused {
    /// Its stream sequence.
    pub stream_seq: u64,
    /// The subject it was published on.
    pub subject: String,
    /// Why it was refused.
    pub why: Refusal,
}

/// One event delivered: its log position and its JSON.
#[derive(Debug)]
pub struct Delivery {
    /// The event's log position (`Roster-Seq`).
    pub seq: u64,
    /// The checked envelope encoded again by [`wire::encode`]: one line, no field the envelope
    /// does not have, whatever the message's bytes were (the outbox publishes exactly these).
    pub json: Bytes,
    /// What the reader should be told before this event: positions missing before it, or that
    /// it continues a refused event (`crate::verify`).
    pub notice: Option<Notice>,
    /// The message to acknowledge (durable subscriptions).
    message: Option<jetstream::Message>,
}

impl Delivery {
    /// Tells the server this event is handled (a durable then never delivers it again); waits
    /// for the server's confirmation. Nothing to do for an ordered subscription.
    pub async fn ack(self) -> Result<(), BusError> {
        match self.message {
            None => Ok(()),
            Some(m) => m
                .double_ack()
                .await
                .map_err(BusError::nats("acknowledge an event")),
        }
    }
}

enum Source {
    Ordered(Box<Ordered>),
    Durable {
        consumer: Box<PullConsumer>,
        batch: Option<Box<Batch>>,
        /// Messages the current batch brought.
        pulled: u64,
        /// Where to ask whether the consumer still exists, and under which name.
        js: Box<jetstream::Context>,
        name: Name,
    },
}

/// A subscription to a namespace's events stream.
pub struct EventSubscription {
    source: Source,
    stream: String,
    filter: String,
    /// Events before this position are dropped here (acknowledged, for a durable).
    from: u64,
    /// The stream sequence of the last message read.
    last_stream_seq: u64,
    /// What every message is checked against.
    checker: Checker,
    delivered: u64,
    limit: Option<u64>,
}

impl std::fmt::Debug for EventSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSubscription")
            .field("stream", &self.stream)
            .field("filter", &self.filter)
            .field("from", &self.from)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

/// The text a durable keeps in its description, to remember the position it started from.
const FROM_PREFIX: &str = "roster events from position ";

impl EventSubscription {
    /// Subscribes to namespace `ns`'s events (the stream is created if missing, so a
    /// subscriber may start before the first publisher).
    pub async fn open(
        client: &Client,
        ns: &Name,
        options: SubscribeOptions,
    ) -> Result<EventSubscription, BusError> {
        let js = jetstream::new(client.clone());
        if let Some(kind) = &options.kind {
            if !Event::KINDS.contains(&kind.as_str()) {
                return Err(BusError::UnknownKind(kind.clone()));
            }
        }
        let stream = ensure_events_stream(&js, ns).await?;
        let filter = subject::events_filter(ns, options.team.as_ref(), options.kind.as_deref());
        let name = stream.cached_info().config.name.clone();
        let (source, from) = match &options.durable {
            None => {
                let config = pull::OrderedConfig {
                    filter_subject: filter.clone(),
                    deliver_policy: start_policy(&stream, options.from).await?,
                    ..Default::default()
                };
                let consumer = stream
                    .create_consumer(config)
                    .await
                    .map_err(BusError::from_nats("create an ordered consumer"))?;
                let messages = consumer
                    .messages()
                    .await
                    .map_err(BusError::from_nats("read the events stream"))?;
                (Source::Ordered(Box::new(messages)), options.from)
            }
            Some(durable) => {
                let (consumer, from) =
                    durable_consumer(&js, &stream, durable, &filter, options.from).await?;
                (
                    Source::Durable {
                        consumer: Box::new(consumer),
                        batch: None,
                        pulled: 0,
                        js: Box::new(js.clone()),
                        name: durable.clone(),
                    },
                    from,
                )
            }
        };
        Ok(EventSubscription {
            source,
            stream: name,
            filter,
            from,
            last_stream_seq: 0,
            checker: Checker::new(options.team.is_none() && options.kind.is_none()),
            delivered: 0,
            limit: options.limit,
        })
    }

    /// Ends the subscription. A durable hands back (negatively acknowledges) the events it
    /// pulled but did not deliver, so that the next subscriber of its name gets them at once,
    /// in order, rather than after the server's ack wait.
    pub async fn close(self) -> Result<(), BusError> {
        if let Source::Durable {
            batch: Some(mut batch),
            ..
        } = self.source
        {
            while let Some(Some(pulled)) = batch.next().now_or_never() {
                let Ok(m) = pulled else { break };
                m.ack_with(AckKind::Nak(None))
                    .await
                    .map_err(BusError::nats("hand back an event"))?;
            }
        }
        Ok(())
    }

    /// The subject filter on the stream.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// The next event, waiting for one; `None` once the limit was delivered. A message
    /// refused by the checks (`crate::verify`) is skipped with a warning in the log; use
    /// [`EventSubscription::receive`] to see refusals.
    pub async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            match self.receive().await? {
                None => return Ok(None),
                Some(Received::Event(d)) => {
                    if let Some(n) = &d.notice {
                        tracing::warn!("{n}");
                    }
                    return Ok(Some(d));
                }
                // The reason may quote what a forger sent: control characters escaped.
                Some(Received::Refused(r)) => {
                    tracing::warn!("{}", r.to_string().escape_debug())
                }
            }
        }
    }

    /// The next message, waiting for one: an event that passed every check, or a message
    /// refused and why; `None` once the limit was delivered (refusals do not count).
    pub async fn receive(&mut self) -> Result<Option<Received>, BusError> {
        loop {
            if self.limit.is_some_and(|l| self.delivered >= l) {
                return Ok(None);
            }
            let message = match &mut self.source {
                Source::Ordered(messages) => match messages.next().await {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return Err(BusError::from_nats("read the events stream")(e)),
                    None => return Err(BusError::Stopped),
                },
                Source::Durable {
                    consumer,
                    batch,
                    pulled,
                    js,
                    name,
                } => {
                    let next = match batch {
                        Some(b) => b.next().await,
                        None => None,
                    };
                    match next {
                        Some(Ok(m)) => {
                            *pulled += 1;
                            m
                        }
                        Some(Err(e)) => return Err(BusError::nats("read the events stream")(e)),
                        None => {
                            // A pull that brought nothing may be a pull from a consumer that
                            // no longer exists (deleted, or lost with the server's store):
                            // the server answers those with silence, so without this check the
                            // subscriber would wait forever for events that keep coming.
                            if batch.is_some() && *pulled == 0 {
                                check_durable(js, &self.stream, name).await?;
                            }
                            *pulled = 0;
                            let want = self
                                .limit
                                .map_or(PULL as u64, |l| (l - self.delivered).min(PULL as u64));
                            let b = consumer
                                .batch()
                                .max_messages(usize::try_from(want).unwrap_or(PULL))
                                .expires(PULL_EXPIRES)
                                .messages()
                                .await
                                .map_err(BusError::from_nats(
                                    "pull from the durable subscription",
                                ))?;
                            *batch = Some(Box::new(b));
                            continue;
                        }
                    }
                }
            };
            let durable = matches!(self.source, Source::Durable { .. });
            // A redelivery is dropped (acknowledged, for a durable): the stream's own sequence
            // only grows along it, so a message at or before the last one read comes again (a
            // server killed before it saved the durable's position sends from an older one).
            let stream_seq = message.info().map_or(0, |i| i.stream_sequence);
            if stream_seq != 0 && stream_seq <= self.last_stream_seq {
                if durable {
                    ack(&message).await?;
                }
                continue;
            }
            self.last_stream_seq = stream_seq;
            let checked = match self
                .checker
                .check(message.headers.as_ref(), &message.payload)
            {
                Ok(checked) => checked,
                Err(why) => {
                    // Handled: a durable never offers it again.
                    if durable {
                        ack(&message).await?;
                    }
                    return Ok(Some(Received::Refused(Refused {
                        stream_seq,
                        subject: message.subject.to_string(),
                        why,
                    })));
                }
            };
            let envelope = checked.envelope;
            // Checked (so it anchors the chain) but not delivered: what precedes `from`.
            if envelope.seq < self.from {
                if durable {
                    ack(&message).await?;
                }
                continue;
            }
            // Of a gap, only what the caller asked for.
            let notice = match checked.notice {
                Some(Notice::Gap { last, .. }) if last < self.from => None,
                Some(Notice::Gap { first, last }) => Some(Notice::Gap {
                    first: first.max(self.from),
                    last,
                }),
                other => other,
            };
            let json = wire::encode(&envelope)?;
            self.delivered += 1;
            return Ok(Some(Received::Event(Delivery {
                seq: envelope.seq,
                json,
                notice,
                message: durable.then_some(message),
            })));
        }
    }
}

/// Acknowledges a message that will not be delivered.
async fn ack(message: &jetstream::Message) -> Result<(), BusError> {
    message
        .ack_with(AckKind::Ack)
        .await
        .map_err(BusError::nats("acknowledge an event"))
}

/// Fails with [`BusError::DurableGone`] if the durable `name` no longer exists on `stream`.
/// Any other failure (the server unreachable for now) is not this check's to report: the
/// next pull waits for the server as before.
async fn check_durable(js: &jetstream::Context, stream: &str, name: &Name) -> Result<(), BusError> {
    match js
        .get_consumer_from_stream::<pull::Config, _, _>(name.as_str(), stream)
        .await
    {
        Err(e)
            if matches!(e.kind(), ConsumerErrorKind::JetStream(ref j)
            if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND
                || j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            Err(BusError::DurableGone {
                name: name.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Where a consumer starting at log position `from` starts in the stream.
async fn start_policy(stream: &Stream, from: u64) -> Result<DeliverPolicy, BusError> {
    if from == 0 {
        return Ok(DeliverPolicy::All);
    }
    let at = from + 1;
    let aligned = match roster_seq_at(stream, at).await {
        Ok(Some(r)) => r == from,
        // Past the end: aligned if the stream's last message is where it should be (then the
        // outbox goes on publishing in step), or if the stream is empty.
        Ok(None) => {
            let info = stream
                .get_info()
                .await
                .map_err(BusError::from_nats("read the events stream's state"))?;
            let last = info.state.last_sequence;
            last < at
                && (last == 0 || roster_seq_at(stream, last).await.ok().flatten() == Some(last - 1))
        }
        Err(_) => false,
    };
    Ok(if aligned {
        DeliverPolicy::ByStartSequence { start_sequence: at }
    } else {
        DeliverPolicy::All
    })
}

/// The durable pull consumer `name`, created with `filter` from `from` if missing; its filter
/// must be `filter`. Returns it with the position it drops events before.
async fn durable_consumer(
    js: &jetstream::Context,
    stream: &Stream,
    name: &Name,
    filter: &str,
    from: u64,
) -> Result<(PullConsumer, u64), BusError> {
    let stream_name = &stream.cached_info().config.name;
    match js
        .get_consumer_from_stream::<pull::Config, _, _>(name.as_str(), stream_name)
        .await
    {
        Ok(consumer) => {
            let config = &consumer.cached_info().config;
            if config.filter_subject != filter {
                return Err(BusError::DurableMismatch {
                    name: name.to_string(),
                    has: config.filter_subject.clone(),
                    wants: filter.to_owned(),
                });
            }
            if config.ack_policy != AckPolicy::Explicit {
                return Err(BusError::DurableMismatch {
                    name: name.to_string(),
                    has: format!("{} (without explicit acks)", config.filter_subject),
                    wants: filter.to_owned(),
                });
            }
            let from = config
                .description
                .as_deref()
                .and_then(|d| d.strip_prefix(FROM_PREFIX))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let info = consumer.cached_info();
            if info.num_ack_pending == 0 && info.num_waiting == 0 {
                return Ok((consumer, from));
            }
            // Events the server handed to an earlier reader that never acknowledged them — it
            // died holding them, or they reached it as it stopped — would come again only after
            // the server's ack wait, behind later ones; and a pull that reader left waiting may
            // still take more. Start again right after the last event acknowledged in order.
            let floor = info.ack_floor.stream_sequence;
            let mut quick = js.clone();
            quick.set_timeout(RESET_TIMEOUT);
            if let Err(e) = quick
                .delete_consumer_from_stream(name.as_str(), stream_name)
                .await
            {
                // A reader the server lets read this durable and nothing more (made for it by
                // an operator: docs/nats.md) may not reset it: wait until the earlier reader's
                // leftovers come first instead.
                tracing::warn!(
                    "cannot reset durable subscription `{name}` ({e}): waiting for what an \
                     earlier reader left to be handed out again"
                );
                return Ok((wait_for_leftovers(consumer).await?, from));
            }
            let start = if floor == 0 {
                start_policy(stream, from).await?
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: floor + 1,
                }
            };
            Ok((
                create_durable(stream, name, filter, from, start).await?,
                from,
            ))
        }
        Err(e)
            if matches!(e.kind(), ConsumerErrorKind::JetStream(ref j)
            if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND) =>
        {
            let start = start_policy(stream, from).await?;
            Ok((
                create_durable(stream, name, filter, from, start).await?,
                from,
            ))
        }
        Err(e) if e.kind() == ConsumerErrorKind::InvalidConsumerType => {
            Err(BusError::DurableMismatch {
                name: name.to_string(),
                has: "a push consumer".into(),
                wants: format!("a pull consumer on {filter}"),
            })
        }
        Err(e) => Err(BusError::from_nats("read the durable subscription")(e)),
    }
}

/// Waits, on a durable that cannot be reset, until the pulls an earlier reader left waiting
/// have expired (else they take new events to a reader that is gone) and, if it left events
/// unacknowledged, until the consumer's ack wait has passed: the server then hands them out
/// again first, in order.
async fn wait_for_leftovers(mut consumer: PullConsumer) -> Result<PullConsumer, BusError> {
    let deadline = tokio::time::Instant::now() + PULL_EXPIRES + Duration::from_secs(2);
    loop {
        let info = consumer
            .info()
            .await
            .map_err(BusError::from_nats("read the durable subscription"))?;
        if info.num_waiting == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let info = consumer.cached_info();
    if info.num_ack_pending > 0 {
        tokio::time::sleep(info.config.ack_wait + Duration::from_secs(1)).await;
    }
    Ok(consumer)
}

/// Creates the durable pull consumer `name` on `filter`, delivering from `start`, remembering
/// `from` (the position it drops events before) in its description.
async fn create_durable(
    stream: &Stream,
    name: &Name,
    filter: &str,
    from: u64,
    start: DeliverPolicy,
) -> Result<PullConsumer, BusError> {
    let config = pull::Config {
        durable_name: Some(name.to_string()),
        description: Some(format!("{FROM_PREFIX}{from}")),
        filter_subject: filter.to_owned(),
        deliver_policy: start,
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    };
    stream
        .create_consumer(config)
        .await
        .map_err(BusError::from_nats("create the durable subscription"))
}
