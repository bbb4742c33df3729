//! The supervisor's port to a container engine: the few things it asks of one. The Docker
//! engine (`roster_sandbox::Engine`) is the one a daemon runs with; the supervisor's
//! simulation (`daemon::sim`) drives the same supervisor code against a simulated engine whose
//! answers it delays, reorders and fails at will.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use roster_core::event::AgentSpec;
use roster_core::id::{AgentId, TeamId};
use roster_core::name::Name;
use roster_core::time::Timestamp;
use roster_sandbox::plan::ContainerPlan;
use roster_sandbox::{
    ContainerState, Engine, EngineEvent, ExecOutput, Found, Home, LogChunk, SandboxError,
};

/// An answer of the engine, later.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, SandboxError>> + Send + 'a>>;

/// What the supervisor asks of a container engine, for this namespace's agents.
pub trait Containers: Send + Sync + std::fmt::Debug + 'static {
    /// The namespace.
    fn ns(&self) -> &Name;
    /// Fails unless the engine accepts a new connection now: one shutting down has closed its
    /// listener while it still stops its containers and reports their deaths.
    fn accepting(&self) -> Answer<'_, ()>;
    /// Every container of the namespace.
    fn list(&self) -> Answer<'_, Vec<Found>>;
    /// The agent's container, if it has one.
    fn inspect(&self, agent: AgentId) -> Answer<'_, Option<ContainerState>>;
    /// Makes sure the agent has a home owned by a host uid of its own — a new one a disk of
    /// `disk_mib` MiB where the engine has disks; both.
    fn home<'a>(&'a self, team: &'a TeamId, agent: AgentId, disk_mib: u32) -> Answer<'a, Home>;
    /// Creates the agent's container from its plan (its home ready); its id.
    fn create<'a>(&'a self, plan: &'a ContainerPlan) -> Answer<'a, String>;
    /// Starts the agent's container.
    fn start(&self, agent: AgentId) -> Answer<'_, ()>;
    /// Stops it: SIGTERM, `grace`, SIGKILL. A stopped or missing one is stopped.
    fn stop(&self, agent: AgentId, grace: Duration) -> Answer<'_, ()>;
    /// Removes it, killing it if it runs; its home stays. A missing one is removed.
    fn remove(&self, agent: AgentId) -> Answer<'_, ()>;
    /// Removes a container of the namespace by name.
    fn remove_container<'a>(&'a self, name: &'a str) -> Answer<'a, ()>;
    /// Removes the agent's home volume.
    fn remove_home(&self, agent: AgentId) -> Answer<'_, ()>;
    /// The namespace's container starts and deaths from `since`; the stream ends when the
    /// engine goes away.
    fn events_since(
        &self,
        since: Timestamp,
    ) -> BoxStream<'static, Result<EngineEvent, SandboxError>>;
    /// Fails unless a container of `spec`, and a home disk of `disk_mib` MiB, could be made
    /// here.
    fn admit<'a>(&'a self, spec: &'a AgentSpec, disk_mib: u32) -> Answer<'a, ()>;
    /// Runs `cmd` in the agent's running container as the agent, and waits for it.
    fn exec(&self, agent: AgentId, cmd: Vec<String>) -> Answer<'_, ExecOutput>;
    /// The container's output: the last `tail` lines, then with `follow` what it prints.
    fn logs(
        &self,
        agent: AgentId,
        follow: bool,
        tail: Option<u32>,
    ) -> BoxStream<'static, Result<LogChunk, SandboxError>>;
}

impl Containers for Engine {
    fn ns(&self) -> &Name {
        Engine::ns(self)
    }
    fn accepting(&self) -> Answer<'_, ()> {
        Box::pin(Engine::accepting(self))
    }
    fn list(&self) -> Answer<'_, Vec<Found>> {
        Box::pin(Engine::list(self))
    }
    fn inspect(&self, agent: AgentId) -> Answer<'_, Option<ContainerState>> {
        Box::pin(Engine::inspect(self, agent))
    }
    fn home<'a>(&'a self, team: &'a TeamId, agent: AgentId, disk_mib: u32) -> Answer<'a, Home> {
        Box::pin(async move { Engine::home(self, team, agent, &HashMap::new(), disk_mib).await })
    }
    fn create<'a>(&'a self, plan: &'a ContainerPlan) -> Answer<'a, String> {
        Box::pin(Engine::create(self, plan))
    }
    fn start(&self, agent: AgentId) -> Answer<'_, ()> {
        Box::pin(Engine::start(self, agent))
    }
    fn stop(&self, agent: AgentId, grace: Duration) -> Answer<'_, ()> {
        Box::pin(Engine::stop(self, agent, grace))
    }
    fn remove(&self, agent: AgentId) -> Answer<'_, ()> {
        Box::pin(Engine::remove(self, agent))
    }
    fn remove_container<'a>(&'a self, name: &'a str) -> Answer<'a, ()> {
        Box::pin(Engine::remove_container(self, name))
    }
    fn remove_home(&self, agent: AgentId) -> Answer<'_, ()> {
        Box::pin(Engine::remove_home(self, agent))
    }
    fn events_since(
        &self,
        since: Timestamp,
    ) -> BoxStream<'static, Result<EngineEvent, SandboxError>> {
        Engine::events_since(self, since).boxed()
    }
    fn admit<'a>(&'a self, spec: &'a AgentSpec, disk_mib: u32) -> Answer<'a, ()> {
        Box::pin(Engine::admit(self, spec, disk_mib))
    }
    fn exec(&self, agent: AgentId, cmd: Vec<String>) -> Answer<'_, ExecOutput> {
        Box::pin(Engine::exec(self, agent, cmd, None))
    }
    fn logs(
        &self,
        agent: AgentId,
        follow: bool,
        tail: Option<u32>,
    ) -> BoxStream<'static, Result<LogChunk, SandboxError>> {
        Engine::logs(self, agent, follow, tail).boxed()
    }
}
