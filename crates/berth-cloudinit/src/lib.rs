//! cloud-init for Berth.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod metadata;
pub mod probe;
pub mod userdata;
