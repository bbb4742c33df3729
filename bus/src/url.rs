//! Which bus to use: `memory` (in-process, the default), or a NATS server as
//! `nats://HOST:PORT` (plain TCP) or `tls://HOST:PORT` (TLS required), with what roster proves
//! to it and checks of it as options after a `?`:
//!
//! ```text
//! tls://nats.example:4222?user=roster&password_file=/etc/roster/nats.pass&ca_file=/etc/roster/ca.pem&inbox=_INBOX_roster
//! ```
//!
//! | option | what |
//! |---|---|
//! | `user=NAME` + `password_file=PATH` | user and password (the password is the file's content) |
//! | `token_file=PATH` | a token |
//! | `nkey_file=PATH` | an nkey seed (`SU…`) |
//! | `creds_file=PATH` | a credentials file (a user JWT and its nkey seed, as `nsc` writes it) |
//! | `ca_file=PATH` | the CA that signed the server's certificate (`tls://` only) |
//! | `cert_file=PATH` + `key_file=PATH` | a client certificate and its key (`tls://` only) |
//! | `inbox=PREFIX` | the subject prefix of this client's replies (default `_INBOX`) |
//!
//! At most one way of authenticating. A secret is never written in the URL (so never on a
//! command line, in the environment or in `roster.toml`): only the path of a file that holds it,
//! which must be absolute, refused when group or others may read or write it or when it is
//! not its reader's own (`crate::secret`). The files are read once each time roster connects
//! (`roster serve`'s start, each command): the client keeps what it read for its reconnects,
//! so a rotated secret takes a restart. The URL itself therefore holds nothing secret, and is
//! shown in full in messages; a URL that is refused is shown with anything that might be a
//! secret (what precedes an `@`, the value of an unknown or refused option) as `***`.
//!
//! [`NatsUrl::warnings`] says what a URL leaves open (no authentication, plain TCP to another
//! machine): `roster serve` and `roster subscribe` print it at start.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Why a bus URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bus `{input}`: {why} (use `memory`, `nats://HOST:PORT` or `tls://HOST:PORT`, with options after `?`; see docs/nats.md)")]
pub struct BusUrlError {
    input: String,
    why: String,
}

/// A validated bus choice.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum BusUrl {
    /// The in-process bus: one runtime, no NATS.
    #[default]
    Memory,
    /// A NATS server with JetStream.
    Nats(NatsUrl),
}

/// Where a NATS server is and how roster connects to it: parsed and checked, files named but
/// not read (`crate::connect` reads them each time it connects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsUrl {
    host: String,
    port: u16,
    tls: bool,
    auth: Auth,
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    inbox: Option<InboxPrefix>,
}

/// How roster authenticates to the server. Every secret is a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No credentials (a server that asks for none).
    None,
    /// A user name and the file holding its password.
    UserPassword {
        /// The user (not a secret).
        user: String,
        /// The file whose content is the password.
        password_file: PathBuf,
    },
    /// A token.
    Token {
        /// Holds the token (one line), owner-only like every secret file.
        file: PathBuf,
    },
    /// An nkey seed, which signs the server's challenge.
    NKey {
        /// Holds the seed (`SU…`), owner-only.
        seed_file: PathBuf,
    },
    /// A user JWT and its nkey seed (servers in operator mode).
    Creds {
        /// A credentials file as `nsc` writes it, owner-only.
        file: PathBuf,
    },
}

/// The subject prefix under which a client receives replies (its requests', JetStream's), so
/// that a server can let each user subscribe to its own prefix only: one user then cannot read
/// or answer another's replies. Dot-separated tokens of `A-Z a-z 0-9 _ -`, at most 64 bytes;
/// not the server's own (`$…`) and not under roster's subjects (`roster.…`, or `NS.events`,
/// `NS.ctx`, `NS.tool` of any namespace), where a reply would pass for an event, a context
/// message or a tool call and a permission to receive replies would be one to read those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxPrefix(String);

