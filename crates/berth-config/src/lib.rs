//! Berth's typed, layered configuration.

mod check;
mod cmdline;
mod diagnostic;
mod edit;
mod error;
mod interpolate;
mod load;
mod merge;
mod node;
mod rancher;
pub mod schema;
mod yaml;

pub use cmdline::{CMDLINE_SOURCE, KernelCmdline};
pub use diagnostic::{Diagnostic, Severity, has_errors};
pub use edit::{export, get, merge, set, validate_text, validate_text_in, write_atomically};
pub use error::ConfigError;
pub use interpolate::interpolate;
pub use load::{ConfigPaths, LayerInfo, LayerKind, LayerStatus, Loaded, load};
pub use schema::Config;
