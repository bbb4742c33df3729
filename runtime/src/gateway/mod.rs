//! The agent gateway: one Unix socket per agent, the agent's only channel to the runtime.
//!
//! The socket *is* the identity. The daemon binds one per agent in a directory that only that
//! agent's container mounts (at `/run/roster`), so every request arriving on it is that agent's;
//! nothing secret ever enters the container. The protocol (newline-delimited JSON, typed errors)
//! is `roster_core::gateway`; this module is the I/O around it.
//!
//! # Layout
//! - [`Backend`]: what the server asks for each decoded call. The daemon implements it over its
//!   world and log; the server never touches either.
//! - `answer`: the read-only answers (`whoami`, `grants`, `history`, `shares`) as functions of
//!   the world and the log, for the daemon's backend to call. Every answer is a type of
//!   `roster_core::gateway::answer`; the gateway encodes it with `encode_response`.
//! - `server`: [`serve_agent`] binds an agent's socket and runs its accept loop; the returned
//!   [`AgentGateway`] stops it and removes the socket.
//! - `conn`: one connection — reading lines under a hard size cap and a time limit, the
//!   per-agent token bucket, answering in request order, room reserved for each answer first.
//! - `out`: a connection's writing side — one writer task, a queue bounded in bytes per
//!   connection and per agent, a peer that reads nothing hung up on, freed memory handed back.
//! - `fair`: every agent's calls that need the blocking pool are admitted one per core at a
//!   time, the agent that used the runtime least lately first (start-time fair queueing).
//!
//! # Why it cannot be used against the runtime or another agent
//! Every line is decoded into validated types or answered with a typed error, and the
//! connection goes on; no line may make the server hold more than [`MAX_LINE`] + 1 bytes of it,
//! nor for longer than the line timeout once it has begun. Each agent has its own accept loop,
//! its own connection cap, its own token bucket and its own byte budget for answers, so an
//! agent that floods slows only itself: it is rate-limited, then not read for a while, so its
//! own socket buffer fills and its writes block; one that asks and never reads is not read
//! either, once its budget is taken (see [`Limits`]). What the runtime holds for an agent is so
//! bounded whatever it sends: measured in `cli/tests/gateway_memory.rs`. What it is served waits behind every quieter
//! agent's calls: reads of the world are answered on the connection's task in microseconds, and
//! a connection with many requests waiting yields its worker after a short turn; everything else
//! runs on the blocking pool in the order `fair` gives.
//!
//! # Pushed messages
//! After `subscribe` answers, the agent also receives lines it did not ask for: `{"push":{…}}`
//! (no `id`). Each connection has one writer task fed by a queue bounded in bytes; responses (in
//! request order) and every subscription's pushes go through it, so an agent that stops reading stalls
//! only its own connection, and what a subscription cannot deliver in time is dropped and
//! counted (the backend's side; see [`Pushes`]).
//!
//! [`MAX_LINE`]: roster_core::gateway::MAX_LINE

pub mod answer;
mod conn;
mod fair;
#[cfg(test)]
mod fuzz;
mod out;
mod server;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use roster_core::gateway::answer::{Answer, Performed, Subscribed};
use roster_core::gateway::{ActParams, Call, GatewayError, SubscribeParams};
use roster_core::id::AgentId;

pub use server::{serve_agent, Access, AgentGateway, Limits, SOCKET_NAME};

/// What the gateway asks the runtime for each call an agent makes.
///
/// Separate from the server so that the server knows nothing about the world, the log or
/// `decide`: the daemon implements it over its state, tests over a real in-memory log. `call`
/// may block (read the log, wait for an append); the server runs it on tokio's blocking pool,
/// so a slow answer to one agent never holds up the sockets of another. What needs no waiting
/// the backend may answer in `call_now`, on the connection's own task.
pub trait Backend: Send + Sync + 'static {
    /// Answers `call`, made by `agent` (the owner of the socket it came through).
    fn call(&self, agent: AgentId, call: Call) -> Reply;

    /// Answers `call` right away if that takes no waiting — a read of state nobody is changing
    /// at the moment — or says `None`, and [`call`](Backend::call) answers it on the blocking
    /// pool. Run on the connection's own task: it must never block (no waiting for a lock, no
    /// I/O), and costs microseconds, so the answer to a `whoami` takes no thread hand-off. The
    /// default answers nothing now.
    fn call_now(&self, agent: AgentId, call: &Call) -> Option<Reply> {
        let _ = (agent, call);
        None
    }

    /// Answers `act` for `agent`. A future, awaited on the connection's own task: an `act`
    /// may wait for a human for up to an hour, and must hold no thread meanwhile. `hung_up`
    /// resolves when the agent closes the connection: a wait for an approval ends then (the
    /// agent gave up; nothing is carried out for nobody). The default refuses.
    fn act(&self, agent: AgentId, params: ActParams, hung_up: HungUp) -> ActAnswer {
        let _ = (agent, params, hung_up);
        Box::pin(std::future::ready(Err(GatewayError::new(
            roster_core::gateway::ErrorCode::UnknownMethod,
            "`act` is not served here",
        ))))
    }

    /// Starts a subscription for `agent`: the answer to send, and the pushes to forward (each
    /// becomes one `{"push":…}` line) until the connection closes. The default refuses.
    fn subscribe(
        &self,
        agent: AgentId,
        params: SubscribeParams,
    ) -> Result<(Subscribed, Pushes), GatewayError> {
        let _ = (agent, params);
        Err(GatewayError::new(
            roster_core::gateway::ErrorCode::UnknownMethod,
            "`subscribe` is not served here",
        ))
    }
}

/// The answer to a call: typed, so that what an agent reads is what `docs/gateway.md` is
/// checked against, and encoded only by the gateway.
pub type Reply = Result<Answer, GatewayError>;

/// Resolves (with `Ok` or `Err`) when an agent hangs up while its `act` is under way.
pub type HungUp = tokio::sync::oneshot::Receiver<()>;

/// The answer to an `act`, to be awaited: it may wait for a human, on the connection's task.
pub type ActAnswer =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Performed, GatewayError>> + Send>>;

/// What a subscription pushes to its connection. Bounded: the backend must not wait on a slow
/// agent (it drops and counts instead, and says so in a later push).
pub type Pushes = tokio::sync::mpsc::Receiver<std::sync::Arc<serde_json::Value>>;
