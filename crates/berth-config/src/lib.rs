//! Berth's typed, layered configuration.

mod check;
mod diagnostic;
mod merge;
mod node;
mod rancher;
pub mod schema;
mod yaml;

pub use diagnostic::{Diagnostic, Severity, has_errors};
pub use schema::Config;