impl InboxPrefix {
    /// Checks `s`.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.starts_with('$') {
            return Err("inbox must not start with `$`: those are the server's own subjects");
        }
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if s.len() > 64 || !s.split('.').all(token_ok) {
            return Err("inbox is a subject prefix: dot-separated tokens of letters, digits, `_` and `-`, at most 64 bytes");
        }
        let mut tokens = s.split('.');
        let first = tokens.next();
        let second = tokens.next();
        let namespace = first.is_some_and(|t| roster_core::name::Name::parse(t).is_ok());
        if first == Some("roster")
            || (namespace && matches!(second, Some("events" | "ctx" | "tool")))
        {
            return Err(
                "inbox must not be under roster's subjects (`roster.…`, `NS.events`, \
                        `NS.ctx`, `NS.tool`): give a prefix of its own, such as `_INBOX_roster`",
            );
        }
        Ok(Self(s.to_owned()))
    }

    /// The prefix.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl NatsUrl {
    /// Host name or IP address (an IPv6 address in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether TLS is required (`tls://`): a server that does not offer it is refused.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// How roster authenticates.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The CA file that the server's certificate must chain to (else the system's roots).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The client certificate and its key file.
    pub fn client_cert(&self) -> Option<(&Path, &Path)> {
        self.client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()))
    }

    /// The reply subject prefix, when not async-nats's `_INBOX`.
    pub fn inbox(&self) -> Option<&InboxPrefix> {
        self.inbox.as_ref()
    }

    /// Whether the server is on this machine: `localhost`, `127.0.0.0/8` or `[::1]`.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// What this URL leaves open, one loud line each: no credentials (a server that asks for
    /// none lets anyone who reaches it read every team's context and tool calls and publish
    /// into roster's subjects), and plain `nats://` to another machine (everything, passwords
    /// too, crosses the network in clear). Empty when neither. A pure function of the URL: the
    /// server's own configuration cannot be seen from here.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let at = self.address();
        if self.auth == Auth::None {
            w.push(format!(
                "WARNING: NATS at {at} is used without credentials: unless its server asks for \
                 them, anyone who can reach it reads every team's context messages and tool \
                 calls and can publish into roster's subjects (see docs/nats.md)"
            ));
        }
        if !self.tls && !self.is_loopback() {
            w.push(format!(
                "WARNING: NATS at {at} is on another machine and reached over plain nats://: \
                 passwords, context messages, tool calls and events cross the network in clear; \
                 use tls:// (see docs/nats.md)"
            ));
        }
        w
    }

    /// The address async-nats is given: scheme, host and port only.
    pub(crate) fn address(&self) -> String {
        let scheme = if self.tls { "tls" } else { "nats" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// The option names a URL may carry, in the order they are shown.
const OPTIONS: [&str; 9] = [
    "user",
    "password_file",
    "token_file",
    "nkey_file",
    "creds_file",
    "ca_file",
    "cert_file",
    "key_file",
    "inbox",
];

impl BusUrl {
    /// Parses `memory`, `nats://HOST[:PORT][?OPTIONS]` or `tls://HOST[:PORT][?OPTIONS]` (the
    /// port defaults to 4222).
    pub fn parse(s: &str) -> Result<Self, BusUrlError> {
        let err = |why: &str| BusUrlError {
            input: redact(s).chars().take(200).collect(),
            why: why.to_owned(),
        };
        if s == "memory" {
            return Ok(Self::Memory);
        }
        let (tls, rest) = if let Some(r) = s.strip_prefix("nats://") {
            (false, r)
        } else if let Some(r) = s.strip_prefix("tls://") {
            (true, r)
        } else {
            return Err(err("unknown scheme"));
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('@') {
            return Err(err(
                "credentials are never written in the URL: give `user=NAME&password_file=PATH` \
                 (or token_file, nkey_file, creds_file) after `?`, each secret in a file of mode 0600",
            ));
        }
        if rest.contains(['/', '#']) {
            return Err(err("paths and fragments are not accepted"));
        }
        let (host, port) = host_port(rest).map_err(err)?;
        let mut url = NatsUrl {
            host,
            port,
            tls,
            auth: Auth::None,
            ca_file: None,
            client_cert: None,
            inbox: None,
        };
        if let Some(query) = query {
            options(&mut url, query).map_err(|why| err(&why))?;
        }
        Ok(Self::Nats(url))
    }

    /// True for the in-process bus.
    pub fn is_memory(&self) -> bool {
        matches!(self, Self::Memory)
    }

    /// The NATS server, unless this is the in-process bus.
    pub fn nats(&self) -> Option<&NatsUrl> {
        match self {
            Self::Memory => None,
            Self::Nats(n) => Some(n),
        }
    }
}

/// `HOST[:PORT]`, checked.
fn host_port(rest: &str) -> Result<(String, u16), &'static str> {
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after `]`")?),
        };
        if h.is_empty()
            || !h
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err("the host is not an IPv6 address");
        }
        (&rest[..h.len() + 2], port)
    } else {
        match rest.split_once(':') {
            Some((_, p)) if p.contains(':') => {
                return Err("write an IPv6 address in brackets: nats://[::1]:4222")
            }
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        None => 4222,
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| "the port is not a number from 1 to 65535")?,
    };
    if port == 0 {
        return Err("the port is not a number from 1 to 65535");
    }
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
        && (host.starts_with('[') || !host.contains(':'));
    if !host_ok {
        return Err("the host is not a host name or an IP address");
    }
    Ok((host.to_owned(), port))
}

