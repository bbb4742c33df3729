//! What one event looks like on NATS: the envelope's JSON (exactly a `roster export` line) with
//! two headers. `docs/events.md` documents it; `tests/schema.rs` keeps the two in step.

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::HeaderMap;
use bytes::Bytes;
use roster_core::envelope::Envelope;

use crate::BusError;

/// The header JetStream deduplicates on: the event's id (`evt_…`), so a re-publish of an event
/// already in the stream (within the duplicate window) is stored once.
pub const MSG_ID: &str = "Nats-Msg-Id";

/// The header that carries the event's position in the log (decimal), so that the outbox can
/// reconcile with the stream and subscribers can start from a position.
pub const ROSTER_SEQ: &str = "Roster-Seq";

/// The message body of `envelope`: its JSON, the same bytes `roster export` writes on a line.
pub fn encode(envelope: &Envelope) -> Result<Bytes, BusError> {
    serde_json::to_vec(envelope)
        .map(Bytes::from)
        .map_err(|source| BusError::Encode {
            seq: envelope.seq,
            source,
        })
}

/// The headers of `envelope`'s message.
pub fn headers(envelope: &Envelope) -> HeaderMap {
    let mut h = HeaderMap::new();
    // The standard name, not the text: async-nats matches a parsed `Nats-Msg-Id` only to it.
    h.insert(NATS_MESSAGE_ID, envelope.id.to_string());
    h.insert(ROSTER_SEQ, envelope.seq.to_string());
    h
}

/// The event id a message carries in its `Nats-Msg-Id` header.
pub fn msg_id(headers: Option<&HeaderMap>) -> Option<&str> {
    Some(headers?.get(NATS_MESSAGE_ID)?.as_str())
}

/// The log position a message carries in its `Roster-Seq` header, if it has a valid one.
pub fn roster_seq(headers: Option<&HeaderMap>) -> Option<u64> {
    headers?.get(ROSTER_SEQ)?.as_str().parse().ok()
}
