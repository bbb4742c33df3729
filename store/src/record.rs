//! The on-disk record of one event: `[version: u8 = 1] [prev_hash: 32] [hash: 32] [body]`, where
//! `body` is exactly [`Body::canonical_bytes`] (postcard).
//!
//! Decoding goes through [`Envelope::open`], which recomputes the BLAKE3 hash over `prev_hash ‖
//! body`: a flipped bit anywhere in a record is detected and the record is never served.
//! `encode`/`decode` are public so that a benchmark can write the very same bytes into sled as a
//! raw baseline.
//!
//! [`Body::canonical_bytes`]: roster_core::envelope::Body::canonical_bytes

use roster_core::envelope::{ChainError, Envelope, Hash};

/// The record format this build writes (byte 0 of every record).
pub const RECORD_VERSION: u8 = 1;

/// Bytes before the body: the version byte and the two hashes.
pub const HEADER_LEN: usize = 1 + 32 + 32;

/// The record of `envelope`.
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    encode_parts(
        envelope.prev_hash(),
        envelope.hash(),
        &envelope.body().canonical_bytes(),
    )
}

/// The record of an envelope from its parts, when the canonical bytes of its body are at hand
/// already (from [`Envelope::seal_canonical`]): the writer encodes each body only once.
/// `hash` must be [`roster_core::envelope::chain_hash`] of `prev_hash` and `canonical`, or the
/// record will not decode.
pub fn encode_parts(prev_hash: Hash, hash: Hash, canonical: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + canonical.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&prev_hash.0);
    out.extend_from_slice(&hash.0);
    out.extend_from_slice(canonical);
    out
}

/// Decodes and verifies the record stored under position `seq`: its hash must match its
/// content and the position inside it must be `seq`.
pub fn decode(seq: u64, bytes: &[u8]) -> Result<Envelope, ChainError> {
    let undecodable = |why: String| ChainError::Undecodable { seq, why };
    let Some(&version) = bytes.first() else {
        return Err(undecodable("the record is empty".into()));
    };
    if version != RECORD_VERSION {
        return Err(undecodable(format!(
            "unknown record format version {version} (this build reads {RECORD_VERSION})"
        )));
    }
    let (Some(prev), Some(hash), Some(body)) = (
        hash_at(bytes, 1),
        hash_at(bytes, 33),
        bytes.get(HEADER_LEN..),
    ) else {
        return Err(undecodable(format!(
            "the record is {} bytes, shorter than its {HEADER_LEN}-byte header",
            bytes.len()
        )));
    };
    let envelope = Envelope::open(seq, prev, hash, body)?;
    if envelope.seq != seq {
        return Err(ChainError::Gap {
            expected: seq,
            found: envelope.seq,
        });
    }
    Ok(envelope)
}

/// The hash a record claims for itself, without verifying it (used to check the link of the
/// record after it).
pub fn stored_hash(bytes: &[u8]) -> Option<Hash> {
    match bytes.first() {
        Some(&RECORD_VERSION) => hash_at(bytes, 33),
        _ => None,
    }
}

fn hash_at(bytes: &[u8], at: usize) -> Option<Hash> {
    let raw: [u8; 32] = bytes.get(at..at + 32)?.try_into().ok()?;
    Some(Hash(raw))
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::actor::Actor;
    use roster_core::envelope::Body;
    use roster_core::event::{Event, SCHEMA_VERSION};
    use roster_core::id::{CountingEntropy, EventId, TeamId};
    use roster_core::name::Name;
    use roster_core::time::Timestamp;

    fn sample(seq: u64) -> Envelope {
        let mut e = CountingEntropy::new(seq);
        let at = Timestamp::from_millis(1_700_000_000_000);
        let body = Body {
            seq,
            id: EventId::mint(at, &mut e),
            team: TeamId::mint(at, &mut e),
            version: 1,
            at,
            actor: Actor::Runtime,
            causation: None,
            schema: SCHEMA_VERSION,
            event: Event::TeamCreated {
                name: Name::parse("research").unwrap(),
            },
        };
        Envelope::seal(body, Hash::of(b"before"))
    }

    #[test]
    fn round_trips() {
        let env = sample(4);
        let bytes = encode(&env);
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(
            &bytes[HEADER_LEN..],
            env.body().canonical_bytes().as_slice()
        );
        assert_eq!(decode(4, &bytes).unwrap(), env);
        assert_eq!(stored_hash(&bytes), Some(env.hash()));
        // Sealing hands out the very bytes `encode` writes.
        let (sealed, canonical) = Envelope::seal_canonical(env.body().clone(), env.prev_hash());
        assert_eq!(sealed, env);
        assert_eq!(encode_parts(env.prev_hash(), env.hash(), &canonical), bytes);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let bytes = encode(&sample(2));
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(
                    decode(2, &b).is_err(),
                    "flip of bit {bit} of byte {i} passed"
                );
            }
        }
    }

    #[test]
    fn truncation_version_and_misplacement_are_refused() {
        let bytes = encode(&sample(2));
        assert!(matches!(
            decode(2, &bytes[..40]),
            Err(ChainError::Undecodable { seq: 2, .. })
        ));
        assert!(matches!(
            decode(2, &[]),
            Err(ChainError::Undecodable { seq: 2, .. })
        ));
        let mut b = bytes.clone();
        b[0] = 2;
        assert!(matches!(
            decode(2, &b),
            Err(ChainError::Undecodable { seq: 2, .. })
        ));
        assert_eq!(
            decode(3, &bytes),
            Err(ChainError::Gap {
                expected: 3,
                found: 2
            })
        );
    }
}