/// Reads `a=b&c=d` into `url`, checking every rule of the module's table.
fn options(url: &mut NatsUrl, query: &str) -> Result<(), String> {
    let mut seen: [Option<&str>; OPTIONS.len()] = [None; OPTIONS.len()];
    for pair in query.split('&') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("option `{}` has no `=VALUE`", shown_key(pair)))?;
        if matches!(
            key,
            "password" | "pass" | "token" | "nkey" | "seed" | "creds"
        ) {
            return Err(format!(
                "`{key}=` would put a secret in the URL: write it in a file of mode 0600 and \
                 name the file with `{key}_file=` (`password_file`, `token_file`, `nkey_file`, \
                 `creds_file`)"
            ));
        }
        let Some(i) = OPTIONS.iter().position(|o| *o == key) else {
            return Err(format!(
                "unknown option `{}` (known: {})",
                shown_key(key),
                OPTIONS.join(", ")
            ));
        };
        if seen[i].is_some() {
            return Err(format!("option `{key}` is given twice"));
        }
        if value.is_empty() {
            return Err(format!("option `{key}` is empty"));
        }
        seen[i] = Some(value);
    }
    let [user, password_file, token_file, nkey_file, creds_file, ca_file, cert_file, key_file, inbox] =
        seen;
    let file = |key: &str, v: Option<&str>| v.map(|v| path(key, v)).transpose();
    let password_file = file("password_file", password_file)?;
    let token_file = file("token_file", token_file)?;
    let nkey_file = file("nkey_file", nkey_file)?;
    let creds_file = file("creds_file", creds_file)?;
    let ways = [
        password_file.is_some() || user.is_some(),
        token_file.is_some(),
        nkey_file.is_some(),
        creds_file.is_some(),
    ];
    if ways.iter().filter(|w| **w).count() > 1 {
        return Err(
            "give one way of authenticating: user and password_file, token_file, \
                    nkey_file or creds_file"
                .into(),
        );
    }
    url.auth = match (user, password_file) {
        (Some(user), Some(password_file)) => Auth::UserPassword {
            user: user_name(user)?,
            password_file,
        },
        (Some(_), None) => return Err("`user` needs `password_file`".into()),
        (None, Some(_)) => return Err("`password_file` needs `user`".into()),
        (None, None) => match (token_file, nkey_file, creds_file) {
            (Some(file), _, _) => Auth::Token { file },
            (_, Some(seed_file), _) => Auth::NKey { seed_file },
            (_, _, Some(file)) => Auth::Creds { file },
            _ => Auth::None,
        },
    };
    url.ca_file = file("ca_file", ca_file)?;
    url.client_cert = match (file("cert_file", cert_file)?, file("key_file", key_file)?) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("`cert_file` and `key_file` go together".into()),
    };
    if !url.tls && (url.ca_file.is_some() || url.client_cert.is_some()) {
        return Err("ca_file, cert_file and key_file need a `tls://` URL".into());
    }
    url.inbox = inbox
        .map(InboxPrefix::parse)
        .transpose()
        .map_err(str::to_owned)?;
    Ok(())
}

