//! The JetStream stream that keeps a namespace's events (`NS_events`), and reading single
//! messages of it back by stream sequence (the outbox's reconcile, the subscriber's alignment
//! check).

use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{
    Config, DirectGetErrorKind, LastRawMessageErrorKind, RetentionPolicy, StorageType, Stream,
};
use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use roster_core::name::Name;

use crate::{subject, wire, BusError};

/// The duplicate window of a stream roster creates: how long JetStream remembers a
/// `Nats-Msg-Id`, so a re-publish within it is stored once.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Makes sure the stream `NS_events` exists, capturing `NS.events.>` on disk: creates it if
/// missing; an existing stream is used as it is (an operator may have changed its limits), with
/// a warning if it does not capture every event subject or deduplicates for less than
/// [`DUPLICATE_WINDOW`].
pub async fn ensure_events_stream(js: &Context, ns: &Name) -> Result<Stream, BusError> {
    let name = subject::events_stream(ns);
    match js.get_stream(&name).await {
        Ok(stream) => {
            check_existing(&stream, ns);
            Ok(stream)
        }
        Err(e) if get_not_found(e.kind()) => {
            let config = Config {
                name: name.clone(),
                description: Some(format!("every committed event of roster namespace `{ns}`")),
                subjects: vec![subject::all_events(ns)],
                storage: StorageType::File,
                retention: RetentionPolicy::Limits,
                duplicate_window: DUPLICATE_WINDOW,
                allow_direct: true,
                ..Config::default()
            };
            match js.create_stream(config).await {
                Ok(stream) => Ok(stream),
                // Someone else created it in between: use theirs.
                Err(e)
                    if matches!(e.kind(), CreateStreamErrorKind::JetStream(ref j)
                        if j.error_code() == ErrorCode::STREAM_NAME_EXIST) =>
                {
                    js.get_stream(&name)
                        .await
                        .map_err(BusError::from_nats("read the events stream"))
                }
                Err(e) => Err(BusError::from_nats("create the events stream")(e)),
            }
        }
        Err(e) => Err(BusError::from_nats("read the events stream")(e)),
    }
}

fn get_not_found(kind: GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

fn check_existing(stream: &Stream, ns: &Name) {
    let config = &stream.cached_info().config;
    let all = subject::all_events(ns);
    if !config.subjects.iter().any(|s| s == &all || s == ">") {
        tracing::warn!(
            stream = %config.name,
            subjects = ?config.subjects,
            "the events stream does not capture {all}: some events may not be kept"
        );
    }
    if config.duplicate_window < DUPLICATE_WINDOW {
        tracing::warn!(
            stream = %config.name,
            window = ?config.duplicate_window,
            "the events stream deduplicates for less than {DUPLICATE_WINDOW:?}"
        );
    }
}

/// The message at stream sequence `seq`, or `None` when there is none (deleted, purged, or
/// past the end). Uses a direct get when the stream allows it.
pub(crate) async fn message_at(
    stream: &Stream,
    seq: u64,
) -> Result<Option<StreamMessage>, BusError> {
    if stream.cached_info().config.allow_direct {
        match stream.direct_get(seq).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(BusError::from_nats("read a message of the events stream")(
                e,
            )),
        }
    } else {
        match stream.get_raw_message(seq).await {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(BusError::from_nats("read a message of the events stream")(
                e,
            )),
        }
    }
}

/// The `Roster-Seq` of the message at stream sequence `seq`: `None` when there is no message
/// there, an error when the message has no valid header.
pub(crate) async fn roster_seq_at(stream: &Stream, seq: u64) -> Result<Option<u64>, BusError> {
    match message_at(stream, seq).await? {
        None => Ok(None),
        Some(m) => {
            wire::roster_seq(Some(&m.headers))
                .map(Some)
                .ok_or_else(|| BusError::BadMessage {
                    stream: stream.cached_info().config.name.clone(),
                    stream_seq: seq,
                })
        }
    }
}

/// Deletes namespace `ns`'s events stream (a demo's or a benchmark's own, when it ends).
pub async fn delete_events_stream(client: &async_nats::Client, ns: &Name) -> Result<(), BusError> {
    let js = async_nats::jetstream::new(client.clone());
    js.delete_stream(subject::events_stream(ns))
        .await
        .map(drop)
        .map_err(BusError::from_nats("delete the events stream"))
}
