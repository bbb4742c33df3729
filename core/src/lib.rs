//! # roster-core
//!
//! The pure domain core of roster: what a team is, what can happen to it, who may do what, and
//! how the log is chained. **No I/O**: no storage, network, containers, sockets or clock reads —
//! time and randomness are parameters, storage is a port ([`port::EventLog`]).
//!
//! # Layout
//! - [`id`]: typed UUID v7 ids (`team_…`, `agt_…`, `grt_…`) and the [`id::Entropy`] they are minted from.
//! - [`name`], [`topic`], [`time`]: validated names, texts, topics and timestamps.
//! - [`capability`]: `ACTION@RESOURCE,constraints`, matching, and [`capability::covers`]
//!   (`capability/`: `pattern.rs`, `request.rs`, `attenuation.rs`).
//! - [`event`], [`actor`], [`envelope`]: events v1, who caused them, and the hash chain.
//! - [`world`]: the projection, a pure fold over envelopes (`world/`: `entities.rs`, `apply.rs`).
//! - [`authz`]: `World::authorize`, the one authorization function.
//! - [`command`]: commands and [`command::decide`] (`command/`: `decide.rs`, `share.rs`, `ctx.rs`).
//! - [`port`]: the [`port::EventLog`] trait that `roster-store` implements.
//! - [`signed`]: signed heads — an ed25519 signature over a position of the chain and its
//!   hash, the byte encoding it covers, and how far heads cover a log ([`signed::Coverage`]).
//! - [`subscription`]: [`subscription::Subscription`], catch-up-then-live reading of any log.
//! - [`ledger`]: the one write path over that port ([`ledger::Ledger::execute`]: decide, append,
//!   fold) and the read-only [`ledger::Snapshot`] a reader holds instead.
//! - [`gateway`]: the agent-gateway protocol: typed requests, [`gateway::decode_request`], errors,
//!   and each method's typed answer ([`gateway::answer`]).
//! - [`tool`]: the tool-provider protocol: [`tool::ToolCall`], what a provider receives for one
//!   authorized action.
#![forbid(unsafe_code)]

/// The conversions every validated text newtype (`struct T(String)` with `T::parse(&str) ->
/// Result<T, E>`) shares: `FromStr` and `TryFrom<String>` go through `parse` (so serde's
/// `try_from = "String"` validates on the way in), `Display` is the text, `Debug` quotes it.
macro_rules! text_newtype {
    ($err:ty: $($t:ty),*) => {$(
        impl std::str::FromStr for $t {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, $err> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = $err;
            fn try_from(s: String) -> Result<Self, $err> {
                Self::parse(&s)
            }
        }

        impl From<$t> for String {
            fn from(n: $t) -> String {
                n.0
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }
    )*};
}

pub mod actor;
pub mod authz;
pub mod capability;
pub mod command;
pub mod envelope;
pub mod event;
pub mod gateway;
pub mod id;
pub mod ledger;
pub mod limits;
pub mod name;
pub mod port;
pub mod refs;
mod rules;
pub mod signed;
pub mod subscription;
pub mod time;
pub mod tool;
pub mod topic;
pub mod world;

/// The image an agent runs when none is named: the minimal base image the runtime builds itself
/// (a static busybox and `roster-agent`), so nothing depends on a registry.
pub const BASE_IMAGE: &str = "roster/agent-base:1";
