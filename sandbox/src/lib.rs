//! # roster-sandbox
//!
//! Hardened per-agent Docker containers. This is the only crate that names bollard.
//!
//! [`plan`] turns an agent's recorded spec into the exact container configuration the engine will
//! be given, with every hardening default of DESIGN.md ("Sandbox") switched on and nothing an
//! agent or an image can widen. [`Engine`] talks to the engine: it builds the base image without
//! any registry, keeps each agent's home volume, creates containers only after the [`policy`]
//! checks pass, and reports deaths (OOM kills included) from the engine's event stream. [`verify`]
//! is the escape suite: checks run inside a real agent container, each asserting a denial.
//!
//! # Layout
//! - [`plan`]: `ContainerPlan` — names, labels, mounts, limits and flags of one agent's container.
//! - [`policy`]: `check_config` (exactly a plan's mounts and flags) and `check_image` (no
//!   `VOLUME`, no `roster.*` labels) — the refusals before anything is created.
//! - [`engine`]: [`Engine`] — connection, namespace, runtimes (`runc`, `runsc`); re-exports the
//!   types of its answers.
//! - `error.rs`: [`SandboxError`] — one sentence per cause an operator can act on.
//! - [`image`]: the base image from an in-memory tar context (`FROM scratch`, static busybox,
//!   `roster-agent`), rebuilt only when its inputs change; the static-ELF check.
//! - `home.rs`: home volumes — create, give to the agent's own host uid, remove.
//! - [`disk`]: `Disks` — each home an ext4 filesystem of its own size on a loop device, so
//!   that its bytes and files are bounded.
//! - [`lease`]: `Lease` — which data directory's daemon holds a namespace, a labelled volume
//!   on the engine.
//! - [`uid`]: `AgentUid` — each agent's host uid, from a range no host account uses, registered
//!   on the engine across namespaces.
//! - `lifecycle.rs`: create (after every check), start, stop, remove, inspect, list.
//! - [`state`]: `ContainerState`, `Found` — the engine's answers in roster's types.
//! - [`events`]: `EngineEvent` (started; died, with its exit code and whether the OOM killer
//!   acted) from the engine's event stream, and the pure [`events::stop_reason`].
//! - `exec.rs`: exec with bounded capture, and logs.
//! - `baseline.rs`: `Engine::raw_create_and_start`, the raw baseline of `roster bench hire`.
//! - [`sweep`]: `Sweep`, a guard removing every container and volume with a label (and scratch
//!   directories and image tags), also on error or when dropped.
//! - [`verify`]: the escape suite, `run_suite` → one [`verify::Check`] per boundary
//!   (`verify/checks.rs`: the scripts run inside the container and how they are judged).
#![forbid(unsafe_code)]

mod baseline;
pub mod disk;
pub mod engine;
mod error;
pub mod events;
mod exec;
mod home;
pub mod image;
pub mod lease;
mod lifecycle;
pub mod plan;
pub mod policy;
pub mod state;
pub mod sweep;
pub mod uid;
pub mod verify;

pub use engine::Engine;
pub use error::SandboxError;
pub use events::{oom_made_death, stop_reason, EngineEvent};
pub use exec::{ExecOutput, LogChunk, OutputStream, EXEC_CAPTURE};
pub use home::{Home, PREP_LABEL};
pub use image::{not_static, BaseImage, DIGEST_LABEL};
pub use state::{BadAgentLabel, ContainerState, ContainerStatus, Found};
