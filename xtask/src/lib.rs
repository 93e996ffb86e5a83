//! The library half of `cargo xtask`: what is worth testing on its own.
//!
//! - [`download`]: fetch, verify, unpack and describe a public dataset.

pub mod download;
