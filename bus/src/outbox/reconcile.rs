//! Before publishing, the outbox finds where the stream ends: the session publishes from the
//! position after the stream's last event, each publish conditional on the stream's last
//! sequence, so a crash between a publish and its checkpoint re-publishes nothing a consumer
//! would see twice, a stream that lost events (a new server, a purge) gets them all again, and
//! no event is ever stored after a later one.

use async_nats::jetstream::stream::Stream;
use roster_core::envelope::Hash;
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

/// The `hash` field of a published envelope, to tell this log's events from another's.
#[derive(serde::Deserialize)]
struct Hashed {
    hash: Hash,
}

/// Decides where a session starts, given `next` (everything before it is known to be in the
/// stream: the checkpoint, or this run's acknowledged prefix). `scan` bounds how many deleted
/// messages at the stream's end are stepped over.
///
/// The stream holds events in log order (every publish was conditional on its predecessor
/// being the stream's last message), so its last event, position `m`, says it all:
///
/// - Stream empty: publish from 0 (warning if `next` said otherwise).
/// - `m + 1 == next`: publish from `next`.
/// - `m + 1 < next` (the stream lost events): warn, publish from `m + 1`.
/// - `m + 1 > next` (published before a crash, never checkpointed): publish from `m + 1`.
///
/// Positions before `m` that the stream lacks (an older outbox, before publishes were
/// conditional, could lose some on a reconnect; or someone deleted them) are never published
/// after `m`: that would put the stream out of log order. They are reported and stay missing.
///
/// The stream's last event must be this log's (same position, same hash), or nothing is
/// published: [`BusError::ForeignStream`].
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
    // The last message that carries a position (normally the very last one; deleted messages
    // are stepped over).
    let mut last = None;
    if state.messages > 0 {
        let mut s = state.last_sequence;
        let mut looked = 0;
        while s >= state.first_sequence && s > 0 && looked < scan {
            if let Some(m) = message_at(stream, s).await? {
                let seq =
                    wire::roster_seq(Some(&m.headers)).ok_or_else(|| BusError::BadMessage {
                        stream: name.clone(),
                        stream_seq: s,
                    })?;
                last = Some((s, seq, m.payload));
                break;
            }
            s -= 1;
            looked += 1;
        }
    }
    let Some((at, m, payload)) = last else {
        if next > 0 {
            tracing::warn!(
                stream = %name,
                "the events stream holds no events but {next} were published before \
                 (a new server, or a purged stream): publishing every event again"
            );
        }
        return Ok(Plan { start: 0, after });
    };
    check_ours(&name, log, m, &payload)?;
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

/// The stream's last event (position `m`, body `payload`) must be this log's.
fn check_ours(
    stream: &str,
    log: &dyn CheckpointedLog,
    m: u64,
    payload: &[u8],
) -> Result<(), BusError> {
    let foreign = |why: String| BusError::ForeignStream {
        stream: stream.to_owned(),
        why,
    };
    let Some(ours) = log.read(m, 1)?.pop() else {
        return Err(foreign(format!(
            "it holds position {m}, and this log has only {} events",
            log.len()
        )));
    };
    let theirs: Hashed = serde_json::from_slice(payload)
        .map_err(|e| foreign(format!("its event at position {m} is not an envelope: {e}")))?;
    if theirs.hash != ours.hash() {
        return Err(foreign(format!(
            "its event at position {m} has hash {}, this log's {}",
            theirs.hash,
            ours.hash()
        )));
    }
    Ok(())
}
