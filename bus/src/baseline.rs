//! Raw NATS baselines for `roster bench share`, measured on the same server in the same run as
//! roster's figures: a core-NATS request/reply round trip (what one message through the bus
//! can at best cost), and pipelined JetStream publishing of the very bytes the outbox sends
//! (what fan-out can at best reach). Kept here because only this crate names async-nats.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::BusError;

/// `n` sequential request/reply round trips of a `size`-byte payload to an echo responder on
/// the same connection's server (after `n / 10` untimed warm-up rounds); each round trip's time.
pub async fn request_reply(
    client: &Client,
    n: usize,
    size: usize,
) -> Result<Vec<Duration>, BusError> {
    let subject = format!("_roster_bench.echo.{}", std::process::id());
    let mut responder = client
        .subscribe(subject.clone())
        .await
        .map_err(BusError::from_nats("subscribe the echo responder"))?;
    let echo_client = client.clone();
    let echo = tokio::spawn(async move {
        while let Some(m) = responder.next().await {
            if let Some(reply) = m.reply {
                if echo_client.publish(reply, m.payload).await.is_err() {
                    return;
                }
            }
        }
    });
    client
        .flush()
        .await
        .map_err(BusError::from_nats("flush the subscription"))?;
    let payload = Bytes::from(vec![b'x'; size]);
    let mut times = Vec::with_capacity(n);
    let mut result = Ok(());
    for i in 0..(n + n / 10) {
        let started = Instant::now();
        if let Err(e) = client.request(subject.clone(), payload.clone()).await {
            result = Err(BusError::from_nats("make a request")(e));
            break;
        }
        if i >= n / 10 {
            times.push(started.elapsed());
        }
    }
    echo.abort();
    result.map(|()| times)
}

/// Publishes `messages` (subject, headers, payload) to a fresh file-backed stream capturing
/// `subjects`, keeping up to `window` publishes awaiting their acknowledgement, and returns the
/// time until the last is acknowledged. The stream is deleted afterwards.
pub async fn jetstream_publish(
    client: &Client,
    stream: &str,
    subjects: &str,
    messages: Vec<(String, HeaderMap, Bytes)>,
    window: usize,
) -> Result<Duration, BusError> {
    let js = async_nats::jetstream::new(client.clone());
    let _ = js.delete_stream(stream).await;
    js.create_stream(Config {
        name: stream.to_owned(),
        subjects: vec![subjects.to_owned()],
        storage: StorageType::File,
        duplicate_window: crate::stream::DUPLICATE_WINDOW,
        ..Config::default()
    })
    .await
    .map_err(BusError::from_nats("create the baseline stream"))?;
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(window.max(1));
    let mut result = Ok(());
    for (subject, headers, payload) in messages {
        if in_flight.len() >= window.max(1) {
            if let Some(ack) = in_flight.pop_front() {
                if let Err(e) = await_ack(ack).await {
                    result = Err(e);
                    break;
                }
            }
        }
        match js.publish_with_headers(subject, headers, payload).await {
            Ok(ack) => in_flight.push_back(ack),
            Err(e) => {
                result = Err(BusError::from_nats("publish")(e));
                break;
            }
        }
    }
    if result.is_ok() {
        for ack in in_flight {
            if let Err(e) = await_ack(ack).await {
                result = Err(e);
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    let _ = js.delete_stream(stream).await;
    result.map(|()| elapsed)
}

async fn await_ack(ack: async_nats::jetstream::context::PublishAckFuture) -> Result<(), BusError> {
    ack.await
        .map(drop)
        .map_err(BusError::from_nats("await a publish acknowledgement"))
}
