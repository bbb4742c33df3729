//! The raw baseline of `roster bench hire`: a container created and started straight through
//! the engine's API, with the very configuration a plan holds — none of roster's checks, no home
//! preparation (the engine makes the named volume itself), nothing recorded. Its containers are
//! not agents: each runs as a uid of the range's top, which no agent is given
//! ([`crate::uid::baseline`]). Kept here because only this crate names bollard.

use bollard::container::{CreateContainerOptions, StartContainerOptions};

use crate::engine::Engine;
use crate::error::SandboxError;
use crate::plan::ContainerPlan;

impl Engine {
    /// Creates and starts `plan`'s container directly; the caller removes it.
    pub async fn raw_create_and_start(&self, plan: &ContainerPlan) -> Result<(), SandboxError> {
        let options = CreateContainerOptions {
            name: plan.name.clone(),
            platform: None,
        };
        self.docker
            .create_container(Some(options), plan.config.clone())
            .await
            .map_err(|e| SandboxError::engine(format!("creating {}", plan.name), e))?;
        self.docker
            .start_container(&plan.name, None::<StartContainerOptions<String>>)
            .await
            .map_err(|e| SandboxError::engine(format!("starting {}", plan.name), e))
    }
}
