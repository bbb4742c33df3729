//! Before publishing, the outbox compares its position with what the stream holds, so that a
//! crash between a publish and its checkpoint re-publishes nothing a consumer would see twice,
//! and a stream that lost events (a new server, a purge) gets them all again.

use std::collections::BTreeSet;

use async_nats::jetstream::stream::Stream;
use roster_core::envelope::Hash;
use roster_core::port::EventLog;
use roster_store::SledLog;

use crate::stream::{message_at, roster_seq_at};
use crate::{wire, BusError};

/// Which log positions a session publishes, from `start` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The first position the session reads.
    pub start: u64,
    /// Every position below this is in the stream.
    floor: u64,
    /// Positions at or above `floor` that are in the stream already.
    present: BTreeSet<u64>,
}

impl Plan {
    /// Publish everything from `start`.
    pub fn from(start: u64) -> Plan {
        Plan {
            start,
            floor: start,
            present: BTreeSet::new(),
        }
    }

    /// True when position `seq` is in the stream already and must not be published again.
    pub fn is_present(&self, seq: u64) -> bool {
        seq < self.floor || self.present.contains(&seq)
    }

    /// How many positions from `start` on are skipped (for the log line).
    fn skipped(&self) -> usize {
        usize::try_from(self.floor - self.start).unwrap_or(usize::MAX) + self.present.len()
    }
}

/// The `hash` field of a published envelope, to tell this log's events from another's.
#[derive(serde::Deserialize)]
struct Hashed {
    hash: Hash,
}

/// Decides where a session starts, given `next` (everything before it is known to be in the
/// stream: the checkpoint, or this run's acknowledged prefix). `scan` bounds how many stream
/// messages are read back.
///
/// - Stream empty: publish from 0 (warning if `next` said otherwise).
/// - Its last event is position `m`, with `m + 1 == next`: publish from `next`.
/// - `m + 1 < next` (the stream lost events): warn, publish from `m + 1`.
/// - `m + 1 > next` (published before a crash, never checkpointed): read the `Roster-Seq` of
///   the stream's last messages back to `next` and skip the positions found.
///
/// The stream's last event must be this log's (same position, same hash), or nothing is
/// published: [`BusError::ForeignStream`].
pub(crate) async fn reconcile(
    stream: &Stream,
    log: &SledLog,
    next: u64,
    scan: usize,
) -> Result<Plan, BusError> {
    let name = stream.cached_info().config.name.clone();
    let info = stream
        .get_info()
        .await
        .map_err(BusError::from_nats("read the events stream's state"))?;
    let state = info.state;
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
    let Some((last_stream_seq, m, payload)) = last else {
        if next > 0 {
            tracing::warn!(
                stream = %name,
                "the events stream holds no events but {next} were published before \
                 (a new server, or a purged stream): publishing every event again"
            );
        }
        return Ok(Plan::from(0));
    };
    check_ours(&name, log, m, &payload)?;
    if m < next {
        if m + 1 < next {
            tracing::warn!(
                stream = %name,
                "the events stream ends at position {m} but {next} events were published \
                 before (a new server, or a purged stream): publishing again from {}",
                m + 1
            );
        }
        return Ok(Plan::from(m + 1));
    }
    // Published up to m before a crash, checkpointed only up to `next`: find which of
    // next..=m the stream holds (normally all of them).
    let mut plan = Plan::from(next);
    let mut s = last_stream_seq;
    let mut looked = 0usize;
    loop {
        if s < state.first_sequence || s == 0 {
            break;
        }
        if looked >= scan {
            // The outbox publishes in log order, so what lies further back was published.
            plan.floor = plan.present.first().copied().unwrap_or(next);
            tracing::warn!(
                stream = %name,
                "read {scan} messages back without reaching position {next}: assuming the \
                 positions before {} are in the stream",
                plan.floor
            );
            break;
        }
        looked += 1;
        match roster_seq_at(stream, s).await? {
            Some(r) if r < next => break,
            Some(r) => {
                plan.present.insert(r);
            }
            None => {}
        }
        s -= 1;
    }
    tracing::info!(
        stream = %name,
        "reconciled: positions {next} to {m} were published before the last checkpoint was \
         written; {} of them are in the stream and are not published again",
        plan.skipped()
    );
    Ok(plan)
}

/// The stream's last event (position `m`, body `payload`) must be this log's.
fn check_ours(stream: &str, log: &SledLog, m: u64, payload: &[u8]) -> Result<(), BusError> {
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
