//! A guard that removes everything carrying one label: throwaway containers and volumes of the
//! escape suite and of tests, and their host directories and image tags.
//!
//! Cleanup must also happen when the work fails half-way or its future is dropped, and `Drop`
//! cannot await. So [`Sweep::run`] is the normal, awaited path (its errors are reported), and
//! `Drop` — when `run` did not happen — sweeps on a thread of its own with its own runtime and its
//! own engine connection (the caller's connection belongs to a runtime that may be the one being
//! dropped), and waits for it.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::container::{ListContainersOptions, RemoveContainerOptions};
use bollard::image::RemoveImageOptions;
use bollard::volume::ListVolumesOptions;
use bollard::Docker;

use crate::error::{is_not_found, SandboxError};

/// Removes every container and volume labelled `label` (`key=value`), and some directories, when
/// run or dropped.
#[derive(Debug)]
pub struct Sweep {
    label: String,
    dirs: Vec<PathBuf>,
    images: Vec<String>,
    armed: bool,
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// Containers removed.
    pub containers: usize,
    /// Volumes removed.
    pub volumes: usize,
}

impl Sweep {
    /// A guard for everything labelled `label` (`key=value`).
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            dirs: Vec::new(),
            images: Vec::new(),
            armed: true,
        }
    }

    /// The label this guard sweeps.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Also removes the directory tree at `dir`.
    pub fn dir(&mut self, dir: impl Into<PathBuf>) {
        self.dirs.push(dir.into());
    }

    /// Also removes the image tag `image` (after the containers that may use it).
    pub fn image(&mut self, image: impl Into<String>) {
        self.images.push(image.into());
    }

    /// Sweeps now, through `docker`'s connection, and disarms the guard.
    pub(crate) async fn run_with(mut self, docker: &Docker) -> Result<Swept, SandboxError> {
        self.armed = false;
        sweep(docker, &self.label, &self.dirs, &self.images).await
    }

    /// Sweeps now and disarms the guard; errors are returned, not swallowed.
    pub async fn run(self, engine: &crate::Engine) -> Result<Swept, SandboxError> {
        let docker = engine.docker.clone();
        self.run_with(&docker).await
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let label = std::mem::take(&mut self.label);
        let dirs = std::mem::take(&mut self.dirs);
        let images = std::mem::take(&mut self.images);
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let Ok(rt) = rt else { return };
            rt.block_on(async {
                let docker = match Docker::connect_with_local_defaults() {
                    Ok(d) => d.negotiate_version().await,
                    Err(e) => Err(e),
                };
                match docker {
                    Ok(d) => {
                        if let Err(e) = sweep(&d, &label, &dirs, &images).await {
                            tracing::warn!("sweeping {label}: {e}");
                        }
                    }
                    Err(e) => tracing::warn!("sweeping {label}: no engine: {e}"),
                }
            });
        });
        let _ = worker.join();
    }
}

/// Removes the containers, then the volumes, labelled `label`, then `images`, then `dirs`.
async fn sweep(
    docker: &Docker,
    label: &str,
    dirs: &[PathBuf],
    images: &[String],
) -> Result<Swept, SandboxError> {
    let filters = HashMap::from([("label".to_string(), vec![label.to_string()])]);
    let containers = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: filters.clone(),
            ..Default::default()
        }))
        .await
        .map_err(|e| SandboxError::engine(format!("listing containers labelled {label}"), e))?;
    let mut swept = Swept::default();
    let force = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    for c in containers {
        let id = c.id.unwrap_or_default();
        match docker.remove_container(&id, Some(force)).await {
            Ok(()) => swept.containers += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(SandboxError::engine(format!("removing container {id}"), e)),
        }
    }
    let volumes = docker
        .list_volumes(Some(ListVolumesOptions { filters }))
        .await
        .map_err(|e| SandboxError::engine(format!("listing volumes labelled {label}"), e))?;
    for v in volumes.volumes.unwrap_or_default() {
        match docker.remove_volume(&v.name, None).await {
            Ok(()) => swept.volumes += 1,
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(SandboxError::engine(
                    format!("removing volume {}", v.name),
                    e,
                ))
            }
        }
    }
    for image in images {
        let force = Some(RemoveImageOptions {
            force: true,
            noprune: false,
        });
        match docker.remove_image(image, force, None).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(SandboxError::engine(format!("removing image {image}"), e)),
        }
    }
    for dir in dirs {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SandboxError::io(format!("removing {}", dir.display()), e)),
        }
    }
    // Home disks whose files went with a directory (this one's, or a test's before) hold their
    // space until detached.
    let _ = tokio::task::spawn_blocking(crate::disk::detach_deleted).await;
    Ok(swept)
}
