//! Believing nothing read from the events stream unchecked: [`Checker`].
//!
//! Anyone the server lets publish on `NS.events.>` can put a message into the stream, so a
//! reader checks each one before it counts: the body must be an envelope whose hash is the hash
//! of its content, its headers must agree with it (`Roster-Seq` = its position, `Nats-Msg-Id`
//! = its id), and it must come after what was read before — and, when every event is read (no
//! team or kind filter), link to it: its `prev_hash` is the hash of an event read at the
//! position before (the first event's, zero). A message that fails is refused with the reason.
//!
//! No state makes every later event refused. Positions the stream lacks (holes the outbox left,
//! events trimmed by `max_age`/`max_msgs`, a message an operator deleted) are a [`Notice::Gap`]
//! and the reader goes on from the event after them. A sealed event that does not link is
//! refused once, but remembered: the event after it may link to it, and the chain resumes
//! there. So when a forgery wins the race for a position, the reader delivers the forgery
//! (nothing here can tell it from the real one), refuses the real event at that position
//! (`Again`), and goes on with the real event after it, saying so ([`Notice::Fork`]).
//!
//! What this does not do: the chain is unkeyed, so a forger who can read the stream and publish
//! into it can build a well-formed next event — or one after a gap — and it is delivered. It
//! detects, it does not prevent. Only the server's permissions prevent it (`docs/nats.md`). The
//! first event a reader sees after a position other than 0 is taken on trust (its predecessor
//! was not read).

use std::collections::VecDeque;

use async_nats::HeaderMap;
use roster_core::envelope::{Envelope, Hash};

use crate::wire;

/// How many sealed events (accepted or refused) a linked reader remembers, to let a later
/// event link to one of them. A forger flooding it only pushes out older ones.
const REMEMBERED: usize = 16;

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
    /// The position was read already: a replay, or a rival of the event accepted there (one
    /// of the two is forged).
    #[error("position {seq} again: position {last} was read already")]
    Again {
        /// Its position.
        seq: u64,
        /// The last position accepted.
        last: u64,
    },
    /// Its `prev_hash` is not the hash of any event read at the position before. The reader
    /// remembers it: an event that links to it is accepted (with [`Notice::Fork`]).
    #[error(
        "event {seq} does not link to the event before it (its prev_hash is not that event's hash)"
    )]
    BrokenLink {
        /// Its position.
        seq: u64,
    },
}

/// Something a reader should know about an event it accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// Positions `first..=last` were not read before this event: the stream lacks them
    /// (trimmed by its limits, deleted, never published). The chain goes on from this event.
    Gap {
        /// The first missing position.
        first: u64,
        /// The last one.
        last: u64,
    },
    /// The event continues an event refused at the position before it (a rival of the one
    /// accepted there, or one that did not link), not the one accepted: one of them was forged.
    Fork {
        /// Its position.
        seq: u64,
    },
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Gap { first, last } if first == last => write!(
                f,
                "position {first} is missing from the events stream (trimmed by the stream's \
                 limits, deleted, or never published): going on after it"
            ),
            Notice::Gap { first, last } => write!(
                f,
                "positions {first} to {last} are missing from the events stream (trimmed by the \
                 stream's limits, deleted, or never published): going on after them"
            ),
            Notice::Fork { seq } => write!(
                f,
                "event {seq} continues the event refused at position {}, not the one accepted \
                 there: one of the two was forged",
                seq.saturating_sub(1)
            ),
        }
    }
}

/// An event that passed the checks, and what to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The envelope.
    pub envelope: Envelope,
    /// A gap before it, or a change of branch.
    pub notice: Option<Notice>,
}

/// What a reader has read so far, to check the next message against it.
#[derive(Debug, Clone)]
pub struct Checker {
    /// Every event is read, so each must link to one before.
    linked: bool,
    /// The last event accepted: position and hash.
    last: Option<(u64, Hash)>,
    /// Sealed events seen lately (accepted or refused), position and hash, newest last: the
    /// ones a next event may link to. Only for a linked reader.
    seen: VecDeque<(u64, Hash)>,
}

impl Checker {
    /// A checker for a reader of every event (`linked`) or of a filtered part of them.
    pub fn new(linked: bool) -> Checker {
        Checker {
            linked,
            last: None,
            seen: VecDeque::new(),
        }
    }

    /// Checks one message; on success it is the new last event, and its envelope is returned
    /// with what to know about it.
    pub fn check(
        &mut self,
        headers: Option<&HeaderMap>,
        payload: &[u8],
    ) -> Result<Checked, Refusal> {
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
        let verdict = self.place(seq, envelope.prev_hash());
        if self.linked {
            self.remember(seq, envelope.hash());
        }
        let notice = verdict?;
        self.last = Some((seq, envelope.hash()));
        Ok(Checked { envelope, notice })
    }

    /// Where an event at `seq` with `prev` before it stands: accepted (with a notice), or
    /// refused.
    fn place(&self, seq: u64, prev: Hash) -> Result<Option<Notice>, Refusal> {
        let last = match self.last {
            Some((last, _)) if seq <= last => return Err(Refusal::Again { seq, last }),
            Some((last, hash)) => Some((last, hash)),
            None if seq == 0 && prev != Hash::ZERO => return Err(Refusal::BrokenLink { seq }),
            None => None,
        };
        let Some((last, hash)) = last.filter(|_| self.linked) else {
            return Ok(None);
        };
        if seq == last + 1 && prev == hash {
            return Ok(None);
        }
        if self.seen.iter().any(|&(s, h)| s + 1 == seq && h == prev) {
            return Ok(Some(Notice::Fork { seq }));
        }
        if seq == last + 1 {
            return Err(Refusal::BrokenLink { seq });
        }
        Ok(Some(Notice::Gap {
            first: last + 1,
            last: seq - 1,
        }))
    }

