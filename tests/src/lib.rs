//! # roster-tests
//!
//! Cross-crate scenarios (in `tests/`), the child processes they kill (`src/bin/`), and what
//! the fuzz targets of more than one crate share ([`fuzz`]): `tests/fuzz.rs` here, and the
//! gateway's socket fuzzing in `roster-runtime` (a dev-dependency there).
#![forbid(unsafe_code)]

pub mod fuzz;
