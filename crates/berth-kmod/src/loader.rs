//! [`ModuleLoader`]: the system boundary between deciding what to load and loading it.

use std::collections::HashSet;
use std::path::Path;

use crate::KmodError;

/// Loading and removing modules in a kernel. [`crate::KernelModuleLoader`] is the real one;
/// [`crate::FakeModuleLoader`] records what it is asked, for tests and `--dry-run`.
pub trait ModuleLoader {
    /// The names of the loaded modules (`/proc/modules`), normalised.
    fn loaded(&self) -> Result<HashSet<String>, KmodError>;

    /// Insert the module in `path` with `params`. A module that is already loaded
    /// (`EEXIST`) is success.
    fn insert(&mut self, path: &Path, params: &str) -> Result<(), KmodError>;

    /// Remove module `name` if nothing uses it.
    fn remove(&mut self, name: &str) -> Result<(), KmodError>;
}
