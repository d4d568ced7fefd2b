//! Example programs for the som crates; see `examples/*.rs`.
//!
//! This crate also compiles the workspace README's code as a doctest, so the
//! example users see first cannot rot.

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
