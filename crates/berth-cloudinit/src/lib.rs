//! cloud-init for Berth.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod blockdev;
mod commands;
pub mod console;
pub mod datasource;
mod error;
mod fsutil;
pub mod host;
pub mod http;
pub mod metadata;
pub mod probe;
pub mod report;
pub mod save;
#[cfg(test)]
mod testserver;
mod time;
pub mod userdata;
pub mod volume;

pub use error::{Error, Result};
