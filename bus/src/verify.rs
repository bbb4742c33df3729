//! Believing nothing read from the events stream unchecked: [`Checker`].
//!
//! Anyone the server lets publish on `NS.events.>` can put a message into the stream, so a
//! reader checks each one before it counts: the body must be an envelope whose hash is the hash
//! of its content, its headers must agree with it (`Roster-Seq` = its position, `Nats-Msg-Id`
//! = its id), and it must continue what was read before — the next position, and, when every
//! event is read (no team or kind filter), a `prev_hash` that is the previous event's hash (the
//! first event's, zero). A message that fails is refused with the reason; it changes nothing.
//!
//! What this does not do: the chain is unkeyed, so a forger who can read the stream and publish
//! into it can build a well-formed next event and race the outbox with it. The reader then
//! follows the forgery and refuses the real events after it, loudly — it detects, it does not
//! prevent. Only the server's permissions prevent it (`docs/nats.md`). The first event a reader
//! sees after a position other than 0 is taken on trust (its predecessor was not read).

use async_nats::HeaderMap;
use roster_core::envelope::{Envelope, Hash};

use crate::wire;

/// Why a message of the events stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No `Roster-Seq` header with a position: not published by an outbox.
    #[error("it has no valid Roster-Seq header")]
    NoPosition,
    /// The body does not decode as an envelope, or its hash is not its content's.
    #[error("its body is not a sealed event: {0}")]
    NotAnEvent(String),
    /// The `Roster-Seq` header names another position than the envelope's.
    #[error(
        "its Roster-Seq header says position {header}, the event inside is at position {body}"
    )]
    PositionMismatch {
        /// The header's position.
        header: u64,
        /// The envelope's.
        body: u64,
    },
    /// The `Nats-Msg-Id` header is not the envelope's event id.
    #[error("its Nats-Msg-Id header is not the event's id {id}")]
    IdMismatch {
        /// The envelope's id.
        id: String,
    },
    /// The position was read already (a replay, or a forgery that came first).
    #[error("position {seq} again: position {last} was read already")]
    Again {
        /// Its position.
        seq: u64,
        /// The last position read.
        last: u64,
    },
    /// Positions between the last one read and this one are missing.
    #[error("position {found} does not follow position {last}: it skips what is between")]
    Gap {
        /// The last position read.
        last: u64,
        /// Its position.
        found: u64,
    },
    /// Its `prev_hash` is not the hash of the event before it.
    #[error(
        "event {seq} does not link to the event before it (its prev_hash is not that event's hash)"
    )]
    BrokenLink {
        /// Its position.
        seq: u64,
    },
}

/// What a reader has read so far, to check the next message against it.
#[derive(Debug, Clone)]
pub struct Checker {
    /// Every event is read, so each must link to the one before.
    linked: bool,
    /// The last event accepted: position and hash.
    last: Option<(u64, Hash)>,
}

impl Checker {
    /// A checker for a reader of every event (`linked`) or of a filtered part of them.
    pub fn new(linked: bool) -> Checker {
        Checker { linked, last: None }
    }

