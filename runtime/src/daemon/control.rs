//! What operator commands ask of the containers, run by the daemon that owns them. Commands call
//! these from a blocking thread; each runs its async part on the daemon's runtime.

use futures_util::StreamExt;
use roster_core::actor::Actor;
use roster_core::event::StopReason;
use roster_core::id::AgentId;
use roster_core::name::Name;
use roster_core::world::Agent;
use roster_sandbox::{ContainerState, OutputStream, SandboxError};

use super::policy::Run;
use super::{supervisor, Daemon};
use crate::admin::{Item, Reply, Stream};
use crate::error::{ControlError, SupervisorError};

impl Daemon {
    /// The agent, if it is known and not retired.
    fn live(&self, agent: AgentId) -> Result<Agent, ControlError> {
        match self.read(|app| app.world().agent(agent).cloned())? {
            Some(a) if !a.is_retired() => Ok(a),
            Some(_) => Err(ControlError::Retired(agent)),
            None => Err(ControlError::Unknown(agent)),
        }
    }

    /// Stops `agent` on `operator`'s request; it stays stopped until `start`.
    pub fn stop_agent(&self, agent: AgentId, operator: Name) -> Result<(), ControlError> {
        self.live(agent)?;
        let d = self.arc()?;
        let operator = Actor::Operator(operator);
        let sup = self.sup.clone();
        self.rt.block_on(async move {
            supervisor::stop(&d, &sup, agent, StopReason::Requested, operator).await
        })?;
        Ok(())
    }

    /// Starts `agent` (again) now.
    pub fn start_agent(&self, agent: AgentId) -> Result<(), ControlError> {
        let known = self.live(agent)?;
        // (Up while the log says stopped: a stop not carried out yet, which `start` finishes.)
        if known.wants_running() && self.sup.slots().get(&agent).is_some_and(|s| s.run.is_up()) {
            return Err(ControlError::AlreadyRunning(agent));
        }
        let d = self.arc()?;
        let sup = self.sup.clone();
        {
            // An operator's start forgets the backoff of earlier crashes.
            let mut slots = self.sup.slots();
            let slot = slots.entry(agent).or_default();
            slot.failures = 0;
            if let Run::Down { retry } = &mut slot.run {
                *retry = None;
            }
        }
        self.rt
            .block_on(async move { supervisor::start(&d, &sup, agent, true).await })?;
        Ok(())
    }

    /// Refuses a spec no container could be made from here (a runtime the engine lacks or runs
    /// without limits, a missing or widening image), so that a hire that could never start is
    /// refused before it is recorded; so is a home disk of `disk` that does not fit.
    pub fn admit(
        &self,
        spec: &roster_core::event::AgentSpec,
        disk: roster_core::limits::DiskMib,
    ) -> Result<(), ControlError> {
        let sup = self.sup.clone();
        let spec = spec.clone();
        self.rt
            .block_on(async move { sup.engine.admit(&spec, disk.get()).await })
            .map_err(|e| match e {
                // What the operator asked for cannot be made here: bad input.
                SandboxError::ImageMissing { .. }
                | SandboxError::ImageRefused { .. }
                | SandboxError::RuntimeMissing { .. }
                | SandboxError::RuntimeUnconfined { .. }
                | SandboxError::TooBig { .. } => ControlError::Unfit(e),
                // The engine failed: not the request's fault.
                other => ControlError::Engine(other),
            })
    }

    /// Why the supervisor's last start of `agent` failed, while none has succeeded since.
    pub fn start_error(&self, agent: AgentId) -> Option<String> {
        self.sup
            .slots()
            .get(&agent)
            .and_then(|s| s.start_error.clone())
    }

    /// What the engine says of `agent`'s container.
    pub fn container(&self, agent: AgentId) -> Result<Option<ContainerState>, ControlError> {
        let sup = self.sup.clone();
        self.rt
            .block_on(async move { sup.engine.inspect(agent).await })
            .map_err(ControlError::Engine)
    }

    /// Prints `agent`'s container output; with `follow`, until the container stops or the
    /// reader leaves.
    pub fn logs(
        &self,
        agent: AgentId,
        follow: bool,
        tail: Option<u32>,
        out: &Reply,
    ) -> Result<(), ControlError> {
        let sup = self.sup.clone();
        self.rt.block_on(async move {
            let mut logs = Box::pin(sup.engine.logs(agent, follow, tail));
            loop {
                // A quiet container sends nothing for long: look every second whether the
                // reader is still there.
                let chunk = tokio::select! {
                    c = logs.next() => c,
                    () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
                        if out.gone() {
                            break;
                        }
                        continue;
                    }
                };
                let Some(chunk) = chunk else { break };
                let chunk = chunk.map_err(ControlError::Engine)?;
                let stream = match chunk.stream {
                    OutputStream::Stderr => Stream::Err,
                    _ => Stream::Out,
                };
                let text = String::from_utf8_lossy(&chunk.bytes).into_owned();
                // Sending to a remote client blocks on a bounded channel: not on a worker.
                let out = out.clone();
                tokio::task::spawn_blocking(move || out.send(Item::Output { stream, text }))
                    .await
                    .map_err(SupervisorError::from)??;
            }
            Ok(())
        })
    }

    /// Runs `command` in `agent`'s container as the agent's user; returns its exit code.
    pub fn exec(
        &self,
        agent: AgentId,
        command: Vec<String>,
        out: &Reply,
    ) -> Result<i64, ControlError> {
        self.live(agent)?;
        let sup = self.sup.clone();
        let result = self
            .rt
            .block_on(async move { sup.engine.exec(agent, command).await })
            .map_err(ControlError::Engine)?;
        for (stream, text) in [
            (Stream::Out, result.stdout_text()),
            (Stream::Err, result.stderr_text()),
        ] {
            if !text.is_empty() {
                out.send(Item::Output { stream, text })?;
            }
        }
        if result.truncated {
            out.note("(output cut at 1 MiB per stream)")?;
        }
        // No exit code from the engine: say so rather than guess success.
        result.exit_code.ok_or(ControlError::NoExitCode)
    }

    /// Deletes a retired agent's container, home volume and gateway directory.
    pub fn purge(&self, agent: AgentId) -> Result<(), ControlError> {
        let d = self.arc()?;
        let sup = self.sup.clone();
        self.rt
            .block_on(async move { supervisor::purge(&d, &sup, agent).await })
    }
}
