//! The two impure inputs of an append: the wall clock and the OS random generator. `core` takes
//! both as parameters; this is where they are read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use roster_core::id::Entropy;
use roster_core::time::Timestamp;

/// The wall clock now. A clock before 1970 reads as the epoch; appends keep `at` monotonic
/// anyway (`max(now, last at)`).
pub fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_micros(micros)
}

/// Bytes one id takes from the pool.
const ID_BYTES: usize = 10;

/// How many ids one refill draws at least, so that minting a few ids at a time (the CLI, a
/// small append) costs one system call per [`MIN_REFILL_IDS`] ids, not one per id.
const MIN_REFILL_IDS: usize = 64;

/// Counts the ids minted without OS randomness by every [`OsEntropy`] of the process, so that
/// they stay distinct from each other.
static FALLBACK_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Randomness from the operating system for minting ids, the one [`Entropy`] for real ids.
///
/// `Entropy::bytes10` cannot fail, so neither can this: it keeps a pool of OS random bytes and
/// refills it (one `getrandom` call) when it runs dry. If the OS generator ever fails — not
/// seen on Linux — it logs a warning and mints from the clock and a process-wide counter
/// instead: such ids are still unique within the process and ordered by time, only guessable.
/// Event ids are identifiers, not secrets, so an append does not fail for lack of randomness.
#[derive(Debug, Default)]
pub struct OsEntropy {
    /// Random bytes not handed out yet are `pool[used..]`.
    pool: Vec<u8>,
    used: usize,
}

impl OsEntropy {
    /// An empty pool: nothing is drawn until the first id is minted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes sure the next `ids` ids need no further draw, drawing what is missing (at least
    /// [`MIN_REFILL_IDS`] ids' worth) in one call. The store calls it once per group commit.
    pub(crate) fn reserve(&mut self, ids: usize) {
        let need = ids.saturating_mul(ID_BYTES);
        let left = self.pool.len() - self.used;
        if left >= need {
            return;
        }
        let draw = (need - left).max(MIN_REFILL_IDS * ID_BYTES);
        let mut fresh = vec![0u8; left + draw];
        fresh[..left].copy_from_slice(&self.pool[self.used..]);
        match getrandom::fill(&mut fresh[left..]) {
            Ok(()) => {
                self.pool = fresh;
                self.used = 0;
            }
            Err(e) => tracing::warn!(
                "no OS randomness ({e}); minting ids from the clock and a counter instead"
            ),
        }
    }

    /// Ten bytes that are unique within this process without any OS randomness: a mix of the
    /// clock and the process id, then 48 bits of a process-wide counter (bytes 4..10, which a
    /// UUID v7 keeps whole; its version and variant bits fall in bytes 0 and 2).
    fn fallback() -> [u8; ID_BYTES] {
        let count = FALLBACK_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        // Truncating the nanoseconds keeps their fast-moving low bits, which is what matters.
        let seed = (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ count;
        let mut out = [0u8; ID_BYTES];
        out[..4].copy_from_slice(&splitmix64(seed).to_be_bytes()[..4]);
        out[4..].copy_from_slice(&count.to_be_bytes()[2..]);
        out
    }
}

/// A fast 64-bit mixer (SplitMix64's finalizer): nearby inputs give unrelated outputs.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Entropy for OsEntropy {
    fn bytes10(&mut self) -> [u8; 10] {
        if self.pool.len() - self.used < ID_BYTES {
            self.reserve(1);
        }
        match self.pool.get(self.used..self.used + ID_BYTES) {
            Some(bytes) => {
                let mut out = [0u8; ID_BYTES];
                out.copy_from_slice(bytes);
                self.used += ID_BYTES;
                out
            }
            None => Self::fallback(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn clock_is_after_2020() {
        assert!(now() > Timestamp::from_millis(1_577_836_800_000));
    }

    #[test]
    fn entropy_never_runs_dry_and_draws_once_per_reserve() {
        let mut e = OsEntropy::new();
        assert!(e.pool.is_empty(), "nothing is drawn before it is needed");
        let mut seen = HashSet::new();
        for _ in 0..3 * MIN_REFILL_IDS {
            assert!(seen.insert(e.bytes10()), "a repeated id");
        }
        e.reserve(500);
        let pool = e.pool.as_ptr();
        for _ in 0..500 {
            assert!(seen.insert(e.bytes10()), "a repeated id");
        }
        assert_eq!(
            pool,
            e.pool.as_ptr(),
            "500 reserved ids drew more than once"
        );
    }

    #[test]
    fn fallback_ids_are_distinct_in_the_counter_bytes() {
        let a = OsEntropy::fallback();
        let b = OsEntropy::fallback();
        assert_ne!(a[4..], b[4..]);
    }
}
