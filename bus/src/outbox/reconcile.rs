//! Before publishing, the outbox finds where the stream ends: the session publishes from the
//! position after the stream's last event of this log, each publish conditional on the
//! stream's last sequence, so a crash between a publish and its checkpoint re-publishes nothing
//! a consumer would see twice, a stream that lost events (a new server, a purge) gets them all
//! again, and no event is ever stored after a later one.
//!
//! Nothing read from the stream is believed unchecked: a message is this log's event only if
//! its body is a sealed envelope whose hash is the hash of this log's event at the position its
//! `Roster-Seq` names, with that event's id in `Nats-Msg-Id`. Anything else at the stream's end
//! — a forged publish by someone the server lets publish on `NS.events.>` — is stepped over
//! with a warning, so no message anyone publishes can stop the outbox: it makes the outbox's
//! next conditional publish fail, and the next session starts after it. A replay of one of this
//! log's own events (after the duplicate window, JetStream stores it again) is no more than
//! that: the walk looks past it for the event the outbox knows it published last.

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::Stream;
use roster_core::envelope::Envelope;
use roster_core::port::CheckpointedLog;

use crate::stream::message_at;
use crate::{wire, BusError};

/// Where a session publishes: from `start`, the first event right after stream sequence
/// `after`, each next one right after the previous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The first position the session publishes.
    pub start: u64,
    /// The stream's last sequence when the session started (0: it never held a message).
    pub after: u64,
}

impl Plan {
    /// The stream sequence that position `seq` (at or after `start`) must follow: its
    /// `Nats-Expected-Last-Sequence`. JetStream refuses the publish when the stream's last
    /// sequence is another, so an event is stored only right after the one before it.
    pub fn follows(&self, seq: u64) -> u64 {
        self.after.saturating_add(seq.saturating_sub(self.start))
    }
}

/// What one message of the stream is.
enum Kind {
    /// This log's event at this position.
    Ours(u64),
    /// A sealed event at this position that is not this log's (another log's, or forged).
    Other { seq: u64, hash: String },
    /// Not an event at all.
    Junk,
}

/// Tells what `m` is, comparing it with `log`.
fn kind(log: &dyn CheckpointedLog, m: &StreamMessage) -> Result<Kind, BusError> {
    let Some(seq) = wire::roster_seq(Some(&m.headers)) else {
        return Ok(Kind::Junk);
    };
    let Ok(theirs) = serde_json::from_slice::<Envelope>(&m.payload) else {
        return Ok(Kind::Junk);
    };
    if theirs.seq != seq {
        return Ok(Kind::Junk);
    }
    let other = Kind::Other {
        seq,
        hash: theirs.hash().to_string(),
    };
    let Some(ours) = log.read(seq, 1)?.pop() else {
        return Ok(other);
    };
    let id = ours.id.to_string();
    if theirs.hash() == ours.hash() && wire::msg_id(Some(&m.headers)) == Some(id.as_str()) {
        Ok(Kind::Ours(seq))
    } else {
        Ok(other)
    }
}

