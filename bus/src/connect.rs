//! Connecting to NATS: [`connect`] for the runtime (never fails because NATS is down; the
//! client connects in the background and reconnects forever), [`connect_now`] for a command a
//! person waits on (a clear error after a short timeout, not a hang).

use std::time::Duration;

use async_nats::{Client, ConnectOptions};

use crate::{BusError, BusUrl};

/// The longest pause between two reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// The address async-nats is given for `url`.
fn address(url: &BusUrl) -> Result<String, BusError> {
    match url {
        BusUrl::Memory => Err(BusError::NotNats),
        BusUrl::Nats { .. } => Ok(url.to_string()),
    }
}

fn options() -> ConnectOptions {
    ConnectOptions::new()
        .name("roster")
        // Zero means no limit: a runtime outlives any outage.
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            if attempts <= 1 {
                return Duration::ZERO;
            }
            let exp = u32::try_from(attempts.min(16)).unwrap_or(16);
            (Duration::from_millis(25) * 2u32.saturating_pow(exp)).min(MAX_RECONNECT_DELAY)
        })
}

/// A client for the runtime: returns at once even when NATS is down (it connects in the
/// background), and reconnects forever after any outage. Operations fail or time out while
/// it is disconnected; the outbox retries them.
pub async fn connect(url: &BusUrl) -> Result<Client, BusError> {
    let addr = address(url)?;
    options()
        .retry_on_initial_connect()
        .connect(addr)
        .await
        .map_err(|e| BusError::Unreachable {
            url: url.to_string(),
            why: e.to_string(),
        })
}

/// A client for a command a person waits on: fails with [`BusError::Unreachable`] when the
/// server cannot be reached within `timeout`; once connected it reconnects like [`connect`].
pub async fn connect_now(url: &BusUrl, timeout: Duration) -> Result<Client, BusError> {
    let addr = address(url)?;
    let attempt = options().connection_timeout(timeout).connect(addr);
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(BusError::Unreachable {
            url: url.to_string(),
            why: e.to_string(),
        }),
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