/// `s` as it may be shown in an error: what precedes an `@` (userinfo, where a password goes)
/// and the value of every option that is not a known one are `***`, and so is an option
/// without `=` unless it looks like an option name. Known options hold paths, a user name and
/// a prefix, none of them secret.
fn redact(s: &str) -> String {
    let (head, query) = match s.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (s, None),
    };
    let mut out = match head.rsplit_once('@') {
        Some((before, host)) => match before.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***@{host}"),
            None => format!("***@{host}"),
        },
        None => head.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if OPTIONS.contains(&k) => format!("{k}={v}"),
                Some((k, _)) => format!("{}=***", shown_key(k)),
                None => shown_key(pair).to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// An option name as it may be shown: itself if it looks like one (`a-z`, `_`, at most 32
/// bytes), else `***` (it may be a secret typed where a name goes).
fn shown_key(k: &str) -> &str {
    if !k.is_empty() && k.len() <= 32 && k.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        k
    } else {
        "***"
    }
}

/// An absolute path with nothing in it that the URL syntax would make ambiguous.
fn path(key: &str, v: &str) -> Result<PathBuf, String> {
    if !v.starts_with('/') {
        return Err(format!(
            "`{key}` must be an absolute path (the daemon and the commands run from different \
             directories)"
        ));
    }
    if v.chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '%')
    {
        return Err(format!(
            "`{key}`: the path contains a space, a control character or `%`: rename the file"
        ));
    }
    Ok(PathBuf::from(v))
}

/// A NATS user name: printable, no spaces, at most 128 bytes.
fn user_name(v: &str) -> Result<String, String> {
    if v.len() > 128
        || v.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '%')
    {
        return Err("`user`: at most 128 characters, no spaces, control characters or `%`".into());
    }
    Ok(v.to_owned())
}

impl fmt::Display for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory"),
            Self::Nats(n) => fmt::Display::fmt(n, f),
        }
    }
}

