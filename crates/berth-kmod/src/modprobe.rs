//! `modprobe NAME`: resolve, plan, insert. And `modprobe -r NAME`.

use std::collections::HashSet;

use crate::KmodError;
use crate::index::ModuleIndex;
use crate::loader::ModuleLoader;
use crate::plan::LoadPlan;

/// How to probe, beyond the name and parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Apply the blacklist to module names too, not only to aliases (`modprobe -b`).
    pub use_blacklist: bool,
    /// Fail if the module is already loaded (`modprobe --first-time`).
    pub first_time: bool,
}

/// Load the module(s) `name` stands for, with their dependencies and softdeps; `params`
/// go to the named module(s). Built-in and already-loaded modules are skipped. Returns the
/// modules actually inserted, in order.
pub fn modprobe(
    index: &ModuleIndex,
    loader: &mut dyn ModuleLoader,
    name: &str,
    params: &str,
) -> Result<Vec<String>, KmodError> {
    modprobe_with(index, loader, name, params, ProbeOptions::default())
}

/// The modules `name` resolves to, as modprobe will load them: an error if none.
pub fn resolve_for_probe(
    index: &ModuleIndex,
    name: &str,
    options: ProbeOptions,
) -> Result<Vec<String>, KmodError> {
    let resolution = index.lookup(name);
    let (modules, blacklisted): (Vec<String>, Vec<String>) =
        if options.use_blacklist && !resolution.via.is_alias() {
            resolution
                .modules
                .into_iter()
                .partition(|m| !index.config().is_blacklisted(m))
        } else {
            (resolution.modules, resolution.blacklisted)
        };
    if modules.is_empty() {
        if blacklisted.is_empty() {
            return Err(index.not_found(name));
        }
        return Err(KmodError::Blacklisted {
            name: name.to_owned(),
            modules: blacklisted,
        });
    }
    Ok(modules)
}

/// [`modprobe`] with options. When `name` is an alias of several modules, each is tried
/// and the first error is returned after trying them all.
pub fn modprobe_with(
    index: &ModuleIndex,
    loader: &mut dyn ModuleLoader,
    name: &str,
    params: &str,
    options: ProbeOptions,
) -> Result<Vec<String>, KmodError> {
    let modules = resolve_for_probe(index, name, options)?;
    let mut loaded = loader.loaded()?;
    let mut inserted = Vec::new();
    let mut first_error = None;
    for module in modules {
        if options.first_time && (loaded.contains(&module) || index.is_builtin(&module)) {
            first_error.get_or_insert(KmodError::AlreadyLoaded { module });
            continue;
        }
        let result = index.load_plan(&module).and_then(|mut plan| {
            plan.add_target_params(params);
            execute_plan(&plan, loader, &mut loaded, &mut inserted)
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(inserted),
    }
}

/// Insert the steps of `plan` that are not in `loaded`, recording them in `loaded` and
/// `inserted`. An optional step (softdep) that fails is logged and skipped; any other
/// failure stops the plan.
pub fn execute_plan(
    plan: &LoadPlan,
    loader: &mut dyn ModuleLoader,
    loaded: &mut HashSet<String>,
    inserted: &mut Vec<String>,
) -> Result<(), KmodError> {
    for step in &plan.steps {
        if loaded.contains(&step.module) {
            continue;
        }
        match loader.insert(&step.path, &step.params) {
            Ok(()) => {
                tracing::debug!(module = %step.module, path = %step.path.display(), "inserted");
                loaded.insert(step.module.clone());
                inserted.push(step.module.clone());
            }
            Err(e) if step.is_optional() && e.is_no_device() => {
                tracing::debug!(module = %step.module, "soft dependency: no hardware for it");
            }
            Err(e) if step.is_optional() => {
                tracing::warn!(module = %step.module, error = %e, "soft dependency not loaded");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Remove the module(s) `name` stands for, then those of their dependencies that nothing
/// else uses any more (`modprobe -r`). A module that is not loaded is no error. Returns the
/// modules removed, in order.
pub fn modprobe_remove(
    index: &ModuleIndex,
    loader: &mut dyn ModuleLoader,
    name: &str,
) -> Result<Vec<String>, KmodError> {
    modprobe_remove_with(index, loader, name, ProbeOptions::default())
}

/// [`modprobe_remove`] with options: `first_time` makes a module that is not loaded an
/// error (`modprobe -r --first-time`).
pub fn modprobe_remove_with(
    index: &ModuleIndex,
    loader: &mut dyn ModuleLoader,
    name: &str,
    options: ProbeOptions,
) -> Result<Vec<String>, KmodError> {
    let modules = match index.lookup(name).modules {
        modules if !modules.is_empty() => modules,
        _ => return Err(index.not_found(name)),
    };
    let loaded = loader.loaded()?;
    let mut removed = Vec::new();
    for module in modules {
        if index.is_builtin(&module) {
            return Err(KmodError::Builtin { module });
        }
        if !loaded.contains(&module) {
            if options.first_time {
                return Err(KmodError::NotLoaded { module });
            }
            continue;
        }
        loader.remove(&module)?;
        removed.push(module.clone());
        // modules.dep lists direct dependencies first: each goes before what it needs.
        for dep in index.dependencies(&module) {
            if loaded.contains(dep) && !removed.contains(dep) {
                match loader.remove(dep) {
                    Ok(()) => removed.push(dep.clone()),
                    Err(e) => tracing::debug!(module = %dep, error = %e, "dependency kept"),
                }
            }
        }
    }
    Ok(removed)
}
