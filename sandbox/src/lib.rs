//! # roster-sandbox
//!
//! Hardened per-agent Docker containers. This is the only crate that names bollard.
//!
//! So far it holds the part of the sandbox that needs no engine: [`plan`] turns an agent's
//! recorded spec into the exact container configuration the engine will be given, with every
//! hardening default of DESIGN.md ("Sandbox") switched on and nothing an agent or an image can
//! widen. Talking to the engine (images, volumes, lifecycle, the escape suite) builds on it.
//!
//! # Layout
//! - [`plan`]: `ContainerPlan` — names, labels, mounts, limits and flags of one agent's container.
#![forbid(unsafe_code)]

pub mod plan;
