//! The envelope around every event, and the hash chain that makes the log tamper-evident.
//!
//! `hash = BLAKE3(prev_hash ‖ canonical bytes of the body)`, where the canonical bytes are the
//! postcard encoding of [`Body`] (postcard is deterministic: one value, one encoding). The first
//! event's `prev_hash` is [`Hash::ZERO`].

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::actor::Actor;
use crate::event::Event;
use crate::id::{EventId, TeamId};
use crate::time::Timestamp;

/// A BLAKE3 digest; hex in JSON, 32 raw bytes in postcard.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev_hash` of the first event.
    pub const ZERO: Hash = Hash([0; 32]);

    /// The digest of `bytes` (payload digests for audit records).
    pub fn of(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Hash> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hi = char::from(chunk[0]).to_digit(16)?;
            let lo = char::from(chunk[1]).to_digit(16)?;
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Hash(out))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", &self.to_hex()[..16])
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            Hash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
        } else {
            <[u8; 32]>::deserialize(d).map(Hash)
        }
    }
}

/// Everything the hash covers: position, identity, team, time, actor, causation, schema, event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    /// Global position in the log, gapless from 0.
    pub seq: u64,
    /// The event's id.
    pub id: EventId,
    /// The team the event belongs to.
    pub team: TeamId,
    /// Position within the team's stream, gapless from 1.
    pub version: u64,
    /// When it was committed.
    pub at: Timestamp,
    /// Who caused it.
    pub actor: Actor,
    /// The event that caused this one, if any.
    pub causation: Option<EventId>,
    /// Schema version of `event`.
    pub schema: u16,
    /// What happened.
    pub event: Event,
}

impl Body {
    /// The canonical bytes the hash covers.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Encoding to a Vec cannot fail for these types: every field is a plain value, a string,
        // or a sequence of known length. An error here would be a bug in a Serialize impl.
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

/// The hash of a body chained to `prev`.
pub fn chain_hash(prev: &Hash, canonical: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&prev.0);
    h.update(canonical);
    Hash(*h.finalize().as_bytes())
}

/// A committed event: a body sealed into the hash chain. Only [`Envelope::seal`] and
/// [`Envelope::open`] make one, so an `Envelope` always carries a hash that matches its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    body: Body,
    prev_hash: Hash,
    hash: Hash,
}

/// A link of the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The record's hash is not the hash of its content: it was altered or corrupted.
    #[error("event at position {seq}: its hash does not match its content (altered or corrupt)")]
    HashMismatch {
        /// Where.
        seq: u64,
    },
    /// The record does not point at the previous record's hash.
    #[error("event at position {seq}: it does not follow the previous event (prev_hash differs)")]
    BrokenLink {
        /// Where.
        seq: u64,
    },
    /// A position is missing or repeated.
    #[error("expected the event at position {expected}, found position {found}")]
    Gap {
        /// The position that should come next.
        expected: u64,
        /// The position found.
        found: u64,
    },
    /// The bytes do not decode as an event of a known format.
    #[error("event at position {seq}: cannot be decoded: {why}")]
    Undecodable {
        /// Where.
        seq: u64,
        /// The decoder's complaint.
        why: String,
    },
}

impl Envelope {
    /// Seals `body` after the event whose hash is `prev_hash`.
    pub fn seal(body: Body, prev_hash: Hash) -> Envelope {
        Envelope::seal_canonical(body, prev_hash).0
    }

    /// Seals like [`Envelope::seal`] and also returns the canonical bytes the hash covers: a
    /// store writes exactly these bytes, so the body is encoded once, not twice.
    pub fn seal_canonical(body: Body, prev_hash: Hash) -> (Envelope, Vec<u8>) {
        let canonical = body.canonical_bytes();
        let hash = chain_hash(&prev_hash, &canonical);
        let envelope = Envelope {
            body,
            prev_hash,
            hash,
        };
        (envelope, canonical)
    }

    /// Re-checks a stored envelope: its hash must be the hash of `prev_hash ‖ canonical`, and
    /// `canonical` must decode. `seq_hint` names the position in errors if decoding fails.
    pub fn open(
        seq_hint: u64,
        prev_hash: Hash,
        hash: Hash,
        canonical: &[u8],
    ) -> Result<Envelope, ChainError> {
        if chain_hash(&prev_hash, canonical) != hash {
            return Err(ChainError::HashMismatch { seq: seq_hint });
        }
        let body: Body = postcard::from_bytes(canonical).map_err(|e| ChainError::Undecodable {
            seq: seq_hint,
            why: e.to_string(),
        })?;
        Ok(Envelope {
            body,
            prev_hash,
            hash,
        })
    }

    /// Checks that this envelope follows `prev` (or starts the log when `prev` is `None`).
    pub fn follows(&self, prev: Option<&Envelope>) -> Result<(), ChainError> {
        let (expected_seq, expected_hash) = match prev {
            Some(p) => (p.seq + 1, p.hash),
            None => (0, Hash::ZERO),
        };
        if self.seq != expected_seq {
            return Err(ChainError::Gap {
                expected: expected_seq,
                found: self.seq,
            });
        }
        if self.prev_hash != expected_hash {
            return Err(ChainError::BrokenLink { seq: self.seq });
        }
        Ok(())
    }

    /// The sealed body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The hash of the event before.
    pub fn prev_hash(&self) -> Hash {
        self.prev_hash
    }

    /// This event's hash.
    pub fn hash(&self) -> Hash {
        self.hash
    }
}

impl Deref for Envelope {
    type Target = Body;
    fn deref(&self) -> &Body {
        &self.body
    }
}

/// The JSON form of an envelope (export, `--json`, the bus): the body's fields, then the hashes.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct EnvelopeJson {
    /// The sealed body.
    #[serde(flatten)]
    pub body: Body,
    /// The hash of the event before.
    pub prev_hash: Hash,
    /// This event's hash.
    pub hash: Hash,
}

impl EnvelopeJson {
    /// Checks the hash against the body: an edited export is refused.
    pub fn check(self) -> Result<Envelope, ChainError> {
        let canonical = self.body.canonical_bytes();
        if chain_hash(&self.prev_hash, &canonical) != self.hash {
            return Err(ChainError::HashMismatch { seq: self.body.seq });
        }
        Ok(Envelope {
            body: self.body,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// Read back from its JSON form only through [`EnvelopeJson::check`]: an envelope that did not
/// come from [`Envelope::seal`] or [`Envelope::open`] still carries a hash that matches its body
/// (a typed gateway answer read by a client, an example in the docs).
impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EnvelopeJson::deserialize(d)?
            .check()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Ref<'a> {
            #[serde(flatten)]
            body: &'a Body,
            prev_hash: Hash,
            hash: Hash,
        }
        Ref {
            body: &self.body,
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
        .serialize(s)
    }
}
