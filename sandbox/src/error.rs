//! What can go wrong between roster and the container engine.
//!
//! One enum for the crate: callers branch on a few causes (the engine is not there, an image or a
//! runtime is missing, a refusal) and print the rest. Every message is one sentence an operator
//! can act on; an engine error names what roster was doing when it happened.

use std::path::PathBuf;

use crate::plan::PlanError;

/// Why a sandbox operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// Nothing answers on the engine's socket.
    #[error("no Docker engine answers at {at}: start dockerd (scripts/setup does it on Debian)")]
    EngineUnreachable {
        /// Where roster looked for the engine.
        at: String,
        /// What the client saw.
        #[source]
        source: bollard::errors::Error,
    },
    /// An image an agent needs is not on this engine; roster never pulls.
    #[error("image {image} is not on this engine, and roster never pulls: build or load it first")]
    ImageMissing {
        /// The image reference.
        image: String,
    },
    /// An agent asked for a container runtime the engine does not have.
    #[error(
        "the engine has no `{runtime}` runtime (it has: {known}): install it and register it in \
         /etc/docker/daemon.json (scripts/setup does it where runsc is installed)"
    )]
    RuntimeMissing {
        /// The runtime asked for.
        runtime: String,
        /// The runtimes the engine has, comma-separated.
        known: String,
    },
    /// An agent asks for more than its host has: the engine would refuse its container.
    #[error("the agent asks for {what}; this host has {host}")]
    TooBig {
        /// What it asks for.
        what: String,
        /// What the host has.
        host: String,
    },
    /// The runtime is registered so that the container's cgroup does not hold it.
    #[error(
        "the engine runs {runtime} with --ignore-cgroups, so an agent's memory and CPU limits \
         would not apply: register it without that flag in /etc/docker/daemon.json (scripts/setup \
         does it where gVisor can use cgroups)"
    )]
    RuntimeUnconfined {
        /// The runtime.
        runtime: String,
    },
    /// A binary that goes into images with no libc is dynamically linked (or not ELF at all).
    #[error(
        "{path} is not a static executable ({why}): images may have no libc, so it must be \
         built with -C target-feature=+crt-static"
    )]
    NotStatic {
        /// The binary.
        path: PathBuf,
        /// What was found instead.
        why: String,
    },
    /// An image declares something that would widen an agent's sandbox.
    #[error("image {image} cannot run an agent: {why}")]
    ImageRefused {
        /// The image reference.
        image: String,
        /// What it declares.
        why: String,
    },
    /// A plan could not be made (a host path an agent must not see).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The final container configuration is not the hardened one; nothing was created.
    #[error("refusing to create {container}: {why}")]
    ConfigRefused {
        /// The container's name.
        container: String,
        /// What is wrong with its configuration.
        why: String,
    },
    /// An agent's container does not exist.
    #[error("container {container} does not exist")]
    NoContainer {
        /// The container's name.
        container: String,
    },
    /// An agent's container exists already (a reconcile adopts or removes it first).
    #[error("container {container} exists already")]
    Exists {
        /// The container's name.
        container: String,
    },
    /// A container roster was asked to touch is not labelled with its namespace.
    #[error("container {container} is not one of namespace {ns}'s: roster leaves it alone")]
    NotOurs {
        /// The container's name.
        container: String,
        /// This engine's namespace.
        ns: String,
    },
    /// An operation that needs a running container found it stopped.
    #[error("container {container} is not running")]
    NotRunning {
        /// The container's name.
        container: String,
    },
    /// The engine could not build the base image.
    #[error("building {image} failed: {message}")]
    Build {
        /// The image being built.
        image: String,
        /// The builder's last words.
        message: String,
    },
    /// Preparing a new home volume's ownership failed.
    #[error("preparing home volume {volume} failed: {why}")]
    HomePrep {
        /// The volume.
        volume: String,
        /// What happened.
        why: String,
    },
    /// An agent's home disk could not be made or attached.
    #[error("home disk {volume}: {why}")]
    HomeDisk {
        /// The home volume.
        volume: String,
        /// What happened.
        why: String,
    },
    /// Something took longer than roster waits for it.
    #[error("{doing} took longer than {secs} s")]
    Timeout {
        /// What roster was doing.
        doing: String,
        /// How long it waited.
        secs: u64,
    },
    /// The engine answered with an error.
    #[error("{doing}: {source}")]
    Engine {
        /// What roster was doing.
        doing: String,
        /// The engine's answer.
        #[source]
        source: bollard::errors::Error,
    },
    /// A host file operation failed.
    #[error("{doing}: {source}")]
    Io {
        /// What roster was doing.
        doing: String,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    /// An engine error, with what roster was doing.
    pub(crate) fn engine(doing: impl Into<String>, source: bollard::errors::Error) -> Self {
        Self::Engine {
            doing: doing.into(),
            source,
        }
    }

    /// A host I/O error, with what roster was doing.
    pub(crate) fn io(doing: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            doing: doing.into(),
            source,
        }
    }
}

/// The HTTP status of an engine answer, if it was one.
pub(crate) fn status(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Whether the engine said "no such object".
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    status(e) == Some(404)
}
