//! The library half of the `hark` binary: what is worth testing without
//! running it.
//!
//! - [`download`]: fetch, verify, unpack and describe a public dataset
//!   (`hark download`).
//! - [`slurm`]: the submit script of a cross-validation on a Slurm cluster
//!   (`hark cv --emit slurm`).

pub mod download;
pub mod slurm;
