//! Typed identifiers over UUID v7.
//!
//! Every entity kind has its own id type so that a `GrantId` can never be passed where an
//! `AgentId` is expected. Ids are time-ordered (UUID v7) and displayed with a short human prefix
//! (`team_…`, `agt_…`, `grt_…`) so that an operator can tell what an id names at a glance.
//!
//! Minting an id needs randomness and a clock; `core` does no I/O, so both come from outside:
//! the caller passes `now` and an [`Entropy`] source.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::time::Timestamp;

/// A source of random bytes for minting ids; the runtime uses the OS generator, tests a seed.
pub trait Entropy {
    /// Ten fresh random bytes (the random part of a UUID v7).
    fn bytes10(&mut self) -> [u8; 10];
}

/// Deterministic entropy for tests and fixtures: a counter, never use for real ids.
#[derive(Debug, Clone, Default)]
pub struct CountingEntropy(u64);

impl CountingEntropy {
    /// Starts counting at `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl Entropy for CountingEntropy {
    fn bytes10(&mut self) -> [u8; 10] {
        self.0 = self.0.wrapping_add(1);
        let mut out = [0u8; 10];
        out[2..].copy_from_slice(&self.0.to_be_bytes());
        out
    }
}

/// Mints a UUID v7 whose time part is `now` (milliseconds).
pub(crate) fn mint(now: Timestamp, entropy: &mut dyn Entropy) -> Uuid {
    let millis = u64::try_from(now.as_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &entropy.bytes10()).into_uuid()
}

/// Why an id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The string does not start with the prefix of this id kind.
    #[error("`{input}` is not a {kind} id: it must start with `{prefix}`")]
    WrongPrefix {
        /// The text that was given.
        input: String,
        /// The kind of id expected.
        kind: &'static str,
        /// The prefix expected.
        prefix: &'static str,
    },
    /// The part after the prefix is not 32 hexadecimal digits.
    #[error("`{input}` is not a valid {kind} id: expected `{prefix}` and 32 hex digits")]
    BadUuid {
        /// The text that was given.
        input: String,
        /// The kind of id expected.
        kind: &'static str,
        /// The prefix expected.
        prefix: &'static str,
    },
}

/// What every id kind shares, for code over all of them (an [`IdRef`](crate::refs::IdRef)
/// parses and resolves any kind): its prefix, the name of its kind, and its 32 hex digits. The
/// printed and parsed forms are the id types' own (`Display`, `FromStr`); this names them.
pub trait TypedId:
    Copy + Eq + Ord + fmt::Display + fmt::Debug + FromStr<Err = IdError> + Send + Sync + 'static
{
    /// The human prefix shown before the UUID (`grt_`).
    const PREFIX: &'static str;
    /// What the id names, in words (`grant`).
    const KIND: &'static str;

    /// The 32 lowercase hex digits after the prefix.
    fn hex(&self) -> String;

    /// A short form (prefix and the last 8 hex digits) for what people read; typed back, it
    /// names the id ([`IdRef`](crate::refs::IdRef)) unless another ends the same.
    fn short(&self) -> String {
        let hex = self.hex();
        format!("{}{}", Self::PREFIX, hex.get(24..).unwrap_or(&hex))
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// The human prefix shown before the UUID.
            pub const PREFIX: &'static str = $prefix;

            /// Mints a new time-ordered id for `now`.
            pub fn mint(now: Timestamp, entropy: &mut dyn Entropy) -> Self {
                Self(mint(now, entropy))
            }

            /// Wraps a raw UUID (decoding and fixtures only).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The raw UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 raw bytes, for keys in ordered stores.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// A short form (prefix and the last 8 hex digits) for what people read; typed back,
            /// it names the id ([`IdRef`](crate::refs::IdRef)) unless another ends the same.
            pub fn short(&self) -> String {
                <Self as TypedId>::short(self)
            }
        }

        impl TypedId for $name {
            const PREFIX: &'static str = $prefix;
            const KIND: &'static str = $kind;

            fn hex(&self) -> String {
                self.0.simple().to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let rest = s.strip_prefix($prefix).ok_or_else(|| IdError::WrongPrefix {
                    input: s.to_owned(),
                    kind: $kind,
                    prefix: $prefix,
                })?;
                if rest.len() != 32 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(IdError::BadUuid { input: s.to_owned(), kind: $kind, prefix: $prefix });
                }
                Uuid::try_parse(rest).map(Self).map_err(|_| IdError::BadUuid {
                    input: s.to_owned(),
                    kind: $kind,
                    prefix: $prefix,
                })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.collect_str(self)
                } else {
                    self.0.as_bytes().serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    let bytes = <[u8; 16]>::deserialize(d)?;
                    Ok(Self(Uuid::from_bytes(bytes)))
                }
            }
        }
    };
}

typed_id!(
    /// A team: a namespace of agents that share context freely among themselves.
    TeamId, "team_", "team"
);
typed_id!(
    /// An agent: one identity, one container, one home volume.
    AgentId, "agt_", "agent"
);
typed_id!(
    /// A grant: one capability held by one agent, possibly derived from a parent grant.
    GrantId, "grt_", "grant"
);
typed_id!(
    /// A share: a consented channel of context from one team to another.
    ShareId, "shr_", "share"
);
typed_id!(
    /// An approval request: one irreversible use waiting for a human.
    ApprovalId, "apr_", "approval"
);
typed_id!(
    /// An event in the log.
    EventId, "evt_", "event"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips_and_prefix_is_checked() {
        let mut e = CountingEntropy::new(7);
        let id = AgentId::mint(Timestamp::from_millis(1_700_000_000_000), &mut e);
        let text = id.to_string();
        assert!(text.starts_with("agt_"), "{text}");
        assert_eq!(text.parse::<AgentId>(), Ok(id));
        assert!(matches!(
            text.parse::<TeamId>(),
            Err(IdError::WrongPrefix { .. })
        ));
        assert!(matches!(
            "agt_xyz".parse::<AgentId>(),
            Err(IdError::BadUuid { .. })
        ));
        assert!(matches!(
            "agt_0192f0c0-0000-7000-8000-000000000001".parse::<AgentId>(),
            Err(IdError::BadUuid { .. })
        ));
    }

    #[test]
    fn the_short_form_is_the_prefix_and_the_last_eight_hex_digits() {
        let id: GrantId = "grt_0190f2a0c3d47a1b9e2f3a4b3ae9531e".parse().unwrap();
        assert_eq!(id.short(), "grt_3ae9531e");
        assert_eq!(TypedId::short(&id), "grt_3ae9531e");
        assert_eq!(id.hex(), "0190f2a0c3d47a1b9e2f3a4b3ae9531e");
        assert_eq!(
            (GrantId::KIND, <GrantId as TypedId>::PREFIX),
            ("grant", "grt_")
        );
    }

    #[test]
    fn ids_are_ordered_by_time() {
        let mut e = CountingEntropy::new(0);
        let a = GrantId::mint(Timestamp::from_millis(1_000), &mut e);
        let b = GrantId::mint(Timestamp::from_millis(2_000), &mut e);
        assert!(a < b);
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn json_uses_text_and_postcard_uses_bytes() {
        let id = TeamId::mint(Timestamp::from_millis(5), &mut CountingEntropy::new(1));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TeamId>(&json).unwrap(), id);
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bytes.len(), 16);
        assert_eq!(postcard::from_bytes::<TeamId>(&bytes).unwrap(), id);
    }
}
