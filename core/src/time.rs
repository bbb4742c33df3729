//! Time as a value. `core` never reads a clock: callers pass `now`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in microseconds since the Unix epoch (UTC).
///
/// Stored as a plain integer in the log (compact, canonical) and written as RFC 3339 in JSON.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// Why a timestamp string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not an RFC 3339 timestamp such as 2027-01-01T00:00:00Z: {reason}")]
pub struct TimestampError {
    input: String,
    reason: String,
}

impl Timestamp {
    /// The epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// From milliseconds since the epoch (saturating).
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis.saturating_mul(1000))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(&self) -> i64 {
        self.0
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(&self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This instant plus `micros` (saturating).
    pub const fn plus_micros(&self, micros: i64) -> Self {
        Self(self.0.saturating_add(micros))
    }

    fn to_jiff(self) -> Option<jiff::Timestamp> {
        jiff::Timestamp::from_microsecond(self.0).ok()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_jiff() {
            Some(t) => write!(f, "{t}"),
            None => write!(f, "@{}us", self.0),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, TimestampError> {
        if !rfc3339_shape(s) {
            return Err(TimestampError {
                input: s.to_owned(),
                reason: "expected YYYY-MM-DDTHH:MM:SS, optional fraction, then Z or +HH:MM".into(),
            });
        }
        let t: jiff::Timestamp = s.parse().map_err(|e: jiff::Error| TimestampError {
            input: s.to_owned(),
            reason: e.to_string(),
        })?;
        let micros = t.as_microsecond();
        Ok(Self(micros))
    }
}

/// RFC 3339 `date-time` and nothing else: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`. The
/// parser underneath also takes compact forms and time-zone annotations; a timestamp in a
/// capability should have one obvious spelling, so those are refused here.
fn rfc3339_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    let date_time = digits(0..4)
        && at(4, b"-")
        && digits(5..7)
        && at(7, b"-")
        && digits(8..10)
        && at(10, b"Tt")
        && digits(11..13)
        && at(13, b":")
        && digits(14..16)
        && at(16, b":")
        && digits(17..19);
    if !date_time {
        return false;
    }
    let mut i = 19;
    if at(i, b".") {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i..) {
        Some([b'Z' | b'z']) => true,
        Some([b'+' | b'-', h1, h2, b':', m1, m2]) => {
            [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(d).map(Self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        let t: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(t.to_string(), "2027-01-01T00:00:00Z");
        assert_eq!(t.as_millis(), 1_798_761_600_000);
        let u: Timestamp = "2027-01-01T01:00:00.5+01:00".parse().unwrap();
        assert_eq!(u.as_micros(), t.as_micros() + 500_000);
    }

    #[test]
    fn garbage_is_refused_with_the_input() {
        let err = "next tuesday".parse::<Timestamp>().unwrap_err();
        assert!(err.to_string().contains("next tuesday"), "{err}");
        assert!(
            "2027-01-01".parse::<Timestamp>().is_err(),
            "a date without a time is ambiguous"
        );
    }
}
