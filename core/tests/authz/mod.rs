//! The machinery of `authz_props.rs`.
//!
//! - [`scenario`]: what a generated case is — leads' root grants and a command sequence.
//! - [`model`]: what authorization should answer, computed from the events alone.
//! - [`run`]: plays a scenario through `decide` into a hash-chained log and a world.
//! - [`checks`]: the properties, checked at the moments they speak about.

pub mod checks;
pub mod model;
pub mod run;
pub mod scenario;
