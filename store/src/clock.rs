//! The two impure inputs of an append: the wall clock and the OS random generator. `core` takes
//! both as parameters; this is where they are read.

use std::time::{SystemTime, UNIX_EPOCH};

use roster_core::id::Entropy;
use roster_core::port::LogError;
use roster_core::time::Timestamp;

/// The wall clock now. A clock before 1970 reads as the epoch; appends keep `at` monotonic
/// anyway (`max(now, last at)`).
pub(crate) fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_micros(micros)
}

/// OS randomness for minting event ids, drawn up front so that minting cannot fail half-way
/// through a batch (`Entropy::bytes10` has no way to report an error).
#[derive(Debug)]
pub(crate) struct OsEntropy {
    pool: Vec<u8>,
}

impl OsEntropy {
    /// Enough randomness for `ids` ids.
    pub(crate) fn for_ids(ids: usize) -> Result<Self, LogError> {
        let mut pool = vec![0u8; ids.saturating_mul(10)];
        getrandom::fill(&mut pool).map_err(|e| LogError::Storage {
            op: "read OS randomness for event ids",
            source: e.to_string().into(),
        })?;
        Ok(Self { pool })
    }
}

impl Entropy for OsEntropy {
    fn bytes10(&mut self) -> [u8; 10] {
        let mut out = [0u8; 10];
        // The pool is sized for exactly the ids the caller mints; if it ever ran dry (a bug),
        // the id would still be a valid UUID v7, only with a zero random part.
        let take = self.pool.len().min(10);
        let tail = self.pool.split_off(self.pool.len() - take);
        out[..take].copy_from_slice(&tail);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_after_2020_and_entropy_differs() {
        assert!(now() > Timestamp::from_millis(1_577_836_800_000));
        let mut e = OsEntropy::for_ids(2).unwrap();
        let (a, b) = (e.bytes10(), e.bytes10());
        assert_ne!(a, b);
        assert_eq!(e.bytes10(), [0; 10]);
    }
}
