//! [`FakeModuleLoader`]: an in-memory kernel that records what it is asked to do. Used by
//! the tests of everything above the loader, and by `modprobe --dry-run`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::KmodError;
use crate::loader::ModuleLoader;
use crate::name::{module_name_from_path, normalize_name};

/// An in-memory stand-in for the kernel.
#[derive(Debug, Clone, Default)]
pub struct FakeModuleLoader {
    loaded: HashSet<String>,
    in_use: HashSet<String>,
    insert_failures: HashMap<String, Errno>,
    inserts: Vec<(PathBuf, String)>,
    removals: Vec<String>,
}

impl FakeModuleLoader {
    /// A kernel with no modules loaded.
    pub fn new() -> Self {
        Self::default()
    }

    /// A kernel with `modules` already loaded.
    pub fn with_loaded<I, S>(modules: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            loaded: modules.into_iter().map(|m| normalize_name(m.as_ref())).collect(),
            ..Self::default()
        }
    }

    /// Make inserting `module` fail with `errno`.
    pub fn fail_insert(&mut self, module: &str, errno: Errno) -> &mut Self {
        self.insert_failures.insert(normalize_name(module), errno);
        self
    }

    /// Make removing `module` fail as in use.
    pub fn set_in_use(&mut self, module: &str) -> &mut Self {
        self.in_use.insert(normalize_name(module));
        self
    }

    /// Every successful insert, in order: the file and the parameters.
    pub fn inserts(&self) -> &[(PathBuf, String)] {
        &self.inserts
    }

    /// The module names inserted, in order.
    pub fn inserted_names(&self) -> Vec<String> {
        self.inserts
            .iter()
            .filter_map(|(path, _)| module_name_from_path(&path.to_string_lossy()))
            .collect()
    }

    /// Every successful removal, in order.
    pub fn removals(&self) -> &[String] {
        &self.removals
    }

    /// Whether `module` is loaded now.
    pub fn is_loaded(&self, module: &str) -> bool {
        self.loaded.contains(&normalize_name(module))
    }
}

impl ModuleLoader for FakeModuleLoader {
    fn loaded(&self) -> Result<HashSet<String>, KmodError> {
        Ok(self.loaded.clone())
    }

    fn insert(&mut self, path: &Path, params: &str) -> Result<(), KmodError> {
        let module = module_name_from_path(&path.to_string_lossy()).unwrap_or_default();
        if let Some(&errno) = self.insert_failures.get(&module) {
            return Err(KmodError::Insert {
                module,
                path: path.to_owned(),
                errno,
            });
        }
        if self.loaded.insert(module) {
            self.inserts.push((path.to_owned(), params.to_owned()));
        }
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<(), KmodError> {
        let module = normalize_name(name);
        if !self.loaded.contains(&module) {
            return Err(KmodError::Remove {
                module,
                errno: Errno::ENOENT,
            });
        }
        if self.in_use.contains(&module) {
            return Err(KmodError::Remove {
                module,
                errno: Errno::EWOULDBLOCK,
            });
        }
        self.loaded.remove(&module);
        self.removals.push(module);
        Ok(())
    }
}
