//! Signed heads: what makes a rewrite of history detectable by whoever does not hold the key.
//!
//! The hash chain ([`crate::envelope`]) is unkeyed: whoever can write the log can edit an event,
//! re-seal every hash after it, and the result verifies. A [`SignedHead`] is an ed25519
//! signature, by a key kept outside the log, over one position of the chain and the chain's
//! hash there. Since each hash covers every event before it, a head signs the whole prefix up
//! to its position: changing any of those events changes the hash at that position, and a new
//! signature over the new hash needs the key.
//!
//! What a valid head proves is only this: *the holder of this key signed this hash at this
//! position*. Whoever can read the key can sign a rewritten history just as well; events after
//! the last head are not covered at all; and a head checked against a key read from the same
//! place as the log proves nothing against whoever can write that place. Pinning the public key
//! elsewhere, and keeping heads where a writer of the data directory cannot reach (a witness),
//! is what turns signatures into a check against a rewrite.
//!
//! # The signed bytes (version 1)
//!
//! | bytes | what |
//! |---|---|
//! | 21 | `roster-signed-head-v1` (ASCII): domain separation, these bytes sign nothing else |
//! | 8 | `seq`, the position of the last event covered, big-endian |
//! | 32 | `hash`, the chain hash of the event at `seq` |
//! | 8 | `at`, when it was signed: microseconds since the Unix epoch, big-endian (two's complement) |
//! | 32 | the signer's public key |
//!
//! 101 bytes, signed with ed25519 (RFC 8032, no prehash) and checked strictly (canonical
//! signatures, no small-order keys). Stored, a head is these 101 bytes and the 64-byte
//! signature ([`SignedHead::to_bytes`]); in JSON, an object of five fields
//! (`seq`, `hash`, `at`, `public_key`, `signature`, the last two in hex).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::envelope::Hash;
use crate::time::Timestamp;

/// The domain-separation prefix of the signed bytes.
pub const DOMAIN: &[u8; 21] = b"roster-signed-head-v1";

/// Length of the signed bytes ([`SignedHead::message`]).
pub const MESSAGE_LEN: usize = DOMAIN.len() + 8 + 32 + 8 + 32;

/// Length of a stored head ([`SignedHead::to_bytes`]): the signed bytes, then the signature.
pub const STORED_LEN: usize = MESSAGE_LEN + 64;

/// An ed25519 public key: what a witness pins. Hex in JSON and text. Its 32 bytes are always
/// a valid curve point (checked where it is made); the point itself is decompressed only to
/// check a signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// A string or bytes that are not an ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ed25519 public key (64 hex digits, as `roster head` prints it)")]
pub struct KeyError(String);

impl PublicKey {
    /// The key of these 32 bytes, if they are one.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<PublicKey> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .ok()
            .map(|_| PublicKey(*bytes))
    }

    /// Its 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Lowercase hex, 64 digits.
    pub fn to_hex(&self) -> String {
        to_hex(&self.to_bytes())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let shown = || KeyError(s.chars().take(80).collect());
        let bytes = from_hex::<32>(s.trim()).ok_or_else(shown)?;
        PublicKey::from_bytes(&bytes).ok_or_else(shown)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An ed25519 signature, 64 bytes; hex in JSON. Not checked until [`SignedHead::check`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", to_hex(&self.0))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        from_hex::<64>(&s)
            .map(Signature)
            .ok_or_else(|| serde::de::Error::custom("expected 128 hex digits"))
    }
}

/// A signing key: the secret that makes heads. Its `Debug` shows the public key only, and its
/// bytes are wiped when it is dropped.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key whose secret is these 32 bytes (fresh OS randomness for a new key).
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The secret's 32 bytes, to write the key file: handle them as the key itself.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Its public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs that the chain's hash at `seq` is `hash`, at time `at`.
    pub fn sign(&self, seq: u64, hash: Hash, at: Timestamp) -> SignedHead {
        let public_key = self.public_key();
        let message = message(seq, &hash, at, &public_key);
        SignedHead {
            seq,
            hash,
            at,
            public_key,
            signature: Signature(self.0.sign(&message).to_bytes()),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key())
    }
}

