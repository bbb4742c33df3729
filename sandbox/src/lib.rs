//! # roster-sandbox
//!
//! Hardened per-agent Docker containers. This is the only crate that names bollard.
//!
//! [`plan`] turns an agent's recorded spec into the exact container configuration the engine will
//! be given, with every hardening default of DESIGN.md ("Sandbox") switched on and nothing an
//! agent or an image can widen. [`Engine`] talks to the engine; so far it connects, knows its
//! runtimes and builds the base image without any registry.
//!
//! # Layout
//! - [`plan`]: `ContainerPlan` — names, labels, mounts, limits and flags of one agent's container.
//! - [`engine`]: [`Engine`] — connection, namespace, runtimes (`runc`, `runsc`).
//! - `error.rs`: [`SandboxError`] — one sentence per cause an operator can act on.
//! - [`image`]: the base image from an in-memory tar context (`FROM scratch`, static busybox,
//!   `roster-agent`), rebuilt only when its inputs change; the static-ELF check.
//! - [`sweep`]: `Sweep`, a guard removing every container and volume with a label (and scratch
//!   directories and image tags), also on error or when dropped.
#![forbid(unsafe_code)]

pub mod engine;
mod error;
pub mod image;
pub mod plan;
pub mod sweep;

pub use engine::Engine;
pub use error::SandboxError;
pub use image::{not_static, BaseImage, DIGEST_LABEL};
