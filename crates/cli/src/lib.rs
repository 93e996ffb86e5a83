//! The library half of the `hark` binary: what is worth testing without
//! running it.
//!
//! - [`download`]: fetch, verify, unpack and describe a public dataset
//!   (`hark download`).

pub mod download;