    /// Checks one message; on success it is the new last event, and its envelope is returned.
    pub fn check(
        &mut self,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Result<Envelope, Refusal> {
        let header = wire::roster_seq(headers).ok_or(Refusal::NoPosition)?;
        let envelope: Envelope =
            serde_json::from_slice(payload).map_err(|e| Refusal::NotAnEvent(e.to_string()))?;
        if envelope.seq != header {
            return Err(Refusal::PositionMismatch {
                header,
                body: envelope.seq,
            });
        }
        let id = envelope.id.to_string();
        if wire::msg_id(headers) != Some(id.as_str()) {
            return Err(Refusal::IdMismatch { id });
        }
        let seq = envelope.seq;
        match self.last {
            Some((last, _)) if seq <= last => return Err(Refusal::Again { seq, last }),
            Some((last, _)) if self.linked && seq != last + 1 => {
                return Err(Refusal::Gap { last, found: seq })
            }
            Some((_, hash)) if self.linked && envelope.prev_hash() != hash => {
                return Err(Refusal::BrokenLink { seq })
            }
            None if seq == 0 && envelope.prev_hash() != Hash::ZERO => {
                return Err(Refusal::BrokenLink { seq })
            }
            _ => {}
        }
        self.last = Some((seq, envelope.hash()));
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::actor::Actor;
    use roster_core::envelope::Body;
    use roster_core::event::Event;
    use roster_core::id::{CountingEntropy, EventId, TeamId};
    use roster_core::name::Name;
    use roster_core::time::Timestamp;

    fn chain(n: u64) -> Vec<Envelope> {
        let mut e = CountingEntropy::new(1);
        let team = TeamId::mint(Timestamp::from_millis(1), &mut e);
        let mut prev = Hash::ZERO;
        (0..n)
            .map(|seq| {
                let body = Body {
                    seq,
                    id: EventId::mint(Timestamp::from_millis(1), &mut e),
                    team,
                    version: seq + 1,
                    at: Timestamp::from_millis(1),
                    actor: Actor::Runtime,
                    causation: None,
                    schema: 1,
                    event: Event::TeamCreated {
                        name: Name::parse("t").unwrap(),
                    },
                };
                let env = Envelope::seal(body, prev);
                prev = env.hash();
                env
            })
            .collect()
    }

    fn msg(e: &Envelope) -> (HeaderMap, Vec<u8>) {
        (wire::headers(e), wire::encode(e).unwrap().to_vec())
    }

    #[test]
    fn a_chain_is_accepted_and_anything_else_refused() {
        let c = chain(4);
        let mut k = Checker::new(true);
        for e in &c[..2] {
            let (h, b) = msg(e);
            assert_eq!(&k.check(Some(&h), &b).unwrap(), e);
        }
        // A replay, a skip, and a message with no position are refused, and change nothing.
        let (h, b) = msg(&c[1]);
        assert_eq!(
            k.check(Some(&h), &b),
            Err(Refusal::Again { seq: 1, last: 1 })
        );
        let (h, b) = msg(&c[3]);
        assert_eq!(
            k.check(Some(&h), &b),
            Err(Refusal::Gap { last: 1, found: 3 })
        );
        assert_eq!(k.check(None, b"{}"), Err(Refusal::NoPosition));
        // A forged event at the right position that does not link.
        let other = chain(3);
        let mut body = other[2].body().clone();
        body.seq = 2;
        let forged = Envelope::seal(body, Hash([7; 32]));
        let (h, b) = msg(&forged);
        assert_eq!(k.check(Some(&h), &b), Err(Refusal::BrokenLink { seq: 2 }));
        // Headers that disagree with the body.
        let (mut h, b) = msg(&c[2]);
        h.insert(wire::ROSTER_SEQ, "9");
        assert!(matches!(
            k.check(Some(&h), &b),
            Err(Refusal::PositionMismatch { header: 9, body: 2 })
        ));
        let (mut h, b) = msg(&c[2]);
        h.insert(async_nats::header::NATS_MESSAGE_ID, "evt_x");
        assert!(matches!(
            k.check(Some(&h), &b),
            Err(Refusal::IdMismatch { .. })
        ));
        // An edited body: its hash no longer matches.
        let (h, b) = msg(&c[2]);
        let edited = String::from_utf8(b).unwrap().replace("\"t\"", "\"u\"");
        assert!(matches!(
            k.check(Some(&h), edited.as_bytes()),
            Err(Refusal::NotAnEvent(_))
        ));
        let (h, b) = msg(&c[2]);
        assert!(k.check(Some(&h), &b).is_ok(), "the real one still follows");
    }

    #[test]
    fn a_filtered_reader_checks_order_not_links() {
        let c = chain(4);
        let mut k = Checker::new(false);
        let (h, b) = msg(&c[1]);
        k.check(Some(&h), &b).unwrap();
        let (h, b) = msg(&c[3]);
        k.check(Some(&h), &b).unwrap();
        let (h, b) = msg(&c[2]);
        assert!(matches!(k.check(Some(&h), &b), Err(Refusal::Again { .. })));
        // The first event of the log must start the chain.
        let mut k = Checker::new(true);
        let body = c[0].body().clone();
        let forged = Envelope::seal(body, Hash([1; 32]));
        let (h, b) = msg(&forged);
        assert_eq!(k.check(Some(&h), &b), Err(Refusal::BrokenLink { seq: 0 }));
    }
}
