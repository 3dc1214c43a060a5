//! Berth's typed, layered configuration.
//!
//! PID 1 reads the kernel command line and the configuration layers with this crate before
//! anything else; `berth cloud-init`, the service manager and the `berth config` CLI read
//! the same effective configuration the same way. Loading never fails: an invalid layer is
//! skipped with its errors (file, line, column, key path), and the built-in defaults always
//! apply.
//!
//! # Layers, lowest first
//!
//! 1. the schema's own defaults ([`Config::default`]);
//! 2. the built-in `defaults.yml` of the OS image;
//! 3. the OEM partition's `oem-config.yml`;
//! 4. `cloud-config.d/*.yml` (lexical order, dotfiles skipped);
//! 5. the user-data saved from a datasource, `user-data.yml`;
//! 6. the local `cloud-config.yml`, written by `berth config set/merge`;
//! 7. the kernel command line: `berth.a.b=value`, `rancher.a.b=value`, `cc.key=value`.
//!
//! # Merging
//!
//! Maps merge deeply; scalars and lists replace. `key+:` appends to the list lower layers
//! set (and merges a map). An empty value (`key:` or `null`) removes the key, so lower layers
//! and defaults apply again (`berth.services.ntp:` removes a built-in service). A layer's
//! `rancher:` key is mapped onto `berth:` (see `docs/rancheros.md`).
//!
//! # Values
//!
//! Every value that can be invalid is a type that cannot hold an invalid one
//! ([`schema::values`]). The reader is forgiving where cloud-config authors expect it:
//! `yes`/`no`/`on`/`off` are booleans where a boolean is expected, `"22"` is a number where
//! a number is expected, a single value is a one-item list where a list is expected, and
//! `0644` stays the text `0644` (a file mode is never decimal).
#![forbid(unsafe_code)]

mod check;
mod cmdline;
mod diagnostic;
mod edit;
mod error;
mod interpolate;
mod load;
mod merge;
mod node;
mod pending;
pub mod proxy;
mod rancher;
pub mod schema;
mod yaml;

pub use cmdline::{CMDLINE_SOURCE, KernelCmdline};
pub use diagnostic::{Diagnostic, Severity, has_errors};
pub use edit::{export, get, merge, set, validate_text, validate_text_in, write_atomically};
pub use error::ConfigError;
pub use interpolate::interpolate;
pub use load::{ConfigPaths, LayerInfo, LayerKind, LayerStatus, Loaded, error_at_key, load, scalar_at_key};
pub use schema::Config;
pub use schema::berth::{BerthConfig, ConsoleKind};
pub use schema::engine::EngineName;
pub use schema::service::{HealthTest, Healthcheck, ServiceSpec, label_problem};
pub use schema::values::{parse_bool, shown_url};