/// A position of the chain, its hash, when and by whom it was signed, and the signature. Read
/// from anywhere (a store, an export, a witness's file) it is a claim until
/// [`SignedHead::check`] or [`SignedHead::check_against`] says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    /// The position of the last event it covers.
    pub seq: u64,
    /// The chain's hash at `seq`, which covers every event up to it.
    pub hash: Hash,
    /// When it was signed, by the signer's clock (a witness's timestamp is what proves time).
    pub at: Timestamp,
    /// Who signed.
    pub public_key: PublicKey,
    /// The signature over [`SignedHead::message`].
    pub signature: Signature,
}

/// Why a signed head does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// The signature is not `public_key`'s over the head's bytes: the head was altered, or
    /// forged by someone without the key.
    #[error(
        "the signed head of position {seq} does not verify under its key {key}: it was altered \
         or forged"
    )]
    BadSignature {
        /// The position it claims.
        seq: u64,
        /// The key it names.
        key: PublicKey,
    },
    /// The chain's hash at the head's position is not the one signed: the events up to it
    /// were changed (and re-sealed) after the head was signed.
    #[error(
        "the event at position {seq} is not the one key {key} signed (the chain's hash there \
         differs): the history up to it was rewritten after it was signed"
    )]
    Rewritten {
        /// The position.
        seq: u64,
        /// The key that signed the other history.
        key: PublicKey,
    },
    /// The head signs a position the log does not hold: events were removed after it was
    /// signed (a log rolled back or cut short).
    #[error(
        "key {key} signed position {seq}, but the log ends {}: events were removed after it \
         was signed",
        ends(*.len)
    )]
    Beyond {
        /// The position signed.
        seq: u64,
        /// How many events the log holds.
        len: u64,
        /// The key.
        key: PublicKey,
    },
}

fn ends(len: u64) -> String {
    match len {
        0 => "before its first event".into(),
        n => format!("at position {}", n - 1),
    }
}

impl SignedHead {
    /// The bytes the signature covers (see the module docs).
    pub fn message(&self) -> [u8; MESSAGE_LEN] {
        message(self.seq, &self.hash, self.at, &self.public_key)
    }

    /// Checks the signature against the key the head names. Says nothing of whether that key
    /// is one to trust: compare [`SignedHead::public_key`] with a pinned key for that.
    pub fn check(&self) -> Result<(), HeadError> {
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        ed25519_dalek::VerifyingKey::from_bytes(&self.public_key.0)
            .and_then(|key| key.verify_strict(&self.message(), &signature))
            .map_err(|_| HeadError::BadSignature {
                seq: self.seq,
                key: self.public_key,
            })
    }

    /// Checks the signature, then that a log of `len` events holds position `seq` with hash
    /// `hash_at_seq` there (`None` when the log is shorter).
    pub fn check_against(&self, len: u64, hash_at_seq: Option<Hash>) -> Result<(), HeadError> {
        self.check()?;
        match hash_at_seq {
            _ if self.seq >= len => Err(HeadError::Beyond {
                seq: self.seq,
                len,
                key: self.public_key,
            }),
            Some(h) if h == self.hash => Ok(()),
            _ => Err(HeadError::Rewritten {
                seq: self.seq,
                key: self.public_key,
            }),
        }
    }

    /// The stored form: the signed bytes, then the signature.
    pub fn to_bytes(&self) -> [u8; STORED_LEN] {
        let mut out = [0u8; STORED_LEN];
        out[..MESSAGE_LEN].copy_from_slice(&self.message());
        out[MESSAGE_LEN..].copy_from_slice(&self.signature.0);
        out
    }

    /// Reads the stored form back (the signature unchecked); `None` if the bytes are not one
    /// (another length, another prefix, a public key that is not a curve point).
    pub fn from_bytes(bytes: &[u8]) -> Option<SignedHead> {
        if bytes.len() != STORED_LEN || !bytes.starts_with(DOMAIN) {
            return None;
        }
        let mut at = DOMAIN.len();
        let mut take = |n: usize| {
            let part = bytes.get(at..at + n);
            at += n;
            part
        };
        let seq = u64::from_be_bytes(take(8)?.try_into().ok()?);
        let hash = Hash(take(32)?.try_into().ok()?);
        let micros = i64::from_be_bytes(take(8)?.try_into().ok()?);
        let public_key = PublicKey::from_bytes(take(32)?.try_into().ok()?)?;
        let signature = Signature(take(64)?.try_into().ok()?);
        Some(SignedHead {
            seq,
            hash,
            at: Timestamp::from_micros(micros),
            public_key,
            signature,
        })
    }
}