/// The URL again, options in a fixed order; it holds no secret (only file paths).
impl fmt::Display for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address())?;
        let mut opts: Vec<(&str, String)> = Vec::new();
        let p = |p: &Path| p.display().to_string();
        match &self.auth {
            Auth::None => {}
            Auth::UserPassword {
                user,
                password_file,
            } => {
                opts.push(("user", user.clone()));
                opts.push(("password_file", p(password_file)));
            }
            Auth::Token { file } => opts.push(("token_file", p(file))),
            Auth::NKey { seed_file } => opts.push(("nkey_file", p(seed_file))),
            Auth::Creds { file } => opts.push(("creds_file", p(file))),
        }
        if let Some(ca) = &self.ca_file {
            opts.push(("ca_file", p(ca)));
        }
        if let Some((c, k)) = &self.client_cert {
            opts.push(("cert_file", p(c)));
            opts.push(("key_file", p(k)));
        }
        if let Some(i) = &self.inbox {
            opts.push(("inbox", i.0.clone()));
        }
        for (i, (k, v)) in opts.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
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

    fn nats(s: &str) -> NatsUrl {
        match BusUrl::parse(s).unwrap() {
            BusUrl::Nats(n) => n,
            BusUrl::Memory => panic!("{s} is memory"),
        }
    }

    #[test]
    fn bus_urls() {
        assert_eq!(BusUrl::parse("memory").unwrap(), BusUrl::Memory);
        let n = nats("nats://127.0.0.1:4223");
        assert_eq!((n.host(), n.port(), n.tls()), ("127.0.0.1", 4223, false));
        assert_eq!(n.auth(), &Auth::None);
        assert_eq!(nats("nats://nats.local").port(), 4222);
        assert_eq!(nats("nats://[::1]:7").host(), "[::1]");
        assert_eq!(
            BusUrl::parse("nats://h:1/").unwrap().to_string(),
            "nats://h:1"
        );
        assert!(nats("tls://h").tls());
        for bad in [
            "",
            "Memory",
            "nats://",
            "http://h:1",
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

    #[test]
    fn options_round_trip() {
        for s in [
            "nats://h:4222?user=roster&password_file=/etc/r/pass",
            "nats://h:4222?token_file=/t",
            "nats://h:4222?nkey_file=/seed&inbox=_INBOX_roster",
            "tls://h:4222?creds_file=/c.creds&ca_file=/ca.pem&cert_file=/c.pem&key_file=/c.key",
        ] {
            assert_eq!(BusUrl::parse(s).unwrap().to_string(), s);
        }
        let n = nats("tls://h?ca_file=/ca&user=u&password_file=/p");
        assert_eq!(
            n.auth(),
            &Auth::UserPassword {
                user: "u".into(),
                password_file: "/p".into()
            }
        );
        assert_eq!(n.ca_file(), Some(Path::new("/ca")));
    }

    #[test]
    fn secrets_and_bad_options_are_refused_with_reasons() {
        for (bad, why) in [
            ("nats://u:p@h:1", "never written in the URL"),
            ("nats://u@h:1", "never written in the URL"),
            ("nats://h?password=x", "secret in the URL"),
            ("nats://h?token=x", "secret in the URL"),
            ("nats://h?user=u", "needs `password_file`"),
            ("nats://h?password_file=/p", "needs `user`"),
            ("nats://h?token_file=t", "absolute path"),
            ("nats://h?token_file=/t&nkey_file=/n", "one way"),
            ("nats://h?user=u&password_file=/p&creds_file=/c", "one way"),
            ("nats://h?ca_file=/ca", "tls://"),
            ("tls://h?cert_file=/c", "go together"),
            ("nats://h?token_file=/t&token_file=/u", "twice"),
            ("nats://h?colour=red", "unknown option"),
            ("nats://h?inbox=a..b", "subject prefix"),
            ("nats://h?inbox=a.>", "subject prefix"),
            ("nats://h?token_file=/a%20b", "rename"),
            ("nats://h?token_file=", "empty"),
            ("nats://h?token_file", "no `=VALUE`"),
            ("nats://h?inbox=roster", "roster's subjects"),
            ("nats://h?inbox=roster.replies", "roster's subjects"),
            ("nats://h?inbox=my-ns.events.x", "roster's subjects"),
            ("nats://h?inbox=ns.tool", "roster's subjects"),
            ("nats://h?inbox=$JS.x", "`$`"),
        ] {
            let e = BusUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(BusUrl::parse("nats://h?inbox=_INBOX_roster.events").is_ok());
    }

    /// A refused URL never shows the secret that got it refused: userinfo, the value of a
    /// refused or unknown option, a stray token.
    #[test]
    fn a_refused_url_does_not_echo_its_secret() {
        for bad in [
            "nats://u:hunter2@h:1",
            "tls://hunter2@h:1?ca_file=/ca",
            "nats://h?password=hunter2",
            "nats://h?token=hunter2&user=u",
            "nats://h?pw=hunter2",
            "nats://h?token_file=/t&hunter2",
            "nats://h?hunter2=x",
            "nats:/u:hunter2@h",
        ] {
            let e = BusUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("hunter2"), "{bad}: {e}");
            assert!(e.contains("***"), "{bad}: {e}");
        }
        let e = BusUrl::parse("nats://u:hunter2@h:1?token_file=/t&colour=red")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`nats://***@h:1?token_file=/t&colour=***`"),
            "{e}"
        );
    }

    #[test]
    fn warnings_say_what_a_url_leaves_open() {
        let w = |s: &str| nats(s).warnings();
        assert!(w("nats://127.0.0.1:4222?token_file=/t").is_empty());
        assert!(w("nats://localhost?token_file=/t").is_empty());
        assert!(w("nats://[::1]:1?token_file=/t").is_empty());
        assert!(w("tls://nats.example?token_file=/t").is_empty());
        let local = w("nats://127.0.0.1:4222");
        assert_eq!(local.len(), 1);
        assert!(
            local[0]
                .starts_with("WARNING: NATS at nats://127.0.0.1:4222 is used without credentials"),
            "{local:?}"
        );
        let remote = w("nats://10.1.2.3?user=u&password_file=/p");
        assert_eq!(remote.len(), 1);
        assert!(remote[0].contains("plain nats://") && remote[0].contains("use tls://"));
        assert_eq!(w("nats://nats.example").len(), 2);
        assert_eq!(w("tls://nats.example").len(), 1);
        assert!(!nats("nats://128.0.0.1").is_loopback());
        assert!(nats("nats://127.9.9.9").is_loopback());
    }
}