/// Decides where a session starts, given `next` (everything before it is known to be in the
/// stream: the checkpoint, or this run's acknowledged prefix). `scan` bounds how many
/// messages at the stream's start are stepped over looking for its first event, and how many
/// are read past a replay looking for position `next - 1`; the walk back from the end steps
/// over every message that is not this log's event (as many as someone published: each costs
/// one read).
///
/// The outbox stores this log's events in log order (every publish was conditional on its
/// predecessor being the stream's last message), but anyone who may publish can replay one of
/// them later. So the walk back from the end looks for the last event of this log, position
/// `m`, that the outbox can have published last:
///
/// - `next - 1 <= m < next + scan`: found (`m >= next`: published before a crash, never
///   checkpointed — the checkpoint lags by a few windows at most, so a position further ahead
///   is not believed, and is stepped over like a forgery).
/// - `m + 1 < next`: a replay, or the stream lost events: the walk goes on back for at most
///   `scan` more messages looking for `next - 1`, and settles for the highest position it saw.
///
/// Then, with `m` the position found:
///
/// - None: publish from 0 (warning if `next` said otherwise).
/// - `m + 1 == next`: publish from `next`.
/// - `m + 1 < next` (the stream lost events): warn, publish from `m + 1`.
/// - `m + 1 > next` (published before a crash, never checkpointed): publish from `m + 1`.
///
/// Positions before `m` that the stream lacks (an older outbox, before publishes were
/// conditional, could lose some on a reconnect; or someone deleted them) are never published
/// after `m`: that would put the stream out of log order. They are reported and stay missing.
///
/// The stream's first event must be this log's (same position, same hash), or nothing is
/// published: [`BusError::ForeignStream`] (another data directory publishes to this
/// namespace). Only the first one decides, so that a forgery later in the stream cannot
/// make the outbox disown its own stream.
pub(crate) async fn reconcile(
    stream: &Stream,
    log: &dyn CheckpointedLog,
    next: u64,
    scan: usize,
) -> Result<Plan, BusError> {
    let name = stream.cached_info().config.name.clone();
    let info = stream
        .get_info()
        .await
        .map_err(BusError::from_nats("read the events stream's state"))?;
    let state = info.state;
    let after = state.last_sequence;
    if state.messages == 0 {
        if next > 0 {
            tracing::warn!(
                stream = %name,
                "the events stream holds no events but {next} were published before \
                 (a new server, or a purged stream): publishing every event again"
            );
        }
        return Ok(Plan { start: 0, after });
    }
    check_first(stream, &name, log, state.first_sequence, after, scan).await?;
    // The last event of this log, stepping over what is not one (forgeries, deletions) and
    // past replays of older ones.
    let ahead = next.saturating_add(scan as u64);
    let mut last: Option<(u64, u64)> = None;
    let mut skipped = 0u64;
    let mut replays = 0u64;
    // Messages read since the first event of this log below `next - 1` was found.
    let mut past_replay: Option<usize> = None;
    let mut s = after;
    while s >= state.first_sequence && s > 0 && past_replay.is_none_or(|n| n < scan) {
        if let Some(m) = message_at(stream, s).await? {
            match kind(log, &m)? {
                Kind::Ours(seq) if seq >= ahead => skipped += 1,
                Kind::Ours(seq) if seq.saturating_add(1) >= next => {
                    last = Some((s, seq));
                    break;
                }
                Kind::Ours(seq) => {
                    replays += 1;
                    if last.is_none_or(|(_, m)| seq > m) {
                        last = Some((s, seq));
                    }
                    past_replay.get_or_insert(0);
                }
                Kind::Other { .. } | Kind::Junk => skipped += 1,
            }
        }
        if let Some(n) = past_replay.as_mut() {
            *n += 1;
        }
        s -= 1;
    }
    if let Some((_, m)) = last.filter(|(_, m)| replays > 0 && m.saturating_add(1) >= next) {
        tracing::warn!(
            stream = %name,
            "found the events stream's last event {m} behind {replays} older events of this \
             log published again after it (replays, by something other than this outbox: see \
             docs/nats.md); they are not published again"
        );
    }
    if skipped > 0 {
        tracing::warn!(
            stream = %name,
            "stepped over {skipped} messages at the end of the events stream that are not \
             this log's events (published by something other than this outbox: see \
             docs/nats.md to let only the runtime publish on the namespace's event subjects)"
        );
    }
    let Some((at, m)) = last else {
        if next > 0 {
            tracing::warn!(
                stream = %name,
                "the events stream holds none of this log's events but {next} were published \
                 before (a new server, or a purged stream): publishing every event again"
            );
        }
        return Ok(Plan { start: 0, after });
    };
    let start = m + 1;
    if at < start {
        // Stream sequences count what was stored: fewer than m + 1 means positions are missing.
        tracing::warn!(
            stream = %name,
            "the events stream holds position {m} at stream sequence {at}: at least {} \
             earlier events never reached it (lost by an outbox older than conditional \
             publishing, or deleted); they stay missing, since publishing them now would put \
             the stream out of log order",
            start - at
        );
    }
    if start < next {
        tracing::warn!(
            stream = %name,
            "the events stream ends at position {m} but {next} events were published \
             before (a new server, or a purged stream): publishing again from {start}"
        );
    } else if start > next {
        tracing::info!(
            stream = %name,
            "reconciled: positions {next} to {m} were published before the last checkpoint \
             was written; publishing from {start}"
        );
    }
    Ok(Plan { start, after })
}

/// The stream's first event (the first of its first `scan` messages that is one) must be this
/// log's: [`BusError::ForeignStream`] otherwise.
async fn check_first(
    stream: &Stream,
    name: &str,
    log: &dyn CheckpointedLog,
    first: u64,
    last: u64,
    scan: usize,
) -> Result<(), BusError> {
    let mut s = first.max(1);
    let mut looked = 0;
    while s <= last && looked < scan {
        if let Some(m) = message_at(stream, s).await? {
            match kind(log, &m)? {
                Kind::Ours(_) => return Ok(()),
                Kind::Junk => {}
                Kind::Other { seq, hash } => {
                    let why = match log.read(seq, 1)?.pop() {
                        Some(ours) => format!(
                            "its first event, at position {seq}, has hash {hash}, this log's {}",
                            ours.hash()
                        ),
                        None => format!(
                            "its first event is at position {seq}, and this log has only {} \
                             events",
                            log.len()
                        ),
                    };
                    return Err(BusError::ForeignStream {
                        stream: name.to_owned(),
                        why,
                    });
                }
            }
        }
        s += 1;
        looked += 1;
    }
    Ok(())
}