    fn remember(&mut self, seq: u64, hash: Hash) {
        if self.seen.contains(&(seq, hash)) {
            return;
        }
        if self.seen.len() == REMEMBERED {
            self.seen.pop_front();
        }
        self.seen.push_back((seq, hash));
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

    fn check(k: &mut Checker, e: &Envelope) -> Result<Checked, Refusal> {
        let (h, b) = msg(e);
        k.check(Some(&h), &b)
    }

    /// An event whose body is `e`'s at position `seq`, linked to `prev`, with an id of its own.
    fn forge(e: &Envelope, seq: u64, prev: Hash) -> Envelope {
        let mut body = e.body().clone();
        body.seq = seq;
        body.id = EventId::mint(
            Timestamp::from_millis(9),
            &mut CountingEntropy::new(seq + 99),
        );
        Envelope::seal(body, prev)
    }

    #[test]
    fn a_chain_is_accepted_and_anything_else_refused() {
        let c = chain(4);
        let mut k = Checker::new(true);
        for e in &c[..2] {
            assert_eq!(check(&mut k, e).unwrap().envelope, *e);
        }
        // A replay and a message with no position are refused, and change nothing.
        assert_eq!(
            check(&mut k, &c[1]),
            Err(Refusal::Again { seq: 1, last: 1 })
        );
        assert_eq!(k.check(None, b"{}"), Err(Refusal::NoPosition));
        // A forged event at the right position that does not link.
        let forged = forge(&c[2], 2, Hash([7; 32]));
        assert_eq!(check(&mut k, &forged), Err(Refusal::BrokenLink { seq: 2 }));
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
        let ok = check(&mut k, &c[2]).unwrap();
        assert_eq!(ok.notice, None, "the real one still follows");
    }

    /// Positions the stream lacks are said, and the reader goes on from the event after them
    /// (before, every later event was refused as a gap, for good).
    #[test]
    fn a_gap_is_a_notice_and_the_chain_goes_on_after_it() {
        let c = chain(8);
        let mut k = Checker::new(true);
        check(&mut k, &c[0]).unwrap();
        check(&mut k, &c[1]).unwrap();
        let after = check(&mut k, &c[4]).unwrap();
        assert_eq!(after.notice, Some(Notice::Gap { first: 2, last: 3 }));
        assert!(after
            .notice
            .unwrap()
            .to_string()
            .contains("positions 2 to 3"));
        for e in &c[5..] {
            assert_eq!(check(&mut k, e).unwrap().notice, None);
        }
    }

    /// A forgery that wins the race for a position (it links, so it is delivered) costs the
    /// real event at that position, and only it: the real chain goes on after it. A forgery
    /// that does not link costs no real event at all. Every refusal is said.
    #[test]
    fn a_forged_event_costs_at_most_one_real_event() {
        let c = chain(8);
        let mut k = Checker::new(true);
        for e in &c[..3] {
            check(&mut k, e).unwrap();
        }
        let forged = forge(&c[3], 3, c[2].hash());
        assert_eq!(check(&mut k, &forged).unwrap().notice, None);
        assert_eq!(
            check(&mut k, &c[3]),
            Err(Refusal::Again { seq: 3, last: 3 })
        );
        assert_eq!(
            check(&mut k, &c[4]).unwrap().notice,
            Some(Notice::Fork { seq: 4 })
        );
        for e in &c[5..] {
            assert_eq!(check(&mut k, e).unwrap().notice, None);
        }

        let mut k = Checker::new(true);
        for e in &c[..3] {
            check(&mut k, e).unwrap();
        }
        let stray = forge(&c[3], 3, Hash([7; 32]));
        assert_eq!(check(&mut k, &stray), Err(Refusal::BrokenLink { seq: 3 }));
        for e in &c[3..] {
            assert_eq!(check(&mut k, e).unwrap().notice, None);
        }

        // A real event whose predecessor was deleted: a gap, not a refusal.
        let mut k = Checker::new(true);
        for e in &c[..3] {
            check(&mut k, e).unwrap();
        }
        assert_eq!(
            check(&mut k, &c[4]).unwrap().notice,
            Some(Notice::Gap { first: 3, last: 3 })
        );
        let mut k = Checker::new(true);
        for e in &c[..3] {
            check(&mut k, e).unwrap();
        }
        // The real 3 is lost and a forged 3 that links is delivered: the real 4 (linking to
        // the lost real 3) is refused once, and the chain resumes on it.
        assert_eq!(check(&mut k, &forged).unwrap().notice, None);
        assert_eq!(check(&mut k, &c[4]), Err(Refusal::BrokenLink { seq: 4 }));
        assert_eq!(
            check(&mut k, &c[5]).unwrap().notice,
            Some(Notice::Fork { seq: 5 })
        );
        assert_eq!(check(&mut k, &c[6]).unwrap().notice, None);
    }

    #[test]
    fn a_filtered_reader_checks_order_not_links() {
        let c = chain(4);
        let mut k = Checker::new(false);
        assert_eq!(check(&mut k, &c[1]).unwrap().notice, None);
        assert_eq!(check(&mut k, &c[3]).unwrap().notice, None);
        assert!(matches!(check(&mut k, &c[2]), Err(Refusal::Again { .. })));
        // The first event of the log must start the chain.
        let mut k = Checker::new(true);
        let body = c[0].body().clone();
        let forged = Envelope::seal(body, Hash([1; 32]));
        let (h, b) = msg(&forged);
        assert_eq!(k.check(Some(&h), &b), Err(Refusal::BrokenLink { seq: 0 }));
    }
}
