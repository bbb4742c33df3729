//! Connecting to NATS: [`connect`] for the runtime (never fails because NATS is down; the
//! client connects in the background and reconnects forever — but wrong credentials, an
//! unreadable or too-open secret file or a failed TLS handshake fail it at once), and
//! [`connect_now`] for a command a person waits on (a clear error after a short timeout, not a
//! hang). Both authenticate and set up TLS as the [`BusUrl`]'s options say (`crate::url`).
//! Secret files are read once per call: the client keeps what was read for its reconnects
//! (async-nats asks for credentials only when it is built), so a rotated secret is used from
//! the next start. The client connects only to the URL's server, never to the other servers a
//! cluster announces (`ignore_discovered_servers`): those would be reached with the same
//! credentials, outside what the URL says (`tls://` or not, which host).

use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};

use crate::url::{Auth, NatsUrl};
use crate::{secret, BusError, BusUrl};

/// The longest pause between two reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// How long [`connect`] tries once in the foreground, to tell a refusal from an outage.
const FIRST_ATTEMPT: Duration = Duration::from_secs(2);

fn nats(url: &BusUrl) -> Result<&NatsUrl, BusError> {
    url.nats().ok_or(BusError::NotNats)
}

/// The options for `url`: its credentials (read from their files now, once) and its TLS
/// files (checked now; async-nats reads them when it connects).
fn options(url: &NatsUrl) -> Result<ConnectOptions, BusError> {
    let mut o = ConnectOptions::new()
        .name("roster")
        .ignore_discovered_servers()
        // Zero means no limit: a runtime outlives any outage.
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            if attempts <= 1 {
                return Duration::ZERO;
            }
            let exp = u32::try_from(attempts.min(16)).unwrap_or(16);
            (Duration::from_millis(25) * 2u32.saturating_pow(exp)).min(MAX_RECONNECT_DELAY)
        })
        // A publish or subscribe the server's permissions deny is answered by an error the
        // client only reports here; without this an operator would see requests time out.
        .event_callback(|event| async move {
            match event {
                Event::ServerError(e) => tracing::warn!("NATS server: {e}"),
                Event::ClientError(e) => tracing::warn!("NATS client: {e}"),
                _ => {}
            }
        });
    o = match url.auth() {
        Auth::UserPassword {
            user,
            password_file,
        } => o.user_and_password(user.clone(), secret::read("password", password_file)?),
        Auth::Token { file } => o.token(secret::read("token", file)?),
        Auth::NKey { seed_file } => {
            let seed = secret::read("nkey seed", seed_file)?;
            o.nkey(seed.trim().to_owned())
        }
        Auth::Creds { file } => {
            let creds = secret::read("credentials", file)?;
            o.credentials(&creds)
                .map_err(|e| secret::SecretError::Malformed {
                    what: "credentials",
                    path: file.clone(),
                    why: format!("not a credentials file ({e})"),
                })?
        }
        Auth::None => o,
    };
    if url.tls() {
        o = o.require_tls(true);
        if let Some(ca) = url.ca_file() {
            secret::trusted("CA", ca)?;
            o = o.add_root_certificates(ca.to_owned());
        }
        if let Some((cert, key)) = url.client_cert() {
            secret::trusted("client certificate", cert)?;
            // The key is a secret like any other: owner-only, or refused.
            secret::read("client key", key)?;
            o = o.add_client_certificate(cert.to_owned(), key.to_owned());
        }
    }
    if let Some(inbox) = url.inbox() {
        o = o.custom_inbox_prefix(inbox.as_str());
    }
    Ok(o)
}

/// A connection error as a [`BusError`]: refusals of who we are, or of the server's TLS, are
/// [`BusError::Refused`] (retrying will not help); the rest [`BusError::Unreachable`].
fn connect_error(url: &NatsUrl, e: &async_nats::ConnectError) -> BusError {
    // async-nats reports a failed handshake (a certificate refused by either side) as an I/O
    // error: rustls's and the server's alerts name the certificate.
    let text = e.to_string().to_lowercase();
    let handshake = e.kind() == ConnectErrorKind::Io
        && url.tls()
        && (text.contains("certificate") || text.contains("alert"));
    if handshake {
        return BusError::Refused {
            url: url.to_string(),
            why: format!(
                "the TLS handshake failed ({e}): check ca_file (the CA that signed the server's \
                 certificate), cert_file and key_file, and that the server's certificate names \
                 the host"
            ),
        };
    }
    match e.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            BusError::Refused {
                url: url.to_string(),
                why: format!(
                    "the server refused roster's credentials ({e}): check the user and its \
                     password_file, token_file, nkey_file or creds_file, and the server's \
                     authorization block"
                ),
            }
        }
        ConnectErrorKind::Tls => BusError::Refused {
            url: url.to_string(),
            why: format!(
                "the TLS handshake failed ({e}): check ca_file (the CA that signed the server's \
                 certificate), cert_file and key_file, and that the server's certificate names \
                 the host"
            ),
        },
        _ => BusError::Unreachable {
            url: url.to_string(),
            why: e.to_string(),
        },
    }
}

/// A client for the runtime: returns soon even when NATS is down (it then connects in the
/// background) and reconnects forever after any outage; operations fail or time out while it
/// is disconnected, and the outbox retries them. Fails at once when a secret file is
/// unreadable or too open ([`BusError::Secret`]), or when the server refuses roster's
/// credentials or TLS ([`BusError::Refused`]).
pub async fn connect(url: &BusUrl) -> Result<Client, BusError> {
    let n = nats(url)?;
    let attempt = options(n)?
        .connection_timeout(FIRST_ATTEMPT)
        .connect(n.address());
    match tokio::time::timeout(FIRST_ATTEMPT, attempt).await {
        Ok(Ok(client)) => return Ok(client),
        Ok(Err(e)) => {
            let e = connect_error(n, &e);
            if matches!(e, BusError::Refused { .. }) {
                return Err(e);
            }
            tracing::warn!("{e}; connecting in the background");
        }
        Err(_) => tracing::warn!("NATS at {url} does not answer yet; connecting in the background"),
    }
    options(n)?
        .retry_on_initial_connect()
        .connect(n.address())
        .await
        .map_err(|e| connect_error(n, &e))
}

/// A client for a command a person waits on: fails with [`BusError::Unreachable`] when the
/// server cannot be reached within `timeout`, [`BusError::Refused`] when it refuses roster's
/// credentials or TLS; once connected it reconnects like [`connect`].
pub async fn connect_now(url: &BusUrl, timeout: Duration) -> Result<Client, BusError> {
    let n = nats(url)?;
    let attempt = options(n)?.connection_timeout(timeout).connect(n.address());
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(connect_error(n, &e)),
        Err(_) => Err(BusError::Unreachable {
            url: url.to_string(),
            why: format!("no answer within {} s", timeout.as_secs_f32()),
        }),
    }
}

/// Whether `client` is connected to its server now (it reconnects by itself after an outage;
/// meanwhile publishes queue up in it, then wait).
pub fn is_connected(client: &Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}
