//! roster's bus: every committed event fanned out to outside subscribers, and context messages
//! between agents — inside a team freely, across teams only through a share both opened.
//!
//! The only crate that names async-nats. Two implementations with the same semantics: NATS
//! (JetStream for events, core NATS for context) and the in-process bus, the embedded default.
//!
//! # Layout
//! - [`url`]: [`BusUrl`], the validated choice of bus (`memory`, `nats://HOST:PORT` or
//!   `tls://HOST:PORT`, with credentials and TLS files as options).
//! - [`secret`]: reading secret files (owner-only, or refused).
//! - [`subject`]: every subject and stream name roster uses, built only from validated names
//!   (`NS.events.TEAM.KIND`, `NS.ctx.TEAM.TOPIC`, `NS.tool.ACTION`, stream `NS_events`).
//! - [`connect`](mod@connect): [`connect()`] for the runtime (never fails because NATS is down)
//!   and [`connect_now`] for commands (a clear error after a timeout).
//! - [`wire`]: one event on NATS — the envelope's JSON, `Nats-Msg-Id`, `Roster-Seq`
//!   (documented in `docs/events.md`).
//! - [`stream`]: [`ensure_events_stream`], the JetStream stream `NS_events`.
//! - [`outbox`]: [`Outbox`], which publishes every committed event of a log from a store
//!   checkpoint, pipelined, through outages, reconciling with the stream at each start.
//! - [`events`]: [`EventSubscription`], an outside subscriber's view (ordered or durable).
//! - [`verify`]: [`verify::Checker`], what every message read from the stream must pass.
//! - [`ctx`]: [`CtxBus`], the carrier of context messages (in-process or core NATS) and
//!   [`ContextMessage`], what travels on `NS.ctx.TEAM.TOPIC`.
//! - [`baseline`]: raw NATS figures for `roster bench share` (request/reply round trip,
//!   pipelined JetStream publishing).
//! - [`server`]: [`NatsServer`], a real `nats-server` with JetStream started as a child process
//!   on a free port with its own store directory (tests, benchmarks, the demo); killed on drop.
//! - `error`: [`BusError`].
#![forbid(unsafe_code)]

pub mod baseline;
pub mod connect;
pub mod ctx;
mod error;
pub mod events;
pub mod outbox;
pub mod secret;
pub mod server;
pub mod stream;
pub mod subject;
pub mod tool;
pub mod url;
pub mod verify;
pub mod wire;

pub use connect::{connect, connect_now, is_connected};
pub use ctx::{ContextMessage, CtxBus, CtxError, TeamFeed};
pub use error::BusError;
pub use events::{Delivery, EventSubscription, Received, Refused, SubscribeOptions};
pub use outbox::{Outbox, OutboxConfig, OutboxStatus};
pub use server::{NatsServer, ServerError};
pub use stream::{delete_events_stream, ensure_events_stream};
pub use url::{Auth, BusUrl, BusUrlError, InboxPrefix, NatsUrl};

/// A connection to NATS (from [`connect()`] or [`connect_now`]); cheap to clone.
pub use async_nats::Client;
