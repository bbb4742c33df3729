//! An agent's container limits and home disk quota as validated values: the bounds `roster
//! hire`'s flags, the `[agent]` table of roster.toml, the admin protocol and the gateway all
//! check, written once.
//!
//! The recorded [`Resources`](crate::event::Resources) and
//! [`AgentDiskLimited`](crate::event::Event::AgentDiskLimited) keep plain numbers (the log's
//! format); these are what an edge parses into before it builds one.

use serde::{Deserialize, Serialize};

/// A limit outside its bounds, or not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LimitError(String);

macro_rules! limit {
    ($(#[$doc:meta])* $t:ident, $what:literal, $lo:expr, $hi:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "u32", into = "u32")]
        pub struct $t(u32);

        impl $t {
            /// The smallest value allowed.
            pub const MIN: u32 = $lo;
            /// The largest value allowed.
            pub const MAX: u32 = $hi;

            /// `n`, if it is within bounds.
            pub fn new(n: u32) -> Result<Self, LimitError> {
                if (Self::MIN..=Self::MAX).contains(&n) {
                    Ok(Self(n))
                } else {
                    Err(LimitError(format!(
                        "{n} is outside {} to {} ({})",
                        Self::MIN,
                        Self::MAX,
                        $what
                    )))
                }
            }

            /// The number.
            pub fn get(self) -> u32 {
                self.0
            }
        }

        impl TryFrom<u32> for $t {
            type Error = LimitError;
            fn try_from(n: u32) -> Result<Self, LimitError> {
                Self::new(n)
            }
        }

        impl From<$t> for u32 {
            fn from(v: $t) -> u32 {
                v.0
            }
        }

        impl std::str::FromStr for $t {
            type Err = LimitError;
            fn from_str(s: &str) -> Result<Self, LimitError> {
                let n = s
                    .parse::<u32>()
                    .map_err(|_| LimitError(format!("`{s}` is not a whole number ({})", $what)))?;
                Self::new(n)
            }
        }
    };
}

limit!(
    /// Memory, swap included, in MiB.
    MemoryMib, "memory in MiB", 16, 1_048_576
);
limit!(
    /// Most processes at once.
    Pids, "processes", 8, 1_000_000
);
limit!(
    /// The size of `/tmp` in MiB.
    TmpfsMib, "/tmp in MiB", 1, 1_048_576
);
limit!(
    /// Seconds one run may last.
    TimeoutSecs, "seconds", 1, u32::MAX
);
limit!(
    /// The home disk in MiB: the size of the filesystem an agent's home lives in (its inodes
    /// follow the size). 64 MiB is the smallest ext4 with a journal that is of use.
    DiskMib, "home disk in MiB", 64, 1_048_576
);

impl DiskMib {
    /// The quota of an agent hired without one, and of agents hired before quotas were
    /// recorded.
    pub const DEFAULT: u32 = 1024;

    /// `n` brought within bounds: the nearest of [`DiskMib::MIN`] and [`DiskMib::MAX`] when
    /// outside them.
    pub fn clamped(n: u32) -> Self {
        Self(n.clamp(Self::MIN, Self::MAX))
    }

    /// Why a home disk of `self` would be larger than its hirer's `hirer`, or `None` when it
    /// is not; in the words of [`AgentSpec::looser_than`](crate::event::AgentSpec::looser_than).
    pub fn looser_than(self, hirer: DiskMib) -> Option<String> {
        (self.0 > hirer.0).then(|| {
            format!(
                "its home disk {} MiB is above its hirer's {} MiB",
                self.0, hirer.0
            )
        })
    }
}

impl Default for DiskMib {
    /// [`DiskMib::DEFAULT`].
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// A CPU quota in thousandths of a core, from 0.01 to 1024 cores. Written as cores (`0.5`,
/// `2`, at most three decimals); carried as thousandths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct CpuMillis(u32);

impl CpuMillis {
    /// The smallest quota, 0.01 cores.
    pub const MIN: u32 = 10;
    /// The largest quota, 1024 cores.
    pub const MAX: u32 = 1_024_000;

    /// `millis` thousandths of a core, if within bounds.
    pub fn new(millis: u32) -> Result<Self, LimitError> {
        if (Self::MIN..=Self::MAX).contains(&millis) {
            Ok(Self(millis))
        } else {
            Err(LimitError(format!(
                "{} cores is outside 0.01 to 1024",
                f64::from(millis) / 1000.0
            )))
        }
    }

    /// `cores` (as roster.toml writes it), if finite and within bounds.
    pub fn from_cores(cores: f64) -> Result<Self, LimitError> {
        if cores.is_finite() && (0.01..=1024.0).contains(&cores) {
            // In range, so the rounded product fits a u32.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Self::new((cores * 1000.0).round() as u32)
        } else {
            Err(LimitError(format!("{cores} cores is outside 0.01 to 1024")))
        }
    }

    /// Thousandths of a core.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for CpuMillis {
    type Error = LimitError;
    fn try_from(n: u32) -> Result<Self, LimitError> {
        Self::new(n)
    }
}

impl From<CpuMillis> for u32 {
    fn from(v: CpuMillis) -> u32 {
        v.0
    }
}

impl std::str::FromStr for CpuMillis {
    type Err = LimitError;
    /// Cores as a decimal with at most three places: `0.5`, `2`, `.25`.
    fn from_str(s: &str) -> Result<Self, LimitError> {
        let bad = || LimitError(format!("`{s}` is not a number of cores like 0.5 or 2"));
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        if whole.is_empty() && frac.is_empty() || frac.len() > 3 {
            return Err(bad());
        }
        let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
        if !digits(whole) || !digits(frac) {
            return Err(bad());
        }
        let w: u32 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let f: u32 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
        let millis = w
            .checked_mul(1000)
            .and_then(|m| m.checked_add(f))
            .ok_or_else(bad)?;
        Self::new(millis).map_err(|_| LimitError(format!("{s} cores is outside 0.01 to 1024")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_at_every_edge() {
        assert!(MemoryMib::new(15).is_err());
        assert_eq!(MemoryMib::new(16).map(u32::from), Ok(16));
        assert_eq!(MemoryMib::new(1_048_576).map(u32::from), Ok(1_048_576));
        assert!(MemoryMib::new(1_048_577).is_err());
        assert!(Pids::new(7).is_err());
        assert!(TmpfsMib::new(0).is_err());
        assert!(TimeoutSecs::new(0).is_err());
        assert!(TimeoutSecs::new(u32::MAX).is_ok());
        assert!(DiskMib::new(63).is_err());
        assert_eq!(DiskMib::new(64).map(u32::from), Ok(64));
        assert_eq!(DiskMib::new(1_048_576).map(u32::from), Ok(1_048_576));
        assert!(DiskMib::new(1_048_577).is_err());
        assert!(DiskMib::new(DiskMib::DEFAULT).is_ok());
        assert_eq!(DiskMib::default().get(), DiskMib::DEFAULT);
        assert!("63".parse::<DiskMib>().is_err());
        assert!(serde_json::from_str::<DiskMib>("63").is_err());
        assert!("abc".parse::<Pids>().is_err());
        assert!("-1".parse::<Pids>().is_err());
    }

    #[test]
    fn a_disk_out_of_bounds_is_clamped_and_a_larger_one_is_looser() {
        assert_eq!(DiskMib::clamped(0).get(), DiskMib::MIN);
        assert_eq!(DiskMib::clamped(u32::MAX).get(), DiskMib::MAX);
        assert_eq!(DiskMib::clamped(512).get(), 512);
        let disk = |n| DiskMib::new(n).unwrap();
        assert_eq!(
            disk(2048).looser_than(disk(1024)).as_deref(),
            Some("its home disk 2048 MiB is above its hirer's 1024 MiB")
        );
        assert_eq!(disk(1024).looser_than(disk(1024)), None);
        assert_eq!(disk(512).looser_than(disk(1024)), None);
    }

    #[test]
    fn cores_parse_as_thousandths() {
        let c = |s: &str| s.parse::<CpuMillis>().map(CpuMillis::get);
        assert_eq!(c("0.5"), Ok(500));
        assert_eq!(c(".25"), Ok(250));
        assert_eq!(c("2"), Ok(2000));
        assert_eq!(c("0.01"), Ok(10));
        assert_eq!(c("1024"), Ok(1_024_000));
        for bad in [
            "",
            ".",
            "0.001",
            "0.0001",
            "1025",
            "1e3",
            "-1",
            "9999999999",
            "1.2.3",
        ] {
            assert!(c(bad).is_err(), "{bad:?} was taken");
        }
        assert_eq!(CpuMillis::from_cores(0.25).map(CpuMillis::get), Ok(250));
        assert!(CpuMillis::from_cores(f64::NAN).is_err());
        assert!(CpuMillis::from_cores(0.001).is_err());
    }

    #[test]
    fn the_wire_checks_the_bounds_too() {
        assert!(serde_json::from_str::<MemoryMib>("4").is_err());
        assert_eq!(
            serde_json::from_str::<MemoryMib>("512").map(u32::from).ok(),
            Some(512)
        );
        assert!(serde_json::from_str::<CpuMillis>("0").is_err());
    }
}
