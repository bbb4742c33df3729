//! roster's bus: every committed event fanned out to outside subscribers, and context messages
//! between agents — inside a team freely, across teams only through a share both opened.
//!
//! The only crate that names async-nats. Two implementations with the same semantics: NATS
//! (JetStream for events, core NATS for context) and the in-process bus, the embedded default.
//!
//! # Layout
//! - [`url`]: [`BusUrl`], the validated choice of bus (`memory` or `nats://HOST:PORT`).
//! - [`subject`]: every subject and stream name roster uses, built only from validated names
//!   (`NS.events.TEAM.KIND`, `NS.ctx.TEAM.TOPIC`, `NS.tool.ACTION`, stream `NS_events`).
//! - [`ctx`]: [`CtxBus`], the carrier of context messages (in-process or core NATS) and
//!   [`ContextMessage`], what travels on `NS.ctx.TEAM.TOPIC`.
//! - [`server`]: [`NatsServer`], a real `nats-server` with JetStream started as a child process
//!   on a free port with its own store directory (tests, benchmarks, the demo); killed on drop.

pub mod ctx;
pub mod server;
pub mod subject;
pub mod url;

pub use ctx::{ContextMessage, CtxBus, Delivery, TeamFeed};
pub use server::{NatsServer, ServerError};
pub use url::{BusUrl, BusUrlError};
