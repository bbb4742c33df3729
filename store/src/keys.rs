//! The on-disk key layout. Everything lives in **one** sled tree so that one `Batch` — a record,
//! its team-index entry and the team's version — is applied atomically.
//!
//! | key | value | what |
//! |---|---|---|
//! | `e` ‖ seq (u64 BE) | [`crate::record`] bytes | the log itself, the only source of truth |
//! | `t` ‖ team (16 bytes) ‖ first version (u64 BE) | first seq ‖ count (u64 BE each) | team index: one entry per run, derivable from the log |
//! | `v` ‖ team (16 bytes) | version (u64 BE) | team's current version, derivable from the log |
//! | `m/format` | u32 BE | store format version ([`FORMAT_VERSION`]) |
//! | `m/checkpoint/NAME` | u64 BE | a consumer's progress (outbox), not state |
//! | `h` ‖ seq (u64 BE) ‖ public key (32 bytes) | [`SignedHead::to_bytes`] (165 bytes) | a signed head of the log at `seq`, by that key: evidence, not state |
//!
//! Big-endian integers make sled's byte order the numeric order, so a range scan over `e` walks
//! the log in position order and one over `t ‖ team` walks that team's stream in version order.
//!
//! A *run* is a stretch of a team's stream contiguous in both versions and positions — what
//! one append writes: versions `first version..+count` are at positions `first seq..+count`.
//!
//! Format history: format 1 had one team-index entry per event (value: its seq). Format 2
//! indexes runs; its records are format 1's byte for byte ([`crate::record::RECORD_VERSION`] is
//! still 1). `open` migrates a format-1 store by rebuilding its index from the log. Signed
//! heads (`h`) came later within format 2: a build that does not know them never reads them,
//! so a store with heads still opens in it, and one without any simply has none.
//!
//! [`SignedHead::to_bytes`]: roster_core::signed::SignedHead::to_bytes

use roster_core::id::TeamId;

/// The store format this build writes (the value under [`FORMAT_KEY`]).
pub const FORMAT_VERSION: u32 = 2;

/// The oldest store format this build opens (migrating it to [`FORMAT_VERSION`]).
pub const OLDEST_FORMAT: u32 = 1;

/// Where the store format version is kept.
pub const FORMAT_KEY: &[u8] = b"m/format";

/// Prefix of the log's records.
pub const EVENT_PREFIX: u8 = b'e';
/// Prefix of the team index.
pub const TEAM_PREFIX: u8 = b't';
/// Prefix of the team versions.
pub const VERSION_PREFIX: u8 = b'v';
/// Prefix of consumer checkpoints.
pub const CHECKPOINT_PREFIX: &[u8] = b"m/checkpoint/";
/// Prefix of signed heads.
pub const SIGNED_HEAD_PREFIX: u8 = b'h';

/// The key of the record at `seq`.
pub fn event(seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENT_PREFIX;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The position named by a record key, if it is one.
pub fn event_seq(key: &[u8]) -> Option<u64> {
    match key {
        [EVENT_PREFIX, rest @ ..] => rest.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// The team-index key of the run of `team` that starts at its event number `version`.
pub fn team(team: TeamId, version: u64) -> [u8; 25] {
    let mut k = [0u8; 25];
    k[0] = TEAM_PREFIX;
    k[1..17].copy_from_slice(team.as_bytes());
    k[17..].copy_from_slice(&version.to_be_bytes());
    k
}

/// The prefix of every team-index key of `team`.
pub fn team_prefix(team: TeamId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = TEAM_PREFIX;
    k[1..].copy_from_slice(team.as_bytes());
    k
}

/// The team and version named by a team-index key, if it is one.
pub fn team_parts(key: &[u8]) -> Option<(TeamId, u64)> {
    match key {
        [TEAM_PREFIX, rest @ ..] if rest.len() == 24 => {
            let id: [u8; 16] = rest.get(..16)?.try_into().ok()?;
            let v: [u8; 8] = rest.get(16..)?.try_into().ok()?;
            Some((
                TeamId::from_uuid(uuid::Uuid::from_bytes(id)),
                u64::from_be_bytes(v),
            ))
        }
        _ => None,
    }
}

/// The team-index value of a run: its first position and its length.
pub fn run_value(first_seq: u64, count: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&first_seq.to_be_bytes());
    v[8..].copy_from_slice(&count.to_be_bytes());
    v
}

/// The first position and length named by a team-index value, if it is one.
pub fn run_parts(bytes: &[u8]) -> Option<(u64, u64)> {
    let (seq, count) = (bytes.get(..8)?, bytes.get(8..)?);
    Some((u64_value(seq)?, u64_value(count)?))
}

/// The key of `team`'s current version.
pub fn version(team: TeamId) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = VERSION_PREFIX;
    k[1..].copy_from_slice(team.as_bytes());
    k
}

/// The team named by a version key, if it is one.
pub fn version_team(key: &[u8]) -> Option<TeamId> {
    match key {
        [VERSION_PREFIX, rest @ ..] => {
            let id: [u8; 16] = rest.try_into().ok()?;
            Some(TeamId::from_uuid(uuid::Uuid::from_bytes(id)))
        }
        _ => None,
    }
}

/// The key of checkpoint `name`.
pub fn checkpoint(name: &str) -> Vec<u8> {
    let mut k = CHECKPOINT_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// The key of the signed head of position `seq` by `public_key`: in position order, so the
/// last key of the prefix is the head of the highest position.
pub fn signed_head(seq: u64, public_key: &[u8; 32]) -> [u8; 41] {
    let mut k = [0u8; 41];
    k[0] = SIGNED_HEAD_PREFIX;
    k[1..9].copy_from_slice(&seq.to_be_bytes());
    k[9..].copy_from_slice(public_key);
    k
}

/// A big-endian u64 value, if the bytes are one.
pub fn u64_value(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_core::id::CountingEntropy;
    use roster_core::time::Timestamp;

    #[test]
    fn keys_round_trip_and_sort_numerically() {
        assert_eq!(event_seq(&event(258)), Some(258));
        assert!(event(255) < event(256));
        assert_eq!(event_seq(b"x"), None);
        let t = TeamId::mint(Timestamp::from_millis(1), &mut CountingEntropy::new(3));
        assert_eq!(team_parts(&team(t, 9)), Some((t, 9)));
        assert!(team(t, 255) < team(t, 256));
        assert!(team(t, 1).starts_with(&team_prefix(t)));
        assert_eq!(version_team(&version(t)), Some(t));
        assert_eq!(u64_value(&7u64.to_be_bytes()), Some(7));
        assert_eq!(run_parts(&run_value(9, 128)), Some((9, 128)));
        assert_eq!(run_parts(&7u64.to_be_bytes()), None);
        assert_eq!(u64_value(b"short"), None);
        // The prefixes never collide: one byte tells what a key is.
        assert_ne!(FORMAT_KEY[0], EVENT_PREFIX);
        assert_ne!(FORMAT_KEY[0], TEAM_PREFIX);
        assert_ne!(FORMAT_KEY[0], VERSION_PREFIX);
        assert!(checkpoint("nats").starts_with(b"m/"));
        assert_ne!(SIGNED_HEAD_PREFIX, EVENT_PREFIX);
        assert_ne!(SIGNED_HEAD_PREFIX, TEAM_PREFIX);
        assert_ne!(SIGNED_HEAD_PREFIX, VERSION_PREFIX);
        assert_ne!(SIGNED_HEAD_PREFIX, FORMAT_KEY[0]);
        assert!(signed_head(255, &[9; 32]) < signed_head(256, &[0; 32]));
    }
}
