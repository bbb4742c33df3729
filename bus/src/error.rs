//! [`BusError`]: everything that can go wrong in this crate, in one enum (callers branch on
//! [`BusError::Unreachable`], [`BusError::DurableMismatch`] and [`BusError::ForeignStream`]; the
//! rest they report).

use roster_core::port::LogError;

/// A boxed error from async-nats (its error types are many and generic; the message is what
/// matters to an operator).
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// A NATS operation was asked of the in-process bus.
    #[error("the bus is `memory`: this needs a NATS bus (nats://HOST:PORT or tls://HOST:PORT)")]
    NotNats,
    /// The server could not be reached in time.
    #[error("cannot reach NATS at {url}: {why}")]
    Unreachable {
        /// The bus URL, shown whole: it holds file paths, no secret.
        url: String,
        /// What failed.
        why: String,
    },
    /// The server refused roster's credentials or its TLS handshake failed: retrying will not
    /// help until the configuration changes.
    #[error("NATS at {url}: {why}")]
    Refused {
        /// The bus URL, shown whole: it holds file paths, no secret.
        url: String,
        /// What was refused, and what to check.
        why: String,
    },
    /// A file holding a NATS secret could not be used (unreadable, open to others, malformed).
    #[error(transparent)]
    Secret(#[from] crate::secret::SecretError),
    /// A NATS or JetStream request failed (the connection dropped, a request timed out, the
    /// server refused).
    #[error("NATS: cannot {op}: {source}")]
    Nats {
        /// What was being done.
        op: &'static str,
        /// async-nats's error.
        #[source]
        source: Source,
    },
    /// A durable subscription of this name exists with another filter: resuming it would
    /// deliver other events than asked for.
    #[error(
        "durable subscription `{name}` exists with filter `{has}`, not `{wants}`: resume it with \
         the same --team and --type as before, or choose another --durable name"
    )]
    DurableMismatch {
        /// The durable's name.
        name: String,
        /// Its filter on the server.
        has: String,
        /// The filter asked for now.
        wants: String,
    },
    /// The durable subscription vanished from the server while it was read (deleted, or lost
    /// with a server that lost its JetStream store): its position is gone with it.
    #[error(
        "durable subscription `{name}` no longer exists on the server (deleted, or the server \
         lost its JetStream store): its position is lost; subscribe again to start it anew \
         (from the beginning, or --from a position)"
    )]
    DurableGone {
        /// The durable's name.
        name: String,
    },
    /// The events stream holds events this log did not write (another data directory publishes
    /// to the same namespace); the outbox publishes nothing into it.
    #[error("stream `{stream}` does not hold this log's events: {why}; give each data directory its own namespace")]
    ForeignStream {
        /// The stream.
        stream: String,
        /// What did not match.
        why: String,
    },
    /// An event was not stored right after the event before it: JetStream refused the publish
    /// because the stream's last message was another (a publish lost on a reconnect, another
    /// publisher), or acknowledged it as a duplicate stored elsewhere (the stream was purged or
    /// changed within its duplicate window). The outbox reconciles with the stream and goes on
    /// from its last event; the stream never holds an event after a later one.
    #[error(
        "event {seq} was not stored right after the event before it in the events stream: {why}"
    )]
    OutOfStep {
        /// The event's position.
        seq: u64,
        /// What the server said.
        why: String,
    },
    /// A message of the events stream lacks a valid `Roster-Seq` header (something other than
    /// the outbox published on the namespace's event subjects).
    #[error("message {stream_seq} of stream `{stream}` has no valid Roster-Seq header")]
    BadMessage {
        /// The stream.
        stream: String,
        /// Its stream sequence.
        stream_seq: u64,
    },
    /// An event's team has no `TeamCreated` event at version 1, so it has no name for a subject.
    #[error("event {seq}: its team {team} has no TeamCreated event at version 1")]
    UnnamedTeam {
        /// The event's position.
        seq: u64,
        /// Its team id.
        team: String,
    },
    /// An envelope could not be encoded as JSON.
    #[error("cannot encode event {seq} as JSON: {source}")]
    Encode {
        /// Its position.
        seq: u64,
        /// serde_json's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// An event kind that does not exist.
    #[error("`{0}` is not an event kind (one of: TeamCreated, AgentHired, …; see docs/events.md)")]
    UnknownKind(String),
    /// The event log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The outbox was stopped (or its task ended) before what was waited for happened, or a
    /// subscription's message stream ended.
    #[error("stopped: the outbox or the subscription ended")]
    Stopped,
}

impl BusError {
    /// A [`BusError::Nats`] for `op`.
    pub(crate) fn nats(op: &'static str) -> impl FnOnce(Source) -> BusError {
        move |source| BusError::Nats { op, source }
    }

    /// Wraps any async-nats error as [`BusError::Nats`].
    pub(crate) fn from_nats<E>(op: &'static str) -> impl FnOnce(E) -> BusError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |e| BusError::Nats {
            op,
            source: Box::new(e),
        }
    }
}