fn message(seq: u64, hash: &Hash, at: Timestamp, key: &PublicKey) -> [u8; MESSAGE_LEN] {
    let mut out = [0u8; MESSAGE_LEN];
    let mut i = 0;
    for part in [
        &DOMAIN[..],
        &seq.to_be_bytes(),
        &hash.0,
        &at.as_micros().to_be_bytes(),
        &key.to_bytes(),
    ] {
        out[i..i + part.len()].copy_from_slice(part);
        i += part.len();
    }
    out
}

/// How far signed heads cover a log of `events` events, for one key: what `verify` and
/// `import` report. The heads are assumed checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// How many signed heads there are (by any key).
    pub heads: u64,
    /// The key coverage is counted for: the one pinned, or the data directory's own, or else
    /// the signer of the latest head; `None` when there is no head and nothing pinned.
    pub key: Option<PublicKey>,
    /// The last position a head by `key` signs (`None`: no head by `key`).
    pub signed_to: Option<u64>,
    /// How many events follow `signed_to` (all of them when it is `None`): not covered.
    pub unsigned: u64,
    /// Other keys that signed heads: checked like the rest, but not counted.
    pub other_keys: Vec<PublicKey>,
}

impl Coverage {
    /// The coverage of `heads` over a log of `events` events, counted for `key` (when `None`,
    /// for the signer of the head with the highest position).
    pub fn of(heads: &[SignedHead], key: Option<PublicKey>, events: u64) -> Coverage {
        let key = key.or_else(|| heads.iter().max_by_key(|h| h.seq).map(|h| h.public_key));
        let signed_to = heads
            .iter()
            .filter(|h| Some(h.public_key) == key)
            .map(|h| h.seq)
            .max();
        let mut other_keys: Vec<PublicKey> = Vec::new();
        for h in heads {
            if Some(h.public_key) != key && !other_keys.contains(&h.public_key) {
                other_keys.push(h.public_key);
            }
        }
        let covered = signed_to.map_or(0, |s| s.saturating_add(1));
        Coverage {
            heads: heads.len() as u64,
            key,
            signed_to,
            unsigned: events.saturating_sub(covered),
            other_keys,
        }
    }
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// `N` bytes from `2N` hex digits (either case).
pub fn from_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (slot, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
        let hi = char::from(*pair.first()?).to_digit(16)?;
        let lo = char::from(*pair.get(1)?).to_digit(16)?;
        *slot = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&[n; 32])
    }

    fn head() -> SignedHead {
        key(7).sign(
            41,
            Hash::of(b"the chain at 41"),
            Timestamp::from_micros(1_790_000_000_123_456),
        )
    }

    #[test]
    fn the_signed_bytes_are_the_documented_layout() {
        let h = head();
        let m = h.message();
        assert_eq!(m.len(), 101);
        assert_eq!(&m[..21], b"roster-signed-head-v1");
        assert_eq!(&m[21..29], &41u64.to_be_bytes());
        assert_eq!(&m[29..61], &Hash::of(b"the chain at 41").0);
        assert_eq!(&m[61..69], &1_790_000_000_123_456i64.to_be_bytes());
        assert_eq!(&m[69..], &key(7).public_key().to_bytes());
        // The signature is plain ed25519 over exactly these bytes: any implementation checks it.
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&h.public_key.to_bytes()).unwrap();
        vk.verify_strict(&m, &ed25519_dalek::Signature::from_bytes(&h.signature.0))
            .unwrap();
        // ed25519 is deterministic: the same head, the same signature.
        assert_eq!(h, head());
    }

    #[test]
    fn a_good_head_checks_and_every_changed_field_does_not() {
        let h = head();
        h.check().unwrap();
        let mut changed = vec![
            SignedHead { seq: 42, ..h },
            SignedHead {
                hash: Hash::of(b"another history"),
                ..h
            },
            SignedHead {
                at: h.at.plus_micros(1),
                ..h
            },
            // Another key's name on this key's signature.
            SignedHead {
                public_key: key(8).public_key(),
                ..h
            },
        ];
        for bit in [0, 7, 255, 511] {
            let mut s = h.signature.0;
            s[bit / 8] ^= 1 << (bit % 8);
            changed.push(SignedHead {
                signature: Signature(s),
                ..h
            });
        }
        for c in changed {
            assert!(
                matches!(c.check(), Err(HeadError::BadSignature { .. })),
                "{c:?} passed"
            );
        }
    }

    #[test]
    fn checked_against_the_chain() {
        let h = head();
        h.check_against(42, Some(h.hash)).unwrap();
        assert_eq!(
            h.check_against(42, Some(Hash::of(b"re-sealed"))),
            Err(HeadError::Rewritten {
                seq: 41,
                key: h.public_key
            })
        );
        assert!(matches!(
            h.check_against(41, None),
            Err(HeadError::Beyond { len: 41, .. })
        ));
        let forged = SignedHead {
            hash: Hash::of(b"re-sealed"),
            ..h
        };
        // A forged head is refused for its signature, whatever the chain says.
        assert!(matches!(
            forged.check_against(42, Some(forged.hash)),
            Err(HeadError::BadSignature { .. })
        ));
    }

    #[test]
    fn stored_and_json_forms_round_trip() {
        let h = head();
        let bytes = h.to_bytes();
        assert_eq!(bytes.len(), STORED_LEN);
        assert_eq!(SignedHead::from_bytes(&bytes), Some(h));
        assert_eq!(SignedHead::from_bytes(&bytes[1..]), None);
        let mut other = bytes;
        other[0] = b'R';
        assert_eq!(SignedHead::from_bytes(&other), None);
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.starts_with(r#"{"seq":41,"hash":""#), "{json}");
        assert!(json.contains(&format!(r#""public_key":"{}""#, h.public_key)));
        let back: SignedHead = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        back.check().unwrap();
        let extra = json.replace("\"seq\"", "\"extra\":1,\"seq\"");
        assert!(serde_json::from_str::<SignedHead>(&extra).is_err());
    }

    #[test]
    fn public_keys_parse_from_hex_only_when_they_are_keys() {
        let k = key(3).public_key();
        assert_eq!(k.to_hex().parse::<PublicKey>().unwrap(), k);
        assert_eq!(k.to_hex().to_uppercase().parse::<PublicKey>().unwrap(), k);
        for bad in ["", "zz", &"0".repeat(63), &"g".repeat(64), &k.to_hex()[2..]] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad:?}");
        }
        // 32 bytes that are not a point on the curve.
        let not_a_point = (0..=255u8)
            .map(|n| [n; 32])
            .find(|b| PublicKey::from_bytes(b).is_none())
            .unwrap();
        assert!(to_hex(&not_a_point).parse::<PublicKey>().is_err());
        assert!(format!("{:?}", key(3)).contains(&k.to_hex()));
        assert!(!format!("{:?}", key(3)).contains(&to_hex(&key(3).seed())));
    }

    #[test]
    fn coverage_counts_one_key() {
        let (a, b) = (key(1), key(2));
        let h = |k: &SigningKey, seq| k.sign(seq, Hash::of(&seq.to_be_bytes()), Timestamp::EPOCH);
        let heads = [h(&a, 9), h(&b, 14), h(&a, 19)];
        let c = Coverage::of(&heads, None, 25);
        assert_eq!(c.key, Some(a.public_key()));
        assert_eq!((c.heads, c.signed_to, c.unsigned), (3, Some(19), 5));
        assert_eq!(c.other_keys, vec![b.public_key()]);
        let c = Coverage::of(&heads, Some(b.public_key()), 25);
        assert_eq!((c.signed_to, c.unsigned), (Some(14), 10));
        let c = Coverage::of(&heads, Some(key(3).public_key()), 25);
        assert_eq!((c.signed_to, c.unsigned, c.other_keys.len()), (None, 25, 2));
        let c = Coverage::of(&[], None, 4);
        assert_eq!((c.key, c.signed_to, c.unsigned), (None, None, 4));
    }
}
