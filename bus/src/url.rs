//! Which bus to use: `memory` (in-process, the default) or `nats://HOST:PORT`.

use std::fmt;
use std::str::FromStr;

/// Why a bus URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bus `{input}`: {why} (use `memory` or `nats://HOST:PORT`)")]
pub struct BusUrlError {
    input: String,
    why: &'static str,
}

/// A validated bus choice.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum BusUrl {
    /// The in-process bus: one runtime, no NATS.
    #[default]
    Memory,
    /// A NATS server with JetStream.
    Nats {
        /// Host name or IP address (no user, password or path).
        host: String,
        /// TCP port.
        port: u16,
    },
}

impl BusUrl {
    /// Parses `memory` or `nats://HOST:PORT` (the port defaults to 4222).
    pub fn parse(s: &str) -> Result<Self, BusUrlError> {
        let err = |why| BusUrlError {
            input: s.chars().take(200).collect(),
            why,
        };
        if s == "memory" {
            return Ok(Self::Memory);
        }
        let rest = s
            .strip_prefix("nats://")
            .ok_or_else(|| err("unknown scheme"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['@', '/', '?', '#']) {
            return Err(err("credentials, paths and options are not accepted"));
        }
        let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| err("an IPv6 address needs its closing `]`"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| err("junk after `]`"))?),
            };
            if h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return Err(err("the host is not an IPv6 address"));
            }
            (&rest[..h.len() + 2], port)
        } else {
            match rest.split_once(':') {
                Some((_, p)) if p.contains(':') => {
                    return Err(err("write an IPv6 address in brackets: nats://[::1]:4222"))
                }
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        let port = match port {
            None => 4222,
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| err("the port is not a number from 1 to 65535"))?,
        };
        if port == 0 {
            return Err(err("the port is not a number from 1 to 65535"));
        }
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
            && (host.starts_with('[') || !host.contains(':'));
        if !host_ok {
            return Err(err("the host is not a host name or an IP address"));
        }
        Ok(Self::Nats {
            host: host.to_owned(),
            port,
        })
    }

    /// True for the in-process bus.
    pub fn is_memory(&self) -> bool {
        matches!(self, Self::Memory)
    }
}

impl fmt::Display for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Nats { host, port } => write!(f, "nats://{host}:{port}"),
        }
    }
}

impl TryFrom<String> for BusUrl {
    type Error = BusUrlError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl FromStr for BusUrl {
    type Err = BusUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_urls() {
        assert_eq!(BusUrl::parse("memory").unwrap(), BusUrl::Memory);
        let n = |h: &str, p| BusUrl::Nats {
            host: h.into(),
            port: p,
        };
        assert_eq!(
            BusUrl::parse("nats://127.0.0.1:4223").unwrap(),
            n("127.0.0.1", 4223)
        );
        assert_eq!(
            BusUrl::parse("nats://nats.local").unwrap(),
            n("nats.local", 4222)
        );
        assert_eq!(BusUrl::parse("nats://[::1]:7").unwrap(), n("[::1]", 7));
        assert_eq!(
            BusUrl::parse("nats://h:1/").unwrap().to_string(),
            "nats://h:1"
        );
        for bad in [
            "",
            "Memory",
            "nats://",
            "http://h:1",
            "nats://u:p@h:1",
            "nats://h:0",
            "nats://h:70000",
            "nats://h:1/x",
            "nats://::1",
            "nats://[::1",
            "nats://h h",
            "nats://[zz]:1",
            "nats://h:x",
        ] {
            assert!(BusUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
